//! Shared test scaffolding: a fake account on loopback, a temporary database, and a `keysync`
//! command with a cleaned environment that points at both.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};

use assert_cmd::Command;
use keysync::testing::{FakeAccount, FakeServer};
use rusqlite::Connection;
use rusqlite::types::Value;
use tempfile::TempDir;

/// The fake's access token in every test.
pub const TOKEN: &str = "test-token-7f3a9c";
/// A fixed "now" for generated keys, so every test sees the same data.
pub const NOW: i64 = 1_766_102_400;
pub const SEED: u64 = 7;

/// A fake CometAPI plus a temporary folder holding the database.
pub struct Harness {
    pub dir: TempDir,
    pub server: FakeServer,
    pub db: PathBuf,
}

impl Harness {
    pub fn new(account: FakeAccount) -> Harness {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = dir.path().join("keysync.db");
        let server = FakeServer::start(account).expect("the fake CometAPI starts");
        Harness { dir, server, db }
    }

    /// An account of `count` generated keys, ids 1..=count.
    pub fn with_keys(count: usize) -> Harness {
        let mut account = FakeAccount::new(TOKEN);
        account.generate(count, SEED, NOW);
        Harness::new(account)
    }

    /// `keysync` with only the environment it needs: token, base URL, database, HOME.
    pub fn keysync(&self) -> Command {
        let mut command = Command::cargo_bin("keysync").expect("the keysync binary");
        command
            .env_clear()
            .envs(self.environment())
            .timeout(std::time::Duration::from_secs(120));
        command
    }

    /// Starts `keysync ARGS` in the background, with the same environment as [`Self::keysync`]
    /// and its output piped, for tests that signal or kill it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("keysync"))
            .env_clear()
            .envs(self.environment())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keysync starts")
    }

    fn environment(&self) -> [(&'static str, OsString); 4] {
        [
            ("HOME", self.dir.path().into()),
            ("COMETAPI_ACCESS_TOKEN", TOKEN.into()),
            ("COMETAPI_BASE_URL", self.server.url().into()),
            ("KEYSYNC_DB", self.db.clone().into()),
        ]
    }

    /// Runs `keysync ARGS`, expects exit `code`, returns what it printed (see [`run`]).
    #[track_caller]
    pub fn run(&self, args: &[&str], code: i32) -> Run {
        run(self.keysync().args(args), code)
    }

    /// Runs `keysync pull --json` (plus `extra` args), expects success, returns the summary.
    #[track_caller]
    pub fn pull(&self, extra: &[&str]) -> serde_json::Value {
        self.pull_run(&[&["--json"], extra].concat(), 0).json()
    }

    /// Runs `keysync pull` with fast retries (plus `extra` args), expects exit `code`.
    #[track_caller]
    pub fn pull_run(&self, extra: &[&str], code: i32) -> Run {
        run(&mut self.pull_command(extra), code)
    }

    fn pull_command(&self, extra: &[&str]) -> Command {
        let mut command = self.keysync();
        command.args(["pull", "--backoff-base", "10ms"]).args(extra);
        command
    }

    pub fn conn(&self) -> Connection {
        Connection::open(&self.db).expect("the database opens")
    }

    /// Every row of a query, as SQLite values.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Value>> {
        let conn = self.conn();
        let mut statement = conn.prepare(sql).expect("the test SQL prepares");
        let width = statement.column_count();
        statement
            .query_map([], |row| {
                (0..width).map(|i| row.get::<_, Value>(i)).collect()
            })
            .expect("the test SQL runs")
            .collect::<Result<_, _>>()
            .expect("rows read")
    }

    /// One integer from a query.
    pub fn count(&self, sql: &str) -> i64 {
        self.conn()
            .query_row(sql, [], |row| row.get(0))
            .expect("the count query runs")
    }

    /// Every table's full contents, for "unchanged" assertions.
    pub fn dump(&self, tables: &[&str]) -> Vec<Vec<Vec<Value>>> {
        tables
            .iter()
            .map(|t| self.rows(&format!("SELECT * FROM {t} ORDER BY 1, 2")))
            .collect()
    }
}

/// `keysync ARGS` in `dir` with an empty environment and no fake, expecting exit `code`: how a
/// newcomer runs `demo`, and how tests read a database the demo made.
#[track_caller]
pub fn run_in(dir: &std::path::Path, args: &[&str], code: i32) -> Run {
    let mut command = Command::cargo_bin("keysync").expect("the keysync binary");
    command.env_clear().current_dir(dir).args(args);
    run(&mut command, code)
}

/// What one `keysync` run printed; [`run`] has checked its exit code.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as one JSON value.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `command` and asserts it exited with `code`. A mismatch (or a signal, or output that is
/// not UTF-8) fails with the command line (the token masked), the expected and actual exit
/// code, stdout and stderr, so a failing test says what went wrong without a rerun.
#[track_caller]
pub fn run(command: &mut Command, code: i32) -> Run {
    let output = command.output().expect("keysync runs");
    check_exit(output, code, &command_line(command))
}

/// [`run`]'s check for a process started some other way (a spawned child): `command` names it
/// in a failure.
#[track_caller]
pub fn check_exit(output: Output, code: i32, command: &str) -> Run {
    checked(output, code, command).unwrap_or_else(|message| panic!("{message}"))
}

