//! The pull benchmark (`benches/run.sh`, or `cargo bench --bench pull`).
//!
//! Serves a generated account from pre-serialised pages on 127.0.0.1 (so the server costs
//! next to nothing), runs every pull as its own `keysync` process (so its peak RSS is the
//! pull's alone), and prints the median wall time, keys/s and peak RSS of each case:
//! a first pull into an empty database, the same account unchanged, then with 1% of keys
//! changed, and the sqlite-utils baseline script against the same server.
//!
//! Then the first pull of a big account (`KEYSYNC_BENCH_BIG_KEYS`, default 1,000,000; 0 skips
//! it), and the table: each case as measured before this work ("today"), its target
//! and now, side by side.
//!
//! `KEYSYNC_BENCH_BIN=PATH` measures another keysync binary (a build from before a change) with
//! the same harness. `KEYSYNC_BENCH_SERVE=1` only serves the account (its URL on stdout) until stdin closes, to
//! profile one pull by hand (`perf record keysync pull ...`).

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Map, Value as Json, json};

const TOKEN: &str = "bench-token";
const LAUNCHER_ENV: &str = "KEYSYNC_BENCH_LAUNCHER";
const NOW: i64 = 1_766_102_400;

type Pages = Arc<RwLock<Vec<Bytes>>>;

fn main() {
    if std::env::var_os(LAUNCHER_ENV).is_some() {
        return launcher::serve_requests();
    }
    let mut launcher = launcher::Launcher::start();
    let keys: usize = env_or("KEYSYNC_BENCH_KEYS", 100_000);
    let big_keys: usize = env_or("KEYSYNC_BENCH_BIG_KEYS", 1_000_000);
    let runs: usize = env_or("KEYSYNC_BENCH_RUNS", 5);
    let mut items = account(keys);
    let pages: Pages = Arc::new(RwLock::new(serialise(&items)));
    let url = serve(pages.clone());
    if std::env::var_os("KEYSYNC_BENCH_SERVE").is_some() {
        // For profiling one pull by hand: serve the account until stdin closes.
        println!("serving {keys} keys at {url} (token {TOKEN}); close stdin to stop");
        std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).ok();
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    println!(
        "keysync pull benchmark: {keys} keys, median of {runs} runs, server {url}, binary {}",
        keysync_binary()
    );
    println!(
        "{:<34} {:>10} {:>12} {:>12}",
        "case", "wall", "keys/s", "peak RSS"
    );

    let fresh = |run: usize| dir.path().join(format!("first-{run}.db"));
    let first = measure(runs, |run| pull(&mut launcher, &url, &fresh(run)));
    report("first pull, empty database", &first, keys);

    let db = fresh(0);
    let before = keysync::store::database_bytes(&db);
    let versions_before = count_versions(&db);
    let unchanged = measure(runs, |_| pull(&mut launcher, &url, &db));
    report("unchanged re-pull", &unchanged, keys);
    let growth = keysync::store::database_bytes(&db) as i64 - before as i64;
    let new_versions = count_versions(&db) - versions_before;
    println!(
        "  growth over {runs} unchanged re-pulls: {growth} bytes of database + WAL, {new_versions} new version rows"
    );

    let changed = measure(runs, |run| {
        change_one_percent(&mut items, run as i64);
        *pages.write().unwrap() = serialise(&items);
        pull(&mut launcher, &url, &db)
    });
    report("1% of keys changed", &changed, keys);

    let baseline = std::env::var_os("KEYSYNC_BENCH_PYTHON").map(|python| {
        let python = python.to_str().expect("a UTF-8 python path").to_string();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/baseline.py");
        let baseline = measure(runs, |run| {
            let db = dir.path().join(format!("baseline-{run}.db"));
            let db = db.to_str().expect("a UTF-8 temporary path");
            launcher.run(&python, &[script, &url, TOKEN, db], &[])
        });
        report("baseline: requests + sqlite-utils", &baseline, keys);
        baseline.wall.as_secs_f64() / first.wall.as_secs_f64()
    });
    if baseline.is_none() {
        println!("baseline skipped: run benches/run.sh to install sqlite-utils for it");
    }

    // The big account, served by the same server once the small one is done with.
    let big = (big_keys > 0).then(|| {
        *pages.write().unwrap() = serialise(&account(big_keys));
        let big = measure(runs, |run| {
            let db = dir.path().join(format!("big-{run}.db"));
            let measured = pull(&mut launcher, &url, &db);
            std::fs::remove_file(&db).ok();
            measured
        });
        report(&format!("first pull, {big_keys} keys"), &big, big_keys);
        big
    });

    let small = [&first, &unchanged, &changed];
    let peak = small.iter().map(|m| m.peak_rss_kib).max().unwrap_or(0);
    let rows = [
        Row::new(
            format!("first pull, {} keys", thousands(keys)),
            "0.86–0.99 s",
            "≤ 0.7 s, and ≥ 7× the baseline",
            format!(
                "{:.2} s{}",
                secs(&first),
                baseline.map_or(String::new(), |ratio| format!(", {ratio:.1}× the baseline"))
            ),
            secs(&first) <= 0.7 && baseline.is_none_or(|ratio| ratio >= 7.0),
        ),
        Row::new(
            format!("unchanged re-pull, {}", thousands(keys)),
            "0.62–0.77 s",
            "≤ 0.35 s, no version rows, ≤ 8 KiB growth",
            format!(
                "{:.2} s, {new_versions} version rows, {growth} bytes growth",
                secs(&unchanged)
            ),
            secs(&unchanged) <= 0.35 && new_versions == 0 && growth <= 8 * 1024,
        ),
        Row::new(
            format!("1% changed re-pull, {}", thousands(keys)),
            "0.70–1.09 s",
            "≤ 0.45 s",
            format!("{:.2} s", secs(&changed)),
            secs(&changed) <= 0.45,
        ),
        Row::new(
            format!("peak RSS, {}", thousands(keys)),
            "39 MB",
            "≤ 64 MB",
            format!("{:.1} MB", megabytes(peak)),
            megabytes(peak) <= 64.0,
        ),
    ];
    let big_row = big.map(|big| {
        Row::new(
            format!("first pull, {} keys", thousands(big_keys)),
            "9.4 s",
            "≤ 7 s, RSS ≤ 100 MB",
            format!("{:.2} s, {:.1} MB", secs(&big), megabytes(big.peak_rss_kib)),
            secs(&big) <= 7.0 && megabytes(big.peak_rss_kib) <= 100.0,
        )
    });
    print_table(
        rows.iter().chain(big_row.as_ref()),
        keys == 100_000 && big_keys == 1_000_000,
    );
}

