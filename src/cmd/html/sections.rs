//! The page's sections, each answering one question: what was spent and by which keys (with a
//! panel per top consumer), how the keys' statuses went, what expires, which keys run out of
//! quota, what changed, and which keys are exposed. Each carries the `data-sync` of the state
//! it describes.

use maud::{Markup, html};
use rusqlite::types::Value;

use super::chart::{Bar, BarChart, NARROW, WIDE, count, dollars, sparkline};
use super::gather::{
    CHART_KEYS, DayData, EXPIRING_WITHIN, EXPOSED_KEYS, KeyPanel, Page, RECENT_CHANGES, Series,
    Table, Usage,
};
use super::page::{
    Shown, TOP_KEYS, column_class, data_sync, more_keys, quota_text, spend_text, table,
};
use crate::alerts::{COLUMNS as CHECK_COLUMNS, row as check_row};
use crate::api::model::DATA_COLUMNS;
use crate::cmd::readable_field;
use crate::facts::key::EffectiveStatus;
use crate::facts::spend::Spend;
use crate::output::{Column, ColumnKind, dollars_for_people};
use crate::store::diff::{DiffRow, QUOTA_USE_FIELDS};
use crate::store::points::SyncPoint;
use crate::store::timeline::Sampling;
use crate::terminal::counted;
use crate::time::readable_time;

pub(super) fn usage(page: &Page) -> Markup {
    let usage = &page.usage;
    let total = &page.tiles.spend;
    html! {
        section #usage data-sync=(data_sync(page)) {
            h2 { "Usage" }
            @if usage.series.is_empty() {
                p.empty { "No use recorded in this window." }
            } @else {
                p {
                    "Quota used per UTC day, in US dollars, stacked by key: "
                    @if usage.series.iter().any(|s| s.key.is_none()) {
                        "the " (CHART_KEYS) " keys that used the most, then all others together. "
                    } @else { "each key that used anything. " }
                    strong { (spend_text(total)) } " in all (" (quota_text(total.used()))
                    " quota units). A key's use between two pulls is counted on the day of the \
                    later one; a refund is negative use, drawn below the axis. A day with no good \
                    sync has no data: it is hatched, never drawn as $0."
                }
                figure.chart-box {
                    @let chart = usage_chart(usage);
                    (chart.svg(WIDE)) (chart.svg(NARROW))
                    figcaption { ul.legend {
                        @for (i, series) in usage.series.iter().enumerate() {
                            li { span class=(format!("swatch s{i}")) {}
                                (Shown(&series_name(series))) ": " (spend_text(&series.total)) }
                        }
                        li { span.swatch.no-data-fill {} "no data" }
                        li { span.swatch.failed-pull {} "a pull failed" }
                    } }
                }
            }
            h3 { "Top consumers" }
            p { "The rows of " code { "keysync usage --top " (TOP_KEYS) } " for the same window \
                (" code { "--format csv" } " has the exact amounts). Each name opens its key's panel." }
            (top_consumers(&usage.top_consumers))
            (more_keys(usage.keys_left_out, "keysync usage"))
        }
    }
}

/// The top consumers table: [`table`]'s, each name a link to its key's panel.
fn top_consumers(rows: &Table) -> Markup {
    html! {
        div.table-wrap {
            table #top-consumers {
                thead { tr { @for column in &rows.columns {
                    th class=(column_class(&column.name, false)) { (column.name) }
                } } }
                tbody { @for row in &rows.rows { tr {
                    @for (value, column) in row.iter().zip(&rows.columns) {
                        @let text = column.kind.text(value);
                        @if column.name == "name" {
                            td.col-name { a.ellipsis href=(format!("#key-{}", ColumnKind::Plain.text(&row[0])))
                                title=(Shown(&text)) { (Shown(&text)) } }
                        } @else {
                            td class=(column_class(&column.name, true)) { (text) }
                        }
                    }
                } } }
            }
        }
    }
}

/// `acme-prod (#7)`, or `other keys` for the stack of the rest.
fn series_name(series: &Series) -> String {
    match &series.key {
        Some(key) => key_name(key.name.as_deref(), key.id),
        None => "other keys".to_string(),
    }
}

