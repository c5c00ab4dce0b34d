//! The pacing benchmark (`benches/run.sh`, or `cargo bench --bench pacing`).
//!
//! One pull of an account of 98 pages (97 full, the short 98th, then page 1 read again and
//! `/api/status`: 100 requests) against the crate's fake with its sliding-window limiter at 20 requests per 10 s,
//! the gateway's 360 per 180 s scaled down. Three cases: 429s without `Retry-After` (the window
//! learnt from probes), with `Retry-After` (as gateways since 2026-07 send it), and with
//! `--max-rate 20/10s` (the window known, no 429). Each prints its wall time, the floor the
//! window allows (`floor((R-1)/N) * W` for R requests) and the answers 429, then the same
//! floor for the gateway's real default, by arithmetic.
//!
//! `KEYSYNC_BENCH_PACING_RUNS` (default 1) runs each case that many times and prints the
//! median: a run takes the better part of a minute.

use std::process::Command;
use std::time::{Duration, Instant};

use keysync::testing::{FakeAccount, FakeServer};

const TOKEN: &str = "bench-token";
const NOW: i64 = 1_766_102_400;
/// 97 full pages of 100 and a short 98th.
const KEYS: usize = 9_750;
/// The pages, page 1 again and /api/status: the 100 requests of the figures in the README.
const REQUESTS: u64 = 100;
const LIMIT: usize = 20;
const WINDOW: Duration = Duration::from_secs(10);

/// One pull's figures.
struct Pulled {
    wall: Duration,
    requests: u64,
    rate_limited: u64,
}

fn main() {
    let runs: usize = std::env::var("KEYSYNC_BENCH_PACING_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let least = floor(REQUESTS, LIMIT, WINDOW);
    println!(
        "keysync pacing benchmark: {KEYS} keys ({REQUESTS} requests), the fake's limit {LIMIT} \
         per {}, median of {runs} run(s)",
        humantime::format_duration(WINDOW)
    );
    println!(
        "{:<34} {:>8} {:>8} {:>9} {:>6} {:>9}",
        "case", "wall", "floor", "wall/flr", "429s", "requests"
    );
    let cases: [(&str, bool, &[&str]); 3] = [
        ("429 without Retry-After", false, &[]),
        ("429 with Retry-After", true, &[]),
        ("--max-rate 20/10s", false, &["--max-rate", "20/10s"]),
    ];
    for (name, retry_after, args) in cases {
        let mut pulls: Vec<Pulled> = (0..runs).map(|_| pull(retry_after, args)).collect();
        // Every run's 429s, in the order they ran: the bound holds for each, not the median.
        let all_429s: Vec<String> = pulls.iter().map(|p| p.rate_limited.to_string()).collect();
        pulls.sort_by_key(|p| p.wall);
        let median = &pulls[pulls.len() / 2];
        println!(
            "{name:<34} {:>7.1}s {:>7.0}s {:>9.2} {:>6} {:>9}   429s of each run: {}",
            median.wall.as_secs_f64(),
            least.as_secs_f64(),
            median.wall.as_secs_f64() / least.as_secs_f64(),
            median.rate_limited,
            median.requests,
            all_429s.join(", ")
        );
    }
    let gateway = floor(REQUESTS, 360, Duration::from_secs(180));
    let old_gateway = floor(REQUESTS, 180, Duration::from_secs(180));
    println!(
        "the gateway's default (360 per 180 s): {REQUESTS} requests fit one window, floor {}s; \
         1,000 pages (1,002 requests): floor {}s; with 180 per 180 s (before 2026-06): {}s and {}s",
        gateway.as_secs(),
        floor(1_002, 360, Duration::from_secs(180)).as_secs(),
        old_gateway.as_secs(),
        floor(1_002, 180, Duration::from_secs(180)).as_secs()
    );
}

/// The least time `requests` can take with `limit` per `window`: the first `limit` go at
/// once, each further `limit` one window later.
fn floor(requests: u64, limit: usize, window: Duration) -> Duration {
    window * ((requests.saturating_sub(1)) / limit as u64) as u32
}

/// One `keysync pull --json` into a new database against a fresh fake.
fn pull(retry_after: bool, args: &[&str]) -> Pulled {
    let mut account = FakeAccount::new(TOKEN);
    account.generate(KEYS, 7, NOW);
    account.faults.rate_limit = Some((LIMIT, WINDOW));
    account.faults.retry_after_window = retry_after;
    let server = FakeServer::start(account).expect("the fake starts");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_keysync"))
        .env_clear()
        .env("HOME", dir.path())
        .env("COMETAPI_ACCESS_TOKEN", TOKEN)
        .env("COMETAPI_BASE_URL", server.url())
        .env("KEYSYNC_DB", dir.path().join("keys.db"))
        .args(["pull", "--json"])
        .args(args)
        .output()
        .expect("keysync runs");
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON summary");
    let count = |name: &str| summary[name].as_u64().expect("a count");
    assert_eq!(summary["keys"], KEYS, "{summary}");
    assert_eq!(
        count("rate_limited"),
        server.account().rate_limited() as u64
    );
    assert_eq!(count("requests"), server.account().requests().len() as u64);
    Pulled {
        wall,
        requests: count("requests"),
        rate_limited: count("rate_limited"),
    }
}
