//! What each key used, interval by interval: the one place the attribution rule of
//! `keysync usage` (README, "Usage and dollars") is written down.
//!
//! An interval runs between two consecutive good syncs A and B (the `good_syncs` view; a failed
//! sync is never A or B, and the first good sync is never B). A key's use in it is
//! `used_quota(B) - used_quota(A)`, or `used_quota(B)` when that is negative (the counter was
//! reset). A key present at B but not at A counts its whole `used_quota(B)` when its
//! `created_time` is after A's start, else nothing. The use is dated at B's start; a removed key
//! is present up to the last sync that saw it, so it counts until then.
//!
//! Each key's versions are read as one range of the primary key `(key_id, valid_from_sync)`,
//! from the one valid at the window's first A to its last B: the cost is a seek per key plus
//! the versions recorded in the window, and `key_versions` is never scanned, however long the
//! history is.

use rusqlite::Connection;

use crate::error::{DbContext, Result};
use crate::store::Store;

/// One key's use in the intervals whose later sync B started on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUse {
    /// The UTC midnight that starts B's day, unix seconds.
    pub day: i64,
    pub key_id: i64,
    /// The key's current name, or its last one when it was removed.
    pub name: Option<String>,
    pub used: i64,
}

/// `?1` and `?2` bound the window `(since, until]` on B's start. The uses are summed per key and
/// UTC day of B (the finest grain any output needs, and at most days × keys rows however often
/// the pulls ran); only days with some use come out, by day and then key.
///
/// A key's use at B is nonzero only when a version of it starts at B, so the query reads each
/// key's versions from the one valid at the first A to the last B (a range of the primary key)
/// and compares each with the version before it (`lag`): when that one ended exactly at B, it
/// was the key's state at A; otherwise the key was not live at A (new, or restored). Unchanged
/// keys cost nothing but their range seek. The CROSS JOINs fix the join order (keys, then their
/// versions), so SQLite never walks `key_versions` by another index.
const USAGE_SQL: &str = "
WITH pairs AS MATERIALIZED (
    SELECT b.id AS b_id, b.started_at AS b_start, a.id AS a_id, a.started_at AS a_start
    FROM good_syncs AS b
    JOIN syncs AS a
      ON a.id = (SELECT max(x.id) FROM good_syncs AS x WHERE x.id < b.id)
    WHERE b.started_at > ?1 AND b.started_at <= ?2
),
span AS (
    SELECT min(a_id) AS first_a, max(b_id) AS last_b FROM pairs
),
versions AS (
    SELECT v.key_id, v.valid_from_sync AS from_sync, v.created_time,
           coalesce(v.used_quota, 0) AS used_quota,
           lag(coalesce(v.used_quota, 0)) OVER key_order AS before_used,
           lag(v.valid_to_sync) OVER key_order AS before_to
    FROM span AS s
    CROSS JOIN keys AS k
    CROSS JOIN key_versions AS v
      ON v.key_id = k.id
     AND v.valid_from_sync >= coalesce(
             (SELECT max(y.valid_from_sync) FROM key_versions AS y
              WHERE y.key_id = k.id AND y.valid_from_sync <= s.first_a),
             s.first_a)
     AND v.valid_from_sync <= s.last_b
    WINDOW key_order AS (PARTITION BY k.id ORDER BY v.valid_from_sync)
),
uses AS (
    SELECT p.b_start, c.key_id,
           CASE
               WHEN c.before_to IS p.b_id THEN
                   CASE WHEN c.used_quota >= c.before_used THEN c.used_quota - c.before_used
                        ELSE c.used_quota
                   END
               WHEN c.created_time > p.a_start THEN c.used_quota
               ELSE 0
           END AS used
    FROM versions AS c
    CROSS JOIN pairs AS p ON p.b_id = c.from_sync
)
SELECT u.b_start - u.b_start % 86400 AS day, u.key_id, k.name, sum(u.used)
FROM uses AS u
JOIN keys AS k ON k.id = u.key_id
WHERE u.used > 0
GROUP BY day, u.key_id
ORDER BY day, u.key_id";

/// Every key's use per day of the intervals whose B started in `(since, until]`.
fn usage(conn: &Connection, since: i64, until: i64) -> Result<Vec<KeyUse>> {
    let context = "cannot read the quota use from the history";
    let mut statement = conn.prepare_cached(USAGE_SQL).db(context)?;
    let rows = statement
        .query_map([since, until], |row| {
            Ok(KeyUse {
                day: row.get(0)?,
                key_id: row.get(1)?,
                name: row.get(2)?,
                used: row.get(3)?,
            })
        })
        .db(context)?;
    rows.collect::<rusqlite::Result<_>>().db(context)
}

