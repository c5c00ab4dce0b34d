//! Calendar windows: `2026-11-01`, `today`, `yesterday` and `--month` in `usage`, `html`,
//! `diff`, the reports' `--since` and `--now`, over pulls on both sides of the month boundary
//! (two of them exactly at 00:00:00Z of a month's first day). Every key only climbs, so the use
//! of each interval is `used_quota(B) - used_quota(A)`, computed here by hand.

use std::collections::BTreeMap;

use scraper::{Html, Selector};
use serde_json::{Value as Json, json};

use crate::common::{Harness, TOKEN, run};
use crate::daily_pulls::key;
use keysync::testing::FakeAccount;

/// 2026-11-01T00:00:00Z.
const NOV_1: i64 = 1_793_491_200;
/// 2026-12-01T00:00:00Z.
const DEC_1: i64 = 1_796_083_200;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// "Now" for the reads: 2026-12-03T18:00:00Z.
const NOW: i64 = DEC_1 + 2 * DAY + 18 * HOUR;

/// The pulls, as (start, used_quota of alpha, of beta). Sync ids follow: sync 1 is the first.
const PULLS: [(i64, i64, i64); 8] = [
    (NOV_1 - 17 * DAY, 1_000, 500),               // 1: 2026-10-15 00:00
    (NOV_1, 3_000, 500),                          // 2: 2026-11-01 00:00, October's last B
    (NOV_1 + 6 * HOUR, 3_500, 900),               // 3
    (NOV_1 + 19 * DAY, 10_000, 1_900),            // 4: 2026-11-20
    (DEC_1, 12_000, 2_000),                       // 5: 2026-12-01 00:00, November's last B
    (DEC_1 + 6 * HOUR, 13_000, 2_000),            // 6
    (DEC_1 + DAY + 12 * HOUR, 20_000, 2_600),     // 7: 2026-12-02 12:00
    (DEC_1 + 2 * DAY + 12 * HOUR, 20_500, 5_600), // 8: 2026-12-03 12:00, the last
];

/// The keys' ids, by name.
struct Keys {
    alpha: i64,
    beta: i64,
}

fn pulled() -> (Harness, Keys) {
    let long_ago = NOV_1 - 400 * DAY;
    let mut account = FakeAccount::new(TOKEN);
    let alpha = account.insert(key("alpha", long_ago, 0));
    let beta = account.insert(key("beta", long_ago, 0));
    let h = Harness::new(account);
    for (at, used_alpha, used_beta) in PULLS {
        h.server
            .account()
            .set(alpha, "used_quota", json!(used_alpha));
        h.server.account().set(beta, "used_quota", json!(used_beta));
        h.pull(&["--now", &at.to_string()]);
    }
    (h, Keys { alpha, beta })
}

/// `keysync ARGS --format json` at [`NOW`] (unless ARGS name another `--now`): the rows.
fn json_rows(h: &Harness, args: &[&str]) -> Vec<Json> {
    let now = NOW.to_string();
    let now_args: &[&str] = if args.contains(&"--now") {
        &[]
    } else {
        &["--now", &now]
    };
    let done = run(
        h.keysync()
            .args(now_args)
            .args(args)
            .args(["--format", "json"]),
        0,
    );
    serde_json::from_str(&done.stdout).expect("the output is a JSON array")
}

/// `usage ARGS` as `(id, used)` per row, exactly as printed.
fn used(h: &Harness, args: &[&str]) -> Vec<(i64, i64)> {
    json_rows(h, &[&["usage"], args].concat())
        .iter()
        .map(|row| (row["id"].as_i64().unwrap(), row["used"].as_i64().unwrap()))
        .collect()
}

