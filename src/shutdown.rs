//! SIGINT and SIGTERM as a value that `pull --every` can wait on, so a stop request ends the
//! loop between pulls, or rolls back the pull in flight, instead of killing the process.

use std::future::Future;

use tokio::sync::watch;

use crate::error::{Error, Result};

pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// Starts listening for SIGINT (Ctrl-C) and, on Unix, SIGTERM.
    pub fn install() -> Result<Shutdown> {
        let (sender, requested) = watch::channel(false);
        #[cfg(unix)]
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| Error::Internal(format!("cannot listen for SIGTERM: {e}")))?;
        tokio::spawn(async move {
            #[cfg(unix)]
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
            let _ = sender.send(true);
        });
        Ok(Shutdown { requested })
    }

    /// Resolves once a stop has been requested (at once if it already was).
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut requested = self.requested.clone();
        async move {
            let _ = requested.wait_for(|stop| *stop).await;
        }
    }
}
