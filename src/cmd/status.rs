//! `keysync status`: the database and its last syncs at a glance, and with `--max-age` an
//! alarm (exit 1) for monitoring when the data has gone stale or the last pull failed.

use std::io::Write;
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::config::Settings;
use crate::error::{Error, Outcome, Result};
use crate::facts::freshness::alarm;
use crate::facts::key::{EffectiveStatus, live_by_status};
use crate::facts::spend::price_in_force;
use crate::output::{escape_for_terminal, print_line, print_parts, thousands, words};
use crate::store::Store;
use crate::store::price::{Price, PriceSource};
use crate::store::status::{KeyCounts, SyncRow};
use crate::terminal::counted;
use crate::time::{parse_positive_duration, readable_time, readable_when};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Exit 1 when the last good sync is older than this, or the last sync failed
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub max_age: Option<Duration>,
    /// Print the status as one JSON object
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<Outcome> {
    let db = settings.db()?;
    let now = settings.now();
    let store = match Store::open_read_only(db) {
        // Not damage: the next pull mends it. A monitor asked about freshness hears an alarm.
        Err(error @ Error::PullInterrupted(_)) if args.max_age.is_some() => {
            if args.json {
                print_line(
                    &json!({"database": db.display().to_string(), "alarm": error.to_string()})
                        .to_string(),
                )?;
            }
            return Ok(raise_alarm(&error.to_string()));
        }
        opened => opened?,
    };
    // Every line describes the same syncs, whatever a pull commits meanwhile.
    store.begin_snapshot()?;
    let seen = Seen::read(&store, settings.profile.quota_per_unit, args.max_age, now)?;
    if args.json {
        print_line(&seen.json(db, now).to_string())?;
    } else if !settings.quiet {
        seen.print_lines(db, now)?;
    }
    Ok(seen
        .alarm
        .map_or(Outcome::Success, |reason| raise_alarm(&reason)))
}

/// Says why on stderr: `keysync: alarm: REASON`.
fn raise_alarm(reason: &str) -> Outcome {
    let reason = escape_for_terminal(reason).into_owned();
    // Not `eprintln!`, which panics on a closed stderr.
    let _ = writeln!(std::io::stderr(), "keysync: alarm: {reason}");
    Outcome::Alarm
}

/// What `status` read from the database, and the alarm it raises, if any.
struct Seen {
    size: u64,
    version: i64,
    counts: KeyCounts,
    /// Live keys by what they would do if used now, one per [`EffectiveStatus::LIVE`].
    by_status: [i64; 5],
    account: Option<(i64, i64)>,
    last: Option<SyncRow>,
    good: Option<SyncRow>,
    /// The price in force at the last good sync.
    price: Price,
    alarm: Option<String>,
}

impl Seen {
    fn read(
        store: &Store,
        price_setting: Option<NonZeroU64>,
        max_age: Option<Duration>,
        now: i64,
    ) -> Result<Seen> {
        let good = store.last_good_sync()?;
        let price = price_in_force(store, price_setting)?;
        let alarm = match max_age {
            Some(max_age) => alarm(
                store.last_finished_sync()?.as_ref(),
                good.as_ref(),
                max_age,
                now,
            ),
            None => None,
        };
        Ok(Seen {
            counts: store.key_counts()?,
            by_status: live_by_status(store, now)?,
            account: store.account()?,
            last: store.last_sync()?,
            good,
            price,
            alarm,
            size: store.bytes(),
            version: store.schema_version()?,
        })
    }

    fn json(&self, db: &Path, now: i64) -> Json {
        json!({
            "database": db.display().to_string(),
            "size_bytes": self.size,
            "schema_version": self.version,
            "keys": keys_json(&self.counts, &self.by_status),
            "account": self.account.map(|(user_id, bound_sync)| {
                json!({"user_id": user_id, "bound_sync": bound_sync})
            }),
            "last_sync": self.last.as_ref().map(|s| sync_json(s, now)),
            "last_good_sync": self.good.as_ref().map(|s| sync_json(s, now)),
            "price": price_json(&self.price),
            "alarm": self.alarm,
        })
    }

