//! `keysync pull` and `keysync demo`: what lands in the database, what is sent, how it fails.

use std::io::Read;

use keysync::testing::{FakeAccount, Faults};
use pretty_assertions::assert_eq;
use rusqlite::types::Value;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::{
    Harness, NOW, SEED, TOKEN, api_fields_sql, expected_api_row, int, run, run_in, text,
};

fn summary(
    sync: i64,
    status: &str,
    keys: i64,
    added: i64,
    changed: i64,
    removed: i64,
    pages: i64,
) -> serde_json::Value {
    json!({"sync": sync, "status": status, "keys": keys, "added": added, "changed": changed,
           "removed": removed, "pages": pages})
}

/// The summary without its `duration_ms`, `started_at` and `finished_at`, the fields a test
/// cannot predict without `--now` (`monitoring` checks them with it), nor its `requests` and
/// `rate_limited` (`pacing` checks them exactly).
fn timeless(mut summary: serde_json::Value) -> serde_json::Value {
    let fields = summary.as_object_mut().unwrap();
    for count in ["requests", "rate_limited"] {
        let value = fields.remove(count);
        assert!(
            value.is_some_and(|v| v.is_u64()),
            "{count} is a whole number"
        );
    }
    let duration = fields.remove("duration_ms");
    assert!(
        duration.is_some_and(|d| d.is_u64()),
        "duration_ms is a whole number"
    );
    for time in ["started_at", "finished_at"] {
        let value = fields.remove(time);
        assert!(
            value.as_ref().and_then(|t| t.as_str()).is_some_and(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .is_ok_and(|t| t.offset().local_minus_utc() == 0)
            }),
            "{time} is an RFC 3339 UTC time: {value:?}"
        );
    }
    summary
}

fn sync_rows(h: &Harness) -> Vec<Vec<Value>> {
    h.rows("SELECT id, status, pages, keys_seen, added, changed, removed, error FROM syncs ORDER BY id")
}

fn versions_of(h: &Harness, id: i64) -> Vec<Vec<Value>> {
    h.rows(&format!(
        "SELECT valid_from_sync, valid_to_sync, changed FROM key_versions WHERE key_id = {id} \
         ORDER BY valid_from_sync"
    ))
}

