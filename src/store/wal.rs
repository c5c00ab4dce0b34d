//! Emptying the write-ahead log when a pull ends, so that what the pull replaced leaves the
//! disk: full key values a `--store-secrets` pull stored and a later pull cleared would
//! otherwise stay in the database file's old pages or the `-wal` file until SQLite happens to
//! checkpoint. It also keeps the `-wal` empty between pulls, which makes the `immutable` open of
//! read-only media (see [`crate::store::open_read_only`]) see every sync.

use std::time::Duration;

use rusqlite::Connection;

use crate::error::{DbContext, Result};
use crate::store::{BUSY_TIMEOUT, Store};

/// How long a checkpoint waits for a reader that holds an old snapshot. Readers of a keysync
/// database hold their snapshot for one query, so two seconds is plenty; a reader that holds one
/// longer (a shell left in a transaction) is warned about instead of waited for.
const READER_WAIT: Duration = Duration::from_secs(2);

/// Checkpoints and truncates the write-ahead log, waiting a while for a reader that holds an old
/// snapshot. Warns when that reader keeps full key values this pull cleared (`secrets_cleared`
/// of them) on disk. Never fails the pull: its result is already recorded.
fn settle(conn: &Connection, secrets_cleared: usize) {
    match truncate(conn) {
        Ok(true) => {}
        Ok(false) if secrets_cleared > 0 => tracing::warn!(
            "a program reading the database holds an old snapshot of it, so the {secrets_cleared} \
             full key values this pull cleared stay on disk (in the database file or its -wal) \
             until it closes the database; the next pull after that removes them"
        ),
        Ok(false) => tracing::info!(
            "the write-ahead log was not emptied: a program reading the database holds an old \
             snapshot; the next pull empties it"
        ),
        Err(error) => tracing::warn!("{error}"),
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`, which waits (through SQLite's busy handler, for up to
/// [`READER_WAIT`]) until the readers have let go of the log. It blocks its thread: a pull runs
/// it on its writer thread, never on the async runtime.
fn truncate(conn: &Connection) -> Result<bool> {
    let context = "cannot empty the write-ahead log";
    conn.busy_timeout(READER_WAIT).db(context)?;
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .db(context)?;
    conn.busy_timeout(BUSY_TIMEOUT).db(context)?;
    Ok(busy == 0)
}

impl Store {
    /// [`settle`]s the WAL of this store's file after a pull.
    pub(crate) fn settle_wal(&self, secrets_cleared: usize) {
        settle(self.conn(), secrets_cleared);
    }
}
