//! The settings of the rules: what kind of value each takes, how a flag's text and a
//! profile's TOML value read as one, and the rules in force once the flags, the profile and
//! the defaults are layered (the flag wins).

use std::collections::BTreeSet;
use std::num::NonZeroU64;

use serde::{Deserialize, Deserializer};

use crate::alerts::rules::{Evaluate, SETTINGS};
use crate::error::{Error, Result};
use crate::facts::key::EXPOSURES;
use crate::time::parse_positive_duration;

/// What a setting's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A duration: `"7d"`, `"2h"`.
    Duration,
    /// US dollars, 0 or more: `1.0`, `50`.
    Usd,
    /// A factor above 0: `5`.
    Times,
    /// On or off: `true`, `false`.
    Switch,
    /// Names of the `unrestricted` report's exposures: `["unlimited-quota", "any-ip"]`.
    Exposures,
    /// Key ids and name globs: `[1234, "ci-*"]`.
    Keys,
}

/// The unit of a rule's `value` and `threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Seconds,
    Usd,
    /// The rule measures no number.
    None,
}

/// One setting of `[profiles.NAME.alerts]` and its flag (the name with dashes): a rule, or a
/// value that tunes rules (`spike_min_usd`, `ignore`).
#[derive(Debug)]
pub(crate) struct Setting {
    /// As the profile writes it.
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// As the profile would write it; none: off until set.
    pub(crate) default: Option<&'static str>,
    /// The flag's `--help`.
    pub(crate) help: &'static str,
    /// The unit of its alarms' `value` and `threshold`.
    pub(crate) unit: Unit,
    /// The rule; none for a setting that only tunes rules.
    pub(crate) evaluate: Option<Evaluate>,
}

/// A setting's value, once read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Threshold {
    Seconds(i64),
    Usd(f64),
    Times(f64),
    On,
    Exposures(Vec<&'static str>),
    Keys(KeyFilter),
}

/// Key ids and name globs (`ignore`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KeyFilter {
    ids: BTreeSet<i64>,
    names: Vec<glob::Pattern>,
}

impl KeyFilter {
    /// Whether the key `id` named `name` is one of these.
    pub(crate) fn matches(&self, id: i64, name: Option<&str>) -> bool {
        self.ids.contains(&id)
            || name.is_some_and(|name| self.names.iter().any(|glob| glob.matches(name)))
    }
}

/// The words that turn a setting off, in a flag or the profile.
const OFF: [&str; 2] = ["off", "false"];

