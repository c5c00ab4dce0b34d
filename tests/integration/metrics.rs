//! `keysync metrics` and what `pull` does with them: the text read back with an independent
//! parser (openmetrics-parser) and compared with the database and `status --json`, value by
//! value; `promtool check metrics` on it and `promtool check rules` / `test rules` on
//! `contrib/prometheus/keysync.rules.yml`; node_exporter's textfile collector reading the file;
//! hostile key names round-tripped; `--per-key`; the file's atomic write, mode and refusals;
//! `pull --metrics-file` after failed pulls too; and `pull --every --metrics-listen` scraped
//! before and after a pull.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{PrometheusType, PrometheusValue};
use rusqlite::types::Value;
use serde_json::json;

use crate::common::{Harness, NOW, check_exit, files_in, real_tool, run, wait_until, with_input};

/// Every series of one exposition: family → labels → value.
type Series = BTreeMap<String, BTreeMap<BTreeMap<String, String>, i64>>;

/// Parses `text` as Prometheus does, checks that every family is a gauge with a help text
/// and no sample is duplicated (the parser refuses duplicates), and returns its series.
fn parse(text: &str) -> Series {
    let exposition = parse_prometheus(text).unwrap_or_else(|e| panic!("{e:?} in:\n{text}"));
    let mut series = Series::new();
    for (name, family) in &exposition.families {
        assert_eq!(family.family_type, PrometheusType::Gauge, "{name}");
        assert!(!family.help.is_empty(), "{name} has no help");
        let samples = series.entry(name.clone()).or_default();
        for sample in family.iter_samples() {
            let labels = sample.get_labelset().unwrap();
            let labels: BTreeMap<String, String> =
                labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let PrometheusValue::Gauge(value) = &sample.value else {
                panic!("{name}: not a gauge value");
            };
            let value = value.as_i64().expect("an integer value");
            assert!(
                samples.insert(labels, value).is_none(),
                "{name}: a duplicate"
            );
        }
    }
    series
}

/// The one value of a family without labels.
fn single(series: &Series, family: &str) -> i64 {
    let samples = &series[family];
    assert_eq!(samples.len(), 1, "{family}");
    samples[&BTreeMap::new()]
}

