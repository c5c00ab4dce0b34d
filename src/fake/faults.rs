//! The failures the fake can inject (test support only), each on its own switch in [`Faults`],
//! and the hooks through which the parent module's `answer` and the server apply them on top
//! of the happy path.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use serde_json::{Map, Value as Json, json};

use super::server::{Response, empty, json_response, lock, response};
use super::{Answer, FakeAccount, Page, PageRequest, failure, generate_keys};

/// Failures the fake can inject, each on its own switch.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answer the first N requests with 429 and an empty body.
    pub rate_limit_first: u32,
    /// Send `Retry-After: N` (seconds) with those 429s.
    pub retry_after: Option<u64>,
    /// Allow at most N requests per window, like upstream's sliding window per client IP (360
    /// per 180 s by default since 2026-06, 180 before); the
    /// rest get 429 with an empty body.
    pub rate_limit: Option<(usize, Duration)>,
    /// With `rate_limit`, send `Retry-After` with its 429s: the whole seconds (rounded up)
    /// until the window has room, as gateways do since 2026-07.
    pub retry_after_window: bool,
    /// Answer every Kth request for a page with 502 and an HTML body (`/api/status` is not
    /// counted, so that which page fails does not hang on when the price is read).
    pub fail_every: Option<u32>,
    /// Close the first N connections as soon as they are accepted (the client sees a reset).
    pub reset_connections: u32,
    /// Serve this page with a broken body.
    pub malformed_page: Option<(u32, Malformed)>,
    /// Answer this page with HTTP 200 and `success:false`.
    pub success_false_page: Option<u32>,
    /// Do not answer this page, the given number of times (then serve it normally).
    pub hang_page: Option<(u32, u32)>,
    /// Wait this long before answering any page.
    pub page_delay: Duration,
    /// Change the account right after serving a page.
    pub after_page: Option<Drift>,
    /// Fields added to every item served.
    pub extra_fields: Map<String, Json>,
    /// Report this `total` instead of the true count, like a failed or stale COUNT query.
    pub total: Option<i64>,
    /// Cap the page size at this (and echo it in `data.page_size`), like a fork or a proxy.
    pub page_size_cap: Option<usize>,
    /// Leave `data.page_size` out of every page, as older gateways and some proxies do.
    pub no_page_size: bool,
    /// Serve page 1 whatever `p` asks for, like a server that does not page.
    pub ignore_page: bool,
    /// Answer this page with a gzip body that inflates to about this many bytes of JSON.
    pub gzip_bomb: Option<(u32, usize)>,
    /// Answer this page with these exact bytes, e.g. a recorded gateway answer.
    pub verbatim: BTreeMap<u32, Verbatim>,
    /// Give every item an unknown field `bloat` holding an array of this many zeros: many
    /// small JSON values, the shape that costs a parser the most memory per byte.
    pub bloat: Option<usize>,
    /// Answer `GET /api/status` with 404, as a gateway (or a proxy) without the endpoint.
    pub no_status: bool,
    /// Answer `GET /api/status` with HTTP 200 and this body instead of the deployment's
    /// settings: another shape, another price, or text that is not JSON.
    pub status_body: Option<String>,
}

/// One recorded answer, served byte for byte.
#[derive(Clone, Debug)]
pub struct Verbatim {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Ways a page body can be broken.
#[derive(Clone, Debug)]
pub enum Malformed {
    InvalidJson,
    MissingData,
    ItemsNotArray,
    IdAsString,
}

/// An account change that lands while a pull is paging.
#[derive(Clone, Debug)]
pub struct Drift {
    pub page: u32,
    pub create: usize,
    pub delete: Vec<i64>,
    /// Apply it after every pass over that page, not just the first.
    pub every_time: bool,
}

/// The `page_delay` fault, waited outside the account's lock.
pub(super) async fn page_delay(account: &Mutex<FakeAccount>) {
    let delay = lock(account).faults.page_delay;
    tokio::time::sleep(delay).await;
}

/// The `hang_page` fault: an answer that comes only after any client has given up.
pub(super) async fn hang() -> Response {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    empty(StatusCode::GATEWAY_TIMEOUT)
}

impl FakeAccount {
    /// Whether the `reset_connections` fault takes this freshly accepted connection.
    pub(super) fn reset_this_connection(&mut self) -> bool {
        let reset = self.traffic.connections_reset < self.faults.reset_connections;
        if reset {
            self.traffic.connections_reset += 1;
        }
        reset
    }