impl Kind {
    /// The flag's value name.
    pub(crate) fn value_name(self) -> &'static str {
        match self {
            Kind::Duration => "DURATION|off",
            Kind::Usd => "USD|off",
            Kind::Times => "N|off",
            Kind::Switch => "true|false",
            Kind::Exposures => "EXPOSURE,...",
            Kind::Keys => "ID|GLOB,...",
        }
    }

    /// Whether the flag takes a list (repeated, or comma-separated).
    pub(crate) fn is_list(self) -> bool {
        matches!(self, Kind::Exposures | Kind::Keys)
    }

    /// A flag's text (a list comma-separated); none when it turns the setting off.
    pub(crate) fn parse_text(self, text: &str) -> Result<Option<Threshold>, String> {
        let text = text.trim();
        if OFF.contains(&text.to_ascii_lowercase().as_str()) {
            return Ok(None);
        }
        match self {
            Kind::Duration => {
                let duration = parse_positive_duration(text)?;
                Ok(Some(Threshold::Seconds(
                    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
                )))
            }
            Kind::Usd => parse_number(text, 0.0, "US dollars, 0 or more, such as 1.0")
                .map(|usd| Some(Threshold::Usd(usd))),
            Kind::Times => parse_number(text, f64::MIN_POSITIVE, "a factor above 0, such as 5")
                .map(|times| Some(Threshold::Times(times))),
            Kind::Switch => match text.to_ascii_lowercase().as_str() {
                "true" | "on" => Ok(Some(Threshold::On)),
                _ => Err(format!("expected true or false, got {text:?}")),
            },
            Kind::Exposures => parse_exposures(&items(text)).map(Some),
            Kind::Keys => parse_keys(&items(text)).map(Some),
        }
    }

    /// A profile's TOML value; none when it turns the setting off.
    fn parse_toml(self, value: &toml::Value) -> Result<Option<Threshold>, String> {
        use toml::Value as V;
        match (self, value) {
            (_, V::Boolean(false)) => Ok(None),
            (Kind::Switch, V::Boolean(true)) => Ok(Some(Threshold::On)),
            (Kind::Usd | Kind::Times, V::Integer(n)) => self.parse_text(&n.to_string()),
            (Kind::Usd | Kind::Times, V::Float(n)) => self.parse_text(&n.to_string()),
            (Kind::Exposures | Kind::Keys, V::Array(values)) => {
                let texts = values
                    .iter()
                    .map(|value| match value {
                        V::String(text) => Ok(text.clone()),
                        V::Integer(id) if self == Kind::Keys => Ok(id.to_string()),
                        other => Err(format!("expected text, got {}", a_type(other))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                match self {
                    Kind::Exposures => parse_exposures(&texts).map(Some),
                    _ => parse_keys(&texts).map(Some),
                }
            }
            (_, V::String(text)) => self.parse_text(text),
            (_, other) => Err(format!(
                "expected {} (a duration or list in quotes), or false to turn it off, got {}",
                self.value_name(),
                a_type(other)
            )),
        }
    }
}

/// `an integer`, `a table`: what a TOML value is, for messages.
fn a_type(value: &toml::Value) -> String {
    let kind = value.type_str();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

fn items(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect()
}

fn parse_number(text: &str, least: f64, expected: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= least)
        .ok_or_else(|| format!("expected {expected}, got {text:?}"))
}

fn parse_exposures(texts: &[String]) -> Result<Threshold, String> {
    let mut exposures = Vec::new();
    for text in texts {
        let known = EXPOSURES.iter().find(|e| **e == text.as_str());
        let exposure = known.ok_or_else(|| {
            format!(
                "unknown exposure {text:?}: expected some of {}",
                EXPOSURES.join(", ")
            )
        })?;
        exposures.push(*exposure);
    }
    if exposures.is_empty() {
        return Err(format!(
            "name at least one exposure of {}",
            EXPOSURES.join(", ")
        ));
    }
    Ok(Threshold::Exposures(exposures))
}

fn parse_keys(texts: &[String]) -> Result<Threshold, String> {
    let mut filter = KeyFilter::default();
    for text in texts {
        match text.parse::<i64>() {
            Ok(id) => {
                filter.ids.insert(id);
            }
            Err(_) => filter.names.push(
                glob::Pattern::new(text)
                    .map_err(|e| format!("{text:?} is not a name glob: {e}"))?,
            ),
        }
    }
    Ok(Threshold::Keys(filter))
}

/// What `[profiles.NAME.alerts]` sets, checked when the config file is read: each known
/// setting and its value (none: turned off).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProfileAlerts {
    set: Vec<(&'static Setting, Option<Threshold>)>,
}

impl<'de> Deserialize<'de> for ProfileAlerts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(deserializer)?;
        let mut set = Vec::new();
        for (name, value) in &table {
            let setting = setting(name).ok_or_else(|| {
                let known: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
                serde::de::Error::custom(format!(
                    "unknown alert setting `{name}`, expected one of {}",
                    known.join(", ")
                ))
            })?;
            let threshold = setting
                .kind
                .parse_toml(value)
                .map_err(|e| serde::de::Error::custom(format!("alerts.{name}: {e}")))?;
            set.push((setting, threshold));
        }
        Ok(ProfileAlerts { set })
    }
}

fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// The rules in force and the settings that tune them, and the price the user set (for the
/// rules in dollars; none: the prices the gateway published).
#[derive(Clone, Debug, Default)]
pub(crate) struct Rules {
    set: Vec<(&'static Setting, Threshold)>,
    pub(crate) price_setting: Option<NonZeroU64>,
}

impl Rules {
    /// The rules of the profile alone (no flags): what `metrics` and `html` evaluate.
    pub(crate) fn from_profile(
        profile: &ProfileAlerts,
        price_setting: Option<NonZeroU64>,
    ) -> Rules {
        Rules::resolve(profile, price_setting, &[])
            .expect("a profile's settings were checked when it was read")
    }

