//! The guard that no way out of a pull leaves its row `running`: [`UnfinishedSync`] marks it
//! failed, on a connection of its own, when it is dropped before the row is final.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::row::fail_sync;
use crate::error::Error;
use crate::time::unix_now;

/// The error a sync row gets when keysync panicked during its pull.
pub(crate) const PANICKED: &str =
    "internal error: keysync panicked during the pull (the message is on stderr)";

/// A `syncs` row that is still `running`. Dropped before [`UnfinishedSync::finished`] was
/// called, it marks the row failed on a connection of its own (the pull's may be in the
/// middle of unwinding): `internal error: ...` during a panic, `interrupted` otherwise (the
/// pull's writer gave up before the row was final).
pub(crate) struct UnfinishedSync {
    db: PathBuf,
    sync: i64,
    now: Option<i64>,
    armed: bool,
}

impl UnfinishedSync {
    /// `now` is `--now`, so that the row's end time follows the same clock as its start.
    pub(crate) fn new(db: &Path, sync: i64, now: Option<i64>) -> UnfinishedSync {
        UnfinishedSync {
            db: db.to_path_buf(),
            sync,
            now,
            armed: true,
        }
    }

    /// The row has been given its final status.
    pub(crate) fn finished(mut self) {
        self.armed = false;
    }
}

impl Drop for UnfinishedSync {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let error = if std::thread::panicking() {
            PANICKED
        } else {
            "interrupted"
        };
        let failed = Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .and_then(|conn| conn.busy_timeout(Duration::from_secs(5)).map(|()| conn))
            .map_err(|source| Error::Database {
                context: format!("cannot record the end of sync {}", self.sync),
                source,
            })
            .and_then(|conn| fail_sync(&conn, self.sync, unix_now(self.now), error));
        if let Err(record) = failed {
            tracing::warn!("{record}; the next pull marks the sync failed");
        }
    }
}
