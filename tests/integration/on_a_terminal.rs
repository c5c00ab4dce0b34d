//! Issue 15's terminal: keysync on a pseudo-terminal (`script -qec`, util-linux) and in pipes.
//! Colour per stream (`NO_COLOR`, `CLICOLOR_FORCE`), tables that fit `COLUMNS` on a terminal and
//! stay exact in a pipe, log lines above the progress bar (the screen is replayed through a
//! small terminal model, so a stale copy of the bar would show), one `keysync: error:` prefix,
//! `keysync: warning:` for warnings, counted nouns, the `Bearer ` token, completions without
//! hidden flags.

use std::path::Path;
use std::process::Command;

use pretty_assertions::assert_eq;

use crate::common::{Harness, TOKEN, check_exit, table_cells};

/// A word as a POSIX shell reads it back.
pub(crate) fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Runs `shell` (a command line in which `keysync` is the binary) on a pseudo-terminal, with
/// the harness's environment plus `env`, expecting exit `code`; returns every byte the
/// terminal received (stdout and stderr together, as a person sees them).
fn on_tty(h: &Harness, env: &[(&str, &str)], shell: &str, code: i32) -> String {
    on_tty_sized(h, env, shell, code, (WIDTH, 40))
}

/// [`on_tty`] on a terminal of `(columns, rows)`.
pub(crate) fn on_tty_sized(
    h: &Harness,
    env: &[(&str, &str)],
    shell: &str,
    code: i32,
    (columns, rows): (usize, usize),
) -> String {
    let binary = assert_cmd::cargo::cargo_bin("keysync");
    // The size a terminal window would give; `script` without one leaves it 0x0.
    let line = format!(
        "stty cols {columns} rows {rows}; {}",
        shell.replace("keysync", &quoted(binary.to_str().unwrap()))
    );
    let output = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("HOME", h.dir.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("COMETAPI_ACCESS_TOKEN", TOKEN)
        .env("COMETAPI_BASE_URL", h.server.url())
        .env("KEYSYNC_DB", &h.db)
        .envs(env.iter().copied())
        .current_dir(h.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    check_exit(output, code, &format!("script -qec {line:?}")).stdout
}

/// The width of the pseudo-terminal.
const WIDTH: usize = 100;

/// What a terminal shows after receiving `bytes`: a small model of one that knows what
/// keysync, comfy-table and indicatif send (text wrapping at [`WIDTH`], `\r`, `\n`, cursor
/// up/down/column, erase line/screen; styling ignored). Trailing blanks and empty lines are
/// dropped.
fn screen(bytes: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = bytes.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => row += 1,
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut action = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_digit() || c == ';' || c == '?' {
                        params.push(c);
                    } else {
                        action = c;
                        break;
                    }
                }
                let n = params.trim_start_matches('?').parse::<usize>().ok();
                while lines.len() <= row {
                    lines.push(Vec::new());
                }
                match action {
                    'A' => row = row.saturating_sub(n.unwrap_or(1)),
                    'B' => row += n.unwrap_or(1),
                    'G' => col = n.unwrap_or(1) - 1,
                    'K' if n == Some(2) => lines[row].clear(),
                    'K' | 'X' => lines[row].truncate(col),
                    'J' => {
                        lines[row].truncate(col);
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c => {
                if col >= WIDTH {
                    row += 1;
                    col = 0;
                }
                while lines.len() <= row {
                    lines.push(Vec::new());
                }
                let line = &mut lines[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    let mut shown: Vec<String> = lines
        .iter()
        .map(|line| line.iter().collect::<String>().trim_end().to_string())
        .collect();
    while shown.last().is_some_and(String::is_empty) {
        shown.pop();
    }
    shown
}

/// Whether `text` holds an SGR sequence (colour, bold): `ESC [ digits/; m`.
fn has_sgr(text: &str) -> bool {
    text.match_indices("\x1b[").any(|(at, _)| {
        text[at + 2..]
            .chars()
            .find(|c| !(c.is_ascii_digit() || *c == ';'))
            == Some('m')
    })
}

const LONG: &str = "a note long enough that a narrow terminal has to wrap it over lines";

fn long_query() -> String {
    format!("SELECT 7 AS id, 'ok' AS status, '{LONG}' AS note")
}

#[test]
fn a_table_fits_columns_on_a_terminal_and_a_piped_one_is_never_wrapped() {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    let shell = format!("keysync query {}", quoted(&long_query()));
    let shown = screen(&on_tty(
        &h,
        &[("COLUMNS", "40"), ("NO_COLOR", "1")],
        &shell,
        0,
    ));
    assert_eq!(
        shown,
        [
            "┌────┬────────┬────────────────────────┐",
            "│ id ┆ status ┆ note                   │",
            "╞════╪════════╪════════════════════════╡",
            "│  7 ┆ ok     ┆ a note long enough     │",
            "│    ┆        ┆ that a narrow terminal │",
            "│    ┆        ┆ has to wrap it over    │",
            "│    ┆        ┆ lines                  │",
            "└────┴────────┴────────────────────────┘",
        ]
    );
    // A pipe gets the whole table whatever COLUMNS says: output for tools stays exact.
    let piped = h.run(&["query", &long_query()], 0).stdout;
    let with_columns = crate::common::run(
        h.keysync()
            .env("COLUMNS", "40")
            .args(["query", &long_query()]),
        0,
    )
    .stdout;
    assert_eq!(piped, with_columns);
    assert_eq!(
        table_cells(&piped),
        [["id", "status", "note"], ["7", "ok", LONG]]
    );
    assert_eq!(piped.lines().count(), 5, "{piped}");
}

#[test]
fn the_syncs_table_of_a_long_error_fits_the_terminal_and_cuts_the_error() {
    let h = Harness::with_keys(3);
    h.server.account().faults.fail_every = Some(1);
    h.pull_run(&["--retries", "2", "--now", "1766102400"], 4);
    let error = h.rows("SELECT error FROM syncs")[0][0].clone();
    let rusqlite::types::Value::Text(error) = error else {
        panic!("{error:?}")
    };
    assert!(error.len() > 100, "{error}");
    for width in [100usize, 72] {
        let shown = screen(&on_tty(
            &h,
            &[("COLUMNS", &width.to_string()), ("NO_COLOR", "1")],
            "keysync syncs",
            0,
        ));
        let widest = shown.iter().map(|l| l.chars().count()).max().unwrap();
        assert!(widest <= width, "{width}: {}", shown.join("\n"));
        let cells = table_cells(&shown.join("\n"));
        assert_eq!(cells[0].last().unwrap(), "error");
        // One line for the one sync: the error is cut where the column ends, not wrapped.
        assert_eq!(cells.len(), 2, "{width}:\n{}", shown.join("\n"));
        let cut = cells[1].last().unwrap();
        let kept = cut.strip_suffix('…').expect("the error ends in …");
        assert!(
            kept.len() > 10 && error.starts_with(kept),
            "{width}: {cut:?} of {error:?}"
        );
        assert_eq!(cells[1][1], "2025-12-19 00:00:00Z");
    }
}

#[test]
fn colour_is_decided_per_stream_by_the_terminal_no_color_and_clicolor_force() {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    let table = "keysync query 'SELECT 1 AS n'";
    let failing = "keysync query 'SELEC 1'";
    let bold_header = "│\x1b[1m n \x1b[0m│";
    let red_error = "keysync: \x1b[1;31merror:\x1b[0m ";

    // Both streams on the terminal: a bold header, a red `error:`.
    let tty = on_tty(&h, &[], table, 0);
    assert!(tty.contains(bold_header), "{tty:?}");
    let tty = on_tty(&h, &[], failing, 2);
    assert!(tty.starts_with(red_error), "{tty:?}");
    // NO_COLOR (any non-empty value) turns it all off, CLICOLOR_FORCE included.
    for no_color in [
        &[("NO_COLOR", "1")][..],
        &[("NO_COLOR", "0"), ("CLICOLOR_FORCE", "1")],
    ] {
        for (shell, code) in [(table, 0), (failing, 2)] {
            let tty = on_tty(&h, no_color, shell, code);
            assert!(!has_sgr(&tty), "{no_color:?} {shell}: {tty:?}");
        }
    }
    // Each stream decides for itself: the one sent to a file is plain, the other stays in
    // colour on the terminal.
    let tty = on_tty(
        &h,
        &[],
        &format!("{table} 2>stderr.txt; {failing} >stdout.txt"),
        2,
    );
    assert!(
        tty.contains(bold_header) && tty.contains(red_error),
        "{tty:?}"
    );
    let tty = on_tty(
        &h,
        &[],
        &format!("{table} >stdout.txt; {failing} 2>stderr.txt"),
        2,
    );
    assert!(!has_sgr(&tty), "{tty:?}");
    let stdout = std::fs::read_to_string(h.dir.path().join("stdout.txt")).unwrap();
    assert_eq!(stdout, "┌───┐\n│ n │\n╞═══╡\n│ 1 │\n└───┘\n");
    let stderr = std::fs::read_to_string(h.dir.path().join("stderr.txt")).unwrap();
    assert!(stderr.starts_with("keysync: error: "), "{stderr:?}");

    // Pipes: plain, unless CLICOLOR_FORCE asks (and NO_COLOR does not forbid).
    let piped = |env: &[(&str, &str)], args: &[&str], code| {
        crate::common::run(h.keysync().envs(env.iter().copied()).args(args), code)
    };
    let plain = piped(&[], &["query", "SELECT 1 AS n"], 0);
    assert_eq!(plain.stdout, stdout);
    let forced = piped(&[("CLICOLOR_FORCE", "1")], &["query", "SELECT 1 AS n"], 0);
    assert!(forced.stdout.contains(bold_header), "{:?}", forced.stdout);
    let forced = piped(&[("CLICOLOR_FORCE", "1")], &["query", "SELEC 1"], 2);
    assert!(forced.stderr.starts_with(red_error), "{:?}", forced.stderr);
    let both = piped(
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "yes")],
        &["query", "SELECT 1 AS n"],
        0,
    );
    assert_eq!(both.stdout, stdout);
}

/// The spellings of the colour variables that anstyle-query, which reads them, takes otherwise
/// than keysync's rule (see `terminal::colour`), and the ones that turn colour off on a terminal.
#[test]
fn colour_variables_are_read_as_the_readme_says() {
    let h = Harness::with_keys(1);
    h.pull(&[]);
    let table = "keysync query 'SELECT 1 AS n'";
    let bold_header = "│\x1b[1m n \x1b[0m│";
    // A terminal without TERM (`env -i`) still gets colour; an empty NO_COLOR is unset.
    let tty = on_tty(&h, &[], &format!("env -u TERM {table}"), 0);
    assert!(tty.contains(bold_header), "{tty:?}");
    let tty = on_tty(&h, &[("NO_COLOR", "")], table, 0);
    assert!(tty.contains(bold_header), "{tty:?}");
    for off in [("CLICOLOR", "0"), ("TERM", "dumb")] {
        let tty = on_tty(&h, &[off], table, 0);
        assert!(!has_sgr(&tty), "{off:?}: {tty:?}");
    }
    // CLICOLOR_FORCE=0 forces nothing (bixense.com/clicolors); 1 does, over CLICOLOR=0.
    let piped = |env: &[(&str, &str)]| {
        crate::common::run(
            h.keysync()
                .envs(env.iter().copied())
                .args(["query", "SELECT 1 AS n"]),
            0,
        )
        .stdout
    };
    assert!(!has_sgr(&piped(&[("CLICOLOR_FORCE", "0")])));
    assert!(has_sgr(&piped(&[
        ("CLICOLOR_FORCE", "1"),
        ("CLICOLOR", "0")
    ])));
}

#[test]
fn warnings_start_keysync_warning_and_follow_no_color_on_a_terminal() {
    let h = Harness::with_keys(3);
    let file = h.dir.path().join("token");
    std::fs::write(&file, TOKEN).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let shell = "keysync pull -q --token-file token";
    let expected = |prefix: &str| {
        vec![format!(
            "{prefix}--token-file token has mode 644, readable by others: run `chmod 600 token`"
        )]
    };
    let tty = on_tty(&h, &[], shell, 0);
    assert_eq!(
        screen(&tty),
        expected("keysync: \x1b[1;33mwarning:\x1b[0m ")
            .iter()
            .map(|line| line.replace("\x1b[1;33m", "").replace("\x1b[0m", ""))
            .collect::<Vec<_>>()
    );
    assert!(
        tty.starts_with("keysync: \x1b[1;33mwarning:\x1b[0m --token-file"),
        "{tty:?}"
    );
    let plain = on_tty(&h, &[("NO_COLOR", "1")], shell, 0);
    assert_eq!(screen(&plain), expected("keysync: warning: "));
    assert!(!has_sgr(&plain), "{plain:?}");
}

#[test]
fn log_lines_are_printed_above_the_progress_bar_which_shows_an_eta() {
    for (env, coloured) in [(&[("NO_COLOR", "1")][..], false), (&[][..], true)] {
        let h = Harness::with_keys(250);
        // Request 3 (page 3) fails once: its retry is logged at -v while the bar is drawn.
        h.server.account().faults.fail_every = Some(3);
        // Pages slow enough for a rate and a time left (none is shown under a quarter second).
        h.server.account().faults.page_delay = std::time::Duration::from_millis(300);
        let shell = "keysync -v pull --concurrency 1 --backoff-base 10ms";
        let raw = on_tty(&h, env, shell, 0);
        let shown = screen(&raw);
        assert_eq!(shown.len(), 3, "{}\n{raw:?}", shown.join("\n"));
        assert!(
            shown[0].starts_with("keysync: info: page 3: HTTP 502"),
            "{}",
            shown.join("\n")
        );
        assert!(shown[0].contains(", retry 1/8 in "), "{}", shown[0]);
        assert_eq!(
            shown[1],
            "keysync: info: sync 1: 0 listed items known unchanged, 350 read"
        );
        assert!(
            shown[2].starts_with("sync 1 ok: 250 keys, 250 added, 0 changed, 0 removed ("),
            "{}",
            shown[2]
        );
        // The bar was drawn (page count, keys, rate and the time left), and taken away again.
        // Page 1 took a 300 ms page (its rate counts from the pull's start): two pages of
        // about that are left.
        let left_after = |page: &str| -> u64 {
            let at = raw
                .find(page)
                .unwrap_or_else(|| panic!("no {page:?} in {raw:?}"));
            let rest = &raw[at + page.len()..];
            let (rate, rest) = rest.split_once(" keys/s, ").unwrap();
            assert!(rate.parse::<u64>().is_ok(), "{rate:?}");
            rest.split_once("s left").unwrap().0.parse().unwrap()
        };
        let left = left_after("page 1/3  100 keys, ");
        assert!(
            (1..=3).contains(&left),
            "{left}s left after page 1: {raw:?}"
        );
        // Three pages: page 1 read again at the end is neither a fourth page nor more keys.
        assert_eq!(left_after("page 3/3  250 keys, "), 0, "{raw:?}");
        assert!(
            !raw.contains("page 4/") && !raw.contains("350 keys"),
            "{raw:?}"
        );
        assert_eq!(has_sgr(&raw), coloured, "{raw:?}");
        if coloured {
            assert!(raw.contains("\x1b[36m"), "a cyan bar: {raw:?}");
        }
    }
}

#[test]
fn usage_errors_from_the_parser_share_keysync_s_error_prefix() {
    let h = Harness::with_keys(0);
    let output = h.run(&["pull", "--bogus"], 2);
    assert_eq!(
        output.stderr,
        "keysync: error: unexpected argument '--bogus' found\n\nUsage: keysync pull \
         [OPTIONS]\n\nFor more information, try '--help'.\n"
    );
    assert_eq!(output.stdout, "");
    // Help and the version are no error: stdout, exit 0, no prefix.
    let help = h.run(&["pull", "--help"], 0);
    assert!(help.stdout.starts_with("List every key"), "{}", help.stdout);
    assert_eq!(help.stderr, "");
    assert!(h.run(&["--version"], 0).stdout.starts_with("keysync 0.1.0"));
    // keysync's own errors: the same prefix.
    let output = h.run(&["history", "no-such-key"], 6);
    assert!(
        output.stderr.starts_with("keysync: error: "),
        "{}",
        output.stderr
    );
}

#[test]
fn counts_of_one_read_in_the_singular() {
    let h = Harness::with_keys(1);
    let summary = h.pull_run(&["--now", "1766102400"], 0).stdout;
    assert!(
        summary.starts_with("sync 1 ok: 1 key, 1 added, 0 changed, 0 removed ("),
        "{summary}"
    );
    let status = h.run(&["status", "--now", "1766102460"], 0).stdout;
    assert!(
        status.contains("last sync:      1 ok, 2025-12-19 00:00:00Z (1m 0s ago): 1 key, 1 added"),
        "{status}"
    );
    // A total that never matches: 1 key listed, the server says 5.
    h.server.account().faults.total = Some(5);
    let partial = h.pull_run(&["--now", "1766102500"], 0);
    assert_eq!(
        partial.stderr,
        "keysync: warning: sync 2 is partial: no key was marked removed, because in all 3 \
         listing passes 1 key was listed but the server's total says 5; keys that stopped being \
         listed are kept until a consistent pull\n"
    );
    h.server.account().faults.total = None;
    // One attempt, no retry.
    h.server.account().faults.fail_every = Some(1);
    let failed = h.pull_run(&["--retries", "0", "--now", "1766102600"], 4);
    assert!(
        failed.stderr.contains("; gave up after 1 attempt. "),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_token_with_a_bearer_prefix_is_refused_before_any_request() {
    let h = Harness::with_keys(3);
    let file = h.dir.path().join("token");
    std::fs::write(&file, format!("Bearer {TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let advice = "starts with \"Bearer \": drop the Bearer prefix and keep only the token itself \
                  (CometAPI takes the bare token, and keysync sends it as is)";
    let from_env = crate::common::run(
        h.keysync()
            .env("COMETAPI_ACCESS_TOKEN", format!("Bearer {TOKEN}"))
            .arg("pull"),
        2,
    );
    assert_eq!(
        from_env.stderr,
        format!("keysync: error: the access token in COMETAPI_ACCESS_TOKEN {advice}\n")
    );
    let from_file = h.run(&["pull", "--token-file", file.to_str().unwrap()], 2);
    assert_eq!(
        from_file.stderr,
        format!(
            "keysync: error: the access token in --token-file {} {advice}\n",
            file.display()
        )
    );
    let config = h.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.work]\ntoken_file = {:?}\n",
            file.display().to_string()
        ),
    )
    .unwrap();
    let from_profile = crate::common::run(
        h.keysync().env_remove("COMETAPI_ACCESS_TOKEN").args([
            "--config",
            config.to_str().unwrap(),
            "--profile",
            "work",
            "pull",
        ]),
        2,
    );
    assert!(
        from_profile
            .stderr
            .starts_with("keysync: error: the access token in the profile's token_file "),
        "{}",
        from_profile.stderr
    );
    assert_eq!(
        h.server.account().requests().len(),
        0,
        "no request was sent"
    );
    assert!(!Path::new(&h.db).exists() || h.count("SELECT count(*) FROM syncs") == 0);
}

#[test]
fn completion_scripts_leave_out_hidden_flags() {
    let h = Harness::with_keys(0);
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = h.run(&["completions", shell], 0).stdout;
        assert!(!script.contains("backoff"), "{shell} offers --backoff-base");
        for visible in [
            "ping-url",
            "token-file",
            "store-secrets",
            "max-age",
            "version",
        ] {
            assert!(script.contains(visible), "{shell} lacks {visible}");
        }
    }
}
