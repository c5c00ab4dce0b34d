//! The `keysync` binary: parse, set up logging, run, and map the outcome to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use keysync::cli::Cli;
use keysync::error::exit;
use keysync::escape_for_terminal;
use keysync::terminal::{self, Stream};

// keysync's hot paths (page parsing, table output) make many small allocations; mimalloc
// serves them several times faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    report_panics_as_errors();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    keysync::init_logging(cli.global.verbose);
    match std::panic::catch_unwind(move || keysync::run(cli)) {
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
    let command = Cli::command().color(help_colour);
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
