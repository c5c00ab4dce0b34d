//! `keysync check`: evaluate the alert rules (`alerts`), record which alarms fire and which
//! resolved (`store::alarms`), deliver what changed to the webhooks, print the firing alarms.
//! `pull --check` runs the same [`check`] after its pull, with the same flags ([`AlertArgs`]).

use std::path::Path;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, FromArgMatches};

use crate::alerts::notify::{self, News, NotifyFormat, Webhook};
use crate::alerts::rules::SETTINGS;
use crate::alerts::{self, Alarm, COLUMNS, Rules, row};
use crate::cmd::FormatArgs;
use crate::config::Settings;
use crate::error::{Error, Outcome, Result};
use crate::output::{Column, ColumnKind, NAME_WIDTH, RowFormat, print_columns};
use crate::store::lock::PullLock;
use crate::store::{self, Store};
use crate::time::parse_duration;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub alerts: AlertArgs,
    /// Evaluate without writing the alarm state: `since` is empty and no webhook is sent
    /// anything
    #[arg(long, conflicts_with = "notify")]
    pub no_state: bool,
    /// Wait up to this long for a running pull's lock instead of exiting 5 at once
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// The flags of `check` that `pull --check` takes too: one per rule setting, and the webhooks.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct AlertArgs {
    #[command(flatten)]
    pub rules: RuleFlags,
    /// POST the alarms that started or resolved since the last delivery to this webhook
    /// (repeatable; also the profile's notify)
    #[arg(long, value_name = "URL")]
    pub notify: Vec<String>,
    /// The body POSTed to --notify [default: json]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub notify_format: Option<NotifyFormat>,
    /// The first wait between the tries of a delivery (doubling after each); for tests
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_duration)]
    pub notify_backoff: Option<Duration>,
}

impl AlertArgs {
    /// Whether any of these flags was given.
    pub(crate) fn any_given(&self) -> bool {
        !self.rules.given.is_empty() || !self.notify.is_empty() || self.notify_format.is_some()
    }
}

/// One flag per setting of `alerts::rules::SETTINGS` (its name with dashes), built from the
/// definitions, so that a new rule needs no flag written here. Each keeps its text; the
/// rules read it ([`Rules::resolve`]), after clap has checked it the same way.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleFlags {
    given: Vec<(&'static str, String)>,
}