    /// Records the request, then the faults that strike before the credentials are read:
    /// rate limits and gateway errors.
    pub(super) fn fault_before_auth(&mut self, request: &Parts) -> Option<Answer> {
        if let Some(limited) = self.record_and_limit(request) {
            return Some(Answer::Now(limited));
        }
        let pages = self.traffic.page_requests;
        if self
            .faults
            .fail_every
            .is_some_and(|k| k > 0 && pages.is_multiple_of(k))
        {
            let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
            let content_type = [(header::CONTENT_TYPE, "text/html")];
            return Some(Answer::Now(response(
                StatusCode::BAD_GATEWAY,
                &content_type,
                html,
            )));
        }
        None
    }

    /// Records any `/api` request, and answers it 429 when a rate-limit switch says so.
    fn record_and_limit(&mut self, request: &Parts) -> Option<Response> {
        let count = self.traffic.record(request);
        let full_for = self.over_rate_limit();
        if count > self.faults.rate_limit_first && full_for.is_none() {
            return None;
        }
        self.traffic.rate_limited += 1;
        let mut response = empty(StatusCode::TOO_MANY_REQUESTS);
        let window_wait = full_for
            .filter(|_| self.faults.retry_after_window)
            .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        if let Some(seconds) = window_wait.or(self.faults.retry_after) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        Some(response)
    }

    /// The faults of `GET /api/status`: it is recorded and rate limited as any `/api` request,
    /// then answered 404 or with a body of the test's.
    pub(super) fn status_fault(&mut self, request: &Parts) -> Option<Response> {
        if let Some(limited) = self.record_and_limit(request) {
            return Some(limited);
        }
        if self.faults.no_status {
            let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
            return Some(response(
                StatusCode::NOT_FOUND,
                &content_type,
                "404 page not found",
            ));
        }
        let body = self.faults.status_body.clone()?;
        let content_type = [(header::CONTENT_TYPE, "application/json")];
        Some(response(StatusCode::OK, &content_type, body))
    }

    /// Whether the sliding-window limiter turns this request away, and if so how long until
    /// its window has room.
    fn over_rate_limit(&mut self) -> Option<Duration> {
        let (limit, window) = self.faults.rate_limit?;
        let admitted = &mut self.traffic.admitted;
        let now = Instant::now();
        while admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            admitted.pop_front();
        }
        if admitted.len() >= limit {
            let oldest = admitted.front().copied().unwrap_or(now);
            return Some(window.saturating_sub(now.duration_since(oldest)));
        }
        admitted.push_back(now);
        None
    }

    /// The paging faults applied to what the request asks for, or a fault that answers for
    /// the whole page.
    pub(super) fn fault_before_page(&mut self, wanted: &mut PageRequest) -> Option<Answer> {
        if self.faults.ignore_page {
            wanted.page = 1;
        }
        if let Some(cap) = self.faults.page_size_cap {
            wanted.page_size = wanted.page_size.min(cap);
        }
        let page = wanted.page;
        if let Some(answer) = self.faults.verbatim.get(&page) {
            return Some(Answer::Now(verbatim(answer)));
        }
        if let Some((hang, times)) = self.faults.hang_page
            && hang == page
            && times > 0
        {
            self.faults.hang_page = Some((hang, times - 1));
            return Some(Answer::Hang);
        }
        if self.faults.success_false_page == Some(page) {
            return Some(Answer::Now(failure(
                StatusCode::OK,
                "database error: too many connections",
            )));
        }
        if let Some((bomb, size)) = self.faults.gzip_bomb
            && bomb == page
        {
            return Some(Answer::Now(gzip_bomb(size)));
        }
        None
    }

    /// The page written with the faults that alter or break its body, then the account drift
    /// that lands after it.
    pub(super) fn serve_with_faults(&mut self, mut page: Page) -> Response {
        for item in &mut page.items {
            if let Json::Object(fields) = item {
                for (name, value) in &self.faults.extra_fields {
                    fields.insert(name.clone(), value.clone());
                }
            }
        }
        if let Some(total) = self.faults.total {
            page.total = total;
        }
        let number = page.page;
        let response = match (&self.faults.malformed_page, self.faults.bloat) {
            (Some((p, how)), _) if *p == page.page => malformed(how, page),
            (_, Some(zeros)) => bloated(page, zeros),
            _ if self.faults.no_page_size => json_response(
                StatusCode::OK,
                &json!({"success": true, "message": "",
                    "data": {"page": page.page, "total": page.total, "items": page.items}}),
            ),
            _ => page.into_response(),
        };
        self.apply_drift(number);
        response
    }

