//! The one error type of keysync and the exit code each kind maps to.
//!
//! Every failure a user can meet is one of these variants; `main` turns it into an exit code
//! through [`Error::exit_code`], and a command that ran through its [`Outcome`], and nowhere
//! else. Messages say what went wrong and what to do
//! next, and never carry the access token.

use std::process::ExitCode;

/// Exit codes, documented in `keysync --help` and the man page's EXIT STATUS ([`EXIT_CODES`]).
pub(crate) mod exit {
    pub(crate) const SUCCESS: u8 = 0;
    pub(crate) const ALARM: u8 = 1;
    pub(crate) const USAGE: u8 = 2;
    pub(crate) const AUTH: u8 = 3;
    pub(crate) const API: u8 = 4;
    pub(crate) const LOCKED: u8 = 5;
    pub(crate) const DATABASE: u8 = 6;
    pub(crate) const INTERNAL: u8 = 7;
    /// 128 + 2: SIGINT (Ctrl-C) stopped a one-shot pull.
    pub(crate) const SIGINT: u8 = 130;
    /// 128 + 15: SIGTERM stopped a one-shot pull.
    pub(crate) const SIGTERM: u8 = 143;
}

/// The exit codes and what each means, as `keysync --help` and the man page's EXIT STATUS list
/// them.
pub(crate) const EXIT_CODES: [(&str, &str); 9] = [
    ("0", "success"),
    (
        "1",
        "an alarm you asked for (`diff --exit-code` found differences, `status --max-age` found \
         the record stale, the last pull failed, or a pull interrupted mid-write; `check` or \
         `pull --check` found an alarm firing)",
    ),
    (
        "2",
        "usage or configuration error (bad flag, no token, a `Bearer ` token, SQL that tries to \
         write, another account's token, a start before the latest sync)",
    ),
    ("3", "the API rejected the credentials"),
    (
        "4",
        "the API failed (network, timeouts, HTTP errors after retries, success:false, bad \
         response), or a webhook did not take an alarm delivery after 3 tries",
    ),
    (
        "5",
        "another pull holds the database's lock, or overtook this one (nothing was written)",
    ),
    (
        "6",
        "database error (missing or unreadable file, not keysync's, schema newer than this \
         binary; a pull interrupted mid-write, until the next pull recovers the file)",
    ),
    ("7", "unexpected internal error (a panic included)"),
    (
        "130, 143",
        "a one-shot pull stopped by SIGINT / SIGTERM (its sync is recorded as failed)",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad flag, argument or configuration value.
    #[error("{0}")]
    Usage(String),
    /// The API rejected the access token (HTTP 401, or `success:false` with an auth message).
    #[error("{0}")]
    Auth(String),
    /// The API failed: network, HTTP errors after retries, `success:false`, malformed response.
    #[error("{0}")]
    Api(String),
    /// Another process holds the pull lock of this database, or another pull overtook this
    /// one while it listed (so it wrote nothing).
    #[error("{0}")]
    Locked(String),
    /// The database could not be opened, read or written.
    #[error("{context}: {source}{}", database_hint(source))]
    Database {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The database is in a state keysync refuses to work with (missing, newer schema, ...).
    #[error("{0}")]
    DatabaseState(String),
    /// A pull died while it wrote the database's first keys, and left its rollback journal
    /// for the next pull to roll back: until then the file cannot be read.
    #[error(
        "{}: a pull was interrupted; the next pull recovers the file (run `keysync pull`, or \
         wait for the next scheduled one)",
        .0.display()
    )]
    PullInterrupted(std::path::PathBuf),
    /// SIGINT or SIGTERM stopped a one-shot pull; its sync row says `failed`, `interrupted`.
    #[error(
        "stopped by {}: the pull did not finish and changed no key (if it had begun, `keysync \
         syncs` lists it as failed, interrupted)",
        .0.name()
    )]
    Interrupted(Signal),
    /// Writing results failed; a closed pipe among these ends output quietly.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    /// A bug or an environment failure nobody could foresee.
    #[error("internal error: {0}")]
    Internal(String),
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The stop request a user or a supervisor sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT, Ctrl-C.
    Interrupt,
    /// SIGTERM, `kill`, `docker stop`, systemd.
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number, as shells report a process the signal ended.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => exit::SIGINT,
            Signal::Terminate => exit::SIGTERM,
        }
    }
}

/// What to do next about a database failure, by SQLite's error code.
fn database_hint(error: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "; another program is writing to the database: try again when it is done"
        }
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            "; check the path given by --db / KEYSYNC_DB and the permissions of the file and \
             its folder"
        }
        Some(ErrorCode::NotADatabase) => {
            "; this file is not a keysync database: pass --db with the right path"
        }
        Some(ErrorCode::DiskFull) => "; free some disk space and run the command again",
        Some(ErrorCode::DatabaseCorrupt) => {
            "; the file is damaged: restore it from a backup, or start a new one with --db"
        }
        _ => "",
    }
}

/// How a command that did not fail ended. An alarm is not an error: the command did what was
/// asked and found what the user asked to be told about (`diff --exit-code` found differences).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Alarm,
}

impl Outcome {
    pub(crate) fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Success => exit::SUCCESS,
            Outcome::Alarm => exit::ALARM,
        })
    }
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// Failures that may pass by themselves (network, API, a busy lock or database), so that
    /// `pull --every` logs them and goes on rather than stopping.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Api(_) | Error::Locked(_) | Error::Database { .. }
        )
    }

    pub fn code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Auth(_) => exit::AUTH,
            Error::Api(_) => exit::API,
            Error::Locked(_) => exit::LOCKED,
            Error::Database { .. } | Error::DatabaseState(_) | Error::PullInterrupted(_) => {
                exit::DATABASE
            }
            Error::Output(_) | Error::Internal(_) => exit::INTERNAL,
            Error::Interrupted(signal) => signal.exit_code(),
        }
    }
}

/// Attaches a human context to rusqlite errors: `conn.execute(..).db("recording the sync")?`.
pub(crate) trait DbContext<T> {
    fn db(self, context: &str) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, rusqlite::Error> {
    fn db(self, context: &str) -> Result<T> {
        self.map_err(|source| Error::Database {
            context: context.to_string(),
            source,
        })
    }
}

/// An error and its causes on one line: "error sending request: connection refused".
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