#[test]
fn a_month_is_exactly_its_since_and_until_window() {
    let (h, k) = pulled();
    // November's intervals: B at sync 3, 4 and 5 (2026-12-01 00:00 is inside: until is
    // inclusive); sync 2 at 2026-11-01 00:00 is October's (since is exclusive).
    let november = vec![(k.alpha, 500 + 6_500 + 2_000), (k.beta, 400 + 1_000 + 100)];
    assert_eq!(
        used(&h, &["--since", "2026-11-01", "--until", "2026-12-01"]),
        november
    );
    let whole = json_rows(
        &h,
        &["usage", "--since", "2026-11-01", "--until", "2026-12-01"],
    );
    assert_eq!(json_rows(&h, &["usage", "--month", "2026-11"]), whole);
    assert_eq!(json_rows(&h, &["usage", "--month", "last"]), whole);
    // The same rows in CSV, the invoice's format.
    let csv = |args: &[&str]| {
        let now = NOW.to_string();
        let done = run(
            h.keysync()
                .args(["--now", &now, "usage", "--format", "csv"])
                .args(args),
            0,
        );
        let mut reader = csv::Reader::from_reader(done.stdout.as_bytes());
        reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let invoice = csv(&["--month", "last"]);
    assert_eq!(
        invoice,
        csv(&["--since", "2026-11-01", "--until", "2026-12-01"])
    );
    assert_eq!(
        invoice
            .iter()
            .map(|r| (r[1].as_str(), r[2].parse::<i64>().unwrap()))
            .collect::<Vec<_>>(),
        [("alpha", 9_000), ("beta", 1_500)]
    );
    // Per day, the month ends on its last B, 2026-12-01 00:00 (dated that day).
    let days: BTreeMap<String, i64> =
        json_rows(&h, &["usage", "--month", "2026-11", "--every", "day"])
            .iter()
            .filter(|row| row["id"] == k.alpha)
            .map(|row| {
                let day = row["period"].as_str().unwrap().to_string();
                (day, row["used"].as_i64().unwrap())
            })
            .collect();
    assert_eq!(
        days,
        BTreeMap::from([
            ("2026-11-01".to_string(), 500),
            ("2026-11-20".to_string(), 6_500),
            ("2026-12-01".to_string(), 2_000),
        ])
    );
    // The running month ends at now: syncs 6, 7 and 8.
    let december = vec![(k.alpha, 1_000 + 7_000 + 500), (k.beta, 600 + 3_000)];
    assert_eq!(used(&h, &["--month", "2026-12"]), december);
    assert_eq!(used(&h, &["--since", "2026-12-01"]), december);
}

#[test]
fn dates_today_and_yesterday_are_midnight_utc_seen_from_now() {
    let (h, k) = pulled();
    // Since 2026-11-01 00:00 (exclusive): every interval from sync 3 on.
    assert_eq!(
        used(&h, &["--since", "2026-11-01"]),
        [(k.alpha, 20_500 - 3_000), (k.beta, 5_600 - 500)]
    );
    // Yesterday is 2026-12-02 00:00: syncs 7 and 8.
    assert_eq!(
        used(&h, &["--since", "yesterday"]),
        [(k.alpha, 7_000 + 500), (k.beta, 600 + 3_000)]
    );
    // Today is 2026-12-03 00:00: sync 8 only; --until today ends before it.
    assert_eq!(
        used(&h, &["--since", "today"]),
        [(k.beta, 3_000), (k.alpha, 500)]
    );
    assert_eq!(
        used(&h, &["--since", "yesterday", "--until", "today"]),
        [(k.alpha, 7_000), (k.beta, 600)]
    );
    // --now as a date: 2026-12-01 00:00, so `--since 30d` is exactly November.
    assert_eq!(
        used(&h, &["--now", "2026-12-01", "--since", "30d"]),
        [(k.alpha, 9_000), (k.beta, 1_500)]
    );
    assert_eq!(
        used(&h, &["--now", "2026-12-01", "--month", "last"]),
        [(k.alpha, 9_000), (k.beta, 1_500)]
    );
}

#[test]
fn diff_points_and_report_windows_take_calendar_times() {
    let (h, k) = pulled();
    // FROM 2026-11-01: sync 2 (started exactly then); TO today, 2026-12-03 00:00: sync 7.
    let now = NOW.to_string();
    let table = run(
        h.keysync()
            .args(["--now", &now, "diff", "2026-11-01", "today"])
            .args(["--fields", "used_quota"]),
        0,
    );
    assert_eq!(
        table.stdout.lines().next(),
        Some(
            "sync 2 (2026-11-01 00:00:00Z) → sync 7 (2026-12-02 12:00:00Z): 0 added, 2 changed, \
             0 removed"
        )
    );
    let rows = json_rows(
        &h,
        &["diff", "2026-11-01", "today", "--fields", "used_quota"],
    );
    assert_eq!(
        rows,
        json_rows(&h, &["diff", "2", "7", "--fields", "used_quota"])
    );
    let changes: Vec<(i64, &Json, &Json)> = rows
        .iter()
        .map(|row| (row["id"].as_i64().unwrap(), &row["old"], &row["new"]))
        .collect();
    assert_eq!(
        changes,
        [
            (k.alpha, &json!(3_000), &json!(20_000)),
            (k.beta, &json!(500), &json!(2_600))
        ]
    );
    // Yesterday, 2026-12-02 00:00, is sync 6.
    assert_eq!(
        json_rows(&h, &["diff", "yesterday", "--fields", "used_quota"]),
        json_rows(&h, &["diff", "6", "--fields", "used_quota"])
    );

    // top-consumers --since 2026-11-01 binds :since as the seconds back to it from now, so
    // its window opens at sync 2.
    let top = json_rows(
        &h,
        &[
            "query",
            "--report",
            "top-consumers",
            "--since",
            "2026-11-01",
        ],
    );
    let seconds = format!("{}s", NOW - NOV_1);
    assert_eq!(
        top,
        json_rows(
            &h,
            &["query", "--report", "top-consumers", "--since", &seconds]
        )
    );
    let measured: Vec<(i64, i64, i64)> = top
        .iter()
        .map(|row| {
            let number = |column: &str| row[column].as_i64().unwrap();
            (number("id"), number("used_in_window"), number("from_sync"))
        })
        .collect();
    assert_eq!(
        measured,
        [(k.alpha, 20_500 - 3_000, 2), (k.beta, 5_600 - 500, 2)]
    );
}

#[test]
fn a_month_names_its_window_in_the_html_page() {
    let (h, k) = pulled();
    let out = h.dir.path().join("november.html");
    let now = NOW.to_string();
    run(
        h.keysync()
            .args(["--now", &now, "html", "--month", "last", "--out"])
            .arg(&out),
        0,
    );
    let page = Html::parse_document(&std::fs::read_to_string(&out).unwrap());
    let select = |css: &str| Selector::parse(css).unwrap();
    let text = |css: &str| -> Vec<String> {
        page.select(&select(css))
            .map(|e| e.text().collect::<String>())
            .collect()
    };
    assert_eq!(
        text("dd#window"),
        ["after 2026-11-01 00:00:00Z up to 2026-12-01 00:00:00Z"]
    );
    // "Now" stays the time given: the account's state is judged then.
    assert_eq!(text("dd#now"), ["2026-12-03 18:00:00Z (--now)"]);
    let ids: Vec<String> = page
        .select(&select("table#top-consumers tbody tr td:first-child"))
        .map(|e| e.text().collect())
        .collect();
    assert_eq!(ids, [k.alpha.to_string(), k.beta.to_string()]);
}

#[test]
fn a_month_with_since_or_not_yet_begun_is_a_usage_error() {
    let (h, _) = pulled();
    let refused = |args: &[&str]| {
        let done = h.run(args, 2);
        assert_eq!(done.stdout, "", "{args:?}");
        done.stderr
    };
    let both = refused(&["usage", "--month", "last", "--since", "2026-11-01"]);
    assert_eq!(
        both.lines().next(),
        Some("keysync: error: the argument '--month <MONTH>' cannot be used with '--since <WHEN>'")
    );
    let until = refused(&["usage", "--month", "last", "--until", "today"]);
    assert!(
        until.contains("cannot be used with '--until <WHEN>'"),
        "{until}"
    );
    let html = refused(&[
        "html", "--out", "x.html", "--month", "last", "--since", "7d",
    ]);
    assert!(
        html.contains("cannot be used with '--since <WHEN>'"),
        "{html}"
    );

    assert_eq!(
        refused(&[
            "--now",
            "2026-11-15T08:00:00Z",
            "usage",
            "--month",
            "2026-12"
        ]),
        "keysync: error: --month 2026-12 begins at 2026-12-01 00:00:00Z, not before now \
         (2026-11-15 08:00:00Z): give a month up to 2026-11 (the latest runs to now), or last\n"
    );
    // At 00:00:00Z of its first day a month has not begun either.
    let at_start = refused(&[
        "--now",
        "2026-12-01",
        "html",
        "--out",
        "x.html",
        "--month",
        "2026-12",
    ]);
    assert!(
        at_start.starts_with("keysync: error: --month 2026-12 begins at"),
        "{at_start}"
    );

    for bad in ["2026-13", "last-ish", "2026-11-01"] {
        let error = refused(&["usage", "--month", bad]);
        assert_eq!(
            error.lines().next(),
            Some(
                format!(
                    "keysync: error: invalid value '{bad}' for '--month <MONTH>': expected a \
                     month as YYYY-MM from 1970-01 on (such as 2026-11), or last (the previous \
                     calendar month, UTC), got \"{bad}\""
                )
                .as_str()
            )
        );
    }
    // A report's window must start before now.
    assert_eq!(
        refused(&[
            "--now",
            "2026-12-03T18:00:00Z",
            "query",
            "--report",
            "top-consumers",
            "--since",
            "2026-12-04"
        ]),
        "keysync: error: --since 2026-12-04 00:00:00Z is not before now (2026-12-03 \
         18:00:00Z): give a time in the past, such as 7d, yesterday or 2025-12-01\n"
    );
    let no_day = refused(&["usage", "--since", "2026-02-29"]);
    assert!(
        no_day.contains("\"2026-02-29\" is not a day of the calendar"),
        "{no_day}"
    );
}
