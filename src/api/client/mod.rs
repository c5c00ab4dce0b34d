//! The HTTP client for `GET /api/token/`: one `reqwest::Client`, retries that fit the error, and
//! the single place where an HTTP answer becomes a page or an error.
//!
//! The access token lives only in a sensitive default header; it never appears in a log line or
//! an error message (an upstream message that quotes it is redacted). A response body is read
//! in chunks up to [`MAX_BODY_BYTES`] after decompression, so no server can make a pull hold
//! more than a few pages' worth of memory.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value as Json;
use serde_json::value::RawValue;

use crate::api::gateway::{GatewayStatus, parse_gateway_status};
use crate::api::known::{KnownItems, item_digest};
use crate::api::model::KeyRecord;
use crate::api::pacing::{Admission, Pacer, Rate, RateLimited, RequestCounter, RequestCounts};
use crate::api::raw::{self, Members};
use crate::error::{Error, Result, error_chain};
use crate::terminal::counted;

/// keysync always asks for the API's largest page; a server may echo a smaller one.
pub const PAGE_SIZE: usize = 100;
/// A page of 100 keys is about 50 KB; a body past this (after decompression) is not a page.
pub(crate) const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// No wait between retries is longer than this, `Retry-After` included.
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// A refused connection or a failed DNS lookup is worth a few tries (a server restarting, a
/// network blip), not the whole budget meant for rate limits.
const UNREACHABLE_RETRIES: u32 = 3;