impl Store {
    /// Each key's use per UTC day, summed over the intervals of consecutive good syncs whose
    /// later sync started in `(since, until]`, by the rule in this module's comment.
    pub(crate) fn usage(&self, since: i64, until: i64) -> Result<Vec<KeyUse>> {
        usage(self.conn(), since, until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrated_in_memory;

    /// Syncs (id, started_at, status) and versions (key, from, to, created_time, used_quota);
    /// every key's `keys` row is derived from its versions.
    fn history(
        syncs: &[(i64, i64, &str)],
        versions: &[(i64, i64, Option<i64>, i64, i64)],
    ) -> Connection {
        let conn = migrated_in_memory();
        for (id, started_at, status) in syncs {
            conn.execute(
                "INSERT INTO syncs (id, started_at, status, base_url) VALUES (?1, ?2, ?3, 'x')",
                rusqlite::params![id, started_at, status],
            )
            .unwrap();
        }
        for (key, from, to, created, used) in versions {
            conn.execute(
                "INSERT INTO key_versions (key_id, valid_from_sync, valid_to_sync, name,
                                           created_time, used_quota)
                 VALUES (?1, ?2, ?3, 'k' || ?1, ?4, ?5)",
                rusqlite::params![key, from, to, created, used],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO keys (id, name, first_seen_sync, removed_sync)
             SELECT key_id, 'k' || key_id, min(valid_from_sync),
                    CASE WHEN count(*) = count(valid_to_sync) THEN max(valid_to_sync) END
             FROM key_versions GROUP BY key_id",
        )
        .unwrap();
        conn
    }

    fn uses(conn: &Connection, since: i64, until: i64) -> Vec<(i64, i64, i64)> {
        usage(conn, since, until)
            .unwrap()
            .into_iter()
            .map(|u| (u.day, u.key_id, u.used))
            .collect()
    }

    const DAY: i64 = 86_400;

    #[test]
    fn deltas_resets_newcomers_removals_and_failed_syncs_follow_the_rule() {
        // Syncs 1..5 a day apart; sync 3 failed, so the intervals are 1→2, 2→4, 4→5.
        let syncs = [
            (1, DAY, "ok"),
            (2, 2 * DAY, "ok"),
            (3, 3 * DAY, "failed"),
            (4, 4 * DAY, "partial"),
            (5, 5 * DAY, "ok"),
        ];
        let versions = [
            // Key 1: 100 → 150 → 40 (reset) → 40.
            (1, 1, Some(2), 0, 100),
            (1, 2, Some(4), 0, 150),
            (1, 4, None, 0, 40),
            // Key 2: first seen at 2, created between 1 and 2: counts its whole 70.
            (2, 2, None, DAY + 10, 70),
            // Key 3: first seen at 4 but created long before: its 500 predates the record.
            (3, 4, Some(5), 5, 500),
            (3, 5, None, 5, 530),
            // Key 4: 10 → 25, then removed at 5: counts only up to sync 4.
            (4, 1, Some(4), 0, 10),
            (4, 4, Some(5), 0, 25),
            // Key 5: removed at 2, restored at 5 with more use: not live at A (4), created
            // long before, so the restore counts nothing; only its use after that counts.
            (5, 1, Some(2), 0, 300),
            (5, 5, None, 0, 900),
        ];
        let conn = history(&syncs, &versions);
        assert_eq!(
            uses(&conn, 0, 10 * DAY),
            [
                (2 * DAY, 1, 50),
                (2 * DAY, 2, 70),
                (4 * DAY, 1, 40),
                (4 * DAY, 4, 15),
                (5 * DAY, 3, 30),
            ]
        );
        // The window is (since, until] on B's start.
        assert_eq!(
            uses(&conn, 2 * DAY, 4 * DAY),
            [(4 * DAY, 1, 40), (4 * DAY, 4, 15)]
        );
        // The first good sync is never B, even when the window holds only it.
        assert_eq!(uses(&conn, 0, DAY), []);
    }

    /// The steps of SQLite's plan for the usage query.
    fn query_plan(conn: &Connection) -> Vec<String> {
        let mut statement = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {USAGE_SQL}"))
            .unwrap();
        statement
            .query_map([1, 2], |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The history grows by every change of every key: reading use must cost index seeks per
    /// key and interval, never a pass over all of `key_versions`.
    #[test]
    fn reading_usage_never_scans_key_versions() {
        let conn = migrated_in_memory();
        let plan = query_plan(&conn);
        // `v` and `y` are the query's only references to `key_versions`; the other scans are
        // of the small CTEs (the window's syncs, its versions once read) and of `keys`.
        let scans: Vec<&String> = plan
            .iter()
            .filter(|step| {
                ["SCAN v", "SCAN y", "SCAN key_versions"].contains(&step.as_str())
                    || step.contains("key_versions_by_")
            })
            .collect();
        assert!(scans.is_empty(), "{plan:#?}");
        // Each key's versions are one range of the primary key, starting at the one valid at
        // the first A.
        let seeks = plan
            .iter()
            .filter(|step| step.contains("USING PRIMARY KEY (key_id=? AND valid_from_sync"))
            .count();
        assert_eq!(seeks, 2, "{plan:#?}");
    }
}
