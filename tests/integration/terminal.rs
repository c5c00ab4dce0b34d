//! The local side of issue 11: one pull per database file whatever path names it, output for
//! people that a key's name cannot spoof, signals and closed pipes that leave no `running` row,
//! and flag values that cannot work refused with exit 2.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use keysync::testing::PullLock;
use pretty_assertions::assert_eq;
use rusqlite::types::Value;
use serde_json::{Value as Json, json};

use crate::common::{Harness, Run, check_exit, int, run, table_cells, text, wait_until};

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Waits for a child to exit on its own, and expects exit `code`; a stop that is not honoured
/// fails here. `what` names the child in a failure.
fn exited(mut child: Child, code: i32, what: &str) -> Run {
    wait_until("the process to exit", || {
        child.try_wait().expect("the child's status").is_some()
    });
    let output = child.wait_with_output().expect("the child's output");
    check_exit(output, code, what)
}

/// Reads the child's stderr until a line contains `needle` (the rest stays unread).
fn await_stderr_line(child: &mut Child, needle: &str) -> String {
    let mut reader = BufReader::new(child.stderr.as_mut().expect("stderr is piped"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).expect("stderr reads");
        assert!(read > 0, "stderr ended before {needle:?}: {seen}");
        seen.push_str(&line);
        if line.contains(needle) {
            return seen;
        }
    }
}

/// A pull started in the background that hangs on page 2 until it is stopped.
fn hung_pull(h: &Harness, extra: &[&str]) -> Child {
    h.server.account().faults.hang_page = Some((2, 1_000));
    let already = h.server.account().requests().len();
    let child = h.spawn(&[&["pull", "--timeout", "1h"], extra].concat());
    wait_until("the hung page", || {
        h.server.account().requests().len() >= already + 2
    });
    child
}

fn syncs(h: &Harness) -> Vec<Vec<Value>> {
    h.rows("SELECT id, status, error FROM syncs ORDER BY id")
}

// 1. One pull per database file -------------------------------------------------------------

#[test]
fn a_symlink_a_hard_link_and_dotdot_reach_the_same_lock() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    let symlink = h.dir.path().join("symlink.db");
    std::os::unix::fs::symlink(&h.db, &symlink).unwrap();
    let hard_link = h.dir.path().join("hard-link.db");
    std::fs::hard_link(&h.db, &hard_link).unwrap();
    std::fs::create_dir(h.dir.path().join("sub")).unwrap();
    let dotted = h.dir.path().join("sub").join("..").join("keysync.db");

    let first = hung_pull(&h, &[]);
    for other in [&symlink, &hard_link, &dotted] {
        let output = run(h.keysync().args(["pull", "--db"]).arg(other), 5);
        assert!(
            output.stderr.contains(&other.display().to_string())
                && output.stderr.contains("--wait"),
            "{}",
            output.stderr
        );
    }
    // `prune` takes the same lock.
    run(
        h.keysync()
            .args(["prune", "--keep", "1d", "--db"])
            .arg(&hard_link),
        5,
    );

    // A pull through the hard link with --wait runs once the first one has gone.
    let mut waiting = h.spawn(&[
        "-v",
        "pull",
        "--wait",
        "1h",
        "--db",
        hard_link.to_str().unwrap(),
    ]);
    await_stderr_line(&mut waiting, "waiting up to 1h");
    h.server.account().faults.hang_page = None;
    signal(&first, libc::SIGTERM);
    exited(first, 143, "the hung pull");
    let waited = exited(waiting, 0, "the pull that waited");
    assert!(
        waited
            .stdout
            .starts_with("sync 3 ok: 250 keys, 0 added, 0 changed, 0 removed"),
        "{}",
        waited.stdout
    );
    assert_eq!(
        syncs(&h),
        vec![
            vec![int(1), text("ok"), Value::Null],
            vec![int(2), text("failed"), text("interrupted")],
            vec![int(3), text("ok"), Value::Null],
        ]
    );
}

// 7. Signals and closed pipes ----------------------------------------------------------------

