//! The pull's `syncs` row from start to end: begun (refused when it would go back in time),
//! failed, its requests counted, checked as not overtaken, and finished with its counts and the
//! gateway's price.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{ApplyCounts, SyncStatus};
use crate::api::{GatewayStatus, Listing, RequestCounts};
use crate::error::{DbContext, Error, Result};
use crate::time::readable_time;

/// Where a user finds [`FUTURE_SYNC_REPAIR`]: the man page's section of that name (messages go
/// to people who installed a binary, and have no README).
pub(crate) const FUTURE_SYNC_HELP: &str =
    "\"A SYNC RECORDED IN THE FUTURE\" in the man page (`keysync man | man -l -`) shows";

/// The repair of a sync recorded while the clock was ahead, for `sqlite3` once the clock is
/// right, while no pull runs and after a backup. The man page prints it; docs/database.md shows
/// the same statements (a test holds them equal and runs them).
pub const FUTURE_SYNC_REPAIR: &str = "\
-- A failed (or interrupted) pull wrote no keys: nothing points at its row, so it can go.
DELETE FROM syncs
 WHERE started_at > CAST(strftime('%s', 'now') AS INTEGER) AND status IN ('failed', 'running');
-- A good pull recorded the keys as they were; only its time is wrong. key_versions, keys and
-- account name it by id, so never delete it: move its start to now, keeping its duration.
UPDATE syncs
   SET finished_at = CAST(strftime('%s', 'now') AS INTEGER) + (finished_at - started_at),
       started_at = CAST(strftime('%s', 'now') AS INTEGER)
 WHERE started_at > CAST(strftime('%s', 'now') AS INTEGER);
";

/// Records the start of a pull and returns its sync id. Any `running` row left by a process
/// that died is closed as failed first: the caller holds the pull lock, so none is alive.
/// A start earlier than the latest recorded sync's is refused before anything is written.
pub(super) fn begin_sync(conn: &Connection, base_url: &str, now: i64) -> Result<i64> {
    refuse_going_back(conn, now)?;
    let context = "cannot record the start of the sync";
    conn.execute(
        "UPDATE syncs SET status = ?2, finished_at = ?1,
                error = 'interrupted: the process ended before the sync finished'
         WHERE status = ?3",
        params![now, SyncStatus::Failed, SyncStatus::Running],
    )
    .db(context)?;
    conn.execute(
        "INSERT INTO syncs (started_at, status, base_url) VALUES (?1, ?2, ?3)",
        params![now, SyncStatus::Running, base_url],
    )
    .db(context)?;
    Ok(conn.last_insert_rowid())
}

/// The history is ordered by sync id and read by time (`diff 24h`, `status`); a sync that
/// started before an earlier one would make both lie. An equal start is fine (`--now` fixed).
/// Only good syncs count: a failed one wrote no keys, so its time orders nothing, and one
/// recorded in the future (a clock that was ahead) must not block every pull until then.
fn refuse_going_back(conn: &Connection, now: i64) -> Result<()> {
    let latest: Option<(i64, i64)> = conn
        .query_row(
            "SELECT id, started_at FROM good_syncs ORDER BY started_at DESC, id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .db("cannot read the latest sync")?;
    match latest {
        Some((id, started)) if now < started => Err(Error::Usage(format!(
            "this pull would start at {}, before sync {id} did ({}): the history must move \
             forward. Check the system clock and any --now you gave. If \
             sync {id}'s own time is what is wrong (the clock was ahead when it ran), correct \
             it as {FUTURE_SYNC_HELP}",
            readable_time(now),
            readable_time(started)
        ))),
        _ => Ok(()),
    }
}

/// Marks a sync failed, keeping the error text. Nothing else is touched.
pub(super) fn fail_sync(conn: &Connection, sync: i64, now: i64, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE syncs SET status = ?4, finished_at = ?2, error = ?3 WHERE id = ?1",
        params![sync, now, error, SyncStatus::Failed],
    )
    .db("cannot record the failure of the sync")?;
    Ok(())
}

