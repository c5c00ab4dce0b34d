//! `keysync usage`: quota use and dollars per key and per day, read from the ten daily pulls of
//! `daily_pulls` (a refund, a key created between syncs, a key first seen long after its
//! creation, a removed key and a failed pull), against the use computed there by the guide's
//! rule.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde_json::{Value as Json, json};

use crate::common::{Harness, run, table_cells};
use crate::daily_pulls::{Expected, HOUR, by_the_rule, day_of, pull_time, ten_days, usd};
use crate::money::{dollars, grouped};

fn usage(h: &Harness, args: &[&str]) -> String {
    let now = (pull_time(9) + HOUR).to_string();
    run(h.keysync().args(["usage", "--now", &now]).args(args), 0).stdout
}

/// `keysync usage ARGS --format json` an hour after pull 9, as rows of JSON.
pub fn usage_rows(h: &Harness, args: &[&str]) -> Vec<Json> {
    serde_json::from_str(&usage(h, &[args, &["--format", "json"]].concat())).unwrap()
}

/// Per key, largest first then by id: `(id, used)`.
fn totals(uses: &[Expected]) -> Vec<(i64, i64)> {
    let mut per_key: BTreeMap<i64, i64> = BTreeMap::new();
    for u in uses {
        *per_key.entry(u.id).or_default() += u.used;
    }
    let mut totals: Vec<(i64, i64)> = per_key.into_iter().collect();
    totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    totals
}

