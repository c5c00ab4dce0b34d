//! `keysync query`: ad-hoc SQL in every format, parameters, the read-only guard, the views and
//! `--now`, and each preset report against databases built by real pulls from the fake.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use keysync::testing::{Drift, FakeAccount};
use pretty_assertions::assert_eq;
use serde_json::{Map, Value as Json, json};

use crate::common::{Harness, NOW, TOKEN, run, run_in};

const DAY: i64 = 86_400;

/// A key with every field the API sends, restricted in every way, used a day ago;
/// `overrides` replaces fields.
fn key(name: &str, overrides: Json) -> Map<String, Json> {
    let mut fields = json!({
        "key": format!("{name:x<48}").chars().filter(char::is_ascii_alphanumeric).collect::<String>(),
        "status": 1,
        "name": name,
        "created_time": NOW - 100 * DAY,
        "accessed_time": NOW - DAY,
        "expired_time": NOW + 365 * DAY,
        "remain_quota": 1_000_000,
        "unlimited_quota": false,
        "model_limits_enabled": true,
        "model_limits": "gpt-4o",
        "allow_ips": "203.0.113.7",
        "used_quota": 1_000,
        "group": "",
        "cross_group_retry": false,
    });
    let fields = fields.as_object_mut().unwrap();
    for (field, value) in overrides.as_object().expect("overrides are an object") {
        fields.insert(field.clone(), value.clone());
    }
    fields.clone()
}

/// A fake account holding `keys` as ids 1, 2, 3, ... in order.
fn harness(keys: Vec<Map<String, Json>>) -> Harness {
    let mut account = FakeAccount::new(TOKEN);
    for fields in keys {
        account.insert(fields);
    }
    Harness::new(account)
}

fn at(time: i64) -> [String; 2] {
    ["--now".to_string(), time.to_string()]
}

/// Pulls once at NOW, then removes `removed` upstream and pulls again, so those keys are
/// recorded as removed.
fn pull_then_remove(h: &Harness, removed: &[i64]) {
    h.pull(&["--now", &(NOW - DAY).to_string()]);
    for id in removed {
        h.server.account().remove(*id);
    }
    h.pull(&["--now", &NOW.to_string()]);
}

/// `keysync --now NOW query --format json ARGS`: the rows, parsed.
fn query_json(h: &Harness, args: &[&str]) -> Vec<Json> {
    query_json_at(h, NOW, args)
}

fn query_json_at(h: &Harness, now: i64, args: &[&str]) -> Vec<Json> {
    let output = run(
        h.keysync()
            .args(at(now))
            .args(["query", "--format", "json"])
            .args(args),
        0,
    );
    serde_json::from_str(&output.stdout).expect("--format json is a JSON array")
}

/// Each case: `keysync query ARGS` is a usage error (exit 2) whose first line is exactly
/// `first_line`, and prints no rows.
fn assert_usage_errors(h: &Harness, cases: &[(&[&str], &str)]) {
    for (args, first_line) in cases {
        let stderr = query_fails(h, args, 2);
        assert_eq!(
            stderr.lines().next(),
            Some(*first_line),
            "{args:?}: {stderr}"
        );
    }
}

/// Runs `keysync query ARGS`, expects exit `code`, returns stderr.
fn query_fails(h: &Harness, args: &[&str], code: i32) -> String {
    let output = h.run(&[&["query"], args].concat(), code);
    assert!(output.stdout.is_empty(), "{args:?} printed rows");
    output.stderr
}

fn ids(rows: &[Json]) -> Vec<i64> {
    rows.iter().map(|row| row["id"].as_i64().unwrap()).collect()
}

fn column(rows: &[Json], name: &str) -> Vec<Json> {
    rows.iter().map(|row| row[name].clone()).collect()
}

/// The header row of `keysync --now NOW query --format csv ARGS`: the columns, in order.
fn header(h: &Harness, args: &[&str]) -> Vec<String> {
    let output = run(
        h.keysync()
            .args(at(NOW))
            .args(["query", "--format", "csv"])
            .args(args),
        0,
    );
    let mut reader = csv::Reader::from_reader(output.stdout.as_bytes());
    reader.headers().unwrap().iter().map(String::from).collect()
}

// ---- ad-hoc SQL and formats ----

const TRICKY_SQL: &str = "SELECT id, name, allow_ips, remain_quota, remain_quota / 4.0 AS quarter \
                          FROM keys ORDER BY id";

/// Names and values that break naive CSV, TSV, JSON and Markdown writers.
fn tricky_keys() -> Harness {
    let h = harness(vec![
        key(
            "O'Brien \"test\", a|b",
            json!({"remain_quota": 10, "allow_ips": null}),
        ),
        key(
            "two\nlines\tand a tab",
            json!({"remain_quota": -2, "allow_ips": "203.0.113.7\n2001:db8::/32"}),
        ),
        key(
            "エージェント",
            json!({"remain_quota": 9_007_199_254_740_993_i64, "allow_ips": ""}),
        ),
    ]);
    h.pull(&[]);
    h
}

fn expected_text_rows() -> Vec<Vec<String>> {
    [
        ["1", "O'Brien \"test\", a|b", "", "10", "2.5"],
        [
            "2",
            "two\nlines\tand a tab",
            "203.0.113.7\n2001:db8::/32",
            "-2",
            "-0.5",
        ],
        [
            "3",
            "エージェント",
            "",
            "9007199254740993",
            "2251799813685248.0",
        ],
    ]
    .map(|row| row.map(String::from).to_vec())
    .to_vec()
}

fn parse_delimited(text: &str, delimiter: u8) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|record| record.unwrap().iter().map(String::from).collect())
        .collect()
}

#[test]
fn csv_and_tsv_parse_back_with_a_csv_parser_with_and_without_headers() {
    let h = tricky_keys();
    let header: Vec<String> = ["id", "name", "allow_ips", "remain_quota", "quarter"]
        .map(String::from)
        .to_vec();
    let with_header = [vec![header], expected_text_rows()].concat();
    for (format, delimiter) in [("csv", b','), ("tsv", b'\t')] {
        let text = h.run(&["query", "--format", format, TRICKY_SQL], 0).stdout;
        assert_eq!(parse_delimited(&text, delimiter), with_header, "{format}");
        let text = h
            .run(
                &["query", "--format", format, "--no-headers", TRICKY_SQL],
                0,
            )
            .stdout;
        assert_eq!(
            parse_delimited(&text, delimiter),
            expected_text_rows(),
            "{format}"
        );
    }
}

