//! What each key used, day by day: the reads of the use ledger
//! (migrations/V8__refunds_and_prices.sql), where the attribution rule of `keysync usage`
//! (docs/guide.md, "Usage and dollars") is applied, once, as each pull is recorded.
//!
//! An interval runs between two consecutive good syncs A and B, and its use is dated at B's
//! start. Use is signed: the gateway never resets a key's `used_quota`, it lowers it only when
//! it refunds, so a negative interval is a refund. A window `(since, until]` holds the
//! intervals whose B started in it, so it is a range of sync ids, and the use of a key in a
//! range is the difference of its running totals at the range's ends. Cutting the window at
//! every UTC midnight, and wherever the price changes, gives the use per day at one price: a
//! key costs two primary-key seeks per cut, however many syncs and versions the window holds.

use std::num::NonZeroU64;

use rusqlite::Connection;

use crate::error::{DbContext, Error, Result};
use crate::store::Store;
use crate::store::price::PriceBook;

/// One key's use in the intervals whose later sync B started on one UTC day, at one price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyUse {
    /// The UTC midnight that starts B's day, unix seconds.
    pub day: i64,
    pub key_id: i64,
    /// The key's current name, or its last one when it was removed.
    pub name: Option<String>,
    /// Quota units; negative when the gateway refunded more than the key used.
    pub used: i64,
    /// The price in force at these intervals' B: quota units per US dollar.
    pub quota_per_unit: NonZeroU64,
}

/// The schema version that brought the corrected ledger; readers of older files build a TEMP
/// one.
const LEDGER_SCHEMA: i64 = 8;
const LEDGER_MIGRATION: &str = include_str!("../../migrations/V8__refunds_and_prices.sql");

const DAY: i64 = 86_400;

/// The one error of a sum of quota that leaves 64-bit integers.
pub(crate) fn too_much_quota() -> Error {
    Error::DatabaseState(
        "the quota in this window adds up to more than 9,223,372,036,854,775,807 units, \
         which no 64-bit integer holds: check the keys' used_quota with `keysync history`"
            .to_string(),
    )
}

/// A key's running total as of sync `{sync}`: the use of its ledger rows up to that sync. It is
/// read from the key's first row after the sync (its total before that row), or, when there is
/// none, from its last row. Reading forward keeps it exact after a prune has deleted the oldest
/// rows, whose use is still counted in every later row's total.
fn running_total_at(key: &str, sync: &str) -> String {
    format!(
        "coalesce((SELECT l.running_total - l.used FROM use_ledger AS l
                   WHERE l.key_id = {key} AND l.sync_id > {sync}
                   ORDER BY l.sync_id LIMIT 1),
                  (SELECT l.running_total FROM use_ledger AS l
                   WHERE l.key_id = {key} ORDER BY l.sync_id DESC LIMIT 1),
                  0)"
    )
}

/// `?1` is a JSON array of the cut times, ascending: the window's start, the last second of
/// each UTC day inside it, its end. Each cut becomes the latest good sync that started by then;
/// the keys whose totals differ between the first and the last cut (the only ones with use in
/// the window) get their total at every cut. The sync is found by walking `syncs_by_start`
/// back from the cut to the first good sync (reading `good_syncs` by status instead would
/// sort every good sync, once per cut). The CROSS JOINs fix the join order, so that
/// SQLite seeks each key's ledger rows instead of walking the ledger.
fn usage_sql() -> String {
    format!(
        "WITH cuts AS MATERIALIZED (
             SELECT CAST(j.key AS INTEGER) AS pos,
                    coalesce((SELECT g.id FROM syncs AS g
                              WHERE g.started_at <= j.value
                                AND EXISTS (SELECT 1 FROM good_syncs AS x WHERE x.id = g.id)
                              ORDER BY g.started_at DESC, g.id DESC LIMIT 1), 0) AS sync
             FROM json_each(?1) AS j
         ),
         ends AS MATERIALIZED (
             SELECT (SELECT sync FROM cuts ORDER BY pos LIMIT 1) AS first,
                    (SELECT sync FROM cuts ORDER BY pos DESC LIMIT 1) AS last
         ),
         active AS MATERIALIZED (
             SELECT k.id, k.name
             FROM ends AS e CROSS JOIN keys AS k
             WHERE e.last > e.first AND {at_last} <> {at_first}
         )
         SELECT a.id, a.name, c.pos, c.sync, {at_cut}
         FROM active AS a CROSS JOIN cuts AS c
         ORDER BY a.id, c.pos",
        at_last = running_total_at("k.id", "e.last"),
        at_first = running_total_at("k.id", "e.first"),
        at_cut = running_total_at("a.id", "c.sync"),
    )
}