/// `acme-prod (#7)`
fn key_name(name: Option<&str>, id: i64) -> String {
    format!("{} (#{id})", name.unwrap_or("(no name)"))
}

fn usage_chart<'a>(usage: &Usage) -> BarChart<'a> {
    let bars = usage
        .days
        .iter()
        .enumerate()
        .map(|(d, day)| {
            let date = day.date.format("%Y-%m-%d").to_string();
            let label = day.date.format("%b %-d").to_string();
            let mut bar = match day.data {
                DayData::NoData => {
                    let mut bar = Bar::new(
                        label,
                        format!("{date}: no data (no good sync on this day)"),
                        Vec::new(),
                    );
                    bar.no_data = true;
                    bar
                }
                DayData::Data { since } => {
                    let spans = since
                        .map(|s| format!(" (use between {} and {date})", s.format("%Y-%m-%d")));
                    day_bar(usage, d, &date, label, spans.unwrap_or_default())
                }
            };
            bar.failed = day.failed_pull.then(|| {
                format!("{date}: a pull failed (its use is counted at the next good sync)")
            });
            bar
        })
        .collect();
    BarChart {
        description: "Daily quota use in US dollars, stacked by key",
        y_title: "US dollars per day",
        x_title: "day (UTC)",
        bars,
        tick_label: &dollars,
        least_step: 0.01,
    }
}

/// The bar of day `d`, with data: its total and its segments per series.
fn day_bar(usage: &Usage, d: usize, date: &str, label: String, spans: String) -> Bar {
    let day_total = Spend::total(usage.series.iter().map(|s| &s.per_day[d])).unwrap_or_default();
    let segments = usage
        .series
        .iter()
        .enumerate()
        .map(|(i, series)| {
            let spend = &series.per_day[d];
            let title = format!(
                "{date}, {}: {} quota, {}",
                series_name(series),
                quota_text(spend.used()),
                spend_text(spend)
            );
            (spend.dollars(), format!("s{i}"), title)
        })
        .collect();
    let title = format!(
        "{date}: {} quota, {}{spans}",
        quota_text(day_total.used()),
        spend_text(&day_total)
    );
    Bar::new(label, title, segments)
}

/// A panel per top consumer: its daily use, status, expiry, quota left and last changes.
pub(super) fn panels(page: &Page) -> Markup {
    html! {
        section #keys data-sync=(data_sync(page)) {
            h2 { "Top consumers, key by key" }
            @if page.panels.is_empty() {
                p.empty { "No key used anything in this window." }
            }
            div.panels { @for panel in &page.panels { (key_panel(page, panel)) } }
        }
    }
}

fn key_panel(page: &Page, panel: &KeyPanel) -> Markup {
    let days: Vec<(Option<f64>, String)> = page
        .usage
        .days
        .iter()
        .zip(&panel.daily)
        .map(|(day, spend)| match day.data {
            DayData::NoData => (None, format!("{}: no data", day.date)),
            DayData::Data { .. } => (
                Some(spend.dollars()),
                format!("{}: {}", day.date, spend_text(spend)),
            ),
        })
        .collect();
    let state = panel.state.as_ref();
    let status = state.map_or("removed", |s| s.effective_status(page.now).name());
    let expires = state
        .and_then(|s| s.expired_time)
        .map_or_else(|| "unknown".to_string(), readable_time);
    let left = match state {
        Some(s) if s.unlimited_quota == Some(true) => "unlimited".to_string(),
        Some(s) => match (s.quota_left(), s.quota_left_usd(page.price.quota_per_unit)) {
            (Some(left), Some(usd)) => {
                format!("{} ({})", quota_text(left), dollars_for_people(usd))
            }
            _ => "unknown".to_string(),
        },
        None => "none (removed)".to_string(),
    };
    html! {
        article.key-panel id=(format!("key-{}", panel.id)) {
            h3 { (Shown(&key_name(panel.name.as_deref(), panel.id))) }
            (sparkline(&days, "daily use in US dollars"))
            dl {
                dt { "spent" } dd.spent { (spend_text(&panel.spend)) }
                dt { "status" } dd.status { (status) }
                dt { "expires" } dd.expires { (expires) }
                dt { "quota left" } dd.quota-left { (left) }
            }
            @if panel.changes.is_empty() {
                p.no-changes { "No change but quota use among the page's recent changes." }
            } @else {
                ul.key-changes { @for (sync, row) in &panel.changes {
                    li { (change_text(sync, row)) }
                } }
            }
        }
    }
}