/// One line of the table: what was measured before this work, the target, and now.
struct Row {
    case: String,
    today: &'static str,
    target: &'static str,
    now: String,
    met: bool,
}

impl Row {
    fn new(case: String, today: &'static str, target: &'static str, now: String, met: bool) -> Row {
        Row {
            case,
            today,
            target,
            now,
            met,
        }
    }
}

/// The table, as Markdown. "today" is what the issue measured before this work (whole
/// processes against nginx, medians, 2026-11); its targets hold for 100,000 and 1,000,000 keys.
fn print_table<'a>(rows: impl Iterator<Item = &'a Row>, sizes_of_the_targets: bool) {
    println!();
    println!("| case | today | target | now | met |");
    println!("|---|---|---|---|---|");
    for row in rows {
        let met = match (sizes_of_the_targets, row.met) {
            (false, _) => "(other size)",
            (true, true) => "yes",
            (true, false) => "no",
        };
        println!(
            "| {} | {} | {} | {} | {met} |",
            row.case, row.today, row.target, row.now
        );
    }
}

fn secs(m: &Measurement) -> f64 {
    m.wall.as_secs_f64()
}

fn megabytes(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn account(count: usize) -> Vec<Map<String, Json>> {
    keysync::fake::generate_keys(count, 11, NOW)
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            item.insert("id".into(), json!(i as i64 + 1));
            item.insert("user_id".into(), json!(5678));
            item
        })
        .collect()
}

fn change_one_percent(items: &mut [Map<String, Json>], round: i64) {
    for item in items.iter_mut().step_by(100) {
        let used = item["used_quota"].as_i64().unwrap_or(0) + 1000 + round;
        item.insert("used_quota".into(), json!(used));
        item.insert("accessed_time".into(), json!(NOW + 60 * (round + 1)));
    }
}

/// Every page's response body, newest key first, as the API pages them.
fn serialise(items: &[Map<String, Json>]) -> Vec<Bytes> {
    let newest_first: Vec<&Map<String, Json>> = items.iter().rev().collect();
    let total = items.len();
    let pages = newest_first.chunks(100).enumerate().map(|(i, chunk)| {
        let body = json!({"success": true, "message": "", "data": {
            "page": i + 1, "page_size": 100, "total": total, "items": chunk}});
        Bytes::from(serde_json::to_vec(&body).unwrap())
    });
    let mut pages: Vec<Bytes> = pages.collect();
    let empty = json!({"success": true, "message": "", "data": {
        "page": pages.len() + 1, "page_size": 100, "total": total, "items": []}});
    pages.push(Bytes::from(serde_json::to_vec(&empty).unwrap()));
    pages
}

