//! The database's current facts as Prometheus metrics, in the text exposition format 0.0.4
//! (what node_exporter's textfile collector and `/metrics` scrapers read): `keysync metrics`
//! prints or writes them, and `pull --metrics-file` / `--metrics-listen` after every pull.
//!
//! Every family is a gauge: `used_quota` goes down on refunds and prune removes sync rows, so
//! nothing here only ever grows. The facts come from where they are defined (`facts::key` for
//! what a key would do now and its quota left, `facts::spend` for the price in force, the
//! store's sync log for the latest sync); this module only names and prints them, all read in
//! one snapshot. Values are exact integers, never rounded through a float. Families with no
//! sample are left out whole.
//!
//! The text is written here rather than through a metrics crate: those hold values as `f64`
//! (a quota past 2^53 would be rounded) and registries meant for a running service's own
//! counters; the format's whole grammar for what keysync writes is `# HELP`, `# TYPE`, and
//! one escaped label value rule ([`label_value`]). Tests read it back with an independent
//! parser, `promtool check metrics` and node_exporter.

pub(crate) mod endpoint;
pub(crate) mod publish;

use std::fmt::Write;
use std::num::NonZeroU64;
use std::path::Path;

use crate::alerts::{Rules, evaluate};
use crate::cmd::out::Rule;
use crate::error::Result;
use crate::facts::key::{EffectiveStatus, count_by_status};
use crate::facts::spend::price_in_force;
use crate::store::Store;
use crate::store::status::{KeyFigures, SyncCost, SyncRow};
use crate::store::sync_status::SyncStatus;

/// The `Content-Type` of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Above this many live keys, `--per-key auto` leaves the per-key families out: CometAPI's
/// default cap of keys per account, and more series per scrape than a dashboard can use.
pub(crate) const PER_KEY_LIMIT: usize = 1000;

/// `--per-key`: whether the families with one series per key are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PerKey {
    /// Up to 1,000 live keys; above that, a `#` comment says they were left out
    #[default]
    Auto,
    /// However many keys there are
    Always,
    /// Never: only the account's families
    Never,
}

/// Where a metrics file may be written (`flag` names FILE in messages): over any regular file
/// but a database, mode 0644 so that node_exporter, usually another user, can read it. The
/// file holds key ids, names and quotas, never a secret.
pub(crate) fn file_rule(flag: &'static str) -> Rule {
    Rule {
        flag,
        writer: "keysync metrics",
        what: "metrics file",
        example: "keysync.prom",
        own_start: "# HELP keysync_",
        replaces_other_files: true,
        has_force: false,
        mode: 0o644,
    }
}

/// Everything the metrics show, read in one snapshot of the database.
#[derive(Debug)]
pub(crate) struct Facts {
    now: i64,
    keys: Vec<KeyFigures>,
    quota_per_unit: NonZeroU64,
    /// The latest sync that has ended, and what it cost.
    last: Option<(SyncRow, SyncCost)>,
    good: Option<SyncRow>,
    /// Each alert rule in force, and how many alarms it has firing.
    alerts: Vec<(&'static str, usize)>,
}

impl Facts {
    /// Reads the facts of the database at `db` at `now`; `price_setting` is the profile's or
    /// the flag's `quota_per_unit`, which wins over the gateway's, as in `status` and `usage`;
    /// `rules` are the alert rules in force, evaluated as `check --no-state` evaluates them.
    pub(crate) fn read(
        db: &Path,
        price_setting: Option<NonZeroU64>,
        rules: &Rules,
        now: i64,
    ) -> Result<Facts> {
        let store = Store::open_read_only(db)?;
        store.begin_snapshot()?;
        // A pull still running is judged by the one before it, as `status --max-age` judges.
        let last = match store.last_finished_sync()? {
            Some(sync) => store.sync_cost(sync.id)?.map(|cost| (sync, cost)),
            None => None,
        };
        let alarms = evaluate(&store, rules, now)?;
        let alerts = rules
            .evaluated()
            .map(|rule| (rule, alarms.iter().filter(|a| a.rule == rule).count()))
            .collect();
        Ok(Facts {
            now,
            keys: store.live_key_figures()?,
            quota_per_unit: price_in_force(&store, price_setting)?.quota_per_unit,
            last,
            good: store.last_good_sync()?,
            alerts,
        })
    }

    /// The exposition text.
    pub(crate) fn render(&self, per_key: PerKey) -> String {
        let mut text = Text::default();
        self.account_families(&mut text);
        self.sync_families(&mut text);
        self.alert_families(&mut text);
        let keys = self.keys.len();
        match per_key {
            PerKey::Always => self.key_families(&mut text),
            PerKey::Auto if keys <= PER_KEY_LIMIT => self.key_families(&mut text),
            PerKey::Auto => text.comment(&format!(
                "{keys} live keys, more than {PER_KEY_LIMIT}: the per-key families \
                 (keysync_key_*) are left out; --per-key always writes them"
            )),
            PerKey::Never => {
                text.comment("--per-key never: the per-key families (keysync_key_*) are left out");
            }
        }
        text.0
    }

