//! What keys consumed, computed from the per-day uses `store::usage` reads: totals per key with
//! dollars and shares, rows per day, week or month, and each key's daily series over a window.
//! `keysync usage` prints these and `keysync html` draws them, so both show the same numbers.
//!
//! Quota is summed exactly, as integers, for each price apart ([`Spend`]), and converted only
//! at the edge: `usd` is the sum of `used / quota_per_unit` over the prices in force, rounded
//! to 6 decimals, and `share` a percentage rounded to 2, both REAL, as the README's "Usage and
//! dollars" states. Use is signed (a refund is negative use); a sum that leaves 64-bit
//! integers is an error, never a wrapped or floating number.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;

use chrono::{DateTime, Datelike, Days, NaiveDate};
use rusqlite::types::Value;

use crate::error::Result;
use crate::output::{Column, ColumnKind};
use crate::store::usage::{KeyUse, too_much_quota};

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

/// Quota used, summed exactly for each price in force apart: what one key, day or window
/// cost, converted to dollars only when shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spend {
    /// Quota units per price (quota units per US dollar), and their sum.
    by_price: BTreeMap<NonZeroU64, i64>,
    used: i64,
}

impl Spend {
    /// Adds one use, or fails when a sum leaves 64-bit integers.
    pub fn add(&mut self, u: &KeyUse) -> Result<()> {
        let at_price = self.by_price.entry(u.quota_per_unit).or_default();
        *at_price = at_price.checked_add(u.used).ok_or_else(too_much_quota)?;
        self.used = self.used.checked_add(u.used).ok_or_else(too_much_quota)?;
        Ok(())
    }

    /// The sum of `uses`.
    pub fn of<'a>(uses: impl IntoIterator<Item = &'a KeyUse>) -> Result<Spend> {
        let mut spend = Spend::default();
        for u in uses {
            spend.add(u)?;
        }
        Ok(spend)
    }

    /// The sum of several spends.
    pub fn total<'a>(spends: impl IntoIterator<Item = &'a Spend>) -> Result<Spend> {
        let mut total = Spend::default();
        for spend in spends {
            for (&price, &used) in &spend.by_price {
                let at_price = total.by_price.entry(price).or_default();
                *at_price = at_price.checked_add(used).ok_or_else(too_much_quota)?;
            }
            total.used = total
                .used
                .checked_add(spend.used)
                .ok_or_else(too_much_quota)?;
        }
        Ok(total)
    }

    /// Quota units, negative when refunds outweighed use.
    pub fn used(&self) -> i64 {
        self.used
    }

    /// US dollars, each price's quota converted at that price.
    pub fn dollars(&self) -> f64 {
        // Folded from +0.0: a float sum starts at -0.0, which prints as a negative zero.
        self.by_price
            .iter()
            .map(|(price, &used)| used as f64 / price.get() as f64)
            .fold(0.0, |sum, dollars| sum + dollars)
    }

    /// US dollars as the exact columns carry them: REAL, rounded to 6 decimals.
    pub fn usd(&self) -> Value {
        Value::Real(round(self.dollars(), 6))
    }
}

/// `value` rounded half away from zero; never a negative zero.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale + 0.0
}

/// One key's total over the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTotal {
    pub id: i64,
    pub name: Option<String>,
    pub spend: Spend,
}

/// Every key whose use in the window is not zero: largest first (then by id), so net refunds
/// come last.
pub fn key_totals(uses: &[KeyUse]) -> Result<Vec<KeyTotal>> {
    let mut totals: BTreeMap<i64, KeyTotal> = BTreeMap::new();
    for u in uses {
        totals
            .entry(u.key_id)
            .or_insert_with(|| KeyTotal {
                id: u.key_id,
                name: u.name.clone(),
                spend: Spend::default(),
            })
            .spend
            .add(u)?;
    }
    let mut keys: Vec<KeyTotal> = totals
        .into_values()
        .filter(|k| k.spend.used() != 0)
        .collect();
    keys.sort_by(|a, b| b.spend.used().cmp(&a.spend.used()).then(a.id.cmp(&b.id)));
    Ok(keys)
}

