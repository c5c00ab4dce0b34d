//! The `keysync` binary: parse, set up logging, run, and map the outcome to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use keysync::cli::Cli;
use keysync::error::exit;
use keysync::escape_for_terminal;

// keysync's hot paths (page parsing, table output) make many small allocations; mimalloc
// serves them several times faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    keysync::init_logging(cli.global.verbose);
    match std::panic::catch_unwind(move || keysync::run(cli)) {
        Ok(Ok(outcome)) => outcome.exit_code(),
        Ok(Err(error)) => {
            // Not `eprintln!`, which panics on a closed stderr; upstream text in the message
            // must not reach a terminal as control characters.
            let message = escape_for_terminal(&error.to_string()).into_owned();
            let _ = writeln!(std::io::stderr(), "keysync: error: {message}");
            error.exit_code()
        }
        // The panic hook has already printed the message; a panic must not exit 1 (an alarm).
        Err(_) => ExitCode::from(exit::INTERNAL),
    }
}
