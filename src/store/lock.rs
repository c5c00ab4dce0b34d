//! The pull lock: one `keysync pull` (or `prune`) per database file at a time, whatever path
//! names the file: a symlink, a hard link or `..` reach the same lock.
//!
//! On Linux the lock is an open-file-description lock (`F_OFD_SETLK`) on one byte of the
//! database file itself, so it belongs to the file (its device and inode), not to a name. The
//! byte lies far from the bytes SQLite locks (from 0x4000_0000 on, plus the `-shm` file), so
//! it never meets SQLite's own locks.
//! Like every OS lock it dies with its process: a crashed pull leaves no stale lock.
//!
//! SQLite's POSIX-lock pitfall: closing *any* descriptor of a file drops every POSIX lock the
//! process holds on it, SQLite's included. So the descriptor that carries this lock is never
//! closed: it is kept open for the life of the process (one per database file, reused by the
//! next pull of `pull --every`), and releasing the lock only unlocks the byte.
//!
//! Elsewhere the lock is `<canonical path>.lock`: symlinks and `..` meet, hard links do not.
//!
//! Readers do not take the lock; WAL lets them read while a pull writes. Waiting for it
//! (`--wait`) sleeps asynchronously, so a signal can end the wait at once.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

const POLL: Duration = Duration::from_millis(100);

/// Held for the whole pull; dropping it releases the lock.
#[derive(Debug)]
pub struct PullLock {
    held: platform::Held,
}

impl PullLock {
    /// Takes the lock at once, or fails with exit code 5.
    pub fn try_acquire(db: &Path) -> Result<PullLock> {
        match platform::try_lock(db)? {
            Some(held) => Ok(PullLock { held }),
            None => Err(locked(db)),
        }
    }

    /// Takes the lock at once, or within `wait` (polling, with an async sleep so that the
    /// caller can drop this future to give up), or fails with exit code 5.
    pub async fn acquire(db: &Path, wait: Option<Duration>) -> Result<PullLock> {
        let started = tokio::time::Instant::now();
        let wait = wait.unwrap_or_default();
        let mut told = false;
        loop {
            if let Some(held) = platform::try_lock(db)? {
                return Ok(PullLock { held });
            }
            if started.elapsed() >= wait {
                return Err(locked(db));
            }
            if !told {
                told = true;
                tracing::info!(
                    "another pull or prune holds the lock of {}; waiting up to {} for it",
                    db.display(),
                    crate::time::readable_duration(wait)
                );
            }
            tokio::time::sleep(POLL.min(wait.saturating_sub(started.elapsed()))).await;
        }
    }
}

impl Drop for PullLock {
    fn drop(&mut self) {
        platform::unlock(&self.held);
    }
}

fn locked(db: &Path) -> Error {
    Error::Locked(format!(
        "another keysync pull or prune is running on the database {} (the same file, whatever \
         path names it); let it finish, or pass --wait DURATION to wait for it",
        db.display()
    ))
}

fn cannot_lock(db: &Path, error: std::io::Error) -> Error {
    Error::DatabaseState(format!(
        "cannot lock the database {}: {error}; check the permissions of the file",
        db.display()
    ))
}

#[cfg(target_os = "linux")]
mod platform {
    use std::collections::HashMap;
    use std::collections::hash_map::Entry;
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::sync::{Mutex, MutexGuard};

    use super::cannot_lock;
    use crate::error::Result;

    /// The locked byte: 1 TiB into the file (a lock may lie past its end), far from SQLite's
    /// lock bytes at 0x4000_0000..0x4000_0200.
    const LOCK_BYTE: libc::off_t = 1 << 40;

    /// The lock this process holds on one file, by (device, inode).
    #[derive(Debug)]
    pub(super) struct Held((u64, u64));

    /// One descriptor per database file, never closed, and whether this process holds the lock
    /// through it. OFD locks of one descriptor do not exclude each other, so a second pull in
    /// the same process is refused here.
    struct Descriptor {
        file: File,
        held: bool,
    }