    /// One line a fact, its value after a label; on a narrow terminal a value goes on over
    /// indented lines, broken between words (between the parts of a sync, whose time is one
    /// part), and an error too long for the terminal is cut.
    fn print_lines(&self, db: &Path, now: i64) -> Result<()> {
        let say = |label: &str, value: Vec<String>| {
            let label = format!("{label:<15}");
            print_parts(&[vec![label], value].concat(), 16)
        };
        say(
            "database:",
            words(&format!(
                "{} ({}, schema version {})",
                db.display(),
                bytes(self.size),
                self.version
            )),
        )?;
        say("keys:", words(&keys_line(&self.counts, &self.by_status)))?;
        say("account:", words(&account_line(self.account)))?;
        say("last sync:", sync_line(self.last.as_ref(), now))?;
        say("last good sync:", sync_line(self.good.as_ref(), now))?;
        say("price:", words(&price_line(&self.price)))
    }
}

/// `500,000 quota units per US dollar (published by the gateway, sync 12)`.
fn price_line(price: &Price) -> String {
    let origin = match price.source {
        PriceSource::Gateway { sync } => format!("published by the gateway, sync {sync}"),
        PriceSource::Setting => "set by the profile's quota_per_unit".to_string(),
        PriceSource::Default => "the gateway's default: no pull read a price".to_string(),
    };
    format!(
        "{} quota units per US dollar ({origin})",
        thousands(&price.quota_per_unit.to_string())
    )
}

fn price_json(price: &Price) -> Json {
    let sync = match price.source {
        PriceSource::Gateway { sync } => Some(sync),
        PriceSource::Setting | PriceSource::Default => None,
    };
    json!({
        "quota_per_unit": price.quota_per_unit.get(),
        "source": price.source_name(),
        "sync": sync,
    })
}

fn account_line(account: Option<(i64, i64)>) -> String {
    match account {
        Some((user_id, bound_sync)) => format!("user {user_id} (bound by sync {bound_sync})"),
        None => "none yet (the first pull that sees keys binds one)".to_string(),
    }
}

fn bytes(size: u64) -> String {
    match size {
        0..1_000_000 => format!("{:.1} KB", size as f64 / 1e3),
        _ => format!("{:.1} MB", size as f64 / 1e6),
    }
}

/// The statuses some live key has, with their counts, in [`EffectiveStatus::LIVE`] order.
fn present_statuses(by_status: &[i64; 5]) -> impl Iterator<Item = (&'static str, i64)> {
    EffectiveStatus::LIVE
        .iter()
        .zip(by_status)
        .filter(|(_, n)| **n > 0)
        .map(|(status, n)| (status.name(), *n))
}

fn keys_line(counts: &KeyCounts, by_status: &[i64; 5]) -> String {
    let by_status: Vec<String> = present_statuses(by_status)
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    let detail = if by_status.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_status.join(", "))
    };
    format!("{} live{detail}, {} removed", counts.live, counts.removed)
}

fn keys_json(counts: &KeyCounts, by_status: &[i64; 5]) -> Json {
    let by_status: serde_json::Map<String, Json> = present_statuses(by_status)
        .map(|(status, n)| (status.to_string(), json!(n)))
        .collect();
    json!({"live": counts.live, "removed": counts.removed, "by_status": by_status})
}

/// `12 ok, 2025-12-19 08:00:00Z (2 hours ago): 300 keys, 1 added, 2 changed, 0 removed;
/// error: ...`, in the parts a narrow terminal may put on lines of their own.
fn sync_line(sync: Option<&SyncRow>, now: i64) -> Vec<String> {
    let Some(s) = sync else {
        return vec!["none".to_string(), "yet".to_string()];
    };
    let mut parts = vec![
        format!("{} {},", s.id, s.status),
        format!(
            "{} ({}):",
            readable_time(s.started_at),
            readable_when(now - s.started_at)
        ),
        format!("{},", counted(s.keys, "key")),
        format!("{} added,", s.added),
        format!("{} changed,", s.changed),
        format!("{} removed", s.removed),
    ];
    if let Some(error) = &s.error {
        parts[5].push(';');
        parts.push(format!("error: {error}"));
    }
    parts
}

fn sync_json(s: &SyncRow, now: i64) -> Json {
    json!({
        "id": s.id, "status": s.status, "started_at": s.started_at,
        "age_seconds": now - s.started_at, "keys": s.keys, "added": s.added,
        "changed": s.changed, "removed": s.removed, "error": s.error,
    })
}