/// One row per key with use, largest first (then by id); `top` keeps the first rows. With a
/// window (the `table` format), each row gains its trend and a totals row ends the table.
pub fn per_key(
    uses: &[KeyUse],
    top: Option<usize>,
    window: Option<&Window>,
) -> Result<Vec<Vec<Value>>> {
    let mut keys = key_totals(uses)?;
    let total = Spend::of(uses)?;
    keys.truncate(top.unwrap_or(usize::MAX));
    let share = |used: i64| match total.used() {
        0 => Value::Null,
        all => Value::Real(round(used as f64 * 100.0 / all as f64, 2)),
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
                Value::Integer(k.spend.used()),
                k.spend.usd(),
                share(k.spend.used()),
            ];
            if let Some(window) = window {
                let mine = by_key.get(&k.id).into_iter().flatten().copied();
                row.push(Value::Text(window.sparkline(mine)?));
            }
            Ok(row)
        })
        .collect::<Result<_>>()?;
    if let Some(window) = window {
        rows.push(vec![
            Value::Null,
            Value::Text("total".to_string()),
            Value::Integer(total.used()),
            total.usd(),
            share(total.used()),
            Value::Text(window.sparkline(uses.iter())?),
        ]);
    }
    Ok(rows)
}

/// One row per period and key whose use there is not zero: by period, then use (largest
/// first), then id.
pub fn per_period(uses: &[KeyUse], period: Period) -> Result<Vec<Vec<Value>>> {
    let mut totals: HashMap<(NaiveDate, i64), (Option<String>, Spend)> = HashMap::new();
    for u in uses {
        totals
            .entry((period.start(u.day), u.key_id))
            .or_insert_with(|| (u.name.clone(), Spend::default()))
            .1
            .add(u)?;
    }
    let mut rows: Vec<_> = totals
        .into_iter()
        .filter(|(_, (_, spend))| spend.used() != 0)
        .collect();
    rows.sort_by(|((pa, ia), (_, sa)), ((pb, ib), (_, sb))| {
        pa.cmp(pb).then(sb.used().cmp(&sa.used())).then(ia.cmp(ib))
    });
    Ok(rows
        .into_iter()
        .map(|((start, id), (name, spend))| {
            vec![
                Value::Text(start.format("%Y-%m-%d").to_string()),
                Value::Integer(id),
                name.map_or(Value::Null, Value::Text),
                Value::Integer(spend.used()),
                spend.usd(),
            ]
        })
        .collect())
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
    pub fn daily<'a>(&self, uses: impl Iterator<Item = &'a KeyUse>) -> Result<Vec<Spend>> {
        let mut daily = vec![Spend::default(); self.days];
        for u in uses {
            let day = (utc_day(u.day) - self.first_day).num_days();
            if let Some(slot) = usize::try_from(day).ok().and_then(|d| daily.get_mut(d)) {
                slot.add(u)?;
            }
        }
        Ok(daily)
    }

    /// One character per day: `▁` for none (or a net refund), then `▂`..`█` scaled to the
    /// busiest day, so a day with any use never looks like a day without.
    pub fn sparkline<'a>(&self, uses: impl Iterator<Item = &'a KeyUse>) -> Result<String> {
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let daily: Vec<i128> = self
            .daily(uses)?
            .iter()
            .map(|day| i128::from(day.used()))
            .collect();
        let busiest = daily.iter().copied().max().unwrap_or(0);
        Ok(daily
            .iter()
            .map(|&used| match used {
                ..=0 => BARS[0],
                _ => BARS[1 + usize::try_from((used - 1) * 7 / busiest).map_or(6, |i| i.min(6))],
            })
            .collect())
    }
}

