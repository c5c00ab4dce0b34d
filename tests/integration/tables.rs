//! Issue 28's tables for people: every built-in table (`syncs`, `diff`, `history`, `status`,
//! `usage`, the reports) on a pseudo-terminal of 80 and 60 columns, with and without a row
//! count, over history with long errors and names: every line fits, every time a shown column
//! holds appears whole, hidden columns are named, long names and errors are cut with `…`.
//! And the diff for people: keys that only used quota left out and counted, `--all`, statuses
//! as words in `table` and `markdown` and as codes in the machine formats.

use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use serde_json::{Value as Json, json};
use unicode_width::UnicodeWidthStr;

use crate::common::{Harness, NOW, table_cells};
use crate::on_a_terminal::on_tty_sized;

const DAY: i64 = 86_400;
const LONG_NAME: &str =
    "a key name long enough that no narrow table shows it whole: production-eu-west-1";
const CJK_NAME: &str = "エージェントの長い名前のキーはここで切られるべきです";

/// Eight keys over three days: two good pulls (between them key 1 renamed, key 2 disabled, the
/// others only used quota) and a third that failed with a long error. Returns the harness
/// and the key ids.
fn history() -> (Harness, Vec<i64>) {
    let h = Harness::with_keys(8);
    let ids = h.server.account().ids();
    h.server.account().set(ids[1], "name", json!(CJK_NAME));
    h.server.account().set(ids[1], "status", json!(1));
    h.pull(&["--now", &NOW.to_string()]);
    {
        let mut account = h.server.account();
        account.set(ids[0], "name", json!(LONG_NAME));
        account.set(ids[1], "status", json!(2));
        for (n, &id) in ids.iter().enumerate().skip(2) {
            let key = account.get(id).unwrap().clone();
            let used = 1_000 * n as i64;
            let quota = |field: &str| key[field].as_i64().unwrap();
            account.set(id, "used_quota", json!(quota("used_quota") + used));
            account.set(id, "remain_quota", json!(quota("remain_quota") - used));
            account.set(id, "accessed_time", json!(NOW + DAY / 2));
        }
    }
    h.pull(&["--now", &(NOW + DAY).to_string()]);
    h.server.account().faults.fail_every = Some(1);
    h.pull_run(
        &["--retries", "2", "--now", &(NOW + 2 * DAY).to_string()],
        4,
    );
    h.server.account().faults.fail_every = None;
    (h, ids)
}