    fn apply_drift(&mut self, page: u32) {
        let Some(drift) = self.faults.after_page.clone() else {
            return;
        };
        if drift.page != page {
            return;
        }
        if !drift.every_time {
            self.faults.after_page = None;
        }
        let now = self
            .keys
            .values()
            .filter_map(|k| k.get("created_time")?.as_i64())
            .max();
        let seed = self.next_id as u64;
        for fields in generate_keys(drift.create, seed, now.unwrap_or(1_766_000_000) + 60) {
            self.insert(fields);
        }
        for id in &drift.delete {
            self.keys.remove(id);
        }
    }
}

/// The envelope written as text, each item carrying `"bloat":[0,0,...]`, so that the fake
/// itself never holds a tree of the zeros.
fn bloated(page: Page, zeros: usize) -> Response {
    let bloat = format!(",\"bloat\":[{}0]}}", "0,".repeat(zeros.saturating_sub(1)));
    let items: Vec<String> = page
        .items
        .iter()
        .map(|item| {
            let text = item.to_string();
            format!("{}{bloat}", &text[..text.len() - 1])
        })
        .collect();
    let body = format!(
        r#"{{"success":true,"message":"","data":{{"page":{},"page_size":{},"total":{},"items":[{}]}}}}"#,
        page.page,
        page.page_size,
        page.total,
        items.join(",")
    );
    let content_type = [(header::CONTENT_TYPE, "application/json")];
    response(StatusCode::OK, &content_type, body)
}

fn malformed(how: &Malformed, mut page: Page) -> Response {
    let body = match how {
        Malformed::InvalidJson => {
            let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
            return response(
                StatusCode::OK,
                &content_type,
                "{\"success\":true,\"data\":{\"items\":[",
            );
        }
        Malformed::MissingData => json!({"success": true, "message": ""}),
        Malformed::ItemsNotArray => json!({"success": true, "message": "", "data": {
            "page": page.page, "page_size": page.page_size, "total": page.total, "items": "none"}}),
        Malformed::IdAsString => {
            if let Some(Json::Object(first)) = page.items.first_mut() {
                let id = first["id"].to_string();
                first.insert("id".into(), Json::String(id));
            }
            return page.into_response();
        }
    };
    json_response(StatusCode::OK, &body)
}

fn verbatim(answer: &Verbatim) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = [(header::CONTENT_TYPE, "application/octet-stream")];
    let mut response = response(status, &content_type, answer.body.clone());
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A gzip body that inflates to about `size` bytes: the start of a valid page, then spaces
/// (valid JSON whitespace), never closed. Built from one compressed megabyte of spaces repeated,
/// so that the fake itself stays small and fast; a client that reads it whole inflates it all.
fn gzip_bomb(size: usize) -> Response {
    use flate2::{Compress, Compression, FlushCompress};
    const CHUNK: usize = 1 << 20;
    let deflate = |compress: &mut Compress, input: &[u8]| {
        let mut output = Vec::with_capacity(CHUNK / 100);
        compress
            .compress_vec(input, &mut output, FlushCompress::Sync)
            .expect("deflating spaces works");
        output
    };
    let mut compress = Compress::new(Compression::fast(), false);
    let mut first =
        br#"{"success":true,"message":"","data":{"page":1,"page_size":100,"total":1,"items":["#
            .to_vec();
    first.resize(CHUNK, b' ');
    // gzip header: magic, deflate, no flags, no time, no extra flags, unknown OS.
    let mut body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    body.extend(deflate(&mut compress, &first));
    // Every further megabyte of spaces compresses to the same bytes, referring only to spaces.
    let more = deflate(&mut compress, &vec![b' '; CHUNK]);
    for _ in 1..size.div_ceil(CHUNK) {
        body.extend_from_slice(&more);
    }
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CONTENT_ENCODING, "gzip"),
    ];
    response(StatusCode::OK, &headers, body)
}
