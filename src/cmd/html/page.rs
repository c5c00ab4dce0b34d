//! The page itself: one HTML5 document with its style inline and its charts as inline SVG. No
//! script, no external resource, nothing a mail client or an offline browser would block.
//!
//! Built with `maud`, which escapes every value written into the document unless it is marked
//! as markup: only the fixed opening ([`HEAD_START`]), the style sheet and the SVG the page
//! builds itself are. Text from the database goes in as [`Shown`], which also shows control
//! and bidi characters escaped, as the terminal formats show them.

use maud::{Markup, PreEscaped, Render, html};
use rusqlite::types::Value;

use super::gather::{
    EXPIRING_TILE, FORECAST_DAYS, LOW_QUOTA_DOLLARS, MonthToDate, Page, TABLE_KEYS, Table,
};
use super::sections;
use crate::facts::spend::Spend;
use crate::output::{ColumnKind, dollars_for_people, escape_for_terminal};
use crate::store::price::PriceSource;
use crate::terminal::counted;
use crate::time::{readable_time, readable_when};

const STYLE: &str = include_str!("page.css");

/// How every page keysync writes begins, up to its version: `--out` recognises an earlier page
/// by these bytes alone, so changing them makes the pages already written unrecognised (and
/// refused without `--force`).
pub(crate) const HEAD_START: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n\
    <meta charset=\"utf-8\">\n<meta name=\"generator\" content=\"keysync ";

/// Text from the database (a name, a value) as the page shows it: control and bidi characters
/// escaped as the terminal formats show them (`\u{202e}`), then escaped for HTML, with `://`
/// written with an entity for its colon, so a name that is an address shows as text but the
/// file holds no URL.
pub(super) struct Shown<'a>(pub &'a str);

impl Render for Shown<'_> {
    fn render_to(&self, buffer: &mut String) {
        let mut html = String::new();
        escape_for_terminal(self.0).as_ref().render_to(&mut html);
        buffer.push_str(&html.replace("://", "&#58;//"));
    }
}

/// The whole document.
pub(super) fn render(page: &Page) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let head = html! {
        (version) (PreEscaped("\">"))
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="color-scheme" content="light dark";
        title { "keysync report: " (window_text(page)) }
        style { (PreEscaped(STYLE)) }
    };
    let body = html! {
        (header(page))
        (tiles(page))
        main {
            (sections::usage(page))
            (sections::panels(page))
            (sections::status(page))
            (sections::expiring(page))
            (sections::quota(page))
            (sections::changes(page))
            (sections::exposed(page))
            (sections::alerts(page))
        }
        footer { "Written by keysync " (version) " for " (readable_time(page.now)) ". Times are UTC." }
    };
    // The document is opened and its head and body are closed as text: maud writes elements
    // whole, and the page must begin with the fixed bytes `--out` recognises.
    format!(
        "{HEAD_START}{}\n</head>\n<body>\n{}\n</body>\n</html>\n",
        head.into_string(),
        body.into_string()
    )
}

/// `2025-11-19 01:00:00Z to 2025-12-19 01:00:00Z`
fn window_text(page: &Page) -> String {
    format!(
        "{} to {}",
        readable_time(page.since),
        readable_time(page.until)
    )
}

/// The `data-sync` every section carries: the latest good sync it describes (empty before any).
pub(super) fn data_sync(page: &Page) -> String {
    page.sync.map(|s| s.id.to_string()).unwrap_or_default()
}

fn header(page: &Page) -> Markup {
    let account = match page.account {
        Some(user_id) => format!("user {user_id}"),
        None => "none yet (no pull has seen keys)".to_string(),
    };
    let latest = match &page.latest {
        // As `keysync status` says it.
        Some(sync) => format!(
            "sync {} ({}), started {} ({})",
            sync.id,
            sync.status,
            readable_time(sync.started_at),
            readable_when(page.now - sync.started_at)
        ),
        None => "none yet: run keysync pull".to_string(),
    };
    let clock = if page.now_given { "--now" } else { "the clock" };
    html! {
        header data-sync=(data_sync(page)) {
            h1 { "keysync report" }
            dl.facts {
                dt { "Database" } dd #database { (Shown(&page.db)) }
                dt { "Account" } dd #account { (account) }
                dt { "Latest good sync" } dd #latest-sync { (latest) }
                dt { "Window" } dd #window {
                    "after " (readable_time(page.since)) " up to " (readable_time(page.until))
                }
                dt { "Now" } dd #now { (readable_time(page.now)) " (" (clock) ")" }
                dt { "Price" } dd #price { (price_text(page)) }
            }
        }
    }
}

