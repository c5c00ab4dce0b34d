//! The staged listing applied in one transaction: compared with the stored keys in set-based
//! SQL (`temp.delta`), then the changes, removals, digests, account and key values written,
//! and the sync row finished with them.

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::account::{bind_account, bind_first_account};
use super::ledger::{write_first_ledger, write_ledger};
use super::row::{finish_sync, record_gateway, refuse_if_overtaken};
use super::{ApplyCounts, Staging, SyncStatus};
use crate::api::model::{COLUMNS, ColumnSource, DATA_COLUMNS, DataColumn, same_extra};
use crate::api::{GatewayStatus, Listing};
use crate::error::{DbContext, Result};
use crate::store::quoted_columns;
use crate::store::wal::BulkJournal;

impl Staging<'_> {
    /// Applies the listing as this pull's sync and finishes its row, with what the gateway
    /// published (its price), in the pull's one transaction: the snapshot and its sync row
    /// change together or not at all.
    pub fn apply(
        self,
        listing: &Listing,
        gateway: &GatewayStatus,
        now: i64,
    ) -> Result<(SyncStatus, ApplyCounts)> {
        // Declared before the transaction, so dropped after it has ended (a journal mode cannot
        // change inside one).
        let _journal = match self.first_keys {
            true => BulkJournal::begin(self.conn),
            false => None,
        };
        let tx = Transaction::new_unchecked(self.conn, TransactionBehavior::Immediate)
            .db("cannot start the write transaction")?;
        #[cfg(feature = "test-support")]
        let crash = CrashForTests::arm(&tx);
        let sync = self.sync;
        refuse_if_overtaken(&tx, sync)?;
        tracing::info!(
            "sync {sync}: {} listed items known unchanged, {} read",
            self.items_known,
            self.items_read
        );
        let earlier_pass_dropped = drop_earlier_passes(&tx, listing, self.first_staged_pass)?;
        let counts = self.write_keys(&tx, listing, earlier_pass_dropped)?;
        let status = if listing.consistent() {
            SyncStatus::Ok
        } else {
            SyncStatus::Partial
        };
        finish_sync(&tx, sync, status, listing, counts, now)?;
        record_gateway(&tx, sync, gateway)?;
        #[cfg(feature = "test-support")]
        crash.kill();
        tx.commit().db("cannot commit the sync")?;
        Ok((status, counts))
    }

    /// Writes the staged listing over the stored keys: the changes (or a database's first
    /// keys), the removals, the digests, the account a first listing binds, and the key values.
    /// Everything the pull writes but its sync row.
    fn write_keys(
        self,
        tx: &Transaction<'_>,
        listing: &Listing,
        earlier_pass_dropped: bool,
    ) -> Result<ApplyCounts> {
        let sync = self.sync;
        let counts = match self.first_keys {
            true => write_first_keys(tx, sync)?,
            false => {
                let removed = match listing.consistent() {
                    true => self.stored.unlisted(listing.passes),
                    false => Vec::new(),
                };
                keep_hashes_of_masked_keys(tx)?;
                classify(tx, &removed)?;
                write_changes(tx, sync)?;
                count_changes(tx)?
            }
        };
        write_digests(tx)?;
        match (self.account, self.tally) {
            (Some(_), _) => {}
            (None, Some(tally)) => bind_first_account(tx, sync, tally, earlier_pass_dropped)?,
            (None, None) => bind_account(tx, sync)?,
        }
        let secrets_cleared = write_secrets(tx, self.store_secrets)?;
        Ok(ApplyCounts {
            secrets_cleared,
            ..counts
        })
    }
}

/// Leaves only the last pass staged when it is consistent and an earlier one staged keys:
/// earlier passes may hold keys deleted since. Returns whether it dropped any.
fn drop_earlier_passes(
    tx: &Transaction<'_>,
    listing: &Listing,
    first_staged_pass: Option<u32>,
) -> Result<bool> {
    let dropped = listing.consistent() && first_staged_pass.is_some_and(|p| p < listing.passes);
    if dropped {
        tx.execute_batch(&format!(
            "DELETE FROM temp.staged WHERE pass <> {pass};
             DELETE FROM temp.staged_digests WHERE pass <> {pass};",
            pass = listing.passes
        ))
        .db("cannot select the consistent pass")?;
    }
    Ok(dropped)
}

/// Keeps the digest of every item staged: the one its key's row now stands for, changed or
/// not.
fn write_digests(tx: &Transaction<'_>) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO main.key_digests (key_id, digest)
         SELECT -neg, digest FROM temp.staged_digests ORDER BY neg DESC",
        [],
    )
    .db("cannot record the digests of the listed keys")?;
    Ok(())
}

