//! What a user of an installed binary (no checkout) meets: a report's SQL printed by
//! `query --report NAME --show-sql` and run back through `query --file`, and `demo --db PATH`,
//! which re-makes its own database at any path and refuses every other file.

use pretty_assertions::assert_eq;

use crate::common::{Harness, NOW, run_in};

/// Every report, with flags that change its answer where it takes any, and whether the demo's
/// database (both pulls at one "now") gives it rows.
const REPORTS: [(&[&str], bool); 7] = [
    (&["--report", "expiring-soon", "--within", "30d"], true),
    (&["--report", "top-consumers", "--limit", "3"], true),
    (&["--report", "top-consumers", "--since", "7d"], true),
    (&["--report", "idle", "--for", "90d"], true),
    (&["--report", "low-quota", "--below", "2000000"], true),
    (&["--report", "unrestricted"], true),
    (&["--report", "forecast"], false),
];

/// The `--param`s of the header line that says how to run the printed SQL; `keysync` is
/// followed by the `--now` the report was printed with, if any (`NOW` in these tests).
fn params_of(script: &str, report: &str, now: bool) -> Vec<String> {
    let now = if now {
        " --now 2025-12-19T00:00:00Z"
    } else {
        ""
    };
    let run_line = format!("--   keysync{now} query --file {report}.sql");
    let line = script
        .lines()
        .find(|line| line.starts_with(&run_line))
        .unwrap_or_else(|| panic!("no {run_line:?} in:\n{script}"));
    line[run_line.len()..]
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn show_sql_run_through_query_file_gives_the_reports_rows() {
    let dir = tempfile::tempdir().unwrap();
    let now = NOW.to_string();
    run_in(
        dir.path(),
        &["demo", "-q", "--keys", "60", "--now", &now],
        0,
    );
    let query = |args: &[&str]| {
        let base = ["--db", "keysync-demo.db", "--now", &now, "query"];
        run_in(dir.path(), &[&base[..], args].concat(), 0).stdout
    };
    for (flags, has_rows) in REPORTS {
        let report = flags[1];
        let script = query(&[flags, &["--show-sql"]].concat());
        let file = dir.path().join(format!("{report}.sql"));
        std::fs::write(&file, &script).unwrap();
        let params = params_of(&script, report, true);
        let mut by_file: Vec<&str> = vec!["--format", "json", "--file"];
        let file_arg = file.display().to_string();
        by_file.push(&file_arg);
        by_file.extend(params.iter().map(String::as_str));
        let from_file: Vec<serde_json::Value> = serde_json::from_str(&query(&by_file)).unwrap();
        let from_report: Vec<serde_json::Value> =
            serde_json::from_str(&query(&[flags, &["--format", "json"]].concat())).unwrap();
        assert_eq!(from_file, from_report, "{flags:?} with {params:?}");
        assert_eq!(!from_report.is_empty(), has_rows, "{flags:?}");
    }
}

#[test]
fn show_sql_prints_the_flags_values_as_params_and_needs_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let script = run_in(
        dir.path(),
        &[
            "query",
            "--report",
            "forecast",
            "--since",
            "3d",
            "--show-sql",
        ],
        0,
    )
    .stdout;
    assert_eq!(
        params_of(&script, "forecast", false),
        ["--param", "within=604800", "--param", "since=259200"]
    );
    assert!(
        script.contains("\nSELECT") || script.contains("\nWITH"),
        "{script}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let refused = run_in(dir.path(), &["query", "SELECT 1", "--show-sql"], 2);
    assert_eq!(
        refused.stderr,
        "keysync: error: --show-sql prints a preset report's SQL: add --report NAME (see \
         --list-reports)\n"
    );
}

/// The sync ids and their status in a demo's database.
fn syncs_of(db: &std::path::Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement = conn
        .prepare("SELECT id, status FROM syncs ORDER BY id")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn demo_remakes_its_own_database_at_any_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mydemo.db");
    let two_pulls = vec![(1, "ok".to_string()), (2, "ok".to_string())];
    run_in(
        dir.path(),
        &["demo", "-q", "--keys", "20", "--db", "mydemo.db"],
        0,
    );
    assert_eq!(syncs_of(&db), two_pulls);
    run_in(
        dir.path(),
        &["demo", "-q", "--keys", "20", "--db", "mydemo.db"],
        0,
    );
    assert_eq!(syncs_of(&db), two_pulls, "made again, not piled onto");
    // The global flag, before the command, names the same file.
    run_in(
        dir.path(),
        &["--db", "mydemo.db", "demo", "-q", "--keys", "20"],
        0,
    );
    assert_eq!(syncs_of(&db), two_pulls);
    assert!(!dir.path().join("keysync-demo.db").exists());
}

#[test]
fn demo_refuses_a_file_it_did_not_make_even_one_pulled_from_loopback() {
    // A real pull through a local proxy looks like the demo's: every sync from 127.0.0.1.
    let h = Harness::with_keys(3);
    h.pull(&[]);
    let before = h.dump(&["syncs", "keys"]);
    let refused = run_in(
        h.dir.path(),
        &["demo", "-q", "--db", &h.db.display().to_string()],
        2,
    );
    assert_eq!(
        refused.stderr,
        format!(
            "keysync: error: {} exists and is not a keysync demo database; pass --db with a new \
             file name\n",
            h.db.display()
        )
    );
    assert_eq!(h.dump(&["syncs", "keys"]), before);

    // Nor a file that is not a database at all.
    let notes = h.dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    run_in(h.dir.path(), &["demo", "-q", "--db", "notes.txt"], 6);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
}

#[test]
fn demo_ignores_keysync_db_and_its_help_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = assert_cmd::Command::cargo_bin("keysync").unwrap();
    command
        .env_clear()
        .env("KEYSYNC_DB", dir.path().join("real.db"))
        .current_dir(dir.path())
        .args(["demo", "-q", "--keys", "5"]);
    crate::common::run(&mut command, 0);
    assert!(dir.path().join("keysync-demo.db").exists());
    assert!(!dir.path().join("real.db").exists());

    let help = run_in(dir.path(), &["demo", "--help"], 0).stdout;
    let db_help: String = help
        .split("--db <PATH>")
        .nth(1)
        .and_then(|rest| rest.split("--json").next())
        .unwrap_or_else(|| panic!("no --db in:\n{help}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        db_help,
        "Where to make the demo database [default: keysync-demo.db, in the current folder]. \
         KEYSYNC_DB is not read; a file an earlier demo made is replaced, any other refused"
    );
    // `pull --help` still shows the global flag's own text.
    let pull_help = run_in(dir.path(), &["pull", "--help"], 0).stdout;
    assert!(pull_help.contains("also KEYSYNC_DB"), "{pull_help}");
}
