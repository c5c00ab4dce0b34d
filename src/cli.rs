//! The command line, parsed at the boundary: the command enum and the global flags. Each
//! command's own flags live with the command (`cmd::*::Args`). Doc comments here are the
//! `--help` text.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::cmd;
use crate::config::Flags;
use crate::error::{EXIT_CODES, Error};
use crate::time::parse_time;

/// Keep an exact, queryable SQLite record of a CometAPI account's API keys.
///
/// `keysync pull` (from cron) lists every key and records the current state plus every change
/// in one SQLite file. `keysync demo` shows it working without an account.
#[derive(Debug, Parser)]
#[command(name = "keysync")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that work before or after the subcommand. Under their own heading, which clap shows
/// after the command's own options, on every subcommand.
#[derive(Debug, Args)]
#[command(next_help_heading = GLOBAL_OPTIONS)]
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
    /// [default: the system clock]
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
    Pull(cmd::pull::Args),
    /// Pull twice from a built-in fake CometAPI on 127.0.0.1: no account, no network
    Demo(cmd::demo::Args),
    /// Run one read-only SQL statement, or a preset report, on the database
    ///
    /// The database is opened read-only: a statement that would write (ATTACH included) is
    /// refused with exit 2. The tables: `keys` (each key's current values), `key_versions`
    /// (every version of each key, valid from one sync to another), `syncs` (one row per pull),
    /// `account` (the account the file belongs to), `use_ledger` (quota used per key between
    /// good syncs), `key_digests` (what each key was last written from), `alarms`,
    /// `notify_targets` and `alarm_deliveries` (what `check` found and told each webhook) and
    /// `refinery_schema_history` (the schema's migrations). The views: `key_info` (keys with
    /// ISO times, `status_name`, `is_expired`, `is_exhausted`, ...), `sync_info`, `clock` (the
    /// "now" they use, which --now fixes), `good_syncs` (the ok and partial syncs) and
    /// `key_usage` (quota used per key since a sync). Examples:
    ///
    ///   keysync query "SELECT id, name, expired_iso FROM key_info WHERE is_expired"
    ///   keysync query --format csv "SELECT * FROM keys WHERE id = :id" --param id=42
    ///   keysync query --report expiring-soon --within 3d
    #[command(verbatim_doc_comment)]
    Query(cmd::query::Args),
    /// The sync log, newest first: when each pull ran, what it found, how it ended
    ///
    /// Columns: id, time, status, keys, added, changed, removed, duration (seconds), error.
    Syncs(cmd::syncs::Args),
    /// What changed between two syncs: one row per added or removed key, one per changed field
    ///
    /// FROM and TO are each a sync id, or a time: the last good sync that started at or before
    /// it, named as an RFC 3339 time, a date (`2026-11-01`, 00:00:00Z UTC), `today`,
    /// `yesterday` or a duration ago (`24h`, `7d`). Without them: the two most recent good syncs;
    /// FROM alone: from there to the latest. Failed syncs are never a point. Values appear as
    /// stored (booleans 0/1, `extra` as one JSON field); table and markdown show times readable.
    Diff(cmd::diff::Args),
    /// Every recorded version of one key, oldest first, with the syncs it was valid between
    History(cmd::history::Args),
    /// Delete history older than a retention period; the state at every kept sync is unchanged
    ///
    /// Deletes the syncs that started before the cutoff and the key versions that ended at or
    /// before the oldest kept sync. The latest good sync is always kept. Takes the pull lock.
    Prune(cmd::prune::Args),
    /// The database at a glance: size, schema, key counts, the last sync and the last good one
    ///
    /// With --max-age, exit 1 when the last good sync (ok or partial) is older than that, or the
    /// last sync failed: point monitoring at `keysync status --max-age 2h`.
    Status(cmd::status::Args),
    /// Evaluate the alert rules; print one row per firing alarm, exit 1 when any fires
    ///
    /// Columns: rule, subject (a key id or `account`), name, value, threshold, since (when the
    /// alarm was first seen firing), message. The rules are set in the profile's
    /// [profiles.NAME.alerts] table or by the flags under "Alert rules" (the flag wins). With
    /// --notify URL, alarms that started or resolved since the last delivery to URL are POSTed
    /// to it once; a failed delivery is exit 4 and is sent again by the next run. Example (from
    /// cron):
    ///
    ///   keysync pull -q --check --notify "$SLACK_WEBHOOK" --notify-format slack
    #[command(verbatim_doc_comment)]
    Check(cmd::check::Args),
    /// What each key used, in quota and in US dollars, between consecutive good syncs
    ///
    /// Without --every: one row per key that used anything in the window, largest first
    /// (id, name, used, usd, share). With --every day|week|month: one row per period and key
    /// (period, id, name, used, usd). A key's use between two consecutive good syncs is the
    /// signed difference of its used_quota (a refund is negative), dated and priced at the
    /// later one.
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
    #[command(verbatim_doc_comment)]
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
    #[command(verbatim_doc_comment)]
    Metrics(cmd::metrics::Args),
    /// Print a shell completion script, e.g. `keysync completions bash > ~/.local/share/bash-completion/completions/keysync`
    Completions(cmd::completions::Args),
    /// Print the manual page (roff), e.g. `keysync man > ~/.local/share/man/man1/keysync.1`
    Man,
}

