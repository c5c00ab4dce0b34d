//! One pull, end to end: take the pull lock, ping the health check, list every key through
//! `api` into the store's staging, apply the listing in one transaction, and settle the WAL.
//! `cmd::pull` runs it once or on a schedule; `cmd::demo` runs it against the fake.
//!
//! Also here, because only a pull needs them: the progress bar, the health-check pings, and the
//! signal handling that turns SIGINT/SIGTERM into a clean stop.

pub mod ping;
pub mod progress;
pub mod shutdown;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::Serialize;

use crate::api::{ApiClient, ApiOptions, Listing, list_all};
use crate::error::{Result, Signal};
use crate::store;
use crate::store::lock::PullLock;
use crate::store::sync::{
    Staging, SyncStatus, UnfinishedSync, apply_listing, begin_sync, fail_sync,
};
use crate::time::unix_now;
use ping::HealthPing;
use progress::PageProgress;

/// Everything one pull needs, checked.
#[derive(Debug)]
pub struct PullOptions {
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
pub struct SyncSummary {
    pub sync: i64,
    pub status: SyncStatus,
    pub keys: usize,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub pages: u32,
    pub duration_ms: u64,
}

impl SyncSummary {
    /// `sync 12 ok: 2345 keys, 3 added, 10 changed, 1 removed (1.4s)`
    pub fn line(&self) -> String {
        format!(
            "sync {} {}: {} keys, {} added, {} changed, {} removed ({:.1}s)",
            self.sync,
            self.status.as_str(),
            self.keys,
            self.added,
            self.changed,
            self.removed,
            self.duration_ms as f64 / 1000.0
        )
    }
}

/// How a pull ended, when it did not fail.
#[derive(Debug)]
pub enum Pulled {
    Done(SyncSummary),
    /// A stop was requested mid-pull: its sync row says `failed`, error `interrupted`.
    Interrupted,
}

/// One whole pull: lock, ping, record. A `cancel` that resolves while it waits for the lock
/// ends the wait; mid-pull it rolls the pull back.
pub async fn pull(
    options: &PullOptions,
    progress: bool,
    cancel: impl Future<Output = Signal>,
) -> Result<Pulled> {
    let client = Arc::new(ApiClient::new(&options.api)?);
    let ping = options
        .ping_url
        .as_deref()
        .map(HealthPing::new)
        .transpose()?;
    store::create_private_file(&options.db)?;
    tokio::pin!(cancel);
    let _lock = tokio::select! {
        lock = PullLock::acquire(&options.db, options.wait) => lock?,
        _ = &mut cancel => return Ok(Pulled::Interrupted),
    };
    if let Some(ping) = &ping {
        ping.start().await;
    }
    let result = record_sync(options, &client, progress, cancel).await;
    if let Some(ping) = &ping {
        match &result {
            Ok(Pulled::Done(summary)) => ping.success(&summary.line()).await,
            Err(error) => ping.fail(&error.to_string()).await,
            Ok(Pulled::Interrupted) => {}
        }
    }
    result
}

/// Lists into staging and applies the listing. Every failure after the sync row exists is
/// recorded in it.
async fn record_sync(
    options: &PullOptions,
    client: &Arc<ApiClient>,
    progress: bool,
    cancel: impl Future<Output = Signal>,
) -> Result<Pulled> {
    let mut conn = store::open(&options.db)?;
    let started = Instant::now();
    let sync = begin_sync(&conn, &options.api.base_url, unix_now(options.now))?;
    let unfinished = UnfinishedSync::new(&options.db, sync, options.now);
    let listed = tokio::select! {
        listed = list_into_staging(&conn, client, options.store_secrets, progress) => listed,
        _ = cancel => {
            fail_sync(&conn, sync, unix_now(options.now), "interrupted")?;
            store::wal::settle(&conn, 0).await;
            unfinished.finished();
            return Ok(Pulled::Interrupted);
        }
    };
    let finished = unix_now(options.now);
    let applied = listed.and_then(|listing| {
        apply_listing(&mut conn, sync, &listing, options.store_secrets, finished)
            .map(|(status, counts)| (listing, status, counts))
    });
    let (listing, status, counts) = match applied {
        Ok(done) => {
            unfinished.finished();
            done
        }
        Err(error) => {
            if let Err(record) = fail_sync(&conn, sync, unix_now(options.now), &error.to_string()) {
                tracing::warn!("{record}");
            }
            store::wal::settle(&conn, 0).await;
            unfinished.finished();
            return Err(error);
        }
    };
    store::wal::settle(&conn, counts.secrets_cleared).await;
    if let Some(why) = &listing.inconsistency {
        tracing::warn!(
            "sync {sync} is partial: no key was marked removed, because in all {} listing \
             passes {why}; keys that stopped being listed are kept until a consistent pull",
            listing.passes
        );
    }
    Ok(Pulled::Done(SyncSummary {
        sync,
        status,
        keys: listing.keys_seen,
        added: counts.added,
        changed: counts.changed,
        removed: counts.removed,
        pages: listing.pages,
        duration_ms: started.elapsed().as_millis() as u64,
    }))
}

async fn list_into_staging(
    conn: &Connection,
    client: &Arc<ApiClient>,
    store_secrets: bool,
    progress: bool,
) -> Result<Listing> {
    let mut sink = PageProgress::new(Staging::new(conn, store_secrets)?, progress);
    if let Some(observer) = sink.retry_observer() {
        client.observe_retries(observer);
    }
    let listing = list_all(client, &mut sink).await;
    sink.finish();
    listing
}
