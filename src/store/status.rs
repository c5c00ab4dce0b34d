//! What `keysync status` reads: key counts, the bound account, and the last sync and last
//! good sync.

use rusqlite::{Connection, OptionalExtension, Row};

use crate::error::{DbContext, Result};
use crate::store::Store;
use crate::store::schema_version;
use crate::store::sync_status::SyncStatus;

/// The schema version that added the `account` table.
const ACCOUNT_SCHEMA: i64 = 3;

/// Keys by state: live ones and removed ones (`facts::key` counts the live ones by status).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyCounts {
    pub live: i64,
    pub removed: i64,
}

/// One `syncs` row, as status shows it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SyncRow {
    pub id: i64,
    pub status: SyncStatus,
    pub started_at: i64,
    pub keys: i64,
    pub added: i64,
    pub changed: i64,
    pub removed: i64,
    pub error: Option<String>,
}

/// A live key's state as the facts about it read it (`facts::key` judges it): the `keys`
/// columns that say what the key would do if used now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyState {
    pub(crate) id: i64,
    /// Upstream's `status`: 1 enabled, 2 disabled, 3 expired, 4 exhausted.
    pub(crate) status: Option<i64>,
    /// Unix seconds; -1 never expires.
    pub(crate) expired_time: Option<i64>,
    pub(crate) remain_quota: Option<i64>,
    pub(crate) unlimited_quota: Option<bool>,
    pub(crate) removed: bool,
}

/// The columns [`key_state`] reads, first in a `SELECT` of `keys`.
const KEY_STATE_COLUMNS: &str = "id, status, expired_time, remain_quota, unlimited_quota";

/// A live key's [`KeyState`] from the first columns of a row ([`KEY_STATE_COLUMNS`]).
fn key_state(row: &Row<'_>) -> rusqlite::Result<KeyState> {
    Ok(KeyState {
        id: row.get(0)?,
        status: row.get(1)?,
        expired_time: row.get(2)?,
        remain_quota: row.get(3)?,
        unlimited_quota: row.get(4)?,
        removed: false,
    })
}

/// Every live key's [`KeyState`], by id.
pub(crate) fn live_key_states(conn: &Connection) -> Result<Vec<KeyState>> {
    let context = "cannot read the keys";
    let mut statement = conn
        .prepare(&format!(
            "SELECT {KEY_STATE_COLUMNS} FROM keys WHERE removed_sync IS NULL ORDER BY id"
        ))
        .db(context)?;
    statement
        .query_map([], key_state)
        .db(context)?
        .collect::<rusqlite::Result<_>>()
        .db(context)
}

/// A live key as `metrics` shows it: its [`KeyState`], and its name and use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyFigures {
    pub(crate) state: KeyState,
    pub(crate) name: Option<String>,
    pub(crate) used_quota: Option<i64>,
    /// Unix seconds of its last use; 0 (or none) if never used.
    pub(crate) accessed_time: Option<i64>,
}

/// Every live key's [`KeyFigures`], by id.
fn live_key_figures(conn: &Connection) -> Result<Vec<KeyFigures>> {
    let context = "cannot read the keys";
    let mut statement = conn
        .prepare(&format!(
            "SELECT {KEY_STATE_COLUMNS}, name, used_quota, accessed_time FROM keys
             WHERE removed_sync IS NULL ORDER BY id"
        ))
        .db(context)?;
    statement
        .query_map([], |row| {
            Ok(KeyFigures {
                state: key_state(row)?,
                name: row.get(5)?,
                used_quota: row.get(6)?,
                accessed_time: row.get(7)?,
            })
        })
        .db(context)?
        .collect::<rusqlite::Result<_>>()
        .db(context)
}

/// A live key as the alert rules name and judge it: its [`KeyState`], its name, and the
/// columns the `unrestricted` report reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LiveKey {
    pub(crate) state: KeyState,
    pub(crate) name: Option<String>,
    pub(crate) allow_ips: Option<String>,
    /// 1 when the key may use only its listed models.
    pub(crate) model_limits_enabled: Option<i64>,
}

/// Every live key's [`LiveKey`], by id.
fn live_keys(conn: &Connection) -> Result<Vec<LiveKey>> {
    let context = "cannot read the keys";
    let mut statement = conn
        .prepare(&format!(
            "SELECT {KEY_STATE_COLUMNS}, name, allow_ips, model_limits_enabled FROM keys
             WHERE removed_sync IS NULL ORDER BY id"
        ))
        .db(context)?;
    statement
        .query_map([], |row| {
            Ok(LiveKey {
                state: key_state(row)?,
                name: row.get(5)?,
                allow_ips: row.get(6)?,
                model_limits_enabled: row.get(7)?,
            })
        })
        .db(context)?
        .collect::<rusqlite::Result<_>>()
        .db(context)
}

/// What a finished sync cost: how long it ran and the requests it sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncCost {
    /// Seconds from start to finish.
    pub(crate) duration: i64,
    pub(crate) requests: i64,
    /// Requests answered 429.
    pub(crate) rate_limited: i64,
}

/// The schema version that added the request counts.
const REQUEST_COUNTS_SCHEMA: i64 = 7;

/// The cost of sync `id`; none while it runs. A database from before the request counts has
/// none of its requests counted (0).
fn sync_cost(conn: &Connection, id: i64) -> Result<Option<SyncCost>> {
    let counts = if schema_version(conn)? < REQUEST_COUNTS_SCHEMA {
        "0, 0"
    } else {
        "requests, rate_limited"
    };
    conn.query_row(
        &format!(
            "SELECT finished_at - started_at, {counts} FROM syncs
             WHERE id = ?1 AND finished_at IS NOT NULL"
        ),
        [id],
        |row| {
            Ok(SyncCost {
                duration: row.get(0)?,
                requests: row.get(1)?,
                rate_limited: row.get(2)?,
            })
        },
    )
    .optional()
    .db("cannot read the sync log")
}

