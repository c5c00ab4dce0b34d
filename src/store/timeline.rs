//! The account over time, for `keysync html`: the good syncs of a window, and how many live keys
//! had each effective status at each of them.
//!
//! The effective status is the `key_info` view's (migrations/V2__views.sql): a removed key is
//! not live; an enabled key past its `expired_time` is `expired`, an enabled limited key with
//! no `remain_quota` left is `exhausted`; any other key has the name of its upstream `status`.
//! At a past sync it is evaluated on the versions valid at that sync and at the time the sync
//! started. The state at a sync is found per key through the primary key (the key's last
//! version to start at or before the sync), as `history` reads it, so a point costs one seek
//! per key however long the history is, and `key_versions` is never scanned.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{DbContext, Result};
use crate::store::Store;
use crate::store::points::SyncPoint;

/// The effective statuses a live key can have, in the order the page shows them.
pub const EFFECTIVE_STATUSES: [&str; 5] =
    ["enabled", "disabled", "expired", "exhausted", "unknown"];

/// A window with more good syncs than this is drawn at the last good sync of each UTC day.
pub const MAX_STATUS_POINTS: usize = 100;

/// The live keys by effective status at one good sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusPoint {
    pub sync: SyncPoint,
    /// A count per [`EFFECTIVE_STATUSES`] entry, in that order.
    pub counts: [i64; 5],
}

/// Which syncs a status timeline has a point for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Every good sync of the window.
    EverySync,
    /// The last good sync of each UTC day.
    LastOfEachDay,
}

/// The good syncs that started in `(since, until]`, oldest first; with `last_of_each_day`, only
/// each UTC day's last.
const WINDOW_SYNCS_SQL: &str = "
SELECT id, started_at FROM good_syncs AS g
WHERE started_at > ?1 AND started_at <= ?2
  AND (NOT ?3 OR NOT EXISTS (
      SELECT 1 FROM good_syncs AS later
      WHERE later.id > g.id AND later.started_at <= ?2
        AND later.started_at / 86400 = g.started_at / 86400))
ORDER BY id";

/// `?1` is the sync, `?2` the time the statuses are judged at (its start). The CASE is
/// `key_info`'s `effective_status` on a version instead of a `keys` row.
const STATUS_AT_SQL: &str = "
SELECT CASE
           WHEN v.status = 1 AND v.expired_time <> -1 AND v.expired_time <= ?2 THEN 'expired'
           WHEN v.status = 1 AND v.unlimited_quota = 0 AND v.remain_quota <= 0 THEN 'exhausted'
           ELSE CASE v.status
                    WHEN 1 THEN 'enabled'
                    WHEN 2 THEN 'disabled'
                    WHEN 3 THEN 'expired'
                    WHEN 4 THEN 'exhausted'
                    ELSE 'unknown'
                END
       END AS effective_status,
       count(*)
FROM keys AS k
CROSS JOIN key_versions AS v
  ON v.key_id = k.id
 AND v.valid_from_sync = (SELECT max(y.valid_from_sync) FROM key_versions AS y
                          WHERE y.key_id = k.id AND y.valid_from_sync <= ?1)
WHERE v.valid_to_sync IS NULL OR v.valid_to_sync > ?1
GROUP BY effective_status";

/// The good syncs that started in `(since, until]`, oldest first.
fn window_syncs(
    conn: &Connection,
    since: i64,
    until: i64,
    sampling: Sampling,
) -> Result<Vec<SyncPoint>> {
    let context = "cannot read the syncs of the window";
    let mut statement = conn.prepare_cached(WINDOW_SYNCS_SQL).db(context)?;
    let last_of_each_day = sampling == Sampling::LastOfEachDay;
    let rows = statement
        .query_map(rusqlite::params![since, until, last_of_each_day], |row| {
            Ok(SyncPoint {
                id: row.get(0)?,
                started_at: row.get(1)?,
            })
        })
        .db(context)?;
    rows.collect::<rusqlite::Result<_>>().db(context)
}

