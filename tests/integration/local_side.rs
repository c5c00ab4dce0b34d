//! The local side of the record (issue 11): the file is keysync's and one account's, time moves
//! forward, an overtaken pull writes nothing, secrets leave the disk, credentials stay out of
//! base URLs, and readers work on read-only media.

use std::path::{Path, PathBuf};
use std::process::{Child, Output};

use keysync::testing::{FakeAccount, FakeServer};
use pretty_assertions::assert_eq;
use rusqlite::Connection;
use rusqlite::types::Value;
use serde_json::json;

use crate::common::{
    Harness, NOW, Run, SEED, TOKEN, check_exit, files_in, int, run, text as text_value,
};

const TABLES: [&str; 3] = ["syncs", "keys", "key_versions"];

/// `path` with `suffix` appended to its file name: `keysync.db-wal`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A fake account of `count` generated keys, all belonging to `user_id`.
fn account_of(user_id: i64, count: usize) -> FakeAccount {
    let mut account = FakeAccount::new(TOKEN);
    account.user_id = user_id;
    account.generate(count, SEED, NOW);
    account
}

fn requests(server: &FakeServer) -> usize {
    server.account().requests().len()
}

// 1. An overtaken pull writes nothing --------------------------------------------------------

/// Starts a pull whose page 1 hangs until its request times out, and returns it once the fake
/// has seen that request: its sync row is `running` and it has not applied anything yet.
fn pull_held_at_page_1(h: &Harness) -> Child {
    let seen = requests(&h.server);
    h.server.account().faults.hang_page = Some((1, 1));
    let child = h.spawn(&[
        "pull",
        "--json",
        "--backoff-base",
        "10ms",
        "--timeout",
        "5s",
    ]);
    for _ in 0..6000 {
        if requests(&h.server) > seen {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("the pull ends");
    panic!(
        "the pull never asked for page 1: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits for the held pull to end and expects exit `code`.
fn finish(child: Child, code: i32) -> Run {
    let output = child.wait_with_output().expect("the pull ends");
    check_exit(output, code, "the held pull")
}

#[test]
fn a_pull_overtaken_by_a_newer_applied_sync_writes_nothing_and_exits_5() {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    h.server
        .account()
        .set(2, "name", json!("renamed while the slow pull listed"));
    let pull = pull_held_at_page_1(&h);
    // What a second writer (a pull through another lock, an older keysync) leaves behind.
    h.conn()
        .execute(
            "INSERT INTO syncs (started_at, finished_at, status, base_url) VALUES (?1, ?1, 'ok', 'x')",
            [NOW + 1_000_000_000],
        )
        .unwrap();
    let before = h.dump(&["keys", "key_versions", "account"]);
    let output = finish(pull, 5);
    let expected = "another pull started on this database while sync 2 was listing and \
                    recorded sync 3, so this older listing was not applied and nothing was \
                    written";
    assert!(output.stderr.contains(expected), "{}", output.stderr);
    assert_eq!(h.dump(&["keys", "key_versions", "account"]), before);
    let rows = h.rows(
        "SELECT id, status, ifnull(error, '') LIKE 'another pull started%' FROM syncs ORDER BY id",
    );
    assert_eq!(
        rows,
        vec![
            vec![int(1), crate::common::text("ok"), int(0)],
            vec![int(2), crate::common::text("failed"), int(1)],
            vec![int(3), crate::common::text("ok"), int(0)],
        ]
    );
}

#[test]
fn a_pull_whose_row_a_later_pull_closed_writes_nothing_and_exits_5() {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    h.server.account().set(2, "name", json!("renamed"));
    let pull = pull_held_at_page_1(&h);
    // What a later pull's start does: close the running rows, open its own.
    h.conn()
        .execute_batch(
            "UPDATE syncs SET status = 'failed', error = 'interrupted' WHERE status = 'running';
             INSERT INTO syncs (started_at, status, base_url) VALUES (unixepoch() + 10, 'running', 'x');",
        )
        .unwrap();
    let before = h.dump(&["keys", "key_versions"]);
    let output = finish(pull, 5);
    assert!(
        output.stderr.contains(
            "another pull started on this database while sync 2 was listing, so this older \
             listing was not applied"
        ),
        "{}",
        output.stderr
    );
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
    assert_eq!(
        h.count("SELECT count(*) FROM key_versions WHERE name = 'renamed'"),
        0
    );
}

// 2. The file is keysync's --------------------------------------------------------------------

/// Runs `pull` and `prune` on the file and checks both are refused with exit 6 and `message`,
/// leave it byte for byte as it was, create no `-wal`, `-shm` or `-journal`, and send nothing
/// to the API.
fn assert_refused_untouched(h: &Harness, message: &str) {
    let bytes = std::fs::read(&h.db).unwrap();
    let requests_before = requests(&h.server);
    // The readers too: none of them may leave SQLite's files beside another program's database.
    let commands: [&[&str]; 4] = [
        &["pull"],
        &["prune", "--keep", "1d"],
        &["status"],
        &["syncs"],
    ];
    for args in commands {
        let text = h.run(args, 6).stderr;
        assert!(text.contains(message), "{args:?}: {text}");
        assert_eq!(text.lines().count(), 1, "one short line: {text}");
        assert!(!text.contains("CREATE"), "no SQL dump: {text}");
        assert_eq!(
            std::fs::read(&h.db).unwrap(),
            bytes,
            "{args:?} changed the file"
        );
        for suffix in ["-wal", "-shm", "-journal"] {
            assert!(!sibling(&h.db, suffix).exists(), "{args:?} made {suffix}");
        }
    }
    assert_eq!(requests(&h.server), requests_before);
}

#[test]
fn another_applications_sqlite_file_is_refused_byte_for_byte_untouched() {
    let h = Harness::with_keys(2);
    Connection::open(&h.db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);
             CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER);
             CREATE TABLE keys (id INTEGER PRIMARY KEY, secret TEXT);
             CREATE TABLE audit (at INTEGER, what TEXT);
             CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
             INSERT INTO users (email) VALUES ('a@example.com');",
        )
        .unwrap();
    assert_refused_untouched(
        &h,
        "is not a keysync database: it holds another application's tables (\"audit\", \
         \"big_orders\", \"keys\" and 2 more); keysync left it untouched: choose another --db",
    );
}

#[test]
fn another_applications_wal_database_keeps_its_file_and_its_wal_byte_for_byte() {
    let h = Harness::with_keys(2);
    {
        let conn = Connection::open(&h.db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);
             INSERT INTO users (email) VALUES ('a@example.com');",
        )
        .unwrap();
        // As the application left it: its last changes still in the -wal.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
    }
    let wal = sibling(&h.db, "-wal");
    let files = || (std::fs::read(&h.db).unwrap(), std::fs::read(&wal).unwrap());
    let before = files();
    assert!(
        !before.1.is_empty(),
        "the -wal holds the application's changes"
    );
    for args in [&["pull"][..], &["prune", "--keep", "1d"][..]] {
        let output = h.run(args, 6);
        assert!(
            output
                .stderr
                .contains("it holds another application's tables (\"users\")")
        );
        assert!(files() == before, "{args:?} changed the file or its -wal");
    }
}

/// A WAL-mode file closed cleanly has no `-wal` or `-shm`; refusing it must not add them
/// (they would be root's when run from cron).
#[test]
fn another_applications_wal_mode_file_is_refused_without_a_wal_or_shm_appearing() {
    let h = Harness::with_keys(2);
    {
        let conn = Connection::open(&h.db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (a);").unwrap();
    }
    assert!(!sibling(&h.db, "-wal").exists(), "closed cleanly");
    assert_refused_untouched(
        &h,
        "is not a keysync database: it holds another application's tables (\"t\")",
    );
}

#[test]
fn a_wal_mode_database_from_a_newer_keysync_is_refused_without_a_wal_or_shm_appearing() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    {
        let conn = h.conn();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute(
            "INSERT INTO refinery_schema_history VALUES (99, 'future', '2030-01-01T00:00:00Z', '0')",
            [],
        )
        .unwrap();
    }
    assert!(!sibling(&h.db, "-wal").exists(), "closed cleanly");
    assert_refused_untouched(
        &h,
        "has schema version 99, newer than this keysync understands",
    );
}

/// refinery's history table, as refinery creates it.
const SCHEMA_HISTORY_TABLE: &str = "CREATE TABLE refinery_schema_history (version INT4 PRIMARY \
     KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255));";

#[test]
fn a_file_a_first_pull_left_with_only_an_empty_schema_history_is_carried_on() {
    let h = Harness::with_keys(2);
    // What a first pull killed before its first migration committed leaves behind.
    Connection::open(&h.db)
        .unwrap()
        .execute_batch(SCHEMA_HISTORY_TABLE)
        .unwrap();
    assert_eq!(h.pull(&[])["added"], json!(2));
}

#[test]
fn a_file_with_another_applications_migration_history_is_refused_untouched() {
    let h = Harness::with_keys(2);
    let conn = Connection::open(&h.db).unwrap();
    conn.execute_batch(SCHEMA_HISTORY_TABLE).unwrap();
    conn.execute_batch(
            "INSERT INTO refinery_schema_history VALUES (1, 'create_users', '2024-01-01T00:00:00Z', '1');
             CREATE TABLE users (id INTEGER PRIMARY KEY);",
        )
        .unwrap();
    drop(conn);
    assert_refused_untouched(
        &h,
        "is not a keysync database: its schema history is another application's (version 1 \
         is \"create_users\"); keysync left it untouched: choose another --db",
    );
}

#[test]
fn a_database_from_a_newer_keysync_is_refused_byte_for_byte_journal_mode_included() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    {
        // A journal mode other than WAL, so that a switch before the check would show.
        let conn = h.conn();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
        conn.execute(
            "INSERT INTO refinery_schema_history VALUES (99, 'future', '2030-01-01T00:00:00Z', '0')",
            [],
        )
        .unwrap();
    }
    assert_refused_untouched(
        &h,
        &format!(
            "has schema version 99, newer than this keysync understands ({}); keysync left it \
             untouched: upgrade keysync",
            keysync::testing::known_schema_version()
        ),
    );
    let mode: String = h
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
}

