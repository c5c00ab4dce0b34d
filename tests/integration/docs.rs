//! The README and `docs/`: the README stays short, every link between the documents lands on
//! a file and a heading that exist, and the README's recipes run as written, by `sh`, against
//! the fake CometAPI (with `mail` replaced by a script that keeps what it was given).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate, Utc};
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::alerts::Receiver;
use crate::common::{Harness, TOKEN};

const DOCUMENTS: [&str; 5] = [
    "README.md",
    "ARCHITECTURE.md",
    "docs/guide.md",
    "docs/database.md",
    "docs/performance.md",
];

/// node_exporter's textfile folder in Debian's package, which the Prometheus recipe names.
const TEXTFILE_DIRECTORY: &str = "/var/lib/prometheus/node-exporter";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_readme_is_at_most_400_lines() {
    let lines = read("README.md").lines().count();
    assert!(lines <= 400, "README.md has {lines} lines");
}

#[test]
fn every_link_between_the_documents_lands_on_a_heading() {
    let mut broken = Vec::new();
    for document in DOCUMENTS {
        for target in relative_links(&read(document)) {
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let path = if file.is_empty() {
                PathBuf::from(document)
            } else {
                Path::new(document).parent().unwrap().join(file)
            };
            let Ok(text) = std::fs::read_to_string(root().join(&path)) else {
                broken.push(format!("{document}: {target} (no such file)"));
                continue;
            };
            if !anchor.is_empty() && !heading_anchors(&text).contains(anchor) {
                broken.push(format!("{document}: {target} (no such heading)"));
            }
        }
    }
    assert_eq!(broken, Vec::<String>::new());
}

/// The README's and the guide's exit-code tables name the codes `keysync --help` lists, no
/// more and no fewer.
#[test]
fn the_exit_code_tables_name_the_codes_help_lists() {
    let help = crate::common::run_in(root(), &["--help"], 0).stdout;
    let listed = help
        .split_once("Exit codes:\n")
        .expect("--help lists the exit codes")
        .1;
    let codes_of_help: BTreeSet<String> = listed
        .lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter(|line| line.starts_with(|c: char| c.is_ascii_digit()))
        .flat_map(|line| {
            line.split("  ")
                .next()
                .unwrap()
                .split(", ")
                .map(String::from)
        })
        .collect();
    assert!(
        codes_of_help.contains("143") && codes_of_help.len() == 10,
        "{codes_of_help:?}"
    );
    for document in ["README.md", "docs/guide.md"] {
        let text = read(document);
        let table = text.split_once("## Exit codes\n").unwrap().1;
        let codes: BTreeSet<String> = table
            .lines()
            .skip_while(|line| !line.starts_with("| 0 |"))
            .take_while(|line| line.starts_with('|'))
            .flat_map(|line| {
                line.split('|')
                    .nth(1)
                    .unwrap()
                    .trim()
                    .split(", ")
                    .map(String::from)
            })
            .collect();
        assert_eq!(codes, codes_of_help, "{document}");
    }
}

/// The targets of the Markdown links `[text](target)` that are not URLs.
fn relative_links(markdown: &str) -> Vec<String> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target))
        .filter(|target| !target.contains("://") && !target.starts_with("mailto:"))
        .map(str::to_string)
        .collect()
}

/// The anchors GitHub gives the headings: lower case, punctuation but `-` dropped, spaces as
/// `-`.
fn heading_anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let anchor: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        anchors.insert(anchor);
    }
    anchors
}

/// The README from `heading` to the next heading of the same level.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has {heading}"));
    let rest = &readme[start + heading.len() + 2..];
    let level = heading.split(' ').next().unwrap();
    match rest.find(&format!("\n{level} ")) {
        Some(end) => &rest[..end],
        None => rest,
    }
}

/// The fenced blocks of `kind` (`sh`, `cron`) in `markdown`.
fn blocks<'a>(markdown: &'a str, kind: &str) -> Vec<&'a str> {
    markdown
        .split("```")
        .skip(1)
        .step_by(2)
        .filter_map(|block| block.strip_prefix(&format!("{kind}\n")))
        .collect()
}

/// Pulls with known history behind the recipes: two pulls early last month with quota used
/// between them (last month's spend), one the day before yesterday and one yesterday with a
/// change between them that is not quota use (what changed yesterday).
fn account_with_history() -> Harness {
    let h = Harness::with_keys(12);
    let today = Utc::now().date_naive();
    let last_month =
        NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap() - Duration::days(20);
    let month_start = NaiveDate::from_ymd_opt(last_month.year(), last_month.month(), 1).unwrap();
    let at =
        |day: NaiveDate, hour: u32| day.and_hms_opt(hour, 0, 0).unwrap().and_utc().to_rfc3339();
    h.server.account().set(3, "used_quota", json!(0));
    h.pull(&["--now", &at(month_start, 12)]);
    h.server
        .account()
        .set(3, "used_quota", json!(1_234_567_891));
    h.pull(&["--now", &at(month_start + Duration::days(2), 0)]);
    h.pull(&["--now", &at(today - Duration::days(2), 1)]);
    h.server
        .account()
        .set(5, "name", json!("renamed-yesterday"));
    h.pull(&["--now", &at(today - Duration::days(1), 1)]);
    h
}