/// What [`check_exit`] checks: the run's output, or the message it fails with.
fn checked(output: Output, code: i32, command: &str) -> Result<Run, String> {
    let stdout = String::from_utf8(output.stdout.clone());
    let stderr = String::from_utf8(output.stderr.clone());
    let why = match (output.status.code(), &stdout, &stderr) {
        (None, _, _) => format!("expected exit {code}, but {}", output.status),
        (Some(actual), _, _) if actual != code => format!("expected exit {code}, got {actual}"),
        (_, Err(e), _) => format!("stdout is not UTF-8: {e}"),
        (_, _, Err(e)) => format!("stderr is not UTF-8: {e}"),
        (_, Ok(stdout), Ok(stderr)) => {
            return Ok(Run {
                stdout: stdout.clone(),
                stderr: stderr.clone(),
            });
        }
    };
    Err(format!(
        "{why}\ncommand: {command}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    ))
}

/// `keysync ARG...` as a shell would show it, with the access token masked and the folder it
/// ran in if one was set; the environment (which holds the token) is left out.
fn command_line(command: &Command) -> String {
    let args = command
        .get_args()
        .map(|arg| arg.to_string_lossy().replace(TOKEN, "<token>"))
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
            if plain { arg } else { format!("{arg:?}") }
        });
    let line = std::iter::once("keysync".to_string())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ");
    match command.get_current_dir() {
        Some(dir) => format!("{line} (in {})", dir.display()),
        None => line,
    }
}

/// Polls until `done`; a generous bound so a hang fails the test instead of stalling it.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn int(value: i64) -> Value {
    Value::Integer(value)
}

pub fn text(value: &str) -> Value {
    Value::Text(value.to_string())
}

/// `id` and the documented API fields, in `keys` column order.
pub fn api_fields() -> Vec<&'static str> {
    let documented = keysync::testing::API_FIELDS.iter().map(|(name, _)| *name);
    std::iter::once("id").chain(documented).collect()
}

/// `SELECT` of [`api_fields`] from `keys`.
pub fn api_fields_sql() -> String {
    let columns: Vec<String> = api_fields().iter().map(|c| format!("\"{c}\"")).collect();
    format!("SELECT {} FROM keys", columns.join(", "))
}

/// What keysync must store for one item the fake serves: the API fields as SQLite values.
pub fn expected_api_row(item: &serde_json::Map<String, serde_json::Value>) -> Vec<Value> {
    api_fields()
        .into_iter()
        .map(|name| match &item[name] {
            serde_json::Value::Number(n) => int(n.as_i64().expect("an i64")),
            serde_json::Value::Bool(b) => int(i64::from(*b)),
            serde_json::Value::String(s) => text(s),
            serde_json::Value::Null => Value::Null,
            other => panic!("the fake serves no {other} in {name}"),
        })
        .collect()
}

/// A local stand-in for a healthchecks.io endpoint: records each request's method, path and
/// body.
pub struct PingRecorder {
    pub url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

impl PingRecorder {
    pub fn start() -> PingRecorder {
        use axum::extract::State;
        type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;
        async fn record(State(seen): State<Seen>, request: axum::extract::Request) -> &'static str {
            let method = request.method().to_string();
            let path = request.uri().to_string();
            let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap();
            let body = String::from_utf8_lossy(&body).into_owned();
            seen.lock().unwrap().push((method, path, body));
            "OK"
        }
        let seen: Seen = Default::default();
        let app = axum::Router::new()
            .fallback(record)
            .with_state(seen.clone());
        let url = keysync::testing::serve_in_background(app).expect("the recorder starts");
        PingRecorder { url, seen }
    }

    /// Every request so far as (method, path, body), and forgets them.
    pub fn take(&self) -> Vec<(String, String, String)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// The cells of a table's data lines, trimmed.
pub fn table_cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|line| line.starts_with('│'))
        .map(|line| {
            line.trim_matches('│')
                .split('┆')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

// The helper's own checks: a failing `run` must say what ran and how it ended. They look at
// the message rather than panic: a panic here would, with RUST_BACKTRACE set, load the debug
// symbols into this process, whose size every later child's peak memory then starts from (see
// upstream's `assert_below_200_mb`).

#[test]
fn a_wrong_exit_code_is_reported_with_the_command_both_codes_and_the_output() {
    let h = Harness::with_keys(0);
    let mut command = h.keysync();
    command.args(["status"]);
    let output = command.output().expect("keysync runs");
    let message = checked(output, 0, &command_line(&command))
        .err()
        .expect("exit 6 is not 0");
    assert_eq!(
        message,
        format!(
            "expected exit 0, got 6\ncommand: keysync status\n--- stdout\n\n--- stderr\n\
             keysync: error: no database at {}: run `keysync pull` first (or pass --db PATH)\n",
            h.db.display()
        )
    );
}

#[test]
fn the_command_line_shows_the_args_with_the_token_masked() {
    let mut command = Command::cargo_bin("keysync").expect("the keysync binary");
    command.env("COMETAPI_ACCESS_TOKEN", TOKEN).args([
        "pull",
        "--token-file",
        &format!("/tmp/{TOKEN}"),
        "a b",
        "-v",
    ]);
    assert_eq!(
        command_line(&command),
        "keysync pull --token-file \"/tmp/<token>\" \"a b\" -v"
    );
}

/// A tool the tests run for real: its path, or none outside CI (the test says it skipped).
/// Under CI a missing tool fails the test: `.ci/run` installs it.
pub fn real_tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let message = format!(
            "{name} is missing: install it with `apt-get install --no-install-recommends \
             {package}` (as .ci/run does)"
        );
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("skipped: {message}");
    }
    found
}

/// Runs `program ARGS` with `input` on its stdin; what it printed and how it ended.
pub fn with_input(program: &std::path::Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    // A program that exits without reading all of it closes the pipe: its output says why.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

/// Every file in `dir`, by name, sorted: a temporary file left behind shows here.
pub fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
