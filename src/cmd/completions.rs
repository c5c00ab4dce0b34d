//! `keysync completions SHELL`: the shell completion script, generated from the clap model so
//! it always matches the real flags.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{Error, Result};

pub fn run(args: &CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "keysync", &mut script);
    let script = String::from_utf8(script)
        .map_err(|e| Error::Internal(format!("the completion script is not UTF-8: {e}")))?;
    crate::output::print_line(script.trim_end())
}
