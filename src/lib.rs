//! keysync: an exact, queryable SQLite record of a CometAPI account's API keys.
//!
//! `run` executes a parsed command line; `main` only parses, sets up logging and maps the
//! result to an exit code, so tests can drive everything here without spawning a process.

// Public: what `main`, the integration tests and the benchmarks use. The rest is the crate's.
pub mod api;
pub mod cli;
pub(crate) mod cmd;
pub(crate) mod config;
pub mod error;
pub(crate) mod facts;
pub mod fake;
pub(crate) mod output;
pub(crate) mod puller;
pub(crate) mod report;
pub mod store;
pub mod terminal;
pub(crate) mod time;

pub use output::escape_for_terminal;

use clap::CommandFactory;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::error::{Outcome, Result};

/// Runs one command to completion: resolves the settings once, then hands the command its
/// own arguments. An alarm the user asked for (`diff --exit-code`) is an [`Outcome`], not an
/// error.
pub fn run(cli: Cli) -> Result<Outcome> {
    let settings = match Settings::resolve(cli.global.flags()) {
        Ok(settings) => settings,
        Err(error) => return Err(cli.command.could_not_start(error, cli.global.now)),
    };
    match cli.command {
        Command::Pull(args) => cmd::pull::run(&settings, args).map(success),
        Command::Demo(args) => cmd::demo::run(&settings, args).map(success),
        Command::Syncs(args) => cmd::syncs::run(&settings, args).map(success),
        Command::Diff(args) => cmd::diff::run(&settings, args),
        Command::History(args) => cmd::history::run(&settings, args).map(success),
        Command::Prune(args) => cmd::prune::run(&settings, args).map(success),
        Command::Status(args) => cmd::status::run(&settings, args),
        Command::Query(args) => cmd::query::run(&settings, args).map(success),
        Command::Usage(args) => cmd::usage::run(&settings, args).map(success),
        Command::Html(args) => cmd::html::run(&settings, args).map(success),
        Command::Completions(args) => cmd::completions::run(args, Cli::command()).map(success),
    }
}

/// Most commands either succeed or fail; only some can raise an alarm.
fn success((): ()) -> Outcome {
    Outcome::Success
}

/// Logs go to stderr, warnings by default; `-v` adds info, `-vv` debug, `-vvv` trace. Only
/// keysync's own events are shown: dependencies stay at warn, so no HTTP library ever prints a
/// header. Each line starts `keysync: warning:` (or `error:`, `info:`, ...) like keysync's
/// other messages; colour as `terminal::colour` decides for stderr; while a progress bar is
/// drawn, lines go above it.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::new(format!("warn,keysync={level}"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(terminal::LogWriter)
        .with_ansi(terminal::colour(terminal::Stream::Stderr))
        // A closed stderr (`keysync pull -v 2>&1 | head -1`) drops log lines; by default the
        // subscriber would report that with `eprintln!`, which panics on that same stderr.
        .log_internal_errors(false)
        .event_format(terminal::LogFormat)
        .init();
}
