//! `keysync html` as people read it first, over the history of issue 27's user: a 250-key
//! account pulled daily for 12 days (the window of 30 days starts long before), one day's pull
//! failed, one key refunded more than it used that day, names with markup, bidi and control
//! characters. The summary tiles against what `usage`, `status` and the reports print; the
//! chart's no-data days, failed pull, multi-day bar and refund; money and statuses in words;
//! the expiring and exposed sections' order; the key panels; one snapshot while a pull commits.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use keysync::testing::FakeAccount;
use scraper::{ElementRef, Html};
use serde_json::json;

use crate::common::{Harness, NOW, SEED, TOKEN, real_tool, run, table_cells};
use crate::daily_pulls::{DAY, HOUR, day_of, key};
use crate::html::{sel, table_rows, texts, written_page};
use crate::money::{dollars, grouped};

/// The generated keys; a few more are made for the story.
pub const KEYS: usize = 250;
/// The day whose pull fails (and has no good one).
const FAILED_DAY: i64 = 6;
/// The day `refunded` is given back more than it used.
const REFUND_DAY: i64 = 9;
const PRICE: i64 = 500_000;
/// A name with markup and an address, one with bidi overrides and isolates, one with a
/// terminal escape and a NUL.
const HOSTILE_NAME: &str = r#"<b>bold</b> & "quoted" https://evil.test"#;
const BIDI_NAME: &str = "invoice\u{202e}fdp.exe\u{202c} \u{2066}x\u{2069}";
const CONTROL_NAME: &str = "bell\x07\x1b[31mred\0end";

/// The start of daily pull `d` (0..=11), 01:00 UTC.
pub fn pull_day(d: i64) -> i64 {
    NOW - 11 * DAY + d * DAY + HOUR
}

/// "Now" for the page: an hour after the last pull.
pub fn page_now() -> i64 {
    pull_day(11) + HOUR
}

/// The keys the story makes, by role.
pub struct Story {
    pub h: Harness,
    pub roles: BTreeMap<&'static str, i64>,
}

/// One of the story's keys: `(role, name, expiry from now in days (None: never), unlimited,
/// allow_ips, remain_quota)`.
type Role = (
    &'static str,
    &'static str,
    Option<i64>,
    bool,
    &'static str,
    i64,
);

/// The story's keys, besides the generated ones.
const ROLES: [Role; 9] = [
    ("hostile", HOSTILE_NAME, None, true, "", 0),
    ("bidi", BIDI_NAME, None, true, "", 0),
    (
        "control",
        CONTROL_NAME,
        Some(40),
        false,
        "10.0.0.1",
        9_000_000,
    ),
    ("refunded", "refunded", None, false, "10.0.0.2", 50_000_000),
    ("soon-2", "soon-2", Some(2), false, "", 9_000_000),
    ("soon-5", "soon-5", Some(5), false, "", 9_000_000),
    ("soon-10", "soon-10", Some(10), false, "", 9_000_000),
    ("expired-3", "expired-3", Some(-3), false, "", 9_000_000),
    ("nearly-out", "nearly-out", None, false, "", 200_000),
];

