//! The HTTP client for `GET /api/token/`: one `reqwest::Client`, retries that fit the error, and
//! the single place where an HTTP answer becomes a page or an error.
//!
//! The access token lives only in a sensitive default header; it never appears in a log line or
//! an error message (an upstream message that quotes it is redacted). A response body is read
//! in chunks up to [`MAX_BODY_BYTES`] after decompression, so no server can make a pull hold
//! more than a few pages' worth of memory.
//!
//! Its parts, by role: `options` (what the client is told), `exchange` (one request sent and
//! its answer read), `errors` (status and error body → retry or error), `retry` (the loop and
//! its waits), `transport` (TLS set-up and failures below HTTP), `page` (a body → a [`Page`]).

mod errors;
mod exchange;
mod options;
mod page;
mod retry;
mod transport;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::api::gateway::{GatewayStatus, parse_gateway_status};
use crate::api::known::KnownItems;
use crate::api::pacing::{Pacer, RequestCounter, RequestCounts};
use crate::error::{Error, Result};
use errors::{ErrorBody, retry_or};
use page::parse_page_on_pool;
use retry::Attempt;
use transport::http_client;

pub use options::{
    AccessToken, ApiOptions, DEFAULT_BACKOFF_BASE, DEFAULT_CONCURRENCY, DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
};
pub use page::Page;

/// keysync always asks for the API's largest page; a server may echo a smaller one.
pub const PAGE_SIZE: usize = 100;
/// A page of 100 keys is about 50 KB; a body past this (after decompression) is not a page.
pub(crate) const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Told about every retry before its wait, e.g. to show it on the progress line.
pub type RetryObserver = Box<dyn Fn(&str) + Send + Sync>;

pub struct ApiClient {
    http: reqwest::Client,
    endpoint: String,
    /// `GET /api/status`, where the gateway publishes its price.
    status_endpoint: String,
    /// `host:port` of the API, for messages.
    host: String,
    /// `Authorization` (and `New-Api-User`), added to the key listing's requests only: the
    /// token goes nowhere that does not need it, `/api/status` included.
    auth_headers: HeaderMap,
    token: AccessToken,
    retries: u32,
    backoff_base: Duration,
    /// How many requests may be in flight; halved on every 429, never below 1.
    in_flight_limit: AtomicUsize,
    retry_observer: OnceLock<RetryObserver>,
    /// The stored keys, so that pages after the first need not read them again; set once.
    known: OnceLock<Arc<KnownItems>>,
    /// Holds each request until the rate limit's window has room for it.
    pacer: Pacer,
    /// Every request sent, and the 429s, for the sync row.
    counter: Arc<RequestCounter>,
}

impl ApiClient {
    pub fn new(options: &ApiOptions) -> Result<ApiClient> {
        let url = reqwest::Url::parse(&options.base_url)
            .map_err(|e| Error::Usage(format!("--base-url {:?}: {e}", options.base_url)))?;
        let host = host_of(&url);
        let mut auth_headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(options.token.expose()).map_err(|_| {
            Error::Usage(
                "the access token has characters that cannot be sent in an HTTP header: \
                 check COMETAPI_ACCESS_TOKEN or the --token-file contents"
                    .into(),
            )
        })?;
        auth.set_sensitive(true);
        auth_headers.insert(AUTHORIZATION, auth);
        if let Some(user_id) = options.user_id {
            auth_headers.insert(
                HeaderName::from_static("new-api-user"),
                HeaderValue::from(user_id),
            );
        }
        let http = http_client(options, &url, &host)?;
        let base = options.base_url.trim_end_matches('/');
        Ok(ApiClient {
            http,
            endpoint: format!("{base}/api/token/"),
            status_endpoint: format!("{base}/api/status"),
            host,
            auth_headers,
            token: options.token.clone(),
            retries: options.retries,
            backoff_base: options.backoff_base,
            in_flight_limit: AtomicUsize::new(options.concurrency.max(1)),
            retry_observer: OnceLock::new(),
            known: OnceLock::new(),
            pacer: Pacer::new(options.max_rate, options.backoff_base),
            counter: Arc::default(),
        })
    }

    /// Calls `observer` with a one-line notice before every retry's wait. Set once.
    pub fn observe_retries(&self, observer: RetryObserver) {
        let _ = self.retry_observer.set(observer);
    }

    /// Has items of `known` on pages after the first counted by id, not read. Page 1 is
    /// always read in full: the store checks its account.
    pub fn recognise(&self, known: Arc<KnownItems>) {
        let _ = self.known.set(known);
    }

    /// How many page requests may be in flight now. It only goes down during a pull: after a
    /// rate limit, keysync stays gentle rather than probing the limit again.
    pub fn in_flight_limit(&self) -> usize {
        self.in_flight_limit.load(Ordering::Relaxed)
    }

    /// The requests sent so far (429s included) and the 429s among them.
    pub fn request_counts(&self) -> RequestCounts {
        self.counter.counts()
    }

    /// The live counts, for the writer thread to record on a pull that does not finish.
    pub fn request_counter(&self) -> Arc<RequestCounter> {
        Arc::clone(&self.counter)
    }

    /// Fetches one page, retrying what a retry can fix: rate limits, server errors, resets,
    /// timeouts, and (a few times) an unreachable host.
    pub async fn fetch_page(&self, page: u32) -> Result<Page> {
        self.with_retries(&format!("page {page}"), || self.try_page(page))
            .await
    }

    /// Reads what the gateway publishes about itself (`GET /api/status`: its price and
    /// version), with the pages' retries and pacing, and without the token.
    pub async fn fetch_gateway_status(&self) -> Result<GatewayStatus> {
        self.with_retries("/api/status", || self.try_gateway_status())
            .await
    }

    async fn try_page(&self, page: u32) -> Result<Page, Attempt> {
        tracing::debug!("GET {}?p={page}&page_size={PAGE_SIZE}", self.endpoint);
        let request = self
            .http
            .get(&self.endpoint)
            .headers(self.auth_headers.clone())
            .query(&[("p", page as usize), ("page_size", PAGE_SIZE)]);
        let answer = self.exchange(request, &format!("page {page}")).await?;
        let body = answer
            .checked(|status, retry_after, body| self.check_status(status, retry_after, body))?;
        let known = self.known.get().filter(|_| page > 1).cloned();
        parse_page_on_pool(page, body, known)
            .await
            .map_err(|e| Attempt::Fatal(self.redacted(e)))
    }

    /// One `GET /api/status`. No answer of it is an auth failure: it is sent without the token,
    /// so a refusal only means that this gateway does not publish its price.
    async fn try_gateway_status(&self) -> Result<GatewayStatus, Attempt> {
        tracing::debug!("GET {}", self.status_endpoint);
        let request = self.http.get(&self.status_endpoint);
        let answer = self.exchange(request, "/api/status").await?;
        let body = answer.checked(|status, retry_after, body| match status.is_success() {
            true => Ok(()),
            false => Err(retry_or(
                status,
                retry_after,
                &ErrorBody::read(body),
                |reason| Attempt::Fatal(Error::Api(format!("/api/status: {reason}"))),
            )),
        })?;
        parse_gateway_status(&body).map_err(Attempt::Fatal)
    }
}

/// `host:port` (or `host`) of a URL, for messages; never its user or password.
fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => "the API".to_string(),
    }
}

#[cfg(test)]
mod tests;