/// `500,000 quota units per US dollar, published by the gateway at sync 12` (or set by the
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

/// One summary tile: its id, the section it links to, its headline as a plain number and as
/// people read it, what it counts, and a line more.
struct Tile {
    id: &'static str,
    section: &'static str,
    value: String,
    shown: String,
    label: String,
    note: String,
}

/// The alarms firing, where an alert rule is in force.
fn alerts_tile(page: &Page) -> Option<Tile> {
    let firing = page.alarms.as_ref()?.len().to_string();
    Some(Tile {
        id: "tile-alerts",
        section: "alerts",
        value: firing.clone(),
        shown: firing,
        label: "Alerts firing".to_string(),
        note: "alert rules in force, as keysync check finds them now".to_string(),
    })
}

/// The answers first: a row of tiles, each linking to its section.
fn tiles(page: &Page) -> Markup {
    let t = &page.tiles;
    let changes = &page.changes;
    let exposed = page.exposed.keys.len();
    let row = [
        spend_tile(page),
        month_tile(&t.month, page.until),
        Tile {
            id: "tile-expiring",
            section: "expiring",
            value: t.expiring.to_string(),
            shown: t.expiring.to_string(),
            label: format!("Expiring within {} days", EXPIRING_TILE / 86_400),
            note: "enabled keys, soonest first in Expiring".to_string(),
        },
        Tile {
            id: "tile-quota",
            section: "quota",
            value: t.low_quota.to_string(),
            shown: t.low_quota.to_string(),
            label: "Low on quota".to_string(),
            note: format!("enabled limited keys exhausted or under ${LOW_QUOTA_DOLLARS} left"),
        },
        Tile {
            id: "tile-changes",
            section: "changes",
            value: (changes.added + changes.removed + changes.changed_otherwise).to_string(),
            shown: (changes.added + changes.removed + changes.changed_otherwise).to_string(),
            label: "Keys changed".to_string(),
            note: format!(
                "{} added, {} removed, {} changed (not counting quota use)",
                changes.added, changes.removed, changes.changed_otherwise
            ),
        },
        Tile {
            id: "tile-exposed",
            section: "exposed",
            value: exposed.to_string(),
            shown: exposed.to_string(),
            label: "Exposed keys".to_string(),
            note: "enabled, unlimited quota, no IP allowlist".to_string(),
        },
    ]
    .into_iter()
    .chain(alerts_tile(page))
    .collect::<Vec<_>>();
    html! {
        nav.tiles aria-label="Summary" data-sync=(data_sync(page)) {
            @for tile in &row {
                a.tile id=(tile.id) href=(format!("#{}", tile.section)) data-value=(tile.value) {
                    span.tile-label { (tile.label) }
                    span.tile-value { (tile.shown) }
                    span.tile-note { (tile.note) }
                }
            }
        }
    }
}

/// The window's spend, against the equal window just before it.
fn spend_tile(page: &Page) -> Tile {
    let (now, before) = (&page.tiles.spend, &page.tiles.before);
    let days = readable_span(page.until - page.since);
    let delta = now.dollars() - before.dollars();
    let change = if before.used() == 0 {
        format!("no use in the {days} before")
    } else {
        let percent = delta / before.dollars().abs() * 100.0;
        format!(
            "{}{percent:.1}% ({}{}) on the {days} before",
            if percent > 0.0 { "+" } else { "" },
            if delta > 0.0 { "+" } else { "" },
            dollars_for_people(delta)
        )
    };
    Tile {
        id: "tile-spend",
        section: "usage",
        value: plain_dollars(now.dollars()),
        shown: spend_text(now),
        label: if page.until == page.now {
            format!("Spent in the last {days}")
        } else {
            format!("Spent in these {days}")
        },
        note: change,
    }
}

/// `30 days`, or `36h 0m` for a window of no whole number of days.
fn readable_span(seconds: i64) -> String {
    match seconds % 86_400 {
        0 => counted(seconds / 86_400, "day"),
        _ => crate::time::readable_age(seconds),
    }
}