/// The first keys of a database: every staged key is new, so none is compared, and each gets
/// its row and its first version, written in id order (appended, the cheap way for SQLite),
/// and its use in the ledger ([`write_first_ledger`]).
fn write_first_keys(tx: &Transaction<'_>, sync: i64) -> Result<ApplyCounts> {
    let context = "cannot write the first keys";
    let plain = quoted_columns("");
    let added = tx
        .execute(
            &format!(
                "INSERT INTO main.keys (id, first_seen_sync, {plain})
                 SELECT id, ?1, {plain} FROM temp.staged ORDER BY neg DESC"
            ),
            [sync],
        )
        .db(context)?;
    tx.execute(
        &format!(
            "INSERT INTO main.key_versions (key_id, valid_from_sync, changed, {plain})
             SELECT id, ?1, '[]', {plain} FROM temp.staged ORDER BY neg DESC"
        ),
        [sync],
    )
    .db(context)?;
    write_first_ledger(tx, sync)?;
    Ok(ApplyCounts {
        added,
        ..ApplyCounts::default()
    })
}

/// A gateway that starts masking keys (a 2026 upgrade) sends `abcd**********wxyz` where it sent
/// the full key. When that masked value equals the stored `key_hint`, it is the same key shown
/// differently: the staged row keeps the stored `key_sha256`, so no change is recorded. A masked
/// value that differs from the hint is a rotation, and stays a change (its hash unknown, NULL).
fn keep_hashes_of_masked_keys(tx: &Transaction<'_>) -> Result<()> {
    tx.execute(
        "UPDATE temp.staged SET key_sha256 = k.key_sha256
         FROM main.keys AS k
         WHERE k.id = staged.id AND staged.key_sha256 IS NULL
           AND instr(staged.key_hint, '*') > 0 AND staged.key_hint = k.key_hint",
        [],
    )
    .db("cannot compare masked keys with the stored hints")?;
    Ok(())
}

/// `same_extra(a, b)` in SQL: [`same_extra`], so that `extra` differing only by fields that
/// are `null` on one side and absent on the other is no change.
pub(super) fn register_same_extra(conn: &Connection) -> Result<()> {
    conn.create_scalar_function(
        "same_extra",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let a: Option<String> = ctx.get(0)?;
            let b: Option<String> = ctx.get(1)?;
            Ok(same_extra(a.as_deref(), b.as_deref()))
        },
    )
    .db("cannot register the same_extra function")
}

/// Fills `temp.delta` with every key this sync changes: `added` (new), `restored` (back after
/// a removal), `changed` (data differ, NULL-safely, from the stored state) with the names of
/// the changed columns, and `removed` (the live keys a consistent listing did not list).
fn classify(tx: &Transaction<'_>, removed: &[i64]) -> Result<()> {
    let context = "cannot compare the listing with the stored keys";
    let differing = COLUMNS
        .map(
            |DataColumn {
                 name: c, source, ..
             }| {
                let same = match source {
                    ColumnSource::Extra => {
                        format!("s.\"{c}\" IS k.\"{c}\" OR same_extra(s.\"{c}\", k.\"{c}\")")
                    }
                    _ => format!("s.\"{c}\" IS k.\"{c}\""),
                };
                format!("CASE WHEN {same} THEN '' ELSE ',\"{c}\"' END")
            },
        )
        .join(" || ");
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.delta;
         CREATE TEMP TABLE delta (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, changed TEXT);
         INSERT INTO temp.delta (id, kind, changed)
         SELECT id, kind, changed FROM (
             SELECT s.id AS id, s.neg AS neg,
                    CASE WHEN k.id IS NULL THEN 'added'
                         WHEN k.removed_sync IS NOT NULL THEN 'restored'
                         ELSE 'changed' END AS kind,
                    CASE WHEN k.id IS NULL THEN '[]'
                         ELSE '[' || ltrim({differing}, ',') || ']' END AS changed
             FROM temp.staged s LEFT JOIN main.keys k ON k.id = s.id)
         WHERE kind <> 'changed' OR changed <> '[]'
         ORDER BY neg DESC;"
    ))
    .db(context)?;
    let mut insert = tx
        .prepare("INSERT INTO temp.delta (id, kind) VALUES (?1, 'removed')")
        .db(context)?;
    for id in removed {
        insert.execute([id]).db(context)?;
    }
    Ok(())
}

