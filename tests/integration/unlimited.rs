//! Unlimited keys: the gateway still charges a key with `unlimited_quota`, so its
//! `remain_quota` goes below zero (console-made keys are unlimited by default). Nothing may
//! call such a key exhausted or low on quota: `status`, the `key_info` view, the `low-quota`
//! and `forecast` reports and the HTML page's status chart, each checked against a limited key
//! that really is overdrawn.

use serde_json::{Value as Json, json};

use crate::common::{Harness, NOW, TOKEN, run};
use crate::daily_pulls::{DAY, HOUR, key};
use crate::html::{texts, written_page};

/// The second pull's start; "now" is an hour later.
const SECOND: i64 = NOW + HOUR;
const FIRST: i64 = SECOND - DAY;

/// `(name, unlimited, remain_quota at the first pull and the second, used_quota likewise)`.
const KEYS: [(&str, bool, [i64; 2], [i64; 2]); 4] = [
    (
        "unlimited-overdrawn",
        true,
        [-500_000, -2_500_000],
        [500_000, 2_500_000],
    ),
    ("unlimited-at-zero", true, [0, 0], [0, 0]),
    ("limited-overdrawn", false, [990, -10], [10, 1_010]),
    ("limited-low", false, [150_000, 100_000], [0, 50_000]),
];

/// Two pulls a day apart; the keys' ids in [`KEYS`] order.
fn two_pulls() -> (Harness, Vec<i64>) {
    let mut account = keysync::testing::FakeAccount::new(TOKEN);
    let ids: Vec<i64> = KEYS
        .iter()
        .map(|(name, unlimited, _, _)| {
            let mut fields = key(name, NOW - 400 * DAY, 0);
            fields.insert("unlimited_quota".into(), json!(unlimited));
            account.insert(fields)
        })
        .collect();
    let h = Harness::new(account);
    for (pull, at) in [FIRST, SECOND].into_iter().enumerate() {
        for (id, (_, _, remain, used)) in ids.iter().zip(KEYS) {
            let mut account = h.server.account();
            account.set(*id, "remain_quota", json!(remain[pull]));
            account.set(*id, "used_quota", json!(used[pull]));
        }
        h.pull(&["--now", &at.to_string()]);
    }
    (h, ids)
}

fn now() -> String {
    (SECOND + HOUR).to_string()
}

fn query_json(h: &Harness, args: &[&str]) -> Json {
    run(
        h.keysync()
            .args(["query", "--now", &now(), "--format", "json"])
            .args(args),
        0,
    )
    .json()
}

#[test]
fn status_and_the_key_info_view_never_call_an_unlimited_key_exhausted() {
    let (h, _) = two_pulls();
    let status = run(h.keysync().args(["status", "--json"]), 0).json();
    assert_eq!(
        status["keys"],
        json!({"live": 4, "removed": 0, "by_status": {"enabled": 3, "exhausted": 1}})
    );
    let lines = run(h.keysync().arg("status"), 0).stdout;
    assert_eq!(
        lines.lines().nth(1),
        Some("keys:           4 live (3 enabled, 1 exhausted), 0 removed")
    );
    let keys = query_json(
        &h,
        &["SELECT name, remain_quota, is_exhausted, effective_status FROM key_info ORDER BY id"],
    );
    assert_eq!(
        keys,
        json!([
            {"name": "unlimited-overdrawn", "remain_quota": -2_500_000, "is_exhausted": 0,
             "effective_status": "enabled"},
            {"name": "unlimited-at-zero", "remain_quota": 0, "is_exhausted": 0,
             "effective_status": "enabled"},
            {"name": "limited-overdrawn", "remain_quota": -10, "is_exhausted": 1,
             "effective_status": "exhausted"},
            {"name": "limited-low", "remain_quota": 100_000, "is_exhausted": 0,
             "effective_status": "enabled"},
        ])
    );
}

#[test]
fn low_quota_and_forecast_list_only_limited_keys() {
    let (h, ids) = two_pulls();
    let low = query_json(&h, &["--report", "low-quota"]);
    assert_eq!(
        low,
        json!([
            {"id": ids[2], "name": "limited-overdrawn", "remain_quota": -10, "used_quota": 1_010,
             "is_exhausted": 1},
            {"id": ids[3], "name": "limited-low", "remain_quota": 100_000, "used_quota": 50_000,
             "is_exhausted": 0},
        ])
    );
    // A threshold below zero still finds only the limited key that is overdrawn.
    let below_zero = query_json(&h, &["--report", "low-quota", "--below", "-5"]);
    assert_eq!(below_zero.as_array().map(Vec::len), Some(1));
    assert_eq!(below_zero[0]["id"], ids[2]);

    // Use per day over the day between the pulls: 1,000 and 50,000; the unlimited key's
    // 2,000,000 a day and its negative remain are never a forecast.
    let iso = |at: i64| {
        chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let now: i64 = now().parse().unwrap();
    let forecast = query_json(&h, &["--report", "forecast"]);
    assert_eq!(
        forecast,
        json!([
            {"id": ids[2], "name": "limited-overdrawn", "remain_quota": -10, "per_day": 1000.0,
             "days_left": 0.0, "runs_out_iso": iso(now)},
            {"id": ids[3], "name": "limited-low", "remain_quota": 100_000, "per_day": 50000.0,
             "days_left": 2.0, "runs_out_iso": iso(now + 2 * DAY)},
        ])
    );
}

#[test]
fn the_pages_status_chart_and_counts_never_call_an_unlimited_key_exhausted() {
    let (h, _) = two_pulls();
    let page = written_page(&h, &["--now", &now()]);
    let texts = |css: &str| texts(&page, css);
    let counts = |titles: Vec<String>| -> Vec<String> {
        titles
            .iter()
            .map(|t| t.split_once("): ").unwrap().1.to_string())
            .collect()
    };
    // At the first pull the limited key still had 990 left; at the second it is overdrawn.
    assert_eq!(
        counts(texts("section#status svg.wide g.bar > title")),
        [
            "4 enabled, 0 disabled, 0 expired, 0 exhausted, 0 unknown",
            "3 enabled, 0 disabled, 0 expired, 1 exhausted, 0 unknown",
        ]
    );
    let now_rows: Vec<String> = texts("table#status-now tbody tr");
    assert_eq!(
        now_rows,
        [
            "enabled3",
            "disabled0",
            "expired0",
            "exhausted1",
            "unknown0"
        ]
    );
}