/// The month to date, and where it is heading.
fn month_tile(month: &MonthToDate, until: i64) -> Tile {
    let first = readable_time(month.month.0);
    let name = chrono::DateTime::from_timestamp(month.month.0, 0)
        .map(|t| t.format("%B").to_string())
        .unwrap_or(first);
    let last_day = chrono::DateTime::from_timestamp(month.month.1 - 1, 0)
        .map(|t| t.format("%b %-d").to_string())
        .unwrap_or_default();
    let note = match &month.forecast {
        _ if until >= month.month.1 => "the whole month".to_string(),
        Some(f) => format!(
            "forecast {} by {last_day}, at {} a day (the last {} days' rate)",
            dollars_for_people(f.total),
            dollars_for_people(f.per_day),
            f.days.min(FORECAST_DAYS as f64).round()
        ),
        None => "no forecast yet: less than a day of good syncs".to_string(),
    };
    Tile {
        id: "tile-month",
        section: "usage",
        value: plain_dollars(month.spend.dollars()),
        shown: spend_text(&month.spend),
        label: format!("{name} to date"),
        note,
    }
}

/// A spend in dollars as people read it.
pub(super) fn spend_text(spend: &Spend) -> String {
    ColumnKind::Dollars.text(&spend.usd())
}

/// `1234.56`: the dollars people read, as a plain number for `data-value` (`0.00` for an
/// amount under a cent, which people read as `<$0.01`).
fn plain_dollars(dollars: f64) -> String {
    let shown = dollars_for_people(dollars);
    if shown.contains('<') {
        return "0.00".to_string();
    }
    shown.replace(['$', ','], "")
}

/// `232,075,351`: quota as the page's tables write it.
pub(super) fn quota_text(used: i64) -> String {
    ColumnKind::Quota.text(&Value::Integer(used))
}

/// A table in a wrapper that scrolls sideways on a narrow screen; numbers align right. Cells
/// are written as keysync's tables write them: dollars, quota and shares as people read them.
/// Each cell has its column's name as a class (`col-usd`), so the style can leave columns out
/// on a phone.
pub(super) fn table(table: &Table, id: &str) -> Markup {
    html! {
        div.table-wrap {
            table id=(id) {
                thead { tr { @for column in &table.columns {
                    th class=(column_class(&column.name, false)) { (Shown(&column.name)) }
                } } }
                tbody { @for row in &table.rows {
                    tr { @for (value, column) in row.iter().zip(&table.columns) {
                        @let number = matches!(value, Value::Integer(_) | Value::Real(_));
                        td class=(column_class(&column.name, number)) {
                            (Shown(&column.kind.text(value)))
                        }
                    } }
                } }
            }
        }
    }
}

/// `col-usd num`: a cell's classes, its column's name as one (`keys changed` as
/// `col-keys-changed`), and `num` for a number.
pub(super) fn column_class(name: &str, number: bool) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if number {
        format!("col-{name} num")
    } else {
        format!("col-{name}")
    }
}

/// `148 more keys: keysync usage lists them all.`: the keys a table leaves out.
pub(super) fn more_keys(left_out: usize, command: &str) -> Markup {
    html! {
        @if left_out > 0 {
            p.more { (counted(left_out, "more key")) ": " code { (command) } " lists them all." }
        }
    }
}

/// The top consumers table's size, for the text around it.
pub(super) const TOP_KEYS: usize = TABLE_KEYS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_shown_as_the_terminal_shows_it_and_addresses_lose_their_separator() {
        let shown = |text: &str| html! { (Shown(text)) }.into_string();
        assert_eq!(shown("plain"), "plain");
        assert_eq!(
            shown(r#"<b>"a" & 'b'</b>"#),
            "&lt;b&gt;&quot;a&quot; &amp; 'b'&lt;/b&gt;"
        );
        assert_eq!(shown("see https://x.test"), "see https&#58;//x.test");
        assert_eq!(shown("a\u{202e}b\0c\x1b"), "a\\u{202e}b\\x00c\\x1b");
    }

    #[test]
    fn plain_dollars_are_the_dollars_people_read() {
        assert_eq!(plain_dollars(1234.555), "1234.56");
        assert_eq!(plain_dollars(0.004), "0.00");
        assert_eq!(plain_dollars(-0.02), "-0.02");
        assert_eq!(plain_dollars(1_000_000.0), "1000000.00");
    }
}
