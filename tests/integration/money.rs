//! Money for people: `usage`, the preset reports and the HTML page write dollars as
//! `$1,234.56`, quota with thousands separators and shares to one decimal where people read
//! them (`table`, `markdown`, the page), while `csv` and `json` keep the exact stored values.
//! The expected text is computed here from the integer quota, never by keysync's formatter.

use serde_json::{Value as Json, json};

use crate::common::{Harness, NOW, TOKEN, run, table_cells};
use crate::daily_pulls::{DAY, HOUR, day_of, key};
use crate::html::{table_rows, texts, written_page};

/// `$1,234.56` for `used` quota units at `quota_per_unit`, from the integers: to the cent,
/// half away from zero; a non-zero amount under a cent is `<$0.01`.
pub fn dollars(used: i64, quota_per_unit: i64) -> String {
    let sign = if used < 0 { "-" } else { "" };
    let (used, per_unit) = (i128::from(used).abs(), i128::from(quota_per_unit));
    if used != 0 && used * 100 < per_unit {
        return format!("{sign}<$0.01");
    }
    let cents = (used * 200 + per_unit) / (2 * per_unit);
    format!("{sign}${}.{:02}", grouped(cents / 100), cents % 100)
}

/// `1,234,567`: thousands separated.
pub fn grouped(n: impl Into<i128>) -> String {
    let n = n.into();
    let digits = n.unsigned_abs().to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!("{}{}", if n < 0 { "-" } else { "" }, groups.join(","))
}

/// Four keys that use, between two pulls a day apart: 1,234,567,890 ($2,469.13578), half as
/// much, 7,500 ($0.015: a half cent that a binary 0.015 rounds down), and 1 ($0.000002).
const USED: [(&str, i64); 4] = [
    ("big", 1_234_567_890),
    ("mid", 617_283_945),
    ("half-cent", 7_500),
    ("tiny", 1),
];
const TOTAL: i64 = 1_851_859_336;

/// The second pull's start; "now" is an hour later.
fn second_pull() -> i64 {
    NOW + HOUR
}

fn now() -> String {
    (second_pull() + HOUR).to_string()
}

/// The two pulls; the keys' ids in [`USED`] order.
fn two_pulls() -> (Harness, Vec<i64>) {
    let mut account = keysync::testing::FakeAccount::new(TOKEN);
    let ids: Vec<i64> = USED
        .iter()
        .map(|(name, _)| account.insert(key(name, NOW - 400 * DAY, 0)))
        .collect();
    let h = Harness::new(account);
    h.pull(&["--now", &(second_pull() - DAY).to_string()]);
    for (id, (_, used)) in ids.iter().zip(USED) {
        h.server.account().set(*id, "used_quota", json!(used));
    }
    h.pull(&["--now", &second_pull().to_string()]);
    (h, ids)
}

fn usage(h: &Harness, args: &[&str]) -> String {
    run(h.keysync().args(["usage", "--now", &now()]).args(args), 0).stdout
}