/// Closes the versions that end at this sync, then writes the new state and opens a version
/// for every added, restored or changed key. Each statement touches only `temp.delta`'s keys.
fn write_changes(tx: &Transaction<'_>, sync: i64) -> Result<()> {
    let (plain, staged) = (quoted_columns(""), quoted_columns("s."));
    let assignments = DATA_COLUMNS
        .map(|c| format!("\"{c}\" = s.\"{c}\""))
        .join(", ");
    // Before `keys` takes the new state: a changed key's row there is its state at A.
    write_ledger(tx, sync)?;
    let statements = [
        "UPDATE main.key_versions SET valid_to_sync = ?1
         WHERE valid_to_sync IS NULL
           AND key_id IN (SELECT id FROM temp.delta WHERE kind IN ('changed', 'removed'))"
            .to_string(),
        "UPDATE main.keys SET removed_sync = ?1
         WHERE id IN (SELECT id FROM temp.delta WHERE kind = 'removed')"
            .to_string(),
        "DELETE FROM main.key_digests
         WHERE key_id IN (SELECT id FROM temp.delta WHERE kind = 'removed')"
            .to_string(),
        format!(
            "INSERT INTO main.keys (id, first_seen_sync, {plain})
             SELECT s.id, ?1, {staged} FROM temp.delta d JOIN temp.staged s ON s.neg = -d.id
             WHERE d.kind = 'added' ORDER BY d.id"
        ),
        format!(
            "UPDATE main.keys SET {assignments}, removed_sync = NULL
             FROM (SELECT s.* FROM temp.delta d JOIN temp.staged s ON s.neg = -d.id
                   WHERE d.kind IN ('changed', 'restored')) AS s
             WHERE s.id = main.keys.id"
        ),
        format!(
            "INSERT INTO main.key_versions (key_id, valid_from_sync, changed, {plain})
             SELECT s.id, ?1, d.changed, {staged} FROM temp.delta d JOIN temp.staged s ON s.neg = -d.id
             WHERE d.kind IN ('added', 'changed', 'restored') ORDER BY d.id"
        ),
    ];
    for sql in statements {
        let mut statement = tx.prepare(&sql).db("cannot write the changes")?;
        let uses_sync = statement.parameter_count() == 1;
        let done = if uses_sync {
            statement.execute([sync])
        } else {
            statement.execute([])
        };
        done.db("cannot write the changes")?;
    }
    Ok(())
}

/// Full key values are kept only by a pull that opts in; any other pull clears them. A stored
/// value is also dropped once its key's hash is unknown (rotated behind upstream masking), so
/// that `key` never holds a value the key no longer has. Returns how many stored values it
/// cleared.
fn write_secrets(tx: &Transaction<'_>, store_secrets: bool) -> Result<usize> {
    let context = "cannot update stored key values";
    if !store_secrets {
        return tx
            .execute("UPDATE main.keys SET key = NULL WHERE key IS NOT NULL", [])
            .db(context);
    }
    tx.execute(
        "UPDATE main.keys SET key = s.secret FROM temp.staged s
         WHERE s.id = main.keys.id AND s.secret IS NOT NULL AND main.keys.key IS NOT s.secret",
        [],
    )
    .db(context)?;
    tx.execute(
        "UPDATE main.keys SET key = NULL WHERE key IS NOT NULL AND key_sha256 IS NULL",
        [],
    )
    .db(context)
}

fn count_changes(tx: &Transaction<'_>) -> Result<ApplyCounts> {
    let count = |kinds: &str| -> Result<usize> {
        let sql = format!("SELECT count(*) FROM temp.delta WHERE kind IN ({kinds})");
        let n: i64 = tx
            .query_row(&sql, [], |row| row.get(0))
            .db("cannot count the changes")?;
        Ok(n as usize)
    };
    Ok(ApplyCounts {
        added: count("'added', 'restored'")?,
        changed: count("'changed'")?,
        removed: count("'removed'")?,
        secrets_cleared: 0,
    })
}

/// Test support only: `KEYSYNC_DEBUG_KILL_BEFORE_COMMIT=1` makes a pull SIGKILL itself with
/// its one transaction written but not committed, as `kill -9` at the final write would. The
/// page cache is made small first, so that the writes spill into the file as a large account's
/// do: a first pull's rollback journal (`BulkJournal`) is then left hot beside the file, for the
/// tests of what readers say about it. A build with default features has no such switch.
#[cfg(feature = "test-support")]
struct CrashForTests(bool);

#[cfg(feature = "test-support")]
impl CrashForTests {
    fn arm(conn: &Connection) -> CrashForTests {
        let armed = std::env::var_os("KEYSYNC_DEBUG_KILL_BEFORE_COMMIT").is_some();
        if armed {
            conn.pragma_update(Some("main"), "cache_size", 8)
                .expect("the cache size is set");
        }
        CrashForTests(armed)
    }

    fn kill(&self) {
        if self.0 {
            // SAFETY: getpid and kill have no preconditions; SIGKILL ends the process here.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}
