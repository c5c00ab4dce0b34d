//! The state of `keysync check`'s alarms (migrations/V9__alarms.sql): which rule fires for
//! which subject since when, which resolved when, and what each webhook has been told.
//!
//! [`Store::record_alarms`] writes what one check found in one IMMEDIATE transaction (the
//! caller holds the pull lock, as `pull` and `prune` do) and says, for each webhook, what it
//! has not been told yet; [`Store::mark_delivered`] records a delivery once the webhook took
//! it. A delivery that fails is simply not marked, so the next check sends it again.

use std::collections::BTreeSet;

use rusqlite::{Connection, Row, TransactionBehavior, params};

use crate::error::{DbContext, Result};
use crate::store::Store;

/// One alarm: a rule firing for one subject, as a check measured it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Alarm {
    /// The rule's name as the profile writes it: `expiring`, `low_quota_usd`, ...
    pub rule: String,
    /// A key id, or `account`.
    pub subject: String,
    /// The key's name, for a key's alarm.
    pub name: Option<String>,
    /// The measured number, in the rule's unit.
    pub value: Option<f64>,
    /// The limit it crossed, in the rule's unit.
    pub threshold: Option<f64>,
    pub message: String,
    /// When the alarm was first seen firing; none when no state is kept (`--no-state`).
    pub since: Option<i64>,
    /// When it stopped firing, for a resolved one.
    pub resolved_at: Option<i64>,
}

/// What one webhook has not been told yet: alarms that started firing, alarms that resolved.
/// Each comes with its episode's id, for [`Store::mark_delivered`].
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Pending {
    pub new: Vec<(i64, Alarm)>,
    pub resolved: Vec<(i64, Alarm)>,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.new.is_empty() && self.resolved.is_empty()
    }
}

/// What a check leaves recorded: the alarms firing now (with their `since`), and for each
/// webhook (by the digest of its URL, in the order given) what is pending.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Recorded {
    pub firing: Vec<Alarm>,
    pub pending: Vec<Pending>,
}

const COLUMNS: &str = "id, rule, subject, name, value, threshold, message, started_at, resolved_at";

fn episode(row: &Row<'_>) -> rusqlite::Result<(i64, Alarm)> {
    Ok((
        row.get(0)?,
        Alarm {
            rule: row.get(1)?,
            subject: row.get(2)?,
            name: row.get(3)?,
            value: row.get(4)?,
            threshold: row.get(5)?,
            message: row.get(6)?,
            since: row.get(7)?,
            resolved_at: row.get(8)?,
        },
    ))
}

fn episodes(conn: &Connection, sql: &str, target: &str) -> Result<Vec<(i64, Alarm)>> {
    let context = "cannot read the alarm state";
    let mut statement = conn.prepare(sql).db(context)?;
    statement
        .query_map([target], episode)
        .db(context)?
        .collect::<rusqlite::Result<_>>()
        .db(context)
}

/// Opens the episode of `alarm` at `now`, or updates the one open (the unique index on the
/// firing episodes is the conflict); its id and start.
fn open_or_update(conn: &Connection, alarm: &Alarm, now: i64) -> Result<(i64, i64)> {
    conn.query_row(
        "INSERT INTO alarms (rule, subject, name, value, threshold, message, started_at,
                             last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (rule, subject) WHERE resolved_at IS NULL DO UPDATE
            SET name = excluded.name, value = excluded.value, threshold = excluded.threshold,
                message = excluded.message, last_seen_at = excluded.last_seen_at
         RETURNING id, started_at",
        params![
            alarm.rule,
            alarm.subject,
            alarm.name,
            alarm.value,
            alarm.threshold,
            alarm.message,
            now
        ],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .db("cannot record the alarm state")
}

/// Opens or updates the episode of each alarm firing now, and resolves every open episode
/// that is not firing any more; the alarms with their `since`.
fn record_firing(conn: &Connection, firing: &[Alarm], now: i64) -> Result<Vec<Alarm>> {
    let mut seen = BTreeSet::new();
    let mut recorded = Vec::with_capacity(firing.len());
    for alarm in firing {
        let (id, since) = open_or_update(conn, alarm, now)?;
        seen.insert(id);
        recorded.push(Alarm {
            since: Some(since),
            ..alarm.clone()
        });
    }
    let seen = serde_json::to_string(&seen).expect("integers serialize");
    conn.execute(
        "UPDATE alarms SET resolved_at = max(?1, started_at)
         WHERE resolved_at IS NULL AND id NOT IN (SELECT value FROM json_each(?2))",
        params![now, seen],
    )
    .db("cannot record the alarm state")?;
    Ok(recorded)
}

/// What the webhook whose URL has digest `target` has not been told: the episodes firing now
/// that it has not heard of, and those resolved that it has not heard resolved (those that
/// resolved before it was first known are marked as told when it is).
fn pending(conn: &Connection, target: &str, now: i64) -> Result<Pending> {
    let context = "cannot record the webhook";
    let first_time = conn
        .execute(
            "INSERT OR IGNORE INTO notify_targets (url_sha256, since) VALUES (?1, ?2)",
            params![target, now],
        )
        .db(context)?
        == 1;
    if first_time {
        // What resolved before a webhook was known is none of its business.
        conn.execute(
            "INSERT INTO alarm_deliveries (url_sha256, alarm_id, delivered)
             SELECT ?1, id, 'resolved' FROM alarms WHERE resolved_at IS NOT NULL",
            [target],
        )
        .db(context)?;
    }
    let new = episodes(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM alarms AS a
             WHERE resolved_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM alarm_deliveries AS d
                               WHERE d.url_sha256 = ?1 AND d.alarm_id = a.id)
             ORDER BY id"
        ),
        target,
    )?;
    let resolved = episodes(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM alarms AS a
             WHERE resolved_at IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM alarm_deliveries AS d
                               WHERE d.url_sha256 = ?1 AND d.alarm_id = a.id
                                 AND d.delivered = 'resolved')
             ORDER BY id"
        ),
        target,
    )?;
    Ok(Pending { new, resolved })
}

