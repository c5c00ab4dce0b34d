//! The journal a pull writes through.
//!
//! The write-ahead log is emptied when a pull ends, so that what the pull replaced leaves the
//! disk: full key values a `--store-secrets` pull stored and a later pull cleared would
//! otherwise stay in the database file's old pages or the `-wal` file until SQLite happens to
//! checkpoint. It also keeps the `-wal` empty between pulls, which makes the `immutable` open of
//! read-only media (see [`crate::store::open_read_only`]) see every sync.
//!
//! A database's first keys are written through a rollback journal instead ([`BulkJournal`]).

use std::time::Duration;

use rusqlite::Connection;

use crate::error::{DbContext, Result};
use crate::store::{BUSY_TIMEOUT, Store, use_wal};

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

/// `PRAGMA main.wal_checkpoint(TRUNCATE)`, which waits (through SQLite's busy handler, for up to
/// [`READER_WAIT`]) until the readers have let go of the log. It blocks its thread: a pull runs
/// it on its writer thread, never on the async runtime. Only `main` has a log; asking every
/// database would also ask the pull's TEMP one, which refuses (`SQLITE_LOCKED`) once `main`
/// has been through a [`BulkJournal`].
fn truncate(conn: &Connection) -> Result<bool> {
    let context = "cannot empty the write-ahead log";
    conn.busy_timeout(READER_WAIT).db(context)?;
    let busy: i64 = conn
        .query_row("PRAGMA main.wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
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

/// A database's first keys, written through a rollback journal. Every page they fill is new,
/// and new pages need no journal: each is written once, into the file. Through the WAL each
/// would be written into the log, then copied into the file by the checkpoint that empties it,
/// with one more sync of the whole log (at 100,000 keys about 40 MB, a quarter of the apply).
///
/// Leaving WAL needs the file to itself: when another connection has it open (a reader), the
/// switch is not waited for and the pull writes through the WAL as always. While the journal is
/// in use, a reader that opens the file waits for the pull's transaction (seconds at most; there
/// was nothing to read yet). Dropping this goes back to WAL, whatever happened in between.
pub(crate) struct BulkJournal<'c> {
    conn: &'c Connection,
}

impl<'c> BulkJournal<'c> {
    /// Switches `conn`'s file to a rollback journal, synced in full (so that a power loss can
    /// only lose the transaction, as in WAL); `None` when it stays in WAL.
    pub(crate) fn begin(conn: &'c Connection) -> Option<BulkJournal<'c>> {
        conn.busy_timeout(Duration::ZERO).ok()?;
        let mode: rusqlite::Result<String> =
            conn.query_row("PRAGMA main.journal_mode = DELETE", [], |row| row.get(0));
        let _ = conn.busy_timeout(BUSY_TIMEOUT);
        if !matches!(mode, Ok(mode) if mode.eq_ignore_ascii_case("delete")) {
            tracing::debug!("another connection has the database open: writing through the WAL");
            return None;
        }
        let journal = BulkJournal { conn };
        // Should this fail, `journal` is dropped, which goes back to WAL.
        conn.pragma_update(Some("main"), "synchronous", "FULL")
            .ok()?;
        Some(journal)
    }
}

impl Drop for BulkJournal<'_> {
    fn drop(&mut self) {
        if let Err(error) = use_wal(self.conn) {
            // The next opening of the file switches it back.
            tracing::warn!("cannot switch the database back to its write-ahead log: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn journal_mode(conn: &Connection) -> String {
        conn.query_row("PRAGMA main.journal_mode", [], |row| row.get(0))
            .unwrap()
    }

    fn keys(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM keys", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn first_keys_go_through_a_rollback_journal_and_the_file_goes_back_to_wal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.db")).unwrap();
        let conn = store.conn();
        // The staging tables of a pull: the TEMP database made the log's truncation fail
        // (SQLITE_LOCKED) once `main` had changed journal modes.
        conn.execute_batch("CREATE TEMP TABLE staged (id)").unwrap();
        let journal = BulkJournal::begin(conn).expect("alone on the file");
        assert_eq!(journal_mode(conn), "delete");
        let synchronous: i64 = conn
            .query_row("PRAGMA main.synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL while the rollback journal is in use");
        conn.execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO keys (id, first_seen_sync) VALUES (1, 1); COMMIT;",
        )
        .unwrap();
        drop(journal);
        assert_eq!(journal_mode(conn), "wal");
        let synchronous: i64 = conn
            .query_row("PRAGMA main.synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL again");
        assert!(truncate(conn).unwrap(), "the log can be emptied");
        assert_eq!(keys(conn), 1);
    }

    #[test]
    fn a_reader_keeps_the_file_in_wal_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let store = Store::open(&path).unwrap();
        let reader = Connection::open(&path).unwrap();
        assert_eq!(keys(&reader), 0);
        let started = Instant::now();
        assert!(BulkJournal::begin(store.conn()).is_none());
        assert!(
            started.elapsed() < BUSY_TIMEOUT / 2,
            "the switch is tried, not waited for"
        );
        assert_eq!(journal_mode(store.conn()), "wal");
        store
            .conn()
            .execute("INSERT INTO keys (id, first_seen_sync) VALUES (1, 1)", [])
            .unwrap();
        assert_eq!(keys(&reader), 1, "the reader reads on through the WAL");
    }

    #[test]
    fn a_transaction_that_fails_leaves_the_file_as_it_was_and_in_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        {
            let store = Store::open(&path).unwrap();
            let conn = store.conn();
            let _journal = BulkJournal::begin(conn).unwrap();
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )
            .unwrap();
            tx.execute("INSERT INTO keys (id, first_seen_sync) VALUES (1, 1)", [])
                .unwrap();
            // Dropped without a commit: rolled back, then the journal goes back to WAL.
        }
        let conn = Connection::open(&path).unwrap();
        assert_eq!(journal_mode(&conn), "wal");
        assert_eq!(keys(&conn), 0);
    }
}
