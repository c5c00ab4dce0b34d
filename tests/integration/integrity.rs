//! The pull integrity guarantees, one test each: retries, no false removals, no duplicates or
//! invented keys, clean failures on bad responses, crash safety, cron overlap, hostile values
//! and secrets. Every fault comes from a switch on the fake.

use std::time::{Duration, Instant};

use keysync::testing::{Drift, FakeAccount, Malformed};
use pretty_assertions::assert_eq;
use rusqlite::types::Value;
use serde_json::json;

use crate::common::{Harness, NOW, SEED, TOKEN, api_fields_sql, expected_api_row, int, run, text};

const DATA_TABLES: [&str; 2] = ["keys", "key_versions"];

fn status_counts(summary: &serde_json::Value) -> (String, i64, i64, i64, i64) {
    let n = |k: &str| summary[k].as_i64().unwrap();
    (
        summary["status"].as_str().unwrap().to_string(),
        n("keys"),
        n("added"),
        n("changed"),
        n("removed"),
    )
}

fn stored_ids(h: &Harness) -> Vec<i64> {
    h.rows("SELECT id FROM keys WHERE removed_sync IS NULL ORDER BY id")
        .into_iter()
        .map(|row| match row[0] {
            Value::Integer(id) => id,
            _ => unreachable!(),
        })
        .collect()
}

// 1. Retries ----------------------------------------------------------------------------------

#[test]
fn rate_limits_are_retried_and_logged_without_the_token() {
    let h = Harness::with_keys(250);
    h.server.account().faults.rate_limit_first = 3;
    let log = h.pull_run(&["-v"], 0).stderr;
    assert!(
        log.contains("page 1: HTTP 429 (rate limited), retry 1/8 in "),
        "{log}"
    );
    assert!(log.contains("retry 3/8"), "{log}");
    assert!(!log.contains(TOKEN));
    // Three 429s, then 3 pages, page 1 again and /api/status.
    assert_eq!(h.server.account().requests().len(), 3 + 3 + 1 + 1);
    assert_eq!(stored_ids(&h), (1..=250).collect::<Vec<_>>());
}

#[test]
fn server_errors_with_html_bodies_are_retried() {
    let h = Harness::with_keys(550);
    h.server.account().faults.fail_every = Some(3);
    h.pull_run(&[], 0);
    assert_eq!(stored_ids(&h), (1..=550).collect::<Vec<_>>());
}

#[test]
fn connection_resets_are_retried() {
    let h = Harness::with_keys(150);
    h.server.account().faults.reset_connections = 2;
    h.pull_run(&["--concurrency", "1"], 0);
    assert_eq!(h.server.account().connections_reset(), 2);
    assert_eq!(stored_ids(&h), (1..=150).collect::<Vec<_>>());
}

#[test]
fn a_hung_page_times_out_and_is_retried() {
    let h = Harness::with_keys(250);
    h.server.account().faults.hang_page = Some((2, 1));
    let output = h.pull_run(&["--timeout", "300ms", "-v"], 0);
    assert!(
        output.stderr.contains("page 2: the request timed out"),
        "{}",
        output.stderr
    );
    assert_eq!(stored_ids(&h), (1..=250).collect::<Vec<_>>());
}

#[test]
fn retry_after_is_honoured() {
    let h = Harness::with_keys(10);
    h.server.account().faults.rate_limit_first = 1;
    h.server.account().faults.retry_after = Some(1);
    let started = Instant::now();
    let output = h.pull_run(&["-v"], 0);
    // The backoff alone would wait 10 ms; only Retry-After makes it a second.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        output.stderr.contains("retry 1/8 in 1s"),
        "{}",
        output.stderr
    );
}

#[test]
fn past_the_retry_budget_the_pull_fails_with_exit_4_and_changes_nothing() {
    let h = Harness::with_keys(120);
    h.pull(&[]);
    let before = h.dump(&DATA_TABLES);
    let requests_before = h.server.account().requests().len();
    h.server.account().faults.fail_every = Some(1);
    let output = h.pull_run(&["--retries", "2"], 4);
    assert!(
        output
            .stderr
            .contains("page 1: HTTP 502 Bad Gateway; gave up after 3 attempts"),
        "{}",
        output.stderr
    );
    assert_eq!(h.server.account().requests().len(), requests_before + 3);
    assert_eq!(h.dump(&DATA_TABLES), before);
    assert_eq!(
        h.rows("SELECT status FROM syncs ORDER BY id"),
        vec![vec![text("ok")], vec![text("failed")]]
    );
}

