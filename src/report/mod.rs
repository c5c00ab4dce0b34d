//! Preset reports: named questions about the keys, each answered by one plain SQL file here.
//!
//! The SQL files are the reports. keysync only picks a file, binds its parameters (`:within`,
//! `:since`, `:limit`, `:for`, `:below`, in seconds or plain numbers) and runs it through the
//! same read-only path and output formats as ad-hoc SQL, so users can read a report, copy it, or
//! run it themselves: `keysync query --report idle --show-sql` prints it ready for
//! `keysync query --file idle.sql --param for=2592000`. Every report skips
//! removed keys, reads "now" from the `clock` view (which `--now` pins), and starts with the
//! columns `id` and `name`.

use std::time::Duration;

use clap::{Args, ValueEnum};
use rusqlite::types::Value;

use crate::error::{Error, Result};
use crate::store::query::SqlParam;
use crate::time::{
    When, parse_duration, parse_positive_duration, parse_when, readable_time, rfc3339_time,
};

/// The flags that tune `--report`; each report takes some of them (see --list-reports). Their
/// pairing with `--report` is checked by `report`: clap's `requires` is void here because
/// `--report` is in the exclusive SQL-source group.
#[derive(Clone, Copy, Debug, Default, Args)]
pub(crate) struct ReportArgs {
    /// expiring-soon, forecast: how far ahead to look [default: 7d]
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub within: Option<Duration>,
    /// top-consumers: rank by quota used since then, from the history [default: all time];
    /// forecast: measure the rate of use since then [default: 7d]. A duration ago (7d), a date
    /// (2026-11-01, 00:00:00Z UTC), today, yesterday, or an RFC 3339 time; binds :since as the
    /// seconds from it to now
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<When>,
    /// top-consumers: how many keys [default: 10]
    #[arg(long, value_name = "N", value_parser = parse_limit)]
    pub limit: Option<u32>,
    /// idle: unused for at least this long [default: 30d]
    #[arg(
        long = "for",
        value_name = "DURATION",
        value_parser = parse_positive_duration
    )]
    pub idle_for: Option<Duration>,
    /// low-quota: remain_quota below N quota units [default: 500000, $1 at the gateway's
    /// default rate]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub below: Option<i64>,
}

/// `--since`: a time before now. A zero duration is refused here, as every window's is; a time
/// is checked against now once it is known ([`seconds_back`]).
fn parse_since(text: &str) -> std::result::Result<When, String> {
    match parse_when(text)? {
        When::Ago(_) => parse_positive_duration(text).map(When::Ago),
        when => Ok(when),
    }
}

/// `--limit N`: how many keys, at least one.
fn parse_limit(text: &str) -> std::result::Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("0 keys would show nothing: give at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "expected a whole number of keys, at least 1, got {text:?}"
        )),
    }
}

/// The reports `--report` takes; the doc comments are their `--help` and `--list-reports` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Report {
    /// Enabled keys expiring within --within, soonest first, and those already expired
    ExpiringSoon,
    /// Live keys of any status by used_quota, or with --since by quota used in that window
    TopConsumers,
    /// Enabled keys unused for --for, and enabled keys never used, longest idle first
    Idle,
    /// Enabled limited keys with remain_quota below --below, exhausted first
    LowQuota,
    /// Enabled keys with unlimited quota, no IP allowlist, no model limits or no expiry
    Unrestricted,
    /// Enabled limited keys that run out of quota within --within at their --since rate
    Forecast,
}

/// A flag that tunes a report, and the SQL parameter it binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReportFlag {
    Within,
    Since,
    Limit,
    For,
    Below,
}

/// `--below`'s default: $1 at the gateway's default of 500000 quota units per US dollar.
pub(crate) const DEFAULT_BELOW: &str = "500000";
pub(crate) const DEFAULT_WITHIN: &str = "7d";
pub(crate) const DEFAULT_SINCE: &str = "7d";
pub(crate) const DEFAULT_LIMIT: &str = "10";
pub(crate) const DEFAULT_FOR: &str = "30d";

/// A report ready to run: its SQL and the parameters it binds.
#[derive(Debug)]
pub(crate) struct ReportQuery {
    pub sql: &'static str,
    pub params: Vec<SqlParam>,
}

