//! What the fake has seen of its traffic, for tests to inspect (test support only): every
//! request, the most answered at once, the connections reset and the requests rate-limited.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use hyper::http::request::Parts;

use super::FakeAccount;
use super::server::lock;

/// One request as the fake received it, for tests to inspect.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub path_and_query: String,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub new_api_user: Option<String>,
}

/// The counters behind [`FakeAccount`]'s inspection methods, and the rate limiter's memory.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    pub(super) requests: Vec<RecordedRequest>,
    /// The requests for pages among them (`GET /api/token/`), cleared with them.
    pub(super) page_requests: u32,
    in_flight: usize,
    max_in_flight: usize,
    pub(super) connections_reset: u32,
    /// When the requests the rate limiter let through arrived.
    pub(super) admitted: VecDeque<Instant>,
    pub(super) rate_limited: usize,
}

impl Traffic {
    /// Notes a request (`GET /api/token/` or `/api/status`) and returns how many have come
    /// since the last clear.
    pub(super) fn record(&mut self, request: &Parts) -> u32 {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        if request.uri.path() == "/api/token/" {
            self.page_requests += 1;
        }
        self.requests.push(RecordedRequest {
            path_and_query: format!(
                "{}?{}",
                request.uri.path(),
                request.uri.query().unwrap_or_default()
            )
            .trim_end_matches(['?'])
            .to_string(),
            authorization: header("authorization"),
            user_agent: header("user-agent"),
            new_api_user: header("new-api-user"),
        });
        self.requests.len() as u32
    }
}

impl FakeAccount {
    pub fn requests(&self) -> &[RecordedRequest] {
        &self.traffic.requests
    }

    /// Forgets the requests recorded so far, so a test can count one pull's.
    pub fn requests_clear(&mut self) {
        self.traffic.requests.clear();
        self.traffic.page_requests = 0;
    }

    /// The most requests that were being answered at one moment.
    pub fn max_in_flight(&self) -> usize {
        self.traffic.max_in_flight
    }

    /// How many requests got a 429, from either rate-limit switch.
    pub fn rate_limited(&self) -> usize {
        self.traffic.rate_limited
    }

    /// How many connections the `reset_connections` fault has closed.
    pub fn connections_reset(&self) -> u32 {
        self.traffic.connections_reset
    }
}

/// Counts a request as in flight until it is answered or the client gives up on it.
pub(super) struct InFlight<'a>(&'a Mutex<FakeAccount>);

impl<'a> InFlight<'a> {
    pub(super) fn enter(account: &'a Mutex<FakeAccount>) -> InFlight<'a> {
        let mut state = lock(account);
        let traffic = &mut state.traffic;
        traffic.in_flight += 1;
        traffic.max_in_flight = traffic.max_in_flight.max(traffic.in_flight);
        InFlight(account)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.0).traffic.in_flight -= 1;
    }
}