/// The account and its twelve daily pulls (the seventh failed).
pub fn twelve_days() -> Story {
    let long_ago = NOW - 400 * DAY;
    let mut account = FakeAccount::new(TOKEN);
    account.generate(KEYS, SEED, NOW);
    let mut roles = BTreeMap::new();
    for (role, name, expires, unlimited, ips, remain) in ROLES {
        let mut fields = key(name, long_ago, 1_000);
        fields.insert(
            "expired_time".into(),
            json!(expires.map_or(-1, |d| page_now() + d * DAY)),
        );
        fields.insert("unlimited_quota".into(), json!(unlimited));
        fields.insert("allow_ips".into(), json!(ips));
        fields.insert("remain_quota".into(), json!(remain));
        roles.insert(role, account.insert(fields));
    }
    let h = Harness::new(account);
    let ids = h.server.account().ids();
    let mut used: BTreeMap<i64, i64> = ids
        .iter()
        .map(|&id| {
            (
                id,
                h.server.account().get(id).unwrap()["used_quota"]
                    .as_i64()
                    .unwrap(),
            )
        })
        .collect();
    for d in 0..12 {
        for &id in &ids {
            // Two generated keys in three use something every day, up to $1.20 a day each.
            if id <= KEYS as i64 && id % 3 != 0 {
                *used.get_mut(&id).unwrap() += (id * 7_919 % 50 + 1) * 3_000 * (d % 4 + 1);
            }
        }
        let refunded = roles["refunded"];
        *used.get_mut(&refunded).unwrap() += match d {
            REFUND_DAY => -6_000_000,
            _ => 2_000_000,
        };
        // Top consumers: one whose panel shows the day's status change, and an exposed key
        // that ranks among the 25 exposed keys shown.
        *used.get_mut(&roles["control"]).unwrap() += 1_500_000;
        *used.get_mut(&roles["bidi"]).unwrap() += 1_000_000;
        *used.get_mut(&roles["hostile"]).unwrap() += 500_000;
        {
            let mut account = h.server.account();
            for (&id, &quota) in &used {
                account.set(id, "used_quota", json!(quota));
            }
            if d == 11 {
                // The day's changes: a rename, a disabled key, an exhausted one.
                account.set(roles["soon-10"], "name", json!("soon-10-renamed"));
                account.set(roles["control"], "status", json!(2));
                account.set(roles["nearly-out"], "remain_quota", json!(0));
            }
        }
        if d == FAILED_DAY {
            h.server.account().faults.success_false_page = Some(1);
            let at = pull_day(d).to_string();
            h.pull_run(&["--retries", "0", "--now", &at], 4);
            h.server.account().faults.success_false_page = None;
            continue;
        }
        h.pull(&["--now", &pull_day(d).to_string()]);
    }
    Story { h, roles }
}

/// `keysync ARGS --now NOW`'s stdout.
fn output(h: &Harness, args: &[&str]) -> String {
    let now = page_now().to_string();
    run(h.keysync().args(args).args(["--now", &now]), 0).stdout
}

/// The page at [`page_now`], with `args`, parsed.
fn page(h: &Harness, args: &[&str]) -> Html {
    let now = page_now().to_string();
    written_page(h, &[args, &["--now", &now]].concat())
}

