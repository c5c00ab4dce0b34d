//! Running keysync for months: health pings, `pull --every` with signals, config profiles and
//! their precedence, shell completions.

use std::path::Path;
use std::process::Child;

use keysync::testing::{FakeAccount, FakeServer};
use pretty_assertions::assert_eq;
use rusqlite::types::Value;

use crate::common::{
    Harness, NOW, PingRecorder, SEED, TOKEN, check_exit, int, run, text, wait_until,
};

// Health pings ----------------------------------------------------------------------------------

#[test]
fn pings_go_to_start_then_success_or_fail() {
    let h = Harness::with_keys(120);
    let recorder = PingRecorder::start();
    let ping_url = format!("{}/ping/5f2c", recorder.url);
    let output = h.pull_run(&["--ping-url", &ping_url, "-vvv"], 0);
    let line = output.stdout;
    assert_eq!(
        recorder.take(),
        vec![
            (
                "GET".to_string(),
                "/ping/5f2c/start".to_string(),
                String::new()
            ),
            (
                "POST".to_string(),
                "/ping/5f2c".to_string(),
                line.trim_end().to_string()
            ),
        ]
    );
    assert!(
        !output.stderr.contains("5f2c"),
        "the ping URL is a credential"
    );

    h.server.account().faults.success_false_page = Some(1);
    h.pull_run(&["--ping-url", &ping_url], 4);
    let pings = recorder.take();
    assert_eq!(pings.len(), 2);
    assert_eq!(
        (pings[0].0.as_str(), pings[0].1.as_str()),
        ("GET", "/ping/5f2c/start")
    );
    assert_eq!(
        (pings[1].0.as_str(), pings[1].1.as_str()),
        ("POST", "/ping/5f2c/fail")
    );
    assert!(
        pings[1]
            .2
            .starts_with("page 1: the API answered success:false"),
        "{}",
        pings[1].2
    );
    assert_eq!(
        pings[1].2,
        "page 1: the API answered success:false: database error: too many connections"
    );
}

