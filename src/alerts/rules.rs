//! The rules, each one definition: its name (the profile's key, and with dashes the flag of
//! `check` and `pull --check`), the kind of its setting and its default, and its evaluation
//! against the facts. Adding a rule is one entry in [`SETTINGS`] and its function here, plus
//! a test of data built for it and of data just outside it.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::alerts::settings::{Kind, Rules, Setting, Threshold, Unit};
use crate::error::Result;
use crate::facts::freshness;
use crate::facts::key::LiveKey;
use crate::facts::spend::{Spend, key_totals, price_in_force, round, use_in_window};
use crate::output::dollars_for_people;
use crate::store::Store;
use crate::store::alarms::Alarm;
use crate::terminal::counted;
use crate::time::{readable_age, readable_time};

/// How a rule is evaluated: the alarms its threshold raises on the facts.
pub(crate) type Evaluate = fn(&Facts<'_>, &Threshold) -> Result<Vec<Alarm>>;

const DAY: i64 = 86_400;

/// Every setting of `[profiles.NAME.alerts]`, in the order alarms are listed.
pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        name: "expiring",
        kind: Kind::Duration,
        default: Some("7d"),
        help: "Alarm: an enabled key expires within this long (a key already expired is not \
               expiring)",
        unit: Unit::Seconds,
        evaluate: Some(expiring),
    },
    Setting {
        name: "low_quota_usd",
        kind: Kind::Usd,
        default: Some("1.0"),
        help: "Alarm: an enabled key with a quota limit has less than this many US dollars \
               left at the price in force (an exhausted one too)",
        unit: Unit::Usd,
        evaluate: Some(low_quota_usd),
    },
    Setting {
        name: "last_pull_failed",
        kind: Kind::Switch,
        default: Some("true"),
        help: "Alarm: the latest pull failed",
        unit: Unit::None,
        evaluate: Some(last_pull_failed),
    },
    Setting {
        name: "stale",
        kind: Kind::Duration,
        default: None,
        help: "Alarm: the latest good sync started more than this long ago",
        unit: Unit::Seconds,
        evaluate: Some(stale),
    },
    Setting {
        name: "daily_spend_usd",
        kind: Kind::Usd,
        default: None,
        help: "Alarm: the account's use recorded by good syncs that started in the last 24 h \
               is above this many US dollars",
        unit: Unit::Usd,
        evaluate: Some(daily_spend_usd),
    },
    Setting {
        name: "spike",
        kind: Kind::Times,
        default: None,
        help: "Alarm: a key's use in the last 24 h is more than N times its median daily use \
               over the 14 days before, and above --spike-min-usd",
        unit: Unit::Usd,
        evaluate: Some(spike),
    },
    Setting {
        name: "spike_min_usd",
        kind: Kind::Usd,
        default: Some("1.0"),
        help: "The least use in US dollars in the last 24 h that --spike alarms about",
        unit: Unit::Usd,
        evaluate: None,
    },
    Setting {
        name: "unrestricted",
        kind: Kind::Exposures,
        default: None,
        help: "Alarm: an enabled key has every one of these exposures (unlimited-quota, any-ip, \
               any-model, never-expires: the `unrestricted` report's)",
        unit: Unit::None,
        evaluate: Some(unrestricted),
    },
    Setting {
        name: "ignore",
        kind: Kind::Keys,
        default: None,
        help: "Key ids or name globs (e.g. 1234,ci-*) that no key rule reports",
        unit: Unit::None,
        evaluate: None,
    },
];

/// What the rules read, read once: the store at `now`, the settings that tune the rules, and
/// the live keys.
pub(crate) struct Facts<'a> {
    pub(crate) store: &'a Store,
    pub(crate) rules: &'a Rules,
    pub(crate) now: i64,
    keys: OnceCell<Vec<LiveKey>>,
}

