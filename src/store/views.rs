//! The convenience views (`clock`, `key_info`, `sync_info`) on a query connection.
//!
//! The stored views (migrations/V2__views.sql) take "now" from SQLite's clock. A query
//! connection gets TEMP twins of them, built from the same file, which shadow the stored ones for
//! that connection only: their `clock` says the time keysync was given (`--now`, else the
//! clock read once when the command started), so views and reports agree on one "now" and
//! `--now` makes them reproducible. TEMP objects live outside the database file, so this works
//! on a read-only connection, and it also gives the views to a database last written by a
//! keysync that predates them (its schema is migrated on the next pull, never by a query).

use rusqlite::Connection;

use crate::error::{DbContext, Result};

/// The migration that defines the views. A later migration that changes a view must point this
/// at itself, so that query connections build the current definitions.
const VIEWS_MIGRATION: &str = include_str!("../../migrations/V2__views.sql");

/// Creates TEMP twins of every view, with `clock` fixed at `now` (unix seconds).
pub fn install_temp_views(conn: &Connection, now: i64) -> Result<()> {
    let context = "cannot create the query views";
    conn.execute_batch(&temp_twins_sql()).db(context)?;
    // Views cannot hold bound parameters; `now` is an integer, so formatting it in is exact.
    conn.execute_batch(&format!(
        "DROP VIEW temp.clock; CREATE TEMP VIEW clock AS SELECT {now} AS now;"
    ))
    .db(context)
}

/// The views migration with every `CREATE VIEW` made a `CREATE TEMP VIEW`. A TEMP view's
/// unqualified table names resolve TEMP first, so the twins read the pinned `clock`.
fn temp_twins_sql() -> String {
    VIEWS_MIGRATION.replace("CREATE VIEW ", "CREATE TEMP VIEW ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open;

    fn view_names(conn: &Connection, schema: &str) -> Vec<String> {
        let sql =
            format!("SELECT name FROM {schema}.sqlite_master WHERE type = 'view' ORDER BY name");
        let mut statement = conn.prepare(&sql).unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn every_stored_view_gets_a_temp_twin_that_reads_the_pinned_clock() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("k.db")).unwrap();
        install_temp_views(&conn, 1_766_102_400).unwrap();
        let stored = view_names(&conn, "main");
        assert_eq!(stored, ["clock", "key_info", "sync_info"]);
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
        let stored: Vec<String> = conn
            .prepare("SELECT sql FROM main.sqlite_master WHERE type = 'view' AND name <> 'clock' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        install_temp_views(&conn, 0).unwrap();
        let twins: Vec<String> = conn
            .prepare("SELECT sql FROM temp.sqlite_master WHERE type = 'view' AND name <> 'clock' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        // SQLite stores a TEMP view's text without the TEMP keyword.
        assert_eq!(twins, stored);
    }
}
