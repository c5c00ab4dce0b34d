//! keysync: an exact, queryable SQLite record of a CometAPI account's API keys.
//!
//! [`main`] is the whole program (the binary only calls it): it parses the command line, sets
//! up logging, has [`run`] execute the command, and maps the result to an exit code. Everything
//! else is the crate's own; keysync's integration tests and benchmarks reach the few items they
//! drive directly through [`testing`].

#![warn(unreachable_pub)]

pub(crate) mod alerts;
pub(crate) mod api;
pub(crate) mod cli;
pub(crate) mod cmd;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod facts;
pub(crate) mod fake;
pub(crate) mod output;
pub(crate) mod puller;
pub(crate) mod report;
pub(crate) mod store;
pub(crate) mod terminal;
#[doc(hidden)]
pub mod testing;
pub(crate) mod time;

use std::io::Write;
use std::process::ExitCode;

use clap::FromArgMatches;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::error::{Outcome, Result, exit};
use crate::output::escape_for_terminal;
use crate::terminal::Stream;

/// Runs one command to completion: resolves the settings once, then hands the command its
/// own arguments. An alarm the user asked for (`diff --exit-code`) is an [`Outcome`], not an
/// error.
fn run(cli: Cli) -> Result<Outcome> {
    // The commands of `cli::WITHOUT_SETTINGS`: a bad config file does not stop them.
    match cli.command {
        Command::Completions(args) => {
            return cmd::completions::run(args, cli::command()).map(success);
        }
        Command::Man => return cmd::man::run(cli::command()).map(success),
        _ => {}
    }
    let settings = match Settings::resolve(cli.global.flags()) {
        Ok(settings) => settings,
        Err(error) => return Err(cli.command.could_not_start(error, cli.global.now)),
    };
    match cli.command {
        Command::Pull(args) => cmd::pull::run(&settings, args),
        Command::Check(args) => cmd::check::run(&settings, args),
        Command::Demo(args) => cmd::demo::run(&settings, args).map(success),
        Command::Syncs(args) => cmd::syncs::run(&settings, args).map(success),
        Command::Diff(args) => cmd::diff::run(&settings, args),
        Command::History(args) => cmd::history::run(&settings, args).map(success),
        Command::Prune(args) => cmd::prune::run(&settings, args).map(success),
        Command::Status(args) => cmd::status::run(&settings, args),
        Command::Query(args) => cmd::query::run(&settings, args).map(success),
        Command::Usage(args) => cmd::usage::run(&settings, args).map(success),
        Command::Html(args) => cmd::html::run(&settings, args).map(success),
        Command::Metrics(args) => cmd::metrics::run(&settings, args).map(success),
        Command::Completions(_) | Command::Man => unreachable!("started above"),
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
fn init_logging(verbose: u8) {
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

/// The whole program: parse the command line, set up logging, run the command, and map the
/// outcome (or the error, or a panic) to the exit code, in one place.
pub fn main() -> ExitCode {
    report_panics_as_errors();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(cli.global.verbose);
    let code = run_and_report(cli);
    #[cfg(feature = "test-support")]
    write_peak_memory_for_tests();
    code
}

/// Runs the command and maps its result (or panic) to the exit code.
fn run_and_report(cli: Cli) -> ExitCode {
    match std::panic::catch_unwind(move || run(cli)) {
        Ok(Ok(outcome)) => outcome.exit_code(),
        Ok(Err(error)) => {
            // Not `eprintln!`, which panics on a closed stderr; upstream text in the message
            // must not reach a terminal as control characters.
            let message = escape_for_terminal(&error.to_string()).into_owned();
            let prefix = terminal::error_prefix();
            let _ = writeln!(std::io::stderr(), "{prefix}{message}");
            error.exit_code()
        }
        // The panic hook has printed the error; a panic must not exit 1 (an alarm).
        Err(_) => ExitCode::from(exit::INTERNAL),
    }
}

/// Test support only: `KEYSYNC_DEBUG_PEAK_MEMORY_FILE=PATH` writes the process's peak resident
/// memory (`VmHWM`, in KiB) to PATH as it ends. The memory tests cannot read it from `wait4`:
/// a child's `ru_maxrss` starts at its parent's resident size when it is spawned (vfork or
/// fork, until exec), and the test process is often larger than the pull it measures.
#[cfg(feature = "test-support")]
fn write_peak_memory_for_tests() {
    let Some(path) = std::env::var_os("KEYSYNC_DEBUG_PEAK_MEMORY_FILE") else {
        return;
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .map(str::trim)
        .unwrap_or("unknown");
    let _ = std::fs::write(path, peak);
}

/// The command line, or the exit code after clap printed help, the version or a usage error.
/// Usage errors start `keysync: error:` like every other error (clap's own `error:` would be a
/// second prefix for scripts and log searches to know); help goes to stdout, coloured as
/// `terminal::colour` decides for it.
fn parse() -> Result<Cli, ExitCode> {
    let help_colour = if terminal::colour(Stream::Stdout) {
        clap::ColorChoice::Always
    } else {
        clap::ColorChoice::Never
    };
    let command = cli::command().color(help_colour);
    let error = match command.try_get_matches() {
        Ok(matches) => match Cli::from_arg_matches(&matches) {
            Ok(cli) => return Ok(cli),
            Err(error) => error,
        },
        Err(error) => error,
    };
    let code = ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(exit::USAGE));
    if !error.use_stderr() {
        // --help and --version; a closed stdout is no failure of theirs.
        let _ = error.print();
        return Err(code);
    }
    let rendered = error.render();
    let mut text = if terminal::colour(Stream::Stderr) {
        rendered.ansi().to_string()
    } else {
        rendered.to_string()
    };
    if rendered.to_string().starts_with("error:") {
        text.insert_str(0, "keysync: ");
    }
    let _ = write!(std::io::stderr(), "{text}");
    Err(code)
}

/// A panic, on any thread, is reported like every other error, in one line: `keysync: error:
/// internal error: keysync panicked at FILE:LINE: MESSAGE`. With `RUST_BACKTRACE` set, Rust's
/// own report and the backtrace follow it.
fn report_panics_as_errors() {
    let rust_report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let place = info
            .location()
            .map(|at| format!(" at {}:{}", at.file(), at.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "{}internal error: keysync panicked{place}: {}; this is a bug, please report it",
            terminal::error_prefix(),
            escape_for_terminal(message)
        );
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value != "0") {
            rust_report(info);
        }
    }));
}
