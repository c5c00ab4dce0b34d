//! The convenience views (`clock`, `key_info`, `sync_info`) and the rule views (`good_syncs`,
//! `key_usage`) on a reading connection.
//!
//! The stored views (migrations/V2__views.sql, V4__good_syncs.sql) take "now" from SQLite's
//! clock. A query connection gets TEMP twins of them, built from the same files, which shadow
//! the stored ones for that connection only: their `clock` says the time keysync was given
//! (`--now`, else the clock read once when the command started), so views and reports agree on
//! one "now" and `--now` makes them reproducible. TEMP objects live outside the database file,
//! so this works on a read-only connection, and it also gives the views to a database last
//! written by a keysync that predates them (its schema is migrated on the next pull, never by a
//! reader): every reader gets twins of the views its file lacks, so that the Rust code can read
//! `good_syncs` whatever the file's schema version.

use rusqlite::Connection;

use crate::error::{DbContext, Result};

/// The migrations that define views, by schema version, oldest first. A later migration that
/// adds or changes a view must be added here, so that reading connections build the current
/// definitions. Each must hold only `CREATE VIEW` statements (and comments).
const VIEW_MIGRATIONS: [(i64, &str); 2] = [
    (2, include_str!("../../migrations/V2__views.sql")),
    (4, include_str!("../../migrations/V4__good_syncs.sql")),
];

/// Creates TEMP twins of every view, with `clock` fixed at `now` (unix seconds). Twins that
/// [`install_missing_views`] gave the connection are replaced.
pub(crate) fn install_temp_views(conn: &Connection, now: i64) -> Result<()> {
    let context = "cannot create the query views";
    drop_temp_views(conn).db(context)?;
    conn.execute_batch(&temp_twins_sql(0)).db(context)?;
    // Views cannot hold bound parameters; `now` is an integer, so formatting it in is exact.
    conn.execute_batch(&format!(
        "DROP VIEW temp.clock; CREATE TEMP VIEW clock AS SELECT {now} AS now;"
    ))
    .db(context)
}

/// Gives a connection to a file of schema version `version` TEMP twins of the views that came
/// with later migrations, exact ones (SQLite's clock): a reader never migrates a file, yet
/// reads through the views.
pub(crate) fn install_missing_views(conn: &Connection, version: i64) -> Result<()> {
    conn.execute_batch(&temp_twins_sql(version))
        .db("cannot create the views this older database lacks")
}

fn drop_temp_views(conn: &Connection) -> rusqlite::Result<()> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM temp.sqlite_master WHERE type = 'view'")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for name in names {
        conn.execute_batch(&format!("DROP VIEW temp.\"{}\"", name.replace('"', "\"\"")))?;
    }
    Ok(())
}

