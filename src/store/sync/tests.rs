//! The SCD2 write path on an in-memory database: hand-made keys staged and applied as a pull
//! does it, then the exact rows of `keys`, `key_versions` and `syncs`.

use rusqlite::Connection;
use rusqlite::types::Value;
use serde_json::{Value as Json, json};

use super::account::AccountTally;
use super::*;
use crate::api::model::KeyRecord;
use crate::api::model::mask_key;
use crate::api::{GatewayStatus, Listing, Page};
use crate::error::Error;
use crate::store::migrated_in_memory;
use crate::store::quoted_columns;

const NULL: Value = Value::Null;
const KEY_A: &str = "sk-AAAA0123456789abcdefghijklmnopqrstuvwxyz01234567aaaa";
const KEY_B: &str = "sk-BBBB0123456789abcdefghijklmnopqrstuvwxyz01234567bbbb";
/// Each key's id, name, first and removed sync.
const KEYS: &str = "SELECT id, name, first_seen_sync, removed_sync FROM keys ORDER BY id";
/// Each version's key, validity and changed columns.
const VERSIONS: &str = "SELECT key_id, valid_from_sync, valid_to_sync, changed FROM key_versions
                        ORDER BY key_id, valid_from_sync";

fn int(n: i64) -> Value {
    Value::Integer(n)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// Key `id` of user 7 named `key-ID`, as the API lists it, with `fields` on top.
fn key(id: i64, fields: Json) -> KeyRecord {
    let mut item = json!({"id": id, "user_id": 7, "name": format!("key-{id}"), "status": 1});
    let item_fields = item.as_object_mut().unwrap();
    item_fields.extend(fields.as_object().unwrap().clone());
    KeyRecord::from_json(&item).unwrap()
}

fn plain(ids: &[i64]) -> Vec<KeyRecord> {
    ids.iter().map(|id| key(*id, json!({}))).collect()
}

/// One pull at `now`: each pass staged in pages of two, the last pass's `inconsistency`,
/// then applied. Returns the sync id, its status and the counts.
fn pull_passes(
    conn: &mut Connection,
    now: i64,
    passes: &[Vec<KeyRecord>],
    inconsistency: Option<&str>,
    store_secrets: bool,
) -> (i64, SyncStatus, ApplyCounts) {
    let sync = begin_sync(conn, "http://127.0.0.1:1", now).unwrap();
    let mut pages = 0;
    let mut staging = Staging::new(conn, sync, store_secrets).unwrap();
    for (pass, keys) in (1..).zip(passes) {
        let chunks: Vec<&[KeyRecord]> = keys.chunks(2).collect();
        pages = chunks.len() as u32;
        for (number, chunk) in (1..).zip(chunks) {
            staging.stage(pass, page(number, chunk.to_vec())).unwrap();
        }
    }
    let last = passes.last().unwrap();
    let listing = Listing {
        pages,
        keys_seen: last.len(),
        inconsistency: inconsistency.map(str::to_string),
        passes: passes.len() as u32,
        requests: Default::default(),
    };
    let (status, counts) = staging
        .apply(&listing, &GatewayStatus::unread("not read".into()), now)
        .unwrap();
    (sync, status, counts)
}

/// A consistent one-pass pull of `keys` at `now`, secrets not stored.
fn pull(conn: &mut Connection, now: i64, keys: Vec<KeyRecord>) -> ApplyCounts {
    pull_passes(conn, now, &[keys], None, false).2
}

fn page(number: u32, items: Vec<KeyRecord>) -> Page {
    Page::of(number, items)
}

fn counts(added: usize, changed: usize, removed: usize, cleared: usize) -> ApplyCounts {
    ApplyCounts {
        added,
        changed,
        removed,
        secrets_cleared: cleared,
    }
}

fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
    let mut statement = conn.prepare(sql).unwrap();
    let columns = statement.column_count();
    let rows = statement
        .query_map([], |row| (0..columns).map(|i| row.get(i)).collect())
        .unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

/// Every data column of `table`'s row where `filter` holds.
fn data(conn: &Connection, table: &str, filter: &str) -> Vec<Vec<Value>> {
    rows(
        conn,
        &format!("SELECT {} FROM {table} WHERE {filter}", quoted_columns("")),
    )
}

#[test]
fn a_first_listing_adds_every_key_with_an_open_version() {
    let mut conn = migrated_in_memory();
    let listed = vec![
        key(1, json!({"remain_quota": 10})),
        key(2, json!({})),
        key(3, json!({})),
    ];
    let (sync, status, applied) =
        pull_passes(&mut conn, 100, std::slice::from_ref(&listed), None, false);
    assert_eq!(
        (sync, status, applied),
        (1, SyncStatus::Ok, counts(3, 0, 0, 0))
    );
    assert_eq!(
        rows(&conn, KEYS),
        vec![
            vec![int(1), text("key-1"), int(1), NULL],
            vec![int(2), text("key-2"), int(1), NULL],
            vec![int(3), text("key-3"), int(1), NULL],
        ]
    );
    assert_eq!(
        rows(&conn, VERSIONS),
        vec![
            vec![int(1), int(1), NULL, text("[]")],
            vec![int(2), int(1), NULL, text("[]")],
            vec![int(3), int(1), NULL, text("[]")],
        ]
    );
    // Every data column is written as listed, to the key and to its version.
    assert_eq!(
        data(&conn, "keys", "id = 1"),
        vec![listed[0].values.clone()]
    );
    assert_eq!(
        data(&conn, "key_versions", "key_id = 1"),
        vec![listed[0].values.clone()]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT id, started_at, finished_at, status, pages, keys_seen, added, changed,
                    removed, error FROM syncs"
        ),
        vec![vec![
            int(1),
            int(100),
            int(100),
            text("ok"),
            int(2),
            int(3),
            int(3),
            int(0),
            int(0),
            NULL
        ]]
    );
    assert_eq!(
        rows(&conn, "SELECT user_id, bound_sync FROM account"),
        vec![vec![int(7), int(1)]]
    );
}

