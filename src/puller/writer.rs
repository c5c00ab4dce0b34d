//! The pull's writer thread: the one thread that touches SQLite during a pull.
//!
//! A pull's work splits in two. Waiting on the network is async and stays on the runtime (which
//! parses pages on its blocking pool); opening the database, the `syncs` row, staging,
//! applying and recording a failure are blocking SQLite calls, so they run on one thread of
//! their own that owns the pull's connection from its first statement to its last. (A
//! `Connection` is `Send` but not `Sync`: keeping it off the runtime is also what makes the
//! pull future `Send`.)
//!
//! The listing hands the writer pages through a bounded tokio channel of [`QUEUED_PAGES`]. The
//! runtime side's `send().await` waits as a future when the writer is behind, so memory stays
//! flat and no runtime thread blocks (a `std::sync::mpsc::sync_channel` would block the
//! runtime's only thread, stalling the requests in flight); the writer, a plain thread, takes
//! pages with `blocking_recv`.
//!
//! The writer answers once, when the row is final: how the sync ended, or its own error (it
//! drops its end of the channel first, so the listing stops at its next page), or its panic,
//! which the runtime side resumes so that the process ends as on any panic (exit 7), after
//! [`UnfinishedSync`] has marked the row failed.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};

use tokio::sync::{mpsc, oneshot};

use crate::api::pacing::RequestCounter;
#[cfg(feature = "test-support")]
use crate::api::panic_on_page_for_tests;
use crate::api::{GatewayStatus, KnownItems, Listing, Page, PageSink};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::sync::{ApplyCounts, PANICKED, Staging, SyncStatus, UnfinishedSync};
use crate::time::unix_now;

/// Pages queued for the writer at most: enough to keep it busy while the next page is fetched
/// and parsed, few enough that a slow disk holds back the listing instead of filling memory.
pub(crate) const QUEUED_PAGES: usize = 2;

/// What the runtime side tells the writer, in order.
enum Message {
    /// With `staged` for page 1, whose account check must pass before the listing goes on.
    Page {
        pass: u32,
        page: Page,
        staged: Option<oneshot::Sender<()>>,
    },
    /// The listing is complete: apply it, with what the gateway published.
    Listed(Listing, GatewayStatus),
    /// The listing failed with this error: record it on the sync row.
    Failed(String),
}

/// How the listing ended, as the writer saw it.
enum End {
    Listed(Listing, GatewayStatus),
    Failed(String),
    /// The channel closed without an end: the pull was stopped.
    Interrupted,
}

/// How the writer left the sync row, when it did not fail itself.
#[derive(Debug)]
enum Written {
    Applied(SyncStatus, ApplyCounts),
    /// The listing's error is recorded.
    Failed,
    /// Recorded as `interrupted`.
    Interrupted,
}

/// What the writer needs to know about the pull.
pub(crate) struct WriterJob {
    pub db: PathBuf,
    pub base_url: String,
    /// `--now`, for the row's start and end times.
    pub now: Option<i64>,
    pub store_secrets: bool,
    /// The API client's request counts, recorded on a row the listing did not finish.
    pub requests: Arc<RequestCounter>,
}

/// A pull whose row is written: its sync, and the stored keys its listing may recognise.
pub(crate) struct Begun {
    pub sync: i64,
    pub known: Arc<KnownItems>,
}

/// The writer thread's answer: its outcome, or its panic's payload.
type Answer = thread::Result<Result<Written>>;

