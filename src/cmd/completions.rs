//! `keysync completions SHELL`: the shell completion script, generated from the clap model so
//! it always matches the real flags.

use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the script for `args.shell`, generated from `command`, the whole command line (its
/// owner, `cli`, passes it down: commands do not import `cli`).
pub fn run(args: Args, mut command: clap::Command) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "keysync", &mut script);
    let script = String::from_utf8(script)
        .map_err(|e| Error::Internal(format!("the completion script is not UTF-8: {e}")))?;
    crate::output::print_line(script.trim_end())
}