/// `sync 12 (2025-12-19 08:00:00Z): status enabled → disabled`
fn change_text(sync: &SyncPoint, row: &DiffRow) -> Markup {
    let field = row.field.map(|i| DATA_COLUMNS[i]);
    html! {
        (sync.describe()) ": " (row.kind.as_str())
        @if let Some(field) = field {
            " " (field) " " (Shown(&value_text(field, &row.old))) " → " (Shown(&value_text(field, &row.new)))
        }
    }
}

/// A field's value as people read it: times as the terminal writes them, statuses as words.
fn value_text(field: &str, value: &Value) -> String {
    ColumnKind::Plain.text(&readable_field(field, value.clone()))
}

pub(super) fn status(page: &Page) -> Markup {
    let status = &page.status;
    let at = match status.sampling {
        Sampling::EverySync => {
            format!("at each of the window's {} good syncs", status.points.len())
        }
        Sampling::LastOfEachDay => format!(
            "at the last good sync of each UTC day ({} points; the window has more syncs than \
             the chart can show one by one)",
            status.points.len()
        ),
    };
    let rows = live_status_names()
        .iter()
        .zip(status.now)
        .map(|(name, keys)| vec![Value::Text(name.to_string()), Value::Integer(keys)])
        .collect();
    let now_table = Table {
        columns: Column::plain(&["status", "keys"]),
        rows,
    };
    html! {
        section #status data-sync=(data_sync(page)) {
            h2 { "Key status" }
            @if status.points.is_empty() {
                p.empty { "No good sync in this window." }
            } @else {
                p { "Live keys by effective status " (at) ", judged at the time each sync started: \
                    an enabled key past its expiry counts as expired, an enabled limited key with \
                    no quota left as exhausted." }
                figure.chart-box {
                    @let chart = status_chart(page);
                    (chart.svg(WIDE)) (chart.svg(NARROW))
                    figcaption { ul.legend { @for (i, name) in live_status_names().iter().enumerate() {
                        li { span class=(format!("swatch st{i}")) {} (name) }
                    } } }
                }
            }
            h3 { "Now" }
            p { "Live keys by effective status at " (readable_time(page.now)) "." }
            (table(&now_table, "status-now"))
        }
    }
}

/// The words for the live effective statuses, in the order of every count of them.
fn live_status_names() -> [&'static str; 5] {
    EffectiveStatus::LIVE.map(EffectiveStatus::name)
}

fn status_chart<'a>(page: &Page) -> BarChart<'a> {
    let bars = page
        .status
        .points
        .iter()
        .map(|point| {
            let when = readable_time(point.sync.started_at);
            let named = live_status_names().into_iter().zip(point.counts);
            let counted: Vec<String> = named.clone().map(|(n, k)| format!("{k} {n}")).collect();
            let segments = named
                .enumerate()
                .map(|(i, (name, keys))| {
                    let title = format!("sync {} ({when}): {keys} {name}", point.sync.id);
                    (keys as f64, format!("st{i}"), title)
                })
                .collect();
            let date = chrono::DateTime::from_timestamp(point.sync.started_at, 0)
                .map(|t| t.format("%b %-d").to_string())
                .unwrap_or_default();
            let title = format!("sync {} ({when}): {}", point.sync.id, counted.join(", "));
            Bar::new(date, title, segments)
        })
        .collect();
    BarChart {
        description: "Live keys by effective status at each good sync",
        y_title: "live keys",
        x_title: "sync (UTC date)",
        bars,
        tick_label: &count,
        least_step: 1.0,
    }
}