/// The heading of the global flags in `--help` and in the man page.
pub(crate) const GLOBAL_OPTIONS: &str = "Global options";

/// The commands that read no settings and no database: the global flags mean nothing to them,
/// so their `--help` leaves them out and `run` starts them before the settings are resolved.
pub(crate) const WITHOUT_SETTINGS: [&str; 2] = ["completions", "man"];

/// The whole command line as clap models it: `Cli`'s derive plus what derive cannot say. The
/// version text is computed ([`cmd::version::text`]); the exit codes follow the top-level help
/// only (a subcommand's help is about that command); the commands of [`WITHOUT_SETTINGS`] get
/// hidden twins of the global flags, which clap then does not propagate to them. Each of these
/// holds for a new subcommand without a word about it.
pub(crate) fn command() -> clap::Command {
    let command = Cli::command()
        .version(cmd::version::text())
        .after_help(exit_codes_help());
    let hidden_globals: Vec<clap::Arg> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .map(|arg| arg.clone().hide(true))
        .collect();
    command.mut_subcommands(|sub| {
        if WITHOUT_SETTINGS.contains(&sub.get_name()) {
            sub.args(hidden_globals.iter().cloned())
        } else {
            sub
        }
    })
}

/// The `--help` footer: [`EXIT_CODES`], each meaning wrapped under itself.
fn exit_codes_help() -> String {
    const WIDTH: usize = 80;
    let mut text = String::from("Exit codes:");
    for (code, meaning) in EXIT_CODES {
        let indent = 2 + code.len() + 2;
        text.push_str(&format!("\n  {code}  "));
        let mut column = indent;
        for (i, word) in meaning.split(' ').enumerate() {
            if i > 0 && column + 1 + word.len() > WIDTH {
                text.push_str(&format!("\n{:indent$}", ""));
                column = indent;
            } else if i > 0 {
                text.push(' ');
                column += 1;
            }
            text.push_str(word);
            column += word.len();
        }
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{first_column, migrated_in_memory};

    /// `command` and every subcommand below it, built as clap builds them to parse.
    fn built() -> clap::Command {
        let mut command = command();
        command.build();
        command
    }

    fn help_of(command: &mut clap::Command) -> String {
        command.render_long_help().to_string()
    }

    #[test]
    fn every_subcommand_shows_the_global_options_last_and_no_exit_codes() {
        let mut top = built();
        let top_help = help_of(&mut top);
        assert!(
            top_help.contains("\nExit codes:\n  0  success\n"),
            "{top_help}"
        );
        for sub in top.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            let help = help_of(sub);
            assert!(!help.contains("Exit codes"), "{name}: {help}");
            if name == "help" {
                continue;
            }
            let globals = sub.get_arguments().filter(|arg| arg.is_global_set());
            for arg in globals.filter(|arg| !arg.is_hide_set()) {
                assert_eq!(arg.get_help_heading(), Some(GLOBAL_OPTIONS), "{name}");
            }
            if WITHOUT_SETTINGS.contains(&name.as_str()) {
                assert!(
                    !help.contains(GLOBAL_OPTIONS) && !help.contains("--db"),
                    "{help}"
                );
                continue;
            }
            // After the command's own options, whatever they are.
            let own = help.find("\nOptions:\n").unwrap_or(0);
            let global = help.find(&format!("\n{GLOBAL_OPTIONS}:\n"));
            assert!(global.is_some_and(|at| at > own), "{name}: {help}");
            assert!(help[global.unwrap()..].contains("-q, --quiet"), "{name}");
        }
    }

    #[test]
    fn the_exit_codes_are_listed_whole_under_80_columns() {
        let help = exit_codes_help();
        assert!(help.lines().all(|line| line.len() <= 80), "{help}");
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        for (code, meaning) in EXIT_CODES {
            assert!(
                words(&help).contains(&format!("{code} {meaning}")),
                "{code}"
            );
        }
        assert!(help.contains("\n  130, 143  a one-shot pull"), "{help}");
    }

    /// The defaults that live in constants, as their flags' help states them.
    #[test]
    fn flags_state_the_defaults_in_force() {
        use crate::api::client::{DEFAULT_CONCURRENCY, DEFAULT_RETRIES, DEFAULT_TIMEOUT};
        let top = built();
        let pull = top.find_subcommand("pull").unwrap();
        let help = |flag: &str| {
            let arg = pull.get_arguments().find(|a| a.get_id() == flag).unwrap();
            arg.get_long_help().or(arg.get_help()).unwrap().to_string()
        };
        let timeout = crate::time::readable_duration(DEFAULT_TIMEOUT);
        for (flag, default) in [
            ("concurrency", DEFAULT_CONCURRENCY.to_string()),
            ("retries", DEFAULT_RETRIES.to_string()),
            ("timeout", timeout.to_string()),
            ("base_url", crate::config::DEFAULT_BASE_URL.to_string()),
        ] {
            let text = help(flag);
            assert!(
                text.ends_with(&format!("[default: {default}]")),
                "{flag}: {text}"
            );
        }
    }

    /// Read from the real schema, so that a migration that adds a table or view fails here
    /// until `query --help` names it.
    #[test]
    fn query_help_names_every_table_and_view() {
        let conn = migrated_in_memory();
        let names: Vec<String> = first_column(
            &conn,
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        );
        assert!(names.len() >= 11, "{names:?}");
        let top = built();
        let query = top.find_subcommand("query").unwrap();
        let about = query.get_long_about().unwrap().to_string();
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !about.contains(&format!("`{name}`")))
            .collect();
        assert!(missing.is_empty(), "query --help does not name {missing:?}");
    }

    #[test]
    fn completions_offer_field_and_report_names() {
        let top = built();
        let values = |command: &str, flag: &str| -> Vec<String> {
            let sub = top.find_subcommand(command).unwrap();
            let arg = sub.get_arguments().find(|a| a.get_id() == flag).unwrap();
            arg.get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect()
        };
        let fields: Vec<String> = crate::api::model::DATA_COLUMNS.map(String::from).to_vec();
        for command in ["diff", "history"] {
            assert_eq!(values(command, "fields"), fields);
            assert_eq!(values(command, "ignore"), fields);
        }
        assert_eq!(values("query", "report")[0], "expiring-soon");
    }
}
