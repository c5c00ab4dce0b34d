//! `keysync diff`, `history`, `syncs` and `prune`: the history read back exactly, after real
//! pulls from the fake with known upstream changes and a fixed `--now` per pull.

use keysync::testing::PullLock;
use pretty_assertions::assert_eq;
use serde_json::{Value as Json, json};

use crate::common::{Harness, NOW, run, run_in, table_cells};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Runs a command with `--format json`, expects exit 0, returns the parsed rows.
fn json_rows(h: &Harness, args: &[&str]) -> Vec<Json> {
    let done = h.run(&[args, &["--format", "json"]].concat(), 0);
    serde_json::from_str(&done.stdout).expect("the output is a JSON array")
}

fn diff(h: &Harness, args: &[&str]) -> Vec<Json> {
    json_rows(h, &[&["diff"], args].concat())
}

/// Expects a usage error (exit 2) and returns its message.
fn usage_error(h: &Harness, args: &[&str]) -> String {
    let done = h.run(args, 2);
    assert_eq!(done.stdout, "", "an error prints no rows");
    done.stderr
}

/// A pull whose sync starts (and ends) at `time`.
fn pull_at(h: &Harness, time: i64) {
    h.pull(&["--now", &time.to_string()]);
}

fn hint(h: &Harness, id: i64) -> String {
    h.conn()
        .query_row("SELECT key_hint FROM keys WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .expect("the key is recorded")
}

fn added(h: &Harness, id: i64, name: &str) -> Json {
    json!({"kind": "added", "id": id, "name": name, "hint": hint(h, id),
           "field": null, "old": null, "new": null})
}

fn removed(h: &Harness, id: i64, name: &str) -> Json {
    json!({"kind": "removed", "id": id, "name": name, "hint": hint(h, id),
           "field": null, "old": null, "new": null})
}

fn changed(h: &Harness, id: i64, name: &str, field: &str, old: Json, new: Json) -> Json {
    json!({"kind": "changed", "id": id, "name": name, "hint": hint(h, id),
           "field": field, "old": old, "new": new})
}

/// A diff read backwards: added and removed swap, old and new swap, a row names its key as
/// it was at the (new) later point, and the rows keep the order a diff prints (added, changed,
/// removed; by id within each).
fn mirror(rows: &[Json]) -> Vec<Json> {
    let name_before = |row: &Json| {
        rows.iter()
            .find(|r| r["id"] == row["id"] && r["field"] == "name")
            .map_or(row["name"].clone(), |renamed| renamed["old"].clone())
    };
    let mut mirrored: Vec<Json> = rows
        .iter()
        .map(|row| {
            let mut row = row.clone();
            row["name"] = name_before(&row);
            let kind = match row["kind"].as_str().unwrap() {
                "added" => "removed",
                "removed" => "added",
                other => other,
            };
            row["kind"] = json!(kind);
            let (old, new) = (row["old"].take(), row["new"].take());
            row["old"] = new;
            row["new"] = old;
            row
        })
        .collect();
    let rank = |row: &Json| {
        ["added", "changed", "removed"]
            .iter()
            .position(|k| row["kind"] == *k)
    };
    mirrored.sort_by_key(rank);
    mirrored
}

/// The names in a JSON object, sorted: serde_json, as built here, orders object keys by name.
fn columns(object: &Json) -> Vec<&str> {
    let mut names: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    names
}

/// The state of the account at sync `s`, by the history contract (docs/database.md), for "unchanged" checks.
fn state_at(h: &Harness, sync: i64) -> Vec<Vec<rusqlite::types::Value>> {
    h.rows(&format!(
        "SELECT * FROM key_versions WHERE valid_from_sync <= {sync}
           AND (valid_to_sync IS NULL OR valid_to_sync > {sync}) ORDER BY key_id"
    ))
}

/// Six keys with known names and values; key 5 has no IP allowlist.
fn six_keys() -> Harness {
    let h = Harness::with_keys(6);
    {
        let mut account = h.server.account();
        for id in 1..=6 {
            account.set(id, "name", json!(format!("key-{id}")));
            account.set(id, "status", json!(1));
            account.set(id, "used_quota", json!(100 * id));
            account.set(id, "remain_quota", json!(10_000));
            account.set(id, "accessed_time", json!(NOW - DAY));
            account.set(id, "allow_ips", json!(null));
        }
    }
    h
}

/// Three pulls an hour apart over known changes. Between 1 and 2: key 2 disabled, key 3 used
/// quota, key 1 and key 4 deleted, key 7 created, key 5 gets an empty allowlist, key 6 an
/// unknown field. Between 2 and 3: key 2 enabled again, key 3 renamed, key 4 back unchanged,
/// key 1 back with other quota, key 7 deleted.
fn three_pulls() -> Harness {
    let h = six_keys();
    pull_at(&h, NOW);
    let (key_1, key_4) = {
        let mut account = h.server.account();
        account.set(2, "status", json!(2));
        account.set(3, "used_quota", json!(800));
        account.set(3, "remain_quota", json!(9_500));
        account.set(3, "accessed_time", json!(NOW + 1800));
        let key_1 = account.remove(1).unwrap();
        let key_4 = account.remove(4).unwrap();
        assert_eq!(account.generate(1, 99, NOW), vec![7]);
        account.set(7, "name", json!("key-7"));
        account.set(5, "allow_ips", json!(""));
        account.set(6, "tier", json!("gold"));
        (key_1, key_4)
    };
    pull_at(&h, NOW + HOUR);
    {
        let mut account = h.server.account();
        account.set(2, "status", json!(1));
        account.set(3, "name", json!("key-3 renamed"));
        account.restore(key_4);
        let mut key_1 = key_1;
        key_1.insert("used_quota".into(), json!(150));
        account.restore(key_1);
        account.remove(7);
    }
    pull_at(&h, NOW + 2 * HOUR);
    h
}

#[test]
fn diffs_between_pulls_are_exact_and_compose() {
    let h = three_pulls();
    let one_to_two = vec![
        added(&h, 7, "key-7"),
        changed(&h, 2, "key-2", "status", json!(1), json!(2)),
        changed(
            &h,
            3,
            "key-3",
            "accessed_time",
            json!(NOW - DAY),
            json!(NOW + 1800),
        ),
        changed(&h, 3, "key-3", "remain_quota", json!(10_000), json!(9_500)),
        changed(&h, 3, "key-3", "used_quota", json!(300), json!(800)),
        changed(&h, 5, "key-5", "allow_ips", json!(null), json!("")),
        changed(
            &h,
            6,
            "key-6",
            "extra",
            json!("{}"),
            json!(r#"{"tier":"gold"}"#),
        ),
        removed(&h, 1, "key-1"),
        removed(&h, 4, "key-4"),
    ];
    assert_eq!(diff(&h, &["1", "2"]), one_to_two);
    let two_to_three = vec![
        added(&h, 1, "key-1"),
        added(&h, 4, "key-4"),
        changed(&h, 2, "key-2", "status", json!(2), json!(1)),
        changed(
            &h,
            3,
            "key-3 renamed",
            "name",
            json!("key-3"),
            json!("key-3 renamed"),
        ),
        removed(&h, 7, "key-7"),
    ];
    assert_eq!(diff(&h, &["2", "3"]), two_to_three);
    assert_eq!(
        diff(&h, &[]),
        two_to_three,
        "default: the two latest good syncs"
    );
    assert_eq!(
        diff(&h, &["2"]),
        two_to_three,
        "one point: from there to the latest"
    );

    // A→C is A→B then B→C: key 2 went back, key 4 came back unchanged, key 7 came and went,
    // and key 1 came back with other data, so it shows as changed.
    let one_to_three = vec![
        changed(&h, 1, "key-1", "used_quota", json!(100), json!(150)),
        changed(
            &h,
            3,
            "key-3 renamed",
            "name",
            json!("key-3"),
            json!("key-3 renamed"),
        ),
        changed(
            &h,
            3,
            "key-3 renamed",
            "accessed_time",
            json!(NOW - DAY),
            json!(NOW + 1800),
        ),
        changed(
            &h,
            3,
            "key-3 renamed",
            "remain_quota",
            json!(10_000),
            json!(9_500),
        ),
        changed(&h, 3, "key-3 renamed", "used_quota", json!(300), json!(800)),
        changed(&h, 5, "key-5", "allow_ips", json!(null), json!("")),
        changed(
            &h,
            6,
            "key-6",
            "extra",
            json!("{}"),
            json!(r#"{"tier":"gold"}"#),
        ),
    ];
    assert_eq!(diff(&h, &["1", "3"]), one_to_three);
    // Backwards is the mirror image.
    assert_eq!(diff(&h, &["2", "1"]), mirror(&one_to_two));
    assert_eq!(diff(&h, &["3", "2"]), mirror(&two_to_three));
    assert_eq!(diff(&h, &["3", "1"]), mirror(&one_to_three));
    assert_eq!(diff(&h, &["3", "3"]), Vec::<Json>::new());

    // JSON lines carry the same objects, one per line.
    let lines = h.run(&["diff", "1", "3", "--format", "jsonl"], 0);
    let parsed: Vec<Json> = lines
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, one_to_three);
}

#[test]
fn the_table_names_the_points_and_shows_times_readable() {
    let h = three_pulls();
    let table = h.run(&["diff", "1", "2", "--all"], 0);
    let first_line = table.stdout.lines().next().unwrap();
    assert_eq!(
        first_line,
        "sync 1 (2025-12-19 00:00:00Z) → sync 2 (2025-12-19 01:00:00Z): 1 added, 4 changed, \
         2 removed"
    );
    let accessed = table
        .stdout
        .lines()
        .find(|l| l.contains("accessed_time"))
        .unwrap();
    assert!(
        accessed.contains("2025-12-18 00:00:00Z") && accessed.contains("2025-12-19 00:30:00Z"),
        "{accessed}"
    );
    let key_3_accessed: Vec<Vec<String>> = table_cells(&table.stdout)
        .into_iter()
        .filter(|row| row.contains(&"accessed_time".to_string()))
        .collect();
    assert_eq!(
        key_3_accessed,
        [[
            "changed".to_string(),
            "3".to_string(),
            "key-3".to_string(),
            hint(&h, 3),
            "accessed_time".to_string(),
            "2025-12-18 00:00:00Z".to_string(),
            "2025-12-19 00:30:00Z".to_string(),
        ]]
    );
    let same = h.run(&["diff", "3", "3"], 0);
    assert_eq!(
        same.stdout,
        "sync 3 (2025-12-19 02:00:00Z) → sync 3 (2025-12-19 02:00:00Z): no differences\n"
    );
    // CSV keeps the stored numbers for the tools that read it.
    let csv = h.run(
        &[
            "diff",
            "1",
            "2",
            "--format",
            "csv",
            "--fields",
            "accessed_time",
        ],
        0,
    );
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let kinds: Vec<&str> = records.iter().map(|r| &r[0]).collect();
    assert_eq!(kinds, ["added", "changed", "removed", "removed"]);
    let record = &records[1];
    assert_eq!(&record[4], "accessed_time");
    assert_eq!(&record[5], (NOW - DAY).to_string());
    assert_eq!(&record[6], (NOW + 1800).to_string());
}

#[test]
fn points_can_be_times_and_durations_ago() {
    let h = three_pulls();
    let one_to_two = diff(&h, &["1", "2"]);
    let one_to_three = diff(&h, &["1", "3"]);
    // A time picks the last good sync that started at or before it.
    assert_eq!(diff(&h, &["2025-12-19T00:30:00Z"]), one_to_three);
    assert_eq!(
        diff(&h, &["2025-12-19T00:00:00Z", "2025-12-19T01:59:59Z"]),
        one_to_two
    );
    assert_eq!(
        diff(&h, &["2025-12-19 01:00:00+01:00", "2025-12-19T01:00:00Z"]),
        one_to_two
    );
    // Durations count back from --now (10 minutes after the third pull).
    let now = (NOW + 2 * HOUR + 600).to_string();
    assert_eq!(diff(&h, &["--now", &now, "90m"]), one_to_three);
    assert_eq!(diff(&h, &["--now", &now, "2h", "1h"]), one_to_two);
    assert_eq!(diff(&h, &["--now", &now, "5m"]), Vec::<Json>::new());

    let before = usage_error(&h, &["diff", "2025-12-18T00:00:00Z"]);
    assert_eq!(
        before,
        "keysync: error: no good sync started at or before 2025-12-18 00:00:00Z: the first is \
         sync 1 (2025-12-19 00:00:00Z); see `keysync syncs`\n"
    );
    assert_eq!(
        usage_error(&h, &["diff", "9"]),
        "keysync: error: there is no sync 9: the latest is 3; see `keysync syncs`\n"
    );
    let last_week = usage_error(&h, &["diff", "last week"]);
    assert_eq!(
        last_week.lines().next(),
        Some(
            "keysync: error: invalid value 'last week' for '[FROM]': expected a sync id (see \
             `keysync syncs`), a duration ago (such as 30d), a date (such as 2025-12-19), today, \
             yesterday, or an RFC 3339 time (such as 2025-12-19T08:00:00Z); got \"last week\""
        ),
        "{last_week}"
    );
}

#[test]
fn failed_syncs_are_never_a_point() {
    let h = six_keys();
    pull_at(&h, NOW);
    h.server.account().set(2, "status", json!(2));
    pull_at(&h, NOW + HOUR);
    run(
        h.keysync()
            .env("COMETAPI_ACCESS_TOKEN", "wrong-token")
            .args(["pull", "--now", &(NOW + 2 * HOUR).to_string()]),
        3,
    );

    let disabled = vec![changed(&h, 2, "key-2", "status", json!(1), json!(2))];
    assert_eq!(diff(&h, &[]), disabled, "the failed sync 3 is skipped");
    assert_eq!(
        diff(&h, &["2025-12-19T00:00:00Z", "2025-12-19T02:00:00Z"]),
        disabled,
        "a time at the failed sync means the good one before it"
    );
    let error = usage_error(&h, &["diff", "3"]);
    assert_eq!(
        error,
        "keysync: error: sync 3 ended failed: it recorded no state of the account, so it cannot be \
         a diff point; pick an ok or partial sync from `keysync syncs`\n"
    );

    h.server.account().set(3, "status", json!(2));
    pull_at(&h, NOW + 3 * HOUR);
    assert_eq!(
        diff(&h, &[]),
        vec![changed(&h, 3, "key-3", "status", json!(1), json!(2))],
        "the default pair jumps over the failed sync"
    );

    let log = json_rows(&h, &["syncs"]);
    let summary: Vec<Json> = log
        .iter()
        .map(|s| {
            json!([
                s["id"],
                s["time"],
                s["status"],
                s["keys"],
                s["changed"],
                s["duration"]
            ])
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            json!([4, NOW + 3 * HOUR, "ok", 6, 1, 0]),
            json!([3, NOW + 2 * HOUR, "failed", 0, 0, 0]),
            json!([2, NOW + HOUR, "ok", 6, 1, 0]),
            json!([1, NOW, "ok", 6, 0, 0]),
        ]
    );
    assert_eq!(
        log[1]["error"],
        "the API rejected the credentials (Unauthorized, invalid access token). Check \
         COMETAPI_ACCESS_TOKEN or the --token-file contents (create a token at CometAPI Console \
         → Personal Settings) and that the account is enabled; if your deployment requires it, \
         set --user-id / COMETAPI_USER_ID"
    );
    assert_eq!(log[0]["error"], Json::Null);
    assert_eq!(
        columns(&log[0]),
        [
            "added", "changed", "duration", "error", "id", "keys", "removed", "status", "time"
        ]
    );
    assert_eq!(json_rows(&h, &["syncs", "--limit", "2"]), log[..2].to_vec());
    let table = h.run(&["syncs", "--limit", "1"], 0);
    assert!(
        table.stdout.contains("2025-12-19 03:00:00Z"),
        "{}",
        table.stdout
    );
    assert_eq!(
        table_cells(&table.stdout),
        [
            [
                "id", "time", "status", "keys", "added", "changed", "removed", "duration", "error"
            ],
            [
                "4",
                "2025-12-19 03:00:00Z",
                "ok",
                "6",
                "0",
                "1",
                "0",
                "0s",
                ""
            ],
        ]
    );
}

#[test]
fn exit_code_and_field_selection() {
    let h = six_keys();
    pull_at(&h, NOW);
    pull_at(&h, NOW + HOUR);
    let quiet = h.run(&["diff", "--exit-code"], 0);
    assert_eq!(quiet.stderr, "", "no differences: exit 0, quietly");

    {
        let mut account = h.server.account();
        account.set(1, "accessed_time", json!(NOW + 2000));
        account.set(2, "accessed_time", json!(NOW + 2000));
        account.set(2, "used_quota", json!(999));
    }
    pull_at(&h, NOW + 2 * HOUR);
    // Differences with --exit-code: exit 1, and the rows still print.
    let found = h.run(&["diff", "--exit-code", "--format", "json"], 1);
    let rows: Vec<Json> = serde_json::from_str(&found.stdout).unwrap();
    assert_eq!(
        rows,
        vec![
            changed(
                &h,
                1,
                "key-1",
                "accessed_time",
                json!(NOW - DAY),
                json!(NOW + 2000)
            ),
            changed(
                &h,
                2,
                "key-2",
                "accessed_time",
                json!(NOW - DAY),
                json!(NOW + 2000)
            ),
            changed(&h, 2, "key-2", "used_quota", json!(200), json!(999)),
        ]
    );
    h.run(&["diff"], 0); // without --exit-code: exit 0

    // Ignored fields do not count.
    h.run(
        &[
            "diff",
            "--exit-code",
            "--ignore",
            "accessed_time,used_quota",
        ],
        0,
    );
    assert_eq!(
        diff(&h, &["--ignore", "accessed_time"]),
        vec![changed(
            &h,
            2,
            "key-2",
            "used_quota",
            json!(200),
            json!(999)
        )]
    );
    assert_eq!(
        diff(&h, &["--fields", "used_quota,status"]),
        diff(&h, &["--ignore", "accessed_time"])
    );

    let unknown = usage_error(&h, &["diff", "--ignore", "accessed_time,quota"]);
    assert_eq!(
        unknown.lines().next(),
        Some(
            "keysync: error: invalid value 'quota' for '--ignore <FIELD,...>': unknown field \"quota\"; \
             the fields are: user_id, name, status, created_time, accessed_time, expired_time, \
             remain_quota, used_quota, unlimited_quota, model_limits_enabled, model_limits, \
             allow_ips, group, cross_group_retry, key_hint, key_sha256, extra"
        ),
        "{unknown}"
    );
    let both = usage_error(&h, &["diff", "--fields", "name", "--ignore", "status"]);
    assert_eq!(
        both.lines().next(),
        Some(
            "keysync: error: the argument '--fields <FIELD,...>' cannot be used with '--ignore <FIELD,...>'"
        ),
        "{both}"
    );
}

#[test]
fn history_of_a_key_changed_removed_and_restored() {
    let h = six_keys();
    pull_at(&h, NOW);
    h.server.account().set(3, "status", json!(2));
    pull_at(&h, NOW + HOUR);
    let mut fields = h.server.account().remove(3).unwrap();
    pull_at(&h, NOW + 2 * HOUR);
    fields.insert("status".into(), json!(1));
    fields.insert("used_quota".into(), json!(450));
    h.server.account().restore(fields);
    pull_at(&h, NOW + 3 * HOUR);
    pull_at(&h, NOW + 4 * HOUR);
    h.server.account().set(3, "name", json!("key-3 renamed"));
    pull_at(&h, NOW + 5 * HOUR);

    let version = |from: i64, to: Option<i64>, start: &str, end: Option<&str>, changed: &str| {
        json!({
            "from_sync": from, "from_time": NOW + (from - 1) * HOUR,
            "to_sync": to, "to_time": to.map(|t| NOW + (t - 1) * HOUR),
            "start": start, "end": end, "changed": changed,
        })
    };
    let with = |mut version: Json, name: &str, status: i64, used: i64| {
        let object = version.as_object_mut().unwrap();
        object.insert("name".into(), json!(name));
        object.insert("status".into(), json!(status));
        object.insert("used_quota".into(), json!(used));
        version
    };
    let expected = vec![
        with(
            version(1, Some(2), "added", Some("changed"), ""),
            "key-3",
            1,
            300,
        ),
        with(
            version(2, Some(3), "changed", Some("removed"), "status"),
            "key-3",
            2,
            300,
        ),
        with(
            version(
                4,
                Some(6),
                "restored",
                Some("changed"),
                "status, used_quota",
            ),
            "key-3",
            1,
            450,
        ),
        with(
            version(6, None, "changed", None, "name"),
            "key-3 renamed",
            1,
            450,
        ),
    ];
    let args = ["history", "3", "--fields", "name,status,used_quota"];
    assert_eq!(json_rows(&h, &args), expected);
    assert_eq!(
        json_rows(
            &h,
            &[
                "history",
                "key-3 renamed",
                "--fields",
                "name,status,used_quota"
            ]
        ),
        expected,
        "an exact name finds the key"
    );
    // Every field by default.
    let all = json_rows(&h, &["history", "3"]);
    let mut every_column: Vec<&str> = ["from_sync", "from_time", "to_sync", "to_time"]
        .into_iter()
        .chain(["start", "end", "changed"])
        .chain(keysync::testing::DATA_COLUMNS)
        .collect();
    every_column.sort();
    assert_eq!(columns(&all[0]), every_column);
    assert_eq!(all[3]["extra"], "{}");

    let table = h.run(&["history", "3"], 0);
    assert!(
        table.stdout.contains("2025-12-19 03:00:00Z"),
        "{}",
        table.stdout
    );
    // Each version's start, readable: the second column.
    let from_times: Vec<String> = table_cells(&table.stdout)
        .into_iter()
        .skip(1)
        .map(|row| row[1].clone())
        .collect();
    assert_eq!(
        from_times,
        [
            "2025-12-19 00:00:00Z",
            "2025-12-19 01:00:00Z",
            "2025-12-19 03:00:00Z",
            "2025-12-19 05:00:00Z"
        ]
    );

    // A name two keys share is ambiguous; an unknown key is not found.
    h.server.account().set(5, "name", json!("shared"));
    h.server.account().set(6, "name", json!("shared"));
    pull_at(&h, NOW + 6 * HOUR);
    assert_eq!(
        usage_error(&h, &["history", "shared"]),
        "keysync: error: 2 keys are named \"shared\": 5, 6; pass the id instead\n"
    );
    assert_eq!(
        usage_error(&h, &["history", "nope"]),
        "keysync: error: no key has the id or name \"nope\"; names must match exactly (see the \
         `keys` table)\n"
    );
}

#[test]
fn prune_keeps_every_later_diff_exactly() {
    let h = six_keys();
    // Five daily pulls, something different every day.
    pull_at(&h, NOW);
    let key_4 = {
        let mut account = h.server.account();
        account.set(1, "status", json!(2));
        account.remove(4).unwrap()
    };
    pull_at(&h, NOW + DAY);
    {
        let mut account = h.server.account();
        account.set(2, "used_quota", json!(5_000));
        account.restore(key_4);
    }
    pull_at(&h, NOW + 2 * DAY);
    {
        let mut account = h.server.account();
        account.set(1, "status", json!(1));
        account.generate(2, 11, NOW + 3 * DAY);
    }
    pull_at(&h, NOW + 3 * DAY);
    {
        let mut account = h.server.account();
        account.remove(2);
        account.set(3, "name", json!("renamed"));
    }
    pull_at(&h, NOW + 4 * DAY);

    let pairs: [&[&str]; 5] = [&["3", "5"], &["3", "4"], &["4", "5"], &[], &["3"]];
    let diffs_before: Vec<Vec<Json>> = pairs.iter().map(|p| diff(&h, p)).collect();
    let states_before: Vec<_> = (3..=5).map(|s| state_at(&h, s)).collect();
    let history_before = json_rows(&h, &["history", "1"]);
    // Key 1 has versions from 1, 2 and 4: the one from 1 ended at 2, which is pruned.
    let from_syncs: Vec<&Json> = history_before.iter().map(|v| &v["from_sync"]).collect();
    assert_eq!(from_syncs, [&json!(1), &json!(2), &json!(4)]);

    // Keep 50 hours back from an hour after the last pull: syncs 1 and 2 go.
    let now = (NOW + 4 * DAY + HOUR).to_string();
    let ended = h.count("SELECT count(*) FROM key_versions WHERE valid_to_sync <= 3");
    let before = h.dump(&["syncs", "keys", "key_versions"]);
    let dry = h.run(&["prune", "--keep", "50h", "--dry-run", "--now", &now], 0);
    assert_eq!(
        dry.stdout,
        format!(
            "would delete 2 syncs and {ended} key versions from before sync 3 \
             (2025-12-21 00:00:00Z), the oldest kept (cutoff 2025-12-20 23:00:00Z)\n"
        )
    );
    assert_eq!(
        h.dump(&["syncs", "keys", "key_versions"]),
        before,
        "a dry run changes nothing"
    );

    let pruned = h.run(&["prune", "--keep", "50h", "--now", &now], 0);
    assert_eq!(pruned.stdout, dry.stdout.replace("would delete", "deleted"));
    assert_eq!(h.count("SELECT min(id) FROM syncs"), 3);
    assert_eq!(
        h.count("SELECT count(*) FROM key_versions WHERE valid_to_sync <= 3"),
        0
    );
    assert!(
        h.count("SELECT count(*) FROM key_versions WHERE valid_from_sync < 3") > 0,
        "versions still valid at sync 3 stay, naming pruned syncs"
    );

    let diffs_after: Vec<Vec<Json>> = pairs.iter().map(|p| diff(&h, p)).collect();
    assert_eq!(diffs_after, diffs_before);
    let states_after: Vec<_> = (3..=5).map(|s| state_at(&h, s)).collect();
    assert_eq!(states_after, states_before);
    // Key 1's history loses the version that ended at pruned sync 2, and the start time of
    // the one that began there; nothing else.
    let mut history_expected = history_before[1..].to_vec();
    assert_eq!(history_expected[0]["from_sync"], 2);
    history_expected[0]["from_time"] = Json::Null;
    assert_eq!(json_rows(&h, &["history", "1"]), history_expected);

    // Naming a pruned sync, directly or by time, is a clear usage error.
    assert_eq!(
        usage_error(&h, &["diff", "1", "5"]),
        "keysync: error: sync 1 was pruned: the oldest kept sync is sync 3 \
         (2025-12-21 00:00:00Z); see `keysync syncs`\n"
    );
    assert!(
        usage_error(&h, &["diff", "2025-12-20T12:00:00Z"])
            .contains("the syncs before sync 3 (2025-12-21 00:00:00Z) were pruned")
    );

    // Again: nothing left to prune; --vacuum gives the space back and changes no data.
    let again = h.run(&["prune", "--keep", "50h", "--now", &now, "--vacuum"], 0);
    let lines: Vec<&str> = again.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "nothing to prune: the oldest sync, sync 3 (2025-12-21 00:00:00Z), is kept (cutoff \
         2025-12-20 23:00:00Z)"
    );
    assert!(lines[1].starts_with("vacuumed: "), "{}", again.stdout);
    assert_eq!(
        pairs.iter().map(|p| diff(&h, p)).collect::<Vec<_>>(),
        diffs_before
    );

    // Pulls go on with new ids, never reusing a pruned one.
    pull_at(&h, NOW + 5 * DAY);
    assert_eq!(h.count("SELECT max(id) FROM syncs"), 6);
}

#[test]
fn prune_keeps_the_latest_good_sync_and_takes_the_pull_lock() {
    let h = six_keys();
    pull_at(&h, NOW);
    pull_at(&h, NOW + DAY);
    let now = (NOW + 30 * DAY).to_string();
    let everything = h.run(&["prune", "--keep", "1d", "--now", &now], 0);
    assert!(
        everything
            .stdout
            .starts_with("deleted 1 sync and 0 key versions from before sync 2")
    );
    assert_eq!(
        everything.stdout,
        "deleted 1 sync and 0 key versions from before sync 2 (2025-12-20 00:00:00Z), the \
         oldest kept (cutoff 2026-01-17 00:00:00Z)\n"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM key_versions"),
        6,
        "the current state stays"
    );

    let lock = PullLock::try_acquire(&h.db).unwrap();
    h.run(&["prune", "--keep", "1d"], 5);
    drop(lock);
}

#[test]
fn read_commands_need_a_database_with_history() {
    let h = six_keys();
    for args in [
        &["diff"][..],
        &["syncs"],
        &["history", "1"],
        &["prune", "--keep", "1d"],
    ] {
        let done = h.run(args, 6);
        assert!(
            done.stderr.contains("run `keysync pull` first"),
            "{}",
            done.stderr
        );
        assert_eq!(
            done.stderr,
            format!(
                "keysync: error: no database at {}: run `keysync pull` first (or pass --db \
                 PATH)\n",
                h.db.display()
            ),
            "{args:?}"
        );
    }
    assert!(!h.db.exists(), "no command but pull creates the database");

    pull_at(&h, NOW);
    // Not enough history is a usage error (exit 2), as for `diff 24h`.
    let one = h.run(&["diff"], 2);
    assert!(
        one.stderr.contains("only one good sync so far"),
        "{}",
        one.stderr
    );
    assert_eq!(
        one.stderr,
        "keysync: error: there is only one good sync so far (sync 1 (2025-12-19 00:00:00Z)), so \
         nothing to compare it with: run `keysync pull` again later, or name the points\n"
    );
    assert_eq!(
        diff(&h, &["1"]),
        Vec::<Json>::new(),
        "from the only sync to the latest"
    );
}

#[test]
fn demo_ends_with_the_diff_between_its_pulls() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run_in(dir.path(), &["demo", "--now", "2025-12-19T00:00:00Z"], 0).stdout;
    assert!(
        stdout.contains(
            "\nsync 1 (2025-12-19 00:00:00Z) → sync 2 (2025-12-19 00:00:00Z): 5 added, 16 \
             changed, 3 removed\n"
        ),
        "{stdout}"
    );
}