#[test]
fn a_multi_page_account_is_recorded_whole_with_the_requests_the_api_wants() {
    let h = Harness::with_keys(2345);
    h.server.account().faults.page_delay = std::time::Duration::from_millis(50);
    assert_eq!(
        timeless(h.pull(&[])),
        summary(1, "ok", 2345, 2345, 0, 0, 24)
    );
    assert_eq!(h.count("SELECT count(*) FROM keys"), 2345);
    assert_eq!(h.count("SELECT count(*) FROM key_versions WHERE valid_from_sync = 1 AND valid_to_sync IS NULL AND changed = '[]'"), 2345);
    assert_eq!(
        h.count("SELECT count(*) FROM keys WHERE first_seen_sync = 1 AND removed_sync IS NULL"),
        2345
    );
    assert_eq!(
        h.count("SELECT min(id) * 10000 + max(id) FROM keys"),
        10000 + 2345
    );
    assert_eq!(
        sync_rows(&h),
        vec![vec![
            int(1),
            text("ok"),
            int(24),
            int(2345),
            int(2345),
            int(0),
            int(0),
            Value::Null
        ]]
    );

    let account = h.server.account();
    let (status, requests): (Vec<_>, Vec<_>) = account
        .requests()
        .iter()
        .partition(|r| r.path_and_query == "/api/status");
    assert_eq!(status.len(), 1, "the price read once");
    assert_eq!(
        requests[0].path_and_query, "/api/token/?p=1&page_size=100",
        "page 1 first"
    );
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path_and_query.as_str()).collect();
    paths.sort_by_key(|p| p[14..p.find('&').unwrap()].parse::<u32>().unwrap());
    // 24 pages, the last one short, then page 1 again to check the listing held still.
    let expected: Vec<String> = [1]
        .into_iter()
        .chain(1..=24)
        .map(|p| format!("/api/token/?p={p}&page_size=100"))
        .collect();
    assert_eq!(paths, expected);
    assert_eq!(
        requests.last().unwrap().path_and_query,
        "/api/token/?p=1&page_size=100",
        "page 1 again last"
    );
    for request in requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some(TOKEN),
            "raw token, no Bearer"
        );
        assert_eq!(
            request.user_agent.as_deref(),
            Some(concat!("keysync/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(request.new_api_user, None);
    }
    assert_eq!(account.max_in_flight(), 4, "the default concurrency");
}

#[test]
fn concurrency_1_fetches_one_page_at_a_time() {
    let h = Harness::with_keys(450);
    h.server.account().faults.page_delay = std::time::Duration::from_millis(20);
    assert_eq!(
        timeless(h.pull(&["--concurrency", "1"])),
        summary(1, "ok", 450, 450, 0, 0, 5)
    );
    assert_eq!(h.server.account().max_in_flight(), 1);
}

#[test]
fn every_api_field_is_stored_under_its_name() {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    let fake = h.server.account().get(2).unwrap().clone();
    let stored = h.rows(&format!("{} WHERE id = 2", api_fields_sql()));
    assert_eq!(stored, vec![expected_api_row(&fake)]);
    assert_eq!(
        h.rows("SELECT extra FROM keys WHERE id = 2"),
        vec![vec![text("{}")]]
    );
}

#[test]
fn an_empty_account_is_an_ok_sync_of_nothing() {
    let h = Harness::new(FakeAccount::new(TOKEN));
    assert_eq!(timeless(h.pull(&[])), summary(1, "ok", 0, 0, 0, 0, 1));
    assert_eq!(h.count("SELECT count(*) FROM keys"), 0);
    assert_eq!(h.count("SELECT count(*) FROM key_versions"), 0);
}

#[test]
fn a_pull_without_change_adds_a_sync_row_and_nothing_else() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    let before = h.dump(&["keys", "key_versions"]);
    assert_eq!(timeless(h.pull(&[])), summary(2, "ok", 250, 0, 0, 0, 3));
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
    assert_eq!(h.count("SELECT count(*) FROM syncs WHERE status = 'ok'"), 2);
}