    static OPEN: Mutex<Option<HashMap<(u64, u64), Descriptor>>> = Mutex::new(None);

    fn descriptors() -> MutexGuard<'static, Option<HashMap<(u64, u64), Descriptor>>> {
        OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn try_lock(db: &Path) -> Result<Option<Held>> {
        let named = std::fs::metadata(db).map_err(|e| cannot_lock(db, e))?;
        let key = (named.dev(), named.ino());
        let mut open = descriptors();
        // Looked up by the identity before opening, so that no second descriptor of a file is
        // ever opened (and closed again).
        let open_file = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(db)
                .map_err(|e| cannot_lock(db, e))
        };
        let descriptor = match open.get_or_insert_with(HashMap::new).entry(key) {
            Entry::Occupied(known) if !is_deleted(&known.get().file) => known.into_mut(),
            // A deleted file whose inode number the file at `db` now has: its descriptor is
            // of no use, and closing it cannot touch the new file's locks.
            Entry::Occupied(stale) if stale.get().held => return Ok(None),
            Entry::Occupied(mut stale) => {
                stale.insert(Descriptor {
                    file: open_file()?,
                    held: false,
                });
                stale.into_mut()
            }
            Entry::Vacant(new) => new.insert(Descriptor {
                file: open_file()?,
                held: false,
            }),
        };
        if descriptor.held {
            return Ok(None);
        }
        match set_lock(&descriptor.file, libc::F_WRLCK as libc::c_short) {
            Ok(()) => {
                descriptor.held = true;
                Ok(Some(Held(key)))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(None),
            Err(e) => Err(cannot_lock(db, e)),
        }
    }

    pub(super) fn unlock(held: &Held) {
        if let Some(descriptor) = descriptors()
            .as_mut()
            .and_then(|open| open.get_mut(&held.0))
        {
            // Cannot fail for a lock this descriptor holds; the process's end releases it anyway.
            let _ = set_lock(&descriptor.file, libc::F_UNLCK as libc::c_short);
            descriptor.held = false;
        }
    }

    fn is_deleted(file: &File) -> bool {
        file.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    fn set_lock(file: &File, kind: libc::c_short) -> std::io::Result<()> {
        // SAFETY: a zeroed `flock` is a valid value (the OFD commands require l_pid == 0).
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = kind;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = LOCK_BYTE;
        lock.l_len = 1;
        // SAFETY: the descriptor is open for the life of `file`, and `lock` outlives the call.
        let result = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
        if result == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use std::fs::{File, TryLockError};
    use std::path::{Path, PathBuf};

    use super::cannot_lock;
    use crate::error::Result;

    #[derive(Debug)]
    pub struct Held(File);

    pub fn try_lock(db: &Path) -> Result<Option<Held>> {
        let path = lock_path(db).map_err(|e| cannot_lock(db, e))?;
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(|e| cannot_lock(db, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Held(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(cannot_lock(db, e)),
        }
    }

    pub fn unlock(_held: &Held) {}

    /// `<canonical path>.lock`, so that a symlink or `..` finds the same lock file.
    fn lock_path(db: &Path) -> std::io::Result<PathBuf> {
        let mut name = db.canonicalize()?.into_os_string();
        name.push(".lock");
        Ok(PathBuf::from(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_lock_is_the_files_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("keysync.db");
        std::fs::write(&db, b"").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let dotted = sub.join("..").join("keysync.db");
        let held = PullLock::try_acquire(&db).unwrap();
        // The same process asking again through another name is refused too.
        let again = PullLock::acquire(&dotted, Some(Duration::from_millis(50))).await;
        assert_eq!(again.unwrap_err().code(), crate::error::exit::LOCKED);
        drop(held);
        let reacquired = PullLock::try_acquire(&dotted).unwrap();
        drop(reacquired);
        PullLock::try_acquire(&db).unwrap();
    }
}
