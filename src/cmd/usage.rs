//! `keysync usage`: what each key used in a window, in quota and in US dollars, as totals per
//! key or per day, week or month.
//!
//! The attribution rule lives in one place, `store::usage`; `consumption` sums its per-day uses
//! into rows (the same rows `keysync html` shows). The formats for people (`table`, `markdown`)
//! write the rows' exact values as people read money (`$1,234.56`, `232,075,351`, `55.4`), and
//! the `table` format adds a `trend` sparkline of each key's daily use and a totals row; every
//! other format carries exactly the columns and values, so scripts and invoices see
//! stable data.

use std::num::NonZeroU64;

use crate::cmd::FormatArgs;
use crate::cmd::consumption::{
    per_key, per_key_columns, per_period, per_period_columns, trend_column,
};
use crate::config::{Settings, parse_quota_per_unit};
use crate::error::{Error, Result};
use crate::facts::spend::{Period, Window, use_in_window};
use crate::output::{Format, print_columns};
use crate::store::Store;
use crate::time::{Month, When, parse_month, parse_when, readable_time};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Start of the window (exclusive): a duration ago (30d), a date (2026-11-01, 00:00:00Z
    /// UTC), today, yesterday, or an RFC 3339 time
    #[arg(long, value_name = "WHEN", default_value = "30d", value_parser = parse_when)]
    pub since: When,
    /// End of the window (inclusive), in the forms of --since [default: now]
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<When>,
    /// One calendar month, UTC: YYYY-MM, or `last` (the month before this one). The window is
    /// from its first day to the next month's (or now, while it runs), so `--month 2026-11` is
    /// `--since 2026-11-01 --until 2026-12-01`
    #[arg(
        long,
        value_name = "MONTH",
        value_parser = parse_month,
        conflicts_with_all = ["since", "until"]
    )]
    pub month: Option<Month>,
    /// One row per period and key instead of one per key
    #[arg(long, value_enum, value_name = "PERIOD")]
    pub every: Option<Period>,
    /// Keep only the first N rows (without --every) [default: all]
    #[arg(long, value_name = "N", conflicts_with = "every")]
    pub top: Option<usize>,
    /// Quota units per US dollar, for every interval [default: the profile's quota_per_unit,
    /// else the price the gateway published at each pull, else 500000]
    #[arg(long, value_name = "N", value_parser = parse_quota_per_unit)]
    pub quota_per_unit: Option<NonZeroU64>,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
    let now = settings.now();
    let (since, until) = match args.month {
        Some(month) => month.window(now).map_err(Error::Usage)?,
        None => (
            args.since.at(now),
            args.until.map_or(now, |until| until.at(now)),
        ),
    };
    if since >= until {
        return Err(Error::Usage(format!(
            "--since ({}) is not before --until ({}): give a window that starts before it ends",
            readable_time(since),
            readable_time(until)
        )));
    }
    let store = Store::open_read_only(settings.db()?)?;
    let price_setting = args.quota_per_unit.or(settings.profile.quota_per_unit);
    let uses = use_in_window(&store, (since, until), price_setting)?;
    let format = args.format.row_format();
    match args.every {
        Some(period) => {
            let rows = per_period(&uses, period)?;
            print_columns(format, &per_period_columns(), rows.into_iter().map(Ok))
        }
        None => {
            let window = Window::new(since, until);
            let for_people = args.format.format == Format::Table;
            let mut columns = per_key_columns();
            if for_people {
                columns.push(trend_column());
            }
            let rows = per_key(&uses, args.top, for_people.then_some(&window))?;
            print_columns(format, &columns, rows.into_iter().map(Ok))
        }
    }
}
