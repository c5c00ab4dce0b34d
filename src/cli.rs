//! The command line, parsed at the boundary: the command enum and the global flags. Each
//! command's own flags live with the command (`cmd::*::Args`). Doc comments here are the
//! `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cmd;
use crate::config::Flags;
use crate::error::{EXIT_CODES_HELP, Error};
use crate::time::parse_time;

/// Keep an exact, queryable SQLite record of a CometAPI account's API keys.
///
/// `keysync pull` (from cron) lists every key and records the current state plus every change
/// in one SQLite file. `keysync demo` shows it working without an account.
#[derive(Debug, Parser)]
#[command(name = "keysync", version, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that work before or after the subcommand.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// The SQLite database; also KEYSYNC_DB [default: $XDG_DATA_HOME/keysync/keysync.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Print nothing on success (warnings and errors still go to stderr)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log more on stderr (-v info, -vv debug, -vvv trace); the token is never logged
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Take this as the current time, for reproducible reports: unix seconds, an RFC 3339 time,
    /// a date (2026-12-01 is its 00:00:00Z, UTC), or today / yesterday (from the system clock)
    #[arg(long, global = true, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<i64>,
    /// The config file [default: $XDG_CONFIG_HOME/keysync/config.toml]
    #[arg(long, global = true, env = "KEYSYNC_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Use this [profiles.NAME] of the config file [default: the `default` profile, if any]
    #[arg(long, global = true, env = "KEYSYNC_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List every key from the API and record it (one transaction; run it from cron)
    ///
    /// The access token comes from COMETAPI_ACCESS_TOKEN or --token-file (never from a flag, which
    /// would show in `ps`). Prints one summary line: `sync 12 ok: 2345 keys, 3 added, 10 changed,
    /// 1 removed (1.4s)`.
    #[command(after_help = EXIT_CODES_HELP)]
    Pull(cmd::pull::Args),
    /// Pull twice from a built-in fake CometAPI on 127.0.0.1: no account, no network
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(cmd::demo::Args),
    /// Run one read-only SQL statement, or a preset report, on the database
    ///
    /// The database is opened read-only: a statement that would write (ATTACH included) is
    /// refused with exit 2. Besides the tables (`keys`, `key_versions`, `syncs`) there are views:
    /// `key_info` (keys with ISO times, `status_name`, `is_expired`, `is_exhausted`, ...),
    /// `sync_info`, `clock` (the "now" they use, which --now fixes), `good_syncs` (the ok and
    /// partial syncs) and `key_usage` (quota used per key since a sync). Examples:
    ///
    ///   keysync query "SELECT id, name, expired_iso FROM key_info WHERE is_expired"
    ///   keysync query --format csv "SELECT * FROM keys WHERE id = :id" --param id=42
    ///   keysync query --report expiring-soon --within 3d
    #[command(after_help = EXIT_CODES_HELP, verbatim_doc_comment)]
    Query(cmd::query::Args),
    /// The sync log, newest first: when each pull ran, what it found, how it ended
    ///
    /// Columns: id, time, status, keys, added, changed, removed, duration (seconds), error.
    #[command(after_help = EXIT_CODES_HELP)]
    Syncs(cmd::syncs::Args),
    /// What changed between two syncs: one row per added or removed key, one per changed field
    ///
    /// FROM and TO are each a sync id, or a time: the last good sync that started at or before
    /// it, named as an RFC 3339 time, a date (`2026-11-01`, 00:00:00Z UTC), `today`,
    /// `yesterday` or a duration ago (`24h`, `7d`). Without them: the two most recent good syncs;
    /// FROM alone: from there to the latest. Failed syncs are never a point. Values appear as
    /// stored (booleans 0/1, `extra` as one JSON field); table and markdown show times readable.
    #[command(after_help = EXIT_CODES_HELP)]
    Diff(cmd::diff::Args),
    /// Every recorded version of one key, oldest first, with the syncs it was valid between
    #[command(after_help = EXIT_CODES_HELP)]
    History(cmd::history::Args),
    /// Delete history older than a retention period; the state at every kept sync is unchanged
    ///
    /// Deletes the syncs that started before the cutoff and the key versions that ended at or
    /// before the oldest kept sync. The latest good sync is always kept. Takes the pull lock.
    #[command(after_help = EXIT_CODES_HELP)]
    Prune(cmd::prune::Args),
    /// The database at a glance: size, schema, key counts, the last sync and the last good one
    ///
    /// With --max-age, exit 1 when the last good sync (ok or partial) is older than that, or the
    /// last sync failed: point monitoring at `keysync status --max-age 2h`.
    #[command(after_help = EXIT_CODES_HELP)]
    Status(cmd::status::Args),
    /// What each key used, in quota and in US dollars, between consecutive good syncs
    ///
    /// Without --every: one row per key that used anything in the window, largest first
    /// (id, name, used, usd, share). With --every day|week|month: one row per period and key
    /// (period, id, name, used, usd). The README's "Usage and dollars" states the rule.
    #[command(after_help = EXIT_CODES_HELP)]
    Usage(cmd::usage::Args),
    /// Write a self-contained HTML report: use in dollars, key status, expiring, changes, exposed
    ///
    /// One file with inline CSS and SVG charts, no script and no external URL, to open offline,
    /// print or attach to a mail: daily use per key in US dollars with the top consumers (the
    /// numbers of `keysync usage`), live keys by effective status at each good sync, keys
    /// expiring in the next 14 days, what changed in the window, and the `unrestricted`
    /// report's keys. The window is --since up to now (--now fixes it), or one calendar
    /// month with --month. Examples:
    ///
    ///   keysync html --since 7d --out ~/reports/api-keys.html
    ///   keysync -q html --since 7d --out - | mail -a 'Content-Type: text/html' -s keys ops@x.org
    #[command(after_help = EXIT_CODES_HELP, verbatim_doc_comment)]
    Html(cmd::html::Args),
    /// Print the database's facts as Prometheus metrics (text format 0.0.4), or write them to a file
    ///
    /// Live keys by status, the account's quota use and price, the latest sync, and per live
    /// key its status, quota used and left, expiry and last use; every family a gauge. For
    /// node_exporter's textfile collector, write the file into its directory:
    ///
    ///   keysync metrics --out /var/lib/prometheus/node-exporter/keysync.prom
    ///
    /// `pull --metrics-file FILE` writes it after every pull, and `pull --every D
    /// --metrics-listen ADDR` serves it at http://ADDR/metrics.
    #[command(after_help = EXIT_CODES_HELP, verbatim_doc_comment)]
    Metrics(cmd::metrics::Args),
    /// Print a shell completion script, e.g. `keysync completions bash > ~/.local/share/bash-completion/completions/keysync`
    Completions(cmd::completions::Args),
}

impl GlobalArgs {
    /// What `config` needs from the global flags, as plain values.
    pub(crate) fn flags(&self) -> Flags {
        Flags {
            db: self.db.clone(),
            quiet: self.quiet,
            now: self.now,
            config: self.config.clone(),
            profile: self.profile.clone(),
        }
    }
}

impl Command {
    /// `error`, from resolving the settings before the command could start, as the command
    /// reports it: `pull --json` still prints its line, so that a monitor reading stdout learns
    /// why.
    pub(crate) fn could_not_start(&self, error: Error, now: Option<i64>) -> Error {
        match self {
            Command::Pull(args) => cmd::pull::report_unresolved(args, now, error),
            _ => error,
        }
    }
}
