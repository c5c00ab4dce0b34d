//! What a monitor reads: health pings whose URL keeps its query string, `pull --json` lines
//! with their times (one for a failed pull too, naming its sync row), and `prune --json`.

use pretty_assertions::assert_eq;
use serde_json::json;

use crate::common::{Harness, NOW, PingRecorder, check_exit, text, wait_until};

const DAY: i64 = 86_400;

/// `--now` as the flag takes it, and as the JSON prints it.
fn at(unix: i64) -> (String, String) {
    let time = chrono::DateTime::from_timestamp(unix, 0).unwrap();
    (
        unix.to_string(),
        time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

#[test]
fn ping_urls_keep_their_query_string() {
    let h = Harness::with_keys(15);
    let recorder = PingRecorder::start();
    let ping_url = format!("{}/ping/5f2c?rid=42", recorder.url);
    let line = h.pull_run(&["--ping-url", &ping_url], 0).stdout;
    assert_eq!(
        recorder.take(),
        vec![
            (
                "GET".into(),
                "/ping/5f2c/start?rid=42".into(),
                String::new()
            ),
            (
                "POST".into(),
                "/ping/5f2c?rid=42".into(),
                line.trim_end().to_string()
            ),
        ]
    );

    h.server.account().faults.success_false_page = Some(1);
    h.pull_run(&["--ping-url", &ping_url], 4);
    let paths: Vec<(String, String)> = recorder
        .take()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET".to_string(), "/ping/5f2c/start?rid=42".to_string()),
            ("POST".to_string(), "/ping/5f2c/fail?rid=42".to_string()),
        ]
    );
}

#[test]
fn a_pull_json_summary_carries_its_start_and_end() {
    let h = Harness::with_keys(25);
    let (now_flag, now_text) = at(NOW + DAY);
    let summary = h.pull(&["--now", &now_flag]);
    let duration = summary["duration_ms"].clone();
    assert!(duration.is_u64(), "{summary}");
    assert_eq!(
        summary,
        json!({"sync": 1, "status": "ok", "keys": 25, "added": 25, "changed": 0, "removed": 0,
               "pages": 1, "requests": 3, "rate_limited": 0, "duration_ms": duration,
               "started_at": now_text,
               "finished_at": now_text})
    );

    // On the clock: two RFC 3339 UTC times, in order, within the time the test saw pass.
    let before = chrono::Utc::now().timestamp();
    let summary = h.pull(&[]);
    let after = chrono::Utc::now().timestamp();
    let time = |field: &str| {
        let parsed = chrono::DateTime::parse_from_rfc3339(summary[field].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{field} in {summary}: {e}"));
        assert_eq!(parsed.offset().local_minus_utc(), 0);
        parsed.timestamp()
    };
    let (started, finished) = (time("started_at"), time("finished_at"));
    assert!(
        before <= started && started <= finished && finished <= after,
        "{summary}"
    );
}

#[test]
fn a_failed_pull_prints_one_json_line_naming_its_sync() {
    let h = Harness::with_keys(25);
    let (first, _) = at(NOW + DAY);
    h.pull(&["--now", &first]);
    h.server.account().faults.success_false_page = Some(1);
    let (second, second_text) = at(NOW + 2 * DAY);
    let failed = h.pull_run(&["--json", "--now", &second], 4);
    assert_eq!(failed.stdout.lines().count(), 1, "{}", failed.stdout);
    let error = "page 1: the API answered success:false: database error: too many connections";
    assert_eq!(
        failed.json(),
        json!({"sync": 2, "status": "failed", "error": error, "exit_code": 4,
               "started_at": second_text, "finished_at": second_text})
    );
    assert_eq!(failed.stderr, format!("keysync: error: {error}\n"));
    assert_eq!(
        h.rows("SELECT status, error FROM syncs WHERE id = 2"),
        [vec![text("failed"), text(error)]]
    );
}

#[test]
fn a_pull_that_wrote_no_row_prints_its_json_without_a_sync() {
    let h = Harness::with_keys(5);
    let (now_flag, now_text) = at(NOW + DAY);
    // Refused before the lock: no row.
    let refused = h.pull_run(
        &["--json", "--now", &now_flag, "--ping-url", "ftp://hc/x"],
        2,
    );
    let error = "--ping-url (or the profile's ping_url) is not an http(s) URL; check it in your \
                 monitor's settings";
    assert_eq!(
        refused.json(),
        json!({"status": "failed", "error": error, "exit_code": 2,
               "started_at": now_text, "finished_at": now_text})
    );
    assert!(!h.db.exists(), "nothing was written");

    // No token: the settings fail before the pull begins, and the line is still printed.
    let mut command = h.keysync();
    command
        .env_remove("COMETAPI_ACCESS_TOKEN")
        .args(["pull", "--json", "--now", &now_flag]);
    let no_token = crate::common::run(&mut command, 2);
    let line = no_token.json();
    assert_eq!(line["exit_code"], 2);
    assert_eq!(line["started_at"], now_text.as_str());
    assert!(line.get("sync").is_none(), "{line}");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .starts_with("no access token: set COMETAPI_ACCESS_TOKEN"),
        "{line}"
    );
    // Without --json a failure prints nothing on stdout, as before.
    let plain = h.pull_run(&["--ping-url", "ftp://hc/x"], 2);
    assert_eq!(plain.stdout, "");
}