/// The view migrations newer than schema version `after`, with every `CREATE VIEW` made a
/// `CREATE TEMP VIEW`. A TEMP view's unqualified table names resolve TEMP first, so the twins
/// read the pinned `clock` and each other.
fn temp_twins_sql(after: i64) -> String {
    VIEW_MIGRATIONS
        .iter()
        .filter(|(version, _)| *version > after)
        .map(|(_, sql)| sql.replace("CREATE VIEW ", "CREATE TEMP VIEW "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{first_column, open};
    use std::path::Path;

    /// Functions and syntax SQLite added after 3.31, lower case: a `sqlite3` shell or Python
    /// that old fails on them.
    const NEWER_THAN_3_31: [&str; 14] = [
        "unixepoch(",
        "iif(",
        "format(",
        "concat(",
        "concat_ws(",
        "unhex(",
        "octet_length(",
        "timediff(",
        "string_agg(",
        "median(",
        "percentile(",
        "->",
        " returning ",
        " materialized ",
    ];

    fn newer_than_3_31(sql: &str) -> Vec<&'static str> {
        let sql = sql.to_lowercase();
        NEWER_THAN_3_31
            .into_iter()
            .filter(|token| sql.contains(token))
            .collect()
    }

    #[test]
    fn the_stored_views_and_the_documented_sql_run_on_sqlite_3_31() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("k.db")).unwrap();
        let views: Vec<String> =
            first_column(&conn, "SELECT sql FROM sqlite_master WHERE type = 'view'");
        assert_eq!(views.len(), 5);
        for view in &views {
            assert_eq!(newer_than_3_31(view), [] as [&str; 0], "{view}");
        }
        // Every fenced block of the README and docs that holds SQL: the `sql` ones and shell
        // lines.
        let docs = [
            include_str!("../../README.md"),
            include_str!("../../docs/guide.md"),
            include_str!("../../docs/database.md"),
        ];
        let blocks: Vec<&str> = docs
            .iter()
            .flat_map(|doc| doc.split("```").skip(1).step_by(2))
            .collect();
        let with_sql: Vec<&&str> = blocks
            .iter()
            .filter(|b| b.starts_with("sql\n") || b.contains("SELECT "))
            .collect();
        assert!(with_sql.len() >= 5, "{}", with_sql.len());
        for block in with_sql {
            assert_eq!(newer_than_3_31(block), [] as [&str; 0], "{block}");
        }
        // The tokens are found where they are.
        assert_eq!(
            newer_than_3_31("SELECT unixepoch(), a ->> '$.b' FROM t"),
            ["unixepoch(", "->"]
        );
        let now: i64 = conn
            .query_row("SELECT now FROM main.clock", [], |row| row.get(0))
            .unwrap();
        assert!(
            now > 1_766_102_400,
            "the clock is an INTEGER of SQLite's time"
        );
    }

    fn view_names(conn: &Connection, schema: &str) -> Vec<String> {
        first_column(
            conn,
            &format!("SELECT name FROM {schema}.sqlite_master WHERE type = 'view' ORDER BY name"),
        )
    }

    #[test]
    fn every_stored_view_gets_a_temp_twin_that_reads_the_pinned_clock() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("k.db")).unwrap();
        install_temp_views(&conn, 1_766_102_400).unwrap();
        let stored = view_names(&conn, "main");
        assert_eq!(
            stored,
            ["clock", "good_syncs", "key_info", "key_usage", "sync_info"]
        );
        assert_eq!(view_names(&conn, "temp"), stored);
        let (temp_now, stored_now): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT now FROM clock), (SELECT now FROM main.clock)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(temp_now, 1_766_102_400);
        assert!(stored_now > 1_766_102_400, "the stored clock is SQLite's");
    }

    #[test]
    fn the_twins_only_differ_from_the_stored_views_by_temp() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("k.db")).unwrap();
        let stored: Vec<String> = first_column(
            &conn,
            "SELECT sql FROM main.sqlite_master WHERE type = 'view' AND name <> 'clock' ORDER BY name",
        );
        install_temp_views(&conn, 0).unwrap();
        let twins: Vec<String> = first_column(
            &conn,
            "SELECT sql FROM temp.sqlite_master WHERE type = 'view' AND name <> 'clock' ORDER BY name",
        );
        // SQLite stores a TEMP view's text without the TEMP keyword.
        assert_eq!(twins, stored);
    }

    /// The source files below `dir` (Rust without its `mod tests`, SQL), by path.
    fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match path.extension().and_then(|e| e.to_str()) {
                // A `tests.rs` is a unit-test module of its own: its fixtures spell statuses.
                Some("rs") if path.ends_with("tests.rs") => continue,
                Some("rs") => text.split("\n#[cfg(test)]\nmod tests").next().unwrap(),
                Some("sql") => &text,
                _ => continue,
            };
            found.push((path.display().to_string(), code.to_string()));
        }
    }

    /// "A good sync is `ok` or `partial`" is written once, in the `good_syncs` view: no other
    /// SQL of the crate, in Rust strings, report files or migrations, spells the statuses it
    /// counts. V1 lists every status in its CHECK, and SyncStatus maps each to its text.
    #[test]
    fn the_good_sync_rule_is_spelled_only_in_its_view() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        sources(&root.join("src"), &mut found);
        sources(&root.join("migrations"), &mut found);
        assert!(found.len() > 40, "{} files", found.len());
        let allowed = ["V1__init.sql", "V4__good_syncs.sql", "sync_status.rs"];
        let spelling: Vec<&String> = found
            .iter()
            .filter(|(path, _)| !allowed.iter().any(|name| path.ends_with(name)))
            .filter(|(_, code)| {
                ["'ok'", "'partial'", "\"partial\""]
                    .iter()
                    .any(|s| code.contains(s))
            })
            .map(|(path, _)| path)
            .collect();
        assert!(spelling.is_empty(), "{spelling:#?}");
        let (_, v4) = VIEW_MIGRATIONS[1];
        assert!(v4.contains(
            "CREATE VIEW good_syncs AS\nSELECT * FROM syncs WHERE status IN ('ok', 'partial');"
        ));
    }

    /// A reader of a file from before V4 (which it never migrates) reads `good_syncs` and
    /// `key_usage` through exact TEMP twins, and the file stays as it was.
    #[test]
    fn readers_of_an_older_file_get_the_views_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            crate::store::migrate_to(&mut conn, Some(3));
            conn.execute_batch(
                "INSERT INTO syncs (id, started_at, status, base_url) VALUES
                     (1, 10, 'ok', 'x'), (2, 20, 'failed', 'x'), (3, 30, 'partial', 'x'),
                     (4, 40, 'running', 'x');",
            )
            .unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let conn = crate::store::open_read_only(&path).unwrap();
        assert_eq!(crate::store::schema_version(&conn).unwrap(), 3);
        assert_eq!(
            view_names(&conn, "main"),
            ["clock", "key_info", "sync_info"]
        );
        assert_eq!(view_names(&conn, "temp"), ["good_syncs", "key_usage"]);
        let good: Vec<i64> = first_column(&conn, "SELECT id FROM good_syncs ORDER BY id");
        assert_eq!(good, [1, 3]);
        install_temp_views(&conn, 0).unwrap();
        assert_eq!(
            view_names(&conn, "temp"),
            ["clock", "good_syncs", "key_info", "key_usage", "sync_info"]
        );
        drop(conn);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
