//! `keysync query`: one read-only SQL statement, or a preset report, printed as rows in the
//! format asked for.
//!
//! Ad-hoc SQL and reports take the same path: `store::query` opens the database read-only with
//! the views pinned at "now", refuses writes and binds parameters; `output` prints the rows.

use std::io::Read;
use std::path::PathBuf;

use clap::ArgGroup;
use rusqlite::types::Value;

use crate::cmd::FormatArgs;
use crate::cmd::show::{print_query, print_report};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::output::{RowFormat, print_line, print_rows};
use crate::report::{self, Report, ReportArgs};
use crate::store::query::{SqlParam, parse_param};

#[derive(Debug, clap::Args)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["sql", "file", "report", "list_reports"])
))]
pub(crate) struct Args {
    /// The SQL: one statement; `-` reads it from stdin
    #[arg(value_name = "SQL")]
    pub sql: Option<String>,
    /// Read the SQL from this file
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Bind :NAME to VALUE (repeatable). `42` binds an INTEGER, `0.5` a REAL, anything else
    /// (`007`, `abc`) TEXT
    #[arg(
        long = "param",
        value_name = "NAME=VALUE",
        value_parser = parse_param,
        conflicts_with = "report"
    )]
    pub params: Vec<SqlParam>,
    /// Run a preset report instead of SQL (see --list-reports)
    #[arg(long, value_enum, value_name = "NAME")]
    pub report: Option<Report>,
    /// List the preset reports and the flags each takes, one line each
    #[arg(long)]
    pub list_reports: bool,
    /// With --report: print the report's SQL instead of running it, headed by the
    /// `keysync query --file ... --param ...` line that runs it with the flags given
    #[arg(long)]
    pub show_sql: bool,
    #[command(flatten)]
    pub report_args: ReportArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// `keysync query`: lists the reports, or runs one report or statement and prints its rows.
pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
    let how = args.format.row_format();
    if args.report.is_none() {
        report::refuse_flags_without_report(&args.report_args)?;
    }
    if args.list_reports {
        return print_report_list(how);
    }
    if args.show_sql {
        let Some(report) = args.report else {
            return Err(Error::Usage(
                "--show-sql prints a preset report's SQL: add --report NAME (see \
                 --list-reports)"
                    .into(),
            ));
        };
        let script = report
            .query(&args.report_args, settings.now())?
            .script(report, settings.now);
        return print_line(script.trim_end());
    }
    let now = settings.now();
    let db = settings.db()?;
    match args.report {
        Some(report) => print_report(db, now, report, &args.report_args, how),
        None => print_query(db, now, &read_sql(&args)?, &args.params, how),
    }
}

/// The SQL argument, stdin for `-`, or the `--file`.
fn read_sql(args: &Args) -> Result<String> {
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