/// `(id, name) → value` of a per-key family.
fn per_key(series: &Series, family: &str) -> BTreeMap<i64, (String, i64)> {
    series
        .get(family)
        .map(|samples| {
            samples
                .iter()
                .map(|(labels, value)| {
                    let id = labels["id"].parse().unwrap();
                    (id, (labels["name"].clone(), *value))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `promtool ARGS` with `stdin`, expecting success and no complaint.
fn promtool(args: &[&str], stdin: &str) {
    let Some(promtool) = real_tool("promtool", "prometheus") else {
        return;
    };
    let output = with_input(&promtool, args, stdin);
    let said = format!(
        "promtool {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // A lint problem exits 3 (`check metrics`), a failed rule test 1.
    assert!(output.status.success(), "{said}");
}

/// An account whose keys cover every status, limit and use: generated keys plus a few set
/// by hand, pulled once at [`NOW`].
fn pulled(count: usize) -> Harness {
    let h = Harness::with_keys(count);
    {
        let mut account = h.server.account();
        // Enabled upstream but past its expiry: expired now.
        account.set(1, "status", json!(1));
        account.set(1, "expired_time", json!(NOW - 60));
        // Enabled, limited and out of quota: exhausted now.
        account.set(2, "status", json!(1));
        account.set(2, "unlimited_quota", json!(false));
        account.set(2, "remain_quota", json!(0));
        // Never used.
        account.set(3, "accessed_time", json!(0));
        // Unlimited and overdrawn: still enabled, and no remaining quota shown.
        account.set(4, "status", json!(1));
        account.set(4, "unlimited_quota", json!(true));
        account.set(4, "remain_quota", json!(-5));
        account.set(4, "expired_time", json!(-1));
    }
    h.pull(&["--now", &NOW.to_string()]);
    h
}

fn metrics(h: &Harness, extra: &[&str]) -> String {
    let now = (NOW + 3600).to_string();
    run(h.keysync().args(["--now", &now, "metrics"]).args(extra), 0).stdout
}

fn int_or_none(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

#[test]
fn every_value_is_the_databases_and_status_counts_the_same_keys() {
    let h = pulled(120);
    h.server.account().faults.fail_every = Some(1);
    h.pull_run(&["--retries", "0"], 4);
    let text = metrics(&h, &[]);
    promtool(&["check", "metrics"], &text);
    let series = parse(&text);

    let now = (NOW + 3600).to_string();
    let status = run(h.keysync().args(["--now", &now, "status", "--json"]), 0).json();
    let by_status = &status["keys"]["by_status"];
    let keys = &series["keysync_keys"];
    assert_eq!(keys.len(), 5);
    for status in ["enabled", "disabled", "expired", "exhausted", "unknown"] {
        let shown = by_status.get(status).map_or(0, |n| n.as_i64().unwrap());
        assert_eq!(keys[&labels(&[("status", status)])], shown, "{status}");
    }
    assert!(keys[&labels(&[("status", "expired")])] >= 1);
    assert!(keys[&labels(&[("status", "exhausted")])] >= 1);
    assert_eq!(
        keys.values().sum::<i64>(),
        status["keys"]["live"].as_i64().unwrap()
    );
    assert_eq!(
        single(&series, "keysync_quota_per_unit"),
        status["price"]["quota_per_unit"].as_i64().unwrap()
    );
    assert_eq!(
        single(&series, "keysync_account_used_quota"),
        h.count("SELECT sum(used_quota) FROM keys WHERE removed_sync IS NULL")
    );
    the_syncs_are_the_databases(&h, &series);
    the_keys_are_the_databases(&h, &series, &now);
}

/// `keysync_alerts_firing{rule}`: one series per rule in force (the profile's, with the
/// defaults), each the count of the alarms `check --no-state` prints for that rule.
#[test]
fn alerts_firing_counts_what_check_finds_per_rule_in_force() {
    let h = pulled(120);
    std::fs::write(
        h.dir.path().join("config.toml"),
        "[profiles.default.alerts]\nexpiring = \"3650d\"\nstale = \"10m\"\nunrestricted = [\"any-ip\"]\n",
    )
    .unwrap();
    let config = h.dir.path().join("config.toml");
    let config = config.to_str().unwrap();
    let now = (NOW + 3600).to_string();
    let series = parse(
        &run(
            h.keysync()
                .args(["--config", config, "--now", &now, "metrics"]),
            0,
        )
        .stdout,
    );
    let checked = check_exit(
        h.keysync()
            .args([
                "--config",
                config,
                "--now",
                &now,
                "check",
                "--no-state",
                "--format",
                "json",
            ])
            .output()
            .unwrap(),
        1,
        "keysync check",
    )
    .json();
    let mut found: BTreeMap<String, i64> = BTreeMap::new();
    for alarm in checked.as_array().unwrap() {
        *found
            .entry(alarm["rule"].as_str().unwrap().into())
            .or_default() += 1;
    }
    let firing: BTreeMap<String, i64> = series["keysync_alerts_firing"]
        .iter()
        .map(|(labels, value)| (labels["rule"].clone(), *value))
        .collect();
    let rules = [
        "expiring",
        "low_quota_usd",
        "last_pull_failed",
        "stale",
        "unrestricted",
    ];
    assert_eq!(firing.keys().collect::<Vec<_>>(), {
        let mut sorted = rules.to_vec();
        sorted.sort();
        sorted
    });
    for rule in rules {
        assert_eq!(
            firing[rule],
            found.get(rule).copied().unwrap_or(0),
            "{rule}"
        );
    }
    // The data holds alarms of several rules, and one rule in force with none.
    assert!(firing["expiring"] >= 1 && firing["unrestricted"] >= 1 && firing["stale"] == 1);
    assert_eq!(firing["last_pull_failed"], 0);
}

/// The latest sync (the failed one) and the latest good one, as the `syncs` table has them.
fn the_syncs_are_the_databases(h: &Harness, series: &Series) {
    let last = &h.rows(
        "SELECT started_at, status, finished_at - started_at, requests, rate_limited
         FROM syncs ORDER BY id DESC LIMIT 1",
    )[0];
    assert_eq!(last[1], Value::Text("failed".into()));
    let expected = [
        ("keysync_last_sync_timestamp_seconds", &last[0]),
        ("keysync_last_sync_success", &Value::Integer(0)),
        ("keysync_last_sync_duration_seconds", &last[2]),
        ("keysync_last_sync_requests", &last[3]),
        ("keysync_last_sync_rate_limited", &last[4]),
    ];
    for (family, value) in expected {
        assert_eq!(Some(single(series, family)), int_or_none(value), "{family}");
    }
    assert!(single(series, "keysync_last_sync_requests") >= 1);
    assert_eq!(
        single(series, "keysync_last_good_sync_timestamp_seconds"),
        h.count("SELECT max(started_at) FROM syncs WHERE status IN ('ok', 'partial')")
    );
}

/// Every live key's series, as `keys` and the `key_info` view (at the same `--now`) have it.
fn the_keys_are_the_databases(h: &Harness, series: &Series, now: &str) {
    let info = run(
        h.keysync().args([
            "query",
            "--now",
            now,
            "--format",
            "json",
            "SELECT k.id, k.name, i.effective_status, k.unlimited_quota, k.used_quota,
                    k.remain_quota, k.expired_time, k.accessed_time
             FROM keys AS k JOIN key_info AS i USING (id)
             WHERE k.removed_sync IS NULL ORDER BY k.id",
        ]),
        0,
    )
    .json();
    let rows = info.as_array().unwrap();
    assert_eq!(rows.len(), 120);
    let info_series = &series["keysync_key_info"];
    let (used, remain) = (
        per_key(series, "keysync_key_used_quota"),
        per_key(series, "keysync_key_remain_quota"),
    );
    let expiry = per_key(series, "keysync_key_expiry_timestamp_seconds");
    let last_used = per_key(series, "keysync_key_last_used_timestamp_seconds");
    for row in rows {
        let id = row["id"].as_i64().unwrap();
        let name = row["name"].as_str().unwrap().to_string();
        let unlimited = row["unlimited_quota"] == json!(1);
        let key_labels = labels(&[
            ("id", &id.to_string()),
            ("name", &name),
            ("status", row["effective_status"].as_str().unwrap()),
            ("unlimited", if unlimited { "true" } else { "false" }),
        ]);
        assert_eq!(info_series.get(&key_labels), Some(&1), "{key_labels:?}");
        let named = |n: Option<i64>| n.map(|n| (name.clone(), n));
        assert_eq!(used.get(&id).cloned(), named(row["used_quota"].as_i64()));
        let left = row["remain_quota"].as_i64().filter(|_| !unlimited);
        assert_eq!(remain.get(&id).cloned(), named(left), "{id}");
        let expires = row["expired_time"].as_i64().filter(|t| *t != -1);
        assert_eq!(expiry.get(&id).cloned(), named(expires), "{id}");
        let accessed = row["accessed_time"].as_i64().filter(|t| *t > 0);
        assert_eq!(last_used.get(&id).cloned(), named(accessed), "{id}");
    }
    assert_eq!(info_series.len(), rows.len());
    assert!(remain.len() < rows.len() && expiry.len() < rows.len());
    assert!(!last_used.contains_key(&3));
    assert!(!remain.contains_key(&4) && !expiry.contains_key(&4));
}

/// Names no label may break: quotes, backslashes, line breaks, bidi controls, CJK, and the
/// format's own punctuation.
const HOSTILE: [&str; 6] = [
    "say \"hi\"",
    "C:\\keys\\prod\\",
    "two\nlines\n\nand a tab\t",
    "\u{202e}evil\u{2066}gpt\u{2069}\u{200f}",
    "本番キー 🔑",
    "a},b=\"c\",d{=} 1\n# TYPE x counter",
];

/// A carriage return, which the format leaves as it is (only `\\`, `\"` and `\n` are
/// escapes): Prometheus's own parser (promtool, node_exporter) reads it, but
/// openmetrics-parser takes it for a line end, so it is checked with the Go tools only.
const CARRIAGE_RETURN: &str = "dos\r\nline";

/// Key ids 1 to 6 named [`HOSTILE`], key 7 [`CARRIAGE_RETURN`].
fn hostile() -> Harness {
    let h = Harness::with_keys(8);
    for (id, name) in (1..).zip(HOSTILE).chain([(7, CARRIAGE_RETURN)]) {
        h.server.account().set(id, "name", json!(name));
    }
    h.pull(&[]);
    h
}

/// `text` without the lines of key 7, whose name has a carriage return.
fn without_key_7(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|line| !line.contains("{id=\"7\","))
        .collect()
}

fn names_in(series: &Series) -> BTreeMap<i64, String> {
    per_key(series, "keysync_key_used_quota")
        .into_iter()
        .map(|(id, (name, _))| (id, name))
        .collect()
}

#[test]
fn hostile_names_round_trip_through_a_parser_and_promtool() {
    let h = hostile();
    let text = metrics(&h, &[]);
    promtool(&["check", "metrics"], &text);
    assert!(text.contains("{id=\"7\",name=\"dos\r\\nline\"} "));
    let names = names_in(&parse(&without_key_7(&text)));
    for (id, name) in (1..).zip(HOSTILE) {
        assert_eq!(names[&id], name);
    }
    let stored: Vec<String> = h
        .rows("SELECT name FROM keys WHERE id <> 7 ORDER BY id")
        .into_iter()
        .map(|row| match &row[0] {
            Value::Text(name) => name.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names.into_values().collect::<Vec<_>>(), stored);
}

#[test]
fn per_key_families_stop_above_1000_keys_with_a_comment_unless_always() {
    let h = Harness::with_keys(1001);
    h.pull(&[]);
    let auto = metrics(&h, &[]);
    promtool(&["check", "metrics"], &auto);
    let series = parse(&auto);
    assert!(
        series.keys().all(|f| !f.starts_with("keysync_key_")),
        "{series:?}"
    );
    assert!(auto.contains(
        "\n# 1001 live keys, more than 1000: the per-key families (keysync_key_*) are left \
         out; --per-key always writes them\n"
    ));
    assert_eq!(series["keysync_keys"].values().sum::<i64>(), 1001);

    let always = parse(&metrics(&h, &["--per-key", "always"]));
    assert_eq!(always["keysync_key_info"].len(), 1001);
    assert_eq!(per_key(&always, "keysync_key_used_quota").len(), 1001);

    h.server.account().remove(1001);
    h.pull(&[]);
    let thousand = parse(&metrics(&h, &["--per-key", "auto"]));
    assert_eq!(thousand["keysync_key_info"].len(), 1000);
    let never = metrics(&h, &["--per-key", "never"]);
    assert!(parse(&never).keys().all(|f| !f.starts_with("keysync_key_")));
    assert!(never.contains("\n# --per-key never: the per-key families"));
}

#[test]
fn out_writes_the_same_text_mode_0644_atomically_over_an_earlier_file() {
    let h = pulled(30);
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("keysync.prom");
    std::fs::write(&out, "an earlier file\n").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    let written = run(
        h.keysync()
            .args(["--now", &(NOW + 3600).to_string(), "metrics", "--out"])
            .arg(&out),
        0,
    );
    assert_eq!(written.stdout, "");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, metrics(&h, &[]));
    assert_eq!(
        written.stderr,
        format!("keysync: wrote {} ({} bytes)\n", out.display(), text.len())
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o644);
    assert_eq!(files_in(folder.path()), ["keysync.prom"]);

    // 0644 whatever the umask: node_exporter runs as another user.
    let strict = Command::new("sh")
        .args(["-c", "umask 077 && exec \"$0\" \"$@\""])
        .arg(assert_cmd::cargo::cargo_bin("keysync"))
        .arg("--db")
        .arg(&h.db)
        .args(["-q", "metrics", "--out"])
        .arg(folder.path().join("strict.prom"))
        .output()
        .unwrap();
    check_exit(strict, 0, "umask 077; keysync metrics --out strict.prom");
    let mode = std::fs::metadata(folder.path().join("strict.prom"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);
}

#[test]
fn out_refuses_a_database_its_journal_and_anything_not_a_regular_file() {
    let h = pulled(5);
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    std::fs::copy(&h.db, dir.join("copy.db")).unwrap();
    std::fs::write(dir.join("x.db-wal"), [0x37, 0x7f, 0x06, 0x82, 0, 0, 0, 1]).unwrap();
    let journal = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7, 0, 0, 0, 1];
    std::fs::write(dir.join("x.db-journal"), journal).unwrap();
    // A WAL index begins with its version, 3007000, in the machine's byte order.
    std::fs::write(
        dir.join("x.db-shm"),
        [3_007_000u32.to_ne_bytes(), [0; 4]].concat(),
    )
    .unwrap();
    std::fs::create_dir(dir.join("folder")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a path we own, as a C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink(&h.db, dir.join("link.prom")).unwrap();
    let before = files_in(dir);
    let refusals = [
        (
            h.db.clone(),
            "it is an SQLite database; a metrics file never replaces a database",
        ),
        (dir.join("copy.db"), "it is an SQLite database;"),
        (dir.join("x.db-wal"), "it is an SQLite database;"),
        (dir.join("x.db-journal"), "it is an SQLite database;"),
        (dir.join("x.db-shm"), "it is an SQLite database;"),
        (dir.join("folder"), "it is a directory; give a file path"),
        (
            dir.join("fifo"),
            "it is a FIFO (named pipe); only a regular file is ever replaced",
        ),
        (dir.join("link.prom"), "it is a symbolic link to"),
        (PathBuf::from("/dev/null"), "it is a character device;"),
    ];
    let db_bytes = std::fs::read(&h.db).unwrap();
    for (path, why) in refusals {
        let refused = run(h.keysync().args(["metrics", "--out"]).arg(&path), 2);
        assert!(
            refused.stderr.starts_with(&format!(
                "keysync: error: refusing to write --out {}: ",
                path.display()
            )) && refused.stderr.contains(why),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(std::fs::read(&h.db).unwrap(), db_bytes);
    assert_eq!(files_in(dir), before);
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn pull_writes_the_file_after_every_pull_failed_ones_included() {
    let h = Harness::with_keys(12);
    let out = h.dir.path().join("keysync.prom");
    let path = out.to_str().unwrap();
    h.pull_run(&["--metrics-file", path], 0);
    let first = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(single(&first, "keysync_last_sync_success"), 1);
    assert_eq!(first["keysync_key_info"].len(), 12);

    h.server.account().faults.fail_every = Some(1);
    h.pull_run(&["--metrics-file", path, "--retries", "0"], 4);
    let failed = parse(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(single(&failed, "keysync_last_sync_success"), 0);
    assert_eq!(
        single(&failed, "keysync_last_good_sync_timestamp_seconds"),
        single(&first, "keysync_last_sync_timestamp_seconds")
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o644);

    // A path that must not take the metrics fails before any pull.
    let syncs = h.count("SELECT count(*) FROM syncs");
    let refused = h.pull_run(&["--metrics-file", h.db.to_str().unwrap()], 2);
    assert!(
        refused.stderr.contains("refusing to write --metrics-file"),
        "{}",
        refused.stderr
    );
    assert_eq!(h.count("SELECT count(*) FROM syncs"), syncs);
}

#[test]
fn the_profiles_metrics_file_is_relative_to_the_config_file() {
    let h = Harness::with_keys(3);
    let config = h.dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[profiles.default]\nmetrics_file = \"out/keysync.prom\"\n",
    )
    .unwrap();
    std::fs::create_dir(h.dir.path().join("out")).unwrap();
    h.pull_run(&["--config", config.to_str().unwrap()], 0);
    let text = std::fs::read_to_string(h.dir.path().join("out/keysync.prom")).unwrap();
    assert_eq!(parse(&text)["keysync_key_info"].len(), 3);
}

/// `GET path` on `addr`: the status code, the `Content-Type` and the body (see [`request`]).
fn get(addr: &str, path: &str) -> (u16, String, String) {
    request(addr, "GET", path)
}

/// `METHOD path` on `addr`, over HTTP/1.0 so that the body comes whole, never in chunks.
fn request(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let code = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(": ")?;
            name.eq_ignore_ascii_case("content-type").then_some(value)
        })
        .unwrap_or_default()
        .to_string();
    (code, content_type, body.to_string())
}

fn terminate(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
}

#[test]
fn the_endpoint_serves_the_latest_pulls_metrics_during_pull_every() {
    let h = Harness::with_keys(20);
    // Killed if the test fails half way, so that no schedule outlives it.
    let mut child =
        KillOnDrop(h.spawn(&["pull", "--every", "1s", "--metrics-listen", "127.0.0.1:0"]));
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("keysync: serving metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics\n"))
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    // Before the first pull there is no database, and nothing to serve.
    let used = |text: &str| match text {
        "" => None,
        text => per_key(&parse(text), "keysync_key_used_quota")
            .get(&1)
            .map(|v| v.1),
    };
    wait_until("the first pull's metrics", || {
        used(&get(&addr, "/metrics").2).is_some()
    });
    let (code, content_type, body) = get(&addr, "/metrics");
    assert_eq!(
        (code, content_type.as_str()),
        (200, "text/plain; version=0.0.4")
    );
    let before = used(&body).unwrap();
    promtool(&["check", "metrics"], &body);
    assert_eq!(get(&addr, "/").0, 404);
    assert_eq!(get(&addr, "/metrics/x").0, 404);
    assert_eq!(request(&addr, "POST", "/metrics").0, 405);
    let head = request(&addr, "HEAD", "/metrics");
    assert_eq!((head.0, head.2.as_str()), (200, ""));

    h.server
        .account()
        .set(1, "used_quota", json!(before + 12_345));
    wait_until("a pull that sees the new use", || {
        used(&get(&addr, "/metrics").2) == Some(before + 12_345)
    });
    terminate(&child.0);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!((status.code(), rest.as_str()), (Some(0), ""));
}

#[test]
fn metrics_listen_needs_every_and_a_free_address() {
    let h = Harness::with_keys(1);
    let refused = h.pull_run(&["--metrics-listen", "127.0.0.1:0"], 2);
    assert!(refused.stderr.contains("--every"), "{}", refused.stderr);
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let refused = h.pull_run(&["--every", "1h", "--metrics-listen", &addr], 2);
    assert!(
        refused.stderr.starts_with(&format!(
            "keysync: error: cannot listen on --metrics-listen {addr}: "
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(
        h.count("SELECT count(*) FROM sqlite_master WHERE name = 'syncs'"),
        0
    );
}

/// A child process killed when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn node_exporters_textfile_collector_reads_the_file() {
    let Some(node_exporter) = real_tool("prometheus-node-exporter", "prometheus-node-exporter")
    else {
        return;
    };
    let h = hostile();
    let textfiles = tempfile::tempdir().unwrap();
    let out = textfiles.path().join("keysync.prom");
    run(h.keysync().args(["metrics", "--out"]).arg(&out), 0);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let exporter = Command::new(node_exporter)
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!(
            "--collector.textfile.directory={}",
            textfiles.path().display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exporter = KillOnDrop(exporter);
    let mut scraped = String::new();
    wait_until("node_exporter to answer", || {
        TcpStream::connect(&addr).is_ok() && {
            scraped = get(&addr, "/metrics").2;
            true
        }
    });
    drop(exporter);
    assert!(
        scraped.contains("\nnode_textfile_scrape_error 0\n"),
        "{scraped}"
    );
    let ours: String = scraped
        .lines()
        .filter(|line| line.contains("keysync_"))
        .map(|line| format!("{line}\n"))
        .collect();
    let written = std::fs::read_to_string(&out).unwrap();
    // node_exporter read key 7's carriage return and wrote it back as it was.
    let line_7 = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with("keysync_key_used_quota{id=\"7\""))
            .map(|line| line.split_once("} ").unwrap().0.to_string())
            .collect()
    };
    assert_eq!(line_7(&ours).len(), 1);
    assert_eq!(line_7(&ours), line_7(&written));
    let series = parse(&without_key_7(&ours));
    assert_eq!(series, parse(&without_key_7(&written)));
    let names = names_in(&series);
    for (id, name) in (1..).zip(HOSTILE) {
        assert_eq!(names[&id], name);
    }
}

#[test]
fn the_shipped_rules_pass_promtool_and_fire_on_keysyncs_series() {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/prometheus/keysync.rules.yml"
    );
    promtool(&["check", "rules", rules], "");
    let tests = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/prometheus/keysync.rules.test.yml"
    );
    promtool(&["test", "rules", tests], "");
}
