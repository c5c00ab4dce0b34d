//! The SQLite file, behind one type: [`Store`] opens it (pragmas, refinery migrations, identity
//! and version checks; read-write, read-only or query mode) and its methods are the reads and
//! writes the commands make. Reports are the only other SQL, and they go through query mode.
//! Also here: the pull lock, the pull's own writes (`sync`), and the alarm state of `check`
//! (`alarms`).

pub(crate) mod alarms;
pub(crate) mod diff;
pub(crate) mod history;
pub(crate) mod lock;
pub(crate) mod points;
pub(crate) mod price;
pub(crate) mod prune;
pub(crate) mod query;
pub(crate) mod status;
pub(crate) mod sync;
pub(crate) mod sync_status;
pub(crate) mod timeline;
pub(crate) mod usage;
pub(crate) mod views;
pub(crate) mod wal;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::api::model::DATA_COLUMNS;
use crate::error::{DbContext, Error, Result};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// An open keysync database and where it is.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the database for writing (`pull`, `prune`): see [`open`].
    pub fn open(path: &Path) -> Result<Store> {
        Ok(Store {
            conn: open(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database for reading: see [`open_read_only`].
    pub(crate) fn open_read_only(path: &Path) -> Result<Store> {
        Ok(Store {
            conn: open_read_only(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database for `query`: read-only, with the views pinned at `now` and
    /// every statement that would write refused (see [`query`]).
    pub(crate) fn open_for_query(path: &Path, now: i64) -> Result<Store> {
        Ok(Store {
            conn: query::open_for_query(path, now)?,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes the database takes on disk: the file and its write-ahead log.
    pub(crate) fn bytes(&self) -> u64 {
        database_bytes(&self.path)
    }

    /// The schema version recorded in the database.
    pub(crate) fn schema_version(&self) -> Result<i64> {
        schema_version(&self.conn)
    }

    /// The connection, for the submodules that hold the SQL.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Starts one read transaction and reads at once, so that every read after this one sees
    /// the same snapshot of the database, whatever a pull commits meanwhile (in WAL, a reader
    /// keeps the snapshot its transaction began with). It lasts until the store is dropped.
    pub(crate) fn begin_snapshot(&self) -> Result<()> {
        let context = "cannot start reading";
        self.conn.execute_batch("BEGIN DEFERRED").db(context)?;
        self.conn
            .query_row("SELECT count(*) FROM syncs", [], |_| Ok(()))
            .db(context)
    }
}

pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the database for writing, creating it (mode 0600) and its folder when missing, and
/// brings its schema up to date. A file that is not keysync's, or is newer than this binary,
/// is refused before anything is written to it (the journal-mode switch included), so it
/// stays byte for byte as it was, and gains no `-wal` or `-shm` beside it.
fn open(path: &Path) -> Result<Connection> {
    create_private_file(path)?;
    refuse_before_writing(path)?;
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db(&format!("cannot open the database {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .db("cannot set the busy timeout")?;
    // Closing the last connection to a WAL database checkpoints it into the file: a refused
    // file (another application's, in WAL mode) must be closed without that write.
    let no_checkpoint_on_close = |on| {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, on)
            .db("cannot configure the database connection")
    };
    no_checkpoint_on_close(true)?;
    check_schema(&conn, path)?;
    no_checkpoint_on_close(false)?;
    configure(&conn, path)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Runs the refusal checks on an `immutable` read-only connection when the file has no `-wal`:
/// any open of a WAL-mode file, even a read-only one, creates its `-shm` (and a read-write one
/// its `-wal`) at once, even to be refused. Without a `-wal` the file alone is the whole database, so the check is exact.
/// With one, the read-write path in [`open`] checks it instead (it cannot add files that are
/// there already). Only a refusal counts here: any other error is left to that path, which
/// checks again with locks.
fn refuse_before_writing(path: &Path) -> Result<()> {
    if sibling(path, "-wal").exists() {
        return Ok(());
    }
    let checked = connect_read_only(path, true).and_then(|conn| check_schema(&conn, path));
    match checked {
        Err(refused @ Error::DatabaseState(_)) => Err(refused),
        Err(other) => {
            tracing::debug!(
                "the early schema check of {} failed: {other}",
                path.display()
            );
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// `path` with `suffix` appended to its file name: `keysync.db-wal`.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens an existing database without the right to change it, as `query` and friends do.
///
/// A WAL database needs its `-shm` file, which SQLite creates beside it even to read; on a
/// read-only mount or in a read-only folder it cannot, and the first read fails. Then the file
/// is opened `immutable`: no locks and no `-shm`, the database file as it is. That is safe
/// because no pull can be writing to read-only media, and complete because every pull ends by
/// emptying the `-wal` into the file (see [`wal`]); a `-wal` that still holds data is warned
/// about. A file without keysync's schema (an empty one included) is refused: the readers
/// have nothing to read in it.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection> {
    require_existing(path)?;
    refuse_before_writing(path)?;
    let conn = connect_read_only(path, false)?;
    let conn = match check_schema(&conn, path) {
        Ok(()) => conn,
        Err(Error::Database { source, .. }) if on_read_only_media(&source) => {
            refuse_hot_journal(path)?;
            tracing::info!(
                "{} is on read-only media ({source}): reading the file as immutable",
                path.display()
            );
            warn_if_wal_unread(path);
            let conn = connect_read_only(path, true)?;
            check_schema(&conn, path)?;
            conn
        }
        Err(error) => return Err(error),
    };
    let version = schema_version(&conn)?;
    if version == 0 {
        return Err(Error::DatabaseState(format!(
            "{} is not a keysync database (it has no keysync schema): run `keysync pull` \
             first, or pass --db PATH",
            path.display()
        )));
    }
    views::install_missing_views(&conn, version)?;
    Ok(conn)
}

/// The bytes a rollback journal begins with once it holds what a commit must undo.
pub(crate) const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// A pull killed while it wrote a database's first keys (through a rollback journal: see
/// [`wal::BulkJournal`]) leaves that journal "hot" beside the file, and the file half written.
/// A read-only connection may not roll it back, so SQLite refuses to read (as it does on
/// read-only media), and reading the file without the journal would read the half-written
/// pages as damage. The next pull rolls the journal back; until then readers say so. Only
/// asked after SQLite refused: a running pull's journal starts the same way, and readers wait
/// for that one.
fn refuse_hot_journal(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut start = [0u8; 8];
    let read = std::fs::File::open(sibling(path, "-journal"))
        .and_then(|mut journal| journal.read_exact(&mut start));
    match read {
        Ok(()) if start == JOURNAL_MAGIC => Err(Error::PullInterrupted(path.to_path_buf())),
        _ => Ok(()),
    }
}

fn connect_read_only(path: &Path, immutable: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let context = format!("cannot open the database {}", path.display());
    let conn = if immutable {
        Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
    } else {
        Connection::open_with_flags(path, flags)
    }
    .db(&context)?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .db("cannot set the busy timeout")?;
    Ok(conn)
}

/// What SQLite answers when it cannot create the `-shm` (or `-wal`) of a read-only database:
/// `SQLITE_READONLY_DIRECTORY`, `SQLITE_READONLY_CANTINIT` or `SQLITE_CANTOPEN`.
fn on_read_only_media(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    )
}

/// `file:/path/to/keysync.db?immutable=1`, the path percent-encoded where URI syntax needs it.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' | b'~' => {
                uri.push(char::from(*byte));
            }
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// An immutable open does not read the `-wal`: say so when it holds something.
fn warn_if_wal_unread(db: &Path) {
    let wal = sibling(db, "-wal");
    let bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    if bytes > 0 {
        tracing::warn!(
            "{} holds {} of changes that are not in the database file yet, and on \
             read-only media they cannot be read: the latest syncs may be missing. Copy both \
             files to writable storage to see them",
            wal.display(),
            crate::terminal::counted(bytes, "byte")
        );
    }
}

/// Refuses a missing database rather than creating an empty one, for every command but `pull`.
pub(crate) fn require_existing(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(Error::DatabaseState(format!(
        "no database at {}: run `keysync pull` first (or pass --db PATH)",
        path.display()
    )))
}

/// Creates an empty database file with mode 0600, and its folder, unless it exists.
pub(crate) fn create_private_file(path: &Path) -> Result<()> {
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
    use_wal(conn).db(&context)?;
    conn.pragma_update(None, "secure_delete", "ON")
        .db(&context)?;
    Ok(())
}

/// The journal every connection writes through, and its sync level (see [`configure`]).
pub(crate) fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(Some("main"), "journal_mode", "WAL")?;
    conn.pragma_update(Some("main"), "synchronous", "NORMAL")
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    embedded::migrations::runner().run(conn).map_err(|e| {
        Error::DatabaseState(format!(
            "cannot bring {} up to schema version {}: {}; restore it from a backup, or \
                 start a new one with --db",
            path.display(),
            known_schema_version(),
            migration_failure(&e)
        ))
    })?;
    Ok(())
}

/// The cause of a failed migration in one line. refinery's own message carries SQLite's
/// syntax errors with the whole migration's SQL, which tells a user nothing.
fn migration_failure(error: &refinery::Error) -> String {
    match error.kind() {
        refinery::error::Kind::Connection(what, source) => {
            let cause = match source.downcast_ref::<rusqlite::Error>() {
                Some(rusqlite::Error::SqlInputError { msg, .. }) => msg.clone(),
                Some(rusqlite::Error::SqliteFailure(failure, Some(msg))) => {
                    format!("{msg} ({:?})", failure.code)
                }
                Some(other) => other
                    .sqlite_error_code()
                    .map_or_else(|| "a database error".to_string(), |c| format!("{c:?}")),
                None => "a database error".to_string(),
            };
            format!("{what}: {cause}")
        }
        other => other.to_string(),
    }
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
pub(crate) fn schema_version(conn: &Connection) -> Result<i64> {
    if !has_schema_history(conn)? {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history",
        [],
        |row| row.get(0),
    )
    .db("cannot read the schema version")
}

/// Refuses, without touching it, a file keysync must not write to: a non-empty SQLite file
/// another application made (no keysync schema history, or another one), or a database written
/// by a newer keysync. Reads only: it runs before the journal mode is switched.
fn check_schema(conn: &Connection, path: &Path) -> Result<()> {
    let applied = applied_migrations(conn)?;
    let foreign_history = applied.iter().find(|(version, name)| {
        known_migration_name(*version).is_some_and(|known| known != name.as_str())
    });
    if let Some((version, name)) = foreign_history {
        return Err(Error::DatabaseState(format!(
            "{} is not a keysync database: its schema history is another application's \
             (version {version} is {name:?}); keysync left it untouched: choose another --db",
            path.display()
        )));
    }
    if applied.is_empty() {
        let tables = other_tables(conn)?;
        if !tables.is_empty() {
            return Err(Error::DatabaseState(format!(
                "{} is not a keysync database: it holds another application's tables ({}); \
                 keysync left it untouched: choose another --db",
                path.display(),
                name_a_few(&tables)
            )));
        }
    }
    let found = applied
        .iter()
        .map(|(version, _)| *version)
        .max()
        .unwrap_or(0);
    let known = known_schema_version();
    if found > known {
        return Err(Error::DatabaseState(format!(
            "{} has schema version {found}, newer than this keysync understands ({known}); \
             keysync left it untouched: upgrade keysync",
            path.display()
        )));
    }
    Ok(())
}

/// `(version, name)` of every migration recorded in the file, none for a new one.
fn applied_migrations(conn: &Connection) -> Result<Vec<(i64, String)>> {
    let context = "cannot read the database schema";
    if !has_schema_history(conn)? {
        return Ok(Vec::new());
    }
    let mut statement = conn
        .prepare("SELECT version, name FROM refinery_schema_history ORDER BY version")
        .db(context)?;
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .db(context)?;
    rows.collect::<rusqlite::Result<_>>().db(context)
}

fn has_schema_history(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
            [],
            |_| Ok(true),
        )
        .optional()
        .db("cannot read the database schema")?
        .unwrap_or(false))
}

/// The name this binary gives schema version `version`, if it knows that version.
fn known_migration_name(version: i64) -> Option<String> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .find(|m| i64::from(m.version()) == version)
        .map(|m| m.name().to_string())
}

/// The tables and views of a file without keysync's schema history, SQLite's own left out,
/// and an empty `refinery_schema_history` too: a first pull killed before its first migration
/// committed leaves just that, and the next pull must carry on.
fn other_tables(conn: &Connection) -> Result<Vec<String>> {
    let context = "cannot read the database schema";
    let mut statement = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
               AND name <> 'refinery_schema_history' ORDER BY name",
        )
        .db(context)?;
    let names = statement.query_map([], |row| row.get(0)).db(context)?;
    names.collect::<rusqlite::Result<_>>().db(context)
}

/// `"a", "b", "c" and 4 more`: enough names to recognise a file by.
fn name_a_few(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let quoted: Vec<String> = names.iter().take(SHOWN).map(|n| format!("{n:?}")).collect();
    match names.len().saturating_sub(SHOWN) {
        0 => quoted.join(", "),
        more => format!("{} and {more} more", quoted.join(", ")),
    }
}

/// The bytes the database takes on disk: the file and its write-ahead log.
pub fn database_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(sibling(db, suffix)).ok().map(|m| m.len()))
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

/// The first column of every row `sql` returns, for unit tests.
#[cfg(test)]
pub(crate) fn first_column<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str) -> Vec<T> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Brings `conn` to schema version `version` (all of them when `None`), for unit tests of
/// upgrades: a file written by an older keysync is one migrated this far.
#[cfg(test)]
pub(crate) fn migrate_to(conn: &mut Connection, version: Option<i32>) {
    let runner = embedded::migrations::runner();
    let runner = match version {
        Some(version) => runner.set_target(refinery::Target::Version(version)),
        None => runner,
    };
    runner.run(conn).expect("the migrations run");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_uris_escape_what_uri_syntax_would_misread() {
        assert_eq!(
            immutable_uri(Path::new("/mnt/backup/keysync.db")),
            "file:/mnt/backup/keysync.db?immutable=1"
        );
        assert_eq!(
            immutable_uri(Path::new("rel/a b?#%é.db")),
            "file:rel/a%20b%3F%23%25%C3%A9.db?immutable=1"
        );
    }

    #[test]
    fn a_few_names_are_named_and_the_rest_counted() {
        let names = |n: usize| -> Vec<String> { (1..=n).map(|i| format!("t{i}")).collect() };
        assert_eq!(name_a_few(&names(1)), "\"t1\"");
        assert_eq!(name_a_few(&names(3)), "\"t1\", \"t2\", \"t3\"");
        assert_eq!(name_a_few(&names(5)), "\"t1\", \"t2\", \"t3\" and 2 more");
        assert_eq!(name_a_few(&["a\u{1b}]0;x".to_string()]), "\"a\\u{1b}]0;x\"");
    }

    #[test]
    fn the_migrations_bind_a_database_that_already_holds_keys() {
        let mut conn = Connection::open_in_memory().unwrap();
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(2))
            .run(&mut conn)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO keys (id, user_id, first_seen_sync, removed_sync) VALUES
                 (1, 7, 1, 3), (2, 7, 1, 3), (3, 9, 2, NULL), (4, NULL, 1, NULL);",
        )
        .unwrap();
        embedded::migrations::runner().run(&mut conn).unwrap();
        let bound: (i64, i64) = conn
            .query_row("SELECT user_id, bound_sync FROM account", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(
            bound,
            (9, 2),
            "the account of most live keys, not most keys"
        );
    }
}
