//! The page itself: one HTML5 document with its style inline and its charts as inline SVG. No
//! script, no external resource, nothing a mail client or an offline browser would block.
//! Every text from the database goes through [`escape`].

use std::borrow::Cow;
use std::fmt::Write;

use rusqlite::types::Value;

use super::chart::{Bar, BarChart, count, dollars};
use super::gather::{
    CHART_KEYS, Changes, EXPIRING_WITHIN, Page, RECENT_CHANGES, Series, Status, TABLE_KEYS, Table,
    USE_FIELDS, Usage,
};
use crate::api::model::DATA_COLUMNS;
use crate::cmd::readable_field;
use crate::facts::key::EffectiveStatus;
use crate::facts::spend::Spend;
use crate::output::{Column, ColumnKind};
use crate::store::price::PriceSource;
use crate::store::timeline::Sampling;
use crate::terminal::counted;
use crate::time::readable_time;

/// Text made safe inside HTML elements and attributes. `://` is written with an entity for
/// its colon, so a key named after a web address shows as text but the file holds no URL.
pub(super) fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) && !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => safe.push_str("&amp;"),
            '<' => safe.push_str("&lt;"),
            '>' => safe.push_str("&gt;"),
            '"' => safe.push_str("&quot;"),
            '\'' => safe.push_str("&#39;"),
            c => safe.push(c),
        }
    }
    Cow::Owned(safe.replace("://", "&#58;//"))
}

const STYLE: &str = include_str!("page.css");

/// How every page keysync writes begins, up to its version: `--out` recognises an earlier page
/// by these bytes alone, so changing them makes the pages already written unrecognised (and
/// refused without `--force`).
pub(crate) const HEAD_START: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n\
    <meta charset=\"utf-8\">\n<meta name=\"generator\" content=\"keysync ";

/// The whole document.
pub(super) fn render(page: &Page) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "{HEAD_START}{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <title>keysync report: {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&window_text(page))
    );
    header(&mut html, page);
    usage(&mut html, page);
    status(&mut html, &page.status, page.now);
    expiring(&mut html, &page.expiring);
    changes(&mut html, &page.changes);
    exposed(&mut html, &page.exposed);
    let _ = write!(
        html,
        "<footer>Written by keysync {} for {}. Times are UTC.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&readable_time(page.now))
    );
    html
}

/// `2025-11-19 01:00:00Z to 2025-12-19 01:00:00Z`
fn window_text(page: &Page) -> String {
    format!(
        "{} to {}",
        readable_time(page.since),
        readable_time(page.until)
    )
}

fn header(html: &mut String, page: &Page) {
    let account = match page.account {
        Some(user_id) => format!("user {user_id}"),
        None => "none yet (no pull has seen keys)".to_string(),
    };
    let latest = match &page.latest {
        Some(sync) => format!(
            "sync {} ({}), started {}",
            sync.id,
            sync.status,
            readable_time(sync.started_at)
        ),
        None => "none yet: run keysync pull".to_string(),
    };
    let now = if page.now_given {
        format!("{} (--now)", readable_time(page.now))
    } else {
        format!("{} (the clock)", readable_time(page.now))
    };
    let _ = write!(
        html,
        "<header>\n<h1>keysync report</h1>\n<dl class=\"facts\">\n\
         <dt>Database</dt><dd id=\"database\">{}</dd>\n\
         <dt>Account</dt><dd id=\"account\">{}</dd>\n\
         <dt>Latest good sync</dt><dd id=\"latest-sync\">{}</dd>\n\
         <dt>Window</dt><dd id=\"window\">after {} up to {}</dd>\n\
         <dt>Now</dt><dd id=\"now\">{}</dd>\n\
         <dt>Price</dt><dd id=\"price\">{}</dd>\n</dl>\n\
         <nav><a href=\"#usage\">Usage</a> <a href=\"#status\">Status</a> \
         <a href=\"#expiring\">Expiring</a> <a href=\"#changes\">Changes</a> \
         <a href=\"#exposed\">Exposed</a></nav>\n</header>\n",
        escape(&page.db),
        escape(&account),
        escape(&latest),
        escape(&readable_time(page.since)),
        escape(&readable_time(page.until)),
        escape(&now),
        escape(&price_text(page))
    );
}