/// The live keys by effective status at `sync`, judged at its start.
fn status_at(conn: &Connection, sync: SyncPoint) -> Result<StatusPoint> {
    let context = "cannot read the keys' statuses at a sync";
    let mut statement = conn.prepare_cached(STATUS_AT_SQL).db(context)?;
    let mut counts = [0; 5];
    let rows = statement
        .query_map([sync.id, sync.started_at], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .db(context)?;
    for row in rows {
        let (status, count) = row.db(context)?;
        counts[status_index(&status)] += count;
    }
    Ok(StatusPoint { sync, counts })
}

/// The position of an effective status in [`EFFECTIVE_STATUSES`]; anything else is `unknown`.
fn status_index(status: &str) -> usize {
    EFFECTIVE_STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(EFFECTIVE_STATUSES.len() - 1)
}

/// A point per good sync in `(since, until]`, or per UTC day's last one when there are more
/// than [`MAX_STATUS_POINTS`] syncs.
fn status_timeline(
    conn: &Connection,
    since: i64,
    until: i64,
) -> Result<(Sampling, Vec<StatusPoint>)> {
    let mut sampling = Sampling::EverySync;
    let mut syncs = window_syncs(conn, since, until, sampling)?;
    if syncs.len() > MAX_STATUS_POINTS {
        sampling = Sampling::LastOfEachDay;
        syncs = window_syncs(conn, since, until, sampling)?;
    }
    let points = syncs
        .into_iter()
        .map(|sync| status_at(conn, sync))
        .collect::<Result<_>>()?;
    Ok((sampling, points))
}

/// Live keys by effective status as the `key_info` view has them now (its clock: `--now` in a
/// store opened for queries).
fn status_now(conn: &Connection) -> Result<[i64; 5]> {
    let context = "cannot count the keys by status";
    let mut statement = conn
        .prepare(
            "SELECT effective_status, count(*) FROM key_info WHERE NOT is_removed
             GROUP BY effective_status",
        )
        .db(context)?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .db(context)?;
    let mut counts = [0; 5];
    for row in rows {
        let (status, count) = row.db(context)?;
        counts[status_index(&status)] += count;
    }
    Ok(counts)
}

/// The last good sync that started at or before `time`, if any is kept.
fn last_good_at_or_before(conn: &Connection, time: i64) -> Result<Option<SyncPoint>> {
    conn.query_row(
        "SELECT id, started_at FROM good_syncs WHERE started_at <= ?1 ORDER BY id DESC LIMIT 1",
        [time],
        |row| {
            Ok(SyncPoint {
                id: row.get(0)?,
                started_at: row.get(1)?,
            })
        },
    )
    .optional()
    .db("cannot read the syncs")
}

/// A good sync that changed something, and the good sync before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangingSync {
    pub before: SyncPoint,
    pub sync: SyncPoint,
}

/// The good syncs in `(since, until]` whose pull recorded an added, changed or removed key,
/// newest first, each with the good sync before it (which may be older than `since`).
fn changing_syncs(conn: &Connection, since: i64, until: i64) -> Result<Vec<ChangingSync>> {
    let context = "cannot read the syncs of the window";
    let mut statement = conn
        .prepare(
            "SELECT b.id, b.started_at, a.id, a.started_at
             FROM good_syncs AS b
             JOIN syncs AS a
               ON a.id = (SELECT max(x.id) FROM good_syncs AS x WHERE x.id < b.id)
             WHERE b.started_at > ?1 AND b.started_at <= ?2
               AND b.added + b.changed + b.removed > 0
             ORDER BY b.id DESC",
        )
        .db(context)?;
    let rows = statement
        .query_map([since, until], |row| {
            Ok(ChangingSync {
                sync: SyncPoint {
                    id: row.get(0)?,
                    started_at: row.get(1)?,
                },
                before: SyncPoint {
                    id: row.get(2)?,
                    started_at: row.get(3)?,
                },
            })
        })
        .db(context)?;
    rows.collect::<rusqlite::Result<_>>().db(context)
}

