//! Every way out of a pull: SIGINT and SIGTERM as a value a pull can wait on (so a stop ends
//! the lock wait or rolls back the pull in flight instead of killing the process), and a guard
//! that marks the pull's `syncs` row failed on any way out that did not finish it, a panic
//! included, so no row is ever left `running` by a live process.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::watch;

use crate::config::unix_now;
use crate::error::{Error, Result, exit};
use crate::store::sync::fail_sync;

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

pub struct Shutdown {
    requested: watch::Receiver<Option<Signal>>,
}

impl Shutdown {
    /// Starts listening for SIGINT (Ctrl-C) and, on Unix, SIGTERM. Both are registered before
    /// this returns, so from then on neither kills the process.
    pub fn install() -> Result<Shutdown> {
        let (sender, requested) = watch::channel(None);
        #[cfg(unix)]
        let listen = |kind: tokio::signal::unix::SignalKind, name: &str| {
            tokio::signal::unix::signal(kind)
                .map_err(|e| Error::Internal(format!("cannot listen for {name}: {e}")))
        };
        #[cfg(unix)]
        let (mut interrupt, mut terminate) = (
            listen(tokio::signal::unix::SignalKind::interrupt(), "SIGINT")?,
            listen(tokio::signal::unix::SignalKind::terminate(), "SIGTERM")?,
        );
        tokio::spawn(async move {
            #[cfg(unix)]
            let signal = tokio::select! {
                _ = interrupt.recv() => Signal::Interrupt,
                _ = terminate.recv() => Signal::Terminate,
            };
            #[cfg(not(unix))]
            let signal = {
                let _ = tokio::signal::ctrl_c().await;
                Signal::Interrupt
            };
            let _ = sender.send(Some(signal));
        });
        Ok(Shutdown { requested })
    }

    /// Resolves with the signal once a stop has been requested (at once if it already was).
    pub fn requested(&self) -> impl Future<Output = Signal> + Send + 'static {
        let mut requested = self.requested.clone();
        async move {
            let received = requested
                .wait_for(Option::is_some)
                .await
                .map(|signal| *signal);
            match received {
                Ok(signal) => signal.unwrap_or(Signal::Interrupt),
                // The listener is gone (the runtime is shutting down): never resolve.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<Signal> {
        *self.requested.borrow()
    }
}

/// A `syncs` row that is still `running`. Dropped before [`UnfinishedSync::finished`] was
/// called, it marks the row failed on a connection of its own (the pull's may be in the
/// middle of unwinding): `internal error: ...` during a panic, `interrupted` otherwise (the
/// pull's future was dropped).
pub struct UnfinishedSync {
    db: PathBuf,
    sync: i64,
    now: Option<i64>,
    armed: bool,
}

impl UnfinishedSync {
    /// `now` is `--now`, so that the row's end time follows the same clock as its start.
    pub fn new(db: &Path, sync: i64, now: Option<i64>) -> UnfinishedSync {
        UnfinishedSync {
            db: db.to_path_buf(),
            sync,
            now,
            armed: true,
        }
    }

    /// The row has been given its final status.
    pub fn finished(mut self) {
        self.armed = false;
    }
}

impl Drop for UnfinishedSync {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let error = if std::thread::panicking() {
            "internal error: keysync panicked during the pull (the message is on stderr)"
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
