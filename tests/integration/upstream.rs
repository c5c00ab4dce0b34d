//! The upstream cannot make the record untrue: paging that trusts no single number, bounded
//! bodies, account rejections, gateway upgrades, exact unknown values, retries that fit the
//! error, and HTTPS with a private CA. Servers that lie come from the fake's switches; the
//! gateway's own bytes come from tests/fixtures/gateway.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keysync::testing::{Drift, FakeAccount, Verbatim};
use pretty_assertions::assert_eq;
use rusqlite::types::Value;
use serde_json::json;

use crate::common::{Harness, Run, TOKEN, int, run, text};

/// A successful pull's `--json` summary as (status, keys, added, changed, removed, pages).
fn summary_of(output: &Run) -> (String, i64, i64, i64, i64, i64) {
    let s = output.json();
    let n = |k: &str| s[k].as_i64().unwrap();
    let status = s["status"].as_str().unwrap().to_string();
    (
        status,
        n("keys"),
        n("added"),
        n("changed"),
        n("removed"),
        n("pages"),
    )
}

/// The page numbers requested, in order (the read of `/api/status` is no page).
fn pages_requested(h: &Harness) -> Vec<u32> {
    h.server
        .account()
        .requests()
        .iter()
        .filter(|r| r.path_and_query != "/api/status")
        .map(|r| {
            let query = &r.path_and_query;
            let start = query.find("p=").unwrap() + 2;
            let end = query[start..].find('&').map_or(query.len(), |i| start + i);
            query[start..end].parse().unwrap()
        })
        .collect()
}

fn live_keys(h: &Harness) -> i64 {
    h.count("SELECT count(*) FROM keys WHERE removed_sync IS NULL")
}

// 1. Paging that trusts no single number ------------------------------------------------------

#[test]
fn a_total_too_low_never_ends_the_listing_nor_removes_keys() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    h.server.account().faults.total = Some(100);
    h.server.account().requests_clear();
    let output = h.pull_run(&["--json", "--concurrency", "1"], 0);
    assert_eq!(summary_of(&output), ("partial".into(), 250, 0, 0, 0, 3));
    assert!(
        output
            .stderr
            .contains("250 keys were listed but the server's total says 100"),
        "{}",
        output.stderr
    );
    assert_eq!(live_keys(&h), 250);
    // Each pass: page 1, page 2 (the page `total` said would be the last) was full, so page 3,
    // short, ended it; then page 1 again. Three passes.
    assert_eq!(pages_requested(&h), [1, 2, 3, 1].repeat(3));
}

#[test]
fn a_total_too_high_costs_at_most_the_concurrency_beyond_the_short_page() {
    let h = Harness::with_keys(250);
    h.server.account().faults.total = Some(1_000_000_000);
    let output = h.pull_run(&["--json", "--concurrency", "4"], 0);
    assert_eq!(summary_of(&output), ("partial".into(), 250, 250, 0, 0, 3));
    assert!(output.stderr.contains("the server's total says 1000000000"));
    let pages = pages_requested(&h);
    assert!(pages.len() <= 3 * (3 + 4), "{pages:?}");
    assert!(pages.iter().all(|p| *p <= 3 + 4), "{pages:?}");
    assert_eq!(
        h.rows("SELECT status FROM syncs"),
        vec![vec![text("partial")]]
    );
}

#[test]
fn a_total_that_makes_a_full_page_1_the_last_is_not_believed() {
    // A failed COUNT upstream answers `total: 0`; 50 and 99 also make page 1 the last.
    for total in [0, 50, 99] {
        let h = Harness::with_keys(250);
        h.server.account().faults.total = Some(total);
        let output = h.pull_run(&["--json", "--concurrency", "1"], 0);
        assert_eq!(
            summary_of(&output),
            ("partial".into(), 250, 250, 0, 0, 3),
            "total {total}"
        );
        assert!(output.stderr.contains(&format!(
            "250 keys were listed but the server's total says {total}"
        )));
        assert_eq!(pages_requested(&h), [1, 2, 3, 1].repeat(3), "total {total}");
    }
}

