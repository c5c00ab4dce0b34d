//! The SQLite file: opening it (pragmas, migrations, schema checks) in one place, the pull lock,
//! the writes a pull makes, the read-only path queries take, reading the history back, and
//! pruning it.

pub mod history;
pub mod lock;
pub mod points;
pub mod prune;
pub mod query;
pub mod status;
pub mod sync;
pub mod views;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::api::model::DATA_COLUMNS;
use crate::error::{DbContext, Error, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the database for writing, creating it (mode 0600) and its folder when missing, and
/// brings its schema up to date.
pub fn open(path: &Path) -> Result<Connection> {
    create_private_file(path)?;
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db(&format!("cannot open the database {}", path.display()))?;
    configure(&conn, path)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Opens an existing database without the right to change it, as `query` and friends do.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    require_existing(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db(&format!("cannot open the database {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .db("cannot set the busy timeout")?;
    check_schema_version(&conn, path)?;
    Ok(conn)
}

/// Refuses a missing database rather than creating an empty one, for every command but `pull`.
pub fn require_existing(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(Error::DatabaseState(format!(
        "no database at {}: run `keysync pull` first (or pass --db PATH)",
        path.display()
    )))
}

/// Creates an empty database file with mode 0600, and its folder, unless it exists.
pub fn create_private_file(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let io_error = |e: std::io::Error| {
        Error::DatabaseState(format!(
            "cannot create the database {}: {e}",
            path.display()
        ))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(e)),
    }
}

/// WAL so that readers never wait for a pull; NORMAL sync is durable across process crashes in
/// WAL mode; secure_delete so that a cleared secret does not linger in free pages.
fn configure(conn: &Connection, path: &Path) -> Result<()> {
    let context = format!("cannot configure the database {}", path.display());
    conn.busy_timeout(BUSY_TIMEOUT).db(&context)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .db(&context)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .db(&context)?;
    conn.pragma_update(None, "secure_delete", "ON")
        .db(&context)?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    check_schema_version(conn, path)?;
    embedded::migrations::runner()
        .run(conn)
        .map_err(|e| Error::DatabaseState(format!("cannot migrate {}: {e}", path.display())))?;
    Ok(())
}

/// The newest schema version this binary knows.
pub fn known_schema_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The schema version recorded in the database, 0 for a new one.
pub fn schema_version(conn: &Connection) -> Result<i64> {
    let has_history: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
            [],
            |_| Ok(true),
        )
        .optional()
        .db("cannot read the database schema")?
        .unwrap_or(false);
    if !has_history {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history",
        [],
        |row| row.get(0),
    )
    .db("cannot read the schema version")
}

/// Refuses, without touching it, a database written by a newer keysync.
fn check_schema_version(conn: &Connection, path: &Path) -> Result<()> {
    let found = schema_version(conn)?;
    let known = known_schema_version();
    if found > known {
        return Err(Error::DatabaseState(format!(
            "{} has schema version {found}, newer than this keysync understands ({known}): \
             upgrade keysync",
            path.display()
        )));
    }
    Ok(())
}

/// The bytes the database takes on disk: the file and its write-ahead log.
pub fn database_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            std::fs::metadata(path).ok().map(|m| m.len())
        })
        .sum()
}

/// The data columns for SQL, quoted (`group` is an SQL keyword) and each prefixed with `prefix`
/// (`""`, or a table alias such as `"v."`): `v."user_id", v."name", ...`.
pub(crate) fn quoted_columns(prefix: &str) -> String {
    DATA_COLUMNS.map(|c| format!("{prefix}\"{c}\"")).join(", ")
}

/// An in-memory database with the real schema, for unit tests.
#[cfg(test)]
pub(crate) fn migrated_in_memory() -> Connection {
    let mut conn = Connection::open_in_memory().expect("an in-memory database");
    embedded::migrations::runner()
        .run(&mut conn)
        .expect("the migrations run");
    conn
}
