//! One pull, end to end: take the pull lock, ping the health check, list every key through
//! `api` into the store's staging while reading the gateway's price beside it (`price`), apply
//! the listing in one transaction, and settle the WAL.
//! `cmd::pull` runs it once or on a schedule; `cmd::demo` runs it against the fake.
//!
//! The async boundary: HTTP runs on the async runtime, and pages are parsed on its blocking
//! pool; every SQLite call of the pull runs on its writer thread (`writer`), which owns the
//! connection for the whole pull and is fed pages through a bounded channel. So the pull future
//! holds no connection and is `Send`, and the runtime never waits on SQLite.
//!
//! Also here, because only a pull needs them: the progress bar, the health-check pings, and the
//! signal handling that turns SIGINT/SIGTERM into a clean stop.

pub(crate) mod ping;
pub(crate) mod price;
pub(crate) mod progress;
pub(crate) mod shutdown;
pub(crate) mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::{ApiClient, ApiOptions, GatewayStatus, Listing, PageSink, list_all};
use crate::error::{Error, Result, Signal};
use crate::store;
use crate::store::lock::PullLock;
use crate::store::sync::SyncStatus;
use crate::terminal::counted;
use crate::time::{as_rfc3339, unix_now};
use ping::HealthPing;
use price::{FirstPageStaged, PriceRead};
use progress::PageProgress;
use writer::{Writer, WriterJob};

/// Everything one pull needs, checked.
#[derive(Debug)]
pub(crate) struct PullOptions {
    pub db: PathBuf,
    pub api: ApiOptions,
    pub store_secrets: bool,
    pub wait: Option<Duration>,
    /// `--now`: the time recorded for the sync instead of the clock's.
    pub now: Option<i64>,
    /// The healthchecks-style URL to ping; a credential, never logged.
    pub ping_url: Option<String>,
}

/// What one pull did; printed as a line, or as JSON with `--json`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SyncSummary {
    pub sync: i64,
    pub status: SyncStatus,
    pub keys: usize,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub pages: u32,
    /// Every HTTP request the pull sent, the answers 429 included.
    pub requests: u64,
    /// How many of them were answered 429 (rate limited).
    pub rate_limited: u64,
    pub duration_ms: u64,
    /// When the pull began (before any wait for the lock) and ended, as RFC 3339 in JSON.
    #[serde(serialize_with = "as_rfc3339")]
    pub started_at: i64,
    #[serde(serialize_with = "as_rfc3339")]
    pub finished_at: i64,
}

/// A pull that did not finish: the sync row that records it (when one was written) and when
/// the pull began and ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullTrace {
    pub sync: Option<i64>,
    pub started_at: i64,
    pub finished_at: i64,
}

/// A pull that failed: the error, and what it left behind.
#[derive(Debug)]
pub struct PullFailed {
    pub trace: PullTrace,
    pub error: Error,
}

/// Callers that only report the error (the demo) use `?`.
impl From<PullFailed> for Error {
    fn from(failed: PullFailed) -> Error {
        failed.error
    }
}

impl SyncSummary {
    /// `sync 12 ok: 2345 keys, 3 added, 10 changed, 1 removed (1.4s)`
    pub(crate) fn line(&self) -> String {
        format!(
            "sync {} {}: {}, {} added, {} changed, {} removed ({:.1}s)",
            self.sync,
            self.status.as_str(),
            counted(self.keys, "key"),
            self.added,
            self.changed,
            self.removed,
            self.duration_ms as f64 / 1000.0
        )
    }
}

/// How a pull ended, when it did not fail.
#[derive(Debug)]
pub(crate) enum Pulled {
    Done(SyncSummary),
    /// A stop was requested: the sync row, if the pull had begun one, says `failed`, error
    /// `interrupted`.
    Interrupted(PullTrace),
}

/// How [`record_sync`] ended; [`pull`] adds the times.
enum Recorded {
    Done(SyncSummary),
    Interrupted(i64),
}

/// One whole pull: lock, ping, record. A `cancel` that resolves while it waits for the lock
/// ends the wait; mid-pull it rolls the pull back. A failure says which sync row records it.
pub(crate) async fn pull(
    options: &PullOptions,
    progress: bool,
    cancel: impl Future<Output = Signal>,
) -> Result<Pulled, PullFailed> {
    let started_at = unix_now(options.now);
    let trace = |sync| PullTrace {
        sync,
        started_at,
        finished_at: unix_now(options.now),
    };
    let failed = |sync, error| PullFailed {
        trace: trace(sync),
        error,
    };
    let prepared = prepare(options).map_err(|error| failed(None, error))?;
    let (client, ping) = prepared;
    tokio::pin!(cancel);
    let _lock = tokio::select! {
        lock = PullLock::acquire(&options.db, options.wait) => {
            lock.map_err(|error| failed(None, error))?
        }
        _ = &mut cancel => return Ok(Pulled::Interrupted(trace(None))),
    };
    if let Some(ping) = &ping {
        ping.start().await;
    }
    let result = record_sync(options, &client, progress, cancel, started_at).await;
    if let Some(ping) = &ping {
        match &result {
            Ok(Recorded::Done(summary)) => ping.success(&summary.line()).await,
            Err((_, error)) => ping.fail(&error.to_string()).await,
            Ok(Recorded::Interrupted(_)) => {}
        }
    }
    match result {
        Ok(Recorded::Done(summary)) => Ok(Pulled::Done(summary)),
        Ok(Recorded::Interrupted(sync)) => Ok(Pulled::Interrupted(trace(Some(sync)))),
        Err((sync, error)) => Err(failed(sync, error)),
    }
}

