//! `keysync query`: one read-only SQL statement, or a preset report, printed as rows in the
//! format asked for.
//!
//! Ad-hoc SQL and reports take the same path: `store::query` opens the database read-only with
//! the views pinned at "now", refuses writes and binds parameters; `output` prints the rows.

use std::io::Read;
use std::path::Path;

use rusqlite::types::Value;

use crate::cli::{GlobalArgs, QueryArgs, ReportArgs};
use crate::config::{SqlParam, db_path, unix_now};
use crate::error::{Error, Result};
use crate::output::{RowFormat, print_rows};
use crate::report::{self, Report};
use crate::store::query;

/// `keysync query`: lists the reports, or runs one report or statement and prints its rows.
pub fn run(global: &GlobalArgs, args: &QueryArgs) -> Result<()> {
    let how = args.format.row_format();
    if args.report.is_none() {
        report::refuse_flags_without_report(&args.report_args)?;
    }
    if args.list_reports {
        return print_report_list(how);
    }
    let now = unix_now(global.now);
    let db = db_path(global)?;
    match args.report {
        Some(report) => print_report(&db, now, report, &args.report_args, how),
        None => print_query(&db, now, &read_sql(args)?, &args.params, how),
    }
}

/// Prints one report of the database at `db`, as `keysync query --report` does. The report's
/// flags are checked before the database is opened, so a usage error wins.
pub fn print_report(
    db: &Path,
    now: i64,
    report: Report,
    args: &ReportArgs,
    how: RowFormat,
) -> Result<()> {
    let report_query = report.query(args)?;
    print_query(db, now, report_query.sql, &report_query.params, how)
}

/// Runs one statement read-only with "now" pinned at `now` and prints its rows.
fn print_query(db: &Path, now: i64, sql: &str, params: &[SqlParam], how: RowFormat) -> Result<()> {
    let conn = query::open_for_query(db, now)?;
    let mut statement = query::prepare(&conn, sql)?;
    query::bind(&mut statement, params)?;
    let columns = query::column_names(&statement);
    print_rows(how, &columns, query::rows(&mut statement))
}

/// The SQL argument, stdin for `-`, or the `--file`.
fn read_sql(args: &QueryArgs) -> Result<String> {
    match (args.sql.as_deref(), &args.file) {
        (Some("-"), _) => {
            let mut sql = String::new();
            std::io::stdin()
                .read_to_string(&mut sql)
                .map_err(|e| Error::Usage(format!("cannot read the SQL from stdin: {e}")))?;
            Ok(sql)
        }
        (Some(sql), _) => Ok(sql.to_string()),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read --file {}: {e}; pass a UTF-8 file holding one SQL statement",
                path.display()
            ))
        }),
        (None, None) => Err(Error::Internal(
            "clap let through a query with neither SQL nor --file".into(),
        )),
    }
}

/// `--list-reports`: one row per report, through the same formats as query results.
fn print_report_list(how: RowFormat) -> Result<()> {
    let columns = ["report", "flags", "shows"].map(String::from);
    let rows = <Report as clap::ValueEnum>::value_variants()
        .iter()
        .map(|report| {
            Ok(vec![
                Value::Text(report.name()),
                Value::Text(report.flags_text()),
                Value::Text(report.summary()),
            ])
        });
    print_rows(how, &columns, rows)
}
