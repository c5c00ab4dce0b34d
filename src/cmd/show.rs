//! How commands show what they found, where more than one shows it the same way: a diff (`diff`
//! and `demo`), a sync summary (`pull` and `demo`) and a report (`query` and `demo`).

use rusqlite::types::Value;
use unicode_width::UnicodeWidthStr;

use crate::api::model::DATA_COLUMNS;
use crate::cmd::{field_column, readable_field};
use crate::error::{Error, Result};
use crate::output::{Column, ColumnKind, Fit, Format, NAME_WIDTH, RowFormat};
use crate::output::{print_columns, print_line, print_parts, to_text};
use crate::puller::{PullTrace, SyncSummary};
use crate::report::{Report, ReportArgs};
use crate::store::Store;
use crate::store::diff::{Diff, DiffRow, Kind, keys_of, keys_that_only_used_quota};
use crate::store::points::SyncPoint;
use crate::store::query::{self, SqlParam};
use crate::store::sync::SyncStatus;
use crate::terminal::counted;
use crate::time::as_rfc3339;

/// A pull's summary line, or with `json` one JSON object; nothing when `quiet`.
pub(crate) fn print_summary(summary: &SyncSummary, json: bool, quiet: bool) -> Result<()> {
    if quiet {
        return Ok(());
    }
    if json {
        print_line(&serde_json::to_string(summary).expect("a summary serialises"))
    } else {
        print_line(&summary.line())
    }
}

/// A failed pull as `--json` prints it: one object on one line, printed even with `-q` (which
/// only quiets success): `{"sync":7,"status":"failed","error":"...","exit_code":4,...}`, with
/// `sync` only when the pull wrote a row.
pub(crate) fn print_failure_json(trace: &PullTrace, error: &Error) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Failure<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        sync: Option<i64>,
        status: SyncStatus,
        error: &'a str,
        exit_code: u8,
        #[serde(serialize_with = "as_rfc3339")]
        started_at: i64,
        #[serde(serialize_with = "as_rfc3339")]
        finished_at: i64,
    }
    let failure = Failure {
        sync: trace.sync,
        status: SyncStatus::Failed,
        error: &error.to_string(),
        exit_code: error.code(),
        started_at: trace.started_at,
        finished_at: trace.finished_at,
    };
    print_line(&serde_json::to_string(&failure).expect("a failure serialises"))
}

/// The columns every format prints, in order, and what a narrow terminal gives up first: the
/// hint, the name, the kind (the old and new values show it), then the old value. Old and new
/// values are cut down to `least` columns.
fn diff_columns(least: u16) -> [Column; 7] {
    let column = |name| Column::new(name, ColumnKind::Plain);
    [
        column("kind").whole(4),
        column("id").whole(1),
        column("name").cut(5, NAME_WIDTH),
        column("hint").whole(6),
        column("field").whole(1),
        column("old").cut(3, least),
        column("new").cut(2, least),
    ]
}

/// How narrow the old and new values of a diff may be cut: as wide as the widest value of a
/// field shown whole (a time, a number, a status), so that only free text (a name, the model
/// limits, `extra`) is ever cut; and wide enough to tell names apart.
fn least_value_width(rows: &[&DiffRow], values: &[Vec<Value>]) -> u16 {
    let is_whole = |row: &&DiffRow| {
        row.field
            .is_some_and(|i| matches!(field_column(i, 1).fit, Fit::Whole { .. }))
    };
    let widest = rows
        .iter()
        .zip(values)
        .filter(|(row, _)| is_whole(row))
        .flat_map(|(_, values)| [&values[5], &values[6]])
        .map(|value| to_text(value).width())
        .fold(usize::from(NAME_WIDTH), usize::max);
    u16::try_from(widest).unwrap_or(u16::MAX)
}

/// A diff in `how`'s format; as a table, under a caption that counts it (unless `quiet`). The
/// formats for people (`table`, `markdown`) leave out the keys that only used quota, unless
/// `all`, and say how many they left out (unless `quiet`); the others print every row.
pub(crate) fn print_diff(diff: &Diff, how: RowFormat, quiet: bool, all: bool) -> Result<()> {
    let (from, to, rows) = (diff.from, diff.to, &diff.rows);
    let for_people = how.format.is_for_people();
    let only_used = if for_people && !all {
        keys_that_only_used_quota(rows)
    } else {
        Vec::new()
    };
    let shown: Vec<&DiffRow> = rows
        .iter()
        .filter(|row| only_used.binary_search(&row.id).is_err())
        .collect();
    if how.format == Format::Table && !quiet {
        print_parts(&caption(from, to, rows), 2)?;
    }
    if how.format != Format::Table || !shown.is_empty() {
        let values: Vec<Vec<Value>> = shown.iter().map(|row| values(row, for_people)).collect();
        let columns = diff_columns(least_value_width(&shown, &values));
        print_columns(how, &columns, values.into_iter().map(Ok))?;
    }
    if only_used.is_empty() || quiet {
        return Ok(());
    }
    if how.format == Format::Markdown {
        // A line right after a Markdown table would be read as one more row.
        print_line("")?;
    }
    let them = if only_used.len() == 1 { "it" } else { "them" };
    print_line(&format!(
        "{} only used quota: --all shows {them}",
        counted(only_used.len(), "key")
    ))
}

