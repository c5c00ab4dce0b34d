//! The syncs as points in the history: the sync log, and turning what a user names on the
//! command line (a sync id, a time, a duration ago) into one good sync.
//!
//! Only good syncs (the `good_syncs` view: `ok` and `partial`) are points: a failed sync
//! recorded no state. `prune` deletes the oldest syncs, so a point older than the oldest kept
//! sync is an error that says so rather than a silently different answer.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use crate::error::{DbContext, Error, Result};
use crate::store::Store;
use crate::store::sync_status::SyncStatus;
use crate::time::{WHEN_FORMS, When, readable_time, try_parse_when};

/// A good sync, as a point to read the state of the account at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SyncPoint {
    pub id: i64,
    pub started_at: i64,
}

impl SyncPoint {
    /// `sync 12 (2025-12-19 08:00:00Z)`
    pub(crate) fn describe(&self) -> String {
        format!("sync {} ({})", self.id, readable_time(self.started_at))
    }
}

/// The columns of [`sync_log`], in order.
pub(crate) const SYNC_LOG_COLUMNS: [&str; 9] = [
    "id", "time", "status", "keys", "added", "changed", "removed", "duration", "error",
];

/// The newest `limit` syncs (all when `None`), newest first, as [`SYNC_LOG_COLUMNS`]: `time` is
/// `started_at`, `duration` is whole seconds (NULL while running).
fn sync_log(conn: &Connection, limit: Option<u32>) -> Result<Vec<Vec<Value>>> {
    let context = "cannot read the sync log";
    let mut statement = conn
        .prepare(
            "SELECT id, started_at, status, keys_seen, added, changed, removed,
                    finished_at - started_at, error
             FROM syncs ORDER BY id DESC LIMIT ?1",
        )
        .db(context)?;
    // SQLite reads a negative LIMIT as "no limit".
    let limit = limit.map_or(-1, i64::from);
    let rows = statement
        .query_map([limit], |row| {
            (0..SYNC_LOG_COLUMNS.len())
                .map(|i| row.get::<_, Value>(i))
                .collect()
        })
        .db(context)?;
    rows.collect::<rusqlite::Result<_>>().db(context)
}

/// The sync a user named, which must be a good one that has not been pruned.
pub(crate) fn resolve(conn: &Connection, named: SyncRef, now: i64) -> Result<SyncPoint> {
    match named {
        SyncRef::Id(id) => by_id(conn, id),
        SyncRef::Time(when) => last_good_at(conn, when.at(now)),
    }
}

/// The `count` most recent good syncs, newest first.
pub(crate) fn latest_good(conn: &Connection, count: usize) -> Result<Vec<SyncPoint>> {
    let context = "cannot read the syncs";
    let mut statement = conn
        .prepare("SELECT id, started_at FROM good_syncs ORDER BY id DESC LIMIT ?1")
        .db(context)?;
    let points = statement
        .query_map([count as i64], point)
        .db(context)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db(context)?;
    if points.is_empty() {
        // Not enough history is a usage error for every form of `diff`, as when a named
        // point has no good sync.
        return Err(Error::Usage(
            "no good sync yet, so there is no state to compare: run `keysync pull` first".into(),
        ));
    }
    Ok(points)
}

fn point(row: &rusqlite::Row<'_>) -> rusqlite::Result<SyncPoint> {
    Ok(SyncPoint {
        id: row.get(0)?,
        started_at: row.get(1)?,
    })
}

fn by_id(conn: &Connection, id: i64) -> Result<SyncPoint> {
    let found: Option<(SyncPoint, SyncStatus, bool)> = conn
        .query_row(
            "SELECT s.id, s.started_at, s.status, g.id IS NOT NULL
             FROM syncs AS s LEFT JOIN good_syncs AS g ON g.id = s.id
             WHERE s.id = ?1",
            [id],
            |row| Ok((point(row)?, row.get(2)?, row.get(3)?)),
        )
        .optional()
        .db("cannot read the syncs")?;
    match found {
        Some((point, _, true)) => Ok(point),
        Some((_, status, false)) => Err(Error::Usage(format!(
            "sync {id} ended {status}: it recorded no state of the account, so it cannot be a \
             diff point; pick an ok or partial sync from `keysync syncs`"
        ))),
        None => Err(missing_sync(conn, id)?),
    }
}