/// `500000 quota units per US dollar, published by the gateway at sync 12` (or set by the
/// user, or the gateway's default when neither).
fn price_text(page: &Page) -> String {
    let origin = match page.price.source {
        PriceSource::Gateway { sync } => format!("published by the gateway at sync {sync}"),
        PriceSource::Setting => "set by --quota-per-unit or the profile".to_string(),
        PriceSource::Default => "the gateway's default (it published none)".to_string(),
    };
    let units = i64::try_from(page.price.quota_per_unit.get()).unwrap_or(i64::MAX);
    format!("{} quota units per US dollar, {origin}", quota_text(units))
}

fn usage(html: &mut String, page: &Page) {
    let usage = &page.usage;
    html.push_str("<section id=\"usage\">\n<h2>Usage</h2>\n");
    let total = match Spend::total(usage.series.iter().flat_map(|s| &s.per_day)) {
        Ok(total) => total,
        Err(error) => {
            let _ = writeln!(
                html,
                "<p class=\"empty\">{}</p>\n</section>",
                escape(&error.to_string())
            );
            return;
        }
    };
    if usage.series.is_empty() {
        html.push_str("<p class=\"empty\">No use recorded in this window.</p>\n</section>\n");
        return;
    }
    let stacked = match usage.series.iter().filter(|s| s.key.is_none()).count() {
        0 => "each key that used anything".to_string(),
        _ => format!("the {CHART_KEYS} keys that used the most, then all others together"),
    };
    let _ = writeln!(
        html,
        "<p>Quota used per UTC day, in US dollars, stacked by key: {stacked}. {} quota units \
         in all, {}. A key's use between two pulls is dated at the later one; a refund is \
         negative use.</p>",
        quota_text(total.used()),
        usd_text(&total.usd())
    );
    html.push_str("<figure class=\"chart-box\">\n");
    html.push_str(&usage_chart(usage).svg());
    html.push_str("\n<figcaption><ul class=\"legend\">");
    for (i, series) in usage.series.iter().enumerate() {
        let _ = write!(
            html,
            "<li><span class=\"swatch s{i}\"></span>{}</li>",
            escape(&series_name(series))
        );
    }
    html.push_str("</ul></figcaption>\n</figure>\n<h3>Top consumers</h3>\n");
    let _ = writeln!(
        html,
        "<p>The rows of <code>keysync usage --top {TABLE_KEYS}</code> for the same window \
         (<code>--format csv</code> has the exact amounts).</p>"
    );
    table(html, &usage.top_consumers, "top-consumers");
    if usage.keys_left_out > 0 {
        let _ = writeln!(
            html,
            "<p class=\"empty\">{} with less use in the window: <code>keysync usage</code> \
             lists every key.</p>",
            counted(usage.keys_left_out, "more key")
        );
    }
    html.push_str("</section>\n");
}

/// `232,075,351`: quota as the page's tables write it.
fn quota_text(used: i64) -> String {
    ColumnKind::Quota.text(&Value::Integer(used))
}

/// `$41.39`: an amount in US dollars as the page's tables write it.
fn usd_text(usd: &Value) -> String {
    ColumnKind::Dollars.text(usd)
}

/// `acme-prod (#7)`, or `other keys` for the stack of the rest.
fn series_name(series: &Series) -> String {
    match &series.key {
        Some(key) => format!(
            "{} (#{})",
            key.name.as_deref().unwrap_or("(no name)"),
            key.id
        ),
        None => "other keys".to_string(),
    }
}

fn usage_chart<'a>(usage: &Usage) -> BarChart<'a> {
    let bars = usage
        .days
        .iter()
        .enumerate()
        .map(|(d, day)| {
            let date = day.format("%Y-%m-%d").to_string();
            let day_total =
                Spend::total(usage.series.iter().map(|s| &s.per_day[d])).unwrap_or_default();
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
                        usd_text(&spend.usd())
                    );
                    (spend.dollars(), format!("s{i}"), title)
                })
                .collect();
            Bar {
                label: day.format("%b %-d").to_string(),
                title: format!(
                    "{date}: {} quota, {}",
                    quota_text(day_total.used()),
                    usd_text(&day_total.usd())
                ),
                segments,
            }
        })
        .collect();
    BarChart {
        description: "Daily quota use in US dollars, stacked by key",
        y_title: "US dollars per day",
        x_title: "day (UTC)",
        bars,
        tick_label: &dollars,
        whole: false,
    }
}

