//! What the client is told: where the API is, the access token (redacted in every `Debug`),
//! and the timeouts, retries and concurrency a pull uses, with their defaults.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::pacing::Rate;

/// The defaults of [`ApiOptions`], for flags and profiles that leave them out.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_RETRIES: u32 = 8;
pub(crate) const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_CONCURRENCY: usize = 4;

/// The account credential. Its `Debug` is redacted so it cannot slip into a log line.
#[derive(Clone)]
pub(crate) struct AccessToken(String);

impl AccessToken {
    pub(crate) fn new(token: String) -> AccessToken {
        AccessToken(token)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// How to reach the API, resolved from flags, environment and defaults.
#[derive(Clone, Debug)]
pub(crate) struct ApiOptions {
    pub base_url: String,
    pub token: AccessToken,
    pub user_id: Option<u64>,
    /// Per request, connection to last byte.
    pub timeout: Duration,
    /// Attempts per page after the first.
    pub retries: u32,
    /// The first wait between attempts; it doubles each time.
    pub backoff_base: Duration,
    /// Pages requested at once after page 1.
    pub concurrency: usize,
    /// A PEM file of extra trusted root certificates (`--ca-cert`), for a private CA.
    pub ca_cert: Option<PathBuf>,
    /// `--max-rate`: the server's rate limit, when known, to pace to from the first request.
    pub max_rate: Option<Rate>,
}

impl ApiOptions {
    /// `base_url` with `token` and every other option at its default.
    pub(crate) fn with_defaults(base_url: &str, token: AccessToken) -> ApiOptions {
        ApiOptions {
            base_url: base_url.to_string(),
            token,
            user_id: None,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            concurrency: DEFAULT_CONCURRENCY,
            ca_cert: None,
            max_rate: None,
        }
    }
}
