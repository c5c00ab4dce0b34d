//! The fake CometAPI used by `keysync demo` and by the integration tests.
//!
//! It serves `GET /api/token/` on 127.0.0.1 the way ../shared/cometapi-api.md describes the
//! real one: the `{success, message, data}` envelope, 1-based `p`, `page_size` capped at 100
//! (also read as `ps` or `size`), newest first, `total` for the whole account, 401 without a
//! token, 200 + `success:false` for a wrong one, `New-Api-User` when required, a permanent
//! redirect for the path without its slash, and masked keys on request. `GET /api/status`
//! publishes the deployment's price (`quota_per_unit`) and version to anyone, as upstream does.
//!
//! That happy path is all `demo` needs and all a default build compiles. The `test-support`
//! feature (on for tests and benches) layers on it the fault switches (`Faults`), the request
//! recording (`RecordedRequest`, `requests()`, `max_in_flight()`) and `serve_in_background`;
//! `answer` marks each place where that layer steps in.

pub(crate) mod generate;
pub(crate) mod server;

#[cfg(feature = "test-support")]
pub(crate) mod faults;
#[cfg(feature = "test-support")]
pub(crate) mod loopback;
#[cfg(feature = "test-support")]
pub(crate) mod record;

use std::collections::{BTreeMap, HashMap};

use hyper::http::request::Parts;
use hyper::{HeaderMap, StatusCode};
use serde_json::{Map, Value as Json, json};

use crate::api::model::mask_key;
use server::{Response, json_response};

#[cfg(feature = "test-support")]
pub(crate) use faults::Faults;
pub(crate) use generate::generate_keys;
pub(crate) use server::FakeServer;

/// The fake's whole state: the account's keys and its credentials (and, with test support,
/// its fault switches and what it has seen).
#[derive(Debug)]
pub struct FakeAccount {
    pub token: String,
    pub user_id: i64,
    /// Answer 401 unless `New-Api-User: <user_id>` is sent.
    pub require_user_id: bool,
    /// Serve keys masked, as newer gateways do.
    pub mask_keys: bool,
    /// The deployment's price that `GET /api/status` publishes: quota units per US dollar.
    pub quota_per_unit: i64,
    #[cfg(feature = "test-support")]
    pub faults: Faults,
    keys: BTreeMap<i64, Map<String, Json>>,
    next_id: i64,
    #[cfg(feature = "test-support")]
    traffic: record::Traffic,
}

impl FakeAccount {
    pub fn new(token: &str) -> FakeAccount {
        FakeAccount {
            token: token.to_string(),
            user_id: 5678,
            require_user_id: false,
            mask_keys: false,
            quota_per_unit: 500_000,
            #[cfg(feature = "test-support")]
            faults: Faults::default(),
            keys: BTreeMap::new(),
            next_id: 1,
            #[cfg(feature = "test-support")]
            traffic: record::Traffic::default(),
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
    #[cfg(feature = "test-support")]
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

    /// The answer upstream gives a request without the right credentials, if this is one.
    fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(authorization) = header("authorization") else {
            return Some(failure(
                StatusCode::UNAUTHORIZED,
                "Unauthorized, not logged in and no access token provided",
            ));
        };
        if self.require_user_id && header("new-api-user") != Some(&self.user_id.to_string()) {
            return Some(failure(
                StatusCode::UNAUTHORIZED,
                "Unauthorized, New-Api-User header not provided",
            ));
        }
        if authorization != self.token {
            return Some(failure(
                StatusCode::OK,
                "Unauthorized, invalid access token",
            ));
        }
        None
    }

    /// One page of the account, newest key first.
    fn page(&self, wanted: PageRequest) -> Page {
        let offset = (wanted.page as usize - 1).saturating_mul(wanted.page_size);
        let items = self
            .keys
            .values()
            .rev()
            .skip(offset)
            .take(wanted.page_size)
            .map(|fields| self.serve_item(fields))
            .collect();
        Page {
            page: wanted.page,
            page_size: wanted.page_size,
            total: self.keys.len() as i64,
            items,
        }
    }

    fn serve_item(&self, fields: &Map<String, Json>) -> Json {
        let mut item = fields.clone();
        if self.mask_keys
            && let Some(Json::String(key)) = item.get("key")
        {
            let masked = mask_key(key);
            item.insert("key".into(), Json::String(masked));
        }
        Json::Object(item)
    }
}

/// What a request asks for, read as upstream reads it.
#[derive(Clone, Copy, Debug)]
struct PageRequest {
    /// 1-based; a missing, zero or unreadable `p` means 1.
    page: u32,
    /// `page_size`, `ps` or `size` (the first one present), 10 by default, at most 100.
    page_size: usize,
}

impl PageRequest {
    fn read(query: Option<&str>) -> PageRequest {
        let query: HashMap<String, String> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let page = query
            .get("p")
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|p| *p > 0)
            .unwrap_or(1);
        let page_size = ["page_size", "ps", "size"]
            .iter()
            .find_map(|name| query.get(*name))
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(10)
            .min(100);
        PageRequest { page, page_size }
    }
}

