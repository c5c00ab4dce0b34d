//! The command line, parsed at the boundary. Doc comments here are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::config::{SqlParam, parse_duration, parse_param, parse_time};
use crate::error::EXIT_CODES_HELP;
use crate::output::{Format, RowFormat};
use crate::report::Report;

/// Keep an exact, queryable SQLite record of a CometAPI account's API keys.
///
/// `keysync pull` (from cron) lists every key and records the current state plus every change
/// in one SQLite file; `keysync query` asks it questions. `keysync demo` shows it working
/// without an account.
#[derive(Debug, Parser)]
#[command(name = "keysync", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that work before or after the subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The SQLite database; also KEYSYNC_DB [default: $XDG_DATA_HOME/keysync/keysync.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Print nothing on success (warnings and errors still go to stderr)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log more on stderr (-v info, -vv debug, -vvv trace); the token is never logged
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Take this as the current time (unix seconds or RFC 3339), for reproducible reports
    #[arg(long, global = true, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every key from the API and record it (one transaction; run it from cron)
    ///
    /// The access token comes from COMETAPI_ACCESS_TOKEN or --token-file (never from a flag, which
    /// would show in `ps`). Prints one summary line: `sync 12 ok: 2345 keys, 3 added, 10 changed,
    /// 1 removed (1.4s)`.
    #[command(after_help = EXIT_CODES_HELP)]
    Pull(PullArgs),
    /// Pull twice from a built-in fake CometAPI on 127.0.0.1: no account, no network
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(DemoArgs),
    /// Run one read-only SQL statement, or a preset report, on the database
    ///
    /// The database is opened read-only: a statement that would write (ATTACH included) is
    /// refused with exit 2. Besides the tables (`keys`, `key_versions`, `syncs`) there are views:
    /// `key_info` (keys with ISO times, `status_name`, `is_expired`, `is_exhausted`, ...),
    /// `sync_info` and `clock` (the "now" they use, which --now fixes). Examples:
    ///
    ///   keysync query "SELECT id, name, expired_iso FROM key_info WHERE is_expired"
    ///   keysync query --format csv "SELECT * FROM keys WHERE id = :id" --param id=42
    ///   keysync query --report expiring-soon --within 3d
    #[command(after_help = EXIT_CODES_HELP, verbatim_doc_comment)]
    Query(QueryArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The API's base URL
    #[arg(long, env = "COMETAPI_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
    /// Read the access token from this file (trimmed) instead of COMETAPI_ACCESS_TOKEN
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Also send `New-Api-User: N` (deployments that require it answer 401 without it)
    #[arg(long, env = "COMETAPI_USER_ID", value_name = "N")]
    pub user_id: Option<u64>,
    /// Store full key values in the database (by default only a masked hint and a SHA-256)
    #[arg(long)]
    pub store_secrets: bool,
    /// Print the summary as one JSON object
    #[arg(long)]
    pub json: bool,
    /// Timeout of one HTTP request [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Attempts per page after the first, for rate limits, 5xx and network errors [default: 8]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Wait up to this long for another pull's lock instead of exiting 5 at once
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// The first wait between retries (doubling after each); for tests
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_duration)]
    pub backoff_base: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print the summaries as JSON objects, one per line
    #[arg(long)]
    pub json: bool,
    /// How many keys the fake account starts with
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub keys: usize,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["sql", "file", "report", "list_reports"])
))]
pub struct QueryArgs {
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
    #[command(flatten)]
    pub report_args: ReportArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// The flags that tune `--report`; each report takes some of them (see --list-reports). Their
/// pairing with `--report` is checked by `report`: clap's `requires` is void here because
/// `--report` is in the exclusive SQL-source group.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct ReportArgs {
    /// expiring-soon, forecast: how far ahead to look [default: 7d]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub within: Option<Duration>,
    /// top-consumers: rank by quota used in this window, from the history [default: all time];
    /// forecast: the window the rate of use is measured over [default: 7d]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// top-consumers: how many keys [default: 10]
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// idle: unused for at least this long [default: 30d]
    #[arg(
        long = "for",
        value_name = "DURATION",
        value_parser = parse_duration
    )]
    pub idle_for: Option<Duration>,
    /// low-quota: remain_quota below N quota units [default: 500000, $1 at the gateway's
    /// default rate]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub below: Option<i64>,
}

/// `--format` and `--no-headers`, shared by every command that prints rows.
#[derive(Clone, Copy, Debug, Args)]
pub struct FormatArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Leave out the header row (table, csv, tsv)
    #[arg(long)]
    pub no_headers: bool,
}

impl FormatArgs {
    pub fn row_format(&self) -> RowFormat {
        RowFormat {
            format: self.format,
            headers: !self.no_headers,
        }
    }
}