/// `2025-12-19 01:00:00Z`, as tables write times.
fn readable(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

/// The columns whose values are times (or dates), as the JSON of the same command has them.
const TIME_COLUMNS: [&str; 6] = [
    "time",
    "from_time",
    "to_time",
    "created_time",
    "accessed_time",
    "expired_time",
];

/// Each time a JSON row holds, by the column that shows it, as a table writes it. A diff's
/// old and new values are times when its field is one.
fn times_of(row: &serde_json::Map<String, Json>) -> Vec<(String, String)> {
    let field_is_time = row
        .get("field")
        .and_then(Json::as_str)
        .is_some_and(|field| TIME_COLUMNS.contains(&field));
    let is_time = |column: &str| {
        TIME_COLUMNS.contains(&column)
            || column.ends_with("_iso")
            || column == "period"
            || (field_is_time && (column == "old" || column == "new"))
    };
    row.iter()
        .filter(|(column, _)| is_time(column))
        .filter_map(|(column, value)| {
            let shown = match value {
                Json::Number(n) if n.as_i64() != Some(-1) => readable(n.as_i64()?),
                Json::String(text) => text.clone(),
                _ => return None,
            };
            Some((column.clone(), shown))
        })
        .collect()
}

/// What a person sees of `args` on a terminal of `size`: the lines, without `\r`.
fn seen(h: &Harness, args: &str, size: (usize, usize)) -> String {
    let shell = format!("keysync --now {} {args}", NOW + 2 * DAY);
    let raw = on_tty_sized(h, &[("NO_COLOR", "1")], &shell, expected_exit(args), size);
    raw.replace('\r', "")
}

/// Every line of `shown` fits `columns`; every time the JSON of `args` holds appears whole in
/// `shown` as often as the rows hold it, unless its column is hidden, which the note under the
/// table then says.
fn assert_fits(h: &Harness, args: &str, shown: &str, columns: usize) {
    let context = format!("{args} at {columns} columns:\n{shown}");
    for line in shown.lines() {
        assert!(line.width() <= columns, "{} wide: {context}", line.width());
    }
    let header = table_cells(shown).into_iter().next().unwrap_or_default();
    let mut argv: Vec<&str> = args.split(' ').collect();
    argv.extend(["--format", "json", "--now"]);
    let now = (NOW + 2 * DAY).to_string();
    argv.push(&now);
    let rows: Vec<serde_json::Map<String, Json>> =
        serde_json::from_str(&h.run(&argv, expected_exit(args)).stdout).unwrap();
    // A diff for people leaves out the keys that only used quota (here, every change of quota
    // use is such a key's).
    let left_out = |row: &serde_json::Map<String, Json>| {
        args.starts_with("diff")
            && !args.contains("--all")
            && row
                .get("field")
                .and_then(Json::as_str)
                .is_some_and(|field| {
                    ["accessed_time", "used_quota", "remain_quota"].contains(&field)
                })
    };
    let mut wanted: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows.iter().filter(|row| !left_out(row)) {
        for (column, time) in times_of(row) {
            if header.contains(&column) {
                *wanted.entry(time).or_default() += 1;
            } else {
                // The note names the hidden column, unless it had to be cut to fit itself.
                let note = shown
                    .lines()
                    .find(|line| line.starts_with("hidden to fit: "))
                    .unwrap_or_else(|| panic!("{column} hidden without a note: {context}"));
                assert!(
                    note.contains(column.as_str()) || note.ends_with('…'),
                    "{column}: {context}"
                );
            }
        }
    }
    for (time, count) in wanted {
        let found = shown.matches(&time).count();
        assert!(
            found >= count,
            "{time} {found} times, not {count}: {context}"
        );
    }
}

/// `check` exits 1 while alarms fire (and its table here has some); the others 0.
fn expected_exit(args: &str) -> i32 {
    i32::from(args.starts_with("check"))
}

/// The built-in tables, as command lines after `keysync`.
fn tables(ids: &[i64]) -> Vec<String> {
    let mut tables: Vec<String> = [
        "syncs",
        "diff",
        "diff --all",
        "diff 1 2 --all",
        "usage",
        "usage --every day",
        "query --report top-consumers",
        "query --report top-consumers --since 30d",
        "query --report idle",
        "query --report low-quota --below 100000000",
        "query --report unrestricted",
        "query --report forecast --within 1000d",
        "query --report expiring-soon --within 1000d",
        "check --expiring 1000d --low-quota-usd 1000000",
    ]
    .map(String::from)
    .to_vec();
    tables.extend(ids[..2].iter().map(|id| format!("history {id}")));
    tables
}

#[test]
fn every_built_in_table_fits_80_and_60_columns_with_its_times_whole() {
    let (h, ids) = history();
    for size in [(80, 24), (60, 24), (80, 0), (60, 0)] {
        for args in tables(&ids) {
            let shown = seen(&h, &args, size);
            assert!(shown.contains('┌'), "{args}: {shown}");
            assert_fits(&h, &args, &shown, size.0);
        }
    }
}

#[test]
fn long_names_and_errors_are_cut_and_hidden_columns_are_named() {
    let (h, ids) = history();
    let error: String = h
        .rows("SELECT error FROM syncs WHERE status = 'failed'")
        .into_iter()
        .map(|row| match &row[0] {
            rusqlite::types::Value::Text(error) => error.clone(),
            other => panic!("{other:?}"),
        })
        .next()
        .unwrap();
    assert!(error.width() > 80, "{error}");
    for size in [(80, 24), (80, 0)] {
        let syncs = seen(&h, "syncs", size);
        let cells = table_cells(&syncs);
        let (header, failed) = (&cells[0], &cells[1]);
        let at = header.iter().position(|c| c == "error").unwrap();
        let kept = failed[at].strip_suffix('…').expect("the error is cut");
        assert!(error.starts_with(kept) && kept.len() >= 15, "{syncs}");
        // One line a sync: nothing wrapped.
        assert_eq!(cells.len(), 4, "{syncs}");
        let note = syncs.lines().last().unwrap();
        let hidden: Vec<&str> = note
            .strip_prefix("hidden to fit: ")
            .expect("a note names the hidden columns")
            .split(", ")
            .collect();
        assert!(!hidden.is_empty() && hidden.iter().all(|c| !header.contains(&c.to_string())));
        for column in ["id", "time", "status"] {
            assert!(header.contains(&column.to_string()), "{syncs}");
        }
        // The fields named with --fields are hidden last.
        let status = seen(
            &h,
            &format!("history {} --fields status", ids[1]),
            (60, size.1),
        );
        let status_cells = table_cells(&status);
        assert_eq!(status_cells[0].last().unwrap(), "status", "{status}");
        assert_eq!(status_cells[2].last().unwrap(), "disabled", "{status}");
        let history = seen(&h, &format!("history {}", ids[0]), size);
        assert!(history.contains("┆ a key name…"), "{history}");
        assert!(!history.contains(LONG_NAME), "{history}");
        assert!(history.contains("…"), "{history}");
    }
    // Piped, nothing is hidden or cut.
    let piped = h.run(&["syncs"], 0).stdout;
    assert!(piped.contains(&error) && !piped.contains("hidden to fit"));
    assert_eq!(table_cells(&piped)[0].len(), 9);
}

#[test]
fn a_terminal_with_0_rows_still_has_its_columns_honoured() {
    let (h, _) = history();
    let tall = seen(&h, "syncs", (60, 24));
    let flat = seen(&h, "syncs", (60, 0));
    assert_eq!(tall, flat);
    // A table, and one fitted to 60 columns: narrower than it would be, so the width was read.
    assert!(
        flat.contains('┌') && flat.contains("\nhidden to fit: "),
        "{flat}"
    );
    assert!(flat.lines().all(|line| line.width() <= 60), "{flat}");
}

#[test]
fn status_lines_fit_and_keep_their_times_whole() {
    let (h, _) = history();
    for size in [(80, 24), (60, 0)] {
        let shown = seen(&h, "status", size);
        for line in shown.lines() {
            assert!(line.width() <= size.0, "{shown}");
        }
        for time in [NOW + DAY, NOW + 2 * DAY] {
            assert!(shown.contains(&readable(time)), "{shown}");
        }
        assert!(shown.contains("error: ") && shown.contains('…'), "{shown}");
    }
}

#[test]
fn a_diff_for_people_leaves_out_keys_that_only_used_quota_and_says_so() {
    let (h, ids) = history();
    let table = h.run(&["diff", "1", "2"], 0).stdout;
    let cells = table_cells(&table);
    let keys: Vec<&str> = cells[1..].iter().map(|row| row[1].as_str()).collect();
    let (renamed, disabled) = (ids[0].to_string(), ids[1].to_string());
    assert_eq!(keys, [renamed.as_str(), disabled.as_str()], "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines.first().unwrap(),
        &format!(
            "sync 1 ({}) → sync 2 ({}): 0 added, 8 changed, 0 removed",
            readable(NOW),
            readable(NOW + DAY)
        )
    );
    assert_eq!(
        lines.last().unwrap(),
        &"6 keys only used quota: --all shows them"
    );
    // Statuses are words for people.
    let status = cells.iter().find(|row| row[4] == "status").unwrap();
    assert_eq!(status[5..], ["enabled", "disabled"]);

    // At 60 columns too: old and new are only as wide as a value that must stay whole (here
    // a status), so the name is hidden before either of them, and the new name is cut.
    let narrow = seen(&h, "diff 1 2", (60, 24));
    let narrow_cells = table_cells(&narrow);
    assert_eq!(
        narrow_cells[0],
        ["kind", "id", "field", "old", "new"],
        "{narrow}"
    );
    assert_eq!(
        narrow_cells[2][2..],
        ["status", "enabled", "disabled"],
        "{narrow}"
    );
    assert!(narrow_cells[1][4].ends_with('…'), "{narrow}");
    assert!(narrow.contains("\nhidden to fit: name, hint\n"), "{narrow}");

    let all = h.run(&["diff", "1", "2", "--all"], 0).stdout;
    let every: Vec<String> = table_cells(&all)[1..]
        .iter()
        .map(|r| r[1].clone())
        .collect();
    let mut distinct = every.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "{all}");
    assert!(!all.contains("only used quota"));

    let markdown = h.run(&["diff", "1", "2", "--format", "markdown"], 0).stdout;
    let md_lines: Vec<&str> = markdown.lines().collect();
    assert_eq!(
        md_lines[md_lines.len() - 2..],
        ["", "6 keys only used quota: --all shows them"]
    );
    let md_rows: Vec<&str> = md_lines
        .iter()
        .filter(|l| l.starts_with("| "))
        .copied()
        .collect();
    // The header, the separator, the rename and the status change.
    assert_eq!(md_rows.len(), 4, "{markdown}");
    assert!(
        md_rows.contains(
            &format!(
                "| changed | {disabled} | {CJK_NAME} | {} | status | enabled | disabled |",
                hint(&h, ids[1])
            )
            .as_str()
        ),
        "{markdown}"
    );
    let md_all = h
        .run(&["diff", "1", "2", "--format", "markdown", "--all"], 0)
        .stdout;
    assert!(!md_all.contains("only used quota") && md_all.contains("| used_quota |"));

    // Naming the fields shows what they name, quota use too.
    let named = h
        .run(&["diff", "1", "2", "--fields", "used_quota"], 0)
        .stdout;
    assert_eq!(table_cells(&named).len(), 7, "{named}");
}

