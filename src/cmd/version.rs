//! What `keysync --version` (and `-V`) prints after the name: the version, the git commit it
//! was built from (when it was built from a git checkout: see build.rs), the SQLite it links,
//! and the database schema version it writes (its latest migration), which is what decides
//! whether an older or newer keysync can read a file it wrote.

use crate::store::known_schema_version;

/// `0.1.0 (commit 1ec2d76)`, then one line each for SQLite and the schema.
pub(crate) fn text() -> String {
    // Docker's empty build argument (contrib/Dockerfile) is no commit.
    let commit = option_env!("KEYSYNC_GIT_COMMIT")
        .filter(|commit| !commit.is_empty())
        .map(|commit| format!(" (commit {commit})"))
        .unwrap_or_default();
    format!(
        "{}{commit}\nSQLite {}\ndatabase schema version {} (the version it writes)",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version(),
        known_schema_version()
    )
}