/// `sync 3 (2025-12-19 08:00:00Z) → sync 5 (2025-12-19 09:00:00Z): 1 added, 2 changed, 0
/// removed`, in the parts a narrow terminal may break it into.
fn caption(from: SyncPoint, to: SyncPoint, rows: &[DiffRow]) -> Vec<String> {
    let keys = |kind| keys_of(rows, kind);
    let counts = if rows.is_empty() {
        "no differences".to_string()
    } else {
        format!(
            "{} added, {} changed, {} removed",
            keys(Kind::Added),
            keys(Kind::Changed),
            keys(Kind::Removed)
        )
    };
    vec![from.describe(), format!("→ {}:", to.describe()), counts]
}

fn values(row: &DiffRow, for_people: bool) -> Vec<Value> {
    let field = row.field.map(|i| DATA_COLUMNS[i]);
    let shown = |value: &Value| match field {
        Some(name) if for_people => readable_field(name, value.clone()),
        _ => value.clone(),
    };
    vec![
        Value::Text(row.kind.as_str().to_string()),
        Value::Integer(row.id),
        row.name.clone(),
        row.hint.clone(),
        field.map_or(Value::Null, |name| Value::Text(name.to_string())),
        shown(&row.old),
        shown(&row.new),
    ]
}

/// Prints one report of the database at `db`, as `keysync query --report` does. The report's
/// flags are checked before the database is opened, so a usage error wins.
pub(crate) fn print_report(
    db: &std::path::Path,
    now: i64,
    report: Report,
    args: &ReportArgs,
    how: RowFormat,
) -> Result<()> {
    let report_query = report.query(args, now)?;
    let sql = (report_query.sql, &report_query.params[..]);
    print_statement(db, now, sql, how, report_columns)
}

/// Runs one statement read-only with "now" pinned at `now` and prints its rows as stored: the
/// SQL is the user's, so keysync cannot know what its columns measure.
pub(crate) fn print_query(
    db: &std::path::Path,
    now: i64,
    sql: &str,
    params: &[SqlParam],
    how: RowFormat,
) -> Result<()> {
    print_statement(db, now, (sql, params), how, Column::plain::<String>)
}

/// The quota columns of the preset reports, thousands separated for people like `usage`'s:
/// the reports are keysync's SQL, so it knows that these names measure quota units (and that
/// `unlimited_quota` is a flag, not an amount).
const REPORT_QUOTA_COLUMNS: [&str; 4] = ["used_quota", "remain_quota", "used_in_window", "per_day"];

/// A preset report's columns, with what people read in them and what a narrow terminal gives
/// up first: the window a row was measured over, then the yes/no flags; a name or the list of
/// risks is cut.
pub(crate) fn report_columns(names: &[String]) -> Vec<Column> {
    let column = |name: &str| {
        let kind = if REPORT_QUOTA_COLUMNS.contains(&name) {
            ColumnKind::Quota
        } else {
            ColumnKind::Plain
        };
        let column = Column::new(name, kind);
        match name {
            "id" => column.whole(1),
            "name" => column.cut(1, NAME_WIDTH),
            "risks" => column.cut(2, NAME_WIDTH),
            "from_sync" | "from_iso" | "to_sync" | "to_iso" => column.whole(4),
            "unlimited_quota" | "any_ip" | "any_model" | "never_expires" => column.whole(3),
            flag if flag.starts_with("is_") => column.whole(3),
            _ => column.whole(2),
        }
    };
    names.iter().map(|name| column(name)).collect()
}

fn print_statement(
    db: &std::path::Path,
    now: i64,
    (sql, params): (&str, &[SqlParam]),
    how: RowFormat,
    columns: fn(&[String]) -> Vec<Column>,
) -> Result<()> {
    let store = Store::open_for_query(db, now)?;
    let mut statement = store.prepare(sql)?;
    query::bind(&mut statement, params)?;
    let columns = columns(&query::column_names(&statement));
    print_columns(how, &columns, query::rows(&mut statement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::data_column;

    #[test]
    fn people_read_times_and_tools_read_numbers() {
        let row = DiffRow {
            kind: Kind::Changed,
            id: 9,
            name: Value::Null,
            hint: Value::Null,
            field: Some(data_column("expired_time")),
            old: Value::Integer(-1),
            new: Value::Integer(1_766_102_400),
        };
        let shown = values(&row, true);
        assert_eq!(
            shown[5..],
            [
                Value::Text("never".into()),
                Value::Text("2025-12-19 00:00:00Z".into())
            ]
        );
        assert_eq!(
            values(&row, false)[5..],
            [Value::Integer(-1), Value::Integer(1_766_102_400)]
        );
    }
}