/// Records what a pull that did not finish sent to the API (a finished one's row gets it with
/// the rest, in [`finish_sync`]).
pub(super) fn count_requests(conn: &Connection, sync: i64, counts: RequestCounts) -> Result<()> {
    conn.execute(
        "UPDATE syncs SET requests = ?2, rate_limited = ?3 WHERE id = ?1",
        params![sync, counts.requests as i64, counts.rate_limited as i64],
    )
    .db("cannot record the requests of the sync")?;
    Ok(())
}

/// Defence in depth behind the pull lock: a listing is only as new as its pull's start, so it
/// must not be applied over a sync that started later. Another pull that started while this
/// one listed closed this one's row as failed (see [`begin_sync`]); one that also finished has
/// an applied row with a higher id. Either way this pull writes nothing.
pub(super) fn refuse_if_overtaken(tx: &Transaction<'_>, sync: i64) -> Result<()> {
    let context = "cannot check for a newer sync";
    let own: Option<SyncStatus> = tx
        .query_row("SELECT status FROM syncs WHERE id = ?1", [sync], |row| {
            row.get(0)
        })
        .optional()
        .db(context)?;
    let newer: Option<i64> = tx
        .query_row(
            "SELECT max(id) FROM good_syncs WHERE id > ?1",
            [sync],
            |row| row.get(0),
        )
        .db(context)?;
    if own == Some(SyncStatus::Running) && newer.is_none() {
        return Ok(());
    }
    let newer = newer.map_or_else(String::new, |id| format!(" and recorded sync {id}"));
    Err(Error::Locked(format!(
        "another pull started on this database while sync {sync} was listing{newer}, so this \
         older listing was not applied and nothing was written; make sure one scheduler runs \
         the pulls (two pulls of one file must share its lock), then pull again"
    )))
}

pub(super) fn finish_sync(
    tx: &Transaction<'_>,
    sync: i64,
    status: SyncStatus,
    listing: &Listing,
    counts: ApplyCounts,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE syncs SET status = ?2, finished_at = ?3, pages = ?4, keys_seen = ?5, added = ?6,
                changed = ?7, removed = ?8, requests = ?9, rate_limited = ?10, error = NULL
         WHERE id = ?1",
        params![
            sync,
            status,
            now,
            listing.pages,
            listing.keys_seen as i64,
            counts.added as i64,
            counts.changed as i64,
            counts.removed as i64,
            listing.requests.requests as i64,
            listing.requests.rate_limited as i64
        ],
    )
    .db("cannot finish the sync row")?;
    Ok(())
}

/// Keeps on the sync row what the gateway published at this pull (all NULL when it could not
/// be read): reports convert quota to dollars with the price in force at each sync.
pub(super) fn record_gateway(
    tx: &Transaction<'_>,
    sync: i64,
    gateway: &GatewayStatus,
) -> Result<()> {
    tx.execute(
        "UPDATE syncs SET quota_per_unit = ?2, quota_display_type = ?3, usd_exchange_rate = ?4,
                gateway_version = ?5
         WHERE id = ?1",
        params![
            sync,
            gateway.quota_per_unit,
            gateway.quota_display_type,
            gateway.usd_exchange_rate,
            gateway.version
        ],
    )
    .db("cannot record the gateway's price on the sync row")?;
    Ok(())
}

/// Whether good sync `sync`, recorded without a price, is news: it is the database's first
/// good sync, or the good sync before it had a price. After a sync without one, the next
/// without one is not (a gateway that never publishes a price must not warn on every run).
pub(super) fn price_lost(conn: &Connection, sync: i64) -> Result<bool> {
    let before: Option<bool> = conn
        .query_row(
            "SELECT quota_per_unit IS NOT NULL FROM good_syncs WHERE id < ?1
             ORDER BY id DESC LIMIT 1",
            [sync],
            |row| row.get(0),
        )
        .optional()
        .db("cannot read the price of the sync before")?;
    Ok(before.unwrap_or(true))
}