/// The runtime side's end of a writer thread. Dropped before the listing's end was sent (the
/// runtime side panicked, or gave up the pull), it closes the channel and waits for the writer
/// to record that on the row, so that no way out leaves the row `running`.
pub(crate) struct Writer {
    messages: Option<mpsc::Sender<Message>>,
    begun: oneshot::Receiver<Begun>,
    answer: Option<oneshot::Receiver<Answer>>,
    thread: Option<JoinHandle<()>>,
    /// Set when the runtime side drops this during a panic: the row then says so.
    panicked: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread, which opens the database and records the sync's start.
    pub(crate) fn start(job: WriterJob) -> Result<Writer> {
        let (messages, inbox) = mpsc::channel(QUEUED_PAGES);
        let (begun_sender, begun) = oneshot::channel();
        let (answer_sender, answer) = oneshot::channel();
        let panicked = Arc::new(AtomicBool::new(false));
        let runtime_panicked = panicked.clone();
        let thread = thread::Builder::new()
            .name("keysync-writer".into())
            .spawn(move || {
                // The panic hook has printed the message; the payload goes to the runtime side.
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    write(&job, inbox, begun_sender, &runtime_panicked)
                }));
                let _ = answer_sender.send(outcome);
            })
            .map_err(|e| Error::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            messages: Some(messages),
            begun,
            answer: Some(answer),
            thread: Some(thread),
            panicked,
        })
    }

    /// The sync's id and the stored keys once its row is written, or why it could not be (a
    /// clock going back, a database that does not open).
    pub(crate) async fn begun(&mut self) -> Result<Begun> {
        match (&mut self.begun).await {
            Ok(begun) => Ok(begun),
            Err(_) => Err(self.stopped().await),
        }
    }

    /// A sink that queues listed pages for the writer.
    pub(crate) fn sink(&self) -> WriterSink {
        WriterSink(
            self.messages
                .clone()
                .expect("the channel is open until the end"),
        )
    }

    /// Resolves only when the writer stops before it is told the listing's end: with its own
    /// error (another account's keys, a full disk), or by resuming its panic.
    pub(crate) async fn stopped(&mut self) -> Error {
        let Some(answer) = self.answer.as_mut() else {
            return Error::Internal("the writer's answer was taken".into());
        };
        match receive(answer).await {
            Err(error) => error,
            Ok(written) => Error::Internal(format!("the writer ended early: {written:?}")),
        }
    }

    /// Has the complete listing applied, and the gateway's price recorded; returns the
    /// sync's status and what changed.
    pub(crate) async fn apply(
        self,
        listing: Listing,
        gateway: GatewayStatus,
    ) -> Result<(SyncStatus, ApplyCounts)> {
        match self.end(Some(Message::Listed(listing, gateway))).await? {
            Written::Applied(status, counts) => Ok((status, counts)),
            other => Err(Error::Internal(format!(
                "the writer did not apply: {other:?}"
            ))),
        }
    }

    /// Has the listing's `error` recorded and returns it, unless the writer stopped on an error
    /// of its own first: that one is the cause, and the listing's only its echo.
    pub(crate) async fn fail(self, error: Error) -> Error {
        match self.end(Some(Message::Failed(error.to_string()))).await {
            Ok(_) => error,
            Err(own) => own,
        }
    }

    /// Has the pull recorded as `interrupted`.
    pub(crate) async fn interrupt(self) -> Result<()> {
        self.end(None).await.map(|_| ())
    }

    /// Sends the listing's end, if any, closes the channel and waits for the final row.
    async fn end(mut self, last: Option<Message>) -> Result<Written> {
        let (Some(messages), Some(answer)) = (self.messages.take(), self.answer.take()) else {
            return Err(Error::Internal("the writer was ended twice".into()));
        };
        if let Some(last) = last {
            // A writer that stopped already has its answer waiting.
            let _ = messages.send(last).await;
        }
        drop(messages);
        receive(answer).await
    }
}