/// Why sync `id` is not in the log: pruned (older than every kept sync) or never made.
fn missing_sync(conn: &Connection, id: i64) -> Result<Error> {
    let bounds: Option<(i64, i64, i64)> = conn
        .query_row(
            "SELECT min(id), (SELECT started_at FROM syncs ORDER BY id LIMIT 1), max(id)
             FROM syncs HAVING count(*) > 0",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .db("cannot read the syncs")?;
    let message = match bounds {
        None => "there are no syncs yet: run `keysync pull` first".to_string(),
        Some((oldest, oldest_time, _)) if (1..oldest).contains(&id) => format!(
            "sync {id} was pruned: the oldest kept sync is {}; see `keysync syncs`",
            SyncPoint {
                id: oldest,
                started_at: oldest_time
            }
            .describe()
        ),
        Some((_, _, latest)) => {
            format!("there is no sync {id}: the latest is {latest}; see `keysync syncs`")
        }
    };
    Ok(Error::Usage(message))
}

/// The last good sync that started at or before `time`.
fn last_good_at(conn: &Connection, time: i64) -> Result<SyncPoint> {
    let context = "cannot read the syncs";
    let sql = "SELECT id, started_at FROM good_syncs WHERE started_at <= ?1
               ORDER BY started_at DESC, id DESC LIMIT 1";
    if let Some(found) = conn.query_row(sql, [time], point).optional().db(context)? {
        return Ok(found);
    }
    let oldest: Option<SyncPoint> = conn
        .query_row(
            "SELECT id, started_at FROM syncs ORDER BY id LIMIT 1",
            [],
            point,
        )
        .optional()
        .db(context)?;
    let first_good: Option<SyncPoint> = conn
        .query_row(
            "SELECT id, started_at FROM good_syncs ORDER BY id LIMIT 1",
            [],
            point,
        )
        .optional()
        .db(context)?;
    let when = readable_time(time);
    let message = match (oldest, first_good) {
        (Some(oldest), _) if oldest.id > 1 => format!(
            "no kept sync started at or before {when}: the syncs before {} were pruned; see \
             `keysync syncs`",
            oldest.describe()
        ),
        (_, Some(first)) => format!(
            "no good sync started at or before {when}: the first is {}; see `keysync syncs`",
            first.describe()
        ),
        (_, None) => "no good sync yet: run `keysync pull` first".to_string(),
    };
    Err(Error::Usage(message))
}

/// A point in the history named on the command line: `diff FROM TO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncRef {
    /// A sync id, as `keysync syncs` lists them.
    Id(i64),
    /// The last good sync that started at or before this time.
    Time(When),
}

/// A diff point: a number is a sync id; anything else is a time as `--since` takes it (so unix
/// seconds are not taken: they read as ids).
pub(crate) fn parse_sync_ref(text: &str) -> Result<SyncRef, String> {
    let text = text.trim();
    if let Ok(id) = text.parse::<i64>() {
        return Ok(SyncRef::Id(id));
    }
    try_parse_when(text)?.map(SyncRef::Time).ok_or_else(|| {
        format!("expected a sync id (see `keysync syncs`), {WHEN_FORMS}; got {text:?}")
    })
}