fn status(html: &mut String, status: &Status, now: i64) {
    html.push_str("<section id=\"status\">\n<h2>Key status</h2>\n");
    if status.points.is_empty() {
        html.push_str("<p class=\"empty\">No good sync in this window.</p>\n");
    } else {
        let at = match status.sampling {
            Sampling::EverySync => {
                format!("at each of the window's {} good syncs", status.points.len())
            }
            Sampling::LastOfEachDay => format!(
                "at the last good sync of each UTC day ({} points; the window has more syncs \
                 than the chart can show one by one)",
                status.points.len()
            ),
        };
        let _ = write!(
            html,
            "<p>Live keys by effective status {at}, judged at the time each sync started: an \
             enabled key past its expiry counts as expired, an enabled limited key with no \
             quota left as exhausted.</p>\n<figure class=\"chart-box\">\n{}\n\
             <figcaption><ul class=\"legend\">",
            status_chart(status).svg()
        );
        for (i, name) in live_status_names().iter().enumerate() {
            let _ = write!(html, "<li><span class=\"swatch st{i}\"></span>{name}</li>");
        }
        html.push_str("</ul></figcaption>\n</figure>\n");
    }
    let _ = write!(
        html,
        "<h3>Now</h3>\n<p>Live keys by effective status at {}.</p>\n",
        readable_time(now)
    );
    let rows = live_status_names()
        .iter()
        .zip(status.now)
        .map(|(name, keys)| vec![Value::Text(name.to_string()), Value::Integer(keys)])
        .collect();
    let now_table = Table {
        columns: Column::plain(&["status", "keys"]),
        rows,
    };
    table(html, &now_table, "status-now");
    html.push_str("</section>\n");
}

/// The words for the live effective statuses, in the order of every count of them.
fn live_status_names() -> [&'static str; 5] {
    EffectiveStatus::LIVE.map(EffectiveStatus::name)
}

fn status_chart<'a>(status: &Status) -> BarChart<'a> {
    let bars = status
        .points
        .iter()
        .map(|point| {
            let when = readable_time(point.sync.started_at);
            let counted: Vec<String> = live_status_names()
                .iter()
                .zip(point.counts)
                .map(|(name, keys)| format!("{keys} {name}"))
                .collect();
            let segments = live_status_names()
                .iter()
                .zip(point.counts)
                .enumerate()
                .map(|(i, (name, keys))| {
                    (
                        keys as f64,
                        format!("st{i}"),
                        format!("sync {} ({when}): {keys} {name}", point.sync.id),
                    )
                })
                .collect();
            let date = chrono::DateTime::from_timestamp(point.sync.started_at, 0)
                .map(|t| t.format("%b %-d").to_string())
                .unwrap_or_default();
            Bar {
                label: date,
                title: format!("sync {} ({when}): {}", point.sync.id, counted.join(", ")),
                segments,
            }
        })
        .collect();
    BarChart {
        description: "Live keys by effective status at each good sync",
        y_title: "live keys",
        x_title: "sync (UTC date)",
        bars,
        tick_label: &count,
        whole: true,
    }
}

fn expiring(html: &mut String, rows: &Table) {
    let days = EXPIRING_WITHIN.as_secs() / 86_400;
    let _ = write!(
        html,
        "<section id=\"expiring\">\n<h2>Expiring soon</h2>\n<p>Enabled keys that expire in the \
         next {days} days, soonest first, and those already past their expiry (negative days \
         left): <code>keysync query --report expiring-soon --within {days}d</code>.</p>\n"
    );
    if rows.rows.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"empty\">No enabled key expires in the next {days} days.</p>"
        );
    } else {
        table(html, rows, "expiring-keys");
    }
    html.push_str("</section>\n");
}

