//! Pacing at the gateway's rate limit (issue 14): the `requests` and `rate_limited` counts each
//! pull records and prints, `--max-rate` / `max_rate` pacing to a known window without a 429,
//! and a window learnt from the first 429s, with and without `Retry-After`. Everything is
//! asserted in counts against the fake's sliding-window limiter, never in times.

use std::time::Duration;

use crate::common::{Harness, TOKEN};

/// `requests` and `rate_limited` of a `pull --json` summary.
fn counts(summary: &serde_json::Value) -> (u64, u64) {
    let count = |name: &str| {
        summary[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {summary}"))
    };
    (count("requests"), count("rate_limited"))
}

/// `requests` and `rate_limited` of sync `id`'s row.
fn recorded(h: &Harness, id: i64) -> (i64, i64) {
    h.conn()
        .query_row(
            "SELECT requests, rate_limited FROM syncs WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the sync row")
}

/// What the fake saw: every request, and the 429s it answered.
fn seen(h: &Harness) -> (u64, u64) {
    let account = h.server.account();
    (
        account.requests().len() as u64,
        account.rate_limited() as u64,
    )
}

/// 1150 keys are 12 pages (the 12th short); a pull sends them, page 1 again, and reads
/// /api/status (under the same rate limit).
const TWELVE_PAGES: usize = 1150;
const REQUESTS_OF_TWELVE_PAGES: u64 = 12 + 1 + 1;

#[test]
fn every_request_is_counted_on_the_sync_row_and_in_the_json() {
    let h = Harness::with_keys(250);
    let summary = h.pull(&[]);
    // Pages 1 to 3 (the third short), page 1 again, and /api/status.
    assert_eq!(counts(&summary), (5, 0));
    assert_eq!(recorded(&h, 1), (5, 0));
    assert_eq!(seen(&h), (5, 0));
}

#[test]
fn answers_429_are_counted_among_the_requests() {
    let h = Harness::with_keys(250);
    h.server.account().faults.rate_limit_first = 3;
    let summary = h.pull(&[]);
    assert_eq!(counts(&summary), (5 + 3, 3));
    assert_eq!(recorded(&h, 1), (8, 3));
    assert_eq!(seen(&h), (8, 3));
}

#[test]
fn a_failed_pull_records_the_requests_it_sent() {
    let h = Harness::with_keys(250);
    h.server.account().faults.rate_limit_first = 1;
    h.server.account().faults.success_false_page = Some(2);
    // Slow pages, so that /api/status (sent beside page 2) is answered before page 2 fails.
    h.server.account().faults.page_delay = Duration::from_millis(200);
    let output = h.pull_run(&["--json", "--concurrency", "1"], 4);
    assert_eq!(output.json()["status"], "failed");
    // A 429 and page 1, /api/status, then page 2's failure, which no retry fixes.
    assert_eq!(recorded(&h, 1), (4, 1));
    assert_eq!(seen(&h), (4, 1));
    let status: String = h
        .conn()
        .query_row("SELECT status FROM syncs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "failed");
}

#[test]
fn syncs_before_the_counts_existed_say_zero() {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    let conn = h.conn();
    conn.execute(
        "INSERT INTO syncs (started_at, finished_at, status, base_url) VALUES (1, 2, 'failed', 'x')",
        [],
    )
    .unwrap();
    let id = conn.last_insert_rowid();
    assert_eq!(recorded(&h, id), (0, 0));
}

#[test]
fn max_rate_at_the_servers_limit_gets_no_429() {
    let h = Harness::with_keys(TWELVE_PAGES);
    h.server.account().faults.rate_limit = Some((5, Duration::from_secs(2)));
    let summary = h.pull(&["--max-rate", "5/2s"]);
    assert_eq!(counts(&summary), (REQUESTS_OF_TWELVE_PAGES, 0));
    assert_eq!(summary["keys"], TWELVE_PAGES);
    assert_eq!(recorded(&h, 1), (REQUESTS_OF_TWELVE_PAGES as i64, 0));
    assert_eq!(seen(&h), (REQUESTS_OF_TWELVE_PAGES, 0));
}

#[test]
fn the_profiles_max_rate_paces_too() {
    let h = Harness::with_keys(TWELVE_PAGES);
    h.server.account().faults.rate_limit = Some((4, Duration::from_secs(1)));
    let config = h.dir.path().join("config.toml");
    std::fs::write(&config, "[profiles.default]\nmax_rate = \"4/1s\"\n").unwrap();
    let summary = h.pull(&["--concurrency", "8", "--config", config.to_str().unwrap()]);
    assert_eq!(counts(&summary), (REQUESTS_OF_TWELVE_PAGES, 0));
    assert_eq!(seen(&h), (REQUESTS_OF_TWELVE_PAGES, 0));
}

#[test]
fn a_bad_max_rate_is_a_usage_error() {
    let h = Harness::with_keys(3);
    let output = h.run(&["pull", "--max-rate", "360"], 2);
    assert!(
        output.stderr.contains("expected N/DURATION"),
        "{}",
        output.stderr
    );
    let config = h.dir.path().join("config.toml");
    std::fs::write(&config, "[profiles.default]\nmax_rate = \"0/1s\"\n").unwrap();
    let output = h.run(&["pull", "--config", config.to_str().unwrap()], 2);
    assert!(
        output.stderr.contains("config.toml:2: expected N/DURATION"),
        "{}",
        output.stderr
    );
    assert!(h.server.account().requests().is_empty());
}

#[test]
fn with_retry_after_only_the_requests_in_flight_when_the_window_fills_get_429() {
    let h = Harness::with_keys(TWELVE_PAGES);
    {
        let mut account = h.server.account();
        account.faults.rate_limit = Some((5, Duration::from_secs(1)));
        account.faults.retry_after_window = true;
    }
    let summary = h.pull(&[]);
    let (requests, rate_limited) = counts(&summary);
    // At most the requests in flight when the window first filled (4 pages, --concurrency's
    // default, and /api/status); every request after that was paced.
    assert!((1..=5).contains(&rate_limited), "{summary}");
    assert_eq!(requests, REQUESTS_OF_TWELVE_PAGES + rate_limited);
    assert_eq!(summary["keys"], TWELVE_PAGES);
    assert_eq!(seen(&h), (requests, rate_limited));
}

#[test]
fn without_retry_after_the_window_is_learnt_from_probes() {
    let h = Harness::with_keys(TWELVE_PAGES);
    h.server.account().faults.rate_limit = Some((5, Duration::from_secs(1)));
    let output = h.run(&["pull", "--json", "-v", "--backoff-base", "100ms"], 0);
    let summary = output.json();
    let (requests, rate_limited) = counts(&summary);
    // The requests in flight when the window filled, then the probes (waits of 100 ms growing
    // by √2 reach the 1 s window at the fifth), then none: the window is learnt.
    assert!(
        (1..=8).contains(&rate_limited),
        "{summary}\n{}",
        output.stderr
    );
    assert_eq!(requests, REQUESTS_OF_TWELVE_PAGES + rate_limited);
    assert_eq!(summary["keys"], TWELVE_PAGES);
    assert_eq!(seen(&h), (requests, rate_limited));
    assert!(
        output
            .stderr
            .contains("learnt the rate limit from the 429s: 5/"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains(TOKEN));
}