#[test]
fn a_change_closes_the_version_and_names_the_changed_columns() {
    let mut conn = migrated_in_memory();
    pull(
        &mut conn,
        100,
        vec![key(1, json!({"remain_quota": 10})), key(2, json!({}))],
    );
    let changed = key(1, json!({"name": "renamed", "remain_quota": 5}));
    let applied = pull(&mut conn, 200, vec![changed.clone(), key(2, json!({}))]);
    assert_eq!(applied, counts(0, 1, 0, 0));
    assert_eq!(
        rows(&conn, KEYS),
        vec![
            vec![int(1), text("renamed"), int(1), NULL],
            vec![int(2), text("key-2"), int(1), NULL],
        ]
    );
    assert_eq!(
        rows(&conn, VERSIONS),
        vec![
            vec![int(1), int(1), int(2), text("[]")],
            vec![int(1), int(2), NULL, text(r#"["name","remain_quota"]"#)],
            vec![int(2), int(1), NULL, text("[]")],
        ]
    );
    assert_eq!(data(&conn, "keys", "id = 1"), vec![changed.values.clone()]);
    assert_eq!(
        data(&conn, "key_versions", "key_id = 1 AND valid_from_sync = 2"),
        vec![changed.values]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT added, changed, removed FROM syncs WHERE id = 2"
        ),
        vec![vec![int(0), int(1), int(0)]]
    );
}

#[test]
fn a_key_a_consistent_listing_leaves_out_is_removed() {
    let mut conn = migrated_in_memory();
    pull(&mut conn, 100, plain(&[1, 2]));
    assert_eq!(pull(&mut conn, 200, plain(&[1])), counts(0, 0, 1, 0));
    assert_eq!(
        rows(&conn, KEYS),
        vec![
            vec![int(1), text("key-1"), int(1), NULL],
            vec![int(2), text("key-2"), int(1), int(2)],
        ]
    );
    assert_eq!(
        rows(&conn, VERSIONS),
        vec![
            vec![int(1), int(1), NULL, text("[]")],
            vec![int(2), int(1), int(2), text("[]")],
        ]
    );
    // Gone is gone: a later pull that still does not list it changes nothing more.
    assert_eq!(pull(&mut conn, 300, plain(&[1])), counts(0, 0, 0, 0));
    assert_eq!(rows(&conn, VERSIONS).len(), 2);
}

#[test]
fn a_removed_key_listed_again_is_restored_with_a_new_version() {
    let mut conn = migrated_in_memory();
    pull(&mut conn, 100, plain(&[1, 2, 3]));
    pull(&mut conn, 200, plain(&[1]));
    let again = vec![
        key(1, json!({})),
        key(2, json!({})),
        key(3, json!({"name": "back"})),
    ];
    // A restored key counts as added, whether or not its data changed meanwhile.
    assert_eq!(pull(&mut conn, 300, again), counts(2, 0, 0, 0));
    assert_eq!(
        rows(&conn, KEYS),
        vec![
            vec![int(1), text("key-1"), int(1), NULL],
            vec![int(2), text("key-2"), int(1), NULL],
            vec![int(3), text("back"), int(1), NULL],
        ]
    );
    assert_eq!(
        rows(&conn, VERSIONS),
        vec![
            vec![int(1), int(1), NULL, text("[]")],
            vec![int(2), int(1), int(2), text("[]")],
            vec![int(2), int(3), NULL, text("[]")],
            vec![int(3), int(1), int(2), text("[]")],
            vec![int(3), int(3), NULL, text(r#"["name"]"#)],
        ]
    );
}

#[test]
fn comparisons_are_null_safe() {
    let mut conn = migrated_in_memory();
    let ips = |id: i64, ips: Json| key(id, json!({ "allow_ips": ips }));
    pull(
        &mut conn,
        100,
        vec![
            ips(1, Json::Null),
            ips(2, json!("10.0.0.2")),
            ips(3, Json::Null),
        ],
    );
    let applied = pull(
        &mut conn,
        200,
        vec![
            ips(1, json!("10.0.0.1")),
            ips(2, Json::Null),
            ips(3, Json::Null),
        ],
    );
    assert_eq!(applied, counts(0, 2, 0, 0), "NULL to NULL is no change");
    assert_eq!(
        rows(
            &conn,
            "SELECT key_id, valid_from_sync, valid_to_sync, allow_ips, changed FROM key_versions
             ORDER BY key_id, valid_from_sync"
        ),
        vec![
            vec![int(1), int(1), int(2), NULL, text("[]")],
            vec![
                int(1),
                int(2),
                NULL,
                text("10.0.0.1"),
                text(r#"["allow_ips"]"#)
            ],
            vec![int(2), int(1), int(2), text("10.0.0.2"), text("[]")],
            vec![int(2), int(2), NULL, NULL, text(r#"["allow_ips"]"#)],
            vec![int(3), int(1), NULL, NULL, text("[]")],
        ]
    );
}

#[test]
fn unknown_fields_null_on_one_side_and_absent_on_the_other_are_no_change() {
    let mut conn = migrated_in_memory();
    pull(&mut conn, 100, vec![key(1, json!({"auto_groups": null}))]);
    assert_eq!(pull(&mut conn, 200, plain(&[1])), counts(0, 0, 0, 0));
    let applied = pull(&mut conn, 300, vec![key(1, json!({"auto_groups": ["a"]}))]);
    assert_eq!(applied, counts(0, 1, 0, 0));
    assert_eq!(
        rows(
            &conn,
            "SELECT valid_from_sync, valid_to_sync, extra, changed FROM key_versions"
        ),
        vec![
            vec![int(1), int(3), text(r#"{"auto_groups":null}"#), text("[]")],
            vec![
                int(3),
                NULL,
                text(r#"{"auto_groups":["a"]}"#),
                text(r#"["extra"]"#)
            ],
        ]
    );
}

#[test]
fn an_inconsistent_listing_removes_nothing_and_is_partial() {
    let mut conn = migrated_in_memory();
    pull(&mut conn, 100, plain(&[1, 2]));
    let listed = [vec![key(1, json!({})), key(3, json!({}))], plain(&[1])];
    let (sync, status, applied) =
        pull_passes(&mut conn, 200, &listed, Some("the totals differ"), false);
    // Every pass's observations count, since none proves what is gone.
    assert_eq!(
        (sync, status, applied),
        (2, SyncStatus::Partial, counts(1, 0, 0, 0))
    );
    assert_eq!(
        rows(&conn, KEYS),
        vec![
            vec![int(1), text("key-1"), int(1), NULL],
            vec![int(2), text("key-2"), int(1), NULL],
            vec![int(3), text("key-3"), int(2), NULL],
        ]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT status, keys_seen, added FROM syncs WHERE id = 2"
        ),
        vec![vec![text("partial"), int(1), int(1)]]
    );
}

#[test]
fn only_the_consistent_pass_of_a_listing_counts() {
    let mut conn = migrated_in_memory();
    pull(&mut conn, 100, plain(&[1, 2]));
    // Pass 1 saw key 3 (deleted since) and not key 2; pass 2, consistent, saw 1 and 2 only.
    let listed = [plain(&[1, 3]), plain(&[1, 2])];
    let (_, status, applied) = pull_passes(&mut conn, 200, &listed, None, false);
    assert_eq!((status, applied), (SyncStatus::Ok, counts(0, 0, 0, 0)));
    assert_eq!(
        rows(&conn, KEYS),
        vec![
            vec![int(1), text("key-1"), int(1), NULL],
            vec![int(2), text("key-2"), int(1), NULL],
        ]
    );
}

#[test]
fn a_masked_key_that_matches_the_hint_keeps_its_hash() {
    let mut conn = migrated_in_memory();
    pull(
        &mut conn,
        100,
        vec![key(1, json!({"key": KEY_A})), key(2, json!({"key": KEY_B}))],
    );
    let hashes = "SELECT id, key_hint, key_sha256 FROM keys ORDER BY id";
    let before = rows(&conn, hashes);
    // Key 1 is now shown masked; key 2 was rotated behind the masking (another hint).
    let rotated = "sk-B**********cccc";
    let masked = vec![
        key(1, json!({"key": mask_key(KEY_A)})),
        key(2, json!({"key": rotated})),
    ];
    assert_eq!(pull(&mut conn, 200, masked), counts(0, 1, 0, 0));
    assert_eq!(
        rows(&conn, hashes),
        vec![before[0].clone(), vec![int(2), text(rotated), NULL]]
    );
    assert_eq!(
        rows(&conn, VERSIONS),
        vec![
            vec![int(1), int(1), NULL, text("[]")],
            vec![int(2), int(1), int(2), text("[]")],
            vec![int(2), int(2), NULL, text(r#"["key_hint","key_sha256"]"#)],
        ]
    );
}

#[test]
fn full_key_values_are_kept_only_when_asked_and_only_while_their_hash_is_known() {
    let mut conn = migrated_in_memory();
    let full = vec![key(1, json!({"key": KEY_A})), key(2, json!({"key": KEY_B}))];
    let secrets = "SELECT id, key FROM keys ORDER BY id";
    let (_, _, applied) = pull_passes(&mut conn, 100, std::slice::from_ref(&full), None, true);
    assert_eq!(applied, counts(2, 0, 0, 0));
    assert_eq!(
        rows(&conn, secrets),
        vec![vec![int(1), text(KEY_A)], vec![int(2), text(KEY_B)]]
    );
    // Key 2 rotated behind upstream masking: its stored value is no longer its value.
    let rotated = vec![
        key(1, json!({"key": KEY_A})),
        key(2, json!({"key": "sk-B**********cccc"})),
    ];
    let (_, _, applied) = pull_passes(&mut conn, 200, &[rotated], None, true);
    assert_eq!(applied, counts(0, 1, 0, 1));
    assert_eq!(
        rows(&conn, secrets),
        vec![vec![int(1), text(KEY_A)], vec![int(2), NULL]]
    );
    // A pull without --store-secrets clears every stored value.
    assert_eq!(pull(&mut conn, 300, full), counts(0, 1, 0, 1));
    assert_eq!(
        rows(&conn, secrets),
        vec![vec![int(1), NULL], vec![int(2), NULL]]
    );
}

#[test]
fn page_1_of_another_account_is_refused_before_it_is_staged() {
    let mut conn = migrated_in_memory();
    pull(&mut conn, 100, plain(&[1]));
    let sync = begin_sync(&conn, "http://127.0.0.1:1", 200).unwrap();
    let mut staging = Staging::new(&conn, sync, false).unwrap();
    let other = || vec![key(8, json!({"user_id": 9}))];
    let refused = staging.stage(1, page(1, other()));
    assert!(
        matches!(&refused, Err(Error::Usage(message)) if message ==
            "this database holds the keys of user 7; this token lists user 9: use another \
             --db or --profile"),
        "{refused:?}"
    );
    assert_eq!(
        rows(&conn, "SELECT id FROM temp.staged"),
        Vec::<Vec<Value>>::new()
    );
    // One key of the bound account on page 1 vouches for the page.
    let mixed = vec![key(8, json!({"user_id": 9})), key(1, json!({}))];
    staging.stage(1, page(1, mixed)).unwrap();
    assert_eq!(
        rows(&conn, "SELECT id FROM temp.staged ORDER BY id"),
        vec![vec![int(1)], vec![int(8)]]
    );
}

/// Key `id` with quota use `used`, created at `created`.
fn using(id: i64, created: i64, used: i64) -> KeyRecord {
    key(id, json!({"created_time": created, "used_quota": used}))
}

/// The use ledger, as (key, sync, used, running total).
const LEDGER: &str = "SELECT key_id, sync_id, used, running_total FROM use_ledger
                      ORDER BY key_id, sync_id";

#[test]
fn each_pull_writes_the_use_its_keys_made_since_the_sync_before() {
    let mut conn = migrated_in_memory();
    // The first sync only opens the record.
    pull(&mut conn, 1000, vec![using(1, 0, 100), using(2, 0, 50)]);
    // Key 1 used 50; key 3 was created in between (its 70 counts); key 4 predates sync 1.
    pull(
        &mut conn,
        2000,
        vec![
            using(1, 0, 150),
            using(2, 0, 50),
            using(3, 1500, 70),
            using(4, 10, 500),
        ],
    );
    // Key 1 is refunded 120 (the gateway never resets the counter); key 2 is removed.
    pull(
        &mut conn,
        3000,
        vec![using(1, 0, 30), using(3, 1500, 90), using(4, 10, 520)],
    );
    // Key 2 is back: not live at sync 3 and created long before, so its 80 counts nothing.
    // Key 4 changes only its name: no use.
    let renamed = key(
        4,
        json!({"created_time": 10, "used_quota": 520, "name": "four"}),
    );
    pull(
        &mut conn,
        4000,
        vec![
            using(1, 0, 30),
            using(2, 0, 80),
            using(3, 1500, 90),
            renamed,
        ],
    );
    pull(&mut conn, 5000, vec![using(1, 0, 30), using(2, 0, 95)]);
    let written = rows(&conn, LEDGER);
    assert_eq!(
        written,
        [
            [1, 2, 50, 50],
            [1, 3, -120, -70],
            [2, 5, 15, 15],
            [3, 2, 70, 70],
            [3, 3, 20, 90],
            [4, 3, 20, 20],
        ]
        .map(|row| row.map(int).to_vec())
    );
    assert_eq!(rebuilt_ledger(&conn), written);
}

/// The ledger the migration derives from the versions alone.
fn rebuilt_ledger(conn: &Connection) -> Vec<Vec<Value>> {
    let migration = include_str!("../../../migrations/V8__refunds_and_prices.sql");
    let backfill = &migration[migration.find("INSERT INTO use_ledger").unwrap()..];
    conn.execute_batch(&format!("DELETE FROM use_ledger; {backfill}"))
        .unwrap();
    rows(conn, LEDGER)
}

/// Random histories of six keys over eight pulls: use, refunds, `used_quota` null or absent,
/// keys created between pulls, removed and restored. What each pull writes must be what the
/// migration derives from the versions, and a key listed at every pull must have used, in
/// all, its last `used_quota` minus its first.
#[test]
fn the_ledger_pulls_write_is_the_one_the_migration_derives_on_random_histories() {
    for seed in 0..40 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut conn = migrated_in_memory();
        let created: Vec<i64> = (0..6).map(|_| rng.i64(0..3) * 1000 + 500).collect();
        let mut used = [0i64; 6];
        let (mut first, mut last) = ([None::<i64>; 6], [None::<i64>; 6]);
        let mut always_listed = [true; 6];
        for n in 1..=8 {
            let now = n * 1000;
            let mut keys = Vec::new();
            for id in 0..6 {
                if created[id] > now {
                    continue;
                }
                if rng.u8(0..10) == 0 {
                    always_listed[id] = false;
                    continue;
                }
                used[id] += rng.i64(-40..100);
                let value = match rng.u8(0..8) {
                    0 => json!({"created_time": created[id], "used_quota": null}),
                    1 => json!({"created_time": created[id]}),
                    _ => {
                        first[id].get_or_insert(used[id]);
                        last[id] = Some(used[id]);
                        json!({"created_time": created[id], "used_quota": used[id]})
                    }
                };
                keys.push(key(id as i64 + 1, value));
            }
            keys.reverse();
            pull(&mut conn, now, keys);
        }
        let written = rows(&conn, LEDGER);
        for id in (0..6).filter(|&id| always_listed[id] && created[id] < 1000) {
            let total: i64 = written
                .iter()
                .filter(|row| row[0] == Value::Integer(id as i64 + 1))
                .map(|row| match row[2] {
                    Value::Integer(used) => used,
                    _ => unreachable!(),
                })
                .sum();
            let expected = last[id].zip(first[id]).map_or(0, |(l, f)| l - f);
            assert_eq!(total, expected, "seed {seed}, key {}", id + 1);
        }
        assert_eq!(rebuilt_ledger(&conn), written, "seed {seed}");
    }
}

/// One pull at `now` of hand-made pages: each pass's pages as given (items read, ids known).
fn pull_pages(
    conn: &mut Connection,
    now: i64,
    passes: Vec<Vec<Page>>,
    inconsistency: Option<&str>,
) -> ApplyCounts {
    let sync = begin_sync(conn, "http://127.0.0.1:1", now).unwrap();
    let count = passes.len() as u32;
    let mut staging = Staging::new(conn, sync, false).unwrap();
    let (mut pages, mut keys_seen) = (0, 0);
    for (pass, pass_pages) in (1..).zip(passes) {
        (pages, keys_seen) = (pass_pages.len() as u32, 0);
        for page in pass_pages {
            keys_seen += page.len();
            staging.stage(pass, page).unwrap();
        }
    }
    let listing = Listing {
        pages,
        keys_seen,
        inconsistency: inconsistency.map(str::to_string),
        passes: count,
        requests: Default::default(),
    };
    staging
        .apply(&listing, &GatewayStatus::unread("not read".into()), now)
        .unwrap()
        .1
}

/// Page `number` with `items` read and the ids `known` recognised by their digest.
fn page_known(number: u32, items: Vec<KeyRecord>, known: &[i64]) -> Page {
    Page {
        known: known.to_vec(),
        ..Page::of(number, items)
    }
}

/// Each key's stored digest, as (id, digest) rows.
const DIGESTS: &str = "SELECT key_id, digest FROM key_digests ORDER BY key_id";

fn digest_row(item: &KeyRecord) -> Vec<Value> {
    vec![int(item.id), Value::Blob(item.digest.to_vec())]
}

#[test]
fn every_listed_key_keeps_the_digest_of_its_item_and_a_removed_one_loses_it() {
    let mut conn = migrated_in_memory();
    let first = vec![key(1, json!({})), key(2, json!({})), key(3, json!({}))];
    pull(&mut conn, 100, first.clone());
    assert_eq!(
        rows(&conn, DIGESTS),
        first.iter().map(digest_row).collect::<Vec<_>>()
    );
    // Key 1 renamed, key 2 unchanged but read (page 1), key 3 gone.
    let second = vec![key(1, json!({"name": "renamed"})), first[1].clone()];
    assert_eq!(pull(&mut conn, 200, second.clone()), counts(0, 1, 1, 0));
    assert_eq!(
        rows(&conn, DIGESTS),
        second.iter().map(digest_row).collect::<Vec<_>>()
    );
}

#[test]
fn known_keys_count_as_listed_and_write_nothing() {
    let mut conn = migrated_in_memory();
    pull(&mut conn, 100, plain(&[1, 2, 3, 4]));
    let versions = rows(&conn, VERSIONS);
    // Key 4 changed (read), 1 and 3 known, 2 neither: removed.
    let changed = key(4, json!({"status": 2}));
    let applied = pull_pages(
        &mut conn,
        200,
        vec![vec![
            page(1, vec![changed.clone()]),
            page_known(2, vec![], &[3, 1]),
        ]],
        None,
    );
    assert_eq!(applied, counts(0, 1, 1, 0));
    assert_eq!(
        rows(&conn, KEYS),
        vec![
            vec![int(1), text("key-1"), int(1), NULL],
            vec![int(2), text("key-2"), int(1), int(2)],
            vec![int(3), text("key-3"), int(1), NULL],
            vec![int(4), text("key-4"), int(1), NULL],
        ]
    );
    let mut expected = versions;
    expected[1][2] = int(2);
    expected[3][2] = int(2);
    expected.push(vec![int(4), int(2), NULL, text("[\"status\"]")]);
    assert_eq!(rows(&conn, VERSIONS), expected);
    // A listing of only known keys changes nothing at all.
    let before = (
        rows(&conn, KEYS),
        rows(&conn, VERSIONS),
        rows(&conn, DIGESTS),
    );
    let applied = pull_pages(
        &mut conn,
        300,
        vec![vec![page_known(1, vec![], &[4, 3, 1])]],
        None,
    );
    assert_eq!(applied, counts(0, 0, 0, 0));
    let after = (
        rows(&conn, KEYS),
        rows(&conn, VERSIONS),
        rows(&conn, DIGESTS),
    );
    assert_eq!(after, before);
}

#[test]
fn a_key_listed_changed_then_known_keeps_its_stored_state() {
    let mut conn = migrated_in_memory();
    pull(&mut conn, 100, plain(&[1, 2]));
    // Pass 1 reads key 2 changed; pass 2 knows it as stored: the later observation stands,
    // in a partial listing too (where earlier passes count).
    let changed = key(2, json!({"name": "for a moment"}));
    let passes = vec![
        vec![page(1, vec![changed.clone()]), page_known(2, vec![], &[1])],
        vec![page_known(1, vec![], &[2, 1])],
    ];
    let applied = pull_pages(&mut conn, 200, passes, Some("the totals differed"));
    assert_eq!(applied, counts(0, 0, 0, 0));
    assert_eq!(
        rows(&conn, "SELECT count(*) FROM key_versions"),
        vec![vec![int(2)]]
    );
    assert_eq!(
        rows(&conn, "SELECT name FROM keys WHERE id = 2"),
        vec![vec![text("key-2")]]
    );
}

#[test]
fn the_known_index_holds_the_live_keys_whose_value_need_not_be_read() {
    let mut conn = migrated_in_memory();
    let (a, b) = (
        key(1, json!({"key": KEY_A})),
        key(2, json!({"key": "abcd**********wxyz"})),
    );
    pull(
        &mut conn,
        100,
        vec![a.clone(), b.clone(), key(3, json!({}))],
    );
    pull(&mut conn, 200, vec![a.clone(), b.clone()]);
    let sync = begin_sync(&conn, "http://127.0.0.1:1", 300).unwrap();
    let known = Staging::new(&conn, sync, false).unwrap().known();
    assert_eq!(
        (known.id_of(&a.digest), known.id_of(&b.digest)),
        (Some(1), Some(2))
    );
    assert_eq!(known.len(), 2, "key 3 is removed");
    // With --store-secrets, key 1's full value is not stored yet: its item must be read.
    let known = Staging::new(&conn, sync, true).unwrap().known();
    assert_eq!(
        (known.id_of(&a.digest), known.id_of(&b.digest)),
        (None, Some(2))
    );
    fail_sync(&conn, sync, 300, "not applied").unwrap();
    pull_passes(&mut conn, 400, &[vec![a.clone(), b.clone()]], None, true);
    let sync = begin_sync(&conn, "http://127.0.0.1:1", 500).unwrap();
    let known = Staging::new(&conn, sync, true).unwrap().known();
    assert_eq!(known.id_of(&a.digest), Some(1), "its value is stored now");
}

#[test]
fn the_first_keys_after_an_empty_listing_count_their_use_by_the_rule() {
    let mut conn = migrated_in_memory();
    assert_eq!(pull(&mut conn, 1_000, vec![]), counts(0, 0, 0, 0));
    // Created after sync 1 started: all its use counts; created before: none of it.
    let applied = pull(
        &mut conn,
        2_000,
        vec![using(1, 1_500, 70), using(2, 900, 50)],
    );
    assert_eq!(applied, counts(2, 0, 0, 0));
    assert_eq!(
        rows(&conn, LEDGER),
        vec![vec![int(1), int(2), int(70), int(70)]]
    );
}

/// Key `id` of `user` (none for `None`), otherwise as [`key`] lists it.
fn key_of(id: i64, user: Option<i64>) -> KeyRecord {
    key(id, json!({ "user_id": user }))
}

#[test]
fn the_first_keys_bind_the_account_most_of_them_carry() {
    let bound = |passes: &[Vec<KeyRecord>]| {
        let mut conn = migrated_in_memory();
        pull_passes(&mut conn, 100, passes, None, false);
        rows(&conn, "SELECT user_id, bound_sync FROM account")
    };
    // Counted as staged: most keys, a tie to the smaller user_id, keys without a user ignored.
    let listed = vec![
        key_of(1, Some(9)),
        key_of(2, Some(8)),
        key_of(3, None),
        key_of(4, Some(9)),
        key_of(5, Some(8)),
        key_of(6, None),
        key_of(7, None),
    ];
    assert_eq!(bound(&[listed]), vec![vec![int(8), int(1)]]);
    assert_eq!(bound(&[vec![key_of(1, None)]]), Vec::<Vec<Value>>::new());
    // Keys 1 and 2 seen again as user 9's: the latest observations count, as in `keys`
    // (counted as staged, user 8 would have three).
    let again = vec![
        key_of(1, Some(8)),
        key_of(2, Some(8)),
        key_of(1, Some(9)),
        key_of(2, Some(9)),
        key_of(4, Some(8)),
    ];
    assert_eq!(bound(&[again]), vec![vec![int(9), int(1)]]);
    // Only the consistent pass counts: user 8's keys of the first pass are gone.
    let passes = [
        vec![key_of(5, Some(8)), key_of(4, Some(8)), key_of(3, Some(8))],
        vec![key_of(2, Some(9))],
    ];
    assert_eq!(bound(&passes), vec![vec![int(9), int(1)]]);
}

#[test]
fn page_1_read_again_replaces_its_keys_in_the_account_count() {
    let majority = |pages: Vec<(u32, Vec<KeyRecord>)>, earlier_pass_dropped| {
        let mut tally = AccountTally::new();
        for (number, keys) in pages {
            tally.add(&page(number, keys));
        }
        tally.majority(earlier_pass_dropped)
    };
    // Read again, page 1's keys are user 9's: they count as 9's, not also as 8's.
    let again = || {
        vec![
            (1, vec![key_of(4, Some(8)), key_of(3, Some(8))]),
            (2, vec![key_of(2, Some(8)), key_of(1, None)]),
            (1, vec![key_of(4, Some(9)), key_of(3, Some(9))]),
        ]
    };
    assert_eq!(majority(again(), false), Some(Some(9)));
    assert_eq!(majority(again(), true), None, "an earlier pass left out");
    assert_eq!(
        majority(vec![(1, vec![key_of(1, None)])], false),
        Some(None)
    );
    // Read again with another key on it, or a key listed twice: only a scan can tell.
    let drifted = vec![
        (1, vec![key_of(4, Some(8)), key_of(3, Some(8))]),
        (2, vec![key_of(2, Some(8))]),
        (1, vec![key_of(5, Some(9)), key_of(4, Some(9))]),
    ];
    assert_eq!(majority(drifted, false), None);
    let twice = vec![
        (1, vec![key_of(4, Some(8)), key_of(3, Some(8))]),
        (2, vec![key_of(3, Some(9)), key_of(2, Some(9))]),
    ];
    assert_eq!(majority(twice, false), None);
}

/// A difference of `used_quota` that leaves 64 bits cannot be recorded: the pull fails whole
/// (its keys and ledger as they were) with one line, never a REAL in the ledger.
#[test]
fn use_past_64_bits_fails_the_pull_and_changes_nothing() {
    let mut conn = migrated_in_memory();
    pull(
        &mut conn,
        1000,
        vec![using(1, 0, -9_000_000_000_000_000_000)],
    );
    let sync = begin_sync(&conn, "http://127.0.0.1:1", 2000).unwrap();
    let mut staging = Staging::new(&conn, sync, false).unwrap();
    staging
        .stage(1, page(1, vec![using(1, 0, 9_000_000_000_000_000_000)]))
        .unwrap();
    let listing = Listing {
        pages: 1,
        keys_seen: 1,
        inconsistency: None,
        passes: 1,
        requests: Default::default(),
    };
    let error = staging
        .apply(&listing, &GatewayStatus::unread("not read".into()), 2000)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "cannot record the keys' use: a key's used_quota moved by more than a 64-bit integer \
         holds since the last pull (see `keysync history` for its values); nothing was written"
    );
    assert_eq!(rows(&conn, LEDGER), Vec::<Vec<Value>>::new());
    assert_eq!(
        rows(&conn, "SELECT used_quota FROM keys"),
        [[int(-9_000_000_000_000_000_000)]]
    );
}