#[test]
fn a_failing_migration_says_why_in_one_line_without_its_sql() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    // A version-2 database in which something already took the name schema 3 needs.
    h.conn()
        .execute_batch(
            "DROP TABLE account; DELETE FROM refinery_schema_history WHERE version >= 3;
             DROP VIEW good_syncs; DROP VIEW key_usage; CREATE TABLE account (note TEXT);",
        )
        .unwrap();
    let before = h.dump(&TABLES);
    let text = h.pull_run(&[], 6).stderr;
    assert_eq!(
        text.trim_end(),
        format!(
            "keysync: error: cannot bring {} up to schema version {}: error applying update: \
             table account already exists; restore it from a backup, or start a new one with --db",
            h.db.display(),
            keysync::testing::known_schema_version()
        )
    );
    assert_eq!(h.dump(&TABLES), before);
    assert_eq!(
        h.count("SELECT max(version) FROM refinery_schema_history"),
        2
    );
}

// 3. One account per file ---------------------------------------------------------------------

#[test]
fn a_token_of_another_account_is_refused_after_one_request_and_changes_nothing() {
    let h = Harness::new(account_of(4242, 150));
    h.pull(&[]);
    assert_eq!(
        h.rows("SELECT user_id, bound_sync FROM account"),
        vec![vec![int(4242), int(1)]]
    );
    let other = FakeServer::start(account_of(5151, 150)).unwrap();
    let before = h.dump(&["keys", "key_versions", "account"]);
    let output = run(
        h.keysync()
            .env("COMETAPI_BASE_URL", other.url())
            .args(["pull", "--backoff-base", "10ms"]),
        2,
    );
    assert_eq!(
        output.stderr.trim_end(),
        "keysync: error: this database holds the keys of user 4242; this token lists user \
         5151: use another --db or --profile"
    );
    assert_eq!(requests(&other), 1, "refused on page 1");
    assert_eq!(h.dump(&["keys", "key_versions", "account"]), before);
    // The refusal is kept in the sync log, so `status` shows the last pull failed and why.
    assert_eq!(
        h.rows("SELECT id, status, error FROM syncs ORDER BY id"),
        vec![
            vec![
                int(1),
                crate::common::text("ok"),
                rusqlite::types::Value::Null
            ],
            vec![
                int(2),
                crate::common::text("failed"),
                crate::common::text(
                    "this database holds the keys of user 4242; this token lists user 5151: \
                     use another --db or --profile"
                )
            ],
        ]
    );
}

