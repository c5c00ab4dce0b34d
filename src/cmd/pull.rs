//! `keysync pull`: list every key, apply the listing in one transaction, print a summary; and
//! after every pull, the metrics to `--metrics-file` and `--metrics-listen` (`exposition`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::api::Rate;
use crate::api::pacing::parse_rate;
use crate::cmd::exposition::publish::Publisher;
use crate::cmd::show::{print_failure_json, print_summary};
use crate::config::{
    ApiFlags, Settings, parse_interval, parse_retries, parse_timeout, resolve_pull,
};
use crate::error::{Error, Result, Signal};
use crate::puller::shutdown::Shutdown;
use crate::puller::{PullFailed, PullOptions, PullTrace, Pulled, pull};
use crate::time::{parse_duration, unix_now};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The API's base URL; also COMETAPI_BASE_URL [default: https://api.cometapi.com]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Read the access token from this file (trimmed) instead of COMETAPI_ACCESS_TOKEN
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Also send `New-Api-User: N` (deployments that require it answer 401 without it); also
    /// COMETAPI_USER_ID
    #[arg(long, value_name = "N")]
    pub user_id: Option<u64>,
    /// Store full key values in the database (by default only a masked hint and a SHA-256)
    #[arg(long)]
    pub store_secrets: bool,
    /// Print the summary as one JSON object
    #[arg(long)]
    pub json: bool,
    /// Timeout of one HTTP request, at least 100ms [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Attempts per page after the first, for rate limits, 5xx and network errors (0 to 100)
    /// [default: 8]
    #[arg(long, value_name = "N", value_parser = parse_retries)]
    pub retries: Option<u32>,
    /// Pages requested at once after page 1, 1 to 8 (1 = one at a time); halved on rate limits
    /// [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=8))]
    pub concurrency: Option<u16>,
    /// Keep running: a pull every DURATION (start to start, at least 1s) until SIGINT/SIGTERM
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub every: Option<Duration>,
    /// Ping this healthchecks.io-style URL: URL/start, then URL or URL/fail
    #[arg(long, value_name = "URL")]
    pub ping_url: Option<String>,
    /// Also trust the CA certificates in this PEM file (a private CA or a TLS-inspecting proxy)
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
    /// Wait up to this long for another pull's lock instead of exiting 5 at once
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// The server's rate limit, N requests per DURATION (e.g. 360/180s): requests are paced to
    /// it, so none is answered 429 (without it, the limit is learnt from the first 429s)
    #[arg(long, value_name = "N/DURATION", value_parser = parse_rate)]
    pub max_rate: Option<Rate>,
    /// After every pull, failed ones included, write the Prometheus metrics to FILE, as
    /// `keysync metrics --out FILE` does (for node_exporter's textfile collector); also the
    /// profile's metrics_file
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// With --every: serve the Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9184),
    /// refreshed after every pull; also the profile's metrics_listen
    #[arg(long, value_name = "ADDR", requires = "every")]
    pub metrics_listen: Option<SocketAddr>,
    /// The first wait between retries (doubling after each); for tests
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_duration)]
    pub backoff_base: Option<Duration>,
}

