//! The fake CometAPI used by `keysync demo` and by the integration tests.
//!
//! It serves `GET /api/token/` on 127.0.0.1 the way ../shared/cometapi-api.md describes the
//! real one: the `{success, message, data}` envelope, 1-based `p`, `page_size` capped at 100
//! (also read as `ps` or `size`), newest first, `total` for the whole account, 401 without a
//! token, 200 + `success:false` for a wrong one, `New-Api-User` when required, a 301 for the
//! path without its slash, and masked keys on request. [`Faults`] switch on the failures the
//! fault suite needs.

mod generate;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Map, Value as Json, json};
use tokio::sync::oneshot;

use crate::api::model::mask_key;

pub use generate::generate_keys;

/// The fake's whole state: the account's keys, its credentials and its fault switches.
#[derive(Debug)]
pub struct FakeAccount {
    pub token: String,
    pub user_id: i64,
    /// Answer 401 unless `New-Api-User: <user_id>` is sent.
    pub require_user_id: bool,
    /// Serve keys masked, as newer gateways do.
    pub mask_keys: bool,
    pub faults: Faults,
    keys: BTreeMap<i64, Map<String, Json>>,
    next_id: i64,
    requests: Vec<RecordedRequest>,
    in_flight: usize,
    max_in_flight: usize,
    connections_reset: u32,
    /// When the requests the rate limiter let through arrived.
    admitted: VecDeque<Instant>,
    rate_limited: usize,
}

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
    /// Answer every Kth request with 502 and an HTML body.
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

/// One request as the fake received it, for tests to inspect.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub path_and_query: String,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub new_api_user: Option<String>,
}

impl FakeAccount {
    pub fn new(token: &str) -> FakeAccount {
        FakeAccount {
            token: token.to_string(),
            user_id: 5678,
            require_user_id: false,
            mask_keys: false,
            faults: Faults::default(),
            keys: BTreeMap::new(),
            next_id: 1,
            requests: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
            connections_reset: 0,
            admitted: VecDeque::new(),
            rate_limited: 0,
        }
    }

    /// Adds a key with the given fields (id assigned here) and returns its id.
    pub fn insert(&mut self, mut fields: Map<String, Json>) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        fields.insert("id".into(), json!(id));
        fields.entry("user_id").or_insert(json!(self.user_id));
        self.keys.insert(id, fields);
        id
    }

    /// Adds `count` realistic keys made from `seed`, created up to `now`.
    pub fn generate(&mut self, count: usize, seed: u64, now: i64) -> Vec<i64> {
        generate_keys(count, seed, now)
            .into_iter()
            .map(|fields| self.insert(fields))
            .collect()
    }

    /// Deletes a key, returning its fields (with `id`) so a test can bring it back.
    pub fn remove(&mut self, id: i64) -> Option<Map<String, Json>> {
        self.keys.remove(&id)
    }

    /// Puts back a key under the id its fields carry, as a restored key keeps its id.
    pub fn restore(&mut self, fields: Map<String, Json>) {
        let id = fields["id"]
            .as_i64()
            .expect("restored fields carry their id");
        self.next_id = self.next_id.max(id + 1);
        self.keys.insert(id, fields);
    }

    /// Sets one field of a key; panics on an unknown id, which is a bug in the caller.
    pub fn set(&mut self, id: i64, field: &str, value: Json) {
        let key = self
            .keys
            .get_mut(&id)
            .unwrap_or_else(|| panic!("fake has no key {id}"));
        key.insert(field.to_string(), value);
    }

    pub fn get(&self, id: i64) -> Option<&Map<String, Json>> {
        self.keys.get(&id)
    }

    pub fn ids(&self) -> Vec<i64> {
        self.keys.keys().copied().collect()
    }

    pub fn requests(&self) -> &[RecordedRequest] {
        &self.requests
    }

    /// Forgets the requests recorded so far, so a test can count one pull's.
    pub fn requests_clear(&mut self) {
        self.requests.clear();
    }

    /// The most requests that were being answered at one moment.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// How many requests got a 429, from either rate-limit switch.
    pub fn rate_limited(&self) -> usize {
        self.rate_limited
    }

    /// Whether the sliding-window limiter turns this request away.
    fn over_rate_limit(&mut self) -> bool {
        let Some((limit, window)) = self.faults.rate_limit else {
            return false;
        };
        let now = Instant::now();
        while self
            .admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() >= limit {
            return true;
        }
        self.admitted.push_back(now);
        false
    }

    /// How many connections the `reset_connections` fault has closed.
    pub fn connections_reset(&self) -> u32 {
        self.connections_reset
    }

    fn page(&self, page: u32, page_size: usize) -> Vec<Json> {
        let offset = (page as usize - 1).saturating_mul(page_size);
        self.keys
            .values()
            .rev()
            .skip(offset)
            .take(page_size)
            .map(|fields| self.serve_item(fields))
            .collect()
    }

    fn serve_item(&self, fields: &Map<String, Json>) -> Json {
        let mut item = fields.clone();
        if self.mask_keys
            && let Some(Json::String(key)) = item.get("key")
        {
            let masked = mask_key(key);
            item.insert("key".into(), Json::String(masked));
        }
        for (name, value) in &self.faults.extra_fields {
            item.insert(name.clone(), value.clone());
        }
        Json::Object(item)
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

/// A running fake on 127.0.0.1, on its own thread; it stops when dropped.
pub struct FakeServer {
    url: String,
    account: Arc<Mutex<FakeAccount>>,
    _shutdown: oneshot::Sender<()>,
}

impl FakeServer {
    /// Serves `account` on an ephemeral loopback port.
    pub fn start(account: FakeAccount) -> std::io::Result<FakeServer> {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let account = Arc::new(Mutex::new(account));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(account.clone());
        let app_account = account.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("fake-cometapi".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = ResettingListener {
                        inner: tokio::net::TcpListener::from_std(listener)?,
                        account: app_account,
                    };
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await
                })
            })?;
        Ok(FakeServer {
            url,
            account,
            _shutdown: shutdown,
        })
    }

    /// The base URL to give keysync, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The account, to change keys or faults between (or during) pulls.
    pub fn account(&self) -> MutexGuard<'_, FakeAccount> {
        self.account
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves `app` on an ephemeral 127.0.0.1 port from a thread of its own, for as long as the
/// process lives, and returns its base URL. For test and benchmark servers that need none of
/// [`FakeServer`]'s faults.
pub fn serve_in_background(app: Router) -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}", listener.local_addr()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("loopback-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, app).await
            })
        })?;
    Ok(url)
}