impl ReportQuery {
    /// `--show-sql`: the report's SQL file under a header that says how to run it with the
    /// parameters these flags bind, e.g. `keysync query --file idle.sql --param for=7776000`,
    /// and with the `--now` that was given, which the report's views read.
    pub(crate) fn script(&self, report: Report, now: Option<i64>) -> String {
        let name = report.name();
        let now = now.map_or_else(String::new, |now| format!(" --now {}", rfc3339_time(now)));
        let params: String = self
            .params
            .iter()
            .map(|p| format!(" --param {}={}", p.name, sql_literal(&p.value)))
            .collect();
        format!(
            "-- keysync's {name} report. Save it to a file and run it with the values your\n\
             -- flags gave (durations bind as seconds):\n\
             --   keysync{now} query --file {name}.sql{params}\n\
             {}",
            self.sql
        )
    }
}

/// A bound value as `--param` takes it back: the reports bind only numbers.
fn sql_literal(value: &Value) -> String {
    match value {
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(text) => text.clone(),
        Value::Null | Value::Blob(_) => unreachable!("reports bind numbers, not {value:?}"),
    }
}

impl Report {
    /// The name `--report` takes, e.g. `expiring-soon`.
    pub(crate) fn name(self) -> String {
        self.value().get_name().to_string()
    }

    /// One line on what it shows.
    pub(crate) fn summary(self) -> String {
        self.value()
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
    }

    fn value(self) -> clap::builder::PossibleValue {
        self.to_possible_value().expect("every report has a name")
    }

    /// The flags this report takes, each with its default (`None`: off unless given).
    pub(crate) fn flags(self) -> &'static [(ReportFlag, Option<&'static str>)] {
        use ReportFlag::*;
        match self {
            Report::ExpiringSoon => &[(Within, Some(DEFAULT_WITHIN))],
            Report::TopConsumers => &[(Limit, Some(DEFAULT_LIMIT)), (Since, None)],
            Report::Idle => &[(For, Some(DEFAULT_FOR))],
            Report::LowQuota => &[(Below, Some(DEFAULT_BELOW))],
            Report::Unrestricted => &[],
            Report::Forecast => &[(Within, Some(DEFAULT_WITHIN)), (Since, Some(DEFAULT_SINCE))],
        }
    }

    /// `--within 7d, --since DURATION`: how --list-reports shows the flags.
    pub(crate) fn flags_text(self) -> String {
        let shown: Vec<String> = self
            .flags()
            .iter()
            .map(|(flag, default)| format!("{} {}", flag.name(), default.unwrap_or(flag.kind())))
            .collect();
        shown.join(", ")
    }

    /// The SQL and parameters for these flags, times seen from `now`. A flag the report does
    /// not take is a usage error rather than silently ignored.
    pub(crate) fn query(self, args: &ReportArgs, now: i64) -> Result<ReportQuery> {
        self.refuse_foreign_flags(args)?;
        let mut params = Vec::new();
        for (flag, default) in self.flags() {
            let value = match flag.bound(args, now)? {
                Some(value) => value,
                None => match default {
                    Some(default) => flag.parse(default),
                    None => continue,
                },
            };
            params.push(SqlParam {
                name: flag.param().to_string(),
                value,
            });
        }
        Ok(ReportQuery {
            sql: self.sql(args.since.is_some()),
            params,
        })
    }

    fn refuse_foreign_flags(self, args: &ReportArgs) -> Result<()> {
        let takes = |flag: ReportFlag| self.flags().iter().any(|(taken, _)| *taken == flag);
        let Some(foreign) = ReportFlag::ALL
            .into_iter()
            .find(|flag| flag.given(args) && !takes(*flag))
        else {
            return Ok(());
        };
        let taken = match self.flags_text() {
            text if text.is_empty() => "no flags".to_string(),
            text => text,
        };
        Err(Error::Usage(format!(
            "{} does not apply to the {} report; it takes: {taken}",
            foreign.name(),
            self.name()
        )))
    }

    fn sql(self, since: bool) -> &'static str {
        match self {
            Report::ExpiringSoon => include_str!("expiring-soon.sql"),
            Report::TopConsumers if since => include_str!("top-consumers-since.sql"),
            Report::TopConsumers => include_str!("top-consumers.sql"),
            Report::Idle => include_str!("idle.sql"),
            Report::LowQuota => include_str!("low-quota.sql"),
            Report::Unrestricted => include_str!("unrestricted.sql"),
            Report::Forecast => include_str!("forecast.sql"),
        }
    }
}

