//! A re-pull reads only what changed: items the API sends exactly as last time are known by
//! their digest (`key_digests`) and counted by id, never read; every change, addition and
//! removal is still recorded, and a database without digests (older than schema 7) reads every
//! key once. `-v` says how many items were known and how many read.

use serde_json::json;

use crate::common::{Harness, Run, int};

/// The `sync N: K listed items known unchanged, R read` line of a `pull -v`.
fn items_line(run: &Run) -> String {
    run.stderr
        .lines()
        .find(|line| line.contains("listed items known unchanged"))
        .unwrap_or_else(|| panic!("no items line in: {}", run.stderr))
        .trim_start_matches("keysync: info: ")
        .to_string()
}

#[test]
fn a_re_pull_reads_only_the_keys_that_changed_and_records_every_change() {
    // 250 keys, newest first: ids 250..151 on page 1, 150..51 on page 2, 50..1 on page 3.
    let h = Harness::with_keys(250);
    let first = h.pull_run(&["--json", "-v"], 0);
    assert_eq!(
        items_line(&first),
        "sync 1: 0 listed items known unchanged, 350 read"
    );
    {
        let mut account = h.server.account();
        account.set(10, "name", json!("renamed on page 3"));
        account.set(120, "used_quota", json!(123_456));
        account.remove(60);
        account.insert(serde_json::Map::from_iter([("name".into(), json!("new"))]));
    }
    let second = h.pull_run(&["--json", "-v"], 0);
    let summary = second.json();
    let counts = ["keys", "added", "changed", "removed"].map(|k| summary[k].as_i64().unwrap());
    assert_eq!(counts, [250, 1, 2, 1]);
    // Page 1 (the new key and 99 old ones) is read twice; of the 150 items after it, the two
    // changed keys are read and the other 148 known.
    assert_eq!(
        items_line(&second),
        "sync 2: 148 listed items known unchanged, 202 read"
    );
    assert_eq!(
        h.rows(
            "SELECT key_id, valid_from_sync, valid_to_sync, changed FROM key_versions
             WHERE valid_from_sync = 2 OR valid_to_sync = 2 ORDER BY key_id, valid_from_sync"
        ),
        vec![
            vec![int(10), int(1), int(2), crate::common::text("[]")],
            vec![
                int(10),
                int(2),
                rusqlite::types::Value::Null,
                crate::common::text(r#"["name"]"#)
            ],
            vec![int(60), int(1), int(2), crate::common::text("[]")],
            vec![int(120), int(1), int(2), crate::common::text("[]")],
            vec![
                int(120),
                int(2),
                rusqlite::types::Value::Null,
                crate::common::text(r#"["used_quota"]"#)
            ],
            vec![
                int(251),
                int(2),
                rusqlite::types::Value::Null,
                crate::common::text("[]")
            ],
        ]
    );
    assert_eq!(h.count("SELECT removed_sync FROM keys WHERE id = 60"), 2);
    // Every live key has the digest of the item it was last written from; the removed one none.
    assert_eq!(h.count("SELECT count(*) FROM key_digests"), 250);
    assert_eq!(
        h.count("SELECT count(*) FROM key_digests WHERE key_id = 60"),
        0
    );
    let third = h.pull_run(&["--json", "-v"], 0);
    assert_eq!(
        items_line(&third),
        "sync 3: 150 listed items known unchanged, 200 read"
    );
    let summary = third.json();
    let counts = ["added", "changed", "removed"].map(|k| summary[k].as_i64().unwrap());
    assert_eq!(counts, [0, 0, 0]);
}

#[test]
fn a_database_without_digests_reads_every_key_once() {
    let h = Harness::with_keys(150);
    h.pull(&[]);
    // What a database written before schema 7 has: no digest for any key.
    h.conn().execute("DELETE FROM key_digests", []).unwrap();
    let before = h.dump(&["keys", "key_versions"]);
    let upgraded = h.pull_run(&["--json", "-v"], 0);
    assert_eq!(
        items_line(&upgraded),
        "sync 2: 0 listed items known unchanged, 250 read"
    );
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
    assert_eq!(h.count("SELECT count(*) FROM key_digests"), 150);
    let next = h.pull_run(&["--json", "-v"], 0);
    assert_eq!(
        items_line(&next),
        "sync 3: 50 listed items known unchanged, 200 read"
    );
}

#[test]
fn with_store_secrets_a_key_whose_value_is_not_stored_is_read_to_store_it() {
    let h = Harness::with_keys(150);
    h.pull(&[]);
    let opted_in = h.pull_run(&["--json", "-v", "--store-secrets"], 0);
    assert_eq!(
        items_line(&opted_in),
        "sync 2: 0 listed items known unchanged, 250 read"
    );
    assert_eq!(h.count("SELECT count(key) FROM keys"), 150);
    let again = h.pull_run(&["--json", "-v", "--store-secrets"], 0);
    assert_eq!(
        items_line(&again),
        "sync 3: 50 listed items known unchanged, 200 read"
    );
    assert_eq!(h.count("SELECT count(key) FROM keys"), 150);
    let opted_out = h.pull_run(&["--json", "-v"], 0);
    assert_eq!(
        items_line(&opted_out),
        "sync 4: 50 listed items known unchanged, 200 read"
    );
    assert_eq!(h.count("SELECT count(key) FROM keys"), 0);
}