// 2 and 3. Drift: no false removals, no duplicates, no invented keys -----------------------------

#[test]
fn a_key_created_mid_pull_is_recorded_once_and_nothing_is_removed() {
    let h = Harness::with_keys(350);
    h.pull(&[]);
    h.server.account().faults.after_page = Some(Drift {
        page: 1,
        create: 1,
        delete: vec![],
        every_time: false,
    });
    let summary = h.pull(&["--concurrency", "1"]);
    assert_eq!(status_counts(&summary), ("ok".into(), 351, 1, 0, 0));
    assert_eq!(stored_ids(&h), (1..=351).collect::<Vec<_>>());
    assert_eq!(
        h.count("SELECT count(*) FROM key_versions"),
        351,
        "one version per key"
    );
    // Each pass is 4 pages and page 1 again. The first pull: one pass. This one: pass 1 saw
    // totals 350 then 351 (and page 1 changed), pass 2 was consistent. Each pull reads
    // /api/status once.
    assert_eq!(h.server.account().requests().len(), 5 + 5 + 5 + 2);
}

#[test]
fn a_key_deleted_mid_pull_is_removed_only_by_a_consistent_pass() {
    let h = Harness::with_keys(350);
    h.pull(&[]);
    h.server.account().faults.after_page = Some(Drift {
        page: 1,
        create: 0,
        delete: vec![300],
        every_time: false,
    });
    let summary = h.pull(&["--concurrency", "1"]);
    assert_eq!(status_counts(&summary), ("ok".into(), 349, 0, 0, 1));
    assert_eq!(
        h.rows("SELECT id FROM keys WHERE removed_sync = 2"),
        vec![vec![int(300)]]
    );
    let expected: Vec<i64> = (1..=350).filter(|id| *id != 300).collect();
    assert_eq!(stored_ids(&h), expected);
}

#[test]
fn a_listing_that_never_settles_is_partial_and_marks_nothing_removed() {
    let h = Harness::with_keys(350);
    h.pull(&[]);
    h.server.account().remove(5);
    h.server.account().faults.after_page = Some(Drift {
        page: 1,
        create: 1,
        delete: vec![],
        every_time: true,
    });
    let output = h.pull_run(&["--json", "--concurrency", "1"], 0);
    assert!(
        output.stderr.contains("sync 2 is partial"),
        "{}",
        output.stderr
    );
    let summary: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    // The fake creates a key after every answer for page 1, so after each pass's page 1 and
    // after its re-read: ids 351 to 356. The last pass started from 353 keys and saw all but
    // the one created after its page 1 (353 unique); its re-read of page 1 saw 355. Key 356
    // came after the last request.
    assert_eq!(status_counts(&summary), ("partial".into(), 353, 5, 0, 0));
    assert_eq!(
        h.rows("SELECT status, removed FROM syncs WHERE id = 2"),
        vec![vec![text("partial"), int(0)]]
    );
    assert_eq!(
        h.count("SELECT count(*) FROM keys WHERE removed_sync IS NOT NULL"),
        0,
        "key 5 is not marked removed"
    );
    assert_eq!(h.count("SELECT count(*) FROM keys"), 355);
    // Nothing was invented: every stored key was served by the fake at some point.
    assert_eq!(h.count("SELECT max(id) FROM keys"), 355);

    // Once the account holds still, the next pull removes key 5 for real.
    h.server.account().faults.after_page = None;
    let summary = h.pull(&[]);
    assert_eq!(status_counts(&summary), ("ok".into(), 355, 1, 0, 1));
    assert_eq!(
        h.rows("SELECT removed_sync FROM keys WHERE id = 5"),
        vec![vec![int(3)]]
    );
}

// 4. Bad responses fail cleanly -----------------------------------------------------------------