#[test]
fn a_key_whose_user_id_changed_is_an_ordinary_change() {
    let h = Harness::new(account_of(4242, 3));
    h.pull(&[]);
    h.server.account().set(2, "user_id", json!(9999));
    let summary = h.pull(&[]);
    assert_eq!(
        (summary["status"].clone(), summary["changed"].clone()),
        (json!("ok"), json!(1))
    );
    assert_eq!(
        h.rows("SELECT key_id, user_id, changed FROM key_versions WHERE valid_from_sync = 2"),
        vec![vec![
            int(2),
            int(9999),
            crate::common::text("[\"user_id\"]")
        ]]
    );
    assert_eq!(h.count("SELECT user_id FROM account"), 4242);
}

#[test]
fn the_first_pull_that_sees_keys_binds_the_account() {
    let h = Harness::new(account_of(5151, 0));
    h.pull(&[]);
    assert_eq!(
        h.count("SELECT count(*) FROM account"),
        0,
        "no keys, no account"
    );
    assert!(
        status_text(&h)
            .contains("\naccount:        none yet (the first pull that sees keys binds one)\n")
    );
    h.server.account().generate(2, SEED, NOW);
    h.pull(&[]);
    assert_eq!(
        h.rows("SELECT user_id, bound_sync FROM account"),
        vec![vec![int(5151), int(2)]]
    );
    assert!(status_text(&h).contains("\naccount:        user 5151 (bound by sync 2)\n"));
    let report = h.run(&["status", "--json"], 0).json();
    assert_eq!(report["account"], json!({"user_id": 5151, "bound_sync": 2}));
}