#[test]
fn usage_per_key_per_day_and_in_dollars_follows_the_rule() {
    let (h, snapshots, names) = ten_days();
    let expected = by_the_rule(&snapshots);

    // The rule's own corner cases, as the test computed them.
    let at = |d: i64, id: i64| {
        expected
            .iter()
            .find(|u| u.at == pull_time(d) && names[&u.id] == names[&id])
            .map(|u| u.used)
    };
    let id_of = |name: &str| *names.iter().find(|(_, n)| *n == name).unwrap().0;
    assert_eq!(
        at(5, id_of("refunded")),
        Some(-10),
        "a refund is negative use"
    );
    assert_eq!(at(3, id_of("newcomer")), Some(2_500), "created between");
    assert_eq!(at(6, id_of("latecomer")), None, "predates the record");
    assert_eq!(at(7, id_of("latecomer")), Some(111));
    assert_eq!(at(6, id_of("removed")), Some(7_000));
    assert_eq!(at(5, id_of("before-failure")), Some(4_200));
    assert!(expected.iter().all(|u| u.id != id_of("idle")));
    assert!(expected.iter().all(|u| u.at != pull_time(0)), "never B");

    // Without --every, as JSON: every key with use, largest first, with dollars and shares.
    let rows: Vec<Json> = serde_json::from_str(&usage(&h, &["--format", "json"])).unwrap();
    let want = totals(&expected);
    let total: i64 = want.iter().map(|(_, used)| used).sum();
    let want_rows: Vec<Json> = want
        .iter()
        .map(|&(id, used)| {
            json!({
                "id": id,
                "name": names[&id],
                "used": used,
                "usd": usd(used, 500_000),
                "share": (used as f64 * 100.0 / total as f64 * 100.0).round() / 100.0,
            })
        })
        .collect();
    assert_eq!(rows, want_rows);
    assert_eq!(rows.len(), 6);

    // --top keeps the first rows; the shares stay those of the whole window.
    let top: Vec<Json> =
        serde_json::from_str(&usage(&h, &["--format", "json", "--top", "2"])).unwrap();
    assert_eq!(top, want_rows[..2]);

    // --every day, as CSV: one row per day and key, by day then use.
    let csv_text = usage(&h, &["--every", "day", "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["period", "id", "name", "used", "usd"]
    );
    // The dollars as numbers: CSV writes -0.00002 where Rust's Debug says -2e-5.
    let got: Vec<(Vec<String>, f64)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let text: Vec<String> = r.iter().take(4).map(String::from).collect();
            (text, r[4].parse().unwrap())
        })
        .collect();
    let mut daily = expected.clone();
    daily.sort_by(|a, b| {
        a.at.cmp(&b.at)
            .then(b.used.cmp(&a.used))
            .then(a.id.cmp(&b.id))
    });
    let want_daily: Vec<(Vec<String>, f64)> = daily
        .iter()
        .map(|u| {
            let text = vec![
                day_of(u.at),
                u.id.to_string(),
                names[&u.id].clone(),
                u.used.to_string(),
            ];
            (text, usd(u.used, 500_000))
        })
        .collect();
    assert_eq!(got, want_daily);

    // A window by RFC 3339 times, (pull 3, pull 7], priced at 1000 quota per dollar.
    let iso = |d: i64| {
        DateTime::from_timestamp(pull_time(d), 0)
            .unwrap()
            .to_rfc3339()
    };
    let window: Vec<Json> = serde_json::from_str(&usage(
        &h,
        &[
            "--since",
            &iso(3),
            "--until",
            &iso(7),
            "--quota-per-unit",
            "1000",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    let inside: Vec<Expected> = expected
        .iter()
        .filter(|u| u.at > pull_time(3) && u.at <= pull_time(7))
        .cloned()
        .collect();
    let want_window: Vec<(i64, i64, f64)> = totals(&inside)
        .into_iter()
        .map(|(id, used)| (id, used, usd(used, 1000)))
        .collect();
    let got_window: Vec<(i64, i64, f64)> = window
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["used"].as_i64().unwrap(),
                r["usd"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_window, want_window);

    // The table adds a trend per key and a totals row; other formats never do.
    let table = table_cells(&usage(&h, &[]));
    assert_eq!(
        table[0],
        ["id", "name", "used", "usd", "share", "trend"].map(String::from)
    );
    let last = table.last().unwrap();
    assert_eq!(last[1], "total");
    assert_eq!(last[2], grouped(total));
    assert_eq!(last[3], dollars(total, 500_000));
    assert_eq!(last[4], "100.0");
    // The window (now - 30d, now] touches 31 UTC days; the first use is on pull 1's day.
    assert_eq!(last[5].chars().count(), 31);
    assert!(last[5].chars().all(|c| "▁▂▃▄▅▆▇█".contains(c)));
    assert_eq!(table.len(), 1 + 6 + 1);
}

#[test]
fn the_profile_sets_the_price_and_the_flag_beats_it() {
    let (h, snapshots, _names) = ten_days();
    let expected = totals(&by_the_rule(&snapshots));
    let config = h.dir.path().join("config.toml");
    std::fs::write(&config, "[profiles.default]\nquota_per_unit = 2000\n").unwrap();
    let config = config.to_str().unwrap();
    let first_usd = |args: &[&str]| -> f64 {
        let rows: Vec<Json> = serde_json::from_str(&usage(
            &h,
            &[&["--config", config, "--format", "json"], args].concat(),
        ))
        .unwrap();
        rows[0]["usd"].as_f64().unwrap()
    };
    assert_eq!(first_usd(&[]), usd(expected[0].1, 2000));
    assert_eq!(first_usd(&["--quota-per-unit", "3"]), usd(expected[0].1, 3));

    // A price of zero would divide by zero: the file is refused with its line.
    std::fs::write(config, "[profiles.default]\nquota_per_unit = 0\n").unwrap();
    let refused = run(h.keysync().args(["usage", "--config", config]), 2);
    assert!(
        refused.stderr.contains("config.toml:2"),
        "{}",
        refused.stderr
    );
    assert!(refused.stdout.is_empty());
}

#[test]
fn windows_and_prices_that_cannot_work_are_usage_errors() {
    let h = Harness::with_keys(0);
    for args in [
        &["usage", "--since", "1d", "--until", "2d"][..],
        &["usage", "--quota-per-unit", "0"],
        &["usage", "--since", "last week"],
        &["usage", "--every", "fortnight"],
    ] {
        let output = run(h.keysync().args(args), 2);
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
