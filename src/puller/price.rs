//! The gateway's price, read once per pull beside the listing (`GET /api/status`).
//!
//! The read goes out once page 1 is staged: by then the token has worked and the database has
//! accepted the account, so a rejected token or another account's database still costs a
//! single request. From then on it runs beside the rest of the listing (for a one-page account,
//! beside page 1 read again), so it holds no page back and adds to a pull at most what its
//! own retries take beyond the listing's. Its failure is never the pull's: the sync then
//! records no price, and the writer says why.

use std::panic::resume_unwind;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::api::{ApiClient, GatewayStatus, Page, PageSink};
use crate::error::Result;

/// The read of `/api/status` of one pull, on a task of its own. Dropped unfinished (the
/// listing failed, the pull was stopped), it is aborted.
pub(crate) struct PriceRead {
    task: JoinSet<GatewayStatus>,
}

impl PriceRead {
    /// Starts the read, to go out when `staged` says page 1 is staged; if it never says so,
    /// nothing is sent.
    pub(crate) fn after(staged: oneshot::Receiver<()>, client: &Arc<ApiClient>) -> PriceRead {
        let client = Arc::clone(client);
        let mut task = JoinSet::new();
        task.spawn(async move {
            if staged.await.is_err() {
                return GatewayStatus::unread("the listing ended before page 1".into());
            }
            match client.fetch_gateway_status().await {
                Ok(status) => status,
                Err(error) => GatewayStatus::unread(error.to_string()),
            }
        });
        PriceRead { task }
    }

    /// What the gateway published, once the read is done.
    pub(crate) async fn finish(mut self) -> GatewayStatus {
        match self.task.join_next().await {
            Some(Ok(status)) => status,
            Some(Err(e)) if e.is_panic() => resume_unwind(e.into_panic()),
            Some(Err(e)) => GatewayStatus::unread(format!("the read stopped: {e}")),
            None => GatewayStatus::unread("the read was never started".into()),
        }
    }
}

/// Passes pages on to `inner`, and says when page 1 is staged (once, for the first pass).
pub(crate) struct FirstPageStaged<S> {
    inner: S,
    staged: Option<oneshot::Sender<()>>,
}

impl<S> FirstPageStaged<S> {
    pub(crate) fn new(inner: S, staged: oneshot::Sender<()>) -> FirstPageStaged<S> {
        FirstPageStaged {
            inner,
            staged: Some(staged),
        }
    }
}

impl<S: PageSink + Send> PageSink for FirstPageStaged<S> {
    async fn stage(&mut self, pass: u32, page: Page) -> Result<()> {
        let first = page.number == 1;
        self.inner.stage(pass, page).await?;
        if first && let Some(staged) = self.staged.take() {
            let _ = staged.send(());
        }
        Ok(())
    }
}
