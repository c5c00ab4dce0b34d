//! What the page shows, read from the database in one pass before anything is drawn: the
//! header facts and one value per section. Every number comes from the code that prints it
//! elsewhere: `consumption` (as `keysync usage`), the preset reports (as `keysync query
//! --report`), `store::diff` (as `keysync diff`) and `store::timeline`.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU64;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use rusqlite::types::Value;

use crate::alerts::{Alarm, Rules, evaluate};
use crate::api::model::DATA_COLUMNS;
use crate::cmd::consumption::{per_key, per_key_columns};
use crate::cmd::show::report_columns;
use crate::error::Result;
use crate::facts::key::{KeyState, count_by_status};
use crate::facts::spend::{
    KeyTotal, KeyUse, Spend, Window, key_totals, price_in_force, use_in_window, utc_day,
};
use crate::output::Column;
use crate::report::{Report, ReportArgs};
use crate::store::Store;
use crate::store::diff::{DiffRow, Kind, QUOTA_USE_FIELDS, keys_of, keys_that_only_used_quota};
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
/// How far ahead the `tile-expiring` tile looks.
pub(super) const EXPIRING_TILE: i64 = 7 * 86_400;
/// A limited key with less than this many US dollars of quota left counts in `tile-quota`.
pub(super) const LOW_QUOTA_DOLLARS: u64 = 1;
/// The month's forecast goes on at the daily rate of at most this many last days.
pub(super) const FORECAST_DAYS: i64 = 7;
/// The rows of the exposed table; the rest are counted under it.
pub(super) const EXPOSED_KEYS: usize = 25;
const DAY: i64 = 86_400;

/// Everything the page shows.
pub(super) struct Page {
    pub db: String,
    /// The account's user id.
    pub account: Option<i64>,
    pub latest: Option<SyncRow>,
    /// The latest good sync at or before the window's end: the state every section describes
    /// (`data-sync`).
    pub sync: Option<SyncPoint>,
    /// The window is `(since, until]`: `until` is `now` unless `--month` ends it before.
    pub since: i64,
    pub until: i64,
    /// The time the account's state is judged at (keys by status now, expiring).
    pub now: i64,
    /// Whether `--now` fixed "now" (else it is the clock).
    pub now_given: bool,
    /// The price in force at the latest good sync, and where it came from.
    pub price: Price,
    pub tiles: Tiles,
    pub usage: Usage,
    pub status: Status,
    pub expiring: Table,
    /// The `low-quota` report's rows below [`LOW_QUOTA_DOLLARS`] at the price in force.
    pub low_quota: Table,
    pub changes: Changes,
    pub exposed: Exposed,
    /// One panel per key of the top consumers table, in its order.
    pub panels: Vec<KeyPanel>,
    /// The alarms firing now, as `keysync check` finds them with the profile's rules; `None`
    /// when every rule is turned off.
    pub alarms: Option<Vec<Alarm>>,
}

/// The numbers of the summary tiles that the sections do not already hold.
pub(super) struct Tiles {
    /// The window's use, and that of the equal window just before it.
    pub spend: Spend,
    pub before: Spend,
    pub month: MonthToDate,
    /// Enabled keys expiring within [`EXPIRING_TILE`] (not those already expired).
    pub expiring: usize,
    /// Enabled limited keys with less than [`LOW_QUOTA_DOLLARS`] of quota left.
    pub low_quota: usize,
}

/// The use of the UTC month the window ends in, up to its end.
pub(super) struct MonthToDate {
    /// `(first second, end)` of the month: `(since, until]` as `usage --month` reads it.
    pub month: (i64, i64),
    pub spend: Spend,
    pub forecast: Option<Forecast>,
}

/// The month's use at its end if the recent daily rate goes on.
pub(super) struct Forecast {
    /// The days the rate was measured over (at most [`FORECAST_DAYS`]).
    pub days: f64,
    pub per_day: f64,
    pub total: f64,
}

/// Rows with named columns, as a report or `keysync usage` has them: the values as stored,
/// each column with what people read in it.
pub(super) struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

/// The exposed keys: enabled, unlimited and with no IP allowlist, most spent in the window
/// first (then by id).
pub(super) struct Exposed {
    pub keys: Vec<ExposedKey>,
}

pub(super) struct ExposedKey {
    pub id: i64,
    pub name: Option<String>,
    pub spend: Spend,
    /// The `unrestricted` report's `risks`.
    pub risks: String,
}

/// A top consumer: its daily use, state now and last changes.
pub(super) struct KeyPanel {
    pub id: i64,
    pub name: Option<String>,
    pub spend: Spend,
    pub daily: Vec<Spend>,
    /// `None` for a key removed since.
    pub state: Option<KeyState>,
    pub changes: Vec<(SyncPoint, DiffRow)>,
}