    /// Each setting from its flag (`flags`: the setting's name and the flag's text), else the
    /// profile, else its default.
    pub(crate) fn resolve(
        profile: &ProfileAlerts,
        price_setting: Option<NonZeroU64>,
        flags: &[(&str, String)],
    ) -> Result<Rules> {
        let mut set = Vec::new();
        for setting in SETTINGS {
            let flag = flags.iter().find(|(name, _)| *name == setting.name);
            let from_profile = profile.set.iter().find(|(s, _)| s.name == setting.name);
            let threshold = match (flag, from_profile) {
                (Some((_, text)), _) => setting.kind.parse_text(text).map_err(|e| {
                    Error::Usage(format!("--{}: {e}", setting.name.replace('_', "-")))
                })?,
                (None, Some((_, threshold))) => threshold.clone(),
                (None, None) => setting.default.map(|text| {
                    setting
                        .kind
                        .parse_text(text)
                        .expect("defaults parse")
                        .expect("defaults are on")
                }),
            };
            if let Some(threshold) = threshold {
                set.push((setting, threshold));
            }
        }
        Ok(Rules { set, price_setting })
    }

    /// The settings in force, in definition order.
    pub(crate) fn active(&self) -> impl Iterator<Item = &(&'static Setting, Threshold)> {
        self.set.iter()
    }

    /// The names of the rules in force that raise alarms (`ignore` and `spike_min_usd` tune
    /// others), in the order `check` evaluates them.
    pub(crate) fn evaluated(&self) -> impl Iterator<Item = &'static str> {
        self.set
            .iter()
            .filter(|(setting, _)| setting.evaluate.is_some())
            .map(|(setting, _)| setting.name)
    }

    /// The value of the setting `name`, when it is on.
    pub(crate) fn get(&self, name: &str) -> Option<&Threshold> {
        self.set
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, threshold)| threshold)
    }
}

/// The unit of the rule named `rule`.
pub(crate) fn unit_of(rule: &str) -> Unit {
    setting(rule).map_or(Unit::None, |s| s.unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Result<ProfileAlerts, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn the_flag_wins_over_the_profile_which_wins_over_the_default() {
        let set = profile("stale = \"2h\"\nexpiring = false\nlow_quota_usd = 5\n").unwrap();
        let rules = Rules::resolve(&set, None, &[("low_quota_usd", "2.5".into())]).unwrap();
        assert_eq!(rules.get("stale"), Some(&Threshold::Seconds(7200)));
        assert_eq!(rules.get("expiring"), None);
        assert_eq!(rules.get("low_quota_usd"), Some(&Threshold::Usd(2.5)));
        assert_eq!(rules.get("last_pull_failed"), Some(&Threshold::On));
        assert_eq!(rules.get("spike_min_usd"), Some(&Threshold::Usd(1.0)));
        assert_eq!(rules.get("spike"), None);
        let defaults = Rules::from_profile(&ProfileAlerts::default(), None);
        assert_eq!(
            defaults.get("expiring"),
            Some(&Threshold::Seconds(7 * 86_400))
        );
        let off = Rules::resolve(&set, None, &[("last_pull_failed", "false".into())]).unwrap();
        assert_eq!(off.get("last_pull_failed"), None);
    }

    #[test]
    fn lists_take_ids_globs_and_known_exposures_only() {
        let set = profile("ignore = [1234, \"ci-*\"]\nunrestricted = [\"any-ip\"]\n").unwrap();
        let rules = Rules::from_profile(&set, None);
        let Some(Threshold::Keys(ignore)) = rules.get("ignore") else {
            panic!("ignore is set")
        };
        assert!(ignore.matches(1234, None));
        assert!(ignore.matches(7, Some("ci-nightly")));
        assert!(!ignore.matches(7, Some("prod-ci-x")));
        let wrong = profile("unrestricted = [\"any-modle\"]\n")
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("unknown exposure \"any-modle\""), "{wrong}");
        let unknown = profile("expirng = \"7d\"\n").unwrap_err().to_string();
        assert!(
            unknown.contains("unknown alert setting `expirng`"),
            "{unknown}"
        );
        let bad = Rules::resolve(&ProfileAlerts::default(), None, &[("stale", "soon".into())]);
        assert!(bad.unwrap_err().to_string().starts_with("--stale: "));
    }
}