/// CSV records of `keysync ARGS --format csv --now NOW`, without the header.
fn csv(h: &Harness, args: &[&str]) -> Vec<Vec<String>> {
    let text = output(h, &[args, &["--format", "csv"]].concat());
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

/// A tile's `data-value` and the headline people read.
fn tile(page: &Html, id: &str) -> (String, String) {
    let tile = page.select(&sel(&format!("a.tile#{id}"))).next().unwrap();
    let shown = tile.select(&sel(".tile-value")).next().unwrap();
    (
        tile.value().attr("data-value").unwrap().to_string(),
        shown.text().collect(),
    )
}

fn note(page: &Html, id: &str) -> String {
    texts(page, &format!("a.tile#{id} .tile-note")).concat()
}

/// The usd cell of `usage`'s totals row (its table for people).
fn usage_total(table: &str) -> String {
    table_cells(table).last().unwrap()[3].clone()
}

/// `$1,234.56` as a plain number: `1234.56`.
fn plain(dollars: &str) -> String {
    dollars.replace(['$', ','], "")
}

fn attr(element: ElementRef<'_>, name: &str) -> String {
    element.value().attr(name).unwrap_or_default().to_string()
}

#[test]
fn every_tile_is_the_number_usage_status_and_the_reports_print() {
    let story = twelve_days();
    let h = &story.h;
    let page = page(h, &[]);
    let sync = h.count("SELECT max(id) FROM good_syncs").to_string();
    // The header, each tile and each section describe the same, latest, good sync.
    let synced: Vec<String> = page
        .select(&sel("[data-sync]"))
        .map(|e| attr(e, "data-sync"))
        .collect();
    assert_eq!(synced.len(), 2 + 8, "header, tiles, eight sections");
    assert!(synced.iter().all(|s| *s == sync), "{synced:?}");

    // Spend: `usage`'s total; no use recorded in the 30 days before.
    let total = usage_total(&output(h, &["usage"]));
    assert_eq!(tile(&page, "tile-spend"), (plain(&total), total.clone()));
    assert_eq!(note(&page, "tile-spend"), "no use in the 30 days before");
    // The month to date: `usage --month`'s total. Its forecast goes on at the last 7 days'
    // rate: their use over 7 days, for the 12 days and 22 hours left in December.
    let month = usage_total(&output(h, &["usage", "--month", "2025-12"]));
    assert_eq!(tile(&page, "tile-month"), (plain(&month), month.clone()));
    let week: i64 = csv(h, &["usage", "--since", "7d"])
        .iter()
        .map(|r| r[2].parse::<i64>().unwrap())
        .sum();
    let mtd: i64 = csv(h, &["usage", "--month", "2025-12"])
        .iter()
        .map(|r| r[2].parse::<i64>().unwrap())
        .sum();
    let left = (NOW + 13 * DAY - page_now()) as f64 / DAY as f64;
    let forecast = (mtd as f64 + week as f64 / 7.0 * left) / PRICE as f64;
    assert_eq!(
        note(&page, "tile-month"),
        format!(
            "forecast ${} by Dec 31, at ${:.2} a day (the last 7 days' rate)",
            money(forecast),
            week as f64 / 7.0 / PRICE as f64
        )
    );

    // Expiring within 7 days: the report's keys still to expire.
    let expiring = csv(h, &["query", "--report", "expiring-soon", "--within", "7d"]);
    let to_come = expiring.iter().filter(|r| r[4] == "0").count();
    assert!(to_come >= 2, "soon-2 and soon-5 at least");
    assert_eq!(tile(&page, "tile-expiring").0, to_come.to_string());
    // Low on quota: the low-quota report's keys under $1.
    let low = csv(h, &["query", "--report", "low-quota", "--below", "500000"]);
    assert!(
        low.iter()
            .any(|r| r[0] == story.roles["nearly-out"].to_string())
    );
    assert_eq!(tile(&page, "tile-quota").0, low.len().to_string());
    // Exposed: the unrestricted report's keys with unlimited quota and any IP.
    let exposed = csv(h, &["query", "--report", "unrestricted"]);
    let exposed = exposed
        .iter()
        .filter(|r| r[3] == "1" && r[4] == "1")
        .count();
    assert_eq!(tile(&page, "tile-exposed").0, exposed.to_string());
    assert!(
        exposed > 25,
        "{exposed}: enough for the table to count the rest"
    );

    // Changes: `keysync diff` over the window, keys added, removed, or changed in something
    // other than quota use.
    let diff = csv(h, &["diff", "1", &sync]);
    let keys = |keep: &dyn Fn(&Vec<String>) -> bool| {
        diff.iter()
            .filter(|r| keep(r))
            .map(|r| r[1].clone())
            .collect::<HashSet<_>>()
            .len()
    };
    let use_fields = ["used_quota", "remain_quota", "accessed_time"];
    let added = keys(&|r| r[0] == "added");
    let removed = keys(&|r| r[0] == "removed");
    let otherwise = keys(&|r| r[0] == "changed" && !use_fields.contains(&r[4].as_str()));
    // A rename and a disabled key; the exhausted key's remain_quota is quota use.
    assert_eq!(otherwise, 2, "a rename and a disabled key");
    assert_eq!(
        tile(&page, "tile-changes").0,
        (added + removed + otherwise).to_string()
    );
    let only_used = keys(&|r| r[0] == "changed") - otherwise;
    assert_eq!(
        texts(&page, "#changes-use"),
        [format!(
            "{only_used} keys only used quota (their accessed_time, used_quota, remain_quota \
             changed, nothing else); 2 changed otherwise."
        )]
    );

    // Alerts: the alarms `keysync check` finds at the same now, with the default rules, one
    // row each.
    let now = page_now().to_string();
    let checked = run(
        h.keysync()
            .args(["check", "--no-state", "--format", "json", "--now", &now]),
        1,
    );
    let alarms: Vec<serde_json::Value> = serde_json::from_str(&checked.stdout).unwrap();
    assert!(alarms.len() >= 3, "{alarms:?}");
    assert_eq!(tile(&page, "tile-alerts").0, alarms.len().to_string());
    let rows = table_rows(&page, "table#alarms");
    assert_eq!(rows.len(), alarms.len());
    for (row, alarm) in rows.iter().zip(&alarms) {
        assert_eq!(row[0], alarm["rule"].as_str().unwrap());
        assert_eq!(row[1], alarm["subject"].as_str().unwrap());
        assert_eq!(row[5], alarm["message"].as_str().unwrap());
    }

    // Every tile links to its section.
    for a in page.select(&sel("a.tile")) {
        let target = attr(a, "href");
        assert_eq!(
            page.select(&sel(&format!("section{target}"))).count(),
            1,
            "{target}"
        );
    }
    // The keys by status now add up to the live keys `status` counts.
    let live: i64 = texts(&page, "table#status-now td.col-keys")
        .iter()
        .map(|n| n.parse::<i64>().unwrap())
        .sum();
    let status = output(h, &["status"]);
    assert!(
        status.contains(&format!("keys:           {live} live (")),
        "{status}"
    );

    // A window of 5 days against the 5 before it, which both have use.
    let short = self::page(h, &["--since", "5d"]);
    let now_used: i64 = csv(h, &["usage", "--since", "5d"])
        .iter()
        .map(|r| r[2].parse::<i64>().unwrap())
        .sum();
    let earlier = (page_now() - 5 * DAY).to_string();
    let before = run(
        h.keysync().args([
            "usage", "--since", "5d", "--format", "csv", "--now", &earlier,
        ]),
        0,
    )
    .stdout;
    let before_used: i64 = before
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth_back(2).unwrap().parse::<i64>().unwrap())
        .sum();
    let percent = (now_used - before_used) as f64 / before_used as f64 * 100.0;
    let sign = if now_used > before_used { "+" } else { "" };
    assert_eq!(
        note(&short, "tile-spend"),
        format!(
            "{sign}{percent:.1}% ({sign}{}) on the 5 days before",
            dollars(now_used - before_used, PRICE)
        )
    );
    assert_eq!(
        tile(&short, "tile-spend").1,
        usage_total(&output(h, &["usage", "--since", "5d"]))
    );
}

