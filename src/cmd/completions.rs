//! `keysync completions SHELL`: the shell completion script, generated from the clap model so
//! it always matches the real flags. Hidden flags (`--backoff-base`, `--notify-backoff`, for
//! tests) stay out of it:
//! clap_complete would offer them, so the model is pruned first.

use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the script for `args.shell`, generated from `command`, the whole command line (its
/// owner, `cli`, passes it down: commands do not import `cli`).
pub(crate) fn run(args: Args, command: clap::Command) -> Result<()> {
    let mut script = Vec::new();
    let mut shown = without_hidden(&command);
    clap_complete::generate(args.shell, &mut shown, "keysync", &mut script);
    let script = String::from_utf8(script)
        .map_err(|e| Error::Internal(format!("the completion script is not UTF-8: {e}")))?;
    crate::output::print_line(script.trim_end())
}

/// `command` and its subcommands without their hidden flags and hidden subcommands: what the
/// scripts need (names, aliases, descriptions, flags and their values, the version), rebuilt,
/// because clap has no way to take an argument out of a command. The argument groups clap
/// derives are left behind: they would name the pruned flags, and completion does not use them.
fn without_hidden(command: &clap::Command) -> clap::Command {
    let mut shown = clap::Command::new(command.get_name().to_string())
        .visible_aliases(command.get_visible_aliases().map(str::to_string))
        .args(
            command
                .get_arguments()
                .filter(|arg| !arg.is_hide_set())
                .cloned(),
        )
        .subcommands(
            command
                .get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .map(without_hidden),
        );
    if let Some(about) = command.get_about() {
        shown = shown.about(about.clone());
    }
    if let Some(about) = command.get_long_about() {
        shown = shown.long_about(about.clone());
    }
    if let Some(version) = command.get_version() {
        shown = shown.version(version.to_string());
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every (sub)command's arguments, by name, down the tree.
    fn arguments(command: &clap::Command, visible_only: bool) -> Vec<(String, Vec<String>)> {
        let own = command
            .get_arguments()
            .filter(|arg| !(visible_only && arg.is_hide_set()))
            .map(|arg| arg.get_id().to_string())
            .collect();
        let mut all = vec![(command.get_name().to_string(), own)];
        for sub in command.get_subcommands() {
            all.extend(arguments(sub, visible_only));
        }
        all
    }

    #[test]
    fn pruning_drops_the_hidden_flags_and_keeps_every_other() {
        let full = crate::cli::Cli::command();
        let shown = without_hidden(&full);
        assert_eq!(arguments(&shown, false), arguments(&full, true));
        let hidden: Vec<String> = arguments(&full, false)
            .into_iter()
            .flat_map(|(_, args)| args)
            .filter(|id| !arguments(&shown, false).iter().any(|(_, a)| a.contains(id)))
            .collect();
        assert_eq!(hidden, ["notify_backoff", "backoff_base", "notify_backoff"]);
        assert_eq!(shown.get_version(), full.get_version());
        let mut built = shown;
        built.build();
    }
}