/// The expiring keys first, soonest first; then those past their expiry that are still
/// enabled, counted, the list folded.
pub(super) fn expiring(page: &Page) -> Markup {
    let days = EXPIRING_WITHIN.as_secs() / 86_400;
    let report = &page.expiring;
    // The `expiring-soon` report's last column: 1 for a key already past its expiry.
    let past = |row: &Vec<Value>| matches!(row.last(), Some(Value::Integer(1)));
    // Each part says by where it stands whether its keys expired: the flag column is left out.
    let shown = report.columns.len().saturating_sub(1);
    let part = |expired: bool| Table {
        columns: report.columns[..shown].to_vec(),
        rows: report
            .rows
            .iter()
            .filter(|r| past(r) == expired)
            .map(|r| r[..shown].to_vec())
            .collect(),
    };
    let (soon, expired) = (part(false), part(true));
    html! {
        section #expiring data-sync=(data_sync(page)) {
            h2 { "Expiring soon" }
            p { "Enabled keys that expire in the next " (days) " days, soonest first: "
                code { "keysync query --report expiring-soon --within " (days) "d" } "." }
            @if soon.rows.is_empty() {
                p.empty { "No enabled key expires in the next " (days) " days." }
            } @else {
                (table(&soon, "expiring-keys"))
            }
            @if !expired.rows.is_empty() {
                details #expired {
                    summary { strong { (counted(expired.rows.len(), "key")) }
                        " expired but still enabled (upstream marks a key expired only when it \
                        is next used)" }
                    (table(&expired, "expired-keys"))
                }
            }
        }
    }
}

/// Enabled limited keys exhausted or nearly: the `low-quota` report's rows.
pub(super) fn quota(page: &Page) -> Markup {
    let report = &page.low_quota;
    // The report's last column, `is_exhausted`, as the status it means.
    let mut columns = report.columns.clone();
    if let Some(last) = columns.last_mut() {
        *last = Column::plain(&["status"]).remove(0);
    }
    let status = |flag: &Value| match flag {
        Value::Integer(1) => EffectiveStatus::Exhausted.name(),
        _ => EffectiveStatus::Enabled.name(),
    };
    let rows = &Table {
        columns,
        rows: report
            .rows
            .iter()
            .map(|row| match row.split_last() {
                Some((flag, rest)) => [rest, &[Value::Text(status(flag).to_string())]].concat(),
                None => Vec::new(),
            })
            .collect(),
    };
    html! {
        section #quota data-sync=(data_sync(page)) {
            h2 { "Low on quota" }
            p { "Enabled keys with a quota limit that are exhausted or have less than "
                (dollars_for_people(1.0)) " left, exhausted first: " code { "keysync query --report low-quota" } "." }
            @if rows.rows.is_empty() {
                p.empty { "No enabled key is low on quota." }
            } @else {
                (table(rows, "low-quota-keys"))
            }
        }
    }
}

pub(super) fn changes(page: &Page) -> Markup {
    let changes = &page.changes;
    html! {
        section #changes data-sync=(data_sync(page)) {
            h2 { "Changes" }
            @if let Some((from, to)) = changes.span {
                p #changes-summary { "From " (from.describe()) " to " (to.describe()) ": "
                    strong { (changes.added) " added" } ", "
                    strong { (changes.changed) " changed" } ", "
                    strong { (changes.removed) " removed" }
                    " (keys; as " code { "keysync diff " (from.id) " " (to.id) } " counts them)." }
                p #changes-use { (counted(changes.only_used, "key")) " only used quota (their "
                    (QUOTA_USE_FIELDS.join(", ")) " changed, nothing else); "
                    (changes.changed_otherwise) " changed otherwise." }
                @if !changes.per_field.is_empty() {
                    (table(&per_field(page), "changes-per-field"))
                }
                (recent(page))
            } @else {
                p.empty { "Nothing to compare: the window needs two good syncs." }
            }
        }
    }
}

