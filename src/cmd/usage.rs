//! `keysync usage`: what each key used in a window, in quota and in US dollars, as totals per
//! key or per day, week or month.
//!
//! The attribution rule lives in one place, `store::usage`; this module only sums its
//! per-interval uses into rows. `usd` is `used / quota_per_unit` rounded to 6 decimals and
//! `share` a percentage rounded to 2, both REAL. The `table` format adds what only people read:
//! a `trend` sparkline of each key's daily use and a totals row; every other format carries
//! exactly the columns, so scripts and invoices see stable data.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveDate};
use rusqlite::types::Value;

use crate::cmd::FormatArgs;
use crate::config::{Settings, parse_quota_per_unit};
use crate::error::{Error, Result};
use crate::output::{Format, print_rows};
use crate::store::Store;
use crate::store::usage::KeyUse;
use crate::time::{parse_duration, parse_time, readable_time};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start of the window (exclusive): a duration ago (30d) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", default_value = "30d", value_parser = parse_when)]
    pub since: When,
    /// End of the window (inclusive): a duration ago or an RFC 3339 time [default: now]
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<When>,
    /// One row per period and key instead of one per key
    #[arg(long, value_enum, value_name = "PERIOD")]
    pub every: Option<Period>,
    /// Keep only the first N rows (without --every)
    #[arg(long, value_name = "N", conflicts_with = "every")]
    pub top: Option<usize>,
    /// Quota units per US dollar [default: the profile's quota_per_unit, else 500000]
    #[arg(long, value_name = "N", value_parser = parse_quota_per_unit)]
    pub quota_per_unit: Option<NonZeroU64>,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// A point in time as the user named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Ago(Duration),
    At(i64),
}

