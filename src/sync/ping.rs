//! Health pings in the healthchecks.io convention: `URL/start` when a pull begins, `URL` on
//! success (the summary line as body), `URL/fail` on failure (the error text as body).
//!
//! A ping is a courtesy to the monitor, never part of the pull: one that fails or times out is
//! a warning and the pull goes on. The URL is a credential (anyone holding it can report), so
//! it never appears in a log line or a message.

use std::time::Duration;

use crate::error::{Error, Result, error_chain};

const PING_TIMEOUT: Duration = Duration::from_secs(10);

pub struct HealthPing {
    http: reqwest::Client,
    url: String,
}

impl HealthPing {
    pub fn new(url: &str) -> Result<HealthPing> {
        let url = url.trim().trim_end_matches('/');
        let valid = reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !valid {
            return Err(Error::Usage(
                "--ping-url (or the profile's ping_url) is not an http(s) URL; check it in your \
                 monitor's settings"
                    .into(),
            ));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("keysync/", env!("CARGO_PKG_VERSION")))
            .timeout(PING_TIMEOUT)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the ping client: {e}")))?;
        Ok(HealthPing {
            http,
            url: url.to_string(),
        })
    }

    pub async fn start(&self) {
        self.send("start", self.http.get(format!("{}/start", self.url)))
            .await;
    }

    pub async fn success(&self, summary: &str) {
        let request = self.http.post(&self.url).body(summary.to_string());
        self.send("success", request).await;
    }

    pub async fn fail(&self, error: &str) {
        let request = self
            .http
            .post(format!("{}/fail", self.url))
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