#[test]
fn json_and_jsonl_keep_native_types_null_and_column_order() {
    let h = tricky_keys();
    let expected = json!([
        {"id": 1, "name": "O'Brien \"test\", a|b", "allow_ips": null, "remain_quota": 10,
         "quarter": 2.5},
        {"id": 2, "name": "two\nlines\tand a tab", "allow_ips": "203.0.113.7\n2001:db8::/32",
         "remain_quota": -2, "quarter": -0.5},
        {"id": 3, "name": "エージェント", "allow_ips": "", "remain_quota": 9_007_199_254_740_993_i64,
         "quarter": 2_251_799_813_685_248.0},
    ]);
    let json: Json =
        serde_json::from_str(&h.run(&["query", "--format", "json", TRICKY_SQL], 0).stdout)
            .expect("one JSON document");
    assert_eq!(json, expected);
    // Integers stay integers, exactly, even past 2^53.
    assert_eq!(
        json[2]["remain_quota"].as_i64(),
        Some(9_007_199_254_740_993)
    );
    assert!(json[0]["quarter"].is_f64());
    // serde_json's map sorts keys; an IndexMap shows the order keysync wrote them in.
    let ordered: Vec<indexmap::IndexMap<String, Json>> =
        serde_json::from_str(&h.run(&["query", "--format", "json", TRICKY_SQL], 0).stdout).unwrap();
    assert_eq!(
        ordered[0].keys().collect::<Vec<_>>(),
        ["id", "name", "allow_ips", "remain_quota", "quarter"]
    );

    let jsonl = h.run(&["query", "--format", "jsonl", TRICKY_SQL], 0).stdout;
    let lines: Vec<Json> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect();
    assert_eq!(Json::Array(lines), expected);
}

#[test]
fn json_of_no_rows_is_an_empty_array() {
    let h = tricky_keys();
    assert_eq!(
        query_json(&h, &["SELECT id FROM keys WHERE id < 0"]),
        Vec::<Json>::new()
    );
    assert_eq!(
        h.run(
            &[
                "query",
                "--format",
                "jsonl",
                "SELECT id FROM keys WHERE id < 0"
            ],
            0
        )
        .stdout,
        ""
    );
}

#[test]
fn markdown_and_table_show_every_value_in_place() {
    let h = tricky_keys();
    let markdown = h
        .run(&["query", "--format", "markdown", TRICKY_SQL], 0)
        .stdout;
    assert_eq!(
        markdown.lines().collect::<Vec<_>>(),
        [
            "| id | name | allow_ips | remain_quota | quarter |",
            "| --- | --- | --- | --- | --- |",
            "| 1 | O'Brien \"test\", a\\|b |  | 10 | 2.5 |",
            "| 2 | two<br>lines\\tand a tab | 203.0.113.7<br>2001:db8::/32 | -2 | -0.5 |",
            "| 3 | エージェント |  | 9007199254740993 | 2251799813685248.0 |",
        ]
    );

    // The table is the default format.
    let table = h
        .run(
            &[
                "query",
                "SELECT id, name, remain_quota FROM keys ORDER BY id",
            ],
            0,
        )
        .stdout;
    let cells = crate::common::table_cells(&table);
    assert_eq!(
        cells,
        [
            ["id", "name", "remain_quota"],
            ["1", "O'Brien \"test\", a|b", "10"],
            ["2", "two", "-2"],
            ["", "lines\\tand a tab", ""],
            ["3", "エージェント", "9007199254740993"],
        ]
    );
    let headless = h
        .run(
            &[
                "query",
                "--no-headers",
                "SELECT id, name FROM keys ORDER BY id",
            ],
            0,
        )
        .stdout;
    assert!(!headless.contains("name"), "{headless}");
    assert_eq!(
        crate::common::table_cells(&headless),
        [
            ["1", "O'Brien \"test\", a|b"],
            ["2", "two"],
            ["", "lines\\tand a tab"],
            ["3", "エージェント"],
        ],
        "{headless}"
    );
}

#[test]
fn sql_comes_from_the_argument_stdin_or_a_file() {
    let h = tricky_keys();
    let sql = "SELECT id FROM keys WHERE remain_quota > 0 ORDER BY id";
    assert_eq!(ids(&query_json(&h, &[sql])), [1, 3]);

    let output = run(
        h.keysync()
            .args(["query", "--format", "json", "-"])
            .write_stdin(sql),
        0,
    );
    let rows: Vec<Json> = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(ids(&rows), [1, 3]);

    let file = h.dir.path().join("positive.sql");
    std::fs::write(&file, format!("-- keys with quota left\n{sql};\n")).unwrap();
    let rows = query_json(&h, &["--file", file.to_str().unwrap()]);
    assert_eq!(ids(&rows), [1, 3]);

    let missing = h.dir.path().join("missing.sql");
    let stderr = query_fails(&h, &["--file", missing.to_str().unwrap()], 2);
    assert!(stderr.contains("cannot read --file"), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "keysync: error: cannot read --file {}: No such file or directory (os error 2); pass \
             a UTF-8 file holding one SQL statement\n",
            missing.display()
        )
    );
}

// ---- parameters ----