fn key_counts(conn: &Connection) -> Result<KeyCounts> {
    conn.query_row(
        "SELECT count(*) FILTER (WHERE removed_sync IS NULL),
                count(*) FILTER (WHERE removed_sync IS NOT NULL)
         FROM keys",
        [],
        |row| {
            Ok(KeyCounts {
                live: row.get(0)?,
                removed: row.get(1)?,
            })
        },
    )
    .db("cannot count the keys")
}

/// The account the database is bound to: `(user_id, bound_sync)`. None before a pull has seen
/// keys, and none in a database from before the binding (readers do not upgrade a file).
fn account(conn: &Connection) -> Result<Option<(i64, i64)>> {
    if schema_version(conn)? < ACCOUNT_SCHEMA {
        return Ok(None);
    }
    conn.query_row("SELECT user_id, bound_sync FROM account", [], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })
    .optional()
    .db("cannot read the account this database is bound to")
}

/// The newest sync, whatever its status.
fn last_sync(conn: &Connection) -> Result<Option<SyncRow>> {
    one_sync(conn, "SELECT * FROM syncs ORDER BY id DESC LIMIT 1")
}

/// The newest sync that has ended, however it ended.
fn last_finished_sync(conn: &Connection) -> Result<Option<SyncRow>> {
    one_sync(
        conn,
        "SELECT * FROM syncs WHERE status <> 'running' ORDER BY id DESC LIMIT 1",
    )
}

/// The newest sync that counts as good (see the `good_syncs` view).
fn last_good_sync(conn: &Connection) -> Result<Option<SyncRow>> {
    one_sync(conn, "SELECT * FROM good_syncs ORDER BY id DESC LIMIT 1")
}

fn one_sync(conn: &Connection, sql: &str) -> Result<Option<SyncRow>> {
    conn.query_row(sql, [], sync_row)
        .optional()
        .db("cannot read the sync log")
}

fn sync_row(row: &Row<'_>) -> rusqlite::Result<SyncRow> {
    Ok(SyncRow {
        id: row.get("id")?,
        status: row.get("status")?,
        started_at: row.get("started_at")?,
        keys: row.get("keys_seen")?,
        added: row.get("added")?,
        changed: row.get("changed")?,
        removed: row.get("removed")?,
        error: row.get("error")?,
    })
}

/// Whether every sync of the database pulled from a loopback address (the demo's fake).
fn every_sync_from_loopback(conn: &Connection) -> Result<bool> {
    conn.query_row(
        "SELECT count(*) = 0 FROM syncs WHERE base_url NOT LIKE 'http://127.0.0.1:%'",
        [],
        |row| row.get(0),
    )
    .db("cannot read the syncs")
}

/// The `application_id` in the header of a database `keysync demo` made ("ksdm"): a mark in
/// the file itself, needing no table, that lets a later demo replace it at any path.
const DEMO_APPLICATION_ID: i32 = 0x6b73_646d;

impl Store {
    /// Marks the file as the demo's (see [`DEMO_APPLICATION_ID`]).
    pub(crate) fn mark_as_demo(&self) -> Result<()> {
        self.conn()
            .pragma_update(None, "application_id", DEMO_APPLICATION_ID)
            .db("cannot mark the demo database")
    }

    /// Whether `keysync demo` made this file.
    pub(crate) fn is_marked_as_demo(&self) -> Result<bool> {
        let id: i32 = self
            .conn()
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .db("cannot read the database header")?;
        Ok(id == DEMO_APPLICATION_ID)
    }

    /// Whether every sync pulled from 127.0.0.1 (so the file is a demo's).
    pub(crate) fn every_sync_from_loopback(&self) -> Result<bool> {
        every_sync_from_loopback(self.conn())
    }

    /// Every live key's state, by id.
    pub(crate) fn live_key_states(&self) -> Result<Vec<KeyState>> {
        live_key_states(self.conn())
    }

    /// Every live key with its name and exposure, by id.
    pub(crate) fn live_keys(&self) -> Result<Vec<LiveKey>> {
        live_keys(self.conn())
    }

    /// Every live key's state, name and use, by id.
    pub(crate) fn live_key_figures(&self) -> Result<Vec<KeyFigures>> {
        live_key_figures(self.conn())
    }

    /// How long sync `id` ran and the requests it sent; none while it runs.
    pub(crate) fn sync_cost(&self, id: i64) -> Result<Option<SyncCost>> {
        sync_cost(self.conn(), id)
    }

    pub(crate) fn key_counts(&self) -> Result<KeyCounts> {
        key_counts(self.conn())
    }

    /// The account the database is bound to and the sync that bound it.
    pub(crate) fn account(&self) -> Result<Option<(i64, i64)>> {
        account(self.conn())
    }

    pub(crate) fn last_sync(&self) -> Result<Option<SyncRow>> {
        last_sync(self.conn())
    }

    /// The last sync that is not running.
    pub(crate) fn last_finished_sync(&self) -> Result<Option<SyncRow>> {
        last_finished_sync(self.conn())
    }

    /// The last ok or partial sync.
    pub(crate) fn last_good_sync(&self) -> Result<Option<SyncRow>> {
        last_good_sync(self.conn())
    }
}
