//! The command line, parsed at the boundary. Doc comments here are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::api::model::DATA_COLUMNS;
use crate::config::{
    Profile, SqlParam, SyncRef, parse_duration, parse_field, parse_interval, parse_param,
    parse_positive_duration, parse_retries, parse_sync_ref, parse_time, parse_timeout,
};
use crate::error::EXIT_CODES_HELP;
use crate::output::{Format, RowFormat};
use crate::report::Report;

/// Keep an exact, queryable SQLite record of a CometAPI account's API keys.
///
/// `keysync pull` (from cron) lists every key and records the current state plus every change
/// in one SQLite file. `keysync demo` shows it working without an account.
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
    /// The config file [default: $XDG_CONFIG_HOME/keysync/config.toml]
    #[arg(long, global = true, env = "KEYSYNC_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Use this [profiles.NAME] of the config file [default: the `default` profile, if any]
    #[arg(long, global = true, env = "KEYSYNC_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// The profile's settings, loaded by `run` from the config file.
    #[arg(skip)]
    pub profile_settings: Profile,
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
    /// The sync log, newest first: when each pull ran, what it found, how it ended
    ///
    /// Columns: id, time, status, keys, added, changed, removed, duration (seconds), error.
    #[command(after_help = EXIT_CODES_HELP)]
    Syncs(SyncsArgs),
    /// What changed between two syncs: one row per added or removed key, one per changed field
    ///
    /// FROM and TO are each a sync id, an RFC 3339 time (the last good sync that started at or
    /// before it) or a duration ago (`24h`, `7d`). Without them: the two most recent good syncs;
    /// FROM alone: from there to the latest. Failed syncs are never a point. Values appear as
    /// stored (booleans 0/1, `extra` as one JSON field); table and markdown show times readable.
    #[command(after_help = EXIT_CODES_HELP)]
    Diff(DiffArgs),
    /// Every recorded version of one key, oldest first, with the syncs it was valid between
    #[command(after_help = EXIT_CODES_HELP)]
    History(HistoryArgs),
    /// Delete history older than a retention period; the state at every kept sync is unchanged
    ///
    /// Deletes the syncs that started before the cutoff and the key versions that ended at or
    /// before the oldest kept sync. The latest good sync is always kept. Takes the pull lock.
    #[command(after_help = EXIT_CODES_HELP)]
    Prune(PruneArgs),
    /// The database at a glance: size, schema, key counts, the last sync and the last good one
    ///
    /// With --max-age, exit 1 when the last good sync (ok or partial) is older than that, or the
    /// last sync failed: point monitoring at `keysync status --max-age 2h`.
    #[command(after_help = EXIT_CODES_HELP)]
    Status(StatusArgs),
    /// Print a shell completion script, e.g. `keysync completions bash > ~/.local/share/bash-completion/completions/keysync`
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The API's base URL; also COMETAPI_BASE_URL [default: https://api.cometapi.com]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Read the access token from this file (trimmed) instead of COMETAPI_ACCESS_TOKEN
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Also send `New-Api-User: N` (deployments that require it answer 401 without it); also
    /// COMETAPI_USER_ID
    #[arg(long, value_name = "N")]
    pub user_id: Option<u64>,
    /// Store full key values in the database (by default only a masked hint and a SHA-256)
    #[arg(long)]
    pub store_secrets: bool,
    /// Print the summary as one JSON object
    #[arg(long)]
    pub json: bool,
    /// Timeout of one HTTP request, at least 100ms [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Attempts per page after the first, for rate limits, 5xx and network errors (0 to 100)
    /// [default: 8]
    #[arg(long, value_name = "N", value_parser = parse_retries)]
    pub retries: Option<u32>,
    /// Pages requested at once after page 1, 1 to 8 (1 = one at a time); halved on rate limits
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=8))]
    pub concurrency: Option<u16>,
    /// Keep running: a pull every DURATION (start to start, at least 1s) until SIGINT/SIGTERM
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub every: Option<Duration>,
    /// Ping this healthchecks.io-style URL: URL/start, then URL or URL/fail
    #[arg(long, value_name = "URL")]
    pub ping_url: Option<String>,
    /// Also trust the CA certificates in this PEM file (a private CA or a TLS-inspecting proxy)
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
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
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub within: Option<Duration>,
    /// top-consumers: rank by quota used in this window, from the history [default: all time];
    /// forecast: the window the rate of use is measured over [default: 7d]
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub since: Option<Duration>,
    /// top-consumers: how many keys [default: 10]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// idle: unused for at least this long [default: 30d]
    #[arg(
        long = "for",
        value_name = "DURATION",
        value_parser = parse_positive_duration
    )]
    pub idle_for: Option<Duration>,
    /// low-quota: remain_quota below N quota units [default: 500000, $1 at the gateway's
    /// default rate]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub below: Option<i64>,
}

#[derive(Debug, Args)]
pub struct SyncsArgs {
    /// Show at most this many syncs (0: all)
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: u32,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier point: sync id, RFC 3339 time or duration ago [default: the second most
    /// recent good sync]
    #[arg(value_name = "FROM", value_parser = parse_sync_ref)]
    pub from: Option<SyncRef>,
    /// The later point [default: the most recent good sync]
    #[arg(value_name = "TO", value_parser = parse_sync_ref)]
    pub to: Option<SyncRef>,
    /// Exit 1 when there are differences (0 when there are none), for cron alerts
    #[arg(long)]
    pub exit_code: bool,
    #[command(flatten)]
    pub fields: FieldArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The key: its id, or its exact (current or last) name
    #[arg(value_name = "KEY")]
    pub key: String,
    #[command(flatten)]
    pub fields: FieldArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the syncs that started within this long before now, e.g. 90d
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub keep: Duration,
    /// Print what would be deleted, and delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Afterwards, rewrite the database file to give the freed space back to the disk
    #[arg(long)]
    pub vacuum: bool,
    /// Wait up to this long for a running pull's lock instead of exiting 5 at once
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
}

/// `--fields` / `--ignore`: which of the versioned data fields a command looks at.
#[derive(Clone, Debug, Default, Args)]
pub struct FieldArgs {
    /// Only these fields, comma-separated (e.g. status,expired_time)
    #[arg(long, value_name = "FIELD,...", value_delimiter = ',', value_parser = parse_field,
          conflicts_with = "ignore")]
    pub fields: Vec<&'static str>,
    /// Every field but these, comma-separated (e.g. accessed_time,used_quota,remain_quota)
    #[arg(long, value_name = "FIELD,...", value_delimiter = ',', value_parser = parse_field)]
    pub ignore: Vec<&'static str>,
}

impl FieldArgs {
    /// The positions in `DATA_COLUMNS` of the selected fields, in column order.
    pub fn selected(&self) -> Vec<usize> {
        DATA_COLUMNS
            .iter()
            .enumerate()
            .filter(|(_, name)| self.fields.is_empty() || self.fields.contains(name))
            .filter(|(_, name)| !self.ignore.contains(name))
            .map(|(i, _)| i)
            .collect()
    }
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

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit 1 when the last good sync is older than this, or the last sync failed
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub max_age: Option<Duration>,
    /// Print the status as one JSON object
    #[arg(long)]
    pub json: bool,
}