#[test]
fn params_bind_integers_reals_and_text_and_are_never_spliced_into_sql() {
    let h = tricky_keys();
    let rows = query_json(
        &h,
        &[
            "--param",
            "id=2",
            "--param",
            "ratio=0.5",
            "--param",
            "code=007",
            "--param",
            "name=O'Brien \"test\", a|b",
            "SELECT :id AS id, typeof(:id) AS id_type, typeof(:ratio) AS ratio_type, \
             :code AS code, typeof(:code) AS code_type, \
             (SELECT id FROM keys WHERE name = :name) AS named_id",
        ],
    );
    assert_eq!(
        rows,
        [
            json!({"id": 2, "id_type": "integer", "ratio_type": "real", "code": "007",
                "code_type": "text", "named_id": 1})
        ]
    );

    // A column converts a parameter to its own type: the text `002` still finds id 2.
    let rows = query_json(
        &h,
        &[
            "--param",
            ":id=002",
            "SELECT id, name FROM keys WHERE id = :id",
        ],
    );
    assert_eq!(ids(&rows), [2]);

    // A value that looks like SQL is only ever a value.
    let rows = query_json(
        &h,
        &[
            "--param",
            "name=x'; DROP TABLE keys; --",
            "SELECT count(*) AS n FROM keys WHERE name = :name",
        ],
    );
    assert_eq!(rows, [json!({"n": 0})]);
    assert_eq!(h.count("SELECT count(*) FROM keys"), 3);

    // The same parameter can appear more than once in the SQL.
    let rows = query_json(
        &h,
        &[
            "--param",
            "n=3",
            "SELECT id FROM keys WHERE id = :n OR id + 2 = :n ORDER BY id",
        ],
    );
    assert_eq!(ids(&rows), [1, 3]);
}

#[test]
fn missing_unused_repeated_and_positional_params_are_usage_errors() {
    let h = tricky_keys();
    let named = "use named parameters such as :id, bound with --param id=VALUE";
    assert_usage_errors(
        &h,
        &[
            (
                &["SELECT * FROM keys WHERE id = :id"],
                "keysync: error: the SQL uses :id: pass --param id=VALUE",
            ),
            (
                &["--param", "idd=1", "SELECT 1 AS one"],
                "keysync: error: --param idd: the SQL has no :idd parameter",
            ),
            (
                &["--param", "id=1", "--param", "id=2", "SELECT :id AS id"],
                "keysync: error: --param id is given twice: give each parameter once",
            ),
            (
                &["SELECT * FROM keys WHERE id = ?"],
                &format!("keysync: error: the SQL has the parameter ?: {named}"),
            ),
            (
                &["SELECT @id"],
                &format!("keysync: error: the SQL has the parameter @id: {named}"),
            ),
            (
                &["--param", "no-equals", "SELECT 1"],
                "keysync: error: invalid value 'no-equals' for '--param <NAME=VALUE>': expected \
                 NAME=VALUE, e.g. id=42, got \"no-equals\"",
            ),
            (
                &["--report", "idle", "--param", "for=1"],
                "keysync: error: the argument '--report <NAME>' cannot be used with '--param <NAME=VALUE>'",
            ),
        ],
    );
}

// ---- the read-only guard ----

#[test]
fn writes_are_refused_with_exit_2_and_the_database_stays_byte_identical() {
    let h = tricky_keys();
    let outside = h.dir.path().join("outside.db");
    let before = std::fs::read(&h.db).unwrap();
    let tables = ["syncs", "keys", "key_versions"];
    let dump = h.dump(&tables);
    let statements = [
        "INSERT INTO syncs (started_at, status, base_url) VALUES (1, 'ok', 'x')".to_string(),
        "UPDATE keys SET name = 'owned'".into(),
        "DELETE FROM key_versions".into(),
        "DROP TABLE keys".into(),
        "CREATE TABLE t (a)".into(),
        "CREATE TEMP TABLE t (a)".into(),
        "CREATE VIEW v AS SELECT 1".into(),
        "REPLACE INTO keys (id, first_seen_sync) VALUES (99, 1)".into(),
        "WITH x AS (SELECT 1) DELETE FROM keys".into(),
        format!("ATTACH '{}' AS outside", outside.display()),
        "DETACH main".into(),
        format!("VACUUM INTO '{}'", outside.display()),
        "VACUUM".into(),
        "REINDEX".into(),
        "ANALYZE".into(),
        "PRAGMA user_version = 7".into(),
        "PRAGMA journal_mode = DELETE".into(),
        "PRAGMA wal_checkpoint(TRUNCATE)".into(),
        "BEGIN IMMEDIATE".into(),
    ];
    let changes = "keysync: error: keysync query only reads the database: this statement would \
                   change it, so it was not run (to try writes, copy the file and open the copy \
                   with sqlite3)\n";
    let attaches = "keysync: error: keysync query only reads the keysync database: ATTACH and \
                    DETACH are refused. Open other files with the sqlite3 shell\n";
    for sql in &statements {
        let stderr = query_fails(&h, &[sql], 2);
        assert!(
            stderr.contains("keysync query only reads"),
            "{sql}: {stderr}"
        );
        let attach = sql.starts_with("ATTACH") || sql.starts_with("DETACH");
        assert_eq!(stderr, if attach { attaches } else { changes }, "{sql}");
    }
    assert!(!outside.exists(), "nothing was written outside either");
    assert_eq!(std::fs::read(&h.db).unwrap(), before);
    assert_eq!(h.dump(&tables), dump);
}

#[test]
fn bad_sql_is_a_usage_error_that_names_the_problem() {
    let h = tricky_keys();
    let does_not_run = "keysync: error: the SQL does not run";
    assert_usage_errors(
        &h,
        &[
            (
                &["SELEC 1"],
                &format!("{does_not_run}: near \"SELEC\": syntax error (at byte 0 of the SQL)"),
            ),
            (
                &["SELECT * FROM nope"],
                &format!("{does_not_run}: no such table: nope"),
            ),
            (
                &["SELECT nope FROM keys"],
                &format!("{does_not_run}: no such column: nope (at byte 7 of the SQL)"),
            ),
            (
                &["SELECT 1; SELECT 2"],
                "keysync: error: the SQL holds more than one statement: keysync query runs one \
                 at a time",
            ),
            (
                &["   "],
                "keysync: error: no SQL given: pass it as an argument, `-` to read stdin, or \
                 --file PATH",
            ),
            (
                &["BEGIN"],
                "keysync: error: this SQL returns no rows: keysync query runs one SELECT (or \
                 WITH, VALUES, or a PRAGMA that reads)",
            ),
        ],
    );
    // A trailing semicolon or comment is still one statement.
    assert_eq!(
        query_json(&h, &["SELECT 1 AS one; -- done"]),
        [json!({"one": 1})]
    );
}

