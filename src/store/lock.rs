//! The pull lock: one `keysync pull` per database at a time.
//!
//! An OS file lock on `<db>.lock`, so it dies with its process: a crashed pull leaves no stale
//! lock. Readers do not take it; WAL lets them read while a pull writes.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const POLL: Duration = Duration::from_millis(100);

/// Held for the whole pull; dropping it releases the lock.
#[derive(Debug)]
pub struct PullLock {
    _file: File,
}

pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl PullLock {
    /// Takes the lock at once, or within `wait`, or fails with exit code 5.
    pub fn acquire(db: &Path, wait: Option<Duration>) -> Result<PullLock> {
        let path = lock_path(db);
        let file = open_lock_file(&path)?;
        let deadline = Instant::now() + wait.unwrap_or_default();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(PullLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(POLL)
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked(format!(
                        "another keysync pull is running on this database (lock {} is held); \
                         let it finish, or pass --wait DURATION to wait for it",
                        path.display()
                    )));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::DatabaseState(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| {
        Error::DatabaseState(format!("cannot open the lock file {}: {e}", path.display()))
    })
}