#[test]
fn sigint_and_sigterm_stop_a_one_shot_pull_with_130_and_143_and_a_failed_row() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    h.server
        .account()
        .set(1, "name", json!("renamed while a pull was stopped"));
    let before = h.dump(&["keys", "key_versions"]);
    for (number, (sig, code)) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)]
        .into_iter()
        .enumerate()
    {
        let child = hung_pull(&h, &[]);
        signal(&child, sig);
        let output = exited(child, code, "the hung pull");
        let name = if sig == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        assert!(
            output
                .stderr
                .contains(&format!("keysync: error: stopped by {name}")),
            "{}",
            output.stderr
        );
        assert_eq!(output.stdout, "");
        let id = number as i64 + 2;
        assert_eq!(
            syncs(&h).last().unwrap(),
            &vec![int(id), text("failed"), text("interrupted")]
        );
    }
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
}

#[test]
fn sigterm_ends_a_wait_for_the_lock_at_once_for_one_shot_and_every() {
    let h = Harness::with_keys(10);
    h.pull(&[]);
    let lock = PullLock::try_acquire(&h.db).unwrap();
    for (args, code) in [
        (&["-v", "pull", "--wait", "1h"][..], 143),
        (&["-v", "pull", "--every", "1h", "--wait", "1h"][..], 0),
    ] {
        let mut child = h.spawn(args);
        await_stderr_line(&mut child, "waiting up to 1h");
        signal(&child, libc::SIGTERM);
        exited(child, code, &format!("keysync {}", args.join(" ")));
    }
    drop(lock);
    // Neither began a sync: the wait ended before anything was written.
    assert_eq!(syncs(&h), vec![vec![int(1), text("ok"), Value::Null]]);
}

#[test]
fn a_panic_mid_pull_marks_its_row_failed_and_exits_7() {
    // On the writer thread (staging), on the runtime side (listing) and on the parsing pool:
    // every way the row is final before the process exits.
    for switch in [
        "KEYSYNC_DEBUG_PANIC_ON_PAGE",
        "KEYSYNC_DEBUG_PANIC_LISTING_PAGE",
        "KEYSYNC_DEBUG_PANIC_PARSING_PAGE",
    ] {
        let h = Harness::with_keys(250);
        h.pull(&[]);
        h.server.account().set(1, "name", json!("changed"));
        let before = h.dump(&["keys", "key_versions"]);
        let output = run(h.keysync().env(switch, "2").args(["pull"]), 7);
        // One line, with keysync's error prefix, like every other error.
        assert!(
            output
                .stderr
                .starts_with("keysync: error: internal error: keysync panicked at src/"),
            "{}",
            output.stderr
        );
        assert!(
            output.stderr.ends_with(&format!(
                ": {switch}: a panic at page 2; this is a bug, please report it\n"
            )),
            "{}",
            output.stderr
        );
        assert_eq!(output.stderr.lines().count(), 1, "{}", output.stderr);
        assert_eq!(
            syncs(&h),
            vec![
                vec![int(1), text("ok"), Value::Null],
                vec![
                    int(2),
                    text("failed"),
                    text(
                        "internal error: keysync panicked during the pull (the message is on \
                         stderr)"
                    )
                ],
            ],
            "{switch}"
        );
        assert_eq!(h.dump(&["keys", "key_versions"]), before, "{switch}");
    }
}

/// stdout and stderr both a pipe whose reader has already gone, as `... 2>&1 | head -1` leaves
/// them once `head` has its line.
fn closed_pipe() -> (Stdio, Stdio) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let second = writer.try_clone().unwrap();
    (Stdio::from(writer), Stdio::from(second))
}

fn run_with_closed_pipes(h: &Harness, args: &[&str]) -> i32 {
    let (out, err) = closed_pipe();
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("keysync"));
    command
        .env_clear()
        .env("HOME", h.dir.path())
        .env("COMETAPI_BASE_URL", h.server.url())
        .env("KEYSYNC_DB", &h.db)
        .args(args)
        .stdout(out)
        .stderr(err);
    command
        .status()
        .unwrap()
        .code()
        .expect("an exit code, not a signal")
}