#[test]
fn a_missing_database_is_exit_6_and_is_not_created() {
    let h = Harness::with_keys(1);
    for args in [&["SELECT 1"][..], &["--report", "idle"]] {
        let stderr = query_fails(&h, args, 6);
        assert!(stderr.contains("run `keysync pull` first"), "{stderr}");
        assert_eq!(
            stderr,
            format!(
                "keysync: error: no database at {}: run `keysync pull` first (or pass --db \
                 PATH)\n",
                h.db.display()
            )
        );
    }
    assert!(!h.db.exists());

    // An empty file is not a keysync database either, and stays empty.
    std::fs::write(&h.db, b"").unwrap();
    let stderr = query_fails(&h, &["SELECT 1"], 6);
    assert!(stderr.contains("not a keysync database"), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "keysync: error: {} is not a keysync database (it has no keysync schema): run \
             `keysync pull` first, or pass --db PATH\n",
            h.db.display()
        )
    );
    assert_eq!(std::fs::read(&h.db).unwrap(), b"");
}

#[test]
fn a_closed_pipe_ends_the_output_with_exit_0_and_nothing_on_stderr() {
    let h = tricky_keys();
    // Enough rows to overflow the pipe's buffer many times; the table is built in memory
    // first, so it gets fewer (still far more than a pipe holds).
    for (format, rows) in [("csv", 2_000_000), ("json", 2_000_000), ("table", 20_000)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keysync"))
            .env_clear()
            .env("HOME", h.dir.path())
            .arg("--db")
            .arg(&h.db)
            .args(["query", "--format", format])
            .arg(format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
                  SELECT i, printf('%040d', i) AS padding FROM n"
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is dropped here, like `| head -1` exiting.
        let output = child.wait_with_output().unwrap();
        assert!(!first.is_empty(), "{format}");
        assert_eq!(output.status.code(), Some(0), "{format}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{format}");
    }
}

// ---- views and --now ----

#[test]
fn key_info_adds_iso_times_status_names_and_derived_flags_at_now() {
    let h = harness(vec![
        key("fine", json!({})),
        key("expires-in-2d", json!({"expired_time": NOW + 2 * DAY})),
        key("exhausted", json!({"remain_quota": 0})),
        key(
            "unlimited-zero",
            json!({"unlimited_quota": true, "remain_quota": 0}),
        ),
        key("never", json!({"expired_time": -1, "status": 2})),
        key(
            "never-used",
            json!({"accessed_time": NOW - 100 * DAY, "used_quota": 0}),
        ),
    ]);
    h.pull(&[]);
    let sql = "SELECT id, status_name, is_expired, is_exhausted, is_never_used, is_removed, \
               effective_status, created_iso, expired_iso FROM key_info ORDER BY id";
    let rows = query_json(&h, &[sql]);
    assert_eq!(
        rows,
        [
            json!({"id": 1, "status_name": "enabled", "is_expired": 0, "is_exhausted": 0,
                   "is_never_used": 0, "is_removed": 0, "effective_status": "enabled",
                   "created_iso": "2025-09-10T00:00:00Z", "expired_iso": "2026-12-19T00:00:00Z"}),
            json!({"id": 2, "status_name": "enabled", "is_expired": 0, "is_exhausted": 0,
                   "is_never_used": 0, "is_removed": 0, "effective_status": "enabled",
                   "created_iso": "2025-09-10T00:00:00Z", "expired_iso": "2025-12-21T00:00:00Z"}),
            json!({"id": 3, "status_name": "enabled", "is_expired": 0, "is_exhausted": 1,
                   "is_never_used": 0, "is_removed": 0, "effective_status": "exhausted",
                   "created_iso": "2025-09-10T00:00:00Z", "expired_iso": "2026-12-19T00:00:00Z"}),
            json!({"id": 4, "status_name": "enabled", "is_expired": 0, "is_exhausted": 0,
                   "is_never_used": 0, "is_removed": 0, "effective_status": "enabled",
                   "created_iso": "2025-09-10T00:00:00Z", "expired_iso": "2026-12-19T00:00:00Z"}),
            json!({"id": 5, "status_name": "disabled", "is_expired": 0, "is_exhausted": 0,
                   "is_never_used": 0, "is_removed": 0, "effective_status": "disabled",
                   "created_iso": "2025-09-10T00:00:00Z", "expired_iso": null}),
            json!({"id": 6, "status_name": "enabled", "is_expired": 0, "is_exhausted": 0,
                   "is_never_used": 1, "is_removed": 0, "effective_status": "enabled",
                   "created_iso": "2025-09-10T00:00:00Z", "expired_iso": "2026-12-19T00:00:00Z"}),
        ]
    );

    // Three days later key 2 has expired: --now moves the views' clock.
    let later = query_json_at(
        &h,
        NOW + 3 * DAY,
        &[
            "SELECT id, is_expired, effective_status, (SELECT now FROM clock) AS now \
           FROM key_info WHERE id = 2",
        ],
    );
    assert_eq!(
        later,
        [json!({"id": 2, "is_expired": 1, "effective_status": "expired", "now": NOW + 3 * DAY})]
    );

    // Run as RFC 3339 too, and sync_info renders the sync's --now time.
    let rows = query_json(
        &h,
        &["SELECT id, status, started_iso, (SELECT now FROM clock) AS now FROM sync_info"],
    );
    assert_eq!(rows[0]["status"], "ok");
    assert_eq!(rows[0]["now"], NOW);
    let output = h.run(
        &[
            "--now",
            "2025-12-20T00:00:00Z",
            "query",
            "--format",
            "csv",
            "--no-headers",
            "SELECT now FROM clock",
        ],
        0,
    );
    assert_eq!(output.stdout, "1766188800\n");
}

#[test]
fn the_stored_views_use_sqlites_own_clock_outside_keysync() {
    let h = harness(vec![key(
        "expired-long-ago",
        json!({"expired_time": 1_000_000}),
    )]);
    h.pull(&[]);
    let conn = h.conn();
    let (now, expired, iso): (i64, i64, String) = conn
        .query_row(
            "SELECT (SELECT now FROM clock), is_expired, expired_iso FROM key_info",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    let system_now = chrono::Utc::now().timestamp();
    assert!((now - system_now).abs() < 60, "{now} vs {system_now}");
    assert_eq!((expired, iso.as_str()), (1, "1970-01-12T13:46:40Z"));
}

#[test]
fn a_database_from_before_the_views_gets_them_for_the_query_without_being_changed() {
    let h = tricky_keys();
    {
        let conn = h.conn();
        conn.execute_batch(
            "DROP VIEW key_info; DROP VIEW sync_info; DROP VIEW clock; DROP TABLE account;
             DROP VIEW good_syncs; DROP VIEW key_usage; DROP TABLE use_ledger;
             DROP INDEX syncs_by_start;
             ALTER TABLE syncs DROP COLUMN requests; ALTER TABLE syncs DROP COLUMN rate_limited;
             ALTER TABLE syncs DROP COLUMN quota_per_unit;
             ALTER TABLE syncs DROP COLUMN quota_display_type;
             ALTER TABLE syncs DROP COLUMN usd_exchange_rate;
             ALTER TABLE syncs DROP COLUMN gateway_version;
             DROP TABLE key_digests; DROP INDEX keys_holding_secret;
             DELETE FROM refinery_schema_history WHERE version >= 2;",
        )
        .unwrap();
    }
    let before = std::fs::read(&h.db).unwrap();
    let rows = query_json(
        &h,
        &["SELECT id, status_name, (SELECT now FROM clock) AS now FROM key_info ORDER BY id"],
    );
    assert_eq!(
        column(&rows, "status_name"),
        ["enabled", "enabled", "enabled"]
    );
    assert_eq!(column(&rows, "now"), [NOW, NOW, NOW]);
    assert_eq!(std::fs::read(&h.db).unwrap(), before);
    assert_eq!(
        h.count("SELECT count(*) FROM sqlite_master WHERE type = 'view'"),
        0
    );

    // The next pull migrates the file, stored views included.
    h.pull(&[]);
    assert_eq!(
        h.count("SELECT count(*) FROM sqlite_master WHERE type = 'view'"),
        5
    );
}

// ---- reports ----

#[test]
fn list_reports_shows_each_report_with_its_flags_on_one_line() {
    let h = Harness::with_keys(1);
    let text = h
        .run(&["query", "--list-reports", "--format", "csv"], 0)
        .stdout;
    let records = parse_delimited(&text, b',');
    let rows: Vec<[&str; 2]> = records
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str()])
        .collect();
    assert_eq!(
        rows,
        [
            ["report", "flags"],
            ["expiring-soon", "--within 7d"],
            ["top-consumers", "--limit 10, --since WHEN"],
            ["idle", "--for 30d"],
            ["low-quota", "--below 500000"],
            ["unrestricted", ""],
            ["forecast", "--within 7d, --since 7d"],
        ]
    );
    assert!(records[1..].iter().all(|r| !r[2].is_empty()));
    // It needs no database.
    assert!(!h.db.exists());
}

