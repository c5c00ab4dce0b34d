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

use crate::api::model::DATA_COLUMNS;
use crate::error::{DbContext, Result};
use crate::store::Store;
use crate::store::points::SyncPoint;

/// The effective statuses a live key can have, in the order the page shows them.
pub(crate) const EFFECTIVE_STATUSES: [&str; 5] =
    ["enabled", "disabled", "expired", "exhausted", "unknown"];

/// A window with more good syncs than this is drawn at the last good sync of each UTC day.
pub(crate) const MAX_STATUS_POINTS: usize = 100;

/// The live keys by effective status at one good sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusPoint {
    pub sync: SyncPoint,
    /// A count per [`EFFECTIVE_STATUSES`] entry, in that order.
    pub counts: [i64; 5],
}

/// Which syncs a status timeline has a point for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sampling {
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
pub(crate) struct ChangingSync {
    pub before: SyncPoint,
    pub sync: SyncPoint,
}

/// `?1`, `?2`: the window `(since, until]`; `?3`: a JSON array of fields to leave out; `?7`,
/// `?4`: only syncs with an id between these (exclusive); `?5`: how many; `?6`: every `changed` text made only of fields left
/// out (see [`left_out_only`]), so that the common versions that changed only use are passed
/// over by a text comparison rather than parsed. A sync counts when its pull removed a key, or
/// recorded a version that is new (`changed` is `[]`: added or restored) or changed a field not
/// left out. A sync's versions are read through `key_versions_by_from`, each once.
const CHANGING_SYNCS_SQL: &str = "
SELECT b.id, b.started_at, a.id, a.started_at
FROM good_syncs AS b
JOIN syncs AS a
  ON a.id = (SELECT max(x.id) FROM good_syncs AS x WHERE x.id < b.id)
WHERE b.started_at > ?1 AND b.started_at <= ?2 AND b.id > ?7 AND b.id < ?4
  AND (b.removed > 0
       OR EXISTS (SELECT 1 FROM key_versions AS v INDEXED BY key_versions_by_from
                  WHERE v.valid_from_sync = b.id
                    AND (v.changed = '[]'
                         OR (v.changed NOT IN (SELECT value FROM json_each(?6))
                             AND EXISTS (SELECT 1 FROM json_each(v.changed) AS f
                                         WHERE f.value NOT IN (SELECT value FROM json_each(?3)))))))
ORDER BY b.id DESC
LIMIT ?5";

/// Up to `limit` good syncs in `(since, until]` with an id in `(after, before)`, newest first,
/// that added, removed or changed a key in a field not in `ignored`, each with the good sync
/// before it (which may be older than `since`).
fn changing_syncs(
    conn: &Connection,
    window: (i64, i64),
    ignored: &[&str],
    (after, before): (i64, i64),
    limit: usize,
) -> Result<Vec<ChangingSync>> {
    let context = "cannot read the syncs of the window";
    let mut statement = conn.prepare_cached(CHANGING_SYNCS_SQL).db(context)?;
    let only_ignored = serde_json::to_string(&left_out_only(ignored)).expect("texts serialise");
    let ignored = serde_json::to_string(ignored).expect("names serialise");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(
            rusqlite::params![
                window.0,
                window.1,
                ignored,
                before,
                limit,
                only_ignored,
                after
            ],
            |row| {
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
            },
        )
        .db(context)?;
    rows.collect::<rusqlite::Result<_>>().db(context)
}

/// Where a search of the window's latest syncs for recent changes starts, when reading every
/// version its syncs recorded (`added + changed` of each) would pass `budget`: the id of the
/// last good sync left out and how many are searched. `None` when the whole window fits. The
/// newest sync is always searched.
fn search_start(
    conn: &Connection,
    since: i64,
    until: i64,
    budget: i64,
) -> Result<Option<(i64, usize)>> {
    let context = "cannot read the syncs of the window";
    let mut statement = conn
        .prepare_cached(
            "SELECT id, added + changed FROM good_syncs
             WHERE started_at > ?1 AND started_at <= ?2 ORDER BY id DESC",
        )
        .db(context)?;
    let syncs = statement
        .query_map([since, until], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })
        .db(context)?;
    let mut versions = 0;
    for (searched, sync) in syncs.enumerate() {
        let (id, recorded) = sync.db(context)?;
        versions += recorded;
        if versions > budget && searched > 0 {
            return Ok(Some((id, searched)));
        }
    }
    Ok(None)
}

