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

use crate::common::{Harness, NOW, SEED, TOKEN, run, table_cells};
use crate::daily_pulls::{DAY, HOUR, day_of, key};
use crate::html::{sel, texts};

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

/// The story's keys, besides the generated ones: `(role, name, expiry from now in days (None:
/// never), unlimited, allow_ips, remain_quota)`.
const ROLES: [(&str, &str, Option<i64>, bool, &str, i64); 9] = [
    ("hostile", HOSTILE_NAME, None, true, "", 0),
    ("bidi", BIDI_NAME, None, true, "", 0),
    ("control", CONTROL_NAME, Some(40), false, "10.0.0.1", 9_000_000),
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
        .map(|&id| (id, h.server.account().get(id).unwrap()["used_quota"].as_i64().unwrap()))
        .collect();
    for d in 0..12 {
        for &id in &ids {
            // Two keys in three use something every day, up to $0.30 a day each.
            if id % 3 != 0 {
                *used.get_mut(&id).unwrap() += (id * 7_919 % 50 + 1) * 3_000 * (d % 4 + 1);
            }
        }
        let refunded = roles["refunded"];
        *used.get_mut(&refunded).unwrap() += match d {
            REFUND_DAY => -6_000_000,
            _ => 2_000_000,
        };
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

/// Not a test: writes the story's database to `$KEYSYNC_SHOTS_DB`, for the README's
/// screenshots (`cargo test --test integration html_page::write_the_screenshot_database --
/// --ignored`).
#[test]
#[ignore = "writes a database for screenshots"]
fn write_the_screenshot_database() {
    let story = twelve_days();
    let to = std::env::var_os("KEYSYNC_SHOTS_DB").expect("KEYSYNC_SHOTS_DB");
    std::fs::copy(&story.h.db, to).unwrap();
}