#[test]
fn report_flags_that_do_not_apply_are_refused() {
    let h = tricky_keys();
    assert_usage_errors(
        &h,
        &[
            (
                &["--report", "idle", "--limit", "3"],
                "keysync: error: --limit does not apply to the idle report; it takes: --for 30d",
            ),
            (
                &["SELECT 1", "--within", "3d"],
                "keysync: error: --within only tunes a preset report: add --report NAME (see \
                 --list-reports)",
            ),
            (
                &["--report", "nope"],
                "keysync: error: invalid value 'nope' for '--report <NAME>'",
            ),
            (
                &["--report", "idle", "--for", "soon"],
                "keysync: error: invalid value 'soon' for '--for <DURATION>': expected a whole \
                 number and a unit of ms, s, m, h, d or w, such as 500ms, 30s, 15m, 12h, 7d or \
                 2w, got \"soon\"",
            ),
        ],
    );
    // clap lists the reports on the next line.
    let stderr = query_fails(&h, &["--report", "nope"], 2);
    assert!(
        stderr.contains(
            "[possible values: expiring-soon, top-consumers, idle, low-quota, unrestricted, \
             forecast]"
        ),
        "{stderr}"
    );
}

#[test]
fn expiring_soon_lists_enabled_keys_expiring_within_the_window_and_flags_expired_ones() {
    let h = harness(vec![
        key("in-3d", json!({"expired_time": NOW + 3 * DAY})),
        key("in-1d", json!({"expired_time": NOW + DAY})),
        key("in-30d", json!({"expired_time": NOW + 30 * DAY})),
        key("never", json!({"expired_time": -1})),
        key("expired-2d-ago", json!({"expired_time": NOW - 2 * DAY})),
        key(
            "disabled-in-1d",
            json!({"expired_time": NOW + DAY, "status": 2}),
        ),
        key("removed-in-2d", json!({"expired_time": NOW + 2 * DAY})),
        key("expires-now", json!({"expired_time": NOW})),
        key("in-exactly-7d", json!({"expired_time": NOW + 7 * DAY})),
        key(
            "status-expired",
            json!({"expired_time": NOW + DAY, "status": 3}),
        ),
    ]);
    pull_then_remove(&h, &[7]);

    let rows = query_json(&h, &["--report", "expiring-soon"]);
    assert_eq!(ids(&rows), [5, 8, 2, 1, 9]);
    assert_eq!(
        header(&h, &["--report", "expiring-soon"]),
        ["id", "name", "expired_iso", "days_left", "is_expired"]
    );
    assert_eq!(
        rows[..2],
        [
            json!({"id": 5, "name": "expired-2d-ago", "expired_iso": "2025-12-17T00:00:00Z",
                   "days_left": -2.0, "is_expired": 1}),
            json!({"id": 8, "name": "expires-now", "expired_iso": "2025-12-19T00:00:00Z",
                   "days_left": 0.0, "is_expired": 1}),
        ]
    );
    assert_eq!(column(&rows, "days_left"), [-2.0, 0.0, 1.0, 3.0, 7.0]);
    assert_eq!(column(&rows, "is_expired"), [1, 1, 0, 0, 0]);

    let rows = query_json(&h, &["--report", "expiring-soon", "--within", "2d"]);
    assert_eq!(ids(&rows), [5, 8, 2]);
    let rows = query_json(&h, &["--report", "expiring-soon", "--within", "5w"]);
    assert_eq!(ids(&rows), [5, 8, 2, 1, 9, 3]);
    // Two days on, key 2 has expired too and key 3 is nearer.
    let rows = query_json_at(&h, NOW + 2 * DAY, &["--report", "expiring-soon"]);
    assert_eq!(ids(&rows), [5, 8, 2, 1, 9]);
    assert_eq!(column(&rows, "is_expired"), [1, 1, 1, 0, 0]);
    assert_eq!(column(&rows, "days_left"), [-4.0, -2.0, -1.0, 1.0, 5.0]);
}

