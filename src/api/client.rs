//! The HTTP client for `GET /api/token/`: one `reqwest::Client`, retries with backoff, and the
//! single place where an HTTP answer becomes a page or an error.
//!
//! The access token lives only in a sensitive default header; it never appears in a log line or
//! an error message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value as Json;

use crate::api::model::{KeyRecord, json_type};
use crate::config::AccessToken;
use crate::error::{Error, Result};

/// keysync always asks for the API's largest page.
pub const PAGE_SIZE: usize = 100;
/// No single wait between retries is longer than this, except a longer `Retry-After`.
const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// A `Retry-After` beyond this is treated as this, so a confused server cannot park cron forever.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(15 * 60);

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
}

/// One page of the listing as the API served it.
#[derive(Debug)]
pub struct Page {
    pub number: u32,
    pub total: i64,
    pub items: Vec<KeyRecord>,
}

pub struct ApiClient {
    http: reqwest::Client,
    endpoint: String,
    retries: u32,
    backoff_base: Duration,
    /// How many requests may be in flight; halved on every 429, never below 1.
    in_flight_limit: AtomicUsize,
}

/// The outcome of one failed attempt: worth another try, or final.
enum Attempt {
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        rate_limited: bool,
    },
    Fatal(Error),
}

impl ApiClient {
    pub fn new(options: &ApiOptions) -> Result<ApiClient> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(options.token.expose()).map_err(|_| {
            Error::Usage(
                "the access token has characters that cannot be sent in an HTTP header: \
                 check COMETAPI_ACCESS_TOKEN or the --token-file contents"
                    .into(),
            )
        })?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        if let Some(user_id) = options.user_id {
            headers.insert(
                HeaderName::from_static("new-api-user"),
                HeaderValue::from(user_id),
            );
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("keysync/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .gzip(true)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(ApiClient {
            http,
            endpoint: format!("{}/api/token/", options.base_url.trim_end_matches('/')),
            retries: options.retries,
            backoff_base: options.backoff_base,
            in_flight_limit: AtomicUsize::new(options.concurrency.max(1)),
        })
    }

    /// How many page requests may be in flight now. It only goes down during a pull: after a
    /// rate limit, keysync stays gentle rather than probing the limit again.
    pub fn in_flight_limit(&self) -> usize {
        self.in_flight_limit.load(Ordering::Relaxed)
    }

    fn slow_down(&self) {
        let _ = self
            .in_flight_limit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some((n / 2).max(1))
            });
    }

    /// Fetches one page, retrying rate limits, server errors and network failures.
    pub async fn fetch_page(&self, page: u32) -> Result<Page> {
        let mut retried = 0;
        loop {
            match self.try_page(page).await {
                Ok(fetched) => return Ok(fetched),
                Err(Attempt::Fatal(error)) => return Err(error),
                Err(Attempt::Retry { reason, .. }) if retried >= self.retries => {
                    return Err(Error::Api(format!(
                        "page {page}: {reason}; gave up after {} attempts. The API or the \
                         network is failing: try again later, or raise --retries",
                        retried + 1
                    )));
                }
                Err(Attempt::Retry {
                    reason,
                    retry_after,
                    rate_limited,
                }) => {
                    if rate_limited {
                        self.slow_down();
                    }
                    let wait = retry_after
                        .map(|d| d.min(RETRY_AFTER_CAP))
                        .unwrap_or_else(|| backoff_delay(self.backoff_base, retried));
                    retried += 1;
                    tracing::info!(
                        "page {page}: {reason}; retry {retried}/{} in {:.1}s",
                        self.retries,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn try_page(&self, page: u32) -> Result<Page, Attempt> {
        tracing::debug!("GET {}?p={page}&page_size={PAGE_SIZE}", self.endpoint);
        let response = self
            .http
            .get(&self.endpoint)
            .query(&[("p", page as usize), ("page_size", PAGE_SIZE)])
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(transport_failure)?;
        check_status(status, retry_after, &body, &self.endpoint)?;
        parse_page(page, &body).map_err(Attempt::Fatal)
    }
}

/// The one mapping from an HTTP status to "go on", "try again" or "stop".
fn check_status(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    endpoint: &str,
) -> Result<(), Attempt> {
    if status.is_success() {
        return Ok(());
    }
    let retry = |reason: String| Attempt::Retry {
        reason,
        retry_after,
        rate_limited: status == StatusCode::TOO_MANY_REQUESTS,
    };
    match status {
        StatusCode::TOO_MANY_REQUESTS => Err(retry("rate limited (HTTP 429)".into())),
        StatusCode::REQUEST_TIMEOUT => Err(retry("HTTP 408 Request Timeout".into())),
        s if s.is_server_error() => Err(retry(format!("HTTP {s}"))),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Attempt::Fatal(auth_error(
            &format!("HTTP {status}: {}", message_of(body)),
        ))),
        s => Err(Attempt::Fatal(Error::Api(format!(
            "HTTP {s} from {endpoint}: is --base-url / COMETAPI_BASE_URL right? {}",
            message_of(body)
        )))),
    }
}

/// At HTTP 200 the message is the only sign of an auth failure (see the API reference): a
/// `success:false` whose message names authorisation is one; any other is an API failure.
pub fn is_auth_message(message: &str) -> bool {
    let lower = message.to_lowercase();
    ["unauthorized", "access token", "无权", "未登录"]
        .iter()
        .any(|needle| lower.contains(needle))
}

fn auth_error(detail: &str) -> Error {
    Error::Auth(format!(
        "the API rejected the credentials ({detail}). Check COMETAPI_ACCESS_TOKEN or the \
         --token-file contents (create a token at CometAPI Console → Personal Settings); if \
         your deployment requires it, set --user-id / COMETAPI_USER_ID"
    ))
}

/// The `message` of a JSON error body, or a short note about a non-JSON one.
fn message_of(body: &[u8]) -> String {
    match serde_json::from_slice::<Json>(body) {
        Ok(json) => json
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string(),
        Err(_) if body.is_empty() => "(empty body)".into(),
        Err(_) => "(body is not JSON)".into(),
    }
}

fn transport_failure(error: reqwest::Error) -> Attempt {
    if error.is_builder() {
        return Attempt::Fatal(Error::Usage(format!(
            "cannot build the request: {}; check --base-url / COMETAPI_BASE_URL",
            error_chain(&error.without_url())
        )));
    }
    let reason = if error.is_timeout() {
        "the request timed out (see --timeout)".to_string()
    } else {
        error_chain(&error.without_url())
    };
    Attempt::Retry {
        reason,
        retry_after: None,
        rate_limited: false,
    }
}

/// An error and its causes on one line: "error sending request: connection refused".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Exponential backoff: `base`, doubling, each wait capped, plus up to 20% jitter. The jitter
/// only lengthens a wait, so the default 8 retries always wait at least 1+2+...+32+60+60 =
/// 183 s, past the API's window of 180 requests per 180 s.
fn backoff_delay(base: Duration, retried: u32) -> Duration {
    let exponential = base.saturating_mul(2u32.saturating_pow(retried.min(30)));
    exponential
        .min(BACKOFF_CAP)
        .mul_f64(1.0 + 0.2 * fastrand::f64())
        .min(BACKOFF_CAP)
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when
        .signed_duration_since(chrono::Utc::now())
        .to_std()
        .ok()?;
    Some(wait)
}

/// Reads the response envelope. Every way it can be wrong is an error naming the page.
fn parse_page(page: u32, body: &[u8]) -> Result<Page> {
    let bad = |what: String| Error::Api(format!("page {page}: {what}"));
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the response is not valid JSON ({e})")))?;
    let Json::Object(mut envelope) = json else {
        return Err(bad(format!(
            "the response is {}, expected a JSON object",
            json_type(&json)
        )));
    };
    match envelope.get("success") {
        Some(Json::Bool(true)) => {}
        Some(Json::Bool(false)) => {
            let message = envelope.get("message").and_then(Json::as_str).unwrap_or("");
            if is_auth_message(message) {
                return Err(auth_error(message));
            }
            return Err(bad(format!("the API answered success:false: {message}")));
        }
        Some(other) => {
            return Err(bad(format!(
                "`success` is {}, expected a boolean",
                json_type(other)
            )));
        }
        None => return Err(bad("the response has no `success` field".into())),
    }
    let Some(Json::Object(mut data)) = envelope.remove("data") else {
        return Err(bad("the response has no `data` object".into()));
    };
    let total = match data.get("total") {
        Some(Json::Number(n)) => n.as_i64().filter(|t| *t >= 0),
        _ => None,
    }
    .ok_or_else(|| bad("`data.total` is missing or not a non-negative integer".into()))?;
    let items = match data.remove("items") {
        Some(Json::Array(items)) => items,
        Some(other) => {
            return Err(bad(format!(
                "`data.items` is {}, expected an array",
                json_type(&other)
            )));
        }
        None => return Err(bad("`data.items` is missing".into())),
    };
    let items = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| KeyRecord::from_json(item).map_err(|e| bad(format!("item {i}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        number: page,
        total,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_messages_in_both_languages() {
        assert!(is_auth_message("Unauthorized, invalid access token"));
        assert!(is_auth_message("无权进行此操作，access token 无效"));
        assert!(is_auth_message("无权进行此操作"));
        assert!(!is_auth_message("database is locked"));
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
    fn the_default_budget_outlasts_the_rate_limit_window() {
        for _ in 0..100 {
            let total: Duration = (0..crate::config::DEFAULT_RETRIES)
                .map(|n| backoff_delay(crate::config::DEFAULT_BACKOFF_BASE, n))
                .sum();
            assert!(total >= Duration::from_secs(180), "{total:?}");
        }
    }

    #[test]
    fn every_rate_limit_halves_the_requests_in_flight() {
        let mut account = crate::fake::FakeAccount::new("t");
        account.generate(3, 1, 1_766_102_400);
        account.faults.rate_limit_first = 3;
        let server = crate::fake::FakeServer::start(account).unwrap();
        let client = ApiClient::new(&ApiOptions {
            base_url: server.url().to_string(),
            token: AccessToken::new("t".into()),
            user_id: None,
            timeout: Duration::from_secs(5),
            retries: 8,
            backoff_base: Duration::from_millis(1),
            concurrency: 8,
        })
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let page = runtime.block_on(client.fetch_page(1)).unwrap();
        assert_eq!(page.items.len(), 3);
        assert_eq!(client.in_flight_limit(), 1, "8 -> 4 -> 2 -> 1");
        assert_eq!(server.account().rate_limited(), 3);
    }

    #[test]
    fn envelope_errors_name_the_page() {
        let err = parse_page(3, br#"{"success":true,"data":{"total":1,"items":{}}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "page 3: `data.items` is an object, expected an array"
        );
        let err = parse_page(2, b"<html>").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("page 2: the response is not valid JSON")
        );
        let err = parse_page(1, br#"{"success":false,"message":"boom"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "page 1: the API answered success:false: boom"
        );
        assert_eq!(err.code(), crate::error::exit::API);
    }
}