#[test]
fn a_total_that_is_not_a_count_is_no_failure_only_no_proof() {
    for total in ["null", "\"250\"", "250.0", "-1"] {
        let h = Harness::with_keys(0);
        let page = |number: u32, ids: std::ops::RangeInclusive<i64>| {
            let items: Vec<String> = ids
                .rev()
                .map(|id| format!(r#"{{"id":{id},"user_id":5678}}"#))
                .collect();
            let body = format!(
                r#"{{"success":true,"message":"","data":{{"page":{number},"page_size":100,"total":{total},"items":[{}]}}}}"#,
                items.join(",")
            );
            Verbatim {
                status: 200,
                headers: vec![],
                body: body.into_bytes(),
            }
        };
        h.server
            .account()
            .faults
            .verbatim
            .insert(1, page(1, 51..=150));
        h.server
            .account()
            .faults
            .verbatim
            .insert(2, page(2, 1..=50));
        let output = h.pull_run(&["--json"], 0);
        assert_eq!(
            summary_of(&output),
            ("partial".into(), 150, 150, 0, 0, 2),
            "total {total}"
        );
        assert!(
            output.stderr.contains("the server sent no usable `total`"),
            "{total}: {}",
            output.stderr
        );
    }
}

#[test]
fn offsets_follow_the_page_size_the_server_echoes() {
    let h = Harness::with_keys(250);
    h.server.account().faults.page_size_cap = Some(20);
    let output = h.pull_run(&["--json"], 0);
    // 12 pages of 20 and a short 13th: consistent, so ok, and exactly the pages needed.
    assert_eq!(summary_of(&output), ("ok".into(), 250, 250, 0, 0, 13));
    let mut pages = pages_requested(&h);
    assert_eq!(pages.pop(), Some(1), "page 1 again at the end");
    pages.sort();
    assert_eq!(pages, (1..=13).collect::<Vec<_>>());
    assert!(
        h.server
            .account()
            .requests()
            .iter()
            .filter(|r| r.path_and_query != "/api/status")
            .all(|r| r.path_and_query.ends_with("&page_size=100")),
        "keysync always asks for 100"
    );
    // A key deleted upstream is removed by the next (consistent) pull.
    h.server.account().remove(17);
    let output = h.pull_run(&["--json"], 0);
    assert_eq!(summary_of(&output), ("ok".into(), 249, 0, 0, 1, 13));
}

#[test]
fn a_smaller_page_size_nobody_echoes_is_learnt_from_page_1() {
    let h = Harness::with_keys(250);
    h.server.account().faults.page_size_cap = Some(20);
    h.server.account().faults.no_page_size = true;
    let output = h.pull_run(&["--json", "--concurrency", "1"], 0);
    // Page 1 held 20 of 250 keys: 20 per page, 13 pages, the last short, and page 1 again.
    assert_eq!(summary_of(&output), ("ok".into(), 250, 250, 0, 0, 13));
    let expected: Vec<u32> = (1..=13).chain([1]).collect();
    assert_eq!(pages_requested(&h), expected);
}

#[test]
fn an_exact_multiple_of_the_page_size_costs_one_empty_page() {
    let h = Harness::with_keys(200);
    let output = h.pull_run(&["--json", "--concurrency", "4"], 0);
    assert_eq!(summary_of(&output), ("ok".into(), 200, 200, 0, 0, 3));
    assert_eq!(pages_requested(&h).len(), 3 + 1);
    let mut pages = pages_requested(&h);
    pages.sort();
    assert_eq!(
        pages,
        [1, 1, 2, 3],
        "pages 1 and 2, the empty page 3, and page 1 again"
    );
}

#[test]
fn a_server_that_ignores_the_page_number_ends_the_pass_inconsistent() {
    let h = Harness::with_keys(250);
    h.server.account().faults.ignore_page = true;
    let output = h.pull_run(&["--json", "--concurrency", "1"], 0);
    assert_eq!(summary_of(&output), ("partial".into(), 100, 100, 0, 0, 2));
    assert!(
        output
            .stderr
            .contains("page 2 listed only keys already seen"),
        "{}",
        output.stderr
    );
    assert_eq!(pages_requested(&h), [1, 2, 1].repeat(3));
}

#[test]
fn page_1_read_again_catches_a_create_and_a_delete_that_cancel_out() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    // After page 1 is served, key 251 appears and key 250 (also on page 1) goes: the counts
    // still add up to 250, only page 1 shows it.
    h.server.account().faults.after_page = Some(Drift {
        page: 1,
        create: 1,
        delete: vec![250],
        every_time: false,
    });
    h.server.account().requests_clear();
    let output = h.pull_run(&["--json", "--concurrency", "1", "-v"], 0);
    assert_eq!(summary_of(&output), ("ok".into(), 250, 1, 0, 1, 3));
    assert!(
        output
            .stderr
            .contains("listing pass 1 cannot be trusted for removals: page 1 changed")
    );
    assert_eq!(pages_requested(&h), [1, 2, 3, 1].repeat(2));
    assert_eq!(
        h.rows("SELECT id, removed_sync FROM keys WHERE id >= 250 ORDER BY id"),
        vec![vec![int(250), int(2)], vec![int(251), Value::Null]]
    );
}

// 2. Bounded responses ------------------------------------------------------------------------

#[test]
fn a_gzip_bomb_fails_its_page_without_being_read_whole() {
    let h = Harness::with_keys(250);
    h.pull(&[]);
    let before = h.dump(&["keys", "key_versions"]);
    h.server.account().faults.gzip_bomb = Some((2, 512 << 20));
    let (output, peak) = pull_with_peak_memory(&h, &[], 4);
    let message = "page 2: the response from 127.0.0.1";
    assert!(output.stderr.contains(message), "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("is larger than 8 MiB after decompression")
    );
    assert_eq!(h.dump(&["keys", "key_versions"]), before);
    let error = h.rows("SELECT status, error FROM syncs WHERE id = 2");
    assert_eq!(error[0][0], text("failed"));
    assert!(matches!(&error[0][1], Value::Text(e) if e.contains("larger than 8 MiB")));
    // The pull stayed far below the 512 MiB the body inflates to.
    assert!(peak < 200 * 1024, "{peak} KiB");
}

#[test]
fn pages_of_many_small_values_stay_within_the_memory_bound() {
    // Ten pages of about 7.9 MB each (just under the 8 MiB limit), every item carrying an
    // array of 39,000 zeros: the shape that costs a parser the most memory per byte.
    let h = Harness::with_keys(1000);
    h.server.account().faults.bloat = Some(39_000);
    let (output, peak) = pull_with_peak_memory(&h, &["--json", "--concurrency", "8"], 0);
    assert_eq!(summary_of(&output), ("ok".into(), 1000, 1000, 0, 0, 11));
    assert_eq!(
        h.count("SELECT count(*) FROM keys WHERE json_array_length(extra, '$.bloat') = 39000"),
        1000,
        "every unknown array kept whole"
    );
    assert!(peak < 200 * 1024, "{peak} KiB");
}

#[test]
fn a_page_of_more_items_than_asked_for_is_refused_unread() {
    let h = Harness::with_keys(0);
    let items: Vec<String> = (1..=101).map(|id| format!(r#"{{"id":{id}}}"#)).collect();
    let body = format!(
        r#"{{"success":true,"data":{{"total":101,"items":[{}]}}}}"#,
        items.join(",")
    );
    h.server.account().faults.verbatim.insert(
        1,
        Verbatim {
            status: 200,
            headers: vec![],
            body: body.into_bytes(),
        },
    );
    let output = h.pull_run(&[], 4);
    assert!(
        output
            .stderr
            .contains("page 1: the page holds 101 items, more than the 100 asked for"),
        "{}",
        output.stderr
    );
}

/// `keysync pull ARGS` with fast retries, expecting exit `code`: what it printed, and the peak
/// resident memory of that process alone, in KiB, as it reports it (`VmHWM`). Not its rusage
/// from `wait4`: a spawned child's `ru_maxrss` starts at the test process's own resident size
/// (vfork shares it until exec, fork copies it), so a test process larger than the bound would
/// fail the test whatever keysync used.
fn pull_with_peak_memory(h: &Harness, args: &[&str], code: i32) -> (Run, i64) {
    let peak_file = h.dir.path().join("peak-memory");
    let output = run(
        h.keysync()
            .env("KEYSYNC_DEBUG_PEAK_MEMORY_FILE", &peak_file)
            .args(["pull", "--backoff-base", "10ms"])
            .args(args),
        code,
    );
    let peak = std::fs::read_to_string(&peak_file).expect("the pull wrote its peak memory");
    eprintln!("the pull peaked at {peak} KiB");
    (output, peak.parse().expect("VmHWM in KiB"))
}

// 3. Account rejections are auth failures -----------------------------------------------------

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gateway")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture's answer as the manifest records it: status, headers and exact body.
fn recorded(name: &str) -> Verbatim {
    let manifest: serde_json::Value =
        serde_json::from_slice(&fixture("manifest.json")).expect("the manifest is JSON");
    let entry = &manifest[name];
    let headers = entry["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Verbatim {
        status: entry["status"].as_u64().expect("a status") as u16,
        headers,
        body: fixture(name),
    }
}

#[test]
fn every_recorded_account_rejection_exits_3_after_one_request() {
    let rejections = [
        "pre_err_bad_token.json",
        "pre_err_bad_token_zh.json",
        "pre_err_user_banned.json",
        "pre_err_user_banned_zh.json",
        "pre_err_no_authorization.json",
        "pre_err_missing_new_api_user.json",
        "pre_err_new_api_user_mismatch.json",
        "head_err_bad_token.json",
        "head_err_user_banned.json",
    ];
    for name in rejections {
        let h = Harness::with_keys(5);
        h.server.account().faults.verbatim.insert(1, recorded(name));
        let output = h.pull_run(&[], 3);
        assert!(
            output.stderr.contains("the API rejected the credentials"),
            "{name}"
        );
        assert_eq!(h.server.account().requests().len(), 1, "{name}");
        assert_eq!(h.count("SELECT count(*) FROM keys"), 0, "{name}");
    }
}

#[test]
fn server_failures_are_exit_4_and_only_5xx_is_retried() {
    let cases = [
        // AUTH_INTERNAL_ERROR with HTTP 500: a server failure, retried, then exit 4.
        (
            "head_err_db.json",
            3,
            "HTTP 500 Internal Server Error: Database error, please contact the administrator \
             [AUTH_INTERNAL_ERROR]; gave up after 3 attempts",
        ),
        // success:false at HTTP 200 without an auth message: exit 4 at once.
        (
            "err_handler_failure.json",
            1,
            "the API answered success:false: Error 1040: Too many connections",
        ),
    ];
    for (name, requests, message) in cases {
        let h = Harness::with_keys(5);
        h.server.account().faults.verbatim.insert(1, recorded(name));
        let output = h.pull_run(&["--retries", "2"], 4);
        assert!(output.stderr.contains(message), "{name}: {}", output.stderr);
        assert_eq!(h.server.account().requests().len(), requests, "{name}");
    }
}

#[test]
fn a_banned_account_ends_pull_every() {
    let h = Harness::with_keys(5);
    h.pull(&[]);
    h.server
        .account()
        .faults
        .verbatim
        .insert(1, recorded("pre_err_user_banned.json"));
    let output = h.run(&["pull", "--every", "1s", "--backoff-base", "10ms"], 3);
    assert!(output.stderr.contains("User has been banned"));
    // The first pull: page 1, page 1 again and /api/status; the banned one: page 1.
    assert_eq!(h.server.account().requests().len(), 3 + 1);
}

#[test]
fn an_upstream_message_that_quotes_the_token_is_redacted() {
    let h = Harness::with_keys(5);
    let body = format!(r#"{{"success":false,"message":"bad handler for {TOKEN} today"}}"#);
    h.server.account().faults.verbatim.insert(
        1,
        Verbatim {
            status: 200,
            headers: vec![],
            body: body.into_bytes(),
        },
    );
    let output = h.pull_run(&["-vvv"], 4);
    assert!(
        output.stderr.contains("bad handler for *** today"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains(TOKEN));
    assert_eq!(
        h.rows("SELECT error FROM syncs"),
        vec![vec![text(
            "page 1: the API answered success:false: bad handler for *** today"
        )]]
    );
}

// 4. A gateway upgrade changes the representation, not the keys --------------------------------

fn serve_recorded(h: &Harness, era: &str) {
    let mut account = h.server.account();
    for page in 1..=3 {
        let name = format!("{era}_list_p{page}.json");
        account.faults.verbatim.insert(page, recorded(&name));
    }
}

#[test]
fn the_gateway_starting_to_mask_keys_changes_nothing() {
    let h = Harness::with_keys(0);
    serve_recorded(&h, "premask");
    let first = h.pull_run(&["--json"], 0);
    assert_eq!(summary_of(&first), ("ok".into(), 103, 103, 0, 0, 2));
    assert_eq!(h.count("SELECT count(key_sha256) FROM keys"), 103);
    let hashes = h.rows("SELECT id, key_hint, key_sha256 FROM keys ORDER BY id");

    // The 2026-08 gateway: masked keys and a new `auto_groups` on every item, `null` but for
    // key 1008's `["default","vip"]`: that one is a real change, nothing else is.
    serve_recorded(&h, "head");
    let second = h.pull_run(&["--json"], 0);
    assert_eq!(summary_of(&second), ("ok".into(), 103, 0, 1, 0, 2));
    assert_eq!(
        h.rows("SELECT key_id, changed FROM key_versions WHERE valid_from_sync = 2"),
        vec![vec![int(1008), text(r#"["extra"]"#)]]
    );
    assert_eq!(
        h.rows("SELECT id, key_hint, key_sha256 FROM keys ORDER BY id"),
        hashes
    );
    assert_eq!(h.count("SELECT count(*) FROM key_versions"), 104);
    let diff = h.run(&["diff", "1", "2", "--format", "csv"], 0).stdout;
    let rows: Vec<&str> = diff.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{diff}");
    assert!(rows[0].starts_with("changed,1008,"), "{diff}");
    let record: Vec<String> = csv::Reader::from_reader(diff.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .next()
        .unwrap();
    assert_eq!(
        record[4..],
        [
            "extra",
            r#"{"DeletedAt":null}"#,
            r#"{"DeletedAt":null,"auto_groups":["default","vip"]}"#
        ],
        "{diff}"
    );
    // The same masked pages again: page 2's three items are known by their digest (page 1 is
    // always read, twice), and nothing changes.
    let third = h.pull_run(&["--json", "-v"], 0);
    assert_eq!(summary_of(&third), ("ok".into(), 103, 0, 0, 0, 2));
    assert!(
        third
            .stderr
            .contains("sync 3: 3 listed items known unchanged, 200 read"),
        "{}",
        third.stderr
    );
    assert_eq!(h.count("SELECT count(*) FROM key_versions"), 104);
}

#[test]
fn a_masked_key_that_differs_from_the_hint_is_a_rotation() {
    let h = Harness::with_keys(0);
    serve_recorded(&h, "premask");
    h.pull(&[]);
    serve_recorded(&h, "head");
    let mut page = recorded("head_list_p1.json");
    let body = String::from_utf8(page.body).unwrap();
    // Key 1121 is the first item; give it another masked value.
    let rotated = body.replacen("\"0iem**********6X5W\"", "\"Zz9Q**********k2Lm\"", 1);
    assert_ne!(rotated, body);
    page.body = rotated.into_bytes();
    h.server.account().faults.verbatim.insert(1, page);
    let output = h.pull_run(&["--json"], 0);
    // Key 1121 rotated; key 1008's new `auto_groups` is the other change.
    assert_eq!(summary_of(&output), ("ok".into(), 103, 0, 2, 0, 2));
    assert_eq!(
        h.rows("SELECT key_hint, key_sha256 FROM keys WHERE id = 1121"),
        vec![vec![text("Zz9Q**********k2Lm"), Value::Null]]
    );
    assert_eq!(
        h.rows("SELECT changed FROM key_versions WHERE key_id = 1121 AND valid_from_sync = 2"),
        vec![vec![text(r#"["key_hint","key_sha256"]"#)]]
    );
}

#[test]
fn a_null_field_appearing_is_no_change_but_a_value_is() {
    let h = Harness::with_keys(120);
    h.pull(&[]);
    h.server
        .account()
        .faults
        .extra_fields
        .insert("auto_groups".into(), json!(null));
    let output = h.pull_run(&["--json"], 0);
    assert_eq!(summary_of(&output), ("ok".into(), 120, 0, 0, 0, 2));
    h.server.account().faults.extra_fields.clear();
    let output = h.pull_run(&["--json"], 0);
    assert_eq!(
        summary_of(&output),
        ("ok".into(), 120, 0, 0, 0, 2),
        "and going again"
    );
    h.server
        .account()
        .faults
        .extra_fields
        .insert("auto_groups".into(), json!(["default"]));
    let output = h.pull_run(&["--json"], 0);
    assert_eq!(summary_of(&output), ("ok".into(), 120, 0, 120, 0, 2));
    assert_eq!(
        h.rows("SELECT DISTINCT changed, extra FROM key_versions WHERE valid_from_sync = 4"),
        vec![vec![
            text(r#"["extra"]"#),
            text(r#"{"auto_groups":["default"]}"#)
        ]]
    );
    let versions = h.run(&["history", "7", "--format", "json"], 0).json();
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
    // Key 7's first version lasts through the null field's coming and going; only the value
    // opens a second one.
    let spans: Vec<[&serde_json::Value; 4]> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| [&v["from_sync"], &v["to_sync"], &v["changed"], &v["extra"]])
        .collect();
    assert_eq!(
        spans,
        [
            [&json!(1), &json!(4), &json!(""), &json!("{}")],
            [
                &json!(4),
                &json!(null),
                &json!("extra"),
                &json!(r#"{"auto_groups":["default"]}"#)
            ],
        ]
    );
}

// 5. Unknown values kept exactly --------------------------------------------------------------

#[test]
fn unknown_numbers_beyond_64_bits_and_f64_are_stored_as_written() {
    let h = Harness::with_keys(0);
    let body = r#"{"success":true,"message":"","data":{"page":1,"page_size":100,"total":1,"items":[
        {"id": 1, "user_id": 5678, "big": 123456789012345678901234567890, "tiny": 1e-400,
         "x": 0.10, "huge": [1E400, {"b": 1, "a": "\u00e9"}]}]}}"#;
    h.server.account().faults.verbatim.insert(
        1,
        Verbatim {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        },
    );
    let output = h.pull_run(&["--json"], 0);
    assert_eq!(summary_of(&output), ("ok".into(), 1, 1, 0, 0, 1));
    // Names sorted, values exactly as written less white space.
    assert_eq!(
        h.rows("SELECT extra FROM keys"),
        vec![vec![text(
            r#"{"big":123456789012345678901234567890,"huge":[1E400,{"b":1,"a":"\u00e9"}],"tiny":1e-400,"x":0.10}"#
        )]]
    );
    let output = h.pull_run(&["--json"], 0);
    assert_eq!(
        summary_of(&output),
        ("ok".into(), 1, 0, 0, 0, 1),
        "unchanged"
    );
    // One digit more in the 30-digit number is a change.
    let changed = body.replace("567890,", "567891,");
    h.server.account().faults.verbatim.insert(
        1,
        Verbatim {
            status: 200,
            headers: vec![],
            body: changed.into_bytes(),
        },
    );
    let output = h.pull_run(&["--json"], 0);
    assert_eq!(summary_of(&output), ("ok".into(), 1, 0, 1, 0, 1));
}

// 6. Retries that fit the error ---------------------------------------------------------------

#[test]
fn retry_after_zero_still_waits_the_base_backoff() {
    let h = Harness::with_keys(3);
    h.server.account().faults.rate_limit_first = 1;
    h.server.account().faults.retry_after = Some(0);
    let output = h.run(&["pull", "-v", "--backoff-base", "250ms"], 0);
    assert!(
        output
            .stderr
            .contains("page 1: HTTP 429 (rate limited), retry 1/8 in 250ms"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_refused_connection_is_retried_three_times_naming_the_host() {
    let h = Harness::with_keys(1);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let log = h
        .pull_run(&["-v", "--base-url", &format!("http://{address}")], 4)
        .stderr;
    assert!(log.contains(&format!("{address} is unreachable")), "{log}");
    assert!(log.contains("retry 3/3"), "{log}");
    assert!(!log.contains("retry 4/"), "{log}");
    assert!(log.contains("gave up after 4 attempts"), "{log}");
    assert!(
        log.contains(&format!("Check that {address} is reachable")),
        "{log}"
    );
}

/// A TLS front for the fake on 127.0.0.1, with a certificate for 127.0.0.1 issued by a fresh
/// test CA; counts the TLS connections it accepts.
struct TlsFront {
    url: String,
    ca_pem: String,
    connections: Arc<AtomicUsize>,
}

impl TlsFront {
    fn start(backend: &str) -> TlsFront {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let backend = backend.trim_start_matches("http://").to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, backend) = (acceptor.clone(), backend.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        TlsFront {
            url,
            ca_pem: ca.pem(),
            connections,
        }
    }
}

#[test]
fn an_untrusted_certificate_fails_at_once_and_a_ca_cert_fixes_it() {
    let h = Harness::with_keys(130);
    let front = TlsFront::start(h.server.url());
    let host = front.url.trim_start_matches("https://").to_string();
    let message = h.pull_run(&["--base-url", &front.url], 4).stderr;
    assert!(
        message.contains(&format!("cannot talk to {host}")),
        "{message}"
    );
    assert!(message.contains("--ca-cert FILE"), "{message}");
    assert_eq!(front.connections.load(Ordering::SeqCst), 1, "never retried");
    assert_eq!(h.server.account().requests().len(), 0);

    let ca = h.dir.path().join("ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    let output = h.pull_run(
        &[
            "--json",
            "--base-url",
            &front.url,
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(summary_of(&output), ("ok".into(), 130, 130, 0, 0, 2));

    // The same CA through SSL_CERT_FILE, and through a profile's ca_cert (relative to the file).
    let output = run(
        h.keysync()
            .env("SSL_CERT_FILE", &ca)
            .args(["pull", "--json", "--base-url", &front.url]),
        0,
    );
    assert_eq!(summary_of(&output), ("ok".into(), 130, 0, 0, 0, 2));
    let config = h.dir.path().join("config.toml");
    std::fs::write(&config, "[profiles.private]\nca_cert = \"ca.pem\"\n").unwrap();
    let output = run(
        h.keysync()
            .args(["--config", config.to_str().unwrap(), "--profile", "private"])
            .args(["pull", "--json", "--base-url", &front.url]),
        0,
    );
    assert_eq!(summary_of(&output), ("ok".into(), 130, 0, 0, 0, 2));
}

#[test]
fn the_wrong_scheme_fails_at_once_saying_which_to_use() {
    let h = Harness::with_keys(1);
    let front = TlsFront::start(h.server.url());
    let plain_as_https = h.server.url().replacen("http://", "https://", 1);
    let output = h.pull_run(&["--base-url", &plain_as_https], 4);
    assert!(output.stderr.contains("use http://"), "{}", output.stderr);
    let tls_as_http = front.url.replacen("https://", "http://", 1);
    let output = h.pull_run(&["--base-url", &tls_as_http], 4);
    assert!(output.stderr.contains("use https://"), "{}", output.stderr);
    assert_eq!(front.connections.load(Ordering::SeqCst), 1, "never retried");
}

#[test]
fn no_ca_certificates_is_exit_4_with_the_remedy() {
    let h = Harness::with_keys(1);
    let empty = h.dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let message = run(
        h.keysync()
            .env("SSL_CERT_FILE", &empty)
            .env("SSL_CERT_DIR", h.dir.path().join("no-such-dir"))
            .args(["pull", "--base-url", "https://127.0.0.1:9"]),
        4,
    )
    .stderr;
    assert!(
        message.contains("cannot set up HTTPS for 127.0.0.1:9"),
        "{message}"
    );
    assert!(
        message.contains("apt-get install ca-certificates"),
        "{message}"
    );
    // A plain-HTTP gateway needs no trust store at all.
    let output = run(
        h.keysync()
            .env("SSL_CERT_FILE", &empty)
            .env("SSL_CERT_DIR", h.dir.path().join("no-such-dir"))
            .args(["pull", "--json"]),
        0,
    );
    assert_eq!(summary_of(&output), ("ok".into(), 1, 1, 0, 0, 1));
}

#[test]
fn a_ca_cert_file_without_certificates_is_a_usage_error() {
    let h = Harness::new(FakeAccount::new(TOKEN));
    let bogus = h.dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let output = h.pull_run(
        &[
            "--base-url",
            "https://127.0.0.1:9",
            "--ca-cert",
            bogus.to_str().unwrap(),
        ],
        2,
    );
    assert!(
        output.stderr.contains("holds no PEM certificate"),
        "{}",
        output.stderr
    );
    // A wrong path shows on a plain-HTTP gateway too, before anyone switches to https.
    let missing = h.dir.path().join("missing.pem");
    let output = h.pull_run(&["--ca-cert", missing.to_str().unwrap()], 2);
    assert!(
        output.stderr.contains("cannot read --ca-cert"),
        "{}",
        output.stderr
    );
}