/// The columns of [`per_key`]'s rows (without the trend), and what people read in them.
pub(crate) fn per_key_columns() -> Vec<Column> {
    vec![
        Column::new("id", ColumnKind::Plain),
        Column::new("name", ColumnKind::Plain),
        Column::new("used", ColumnKind::Quota),
        Column::new("usd", ColumnKind::Dollars),
        Column::new("share", ColumnKind::Share),
    ]
}

/// The columns of [`per_period`]'s rows.
pub(crate) fn per_period_columns() -> Vec<Column> {
    vec![
        Column::new("period", ColumnKind::Plain),
        Column::new("id", ColumnKind::Plain),
        Column::new("name", ColumnKind::Plain),
        Column::new("used", ColumnKind::Quota),
        Column::new("usd", ColumnKind::Dollars),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2025-12-15, a Monday.
    const MONDAY: i64 = 1_765_756_800;

    fn use_of(at: i64, key_id: i64, used: i64) -> KeyUse {
        priced(at, key_id, used, 3)
    }

    fn priced(at: i64, key_id: i64, used: i64, quota_per_unit: u64) -> KeyUse {
        KeyUse {
            day: at,
            key_id,
            name: Some(format!("k{key_id}")),
            used,
            quota_per_unit: NonZeroU64::new(quota_per_unit).unwrap(),
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
        assert_eq!(window.sparkline(uses.iter()).unwrap(), "▁▂▁█▅");
        // A day of net refund draws as a day without use.
        let refund = [use_of(MONDAY + DAY, 1, 8), use_of(MONDAY + 2 * DAY, 1, -3)];
        assert_eq!(window.sparkline(refund.iter()).unwrap(), "▁█▁▁▁");
    }

    #[test]
    fn money_rounds_to_six_decimals_and_shares_to_two() {
        assert_eq!(
            Spend::of(&[use_of(MONDAY, 1, 1)]).unwrap().usd(),
            Value::Real(0.333333)
        );
        let rows = per_key(&[use_of(MONDAY, 1, 1), use_of(MONDAY, 2, 2)], None, None).unwrap();
        assert_eq!(rows[0][4], Value::Real(66.67));
        assert_eq!(rows[1][4], Value::Real(33.33));
    }

    #[test]
    fn each_price_converts_its_own_quota_and_refunds_are_negative_rows_listed_last() {
        // Key 1: 1,000,000 at 500,000 a dollar, then 1,000,000 at 250,000: $2 + $4.
        // Key 2: 30 used, then 40 refunded: a net refund of 10.
        let uses = [
            priced(MONDAY, 1, 1_000_000, 500_000),
            priced(MONDAY, 2, 30, 500_000),
            priced(MONDAY + DAY, 1, 1_000_000, 250_000),
            priced(MONDAY + DAY, 2, -40, 250_000),
        ];
        let rows = per_key(&uses, None, None).unwrap();
        assert_eq!(
            rows[0][..4],
            [
                Value::Integer(1),
                Value::Text("k1".into()),
                Value::Integer(2_000_000),
                Value::Real(6.0)
            ]
        );
        assert_eq!(
            rows[1][..4],
            [
                Value::Integer(2),
                Value::Text("k2".into()),
                Value::Integer(-10),
                Value::Real(-0.0001)
            ]
        );
        let days = per_period(&uses, Period::Day).unwrap();
        assert_eq!(days.len(), 4);
        assert_eq!(days[3][3..], [Value::Integer(-40), Value::Real(-0.00016)]);
    }

    #[test]
    fn a_sum_past_64_bits_is_an_error_not_a_wrapped_number() {
        let uses = [use_of(MONDAY, 1, i64::MAX), use_of(MONDAY, 2, 1)];
        let error = per_key(&uses, None, None).unwrap_err().to_string();
        assert!(error.contains("9,223,372,036,854,775,807"), "{error}");
        assert!(!error.contains("SELECT"), "{error}");
    }
}