/// `1,234.56`: dollars to the cent, thousands separated.
fn money(dollars: f64) -> String {
    let cents = (dollars.abs() * 100.0).round() as i128;
    format!("{}.{:02}", grouped(cents / 100), cents % 100)
}

#[test]
fn the_chart_shows_no_data_a_failed_pull_a_span_of_days_and_a_refund_below_the_axis() {
    let story = twelve_days();
    let h = &story.h;
    let page = page(h, &[]);
    let chart = page
        .select(&sel("section#usage svg.chart.wide"))
        .next()
        .unwrap();
    let bars: Vec<ElementRef<'_>> = chart.select(&sel("g.bar")).collect();
    assert_eq!(bars.len(), 31);
    let title = |bar: &ElementRef<'_>| -> String {
        bar.select(&sel(":scope > title"))
            .next()
            .unwrap()
            .text()
            .collect()
    };
    // Data only on the days of a good pull that had one before it: pulls 1 to 11 but the
    // failed 6th. Before the record began, and on the failed pull's day, no data.
    let with_data: Vec<String> = (1..12)
        .filter(|&d| d != FAILED_DAY)
        .map(|d| day_of(pull_day(d)))
        .collect();
    for bar in &bars {
        let title = title(bar);
        let day = &title[..10];
        let no_data = bar.value().classes().any(|c| c == "no-data");
        assert_eq!(!no_data, with_data.contains(&day.to_string()), "{title}");
        if no_data {
            assert_eq!(title, format!("{day}: no data (no good sync on this day)"));
            assert_eq!(bar.select(&sel("rect[class^=s]")).count(), 0, "{title}");
        }
    }
    assert_eq!(chart.select(&sel("g.bar.no-data")).count(), 31 - 10);
    // The failed pull is marked on its day, and the next good pull's bar spans three days.
    let failed: Vec<String> = chart
        .select(&sel("g.failed-pull > title"))
        .map(|t| t.text().collect())
        .collect();
    let failed_day = day_of(pull_day(FAILED_DAY));
    assert_eq!(
        failed,
        [format!(
            "{failed_day}: a pull failed (its use is counted at the next good sync)"
        )]
    );
    let after = bars
        .iter()
        .map(title)
        .find(|t| t.starts_with(&day_of(pull_day(FAILED_DAY + 1))))
        .unwrap();
    assert!(
        after.ends_with(&format!(
            " (use between {} and {})",
            day_of(pull_day(FAILED_DAY - 1)),
            day_of(pull_day(FAILED_DAY + 1))
        )),
        "{after}"
    );
    // The refund: the refunded key's segment on its day hangs below the zero line.
    let zero: f64 = attr(chart.select(&sel("line.axis")).next().unwrap(), "y1")
        .parse()
        .unwrap();
    let refunded = story.roles["refunded"];
    let refund_title = format!(
        "{}, refunded (#{refunded}): -6,000,000 quota, -$12.00",
        day_of(pull_day(REFUND_DAY))
    );
    let refund = chart
        .select(&sel("g.bar rect"))
        .find(|r| r.text().collect::<String>() == refund_title)
        .unwrap_or_else(|| panic!("no segment titled {refund_title}"));
    let y: f64 = attr(refund, "y").parse().unwrap();
    assert!(
        (y - zero).abs() < 0.01,
        "{y} vs {zero}: it starts at zero and goes down"
    );
    // Ticks at round dollar amounts, one of them below zero.
    let ticks = texts(&page, "section#usage svg.wide text.tick[text-anchor=end]");
    assert!(
        ticks
            .iter()
            .all(|t| t.trim_start_matches('-').starts_with('$') && !t.contains('.')),
        "{ticks:?}"
    );
    assert!(ticks[0].starts_with("-$"), "{ticks:?}");
    // Each series in the legend with its total: the table's dollars for the keys.
    let legend = texts(&page, "section#usage .legend li");
    let consumers = table_rows(&page, "table#top-consumers");
    for (entry, row) in legend.iter().zip(&consumers).take(8) {
        assert_eq!(*entry, format!("{} (#{}): {}", row[1], row[0], row[3]));
    }
    let all_but: i64 = csv(h, &["usage"])
        .iter()
        .skip(8)
        .map(|r| r[2].parse::<i64>().unwrap())
        .sum();
    assert_eq!(
        legend[8],
        format!("other keys: {}", dollars(all_but, PRICE))
    );
}

