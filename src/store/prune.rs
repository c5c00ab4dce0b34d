//! Retention: deleting the history older than a cutoff without changing any kept state.
//!
//! Every sync from the oldest kept one, `K`, on is kept; `K` is the first sync that started at
//! or after the cutoff, but never later than the latest good sync (the current state stays
//! anchored to a sync) nor the newest sync (SQLite would otherwise hand a deleted id to the
//! next pull). Syncs before `K` are deleted, and so are the versions that ended at or before
//! `K`: none of them is valid at `K` or later. A version still valid at `K` stays, even though
//! its `valid_from_sync` may now name a deleted sync, so the state at every kept sync, and so
//! every diff between kept syncs, is exactly what it was. `keys` keeps one row per key ever
//! seen, as the schema promises. The use ledger loses the rows of the deleted syncs and of the
//! oldest good sync left, which becomes the first and so is never the end of an interval.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::points::SyncPoint;
use crate::error::{DbContext, Result};
use crate::store::Store;

/// The page cache a prune may use, in KiB as SQLite's negative `cache_size` takes it.
const PRUNE_CACHE_KIB: i64 = -128 * 1024;

/// What a prune deletes, or would delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrunePlan {
    /// The oldest sync that stays; `None` when there are no syncs at all.
    pub oldest_kept: Option<SyncPoint>,
    pub syncs: i64,
    pub versions: i64,
}

/// What pruning with `cutoff` (unix seconds) would delete, without deleting anything.
fn plan(conn: &Connection, cutoff: i64) -> Result<PrunePlan> {
    let context = "cannot plan the prune";
    let oldest_kept: Option<SyncPoint> = conn
        .query_row(
            "SELECT id, started_at FROM syncs WHERE id = (
                 SELECT min(k) FROM (
                     SELECT min(id) AS k FROM syncs WHERE started_at >= ?1
                     UNION ALL SELECT max(id) FROM good_syncs
                     UNION ALL SELECT max(id) FROM syncs))",
            [cutoff],
            |row| {
                Ok(SyncPoint {
                    id: row.get(0)?,
                    started_at: row.get(1)?,
                })
            },
        )
        .optional()
        .db(context)?;
    let Some(kept) = oldest_kept else {
        return Ok(PrunePlan {
            oldest_kept,
            syncs: 0,
            versions: 0,
        });
    };
    let count = |sql: &str| conn.query_row(sql, [kept.id], |row| row.get(0)).db(context);
    Ok(PrunePlan {
        oldest_kept,
        syncs: count("SELECT count(*) FROM syncs WHERE id < ?1")?,
        versions: count("SELECT count(*) FROM key_versions WHERE valid_to_sync <= ?1")?,
    })
}

/// Deletes what [`plan`] names, in one transaction. The caller holds the pull lock.
pub(super) fn prune(conn: &mut Connection, cutoff: i64) -> Result<PrunePlan> {
    let context = "cannot prune";
    // A prune deletes rows all over the history's indexes; with SQLite's default 2 MB cache it
    // rereads the same pages again and again. The cache only grows as far as it is used.
    conn.pragma_update(None, "cache_size", PRUNE_CACHE_KIB)
        .db(context)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db(context)?;
    let planned = plan(&tx, cutoff)?;
    if let Some(kept) = planned.oldest_kept {
        tx.execute(
            "DELETE FROM key_versions WHERE valid_to_sync <= ?1",
            [kept.id],
        )
        .db(context)?;
        tx.execute("DELETE FROM syncs WHERE id < ?1", [kept.id])
            .db(context)?;
        // The oldest good sync left becomes the first, which only opens the record: the use
        // attributed to it ran from a sync that is gone (migrations/V5__use_ledger.sql).
        tx.execute(
            "DELETE FROM use_ledger WHERE sync_id <= (SELECT min(id) FROM good_syncs)",
            [],
        )
        .db(context)?;
    }
    tx.commit().db(context)?;
    Ok(planned)
}

/// Rewrites the database so the pages freed by deletes go back to the disk; returns the bytes
/// the database files (with the WAL) took before and after.
fn vacuum(conn: &Connection, path: &Path) -> Result<(u64, u64)> {
    let before = super::database_bytes(path);
    conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
        .db("cannot vacuum the database")?;
    Ok((before, super::database_bytes(path)))
}

impl Store {
    /// What pruning at `cutoff` would delete, deleting nothing.
    pub(crate) fn prune_plan(&self, cutoff: i64) -> Result<PrunePlan> {
        plan(self.conn(), cutoff)
    }

    /// Deletes the history before `cutoff` (the caller holds the pull lock).
    pub(crate) fn prune(&mut self, cutoff: i64) -> Result<PrunePlan> {
        prune(self.conn_mut(), cutoff)
    }

    /// Rewrites the file to give freed space back; returns its size before and after.
    pub(crate) fn vacuum(&self) -> Result<(u64, u64)> {
        vacuum(self.conn(), self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrated_in_memory;

    /// Key 1 changes at every sync 1..=4; key 2 lives 1..3 and is removed at 3; key 3 is added
    /// at 4. Sync 3 failed, so no version names it; syncs start an hour apart.
    fn history() -> Connection {
        let conn = migrated_in_memory();
        conn.execute_batch(
            "INSERT INTO syncs (id, started_at, status, base_url) VALUES
                 (1, 3600, 'ok', 'x'), (2, 7200, 'ok', 'x'), (3, 10800, 'failed', 'x'),
                 (4, 14400, 'ok', 'x'), (5, 18000, 'partial', 'x');
             INSERT INTO key_versions (key_id, valid_from_sync, valid_to_sync) VALUES
                 (1, 1, 2), (1, 2, 4), (1, 4, NULL), (2, 1, 4), (3, 4, NULL);",
        )
        .unwrap();
        conn
    }

    fn kept(id: i64) -> Option<SyncPoint> {
        Some(SyncPoint {
            id,
            started_at: 3600 * id,
        })
    }

    #[test]
    fn keeps_every_version_valid_at_the_oldest_kept_sync() {
        let mut conn = history();
        let planned = plan(&conn, 7200).unwrap();
        assert_eq!(
            planned,
            PrunePlan {
                oldest_kept: kept(2),
                syncs: 1,
                versions: 1
            }
        );
        assert_eq!(prune(&mut conn, 7200).unwrap(), planned);
        let left: Vec<(i64, i64)> = conn
            .prepare("SELECT key_id, valid_from_sync FROM key_versions ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, vec![(1, 2), (1, 4), (2, 1), (3, 4)]);
    }

    #[test]
    fn never_prunes_the_latest_good_sync_or_the_newest_sync() {
        let conn = history();
        assert_eq!(plan(&conn, 10_000_000).unwrap().oldest_kept, kept(5));
        conn.execute("UPDATE syncs SET status = 'failed' WHERE id = 5", [])
            .unwrap();
        let planned = plan(&conn, 10_000_000).unwrap();
        assert_eq!(planned.oldest_kept, kept(4));
        assert_eq!((planned.syncs, planned.versions), (3, 3));
    }

    #[test]
    fn nothing_to_prune_is_a_plan_of_nothing() {
        let conn = history();
        let planned = plan(&conn, 0).unwrap();
        assert_eq!(
            (planned.oldest_kept, planned.syncs, planned.versions),
            (kept(1), 0, 0)
        );
        conn.execute_batch("DELETE FROM syncs").unwrap();
        assert_eq!(plan(&conn, 0).unwrap().oldest_kept, None);
    }
}
