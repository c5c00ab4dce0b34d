//! Retries that fit the error: what one failed attempt asks for ([`Attempt`]), the loop that
//! makes attempts until one succeeds or the budget is spent, and how long each retry waits
//! (`Retry-After`, else an exponential backoff with jitter).

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::ApiClient;
use crate::api::pacing::RateLimited;
use crate::error::{Error, Result};
use crate::terminal::counted;

/// No wait between retries is longer than this, `Retry-After` included.
pub(super) const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// A refused connection or a failed DNS lookup is worth a few tries (a server restarting, a
/// network blip), not the whole budget meant for rate limits.
const UNREACHABLE_RETRIES: u32 = 3;

/// The outcome of one failed attempt: worth another try, or final.
pub(super) enum Attempt {
    Retry(Retry),
    Fatal(Error),
}

pub(super) struct Retry {
    pub(super) reason: String,
    pub(super) retry_after: Option<Duration>,
    pub(super) kind: RetryKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RetryKind {
    /// A 429, its wait left to the pacer (see [`RateLimited`]) or to the backoff.
    RateLimited(RateLimited),
    /// 408, 5xx, resets, timeouts.
    Transient,
    /// Connection refused or DNS failure: at most [`UNREACHABLE_RETRIES`].
    Unreachable,
}

impl ApiClient {
    fn slow_down(&self) {
        let _ = self
            .in_flight_limit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n / 2).max(1))
            });
    }

    /// Makes `attempt` until it succeeds or fails for good; `what` names the request in
    /// notices and errors (`page 3`).
    pub(super) async fn with_retries<T, F>(&self, what: &str, attempt: impl Fn() -> F) -> Result<T>
    where
        F: Future<Output = Result<T, Attempt>>,
    {
        let mut retried = 0;
        // 429s to probes of an unknown window: they cost no retry (see `FREE_PROBES`).
        let mut probes = 0;
        loop {
            let retry = match attempt().await {
                Ok(fetched) => return Ok(fetched),
                Err(Attempt::Fatal(error)) => return Err(error),
                Err(Attempt::Retry(retry)) => retry,
            };
            let budget = match retry.kind {
                RetryKind::Unreachable => self.retries.min(UNREACHABLE_RETRIES),
                _ => self.retries,
            };
            let probe = retry.kind == RetryKind::RateLimited(RateLimited::Probe);
            if retried >= budget && !probe {
                return Err(self.gave_up(what, &retry, retried + probes + 1));
            }
            if matches!(retry.kind, RetryKind::RateLimited(_)) {
                self.slow_down();
            }
            // A paced rate limit's wait is the pacer's: it holds the retry until the window
            // has room.
            let wait = match retry.kind {
                RetryKind::RateLimited(RateLimited::Paced | RateLimited::Probe) => Duration::ZERO,
                _ => retry_wait(retry.retry_after, self.backoff_base, retried),
            };
            let shown = self.shown_wait(wait, retry.retry_after);
            let notice = match probe {
                true => {
                    probes += 1;
                    format!(
                        "{what}: {} (probe {probes} of the rate limit's window), retry in {}",
                        retry.reason,
                        short_duration(shown)
                    )
                }
                false => {
                    retried += 1;
                    format!(
                        "{what}: {}, retry {retried}/{budget} in {}",
                        retry.reason,
                        short_duration(shown)
                    )
                }
            };
            tracing::info!("{notice}");
            if let Some(observer) = self.retry_observer.get() {
                observer(&notice);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The wait a retry's notice names: the backoff's own, else (the pacer holds the retry)
    /// what the server asked for, or what the pacer expects.
    fn shown_wait(&self, wait: Duration, retry_after: Option<Duration>) -> Duration {
        match (wait.is_zero(), retry_after) {
            (false, _) => wait,
            (true, Some(asked)) => retry_wait(Some(asked), self.backoff_base, 0),
            (true, None) => self.pacer.wait_hint(),
        }
    }

    fn gave_up(&self, what: &str, retry: &Retry, attempts: u32) -> Error {
        let attempts = counted(attempts, "attempt");
        let advice = match retry.kind {
            RetryKind::Unreachable => format!(
                "Check that {} is reachable and that --base-url / COMETAPI_BASE_URL is right",
                self.host
            ),
            _ => {
                "The API or the network is failing: try again later, or raise --retries".to_string()
            }
        };
        Error::Api(format!(
            "{what}: {}; gave up after {attempts}. {advice}",
            retry.reason
        ))
    }
}

/// `4s`, or `250ms` under a second: how long a retry waits, for people.
fn short_duration(wait: Duration) -> String {
    if wait < Duration::from_secs(1) {
        format!("{}ms", wait.as_millis())
    } else {
        format!("{}s", wait.as_secs_f64().round())
    }
}

/// How long to wait before retry number `retried + 1`: the server's `Retry-After` kept within
/// [`base`, 60 s] (`0` must not turn into a tight loop, nor a huge value park cron), else the
/// exponential backoff.
pub(super) fn retry_wait(retry_after: Option<Duration>, base: Duration, retried: u32) -> Duration {
    match retry_after {
        Some(asked) => asked.max(base).min(BACKOFF_CAP),
        None => backoff_delay(base, retried),
    }
}

/// Exponential backoff: `base`, doubling, each wait capped, plus up to 20% jitter. The jitter
/// only lengthens a wait, so the default 8 retries always wait at least 1+2+...+32+60+60 =
/// 183 s, past the gateway's sliding window of 180 s (360 requests per window by default since
/// 2026-06, 180 before).
pub(super) fn backoff_delay(base: Duration, retried: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(retried.min(30)));
    exponential
        .min(BACKOFF_CAP)
        .mul_f64(1.0 + 0.2 * fastrand::f64())
        .min(BACKOFF_CAP)
}

/// `Retry-After` as seconds or as an HTTP date (gateways send it since 2026-07).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More seconds than fit in 64 bits is still "a long time": the cap applies.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when
        .signed_duration_since(chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    Some(wait)
}