#[test]
fn money_and_statuses_are_words_and_sections_are_in_the_order_people_need() {
    let story = twelve_days();
    let h = &story.h;
    let page = page(h, &[]);
    // What was spent and by which keys first, then what needs doing, then the account's
    // changes and exposure, and the alarms last, as the tiles list them.
    let sections: Vec<String> = page
        .select(&sel("body > main > section, body section[id]"))
        .map(|s| attr(s, "id"))
        .collect();
    assert_eq!(
        sections,
        [
            "usage", "keys", "status", "expiring", "quota", "changes", "exposed", "alerts"
        ]
    );
    let tiles: Vec<String> = page
        .select(&sel("a.tile"))
        .map(|a| attr(a, "href"))
        .collect();
    let in_tile_order: Vec<&String> = sections
        .iter()
        .filter(|id| tiles.contains(&format!("#{id}")))
        .collect();
    let linked: Vec<String> = tiles.iter().map(|t| t[1..].to_string()).collect();
    let mut deduped = linked.clone();
    deduped.dedup();
    assert_eq!(in_tile_order, deduped.iter().collect::<Vec<_>>());
    let body = page.select(&sel("body")).next().unwrap();
    let text = body.text().collect::<Vec<_>>().join("\n");
    // Dollars to the cent everywhere: never the six decimals of the exact formats.
    let six = regex_six_decimals(&text);
    assert!(six.is_empty(), "{six:?}");
    for usd in texts(&page, "table#top-consumers td.col-usd") {
        assert!(
            usd.starts_with('$') && usd.split('.').nth(1).unwrap().len() == 2,
            "{usd}"
        );
    }
    // Statuses as words: the day's changes, the status now, the panels.
    let control = story.roles["control"].to_string();
    let recent = table_rows(&page, "table#recent-changes");
    let change = recent
        .iter()
        .find(|r| r[3] == control && r[5] == "status")
        .unwrap();
    assert_eq!(
        (change[6].as_str(), change[7].as_str()),
        ("enabled", "disabled")
    );
    assert_eq!(
        texts(&page, "table#status-now td.col-status"),
        ["enabled", "disabled", "expired", "exhausted", "unknown"]
    );
    // The low-quota keys: the report's rows, its is_exhausted flag as the status it means.
    let low = table_rows(&page, "table#low-quota-keys");
    let report = csv(h, &["query", "--report", "low-quota", "--below", "500000"]);
    assert_eq!(low.len(), report.len());
    for (row, record) in low.iter().zip(&report) {
        let word = if record[4] == "1" {
            "exhausted"
        } else {
            "enabled"
        };
        assert_eq!((&row[0], row[4].as_str()), (&record[0], word));
    }
    let nearly_out = story.roles["nearly-out"].to_string();
    assert!(
        low.iter()
            .any(|r| r[0] == nearly_out && r[4] == "exhausted")
    );
    let panel = |id: i64, css: &str| texts(&page, &format!("article#key-{id} {css}")).concat();
    assert_eq!(panel(story.roles["control"], "dd.status"), "disabled");
    assert!(
        panel(story.roles["control"], "ul.key-changes")
            .contains(": changed status enabled → disabled"),
        "{}",
        panel(story.roles["control"], "ul.key-changes")
    );

    // Expiring: those to come, soonest first and all within 14 days; those past, counted
    // and folded.
    let soon = table_rows(&page, "table#expiring-keys");
    let days: Vec<f64> = soon.iter().map(|r| r[3].parse().unwrap()).collect();
    assert!(days.windows(2).all(|w| w[0] <= w[1]), "{days:?}");
    assert!(days.iter().all(|&d| d > 0.0 && d <= 14.0), "{days:?}");
    let names: Vec<&str> = soon
        .iter()
        .map(|r| r[1].as_str())
        .filter(|n| n.starts_with("soon-"))
        .collect();
    assert_eq!(names, ["soon-2", "soon-5", "soon-10-renamed"]);
    let expired = csv(
        h,
        &["query", "--report", "expiring-soon", "--within", "14d"],
    );
    let past = expired.iter().filter(|r| r[4] == "1").count();
    assert!(past > 1);
    assert_eq!(
        texts(&page, "details#expired summary strong"),
        [format!("{past} keys")]
    );
    let folded = texts(&page, "details#expired table#expired-keys td.col-name");
    assert!(folded.contains(&"expired-3".to_string()), "{folded:?}");
    assert_eq!(folded.len(), past);

    // Exposed: counted, then 25, most spent first, then how many more.
    let exposed = csv(h, &["query", "--report", "unrestricted"]);
    let count = exposed
        .iter()
        .filter(|r| r[3] == "1" && r[4] == "1")
        .count();
    assert!(texts(&page, "#exposed-count")[0].starts_with(&format!(
        "{count} enabled keys with unlimited quota and no IP allowlist"
    )));
    let spent: Vec<f64> = texts(&page, "table#exposed-keys td.col-spent")
        .iter()
        .map(|d| plain(d).parse().unwrap())
        .collect();
    assert_eq!(spent.len(), 25);
    assert!(spent.windows(2).all(|w| w[0] >= w[1]), "{spent:?}");
    assert_eq!(
        texts(&page, "section#exposed p.more"),
        [format!(
            "{} more keys: keysync query --report unrestricted lists them all.",
            count - 25
        )]
    );
}

