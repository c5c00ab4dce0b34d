//! The fake's HTTP/1.1 server, on hyper directly: a loopback listener on a thread of its own,
//! keep-alive connections, and the routes upstream has (`/api/token/`, its slashless redirect,
//! and `/api/status`). One server for `demo` and the tests; the test-support layer only adds its hooks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;
use tokio::sync::oneshot;

use super::{Answer, FakeAccount, answer};

pub(super) type Response = hyper::Response<Full<Bytes>>;

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
        let served = account.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("fake-cometapi".into())
            .spawn(move || runtime.block_on(serve(listener, served, stopped)))?;
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
        lock(&self.account)
    }
}

/// A panic in one request's handler must not take the account away from the next.
pub(super) fn lock(account: &Mutex<FakeAccount>) -> MutexGuard<'_, FakeAccount> {
    account
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accepts connections until the [`FakeServer`] is dropped, each served on a task of its own.
/// Dropping the runtime afterwards ends the connections still open.
async fn serve(
    listener: std::net::TcpListener,
    account: Arc<Mutex<FakeAccount>>,
    mut stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return Ok(()),
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // A connection that died before it was accepted, or no file descriptor left: the
            // next accept may well work, so wait a moment instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        #[cfg(feature = "test-support")]
        if lock(&account).reset_this_connection() {
            // Zero linger makes the close an RST, as a dropped connection looks on the wire.
            let _ = stream.set_zero_linger();
            continue;
        }
        let account = account.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let account = account.clone();
                async move { Ok::<_, Infallible>(route(&account, request).await) }
            });
            // A client that goes away mid-request is no error of the fake's.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(account: &Mutex<FakeAccount>, request: Request<Incoming>) -> Response {
    let (parts, _body) = request.into_parts();
    let path = parts.uri.path();
    if path == "/api/status" && parts.method == Method::GET {
        return super::gateway_status(&mut lock(account), &parts);
    }
    if path != "/api/token/" && path != "/api/token" {
        return empty(StatusCode::NOT_FOUND);
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
        let allow = HeaderValue::from_static("GET,HEAD");
        response.headers_mut().insert(header::ALLOW, allow);
        return response;
    }
    if path == "/api/token" {
        return redirect_to_slash(&parts);
    }
    list_tokens(account, &parts).await
}

/// A permanent (308) redirect that keeps the query, as upstream's router does.
fn redirect_to_slash(request: &Parts) -> Response {
    let query = request
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let mut response = empty(StatusCode::PERMANENT_REDIRECT);
    if let Ok(location) = HeaderValue::try_from(format!("/api/token/{query}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn list_tokens(account: &Mutex<FakeAccount>, request: &Parts) -> Response {
    #[cfg(feature = "test-support")]
    let _counted = super::record::InFlight::enter(account);
    #[cfg(feature = "test-support")]
    super::faults::page_delay(account).await;
    let answer = answer(&mut lock(account), request);
    match answer {
        Answer::Now(response) => response,
        #[cfg(feature = "test-support")]
        Answer::Hang => super::faults::hang().await,
    }
}

/// A response with this status, these headers and body.
pub(super) fn response(
    status: StatusCode,
    headers: &[(header::HeaderName, &'static str)],
    body: impl Into<Bytes>,
) -> Response {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

pub(super) fn empty(status: StatusCode) -> Response {
    response(status, &[], Bytes::new())
}

pub(super) fn json_response(status: StatusCode, body: &Json) -> Response {
    let content_type = [(header::CONTENT_TYPE, "application/json")];
    response(status, &content_type, body.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Sends `requests` as they are on one connection and returns everything the fake wrote
    /// back before closing it.
    fn exchange(server: &FakeServer, requests: &str) -> String {
        let address = server.url().trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(requests.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    fn body_of(answer: &str) -> Json {
        let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn pages_newest_first_by_p_and_size_and_checks_the_token() {
        let mut account = FakeAccount::new("t");
        account.generate(5, 1, 1_766_102_400);
        account.mask_keys = true;
        let server = FakeServer::start(account).unwrap();
        let answer = exchange(
            &server,
            "GET /api/token/?p=2&size=2 HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\n\
             Connection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let body = body_of(&answer);
        let data = &body["data"];
        assert_eq!(
            (&data["page"], &data["page_size"], &data["total"]),
            (&2.into(), &2.into(), &5.into())
        );
        let ids: Vec<i64> = data["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [3, 2]);
        let key = data["items"][0]["key"].as_str().unwrap();
        assert_eq!(
            key,
            crate::api::model::mask_key(server.account().get(3).unwrap()["key"].as_str().unwrap())
        );

        let answer = exchange(
            &server,
            "GET /api/token/ HTTP/1.1\r\nHost: x\r\nAuthorization: wrong\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert_eq!(
            body_of(&answer),
            serde_json::json!({"success": false, "message": "Unauthorized, invalid access token"})
        );
    }

    #[test]
    fn keeps_the_connection_alive_between_requests() {
        let server = FakeServer::start(FakeAccount::new("t")).unwrap();
        let answer = exchange(
            &server,
            "GET /api/token/ HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\n\r\n\
             GET /api/token/?p=2 HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(answer.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{answer}");
        assert!(answer.contains(r#""page":2"#), "{answer}");
    }

    #[test]
    fn redirects_the_slashless_path_and_knows_no_other() {
        let server = FakeServer::start(FakeAccount::new("t")).unwrap();
        let answer = exchange(
            &server,
            "GET /api/token?p=3&size=7 HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /api/tokens/ HTTP/1.1\r\nHost: x\r\n\r\n\
             POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let heads: Vec<&str> = answer
            .lines()
            .filter(|l| l.starts_with("HTTP/1.1"))
            .collect();
        assert_eq!(
            heads,
            [
                "HTTP/1.1 308 Permanent Redirect",
                "HTTP/1.1 404 Not Found",
                "HTTP/1.1 405 Method Not Allowed"
            ]
        );
        assert!(
            answer.contains("location: /api/token/?p=3&size=7\r\n"),
            "{answer}"
        );
    }
}
