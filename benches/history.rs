//! The history benchmark (`benches/run.sh`, or `cargo bench --bench history`).
//!
//! Builds a database of 1,000 keys × 1,000 syncs in which every key changes at every sync
//! (10^6 version rows), through keysync's own staging and apply code, then times each reading
//! command as its own `keysync` process: `diff` between neighbouring and distant syncs,
//! `history KEY` by id and by name, every preset report, `usage`, `html`, and `prune` on a copy. Set
//! `KEYSYNC_BENCH_DB=/some/path.db` to build the database once and reuse it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keysync::testing::Store;
use keysync::testing::{GatewayStatus, KeyRecord, Listing, Page};
use serde_json::json;

const KEYS: usize = 1000;
const SYNCS: i64 = 1000;
const START: i64 = 1_766_102_400;
const EVERY: i64 = 900;
const REPORTS: [&str; 6] = [
    "expiring-soon",
    "top-consumers",
    "idle",
    "low-quota",
    "unrestricted",
    "forecast",
];

fn main() {
    let runs: usize = std::env::var("KEYSYNC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("a temporary folder");
    // KEYSYNC_BENCH_DB keeps the built database between runs (it takes a minute or two).
    let db = std::env::var_os("KEYSYNC_BENCH_DB")
        .map_or_else(|| dir.path().join("history.db"), PathBuf::from);
    let started = Instant::now();
    if !db.exists() {
        build(&db);
    }
    let versions = count(&db, "SELECT count(*) FROM key_versions");
    println!(
        "keysync history benchmark: {KEYS} keys x {SYNCS} syncs = {versions} version rows \
         (built in {:.1}s), median of {runs} runs",
        started.elapsed().as_secs_f64()
    );
    println!("{:<40} {:>10}", "command", "wall");
    let now = (START + SYNCS * EVERY + 60).to_string();
    let mut cases: Vec<(String, Vec<String>)> = vec![
        (
            "diff 999 1000 (neighbours)".into(),
            args(&["diff", "999", "1000"]),
        ),
        (
            "diff 1 1000 (whole range)".into(),
            args(&["diff", "1", "1000"]),
        ),
        ("diff 24h (by duration)".into(), args(&["diff", "24h"])),
        ("history 500 (by id)".into(), args(&["history", "500"])),
        (
            "history key-500 (by name)".into(),
            args(&["history", "key-500"]),
        ),
    ];
    for report in REPORTS {
        let mut report_args = args(&["query", "--report", report, "--format", "csv"]);
        if matches!(report, "top-consumers" | "forecast") {
            report_args.extend(args(&["--since", "7d"]));
        }
        cases.push((format!("query --report {report}"), report_args));
    }
    cases.push((
        "usage --since 30d".into(),
        args(&["usage", "--since", "30d", "--format", "csv"]),
    ));
    cases.push((
        "usage --every day".into(),
        args(&["usage", "--every", "day", "--format", "csv"]),
    ));
    let page = dir.path().join("page.html").display().to_string();
    cases.push((
        "html --since 30d (every section)".into(),
        args(&["html", "-q", "--out", &page]),
    ));
    for (name, case_args) in &cases {
        let wall = median(runs, || time(&db, &now, case_args));
        println!("{name:<40} {:>8.1}ms", wall.as_secs_f64() * 1000.0);
    }
    let prune = median(runs, || {
        let copy = dir.path().join("prune.db");
        std::fs::copy(&db, &copy).expect("a copy of the database");
        time(&copy, &now, &args(&["prune", "--keep", "5d"]))
    });
    println!(
        "{:<40} {:>8.1}ms",
        "prune --keep 5d (of ~10.4d)",
        prune.as_secs_f64() * 1000.0
    );
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Every key changes its quota use at every sync, so every sync writes 1,000 versions.
fn build(db: &Path) {
    let store = Store::open(db).expect("the database opens");
    for sync_number in 1..=SYNCS {
        let now = START + sync_number * EVERY;
        let sync = store
            .begin_sync("http://127.0.0.1:1", now)
            .expect("a sync row");
        let mut staging = store.staging(sync, false).expect("staging");
        staging.stage(1, page(sync_number)).expect("a staged page");
        let listing = Listing {
            pages: 10,
            keys_seen: KEYS,
            inconsistency: None,
            passes: 1,
            requests: Default::default(),
        };
        staging
            .apply(&listing, &GatewayStatus::unread("not read".into()), now)
            .expect("the sync applies");
    }
}

fn page(sync_number: i64) -> Page {
    let items = (1..=KEYS as i64)
        .map(|id| {
            let item = json!({
                "id": id, "user_id": 5678, "key": format!("{id:0>48}"), "status": 1,
                "name": format!("key-{id}"), "created_time": START - id * 3600,
                "accessed_time": START + sync_number * EVERY,
                "expired_time": if id % 3 == 0 { -1 } else { START + id * 86_400 },
                "remain_quota": 10_000_000 - sync_number * id, "unlimited_quota": id % 5 == 0,
                "model_limits_enabled": false, "model_limits": "", "allow_ips": null,
                "used_quota": sync_number * id, "group": "", "cross_group_retry": false,
            });
            KeyRecord::from_json(&item).expect("a valid item")
        })
        .collect();
    Page {
        number: 1,
        total: Some(KEYS as i64),
        page_size: KEYS,
        page_size_echoed: true,
        items,
        known: Vec::new(),
    }
}

fn time(db: &Path, now: &str, case_args: &[String]) -> Duration {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_keysync"))
        .env_clear()
        .arg("--db")
        .arg(db)
        .args(["--now", now])
        .args(case_args)
        .stdout(Stdio::null())
        .status()
        .expect("keysync runs");
    let wall = started.elapsed();
    assert!(status.success(), "keysync {case_args:?} failed: {status}");
    wall
}

fn median(runs: usize, mut once: impl FnMut() -> Duration) -> Duration {
    let mut all: Vec<Duration> = (0..runs).map(|_| once()).collect();
    all.sort();
    all[all.len() / 2]
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("the database opens");
    conn.query_row(sql, [], |row| row.get(0))
        .expect("the count runs")
}
