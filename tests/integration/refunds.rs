//! The gateway's books: a refund lowers `used_quota` and is negative use (never a reset), a
//! pull without `used_quota` observes nothing, a sum past 64 bits is a clean error, and a
//! database whose ledger an older keysync wrote (a refund billed as a reset) is corrected by
//! its upgrade, and read corrected without one.

use keysync::testing::FakeAccount;
use serde_json::{Value as Json, json};

use crate::common::{Harness, TOKEN, int, run};
use crate::daily_pulls::{HOUR, day_of, key, pull_time};
use crate::usage::usage_rows;

/// One key created long before the first pull, whose `used_quota` the fake serves as each of
/// `values` at pulls 0, 1, ... (`None`: the field is null, `Some(None)` in `absent` days: the
/// item has no such field).
fn one_key_pulled(values: &[Option<i64>], absent_on: &[usize]) -> (Harness, i64) {
    let mut account = FakeAccount::new(TOKEN);
    let id = account.insert(key("billed", pull_time(0) - 400 * 86_400, 0));
    let h = Harness::new(account);
    for (d, value) in values.iter().enumerate() {
        let mut account = h.server.account();
        if absent_on.contains(&d) {
            let mut fields = account.remove(id).unwrap();
            fields.remove("used_quota");
            account.restore(fields);
        } else {
            account.set(id, "used_quota", json!(value));
        }
        drop(account);
        h.pull(&["--now", &pull_time(d as i64).to_string()]);
    }
    (h, id)
}