/// One page as the envelope carries it.
#[derive(Debug)]
struct Page {
    page: u32,
    page_size: usize,
    total: i64,
    items: Vec<Json>,
}

impl Page {
    fn into_response(self) -> Response {
        json_response(
            StatusCode::OK,
            &json!({"success": true, "message": "", "data": {
                "page": self.page, "page_size": self.page_size, "total": self.total,
                "items": self.items}}),
        )
    }
}

/// What one request gets, decided under the account's lock; any waiting happens after
/// releasing it.
enum Answer {
    Now(Response),
    /// Never answer (the `hang_page` fault).
    #[cfg(feature = "test-support")]
    Hang,
}

/// The answer to one `GET /api/token/`. Each `cfg` is where the test-support layer steps in:
/// before the credentials are checked (recording, rate limits, gateway errors), before the page
/// is read (paging faults, whole-page replacements), and when the page is written (broken or
/// altered bodies, account drift).
fn answer(account: &mut FakeAccount, request: &Parts) -> Answer {
    #[cfg(feature = "test-support")]
    if let Some(fault) = account.fault_before_auth(request) {
        return fault;
    }
    if let Some(refusal) = account.refuse(&request.headers) {
        return Answer::Now(refusal);
    }
    let wanted = PageRequest::read(request.uri.query());
    #[cfg(feature = "test-support")]
    let wanted = {
        let mut wanted = wanted;
        if let Some(fault) = account.fault_before_page(&mut wanted) {
            return fault;
        }
        wanted
    };
    let page = account.page(wanted);
    #[cfg(feature = "test-support")]
    return Answer::Now(account.serve_with_faults(page));
    #[cfg(not(feature = "test-support"))]
    Answer::Now(page.into_response())
}

/// The answer to `GET /api/status`: the deployment's settings, as new-api's `GetStatus` writes
/// them (a selection), open to anyone: no credential is read.
fn gateway_status(account: &mut FakeAccount, request: &Parts) -> Response {
    #[cfg(feature = "test-support")]
    if let Some(fault) = account.status_fault(request) {
        return fault;
    }
    let _ = request;
    json_response(
        StatusCode::OK,
        &json!({"success": true, "message": "", "data": {
            "system_name": "New API", "version": "v0.9.0", "start_time": 1_766_000_000,
            "quota_per_unit": account.quota_per_unit, "display_in_currency": true,
            "quota_display_type": "USD", "usd_exchange_rate": 7.3,
            "custom_currency_symbol": "¤", "custom_currency_exchange_rate": 1,
            "enable_data_export": true, "data_export_default_time": "hour",
            "default_use_auto_group": false, "setup": true}}),
    )
}

fn failure(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"success": false, "message": message}))
}