impl<'a> Facts<'a> {
    pub(crate) fn new(store: &'a Store, rules: &'a Rules, now: i64) -> Facts<'a> {
        Facts {
            store,
            rules,
            now,
            keys: OnceCell::new(),
        }
    }

    /// The live keys no `ignore` names.
    fn keys(&self) -> Result<impl Iterator<Item = &LiveKey>> {
        if self.keys.get().is_none() {
            let _ = self.keys.set(self.store.live_keys()?);
        }
        let keys = self.keys.get().expect("set just above");
        Ok(keys
            .iter()
            .filter(|k| !self.ignored(k.state.id, k.name.as_deref())))
    }

    fn ignored(&self, id: i64, name: Option<&str>) -> bool {
        matches!(self.rules.get("ignore"), Some(Threshold::Keys(keys)) if keys.matches(id, name))
    }

    /// Each key's spend in `(since, until]`, by id, with its name.
    fn spend_by_key(
        &self,
        since: i64,
        until: i64,
    ) -> Result<BTreeMap<i64, (Option<String>, Spend)>> {
        let uses = use_in_window(self.store, (since, until), self.rules.price_setting)?;
        Ok(key_totals(&uses)?
            .into_iter()
            .map(|total| (total.id, (total.name, total.spend)))
            .collect())
    }
}

/// A key's alarm.
fn key_alarm(
    rule: &str,
    (id, name): (i64, Option<&str>),
    numbers: [Option<f64>; 2],
    message: String,
) -> Alarm {
    Alarm {
        rule: rule.to_string(),
        subject: id.to_string(),
        name: name.map(String::from),
        value: numbers[0],
        threshold: numbers[1],
        message,
        since: None,
        resolved_at: None,
    }
}

/// The account's alarm.
fn account_alarm(rule: &str, numbers: [Option<f64>; 2], message: String) -> Alarm {
    Alarm {
        rule: rule.to_string(),
        subject: "account".to_string(),
        name: None,
        value: numbers[0],
        threshold: numbers[1],
        message,
        since: None,
        resolved_at: None,
    }
}

/// `key 12 "ci-bot"`.
fn key_named(id: i64, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("key {id} {name:?}"),
        None => format!("key {id}"),
    }
}

fn seconds(threshold: &Threshold) -> i64 {
    match threshold {
        Threshold::Seconds(s) => *s,
        _ => unreachable!("a duration rule has a duration"),
    }
}

fn number(threshold: &Threshold) -> f64 {
    match threshold {
        Threshold::Usd(n) | Threshold::Times(n) => *n,
        _ => unreachable!("a numeric rule has a number"),
    }
}

fn expiring(facts: &Facts<'_>, threshold: &Threshold) -> Result<Vec<Alarm>> {
    let within = seconds(threshold);
    Ok(facts
        .keys()?
        .filter(|k| k.state.expires_within(facts.now, within))
        .filter_map(|k| {
            let at = k.state.expired_time?;
            let left = at - facts.now;
            let message = format!(
                "{} expires at {}, in {}",
                key_named(k.state.id, k.name.as_deref()),
                readable_time(at),
                readable_age(left)
            );
            let numbers = [Some(left as f64), Some(within as f64)];
            Some(key_alarm(
                "expiring",
                (k.state.id, k.name.as_deref()),
                numbers,
                message,
            ))
        })
        .collect())
}

fn low_quota_usd(facts: &Facts<'_>, threshold: &Threshold) -> Result<Vec<Alarm>> {
    let usd = number(threshold);
    let price = price_in_force(facts.store, facts.rules.price_setting)?.quota_per_unit;
    // Quota is whole units: less than `usd` dollars is less than the units it buys, rounded up.
    let below = (usd * price.get() as f64).ceil().min(i64::MAX as f64) as i64;
    Ok(facts
        .keys()?
        .filter(|k| k.state.is_low_on_quota(below))
        .filter_map(|k| {
            let left = k.state.quota_left_usd(price)?;
            let message = format!(
                "{} has {} of quota left ({}), less than {}",
                key_named(k.state.id, k.name.as_deref()),
                dollars_for_people(left),
                counted(
                    crate::output::thousands(&k.state.quota_left()?.to_string()),
                    "unit"
                ),
                dollars_for_people(usd)
            );
            let numbers = [Some(left), Some(usd)];
            Some(key_alarm(
                "low_quota_usd",
                (k.state.id, k.name.as_deref()),
                numbers,
                message,
            ))
        })
        .collect())
}

fn last_pull_failed(facts: &Facts<'_>, _: &Threshold) -> Result<Vec<Alarm>> {
    let finished = facts.store.last_finished_sync()?;
    Ok(freshness::last_pull_failed(finished.as_ref())
        .map(|message| account_alarm("last_pull_failed", [None, None], message))
        .into_iter()
        .collect())
}