/// A TCP listener that can drop freshly accepted connections, to fake connection resets.
struct ResettingListener {
    inner: tokio::net::TcpListener,
    account: Arc<Mutex<FakeAccount>>,
}

impl ResettingListener {
    fn should_reset(&self) -> bool {
        let mut account = self.account.lock().unwrap_or_else(|p| p.into_inner());
        let reset = account.connections_reset < account.faults.reset_connections;
        if reset {
            account.connections_reset += 1;
        }
        reset
    }
}

impl axum::serve::Listener for ResettingListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, address) = axum::serve::Listener::accept(&mut self.inner).await;
            if !self.should_reset() {
                return (stream, address);
            }
            // Zero linger makes the close an RST, as a dropped connection looks on the wire.
            let _ = stream.set_zero_linger();
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

fn router(account: Arc<Mutex<FakeAccount>>) -> Router {
    Router::new()
        .route("/api/token/", get(list_tokens))
        .route("/api/token", get(redirect_to_slash))
        .with_state(account)
}

async fn redirect_to_slash(RawQuery(query): RawQuery) -> Redirect {
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Redirect::permanent(&format!("/api/token/{query}"))
}

/// What one request gets, decided under the lock; waiting happens after releasing it.
enum Answer {
    Now(Response),
    Hang,
}