impl FromArgMatches for RuleFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let given = SETTINGS
            .iter()
            .filter_map(|setting| {
                let values = matches.get_many::<String>(setting.name)?;
                Some((setting.name, values.cloned().collect::<Vec<_>>().join(",")))
            })
            .collect();
        Ok(RuleFlags { given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = RuleFlags::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for RuleFlags {
    fn augment_args(command: clap::Command) -> clap::Command {
        SETTINGS.iter().fold(command, |command, setting| {
            let kind = setting.kind;
            let default = setting.default.unwrap_or("off");
            let arg = Arg::new(setting.name)
                .long(setting.name.replace('_', "-"))
                .value_name(kind.value_name())
                .help_heading("Alert rules")
                .help(format!("{} [default: {default}]", setting.help))
                .value_parser(move |text: &str| kind.parse_text(text).map(|_| text.to_string()));
            let arg = if kind.is_list() {
                arg.action(ArgAction::Append).value_delimiter(',')
            } else {
                arg.action(ArgAction::Set)
            };
            command.arg(arg)
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// What a check needs beyond the database: the rules, the webhooks and their body.
#[derive(Debug)]
pub(crate) struct Plan {
    pub rules: Rules,
    pub webhooks: Vec<Webhook>,
    pub format: NotifyFormat,
    pub backoff: Duration,
}

impl Plan {
    /// The flags over the profile over the defaults.
    pub(crate) fn resolve(settings: &Settings, args: &AlertArgs) -> Result<Plan> {
        let profile = &settings.profile;
        let rules = Rules::resolve(&profile.alerts, profile.quota_per_unit, &args.rules.given)?;
        let urls = match (&args.notify, &profile.notify) {
            (flags, _) if !flags.is_empty() => flags.clone(),
            (_, Some(urls)) => urls.clone(),
            (_, None) => Vec::new(),
        };
        Ok(Plan {
            rules,
            webhooks: urls
                .iter()
                .map(|u| Webhook::parse(u))
                .collect::<Result<_>>()?,
            format: args
                .notify_format
                .or(profile.notify_format)
                .unwrap_or_default(),
            backoff: args.notify_backoff.unwrap_or(Duration::from_secs(1)),
        })
    }
}

/// What a check found: the alarms firing, and the first delivery that failed (the others
/// are logged).
#[derive(Debug)]
pub(crate) struct Checked {
    pub firing: Vec<Alarm>,
    pub undelivered: Option<Error>,
}

impl Checked {
    /// Exit 4 when a delivery failed, else 1 when an alarm fires, else 0.
    pub(crate) fn outcome(self) -> Result<Outcome> {
        match self.undelivered {
            Some(error) => Err(error),
            None if self.firing.is_empty() => Ok(Outcome::Success),
            None => Ok(Outcome::Alarm),
        }
    }
}

/// One check with state: under the pull lock (within `wait`), evaluate, record the state in
/// one transaction, deliver what each webhook has not been told, and record each delivery.
pub(crate) async fn check(
    db: &Path,
    plan: &Plan,
    now: i64,
    wait: Option<Duration>,
) -> Result<Checked> {
    store::require_existing(db)?;
    let _lock = PullLock::acquire(db, wait).await?;
    let mut store = Store::open(db)?;
    let alarms = alerts::evaluate(&store, &plan.rules, now)?;
    let digests: Vec<String> = plan.webhooks.iter().map(Webhook::digest).collect();
    let recorded = store.record_alarms(&alarms, now, &digests)?;
    let account = store.account()?.map(|(user_id, _)| user_id);
    let http = if plan.webhooks.is_empty() {
        None
    } else {
        Some(notify::client()?)
    };
    let mut undelivered = None;
    for ((hook, digest), pending) in plan.webhooks.iter().zip(&digests).zip(&recorded.pending) {
        if pending.is_empty() {
            continue;
        }
        let news = News {
            database: db,
            account,
            checked_at: now,
            firing: &recorded.firing,
            pending,
        };
        let body = notify::body(plan.format, &news);
        let http = http.as_ref().expect("built when there are webhooks");
        match notify::deliver(http, hook, &body, plan.backoff).await {
            Ok(()) => store.mark_delivered(digest, pending)?,
            Err(error) if undelivered.is_none() => undelivered = Some(error),
            Err(error) => tracing::error!("{error}"),
        }
    }
    Ok(Checked {
        firing: recorded.firing,
        undelivered,
    })
}

/// `--no-state`: evaluate on a read-only database; nothing is written or sent.
fn evaluate_only(db: &Path, plan: &Plan, now: i64) -> Result<Vec<Alarm>> {
    let store = Store::open_read_only(db)?;
    // Every rule reads the same syncs, whatever a pull commits meanwhile.
    store.begin_snapshot()?;
    alerts::evaluate(&store, &plan.rules, now)
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<Outcome> {
    let db = settings.db()?;
    let now = settings.now();
    let plan = Plan::resolve(settings, &args.alerts)?;
    if args.no_state && !plan.webhooks.is_empty() {
        tracing::info!("--no-state: the profile's notify webhooks are sent nothing");
    }
    let checked = if args.no_state {
        Checked {
            firing: evaluate_only(db, &plan, now)?,
            undelivered: None,
        }
    } else {
        crate::cmd::runtime()?.block_on(check(db, &plan, now, args.wait))?
    };
    if !settings.quiet {
        print_alarms(args.format.row_format(), &checked.firing)?;
    }
    checked.outcome()
}

/// The firing alarms as rows: numbers exact for machines, readable for people. On a narrow
/// terminal the message wraps and is never hidden; `since`, then the numbers, then the name
/// give way first.
pub(crate) fn print_alarms(how: RowFormat, alarms: &[Alarm]) -> Result<()> {
    let for_people = how.format.is_for_people();
    let rows = alarms.iter().map(|alarm| Ok(row(alarm, for_people)));
    let columns: Vec<Column> = COLUMNS
        .iter()
        .map(|name| {
            let column = Column::new(name, ColumnKind::Plain);
            match *name {
                "rule" | "subject" => column.whole(1),
                "name" => column.cut(2, NAME_WIDTH),
                "value" | "threshold" => column.whole(3),
                "since" => column.whole(4),
                _ => column,
            }
        })
        .collect();
    print_columns(how, &columns, rows)
}
