//! The gateway's price (issue 23): every pull reads `GET /api/status` once, without the token,
//! and records `quota_per_unit`, `quota_display_type`, `usd_exchange_rate` and the gateway's
//! version on its sync row; a gateway without a usable price never fails a pull, and says so
//! once in a warning (then at `-v` only).

use keysync::testing::FakeAccount;
use serde_json::{Value as Json, json};

use crate::common::{Harness, NOW, SEED, TOKEN, run};
use crate::daily_pulls::{DAY, HOUR, day_of, key, pull_time};
use crate::html::{texts, written_page};
use crate::usage::usage_rows;

/// What each sync recorded of the gateway, read back through `keysync query`.
fn recorded(h: &Harness) -> Json {
    let sql = "SELECT id, status, quota_per_unit, quota_display_type, usd_exchange_rate, \
               gateway_version FROM syncs ORDER BY id";
    h.run(&["query", "--format", "json", sql], 0).json()
}

/// The row of sync `id` as [`recorded`] reads it.
fn row(id: i64, price: Option<i64>, display: Option<&str>, rate: Option<f64>) -> Json {
    json!({"id": id, "status": "ok", "quota_per_unit": price, "quota_display_type": display,
           "usd_exchange_rate": rate, "gateway_version": display.map(|_| "v0.9.0")})
}

fn priced(id: i64, price: i64) -> Json {
    row(id, Some(price), Some("USD"), Some(7.3))
}

fn unpriced(id: i64) -> Json {
    row(id, None, None, None)
}

/// The `keysync: warning:` lines of a run.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("keysync: warning: "))
        .collect()
}

/// The warning of a sync without a price, `why` being what went wrong.
fn no_price(sync: i64, why: &str) -> String {
    format!(
        "sync {sync} has no price from the gateway ({why}); dollars use the price of an earlier \
         sync, else 500000 quota units per dollar: to set one, pass --quota-per-unit N to \
         usage and html, or set quota_per_unit in the profile"
    )
}

#[test]
fn each_sync_records_the_price_the_gateway_published_then() {
    let h = Harness::with_keys(3);
    let first = h.pull_run(&[], 0);
    assert_eq!(first.stderr, "");
    h.server.account().quota_per_unit = 250_000;
    h.pull_run(&[], 0);
    assert_eq!(
        recorded(&h),
        json!([priced(1, 500_000), priced(2, 250_000)])
    );
}

#[test]
fn only_a_positive_whole_number_is_a_price() {
    let body = |price: &str| {
        format!(
            r#"{{"success":true,"message":"","data":{{"quota_per_unit":{price},
               "quota_display_type":"CNY","usd_exchange_rate":7,"version":"v1.0.0"}}}}"#
        )
    };
    let cases = [
        ("500000.0", Some(500_000)),
        ("1", Some(1)),
        ("0", None),
        ("-500000", None),
        ("0.5", None),
        ("\"500000\"", None),
        ("9223372036854775808", None),
    ];
    for (sent, price) in cases {
        let h = Harness::with_keys(1);
        h.server.account().faults.status_body = Some(body(sent));
        let pull = h.pull_run(&[], 0);
        let expected = json!([{"id": 1, "status": "ok", "quota_per_unit": price,
            "quota_display_type": "CNY", "usd_exchange_rate": 7.0, "gateway_version": "v1.0.0"}]);
        assert_eq!(recorded(&h), expected, "{sent}");
        let warned = match price {
            Some(_) => vec![],
            None => vec![format!(
                "keysync: warning: {}",
                no_price(
                    1,
                    &format!("/api/status sent quota_per_unit {sent}, not a positive whole number")
                )
            )],
        };
        assert_eq!(warnings(&pull.stderr), warned, "{sent}");
    }
}