/// The amounts written with six decimals in `text`.
fn regex_six_decimals(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|w| w.split('.').nth(1).is_some_and(|d| d.len() >= 6))
        .map(String::from)
        .collect()
}

#[test]
fn each_top_consumer_opens_its_panel_of_daily_use_status_expiry_quota_and_changes() {
    let story = twelve_days();
    let h = &story.h;
    let page = page(h, &[]);
    let rows: Vec<ElementRef<'_>> = page.select(&sel("table#top-consumers tbody tr")).collect();
    assert_eq!(rows.len(), 25);
    for row in rows {
        let cells: Vec<String> = row
            .select(&sel("td"))
            .map(|td| td.text().collect())
            .collect();
        let id = &cells[0];
        let link = row.select(&sel("td.col-name a")).next().unwrap();
        assert_eq!(attr(link, "href"), format!("#key-{id}"));
        let panel = page
            .select(&sel(&format!("article.key-panel#key-{id}")))
            .next()
            .unwrap();
        let field =
            |css: &str| -> String { panel.select(&sel(css)).next().unwrap().text().collect() };
        assert_eq!(field("dd.spent"), cells[3]);
        assert_eq!(panel.select(&sel("svg.sparkline rect")).count(), 31);
        // The key as `query` reads it at the page's now.
        let state = &csv(
            h,
            &[
                "query",
                &format!(
                    "SELECT effective_status, expired_time, remain_quota, unlimited_quota \
                     FROM key_info WHERE id = {id}"
                ),
            ],
        )[0];
        let (status, expires, remain, unlimited) = (&state[0], &state[1], &state[2], &state[3]);
        assert_eq!(field("dd.status"), *status);
        let expiry = match expires.parse::<i64>().unwrap() {
            -1 => "never".to_string(),
            at => chrono::DateTime::from_timestamp(at, 0)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%SZ")
                .to_string(),
        };
        assert_eq!(field("dd.expires"), expiry);
        let remain: i64 = remain.parse().unwrap();
        let left = match unlimited.as_str() {
            "1" => "unlimited".to_string(),
            _ => format!("{} ({})", grouped(remain), dollars(remain, PRICE)),
        };
        assert_eq!(field("dd.quota-left"), left);
    }
}