/// Refuses report flags given without `--report`, which would otherwise be ignored.
pub(crate) fn refuse_flags_without_report(args: &ReportArgs) -> Result<()> {
    match ReportFlag::ALL.iter().find(|flag| flag.given(args)) {
        Some(flag) => Err(Error::Usage(format!(
            "{} only tunes a preset report: add --report NAME (see --list-reports)",
            flag.name()
        ))),
        None => Ok(()),
    }
}

impl ReportFlag {
    const ALL: [ReportFlag; 5] = [
        ReportFlag::Within,
        ReportFlag::Since,
        ReportFlag::Limit,
        ReportFlag::For,
        ReportFlag::Below,
    ];

    /// The command-line flag.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReportFlag::Within => "--within",
            ReportFlag::Since => "--since",
            ReportFlag::Limit => "--limit",
            ReportFlag::For => "--for",
            ReportFlag::Below => "--below",
        }
    }

    /// The SQL parameter, without its `:`.
    pub(crate) fn param(self) -> &'static str {
        self.name().trim_start_matches('-')
    }

    /// What kind of value it takes, for flags without a default.
    fn kind(self) -> &'static str {
        match self {
            ReportFlag::Within | ReportFlag::For => "DURATION",
            ReportFlag::Since => "WHEN",
            ReportFlag::Limit | ReportFlag::Below => "N",
        }
    }

    /// Whether the flag was given.
    fn given(self, args: &ReportArgs) -> bool {
        match self {
            ReportFlag::Within => args.within.is_some(),
            ReportFlag::Since => args.since.is_some(),
            ReportFlag::For => args.idle_for.is_some(),
            ReportFlag::Limit => args.limit.is_some(),
            ReportFlag::Below => args.below.is_some(),
        }
    }

    /// The flag's value as its SQL parameter binds it, when it was given.
    fn bound(self, args: &ReportArgs, now: i64) -> Result<Option<Value>> {
        Ok(match self {
            ReportFlag::Within => args.within.map(seconds),
            ReportFlag::Since => args
                .since
                .map(|since| seconds_back(since, now))
                .transpose()?,
            ReportFlag::For => args.idle_for.map(seconds),
            ReportFlag::Limit => args.limit.map(|n| Value::Integer(i64::from(n))),
            ReportFlag::Below => args.below.map(Value::Integer),
        })
    }

    /// A default, parsed the way the command line parses the flag.
    fn parse(self, text: &str) -> Value {
        let parsed = match self {
            ReportFlag::Within | ReportFlag::Since | ReportFlag::For => {
                parse_duration(text).map(seconds)
            }
            ReportFlag::Limit | ReportFlag::Below => text
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|e| e.to_string()),
        };
        parsed.unwrap_or_else(|e| panic!("the default {text:?} of {} is bad: {e}", self.name()))
    }
}

/// Durations bind as whole seconds, the unit of every time in the database.
fn seconds(duration: Duration) -> Value {
    Value::Integer(duration.as_secs() as i64)
}