#[test]
fn usage_writes_money_for_people_in_table_and_markdown_and_exact_values_elsewhere() {
    let (h, ids) = two_pulls();
    assert_eq!(dollars(USED[0].1, 500_000), "$2,469.14");
    assert_eq!(dollars(USED[2].1, 500_000), "$0.02");
    let shares = ["66.7", "33.3", "0.0", "0.0"];

    // The table: the window (now - 30d, now] touches 31 UTC days; all use is on the last,
    // each key's busiest (`▂` for a busiest day of 1 unit, the lowest bar of use).
    let trend = |last: &str| format!("{}{last}", "▁".repeat(30));
    let head = ["id", "name", "used", "usd", "share", "trend"];
    let mut want: Vec<Vec<String>> = vec![head.map(String::from).to_vec()];
    for ((id, (name, used)), share) in ids.iter().zip(USED).zip(shares) {
        let last = if used == 1 { "▂" } else { "█" };
        want.push(vec![
            id.to_string(),
            name.to_string(),
            grouped(used),
            dollars(used, 500_000),
            share.to_string(),
            trend(last),
        ]);
    }
    let total = [
        "",
        "total",
        "1,851,859,336",
        "$3,703.72",
        "100.0",
        &trend("█"),
    ];
    want.push(total.map(String::from).to_vec());
    assert_eq!(table_cells(&usage(&h, &[])), want);

    // Markdown: the same amounts (`<` as an entity), without the table's trend and totals.
    let markdown = usage(&h, &["--format", "markdown"]);
    let lines: Vec<&str> = markdown.lines().collect();
    assert_eq!(
        lines,
        [
            "| id | name | used | usd | share |".to_string(),
            "| --- | --- | --- | --- | --- |".to_string(),
            format!("| {} | big | 1,234,567,890 | $2,469.14 | 66.7 |", ids[0]),
            format!("| {} | mid | 617,283,945 | $1,234.57 | 33.3 |", ids[1]),
            format!("| {} | half-cent | 7,500 | $0.02 | 0.0 |", ids[2]),
            format!("| {} | tiny | 1 | &lt;$0.01 | 0.0 |", ids[3]),
        ]
    );
    let daily = usage(&h, &["--every", "day", "--format", "markdown"]);
    assert_eq!(
        daily.lines().nth(2),
        Some(
            format!(
                "| {} | {} | big | 1,234,567,890 | $2,469.14 |",
                day_of(second_pull()),
                ids[0]
            )
            .as_str()
        )
    );

    // CSV and JSON: the exact columns and values, `usd` to 6 decimals, `share` to 2.
    let csv_text = usage(&h, &["--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["id", "name", "used", "usd", "share"]
    );
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let exact = [
        ("1234567890", "2469.13578", "66.67"),
        ("617283945", "1234.56789", "33.33"),
        ("7500", "0.015", "0.0"),
        ("1", "0.000002", "0.0"),
    ];
    let want: Vec<Vec<String>> = ids
        .iter()
        .zip(USED)
        .zip(exact)
        .map(|((id, (name, _)), (used, usd, share))| {
            [&id.to_string(), name, used, usd, share]
                .map(|s| s.to_string())
                .to_vec()
        })
        .collect();
    assert_eq!(records, want);
    let rows: Vec<Json> = serde_json::from_str(&usage(&h, &["--format", "json"])).unwrap();
    assert_eq!(
        rows[0],
        json!({"id": ids[0], "name": "big", "used": 1_234_567_890_i64, "usd": 2469.13578,
               "share": 66.67})
    );
    assert_eq!(rows[3]["usd"].as_f64(), Some(0.000002));
    assert_eq!(TOTAL, USED.iter().map(|(_, used)| used).sum::<i64>());
}

#[test]
fn preset_reports_separate_quota_for_people_but_a_users_own_sql_is_shown_as_stored() {
    let (h, ids) = two_pulls();
    let query = |args: &[&str]| run(h.keysync().arg("query").args(args), 0).stdout;
    let top = table_cells(&query(&["--report", "top-consumers", "--limit", "1"]));
    assert_eq!(
        top[..2],
        [
            [
                "id",
                "name",
                "status_name",
                "used_quota",
                "remain_quota",
                "unlimited_quota",
                "accessed_iso"
            ]
            .map(String::from)
            .to_vec(),
            [
                &ids[0].to_string(),
                "big",
                "enabled",
                "1,234,567,890",
                "1,000,000",
                "0",
                &readable_iso(NOW - 400 * DAY)
            ]
            .map(String::from)
            .to_vec(),
        ]
    );
    let csv_text = query(&[
        "--report",
        "top-consumers",
        "--limit",
        "1",
        "--format",
        "csv",
    ]);
    let record = csv_text.lines().nth(1).unwrap();
    assert!(record.contains(",1234567890,1000000,0,"), "{record}");
    let own = table_cells(&query(&[
        "SELECT used_quota FROM keys ORDER BY used_quota DESC LIMIT 1",
    ]));
    assert_eq!(own[1], ["1234567890"]);
}

fn readable_iso(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn the_page_writes_its_totals_tooltips_axis_and_tables_as_people_read_money() {
    let (h, ids) = two_pulls();
    let page = written_page(&h, &["--now", &now()]);
    let texts = |css: &str| texts(&page, css);

    let intro = &texts("section#usage > p")[0];
    assert!(
        intro.contains(
            "each key that used anything. $3,703.72 in all (1,851,859,336 quota units). A key's \
             use between two pulls is counted on the day of the later one; a refund is negative \
             use, drawn below the axis."
        ),
        "{intro}"
    );
    let day = day_of(second_pull());
    let bars = texts("section#usage svg.wide g.bar > title");
    assert_eq!(
        bars.last().unwrap(),
        &format!("{day}: 1,851,859,336 quota, $3,703.72")
    );
    let blocks = texts("section#usage svg.wide g.bar rect > title");
    assert_eq!(
        blocks,
        [
            format!("{day}, big (#{}): 1,234,567,890 quota, $2,469.14", ids[0]),
            format!("{day}, mid (#{}): 617,283,945 quota, $1,234.57", ids[1]),
            format!("{day}, half-cent (#{}): 7,500 quota, $0.02", ids[2]),
            format!("{day}, tiny (#{}): 1 quota, <$0.01", ids[3]),
        ]
    );
    assert_eq!(
        texts("section#usage svg.wide text.tick[text-anchor=end]"),
        ["$0", "$1,000", "$2,000", "$3,000", "$4,000"]
    );

    let cells = table_rows(&page, "table#top-consumers");
    assert_eq!(
        cells[3],
        [&ids[3].to_string(), "tiny", "1", "<$0.01", "0.0"].map(String::from)
    );
    assert_eq!(
        cells[0],
        [
            &ids[0].to_string(),
            "big",
            "1,234,567,890",
            "$2,469.14",
            "66.7"
        ]
        .map(String::from)
    );
}
