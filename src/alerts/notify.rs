//! Delivering alarms to webhooks: the bodies (`json`, and `slack` for the incoming webhooks of
//! Slack, Mattermost and Rocket.Chat) and the POST, tried 3 times with a doubling wait.
//!
//! A webhook URL is a secret (Slack's path is its credential): it is shown only as scheme,
//! host and `***` ([`Webhook::shown`]), stored only as its SHA-256 ([`Webhook::digest`], the
//! key of the delivery state), and never logged; reqwest's errors are read without the URL.
//! Only the body goes to it: no token, no header of the CometAPI requests.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::{COLUMNS, row};
use crate::error::{Error, Result, error_chain};
use crate::output::to_json;
use crate::store::alarms::{Alarm, Pending};
use crate::time::rfc3339_time;

/// Tries of one delivery: the first and two retries.
const TRIES: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

/// The body a webhook is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NotifyFormat {
    /// `{"keysync": 1, "firing": [...], "new": [...], "resolved": [...], ...}`
    #[default]
    Json,
    /// `{"text": "..."}` for Slack, Mattermost and Rocket.Chat incoming webhooks
    Slack,
}

/// A webhook URL: a secret, never shown whole.
pub(crate) struct Webhook {
    url: reqwest::Url,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Webhook {
    /// An http(s) URL, or a usage error that does not repeat it.
    pub(crate) fn parse(text: &str) -> Result<Webhook> {
        reqwest::Url::parse(text.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .map(|url| Webhook { url })
            .ok_or_else(|| {
                Error::Usage(
                    "a --notify URL (or one of the profile's notify) is not an http(s) URL; \
                     copy it again from the webhook's settings"
                        .into(),
                )
            })
    }

    /// `https://hooks.slack.com/***`: enough to tell webhooks apart, nothing of the secret.
    pub(crate) fn shown(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{}://{host}:{port}/***", self.url.scheme()),
            None => format!("{}://{host}/***", self.url.scheme()),
        }
    }

    /// The SHA-256 of the URL, in hex: what the database knows the webhook by.
    pub(crate) fn digest(&self) -> String {
        let digest = Sha256::digest(self.url.as_str().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One check's news for one webhook, and what it is sent with.
pub(crate) struct News<'a> {
    pub database: &'a Path,
    pub account: Option<i64>,
    pub checked_at: i64,
    pub firing: &'a [Alarm],
    pub pending: &'a Pending,
}

/// One alarm as the object of one row of `check`: `rule, subject, name, value, threshold,
/// since, message` (and `resolved_at` for a resolved one).
pub(crate) fn alarm_json(alarm: &Alarm) -> Json {
    let mut object: serde_json::Map<String, Json> = COLUMNS
        .iter()
        .zip(row(alarm, false))
        .map(|(column, value)| (column.to_string(), to_json(&value)))
        .collect();
    if let Some(at) = alarm.resolved_at {
        object.insert("resolved_at".into(), json!(rfc3339_time(at)));
    }
    Json::Object(object)
}

/// The body for `format`.
pub(crate) fn body(format: NotifyFormat, news: &News<'_>) -> Json {
    let list = |alarms: &[(i64, Alarm)]| -> Vec<Json> {
        alarms.iter().map(|(_, alarm)| alarm_json(alarm)).collect()
    };
    match format {
        NotifyFormat::Json => json!({
            "keysync": 1,
            "database": news.database.display().to_string(),
            "account": news.account,
            "checked_at": rfc3339_time(news.checked_at),
            "firing": news.firing.iter().map(alarm_json).collect::<Vec<_>>(),
            "new": list(&news.pending.new),
            "resolved": list(&news.pending.resolved),
        }),
        NotifyFormat::Slack => json!({"text": slack_text(news)}),
    }
}

/// `&`, `<` and `>` as Slack asks for them in text (its only control characters).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A readable summary: a headline, then one line per new and per resolved alarm.
fn slack_text(news: &News<'_>) -> String {
    let (new, resolved) = (&news.pending.new, &news.pending.resolved);
    let mut text = format!(
        "keysync: {} firing, {} new, {} resolved ({})",
        news.firing.len(),
        new.len(),
        resolved.len(),
        slack_escape(&news.database.display().to_string())
    );
    for (_, alarm) in new {
        text.push_str(&format!(
            "\n:rotating_light: FIRING {}: {}",
            alarm.rule,
            slack_escape(&alarm.message)
        ));
    }
    for (_, alarm) in resolved {
        text.push_str(&format!(
            "\n:white_check_mark: RESOLVED {}: {}",
            alarm.rule,
            slack_escape(&alarm.message)
        ));
    }
    text
}

/// An HTTP client for webhooks: keysync's user agent, a timeout, no redirects (a redirect
/// would carry the alarms somewhere the user did not name).
pub(crate) fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("keysync/", env!("CARGO_PKG_VERSION")))
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the webhook client: {e}")))
}

/// POSTs `body` to `hook` until it answers 2xx, at most [`TRIES`] times, waiting `backoff`,
/// then twice that, between tries; an API error (exit 4) naming the host and the last answer.
pub(crate) async fn deliver(
    http: &reqwest::Client,
    hook: &Webhook,
    body: &Json,
    backoff: Duration,
) -> Result<()> {
    let mut wait = backoff;
    let mut problem = String::new();
    for attempt in 1..=TRIES {
        if attempt > 1 {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
        match http.post(hook.url.clone()).json(body).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => problem = format!("HTTP {}", response.status()),
            Err(e) => problem = error_chain(&e.without_url()),
        }
        tracing::info!("webhook {} try {attempt} failed: {problem}", hook.shown());
    }
    Err(Error::Api(format!(
        "cannot deliver the alarms to the webhook {}: {problem} after {TRIES} tries; the \
         undelivered changes stay pending and the next check sends them",
        hook.shown()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_shown_without_its_path_and_known_by_a_digest() {
        let hook = Webhook::parse("https://hooks.slack.com/services/T0/B0/s3cret").unwrap();
        assert_eq!(hook.shown(), "https://hooks.slack.com/***");
        assert_eq!(format!("{hook:?}"), "https://hooks.slack.com/***");
        assert_eq!(hook.digest().len(), 64);
        assert!(!hook.digest().contains("s3cret"));
        let local = Webhook::parse("http://127.0.0.1:9/x?token=s3cret").unwrap();
        assert_eq!(local.shown(), "http://127.0.0.1:9/***");
        let refused = Webhook::parse("ftp://u:s3cret@h/").unwrap_err().to_string();
        assert!(!refused.contains("s3cret"), "{refused}");
    }

    #[test]
    fn slack_text_escapes_what_slack_asks() {
        assert_eq!(slack_escape("a&b <c> d"), "a&amp;b &lt;c&gt; d");
    }
}