impl Store {
    /// Live keys by effective status at the good syncs that started in `(since, until]`, oldest
    /// first: at every one, or at each UTC day's last when there are more than
    /// [`MAX_STATUS_POINTS`].
    pub(crate) fn status_timeline(
        &self,
        since: i64,
        until: i64,
    ) -> Result<(Sampling, Vec<StatusPoint>)> {
        status_timeline(self.conn(), since, until)
    }

    /// Live keys by effective status now, as the `key_info` view has them; open the store for
    /// queries to judge them at `--now`.
    pub(crate) fn status_now(&self) -> Result<[i64; 5]> {
        status_now(self.conn())
    }

    /// The good syncs that started in `(since, until]`, oldest first.
    pub(crate) fn good_syncs_between(&self, since: i64, until: i64) -> Result<Vec<SyncPoint>> {
        window_syncs(self.conn(), since, until, Sampling::EverySync)
    }

    /// The last good sync that started at or before `time`: the state a window opens on.
    pub(crate) fn last_good_at_or_before(&self, time: i64) -> Result<Option<SyncPoint>> {
        last_good_at_or_before(self.conn(), time)
    }

    /// The good syncs in `(since, until]` that recorded a change, newest first.
    pub(crate) fn changing_syncs(&self, since: i64, until: i64) -> Result<Vec<ChangingSync>> {
        changing_syncs(self.conn(), since, until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrated_in_memory;

    const DAY: i64 = 86_400;

    /// A version: key, from, to, status, expired_time, remain_quota, unlimited_quota.
    type Version = (i64, i64, Option<i64>, i64, i64, i64, i64);

    /// Syncs (id, started_at, status) and versions; each key's `keys` row is its last version.
    fn history(syncs: &[(i64, i64, &str)], versions: &[Version]) -> Connection {
        let conn = migrated_in_memory();
        for (id, started_at, status) in syncs {
            conn.execute(
                "INSERT INTO syncs (id, started_at, status, base_url, changed)
                 VALUES (?1, ?2, ?3, 'x', 1)",
                rusqlite::params![id, started_at, status],
            )
            .unwrap();
        }
        for (key, from, to, status, expires, remain, unlimited) in versions {
            conn.execute(
                "INSERT INTO key_versions (key_id, valid_from_sync, valid_to_sync, status,
                                           expired_time, remain_quota, unlimited_quota)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![key, from, to, status, expires, remain, unlimited],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO keys (id, status, expired_time, remain_quota, unlimited_quota,
                               first_seen_sync, removed_sync)
             SELECT v.key_id, v.status, v.expired_time, v.remain_quota, v.unlimited_quota,
                    (SELECT min(valid_from_sync) FROM key_versions WHERE key_id = v.key_id),
                    v.valid_to_sync
             FROM key_versions AS v
             WHERE v.valid_from_sync = (SELECT max(valid_from_sync) FROM key_versions
                                        WHERE key_id = v.key_id)",
        )
        .unwrap();
        conn
    }

    fn counts(points: &[StatusPoint]) -> Vec<(i64, [i64; 5])> {
        points.iter().map(|p| (p.sync.id, p.counts)).collect()
    }

    #[test]
    fn statuses_are_judged_on_the_versions_and_the_time_of_each_sync() {
        // Syncs a day apart; sync 3 failed and is never a point.
        let syncs = [
            (1, DAY, "ok"),
            (2, 2 * DAY, "ok"),
            (3, 3 * DAY, "failed"),
            (4, 4 * DAY, "partial"),
        ];
        let versions = [
            // Enabled, expires at 3 days: enabled at syncs 1 and 2, expired at 4.
            (1, 1, None, 1, 3 * DAY, 10, 0),
            // Disabled from sync 2 on.
            (2, 1, Some(2), 1, -1, 10, 0),
            (2, 2, None, 2, -1, 10, 0),
            // Enabled but out of quota: exhausted; removed at sync 4.
            (3, 1, Some(4), 1, -1, 0, 0),
            // Unlimited keys never run out; first seen at sync 2.
            (4, 2, None, 1, -1, 0, 1),
            // An upstream status keysync does not know.
            (5, 4, None, 9, -1, 10, 0),
        ];
        let conn = history(&syncs, &versions);
        let (sampling, points) = status_timeline(&conn, 0, 10 * DAY).unwrap();
        assert_eq!(sampling, Sampling::EverySync);
        assert_eq!(
            counts(&points),
            [
                (1, [2, 0, 0, 1, 0]),
                (2, [2, 1, 0, 1, 0]),
                (4, [1, 1, 1, 0, 1]),
            ]
        );
        // The window is (since, until] on the sync's start.
        assert_eq!(
            counts(&status_timeline(&conn, DAY, 2 * DAY).unwrap().1),
            [(2, [2, 1, 0, 1, 0])]
        );
        // At the latest sync and its time, the timeline agrees with the key_info view.
        crate::store::views::install_temp_views(&conn, 4 * DAY).unwrap();
        assert_eq!(status_now(&conn).unwrap(), points[2].counts);
    }

    #[test]
    fn many_syncs_are_drawn_at_the_last_of_each_day() {
        // Hourly syncs for five days: more than MAX_STATUS_POINTS.
        let hourly: Vec<(i64, i64, &str)> = (1..=120).map(|i| (i, i * 3600, "ok")).collect();
        let conn = history(&hourly, &[(1, 1, None, 1, -1, 10, 0)]);
        let (sampling, points) = status_timeline(&conn, 0, 200 * 3600).unwrap();
        assert_eq!(sampling, Sampling::LastOfEachDay);
        let ids: Vec<i64> = points.iter().map(|p| p.sync.id).collect();
        // Hour 23 is each day's last sync; day 5 ends with sync 120.
        assert_eq!(ids, [23, 47, 71, 95, 119, 120]);
        assert!(points.iter().all(|p| p.counts == [1, 0, 0, 0, 0]));
    }

    #[test]
    fn changing_syncs_pair_each_with_the_good_sync_before_it() {
        let syncs = [(1, DAY, "ok"), (2, 2 * DAY, "failed"), (3, 3 * DAY, "ok")];
        let conn = history(&syncs, &[]);
        let found = changing_syncs(&conn, 0, 10 * DAY).unwrap();
        let pairs: Vec<(i64, i64)> = found.iter().map(|c| (c.before.id, c.sync.id)).collect();
        // Sync 1 opens the record: it has no sync before it.
        assert_eq!(pairs, [(1, 3)]);
        assert_eq!(
            last_good_at_or_before(&conn, 2 * DAY + 5)
                .unwrap()
                .map(|s| s.id),
            Some(1)
        );
        assert_eq!(last_good_at_or_before(&conn, DAY - 1).unwrap(), None);
    }

    /// A point costs a primary-key seek per key: `key_versions` is never scanned.
    #[test]
    fn a_status_point_never_scans_key_versions() {
        let conn = migrated_in_memory();
        let mut statement = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {STATUS_AT_SQL}"))
            .unwrap();
        let plan: Vec<String> = statement
            .query_map([1, 2], |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            !plan
                .iter()
                .any(
                    |step| ["SCAN v", "SCAN y", "SCAN key_versions"].contains(&step.as_str())
                        || step.contains("key_versions_by_")
                ),
            "{plan:#?}"
        );
        let seeks = plan
            .iter()
            .filter(|step| step.contains("USING PRIMARY KEY (key_id=?"))
            .count();
        assert_eq!(seeks, 2, "{plan:#?}");
    }
}
