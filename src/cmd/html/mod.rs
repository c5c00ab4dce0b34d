//! `keysync html --out FILE`: one self-contained HTML page about the account over a window,
//! to open offline or attach to a mail: daily use in dollars (the numbers of `keysync
//! usage`), keys by status at each sync, keys expiring soon, what changed, and exposed keys.
//!
//! `gather` reads everything first, `page` writes the document and `chart` its SVG charts. The
//! file is written beside FILE under a temporary name and renamed over it, so a reader never
//! sees half a page and a failure leaves FILE as it was.

mod chart;
mod gather;
mod page;

use std::io::Write;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use crate::config::{Settings, parse_quota_per_unit};
use crate::error::{Error, Result};
use crate::time::{Month, When, parse_month, parse_when, readable_time};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the page to this file (replaced whole: never left half written)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
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

pub fn run(settings: &Settings, args: Args) -> Result<()> {
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
    // The temporary file first: a folder that cannot take the page fails before any work.
    let mut file = temporary_beside(&args.out)?;
    let page = gather::Page::read(
        db,
        (since, until),
        now,
        settings.now.is_some(),
        settings.quota_per_unit,
    )?;
    let html = page::render(&page);
    file.write_all(html.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| cannot_write(&args.out, &e))?;
    file.persist(&args.out)
        .map_err(|e| cannot_write(&args.out, &e.error))?;
    if !settings.quiet {
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

/// A new temporary file in FILE's folder, removed again unless it is renamed into place.
fn temporary_beside(out: &Path) -> Result<tempfile::NamedTempFile> {
    let folder = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if out.file_name().is_none() {
        return Err(Error::Usage(format!(
            "--out {} names no file: give a file name such as report.html",
            out.display()
        )));
    }
    if !folder.is_dir() {
        return Err(Error::Usage(format!(
            "cannot write --out {}: the folder {} does not exist; create it first or pick \
             another path",
            out.display(),
            folder.display()
        )));
    }
    tempfile::Builder::new()
        .prefix(".keysync-html-")
        .suffix(".tmp")
        .tempfile_in(folder)
        .map_err(|e| cannot_write(out, &e))
}

fn cannot_write(out: &Path, error: &std::io::Error) -> Error {
    Error::Usage(format!(
        "cannot write --out {}: {error}; pick a file in a folder you can write to",
        out.display()
    ))
}
