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
pub(crate) mod page;
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

pub(crate) use options::{
    AccessToken, ApiOptions, DEFAULT_BACKOFF_BASE, DEFAULT_CONCURRENCY, DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
};
pub(crate) use page::Page;

/// keysync always asks for the API's largest page; a server may echo a smaller one.
pub(crate) const PAGE_SIZE: usize = 100;
/// A page of 100 keys is about 50 KB; a body past this (after decompression) is not a page.
pub(crate) const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Told about every retry before its wait, e.g. to show it on the progress line.
pub(crate) type RetryObserver = Box<dyn Fn(&str) + Send + Sync>;

pub(crate) struct ApiClient {
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
    pub(crate) fn new(options: &ApiOptions) -> Result<ApiClient> {
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
    pub(crate) fn observe_retries(&self, observer: RetryObserver) {
        let _ = self.retry_observer.set(observer);
    }

    /// Has items of `known` on pages after the first counted by id, not read. Page 1 is
    /// always read in full: the store checks its account.
    pub(crate) fn recognise(&self, known: Arc<KnownItems>) {
        let _ = self.known.set(known);
    }

    /// How many page requests may be in flight now. It only goes down during a pull: after a
    /// rate limit, keysync stays gentle rather than probing the limit again.
    pub(crate) fn in_flight_limit(&self) -> usize {
        self.in_flight_limit.load(Ordering::Relaxed)
    }

    /// The requests sent so far (429s included) and the 429s among them.
    pub(crate) fn request_counts(&self) -> RequestCounts {
        self.counter.counts()
    }

    /// The live counts, for the writer thread to record on a pull that does not finish.
    pub(crate) fn request_counter(&self) -> Arc<RequestCounter> {
        Arc::clone(&self.counter)
    }

    /// Fetches one page, retrying what a retry can fix: rate limits, server errors, resets,
    /// timeouts, and (a few times) an unreachable host.
    pub(crate) async fn fetch_page(&self, page: u32) -> Result<Page> {
        self.with_retries(&format!("page {page}"), || self.try_page(page))
            .await
    }

    /// Reads what the gateway publishes about itself (`GET /api/status`: its price and
    /// version), with the pages' retries and pacing, and without the token.
    pub(crate) async fn fetch_gateway_status(&self) -> Result<GatewayStatus> {
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
mod tests {
    use reqwest::StatusCode;
    use reqwest::header::RETRY_AFTER;

    use super::errors::rejects_credentials;
    use super::page::parse_page;
    use super::retry::{BACKOFF_CAP, backoff_delay, retry_after, retry_wait};
    use super::*;
    use crate::api::known::item_digest;

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