fn status_text(h: &Harness) -> String {
    h.run(&["status"], 0).stdout
}

#[test]
fn a_database_that_had_keys_before_the_binding_is_bound_by_its_upgrade() {
    let h = Harness::new(account_of(4242, 3));
    h.pull(&[]);
    // Back to schema 2, as a database written before this version looks.
    h.conn()
        .execute_batch(
            "DROP TABLE account; DROP VIEW good_syncs; DROP VIEW key_usage;
             DROP TABLE use_ledger; DROP INDEX syncs_by_start;
             ALTER TABLE syncs DROP COLUMN requests; ALTER TABLE syncs DROP COLUMN rate_limited;
             ALTER TABLE syncs DROP COLUMN quota_per_unit;
             ALTER TABLE syncs DROP COLUMN quota_display_type;
             ALTER TABLE syncs DROP COLUMN usd_exchange_rate;
             ALTER TABLE syncs DROP COLUMN gateway_version;
             DROP TABLE key_digests; DROP INDEX keys_holding_secret;
             DELETE FROM refinery_schema_history WHERE version >= 3;",
        )
        .unwrap();
    let other = FakeServer::start(account_of(5151, 3)).unwrap();
    let output = run(
        h.keysync()
            .env("COMETAPI_BASE_URL", other.url())
            .arg("pull"),
        2,
    );
    assert!(
        output
            .stderr
            .contains("holds the keys of user 4242; this token lists user 5151")
    );
    assert_eq!(
        output.stderr,
        "keysync: error: this database holds the keys of user 4242; this token lists user 5151: \
         use another --db or --profile\n"
    );
    assert_eq!(
        h.rows("SELECT user_id, bound_sync FROM account"),
        vec![vec![int(4242), int(1)]]
    );
}

#[test]
fn a_named_profiles_user_id_beats_cometapi_user_id_and_the_default_profiles_does_not() {
    let mut account = account_of(4242, 2);
    account.require_user_id = true;
    let h = Harness::new(account);
    let config = h.dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[profiles.default]\nuser_id = 4242\n[profiles.shop]\nuser_id = 4242\n",
    )
    .unwrap();
    let pull = |profile: Option<&str>, user_id: &str, code: i32| {
        let mut command = h.keysync();
        command
            .env("COMETAPI_USER_ID", user_id)
            .arg("--config")
            .arg(&config);
        if let Some(name) = profile {
            command.args(["--profile", name]);
        }
        run(command.args(["pull", "--backoff-base", "10ms"]), code)
    };
    let named = pull(Some("shop"), "1", 0);
    assert!(
        named
            .stderr
            .contains("ignoring COMETAPI_USER_ID: profile \"shop\" sets user_id"),
        "{}",
        named.stderr
    );
    // Unnamed, the `default` profile sits below the environment: New-Api-User: 1 is rejected.
    let unnamed = pull(None, "1", 3);
    assert!(!unnamed.stderr.contains("ignoring"));
    let sent: Vec<Option<String>> = h
        .server
        .account()
        .requests()
        .iter()
        .filter(|r| r.path_and_query.starts_with("/api/token/"))
        .map(|r| r.new_api_user.clone())
        .collect();
    // The named profile's pull: page 1 and page 1 again (/api/status gets no user id, see
    // pull.rs); the unnamed one: rejected at once.
    let expected = ["4242", "4242", "1"].map(|id| Some(id.to_string()));
    assert_eq!(sent, expected);
    let malformed = pull(None, "forty-two", 2);
    assert!(
        malformed
            .stderr
            .contains("COMETAPI_USER_ID must be the account's numeric user id, got \"forty-two\"")
    );
    assert_eq!(
        malformed.stderr,
        "keysync: error: COMETAPI_USER_ID must be the account's numeric user id, got \
         \"forty-two\"; fix or unset it\n"
    );
}

// 4. Time moves forward -----------------------------------------------------------------------