impl Drop for Writer {
    /// Closes the channel and waits for the writer's last word. After [`Writer::end`] that is
    /// at once (the answer is its thread's last act); before it, the writer records the pull as
    /// interrupted, or as panicked while this side unwinds. Waiting keeps the process alive
    /// until the row is final, which a panic's exit would otherwise not.
    fn drop(&mut self) {
        if thread::panicking() {
            self.panicked.store(true, Ordering::SeqCst);
        }
        drop(self.messages.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer's outcome; its panic, resumed here, unwinds the pull.
async fn receive(
    answer: impl Future<Output = std::result::Result<Answer, oneshot::error::RecvError>>,
) -> Result<Written> {
    match answer.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => Err(Error::Internal(
            "the writer thread ended without an answer".into(),
        )),
    }
}

/// The runtime side's way in to the writer: a [`PageSink`] that queues pages for it.
pub(crate) struct WriterSink(mpsc::Sender<Message>);

impl PageSink for WriterSink {
    async fn stage(&mut self, pass: u32, page: Page) -> Result<()> {
        #[cfg(feature = "test-support")]
        panic_on_page_for_tests("KEYSYNC_DEBUG_PANIC_LISTING_PAGE", page.number);
        let stopped = || Error::Internal("the writer stopped before the listing ended".into());
        // Page 1 waits until it is staged: the writer checks it against the database's account,
        // and another account's token must cost one request only. Later pages wait only while
        // QUEUED_PAGES are queued: the back-pressure that keeps memory flat.
        let (staged, confirmed) = match page.number {
            1 => Some(oneshot::channel()).unzip(),
            _ => (None, None),
        };
        let message = Message::Page { pass, page, staged };
        self.0.send(message).await.map_err(|_| stopped())?;
        match confirmed {
            Some(confirmed) => confirmed.await.map_err(|_| stopped()),
            None => Ok(()),
        }
    }
}

/// The writer thread's work: the sync row, the staged pages, then the listing applied or the
/// failure recorded, and the WAL settled either way. Any way out before the row is final
/// (a panic included) leaves it to [`UnfinishedSync`] to mark it failed.
fn write(
    job: &WriterJob,
    inbox: mpsc::Receiver<Message>,
    begun: oneshot::Sender<Begun>,
    runtime_panicked: &AtomicBool,
) -> Result<Written> {
    let store = Store::open(&job.db)?;
    let sync = store.begin_sync(&job.base_url, unix_now(job.now))?;
    let unfinished = UnfinishedSync::new(&job.db, sync, job.now);
    let written = list_and_apply(&store, sync, job, inbox, begun, runtime_panicked);
    let secrets_cleared = match &written {
        Ok(Written::Applied(_, counts)) => counts.secrets_cleared,
        _ => 0,
    };
    store.settle_wal(secrets_cleared);
    unfinished.finished();
    written
}

/// Stages the listing's pages and applies the listing, or records on the row why it was not.
fn list_and_apply(
    store: &Store,
    sync: i64,
    job: &WriterJob,
    inbox: mpsc::Receiver<Message>,
    begun: oneshot::Sender<Begun>,
    runtime_panicked: &AtomicBool,
) -> Result<Written> {
    let mut staging = match store.staging(sync, job.store_secrets) {
        Ok(staging) => staging,
        Err(error) => return Err(record_failure(store, sync, job, error)),
    };
    let known = staging.known();
    let _ = begun.send(Begun { sync, known });
    match stage_listing(&mut staging, inbox) {
        Ok(End::Listed(listing, gateway)) => apply(staging, store, sync, &listing, &gateway, job),
        Ok(End::Failed(error)) => {
            count_requests(store, sync, job);
            record_failure(store, sync, job, error);
            Ok(Written::Failed)
        }
        Ok(End::Interrupted) => {
            count_requests(store, sync, job);
            let why = if runtime_panicked.load(Ordering::SeqCst) {
                PANICKED
            } else {
                "interrupted"
            };
            // A row that cannot be marked here is left to `unfinished`, on a connection of its own.
            store.fail_sync(sync, unix_now(job.now), why)?;
            Ok(Written::Interrupted)
        }
        Err(error) => {
            count_requests(store, sync, job);
            Err(record_failure(store, sync, job, error))
        }
    }
}

/// Applies the listing, or records why it could not be applied.
fn apply(
    staging: Staging<'_>,
    store: &Store,
    sync: i64,
    listing: &Listing,
    gateway: &GatewayStatus,
    job: &WriterJob,
) -> Result<Written> {
    match staging.apply(listing, gateway, unix_now(job.now)) {
        Ok((status, counts)) => {
            if let Some(why) = &gateway.no_price {
                say_no_price(store, sync, why);
            }
            Ok(Written::Applied(status, counts))
        }
        Err(error) => Err(record_failure(store, sync, job, error)),
    }
}

/// Says that sync `sync` has no price: a warning when that is news (the first good sync, or
/// the one before had a price), else only at `-v`, so that a gateway without `/api/status`
/// does not make cron mail every run.
fn say_no_price(store: &Store, sync: i64, why: &str) {
    let news = store.price_lost(sync).unwrap_or_else(|error| {
        tracing::warn!("{error}");
        true
    });
    let line = format!(
        "sync {sync} has no price from the gateway ({why}); dollars use the price of an \
         earlier sync, else 500000 quota units per dollar: to set one, pass --quota-per-unit N \
         to usage and html, or set quota_per_unit in the profile"
    );
    match news {
        true => tracing::warn!("{line}"),
        false => tracing::info!("{line}"),
    }
}

/// Stages pages until the listing's end arrives. Takes the channel so that leaving early (an
/// error) closes it: the listing's next page then fails instead of waiting.
fn stage_listing(staging: &mut Staging<'_>, mut inbox: mpsc::Receiver<Message>) -> Result<End> {
    while let Some(message) = inbox.blocking_recv() {
        match message {
            Message::Page { pass, page, staged } => {
                #[cfg(feature = "test-support")]
                panic_on_page_for_tests("KEYSYNC_DEBUG_PANIC_ON_PAGE", page.number);
                staging.stage(pass, page)?;
                if let Some(staged) = staged {
                    let _ = staged.send(());
                }
            }
            Message::Listed(listing, gateway) => return Ok(End::Listed(listing, gateway)),
            Message::Failed(error) => return Ok(End::Failed(error)),
        }
    }
    Ok(End::Interrupted)
}

/// Records the requests sent so far on a row the listing did not finish. Failing to is only a
/// warning, as for [`record_failure`].
fn count_requests(store: &Store, sync: i64, job: &WriterJob) {
    if let Err(error) = store.count_requests(sync, job.requests.counts()) {
        tracing::warn!("{error}");
    }
}

/// Records `error` on the sync row and hands it back. Failing to record it is only a warning:
/// the pull has failed already, and the next pull closes a row left `running`.
fn record_failure<E: ToString>(store: &Store, sync: i64, job: &WriterJob, error: E) -> E {
    if let Err(record) = store.fail_sync(sync, unix_now(job.now), &error.to_string()) {
        tracing::warn!("{record}");
    }
    error
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::model::KeyRecord;

    /// A writer for a new database in `dir`, its sync row begun.
    async fn begun(dir: &tempfile::TempDir) -> (Writer, i64) {
        let mut writer = Writer::start(WriterJob {
            db: dir.path().join("keys.db"),
            base_url: "http://127.0.0.1:1".into(),
            now: Some(100),
            store_secrets: false,
            requests: Arc::default(),
        })
        .unwrap();
        let sync = writer.begun().await.unwrap().sync;
        (writer, sync)
    }

    fn page(number: u32, ids: &[i64], user: i64) -> Page {
        let items = ids
            .iter()
            .map(|id| KeyRecord::from_json(&json!({"id": id, "user_id": user})).unwrap())
            .collect();
        Page::of(number, items)
    }

    fn priced() -> GatewayStatus {
        GatewayStatus {
            quota_per_unit: Some(500_000),
            quota_display_type: Some("USD".into()),
            usd_exchange_rate: Some(7.3),
            version: Some("v0.9.0".into()),
            no_price: None,
        }
    }

    fn syncs(dir: &tempfile::TempDir) -> Vec<(i64, String, Option<String>)> {
        let conn = rusqlite::Connection::open(dir.path().join("keys.db")).unwrap();
        let mut statement = conn
            .prepare("SELECT id, status, error FROM syncs ORDER BY id")
            .unwrap();
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn staged_pages_are_applied_on_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (status, counts) = runtime().block_on(async {
            let (writer, sync) = begun(&dir).await;
            assert_eq!(sync, 1);
            let mut sink = writer.sink();
            sink.stage(1, page(1, &[3, 2], 7)).await.unwrap();
            sink.stage(1, page(2, &[1], 7)).await.unwrap();
            let listing = Listing {
                pages: 2,
                keys_seen: 3,
                inconsistency: None,
                passes: 1,
                requests: Default::default(),
            };
            writer.apply(listing, priced()).await.unwrap()
        });
        assert_eq!(
            (status, counts.added, counts.removed),
            (SyncStatus::Ok, 3, 0)
        );
        assert_eq!(syncs(&dir), vec![(1, "ok".to_string(), None)]);
    }

    #[test]
    fn a_listing_that_failed_is_recorded_and_its_error_returned() {
        let dir = tempfile::tempdir().unwrap();
        let error = runtime().block_on(async {
            let (writer, _) = begun(&dir).await;
            writer.sink().stage(1, page(1, &[1], 7)).await.unwrap();
            writer.fail(Error::Api("page 2: HTTP 500".into())).await
        });
        assert!(
            matches!(&error, Error::Api(m) if m == "page 2: HTTP 500"),
            "{error:?}"
        );
        let failed = (
            1,
            "failed".to_string(),
            Some("page 2: HTTP 500".to_string()),
        );
        assert_eq!(syncs(&dir), vec![failed]);
    }

    #[test]
    fn a_stopped_listing_is_recorded_as_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let (writer, _) = begun(&dir).await;
            writer.sink().stage(1, page(1, &[1], 7)).await.unwrap();
            writer.interrupt().await.unwrap();
        });
        let interrupted = (1, "failed".to_string(), Some("interrupted".to_string()));
        assert_eq!(syncs(&dir), vec![interrupted]);
    }

    #[test]
    fn a_writer_error_stops_the_listing_at_page_1_and_is_the_one_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("keys.db")).unwrap();
        store
            .conn()
            .execute(
                "INSERT INTO account (id, user_id, bound_sync) VALUES (1, 7, 1)",
                [],
            )
            .unwrap();
        drop(store);
        let (staged, error) = runtime().block_on(async {
            let (mut writer, _) = begun(&dir).await;
            let staged = writer.sink().stage(1, page(1, &[1], 9)).await;
            // The writer has stopped on its own: it says so without being told the end.
            let error = writer.stopped().await;
            (staged, error)
        });
        assert!(
            matches!(&staged, Err(Error::Internal(m)) if m.contains("the writer stopped")),
            "{staged:?}"
        );
        let refusal = "this database holds the keys of user 7; this token lists user 9: use \
                       another --db or --profile";
        assert!(
            matches!(&error, Error::Usage(m) if m == refusal),
            "{error:?}"
        );
        assert_eq!(
            syncs(&dir),
            vec![(1, "failed".to_string(), Some(refusal.to_string()))]
        );
        let keys: i64 = rusqlite::Connection::open(dir.path().join("keys.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(keys, 0);
    }
}