fn hint(h: &Harness, id: i64) -> String {
    match &h.rows(&format!("SELECT key_hint FROM keys WHERE id = {id}"))[0][0] {
        rusqlite::types::Value::Text(hint) => hint.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_machine_formats_keep_every_change_and_the_status_codes() {
    let (h, ids) = history();
    let json = h.run(&["diff", "1", "2", "--format", "json"], 0).json();
    let rows = json.as_array().unwrap();
    let mut keys: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 8);
    let status = rows.iter().find(|r| r["field"] == "status").unwrap();
    assert_eq!((&status["old"], &status["new"]), (&json!(1), &json!(2)));
    assert_eq!(status["id"], json!(ids[1]));
    for format in ["jsonl", "csv", "tsv"] {
        let text = h.run(&["diff", "1", "2", "--format", format], 0).stdout;
        assert!(!text.contains("only used quota"), "{format}");
        assert!(!text.contains("disabled"), "{format}: {text}");
        let lines = text.lines().count();
        let header = usize::from(format != "jsonl");
        assert_eq!(lines, rows.len() + header, "{format}");
    }
    // history shows statuses as words for people, codes for tools.
    let id = ids[1].to_string();
    let table = h.run(&["history", &id, "--fields", "status"], 0).stdout;
    let words: Vec<String> = table_cells(&table)[1..]
        .iter()
        .map(|r| r[7].clone())
        .collect();
    assert_eq!(words, ["enabled", "disabled"]);
    let csv = h
        .run(
            &["history", &id, "--fields", "status", "--format", "csv"],
            0,
        )
        .stdout;
    let codes: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap())
        .collect();
    assert_eq!(codes, ["1", "2"]);
}

#[test]
fn the_demo_a_newcomer_runs_first_fits_60_columns() {
    let h = Harness::with_keys(0);
    for size in [(80, 24), (60, 0)] {
        let shown = on_tty_sized(
            &h,
            &[("NO_COLOR", "1")],
            "keysync demo --db demo.db",
            0,
            size,
        )
        .replace('\r', "");
        for line in shown.lines() {
            assert!(line.width() <= size.0, "{} wide:\n{shown}", line.width());
        }
        assert!(
            shown.contains("only used quota: --all shows them"),
            "{shown}"
        );
    }
}
