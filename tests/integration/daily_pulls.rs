//! The ten daily pulls with known quota use that `usage` and `html` are tested on: a refund, a
//! key created between syncs, a key first seen long after its creation, a removed key
//! and a failed pull. The expected use is computed here, by the rule in docs/guide.md ("Usage
//! and dollars"), from what the fake served at each good pull, never from the database.

use std::collections::BTreeMap;

use chrono::DateTime;
use keysync::testing::FakeAccount;
use serde_json::{Map, Value as Json, json};

use crate::common::{Harness, NOW, TOKEN};

pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// The start of daily pull `d` (0..=9), 01:00 UTC of its day.
pub fn pull_time(d: i64) -> i64 {
    NOW - 9 * DAY + d * DAY + HOUR
}

pub fn key(name: &str, created_time: i64, used_quota: i64) -> Map<String, Json> {
    let fields = json!({
        "key": format!("{name:x<48}").chars().filter(char::is_ascii_alphanumeric).collect::<String>(),
        "status": 1,
        "name": name,
        "created_time": created_time,
        "accessed_time": created_time,
        "expired_time": -1,
        "remain_quota": 1_000_000,
        "unlimited_quota": false,
        "model_limits_enabled": false,
        "model_limits": "",
        "allow_ips": "",
        "used_quota": used_quota,
        "group": "",
        "cross_group_retry": false,
    });
    fields.as_object().unwrap().clone()
}

/// What the fake served at one good pull: its start, and each key's created_time and
/// used_quota.
pub struct Snapshot {
    pub at: i64,
    pub keys: BTreeMap<i64, (i64, i64)>,
}

/// Pulls with `--now at` and returns what the fake served.
pub fn pull_at(h: &Harness, at: i64) -> Snapshot {
    h.pull(&["--now", &at.to_string()]);
    let account = h.server.account();
    let keys = account
        .ids()
        .into_iter()
        .map(|id| {
            let fields = account.get(id).unwrap();
            let number = |field: &str| fields[field].as_i64().unwrap();
            (id, (number("created_time"), number("used_quota")))
        })
        .collect();
    Snapshot { at, keys }
}

/// One key's use in one interval by the rule, dated at the later pull's start.
#[derive(Clone, Debug)]
pub struct Expected {
    pub at: i64,
    pub id: i64,
    pub used: i64,
}

/// The rule, applied to consecutive good snapshots.
pub fn by_the_rule(snapshots: &[Snapshot]) -> Vec<Expected> {
    let mut uses = Vec::new();
    for pair in snapshots.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        for (&id, &(created, used_b)) in &b.keys {
            let used = match a.keys.get(&id) {
                Some(&(_, used_a)) => used_b - used_a,
                None if created > a.at => used_b,
                None => 0,
            };
            if used != 0 {
                uses.push(Expected { at: b.at, id, used });
            }
        }
    }
    uses
}

/// Ten daily pulls (and one failed pull between the fifth and sixth). Returns the harness,
/// the good snapshots and the keys' names.
pub fn ten_days() -> (Harness, Vec<Snapshot>, BTreeMap<i64, String>) {
    let long_ago = NOW - 400 * DAY;
    let mut account = FakeAccount::new(TOKEN);
    let steady = account.insert(key("steady", long_ago, 10_000));
    let refunded = account.insert(key("refunded", long_ago, 900_000));
    let removed = account.insert(key("removed", long_ago, 5_000));
    let idle = account.insert(key("idle", long_ago, 77));
    let h = Harness::new(account);
    let mut names: BTreeMap<i64, String> = [
        (steady, "steady"),
        (refunded, "refunded"),
        (removed, "removed"),
        (idle, "idle"),
    ]
    .into_iter()
    .map(|(id, name)| (id, name.to_string()))
    .collect();
    let set = |id: i64, used: i64| h.server.account().set(id, "used_quota", json!(used));

    let mut snapshots = Vec::new();
    let (mut newcomer, mut latecomer) = (None, None);
    for d in 0..10 {
        set(steady, 10_000 + 1_500 * d * d);
        // `refunded` is given back 10 before pull 5 (its counter goes down: the gateway
        // refunds, it never resets), then climbs again.
        set(
            refunded,
            if d < 5 {
                900_000 + 40_000 * d
            } else {
                1_059_990 + 300 * (d - 5)
            },
        );
        if d < 7 {
            set(removed, 5_000 + 7_000 * d);
        }
        if d == 7 {
            h.server.account().remove(removed);
        }
        if d == 3 {
            // Created between pulls 2 and 3: all of its use counts, dated at pull 3.
            let id = h
                .server
                .account()
                .insert(key("newcomer", pull_time(2) + 2 * HOUR, 2_500));
            names.insert(id, "newcomer".into());
            newcomer = Some(id);
        }
        if let Some(id) = newcomer {
            set(id, 2_500 + 1_000 * (d - 3));
        }
        if d == 6 {
            // First seen at pull 6 but created long before: its 9,999 predates the record.
            let id = h.server.account().insert(key("latecomer", long_ago, 9_999));
            names.insert(id, "latecomer".into());
            latecomer = Some(id);
        }
        if let Some(id) = latecomer {
            set(id, 9_999 + 111 * (d - 6));
        }
        if d == 5 {
            // Created after pull 4 but before the failed pull: the failed pull is not A, so
            // it was created between A (pull 4) and B (pull 5) and all of its use counts.
            let id =
                h.server
                    .account()
                    .insert(key("before-failure", pull_time(4) + 2 * HOUR, 4_200));
            names.insert(id, "before-failure".into());
            // A failed pull is never A or B: pull 4 to pull 5 stays one interval.
            h.server.account().faults.success_false_page = Some(1);
            let failed_at = (pull_time(4) + 12 * HOUR).to_string();
            h.pull_run(&["--retries", "0", "--now", &failed_at], 4);
            h.server.account().faults.success_false_page = None;
        }
        snapshots.push(pull_at(&h, pull_time(d)));
    }
    assert_eq!(
        h.count("SELECT count(*) FROM syncs WHERE status = 'failed'"),
        1
    );
    (h, snapshots, names)
}

pub fn usd(used: i64, quota_per_unit: i64) -> f64 {
    (used as f64 / quota_per_unit as f64 * 1e6).round() / 1e6
}

pub fn day_of(at: i64) -> String {
    DateTime::from_timestamp(at, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}