#[test]
fn a_pull_that_starts_before_the_latest_sync_is_refused_before_writing() {
    let h = Harness::with_keys(2);
    h.pull(&["--now", "2026-01-01T00:00:00Z"]);
    h.pull(&["--now", "2026-01-01T00:00:00Z"]);
    let before = h.dump(&TABLES);
    let output = h.pull_run(&["--now", "2020-01-01T00:00:00Z"], 2);
    assert_eq!(
        output.stderr.trim_end(),
        "keysync: error: this pull would start at 2020-01-01 00:00:00Z, before sync 2 did \
         (2026-01-01 00:00:00Z): the history must move forward. Check the system clock and \
         any --now you gave. If sync 2's own time is what is wrong (the \
         clock was ahead when it ran), correct it as \"A SYNC RECORDED IN THE FUTURE\" in the \
         man page (`keysync man | man -l -`) shows"
    );
    assert_eq!(h.dump(&TABLES), before);
    // Two pulls of one page each, its re-read and /api/status: nothing from the refused one.
    assert_eq!(requests(&h.server), 2 * 3, "refused before any request");
}

/// 2099-01-01T00:00:00Z, where a clock far ahead puts a sync.
const FUTURE: i64 = 4_070_908_800;

/// A row as a pull with a clock far ahead leaves it when the API is down.
fn record_failed_future_sync(h: &Harness) {
    h.conn()
        .execute(
            "INSERT INTO syncs (started_at, finished_at, status, base_url, error)
             VALUES (?1, ?1 + 1, 'failed', 'http://127.0.0.1:9', 'connection refused')",
            [FUTURE],
        )
        .unwrap();
}

#[test]
fn a_failed_pull_recorded_in_the_future_blocks_no_later_pull() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    record_failed_future_sync(&h);
    let text = h.run(&["status"], 0).stdout;
    assert!(
        text.contains("last sync:      2 failed, 2099-01-01 00:00:00Z (")
            && text.contains(" in the future): "),
        "{text}"
    );
    assert!(!text.contains("2099-01-01 00:00:00Z (0s ago)"), "{text}");
    let pulled = h.pull(&[]);
    assert_eq!(
        (pulled["sync"].clone(), pulled["status"].clone()),
        (json!(3), json!("ok"))
    );
}

#[test]
fn a_pull_given_a_now_after_the_clock_is_refused_before_writing() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    let before = h.dump(&TABLES);
    let seen = requests(&h.server);
    let output = h.pull_run(&["--now", "2099-01-01T00:00:00Z"], 2);
    assert!(
        output
            .stderr
            .contains("--now 2099-01-01 00:00:00Z is later than the system clock (")
            && output
                .stderr
                .contains("give --now a time up to now, or leave it out"),
        "{}",
        output.stderr
    );
    assert_eq!(h.dump(&TABLES), before);
    assert_eq!(requests(&h.server), seen, "refused before any request");
    // Readers take any --now: a report may be asked about the future.
    h.run(&["status", "--now", "2099-01-01T00:00:00Z"], 0);
}

/// The SQL under "A sync recorded in the future" in `docs/database.md`, as a user would paste it.
fn documented_recovery_sql() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/database.md"))
            .unwrap();
    let section = doc
        .split_once("### A sync recorded in the future")
        .expect("docs/database.md has the section")
        .1;
    let block = section.split_once("```sql\n").expect("an SQL block").1;
    block.split_once("```").unwrap().0.to_string()
}

#[test]
fn a_good_sync_recorded_in_the_future_is_corrected_as_the_docs_say() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    h.server.account().set(1, "name", json!("renamed"));
    h.pull(&[]);
    // Sync 2 ran with the clock ahead: the keys it recorded are right, its times are not.
    h.conn()
        .execute(
            "UPDATE syncs SET started_at = ?1, finished_at = ?1 + 2 WHERE id = 2",
            [FUTURE],
        )
        .unwrap();
    record_failed_future_sync(&h);
    let refused = h.pull_run(&[], 2);
    assert!(
        refused
            .stderr
            .contains("before sync 2 did (2099-01-01 00:00:00Z)")
            && refused
                .stderr
                .contains("\"A SYNC RECORDED IN THE FUTURE\" in the man page"),
        "{}",
        refused.stderr
    );
    let history = h.dump(&["keys", "key_versions"]);
    // The man page, which the error names, holds the same statements.
    assert_eq!(
        documented_recovery_sql(),
        keysync::testing::FUTURE_SYNC_REPAIR
    );

    h.conn().execute_batch(&documented_recovery_sql()).unwrap();
    assert_eq!(
        h.dump(&["keys", "key_versions"]),
        history,
        "only syncs change"
    );
    assert_eq!(
        h.rows("SELECT id, status FROM syncs ORDER BY id"),
        vec![
            vec![int(1), text_value("ok")],
            vec![int(2), text_value("ok")],
        ],
        "the failed row is gone, the good one is kept"
    );
    assert_eq!(
        h.count("SELECT finished_at - started_at FROM syncs WHERE id = 2"),
        2,
        "it keeps its duration"
    );
    assert_eq!(
        h.count(
            "SELECT count(*) FROM syncs WHERE started_at > CAST(strftime('%s', 'now') AS INTEGER)"
        ),
        0
    );
    let pulled = h.pull(&[]);
    assert_eq!(
        (
            pulled["sync"].clone(),
            pulled["added"].clone(),
            pulled["changed"].clone()
        ),
        (json!(3), json!(0), json!(0))
    );
    assert_eq!(
        h.rows(
            "SELECT valid_from_sync FROM key_versions WHERE key_id = 1 ORDER BY valid_from_sync"
        ),
        vec![vec![int(1)], vec![int(2)]]
    );
}