#[test]
fn malformed_pages_fail_with_exit_4_naming_the_page_and_change_nothing() {
    let cases = [
        (
            Malformed::InvalidJson,
            "page 2: the response is not valid JSON",
        ),
        (
            Malformed::MissingData,
            "page 2: the response has no `data` object",
        ),
        (
            Malformed::ItemsNotArray,
            "page 2: `data.items` is a string, expected an array",
        ),
        (
            Malformed::IdAsString,
            "page 2: item 0: field `id` is a string, expected an integer",
        ),
    ];
    for (fault, message) in cases {
        let h = Harness::with_keys(250);
        h.pull(&[]);
        h.server.account().set(1, "name", json!("changed"));
        let before = h.dump(&DATA_TABLES);
        h.server.account().faults.malformed_page = Some((2, fault.clone()));
        let output = h.pull_run(&[], 4);
        assert!(
            output.stderr.contains(message),
            "{fault:?}: {}",
            output.stderr
        );
        assert_eq!(h.dump(&DATA_TABLES), before, "{fault:?}");
        let rows = h.rows("SELECT status, error FROM syncs WHERE id = 2");
        assert_eq!(rows[0][0], text("failed"));
        assert!(
            matches!(&rows[0][1], Value::Text(e) if e.contains(message)),
            "{fault:?}: {rows:?}"
        );
    }
}

#[test]
fn success_false_mid_pull_is_exit_4() {
    let h = Harness::with_keys(250);
    h.server.account().faults.success_false_page = Some(3);
    let output = h.pull_run(&[], 4);
    assert!(
        output
            .stderr
            .contains("page 3: the API answered success:false: database error"),
        "{}",
        output.stderr
    );
    assert_eq!(h.count("SELECT count(*) FROM keys"), 0);
}

#[test]
fn an_auth_failure_costs_exactly_one_request() {
    let h = Harness::with_keys(1000);
    run(
        h.keysync()
            .env("COMETAPI_ACCESS_TOKEN", "revoked")
            .args(["pull"]),
        3,
    );
    assert_eq!(h.server.account().requests().len(), 1);
    let mut account = FakeAccount::new(TOKEN);
    account.require_user_id = true;
    let h = Harness::new(account);
    h.run(&["pull"], 3);
    assert_eq!(h.server.account().requests().len(), 1);
}

// 5. Crash safety -------------------------------------------------------------------------------

fn spawn_pull(h: &Harness, extra: &[&str]) -> std::process::Child {
    h.spawn(&[&["pull", "-q"], extra].concat())
}

#[test]
fn kill_9_at_any_moment_leaves_the_previous_snapshot_intact() {
    let h = Harness::with_keys(3000);
    h.pull(&[]);
    {
        let mut account = h.server.account();
        for id in (1..=3000).step_by(7) {
            account.set(id, "used_quota", json!(id * 1000));
        }
        account.generate(500, SEED + 9, NOW + 60);
    }
    let before = h.dump(&DATA_TABLES);
    // How long a full pull of the changed account takes, to spread the kills across it.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&h.db, copy.path().join("probe.db")).unwrap();
    let started = Instant::now();
    run(
        h.keysync()
            .env("KEYSYNC_DB", copy.path().join("probe.db"))
            .args(["pull", "-q"]),
        0,
    );
    let full = started.elapsed();

    for step in 0..10u32 {
        let mut child = spawn_pull(&h, &[]);
        std::thread::sleep(full * step / 10);
        child.kill().ok();
        child.wait().unwrap();
        let conn = h.conn();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "kill at step {step}");
        drop(conn);
        if h.count("SELECT count(*) FROM syncs WHERE status = 'ok'") > 1 {
            break; // the pull finished before the kill: the rest of the window is covered
        }
        assert_eq!(h.dump(&DATA_TABLES), before, "kill at step {step}");
    }
    let summary = h.pull(&[]);
    assert_eq!(summary["status"], "ok");
    assert_eq!(
        h.count("SELECT count(*) FROM syncs WHERE status = 'running'"),
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM keys WHERE removed_sync IS NULL"),
        3500
    );
    assert_eq!(
        h.count("SELECT count(*) FROM key_versions WHERE valid_to_sync IS NULL"),
        3500
    );
}

