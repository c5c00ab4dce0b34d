//! `keysync prune --keep 90d`: delete the history older than a retention period.
//!
//! The rule, and why the state at every kept sync stays exactly as it was, is in
//! `store::prune`. This takes the pull lock (prune writes; a pull must not run meanwhile),
//! prints what it deleted, or with `--dry-run` what it would delete, and with `--vacuum`
//! gives the freed space back to the disk.

use std::time::Duration;

use crate::config::Settings;
use crate::error::Result;
use crate::output::print_line;
use crate::store::lock::PullLock;
use crate::store::prune::PrunePlan;
use crate::store::{self, Store};
use crate::time::{parse_duration, parse_positive_duration, readable_time};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the syncs that started within this long before now, e.g. 90d
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub keep: Duration,
    /// Print what would be deleted, and delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Afterwards, rewrite the database file to give the freed space back to the disk
    #[arg(long)]
    pub vacuum: bool,
    /// Wait up to this long for a running pull's lock instead of exiting 5 at once
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
}

pub fn run(settings: &Settings, args: Args) -> Result<()> {
    let db = settings.db()?;
    let keep = i64::try_from(args.keep.as_secs()).unwrap_or(i64::MAX);
    let cutoff = settings.now().saturating_sub(keep);
    let say = |line: &str| {
        if settings.quiet {
            Ok(())
        } else {
            print_line(line)
        }
    };
    if args.dry_run {
        let planned = Store::open_read_only(db)?.prune_plan(cutoff)?;
        return say(&describe(&planned, cutoff, "would delete"));
    }
    store::require_existing(db)?;
    let _lock = take_lock(db, args.wait)?;
    let mut store = Store::open(db)?;
    let pruned = store.prune(cutoff)?;
    say(&describe(&pruned, cutoff, "deleted"))?;
    if args.vacuum {
        let (before, after) = store.vacuum()?;
        say(&format!(
            "vacuumed: {} → {}",
            mebibytes(before),
            mebibytes(after)
        ))?;
    }
    Ok(())
}

/// The pull lock, at once or within `wait`. Only a wait needs the async runtime (its sleep
/// must not block a thread: see `store::lock`).
fn take_lock(db: &std::path::Path, wait: Option<Duration>) -> Result<PullLock> {
    match wait {
        None => PullLock::try_acquire(db),
        Some(_) => crate::cmd::runtime()?.block_on(PullLock::acquire(db, wait)),
    }
}

/// `deleted 120 syncs and 3456 key versions from before sync 121 (2025-09-20 00:15:00Z), the
/// oldest kept (cutoff 2025-09-20 00:00:00Z)`
fn describe(planned: &PrunePlan, cutoff: i64, verb: &str) -> String {
    let cutoff = readable_time(cutoff);
    match planned.oldest_kept {
        None => format!("nothing to prune: there are no syncs (cutoff {cutoff})"),
        Some(kept) if planned.syncs == 0 && planned.versions == 0 => format!(
            "nothing to prune: the oldest sync, {}, is kept (cutoff {cutoff})",
            kept.describe()
        ),
        Some(kept) => format!(
            "{verb} {} syncs and {} key versions from before {}, the oldest kept (cutoff \
             {cutoff})",
            planned.syncs,
            planned.versions,
            kept.describe()
        ),
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
