//! How commands show what they found, where more than one shows it the same way: a diff (`diff`
//! and `demo`), a sync summary (`pull` and `demo`) and a report (`query` and `demo`).

use rusqlite::types::Value;

use crate::api::model::DATA_COLUMNS;
use crate::cmd::readable_field;
use crate::error::{Error, Result};
use crate::output::{Column, ColumnKind, Format, RowFormat, print_columns, print_line, print_rows};
use crate::puller::{PullTrace, SyncSummary};
use crate::report::{Report, ReportArgs};
use crate::store::Store;
use crate::store::diff::{Diff, DiffRow, Kind, keys_of};
use crate::store::points::SyncPoint;
use crate::store::query::{self, SqlParam};
use crate::store::sync::SyncStatus;
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

/// The columns every format prints, in order.
const COLUMNS: [&str; 7] = ["kind", "id", "name", "hint", "field", "old", "new"];

/// A diff in `how`'s format; as a table, under a caption that counts it (unless `quiet`).
pub(crate) fn print_diff(diff: &Diff, how: RowFormat, quiet: bool) -> Result<()> {
    let (from, to, rows) = (diff.from, diff.to, &diff.rows);
    let for_people = how.format.is_for_people();
    if how.format == Format::Table {
        if !quiet {
            print_line(&caption(from, to, rows))?;
        }
        if rows.is_empty() {
            return Ok(());
        }
    }
    let columns = COLUMNS.map(String::from);
    print_rows(
        how,
        &columns,
        rows.iter().map(|row| Ok(values(row, for_people))),
    )
}

/// `sync 3 (2025-12-19 08:00:00Z) → sync 5 (2025-12-19 09:00:00Z): 1 added, 2 changed, 0 removed`
fn caption(from: SyncPoint, to: SyncPoint, rows: &[DiffRow]) -> String {
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
    format!("{} → {}: {counts}", from.describe(), to.describe())
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

/// A preset report's columns, with what people read in them.
pub(crate) fn report_columns(names: &[String]) -> Vec<Column> {
    let kind = |name: &str| {
        if REPORT_QUOTA_COLUMNS.contains(&name) {
            ColumnKind::Quota
        } else {
            ColumnKind::Plain
        }
    };
    names
        .iter()
        .map(|name| Column::new(name, kind(name)))
        .collect()
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
