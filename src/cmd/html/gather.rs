//! What the page shows, read from the database in one pass before anything is drawn: the
//! header facts and one value per section. Every number comes from the code that prints it
//! elsewhere: `consumption` (as `keysync usage`), the preset reports (as `keysync query
//! --report`), `store::diff` (as `keysync diff`) and `store::timeline`.

use std::collections::HashSet;
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use rusqlite::types::Value;

use crate::api::model::DATA_COLUMNS;
use crate::cmd::consumption::{per_key, per_key_columns};
use crate::cmd::show::report_columns;
use crate::error::Result;
use crate::facts::key::live_by_status;
use crate::facts::spend::{
    KeyTotal, KeyUse, Spend, Window, key_totals, price_in_force, use_in_window,
};
use crate::output::Column;
use crate::report::{Report, ReportArgs};
use crate::store::Store;
use crate::store::diff::{DiffRow, Kind, keys_of};
use crate::store::points::{SyncPoint, SyncRef};
use crate::store::price::Price;
use crate::store::query;
use crate::store::status::SyncRow;
use crate::store::timeline::{Sampling, StatusPoint};

/// How many keys the daily chart draws on their own; the rest are stacked as "others".
pub(super) const CHART_KEYS: usize = 8;
/// The rows of the top consumers table: `keysync usage --top 25`. An account of thousands of
/// keys would otherwise make a page nobody scrolls; the rest are counted under the table.
pub(super) const TABLE_KEYS: usize = 25;
/// How far ahead the `expiring` section looks (the `expiring-soon` report's `--within`).
pub(super) const EXPIRING_WITHIN: Duration = Duration::from_secs(14 * 86_400);
/// How many of the window's most recent changes the `changes` section lists.
pub(super) const RECENT_CHANGES: usize = 20;
/// How many versions the search for them reads at most: it looks at every version each sync
/// recorded, newest sync first, and a long window of frequent pulls holds millions.
pub(super) const VERSIONS_SEARCHED: i64 = 20_000;
/// Fields that move with every use of a key; `usage` shows that use, so the list of recent
/// changes leaves them out (the summary still counts them).
pub(super) const USE_FIELDS: [&str; 3] = ["accessed_time", "used_quota", "remain_quota"];

/// Everything the page shows.
pub(super) struct Page {
    pub db: String,
    /// The account's user id.
    pub account: Option<i64>,
    pub latest: Option<SyncRow>,
    /// The window is `(since, until]`: `until` is `now` unless `--month` ends it before.
    pub since: i64,
    pub until: i64,
    /// The time the account's state is judged at (keys by status now, expiring).
    pub now: i64,
    /// Whether `--now` fixed "now" (else it is the clock).
    pub now_given: bool,
    /// The price in force at the latest good sync, and where it came from.
    pub price: Price,
    pub usage: Usage,
    pub status: Status,
    pub expiring: Table,
    pub changes: Changes,
    pub exposed: Table,
}

/// Rows with named columns, as a report or `keysync usage` has them: the values as stored,
/// each column with what people read in it.
pub(super) struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

pub(super) struct Usage {
    /// `keysync usage --top TABLE_KEYS`'s rows for the window: id, name, used, usd, share.
    pub top_consumers: Table,
    /// The keys with use in the window that the table leaves out.
    pub keys_left_out: usize,
    pub days: Vec<NaiveDate>,
    /// The stacked series, bottom first: the [`CHART_KEYS`] largest keys, then the others.
    pub series: Vec<Series>,
}

/// One stacked series of the daily chart: a key, or all the other keys together.
pub(super) struct Series {
    /// `None` for the others.
    pub key: Option<KeyTotal>,
    /// Use per day of the window.
    pub per_day: Vec<Spend>,
}

pub(super) struct Status {
    pub sampling: Sampling,
    pub points: Vec<StatusPoint>,
    /// Live keys by effective status at `now`.
    pub now: [i64; 5],
}

