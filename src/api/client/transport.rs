//! Below HTTP: the `reqwest::Client` and the roots it trusts (`--ca-cert`), and the sorting of
//! a failed connection into what a retry may fix (a refused connection, a timeout) and what
//! only a change of settings can (an untrusted certificate, TLS to a plain HTTP port).

use std::time::Duration;

use super::retry::{Attempt, Retry, RetryKind};
use super::{ApiClient, ApiOptions};
use crate::error::{Error, Result, error_chain};

/// The `reqwest::Client` of every request: keysync's user agent, the timeouts, gzip, and the
/// roots an HTTPS server's certificate may chain to (the system's, and `--ca-cert`'s).
pub(super) fn http_client(
    options: &ApiOptions,
    url: &reqwest::Url,
    host: &str,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("keysync/", env!("CARGO_PKG_VERSION")))
        .timeout(options.timeout)
        .connect_timeout(options.timeout.min(Duration::from_secs(10)))
        .gzip(true);
    // Read even for plain HTTP, so that a wrong path shows before the switch to https.
    let extra_roots = options.ca_cert.as_deref().map(read_ca_cert).transpose()?;
    if url.scheme() == "http" {
        // Plain HTTP needs no trust store, so a machine without CA certificates can still
        // reach a local gateway.
        builder = builder.tls_certs_only([]);
    } else if let Some(certs) = extra_roots {
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| {
        Error::Api(format!(
            "cannot set up HTTPS for {host}: {}. Install the system's CA certificates \
                 (Debian/Ubuntu: apt-get install ca-certificates), point SSL_CERT_FILE at a PEM \
                 bundle, or pass --ca-cert FILE",
            error_chain(&e)
        ))
    })
}

impl ApiClient {
    /// Sorts a failure below HTTP: what no retry fixes (TLS, protocol, a bad URL) is final and
    /// says what to change; the rest is retried.
    pub(super) fn transport_failure(&self, error: reqwest::Error) -> Attempt {
        let kind = transport_kind(&error);
        let chain = error_chain(&error.without_url());
        let fatal = |advice: &str| {
            Attempt::Fatal(Error::Api(format!(
                "cannot talk to {}: {chain}. {advice}",
                self.host
            )))
        };
        match kind {
            Transport::Tls(TlsProblem::Certificate) => fatal(
                "The server's certificate is not trusted: if it comes from a private CA, pass \
                 --ca-cert FILE (or set SSL_CERT_FILE) with that CA's PEM certificate; check \
                 the host name in --base-url",
            ),
            Transport::Tls(TlsProblem::NotTls) => fatal(
                "The server does not speak TLS on this port: use http:// in --base-url if it \
                 is a plain HTTP server",
            ),
            Transport::Tls(TlsProblem::Other) => fatal(
                "The TLS handshake failed: check --base-url, --ca-cert and any proxy \
                 (HTTPS_PROXY)",
            ),
            Transport::Protocol => fatal(
                "The answer is not HTTP: if the server expects TLS, use https:// in --base-url",
            ),
            Transport::BadRequest => fatal("Check --base-url / COMETAPI_BASE_URL"),
            Transport::Unreachable => Attempt::Retry(Retry {
                reason: format!("{} is unreachable ({chain})", self.host),
                retry_after: None,
                kind: RetryKind::Unreachable,
            }),
            Transport::Timeout => Attempt::Retry(Retry {
                reason: "the request timed out (see --timeout)".into(),
                retry_after: None,
                kind: RetryKind::Transient,
            }),
            Transport::Other => Attempt::Retry(Retry {
                reason: chain,
                retry_after: None,
                kind: RetryKind::Transient,
            }),
        }
    }
}

/// What went wrong below HTTP.
#[derive(Debug, PartialEq, Eq)]
enum Transport {
    Tls(TlsProblem),
    /// The bytes that came back were not HTTP (e.g. http:// to a TLS port).
    Protocol,
    /// The request could not be built (an invalid URL).
    BadRequest,
    /// Connection refused or DNS failure.
    Unreachable,
    Timeout,
    Other,
}

#[derive(Debug, PartialEq, Eq)]
enum TlsProblem {
    Certificate,
    NotTls,
    Other,
}

fn transport_kind(error: &reqwest::Error) -> Transport {
    if error.is_builder() {
        return Transport::BadRequest;
    }
    if error.is_timeout() {
        return Transport::Timeout;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut text = String::new();
    while let Some(current) = cause {
        if let Some(problem) = tls_problem(current) {
            return Transport::Tls(problem);
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>()
            && hyper.is_parse()
        {
            return Transport::Protocol;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Transport::Unreachable;
        }
        text.push_str(&current.to_string());
        cause = current.source();
    }
    // hyper-util reports a failed lookup only in words.
    if text.contains("dns error") {
        return Transport::Unreachable;
    }
    Transport::Other
}

/// A rustls error, directly or inside the `io::Error`s that carry it through the connector
/// (whose `source()` skips the error they wrap).
fn tls_problem(error: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let mut inner = error;
    while let Some(wrapped) = inner
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        inner = wrapped;
    }
    let tls = inner.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TlsProblem::Certificate
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            TlsProblem::NotTls
        }
        _ => TlsProblem::Other,
    })
}

fn read_ca_cert(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Usage(format!("cannot read --ca-cert {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        Error::Usage(format!(
            "--ca-cert {}: not PEM certificates ({})",
            path.display(),
            error_chain(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "--ca-cert {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}
