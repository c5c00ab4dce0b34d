//! How a sync ended (or that it has not yet): the `syncs.status` column as a Rust type.
//!
//! The column's CHECK constraint (migrations/V1__init.sql) allows exactly these four texts.
//! Which of them count as a good sync is not decided here but by the `good_syncs` view
//! (migrations/V4__good_syncs.sql), which Rust and the report SQL both read.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    Running,
    Ok,
    Partial,
    Failed,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 4] = [
        SyncStatus::Running,
        SyncStatus::Ok,
        SyncStatus::Partial,
        SyncStatus::Failed,
    ];

    /// The text `syncs.status` stores.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Running => "running",
            SyncStatus::Ok => "ok",
            SyncStatus::Partial => "partial",
            SyncStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `syncs.status` text that is none of the four keysync writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSyncStatus(pub String);

impl fmt::Display for UnknownSyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the sync status {:?} is not one keysync writes (running, ok, partial, failed): \
             the syncs table was edited by hand; correct the row with the sqlite3 shell",
            self.0
        )
    }
}

impl std::error::Error for UnknownSyncStatus {}

impl FromStr for SyncStatus {
    type Err = UnknownSyncStatus;

    fn from_str(text: &str) -> Result<SyncStatus, UnknownSyncStatus> {
        SyncStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownSyncStatus(text.to_string()))
    }
}

impl FromSql for SyncStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<SyncStatus> {
        let text = value.as_str()?;
        text.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for SyncStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrated_in_memory;

    #[test]
    fn every_status_reads_back_as_written() {
        let conn = migrated_in_memory();
        for status in SyncStatus::ALL {
            conn.execute(
                "INSERT INTO syncs (started_at, status, base_url) VALUES (1, ?1, 'x')",
                [status],
            )
            .unwrap();
            let read: SyncStatus = conn
                .query_row(
                    "SELECT status FROM syncs WHERE id = last_insert_rowid()",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(read, status);
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!(
            serde_json::to_string(&SyncStatus::ALL).unwrap(),
            r#"["running","ok","partial","failed"]"#
        );
    }

    #[test]
    fn an_unknown_status_is_a_clear_error() {
        let conn = migrated_in_memory();
        let error = conn
            .query_row("SELECT 'done'", [], |row| row.get::<_, SyncStatus>(0))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Conversion error from type Text at index: 0, the sync status \"done\" is not one \
             keysync writes (running, ok, partial, failed): the syncs table was edited by \
             hand; correct the row with the sqlite3 shell"
        );
        let error = conn
            .query_row("SELECT 3", [], |row| row.get::<_, SyncStatus>(0))
            .unwrap_err();
        assert!(
            matches!(error, rusqlite::Error::InvalidColumnType(0, _, _)),
            "{error:?}"
        );
    }
}
