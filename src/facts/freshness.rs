//! Whether the record is fresh enough to trust: the rule `status --max-age` alarms by, and
//! `check`'s `stale` and `last_pull_failed` rules. A pull still running is judged by the
//! one before it; a good sync from the future is never fresh.

use std::time::Duration;

use crate::store::status::SyncRow;
use crate::store::sync::FUTURE_SYNC_HELP;
use crate::store::sync_status::SyncStatus;
use crate::time::{readable_age, readable_duration, readable_time, readable_when};

/// How far ahead of now a good sync may have started before it is an alarm: as far as a
/// pull's `--now` may be ahead of the clock.
pub(crate) const FUTURE_TOLERANCE: i64 = 60;

/// Why monitoring should be told, if it should: no good sync at all, a failed last pull, a
/// last good sync older than `max_age`, or one in the future. A pull still running is judged
/// by the one before it.
pub(crate) fn alarm(
    finished: Option<&SyncRow>,
    good: Option<&SyncRow>,
    max_age: Duration,
    now: i64,
) -> Option<String> {
    last_pull_failed(finished).or_else(|| staleness(good, (max_age, "--max-age"), now))
}

/// Why the last finished pull is an alarm, if it failed (`check`'s `last_pull_failed`).
pub(crate) fn last_pull_failed(finished: Option<&SyncRow>) -> Option<String> {
    let failed = finished.filter(|s| s.status == SyncStatus::Failed)?;
    let error = failed.error.as_deref().unwrap_or("no error recorded");
    Some(format!("the last sync ({}) failed: {error}", failed.id))
}

/// Why the last good sync is too old to trust, if it is: none at all, one older than
/// `max_age` (named in the message as `setting` names it), or one in the future (`check`'s
/// `stale`).
pub(crate) fn staleness(
    good: Option<&SyncRow>,
    (max_age, setting): (Duration, &str),
    now: i64,
) -> Option<String> {
    let Some(good) = good else {
        return Some("no good sync yet: run `keysync pull`".to_string());
    };
    let age = now - good.started_at;
    // A good sync from the future would look fresh for ever, while every pull is refused.
    if age < -FUTURE_TOLERANCE {
        return Some(format!(
            "the last good sync ({}) started at {}, {}: the clock was ahead when it ran, and \
             pulls are refused until its time is corrected as {FUTURE_SYNC_HELP}",
            good.id,
            readable_time(good.started_at),
            readable_when(age)
        ));
    }
    (age > max_age.as_secs() as i64).then(|| {
        format!(
            "the last good sync ({}) is {} old, more than {setting} {}: is the cron job running?",
            good.id,
            readable_age(age),
            readable_duration(max_age)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                 corrected as \"A SYNC RECORDED IN THE FUTURE\" in the man page (`keysync man \
                 | man -l -`) shows"
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
}