// 5. Secrets leave the disk; credentials stay out of URLs -------------------------------------

/// Whether any of `needles` occurs in the bytes of the database file or its `-wal`.
fn on_disk(db: &Path, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for path in [db.to_path_buf(), sibling(db, "-wal")] {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for needle in needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(format!("{} in {}", needle, path.display()));
            }
        }
    }
    found
}

/// The full values of keys 1..=count as the fake serves them.
fn full_keys(h: &Harness, count: i64) -> Vec<String> {
    let account = h.server.account();
    (1..=count)
        .map(|id| {
            account.get(id).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn cleared_secrets_leave_the_file_and_its_wal_once_a_reader_lets_go() {
    let h = Harness::with_keys(5);
    let secrets = full_keys(&h, 5);
    h.pull(&["--store-secrets"]);
    assert_eq!(h.count("SELECT count(key) FROM keys"), 5);
    assert_eq!(
        on_disk(&h.db, &secrets).len(),
        5,
        "the search finds stored keys"
    );

    // A reader (Datasette beside cron) holds a snapshot that still has the keys.
    let reader = idle_reader(&h.db);
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(key) FROM keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 5);
    let output = h.pull_run(&[], 0);
    assert!(
        output.stderr.contains(
            "a program reading the database holds an old snapshot of it, so the 5 full key \
             values this pull cleared stay on disk (in the database file or its -wal) until it \
             closes the database; the next pull after that removes them"
        ),
        "{}",
        output.stderr
    );
    assert_eq!(h.count("SELECT count(key) FROM keys"), 0);
    assert!(
        !on_disk(&h.db, &secrets).is_empty(),
        "still on disk, as warned"
    );

    // The reader ends its snapshot but stays connected, so SQLite's own checkpoint when the
    // last connection closes cannot be what removes them: the next pull's checkpoint does.
    reader.execute_batch("COMMIT").unwrap();
    let output = h.pull_run(&[], 0);
    assert_eq!(output.stderr, "", "nothing cleared, nothing to warn about");
    assert_eq!(on_disk(&h.db, &secrets), Vec::<String>::new());
    let wal = std::fs::metadata(sibling(&h.db, "-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the pull emptied the WAL");
    drop(reader);
}

/// A read-only connection, as a viewer beside cron holds one open between its queries.
/// It has read once, so it has joined the WAL's shared memory as a live reader does.
fn idle_reader(db: &Path) -> Connection {
    let reader =
        Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
        .unwrap();
    reader
}

#[test]
fn with_no_snapshot_held_the_pull_that_clears_secrets_removes_them_at_once() {
    let h = Harness::with_keys(3);
    let secrets = full_keys(&h, 3);
    h.pull(&["--store-secrets"]);
    assert_eq!(on_disk(&h.db, &secrets).len(), 3);
    // Connected but between queries: it holds no snapshot, and keeps the pull from being the
    // last connection (whose close SQLite would checkpoint anyway).
    let reader = idle_reader(&h.db);
    assert_eq!(h.pull_run(&[], 0).stderr, "");
    assert_eq!(on_disk(&h.db, &secrets), Vec::<String>::new());
    drop(reader);
}

#[test]
fn a_base_url_with_credentials_is_refused_and_shown_redacted() {
    let h = Harness::with_keys(1);
    let address = h.server.url().trim_start_matches("http://").to_string();
    let with_password = format!("http://admin:hunter2@{address}");
    let shown = format!("http://admin:***@{address}");
    let by_flag = h.pull_run(&["-vvv", "--base-url", &with_password], 2);
    let by_env = run(
        h.keysync()
            .env("COMETAPI_BASE_URL", &with_password)
            .args(["pull", "-vvv"]),
        2,
    );
    for output in [by_flag, by_env] {
        let text = output.stderr;
        assert!(
            text.contains(&format!(
                "the base URL {shown} carries a user name or password: credentials belong in \
                 the token"
            )),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert!(output.stdout.is_empty());
    }
    assert_eq!(requests(&h.server), 0);
    assert!(!h.db.exists(), "refused before the database was made");

    let broken = h.pull_run(&["--base-url", "http://admin:hunter2@host:99999"], 2);
    assert!(
        broken.stderr.contains("http://admin:***@host:99999"),
        "{}",
        broken.stderr
    );
    assert!(!broken.stderr.contains("hunter2"));
}

#[test]
fn a_malformed_base_url_with_credentials_is_shown_redacted_too() {
    let h = Harness::with_keys(1);
    let address = h.server.url().trim_start_matches("http://").to_string();
    for (given, shown) in [
        (
            format!("http:\\\\admin:hunter2@{address}"),
            format!("http:\\\\admin:***@{address}"),
        ),
        (
            format!("http:/admin:hunter2@{address}"),
            format!("http:/admin:***@{address}"),
        ),
        (
            "https//admin:hunter2@127.0.0.1".to_string(),
            "https//admin:***@127.0.0.1".to_string(),
        ),
        (
            format!("admin:hunter2@{address}"),
            format!("admin:***@{address}"),
        ),
    ] {
        let text = h.pull_run(&["-vvv", "--base-url", &given], 2).stderr;
        assert!(!text.contains("hunter2"), "{given}: {text}");
        let quoted = format!("{shown:?}");
        assert!(
            text.contains(&shown) || text.contains(&quoted),
            "{given}: {text}"
        );
    }
    assert_eq!(requests(&h.server), 0);
}

// 9. Read-only media --------------------------------------------------------------------------

/// A database with two syncs (key 1 renamed in the second), copied alone into `backup/` as a
/// backup would be: returns the copy's folder and path.
fn backup_of_two_syncs(h: &Harness) -> (PathBuf, PathBuf) {
    h.pull(&["--now", "2026-01-01T00:00:00Z"]);
    h.server.account().set(1, "name", json!("renamed"));
    h.pull(&["--now", "2026-01-02T00:00:00Z"]);
    let shelf = h.dir.path().join("backup");
    std::fs::create_dir(&shelf).unwrap();
    let db = shelf.join("keysync.db");
    std::fs::copy(&h.db, &db).unwrap();
    (shelf, db)
}

/// `keysync` with an empty environment on `db`, logging at info so the read-only path shows.
fn reader_command(program: &Path, h: &Harness, db: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command
        .env_clear()
        .env("HOME", h.dir.path())
        .arg("--db")
        .arg(db)
        .args(["--now", "2026-06-01T00:00:00Z", "-v"]);
    command
}

/// Runs every reader on the read-only copy through `run` and checks what each prints, and
/// that each took the immutable path and left no `-shm` or `-wal` behind.
fn assert_readers_work(shelf: &Path, run: impl Fn(&[&str]) -> Output) {
    let ok = |args: &[&str]| -> String {
        let output = check_exit(run(args), 0, &format!("keysync {}", args.join(" ")));
        let text = output.stderr;
        assert!(
            text.contains("is on read-only media")
                && text.contains("reading the file as immutable"),
            "{args:?} took the read-only path: {text}"
        );
        output.stdout
    };
    let rows: serde_json::Value = serde_json::from_str(&ok(&[
        "query",
        "--format",
        "json",
        "SELECT id, name FROM keys ORDER BY id",
    ]))
    .unwrap();
    let ids: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(rows[0]["name"], json!("renamed"));

    let status: serde_json::Value = serde_json::from_str(&ok(&["status", "--json"])).unwrap();
    assert_eq!(status["keys"]["live"], json!(3));
    assert_eq!(status["last_good_sync"]["id"], json!(2));

    let syncs = ok(&["syncs", "--format", "csv", "--no-headers"]);
    let ids: Vec<&str> = syncs
        .lines()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, ["2", "1"]);

    let diff: serde_json::Value =
        serde_json::from_str(&ok(&["diff", "--format", "json", "1", "2"])).unwrap();
    assert_eq!(diff.as_array().unwrap().len(), 1);
    assert_eq!(
        (diff[0]["id"].clone(), diff[0]["field"].clone()),
        (json!(1), json!("name"))
    );
    let old_name = diff[0]["old"].clone();
    assert_eq!(
        (diff[0]["kind"].clone(), diff[0]["new"].clone()),
        (json!("changed"), json!("renamed"))
    );

    let history: serde_json::Value =
        serde_json::from_str(&ok(&["history", "1", "--format", "json"])).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);
    let versions: Vec<[serde_json::Value; 3]> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            [
                v["from_sync"].clone(),
                v["to_sync"].clone(),
                v["name"].clone(),
            ]
        })
        .collect();
    assert_eq!(
        versions,
        [
            [json!(1), json!(2), old_name],
            [json!(2), json!(null), json!("renamed")]
        ]
    );

    assert_eq!(files_in(shelf), ["keysync.db"], "no -shm, no -wal");
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A folder and file without write permission. Root ignores permissions, so as root the
/// readers run as `nobody`; for them the folder is as read-only as for any user.
#[test]
fn readers_work_on_a_database_in_a_read_only_folder() {
    use std::os::unix::process::CommandExt;
    let h = Harness::with_keys(3);
    let (shelf, db) = backup_of_two_syncs(&h);
    set_mode(&db, 0o444);
    set_mode(&shelf, 0o555);
    set_mode(h.dir.path(), 0o755);
    // A copy beside the database, so that the other user can run it wherever the build lives
    // (a target folder under /root is closed to it).
    let keysync = h.dir.path().join("keysync");
    std::fs::copy(assert_cmd::cargo::cargo_bin("keysync"), &keysync).expect("a copy of keysync");
    set_mode(&keysync, 0o755);
    assert_readers_work(&shelf, |args| {
        let mut command = reader_command(&keysync, &h, &db);
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            command.uid(65534).gid(65534);
        }
        command.args(args).output().expect("keysync runs")
    });
    set_mode(&shelf, 0o755);
}