#[test]
fn closed_stdout_and_stderr_never_panic_nor_leave_a_running_row() {
    let h = Harness::with_keys(250);
    let token = h.dir.path().join("token");
    std::fs::write(&token, crate::common::TOKEN).unwrap();
    let token = token.to_str().unwrap();
    // Debug logs on every page and the summary line all meet the closed pipe.
    assert_eq!(
        run_with_closed_pipes(&h, &["-vv", "pull", "--token-file", token]),
        0
    );
    // An error message that cannot be written still ends with its exit code.
    let wrong = h.dir.path().join("wrong-token");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let wrong = wrong.to_str().unwrap();
    assert_eq!(
        run_with_closed_pipes(&h, &["-vv", "pull", "--token-file", wrong]),
        3
    );
    assert_eq!(
        run_with_closed_pipes(
            &h,
            &["status", "--max-age", "1s", "--now", "2100-01-01T00:00:00Z"]
        ),
        1
    );
    assert_eq!(
        run_with_closed_pipes(&h, &["query", "SELECT * FROM keys"]),
        0
    );
    let statuses: Vec<String> = h
        .rows("SELECT status FROM syncs ORDER BY id")
        .into_iter()
        .map(|row| match &row[0] {
            Value::Text(status) => status.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(statuses, ["ok", "failed"]);
}

// 6. Output that cannot be spoofed -------------------------------------------------------------

/// A name that sets the terminal's title, clears the screen, returns the cursor, reverses
/// the text after it and breaks the line.
const EVIL: &str = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J\rfake\u{202e}txt.exe\r\nline2\u{85}";
/// How people see it: only the `\n` is itself.
const SHOWN: &str = "evil\\x1b]0;pwned\\x07\\x1b[2J\\rfake\\u{202e}txt.exe\\r\nline2\\u{85}";

/// No raw control or bidi character but the line break.
fn assert_inert(what: &str, shown: &str) {
    let bad: Vec<char> = shown
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
        })
        .collect();
    assert!(bad.is_empty(), "{what} shows {bad:?} raw:\n{shown}");
}