/// Runs `script` with `sh -c` as a user would: `keysync` and a recording `mail` on the PATH,
/// HOME in the test's folder, the base URL and database in the environment, the token on
/// stdin (the first-pull recipe reads it there), no token in the environment.
fn sh(h: &Harness, script: &str, extra: &[(&str, &str)]) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_keysync")).parent().unwrap();
    let stubs = h.dir.path().join("stubs");
    let path = format!("{}:{}:/usr/bin:/bin", stubs.display(), bin.display());
    // System folders a recipe names are moved into the test's folder.
    let textfile = h.dir.path().join("textfile");
    std::fs::create_dir_all(&textfile).unwrap();
    let script = script.replace(TEXTFILE_DIRECTORY, textfile.to_str().unwrap());
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", &script])
        .env_clear()
        .env("PATH", path)
        .env("HOME", h.dir.path())
        .env("COMETAPI_BASE_URL", h.server.url())
        .env("KEYSYNC_DB", &h.db)
        .envs(extra.iter().copied())
        .current_dir(h.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("sh starts");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{TOKEN}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A `mail` that writes its arguments, then what it read, to `~/mail/N`.
fn install_mail_stub(h: &Harness) {
    let stubs = h.dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    std::fs::create_dir_all(h.dir.path().join("mail")).unwrap();
    let mail = stubs.join("mail");
    std::fs::write(
        &mail,
        "#!/bin/sh\nn=$(ls \"$HOME/mail\" | wc -l)\n{ printf '%s\\n' \"$@\"; echo ---; cat; } > \"$HOME/mail/$n\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn mails(h: &Harness) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(h.dir.path().join("mail"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect()
}

#[track_caller]
fn expect_success(output: &std::process::Output, script: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script}\nexit {:?}\n--- stdout\n{stdout}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_first_pull_recipe_runs_as_written() {
    let h = account_with_history();
    let readme = read("README.md");
    let [script] = blocks(section(&readme, "## First pull"), "sh")[..] else {
        panic!("one sh block under First pull");
    };
    let stdout = expect_success(&sh(&h, script, &[]), script);
    let token = std::fs::read_to_string(h.dir.path().join(".config/keysync/token")).unwrap();
    assert_eq!(token, format!("{TOKEN}\n"));
    assert!(stdout.contains("keys:           12 live"), "{stdout}");
}

#[test]
fn the_recipes_run_as_written() {
    let h = account_with_history();
    install_mail_stub(&h);
    let webhook = Receiver::start();
    // A change since yesterday's pull, for the daily diff of the last 24 hours.
    h.server.account().set(6, "name", json!("renamed-today"));
    // And a key nearly out of quota, for the alert recipe.
    for (field, value) in [("status", json!(1)), ("unlimited_quota", json!(false))] {
        h.server.account().set(7, field, value);
    }
    h.server.account().set(7, "remain_quota", json!(100));
    let readme = read("README.md");
    let first = blocks(section(&readme, "## First pull"), "sh")[0];
    expect_success(&sh(&h, first, &[]), first);
    let recipes = section(&readme, "## Recipes");
    let mut printed = String::new();
    for script in blocks(recipes, "sh") {
        save_named_script(&h, script);
        printed += &expect_success(&sh(&h, script, &[]), script);
    }
    assert!(
        printed.contains("renamed-yesterday"),
        "what changed yesterday:\n{printed}"
    );
    for line in blocks(recipes, "cron").iter().flat_map(|b| b.lines()) {
        if line.starts_with('#') || line.contains('=') {
            continue;
        }
        let command: Vec<&str> = line.split_whitespace().skip(5).collect();
        let command = command.join(" ");
        let output = sh(&h, &command, &[("SLACK_WEBHOOK", &webhook.url())]);
        // A check exits 1 while alarms fire: what cron mails.
        if command.contains("--check") && output.status.code() == Some(1) {
            continue;
        }
        expect_success(&output, &command);
    }
    let slack = webhook.take();
    assert_eq!(slack.len(), 1, "one delivery of the alarms: {slack:?}");
    let text = slack[0]["text"].as_str().unwrap();
    assert!(
        text.contains("FIRING") && text.contains("low_quota_usd"),
        "{text}"
    );
    let metrics = std::fs::read_to_string(h.dir.path().join("textfile/keysync.prom")).unwrap();
    assert!(
        metrics.contains("\nkeysync_account_used_quota "),
        "the textfile: {metrics}"
    );
    let mails = mails(&h);
    let subjects: Vec<&str> = mails
        .iter()
        .filter_map(|m| m.lines().skip_while(|arg| *arg != "-s").nth(1))
        .collect();
    assert!(
        subjects.contains(&"keysync: API keys changed in the last 24h"),
        "{subjects:?}"
    );
    assert!(
        mails.iter().any(|m| m.contains("<!DOCTYPE html>")),
        "the weekly page was mailed"
    );
    assert!(
        mails.iter().any(|m| m.contains("renamed-today")),
        "the daily diff names the change: {mails:?}"
    );
    // Key 3 went from 0 to 1,234,567,891 last month: $2,469.135782 at 500,000 a dollar.
    let invoice = std::fs::read_to_string(h.dir.path().join("invoice.csv")).unwrap();
    assert_eq!(
        invoice,
        "id,name,used,usd,share\n3,customer-3,1234567891,2469.135782,100.0\n"
    );
}

/// A recipe that starts `#!/bin/sh` and names its file in its first comment (`# ~/bin/NAME:`)
/// is saved there, executable, for the crontab lines that run it.
fn save_named_script(h: &Harness, script: &str) {
    let Some(name) = script
        .lines()
        .nth(1)
        .and_then(|line| line.strip_prefix("# ~/"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(name, _)| name)
    else {
        return;
    };
    let path = h.dir.path().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