/// A read-only bind mount in a private mount namespace (`unshare`), where the machine allows
/// one: the file system itself refuses every write (EROFS), whoever asks.
#[test]
fn readers_work_on_a_read_only_mount() {
    let h = Harness::with_keys(3);
    let (shelf, db) = backup_of_two_syncs(&h);
    let mounted = |program: &Path| {
        let mut command = std::process::Command::new("/usr/bin/unshare");
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
            .arg(r#"mount --bind -o ro "$1" "$1" && touch "$1/probe" 2>/dev/null && exit 9; shift; exec "$@""#)
            .arg("sh")
            .arg(&shelf)
            .arg(program);
        command
    };
    let probe = mounted(Path::new("/bin/true")).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: this machine allows no read-only mount (unshare + mount): {probe:?}");
        return;
    }
    let keysync = assert_cmd::cargo::cargo_bin("keysync");
    assert_readers_work(&shelf, |args| {
        let inner = reader_command(&keysync, &h, &db);
        let mut command = mounted(&keysync);
        command
            .env("HOME", h.dir.path())
            .args(inner.get_args())
            .args(args);
        command.output().expect("keysync runs")
    });
}

fn journal_mode(db: &Path) -> String {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap()
}

/// Every `keys` and `key_versions` row but the syncs' ids.
fn first_keys_record(h: &Harness) -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let data = "user_id, name, status, created_time, accessed_time, expired_time, remain_quota,
                used_quota, unlimited_quota, model_limits_enabled, model_limits, allow_ips,
                \"group\", cross_group_retry, key_hint, key_sha256, extra";
    (
        h.rows(&format!(
            "SELECT id, key, removed_sync, {data} FROM keys ORDER BY id"
        )),
        h.rows(&format!(
            "SELECT key_id, valid_to_sync, changed, {data} FROM key_versions ORDER BY key_id"
        )),
    )
}

