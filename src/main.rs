//! The `keysync` binary: parse, set up logging, run, and map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use keysync::cli::Cli;
use keysync::error::exit;

// keysync's hot paths (page parsing, table output) make many small allocations; mimalloc
// serves them several times faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    keysync::init_logging(&cli.global);
    match std::panic::catch_unwind(move || keysync::run(cli)) {
        Ok(Ok(outcome)) => outcome.exit_code(),
        Ok(Err(error)) => {
            eprintln!("keysync: error: {error}");
            error.exit_code()
        }
        // The panic hook has already printed the message; a panic must not exit 1 (an alarm).
        Err(_) => ExitCode::from(exit::INTERNAL),
    }
}