#[test]
fn bidi_and_control_characters_in_names_are_shown_escaped_as_the_terminal_shows_them() {
    let story = twelve_days();
    let h = &story.h;
    let out = h.dir.path().join("page.html");
    let now = page_now().to_string();
    run(
        h.keysync()
            .args(["html", "-q", "--now", &now, "--out"])
            .arg(&out),
        0,
    );
    let source = std::fs::read_to_string(&out).unwrap();
    for c in ('\u{202a}'..='\u{202e}')
        .chain('\u{2066}'..='\u{2069}')
        .chain(['\0', '\x07', '\x1b'])
    {
        assert!(!source.contains(c), "{:?} in the page", c);
    }
    let page = Html::parse_document(&source);
    let exposed_names = texts(&page, "table#exposed-keys td.col-name");
    let bidi_shown = r"invoice\u{202e}fdp.exe\u{202c} \u{2066}x\u{2069}";
    assert!(
        exposed_names.contains(&bidi_shown.to_string()),
        "{exposed_names:?}"
    );
    assert!(
        exposed_names.contains(&HOSTILE_NAME.to_string()),
        "{exposed_names:?}"
    );
    assert_eq!(page.select(&sel("b")).count(), 0, "no markup from a name");
    // The terminal shows the control name the same way.
    let control = story.roles["control"];
    let shown = texts(&page, &format!("article#key-{control} h3")).concat();
    assert_eq!(shown, format!(r"bell\x07\x1b[31mred\x00end (#{control})"));
    let usage = output(h, &["usage"]);
    assert!(usage.contains(r"bell\x07\x1b[31mred\x00end"), "{usage}");
}