impl Args {
    /// The flags `config` resolves together with the environment and the profile.
    pub(crate) fn api_flags(&self) -> ApiFlags {
        ApiFlags {
            base_url: self.base_url.clone(),
            token_file: self.token_file.clone(),
            user_id: self.user_id,
            timeout: self.timeout,
            retries: self.retries,
            concurrency: self.concurrency,
            ca_cert: self.ca_cert.clone(),
            backoff_base: self.backoff_base,
            ping_url: self.ping_url.clone(),
            max_rate: self.max_rate,
        }
    }
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
    let pull = match resolve_pull(settings, &args.api_flags()) {
        Ok(pull) => pull,
        Err(error) => return Err(report_unresolved(&args, settings.now, error)),
    };
    let options = PullOptions {
        db: settings.db()?.to_path_buf(),
        api: pull.options,
        store_secrets: args.store_secrets,
        wait: args.wait,
        now: pull.now,
        ping_url: pull.ping_url,
    };
    let profile = &settings.profile;
    let metrics = Publisher::new(
        options.db.clone(),
        profile.quota_per_unit,
        settings.now,
        args.metrics_file
            .clone()
            .or_else(|| profile.metrics_file.clone()),
    )?;
    // The profile's address serves only a schedule; a one-shot pull would serve for an instant.
    let listen = args
        .metrics_listen
        .or(profile.metrics_listen.filter(|_| args.every.is_some()));
    let run = async {
        let mut metrics = metrics;
        if let Some(addr) = listen {
            metrics.listen(addr, settings.quiet).await?;
        }
        run_pulls(&options, &args, &metrics, settings.quiet).await
    };
    crate::cmd::runtime()?.block_on(run)
}

/// One pull, or with `--every` one per interval until a signal. With `--json` every pull
/// that failed prints its own line too (see [`report_failure`]). After each pull that began,
/// the metrics are published; a one-shot pull that could not publish them fails (its own
/// failure first), a schedule logs it and goes on.
async fn run_pulls(
    options: &PullOptions,
    args: &Args,
    metrics: &Publisher,
    quiet: bool,
) -> Result<()> {
    let progress = !quiet && !args.json;
    let shutdown = Shutdown::install()?;
    let report = |trace: &PullTrace, error: Error| report_failure(args.json, trace, error);
    let Some(every) = args.every else {
        let pulled = pull(options, progress, shutdown.requested()).await;
        let published = metrics.publish().await;
        return match pulled {
            Ok(Pulled::Done(summary)) => {
                print_summary(&summary, args.json, quiet)?;
                published
            }
            Ok(Pulled::Interrupted(trace)) => Err(report(
                &trace,
                Error::Interrupted(shutdown.received().unwrap_or(Signal::Interrupt)),
            )),
            Err(PullFailed { trace, error }) => Err(report(&trace, error)),
        };
    };
    loop {
        let started = Instant::now();
        let pulled = pull(options, progress, shutdown.requested()).await;
        if let Err(error) = metrics.publish().await {
            tracing::error!("{error}");
        }
        match pulled {
            Ok(Pulled::Done(summary)) => print_summary(&summary, args.json, quiet)?,
            Ok(Pulled::Interrupted(trace)) => {
                // A stop between pulls is no failure; one that rolled a pull back left a row.
                if trace.sync.is_some() {
                    let signal = shutdown.received().unwrap_or(Signal::Terminate);
                    report(&trace, Error::Interrupted(signal));
                }
                return Ok(());
            }
            // The schedule outlives a bad network or a busy lock, not a rejected token.
            Err(PullFailed { trace, error }) if error.is_transient() => {
                let error = report(&trace, error);
                tracing::error!(
                    "{error}; the next pull is due in {}",
                    humantime::format_duration(every)
                );
            }
            Err(PullFailed { trace, error }) => return Err(report(&trace, error)),
        }
        tokio::select! {
            () = tokio::time::sleep(every.saturating_sub(started.elapsed())) => {}
            _ = shutdown.requested() => return Ok(()),
        }
    }
}

/// With `--json`, prints a failed pull's line on stdout (the error still goes to stderr as
/// usual); hands the error back. A stdout that cannot take the line changes nothing: the
/// error is what the exit code reports.
fn report_failure(json: bool, trace: &PullTrace, error: Error) -> Error {
    if json {
        let _ = print_failure_json(trace, &error);
    }
    error
}

/// A pull whose settings could not be resolved (no token, a bad profile) still prints its
/// `--json` line, so a monitor that reads stdout learns why.
pub(crate) fn report_unresolved(args: &Args, now: Option<i64>, error: Error) -> Error {
    let at = unix_now(now);
    let trace = PullTrace {
        sync: None,
        started_at: at,
        finished_at: at,
    };
    report_failure(args.json, &trace, error)
}
