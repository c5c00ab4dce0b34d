//! `keysync pull`: list every key, apply the listing in one transaction, print a summary; and
//! after every pull, the metrics to `--metrics-file` and `--metrics-listen` (`exposition`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::alerts::Rules;
use crate::api::Rate;
use crate::api::pacing::parse_rate;
use crate::cmd::check::{AlertArgs, Checked, Plan, check, print_alarms};
use crate::cmd::exposition::publish::Publisher;
use crate::cmd::show::{print_failure_json, print_summary};
use crate::config::{
    ApiFlags, Settings, parse_interval, parse_retries, parse_timeout, resolve_pull,
};
use crate::error::{Error, Outcome, Result, Signal};
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
    /// After each pull, run `keysync check` with the flags below (also the profile's
    /// `check = true`): exit 1 when an alarm fires, 4 when a webhook delivery failed
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub alerts: AlertArgs,
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

pub(crate) fn run(settings: &Settings, args: Args) -> Result<Outcome> {
    let pull = match resolve_pull(settings, &args.api_flags()) {
        Ok(pull) => pull,
        Err(error) => return Err(report_unresolved(&args, settings.now, error)),
    };
    let checks = match resolve_checks(settings, &args) {
        Ok(checks) => checks,
        Err(error) => return Err(report_unresolved(&args, settings.now, error)),
    };
    let after = AfterPull {
        plan: checks,
        quiet: settings.quiet || args.json,
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
    let rules = match &after.plan {
        Some(plan) => plan.rules.clone(),
        None => Rules::from_profile(&profile.alerts, profile.quota_per_unit),
    };
    let metrics = Publisher::new(
        options.db.clone(),
        (profile.quota_per_unit, rules),
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
        run_pulls(&options, &args, (&metrics, &after), settings.quiet).await
    };
    crate::cmd::runtime()?.block_on(run)
}

/// `--check` (or the profile's `check = true`): the check to run after each pull. The alert
/// flags without it are a mistake, not a silent no-op.
fn resolve_checks(settings: &Settings, args: &Args) -> Result<Option<Plan>> {
    if args.check || settings.profile.check == Some(true) {
        return Plan::resolve(settings, &args.alerts).map(Some);
    }
    if args.alerts.any_given() {
        return Err(Error::Usage(
            "the alert flags of `pull` (--notify, --expiring, ...) work with --check: add \
             --check, or set check = true in the profile"
                .into(),
        ));
    }
    Ok(None)
}

/// The check after each pull, if any, and whether its alarms are printed.
struct AfterPull {
    plan: Option<Plan>,
    quiet: bool,
}

impl AfterPull {
    /// Checks at the pull's `now` (after its pull, whatever became of it) and prints the
    /// alarms firing, if any, as a table after the pull's summary; none without `--check`.
    async fn check(&self, options: &PullOptions) -> Option<Result<Checked>> {
        let plan = self.plan.as_ref()?;
        let checked = check(&options.db, plan, unix_now(options.now), options.wait).await;
        if let Ok(checked) = &checked
            && !self.quiet
            && !checked.firing.is_empty()
            && let Err(error) = print_alarms(Default::default(), &checked.firing)
        {
            return Some(Err(error));
        }
        Some(checked)
    }
}

impl AfterPull {
    /// [`Self::check`] under `--every`: the schedule outlives alarms and failed deliveries;
    /// they are logged, and a failed delivery is sent again after the next pull.
    async fn check_on_schedule(&self, options: &PullOptions) {
        match self.check(options).await {
            Some(Err(error)) => tracing::error!("{error}"),
            Some(Ok(Checked {
                undelivered: Some(error),
                ..
            })) => tracing::error!("{error}"),
            _ => {}
        }
    }
}

/// A one-shot pull's exit: the pull's own failure first (the check ran and delivered all the
/// same), then the check's: 4 for a failed delivery, 1 for an alarm firing.
fn outcome(pulled: Result<()>, checked: Option<Result<Checked>>) -> Result<Outcome> {
    match (pulled, checked) {
        (Err(error), Some(Err(check_failed))) => {
            tracing::error!("{check_failed}");
            Err(error)
        }
        (Err(error), _) => Err(error),
        (Ok(()), None) => Ok(Outcome::Success),
        (Ok(()), Some(checked)) => checked?.outcome(),
    }
}

/// One pull, or with `--every` one per interval until a signal. With `--json` every pull
/// that failed prints its own line too (see [`report_failure`]). After each pull that began,
/// the metrics are published; a one-shot pull that could not publish them fails (its own
/// failure first), a schedule logs it and goes on. With `--check`, a check follows every
/// pull that was not interrupted.
async fn run_pulls(
    options: &PullOptions,
    args: &Args,
    (metrics, after): (&Publisher, &AfterPull),
    quiet: bool,
) -> Result<Outcome> {
    let progress = !quiet && !args.json;
    let shutdown = Shutdown::install()?;
    let report = |trace: &PullTrace, error: Error| report_failure(args.json, trace, error);
    let Some(every) = args.every else {
        return pull_once(options, args, (metrics, after), (&shutdown, quiet)).await;
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
                return Ok(Outcome::Success);
            }
            // The schedule outlives a bad network or a busy lock, not a rejected token.
            Err(PullFailed { trace, error }) if error.is_transient() => {
                let error = report(&trace, error);
                tracing::error!(
                    "{error}; the next pull is due in {}",
                    crate::time::readable_duration(every)
                );
            }
            Err(PullFailed { trace, error }) => {
                let error = report(&trace, error);
                return outcome(Err(error), after.check(options).await);
            }
        }
        after.check_on_schedule(options).await;
        tokio::select! {
            () = tokio::time::sleep(every.saturating_sub(started.elapsed())) => {}
            _ = shutdown.requested() => return Ok(Outcome::Success),
        }
    }
}

/// One pull, its metrics published, then the check: a failed pull's own error is the one to
/// exit with, and the metrics' is still said.
async fn pull_once(
    options: &PullOptions,
    args: &Args,
    (metrics, after): (&Publisher, &AfterPull),
    (shutdown, quiet): (&Shutdown, bool),
) -> Result<Outcome> {
    let report = |trace: &PullTrace, error: Error| report_failure(args.json, trace, error);
    let pulled = pull(options, !quiet && !args.json, shutdown.requested()).await;
    let published = match metrics.publish().await {
        Err(error) if !matches!(pulled, Ok(Pulled::Done(_))) => {
            tracing::error!("{error}");
            Ok(())
        }
        published => published,
    };
    let pulled = match pulled {
        Ok(Pulled::Done(summary)) => print_summary(&summary, args.json, quiet).and(published),
        Ok(Pulled::Interrupted(trace)) => {
            let signal = shutdown.received().unwrap_or(Signal::Interrupt);
            return Err(report(&trace, Error::Interrupted(signal)));
        }
        Err(PullFailed { trace, error }) => Err(report(&trace, error)),
    };
    outcome(pulled, after.check(options).await)
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