pub(super) struct Changes {
    /// The state the window opens on (the last good sync at or before its start, else its
    /// first good sync) and the one it ends on (the last good sync at or before its end); `None`
    /// when there is nothing to compare.
    pub span: Option<(SyncPoint, SyncPoint)>,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    /// Keys changed per field, in column order; only fields that changed.
    pub per_field: Vec<(&'static str, usize)>,
    /// The most recent changes, newest sync first, each with the sync that recorded it.
    pub recent: Vec<(SyncPoint, DiffRow)>,
    /// How many good syncs the search for them went back over, when that was fewer than the
    /// window's (see [`VERSIONS_SEARCHED`]).
    pub searched: Option<usize>,
}

impl Page {
    /// Reads the page for the window `(since, until]` from the database at `db`.
    pub(super) fn read(
        db: &Path,
        (since, until): (i64, i64),
        now: i64,
        now_given: bool,
        price_setting: Option<NonZeroU64>,
    ) -> Result<Page> {
        // Query mode pins the views' clock at `now`, as `keysync query --now` does.
        let mut store = Store::open_for_query(db, now)?;
        let uses = use_in_window(&store, (since, until), price_setting)?;
        let (sampling, points) = store.status_timeline(since, until)?;
        Ok(Page {
            db: db.display().to_string(),
            account: store.account()?.map(|(user_id, _)| user_id),
            price: price_in_force(&store, price_setting)?,
            latest: store.last_good_sync()?,
            since,
            until,
            now,
            now_given,
            usage: usage(&uses, since, until)?,
            status: Status {
                sampling,
                points,
                now: live_by_status(&store, now)?,
            },
            expiring: report_table(
                &store,
                Report::ExpiringSoon,
                &ReportArgs {
                    within: Some(EXPIRING_WITHIN),
                    ..ReportArgs::default()
                },
                now,
            )?,
            exposed: report_table(&store, Report::Unrestricted, &ReportArgs::default(), now)?,
            changes: changes(&mut store, since, until)?,
        })
    }
}

fn usage(uses: &[KeyUse], since: i64, until: i64) -> Result<Usage> {
    let window = Window::new(since, until);
    let keys = key_totals(uses)?;
    let drawn = keys.len().min(CHART_KEYS);
    let mut series: Vec<Series> = keys[..drawn]
        .iter()
        .map(|key| {
            Ok(Series {
                per_day: window.daily(uses.iter().filter(|u| u.key_id == key.id))?,
                key: Some(key.clone()),
            })
        })
        .collect::<Result<_>>()?;
    if keys.len() > drawn {
        let charted: HashSet<i64> = keys[..drawn].iter().map(|k| k.id).collect();
        series.push(Series {
            key: None,
            per_day: window.daily(uses.iter().filter(|u| !charted.contains(&u.key_id)))?,
        });
    }
    Ok(Usage {
        top_consumers: Table {
            columns: per_key_columns(),
            rows: per_key(uses, Some(TABLE_KEYS), None)?,
        },
        keys_left_out: keys.len().saturating_sub(TABLE_KEYS),
        days: window.days().collect(),
        series,
    })
}

/// A preset report's rows, run as `keysync query --report` runs it.
fn report_table(store: &Store, report: Report, args: &ReportArgs, now: i64) -> Result<Table> {
    let run = report.query(args, now)?;
    let mut statement = store.prepare(run.sql)?;
    query::bind(&mut statement, &run.params)?;
    let columns = report_columns(&query::column_names(&statement));
    let rows = query::rows(&mut statement).collect::<Result<_>>()?;
    Ok(Table { columns, rows })
}

/// The window's changes: its net diff counted, and the most recent changes of its syncs.
fn changes(store: &mut Store, since: i64, until: i64) -> Result<Changes> {
    let window_syncs = store.good_syncs_between(since, until)?;
    let opening = store
        .last_good_at_or_before(since)?
        .or(window_syncs.first().copied());
    // A window that ends in the past (`--now`, `--month`) compares up to the sync of its end.
    let latest = store.last_good_at_or_before(until)?;
    let mut found = Changes {
        span: None,
        added: 0,
        removed: 0,
        changed: 0,
        per_field: Vec::new(),
        recent: Vec::new(),
        searched: None,
    };
    let (Some(from), Some(to)) = (opening, latest) else {
        return Ok(found);
    };
    if from.id >= to.id {
        return Ok(found);
    }
    let every_field: Vec<usize> = (0..DATA_COLUMNS.len()).collect();
    let diff = store.diff(
        Some(SyncRef::Id(from.id)),
        Some(SyncRef::Id(to.id)),
        until,
        &every_field,
    )?;
    found.added = keys_of(&diff.rows, Kind::Added);
    found.removed = keys_of(&diff.rows, Kind::Removed);
    found.changed = keys_of(&diff.rows, Kind::Changed);
    found.per_field = every_field
        .iter()
        .map(|&i| {
            let keys = diff.rows.iter().filter(|r| r.field == Some(i)).count();
            (DATA_COLUMNS[i], keys)
        })
        .filter(|(_, keys)| *keys > 0)
        .collect();
    found.span = Some((from, to));
    let after = match store.search_start(since, until, VERSIONS_SEARCHED)? {
        Some((after, searched)) => {
            found.searched = Some(searched);
            after
        }
        None => 0,
    };
    found.recent = recent_changes(store, since, until, after)?;
    Ok(found)
}

/// The [`RECENT_CHANGES`] most recent changes but those of [`USE_FIELDS`]: the diffs of the
/// window's syncs that recorded such changes, newest first, each against the good sync before
/// it, searching the syncs after sync `after`. The syncs are found a few at a time, newest
/// first, so the search stops once it has enough.
fn recent_changes(
    store: &mut Store,
    since: i64,
    until: i64,
    after: i64,
) -> Result<Vec<(SyncPoint, DiffRow)>> {
    const SYNCS_AT_A_TIME: usize = 8;
    let fields: Vec<usize> = (0..DATA_COLUMNS.len())
        .filter(|&i| !USE_FIELDS.contains(&DATA_COLUMNS[i]))
        .collect();
    let mut recent = Vec::new();
    let mut before = i64::MAX;
    loop {
        let steps = store.changing_syncs(
            (since, until),
            &USE_FIELDS,
            (after, before),
            SYNCS_AT_A_TIME,
        )?;
        for step in &steps {
            let diff = store.diff(
                Some(SyncRef::Id(step.before.id)),
                Some(SyncRef::Id(step.sync.id)),
                until,
                &fields,
            )?;
            recent.extend(diff.rows.into_iter().map(|row| (step.sync, row)));
            if recent.len() >= RECENT_CHANGES {
                recent.truncate(RECENT_CHANGES);
                return Ok(recent);
            }
        }
        match steps.last() {
            Some(oldest) if steps.len() == SYNCS_AT_A_TIME => before = oldest.sync.id,
            _ => return Ok(recent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn the_chart_stacks_the_largest_keys_and_then_the_others_together() {
        let price = std::num::NonZeroU64::new(1000).unwrap();
        // Keys 1..=10 each use 10 * id on day 1 and id on day 2 of a three-day window.
        let uses: Vec<KeyUse> = (1..=10)
            .flat_map(|id| {
                [(DAY, 10 * id), (2 * DAY, id)].map(|(day, used)| KeyUse {
                    day,
                    key_id: id,
                    name: Some(format!("k{id}")),
                    used,
                    quota_per_unit: price,
                })
            })
            .collect();
        let usage = usage(&uses, 0, 3 * DAY - 1).unwrap();
        assert_eq!(usage.days.len(), 3);
        let drawn: Vec<Option<i64>> = usage
            .series
            .iter()
            .map(|s| s.key.as_ref().map(|k| k.id))
            .collect();
        assert_eq!(
            drawn,
            [10, 9, 8, 7, 6, 5, 4, 3]
                .map(Some)
                .into_iter()
                .chain([None])
                .collect::<Vec<_>>()
        );
        let used =
            |series: &Series| -> Vec<i64> { series.per_day.iter().map(Spend::used).collect() };
        assert_eq!(used(&usage.series[0]), [0, 100, 10]);
        // Keys 1 and 2 together.
        assert_eq!(used(&usage.series[8]), [0, 30, 3]);
        // The table keeps every key, as `keysync usage --top 25` prints them.
        assert_eq!(usage.top_consumers.rows.len(), 10);
        assert_eq!(usage.keys_left_out, 0);
        assert_eq!(usage.top_consumers.rows[0][3], Value::Real(0.11));
    }

    #[test]
    fn the_table_keeps_the_first_25_keys_and_counts_the_rest() {
        let price = std::num::NonZeroU64::new(1000).unwrap();
        let uses: Vec<KeyUse> = (1..=30)
            .map(|id| KeyUse {
                day: DAY,
                key_id: id,
                name: None,
                used: id,
                quota_per_unit: price,
            })
            .collect();
        let usage = usage(&uses, 0, 2 * DAY).unwrap();
        let ids: Vec<&Value> = usage.top_consumers.rows.iter().map(|r| &r[0]).collect();
        assert_eq!(ids.len(), TABLE_KEYS);
        assert_eq!((ids[0], ids[24]), (&Value::Integer(30), &Value::Integer(6)));
        assert_eq!(usage.keys_left_out, 5);
        // The others' stack holds the 22 keys the chart does not colour: 1 + 2 + ... + 22.
        let used: Vec<i64> = usage.series[CHART_KEYS]
            .per_day
            .iter()
            .map(Spend::used)
            .collect();
        assert_eq!(used, [0, 253, 0]);
    }

    /// 105 hourly syncs that each recorded 400 versions (so says the sync log): key 1 renamed at
    /// sync 2, key 2 renamed at sync 80, and both use quota at every sync. The search reads the
    /// versions of the last 50 syncs only: the rename at sync 2 is left out.
    #[test]
    fn recent_changes_are_searched_in_the_last_syncs_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        drop(Store::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 105)
             INSERT INTO syncs (id, started_at, status, base_url, changed)
             SELECT i, i * 3600, 'ok', 'x', 400 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 105),
                  k(id) AS (VALUES (1), (2))
             INSERT INTO key_versions (key_id, valid_from_sync, valid_to_sync, name, used_quota,
                                       changed)
             SELECT k.id, n.i, CASE WHEN n.i < 105 THEN n.i + 1 END,
                    CASE WHEN (k.id = 1 AND n.i >= 2) OR (k.id = 2 AND n.i >= 80)
                         THEN 'new-' ELSE 'old-' END || k.id,
                    n.i,
                    CASE WHEN n.i = 1 THEN '[]'
                         WHEN (k.id = 1 AND n.i = 2) OR (k.id = 2 AND n.i = 80)
                         THEN '[\"name\",\"used_quota\"]'
                         ELSE '[\"used_quota\"]' END
             FROM n CROSS JOIN k;
             INSERT INTO keys (id, name, first_seen_sync)
             SELECT key_id, name, 1 FROM key_versions WHERE valid_to_sync IS NULL;",
        )
        .unwrap();
        let now = 106 * 3600;
        let mut store = Store::open_for_query(&path, now).unwrap();
        let found = changes(&mut store, 0, now).unwrap();
        assert_eq!(found.searched, Some(50));
        let recent: Vec<(i64, i64, Option<usize>)> = found
            .recent
            .iter()
            .map(|(sync, row)| (sync.id, row.id, row.field))
            .collect();
        assert_eq!(
            recent,
            [(80, 2, Some(crate::api::model::data_column("name")))]
        );
        // The summary counts the whole window: both renames, and the use of both keys.
        assert_eq!(found.per_field, [("name", 2), ("used_quota", 2)]);
        assert_eq!(found.span.map(|(a, b)| (a.id, b.id)), Some((1, 105)));
    }
}
