//! `pull --every --metrics-listen ADDR`: the metrics at `GET /metrics` from the running
//! process (404 elsewhere), the text of the latest pull, refreshed after each pull. The server
//! runs on the pull's own runtime, one task per connection; it only ever reads the text the
//! pull loop publishes, so a scrape never touches the database nor waits for a pull.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::CONTENT_TYPE;
use crate::error::{Error, Result};

type Response = hyper::Response<Full<Bytes>>;

/// A client that sends no complete request head within this long is dropped, so idle
/// connections cannot pile up.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The listening socket, bound before the first pull so that a wrong address fails at once.
pub(crate) struct Endpoint {
    listener: TcpListener,
}

impl Endpoint {
    /// Binds `addr`; a busy or forbidden address is a usage error.
    pub(crate) async fn bind(addr: SocketAddr) -> Result<Endpoint> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::Usage(format!(
                "cannot listen on --metrics-listen {addr}: {e}; pick another address or port"
            ))
        })?;
        Ok(Endpoint { listener })
    }

    /// The address bound (the port chosen when `addr` asked for port 0).
    pub(crate) fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("cannot read the metrics address: {e}")))
    }

    /// Serves `text` (whatever it holds at each request) until the runtime ends.
    pub(crate) fn serve(self, text: watch::Receiver<String>) {
        tokio::spawn(accept(self.listener, text));
    }
}

async fn accept(listener: TcpListener, text: watch::Receiver<String>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // A connection that died before it was accepted, or no file descriptor left: the
            // next accept may well work, so wait a moment instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let text = text.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = route(&request, &text);
                async move { Ok::<_, Infallible>(response) }
            });
            // A scraper that goes away mid-request is no error of keysync's.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(request: &Request<Incoming>, text: &watch::Receiver<String>) -> Response {
    if request.uri().path() != "/metrics" {
        return response(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut answer = response(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        let allow = HeaderValue::from_static("GET, HEAD");
        answer.headers_mut().insert(header::ALLOW, allow);
        return answer;
    }
    let mut answer = response(StatusCode::OK, text.borrow().clone());
    let exposition = HeaderValue::from_static(CONTENT_TYPE);
    answer
        .headers_mut()
        .insert(header::CONTENT_TYPE, exposition);
    answer
}

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut response = hyper::Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}
