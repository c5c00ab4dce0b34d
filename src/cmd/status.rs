//! `keysync status`: the database and its last syncs at a glance, and with `--max-age` an
//! alarm (exit 1) for monitoring when the data has gone stale or the last pull failed.

use std::io::Write;
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::api::model::status_name;
use crate::config::Settings;
use crate::error::{Outcome, Result};
use crate::output::{escape_for_terminal, print_line, thousands};
use crate::store::Store;
use crate::store::price::{Price, PriceSource};
use crate::store::status::{KeyCounts, SyncRow};
use crate::store::sync_status::SyncStatus;
use crate::terminal::counted;
use crate::time::{parse_positive_duration, readable_time};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exit 1 when the last good sync is older than this, or the last sync failed
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub max_age: Option<Duration>,
    /// Print the status as one JSON object
    #[arg(long)]
    pub json: bool,
}

pub fn run(settings: &Settings, args: Args) -> Result<Outcome> {
    let db = settings.db()?;
    let now = settings.now();
    let store = Store::open_read_only(db)?;
    let seen = Seen::read(&store, settings.profile.quota_per_unit, args.max_age, now)?;
    if args.json {
        print_line(&seen.json(db, now).to_string())?;
    } else if !settings.quiet {
        seen.print_lines(db, now)?;
    }
    match seen.alarm {
        Some(reason) => {
            let reason = escape_for_terminal(&reason).into_owned();
            // Not `eprintln!`, which panics on a closed stderr.
            let _ = writeln!(std::io::stderr(), "keysync: alarm: {reason}");
            Ok(Outcome::Alarm)
        }
        None => Ok(Outcome::Success),
    }
}

/// What `status` read from the database, and the alarm it raises, if any.
struct Seen {
    size: u64,
    version: i64,
    counts: KeyCounts,
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
        let price = store
            .price_book(price_setting)?
            .at(good.as_ref().map_or(0, |sync| sync.id));
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
            "keys": keys_json(&self.counts),
            "account": self.account.map(|(user_id, bound_sync)| {
                json!({"user_id": user_id, "bound_sync": bound_sync})
            }),
            "last_sync": self.last.as_ref().map(|s| sync_json(s, now)),
            "last_good_sync": self.good.as_ref().map(|s| sync_json(s, now)),
            "price": price_json(&self.price),
            "alarm": self.alarm,
        })
    }

    fn print_lines(&self, db: &Path, now: i64) -> Result<()> {
        // The path and an upstream error message are text from outside.
        let say = |line: &str| print_line(&escape_for_terminal(line));
        say(&format!(
            "database:       {} ({}, schema version {})",
            db.display(),
            bytes(self.size),
            self.version
        ))?;
        say(&format!("keys:           {}", keys_line(&self.counts)))?;
        say(&format!("account:        {}", account_line(self.account)))?;
        say(&format!(
            "last sync:      {}",
            sync_line(self.last.as_ref(), now)
        ))?;
        say(&format!(
            "last good sync: {}",
            sync_line(self.good.as_ref(), now)
        ))?;
        say(&format!("price:          {}", price_line(&self.price)))
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

/// How far ahead of now a good sync may have started before it is an alarm: as far as a
/// pull's `--now` may be ahead of the clock.
const FUTURE_TOLERANCE: i64 = 60;

/// Why monitoring should be told, if it should: no good sync at all, a failed last pull, a
/// last good sync older than `max_age`, or one in the future. A pull still running is judged
/// by the one before it.
fn alarm(
    finished: Option<&SyncRow>,
    good: Option<&SyncRow>,
    max_age: Duration,
    now: i64,
) -> Option<String> {
    if let Some(failed) = finished.filter(|s| s.status == SyncStatus::Failed) {
        let error = failed.error.as_deref().unwrap_or("no error recorded");
        return Some(format!("the last sync ({}) failed: {error}", failed.id));
    }
    let Some(good) = good else {
        return Some("no good sync yet: run `keysync pull`".to_string());
    };
    let age = now - good.started_at;
    // A good sync from the future would look fresh for ever, while every pull is refused.
    if age < -FUTURE_TOLERANCE {
        return Some(format!(
            "the last good sync ({}) started at {}, {}: the clock was ahead when it ran, and \
             pulls are refused until its time is corrected (see \"A sync recorded in the \
             future\" in the README)",
            good.id,
            readable_time(good.started_at),
            when_text(age)
        ));
    }
    (age > max_age.as_secs() as i64).then(|| {
        format!(
            "the last good sync ({}) is {} old, more than --max-age {}: is the cron job running?",
            good.id,
            age_text(age),
            humantime::format_duration(max_age)
        )
    })
}

fn bytes(size: u64) -> String {
    match size {
        0..1_000_000 => format!("{:.1} KB", size as f64 / 1e3),
        _ => format!("{:.1} MB", size as f64 / 1e6),
    }
}

/// When a sync started, seen from now: `3m 5s ago`, or `35d 4h in the future` for one a clock
/// that was ahead recorded (or one after `--now`): never a made-up `0s ago`.
fn when_text(age: i64) -> String {
    if age < 0 {
        format!("{} in the future", age_text(age.saturating_neg()))
    } else {
        format!("{} ago", age_text(age))
    }
}

/// An age read at a glance, in its two largest units: `45s`, `3m 5s`, `2h 10m`, `35d 4h`.
fn age_text(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn keys_line(counts: &KeyCounts) -> String {
    let by_status: Vec<String> = counts
        .by_status
        .iter()
        .map(|(status, n)| format!("{n} {}", status_name(*status)))
        .collect();
    let detail = if by_status.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_status.join(", "))
    };
    format!("{} live{detail}, {} removed", counts.live, counts.removed)
}