/// A database's first keys are written through a rollback journal (each page once); a reader
/// that has the file open keeps it in WAL, and reads on while they are written. Either way the
/// record is the same and the file ends in WAL.
#[test]
fn the_first_keys_are_the_same_record_with_or_without_a_reader() {
    let alone = Harness::with_keys(250);
    let pulled = alone.pull_run(&["-vv"], 0);
    assert!(!pulled.stderr.contains("writing through the WAL"));
    assert_eq!(journal_mode(&alone.db), "wal");
    assert!(!sibling(&alone.db, "-journal").exists());

    // An account without keys first: the file exists, and a reader opens it.
    let shared = Harness::new(FakeAccount::new(TOKEN));
    shared.pull(&[]);
    let reader = Connection::open(&shared.db).unwrap();
    let count = |conn: &Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM keys", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(count(&reader), 0);
    shared.server.account().generate(250, SEED, NOW);
    let pulled = shared.pull_run(&["--json", "-vv"], 0);
    assert_eq!(pulled.json()["added"], 250);
    assert!(
        pulled.stderr.contains("writing through the WAL"),
        "{}",
        pulled.stderr
    );
    assert_eq!(count(&reader), 250, "the reader reads the new keys");
    assert_eq!(journal_mode(&shared.db), "wal");
    // The same rows but for the sync that first saw the keys (2 with the reader, 1 without).
    let (with_reader, without) = (first_keys_record(&shared), first_keys_record(&alone));
    assert_eq!(with_reader.0.len(), 250);
    assert_eq!(with_reader.1.len(), 250);
    assert_eq!(with_reader, without);
}
