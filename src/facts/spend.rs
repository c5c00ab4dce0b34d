//! What the keys spent: quota use summed exactly, as integers, for each price in force apart
//! ([`Spend`]), per key and per UTC day of a window, and converted to US dollars only at the
//! edge. Use is signed (a refund is negative use); a sum that leaves 64-bit integers is an
//! error, never a wrapped or floating number. `usage` prints these facts and `html` draws them.

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use chrono::{DateTime, Datelike, Days, NaiveDate};
use rusqlite::types::Value;

use crate::error::Result;
use crate::store::Store;
use crate::store::price::Price;
pub(crate) use crate::store::usage::KeyUse;
use crate::store::usage::too_much_quota;

/// Each key's use per UTC day and price in `(since, until]`, each interval at the price in
/// force at its later sync, or at `price_setting` (the user's) when given.
pub(crate) fn use_in_window(
    store: &Store,
    (since, until): (i64, i64),
    price_setting: Option<NonZeroU64>,
) -> Result<Vec<KeyUse>> {
    let prices = store.price_book(price_setting)?;
    store.usage(since, until, &prices)
}

/// The price in force at the latest good sync, and where it came from.
pub(crate) fn price_in_force(store: &Store, price_setting: Option<NonZeroU64>) -> Result<Price> {
    let latest = store.last_good_sync()?.map_or(0, |sync| sync.id);
    Ok(store.price_book(price_setting)?.at(latest))
}

/// The periods `--every` groups use by; each is named by its first day (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Period {
    Day,
    /// Weeks start on Monday.
    Week,
    Month,
}

impl Period {
    /// The first day of the period holding unix time `at`.
    pub(crate) fn start(self, at: i64) -> NaiveDate {
        let day = utc_day(at);
        match self {
            Period::Day => day,
            Period::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Period::Month => day.with_day(1).expect("every month has a first day"),
        }
    }
}

/// The UTC day holding unix time `at`.
pub(crate) fn utc_day(at: i64) -> NaiveDate {
    DateTime::from_timestamp(at, 0)
        .expect("times come from the database as checked unix seconds")
        .date_naive()
}

/// Quota used, summed exactly for each price in force apart: what one key, day or window
/// cost, converted to dollars only when shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Spend {
    /// Quota units per price (quota units per US dollar), and their sum.
    by_price: BTreeMap<NonZeroU64, i64>,
    used: i64,
}

impl Spend {
    /// Adds one use, or fails when a sum leaves 64-bit integers.
    pub(crate) fn add(&mut self, u: &KeyUse) -> Result<()> {
        self.add_at(u.quota_per_unit, u.used)
    }

    /// Adds `used` quota units at `price`: the one checked sum of every spend.
    fn add_at(&mut self, price: NonZeroU64, used: i64) -> Result<()> {
        let at_price = self.by_price.entry(price).or_default();
        *at_price = at_price.checked_add(used).ok_or_else(too_much_quota)?;
        self.used = self.used.checked_add(used).ok_or_else(too_much_quota)?;
        Ok(())
    }

    /// The sum of `uses`.
    pub(crate) fn of<'a>(uses: impl IntoIterator<Item = &'a KeyUse>) -> Result<Spend> {
        let mut spend = Spend::default();
        for u in uses {
            spend.add(u)?;
        }
        Ok(spend)
    }

    /// The sum of several spends.
    pub(crate) fn total<'a>(spends: impl IntoIterator<Item = &'a Spend>) -> Result<Spend> {
        let mut total = Spend::default();
        for spend in spends {
            for (&price, &used) in &spend.by_price {
                total.add_at(price, used)?;
            }
        }
        Ok(total)
    }

    /// Quota units, negative when refunds outweighed use.
    pub(crate) fn used(&self) -> i64 {
        self.used
    }

    /// US dollars, each price's quota converted at that price.
    pub(crate) fn dollars(&self) -> f64 {
        // Folded from +0.0: a float sum starts at -0.0, which prints as a negative zero.
        self.by_price
            .iter()
            .map(|(price, &used)| used as f64 / price.get() as f64)
            .fold(0.0, |sum, dollars| sum + dollars)
    }

    /// US dollars as the exact columns carry them: REAL, rounded to 6 decimals.
    pub(crate) fn usd(&self) -> Value {
        Value::Real(round(self.dollars(), 6))
    }
}

/// `value` rounded half away from zero; never a negative zero.
pub(crate) fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale + 0.0
}

/// One key's total over the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyTotal {
    pub id: i64,
    pub name: Option<String>,
    pub spend: Spend,
}

/// Every key whose use in the window is not zero: largest first (then by id), so net refunds
/// come last.
pub(crate) fn key_totals(uses: &[KeyUse]) -> Result<Vec<KeyTotal>> {
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

/// The UTC days of a window `(since, until]`, for trends.
pub(crate) struct Window {
    first_day: NaiveDate,
    days: usize,
}

impl Window {
    pub(crate) fn new(since: i64, until: i64) -> Window {
        let first_day = utc_day(since + 1);
        let days = (utc_day(until) - first_day).num_days() + 1;
        Window {
            first_day,
            days: usize::try_from(days).unwrap_or(1),
        }
    }

    /// The window's UTC days, first to last.
    pub(crate) fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        (0..self.days).map(|i| self.first_day + Days::new(i as u64))
    }

    /// The use of `uses` on each day of the window, one slot per day; uses outside it are left
    /// out.
    pub(crate) fn daily<'a>(&self, uses: impl Iterator<Item = &'a KeyUse>) -> Result<Vec<Spend>> {
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
    pub(crate) fn sparkline<'a>(&self, uses: impl Iterator<Item = &'a KeyUse>) -> Result<String> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const DAY: i64 = 86_400;
    /// 2025-12-15, a Monday.
    pub(crate) const MONDAY: i64 = 1_765_756_800;

    pub(crate) fn use_of(at: i64, key_id: i64, used: i64) -> KeyUse {
        priced(at, key_id, used, 3)
    }

    pub(crate) fn priced(at: i64, key_id: i64, used: i64, quota_per_unit: u64) -> KeyUse {
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
    fn a_sum_past_64_bits_is_an_error_not_a_wrapped_number() {
        let uses = [use_of(MONDAY, 1, i64::MAX), use_of(MONDAY, 2, 1)];
        let error = Spend::of(&uses).unwrap_err().to_string();
        assert!(error.contains("9,223,372,036,854,775,807"), "{error}");
        assert!(!error.contains("SELECT"), "{error}");
    }
}