impl Store {
    /// The sync log, newest first, at most `limit` rows: [`SYNC_LOG_COLUMNS`].
    pub(crate) fn sync_log(&self, limit: Option<u32>) -> Result<Vec<Vec<Value>>> {
        sync_log(self.conn(), limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_refs_are_ids_then_times_then_durations() {
        assert_eq!(parse_sync_ref("12"), Ok(SyncRef::Id(12)));
        assert_eq!(
            parse_sync_ref("2025-12-19 00:00:00Z"),
            Ok(SyncRef::Time(When::At(1_766_102_400)))
        );
        assert_eq!(
            parse_sync_ref("24h"),
            Ok(SyncRef::Time(When::Ago(Duration::from_secs(86_400))))
        );
        let december = chrono::NaiveDate::from_ymd_opt(2025, 12, 19).unwrap();
        assert_eq!(
            parse_sync_ref("2025-12-19"),
            Ok(SyncRef::Time(When::Day(Day::Date(december))))
        );
        assert_eq!(
            parse_sync_ref("yesterday"),
            Ok(SyncRef::Time(When::Day(Day::BeforeToday(1))))
        );
        assert_eq!(
            parse_sync_ref("2025-12-32").unwrap_err(),
            "\"2025-12-32\" is not a day of the calendar: give a date as YYYY-MM-DD, such as \
             2026-11-01"
        );
        assert_eq!(
            parse_sync_ref("last week").unwrap_err(),
            "expected a sync id (see `keysync syncs`), a duration ago (such as 30d), a date \
             (such as 2025-12-19), today, yesterday, or an RFC 3339 time (such as \
             2025-12-19T08:00:00Z); got \"last week\""
        );
    }

    use crate::store::migrated_in_memory;
    use crate::time::Day;
    use rusqlite::params;
    use std::time::Duration;

    /// Syncs 3 to 7 (1 and 2 pruned), an hour apart from 03:00; sync 5 failed.
    fn log() -> Connection {
        let conn = migrated_in_memory();
        for id in 3..=7 {
            let status = if id == 5 { "failed" } else { "ok" };
            conn.execute(
                "INSERT INTO syncs (id, started_at, finished_at, status, base_url, keys_seen)
                 VALUES (?1, ?2, ?2 + 3, ?3, 'http://127.0.0.1:1', 10)",
                params![id, 1_766_102_400 + 3600 * id, status],
            )
            .unwrap();
        }
        conn
    }

    fn at(id: i64) -> SyncPoint {
        SyncPoint {
            id,
            started_at: 1_766_102_400 + 3600 * id,
        }
    }

    fn usage_message(result: Result<SyncPoint>) -> String {
        match result {
            Err(Error::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn ids_must_name_a_kept_good_sync() {
        let conn = log();
        assert_eq!(resolve(&conn, SyncRef::Id(4), 0).unwrap(), at(4));
        assert_eq!(
            usage_message(resolve(&conn, SyncRef::Id(5), 0)),
            "sync 5 ended failed: it recorded no state of the account, so it cannot be a diff \
             point; pick an ok or partial sync from `keysync syncs`"
        );
        assert_eq!(
            usage_message(resolve(&conn, SyncRef::Id(2), 0)),
            "sync 2 was pruned: the oldest kept sync is sync 3 (2025-12-19 03:00:00Z); see \
             `keysync syncs`"
        );
        assert_eq!(
            usage_message(resolve(&conn, SyncRef::Id(8), 0)),
            "there is no sync 8: the latest is 7; see `keysync syncs`"
        );
    }

    #[test]
    fn times_take_the_last_good_sync_at_or_before_them() {
        let conn = log();
        let five = at(5).started_at;
        let time = |when| SyncRef::Time(when);
        assert_eq!(resolve(&conn, time(When::At(five + 59)), 0).unwrap(), at(4));
        assert_eq!(
            resolve(&conn, time(When::At(five + 3600)), 0).unwrap(),
            at(6)
        );
        let hour = Duration::from_secs(3600);
        assert_eq!(
            resolve(&conn, time(When::Ago(hour)), at(7).started_at).unwrap(),
            at(6)
        );
        // `today` at 07:30 is 00:00 of that day: before sync 3 (03:00), pruned.
        assert_eq!(
            usage_message(resolve(
                &conn,
                time(When::Day(Day::BeforeToday(0))),
                at(7).started_at + 1800
            )),
            "no kept sync started at or before 2025-12-19 00:00:00Z: the syncs before sync 3 \
             (2025-12-19 03:00:00Z) were pruned; see `keysync syncs`"
        );
        assert_eq!(
            usage_message(resolve(&conn, time(When::At(at(3).started_at - 1)), 0)),
            "no kept sync started at or before 2025-12-19 02:59:59Z: the syncs before sync 3 \
             (2025-12-19 03:00:00Z) were pruned; see `keysync syncs`"
        );
    }

    #[test]
    fn the_log_is_newest_first_and_limited() {
        let conn = log();
        let ids: Vec<Value> = sync_log(&conn, Some(2))
            .unwrap()
            .into_iter()
            .map(|row| row[0].clone())
            .collect();
        assert_eq!(ids, vec![Value::Integer(7), Value::Integer(6)]);
        assert_eq!(sync_log(&conn, None).unwrap().len(), 5);
        assert_eq!(sync_log(&conn, None).unwrap()[0][7], Value::Integer(3));
        assert_eq!(latest_good(&conn, 2).unwrap(), vec![at(7), at(6)]);
    }
}