/// The defaults of [`ApiOptions`], for flags and profiles that leave them out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 8;
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The account credential. Its `Debug` is redacted so it cannot slip into a log line.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(token: String) -> AccessToken {
        AccessToken(token)
    }

    pub fn expose(&self) -> &str {
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
pub struct ApiOptions {
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
    pub fn with_defaults(base_url: &str, token: AccessToken) -> ApiOptions {
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

/// One page of the listing as the API served it.
#[derive(Debug)]
pub struct Page {
    pub number: u32,
    /// The account's key count as the server reported it: a hint, never proof; `None` when
    /// it sent none that can be a count.
    pub total: Option<i64>,
    /// The page size the server used: its echo in `data.page_size` when that is a positive
    /// integer no larger than asked for, else the size asked for.
    pub page_size: usize,
    /// Whether `page_size` is the server's echo rather than keysync's assumption.
    pub page_size_echoed: bool,
    /// The items read in full: every item of page 1, and on later pages those not known.
    pub items: Vec<KeyRecord>,
    /// The ids of the items the client recognised as stored keys unchanged ([`KnownItems`]),
    /// and so did not read.
    pub known: Vec<i64>,
}

/// Pages made by hand, for the unit tests of what consumes them (staging, the writer).
#[cfg(test)]
impl Page {
    /// Page `number` holding `items`, with an echoed page size and no `total`.
    pub(crate) fn of(number: u32, items: Vec<KeyRecord>) -> Page {
        Page {
            number,
            total: None,
            page_size: 2,
            page_size_echoed: true,
            items,
            known: Vec::new(),
        }
    }
}

impl Page {
    /// How many items the page listed, read or known.
    pub fn len(&self) -> usize {
        self.items.len() + self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every id the page listed, read or known.
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.items
            .iter()
            .map(|item| item.id)
            .chain(self.known.iter().copied())
    }

    /// A page with fewer items than the page size ends a listing; a full one never does.
    pub fn is_short(&self) -> bool {
        self.len() < self.page_size
    }

    /// The page `total` says will be the short (or empty) last one, when it says anything.
    pub fn expected_last_page(&self) -> Option<u32> {
        let pages = self.total? as u64 / self.page_size.max(1) as u64 + 1;
        Some(u32::try_from(pages).unwrap_or(u32::MAX))
    }
}

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

/// The outcome of one failed attempt: worth another try, or final.
enum Attempt {
    Retry(Retry),
    Fatal(Error),
}

struct Retry {
    reason: String,
    retry_after: Option<Duration>,
    kind: RetryKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RetryKind {
    /// A 429, its wait left to the pacer (see [`RateLimited`]) or to the backoff.
    RateLimited(RateLimited),
    /// 408, 5xx, resets, timeouts.
    Transient,
    /// Connection refused or DNS failure: at most [`UNREACHABLE_RETRIES`].
    Unreachable,
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
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("keysync/", env!("CARGO_PKG_VERSION")))
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .gzip(true);
        // Read even for plain HTTP, so that a wrong path shows before the switch to https.
        let extra_roots = options.ca_cert.as_deref().map(read_ca_cert).transpose()?;
        if url.scheme() == "http" {
            // Plain HTTP needs no trust store, so a machine without CA certificates can still
            // reach a local gateway.
            builder = builder.tls_certs_only([]);
        } else if let Some(certs) = extra_roots {
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            Error::Api(format!(
                "cannot set up HTTPS for {host}: {}. Install the system's CA certificates \
                 (Debian/Ubuntu: apt-get install ca-certificates), point SSL_CERT_FILE at a PEM \
                 bundle, or pass --ca-cert FILE",
                error_chain(&e)
            ))
        })?;
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

    fn slow_down(&self) {
        let _ = self
            .in_flight_limit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n / 2).max(1))
            });
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

    /// Makes `attempt` until it succeeds or fails for good; `what` names the request in
    /// notices and errors (`page 3`).
    async fn with_retries<T, F>(&self, what: &str, attempt: impl Fn() -> F) -> Result<T>
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
            let shown = match (wait.is_zero(), retry.retry_after) {
                (false, _) => wait,
                (true, Some(asked)) => retry_wait(Some(asked), self.backoff_base, 0),
                (true, None) => self.pacer.wait_hint(),
            };
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

    /// Sends one request through the pacer, counts it, and reads its answer (at most
    /// [`MAX_BODY_BYTES`]): the part of an attempt that every request shares. `what` names the
    /// request in errors.
    async fn exchange(
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

    /// The key listing's mapping from an HTTP status (and an error body) to "go on", "try
    /// again" or "stop": an auth failure first, then what every request shares ([`retry_or`]).
    fn check_status(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Result<(), Attempt> {
        if status.is_success() {
            return Ok(());
        }
        let answer = ErrorBody::read(body);
        if rejects_credentials(status, answer.code.as_deref(), &answer.message) {
            return Err(Attempt::Fatal(self.redacted(auth_error(&format!(
                "HTTP {status}: {}",
                answer.describe()
            )))));
        }
        let answer = ErrorBody {
            message: self.without_token(answer.message),
            ..answer
        };
        Err(retry_or(status, retry_after, &answer, |_| {
            Attempt::Fatal(self.redacted(Error::Api(format!(
                "HTTP {status} from {}: is --base-url / COMETAPI_BASE_URL right? {}",
                self.endpoint,
                answer.describe()
            ))))
        }))
    }

    /// Sorts a failure below HTTP: what no retry fixes (TLS, protocol, a bad URL) is final and
    /// says what to change; the rest is retried.
    fn transport_failure(&self, error: reqwest::Error) -> Attempt {
        let kind = transport_kind(&error);
        let chain = error_chain(&error.without_url());
        let fatal = |advice: &str| {
            Attempt::Fatal(Error::Api(format!(
                "cannot talk to {}: {chain}. {advice}",
                self.host
            )))
        };
        match kind {
            Transport::Tls(TlsProblem::Certificate) => fatal(
                "The server's certificate is not trusted: if it comes from a private CA, pass \
                 --ca-cert FILE (or set SSL_CERT_FILE) with that CA's PEM certificate; check \
                 the host name in --base-url",
            ),
            Transport::Tls(TlsProblem::NotTls) => fatal(
                "The server does not speak TLS on this port: use http:// in --base-url if it \
                 is a plain HTTP server",
            ),
            Transport::Tls(TlsProblem::Other) => fatal(
                "The TLS handshake failed: check --base-url, --ca-cert and any proxy \
                 (HTTPS_PROXY)",
            ),
            Transport::Protocol => fatal(
                "The answer is not HTTP: if the server expects TLS, use https:// in --base-url",
            ),
            Transport::BadRequest => fatal("Check --base-url / COMETAPI_BASE_URL"),
            Transport::Unreachable => Attempt::Retry(Retry {
                reason: format!("{} is unreachable ({chain})", self.host),
                retry_after: None,
                kind: RetryKind::Unreachable,
            }),
            Transport::Timeout => Attempt::Retry(Retry {
                reason: "the request timed out (see --timeout)".into(),
                retry_after: None,
                kind: RetryKind::Transient,
            }),
            Transport::Other => Attempt::Retry(Retry {
                reason: chain,
                retry_after: None,
                kind: RetryKind::Transient,
            }),
        }
    }

    /// An error whose text may quote the server, with the access token cut out.
    fn redacted(&self, error: Error) -> Error {
        let text = error.to_string();
        if !self.quotes_token(&text) {
            return error;
        }
        let text = self.without_token(text);
        match error {
            Error::Auth(_) => Error::Auth(text),
            _ => Error::Api(text),
        }
    }

    fn quotes_token(&self, text: &str) -> bool {
        let token = self.token.expose();
        !token.is_empty() && text.contains(token)
    }

    /// Text that may quote the server (and so the token), with the token cut out.
    fn without_token(&self, text: String) -> String {
        match self.quotes_token(&text) {
            true => text.replace(self.token.expose(), "***"),
            false => text,
        }
    }
}

/// An answer that is not a success, as a request's next step: a retry for what a retry can fix
/// (429, 408, 5xx), else `fatal` of the reason.
fn retry_or(
    status: StatusCode,
    retry_after: Option<Duration>,
    answer: &ErrorBody,
    fatal: impl FnOnce(String) -> Attempt,
) -> Attempt {
    let retry = |reason: String, kind| {
        Attempt::Retry(Retry {
            reason,
            retry_after,
            kind,
        })
    };
    match status {
        StatusCode::TOO_MANY_REQUESTS => retry(
            "HTTP 429 (rate limited)".into(),
            RetryKind::RateLimited(RateLimited::Backoff),
        ),
        StatusCode::REQUEST_TIMEOUT => {
            retry("HTTP 408 Request Timeout".into(), RetryKind::Transient)
        }
        s if s.is_server_error() => {
            let reason = match answer.message.is_empty() {
                true => format!("HTTP {s}"),
                false => format!("HTTP {s}: {}", answer.describe()),
            };
            retry(reason, RetryKind::Transient)
        }
        s => fatal(format!("HTTP {s}")),
    }
}

/// An answer read whole, before its status is judged.
struct Answered {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// For a 429: who waits before the retry.
    rate_limited: Option<RateLimited>,
    body: Vec<u8>,
}

impl Answered {
    /// The body when `check` accepts the status; a 429's retry is left to the pacer when it
    /// knows the window.
    fn checked(
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

/// Whether a failed answer rejects the token or the account, so that no retry can help and
/// `pull --every` must stop (exit 3). The rule, from the gateway's history
/// (../shared/cometapi-api.md, "Errors"):
/// - HTTP 401 and 403 always are (newer gateways answer every token failure with 401);
/// - a `code` starting with `AUTH_` is, except `AUTH_INTERNAL_ERROR`, a server failure;
/// - at HTTP 2xx, older gateways say it only in the message: one that mentions being
///   unauthorised, the access token, or a banned or disabled account, in English or Chinese.
pub(crate) fn rejects_credentials(status: StatusCode, code: Option<&str>, message: &str) -> bool {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return true;
    }
    match code {
        Some("AUTH_INTERNAL_ERROR") => return false,
        Some(code) if code.starts_with("AUTH_") => return true,
        _ => {}
    }
    if !status.is_success() {
        return false;
    }
    let lower = message.to_lowercase();
    [
        "unauthorized",
        "access token",
        "banned",
        "disabled",
        "无权",
        "未登录",
        "封禁",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

fn auth_error(detail: &str) -> Error {
    Error::Auth(format!(
        "the API rejected the credentials ({detail}). Check COMETAPI_ACCESS_TOKEN or the \
         --token-file contents (create a token at CometAPI Console → Personal Settings) and \
         that the account is enabled; if your deployment requires it, set --user-id / \
         COMETAPI_USER_ID"
    ))
}

/// The `code` and `message` of an error answer, if it has them.
struct ErrorBody {
    code: Option<String>,
    message: String,
    /// What the body was when it had no message: empty, or not JSON.
    shape: &'static str,
}

impl ErrorBody {
    fn read(body: &[u8]) -> ErrorBody {
        let json = serde_json::from_slice::<Json>(body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(Json::as_str)
                .map(str::to_string)
        };
        let shape = match &json {
            _ if body.is_empty() => "(empty body)",
            None => "(body is not JSON)",
            Some(_) => "",
        };
        ErrorBody {
            code: field("code"),
            message: field("message").unwrap_or_default(),
            shape,
        }
    }

    fn describe(&self) -> String {
        match (&self.code, self.message.is_empty()) {
            (_, true) => self.shape.to_string(),
            (Some(code), false) => format!("{} [{code}]", self.message),
            (None, false) => self.message.clone(),
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

/// What went wrong below HTTP.
#[derive(Debug, PartialEq, Eq)]
enum Transport {
    Tls(TlsProblem),
    /// The bytes that came back were not HTTP (e.g. http:// to a TLS port).
    Protocol,
    /// The request could not be built (an invalid URL).
    BadRequest,
    /// Connection refused or DNS failure.
    Unreachable,
    Timeout,
    Other,
}

#[derive(Debug, PartialEq, Eq)]
enum TlsProblem {
    Certificate,
    NotTls,
    Other,
}

fn transport_kind(error: &reqwest::Error) -> Transport {
    if error.is_builder() {
        return Transport::BadRequest;
    }
    if error.is_timeout() {
        return Transport::Timeout;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut text = String::new();
    while let Some(current) = cause {
        if let Some(problem) = tls_problem(current) {
            return Transport::Tls(problem);
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>()
            && hyper.is_parse()
        {
            return Transport::Protocol;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Transport::Unreachable;
        }
        text.push_str(&current.to_string());
        cause = current.source();
    }
    // hyper-util reports a failed lookup only in words.
    if text.contains("dns error") {
        return Transport::Unreachable;
    }
    Transport::Other
}

/// A rustls error, directly or inside the `io::Error`s that carry it through the connector
/// (whose `source()` skips the error they wrap).
fn tls_problem(error: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let mut inner = error;
    while let Some(wrapped) = inner
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        inner = wrapped;
    }
    let tls = inner.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TlsProblem::Certificate
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            TlsProblem::NotTls
        }
        _ => TlsProblem::Other,
    })
}

/// `4s`, or `250ms` under a second: how long a retry waits, for people.
fn short_duration(wait: Duration) -> String {
    if wait < Duration::from_secs(1) {
        format!("{}ms", wait.as_millis())
    } else {
        format!("{}s", wait.as_secs_f64().round())
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

fn read_ca_cert(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Usage(format!("cannot read --ca-cert {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        Error::Usage(format!(
            "--ca-cert {}: not PEM certificates ({})",
            path.display(),
            error_chain(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "--ca-cert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// How long to wait before retry number `retried + 1`: the server's `Retry-After` kept within
/// [`base`, 60 s] (`0` must not turn into a tight loop, nor a huge value park cron), else the
/// exponential backoff.
fn retry_wait(retry_after: Option<Duration>, base: Duration, retried: u32) -> Duration {
    match retry_after {
        Some(asked) => asked.max(base).min(BACKOFF_CAP),
        None => backoff_delay(base, retried),
    }
}

/// Exponential backoff: `base`, doubling, each wait capped, plus up to 20% jitter. The jitter
/// only lengthens a wait, so the default 8 retries always wait at least 1+2+...+32+60+60 =
/// 183 s, past the gateway's sliding window of 180 s (360 requests per window by default since
/// 2026-06, 180 before).
fn backoff_delay(base: Duration, retried: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(retried.min(30)));
    exponential
        .min(BACKOFF_CAP)
        .mul_f64(1.0 + 0.2 * fastrand::f64())
        .min(BACKOFF_CAP)
}

/// `Retry-After` as seconds or as an HTTP date (gateways send it since 2026-07).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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

/// [`parse_page`] on the runtime's blocking pool. Parsing is most of a listing's CPU: on the
/// runtime's one thread it held up the requests, and with 2 cores the first pull of 1,000,000
/// keys took up to 10% longer (8.6 s against 7.6 s, medians of 7 alternated runs of each build;
/// README, Performance). A panic while parsing goes on from here, as on the runtime.
async fn parse_page_on_pool(
    page: u32,
    body: Vec<u8>,
    known: Option<Arc<KnownItems>>,
) -> Result<Page> {
    let parse = move || {
        #[cfg(feature = "test-support")]
        crate::api::panic_on_page_for_tests("KEYSYNC_DEBUG_PANIC_PARSING_PAGE", page);
        parse_page(page, &body, known.as_deref())
    };
    match tokio::task::spawn_blocking(parse).await {
        Ok(parsed) => parsed,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Internal(format!(
            "page {page}: parsing stopped: {e}"
        ))),
    }
}

/// Reads the response envelope. Every way it can be wrong is an error naming the page. The
/// body is read as raw slices (see [`raw`]): no tree of it is ever built, and a page of more
/// items than keysync asked for is refused before any is read.
fn parse_page(page: u32, body: &[u8], known: Option<&KnownItems>) -> Result<Page> {
    if let Some(fetched) = parse_good_page(page, body, known) {
        return fetched;
    }
    let bad = |what: String| Error::Api(format!("page {page}: {what}"));
    if body.starts_with(b"\xEF\xBB\xBF") {
        return Err(bad(
            "the response starts with a byte-order mark, which JSON does not allow".into(),
        ));
    }
    let whole: &RawValue = std::str::from_utf8(body)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(text).map_err(|e| e.to_string()))
        .map_err(|e| bad(format!("the response is not valid JSON ({e})")))?;
    let Some(mut envelope) = Members::of(whole) else {
        return Err(bad(format!(
            "the response is {}, expected a JSON object",
            raw::kind(whole)
        )));
    };
    let success = envelope.take("success");
    match success.map(|s| (raw::kind(s), s.get().trim())) {
        Some(("a boolean", "true")) => {}
        Some(("a boolean", _)) => {
            let mut text = |name| {
                envelope
                    .take(name)
                    .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            };
            let message = text("message").unwrap_or_default();
            if rejects_credentials(StatusCode::OK, text("code").as_deref(), &message) {
                return Err(auth_error(&message));
            }
            return Err(bad(format!("the API answered success:false: {message}")));
        }
        Some((kind, _)) => return Err(bad(format!("`success` is {kind}, expected a boolean"))),
        None => return Err(bad("the response has no `success` field".into())),
    }
    let Some(mut data) = envelope.take("data").and_then(Members::of) else {
        return Err(bad("the response has no `data` object".into()));
    };
    let total = data.take("total");
    let page_size = data.take("page_size");
    let items = match data.take("items") {
        Some(items) => serde_json::from_str::<Vec<&RawValue>>(items.get()).map_err(|_| {
            bad(format!(
                "`data.items` is {}, expected an array",
                raw::kind(items)
            ))
        })?,
        None => return Err(bad("`data.items` is missing".into())),
    };
    page_of(page, total, page_size, items, known)
}

/// A page from the parts of its `data`. `total` and `page_size` are hints only: a count that
/// is missing or not a count leaves the listing unprovable (partial), never failed. A page of
/// more items than keysync asked for is refused before any item is read.
fn page_of(
    page: u32,
    total: Option<&RawValue>,
    page_size: Option<&RawValue>,
    items: Vec<&RawValue>,
    known: Option<&KnownItems>,
) -> Result<Page> {
    let bad = |what: String| Error::Api(format!("page {page}: {what}"));
    if items.len() > PAGE_SIZE {
        return Err(bad(format!(
            "the page holds {} items, more than the {PAGE_SIZE} asked for; is --base-url a \
             CometAPI gateway?",
            items.len()
        )));
    }
    let number = |value: Option<&RawValue>| value?.get().trim().parse::<i64>().ok();
    let echoed = number(page_size)
        .and_then(|size| usize::try_from(size).ok())
        .filter(|size| (1..=PAGE_SIZE).contains(size));
    let (mut read, mut known_ids) = (Vec::with_capacity(items.len()), Vec::new());
    for (i, item) in items.into_iter().enumerate() {
        // Hashed once: the digest finds a known item, and is kept with one that is read.
        let digest = item_digest(item.get());
        match known.and_then(|known| known.id_of(&digest)) {
            Some(id) => known_ids.push(id),
            None => read.push(
                KeyRecord::from_raw_with_digest(item, digest)
                    .map_err(|e| bad(format!("item {i}: {e}")))?,
            ),
        }
    }
    Ok(Page {
        number: page,
        total: number(total).filter(|t| *t >= 0),
        page_size: echoed.unwrap_or(PAGE_SIZE),
        page_size_echoed: echoed.is_some(),
        items: read,
        known: known_ids,
    })
}

/// A page of the expected shape, read in one pass over the body: `None` when the shape is
/// off anywhere (or `success` is false), so that [`parse_page`] reads it again step by step to
/// say what is wrong.
fn parse_good_page(page: u32, body: &[u8], known: Option<&KnownItems>) -> Option<Result<Page>> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        success: bool,
        #[serde(borrow)]
        data: Data<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Data<'a> {
        total: Option<&'a RawValue>,
        page_size: Option<&'a RawValue>,
        #[serde(borrow)]
        items: Vec<&'a RawValue>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let data = envelope.data;
    envelope
        .success
        .then(|| page_of(page, data.total, data.page_size, data.items, known))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted() {
        let token = AccessToken::new("s3cret".into());
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
    }

    /// The gateway's own error bodies (tests/fixtures/gateway, from its Go structs), with the
    /// HTTP status each era sends them with.
    #[test]
    fn account_rejections_of_both_eras() {
        let fixture = |name: &str| {
            let path = format!(
                "{}/tests/fixtures/gateway/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            ErrorBody::read(&std::fs::read(path).unwrap())
        };
        let cases = [
            ("pre_err_bad_token.json", 200, true),
            ("pre_err_bad_token_zh.json", 200, true),
            ("pre_err_user_banned.json", 200, true),
            ("pre_err_user_banned_zh.json", 200, true),
            ("pre_err_no_authorization.json", 401, true),
            ("pre_err_missing_new_api_user.json", 401, true),
            ("pre_err_new_api_user_mismatch.json", 401, true),
            ("head_err_bad_token.json", 401, true),
            ("head_err_user_banned.json", 401, true),
            ("head_err_db.json", 500, false),
            ("err_handler_failure.json", 200, false),
            ("err_token_not_found.json", 200, false),
        ];
        for (name, status, rejects) in cases {
            let body = fixture(name);
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                rejects_credentials(status, body.code.as_deref(), &body.message),
                rejects,
                "{name}"
            );
        }
    }

    #[test]
    fn codes_decide_at_any_status() {
        assert!(rejects_credentials(
            StatusCode::OK,
            Some("AUTH_USER_DISABLED"),
            ""
        ));
        assert!(rejects_credentials(
            StatusCode::BAD_GATEWAY,
            Some("AUTH_UNAUTHORIZED"),
            ""
        ));
        assert!(!rejects_credentials(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("AUTH_INTERNAL_ERROR"),
            "Unauthorized"
        ));
        assert!(rejects_credentials(StatusCode::FORBIDDEN, None, ""));
        // At an error status a message alone proves nothing: a proxy's 502 page may say anything.
        assert!(!rejects_credentials(
            StatusCode::BAD_GATEWAY,
            None,
            "Unauthorized"
        ));
        assert!(!rejects_credentials(
            StatusCode::OK,
            None,
            "Error 1040: Too many connections"
        ));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(1);
        let first = backoff_delay(base, 0);
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1200));
        let fourth = backoff_delay(base, 3);
        assert!(fourth >= Duration::from_secs(8) && fourth <= Duration::from_millis(9600));
        assert_eq!(backoff_delay(base, 20), BACKOFF_CAP);
    }

    #[test]
    fn retry_after_is_kept_between_the_base_and_a_minute() {
        let base = Duration::from_secs(1);
        let secs = Duration::from_secs;
        assert_eq!(retry_wait(Some(secs(0)), base, 0), secs(1));
        assert_eq!(retry_wait(Some(secs(7)), base, 5), secs(7));
        assert_eq!(retry_wait(Some(secs(86_400)), base, 0), secs(60));
        assert_eq!(retry_wait(Some(secs(180)), base, 0), secs(60));
    }

    #[test]
    fn retry_after_reads_seconds_of_any_size_and_dates() {
        let header = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            retry_after(&headers)
        };
        assert_eq!(header("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            header("99999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            header("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(header("soon"), None);
        assert_eq!(header("-5"), None);
    }

    #[test]
    fn the_default_budget_outlasts_the_rate_limit_window() {
        for _ in 0..100 {
            let total: Duration = (0..DEFAULT_RETRIES)
                .map(|n| backoff_delay(DEFAULT_BACKOFF_BASE, n))
                .sum();
            assert!(total >= Duration::from_secs(180), "{total:?}");
        }
    }

    fn client_for(server: &crate::fake::FakeServer, concurrency: usize) -> ApiClient {
        ApiClient::new(&ApiOptions {
            base_url: server.url().to_string(),
            token: AccessToken::new("t".into()),
            user_id: None,
            timeout: Duration::from_secs(5),
            retries: 8,
            backoff_base: Duration::from_millis(1),
            concurrency,
            ca_cert: None,
            max_rate: None,
        })
        .unwrap()
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn every_rate_limit_halves_the_requests_in_flight() {
        let mut account = crate::fake::FakeAccount::new("t");
        account.generate(3, 1, 1_766_102_400);
        account.faults.rate_limit_first = 3;
        let server = crate::fake::FakeServer::start(account).unwrap();
        let client = client_for(&server, 8);
        let page = block_on(client.fetch_page(1)).unwrap();
        assert_eq!(page.items.len(), 3);
        assert_eq!(client.in_flight_limit(), 1, "8 -> 4 -> 2 -> 1");
        assert_eq!(server.account().rate_limited(), 3);
    }

    #[test]
    fn a_retry_is_announced_before_its_wait() {
        let mut account = crate::fake::FakeAccount::new("t");
        account.generate(1, 1, 1_766_102_400);
        account.faults.rate_limit_first = 2;
        let server = crate::fake::FakeServer::start(account).unwrap();
        let client = client_for(&server, 1);
        let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = notices.clone();
        client.observe_retries(Box::new(move |n| seen.lock().unwrap().push(n.to_string())));
        block_on(client.fetch_page(1)).unwrap();
        assert_eq!(
            *notices.lock().unwrap(),
            [
                "page 1: HTTP 429 (rate limited), retry 1/8 in 1ms",
                "page 1: HTTP 429 (rate limited), retry 2/8 in 2ms"
            ]
        );
    }

    #[test]
    fn the_gateway_status_is_retried_and_counted_as_a_page_is() {
        let mut account = crate::fake::FakeAccount::new("t");
        account.faults.rate_limit_first = 2;
        let server = crate::fake::FakeServer::start(account).unwrap();
        let client = client_for(&server, 4);
        let status = block_on(client.fetch_gateway_status()).unwrap();
        assert_eq!(status.quota_per_unit, Some(500_000));
        let counts = client.request_counts();
        assert_eq!((counts.requests, counts.rate_limited), (3, 2));
        server.account().faults.no_status = true;
        let error = block_on(client.fetch_gateway_status()).unwrap_err();
        assert_eq!(error.to_string(), "/api/status: HTTP 404 Not Found");
        assert_eq!(client.request_counts().requests, 4, "a 404 is not retried");
        let sent = server.account().requests().to_vec();
        assert!(
            sent.iter()
                .all(|r| r.path_and_query == "/api/status" && r.authorization.is_none()),
            "{sent:?}"
        );
    }

    #[test]
    fn envelope_errors_name_the_page() {
        let err = parse_page(
            3,
            br#"{"success":true,"data":{"total":1,"items":{}}}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "page 3: `data.items` is an object, expected an array"
        );
        let err = parse_page(2, b"<html>", None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("page 2: the response is not valid JSON")
        );
        let err = parse_page(4, b"\xEF\xBB\xBF{}", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "page 4: the response starts with a byte-order mark, which JSON does not allow"
        );
        let err = parse_page(
            5,
            br#"{"success":true,"data":{"items":[{"\ud800":1}]}}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "page 5: item 0: an item has a member name that is not valid text"
        );
        let err = parse_page(1, br#"{"success":false,"message":"boom"}"#, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "page 1: the API answered success:false: boom"
        );
        assert_eq!(err.code(), crate::error::exit::API);
    }

    #[test]
    fn known_items_are_counted_by_id_and_not_read() {
        let (stored, changed) = (r#"{"id":7,"name":"a"}"#, r#"{"id":8,"name":"b"}"#);
        let known = KnownItems::new(vec![(item_digest(stored), 7), (item_digest("{}"), 9)]);
        // An item that is not known is read, and a bad one is still an error.
        let body = format!(
            r#"{{"success":true,"data":{{"total":3,"items":[{changed},{stored},{{"id":"x"}}]}}}}"#
        );
        let err = parse_page(2, body.as_bytes(), Some(&known)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "page 2: item 2: field `id` is a string, expected an integer"
        );
        let body =
            format!(r#"{{"success":true,"data":{{"total":3,"items":[{changed},{stored}]}}}}"#);
        let page = parse_page(2, body.as_bytes(), Some(&known)).unwrap();
        assert_eq!(
            page.items.iter().map(|item| item.id).collect::<Vec<_>>(),
            [8]
        );
        assert_eq!(page.items[0].digest, item_digest(changed));
        assert_eq!((page.known.clone(), page.len()), (vec![7], 2));
        assert_eq!(page.ids().collect::<Vec<_>>(), [8, 7]);
        // The same key written with other spacing is read.
        let spaced = r#"{"id":7, "name":"a"}"#;
        let body = format!(r#"{{"success":true,"data":{{"items":[{spaced}]}}}}"#);
        let page = parse_page(2, body.as_bytes(), Some(&known)).unwrap();
        assert_eq!((page.items.len(), page.known.len()), (1, 0));
    }

    /// The recorded gateway page cut at every byte, and with every byte replaced by a quote:
    /// never a panic, and a cut page is never taken for a page.
    #[test]
    fn damaged_pages_are_errors_not_panics() {
        let path = format!(
            "{}/tests/fixtures/gateway/head_list_p2.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(path).unwrap();
        assert_eq!(parse_page(2, &body, None).unwrap().items.len(), 3);
        for cut in 0..body.len() {
            assert!(parse_page(2, &body[..cut], None).is_err(), "cut at {cut}");
        }
        for at in 0..body.len() {
            let mut damaged = body.clone();
            damaged[at] = b'"';
            let _ = parse_page(2, &damaged, None);
        }
    }

    #[test]
    fn the_echoed_page_size_is_used_only_when_plausible() {
        let size = |echo: &str| {
            let body =
                format!(r#"{{"success":true,"data":{{"total":0,"items":[],"page_size":{echo}}}}}"#);
            parse_page(1, body.as_bytes(), None).unwrap().page_size
        };
        assert_eq!(size("20"), 20);
        assert_eq!(size("100"), 100);
        assert_eq!(size("500"), 100);
        assert_eq!(size("0"), 100);
        assert_eq!(size("-5"), 100);
        assert_eq!(size("\"20\""), 100);
        assert_eq!(size("null"), 100);
    }

    #[test]
    fn the_page_total_points_at_the_short_page() {
        let page = |total, page_size| Page {
            number: 1,
            total,
            page_size,
            page_size_echoed: true,
            items: Vec::new(),
            known: Vec::new(),
        };
        assert_eq!(page(Some(0), 100).expected_last_page(), Some(1));
        assert_eq!(page(Some(99), 100).expected_last_page(), Some(1));
        assert_eq!(page(Some(100), 100).expected_last_page(), Some(2));
        assert_eq!(page(Some(250), 100).expected_last_page(), Some(3));
        assert_eq!(page(Some(250), 20).expected_last_page(), Some(13));
        assert_eq!(
            page(Some(1_000_000_000), 100).expected_last_page(),
            Some(10_000_001)
        );
        assert_eq!(page(None, 100).expected_last_page(), None);
    }
}