#[test]
fn a_name_with_escapes_is_shown_escaped_by_every_human_format_and_exact_by_the_others() {
    let h = Harness::with_keys(3);
    h.pull(&["--now", "1766102400"]);
    h.server.account().set(2, "name", json!(EVIL));
    h.pull(&["--now", "1766106000"]);
    // A failed sync whose error carries the same text, as an upstream message could.
    h.conn()
        .execute(
            "INSERT INTO syncs (started_at, finished_at, status, base_url, error)
             VALUES (1766109600, 1766109601, 'failed', 'http://x', ?1)",
            [EVIL],
        )
        .unwrap();

    // query: table and markdown escape; csv, tsv, json, jsonl stay exact.
    let sql = "SELECT id, name FROM keys WHERE id = 2";
    let table = h.run(&["query", sql], 0).stdout;
    assert_inert("query table", &table);
    assert_eq!(
        table_cells(&table),
        [
            ["id", "name"],
            [
                "2",
                "evil\\x1b]0;pwned\\x07\\x1b[2J\\rfake\\u{202e}txt.exe\\r"
            ],
            ["", "line2\\u{85}"],
        ]
    );
    let markdown = h.run(&["query", "--format", "markdown", sql], 0).stdout;
    assert_eq!(
        markdown,
        format!(
            "| id | name |\n| --- | --- |\n| 2 | {} |\n",
            SHOWN.replace('\n', "<br>")
        )
    );
    for (format, delimiter) in [("csv", b','), ("tsv", b'\t')] {
        let text = h.run(&["query", "--format", format, sql], 0).stdout;
        let records: Vec<Vec<String>> = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        assert_eq!(records, [["2", EVIL]], "{format}");
    }
    let json: Json =
        serde_json::from_str(&h.run(&["query", "--format", "json", sql], 0).stdout).unwrap();
    assert_eq!(json, json!([{"id": 2, "name": EVIL}]));
    let jsonl = h.run(&["query", "--format", "jsonl", sql], 0).stdout;
    let object: Json = serde_json::from_str(jsonl.trim_end()).unwrap();
    assert_eq!(object, json!({"id": 2, "name": EVIL}));

    // history
    let history = h.run(&["history", "2", "--fields", "name"], 0).stdout;
    assert_inert("history table", &history);
    assert!(
        history.contains("evil\\x1b]0;pwned\\x07\\x1b[2J\\rfake\\u{202e}txt.exe\\r"),
        "{history}"
    );
    let history_md = h
        .run(
            &["history", "2", "--fields", "name", "--format", "markdown"],
            0,
        )
        .stdout;
    assert_eq!(
        history_md.lines().last().unwrap(),
        format!(
            "| 2 | 2025-12-19 01:00:00Z |  |  | changed |  | name | {} |",
            SHOWN.replace('\n', "<br>")
        )
    );
    let history_json = h
        .run(
            &["history", "2", "--fields", "name", "--format", "jsonl"],
            0,
        )
        .stdout;
    let last: Json = serde_json::from_str(history_json.lines().last().unwrap()).unwrap();
    assert_eq!(last["name"], EVIL);

    // diff
    let diff = h.run(&["diff", "1", "2"], 0).stdout;
    assert_inert("diff table", &diff);
    assert!(diff.contains("fake\\u{202e}txt.exe\\r"), "{diff}");
    let diff_md = h.run(&["diff", "1", "2", "--format", "markdown"], 0).stdout;
    let old_name = h.server.account().get(1).unwrap()["name"].clone();
    assert!(old_name.is_string());
    let diff_rows: Vec<&str> = diff_md.lines().skip(2).collect();
    assert_eq!(diff_rows.len(), 1, "{diff_md}");
    let shown_md = SHOWN.replace('\n', "<br>");
    assert!(
        diff_rows[0].starts_with(&format!("| changed | 2 | {shown_md} | ")),
        "{}",
        diff_rows[0]
    );
    assert!(
        diff_rows[0].ends_with(&format!(" | name | {} | {shown_md} |", old_of(&h))),
        "{}",
        diff_rows[0]
    );
    let diff_json: Json =
        serde_json::from_str(&h.run(&["diff", "1", "2", "--format", "json"], 0).stdout).unwrap();
    assert_eq!(diff_json[0]["new"], EVIL);

    // syncs and status show the error escaped.
    let syncs_table = h.run(&["syncs"], 0).stdout;
    assert_inert("syncs table", &syncs_table);
    assert!(
        syncs_table.contains("fake\\u{202e}txt.exe\\r"),
        "{syncs_table}"
    );
    let syncs_md = h.run(&["syncs", "--format", "markdown"], 0).stdout;
    assert!(
        syncs_md
            .lines()
            .nth(2)
            .unwrap()
            .ends_with(&format!("| {shown_md} |")),
        "{syncs_md}"
    );
    let syncs_json: Json =
        serde_json::from_str(&h.run(&["syncs", "--format", "json"], 0).stdout).unwrap();
    assert_eq!(syncs_json[0]["error"], EVIL);
    let status = h.run(&["status", "--now", "1766113200"], 0).stdout;
    assert_inert("status", &status);
    assert!(
        status.contains(&format!("last sync:      3 failed, 2025-12-19 02:00:00Z (1h 0m ago): 0 keys, 0 added, 0 changed, 0 removed; error: {SHOWN}")),
        "{status}"
    );
    let status_json: Json = serde_json::from_str(
        &h.run(&["status", "--json", "--now", "1766113200"], 0)
            .stdout,
    )
    .unwrap();
    assert_eq!(status_json["last_sync"]["error"], EVIL);
    let alarm = h.run(&["status", "--max-age", "1d", "--now", "1766113200"], 1);
    assert_inert("status alarm", &alarm.stderr);
    assert!(alarm.stderr.contains(SHOWN), "{}", alarm.stderr);
}

/// Key 2's name before it was changed, as the markdown diff shows it.
fn old_of(h: &Harness) -> String {
    match &h.rows("SELECT name FROM key_versions WHERE key_id = 2 ORDER BY valid_from_sync")[0][0] {
        Value::Text(name) => name.clone(),
        other => panic!("{other:?}"),
    }
}

// 8. Values that cannot work ---------------------------------------------------------------