fn changes(html: &mut String, changes: &Changes) {
    html.push_str("<section id=\"changes\">\n<h2>Changes</h2>\n");
    let Some((from, to)) = changes.span else {
        html.push_str(
            "<p class=\"empty\">Nothing to compare: the window needs two good syncs.</p>\n\
             </section>\n",
        );
        return;
    };
    let _ = writeln!(
        html,
        "<p id=\"changes-summary\">From {} to {}: <strong>{} added</strong>, \
         <strong>{} changed</strong>, <strong>{} removed</strong> (keys; as <code>keysync diff \
         {} {}</code> counts them).</p>",
        escape(&from.describe()),
        escape(&to.describe()),
        changes.added,
        changes.changed,
        changes.removed,
        from.id,
        to.id
    );
    if !changes.per_field.is_empty() {
        table(html, &per_field(changes), "changes-per-field");
    }
    let searched = match changes.searched {
        Some(syncs) => format!("the window's last {syncs} good syncs"),
        None => "the window's syncs".to_string(),
    };
    let _ = writeln!(
        html,
        "<h3>Most recent</h3>\n<p>The last {RECENT_CHANGES} changes of {searched}, newest \
         first, without {} (they move with every use: see Usage).</p>",
        USE_FIELDS.join(", ")
    );
    if changes.recent.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"empty\">No change but use in {searched}.</p>"
        );
    } else {
        table(html, &recent_changes(changes), "recent-changes");
    }
    html.push_str("</section>\n");
}

/// How many keys changed each field.
fn per_field(changes: &Changes) -> Table {
    Table {
        columns: Column::plain(&["field", "keys changed"]),
        rows: changes
            .per_field
            .iter()
            .map(|(field, keys)| vec![Value::Text(field.to_string()), Value::Integer(*keys as i64)])
            .collect(),
    }
}

/// The most recent changes, one row each, their values as people read them.
fn recent_changes(changes: &Changes) -> Table {
    Table {
        columns: Column::plain(&["sync", "time", "kind", "id", "name", "field", "old", "new"]),
        rows: changes
            .recent
            .iter()
            .map(|(sync, row)| {
                let field = row.field.map(|i| DATA_COLUMNS[i]);
                let shown = |value: &Value| match field {
                    Some(name) => readable_field(name, value.clone()),
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
            .collect(),
    }
}

fn exposed(html: &mut String, rows: &Table) {
    html.push_str(
        "<section id=\"exposed\">\n<h2>Exposed keys</h2>\n<p>Enabled keys with unlimited \
         quota, no IP allowlist, no model limits or no expiry, most exposed first: \
         <code>keysync query --report unrestricted</code>.</p>\n",
    );
    if rows.rows.is_empty() {
        html.push_str("<p class=\"empty\">No enabled key is exposed.</p>\n");
    } else {
        table(html, rows, "exposed-keys");
    }
    html.push_str("</section>\n");
}

/// Text up to this long is kept on one line in a table cell.
const SHORT_TEXT: usize = 24;

/// A table in a wrapper that scrolls sideways on a narrow screen; numbers align right. Cells
/// are written as keysync's tables write them: dollars, quota and shares as people read them.
fn table(html: &mut String, table: &Table, id: &str) {
    let _ = write!(
        html,
        "<div class=\"table-wrap\"><table id=\"{id}\">\n<thead><tr>"
    );
    for column in &table.columns {
        let _ = write!(html, "<th>{}</th>", escape(&column.name));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        html.push_str("<tr>");
        for (value, column) in row.iter().zip(&table.columns) {
            let text = column.kind.text(value);
            // Short text (a time, a name) stays on one line and the table scrolls; only long
            // text wraps.
            let class = match value {
                Value::Integer(_) | Value::Real(_) => " class=\"num\"",
                _ if text.chars().count() <= SHORT_TEXT => " class=\"short\"",
                _ => "",
            };
            let _ = write!(html, "<td{class}>{}</td>", escape(&text));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_addresses_lose_their_scheme_separator() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(
            escape(r#"<b>"a" & 'b'</b>"#),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
        assert_eq!(escape("see https://x.test"), "see https&#58;//x.test");
    }
}