#[test]
fn a_dead_ping_url_is_a_warning_not_a_failure() {
    let h = Harness::with_keys(10);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = h.pull_run(&["--ping-url", &format!("http://{dead}/secret-check")], 0);
    assert!(
        output.stderr.contains("health ping (start) failed"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("health ping (success) failed"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("secret-check"));
    assert_eq!(h.count("SELECT count(*) FROM keys"), 10);
}

// pull --every ----------------------------------------------------------------------------------

fn terminate(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
}

fn count_or_zero(h: &Harness, sql: &str) -> i64 {
    let Ok(conn) = rusqlite::Connection::open(&h.db) else {
        return 0;
    };
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

#[test]
fn every_repeats_and_stops_cleanly_on_sigterm_between_pulls() {
    let h = Harness::with_keys(150);
    let child = h.spawn(&["pull", "--every", "1s"]);
    wait_until("three pulls", || {
        count_or_zero(&h, "SELECT count(*) FROM syncs WHERE status = 'ok'") >= 3
    });
    terminate(&child);
    let output = check_exit(
        child.wait_with_output().unwrap(),
        0,
        "keysync pull --every 1s",
    );
    let lines: Vec<String> = output.stdout.lines().map(String::from).collect();
    assert!(
        lines.len() >= 3 && lines[0].starts_with("sync 1 ok: 150 keys, 150 added"),
        "{lines:?}"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM syncs WHERE status <> 'ok'"),
        0
    );
    assert_eq!(h.count("SELECT count(*) FROM key_versions"), 150);
}

#[test]
fn sigterm_mid_pull_rolls_it_back_and_exits_0() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    let before = h.dump(&["keys", "key_versions"]);
    h.server
        .account()
        .set(1, "name", serde_json::json!("changed upstream"));
    h.server.account().faults.hang_page = Some((3, 1000));
    let already = h.server.account().requests().len();
    let child = h.spawn(&["pull", "--every", "1h", "--timeout", "1h"]);
    wait_until("the hung page", || {
        h.server.account().requests().len() >= already + 3
    });
    terminate(&child);
    check_exit(
        child.wait_with_output().unwrap(),
        0,
        "keysync pull --every 1h",
    );
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
    assert_eq!(
        h.rows("SELECT id, status, error FROM syncs ORDER BY id"),
        vec![
            vec![int(1), text("ok"), Value::Null],
            vec![int(2), text("failed"), text("interrupted")],
        ]
    );
    let conn = h.conn();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn every_goes_on_after_api_failures_but_stops_on_a_rejected_token() {
    let h = Harness::with_keys(20);
    h.server.account().faults.fail_every = Some(1);
    let child = h.spawn(&["pull", "--every", "1s", "--retries", "0"]);
    wait_until("two failed pulls", || {
        count_or_zero(&h, "SELECT count(*) FROM syncs WHERE status = 'failed'") >= 2
    });
    h.server.account().faults.fail_every = None;
    wait_until("a good pull", || {
        count_or_zero(&h, "SELECT count(*) FROM syncs WHERE status = 'ok'") >= 1
    });
    terminate(&child);
    let output = check_exit(
        child.wait_with_output().unwrap(),
        0,
        "keysync pull --every 1s",
    );
    assert!(
        output.stderr.contains("HTTP 502 Bad Gateway"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("the next pull is due in 1s"),
        "{}",
        output.stderr
    );

    run(
        h.keysync()
            .env("COMETAPI_ACCESS_TOKEN", "revoked")
            .args(["pull", "--every", "1s"]),
        3,
    );
}

// Config profiles -------------------------------------------------------------------------------

fn account_server(keys: usize) -> FakeServer {
    let mut account = FakeAccount::new(TOKEN);
    account.generate(keys, SEED, NOW);
    FakeServer::start(account).unwrap()
}

fn write_config(dir: &Path, work: &FakeServer) -> std::path::PathBuf {
    std::fs::write(dir.join("work-token"), format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(
        dir.join("work-token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, format!(
        "[profiles.default]\ndb = \"default.db\"\n\n\
         [profiles.work]\ndb = \"work.db\"\nbase_url = \"{}\"\ntoken_file = \"work-token\"\nretries = 1\ntimeout = \"5s\"\n",
        work.url()
    )).unwrap();
    config
}

/// Live keys in the database at `path`.
fn key_count(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT count(*) FROM keys WHERE removed_sync IS NULL",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_named_profile_beats_the_cometapi_environment_and_flags_beat_both() {
    let h = Harness::with_keys(3);
    let work = account_server(7);
    let config = write_config(h.dir.path(), &work);
    let dir = h.dir.path();

    // The work profile supplies db, base URL and token.
    run(
        h.keysync()
            .env_remove("KEYSYNC_DB")
            .env_remove("COMETAPI_BASE_URL")
            .env_remove("COMETAPI_ACCESS_TOKEN")
            .arg("--config")
            .arg(&config)
            .args(["--profile", "work", "pull", "-q"]),
        0,
    );
    assert_eq!(key_count(&dir.join("work.db")), 7);

    // A named profile beats the COMETAPI_* environment for what it sets, and says so: the
    // harness's token and base URL (another account) are ignored, KEYSYNC_PROFILE picks it.
    let output = run(
        h.keysync()
            .env_remove("KEYSYNC_DB")
            .env("KEYSYNC_CONFIG", &config)
            .env("KEYSYNC_PROFILE", "work")
            .args(["pull", "-q"]),
        0,
    );
    let warnings: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.contains("ignoring"))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let wins = "and a named profile wins over the environment";
    assert_eq!(
        warnings,
        [
            format!(
                "keysync: warning: ignoring COMETAPI_BASE_URL: profile \"work\" sets base_url, {wins} (unset \
                 COMETAPI_BASE_URL, or pass a flag, to use another value)"
            ),
            format!(
                "keysync: warning: ignoring COMETAPI_ACCESS_TOKEN: profile \"work\" sets token_file, {wins} \
                 (unset COMETAPI_ACCESS_TOKEN, or pass a flag, to use another value)"
            ),
        ]
    );
    assert!(warnings[0].contains("ignoring COMETAPI_BASE_URL: profile \"work\" sets base_url"));
    assert!(
        warnings[1].contains("ignoring COMETAPI_ACCESS_TOKEN: profile \"work\" sets token_file")
    );
    let base_urls = |db: &Path| -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut statement = conn
            .prepare("SELECT base_url FROM syncs ORDER BY id")
            .unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        base_urls(&dir.join("work.db")),
        vec![work.url().to_string(), work.url().to_string()]
    );
    assert_eq!(key_count(&dir.join("work.db")), 7, "still the work account");

    // KEYSYNC_DB keeps its place above the profile's db.
    run(
        h.keysync()
            .env("KEYSYNC_CONFIG", &config)
            .env("KEYSYNC_DB", dir.join("env.db"))
            .args(["--profile", "work", "pull", "-q"]),
        0,
    );
    assert_eq!(base_urls(&dir.join("env.db")), vec![work.url().to_string()]);

    // Flags beat both.
    run(
        h.keysync()
            .env("KEYSYNC_CONFIG", &config)
            .env_remove("KEYSYNC_DB")
            .args([
                "--profile",
                "work",
                "pull",
                "-q",
                "--base-url",
                h.server.url(),
                "--db",
            ])
            .arg(dir.join("flag.db")),
        0,
    );
    assert_eq!(key_count(&dir.join("flag.db")), 3);

    // Without --profile the `default` profile applies.
    run(
        h.keysync()
            .env("KEYSYNC_CONFIG", &config)
            .env_remove("KEYSYNC_DB")
            .args(["pull", "-q"]),
        0,
    );
    assert_eq!(key_count(&dir.join("default.db")), 3);
}

#[test]
fn a_malformed_config_or_unknown_profile_is_exit_2_with_the_line() {
    let h = Harness::with_keys(1);
    let config = h.dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[profiles.work]\nretries = 2\ndatabase = \"x.db\"\n",
    )
    .unwrap();
    let output = run(h.keysync().arg("--config").arg(&config).args(["pull"]), 2);
    assert!(
        output
            .stderr
            .contains("config.toml:3: unknown field `database`"),
        "{}",
        output.stderr
    );
    assert_eq!(
        output.stderr,
        format!(
            "keysync: error: bad config file {}:3: unknown field `database`, expected one of \
             `db`, `base_url`, `token_file`, `user_id`, `timeout`, `retries`, `ping_url`, \
             `ca_cert`, `quota_per_unit`, `max_rate`, `metrics_file`, `metrics_listen`, \
             `check`, `notify`, `notify_format`, `alerts`; fix it, or point --config at another \
             file\n",
            config.display()
        )
    );

    std::fs::write(&config, "[profiles.work]\nretries = 2\n").unwrap();
    let output = run(
        h.keysync()
            .arg("--config")
            .arg(&config)
            .args(["--profile", "home", "pull"]),
        2,
    );
    assert!(
        output.stderr.contains("no profile \"home\"") && output.stderr.contains("it has: work"),
        "{}",
        output.stderr
    );
    assert_eq!(
        output.stderr,
        format!(
            "keysync: error: no profile \"home\" in {}; it has: work. Add a [profiles.home] \
             table or pick one of those with --profile\n",
            config.display()
        )
    );
    assert!(!h.db.exists());
}

// Completions -----------------------------------------------------------------------------------

/// A HOME the user cannot read (HOME=/root under cron as another user): no config file was
/// named, so none is read, unless a profile or --config asks for one. Root reads every
/// folder, so as root keysync runs as `nobody`, from a copy it can reach.
#[test]
fn an_unreadable_home_is_no_config_file_unless_one_is_asked_for() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let h = Harness::with_keys(1);
    let set_mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let home = h.dir.path().join("home");
    std::fs::create_dir_all(home.join(".config/keysync")).unwrap();
    std::fs::write(home.join(".config/keysync/config.toml"), "").unwrap();
    let keysync = h.dir.path().join("keysync");
    std::fs::copy(assert_cmd::cargo::cargo_bin("keysync"), &keysync).expect("a copy of keysync");
    set_mode(&keysync, 0o755);
    set_mode(h.dir.path(), 0o755);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    set_mode(&home, if as_root { 0o700 } else { 0o000 });
    // Runs keysync as another user when root (whom permissions do not stop); the mode is set
    // back before checking, so a failed check leaves the folder removable.
    let run_as_user = |args: &[&str], code: i32| {
        let mut command = std::process::Command::new(&keysync);
        command.env_clear().env("HOME", &home).args(args);
        if as_root {
            command.uid(65534).gid(65534);
        }
        let output = command.output().expect("keysync runs");
        set_mode(&home, 0o755);
        check_exit(output, code, &format!("keysync {}", args.join(" ")))
    };
    let config = home.join(".config/keysync/config.toml");
    let closed = if as_root { 0o700 } else { 0o000 };

    let output = run_as_user(&["-v", "query", "--list-reports"], 0);
    let denied = format!("{}", config.display());
    assert!(!output.stdout.is_empty());
    assert!(
        output.stderr.contains(&denied) && output.stderr.contains("Permission denied"),
        "{}",
        output.stderr
    );
    set_mode(&home, closed);
    let quiet = run_as_user(&["query", "--list-reports"], 0);
    assert_eq!(quiet.stderr, "");
    for refused in [
        &["--profile", "work", "query", "--list-reports"][..],
        &[
            "--config",
            config.to_str().unwrap(),
            "query",
            "--list-reports",
        ],
    ] {
        set_mode(&home, closed);
        let refused = run_as_user(refused, 2);
        assert!(
            refused.stderr.contains(&format!(
                "cannot read the config file {denied}: Permission denied"
            )),
            "{}",
            refused.stderr
        );
    }
}

#[test]
fn completions_are_generated_for_every_shell() {
    let h = Harness::with_keys(0);
    for (shell, marker) in [
        ("bash", "_keysync()"),
        ("zsh", "#compdef keysync"),
        ("fish", "complete -c keysync"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = h.run(&["completions", shell], 0).stdout;
        assert!(
            script.contains(marker) && script.contains("every"),
            "{shell}: {script:.200}"
        );
    }
}

// status ----------------------------------------------------------------------------------------

/// `keysync status --json ARGS`, expecting exit `code`: the report and stderr.
fn status(h: &Harness, args: &[&str], code: i32) -> (serde_json::Value, String) {
    let output = h.run(&[&["status", "--json"], args].concat(), code);
    (output.json(), output.stderr)
}

#[test]
fn status_reports_counts_and_syncs_and_alarms_on_stale_or_failed_data() {
    let h = Harness::with_keys(40);
    let t0 = NOW;
    h.pull(&["--now", &t0.to_string()]);
    h.server.account().remove(3);
    h.server.account().set(4, "status", serde_json::json!(2));
    h.pull(&["--now", &(t0 + 600).to_string()]);

    // Fresh: 10 minutes old, max age 1h.
    let (report, _) = status(
        &h,
        &["--max-age", "1h", "--now", &(t0 + 1200).to_string()],
        0,
    );
    assert_eq!(report["keys"]["live"], 39);
    assert_eq!(report["keys"]["removed"], 1);
    let by_status = report["keys"]["by_status"].as_object().unwrap();
    assert_eq!(
        by_status.values().map(|n| n.as_i64().unwrap()).sum::<i64>(),
        39
    );
    assert_eq!(report["last_sync"]["id"], 2);
    assert_eq!(report["last_sync"]["removed"], 1);
    assert_eq!(report["last_good_sync"]["age_seconds"], 600);
    assert_eq!(
        report["schema_version"],
        keysync::testing::known_schema_version()
    );
    assert_eq!(report["alarm"], serde_json::Value::Null);
    assert_eq!(report["database"], h.db.display().to_string());

    // Stale: three hours later, max age 2h.
    let (report, err) = status(
        &h,
        &[
            "--max-age",
            "2h",
            "--now",
            &(t0 + 600 + 3 * 3600).to_string(),
        ],
        1,
    );
    assert!(
        err.contains("the last good sync (2) is 3h 0m old, more than --max-age 2h"),
        "{err}"
    );
    assert!(report["alarm"].as_str().unwrap().contains("3h 0m old"));
    // Without --max-age the same data is no alarm.
    status(&h, &["--now", &(t0 + 600 + 3 * 3600).to_string()], 0);

    // Last pull failed: an alarm however fresh the last good sync is.
    h.server.account().faults.success_false_page = Some(1);
    h.pull_run(&["--now", &(t0 + 900).to_string()], 4);
    let (report, err) = status(
        &h,
        &["--max-age", "1h", "--now", &(t0 + 960).to_string()],
        1,
    );
    assert!(
        err.contains("the last sync (3) failed: page 1: the API answered success:false"),
        "{err}"
    );
    assert_eq!(report["last_sync"]["status"], "failed");
    assert_eq!(report["last_good_sync"]["id"], 2);

    // The text form, for people.
    let text = h
        .run(&["status", "--now", &(t0 + 960).to_string()], 0)
        .stdout;
    assert!(
        text.contains("keys:           39 live (") && text.contains("), 1 removed"),
        "{text}"
    );
    assert!(
        text.contains("last good sync: 2 ok, 2025-12-19 00:10:00Z (6m 0s ago)"),
        "{text}"
    );
}

#[test]
fn status_without_a_database_is_exit_6_and_creates_nothing() {
    let h = Harness::with_keys(1);
    let output = h.run(&["status", "--max-age", "1h"], 6);
    assert!(
        output.stderr.contains("run `keysync pull` first"),
        "{}",
        output.stderr
    );
    assert_eq!(
        output.stderr,
        format!(
            "keysync: error: no database at {}: run `keysync pull` first (or pass --db PATH)\n",
            h.db.display()
        )
    );
    assert!(!h.db.exists());
}
