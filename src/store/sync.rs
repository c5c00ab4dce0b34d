//! What one pull writes: its `syncs` row, the listed keys staged as they arrive, and the
//! staged listing applied to `keys` and `key_versions` in one transaction.
//!
//! The `syncs` row is committed on its own before the listing starts, so that a failed or
//! killed pull still leaves a trace. Pages are staged into a TEMP table (never the database
//! file, and gone with the connection), so memory stays flat however large the account. Then
//! [`apply_listing`] compares the staged keys with the stored ones in set-based SQL (one join,
//! no query per key) and writes every change, the removals and the finished sync row in a
//! single IMMEDIATE transaction: the snapshot and its sync row change together or not at all.

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, TransactionBehavior, params, params_from_iter};
use serde::Serialize;

use crate::api::model::{DATA_COLUMNS, same_extra};
use crate::api::{Listing, Page, PageSink};
use crate::error::{DbContext, Result};
use crate::store::quoted_columns;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    Running,
    Ok,
    Partial,
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Running => "running",
            SyncStatus::Ok => "ok",
            SyncStatus::Partial => "partial",
            SyncStatus::Failed => "failed",
        }
    }
}

/// What applying one listing did, in keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

/// Records the start of a pull and returns its sync id. Any `running` row left by a process
/// that died is closed as failed first: the caller holds the pull lock, so none is alive.
pub fn begin_sync(conn: &Connection, base_url: &str, now: i64) -> Result<i64> {
    let context = "cannot record the start of the sync";
    conn.execute(
        "UPDATE syncs SET status = 'failed', finished_at = ?1,
                error = 'interrupted: the process ended before the sync finished'
         WHERE status = 'running'",
        [now],
    )
    .db(context)?;
    conn.execute(
        "INSERT INTO syncs (started_at, status, base_url) VALUES (?1, 'running', ?2)",
        params![now, base_url],
    )
    .db(context)?;
    Ok(conn.last_insert_rowid())
}

/// Marks a sync failed, keeping the error text. Nothing else is touched.
pub fn fail_sync(conn: &Connection, sync: i64, now: i64, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE syncs SET status = 'failed', finished_at = ?2, error = ?3 WHERE id = ?1",
        params![sync, now, error],
    )
    .db("cannot record the failure of the sync")?;
    Ok(())
}

/// The listed keys of this pull, in `temp.staged`: one row per id, the latest observation.
pub struct Staging<'c> {
    conn: &'c Connection,
    insert_sql: String,
    store_secrets: bool,
}

impl<'c> Staging<'c> {
    /// Creates an empty staging table. Its columns have no type, so values keep exactly the
    /// type they were bound with. The secret is staged only when it is to be stored.
    pub fn new(conn: &'c Connection, store_secrets: bool) -> Result<Staging<'c>> {
        let context = "cannot create the staging table";
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.staged;
             CREATE TEMP TABLE staged (id INTEGER PRIMARY KEY, pass, secret, {});",
            quoted_columns("")
        ))
        .db(context)?;
        let placeholders = vec!["?"; DATA_COLUMNS.len() + 3].join(", ");
        Ok(Staging {
            conn,
            insert_sql: format!(
                "INSERT OR REPLACE INTO temp.staged (id, pass, secret, {}) VALUES ({placeholders})",
                quoted_columns("")
            ),
            store_secrets,
        })
    }
}

impl PageSink for Staging<'_> {
    fn stage(&mut self, pass: u32, page: Page) -> Result<()> {
        let context = "cannot stage a page of keys";
        let tx = self.conn.unchecked_transaction().db(context)?;
        {
            let mut insert = tx.prepare_cached(&self.insert_sql).db(context)?;
            for item in page.items {
                let secret = item.secret.filter(|_| self.store_secrets);
                let head = [
                    Value::Integer(item.id),
                    Value::from(pass),
                    Value::from(secret),
                ];
                insert
                    .execute(params_from_iter(head.iter().chain(&item.values)))
                    .db(context)?;
            }
        }
        tx.commit().db(context)
    }
}