/// `(period, used, usd)` of `usage --every day`.
fn per_day(h: &Harness) -> Vec<(String, i64, f64)> {
    usage_rows(h, &["--every", "day"])
        .iter()
        .map(|r| {
            (
                r["period"].as_str().unwrap().to_string(),
                r["used"].as_i64().unwrap(),
                r["usd"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The ledger of the four pulls 1,000,000 → 2,000,000 → 1,999,990 → 2,000,000.
fn assert_refund_ledger(h: &Harness) {
    assert_eq!(
        h.rows("SELECT sync_id, used, running_total FROM use_ledger ORDER BY sync_id"),
        [
            [2, 1_000_000, 1_000_000],
            [3, -10, 999_990],
            [4, 10, 1_000_000]
        ]
        .map(|row| row.map(int).to_vec())
    );
}

#[test]
fn a_refund_is_negative_use_on_its_day_and_the_window_total_is_the_counters_difference() {
    // The four daily pulls: 1,000,000 → 2,000,000 → 1,999,990 → 2,000,000. The key
    // used $2.00 (a keysync that took the refund for a reset billed $6.00).
    let values = [1_000_000, 2_000_000, 1_999_990, 2_000_000].map(Some);
    let (h, id) = one_key_pulled(&values, &[]);
    assert_eq!(
        per_day(&h),
        [
            (day_of(pull_time(1)), 1_000_000, 2.0),
            (day_of(pull_time(2)), -10, -0.00002),
            (day_of(pull_time(3)), 10, 0.00002),
        ]
    );
    let rows = usage_rows(&h, &[]);
    assert_eq!(
        rows,
        [json!({"id": id, "name": "billed", "used": 1_000_000, "usd": 2.0, "share": 100.0})]
    );
    // The window of the refund alone: a net refund is a negative row.
    let since = (pull_time(1) + HOUR).to_string();
    let until = (pull_time(2) + HOUR).to_string();
    let refund = usage_rows(&h, &["--since", &since, "--until", &until]);
    assert_eq!(
        refund,
        [json!({"id": id, "name": "billed", "used": -10, "usd": -0.00002, "share": 100.0})]
    );
    assert_refund_ledger(&h);
}

#[test]
fn a_pull_without_used_quota_observes_nothing_and_the_next_value_counts_from_the_last() {
    // 500, then null, then no field at all, then 800: 300 used, dated at the pull of 800.
    let (h, id) = one_key_pulled(&[Some(500), None, None, Some(800)], &[2]);
    assert_eq!(
        per_day(&h),
        [(day_of(pull_time(3)), 300, 0.0006)],
        "not the key's lifetime of 800"
    );
    // top-consumers --since measures the same 300.
    let now = (pull_time(3) + HOUR).to_string();
    let since = (pull_time(3) + HOUR - pull_time(0)).to_string() + "s";
    let output = run(
        h.keysync().args([
            "query",
            "--now",
            &now,
            "--report",
            "top-consumers",
            "--since",
            &since,
            "--format",
            "json",
        ]),
        0,
    );
    let rows: Vec<Json> = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["id"].as_i64(), rows[0]["used_in_window"].as_i64()),
        (Some(id), Some(300))
    );
}

#[test]
fn use_that_adds_up_past_64_bits_is_a_one_line_database_error() {
    let mut account = FakeAccount::new(TOKEN);
    account.insert(key("first", pull_time(0) - HOUR, 0));
    let h = Harness::new(account);
    h.pull(&["--now", &pull_time(0).to_string()]);
    // Two keys created after pull 0, each with half of i64::MAX and more: each fits, the sum
    // does not.
    for name in ["big", "bigger"] {
        h.server
            .account()
            .insert(key(name, pull_time(0) + HOUR, 5_000_000_000_000_000_000));
    }
    h.pull(&["--now", &pull_time(1).to_string()]);
    let now = (pull_time(9) + HOUR).to_string();
    let output = run(h.keysync().args(["usage", "--now", &now]), 6);
    assert_eq!(
        output.stderr,
        "keysync: error: the quota in this window adds up to more than \
         9,223,372,036,854,775,807 units, which no 64-bit integer holds: check the keys' \
         used_quota with `keysync history`\n"
    );
    assert!(output.stdout.is_empty());
}

/// The V5 ledger's table and its rule (a negative difference was taken for a reset), as a
/// keysync of schema 7 wrote them.
fn downgrade_to_schema_7(h: &Harness) {
    let v5 = include_str!("../../migrations/V5__use_ledger.sql");
    let table_and_backfill = v5.replace("CREATE INDEX syncs_by_start ON syncs (started_at);", "");
    let conn = h.conn();
    conn.execute_batch(&format!(
        "DROP TABLE use_ledger;
         ALTER TABLE syncs DROP COLUMN quota_per_unit;
         ALTER TABLE syncs DROP COLUMN quota_display_type;
         ALTER TABLE syncs DROP COLUMN usd_exchange_rate;
         ALTER TABLE syncs DROP COLUMN gateway_version;
         {table_and_backfill}
         DELETE FROM refinery_schema_history WHERE version >= 8;"
    ))
    .unwrap();
}

#[test]
fn an_older_ledger_that_billed_a_refund_as_a_reset_is_corrected_by_the_upgrade_and_read_corrected_before_it()
 {
    let values = [1_000_000, 2_000_000, 1_999_990, 2_000_000].map(Some);
    let (h, _) = one_key_pulled(&values, &[]);
    downgrade_to_schema_7(&h);
    // What the old rule wrote: the refund's day billed 1,999,990.
    assert_eq!(
        h.rows("SELECT sync_id, used FROM use_ledger ORDER BY sync_id"),
        [[2, 1_000_000], [3, 1_999_990], [4, 10]].map(|row| row.map(int).to_vec())
    );
    let corrected = [
        (day_of(pull_time(1)), 1_000_000, 2.0),
        (day_of(pull_time(2)), -10, -0.00002),
        (day_of(pull_time(3)), 10, 0.00002),
    ];
    // A reader does not migrate: it reads the corrected ledger as TEMP, and the file stays at
    // schema 7 with its old ledger.
    let before = std::fs::read(&h.db).unwrap();
    assert_eq!(per_day(&h), corrected);
    assert_eq!(std::fs::read(&h.db).unwrap(), before);
    assert_eq!(
        h.count("SELECT max(version) FROM refinery_schema_history"),
        7
    );
    // The next pull upgrades the file, and its ledger is the corrected one.
    h.pull(&["--now", &pull_time(4).to_string()]);
    assert_refund_ledger(&h);
    assert_eq!(per_day(&h), corrected);
}