#[test]
fn top_consumers_ranks_every_live_key_by_used_quota() {
    let h = harness(vec![
        key("small", json!({"used_quota": 500})),
        key("big", json!({"used_quota": 9_000})),
        key("big-too", json!({"used_quota": 9_000})),
        key("disabled", json!({"used_quota": 7_000, "status": 2})),
        key("removed", json!({"used_quota": 99_999})),
        key("tiny", json!({"used_quota": 100, "status": 4})),
    ]);
    pull_then_remove(&h, &[5]);

    let rows = query_json(&h, &["--report", "top-consumers"]);
    assert_eq!(ids(&rows), [2, 3, 4, 1, 6]);
    assert_eq!(column(&rows, "used_quota"), [9_000, 9_000, 7_000, 500, 100]);
    assert_eq!(
        column(&rows, "status_name"),
        ["enabled", "enabled", "disabled", "enabled", "exhausted"]
    );
    assert_eq!(
        header(&h, &["--report", "top-consumers"]),
        [
            "id",
            "name",
            "status_name",
            "used_quota",
            "remain_quota",
            "unlimited_quota",
            "accessed_iso"
        ]
    );
    let rows = query_json(&h, &["--report", "top-consumers", "--limit", "3"]);
    assert_eq!(ids(&rows), [2, 3, 4]);
}

/// A history of five syncs with quota use between them:
///   sync 1 at NOW-10d  ok        (before the 7-day window)
///   sync 2 at NOW-6.5d failed    (inside it, but recorded nothing)
///   sync 3 at NOW-6d   partial   (the account changed during every listing pass)
///   sync 4 at NOW-3d   ok        (key "newcomer" first seen)
///   sync 5 at NOW      ok        ("fresh" first seen, "removed-later" gone)
/// Ids: 1 steady, 2 burst, 3 old-heavy, 4 disabled-user, 5 removed-later, 6 unlimited-burner,
/// 7 exhausted-burning, 8..=107 idle fillers (so a listing takes two pages), then three keys
/// created during sync 3's passes, then newcomer and fresh, whose ids are returned.
fn history() -> (Harness, i64, i64) {
    let mut keys = vec![
        key("steady", json!({"used_quota": 0, "remain_quota": 200_000})),
        key("burst", json!({"used_quota": 0, "remain_quota": 1_000_000})),
        key("old-heavy", json!({"used_quota": 900_000})),
        key("disabled-user", json!({"used_quota": 5_000, "status": 2})),
        key("removed-later", json!({"used_quota": 0})),
        key(
            "unlimited-burner",
            json!({"used_quota": 0, "unlimited_quota": true, "remain_quota": 0}),
        ),
        key(
            "exhausted-burning",
            json!({"used_quota": 0, "remain_quota": 6_000}),
        ),
    ];
    for n in 8..=107 {
        keys.push(key(&format!("filler-{n}"), json!({"used_quota": 0})));
    }
    let h = harness(keys);
    let set = |id: i64, field: &str, value: i64| h.server.account().set(id, field, json!(value));

    h.pull(&["--now", &(NOW - 10 * DAY).to_string()]);

    set(1, "used_quota", 5_000);
    h.server.account().faults.success_false_page = Some(1);
    h.run(
        &[
            "pull",
            "--retries",
            "0",
            "--now",
            &(NOW - 13 * DAY / 2).to_string(),
        ],
        4,
    );
    h.server.account().faults.success_false_page = None;

    set(1, "used_quota", 10_000);
    set(1, "remain_quota", 190_000);
    set(5, "used_quota", 1_000);
    h.server.account().faults.after_page = Some(Drift {
        page: 1,
        create: 1,
        delete: vec![],
        every_time: true,
    });
    let partial = h.pull(&["--now", &(NOW - 6 * DAY).to_string()]);
    assert_eq!(partial["status"], "partial");
    h.server.account().faults.after_page = None;

    set(1, "used_quota", 40_000);
    set(1, "remain_quota", 160_000);
    set(4, "used_quota", 20_000);
    set(5, "used_quota", 500_000);
    set(6, "used_quota", 6_000);
    set(7, "used_quota", 3_000);
    set(7, "remain_quota", 3_000);
    let newcomer = h.server.account().insert(key(
        "newcomer",
        json!({"used_quota": 1_000, "remain_quota": 2_000, "created_time": NOW - 4 * DAY}),
    ));
    h.pull(&["--now", &(NOW - 3 * DAY).to_string()]);

    set(1, "used_quota", 70_000);
    set(1, "remain_quota", 50_000);
    set(2, "used_quota", 120_000);
    set(2, "remain_quota", 880_000);
    set(4, "used_quota", 35_000);
    set(6, "used_quota", 12_000);
    set(7, "used_quota", 6_000);
    set(7, "remain_quota", -500);
    set(newcomer, "used_quota", 4_000);
    h.server.account().remove(5);
    let fresh = h
        .server
        .account()
        .insert(key("fresh", json!({"used_quota": 50_000})));
    h.pull(&["--now", &NOW.to_string()]);

    assert_eq!(
        h.rows("SELECT status FROM syncs ORDER BY id")
            .into_iter()
            .map(|row| format!("{:?}", row[0]))
            .collect::<Vec<_>>(),
        [
            "Text(\"ok\")",
            "Text(\"failed\")",
            "Text(\"partial\")",
            "Text(\"ok\")",
            "Text(\"ok\")"
        ]
    );
    (h, newcomer, fresh)
}