/// Applies the staged listing as sync `sync` and finishes its row, all in one transaction.
pub fn apply_listing(
    conn: &mut Connection,
    sync: i64,
    listing: &Listing,
    store_secrets: bool,
    now: i64,
) -> Result<(SyncStatus, ApplyCounts)> {
    register_same_extra(conn)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db("cannot start the write transaction")?;
    if listing.consistent() {
        // Only the consistent pass counts: earlier passes may hold keys deleted since.
        tx.execute("DELETE FROM temp.staged WHERE pass <> ?1", [listing.passes])
            .db("cannot select the consistent pass")?;
    }
    keep_hashes_of_masked_keys(&tx)?;
    classify(&tx, listing.consistent())?;
    write_changes(&tx, sync)?;
    write_secrets(&tx, store_secrets)?;
    let counts = count_changes(&tx)?;
    let status = if listing.consistent() {
        SyncStatus::Ok
    } else {
        SyncStatus::Partial
    };
    finish_sync(&tx, sync, status, listing, counts, now)?;
    tx.commit().db("cannot commit the sync")?;
    Ok((status, counts))
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
fn register_same_extra(conn: &Connection) -> Result<()> {
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
/// the changed columns, and, for a consistent listing only, `removed`.
fn classify(tx: &Transaction<'_>, consistent: bool) -> Result<()> {
    let context = "cannot compare the listing with the stored keys";
    let differing = DATA_COLUMNS
        .map(|c| {
            let same = match c {
                "extra" => "s.extra IS k.extra OR same_extra(s.extra, k.extra)".to_string(),
                _ => format!("s.\"{c}\" IS k.\"{c}\""),
            };
            format!("CASE WHEN {same} THEN '' ELSE ',\"{c}\"' END")
        })
        .join(" || ");
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.delta;
         CREATE TEMP TABLE delta (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, changed TEXT);
         INSERT INTO temp.delta (id, kind, changed)
         SELECT id, kind, changed FROM (
             SELECT s.id AS id,
                    CASE WHEN k.id IS NULL THEN 'added'
                         WHEN k.removed_sync IS NOT NULL THEN 'restored'
                         ELSE 'changed' END AS kind,
                    CASE WHEN k.id IS NULL THEN '[]'
                         ELSE '[' || ltrim({differing}, ',') || ']' END AS changed
             FROM temp.staged s LEFT JOIN main.keys k ON k.id = s.id)
         WHERE kind <> 'changed' OR changed <> '[]';"
    ))
    .db(context)?;
    if consistent {
        tx.execute(
            "INSERT INTO temp.delta (id, kind)
             SELECT id, 'removed' FROM main.keys
             WHERE removed_sync IS NULL AND id NOT IN (SELECT id FROM temp.staged)",
            [],
        )
        .db(context)?;
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
    let statements = [
        "UPDATE main.key_versions SET valid_to_sync = ?1
         WHERE valid_to_sync IS NULL
           AND key_id IN (SELECT id FROM temp.delta WHERE kind IN ('changed', 'removed'))"
            .to_string(),
        "UPDATE main.keys SET removed_sync = ?1
         WHERE id IN (SELECT id FROM temp.delta WHERE kind = 'removed')"
            .to_string(),
        format!(
            "INSERT INTO main.keys (id, first_seen_sync, {plain})
             SELECT s.id, ?1, {staged} FROM temp.staged s JOIN temp.delta d ON d.id = s.id
             WHERE d.kind = 'added'"
        ),
        format!(
            "UPDATE main.keys SET {assignments}, removed_sync = NULL
             FROM (SELECT s.* FROM temp.staged s JOIN temp.delta d ON d.id = s.id
                   WHERE d.kind IN ('changed', 'restored')) AS s
             WHERE s.id = main.keys.id"
        ),
        format!(
            "INSERT INTO main.key_versions (key_id, valid_from_sync, changed, {plain})
             SELECT s.id, ?1, d.changed, {staged} FROM temp.staged s JOIN temp.delta d ON d.id = s.id
             WHERE d.kind IN ('added', 'changed', 'restored')"
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
/// that `key` never holds a value the key no longer has.
fn write_secrets(tx: &Transaction<'_>, store_secrets: bool) -> Result<()> {
    let statements: &[&str] = if store_secrets {
        &[
            "UPDATE main.keys SET key = s.secret FROM temp.staged s
             WHERE s.id = main.keys.id AND s.secret IS NOT NULL AND main.keys.key IS NOT s.secret",
            "UPDATE main.keys SET key = NULL WHERE key IS NOT NULL AND key_sha256 IS NULL",
        ]
    } else {
        &["UPDATE main.keys SET key = NULL WHERE key IS NOT NULL"]
    };
    for sql in statements {
        tx.execute(sql, []).db("cannot update stored key values")?;
    }
    Ok(())
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
    })
}

fn finish_sync(
    tx: &Transaction<'_>,
    sync: i64,
    status: SyncStatus,
    listing: &Listing,
    counts: ApplyCounts,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE syncs SET status = ?2, finished_at = ?3, pages = ?4, keys_seen = ?5, added = ?6,
                changed = ?7, removed = ?8, error = NULL
         WHERE id = ?1",
        params![
            sync,
            status.as_str(),
            now,
            listing.pages,
            listing.keys_seen as i64,
            counts.added as i64,
            counts.changed as i64,
            counts.removed as i64
        ],
    )
    .db("cannot finish the sync row")?;
    Ok(())
}