/// Every `changed` text a pull writes for a version that changed only some of `fields`: the
/// JSON array of the changed columns in `DATA_COLUMNS` order, as `store::sync` writes it
/// (`["accessed_time","used_quota"]`).
fn left_out_only(fields: &[&str]) -> Vec<String> {
    let ordered: Vec<&str> = DATA_COLUMNS
        .iter()
        .copied()
        .filter(|column| fields.contains(column))
        .collect();
    (1..1u32 << ordered.len())
        .map(|subset| {
            let names: Vec<String> = ordered
                .iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .map(|(_, name)| format!("\"{name}\""))
                .collect();
            format!("[{}]", names.join(","))
        })
        .collect()
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

    /// The good syncs that started in `(since, until]`, oldest first.
    pub(crate) fn good_syncs_between(&self, since: i64, until: i64) -> Result<Vec<SyncPoint>> {
        window_syncs(self.conn(), since, until, Sampling::EverySync)
    }

    /// When each failed sync that started in `(since, until]` started, oldest first: the days
    /// the page marks as failed pulls.
    pub(crate) fn failed_syncs_between(&self, since: i64, until: i64) -> Result<Vec<i64>> {
        let context = "cannot read the failed syncs of the window";
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT started_at FROM syncs
                 WHERE status = 'failed' AND started_at > ?1 AND started_at <= ?2
                 ORDER BY id",
            )
            .db(context)?;
        let rows = statement
            .query_map([since, until], |row| row.get(0))
            .db(context)?;
        rows.collect::<rusqlite::Result<_>>().db(context)
    }

    /// Where to start searching the window `(since, until]` for recent changes so that at most
    /// `budget` versions are read: `(after this sync id, syncs searched)`, or `None` for all.
    pub(crate) fn search_start(
        &self,
        since: i64,
        until: i64,
        budget: i64,
    ) -> Result<Option<(i64, usize)>> {
        search_start(self.conn(), since, until, budget)
    }

    /// The last good sync that started at or before `time`: the state a window opens on.
    pub(crate) fn last_good_at_or_before(&self, time: i64) -> Result<Option<SyncPoint>> {
        last_good_at_or_before(self.conn(), time)
    }

    /// Up to `limit` good syncs in the window `(since, until]` with an id in `(after, before)`,
    /// newest first, that added or removed a key or changed one in a field not in `ignored`.
    pub(crate) fn changing_syncs(
        &self,
        window: (i64, i64),
        ignored: &[&str],
        ids: (i64, i64),
        limit: usize,
    ) -> Result<Vec<ChangingSync>> {
        changing_syncs(self.conn(), window, ignored, ids, limit)
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
        // At the latest sync and its time, the timeline agrees with the effective status of
        // the keys as they are now (`facts::key`).
        let keys = crate::store::status::live_key_states(&conn).unwrap();
        assert_eq!(
            crate::facts::key::count_by_status(&keys, 4 * DAY),
            points[2].counts
        );
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
    fn the_search_for_changes_stops_at_its_budget_of_versions() {
        let conn = migrated_in_memory();
        conn.execute_batch(
            "INSERT INTO syncs (id, started_at, status, base_url, added, changed) VALUES
                 (1, 10, 'ok', 'x', 5, 0), (2, 20, 'ok', 'x', 0, 3), (3, 30, 'failed', 'x', 0, 0),
                 (4, 40, 'ok', 'x', 1, 1), (5, 50, 'ok', 'x', 0, 9);",
        )
        .unwrap();
        // Newest first: 9, then 2 (11), then 3 (14), then 5 (19).
        assert_eq!(search_start(&conn, 0, 100, 19).unwrap(), None);
        assert_eq!(search_start(&conn, 0, 100, 14).unwrap(), Some((1, 3)));
        assert_eq!(search_start(&conn, 0, 100, 10).unwrap(), Some((4, 1)));
        // The newest sync is searched whatever it costs.
        assert_eq!(search_start(&conn, 0, 100, 1).unwrap(), Some((4, 1)));
        assert_eq!(search_start(&conn, 15, 100, 14).unwrap(), None);
    }

    #[test]
    fn the_texts_of_use_only_changes_follow_the_column_order() {
        let texts = left_out_only(&["used_quota", "accessed_time"]);
        assert_eq!(
            texts,
            [
                r#"["accessed_time"]"#,
                r#"["used_quota"]"#,
                r#"["accessed_time","used_quota"]"#
            ]
        );
    }

    #[test]
    fn changing_syncs_are_those_with_a_change_not_left_out_newest_first() {
        let conn = migrated_in_memory();
        conn.execute_batch(
            "INSERT INTO syncs (id, started_at, status, base_url, removed) VALUES
                 (1, 86400, 'ok', 'x', 0), (2, 172800, 'failed', 'x', 0),
                 (3, 259200, 'ok', 'x', 0), (4, 345600, 'ok', 'x', 0),
                 (5, 432000, 'ok', 'x', 0), (6, 518400, 'ok', 'x', 1);
             INSERT INTO key_versions (key_id, valid_from_sync, valid_to_sync, changed) VALUES
                 (1, 1, 3, '[]'), (1, 3, 4, '[\"used_quota\"]'),
                 (1, 4, 5, '[\"name\",\"used_quota\"]'), (1, 5, NULL, '[\"accessed_time\"]'),
                 (2, 1, 6, '[]');",
        )
        .unwrap();
        let use_fields = ["accessed_time", "remain_quota", "used_quota"];
        let pairs = |before: i64, limit: usize| -> Vec<(i64, i64)> {
            changing_syncs(&conn, (0, 10 * DAY), &use_fields, (0, before), limit)
                .unwrap()
                .iter()
                .map(|c| (c.before.id, c.sync.id))
                .collect()
        };
        // 6 removed a key and 4 renamed one; 3 and 5 changed only use. Sync 1 opens the
        // record, and the failed sync 2 is never a point: 3's sync before is 1.
        assert_eq!(pairs(i64::MAX, 10), [(5, 6), (3, 4)]);
        assert_eq!(pairs(i64::MAX, 1), [(5, 6)]);
        assert_eq!(pairs(6, 10), [(3, 4)]);
        let after_4 = changing_syncs(&conn, (0, 10 * DAY), &use_fields, (4, i64::MAX), 10);
        assert_eq!(after_4.unwrap().len(), 1);
        // Leaving nothing out, every sync with a new version counts.
        let every: Vec<i64> = changing_syncs(&conn, (0, 10 * DAY), &[], (0, i64::MAX), 10)
            .unwrap()
            .iter()
            .map(|c| c.sync.id)
            .collect();
        assert_eq!(every, [6, 5, 4, 3]);
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