#[test]
fn top_consumers_since_and_forecast_measure_usage_from_the_history() {
    let (h, newcomer, fresh) = history();

    // Window 7d: from sync 3 (the failed sync 2 is skipped, the partial sync 3 counts).
    let rows = query_json(
        &h,
        &["--report", "top-consumers", "--since", "7d", "--limit", "7"],
    );
    assert_eq!(ids(&rows), [2, 1, 4, 6, 7, newcomer, 3]);
    assert_eq!(
        column(&rows, "used_in_window"),
        [120_000, 60_000, 30_000, 12_000, 6_000, 3_000, 0]
    );
    assert_eq!(
        column(&rows, "per_day"),
        [20_000.0, 10_000.0, 5_000.0, 2_000.0, 1_000.0, 1_000.0, 0.0]
    );
    assert_eq!(
        rows[0],
        json!({"id": 2, "name": "burst", "status_name": "enabled", "used_in_window": 120_000,
               "per_day": 20_000.0, "used_quota": 120_000, "from_sync": 3,
               "from_iso": "2025-12-13T00:00:00Z", "to_sync": 5, "to_iso": "2025-12-19T00:00:00Z"})
    );
    // The newcomer is measured from its first observation, sync 4.
    assert_eq!(rows[5]["from_sync"], 4);
    assert_eq!(rows[5]["from_iso"], "2025-12-16T00:00:00Z");

    // A key first seen at the latest sync used nothing yet, over no time: per_day is NULL.
    let all = query_json(
        &h,
        &[
            "--report",
            "top-consumers",
            "--since",
            "7d",
            "--limit",
            "1000",
        ],
    );
    let fresh_row = all.iter().find(|row| row["id"] == fresh).unwrap();
    assert_eq!(
        (
            fresh_row["used_in_window"].clone(),
            fresh_row["per_day"].clone()
        ),
        (json!(0), Json::Null)
    );
    assert!(!ids(&all).contains(&5), "the removed key is skipped");

    // Window 4d: from sync 4 on.
    let rows = query_json(
        &h,
        &["--report", "top-consumers", "--since", "4d", "--limit", "6"],
    );
    assert_eq!(ids(&rows), [2, 1, 4, 6, 7, newcomer]);
    assert_eq!(
        column(&rows, "per_day"),
        [40_000.0, 10_000.0, 5_000.0, 2_000.0, 1_000.0, 1_000.0]
    );

    // Window 1h: only sync 5 is inside it, so no time passes and every rate is NULL.
    let rows = query_json(
        &h,
        &["--report", "top-consumers", "--since", "1h", "--limit", "3"],
    );
    assert_eq!(
        column(&rows, "per_day"),
        [Json::Null, Json::Null, Json::Null]
    );

    // Forecast: enabled limited keys with a positive rate, running out within 7 days.
    let rows = query_json(&h, &["--report", "forecast"]);
    assert_eq!(ids(&rows), [7, newcomer, 1]);
    assert_eq!(
        rows,
        [
            json!({"id": 7, "name": "exhausted-burning", "remain_quota": -500, "per_day": 1_000.0,
                   "days_left": 0.0, "runs_out_iso": "2025-12-19T00:00:00Z"}),
            json!({"id": newcomer, "name": "newcomer", "remain_quota": 2_000, "per_day": 1_000.0,
                   "days_left": 2.0, "runs_out_iso": "2025-12-21T00:00:00Z"}),
            json!({"id": 1, "name": "steady", "remain_quota": 50_000, "per_day": 10_000.0,
                   "days_left": 5.0, "runs_out_iso": "2025-12-24T00:00:00Z"}),
        ]
    );
    let rows = query_json(&h, &["--report", "forecast", "--within", "60d"]);
    assert_eq!(ids(&rows), [7, newcomer, 1, 2]);
    assert_eq!(rows[3]["days_left"], 44.0);
    // Measured over 4 days, burst burns 40000 a day and runs out in 22.
    let rows = query_json(
        &h,
        &["--report", "forecast", "--since", "4d", "--within", "3w"],
    );
    assert_eq!(ids(&rows), [7, newcomer, 1]);
    let rows = query_json(
        &h,
        &["--report", "forecast", "--since", "4d", "--within", "22d"],
    );
    assert_eq!(ids(&rows), [7, newcomer, 1, 2]);
    assert_eq!(rows[3]["per_day"], 40_000.0);
}

#[test]
fn idle_lists_enabled_keys_unused_for_the_window_and_never_used_ones() {
    let h = harness(vec![
        key("active", json!({"accessed_time": NOW - DAY})),
        key("idle-40d", json!({"accessed_time": NOW - 40 * DAY})),
        key("idle-31d", json!({"accessed_time": NOW - 31 * DAY})),
        key(
            "never-used-new",
            json!({"created_time": NOW - 2 * DAY, "accessed_time": NOW - 2 * DAY, "used_quota": 0}),
        ),
        key(
            "never-used-old",
            json!({"created_time": NOW - 90 * DAY, "accessed_time": NOW - 90 * DAY, "used_quota": 0}),
        ),
        key(
            "disabled-idle",
            json!({"accessed_time": NOW - 200 * DAY, "status": 2}),
        ),
        key("exactly-30d", json!({"accessed_time": NOW - 30 * DAY})),
        key("removed-idle", json!({"accessed_time": NOW - 100 * DAY})),
        key(
            "used-at-creation",
            json!({"created_time": NOW - 10 * DAY, "accessed_time": NOW - 10 * DAY, "used_quota": 50}),
        ),
    ]);
    pull_then_remove(&h, &[8]);

    let rows = query_json(&h, &["--report", "idle"]);
    assert_eq!(ids(&rows), [5, 2, 3, 4]);
    assert_eq!(
        rows,
        [
            json!({"id": 5, "name": "never-used-old", "last_used_iso": null, "idle_days": 90.0,
                   "is_never_used": 1, "age_days": 90.0}),
            json!({"id": 2, "name": "idle-40d", "last_used_iso": "2025-11-09T00:00:00Z",
                   "idle_days": 40.0, "is_never_used": 0, "age_days": 100.0}),
            json!({"id": 3, "name": "idle-31d", "last_used_iso": "2025-11-18T00:00:00Z",
                   "idle_days": 31.0, "is_never_used": 0, "age_days": 100.0}),
            json!({"id": 4, "name": "never-used-new", "last_used_iso": null, "idle_days": 2.0,
                   "is_never_used": 1, "age_days": 2.0}),
        ]
    );
    let rows = query_json(&h, &["--report", "idle", "--for", "35d"]);
    assert_eq!(ids(&rows), [5, 2, 4]);
    let rows = query_json(&h, &["--report", "idle", "--for", "5d"]);
    assert_eq!(ids(&rows), [5, 2, 3, 7, 9, 4]);
}

