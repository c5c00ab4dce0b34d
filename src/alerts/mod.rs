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

use crate::error::Result;
use crate::store::Store;

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
