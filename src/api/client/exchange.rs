//! The part of an attempt that every request shares: it goes through the pacer, is counted,
//! and its answer is read whole but never past [`MAX_BODY_BYTES`], before its status is judged.

use std::time::Duration;

use reqwest::StatusCode;

use super::retry::{Attempt, RetryKind, retry_after, retry_wait};
use super::{ApiClient, MAX_BODY_BYTES};
use crate::api::pacing::{Admission, RateLimited};
use crate::error::Error;

impl ApiClient {
    /// Sends one request through the pacer, counts it, and reads its answer (at most
    /// [`MAX_BODY_BYTES`]): the part of an attempt that every request shares. `what` names the
    /// request in errors.
    pub(super) async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Answered, Attempt> {
        let admission = self.pacer.admit().await;
        self.counter.sent();
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.pacer.unanswered(admission);
                return Err(self.transport_failure(e));
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let rate_limited = self.paced(admission, status, retry_after);
        let body = read_bounded(&mut response, what)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => Attempt::Fatal(Error::Api(format!(
                    "{what}: the response from {} is larger than {} MiB after \
                     decompression (a page of 100 keys is about 50 KB); is --base-url a \
                     CometAPI gateway?",
                    self.host,
                    MAX_BODY_BYTES / (1024 * 1024)
                ))),
                BodyError::Transport(e) => self.transport_failure(e),
            })?;
        Ok(Answered {
            status,
            retry_after,
            rate_limited,
            body,
        })
    }

    /// Tells the pacer and the counter how the request was answered.
    /// For a 429, who waits before its retry.
    fn paced(
        &self,
        admission: Admission,
        status: StatusCode,
        retry_after: Option<Duration>,
    ) -> Option<RateLimited> {
        if status != StatusCode::TOO_MANY_REQUESTS {
            self.pacer.passed(admission);
            return None;
        }
        self.counter.rate_limited();
        // `Retry-After: 0` must not turn into a tight loop, nor a huge value park cron.
        let wait = retry_after.map(|asked| retry_wait(Some(asked), self.backoff_base, 0));
        Some(self.pacer.rejected(admission, wait))
    }
}

/// An answer read whole, before its status is judged.
pub(super) struct Answered {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// For a 429: who waits before the retry.
    rate_limited: Option<RateLimited>,
    body: Vec<u8>,
}

impl Answered {
    /// The body when `check` accepts the status; a 429's retry is left to the pacer when it
    /// knows the window.
    pub(super) fn checked(
        self,
        check: impl FnOnce(StatusCode, Option<Duration>, &[u8]) -> Result<(), Attempt>,
    ) -> Result<Vec<u8>, Attempt> {
        match (
            check(self.status, self.retry_after, &self.body),
            self.rate_limited,
        ) {
            (Ok(()), _) => Ok(self.body),
            (Err(Attempt::Retry(mut retry)), Some(how)) => {
                retry.kind = RetryKind::RateLimited(how);
                Err(Attempt::Retry(retry))
            }
            (Err(attempt), _) => Err(attempt),
        }
    }
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// The body, decompressed, read chunk by chunk and abandoned as soon as it passes
/// [`MAX_BODY_BYTES`].
async fn read_bounded(response: &mut reqwest::Response, what: &str) -> Result<Vec<u8>, BodyError> {
    let expected = response.content_length().unwrap_or(0) as usize;
    let mut body = Vec::with_capacity(expected.min(MAX_BODY_BYTES));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        let needed = body.len() + chunk.len();
        if needed > MAX_BODY_BYTES {
            tracing::debug!("{what}: body passed {MAX_BODY_BYTES} bytes, abandoned");
            return Err(BodyError::TooLarge);
        }
        if needed > body.capacity() {
            // Doubling, but never past the limit: a body near it must not hold twice its size.
            let grown = (body.capacity() * 2).clamp(needed, MAX_BODY_BYTES);
            body.reserve_exact(grown - body.len());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