#[test]
fn low_quota_lists_enabled_limited_keys_below_the_threshold_exhausted_first() {
    let h = harness(vec![
        key("plenty", json!({"remain_quota": 2_000_000})),
        key("low", json!({"remain_quota": 100_000})),
        key("exhausted", json!({"remain_quota": 0})),
        key("overdrawn", json!({"remain_quota": -50})),
        key(
            "unlimited",
            json!({"remain_quota": 0, "unlimited_quota": true}),
        ),
        key("disabled-low", json!({"remain_quota": 10, "status": 2})),
        key("just-below", json!({"remain_quota": 499_999})),
        key("at-threshold", json!({"remain_quota": 500_000})),
        key("removed-low", json!({"remain_quota": 5})),
    ]);
    pull_then_remove(&h, &[9]);

    let rows = query_json(&h, &["--report", "low-quota"]);
    assert_eq!(ids(&rows), [4, 3, 2, 7]);
    assert_eq!(column(&rows, "remain_quota"), [-50, 0, 100_000, 499_999]);
    assert_eq!(column(&rows, "is_exhausted"), [1, 1, 0, 0]);
    assert_eq!(
        header(&h, &["--report", "low-quota"]),
        ["id", "name", "remain_quota", "used_quota", "is_exhausted"]
    );
    let rows = query_json(&h, &["--report", "low-quota", "--below", "200000"]);
    assert_eq!(ids(&rows), [4, 3, 2]);
    let rows = query_json(&h, &["--report", "low-quota", "--below", "-10"]);
    assert_eq!(ids(&rows), [4]);
}

#[test]
fn unrestricted_names_each_risk_of_enabled_exposed_keys() {
    let h = harness(vec![
        key("locked-down", json!({})),
        key(
            "wide-open",
            json!({"unlimited_quota": true, "allow_ips": null, "model_limits_enabled": false,
                   "model_limits": "", "expired_time": -1}),
        ),
        key("empty-ips", json!({"allow_ips": ""})),
        key("never-expires", json!({"expired_time": -1})),
        key("unlimited-only", json!({"unlimited_quota": true})),
        key(
            "disabled-open",
            json!({"status": 2, "unlimited_quota": true, "allow_ips": null, "expired_time": -1}),
        ),
        key("removed-open", json!({"allow_ips": null})),
        key(
            "models-off",
            json!({"model_limits_enabled": false, "model_limits": "gpt-4o"}),
        ),
        key("blank-ips", json!({"allow_ips": " \n"})),
    ]);
    pull_then_remove(&h, &[7]);

    let rows = query_json(&h, &["--report", "unrestricted"]);
    assert_eq!(ids(&rows), [2, 3, 4, 5, 8, 9]);
    assert_eq!(
        rows[0],
        json!({"id": 2, "name": "wide-open",
               "risks": "unlimited-quota, any-ip, any-model, never-expires",
               "unlimited_quota": 1, "any_ip": 1, "any_model": 1, "never_expires": 1})
    );
    assert_eq!(
        column(&rows, "risks"),
        [
            "unlimited-quota, any-ip, any-model, never-expires",
            "any-ip",
            "never-expires",
            "unlimited-quota",
            "any-model",
            "any-ip"
        ]
    );
}

#[test]
fn demo_ends_with_the_expiring_soon_and_top_consumers_reports_of_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let now = NOW.to_string();
    let stdout = run_in(dir.path(), &["demo", "--keys", "60", "--now", &now], 0).stdout;
    let db = dir.path().join("keysync-demo.db");

    for report in ["expiring-soon", "top-consumers"] {
        let heading = format!("$ keysync --db keysync-demo.db --now {NOW} query --report {report}");
        let section = stdout
            .split(&heading)
            .nth(1)
            .unwrap_or_else(|| panic!("no {report} in the demo's output:\n{stdout}"));
        let shown_ids: Vec<i64> = section
            .lines()
            .skip_while(|line| !line.starts_with('╞'))
            .skip(1)
            .take_while(|line| line.starts_with('│'))
            .map(|line| {
                line.trim_matches('│')
                    .split('┆')
                    .next()
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            })
            .collect();
        let query = run(
            assert_cmd::Command::cargo_bin("keysync")
                .unwrap()
                .env_clear()
                .arg("--db")
                .arg(&db)
                .args(at(NOW))
                .args(["query", "--format", "json", "--report", report]),
            0,
        );
        let rows: Vec<Json> = serde_json::from_str(&query.stdout).unwrap();
        assert!(!rows.is_empty(), "{report}");
        assert_eq!(shown_ids, ids(&rows), "{report}");
    }
}

/// A query reads the last committed state while a pull's write transaction is open: WAL
/// readers never wait for the writer.
#[test]
fn a_query_reads_committed_data_while_a_write_is_in_progress() {
    let h = tricky_keys();
    let writer = h.conn();
    writer
        .execute_batch("BEGIN IMMEDIATE; UPDATE keys SET name = 'uncommitted';")
        .unwrap();
    let rows = query_json(&h, &["SELECT name FROM keys WHERE id = 3"]);
    assert_eq!(rows, [json!({"name": "エージェント"})]);
    writer.execute_batch("ROLLBACK").unwrap();
}
