//! `keysync html --out FILE`: one self-contained HTML page about the account over a window,
//! to open offline or attach to a mail: daily use in dollars (the numbers of `keysync
//! usage`), keys by status at each sync, keys expiring soon, what changed, and exposed keys.
//!
//! `gather` reads everything first, `page` writes the document and `chart` its SVG charts, and
//! `out` decides where it may go: stdout, or a file written beside FILE under a temporary name
//! and renamed over it, so a reader never sees half a page and a failure leaves FILE as it was;
//! and only a FILE that is missing or an earlier page is replaced (`--force`: any regular file
//! but a database).

mod chart;
mod gather;
mod page;
mod sections;

use std::io::Write;
use std::num::NonZeroU64;
use std::path::PathBuf;

use crate::alerts::Rules;
use crate::cmd::out::{Rule, Sink};
use crate::config::{Settings, parse_quota_per_unit};
use crate::error::{Error, Result};
use crate::time::{Month, When, parse_month, parse_when, readable_time};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Write the page to FILE, or to stdout with `-`. FILE is replaced (whole, never left half
    /// written) only if it is missing or a page keysync html wrote; through a symbolic link,
    /// the file it points at is replaced and the link kept. Anything else is refused
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace FILE even when it is another regular file; never a directory, device, FIFO,
    /// socket or SQLite database
    #[arg(long)]
    pub force: bool,
    /// Start of the window (exclusive), which ends now: a duration ago (30d), a date
    /// (2026-11-01, 00:00:00Z UTC), today, yesterday, or an RFC 3339 time
    #[arg(long, value_name = "WHEN", default_value = "30d", value_parser = parse_when)]
    pub since: When,
    /// One calendar month, UTC, instead of --since: YYYY-MM, or `last` (the month before this
    /// one). The window is from its first day to the next month's, or to now while it runs
    #[arg(
        long,
        value_name = "MONTH",
        value_parser = parse_month,
        conflicts_with = "since"
    )]
    pub month: Option<Month>,
    /// Quota units per US dollar, for every interval [default: the profile's quota_per_unit,
    /// else the price the gateway published at each pull, else 500000]
    #[arg(long, value_name = "N", value_parser = parse_quota_per_unit)]
    pub quota_per_unit: Option<NonZeroU64>,
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
    let now = settings.now();
    let (since, until) = match args.month {
        Some(month) => month.window(now).map_err(Error::Usage)?,
        None => (args.since.at(now), now),
    };
    if since >= now {
        return Err(Error::Usage(format!(
            "--since ({}) is not before now ({}): give a time in the past, such as 30d",
            readable_time(since),
            readable_time(now)
        )));
    }
    let db = settings.db()?;
    let sink = Sink::open(&args.out, out_rule(args.force))?;
    let price = args.quota_per_unit.or(settings.profile.quota_per_unit);
    let page = gather::Page::read(
        db,
        (since, until),
        now,
        settings.now.is_some(),
        (price, &Rules::from_profile(&settings.profile.alerts, price)),
    )?;
    let html = page::render(&page);
    let to_file = matches!(sink, Sink::File(_));
    sink.write(&html)?;
    // On stdout the page is the output: a line on stderr would only be noise to a mail pipe
    // (and, from cron, a mail of its own).
    if to_file && !settings.quiet {
        // Not `eprintln!`, which panics on a closed stderr.
        let _ = writeln!(
            std::io::stderr(),
            "keysync: wrote {} ({} bytes)",
            args.out.display(),
            html.len()
        );
    }
    Ok(())
}

/// Where a page may go: over a missing file or an earlier page, or with `--force` over another
/// regular file; private to its owner, as the page was always written.
fn out_rule(force: bool) -> Rule {
    Rule {
        flag: "--out",
        writer: "keysync html",
        what: "page",
        example: "report.html",
        own_start: page::HEAD_START,
        replaces_other_files: force,
        has_force: true,
        mode: 0o600,
    }
}