#[test]
fn values_that_cannot_work_are_usage_errors_that_change_nothing() {
    let h = Harness::with_keys(5);
    h.pull(&[]);
    let before = h.dump(&["syncs", "keys", "key_versions"]);
    // Each is refused by the flag's parser; the first line of stderr is clap's
    // "keysync: error: invalid value 'VALUE' for 'FLAG': WHY".
    let invalid = |value: &str, flag: &str, why: &str| {
        format!("keysync: error: invalid value '{value}' for '{flag}': {why}")
    };
    let zero = |value: &str, flag: &str| {
        let why = format!(
            "\"{value}\" is zero, which cannot work here: give a duration longer than 0s, such \
             as 15m or 7d"
        );
        invalid(value, flag, &why)
    };
    let too_long = |value: &str, flag: &str| {
        let why =
            format!("\"{value}\" is longer than 100 years, the longest duration keysync takes");
        invalid(value, flag, &why)
    };
    let other_unit = |value: &str, unit: &str| {
        format!(
            "\"{value}\" has the unit \"{unit}\", which keysync does not take: give a whole \
             number and a unit of ms, s, m, h, d or w, such as 500ms, 30s, 15m, 12h, 7d or 2w"
        )
    };
    let outside = |value: &str| {
        let why = format!(
            "\"{value}\" is outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59Z, the times \
             keysync takes"
        );
        invalid(value, "--now <TIME>", &why)
    };
    let cases: &[(&[&str], String)] = &[
        (
            &["pull", "--wait", "500000000000w"],
            too_long("500000000000w", "--wait <DURATION>"),
        ),
        (
            &["pull", "--wait", "5300w"],
            too_long("5300w", "--wait <DURATION>"),
        ),
        (
            &["pull", "--timeout", "0"],
            zero("0", "--timeout <DURATION>"),
        ),
        // Only the units the documentation names: `y` and `M` would pass silently otherwise.
        (
            &["pull", "--max-rate", "3/1y"],
            invalid(
                "3/1y",
                "--max-rate <N/DURATION>",
                &format!(
                    "expected N/DURATION, requests per window, such as 360/180s (the gateway's \
                     default): {}",
                    other_unit("1y", "y")
                ),
            ),
        ),
        (
            &["status", "--max-age", "2M"],
            invalid("2M", "--max-age <DURATION>", &other_unit("2M", "M")),
        ),
        (
            &["usage", "--since", "3year"],
            invalid("3year", "--since <WHEN>", &other_unit("3year", "year")),
        ),
        (
            &["pull", "--timeout", "0s"],
            zero("0s", "--timeout <DURATION>"),
        ),
        (&["pull", "--every", "0s"], zero("0s", "--every <DURATION>")),
        (
            &["pull", "--every", "1ms"],
            invalid(
                "1ms",
                "--every <DURATION>",
                "\"1ms\" is too short for the interval between pulls: the minimum is 1s",
            ),
        ),
        (
            &["pull", "--every", "999ms"],
            invalid(
                "999ms",
                "--every <DURATION>",
                "\"999ms\" is too short for the interval between pulls: the minimum is 1s",
            ),
        ),
        (
            &["pull", "--timeout", "1ms"],
            invalid(
                "1ms",
                "--timeout <DURATION>",
                "\"1ms\" is too short for a request timeout: the minimum is 100ms",
            ),
        ),
        (
            &["pull", "--timeout", "99ms"],
            invalid(
                "99ms",
                "--timeout <DURATION>",
                "\"99ms\" is too short for a request timeout: the minimum is 100ms",
            ),
        ),
        (
            &["pull", "--concurrency", "0"],
            invalid("0", "--concurrency <N>", "0 is not in 1..=8"),
        ),
        (
            &["pull", "--retries", "101"],
            invalid(
                "101",
                "--retries <N>",
                "101 retries per page is more than 100: each retry may wait up to 60 s, so a \
                 failing page would hold the pull for hours; use at most 100",
            ),
        ),
        (
            &["pull", "--retries", "4294967296"],
            invalid(
                "4294967296",
                "--retries <N>",
                "expected a whole number of retries, 0 to 100, got \"4294967296\"",
            ),
        ),
        (&["pull", "--now=-1"], outside("-1")),
        (
            &["status", "--now", "9223372036854775807"],
            outside("9223372036854775807"),
        ),
        (
            &["status", "--max-age", "0s"],
            zero("0s", "--max-age <DURATION>"),
        ),
        (&["prune", "--keep", "0s"], zero("0s", "--keep <DURATION>")),
        (
            &["prune", "--keep", "500000000000w"],
            too_long("500000000000w", "--keep <DURATION>"),
        ),
        (
            &["diff", "500000000000w"],
            too_long("500000000000w", "[FROM]"),
        ),
        (
            &["query", "--report", "expiring-soon", "--within", "0s"],
            zero("0s", "--within <DURATION>"),
        ),
        (
            &["query", "--report", "top-consumers", "--limit", "0"],
            invalid(
                "0",
                "--limit <N>",
                "0 keys would show nothing: give at least 1",
            ),
        ),
        (
            &["query", "--report", "top-consumers", "--since", "0s"],
            zero("0s", "--since <WHEN>"),
        ),
        (
            &["query", "--report", "idle", "--for", "0s"],
            zero("0s", "--for <DURATION>"),
        ),
    ];
    for (args, first_line) in cases {
        let output = h.run(args, 2);
        assert_eq!(
            output.stderr.lines().next(),
            Some(first_line.as_str()),
            "{args:?}: {}",
            output.stderr
        );
        assert!(!output.stderr.contains("panicked"), "{args:?}");
    }
    assert_eq!(h.dump(&["syncs", "keys", "key_versions"]), before);
}