impl Store {
    /// Records the alarms firing at `now` and returns them with their `since`, and what each
    /// of `targets` (digests of webhook URLs) has not been told yet, all in one transaction.
    /// The caller holds the pull lock.
    pub(crate) fn record_alarms(
        &mut self,
        firing: &[Alarm],
        now: i64,
        targets: &[String],
    ) -> Result<Recorded> {
        let context = "cannot record the alarm state";
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db(context)?;
        let firing = record_firing(&tx, firing, now)?;
        let pending = targets
            .iter()
            .map(|target| pending(&tx, target, now))
            .collect::<Result<_>>()?;
        tx.commit().db(context)?;
        Ok(Recorded { firing, pending })
    }

    /// Records that the webhook whose URL has digest `target` took `delivered`.
    pub(crate) fn mark_delivered(&mut self, target: &str, delivered: &Pending) -> Result<()> {
        let context = "cannot record a webhook delivery";
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db(context)?;
        let marks = [
            (&delivered.new, "firing"),
            (&delivered.resolved, "resolved"),
        ];
        for (episodes, state) in marks {
            for (id, _) in episodes {
                tx.execute(
                    "INSERT OR REPLACE INTO alarm_deliveries (url_sha256, alarm_id, delivered)
                     VALUES (?1, ?2, ?3)",
                    params![target, id, state],
                )
                .db(context)?;
            }
        }
        tx.commit().db(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(rule: &str, subject: &str) -> Alarm {
        Alarm {
            rule: rule.to_string(),
            subject: subject.to_string(),
            name: None,
            value: Some(1.0),
            threshold: Some(2.0),
            message: format!("{rule} {subject}"),
            since: None,
            resolved_at: None,
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.db")).unwrap();
        (dir, store)
    }

    fn subjects(episodes: &[(i64, Alarm)]) -> Vec<&str> {
        episodes.iter().map(|(_, a)| a.subject.as_str()).collect()
    }

    #[test]
    fn an_episode_is_told_once_as_new_and_once_as_resolved() {
        let (_dir, mut store) = store();
        let target = ["t".to_string()];
        let first = store
            .record_alarms(&[alarm("r", "1"), alarm("r", "2")], 100, &target)
            .unwrap();
        assert_eq!(first.firing[1].since, Some(100));
        assert_eq!(subjects(&first.pending[0].new), ["1", "2"]);
        store.mark_delivered("t", &first.pending[0]).unwrap();
        // Still firing, already told: nothing pending; `since` stays the first sighting.
        let second = store.record_alarms(&[alarm("r", "1"), alarm("r", "2")], 200, &target);
        let second = second.unwrap();
        assert_eq!(second.firing[0].since, Some(100));
        assert!(second.pending[0].is_empty());
        // 2 resolves: pending until marked, then told no more.
        let third = store
            .record_alarms(&[alarm("r", "1")], 300, &target)
            .unwrap();
        assert_eq!(subjects(&third.pending[0].resolved), ["2"]);
        assert_eq!(third.pending[0].resolved[0].1.resolved_at, Some(300));
        let again = store
            .record_alarms(&[alarm("r", "1")], 400, &target)
            .unwrap();
        assert_eq!(again.pending, third.pending);
        store.mark_delivered("t", &again.pending[0]).unwrap();
        let after = store
            .record_alarms(&[alarm("r", "1")], 500, &target)
            .unwrap();
        assert!(after.pending[0].is_empty());
        // Firing again is a new episode, new again.
        let back = store
            .record_alarms(&[alarm("r", "1"), alarm("r", "2")], 600, &target)
            .unwrap();
        assert_eq!(subjects(&back.pending[0].new), ["2"]);
        assert_eq!(back.firing[1].since, Some(600));
        // A webhook first known now hears of everything firing, and of no old resolution.
        let other = store
            .record_alarms(&[alarm("r", "1")], 700, &["u".to_string()])
            .unwrap();
        assert_eq!(subjects(&other.pending[0].new), ["1"]);
        assert!(other.pending[0].resolved.is_empty());
    }
}
