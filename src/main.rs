//! The `keysync` binary: all of it is `keysync::main` (parse, set up logging, run, and map the
//! outcome to an exit code).

use std::process::ExitCode;

// keysync's hot paths (page parsing, table output) make many small allocations; mimalloc
// serves them several times faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    keysync::main()
}