/// The API client, the health ping and the database file, before the lock is taken.
fn prepare(options: &PullOptions) -> Result<(Arc<ApiClient>, Option<HealthPing>)> {
    let client = Arc::new(ApiClient::new(&options.api)?);
    let ping = options
        .ping_url
        .as_deref()
        .map(HealthPing::new)
        .transpose()?;
    store::create_private_file(&options.db)?;
    Ok((client, ping))
}

/// Lists the account into the writer thread and has it apply the listing. Every failure
/// after the sync row exists is recorded in it, by the writer, and names it.
async fn record_sync(
    options: &PullOptions,
    client: &Arc<ApiClient>,
    progress: bool,
    cancel: impl Future<Output = Signal>,
    started_at: i64,
) -> Result<Recorded, (Option<i64>, Error)> {
    let mut writer = Writer::start(WriterJob {
        db: options.db.clone(),
        base_url: options.api.base_url.clone(),
        now: options.now,
        store_secrets: options.store_secrets,
        requests: client.request_counter(),
    })
    .map_err(|error| (None, error))?;
    let begun = writer.begun().await.map_err(|error| (None, error))?;
    let sync = begun.sync;
    client.recognise(begun.known);
    let recorded_in_sync = |error| (Some(sync), error);
    let started = Instant::now();
    let (first_page, staged) = tokio::sync::oneshot::channel();
    let price = PriceRead::after(staged, client);
    let sink = FirstPageStaged::new(writer.sink(), first_page);
    let listed = tokio::select! {
        listed = list_and_read_price(sink, client, progress, price) => Some(listed),
        // The writer stops first only on an error (or a panic) of its own: stop listing.
        error = writer.stopped() => return Err(recorded_in_sync(error)),
        _ = cancel => None,
    };
    let (listing, gateway) = match listed {
        Some(Ok(listed)) => listed,
        Some(Err(error)) => return Err(recorded_in_sync(writer.fail(error).await)),
        None => {
            writer.interrupt().await.map_err(recorded_in_sync)?;
            return Ok(Recorded::Interrupted(sync));
        }
    };
    let (status, counts) = writer
        .apply(listing.clone(), gateway)
        .await
        .map_err(recorded_in_sync)?;
    warn_if_partial(sync, &listing);
    Ok(Recorded::Done(SyncSummary {
        sync,
        status,
        keys: listing.keys_seen,
        added: counts.added,
        changed: counts.changed,
        removed: counts.removed,
        pages: listing.pages,
        requests: listing.requests.requests,
        rate_limited: listing.requests.rate_limited,
        duration_ms: started.elapsed().as_millis() as u64,
        started_at,
        finished_at: unix_now(options.now),
    }))
}

/// Says why a partial sync removed no key: the person reading it decides whether to pull again.
fn warn_if_partial(sync: i64, listing: &Listing) {
    if let Some(why) = &listing.inconsistency {
        let passes = match listing.passes {
            1 => "in its one listing pass".to_string(),
            n => format!("in all {}", counted(n, "listing pass")),
        };
        tracing::warn!(
            "sync {sync} is partial: no key was marked removed, because {passes} {why}; keys \
             that stopped being listed are kept until a consistent pull"
        );
    }
}

/// Lists every key into the writer, then waits for the gateway's price (read beside the
/// listing) and counts the requests of both.
async fn list_and_read_price(
    sink: impl PageSink + Send,
    client: &Arc<ApiClient>,
    progress: bool,
    price: PriceRead,
) -> Result<(Listing, GatewayStatus)> {
    let mut listing = list_into_staging(sink, client, progress).await?;
    let gateway = price.finish().await;
    listing.requests = client.request_counts();
    Ok((listing, gateway))
}

/// Lists every key into the writer, drawing the progress bar on the way.
async fn list_into_staging(
    sink: impl PageSink + Send,
    client: &Arc<ApiClient>,
    progress: bool,
) -> Result<Listing> {
    let mut sink = PageProgress::new(sink, progress);
    if let Some(observer) = sink.retry_observer() {
        client.observe_retries(observer);
    }
    let listing = list_all(client, &mut sink).await;
    sink.finish();
    listing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AccessToken;

    fn assert_send<T: Send>(_: &T) {}

    /// Compile-time: the pull future holds no `Connection` (only the writer thread does), so
    /// it can run on any runtime, spawned or not.
    #[test]
    fn a_pull_is_a_send_future() {
        let options = PullOptions {
            db: PathBuf::from("unused.db"),
            api: ApiOptions::with_defaults("http://127.0.0.1:1", AccessToken::new("t".into())),
            store_secrets: false,
            wait: None,
            now: None,
            ping_url: None,
        };
        let pull = pull(&options, false, std::future::pending::<Signal>());
        assert_send(&pull);
    }
}