#[test]
fn every_json_lines_carry_their_times_and_failed_pulls_their_own_line() {
    let h = Harness::with_keys(10);
    let child = h.spawn(&[
        "pull",
        "--every",
        "1s",
        "--json",
        "--retries",
        "0",
        "--backoff-base",
        "10ms",
    ]);
    let count = |sql: &str| {
        rusqlite::Connection::open(&h.db)
            .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0)
    };
    wait_until("a good pull", || {
        count("SELECT count(*) FROM syncs WHERE status = 'ok'") >= 1
    });
    h.server.account().faults.success_false_page = Some(1);
    wait_until("a failed pull", || {
        count("SELECT count(*) FROM syncs WHERE status = 'failed'") >= 1
    });
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let output = check_exit(
        child.wait_with_output().unwrap(),
        0,
        "keysync pull --every 1s --json",
    );
    let lines: Vec<serde_json::Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for line in &lines {
        for field in ["started_at", "finished_at"] {
            let time = line[field].as_str().unwrap_or_else(|| panic!("{line}"));
            assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{line}");
        }
    }
    let first_failed: i64 = count("SELECT min(id) FROM syncs WHERE status = 'failed'");
    let failure = lines
        .iter()
        .find(|line| line["status"] == "failed")
        .unwrap_or_else(|| panic!("no failed line in {lines:?}"));
    assert_eq!(failure["sync"], first_failed);
    assert_eq!(failure["exit_code"], 4);
    assert_eq!(
        failure["error"],
        "page 1: the API answered success:false: database error: too many connections"
    );
    assert_eq!(lines[0]["status"], "ok");
    assert_eq!(lines[0]["sync"], 1);
    // One line per finished pull, whether it succeeded or failed.
    // (A pull that SIGTERM rolled back is failed, `interrupted`, and has its line too.)
    let finished = count("SELECT count(*) FROM syncs WHERE status IN ('ok', 'failed')");
    assert_eq!(lines.len() as i64, finished, "{lines:?}");
}

#[test]
fn prune_json_says_what_it_deleted_or_would() {
    let h = Harness::with_keys(3);
    for day in 1..=3 {
        h.server
            .account()
            .set(1, "name", json!(format!("renamed on day {day}")));
        h.pull(&["--now", &(NOW + day * DAY).to_string()]);
    }
    let now = (NOW + 4 * DAY).to_string();
    let cutoff = NOW + 4 * DAY - 36 * 3600;
    let expected = |dry_run: bool| {
        json!({"dry_run": dry_run, "cutoff": cutoff,
               "oldest_kept": {"sync": 3, "started_at": NOW + 3 * DAY},
               "syncs": 2, "key_versions": 2, "vacuum": null})
    };
    let planned = h.run(
        &[
            "--now",
            &now,
            "prune",
            "--keep",
            "36h",
            "--dry-run",
            "--json",
        ],
        0,
    );
    assert_eq!(planned.stdout.lines().count(), 1);
    assert_eq!(planned.json(), expected(true));
    assert_eq!(h.count("SELECT count(*) FROM syncs"), 3);

    let pruned = h.run(&["--now", &now, "prune", "--keep", "36h", "--json"], 0);
    assert_eq!(pruned.json(), expected(false));
    assert_eq!(h.count("SELECT count(*) FROM syncs"), 1);
    assert_eq!(h.count("SELECT count(*) FROM key_versions"), 3);

    let again = h
        .run(
            &[
                "--now", &now, "prune", "--keep", "36h", "--json", "--vacuum",
            ],
            0,
        )
        .json();
    let vacuum = &again["vacuum"];
    assert!(
        vacuum["bytes_before"].is_u64() && vacuum["bytes_after"].is_u64(),
        "{again}"
    );
    assert_eq!(
        again,
        json!({"dry_run": false, "cutoff": cutoff,
               "oldest_kept": {"sync": 3, "started_at": NOW + 3 * DAY},
               "syncs": 0, "key_versions": 0, "vacuum": vacuum.clone()})
    );
}

#[test]
fn a_one_shot_pull_stopped_by_sigterm_prints_its_failed_line() {
    let h = Harness::with_keys(250);
    h.server.account().faults.hang_page = Some((2, 1000));
    let (now_flag, now_text) = at(NOW + DAY);
    let child = h.spawn(&["pull", "--json", "--now", &now_flag, "--timeout", "1h"]);
    wait_until("the hung page", || h.server.account().requests().len() >= 2);
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let stopped = check_exit(
        child.wait_with_output().unwrap(),
        143,
        "keysync pull --json",
    );
    let error = "stopped by SIGTERM: the pull did not finish and changed no key (if it had \
                 begun, `keysync syncs` lists it as failed, interrupted)";
    assert_eq!(
        stopped.json(),
        json!({"sync": 1, "status": "failed", "error": error, "exit_code": 143,
               "started_at": now_text, "finished_at": now_text})
    );
    assert_eq!(
        h.rows("SELECT id, status, error FROM syncs"),
        [vec![
            crate::common::int(1),
            text("failed"),
            text("interrupted")
        ]]
    );
}