pub(super) struct Usage {
    /// `keysync usage --top TABLE_KEYS`'s rows for the window: id, name, used, usd, share.
    pub top_consumers: Table,
    /// The keys with use in the window that the table leaves out.
    pub keys_left_out: usize,
    pub days: Vec<Day>,
    /// The stacked series, bottom first: the [`CHART_KEYS`] largest keys, then the others.
    pub series: Vec<Series>,
}

/// One UTC day of the window, as the chart draws it.
pub(super) struct Day {
    pub date: NaiveDate,
    pub data: DayData,
    /// Whether a pull failed on it.
    pub failed_pull: bool,
}

/// What is known of a day's use. Use is dated at the good sync that saw it, so a day with no
/// good sync has none to show: not zero, unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DayData {
    NoData,
    /// A good sync that had one before it started on it; its use began after that one, on
    /// the day given when that is an earlier day than the one before (the use of several
    /// days).
    Data {
        since: Option<NaiveDate>,
    },
}

/// One stacked series of the daily chart: a key, or all the other keys together.
pub(super) struct Series {
    /// `None` for the others.
    pub key: Option<KeyTotal>,
    /// Use per day of the window.
    pub per_day: Vec<Spend>,
    /// Use over the window.
    pub total: Spend,
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
    /// Changed keys with a change in a field other than [`QUOTA_USE_FIELDS`], and those without.
    pub changed_otherwise: usize,
    pub only_used: usize,
    /// Keys changed per field, in column order; only fields that changed.
    pub per_field: Vec<(&'static str, usize)>,
    /// The most recent changes, newest sync first, each with the sync that recorded it.
    pub recent: Vec<(SyncPoint, DiffRow)>,
    /// How many good syncs the search for them went back over, when that was fewer than the
    /// window's (see [`VERSIONS_SEARCHED`]).
    pub searched: Option<usize>,
}

impl Page {
    /// Reads the page for the window `(since, until]` from the database at `db`, in one read
    /// transaction: every section describes the same syncs, whatever a pull commits meanwhile.
    pub(super) fn read(
        db: &Path,
        (since, until): (i64, i64),
        now: i64,
        now_given: bool,
        (price_setting, rules): (Option<NonZeroU64>, &Rules),
    ) -> Result<Page> {
        // Query mode pins the views' clock at `now`, as `keysync query --now` does.
        let mut store = Store::open_for_query(db, now)?;
        store.begin_snapshot()?;
        let latest = store.last_good_sync()?;
        #[cfg(feature = "test-support")]
        pause_for_tests();
        let uses = use_in_window(&store, (since, until), price_setting)?;
        let (sampling, points) = store.status_timeline(since, until)?;
        let price = price_in_force(&store, price_setting)?;
        let keys = store.live_key_states()?;
        let window = Window::new(since, until);
        let usage = usage(&uses, &window, days(&store, &window, since, until)?)?;
        let changes = changes(&mut store, since, until)?;
        let exposed = exposed(&store, &uses, now)?;
        let (below, low_quota) = low_quota(&store, &price, now)?;
        Ok(Page {
            alarms: alarms(&store, rules, now)?,
            db: db.display().to_string(),
            account: store.account()?.map(|(user_id, _)| user_id),
            sync: store.last_good_at_or_before(until)?,
            tiles: tiles(
                &store,
                ((since, until), &uses),
                (now, price_setting),
                (&keys, below),
            )?,
            low_quota,
            panels: panels(&uses, &keys, &changes, since, until)?,
            price,
            latest,
            since,
            until,
            now,
            now_given,
            usage,
            status: Status {
                sampling,
                points,
                now: count_by_status(&keys, now),
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
            exposed,
            changes,
        })
    }
}

/// The quota worth [`LOW_QUOTA_DOLLARS`] at the price in force, and the `low-quota` report's
/// rows below it.
fn low_quota(store: &Store, price: &Price, now: i64) -> Result<(i64, Table)> {
    let below = i64::try_from(price.quota_per_unit.get().saturating_mul(LOW_QUOTA_DOLLARS))
        .unwrap_or(i64::MAX);
    let args = ReportArgs {
        below: Some(below),
        ..ReportArgs::default()
    };
    Ok((below, report_table(store, Report::LowQuota, &args, now)?))
}

/// The alarms firing at `now`, as `keysync check` finds them; none when no rule is in force.
fn alarms(store: &Store, rules: &Rules, now: i64) -> Result<Option<Vec<Alarm>>> {
    match rules.evaluated().next() {
        Some(_) => evaluate(store, rules, now).map(Some),
        None => Ok(None),
    }
}

/// Test support only: with `KEYSYNC_DEBUG_HTML_PAUSE` set, the page stops after its first
/// read, says so on stderr and waits for a line on stdin, so that a test can commit a pull
/// between two of its reads. A build with default features has no such switch.
#[cfg(feature = "test-support")]
fn pause_for_tests() {
    use std::io::{BufRead, Write};
    if std::env::var_os("KEYSYNC_DEBUG_HTML_PAUSE").is_some() {
        let _ = writeln!(std::io::stderr(), "keysync: paused between reads");
        let _ = std::io::stdin().lock().read_line(&mut String::new());
    }
}

/// The tiles' numbers; `uses` are the window's, already read.
fn tiles(
    store: &Store,
    ((since, until), uses): ((i64, i64), &[KeyUse]),
    (now, price_setting): (i64, Option<NonZeroU64>),
    (keys, below): (&[KeyState], i64),
) -> Result<Tiles> {
    let spend_in = |window: (i64, i64)| -> Result<Spend> {
        Spend::of(&use_in_window(store, window, price_setting)?)
    };
    let before = (since - (until - since), since);
    Ok(Tiles {
        spend: Spend::of(uses)?,
        before: spend_in(before)?,
        month: month_to_date(store, until, &spend_in)?,
        expiring: keys
            .iter()
            .filter(|k| k.expires_within(now, EXPIRING_TILE))
            .count(),
        low_quota: keys.iter().filter(|k| k.is_low_on_quota(below)).count(),
    })
}

/// The month the window ends in, to its end, and its forecast at the rate of the last
/// [`FORECAST_DAYS`] with good syncs (none with less than a day of them).
fn month_to_date(
    store: &Store,
    until: i64,
    spend_in: &dyn Fn((i64, i64)) -> Result<Spend>,
) -> Result<MonthToDate> {
    let (first, end) = crate::time::month_around(until - 1);
    let spend = spend_in((first, until))?;
    let recent = until - FORECAST_DAYS * DAY;
    let measured_from = match store.last_good_at_or_before(recent)? {
        Some(_) => Some(recent),
        None => store
            .good_syncs_between(recent, until)?
            .first()
            .map(|s| s.started_at),
    };
    let forecast = match measured_from {
        Some(from) if until - from >= DAY => {
            let days = (until - from) as f64 / DAY as f64;
            let per_day = spend_in((from, until))?.dollars() / days;
            let left = (end - until) as f64 / DAY as f64;
            Some(Forecast {
                days,
                per_day,
                total: spend.dollars() + per_day * left,
            })
        }
        _ => None,
    };
    Ok(MonthToDate {
        month: (first, end),
        spend,
        forecast,
    })
}

fn usage(uses: &[KeyUse], window: &Window, days: Vec<Day>) -> Result<Usage> {
    let keys = key_totals(uses)?;
    let drawn = keys.len().min(CHART_KEYS);
    let mut series: Vec<Series> = keys[..drawn]
        .iter()
        .map(|key| {
            Ok(Series {
                per_day: window.daily(uses.iter().filter(|u| u.key_id == key.id))?,
                total: key.spend.clone(),
                key: Some(key.clone()),
            })
        })
        .collect::<Result<_>>()?;
    if keys.len() > drawn {
        let charted: HashSet<i64> = keys[..drawn].iter().map(|k| k.id).collect();
        let others = || uses.iter().filter(|u| !charted.contains(&u.key_id));
        series.push(Series {
            key: None,
            per_day: window.daily(others())?,
            total: Spend::of(others())?,
        });
    }
    Ok(Usage {
        top_consumers: Table {
            columns: per_key_columns(),
            rows: per_key(uses, Some(TABLE_KEYS), None)?,
        },
        keys_left_out: keys.len().saturating_sub(TABLE_KEYS),
        days,
        series,
    })
}

/// The window's days: which have use to show (a good sync started on them), since when, and
/// which saw a pull fail.
fn days(store: &Store, window: &Window, since: i64, until: i64) -> Result<Vec<Day>> {
    let good = store.good_syncs_between(since, until)?;
    let failed: HashSet<NaiveDate> = store
        .failed_syncs_between(since, until)?
        .into_iter()
        .map(utc_day)
        .collect();
    let mut previous = store
        .last_good_at_or_before(since)?
        .map(|s| utc_day(s.started_at));
    let mut synced = good.iter().map(|s| utc_day(s.started_at)).peekable();
    let mut days = Vec::new();
    for date in window.days() {
        let mut data = DayData::NoData;
        // The first good sync ever ends no interval: its day has no use to show either.
        while synced.next_if(|d| *d <= date).is_some() {
            if let Some(before) = previous {
                data = DayData::Data {
                    since: Some(before).filter(|p| (date - *p).num_days() > 1),
                };
            }
            previous = Some(date);
        }
        days.push(Day {
            date,
            data,
            failed_pull: failed.contains(&date),
        });
    }
    Ok(days)
}

/// The exposed keys, ranked by their use in the window.
fn exposed(store: &Store, uses: &[KeyUse], now: i64) -> Result<Exposed> {
    let report = report_table(store, Report::Unrestricted, &ReportArgs::default(), now)?;
    let spent: HashMap<i64, Spend> = key_totals(uses)?
        .into_iter()
        .map(|k| (k.id, k.spend))
        .collect();
    let column = |name: &str| report.columns.iter().position(|c| c.name == name);
    let [Some(risks), Some(unlimited), Some(any_ip)] =
        ["risks", "unlimited_quota", "any_ip"].map(column)
    else {
        let lost = "the unrestricted report lost its risk columns";
        return Err(crate::error::Error::Internal(lost.into()));
    };
    let flag = |value: &Value| matches!(value, Value::Integer(1));
    let mut keys: Vec<ExposedKey> = report
        .rows
        .iter()
        .filter(|row| flag(&row[unlimited]) && flag(&row[any_ip]))
        .filter_map(|row| match (&row[0], &row[1], &row[risks]) {
            (Value::Integer(id), name, Value::Text(risks)) => Some(ExposedKey {
                id: *id,
                name: match name {
                    Value::Text(name) => Some(name.clone()),
                    _ => None,
                },
                spend: spent.get(id).cloned().unwrap_or_default(),
                risks: risks.clone(),
            }),
            _ => None,
        })
        .collect();
    keys.sort_by(|a, b| b.spend.used().cmp(&a.spend.used()).then(a.id.cmp(&b.id)));
    Ok(Exposed { keys })
}

/// The panels of the top consumers: the table's keys in its order.
fn panels(
    uses: &[KeyUse],
    keys: &[KeyState],
    changes: &Changes,
    since: i64,
    until: i64,
) -> Result<Vec<KeyPanel>> {
    let window = Window::new(since, until);
    let states: HashMap<i64, &KeyState> = keys.iter().map(|k| (k.id, k)).collect();
    key_totals(uses)?
        .into_iter()
        .take(TABLE_KEYS)
        .map(|key| {
            Ok(KeyPanel {
                daily: window.daily(uses.iter().filter(|u| u.key_id == key.id))?,
                state: states.get(&key.id).map(|s| **s),
                changes: changes
                    .recent
                    .iter()
                    .filter(|(_, row)| row.id == key.id)
                    .cloned()
                    .collect(),
                id: key.id,
                name: key.name,
                spend: key.spend,
            })
        })
        .collect()
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
        changed_otherwise: 0,
        only_used: 0,
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
    count_changes(&mut found, &diff.rows);
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

/// Counts the window's net diff into `found`: keys added, removed, changed (in something other
/// than quota use, or only in that), and keys per field.
fn count_changes(found: &mut Changes, rows: &[DiffRow]) {
    found.added = keys_of(rows, Kind::Added);
    found.removed = keys_of(rows, Kind::Removed);
    found.changed = keys_of(rows, Kind::Changed);
    found.only_used = keys_that_only_used_quota(rows).len();
    found.changed_otherwise = found.changed - found.only_used;
    found.per_field = (0..DATA_COLUMNS.len())
        .map(|i| {
            let keys = rows.iter().filter(|r| r.field == Some(i)).count();
            (DATA_COLUMNS[i], keys)
        })
        .filter(|(_, keys)| *keys > 0)
        .collect();
}

/// The [`RECENT_CHANGES`] most recent changes but those of [`QUOTA_USE_FIELDS`]: the diffs of the
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
        .filter(|&i| !QUOTA_USE_FIELDS.contains(&DATA_COLUMNS[i]))
        .collect();
    let mut recent = Vec::new();
    let mut before = i64::MAX;
    loop {
        let steps = store.changing_syncs(
            (since, until),
            &QUOTA_USE_FIELDS,
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

    /// The usage of `uses` in `(since, until]`, every day without data.
    fn usage_of(uses: &[KeyUse], since: i64, until: i64) -> Usage {
        let window = Window::new(since, until);
        let days = window
            .days()
            .map(|date| Day {
                date,
                data: DayData::NoData,
                failed_pull: false,
            })
            .collect();
        usage(uses, &window, days).unwrap()
    }

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
        let usage = usage_of(&uses, 0, 3 * DAY - 1);
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
        let usage = usage_of(&uses, 0, 2 * DAY);
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
