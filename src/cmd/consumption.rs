//! What keys consumed, computed from the per-day uses `store::usage` reads: totals per key with
//! dollars and shares, rows per day, week or month, and each key's daily series over a window.
//! `keysync usage` prints these and `keysync html` draws them, so both show the same numbers.
//!
//! `usd` is `used / quota_per_unit` rounded to 6 decimals and `share` a percentage rounded to
//! 2, both REAL, as the README's "Usage and dollars" states.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;

use chrono::{DateTime, Datelike, Days, NaiveDate};
use rusqlite::types::Value;

use crate::store::usage::KeyUse;

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
    pub fn start(self, at: i64) -> NaiveDate {
        let day = utc_day(at);
        match self {
            Period::Day => day,
            Period::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Period::Month => day.with_day(1).expect("every month has a first day"),
        }
    }
}

/// The UTC day holding unix time `at`.
pub fn utc_day(at: i64) -> NaiveDate {
    DateTime::from_timestamp(at, 0)
        .expect("times come from the database as checked unix seconds")
        .date_naive()
}

/// Quota units per US dollar.
#[derive(Clone, Copy, Debug)]
pub struct Money(pub NonZeroU64);

impl Money {
    pub fn usd(self, used: i64) -> Value {
        Value::Real(round(used as f64 / self.0.get() as f64, 6))
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// One key's total over the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTotal {
    pub id: i64,
    pub name: Option<String>,
    pub used: i64,
}

/// Every key that used anything, largest first (then by id).
pub fn key_totals(uses: &[KeyUse]) -> Vec<KeyTotal> {
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
    let mut keys: Vec<KeyTotal> = totals.into_values().filter(|k| k.used > 0).collect();
    keys.sort_by(|a, b| b.used.cmp(&a.used).then(a.id.cmp(&b.id)));
    keys
}

/// One row per key with use, largest first (then by id); `top` keeps the first rows. With a
/// window (the `table` format), each row gains its trend and a totals row ends the table.
pub fn per_key(
    uses: &[KeyUse],
    money: Money,
    top: Option<usize>,
    window: Option<&Window>,
) -> Vec<Vec<Value>> {
    let mut keys = key_totals(uses);
    let total: i64 = uses.iter().map(|u| u.used).sum();
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
pub fn per_period(uses: &[KeyUse], period: Period, money: Money) -> Vec<Vec<Value>> {
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
pub struct Window {
    first_day: NaiveDate,
    days: usize,
}

impl Window {
    pub fn new(since: i64, until: i64) -> Window {
        let first_day = utc_day(since + 1);
        let days = (utc_day(until) - first_day).num_days() + 1;
        Window {
            first_day,
            days: usize::try_from(days).unwrap_or(1),
        }
    }

    /// The window's UTC days, first to last.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        (0..self.days).map(|i| self.first_day + Days::new(i as u64))
    }

    /// The use of `uses` on each day of the window, one slot per day; uses outside it are left
    /// out.
    pub fn daily<'a>(&self, uses: impl Iterator<Item = &'a KeyUse>) -> Vec<i64> {
        let mut daily = vec![0i64; self.days];
        for u in uses {
            let day = (utc_day(u.day) - self.first_day).num_days();
            if let Some(slot) = usize::try_from(day).ok().and_then(|d| daily.get_mut(d)) {
                *slot += u.used;
            }
        }
        daily
    }

    /// One character per day: `▁` for none, then `▂`..`█` scaled to the busiest day, so a
    /// day with any use never looks like a day without.
    pub fn sparkline<'a>(&self, uses: impl Iterator<Item = &'a KeyUse>) -> String {
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let daily = self.daily(uses);
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