#[test]
fn not_enough_history_is_exit_2_for_every_form_of_diff() {
    let h = Harness::with_keys(5);
    // Only a failed sync: no good sync at all.
    h.server.account().faults.success_false_page = Some(1);
    h.pull_run(&["--now", "1766102400"], 4);
    let no_good_sync = "keysync: error: no good sync yet";
    let sync_1_failed = "keysync: error: sync 1 ended failed: it recorded no state of the account, so \
                         it cannot be a diff point; pick an ok or partial sync from `keysync \
                         syncs`\n";
    let failed_only: &[(&[&str], String)] = &[
        (
            &["diff"],
            format!("{no_good_sync}, so there is no state to compare: run `keysync pull` first\n"),
        ),
        (&["diff", "1"], sync_1_failed.to_string()),
        (
            &["diff", "24h"],
            format!("{no_good_sync}: run `keysync pull` first\n"),
        ),
        (&["diff", "1", "1"], sync_1_failed.to_string()),
    ];
    for (args, stderr) in failed_only {
        assert_diff_usage(&h.db, &h, args, stderr);
    }
    // One good sync: nothing to compare it with, whichever way it is asked.
    h.server.account().faults.success_false_page = None;
    h.pull(&["--now", "1766106000"]);
    let before_the_first = |time: &str| {
        format!(
            "keysync: error: no good sync started at or before {time}: the first is sync 2 \
             (2025-12-19 01:00:00Z); see `keysync syncs`\n"
        )
    };
    let no_sync_9 = "keysync: error: there is no sync 9: the latest is 2; see `keysync syncs`\n";
    let one_good: &[(&[&str], String)] = &[
        (
            &["diff"],
            "keysync: error: there is only one good sync so far (sync 2 (2025-12-19 01:00:00Z)), \
             so nothing to compare it with: run `keysync pull` again later, or name the points\n"
                .to_string(),
        ),
        (&["diff", "24h"], before_the_first("2025-12-18 01:00:00Z")),
        (
            &["diff", "2025-12-18T00:00:00Z"],
            before_the_first("2025-12-18 00:00:00Z"),
        ),
        (&["diff", "1"], sync_1_failed.to_string()),
        (&["diff", "9"], no_sync_9.to_string()),
        (&["diff", "2", "9"], no_sync_9.to_string()),
    ];
    for (args, stderr) in one_good {
        assert_diff_usage(&h.db, &h, args, stderr);
    }
}

/// `keysync ARGS` at a fixed `--now` on `db` is a usage error (exit 2) printing exactly
/// `stderr`.
fn assert_diff_usage(db: &Path, h: &Harness, args: &[&str], stderr: &str) {
    let output = run(
        h.keysync()
            .args(args)
            .args(["--now", "1766106000", "--db"])
            .arg(db),
        2,
    );
    assert!(output.stderr.contains("keysync: error: "), "{args:?}");
    assert_eq!(output.stderr, stderr, "{args:?}");
}
