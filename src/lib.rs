//! keysync: an exact, queryable SQLite record of a CometAPI account's API keys.
//!
//! `run` executes a parsed command line; `main` only parses, sets up logging and maps the
//! result to an exit code, so tests can drive everything here without spawning a process.

pub mod api;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod error;
pub mod fake;
pub mod output;
pub mod ping;
pub mod progress;
pub mod report;
pub mod shutdown;
pub mod store;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::{Error, Outcome, Result};

/// Runs one command to completion. An alarm the user asked for (`diff --exit-code`) is an
/// [`Outcome`], not an error.
pub fn run(mut cli: Cli) -> Result<Outcome> {
    cli.global.profile_settings =
        config::file::load_profile(cli.global.config.as_deref(), cli.global.profile.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        match &cli.command {
            Command::Pull(args) => cmd::pull::run(&cli.global, args).await.map(success),
            Command::Demo(args) => cmd::demo::run(&cli.global, args).await.map(success),
            Command::Syncs(args) => cmd::syncs::run(&cli.global, args).map(success),
            Command::Diff(args) => cmd::diff::run(&cli.global, args),
            Command::History(args) => cmd::history::run(&cli.global, args).map(success),
            Command::Prune(args) => cmd::prune::run(&cli.global, args).await.map(success),
            Command::Status(args) => cmd::status::run(&cli.global, args),
            Command::Query(args) => cmd::query::run(&cli.global, args).map(success),
            Command::Completions(args) => cmd::completions::run(args).map(success),
        }
    })
}

/// Most commands either succeed or fail; only some can raise an alarm.
fn success((): ()) -> Outcome {
    Outcome::Success
}

/// Logs go to stderr, warnings by default; `-v` adds info, `-vv` debug, `-vvv` trace. Only
/// keysync's own events are shown: dependencies stay at warn, so no HTTP library ever prints a
/// header. No colour unless stderr is a terminal.
pub fn init_logging(global: &GlobalArgs) {
    let level = match global.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::new(format!("warn,keysync={level}"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        // A closed stderr (`keysync pull -v 2>&1 | head -1`) drops log lines; by default the
        // subscriber would report that with `eprintln!`, which panics on that same stderr.
        .log_internal_errors(false)
        .init();
}