async fn list_tokens(
    State(account): State<Arc<Mutex<FakeAccount>>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let lock = || account.lock().unwrap_or_else(|p| p.into_inner());
    let _counted = InFlight::enter(&account);
    let delay = lock().faults.page_delay;
    tokio::time::sleep(delay).await;
    let answer = answer(&mut lock(), &headers, &query, raw.unwrap_or_default());
    match answer {
        Answer::Now(response) => response,
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

/// Counts a request as in flight until it is answered or the client gives up on it.
struct InFlight<'a>(&'a Mutex<FakeAccount>);

impl<'a> InFlight<'a> {
    fn enter(account: &'a Mutex<FakeAccount>) -> InFlight<'a> {
        let mut state = account.lock().unwrap_or_else(|p| p.into_inner());
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        InFlight(account)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).in_flight -= 1;
    }
}

fn answer(
    account: &mut FakeAccount,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    raw_query: String,
) -> Answer {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    account.requests.push(RecordedRequest {
        path_and_query: format!("/api/token/?{raw_query}"),
        authorization: header("authorization"),
        user_agent: header("user-agent"),
        new_api_user: header("new-api-user"),
    });
    let count = account.requests.len() as u32;
    if count <= account.faults.rate_limit_first || account.over_rate_limit() {
        account.rate_limited += 1;
        let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
        if let Some(seconds) = account.faults.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        return Answer::Now(response);
    }
    if account
        .faults
        .fail_every
        .is_some_and(|k| k > 0 && count.is_multiple_of(k))
    {
        let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        return Answer::Now(
            (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                html,
            )
                .into_response(),
        );
    }
    let Some(authorization) = header("authorization") else {
        return Answer::Now(failure(
            StatusCode::UNAUTHORIZED,
            "Unauthorized, not logged in and no access token provided",
        ));
    };
    if account.require_user_id && header("new-api-user") != Some(account.user_id.to_string()) {
        return Answer::Now(failure(
            StatusCode::UNAUTHORIZED,
            "Unauthorized, New-Api-User header not provided",
        ));
    }
    if authorization != account.token {
        return Answer::Now(failure(
            StatusCode::OK,
            "Unauthorized, invalid access token",
        ));
    }
    let page = query
        .get("p")
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|p| *p > 0 && !account.faults.ignore_page)
        .unwrap_or(1);
    if let Some(answer) = account.faults.verbatim.get(&page) {
        return Answer::Now(verbatim(answer));
    }
    let page_size = ["page_size", "ps", "size"]
        .iter()
        .find_map(|name| query.get(*name))
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(10)
        .min(100)
        .min(account.faults.page_size_cap.unwrap_or(100));
    if let Some((hang, times)) = account.faults.hang_page
        && hang == page
        && times > 0
    {
        account.faults.hang_page = Some((hang, times - 1));
        return Answer::Hang;
    }
    if account.faults.success_false_page == Some(page) {
        return Answer::Now(failure(
            StatusCode::OK,
            "database error: too many connections",
        ));
    }
    if let Some((bomb, size)) = account.faults.gzip_bomb
        && bomb == page
    {
        return Answer::Now(gzip_bomb(size));
    }
    let items = account.page(page, page_size);
    let total = account.faults.total.unwrap_or(account.keys.len() as i64);
    let response = match (&account.faults.malformed_page, account.faults.bloat) {
        (Some((p, how)), _) if *p == page => malformed(how, page, page_size, total, items),
        (_, Some(zeros)) => bloated(page, page_size, total, items, zeros),
        _ if account.faults.no_page_size => axum::Json(json!({"success": true, "message": "",
            "data": {"page": page, "total": total, "items": items}}))
        .into_response(),
        _ => envelope(page, page_size, total, items),
    };
    account.apply_drift(page);
    Answer::Now(response)
}

fn envelope(page: u32, page_size: usize, total: i64, items: Vec<Json>) -> Response {
    let body = json!({"success": true, "message": "", "data": {
        "page": page, "page_size": page_size, "total": total, "items": items}});
    axum::Json(body).into_response()
}

/// The envelope written as text, each item carrying `"bloat":[0,0,...]`, so that the fake
/// itself never holds a tree of the zeros.
fn bloated(page: u32, page_size: usize, total: i64, items: Vec<Json>, zeros: usize) -> Response {
    let bloat = format!(",\"bloat\":[{}0]}}", "0,".repeat(zeros.saturating_sub(1)));
    let items: Vec<String> = items
        .iter()
        .map(|item| {
            let text = item.to_string();
            format!("{}{bloat}", &text[..text.len() - 1])
        })
        .collect();
    let body = format!(
        r#"{{"success":true,"message":"","data":{{"page":{page},"page_size":{page_size},"total":{total},"items":[{}]}}}}"#,
        items.join(",")
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn malformed(
    how: &Malformed,
    page: u32,
    page_size: usize,
    total: i64,
    mut items: Vec<Json>,
) -> Response {
    let body = match how {
        Malformed::InvalidJson => {
            return (StatusCode::OK, "{\"success\":true,\"data\":{\"items\":[").into_response();
        }
        Malformed::MissingData => json!({"success": true, "message": ""}),
        Malformed::ItemsNotArray => json!({"success": true, "message": "", "data": {
            "page": page, "page_size": page_size, "total": total, "items": "none"}}),
        Malformed::IdAsString => {
            if let Some(Json::Object(first)) = items.first_mut() {
                let id = first["id"].to_string();
                first.insert("id".into(), Json::String(id));
            }
            json!({"success": true, "message": "", "data": {
                "page": page, "page_size": page_size, "total": total, "items": items}})
        }
    };
    axum::Json(body).into_response()
}

fn verbatim(answer: &Verbatim) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body.clone()).into_response();
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(value),
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
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_ENCODING, "gzip"),
        ],
        body,
    )
        .into_response()
}

fn failure(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"success": false, "message": message})),
    )
        .into_response()
}