#[test]
fn a_gateway_without_a_price_never_fails_a_pull_and_warns_only_when_it_is_news() {
    let not_found = "/api/status: HTTP 404 Not Found";
    let not_json = "/api/status: the response is not JSON; the gateway may not publish its price";
    for (endpoint, why) in [("none", not_found), ("text", not_json)] {
        let h = Harness::with_keys(3);
        let take_away = |h: &Harness| match endpoint {
            "none" => h.server.account().faults.no_status = true,
            _ => {
                let page = "<!doctype html><html><body>New API</body></html>".to_string();
                h.server.account().faults.status_body = Some(page);
            }
        };
        take_away(&h);
        // The database's first pull: a warning.
        let first = h.pull_run(&[], 0);
        assert_eq!(
            first.stderr,
            format!("keysync: warning: {}\n", no_price(1, why))
        );
        // The sync before had no price either: nothing without -v, an info line with it.
        assert_eq!(h.pull_run(&[], 0).stderr, "");
        let verbose = h.pull_run(&["-v"], 0);
        assert!(warnings(&verbose.stderr).is_empty(), "{}", verbose.stderr);
        let info = format!("keysync: info: {}", no_price(3, why));
        assert!(
            verbose.stderr.lines().any(|line| line == info),
            "{}",
            verbose.stderr
        );
        // The price comes back, then goes again: the sync before had one, so a warning.
        h.server.account().faults.no_status = false;
        h.server.account().faults.status_body = None;
        assert_eq!(h.pull_run(&[], 0).stderr, "");
        take_away(&h);
        let lost = h.pull_run(&[], 0);
        assert_eq!(
            lost.stderr,
            format!("keysync: warning: {}\n", no_price(5, why))
        );
        let expected = json!([
            unpriced(1),
            unpriced(2),
            unpriced(3),
            priced(4, 500_000),
            unpriced(5)
        ]);
        assert_eq!(recorded(&h), expected, "{endpoint}");
    }
}

