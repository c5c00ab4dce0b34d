//! SIGINT and SIGTERM as a value a pull can wait on, so a stop ends the lock wait or rolls back
//! the pull in flight instead of killing the process. (The guard that marks a pull's row failed
//! on any other way out is [`crate::store::sync::UnfinishedSync`].)

use std::future::Future;

use tokio::sync::watch;

use crate::error::{Error, Result, Signal};

pub(crate) struct Shutdown {
    requested: watch::Receiver<Option<Signal>>,
}

impl Shutdown {
    /// Starts listening for SIGINT (Ctrl-C) and, on Unix, SIGTERM. Both are registered before
    /// this returns, so from then on neither kills the process.
    pub(crate) fn install() -> Result<Shutdown> {
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
    pub(crate) fn requested(&self) -> impl Future<Output = Signal> + Send + 'static {
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
    pub(crate) fn received(&self) -> Option<Signal> {
        *self.requested.borrow()
    }
}
