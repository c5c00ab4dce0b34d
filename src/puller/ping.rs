//! Health pings in the healthchecks.io convention: `URL/start` when a pull begins, `URL` on
//! success (the summary line as body), `URL/fail` on failure (the error text as body).
//!
//! A ping is a courtesy to the monitor, never part of the pull: one that fails or times out is
//! a warning and the pull goes on. The URL is a credential (anyone holding it can report), so
//! it never appears in a log line or a message.

use std::time::Duration;

use crate::error::{Error, Result, error_chain};

const PING_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct HealthPing {
    http: reqwest::Client,
    url: reqwest::Url,
}

impl HealthPing {
    pub(crate) fn new(url: &str) -> Result<HealthPing> {
        let url = reqwest::Url::parse(url.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::Usage(
                    "--ping-url (or the profile's ping_url) is not an http(s) URL; check it in \
                     your monitor's settings"
                        .into(),
                )
            })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("keysync/", env!("CARGO_PKG_VERSION")))
            .timeout(PING_TIMEOUT)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the ping client: {e}")))?;
        Ok(HealthPing { http, url })
    }

    /// The URL to request: the ping URL with `/start` or `/fail` (or nothing) added to its
    /// path, keeping its query string (`.../UUID?rid=42` → `.../UUID/start?rid=42`), without a
    /// trailing `/` on the path and without a fragment.
    fn url_for(&self, event: Option<&str>) -> reqwest::Url {
        let mut url = self.url.clone();
        let path = url.path().trim_end_matches('/').to_string();
        match event {
            Some(event) => url.set_path(&format!("{path}/{event}")),
            None => url.set_path(&path),
        }
        url.set_fragment(None);
        url
    }

    pub(crate) async fn start(&self) {
        self.send("start", self.http.get(self.url_for(Some("start"))))
            .await;
    }

    pub(crate) async fn success(&self, summary: &str) {
        let request = self.http.post(self.url_for(None)).body(summary.to_string());
        self.send("success", request).await;
    }

    pub(crate) async fn fail(&self, error: &str) {
        let request = self
            .http
            .post(self.url_for(Some("fail")))
            .body(error.to_string());
        self.send("fail", request).await;
    }

    async fn send(&self, what: &str, request: reqwest::RequestBuilder) {
        let problem = match request.send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("HTTP {}", response.status()),
            Err(e) => error_chain(&e.without_url()),
        };
        tracing::warn!("health ping ({what}) failed: {problem}; the pull itself is not affected");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(ping_url: &str) -> [String; 3] {
        let ping = HealthPing::new(ping_url).unwrap();
        [Some("start"), None, Some("fail")].map(|event| ping.url_for(event).to_string())
    }

    #[test]
    fn start_and_fail_go_on_the_path_and_the_query_string_stays() {
        assert_eq!(
            urls("https://hc/ping/UUID?rid=42"),
            [
                "https://hc/ping/UUID/start?rid=42",
                "https://hc/ping/UUID?rid=42",
                "https://hc/ping/UUID/fail?rid=42",
            ]
        );
        assert_eq!(
            urls(" https://hc/ping/UUID/?rid=42&create=1#frag "),
            [
                "https://hc/ping/UUID/start?rid=42&create=1",
                "https://hc/ping/UUID?rid=42&create=1",
                "https://hc/ping/UUID/fail?rid=42&create=1",
            ]
        );
        assert_eq!(
            urls("http://127.0.0.1:8000/ping/5f2c/"),
            [
                "http://127.0.0.1:8000/ping/5f2c/start",
                "http://127.0.0.1:8000/ping/5f2c",
                "http://127.0.0.1:8000/ping/5f2c/fail",
            ]
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_a_usage_error() {
        for bad in ["hc-ping.com/uuid", "ftp://hc/ping", ""] {
            let error = HealthPing::new(bad).err().expect(bad);
            assert_eq!(error.code(), crate::error::exit::USAGE, "{bad}");
        }
    }
}