#[test]
fn creates_updates_and_deletes_are_counted_and_versioned_exactly() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    {
        let mut account = h.server.account();
        account.generate(3, SEED + 1, NOW + 600);
        account.remove(5);
        account.remove(6);
        account.set(10, "name", json!("renamed"));
        account.set(11, "used_quota", json!(123_456));
        account.set(11, "remain_quota", json!(42));
        account.set(12, "allow_ips", json!(null));
        account.set(13, "allow_ips", json!(""));
    }
    assert_eq!(
        h.count("SELECT count(*) FROM keys WHERE id = 12 AND allow_ips = ''"),
        0,
        "precondition: generated values differ"
    );
    assert_eq!(timeless(h.pull(&[])), summary(2, "ok", 251, 3, 4, 2, 3));

    assert_eq!(
        versions_of(&h, 10),
        vec![
            vec![int(1), int(2), text("[]")],
            vec![int(2), Value::Null, text(r#"["name"]"#)],
        ]
    );
    assert_eq!(
        versions_of(&h, 11),
        vec![
            vec![int(1), int(2), text("[]")],
            vec![
                int(2),
                Value::Null,
                text(r#"["remain_quota","used_quota"]"#)
            ],
        ]
    );
    assert_eq!(versions_of(&h, 5), vec![vec![int(1), int(2), text("[]")]]);
    assert_eq!(
        versions_of(&h, 251),
        vec![vec![int(2), Value::Null, text("[]")]]
    );
    assert_eq!(
        h.rows("SELECT id, removed_sync FROM keys WHERE removed_sync IS NOT NULL ORDER BY id"),
        vec![vec![int(5), int(2)], vec![int(6), int(2)]]
    );
    assert_eq!(
        h.rows("SELECT name, first_seen_sync FROM keys WHERE id = 10"),
        vec![vec![text("renamed"), int(1)]]
    );
    assert_eq!(h.count("SELECT count(*) FROM key_versions"), 250 + 3 + 4);

    // Nothing changes again: the removed keys are not closed a second time.
    let before = h.dump(&["keys", "key_versions"]);
    assert_eq!(timeless(h.pull(&[])), summary(3, "ok", 251, 0, 0, 0, 3));
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
}

#[test]
fn null_and_empty_allow_ips_are_different_values() {
    let h = Harness::with_keys(1);
    h.server.account().set(1, "allow_ips", json!(null));
    h.pull(&[]);
    h.server.account().set(1, "allow_ips", json!(""));
    assert_eq!(timeless(h.pull(&[])), summary(2, "ok", 1, 0, 1, 0, 1));
    h.server.account().set(1, "allow_ips", json!(null));
    assert_eq!(timeless(h.pull(&[])), summary(3, "ok", 1, 0, 1, 0, 1));
    assert_eq!(
        h.rows("SELECT valid_from_sync, allow_ips, changed FROM key_versions ORDER BY 1"),
        vec![
            vec![int(1), Value::Null, text("[]")],
            vec![int(2), text(""), text(r#"["allow_ips"]"#)],
            vec![int(3), Value::Null, text(r#"["allow_ips"]"#)],
        ]
    );
}

#[test]
fn a_deleted_key_that_comes_back_opens_a_new_version() {
    let h = Harness::with_keys(20);
    h.pull(&[]);
    let fields = h.server.account().remove(7).unwrap();
    assert_eq!(timeless(h.pull(&[])), summary(2, "ok", 19, 0, 0, 1, 1));
    h.server.account().restore(fields.clone());
    assert_eq!(timeless(h.pull(&[])), summary(3, "ok", 20, 1, 0, 0, 1));
    assert_eq!(
        h.rows("SELECT first_seen_sync, removed_sync FROM keys WHERE id = 7"),
        vec![vec![int(1), Value::Null]]
    );
    assert_eq!(
        versions_of(&h, 7),
        vec![
            vec![int(1), int(2), text("[]")],
            vec![int(3), Value::Null, text("[]")],
        ]
    );
    // Gone again, then back with other data: the new version names what differs.
    h.server.account().remove(7);
    h.pull(&[]);
    let mut changed = fields;
    changed.insert("status".into(), json!(2));
    h.server.account().restore(changed);
    assert_eq!(timeless(h.pull(&[])), summary(5, "ok", 20, 1, 0, 0, 1));
    assert_eq!(
        versions_of(&h, 7),
        vec![
            vec![int(1), int(2), text("[]")],
            vec![int(3), int(4), text("[]")],
            vec![int(5), Value::Null, text(r#"["status"]"#)],
        ]
    );
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn file_contains(path: &std::path::Path, needle: &str) -> bool {
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        file.read_to_end(&mut bytes).unwrap();
    }
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn database_files_contain(h: &Harness, needle: &str) -> bool {
    ["", "-wal", "-shm"].iter().any(|suffix| {
        let mut path = h.db.clone().into_os_string();
        path.push(suffix);
        file_contains(std::path::Path::new(&path), needle)
    })
}

/// Key `id`'s full value as the fake serves it.
fn full_key(h: &Harness, id: i64) -> String {
    h.server.account().get(id).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The hint keysync stores for a full key: the key with its middle masked.
fn hint_of(key: &str) -> String {
    format!("{}**********{}", &key[..4], &key[44..])
}

#[test]
fn full_keys_stay_off_disk_unless_asked_for() {
    let h = Harness::with_keys(5);
    let key = full_key(&h, 3);
    h.pull(&[]);
    let hint = hint_of(&key);
    assert_eq!(
        h.rows("SELECT key_hint, key_sha256, key FROM keys WHERE id = 3"),
        vec![vec![text(&hint), text(&sha256_hex(&key)), Value::Null]]
    );
    assert!(
        !database_files_contain(&h, &key),
        "the full key reached the disk"
    );

    h.pull(&["--store-secrets"]);
    assert_eq!(
        h.rows("SELECT key FROM keys WHERE id = 3"),
        vec![vec![text(&key)]]
    );
    assert_eq!(
        h.count("SELECT count(*) FROM key_versions WHERE valid_to_sync IS NOT NULL"),
        0,
        "storing secrets is not a change"
    );

    // A pull without the flag takes them off again.
    h.pull(&[]);
    assert_eq!(
        h.count("SELECT count(*) FROM keys WHERE key IS NOT NULL"),
        0
    );
}

#[test]
fn a_masked_upstream_leaves_hints_and_no_hash() {
    let h = Harness::with_keys(4);
    let key = full_key(&h, 2);
    h.server.account().mask_keys = true;
    h.pull(&["--store-secrets"]);
    let hint = hint_of(&key);
    assert_eq!(
        h.rows("SELECT key_hint, key_sha256, key FROM keys WHERE id = 2"),
        vec![vec![text(&hint), Value::Null, Value::Null]]
    );
}

#[test]
fn unknown_fields_are_kept_in_extra() {
    let mut account = FakeAccount::new(TOKEN);
    account.generate(2, SEED, NOW);
    account.faults = Faults {
        extra_fields: serde_json::from_value(json!({
            "DeletedAt": null, "billing_type": "tokens", "auto_groups": ["a", "b"], "weight": 1.5,
            "limits": {"rpm": 60}
        }))
        .unwrap(),
        ..Faults::default()
    };
    let h = Harness::new(account);
    h.pull(&[]);
    assert_eq!(
        h.rows("SELECT DISTINCT extra FROM keys"),
        vec![vec![text(
            r#"{"DeletedAt":null,"auto_groups":["a","b"],"billing_type":"tokens","limits":{"rpm":60},"weight":1.5}"#
        )]]
    );
}

#[test]
fn unicode_quotes_and_sql_in_names_are_stored_exactly() {
    let names = [
        "O'Brien \"prod\"; DROP TABLE keys;--",
        "clé 🔑 ключ",
        "مفتاح الإنتاج",
        "two\nlines\ttab",
        "",
    ];
    let mut account = FakeAccount::new(TOKEN);
    account.generate(names.len(), SEED, NOW);
    for (i, name) in names.iter().enumerate() {
        account.set(i as i64 + 1, "name", json!(name));
    }
    let h = Harness::new(account);
    h.pull(&[]);
    let stored: Vec<Vec<Value>> = h.rows("SELECT name FROM keys ORDER BY id");
    assert_eq!(
        stored,
        names.iter().map(|n| vec![text(n)]).collect::<Vec<_>>()
    );
}

/// What every rejected-credentials error ends with.
const CREDENTIALS_REMEDY: &str = "Check COMETAPI_ACCESS_TOKEN or the --token-file contents \
    (create a token at CometAPI Console → Personal Settings) and that the account is enabled; if \
    your deployment requires it, set --user-id / COMETAPI_USER_ID";

#[test]
fn a_wrong_token_exits_3_after_one_request_and_changes_no_data() {
    let h = Harness::with_keys(150);
    h.pull(&[]);
    let before = h.dump(&["keys", "key_versions"]);
    let requests_before = h.server.account().requests().len();
    let output = run(
        h.keysync()
            .env("COMETAPI_ACCESS_TOKEN", "wrong-token-123")
            .arg("pull"),
        3,
    );
    let stderr = output.stderr;
    assert!(stderr.contains("rejected the credentials"), "{stderr}");
    assert!(
        !stderr.contains("wrong-token-123") && !stderr.contains(TOKEN),
        "{stderr}"
    );
    assert_eq!(
        stderr,
        format!(
            "keysync: error: the API rejected the credentials (Unauthorized, invalid access \
             token). {CREDENTIALS_REMEDY}\n"
        )
    );
    assert!(output.stdout.is_empty());
    assert_eq!(h.server.account().requests().len(), requests_before + 1);
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
    assert_eq!(
        h.rows("SELECT id, status, ifnull(error LIKE '%rejected the credentials%', 0) FROM syncs ORDER BY id"),
        vec![
            vec![int(1), text("ok"), int(0)],
            vec![int(2), text("failed"), int(1)]
        ]
    );
}

#[test]
fn no_token_is_a_usage_error_that_creates_nothing() {
    let h = Harness::with_keys(1);
    let stderr = run(
        h.keysync().env_remove("COMETAPI_ACCESS_TOKEN").arg("pull"),
        2,
    )
    .stderr;
    assert!(
        stderr.contains("set COMETAPI_ACCESS_TOKEN or pass --token-file"),
        "{stderr}"
    );
    assert_eq!(
        stderr,
        "keysync: error: no access token: set COMETAPI_ACCESS_TOKEN or pass --token-file PATH; \
         create a token at CometAPI Console → Personal Settings\n"
    );
    assert!(!h.db.exists());
    assert!(h.server.account().requests().is_empty());
}

#[test]
fn the_token_file_is_read_and_trimmed() {
    let h = Harness::with_keys(3);
    let file = h.dir.path().join("token");
    std::fs::write(&file, format!("  {TOKEN}\n")).unwrap();
    let pull_with_file = |mode: u32| {
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
        run(
            h.keysync()
                .env_remove("COMETAPI_ACCESS_TOKEN")
                .args(["pull", "-q", "--token-file"])
                .arg(&file),
            0,
        )
    };
    let output = pull_with_file(0o600);
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
    assert_eq!(h.count("SELECT count(*) FROM keys"), 3);

    let stderr = pull_with_file(0o644).stderr;
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "keysync: warning: --token-file {file} has mode 644, readable by others: run `chmod 600 {file}`\n",
            file = file.display()
        )
    );
}

#[test]
fn new_api_user_is_sent_when_configured() {
    let mut account = FakeAccount::new(TOKEN);
    account.generate(2, SEED, NOW);
    account.require_user_id = true;
    let h = Harness::new(account);
    let output = run(h.keysync().arg("pull"), 3);
    assert!(output.stderr.contains("New-Api-User"));
    assert_eq!(
        output.stderr,
        format!(
            "keysync: error: the API rejected the credentials (HTTP 401 Unauthorized: \
             Unauthorized, New-Api-User header not provided). {CREDENTIALS_REMEDY}\n"
        )
    );

    run(
        h.keysync()
            .env("COMETAPI_USER_ID", "5678")
            .args(["pull", "-q"]),
        0,
    );
    assert_eq!(
        h.server
            .account()
            .requests()
            .last()
            .unwrap()
            .new_api_user
            .as_deref(),
        Some("5678")
    );
    h.pull(&["--user-id", "5678"]);
}

#[test]
fn the_summary_line_and_quiet_mode() {
    let h = Harness::with_keys(120);
    let output = h.run(&["pull"], 0);
    assert!(output.stderr.is_empty(), "no progress bar off a terminal");
    let line = output.stdout;
    let (head, tail) = line.split_once(" (").unwrap();
    assert_eq!(head, "sync 1 ok: 120 keys, 120 added, 0 changed, 0 removed");
    assert!(tail.ends_with("s)\n") && !line.contains('\x1b'), "{line:?}");

    let output = h.run(&["-q", "pull"], 0);
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
}

#[test]
fn global_flags_work_before_and_after_the_subcommand() {
    let h = Harness::with_keys(2);
    let other = h.dir.path().join("nested/folder/other.db");
    run(
        h.keysync()
            .env_remove("KEYSYNC_DB")
            .arg("--db")
            .arg(&other)
            .args(["pull", "-q"]),
        0,
    );
    run(
        h.keysync()
            .env_remove("KEYSYNC_DB")
            .args(["pull", "-q", "--db"])
            .arg(&other),
        0,
    );
    let conn = rusqlite::Connection::open(&other).unwrap();
    let syncs: i64 = conn
        .query_row("SELECT count(*) FROM syncs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(syncs, 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&other).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn the_default_database_lives_under_xdg_data_home() {
    let h = Harness::with_keys(2);
    let data_home = h.dir.path().join("data");
    run(
        h.keysync()
            .env_remove("KEYSYNC_DB")
            .env("XDG_DATA_HOME", &data_home)
            .args(["pull", "-q"]),
        0,
    );
    assert!(data_home.join("keysync/keysync.db").exists());
}

#[test]
fn a_failure_mid_pull_changes_no_data_and_records_the_error() {
    let h = Harness::with_keys(350);
    h.pull(&[]);
    let before = h.dump(&["keys", "key_versions"]);
    {
        let mut account = h.server.account();
        account.set(1, "name", json!("changed upstream"));
        account.faults.success_false_page = Some(3);
    }
    let stderr = run(h.keysync().arg("pull"), 4).stderr;
    assert!(
        stderr.contains("page 3: the API answered success:false"),
        "{stderr}"
    );
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
    assert_eq!(
        h.rows("SELECT status, added, changed, error LIKE 'page 3:%' FROM syncs WHERE id = 2"),
        vec![vec![text("failed"), int(0), int(0), int(1)]]
    );
}

#[test]
fn a_running_row_left_by_a_dead_pull_is_closed_as_failed() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    h.conn()
        .execute(
            "INSERT INTO syncs (started_at, status, base_url) VALUES (1, 'running', 'x')",
            [],
        )
        .unwrap();
    h.pull(&[]);
    assert_eq!(
        h.rows("SELECT id, status, ifnull(error LIKE 'interrupted%', 0) FROM syncs ORDER BY id"),
        vec![
            vec![int(1), text("ok"), int(0)],
            vec![int(2), text("failed"), int(1)],
            vec![int(3), text("ok"), int(0)],
        ]
    );
}

#[test]
fn a_database_from_a_newer_keysync_is_refused_untouched() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    h.conn().execute("INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', 'x', '0')", []).unwrap();
    let before = h.dump(&["syncs", "keys", "key_versions"]);
    let output = run(h.keysync().arg("pull"), 6);
    assert!(
        output
            .stderr
            .contains("schema version 99, newer than this keysync")
    );
    assert_eq!(
        output.stderr,
        format!(
            "keysync: error: {} has schema version 99, newer than this keysync understands ({}); \
             keysync left it untouched: upgrade keysync\n",
            h.db.display(),
            keysync::testing::known_schema_version()
        )
    );
    assert_eq!(h.dump(&["syncs", "keys", "key_versions"]), before);
}

#[test]
fn a_file_that_is_not_a_database_is_exit_6() {
    let h = Harness::with_keys(1);
    std::fs::write(
        &h.db,
        "this is not SQLite, it is a text file of some length ............",
    )
    .unwrap();
    let before = std::fs::read(&h.db).unwrap();
    let output = run(h.keysync().arg("pull"), 6);
    assert_eq!(
        output.stderr,
        "keysync: error: cannot read the database schema: file is not a database; this file is \
         not a keysync database: pass --db with the right path\n"
    );
    assert_eq!(
        std::fs::read(&h.db).unwrap(),
        before,
        "the file is left as it was"
    );
}

#[test]
fn a_second_pull_on_a_locked_database_exits_5() {
    let h = Harness::with_keys(1);
    h.pull(&[]);
    let lock = keysync::testing::PullLock::try_acquire(&h.db).unwrap();
    let output = run(h.keysync().arg("pull"), 5);
    assert!(output.stderr.contains(&h.db.display().to_string()));
    assert_eq!(
        output.stderr,
        format!(
            "keysync: error: another keysync pull or prune is running on the database {} (the \
             same file, whatever path names it); let it finish, or pass --wait DURATION to wait \
             for it\n",
            h.db.display()
        )
    );
    drop(lock);
    h.pull(&[]);
}

#[test]
fn demo_runs_two_pulls_against_the_fake_without_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let summaries: Vec<serde_json::Value> = run_in(dir.path(), &["demo", "--json"], 0)
        .stdout
        .lines()
        .map(|l| timeless(serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(
        summaries,
        vec![
            // 300 keys: three full pages and the empty fourth that proves the end.
            summary(1, "ok", 300, 300, 0, 0, 4),
            summary(2, "ok", 302, 5, 16, 3, 4)
        ]
    );
    // A second demo replaces its own database rather than piling onto it.
    run_in(dir.path(), &["demo", "-q"], 0);
    let conn = rusqlite::Connection::open(dir.path().join("keysync-demo.db")).unwrap();
    let syncs: i64 = conn
        .query_row("SELECT count(*) FROM syncs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(syncs, 2);
}

#[test]
fn demo_refuses_a_database_that_is_not_its_own() {
    let h = Harness::with_keys(1);
    h.pull(&[]);
    let before = h.dump(&["syncs", "keys"]);
    run(h.keysync().arg("demo").arg("--db").arg(&h.db), 2);
    assert_eq!(h.dump(&["syncs", "keys"]), before);
}