#[test]
fn one_snapshot_while_a_pull_commits_between_two_reads() {
    let story = twelve_days();
    let h = &story.h;
    let before = h.count("SELECT max(id) FROM good_syncs");
    let out = h.dir.path().join("snapshot.html");
    let now = page_now() + HOUR;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("keysync"))
        .env_clear()
        .env("KEYSYNC_DB", &h.db)
        .env("HOME", h.dir.path())
        .env("KEYSYNC_DEBUG_HTML_PAUSE", "1")
        .args(["html", "-q", "--now", &now.to_string(), "--out"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(line, "keysync: paused between reads\n");
    // A real pull commits meanwhile: a new key, a rename, use.
    {
        let mut account = h.server.account();
        account.insert(key("arrived-meanwhile", page_now(), 5_000_000));
        account.set(story.roles["refunded"], "name", json!("renamed-meanwhile"));
    }
    h.pull(&["--now", &(page_now() + HOUR / 2).to_string()]);
    assert_eq!(h.count("SELECT max(id) FROM good_syncs"), before + 1);
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
    let source = std::fs::read_to_string(&out).unwrap();
    let page = Html::parse_document(&source);
    let synced: HashSet<String> = page
        .select(&sel("[data-sync]"))
        .map(|e| attr(e, "data-sync"))
        .collect();
    assert_eq!(synced, HashSet::from([before.to_string()]));
    assert!(texts(&page, "dd#latest-sync")[0].starts_with(&format!("sync {before} (ok)")));
    for meanwhile in ["arrived-meanwhile", "renamed-meanwhile"] {
        assert!(!source.contains(meanwhile), "{meanwhile}");
    }
    assert!(texts(&page, "#changes-summary")[0].contains(&format!("to sync {before} (")));
    // Without the pause, the same command sees the new sync everywhere.
    let later = Html::parse_document(&{
        run(
            h.keysync()
                .args(["html", "-q", "--now", &now.to_string(), "--out"])
                .arg(&out),
            0,
        );
        std::fs::read_to_string(&out).unwrap()
    });
    let synced: HashSet<String> = later
        .select(&sel("[data-sync]"))
        .map(|e| attr(e, "data-sync"))
        .collect();
    assert_eq!(synced, HashSet::from([(before + 1).to_string()]));
}

/// Measures the page in a 390 px frame, as a phone shows it, once it has loaded: the script is
/// the test's, in the frame's parent; the page itself has none.
const PHONE_PROBE: &str = r##"<!DOCTYPE html><html><body>
<iframe id="page" src="page.html" style="width:390px;height:900px;border:0"></iframe>
<pre id="probe"></pre>
<script>
window.addEventListener("load", function () {
  var d = document.getElementById("page").contentDocument;
  var shown = function (el) { return el.getClientRects().length > 0; };
  var chart = d.querySelector("#usage svg.chart.narrow");
  var scale = chart.getBoundingClientRect().width / chart.viewBox.baseVal.width;
  var labels = Array.from(chart.querySelectorAll("text")).map(function (t) {
    return parseFloat(getComputedStyle(t).fontSize) * scale;
  });
  var right = function (css) {
    return Math.max.apply(null, Array.from(d.querySelectorAll(css)).map(function (el) {
      return el.getBoundingClientRect().right;
    }));
  };
  document.getElementById("probe").textContent = JSON.stringify({
    scroll_width: d.documentElement.scrollWidth,
    viewport: d.documentElement.clientWidth,
    smallest_label: Math.min.apply(null, labels),
    wide_chart_shown: shown(d.querySelector("#usage svg.chart.wide")),
    id_column_shown: shown(d.querySelector("#top-consumers td.col-id")),
    names_right: right("#top-consumers td.col-name"),
    dollars_right: right("#top-consumers td.col-usd"),
    background: getComputedStyle(d.body).backgroundColor
  });
});
</script></body></html>"##;

/// What [`PHONE_PROBE`] measured in headless Chromium (with `flags`), or `None` when this
/// machine has no Chromium (outside CI: `.ci/run` installs it).
fn on_a_phone(dir: &std::path::Path, flags: &[&str]) -> Option<serde_json::Value> {
    let chromium = real_tool("chromium", "chromium")?;
    std::fs::write(dir.join("phone.html"), PHONE_PROBE).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-file-access-from-files",
            // Phones draw scrollbars over the page: all 390 px are the page's.
            "--hide-scrollbars",
            "--window-size=600,900",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(flags)
        .arg(format!("file://{}", dir.join("phone.html").display()))
        .output()
        .unwrap();
    let dom = String::from_utf8(output.stdout).unwrap();
    let probe = Html::parse_document(&dom);
    let json = texts(&probe, "pre#probe").concat();
    Some(serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {dom}")))
}

#[test]
fn on_a_390_px_phone_nothing_scrolls_sideways_and_names_dollars_and_labels_read() {
    let story = twelve_days();
    let h = &story.h;
    let now = page_now().to_string();
    let out = h.dir.path().join("page.html");
    run(
        h.keysync()
            .args(["html", "-q", "--now", &now, "--out"])
            .arg(&out),
        0,
    );
    let Some(light) = on_a_phone(h.dir.path(), &[]) else {
        return;
    };
    assert_eq!(light["viewport"], 390, "{light}");
    assert_eq!(light["scroll_width"], light["viewport"], "{light}");
    assert!(light["smallest_label"].as_f64().unwrap() >= 11.0, "{light}");
    assert_eq!(light["wide_chart_shown"], false);
    assert_eq!(light["id_column_shown"], false);
    let viewport = light["viewport"].as_f64().unwrap();
    assert!(
        light["names_right"].as_f64().unwrap() <= viewport,
        "{light}"
    );
    assert!(
        light["dollars_right"].as_f64().unwrap() <= viewport,
        "{light}"
    );
    assert_eq!(light["background"], "rgb(255, 255, 255)");
    // The reader's dark setting: the page follows it.
    let dark = on_a_phone(
        h.dir.path(),
        &[
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ],
    )
    .unwrap();
    assert_eq!(dark["background"], "rgb(15, 19, 24)", "{dark}");
    assert_eq!(dark["scroll_width"], dark["viewport"], "{dark}");
}

/// Not a test: writes the story's database to `$KEYSYNC_SHOTS_DB`, for the page's
/// screenshots (`cargo test --test integration html_page::write_the_screenshot_database --
/// --ignored`).
#[test]
#[ignore = "writes a database for screenshots"]
fn write_the_screenshot_database() {
    let story = twelve_days();
    let to = std::env::var_os("KEYSYNC_SHOTS_DB").expect("KEYSYNC_SHOTS_DB");
    std::fs::copy(&story.h.db, to).unwrap();
}