#[test]
fn the_token_and_the_user_id_are_never_sent_to_api_status() {
    let mut account = FakeAccount::new(TOKEN);
    account.generate(250, SEED, NOW);
    account.require_user_id = true;
    let h = Harness::new(account);
    let summary = run(
        h.keysync()
            .env("COMETAPI_USER_ID", "5678")
            .args(["pull", "--json"]),
        0,
    )
    .json();
    let account = h.server.account();
    let (status, pages): (Vec<_>, Vec<_>) = account
        .requests()
        .iter()
        .partition(|r| r.path_and_query == "/api/status");
    assert_eq!(status.len(), 1, "read once");
    assert_eq!(
        (
            status[0].authorization.as_deref(),
            status[0].new_api_user.as_deref()
        ),
        (None, None)
    );
    assert_eq!(
        status[0].user_agent.as_deref(),
        Some(concat!("keysync/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(pages.len(), 3 + 1);
    for page in pages {
        assert_eq!(
            (page.authorization.as_deref(), page.new_api_user.as_deref()),
            (Some(TOKEN), Some("5678"))
        );
    }
    // The sync's requests count it: 3 pages, page 1 again and /api/status.
    assert_eq!(summary["requests"], 5);
    assert_eq!(h.count("SELECT requests FROM syncs WHERE id = 1"), 5);
}

#[test]
fn a_pull_refused_on_page_1_never_reads_the_price() {
    let h = Harness::with_keys(3);
    run(
        h.keysync()
            .env("COMETAPI_ACCESS_TOKEN", "revoked")
            .args(["pull"]),
        3,
    );
    let account = h.server.account();
    let paths: Vec<&str> = account
        .requests()
        .iter()
        .map(|r| r.path_and_query.as_str())
        .collect();
    assert_eq!(paths, ["/api/token/?p=1&page_size=100"]);
}

// Converting at the price in force ------------------------------------------------------------

/// One key, pulled five times with the gateway's price changing under it: 500,000 at pull 1,
/// 250,000 at pull 2, 200,000 two hours later the same day, and none at pull 3 (the endpoint
/// gone), which keeps 200,000 in force.
fn priced_history() -> Harness {
    let mut account = FakeAccount::new(TOKEN);
    let id = account.insert(key("billed", pull_time(0) - 400 * DAY, 0));
    let h = Harness::new(account);
    let steps: [(i64, i64, Option<i64>); 5] = [
        (pull_time(0), 0, Some(500_000)),
        (pull_time(1), 1_000_000, Some(500_000)),
        (pull_time(2), 2_000_000, Some(250_000)),
        (pull_time(2) + 2 * HOUR, 2_200_000, Some(200_000)),
        (pull_time(3), 2_600_000, None),
    ];
    for (at, used, price) in steps {
        {
            let mut account = h.server.account();
            account.set(id, "used_quota", json!(used));
            match price {
                Some(price) => account.quota_per_unit = price,
                None => account.faults.no_status = true,
            }
        }
        h.pull(&["--now", &at.to_string()]);
    }
    h
}

#[test]
fn each_interval_is_converted_at_the_price_in_force_at_its_later_sync() {
    let h = priced_history();
    // 1,000,000 at 500,000 ($2); 1,000,000 at 250,000 ($4) and 200,000 at 200,000 ($1) the
    // same day; 400,000 at 200,000 ($2), the price of the sync before the one without.
    let days: Vec<(String, i64, f64)> = usage_rows(&h, &["--every", "day"])
        .iter()
        .map(|r| {
            let period = r["period"].as_str().unwrap().to_string();
            (
                period,
                r["used"].as_i64().unwrap(),
                r["usd"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            (day_of(pull_time(1)), 1_000_000, 2.0),
            (day_of(pull_time(2)), 1_200_000, 5.0),
            (day_of(pull_time(3)), 400_000, 2.0),
        ]
    );
    let total = usage_rows(&h, &[]);
    assert_eq!(total[0]["used"], json!(2_600_000));
    assert_eq!(total[0]["usd"], json!(9.0));
    // The user's price replaces every recorded one: the flag, else the profile.
    assert_eq!(
        usage_rows(&h, &["--quota-per-unit", "1000000"])[0]["usd"],
        json!(2.6)
    );
    let config = h.dir.path().join("config.toml");
    std::fs::write(&config, "[profiles.default]\nquota_per_unit = 100000\n").unwrap();
    let config = config.to_str().unwrap();
    assert_eq!(usage_rows(&h, &["--config", config])[0]["usd"], json!(26.0));
}

#[test]
fn status_and_the_page_say_which_price_is_in_force_and_where_it_came_from() {
    let h = priced_history();
    let now = (pull_time(3) + HOUR).to_string();
    let status = |extra: &[&str]| -> Json {
        let output = run(
            h.keysync()
                .args(["status", "--json", "--now", &now])
                .args(extra),
            0,
        );
        serde_json::from_str::<Json>(&output.stdout).unwrap()["price"].clone()
    };
    // Sync 5 read no price: sync 4's is in force.
    assert_eq!(
        status(&[]),
        json!({"quota_per_unit": 200_000, "source": "gateway", "sync": 4})
    );
    let lines = h.run(&["status", "--now", &now], 0).stdout;
    assert!(
        lines.lines().any(|line| line
            == "price:          200,000 quota units per US dollar (published by the gateway, sync 4)"),
        "{lines}"
    );
    let config = h.dir.path().join("config.toml");
    std::fs::write(&config, "[profiles.default]\nquota_per_unit = 1000\n").unwrap();
    assert_eq!(
        status(&["--config", config.to_str().unwrap()]),
        json!({"quota_per_unit": 1000, "source": "profile", "sync": null})
    );
    let page = written_page(&h, &["--now", &now]);
    let price = texts(&page, "#price").concat();
    assert_eq!(
        price,
        "200,000 quota units per US dollar, published by the gateway at sync 4"
    );
}

#[test]
fn a_database_no_pull_priced_uses_the_default_price() {
    let mut account = FakeAccount::new(TOKEN);
    account.faults.no_status = true;
    account.generate(2, SEED, NOW);
    let h = Harness::new(account);
    h.pull_run(&[], 0);
    let output = h.run(&["status", "--json"], 0);
    assert_eq!(
        output.json()["price"],
        json!({"quota_per_unit": 500_000, "source": "default", "sync": null})
    );
}
