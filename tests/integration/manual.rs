//! What a user reads about keysync without the repository: `--help` (the command's own options,
//! then the global ones; the exit codes only at the top), `--version`, `keysync man` checked by
//! groff, and the completion scripts' values for `--fields`, `--ignore` and `--report`.

use std::path::Path;
use std::process::Command as StdCommand;

use crate::common::{Harness, real_tool, run_in, with_input};

#[test]
fn help_puts_the_global_options_after_the_command_s_own_and_exit_codes_at_the_top() {
    let dir = tempfile::tempdir().unwrap();
    let top = run_in(dir.path(), &["--help"], 0).stdout;
    assert!(top.contains("\nExit codes:\n  0  success\n"), "{top}");
    let pull = run_in(dir.path(), &["pull", "-h"], 0).stdout;
    let own = pull.find("\nOptions:\n").unwrap();
    let global = pull.find("\nGlobal options:\n").unwrap();
    assert!(own < global, "{pull}");
    assert!(pull[own..global].contains("--concurrency <N>"), "{pull}");
    assert!(pull[global..].contains("-q, --quiet"), "{pull}");
    assert!(!pull.contains("Exit codes"), "{pull}");
    let concurrency = pull.lines().skip_while(|l| !l.contains("--concurrency"));
    let text: String = concurrency.take(3).collect();
    assert!(text.contains("[default: 4]"), "{text}");
    for command in ["completions", "man"] {
        let help = run_in(dir.path(), &[command, "-h"], 0).stdout;
        assert!(
            !help.contains("--db") && !help.contains("Global options"),
            "{help}"
        );
        assert!(!help.contains("Exit codes"), "{help}");
    }
}

/// The commit of the checkout the binary was built from, when it is one (as build.rs
/// decides it).
fn checkout_commit() -> Option<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        let output = StdCommand::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
        (output.status.success() && !text.is_empty()).then_some(text)
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    (Path::new(&top).canonicalize().ok()? == Path::new(root).canonicalize().ok()?)
        .then(|| git(&["rev-parse", "--short", "HEAD"]))
        .flatten()
}

#[test]
fn version_names_the_commit_sqlite_and_the_schema_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let latest_migration =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
            .unwrap()
            .filter_map(|entry| {
                let name = entry.unwrap().file_name().into_string().unwrap();
                name.strip_prefix('V')?
                    .split("__")
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap();
    let commit = checkout_commit().map_or_else(String::new, |c| format!(" (commit {c})"));
    let expected = format!(
        "keysync {}{commit}\nSQLite {}\ndatabase schema version {latest_migration} (the version \
         it writes)\n",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version()
    );
    assert_eq!(run_in(dir.path(), &["--version"], 0).stdout, expected);
    assert_eq!(run_in(dir.path(), &["-V"], 0).stdout, expected);
}

/// groff, when it is here; CI installs it (`.ci/run`), so there it must be.
fn groff(args: &[&str], input: &str) -> Option<std::process::Output> {
    let groff = real_tool("groff", "groff-base")?;
    Some(with_input(&groff, args, input))
}

#[test]
fn the_man_page_is_valid_roff_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    // Settings are not read: a config file that cannot be parsed does not matter.
    std::fs::write(dir.path().join("bad.toml"), "this is not toml").unwrap();
    let page = run_in(dir.path(), &["--config", "bad.toml", "man"], 0).stdout;
    run_in(
        dir.path(),
        &["--config", "bad.toml", "completions", "bash"],
        0,
    );
    run_in(dir.path(), &["--config", "bad.toml", "syncs"], 2);
    let Some(checked) = groff(&["-man", "-Tutf8", "-ww", "-z"], &page) else {
        return;
    };
    assert_eq!(String::from_utf8_lossy(&checked.stderr), "");
    assert_eq!(String::from_utf8_lossy(&checked.stdout), "");
    assert!(checked.status.success());
    let shown = groff(&["-man", "-Tutf8", "-P-cbou"], &page).unwrap();
    let text = String::from_utf8(shown.stdout).unwrap();
    for expected in [
        "SYNOPSIS",
        "GLOBAL OPTIONS",
        "COMMANDS",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "COMETAPI_ACCESS_TOKEN",
        "keysync man > ~/.local/share/man/man1/keysync.1",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    let pull = &text[text.find("   keysync pull\n").expect("a pull subsection")..];
    assert!(pull.contains("--concurrency <N>"), "{pull}");
    assert!(!pull.contains("--backoff-base"), "hidden flags stay hidden");
}

#[test]
fn bash_completes_field_and_report_names() {
    let h = Harness::with_keys(0);
    let script = h.run(&["completions", "bash"], 0).stdout;
    let fields = "user_id name status created_time accessed_time";
    let offers = |flag: &str| {
        // clap_complete's bash: `--flag)` then the words it offers.
        script.match_indices(&format!("{flag})")).any(|(at, _)| {
            let case = &script[at..script[at..].find(";;").map_or(script.len(), |end| at + end)];
            case.contains("compgen -W") && case.contains(fields)
        })
    };
    assert!(offers("--fields") && offers("--ignore"), "{script}");
    assert!(script.contains("compgen -W \"expiring-soon top-consumers idle low-quota"));
}