/// How many keys changed each field.
fn per_field(page: &Page) -> Table {
    Table {
        columns: Column::plain(&["field", "keys changed"]),
        rows: page
            .changes
            .per_field
            .iter()
            .map(|(field, keys)| vec![Value::Text(field.to_string()), Value::Integer(*keys as i64)])
            .collect(),
    }
}

/// The most recent changes but quota use, one row each, their values as people read them.
fn recent(page: &Page) -> Markup {
    let changes = &page.changes;
    let searched = match changes.searched {
        Some(syncs) => format!("the window's last {syncs} good syncs"),
        None => "the window's syncs".to_string(),
    };
    let rows = changes
        .recent
        .iter()
        .map(|(sync, row)| {
            let field = row.field.map(|i| DATA_COLUMNS[i]);
            let shown = |value: &Value| match field {
                Some(name) => Value::Text(value_text(name, value)),
                None => value.clone(),
            };
            vec![
                Value::Integer(sync.id),
                Value::Text(readable_time(sync.started_at)),
                Value::Text(row.kind.as_str().to_string()),
                Value::Integer(row.id),
                row.name.clone(),
                field.map_or(Value::Null, |name| Value::Text(name.to_string())),
                shown(&row.old),
                shown(&row.new),
            ]
        })
        .collect();
    let recent = Table {
        columns: Column::plain(&["sync", "time", "kind", "id", "name", "field", "old", "new"]),
        rows,
    };
    html! {
        h3 { "Most recent" }
        p { "The last " (RECENT_CHANGES) " changes of " (searched) ", newest first, without "
            (QUOTA_USE_FIELDS.join(", ")) " (they move with every use: see Usage)." }
        @if recent.rows.is_empty() {
            p.empty { "No change but use in " (searched) "." }
        } @else {
            (table(&recent, "recent-changes"))
        }
    }
}

pub(super) fn exposed(page: &Page) -> Markup {
    let keys = &page.exposed.keys;
    let rows = keys
        .iter()
        .take(EXPOSED_KEYS)
        .map(|k| {
            vec![
                Value::Integer(k.id),
                k.name.clone().map_or(Value::Null, Value::Text),
                k.spend.usd(),
                Value::Text(k.risks.clone()),
            ]
        })
        .collect();
    let shown = Table {
        columns: vec![
            Column::new("id", ColumnKind::Plain),
            Column::new("name", ColumnKind::Plain),
            Column::new("spent", ColumnKind::Dollars),
            Column::new("risks", ColumnKind::Plain),
        ],
        rows,
    };
    html! {
        section #exposed data-sync=(data_sync(page)) {
            h2 { "Exposed keys" }
            p #exposed-count { strong { (counted(keys.len(), "enabled key")) }
                " with unlimited quota and no IP allowlist, the most spent in the window first \
                (all the risks of each: " code { "keysync query --report unrestricted" } ")." }
            @if !keys.is_empty() {
                (table(&shown, "exposed-keys"))
                (more_keys(keys.len().saturating_sub(EXPOSED_KEYS), "keysync query --report unrestricted"))
            }
        }
    }
}

/// The alarms firing now: the rows `keysync check` prints, but `since`, which only its state
/// knows. None when every alert rule is turned off.
pub(super) fn alerts(page: &Page) -> Markup {
    let Some(alarms) = &page.alarms else {
        return html! {};
    };
    let shown: Vec<usize> = (0..CHECK_COLUMNS.len())
        .filter(|i| CHECK_COLUMNS[*i] != "since")
        .collect();
    let rows = Table {
        columns: Column::plain(&shown.iter().map(|i| CHECK_COLUMNS[*i]).collect::<Vec<_>>()),
        rows: alarms
            .iter()
            .map(|alarm| {
                let row = check_row(alarm, true);
                shown.iter().map(|i| row[*i].clone()).collect()
            })
            .collect(),
    };
    html! {
        section #alerts data-sync=(data_sync(page)) {
            h2 { "Alerts" }
            p { "The alarms firing now under the profile's alert rules, as "
                code { "keysync check" } " finds them." }
            @if rows.rows.is_empty() {
                p.empty { "No alarm fires." }
            } @else {
                (table(&rows, "alarms"))
            }
        }
    }
}