fn stale(facts: &Facts<'_>, threshold: &Threshold) -> Result<Vec<Alarm>> {
    let limit = seconds(threshold);
    let good = facts.store.last_good_sync()?;
    let max_age = Duration::from_secs(limit.unsigned_abs());
    let Some(message) = freshness::staleness(good.as_ref(), (max_age, "stale"), facts.now) else {
        return Ok(Vec::new());
    };
    let age = good.map(|g| (facts.now - g.started_at) as f64);
    Ok(vec![account_alarm(
        "stale",
        [age, Some(limit as f64)],
        message,
    )])
}

fn daily_spend_usd(facts: &Facts<'_>, threshold: &Threshold) -> Result<Vec<Alarm>> {
    let usd = number(threshold);
    let window = (facts.now - DAY, facts.now);
    let uses = use_in_window(facts.store, window, facts.rules.price_setting)?;
    // Dollars as the exact formats carry them (6 decimals): no float noise in a value.
    let spent = round(Spend::of(&uses)?.dollars(), 6);
    if spent <= usd {
        return Ok(Vec::new());
    }
    let message = format!(
        "the account used {} in the last 24 h, more than {}",
        dollars_for_people(spent),
        dollars_for_people(usd)
    );
    Ok(vec![account_alarm(
        "daily_spend_usd",
        [Some(spent), Some(usd)],
        message,
    )])
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n % 2 == 0 => (values[middle - 1] + values[middle]) / 2.0,
        _ => values[middle],
    }
}

fn spike(facts: &Facts<'_>, threshold: &Threshold) -> Result<Vec<Alarm>> {
    let times = number(threshold);
    let least = match facts.rules.get("spike_min_usd") {
        Some(Threshold::Usd(usd)) => *usd,
        _ => 0.0,
    };
    let last_day: Vec<(i64, Option<String>, f64)> = facts
        .spend_by_key(facts.now - DAY, facts.now)?
        .into_iter()
        .map(|(id, (name, spend))| (id, name, round(spend.dollars(), 6)))
        .filter(|(id, name, usd)| *usd > least && !facts.ignored(*id, name.as_deref()))
        .collect();
    if last_day.is_empty() {
        return Ok(Vec::new());
    }
    // The 14 days before, each 24 h long and ending where the next begins.
    let days = (1..=14)
        .map(|d| facts.spend_by_key(facts.now - (d + 1) * DAY, facts.now - d * DAY))
        .collect::<Result<Vec<_>>>()?;
    let mut alarms = Vec::new();
    for (id, name, usd) in last_day {
        let daily = days
            .iter()
            .map(|day| {
                day.get(&id)
                    .map_or(0.0, |(_, spend)| round(spend.dollars(), 6))
            })
            .collect();
        let usual = median(daily);
        let limit = (times * usual).max(least);
        if usd > limit {
            let message = format!(
                "{} used {} in the last 24 h, more than {times} times its median daily {} \
                 over the 14 days before",
                key_named(id, name.as_deref()),
                dollars_for_people(usd),
                dollars_for_people(usual)
            );
            let numbers = [Some(usd), Some(limit)];
            alarms.push(key_alarm("spike", (id, name.as_deref()), numbers, message));
        }
    }
    Ok(alarms)
}

fn unrestricted(facts: &Facts<'_>, threshold: &Threshold) -> Result<Vec<Alarm>> {
    let Threshold::Exposures(wanted) = threshold else {
        unreachable!("unrestricted lists exposures")
    };
    Ok(facts
        .keys()?
        .filter_map(|k| {
            let exposures = k.exposures();
            if !wanted.iter().all(|w| exposures.contains(w)) {
                return None;
            }
            let message = format!(
                "{} is unrestricted: {}",
                key_named(k.state.id, k.name.as_deref()),
                exposures.join(", ")
            );
            Some(key_alarm(
                "unrestricted",
                (k.state.id, k.name.as_deref()),
                [None, None],
                message,
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![0.0; 14]), 0.0);
    }

    #[test]
    fn every_rule_has_a_unique_name_and_its_default_reads() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        for setting in SETTINGS {
            if let Some(default) = setting.default {
                assert!(
                    setting.kind.parse_text(default).unwrap().is_some(),
                    "{}",
                    setting.name
                );
            }
        }
    }
}
