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
use crate::terminal::counted;
use crate::time::{parse_duration, parse_positive_duration, readable_time};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
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
    /// Print what was deleted (or would be, with --dry-run) as one JSON object
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
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
        if args.json {
            return say(&pruned_json(&planned, cutoff, true, None));
        }
        return say(&describe(&planned, cutoff, "would delete"));
    }
    store::require_existing(db)?;
    let _lock = take_lock(db, args.wait)?;
    let mut store = Store::open(db)?;
    let pruned = store.prune(cutoff)?;
    if !args.json {
        say(&describe(&pruned, cutoff, "deleted"))?;
    }
    let vacuumed = if args.vacuum {
        Some(store.vacuum()?)
    } else {
        None
    };
    match vacuumed {
        _ if args.json => say(&pruned_json(&pruned, cutoff, false, vacuumed)),
        Some((before, after)) => say(&format!(
            "vacuumed: {} → {}",
            mebibytes(before),
            mebibytes(after)
        )),
        None => Ok(()),
    }
}

/// `--json`: what was deleted, or with `dry_run` what would be; times in unix seconds, as in
/// `status --json`. `oldest_kept` is null when there are no syncs, `vacuum` without --vacuum.
fn pruned_json(
    planned: &PrunePlan,
    cutoff: i64,
    dry_run: bool,
    vacuumed: Option<(u64, u64)>,
) -> String {
    #[derive(serde::Serialize)]
    struct Kept {
        sync: i64,
        started_at: i64,
    }
    #[derive(serde::Serialize)]
    struct Vacuumed {
        bytes_before: u64,
        bytes_after: u64,
    }
    #[derive(serde::Serialize)]
    struct Pruned {
        dry_run: bool,
        cutoff: i64,
        oldest_kept: Option<Kept>,
        syncs: i64,
        key_versions: i64,
        vacuum: Option<Vacuumed>,
    }
    let pruned = Pruned {
        dry_run,
        cutoff,
        oldest_kept: planned.oldest_kept.map(|kept| Kept {
            sync: kept.id,
            started_at: kept.started_at,
        }),
        syncs: planned.syncs,
        key_versions: planned.versions,
        vacuum: vacuumed.map(|(bytes_before, bytes_after)| Vacuumed {
            bytes_before,
            bytes_after,
        }),
    };
    serde_json::to_string(&pruned).expect("a prune serialises")
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
            "{verb} {} and {} from before {}, the oldest kept (cutoff {cutoff})",
            counted(planned.syncs, "sync"),
            counted(planned.versions, "key version"),
            kept.describe()
        ),
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