/// `--since` binds the seconds from it to `now`, which the reports' SQL counts back from the
/// `clock` view: a time must be before now, or the window would be empty or reversed.
fn seconds_back(since: When, now: i64) -> Result<Value> {
    let at = since.at(now);
    if at >= now {
        return Err(Error::Usage(format!(
            "--since {} is not before now ({}): give a time in the past, such as 7d, \
             yesterday or 2025-12-01",
            readable_time(at),
            readable_time(now)
        )));
    }
    Ok(Value::Integer(now.saturating_sub(at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, query};

    /// An empty database opened as `query` opens it.
    fn empty_store(dir: &tempfile::TempDir) -> Store {
        let path = dir.path().join("k.db");
        Store::open(&path).unwrap();
        Store::open_for_query(&path, 1_766_102_400).unwrap()
    }

    fn args() -> ReportArgs {
        ReportArgs::default()
    }

    /// Every parameter a report's SQL uses is bound, and nothing else: `query::bind` insists.
    fn prepares_and_binds(report: Report, args: &ReportArgs) {
        let dir = tempfile::tempdir().unwrap();
        let store = empty_store(&dir);
        let run = report.query(args, NOW).unwrap();
        let mut statement = store
            .prepare(run.sql)
            .unwrap_or_else(|e| panic!("{} does not prepare: {e}", report.name()));
        query::bind(&mut statement, &run.params)
            .unwrap_or_else(|e| panic!("{} does not bind: {e}", report.name()));
        let columns = query::column_names(&statement);
        assert_eq!(columns[..2], ["id", "name"], "{}", report.name());
        assert_eq!(query::rows(&mut statement).count(), 0);
    }

    #[test]
    fn every_report_prepares_binds_and_starts_with_id_and_name() {
        for report in Report::value_variants() {
            prepares_and_binds(*report, &args());
        }
        let since = ReportArgs {
            since: Some(When::Ago(Duration::from_secs(3600))),
            ..args()
        };
        prepares_and_binds(Report::TopConsumers, &since);
    }

    /// Reports read the history (10^6 versions and more) by primary-key seeks per key, never
    /// by a pass over `key_versions` (aliased `v`, `x` or `y` in the report files).
    #[test]
    fn no_report_scans_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = empty_store(&dir);
        let conn = store.conn();
        let since = ReportArgs {
            since: Some(When::Ago(Duration::from_secs(3600))),
            ..args()
        };
        let runs = Report::value_variants()
            .iter()
            .map(|report| (report, report.query(&args(), NOW).unwrap()))
            .chain([(
                &Report::TopConsumers,
                Report::TopConsumers.query(&since, NOW).unwrap(),
            )]);
        for (report, run) in runs {
            let mut statement = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", run.sql))
                .unwrap();
            query::bind(&mut statement, &run.params).unwrap();
            let plan: Vec<String> = statement
                .raw_query()
                .mapped(|row| row.get::<_, String>(3))
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let scans_history = |step: &String| {
                ["SCAN key_versions", "SCAN v", "SCAN x", "SCAN y"]
                    .iter()
                    .any(|scan| step == scan || step.starts_with(&format!("{scan} ")))
            };
            assert!(
                !plan.iter().any(scans_history),
                "{}: {plan:#?}",
                report.name()
            );
        }
    }

    #[test]
    fn defaults_bind_as_seconds_and_given_flags_win() {
        let run = Report::Forecast
            .query(
                &ReportArgs {
                    since: Some(When::Ago(Duration::from_secs(60))),
                    ..args()
                },
                NOW,
            )
            .unwrap();
        let bound: Vec<(String, Value)> =
            run.params.into_iter().map(|p| (p.name, p.value)).collect();
        assert_eq!(
            bound,
            [
                ("within".to_string(), Value::Integer(604_800)),
                ("since".to_string(), Value::Integer(60)),
            ]
        );
        let below = Report::LowQuota.query(&args(), NOW).unwrap().params;
        assert_eq!(below[0].value, Value::Integer(500_000));
    }

    #[test]
    fn since_binds_the_seconds_from_a_time_to_now() {
        let since = |text: &str| ReportArgs {
            since: Some(parse_since(text).unwrap()),
            ..args()
        };
        let bound = |text: &str| {
            let run = Report::TopConsumers
                .query(&since(text), NOW + 3600)
                .unwrap();
            run.params
                .into_iter()
                .find(|p| p.name == "since")
                .unwrap()
                .value
        };
        // NOW is 2025-12-19T00:00:00Z; now is an hour later.
        assert_eq!(bound("2025-12-01"), Value::Integer(18 * DAY + 3600));
        assert_eq!(bound("today"), Value::Integer(3600));
        assert_eq!(bound("yesterday"), Value::Integer(DAY + 3600));
        assert_eq!(bound("2025-12-18T23:00:00Z"), Value::Integer(7200));
        assert_eq!(bound("2d"), Value::Integer(2 * DAY));
        let error = Report::TopConsumers
            .query(&since("2025-12-20"), NOW + 3600)
            .unwrap_err();
        assert_eq!(error.code(), crate::error::exit::USAGE);
        assert_eq!(
            error.to_string(),
            "--since 2025-12-20 00:00:00Z is not before now (2025-12-19 01:00:00Z): give a \
             time in the past, such as 7d, yesterday or 2025-12-01"
        );
        // `today` at 00:00:00Z is now itself: an empty window.
        assert!(Report::Forecast.query(&since("today"), NOW).is_err());
        assert!(parse_since("0s").unwrap_err().contains("is zero"));
    }

    #[test]
    fn a_flag_the_report_does_not_take_is_refused() {
        let error = Report::Idle
            .query(
                &ReportArgs {
                    limit: Some(3),
                    ..args()
                },
                NOW,
            )
            .unwrap_err();
        assert_eq!(error.code(), crate::error::exit::USAGE);
        assert_eq!(
            error.to_string(),
            "--limit does not apply to the idle report; it takes: --for 30d"
        );
        let error = Report::Unrestricted
            .query(
                &ReportArgs {
                    below: Some(3),
                    ..args()
                },
                NOW,
            )
            .unwrap_err();
        assert!(error.to_string().ends_with("it takes: no flags"), "{error}");
    }

    /// The flags' `--help` states the defaults this module applies.
    #[test]
    fn the_help_states_the_defaults() {
        let query = ReportArgs::augment_args(clap::Command::new("query"));
        let help = |id: &str| {
            let arg = query.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_long_help().or(arg.get_help()).unwrap().to_string()
        };
        assert!(help("within").contains(&format!("[default: {DEFAULT_WITHIN}]")));
        assert!(help("since").contains(&format!("[default: {DEFAULT_SINCE}]")));
        assert!(help("limit").contains(&format!("[default: {DEFAULT_LIMIT}]")));
        assert!(help("idle_for").contains(&format!("[default: {DEFAULT_FOR}]")));
        assert!(help("below").contains(&format!("[default: {DEFAULT_BELOW},")));
    }

    #[test]
    fn the_script_names_the_parameters_the_flags_bind() {
        let flags = ReportArgs {
            idle_for: Some(Duration::from_secs(90 * 86_400)),
            ..args()
        };
        let script = Report::Idle
            .query(&flags, NOW)
            .unwrap()
            .script(Report::Idle, None);
        let header: Vec<&str> = script.lines().take(3).collect();
        assert_eq!(
            header,
            [
                "-- keysync's idle report. Save it to a file and run it with the values your",
                "-- flags gave (durations bind as seconds):",
                "--   keysync query --file idle.sql --param for=7776000",
            ]
        );
        assert!(script.ends_with(include_str!("idle.sql")));
        let none = Report::Unrestricted.query(&args(), NOW).unwrap();
        assert!(
            none.script(Report::Unrestricted, Some(1_766_102_400))
                .contains(
                    "\n--   keysync --now 2025-12-19T00:00:00Z query --file unrestricted.sql\n"
                )
        );
    }

    #[test]
    fn names_and_flags_read_as_the_list_shows_them() {
        let names: Vec<String> = Report::value_variants().iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "expiring-soon",
                "top-consumers",
                "idle",
                "low-quota",
                "unrestricted",
                "forecast"
            ]
        );
        assert_eq!(
            Report::TopConsumers.flags_text(),
            "--limit 10, --since WHEN"
        );
        assert_eq!(Report::Forecast.flags_text(), "--within 7d, --since 7d");
        assert!(
            Report::Idle
                .summary()
                .starts_with("Enabled keys unused for --for")
        );
    }

    const NOW: i64 = 1_766_102_400;
    const DAY: i64 = 86_400;

    /// A file as keysync wrote it at schema version 3. Syncs 1 to 5 started 10, 6, 5, 2 and 1
    /// days before [`NOW`]; sync 2 failed, sync 3 is partial. Key 1 ("a") uses 100 a day from
    /// sync 3 on and runs out in 4 days; key 2 ("b") is first seen at sync 4; key 3 ("c") was
    /// removed at sync 4; key 4 ("d") has unlimited quota.
    fn version_3_file(path: &std::path::Path) {
        use crate::store::sync_status::SyncStatus;
        let mut conn = rusqlite::Connection::open(path).unwrap();
        crate::store::migrate_to(&mut conn, Some(3));
        for (id, days_ago, status) in [
            (1, 10, SyncStatus::Ok),
            (2, 6, SyncStatus::Failed),
            (3, 5, SyncStatus::Partial),
            (4, 2, SyncStatus::Ok),
            (5, 1, SyncStatus::Ok),
        ] {
            conn.execute(
                "INSERT INTO syncs (id, started_at, finished_at, status, base_url)
                 VALUES (?1, ?2, ?2, ?3, 'x')",
                rusqlite::params![id, NOW - days_ago * DAY, status],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO keys (id, name, status, used_quota, remain_quota, unlimited_quota,
                               first_seen_sync, removed_sync) VALUES
                 (1, 'a', 1, 700, 400, 0, 1, NULL), (2, 'b', 1, 150, 9900, 0, 4, NULL),
                 (3, 'c', 1, 10, 5, 0, 1, 4), (4, 'd', 1, 1000, 0, 1, 1, NULL);
             INSERT INTO key_versions (key_id, valid_from_sync, valid_to_sync, used_quota,
                                       remain_quota) VALUES
                 (1, 1, 3, 100, 1000), (1, 3, 5, 300, 800), (1, 5, NULL, 700, 400),
                 (2, 4, 5, 50, 10000), (2, 5, NULL, 150, 9900),
                 (3, 1, 4, 10, 5), (4, 1, 5, 0, 0), (4, 5, NULL, 1000, 0);",
        )
        .unwrap();
    }

    /// Every report's rows, and top-consumers --since 7d's, as `keysync query` reads them.
    fn every_report(path: &std::path::Path) -> Vec<Vec<Vec<Value>>> {
        let store = Store::open_for_query(path, NOW).unwrap();
        let since = ReportArgs {
            since: Some(When::Ago(Duration::from_secs(7 * DAY as u64))),
            ..args()
        };
        let runs = Report::value_variants()
            .iter()
            .map(|report| report.query(&args(), NOW).unwrap())
            .chain([Report::TopConsumers.query(&since, NOW).unwrap()]);
        runs.map(|run| {
            let mut statement = store.prepare(run.sql).unwrap();
            query::bind(&mut statement, &run.params).unwrap();
            query::rows(&mut statement)
                .collect::<Result<Vec<_>>>()
                .unwrap()
        })
        .collect()
    }

    #[test]
    fn a_version_3_file_reports_the_same_before_and_after_its_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        version_3_file(&path);
        let before = every_report(&path);
        let (int, text, real) = (
            Value::Integer,
            |t: &str| Value::Text(t.to_string()),
            Value::Real,
        );
        // The window starts at sync 3, 5 days back: sync 2 (6 days back) failed.
        let forecast = &before[5];
        assert_eq!(
            *forecast,
            [vec![
                int(1),
                text("a"),
                int(400),
                real(100.0),
                real(4.0),
                text("2025-12-23T00:00:00Z")
            ]]
        );
        let since = &before[6];
        let row = |id, name: &str, used, per_day, quota, from, from_iso: &str| {
            vec![
                int(id),
                text(name),
                text("enabled"),
                int(used),
                real(per_day),
                int(quota),
                int(from),
                text(from_iso),
                int(5),
                text("2025-12-18T00:00:00Z"),
            ]
        };
        assert_eq!(
            *since,
            [
                row(4, "d", 1000, 250.0, 1000, 3, "2025-12-14T00:00:00Z"),
                row(1, "a", 400, 100.0, 700, 3, "2025-12-14T00:00:00Z"),
                row(2, "b", 100, 100.0, 150, 4, "2025-12-17T00:00:00Z"),
            ]
        );
        let schema = |path| {
            Store::open_read_only(path)
                .unwrap()
                .schema_version()
                .unwrap()
        };
        assert_eq!(schema(&path), 3, "reading does not migrate");
        drop(Store::open(&path).unwrap());
        assert_eq!(schema(&path), crate::store::known_schema_version());
        assert_eq!(every_report(&path), before);
    }
}