/// SQLite's rollback journal begins with these bytes once it holds what a commit needs to undo.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// A first pull writes its keys through a rollback journal; killed at its final write, it
/// leaves that journal hot beside the file. Readers cannot roll it back (they open the file
/// read-only): they say what happened and what mends it, `status --max-age` raises an alarm
/// (exit 1, not 6), and the next pull recovers the file.
#[test]
fn a_first_pull_killed_at_its_final_write_is_an_alarm_until_the_next_pull() {
    let h = Harness::with_keys(3000);
    let killed = h
        .keysync()
        .env("KEYSYNC_DEBUG_KILL_BEFORE_COMMIT", "1")
        .args(["pull", "-q"])
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(killed.status.signal(), Some(libc::SIGKILL), "{killed:?}");
    let journal = std::fs::read(format!("{}-journal", h.db.display())).unwrap();
    assert_eq!(journal[..8], JOURNAL_MAGIC, "the pull left a hot journal");

    let said = "a pull was interrupted; the next pull recovers the file";
    for (args, code) in [
        (&["status", "--max-age", "1h"][..], 1),
        (&["status", "--max-age", "1h", "--json"], 1),
        (&["status"], 6),
        (&["query", "SELECT count(*) FROM keys"], 6),
        (&["syncs"], 6),
    ] {
        let output = h.run(args, code);
        assert!(output.stderr.contains(said), "{args:?}: {}", output.stderr);
        assert!(!output.stderr.contains("malformed"), "{}", output.stderr);
        if args.contains(&"--json") {
            // The monitor's JSON says it too.
            let alarm = output.json()["alarm"].as_str().unwrap().to_string();
            assert!(alarm.contains(said), "{}", output.stdout);
        }
    }

    let summary = h.pull(&[]);
    assert_eq!(summary["status"], "ok");
    assert!(!std::path::Path::new(&format!("{}-journal", h.db.display())).exists());
    assert_eq!(
        h.rows("SELECT id, status FROM syncs ORDER BY id"),
        vec![vec![int(1), text("failed")], vec![int(2), text("ok")]]
    );
    assert_eq!(h.count("SELECT count(*) FROM keys"), 3000);
    h.run(&["status", "--max-age", "1h"], 0);
}

// 6. Cron overlap -------------------------------------------------------------------------------