fn serve(pages: Pages) -> String {
    let app = axum::Router::new()
        .route("/api/token/", get(page))
        .with_state(pages);
    keysync::fake::serve_in_background(app).expect("the page server starts")
}

async fn page(
    State(pages): State<Pages>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> ([(&'static str, &'static str); 1], Bytes) {
    let pages = pages.read().unwrap();
    let number: usize = query
        .get("p")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let body = pages
        .get(number - 1)
        .unwrap_or(pages.last().unwrap())
        .clone();
    ([("content-type", "application/json")], body)
}

struct Measurement {
    wall: Duration,
    peak_rss_kib: i64,
}

/// Runs `runs` times and keeps the median wall time and the largest peak RSS.
fn measure(runs: usize, mut once: impl FnMut(usize) -> Measurement) -> Measurement {
    let mut all: Vec<Measurement> = (0..runs).map(&mut once).collect();
    all.sort_by_key(|m| m.wall);
    let peak = all.iter().map(|m| m.peak_rss_kib).max().unwrap_or(0);
    Measurement {
        wall: all[all.len() / 2].wall,
        peak_rss_kib: peak,
    }
}

fn report(case: &str, m: &Measurement, keys: usize) {
    println!(
        "{case:<34} {:>9.3}s {:>12.0} {:>9.1} MB",
        m.wall.as_secs_f64(),
        keys as f64 / m.wall.as_secs_f64(),
        m.peak_rss_kib as f64 / 1024.0
    );
}

/// The binary measured: this crate's, or `KEYSYNC_BENCH_BIN` (another build of keysync, such as
/// the one before a change, measured by the same harness in the same conditions).
fn keysync_binary() -> String {
    std::env::var("KEYSYNC_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_keysync").into())
}

fn pull(launcher: &mut launcher::Launcher, url: &str, db: &Path) -> Measurement {
    let db = db.to_str().expect("a UTF-8 temporary path");
    launcher.run(
        &keysync_binary(),
        &["--db", db, "pull", "-q"],
        &[("COMETAPI_ACCESS_TOKEN", TOKEN), ("COMETAPI_BASE_URL", url)],
    )
}

/// Peak RSS must be the measured process's own. On Linux a child's `ru_maxrss` also counts the
/// memory of whoever forked it, up to its exec; so every measured process is started by this
/// small launcher, a copy of the benchmark started before it builds the account, whose
/// memory stays a few MB. It reads one request per line and answers with a measurement.
mod launcher {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::{LAUNCHER_ENV, Measurement};

    pub struct Launcher {
        _child: Child,
        requests: ChildStdin,
        answers: BufReader<ChildStdout>,
    }

    impl Launcher {
        pub fn start() -> Launcher {
            let mut child = Command::new(std::env::current_exe().expect("the benchmark's path"))
                .env(LAUNCHER_ENV, "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("the launcher starts");
            Launcher {
                requests: child.stdin.take().unwrap(),
                answers: BufReader::new(child.stdout.take().unwrap()),
                _child: child,
            }
        }

        pub fn run(&mut self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Measurement {
            let request = json!({"program": program, "args": args, "env": env});
            writeln!(self.requests, "{request}").expect("the launcher reads");
            let mut line = String::new();
            self.answers
                .read_line(&mut line)
                .expect("the launcher answers");
            let answer: serde_json::Value = serde_json::from_str(&line).expect("a JSON answer");
            assert_eq!(answer["status"], 0, "{request} failed: {answer}");
            Measurement {
                wall: Duration::from_micros(answer["wall_us"].as_u64().unwrap()),
                peak_rss_kib: answer["peak_rss_kib"].as_i64().unwrap(),
            }
        }
    }

    /// The launcher's side: run each requested process with a clean environment, and report
    /// its wall time, exit status and peak RSS from wait4.
    #[expect(
        clippy::zombie_processes,
        reason = "wait4 reaps the child, with its rusage"
    )]
    pub fn serve_requests() {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let request: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let mut command = Command::new(request["program"].as_str().unwrap());
            command.env_clear().stdout(Stdio::null());
            for arg in request["args"].as_array().unwrap() {
                command.arg(arg.as_str().unwrap());
            }
            for pair in request["env"].as_array().unwrap() {
                command.env(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            }
            let started = Instant::now();
            let child = command.spawn().expect("the measured process starts");
            let mut status = 0;
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: wait4 on our own child's pid, with valid pointers to locals.
            let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
            let wall = started.elapsed();
            assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            };
            let answer = json!({"status": code, "wall_us": wall.as_micros() as u64,
                                "peak_rss_kib": usage.ru_maxrss});
            println!("{answer}");
        }
    }
}

fn count_versions(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM key_versions", [], |r| r.get(0))
        .unwrap()
}
