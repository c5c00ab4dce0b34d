//! What one pull writes: its `syncs` row, and the listing applied to `keys` and
//! `key_versions` in one transaction.
//!
//! The `syncs` row is committed on its own before the listing is fetched, so that a failed or
//! killed pull still leaves a trace; everything else is written by [`apply_listing`] in a single
//! IMMEDIATE transaction that also finishes the row, so the snapshot and its sync row change
//! together or not at all.

use std::collections::{HashMap, HashSet};

use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, TransactionBehavior, params, params_from_iter};
use serde::Serialize;

use crate::api::model::DATA_COLUMNS;
use crate::api::{KeyRecord, Listing};
use crate::error::{DbContext, Result};

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

/// The stored current state of one key, as far as change detection needs it.
struct StoredKey {
    values: Vec<Value>,
    removed: bool,
    secret: Option<String>,
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

/// Applies a listing as sync `sync` and finishes its row, all in one transaction.
pub fn apply_listing(
    conn: &mut Connection,
    sync: i64,
    listing: &Listing,
    store_secrets: bool,
    now: i64,
) -> Result<(SyncStatus, ApplyCounts)> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db("cannot start the write transaction")?;
    let stored = load_current(&tx)?;
    let writer = VersionWriter::new(&tx, sync);
    let mut counts = ApplyCounts::default();
    for record in listing.keys.values() {
        match stored.get(&record.id) {
            None => {
                writer.insert_key(record)?;
                counts.added += 1;
            }
            Some(current) if current.removed => {
                writer.restore_key(record, &current.values)?;
                counts.added += 1;
            }
            Some(current) => {
                if writer.update_key(record, &current.values)? {
                    counts.changed += 1;
                }
            }
        }
        let stored_secret = stored.get(&record.id).and_then(|s| s.secret.as_ref());
        if store_secrets && record.secret.is_some() && stored_secret != record.secret.as_ref() {
            writer.set_secret(record.id, record.secret.as_deref())?;
        }
    }
    if !store_secrets {
        tx.execute("UPDATE keys SET key = NULL WHERE key IS NOT NULL", [])
            .db("cannot clear stored key values")?;
    }
    if listing.consistent {
        let listed: HashSet<i64> = listing.keys.keys().copied().collect();
        for (id, _) in stored
            .iter()
            .filter(|(id, s)| !s.removed && !listed.contains(id))
        {
            writer.remove_key(*id)?;
            counts.removed += 1;
        }
    }
    let status = if listing.consistent {
        SyncStatus::Ok
    } else {
        SyncStatus::Partial
    };
    finish_sync(&tx, sync, status, listing, counts, now)?;
    tx.commit().db("cannot commit the sync")?;
    Ok((status, counts))
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

/// One query for the whole current state: no per-key lookups.
fn load_current(tx: &Transaction<'_>) -> Result<HashMap<i64, StoredKey>> {
    let sql = format!(
        "SELECT id, removed_sync IS NOT NULL, key, {} FROM keys",
        column_list()
    );
    let context = "cannot read the current keys";
    let mut statement = tx.prepare(&sql).db(context)?;
    let mut rows = statement.query([]).db(context)?;
    let mut stored = HashMap::new();
    while let Some(row) = rows.next().db(context)? {
        let values = (0..DATA_COLUMNS.len())
            .map(|i| row.get::<_, Value>(i + 3))
            .collect::<rusqlite::Result<Vec<_>>>()
            .db(context)?;
        let key = StoredKey {
            removed: row.get(1).db(context)?,
            secret: row.get(2).db(context)?,
            values,
        };
        stored.insert(row.get(0).db(context)?, key);
    }
    Ok(stored)
}

/// `"user_id", "name", ...`: the data columns, quoted.
fn column_list() -> String {
    super::quoted_columns("")
}

/// The JSON array of the names of the columns that differ, NULL-safely.
fn changed_fields(old: &[Value], new: &[Value]) -> Vec<&'static str> {
    DATA_COLUMNS
        .iter()
        .zip(old.iter().zip(new))
        .filter(|(_, (a, b))| a != b)
        .map(|(name, _)| *name)
        .collect()
}