/// The window's cut times: `since`, the last second of every UTC day that ends inside the
/// window, each of `price_changes` inside it, and `until`. Segment `i` runs from cut `i`
/// (exclusive) to cut `i + 1` and lies in one UTC day, at one price.
fn cuts(since: i64, until: i64, price_changes: &[i64]) -> Vec<i64> {
    let mut cuts = vec![since];
    let mut day_end = day_of(since + 1) + DAY - 1;
    while day_end < until {
        cuts.push(day_end);
        day_end += DAY;
    }
    cuts.extend(price_changes.iter().filter(|&&t| since < t && t < until));
    cuts.push(until);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// The UTC midnight that starts the day of `at`.
fn day_of(at: i64) -> i64 {
    at - at.rem_euclid(DAY)
}

/// A key's running total at one cut of the window (`cut` indexes the cut times; `sync` is the
/// good sync the cut stands for).
struct TotalAtCut {
    key_id: i64,
    name: Option<String>,
    cut: usize,
    sync: i64,
    total: i64,
}

/// Every key's use per day and price of the intervals whose B started in `(since, until]`.
fn usage(conn: &Connection, since: i64, until: i64, prices: &PriceBook) -> Result<Vec<KeyUse>> {
    if since >= until {
        return Ok(Vec::new());
    }
    let cuts = cuts(since, until, &prices.change_times());
    let totals = totals_at_cuts(conn, &cuts)?;
    // Rows come by key, then cut: each row's use is its total minus the previous cut's, falls
    // on the day of the segment that ends at its cut, at the price in force at its sync.
    let mut uses: Vec<KeyUse> = Vec::new();
    for pair in totals.windows(2) {
        let (before, at) = (&pair[0], &pair[1]);
        if before.key_id != at.key_id || at.total == before.total {
            continue;
        }
        let used = at
            .total
            .checked_sub(before.total)
            .ok_or_else(too_much_quota)?;
        let day = day_of(cuts[at.cut - 1] + 1);
        let quota_per_unit = prices.at(at.sync).quota_per_unit;
        match uses.last_mut() {
            Some(last)
                if (last.day, last.key_id, last.quota_per_unit)
                    == (day, at.key_id, quota_per_unit) =>
            {
                last.used = last.used.checked_add(used).ok_or_else(too_much_quota)?;
            }
            _ => uses.push(KeyUse {
                day,
                key_id: at.key_id,
                name: at.name.clone(),
                used,
                quota_per_unit,
            }),
        }
    }
    uses.retain(|u| u.used != 0);
    uses.sort_by_key(|u| (u.day, u.key_id, u.quota_per_unit));
    Ok(uses)
}

/// Each key with use in the window, with its running total at every cut.
fn totals_at_cuts(conn: &Connection, cuts: &[i64]) -> Result<Vec<TotalAtCut>> {
    let context = "cannot read the quota use from the history";
    let cut_list = serde_json::to_string(cuts).expect("integers serialize");
    let mut statement = conn.prepare(&usage_sql()).db(context)?;
    statement
        .query_map([cut_list], |row| {
            Ok(TotalAtCut {
                key_id: row.get(0)?,
                name: row.get(1)?,
                cut: usize::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                sync: row.get(3)?,
                total: row.get(4)?,
            })
        })
        .db(context)?
        .collect::<rusqlite::Result<_>>()
        .db(context)
}

/// Gives a connection to a file older than the ledger a TEMP ledger, built from the history
/// by the migration's own SQL: a reader never migrates a file (the next pull does).
fn install_temp_ledger(conn: &Connection) -> Result<()> {
    let ledger = &LEDGER_MIGRATION[LEDGER_MIGRATION
        .find("-- LEDGER")
        .expect("the migration marks where its ledger starts")..];
    let sql = ledger
        .replace(
            "DROP TABLE IF EXISTS use_ledger",
            "DROP TABLE IF EXISTS temp.use_ledger",
        )
        .replace("CREATE TABLE use_ledger", "CREATE TEMP TABLE use_ledger");
    conn.execute_batch(&sql)
        .db("cannot build the use ledger of this older database")
}

impl Store {
    /// Each key's use per UTC day and price, summed over the intervals of consecutive good
    /// syncs whose later sync started in `(since, until]`, by the rule in
    /// migrations/V8__refunds_and_prices.sql; ordered by day, then key, and only uses other
    /// than zero.
    pub(crate) fn usage(&self, since: i64, until: i64, prices: &PriceBook) -> Result<Vec<KeyUse>> {
        if self.schema_version()? < LEDGER_SCHEMA {
            install_temp_ledger(self.conn())?;
        }
        usage(self.conn(), since, until, prices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::price::{DEFAULT_QUOTA_PER_UNIT, price_book};
    use crate::store::{migrate_to, migrated_in_memory};

    /// Writes syncs (id, started_at, status) and versions (key, from, to, created_time,
    /// used_quota) into a database of schema version 4, as a keysync before the ledger did.
    /// Every key's `keys` row is derived from its versions.
    fn write_v4_history(
        conn: &mut Connection,
        syncs: &[(i64, i64, &str)],
        versions: &[(i64, i64, Option<i64>, i64, i64)],
    ) {
        migrate_to(conn, Some(4));
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
    }

    /// The history written by a keysync of schema 4, then migrated: the ledger is the
    /// migration's.
    fn history(
        syncs: &[(i64, i64, &str)],
        versions: &[(i64, i64, Option<i64>, i64, i64)],
    ) -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        write_v4_history(&mut conn, syncs, versions);
        migrate_to(&mut conn, None);
        conn
    }

    fn uses(conn: &Connection, since: i64, until: i64) -> Vec<(i64, i64, i64)> {
        usage(
            conn,
            since,
            until,
            &PriceBook::fixed(DEFAULT_QUOTA_PER_UNIT),
        )
        .unwrap()
        .into_iter()
        .map(|u| (u.day, u.key_id, u.used))
        .collect()
    }

    /// Syncs 1..5 a day apart; sync 3 failed, so the intervals are 1→2, 2→4, 4→5.
    const SYNCS: [(i64, i64, &str); 5] = [
        (1, DAY, "ok"),
        (2, 2 * DAY, "ok"),
        (3, 3 * DAY, "failed"),
        (4, 4 * DAY, "partial"),
        (5, 5 * DAY, "ok"),
    ];
    const VERSIONS: [(i64, i64, Option<i64>, i64, i64); 10] = [
        // Key 1: 100 → 150 → 40 (a refund of 110) → 40.
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

    #[test]
    fn deltas_refunds_newcomers_removals_and_failed_syncs_follow_the_rule() {
        let conn = history(&SYNCS, &VERSIONS);
        assert_eq!(
            uses(&conn, 0, 10 * DAY),
            [
                (2 * DAY, 1, 50),
                (2 * DAY, 2, 70),
                (4 * DAY, 1, -110),
                (4 * DAY, 4, 15),
                (5 * DAY, 3, 30),
            ]
        );
        // The window is (since, until] on B's start.
        assert_eq!(
            uses(&conn, 2 * DAY, 4 * DAY),
            [(4 * DAY, 1, -110), (4 * DAY, 4, 15)]
        );
        // The first good sync is never B, even when the window holds only it.
        assert_eq!(uses(&conn, 0, DAY), []);
    }

    #[test]
    fn after_a_prune_the_oldest_good_sync_left_only_opens_the_record() {
        // Cut at sync 4: syncs 1..3 go, and 4 becomes the first good sync.
        let mut conn = history(&SYNCS, &VERSIONS);
        crate::store::prune::prune(&mut conn, 4 * DAY).unwrap();
        assert_eq!(uses(&conn, 0, 10 * DAY), [(5 * DAY, 3, 30)]);
        // Cut at the failed sync 3: it stays, but the first good sync left is still 4.
        let mut conn = history(&SYNCS, &VERSIONS);
        crate::store::prune::prune(&mut conn, 3 * DAY).unwrap();
        assert_eq!(uses(&conn, 0, 10 * DAY), [(5 * DAY, 3, 30)]);
    }

    #[test]
    fn a_reader_of_a_file_older_than_the_ledger_builds_it_without_migrating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        write_v4_history(&mut Connection::open(&path).unwrap(), &SYNCS, &VERSIONS);
        let store = Store::open_read_only(&path).unwrap();
        let read: Vec<(i64, i64, i64)> = store
            .usage(0, 10 * DAY, &PriceBook::fixed(DEFAULT_QUOTA_PER_UNIT))
            .unwrap()
            .into_iter()
            .map(|u| (u.day, u.key_id, u.used))
            .collect();
        let migrated = history(&SYNCS, &VERSIONS);
        assert_eq!(read, uses(&migrated, 0, 10 * DAY));
        assert_eq!(store.schema_version().unwrap(), 4);
        // Twice on one connection: the TEMP ledger is rebuilt, not duplicated.
        assert_eq!(
            store
                .usage(0, 10 * DAY, &PriceBook::fixed(DEFAULT_QUOTA_PER_UNIT))
                .unwrap()
                .len(),
            read.len()
        );
    }

    /// The V8 migration's ledger, rebuilt from the versions as they are now.
    fn rebuild_ledger(conn: &Connection) {
        let ledger = &LEDGER_MIGRATION[LEDGER_MIGRATION.find("-- LEDGER").unwrap()..];
        conn.execute_batch(ledger).unwrap();
    }

    #[test]
    fn a_version_without_used_quota_observed_nothing() {
        // Key 1: 100 → 150 → NULL (sync 4) → 40 (sync 5): the refund of 110 falls on sync 5,
        // compared with sync 2's 150.
        let conn = history(&SYNCS, &VERSIONS);
        conn.execute_batch(
            "UPDATE key_versions SET valid_to_sync = 5 WHERE key_id = 1 AND valid_from_sync = 4;
             UPDATE key_versions SET used_quota = NULL WHERE key_id = 1 AND valid_from_sync = 4;
             INSERT INTO key_versions (key_id, valid_from_sync, name, created_time, used_quota)
             VALUES (1, 5, 'k1', 0, 40);",
        )
        .unwrap();
        rebuild_ledger(&conn);
        let key_1 = |conn: &Connection| -> Vec<(i64, i64, i64)> {
            uses(conn, 0, 10 * DAY)
                .into_iter()
                .filter(|u| u.1 == 1)
                .collect()
        };
        assert_eq!(key_1(&conn), [(2 * DAY, 1, 50), (5 * DAY, 1, -110)]);
        // A key first seen without a value, created after A: its first value counts whole.
        conn.execute_batch(
            "UPDATE key_versions SET used_quota = NULL WHERE key_id = 2;
             INSERT INTO syncs (id, started_at, status, base_url) VALUES (6, 6 * 86400, 'ok', 'x');
             UPDATE key_versions SET valid_to_sync = 6 WHERE key_id = 2;
             INSERT INTO key_versions (key_id, valid_from_sync, name, created_time, used_quota)
             VALUES (2, 6, 'k2', 86410, 75);",
        )
        .unwrap();
        rebuild_ledger(&conn);
        let key_2: Vec<(i64, i64, i64)> = uses(&conn, 0, 10 * DAY)
            .into_iter()
            .filter(|u| u.1 == 2)
            .collect();
        assert_eq!(key_2, [(6 * DAY, 2, 75)]);
    }

    #[test]
    fn each_interval_is_converted_at_the_price_in_force_at_its_later_sync() {
        let conn = history(&SYNCS, &VERSIONS);
        // The gateway published 250000 at sync 4, as a V8 pull records it.
        conn.execute_batch("UPDATE syncs SET quota_per_unit = 250000 WHERE id = 4")
            .unwrap();
        let book = price_book(&conn, LEDGER_SCHEMA, None).unwrap();
        let priced: Vec<(i64, i64, i64, u64)> = usage(&conn, 0, 10 * DAY, &book)
            .unwrap()
            .into_iter()
            .map(|u| (u.day, u.key_id, u.used, u.quota_per_unit.get()))
            .collect();
        assert_eq!(
            priced,
            [
                (2 * DAY, 1, 50, 500_000),
                (2 * DAY, 2, 70, 500_000),
                (4 * DAY, 1, -110, 250_000),
                (4 * DAY, 4, 15, 250_000),
                (5 * DAY, 3, 30, 250_000),
            ]
        );
    }

    /// The steps of SQLite's plan for the usage query.
    fn query_plan(conn: &Connection) -> Vec<String> {
        let mut statement = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", usage_sql()))
            .unwrap();
        statement
            .query_map(["[1, 2]"], |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The ledger grows by every key's use at every sync: reading a window must cost seeks
    /// per key and cut, never a pass over the ledger, the history or the syncs.
    #[test]
    fn reading_usage_seeks_the_ledger_and_never_scans_it() {
        let conn = migrated_in_memory();
        let plan = query_plan(&conn);
        let scans: Vec<&String> = plan
            .iter()
            .filter(|step| {
                step.starts_with("SCAN l")
                    || step.starts_with("SCAN g")
                    || step.contains("key_versions")
                    || step.contains("SCAN use_ledger")
                    || step.contains("SCAN syncs")
            })
            .collect();
        assert!(scans.is_empty(), "{plan:#?}");
        let seeks = |what: &str| plan.iter().filter(|step| step.contains(what)).count();
        // Three running totals, each a forward and a backward seek of one key's rows.
        assert_eq!(
            seeks("SEARCH l USING PRIMARY KEY (key_id=? AND sync_id>?)"),
            3,
            "{plan:#?}"
        );
        assert_eq!(
            seeks("SEARCH l USING PRIMARY KEY (key_id=?)"),
            3,
            "{plan:#?}"
        );
        assert_eq!(
            seeks("SEARCH g USING COVERING INDEX syncs_by_start (started_at<?)"),
            1,
            "{plan:#?}"
        );
    }

    #[test]
    fn windows_are_cut_at_every_utc_midnight_inside_them() {
        assert_eq!(cuts(DAY + 5, DAY + 10, &[]), [DAY + 5, DAY + 10]);
        assert_eq!(
            cuts(DAY + 5, 3 * DAY, &[]),
            [DAY + 5, 2 * DAY - 1, 3 * DAY - 1, 3 * DAY]
        );
        // A window that starts at a day's last second starts with the next day.
        assert_eq!(
            cuts(2 * DAY - 1, 2 * DAY + 1, &[]),
            [2 * DAY - 1, 2 * DAY + 1]
        );
        // Price changes cut inside the window only, once each.
        assert_eq!(
            cuts(DAY + 5, 3 * DAY, &[DAY, DAY + 7, 2 * DAY - 1, 4 * DAY]),
            [DAY + 5, DAY + 7, 2 * DAY - 1, 3 * DAY - 1, 3 * DAY]
        );
        assert_eq!(day_of(2 * DAY - 1 + 1), 2 * DAY);
    }
}