impl When {
    fn at(self, now: i64) -> i64 {
        match self {
            When::At(time) => time,
            When::Ago(ago) => now.saturating_sub(i64::try_from(ago.as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

/// `30d` (a duration ago) or `2025-12-19T00:00:00Z` / unix seconds.
fn parse_when(text: &str) -> std::result::Result<When, String> {
    match parse_duration(text) {
        Ok(ago) => Ok(When::Ago(ago)),
        Err(_) => parse_time(text).map(When::At).map_err(|_| {
            format!(
                "expected a duration ago (such as 30d) or an RFC 3339 time (such as \
                 2025-12-19T00:00:00Z), got {text:?}"
            )
        }),
    }
}

/// The periods `--every` groups use by; each is named by its first day (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    Day,
    /// Weeks start on Monday.
    Week,
    Month,
}

impl Period {
    /// The first day of the period holding unix time `at`.
    fn start(self, at: i64) -> NaiveDate {
        let day = utc_day(at);
        match self {
            Period::Day => day,
            Period::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Period::Month => day.with_day(1).expect("every month has a first day"),
        }
    }
}

fn utc_day(at: i64) -> NaiveDate {
    DateTime::from_timestamp(at, 0)
        .expect("times come from the database as checked unix seconds")
        .date_naive()
}

pub fn run(settings: &Settings, args: Args) -> Result<()> {
    let now = settings.now();
    let since = args.since.at(now);
    let until = args.until.map_or(now, |until| until.at(now));
    if since >= until {
        return Err(Error::Usage(format!(
            "--since ({}) is not before --until ({}): give a window that starts before it ends",
            readable_time(since),
            readable_time(until)
        )));
    }
    let uses = Store::open_read_only(settings.db()?)?.usage(since, until)?;
    let money = Money(settings.quota_per_unit);
    let format = args.format.row_format();
    match args.every {
        Some(period) => {
            let columns = ["period", "id", "name", "used", "usd"].map(String::from);
            let rows = per_period(&uses, period, money);
            print_rows(format, &columns, rows.into_iter().map(Ok))
        }
        None => {
            let window = Window::new(since, until);
            let for_people = args.format.format == Format::Table;
            let mut columns = ["id", "name", "used", "usd", "share"]
                .map(String::from)
                .to_vec();
            if for_people {
                columns.push("trend".to_string());
            }
            let rows = per_key(&uses, money, args.top, for_people.then_some(&window));
            print_rows(format, &columns, rows.into_iter().map(Ok))
        }
    }
}

/// Quota units per US dollar.
#[derive(Clone, Copy, Debug)]
struct Money(NonZeroU64);

impl Money {
    fn usd(self, used: i64) -> Value {
        Value::Real(round(used as f64 / self.0.get() as f64, 6))
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// One key's total over the window.
struct KeyTotal {
    id: i64,
    name: Option<String>,
    used: i64,
}

/// One row per key with use, largest first (then by id); `top` keeps the first rows. With a
/// window (the `table` format), each row gains its trend and a totals row ends the table.
fn per_key(
    uses: &[KeyUse],
    money: Money,
    top: Option<usize>,
    window: Option<&Window>,
) -> Vec<Vec<Value>> {
    let mut totals: BTreeMap<i64, KeyTotal> = BTreeMap::new();
    for u in uses {
        totals
            .entry(u.key_id)
            .or_insert_with(|| KeyTotal {
                id: u.key_id,
                name: u.name.clone(),
                used: 0,
            })
            .used += u.used;
    }
    let total: i64 = totals.values().map(|k| k.used).sum();
    let mut keys: Vec<KeyTotal> = totals.into_values().filter(|k| k.used > 0).collect();
    keys.sort_by(|a, b| b.used.cmp(&a.used).then(a.id.cmp(&b.id)));
    keys.truncate(top.unwrap_or(usize::MAX));
    let share = |used: i64| match total {
        0 => Value::Null,
        _ => Value::Real(round(used as f64 * 100.0 / total as f64, 2)),
    };
    let mut by_key: HashMap<i64, Vec<&KeyUse>> = HashMap::new();
    for u in uses {
        by_key.entry(u.key_id).or_default().push(u);
    }
    let mut rows: Vec<Vec<Value>> = keys
        .iter()
        .map(|k| {
            let mut row = vec![
                Value::Integer(k.id),
                k.name.clone().map_or(Value::Null, Value::Text),
                Value::Integer(k.used),
                money.usd(k.used),
                share(k.used),
            ];
            if let Some(window) = window {
                let mine = by_key.get(&k.id).into_iter().flatten().copied();
                row.push(Value::Text(window.sparkline(mine)));
            }
            row
        })
        .collect();
    if let Some(window) = window {
        rows.push(vec![
            Value::Null,
            Value::Text("total".to_string()),
            Value::Integer(total),
            money.usd(total),
            share(total),
            Value::Text(window.sparkline(uses.iter())),
        ]);
    }
    rows
}

/// One row per period and key with use: by period, then use (largest first), then id.
fn per_period(uses: &[KeyUse], period: Period, money: Money) -> Vec<Vec<Value>> {
    let mut totals: HashMap<(NaiveDate, i64), (Option<String>, i64)> = HashMap::new();
    for u in uses {
        let entry = totals
            .entry((period.start(u.day), u.key_id))
            .or_insert_with(|| (u.name.clone(), 0));
        entry.1 += u.used;
    }
    let mut rows: Vec<_> = totals
        .into_iter()
        .filter(|(_, (_, used))| *used > 0)
        .collect();
    rows.sort_by(|((pa, ia), (_, ua)), ((pb, ib), (_, ub))| {
        pa.cmp(pb).then(ub.cmp(ua)).then(ia.cmp(ib))
    });
    rows.into_iter()
        .map(|((start, id), (name, used))| {
            vec![
                Value::Text(start.format("%Y-%m-%d").to_string()),
                Value::Integer(id),
                name.map_or(Value::Null, Value::Text),
                Value::Integer(used),
                money.usd(used),
            ]
        })
        .collect()
}

/// The UTC days of a window `(since, until]`, for trends.
struct Window {
    first_day: NaiveDate,
    days: usize,
}

impl Window {
    fn new(since: i64, until: i64) -> Window {
        let first_day = utc_day(since + 1);
        let days = (utc_day(until) - first_day).num_days() + 1;
        Window {
            first_day,
            days: usize::try_from(days).unwrap_or(1),
        }
    }

    /// One character per day: `▁` for none, then `▂`..`█` scaled to the busiest day, so a
    /// day with any use never looks like a day without.
    fn sparkline<'a>(&self, uses: impl Iterator<Item = &'a KeyUse>) -> String {
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let mut daily = vec![0i64; self.days];
        for u in uses {
            let day = (utc_day(u.day) - self.first_day).num_days();
            if let Some(slot) = usize::try_from(day).ok().and_then(|d| daily.get_mut(d)) {
                *slot += u.used;
            }
        }
        let busiest = daily.iter().copied().max().unwrap_or(0);
        daily
            .iter()
            .map(|&used| match used {
                0 => BARS[0],
                _ => {
                    BARS[1 + usize::try_from((used - 1) * 7 / busiest)
                        .unwrap_or(6)
                        .min(6)]
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2025-12-15, a Monday.
    const MONDAY: i64 = 1_765_756_800;

    fn use_of(at: i64, key_id: i64, used: i64) -> KeyUse {
        KeyUse {
            day: at,
            key_id,
            name: Some(format!("k{key_id}")),
            used,
        }
    }

    #[test]
    fn periods_start_on_their_first_utc_day_and_weeks_on_monday() {
        let sunday_night = MONDAY + 6 * DAY + DAY - 1;
        assert_eq!(Period::Day.start(sunday_night).to_string(), "2025-12-21");
        assert_eq!(Period::Week.start(sunday_night).to_string(), "2025-12-15");
        assert_eq!(Period::Week.start(MONDAY).to_string(), "2025-12-15");
        assert_eq!(Period::Month.start(sunday_night).to_string(), "2025-12-01");
    }

    #[test]
    fn whens_are_durations_ago_or_times() {
        assert_eq!(
            parse_when("30d"),
            Ok(When::Ago(Duration::from_secs(30 * DAY as u64)))
        );
        assert_eq!(parse_when("2025-12-15T00:00:00Z"), Ok(When::At(MONDAY)));
        assert!(parse_when("last week").unwrap_err().contains("RFC 3339"));
        assert_eq!(When::Ago(Duration::from_secs(60)).at(1000), 940);
    }

    #[test]
    fn sparklines_scale_to_the_busiest_day_and_keep_idle_days_lowest() {
        let window = Window::new(MONDAY, MONDAY + 4 * DAY);
        // (Monday 00:00, Friday 00:00] touches five UTC days.
        assert_eq!(window.days, 5);
        let uses = [
            use_of(MONDAY + DAY, 1, 1),
            use_of(MONDAY + 3 * DAY, 1, 80),
            use_of(MONDAY + 4 * DAY, 1, 40),
        ];
        assert_eq!(window.sparkline(uses.iter()), "▁▂▁█▅");
    }

    #[test]
    fn money_rounds_to_six_decimals_and_shares_to_two() {
        let money = Money(NonZeroU64::new(3).unwrap());
        assert_eq!(money.usd(1), Value::Real(0.333333));
        let rows = per_key(
            &[use_of(MONDAY, 1, 1), use_of(MONDAY, 2, 2)],
            money,
            None,
            None,
        );
        assert_eq!(rows[0][4], Value::Real(66.67));
        assert_eq!(rows[1][4], Value::Real(33.33));
    }
}
