//! The alert rules of `keysync check` (and `pull --check`): each rule is one definition in
//! [`rules`] (its name, the kind of its setting and its default, its evaluation against
//! `facts`); [`settings`] layers flags over `[profiles.NAME.alerts]` over the defaults into
//! [`Rules`]; [`evaluate`] compares the facts with the rules and writes nothing; [`notify`]
//! delivers what changed to webhooks. The alarm state (firing since, resolved, delivered) is
//! the store's (`store::alarms`).

pub(crate) mod notify;
pub(crate) mod rules;
pub(crate) mod settings;

pub(crate) use crate::store::alarms::Alarm;
pub(crate) use settings::{ProfileAlerts, Rules, Unit, unit_of};

use rusqlite::types::Value;

use crate::error::Result;
use crate::output::dollars_for_people;
use crate::store::Store;
use crate::time::{readable_age, rfc3339_time};

/// The alarms `rules` raise on the database at `now`, in the order of the rules' definitions
/// (then by subject, as each rule lists them); reads only. Their `since` is none: that is
/// the alarm state's, which [`Store::record_alarms`] keeps.
pub(crate) fn evaluate(store: &Store, rules: &Rules, now: i64) -> Result<Vec<Alarm>> {
    let facts = rules::Facts::new(store, rules, now);
    let mut alarms = Vec::new();
    for (setting, threshold) in rules.active() {
        if let Some(evaluate) = setting.evaluate {
            alarms.extend(evaluate(&facts, threshold)?);
        }
    }
    Ok(alarms)
}

/// The columns of `check`'s rows, and of the alarms a webhook is sent.
pub(crate) const COLUMNS: [&str; 7] = [
    "rule",
    "subject",
    "name",
    "value",
    "threshold",
    "since",
    "message",
];

/// An alarm as a row of [`COLUMNS`]: for people, its numbers readable in its rule's unit; for
/// machines (and webhooks), whole numbers as integers, others as they are.
pub(crate) fn row(alarm: &Alarm, for_people: bool) -> Vec<Value> {
    let unit = unit_of(&alarm.rule);
    let number = |n: Option<f64>| match n {
        None => Value::Null,
        Some(n) if for_people => Value::Text(readable(n, unit)),
        Some(n) if n.fract() == 0.0 && n.abs() < 9e15 => Value::Integer(n as i64),
        Some(n) => Value::Real(n),
    };
    vec![
        Value::Text(alarm.rule.clone()),
        Value::Text(alarm.subject.clone()),
        alarm.name.clone().map_or(Value::Null, Value::Text),
        number(alarm.value),
        number(alarm.threshold),
        alarm
            .since
            .map_or(Value::Null, |t| Value::Text(rfc3339_time(t))),
        Value::Text(alarm.message.clone()),
    ]
}

/// `6d 23h`, `$0.42`: a value in its unit, as people read it.
fn readable(n: f64, unit: Unit) -> String {
    match unit {
        Unit::Seconds => readable_age(n as i64),
        Unit::Usd => dollars_for_people(n),
        Unit::None => n.to_string(),
    }
}