/// The writes of one sync. Their SQL is built once; the statements are cached by the connection.
struct VersionWriter<'c> {
    tx: &'c Transaction<'c>,
    sync: i64,
    insert_key_sql: String,
    overwrite_key_sql: String,
    open_version_sql: String,
}

impl<'c> VersionWriter<'c> {
    fn new(tx: &'c Transaction<'c>, sync: i64) -> Self {
        let columns = column_list();
        let placeholders = vec!["?"; DATA_COLUMNS.len()].join(", ");
        let assignments = DATA_COLUMNS.map(|c| format!("\"{c}\" = ?")).join(", ");
        VersionWriter {
            tx,
            sync,
            insert_key_sql: format!(
                "INSERT INTO keys (id, first_seen_sync, {columns}) VALUES (?, ?, {placeholders})"
            ),
            overwrite_key_sql: format!(
                "UPDATE keys SET {assignments}, removed_sync = NULL WHERE id = ?"
            ),
            open_version_sql: format!(
                "INSERT INTO key_versions (key_id, valid_from_sync, changed, {columns})
                 VALUES (?, ?, ?, {placeholders})"
            ),
        }
    }

    fn insert_key(&self, record: &KeyRecord) -> Result<()> {
        let head = [Value::Integer(record.id), Value::Integer(self.sync)];
        let values = head.iter().chain(&record.values);
        self.run(&self.insert_key_sql, values, "cannot insert a new key")?;
        self.open_version(record, &[])
    }

    /// A key back after a removal: its row comes back to life and a new version opens.
    fn restore_key(&self, record: &KeyRecord, previous: &[Value]) -> Result<()> {
        self.overwrite_key(record)?;
        self.open_version(record, &changed_fields(previous, &record.values))
    }

    /// Returns whether the key changed; an unchanged key is not written at all.
    fn update_key(&self, record: &KeyRecord, previous: &[Value]) -> Result<bool> {
        let changed = changed_fields(previous, &record.values);
        if changed.is_empty() {
            return Ok(false);
        }
        self.overwrite_key(record)?;
        self.close_version(record.id)?;
        self.open_version(record, &changed)?;
        Ok(true)
    }

    fn remove_key(&self, id: i64) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE keys SET removed_sync = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, self.sync]))
            .db("cannot mark a key removed")?;
        self.close_version(id)
    }

    fn set_secret(&self, id: i64, secret: Option<&str>) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE keys SET key = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, secret]))
            .db("cannot store a key value")?;
        Ok(())
    }

    fn overwrite_key(&self, record: &KeyRecord) -> Result<()> {
        let id = Value::Integer(record.id);
        let values = record.values.iter().chain([&id]);
        self.run(&self.overwrite_key_sql, values, "cannot update a key")
    }

    fn close_version(&self, id: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE key_versions SET valid_to_sync = ?2
                 WHERE key_id = ?1 AND valid_to_sync IS NULL",
            )
            .and_then(|mut s| s.execute(params![id, self.sync]))
            .db("cannot close a key version")?;
        Ok(())
    }

    fn open_version(&self, record: &KeyRecord, changed: &[&str]) -> Result<()> {
        let changed = serde_json::to_string(changed).expect("a list of names serialises");
        let head = [
            Value::Integer(record.id),
            Value::Integer(self.sync),
            Value::Text(changed),
        ];
        let values = head.iter().chain(&record.values);
        self.run(
            &self.open_version_sql,
            values,
            "cannot insert a key version",
        )
    }

    fn run<'v>(
        &self,
        sql: &str,
        values: impl Iterator<Item = &'v Value>,
        context: &str,
    ) -> Result<()> {
        self.tx
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params_from_iter(values)))
            .db(context)?;
        Ok(())
    }
}