fn keys_json(counts: &KeyCounts) -> Json {
    let by_status: serde_json::Map<String, Json> = counts
        .by_status
        .iter()
        .map(|(status, n)| (status_name(*status), json!(n)))
        .collect();
    json!({"live": counts.live, "removed": counts.removed, "by_status": by_status})
}

fn sync_line(sync: Option<&SyncRow>, now: i64) -> String {
    let Some(s) = sync else {
        return "none yet".to_string();
    };
    let error = s
        .error
        .as_deref()
        .map(|e| format!("; error: {e}"))
        .unwrap_or_default();
    format!(
        "{} {}, {} ({}): {}, {} added, {} changed, {} removed{error}",
        s.id,
        s.status,
        readable_time(s.started_at),
        when_text(now - s.started_at),
        counted(s.keys, "key"),
        s.added,
        s.changed,
        s.removed
    )
}

fn sync_json(s: &SyncRow, now: i64) -> Json {
    json!({
        "id": s.id, "status": s.status, "started_at": s.started_at,
        "age_seconds": now - s.started_at, "keys": s.keys, "added": s.added,
        "changed": s.changed, "removed": s.removed, "error": s.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age_text(45), "45s");
        assert_eq!(age_text(185), "3m 5s");
        assert_eq!(age_text(7_800), "2h 10m");
        assert_eq!(age_text(35 * 86_400 + 4 * 3600 + 59), "35d 4h");
    }

    #[test]
    fn a_good_sync_in_the_future_is_an_alarm_not_a_fresh_one() {
        let good = SyncRow {
            id: 2,
            status: SyncStatus::Ok,
            started_at: 4_070_908_800,
            keys: 1,
            added: 0,
            changed: 0,
            removed: 0,
            error: None,
        };
        let max_age = Duration::from_secs(3600);
        assert_eq!(
            alarm(Some(&good), Some(&good), max_age, good.started_at - 3600),
            Some(
                "the last good sync (2) started at 2099-01-01 00:00:00Z, 1h 0m in the future: \
                 the clock was ahead when it ran, and pulls are refused until its time is \
                 corrected (see \"A sync recorded in the future\" in the README)"
                    .to_string()
            )
        );
        assert_eq!(
            alarm(Some(&good), Some(&good), max_age, good.started_at - 60),
            None
        );
        assert_eq!(
            alarm(Some(&good), Some(&good), max_age, good.started_at + 60),
            None
        );
    }

    #[test]
    fn a_time_in_the_future_is_said_to_be() {
        assert_eq!(when_text(185), "3m 5s ago");
        assert_eq!(when_text(0), "0s ago");
        assert_eq!(when_text(-45), "45s in the future");
        assert_eq!(when_text(-(35 * 86_400 + 4 * 3600)), "35d 4h in the future");
    }
}
