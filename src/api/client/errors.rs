//! The single place where an HTTP status and an error body become "go on", "try again" or
//! "stop", with the error a person reads: a rejection of the credentials first, then what a
//! retry can fix; and the access token cut out of any text that quotes the server.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value as Json;

use super::ApiClient;
use super::retry::{Attempt, Retry, RetryKind};
use crate::api::pacing::RateLimited;
use crate::error::Error;

impl ApiClient {
    /// The key listing's mapping from an HTTP status (and an error body) to "go on", "try
    /// again" or "stop": an auth failure first, then what every request shares ([`retry_or`]).
    pub(super) fn check_status(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Result<(), Attempt> {
        if status.is_success() {
            return Ok(());
        }
        let answer = ErrorBody::read(body);
        if rejects_credentials(status, answer.code.as_deref(), &answer.message) {
            return Err(Attempt::Fatal(self.redacted(auth_error(&format!(
                "HTTP {status}: {}",
                answer.describe()
            )))));
        }
        let answer = ErrorBody {
            message: self.without_token(answer.message),
            ..answer
        };
        Err(retry_or(status, retry_after, &answer, |_| {
            Attempt::Fatal(self.redacted(Error::Api(format!(
                "HTTP {status} from {}: is --base-url / COMETAPI_BASE_URL right? {}",
                self.endpoint,
                answer.describe()
            ))))
        }))
    }

    /// An error whose text may quote the server, with the access token cut out.
    pub(super) fn redacted(&self, error: Error) -> Error {
        let text = error.to_string();
        if !self.quotes_token(&text) {
            return error;
        }
        let text = self.without_token(text);
        match error {
            Error::Auth(_) => Error::Auth(text),
            _ => Error::Api(text),
        }
    }

    fn quotes_token(&self, text: &str) -> bool {
        let token = self.token.expose();
        !token.is_empty() && text.contains(token)
    }

    /// Text that may quote the server (and so the token), with the token cut out.
    fn without_token(&self, text: String) -> String {
        match self.quotes_token(&text) {
            true => text.replace(self.token.expose(), "***"),
            false => text,
        }
    }
}

/// An answer that is not a success, as a request's next step: a retry for what a retry can fix
/// (429, 408, 5xx), else `fatal` of the reason.
pub(super) fn retry_or(
    status: StatusCode,
    retry_after: Option<Duration>,
    answer: &ErrorBody,
    fatal: impl FnOnce(String) -> Attempt,
) -> Attempt {
    let retry = |reason: String, kind| {
        Attempt::Retry(Retry {
            reason,
            retry_after,
            kind,
        })
    };
    match status {
        StatusCode::TOO_MANY_REQUESTS => retry(
            "HTTP 429 (rate limited)".into(),
            RetryKind::RateLimited(RateLimited::Backoff),
        ),
        StatusCode::REQUEST_TIMEOUT => {
            retry("HTTP 408 Request Timeout".into(), RetryKind::Transient)
        }
        s if s.is_server_error() => {
            let reason = match answer.message.is_empty() {
                true => format!("HTTP {s}"),
                false => format!("HTTP {s}: {}", answer.describe()),
            };
            retry(reason, RetryKind::Transient)
        }
        s => fatal(format!("HTTP {s}")),
    }
}

/// Whether a failed answer rejects the token or the account, so that no retry can help and
/// `pull --every` must stop (exit 3). The rule, from the gateway's history
/// (../shared/cometapi-api.md, "Errors"):
/// - HTTP 401 and 403 always are (newer gateways answer every token failure with 401);
/// - a `code` starting with `AUTH_` is, except `AUTH_INTERNAL_ERROR`, a server failure;
/// - at HTTP 2xx, older gateways say it only in the message: one that mentions being
///   unauthorised, the access token, or a banned or disabled account, in English or Chinese.
pub(crate) fn rejects_credentials(status: StatusCode, code: Option<&str>, message: &str) -> bool {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return true;
    }
    match code {
        Some("AUTH_INTERNAL_ERROR") => return false,
        Some(code) if code.starts_with("AUTH_") => return true,
        _ => {}
    }
    if !status.is_success() {
        return false;
    }
    let lower = message.to_lowercase();
    [
        "unauthorized",
        "access token",
        "banned",
        "disabled",
        "无权",
        "未登录",
        "封禁",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

pub(super) fn auth_error(detail: &str) -> Error {
    Error::Auth(format!(
        "the API rejected the credentials ({detail}). Check COMETAPI_ACCESS_TOKEN or the \
         --token-file contents (create a token at CometAPI Console → Personal Settings) and \
         that the account is enabled; if your deployment requires it, set --user-id / \
         COMETAPI_USER_ID"
    ))
}

/// The `code` and `message` of an error answer, if it has them.
pub(super) struct ErrorBody {
    pub(super) code: Option<String>,
    pub(super) message: String,
    /// What the body was when it had no message: empty, or not JSON.
    shape: &'static str,
}

impl ErrorBody {
    pub(super) fn read(body: &[u8]) -> ErrorBody {
        let json = serde_json::from_slice::<Json>(body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(Json::as_str)
                .map(str::to_string)
        };
        let shape = match &json {
            _ if body.is_empty() => "(empty body)",
            None => "(body is not JSON)",
            Some(_) => "",
        };
        ErrorBody {
            code: field("code"),
            message: field("message").unwrap_or_default(),
            shape,
        }
    }

    pub(super) fn describe(&self) -> String {
        match (&self.code, self.message.is_empty()) {
            (_, true) => self.shape.to_string(),
            (Some(code), false) => format!("{} [{code}]", self.message),
            (None, false) => self.message.clone(),
        }
    }
}