    fn account_families(&self, text: &mut Text) {
        let states: Vec<_> = self.keys.iter().map(|k| k.state).collect();
        let counts = count_by_status(&states, self.now);
        text.family(
            "keysync_keys",
            "Live keys by what they would do if used now.",
        );
        for (status, count) in EffectiveStatus::LIVE.iter().zip(counts) {
            text.sample("keysync_keys", &[("status", status.name())], count);
        }
        // i128: the sum of any number of i64 values a database can hold, exactly.
        let used: i128 = self
            .keys
            .iter()
            .map(|k| i128::from(k.used_quota.unwrap_or(0)))
            .sum();
        text.family(
            "keysync_account_used_quota",
            "Quota units used by the live keys, summed (refunds make it go down).",
        );
        text.sample("keysync_account_used_quota", &[], used);
        text.family(
            "keysync_quota_per_unit",
            "Quota units per US dollar: the price in force.",
        );
        text.sample("keysync_quota_per_unit", &[], self.quota_per_unit.get());
    }

    fn sync_families(&self, text: &mut Text) {
        if let Some((last, cost)) = &self.last {
            let success = i64::from(matches!(last.status, SyncStatus::Ok | SyncStatus::Partial));
            let families: [(&str, &str, i64); 5] = [
                (
                    "keysync_last_sync_timestamp_seconds",
                    "Start of the latest pull that has ended, in unix seconds.",
                    last.started_at,
                ),
                (
                    "keysync_last_sync_success",
                    "1 if the latest pull that has ended was ok or partial, 0 if it failed.",
                    success,
                ),
                (
                    "keysync_last_sync_duration_seconds",
                    "How long the latest pull that has ended ran, in seconds.",
                    cost.duration,
                ),
                (
                    "keysync_last_sync_requests",
                    "HTTP requests the latest pull that has ended sent to the API.",
                    cost.requests,
                ),
                (
                    "keysync_last_sync_rate_limited",
                    "Requests of the latest pull that has ended that the API answered 429.",
                    cost.rate_limited,
                ),
            ];
            for (name, help, value) in families {
                text.family(name, help);
                text.sample(name, &[], value);
            }
        }
        if let Some(good) = &self.good {
            let name = "keysync_last_good_sync_timestamp_seconds";
            text.family(
                name,
                "Start of the latest ok or partial pull, in unix seconds.",
            );
            text.sample(name, &[], good.started_at);
        }
    }

    fn alert_families(&self, text: &mut Text) {
        if self.alerts.is_empty() {
            return;
        }
        let name = "keysync_alerts_firing";
        text.family(
            name,
            "Alarms firing now, per alert rule in force (as `keysync check` evaluates them).",
        );
        for (rule, firing) in &self.alerts {
            text.sample(name, &[("rule", rule)], *firing as i64);
        }
    }

    fn key_families(&self, text: &mut Text) {
        let now = self.now;
        let info = |k: &KeyFigures| {
            let status = k.state.effective_status(now).name();
            let unlimited = if k.state.unlimited_quota == Some(true) {
                "true"
            } else {
                "false"
            };
            Some((vec![("status", status), ("unlimited", unlimited)], 1))
        };
        let bare = |value: Option<i64>| value.map(|v| (vec![], v));
        self.per_key(
            text,
            "keysync_key_info",
            "A live key: its status (what it would do if used now) and whether its quota is \
             unlimited; always 1.",
            &info,
        );
        self.per_key(
            text,
            "keysync_key_used_quota",
            "Quota units the key has used (refunds make it go down).",
            &|k| bare(k.used_quota),
        );
        self.per_key(
            text,
            "keysync_key_remain_quota",
            "Quota units the key has left; keys with a quota limit only.",
            &|k| bare(k.state.quota_left()),
        );
        self.per_key(
            text,
            "keysync_key_expiry_timestamp_seconds",
            "When the key expires, in unix seconds; keys that expire only.",
            &|k| bare(k.state.expired_time.filter(|t| *t != -1)),
        );
        self.per_key(
            text,
            "keysync_key_last_used_timestamp_seconds",
            "When the key was last used, in unix seconds; keys used at least once.",
            &|k| bare(k.accessed_time.filter(|t| *t > 0)),
        );
    }

    /// One per-key family: a sample for each key `value` gives one for, labelled `id` and
    /// `name` and the labels it adds.
    fn per_key(
        &self,
        text: &mut Text,
        name: &str,
        help: &str,
        value: &dyn Fn(&KeyFigures) -> Option<KeySample>,
    ) {
        let mut samples = self
            .keys
            .iter()
            .filter_map(|k| Some((k, value(k)?)))
            .peekable();
        if samples.peek().is_none() {
            return;
        }
        text.family(name, help);
        for (key, (more, value)) in samples {
            let id = key.state.id.to_string();
            let mut labels = vec![
                ("id", id.as_str()),
                ("name", key.name.as_deref().unwrap_or("")),
            ];
            labels.extend(more);
            text.sample(name, &labels, value);
        }
    }
}

/// A key's sample in one family: the labels it adds to `id` and `name`, and its value.
type KeySample = (Vec<(&'static str, &'static str)>, i64);

/// The exposition text under way.
#[derive(Default)]
struct Text(String);

impl Text {
    /// `# HELP` and `# TYPE` of a gauge family (the help texts are keysync's own, with no
    /// backslash or line break to escape).
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(label, value)| format!("{label}=\"{}\"", label_value(value)))
                .collect();
            let _ = write!(self.0, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A `#` line that is neither HELP nor TYPE, which parsers skip.
    fn comment(&mut self, line: &str) {
        let _ = writeln!(self.0, "# {line}");
    }
}

/// A label value as the format requires: a backslash, a double quote and a line feed escaped
/// (`\\`, `\"`, `\n`); every other character, any Unicode, as it is.
fn label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_value_escapes_exactly_backslash_quote_and_line_feed() {
        assert_eq!(
            label_value("a\\b\"c\nd\r\u{202e}名"),
            "a\\\\b\\\"c\\nd\r\u{202e}名"
        );
    }
}