/// Waits until the fake has had `more` requests beyond the ones it had already.
fn wait_for_requests(h: &Harness, already: usize, more: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.server.account().requests().len() < already + more {
        assert!(
            Instant::now() < deadline,
            "the first pull never reached the fake"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_second_pull_exits_5_at_once_or_waits_with_wait() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    h.server.account().faults.hang_page = Some((2, 1));
    let already = h.server.account().requests().len();
    let mut first = spawn_pull(&h, &["--timeout", "2s", "--backoff-base", "10ms"]);
    wait_for_requests(&h, already, 2);

    let output = h.run(&["pull"], 5);
    let db = h.db.display().to_string();
    assert!(
        output.stderr.contains(&db) && output.stderr.contains("--wait"),
        "{}",
        output.stderr
    );

    // Readers are not blocked by a pull in progress.
    assert_eq!(h.count("SELECT count(*) FROM keys"), 250);

    let waited = h.pull(&["--wait", "60s"]);
    assert!(first.wait().unwrap().success());
    assert_eq!(waited["status"], "ok");
    assert_eq!(
        h.rows("SELECT id, status FROM syncs ORDER BY id"),
        vec![
            vec![int(1), text("ok")],
            vec![int(2), text("ok")],
            vec![int(3), text("ok")],
        ]
    );
}

#[test]
fn the_lock_dies_with_its_process() {
    let h = Harness::with_keys(250);
    h.server.account().faults.hang_page = Some((2, 1));
    let mut first = spawn_pull(&h, &[]);
    wait_for_requests(&h, 0, 2);
    first.kill().unwrap();
    first.wait().unwrap();
    let summary = h.pull(&[]);
    assert_eq!(summary["sync"], 2);
    assert_eq!(
        h.rows("SELECT id, status, error FROM syncs ORDER BY id"),
        vec![
            vec![
                int(1),
                text("failed"),
                text("interrupted: the process ended before the sync finished")
            ],
            vec![int(2), text("ok"), Value::Null],
        ]
    );
}

// 7. Hostile values -----------------------------------------------------------------------------

#[test]
fn hostile_values_are_stored_and_read_back_exactly() {
    let mut account = FakeAccount::new(TOKEN);
    account.generate(6, SEED, NOW);
    account.set(1, "remain_quota", json!(i64::MAX));
    account.set(1, "used_quota", json!(i64::MIN));
    account.set(
        2,
        "allow_ips",
        json!("10.0.0.1\n2001:db8::/32\n192.0.2.0/24"),
    );
    account.set(3, "allow_ips", json!(""));
    account.set(4, "allow_ips", json!(null));
    account.set(1, "key", json!("abcdef"));
    account.set(2, "key", json!("xyz"));
    account.set(3, "key", json!("K".repeat(100)));
    account.set(4, "key", json!(""));
    account.set(
        5,
        "name",
        json!("'; DELETE FROM keys; --\u{202e}txet LTR\u{202c} 👩‍💻"),
    );
    account.set(6, "weird", json!({"n": null, "b": true, "i": -9_007_199_254_740_993_i64, "f": 0.1, "s": "\"q\"\n", "a": [1, [2], {}]}));
    let h = Harness::new(account);
    h.pull(&[]);
    let expected: Vec<Vec<Value>> = {
        let account = h.server.account();
        account
            .ids()
            .iter()
            .map(|id| expected_api_row(account.get(*id).unwrap()))
            .collect()
    };
    assert_eq!(
        h.rows(&format!("{} ORDER BY id", api_fields_sql())),
        expected
    );
    assert_eq!(
        h.rows("SELECT remain_quota, used_quota FROM keys WHERE id = 1"),
        vec![vec![int(i64::MAX), int(i64::MIN)]]
    );
    assert_eq!(
        h.rows("SELECT id, allow_ips FROM keys WHERE id BETWEEN 2 AND 4 ORDER BY id"),
        vec![
            vec![int(2), text("10.0.0.1\n2001:db8::/32\n192.0.2.0/24")],
            vec![int(3), text("")],
            vec![int(4), Value::Null],
        ]
    );
    assert_eq!(
        h.rows("SELECT key_hint, key_sha256 IS NOT NULL FROM keys WHERE id <= 4 ORDER BY id"),
        vec![
            vec![text("ab****ef"), int(1)],
            vec![text("***"), int(1)],
            vec![text("KKKK**********KKKK"), int(1)],
            vec![text(""), int(1)],
        ]
    );
    assert_eq!(
        h.rows("SELECT name FROM keys WHERE id = 5"),
        vec![vec![text(
            "'; DELETE FROM keys; --\u{202e}txet LTR\u{202c} 👩‍💻"
        )]]
    );
    assert_eq!(
        h.rows("SELECT extra FROM keys WHERE id = 6"),
        vec![vec![text(
            r#"{"weird":{"a":[1,[2],{}],"b":true,"f":0.1,"i":-9007199254740993,"n":null,"s":"\"q\"\n"}}"#
        )]]
    );
    // Read back unchanged: a second pull sees no difference anywhere.
    let summary = h.pull(&[]);
    assert_eq!(status_counts(&summary), ("ok".into(), 6, 0, 0, 0));
}

// 8. Secrets ------------------------------------------------------------------------------------

fn files_contain(h: &Harness, needle: &str) -> bool {
    std::fs::read_dir(h.dir.path()).unwrap().any(|entry| {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[test]
fn the_token_appears_nowhere_at_any_verbosity() {
    let h = Harness::with_keys(250);
    h.server.account().faults.rate_limit_first = 1;
    h.server.account().faults.malformed_page = Some((3, Malformed::InvalidJson));
    let mut outputs = vec![h.pull_run(&["-vvv"], 4)];
    h.server.account().faults.malformed_page = None;
    outputs.push(h.pull_run(&["-vvv", "--json"], 0));
    outputs.push(run(
        h.keysync()
            .env("COMETAPI_ACCESS_TOKEN", "wrong-secret-token")
            .args(["-vvv", "pull"]),
        3,
    ));
    for output in &outputs {
        for text in [&output.stdout, &output.stderr] {
            assert!(
                !text.contains(TOKEN) && !text.contains("wrong-secret-token"),
                "{text}"
            );
        }
    }
    assert!(outputs[0].stderr.contains("keysync: debug: "), "-vvv logs");
    assert!(!files_contain(&h, TOKEN), "the token reached the disk");
    assert!(!files_contain(&h, "wrong-secret-token"));
}

// Rate limiting, as upstream does it ------------------------------------------------------------

#[test]
fn a_sliding_window_rate_limit_is_waited_out_gently() {
    let h = Harness::with_keys(1500);
    h.server.account().faults.rate_limit = Some((5, Duration::from_millis(300)));
    let output = h.pull_run(&["-v"], 0);
    assert_eq!(stored_ids(&h), (1..=1500).collect::<Vec<_>>());
    let account = h.server.account();
    assert!(account.rate_limited() > 0, "the limiter was hit");
    assert!(output.stderr.contains("HTTP 429 (rate limited)"));
    // 15 full pages, the empty page 16 that ends the listing, page 1 again, and /api/status
    // (under the same limit).
    assert_eq!(
        account.requests().len(),
        16 + 1 + 1 + account.rate_limited()
    );
}
