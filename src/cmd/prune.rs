//! `keysync prune --keep 90d`: delete the history older than a retention period.
//!
//! The rule, and why the state at every kept sync stays exactly as it was, is in
//! `store::prune`. This takes the pull lock (prune writes; a pull must not run meanwhile),
//! prints what it deleted, or with `--dry-run` what it would delete, and with `--vacuum`
//! gives the freed space back to the disk.

use crate::cli::{GlobalArgs, PruneArgs};
use crate::config::{db_path, unix_now};
use crate::error::Result;
use crate::output::{print_line, readable_time};
use crate::store;
use crate::store::lock::PullLock;
use crate::store::prune::{PrunePlan, plan, prune, vacuum};

pub async fn run(global: &GlobalArgs, args: &PruneArgs) -> Result<()> {
    let db = db_path(global)?;
    let keep = i64::try_from(args.keep.as_secs()).unwrap_or(i64::MAX);
    let cutoff = unix_now(global.now).saturating_sub(keep);
    let say = |line: &str| {
        if global.quiet {
            Ok(())
        } else {
            print_line(line)
        }
    };
    if args.dry_run {
        let planned = plan(&store::open_read_only(&db)?, cutoff)?;
        return say(&describe(&planned, cutoff, "would delete"));
    }
    store::require_existing(&db)?;
    let _lock = PullLock::acquire(&db, args.wait).await?;
    let mut conn = store::open(&db)?;
    let pruned = prune(&mut conn, cutoff)?;
    say(&describe(&pruned, cutoff, "deleted"))?;
    if args.vacuum {
        let (before, after) = vacuum(&conn, &db)?;
        say(&format!(
            "vacuumed: {} → {}",
            mebibytes(before),
            mebibytes(after)
        ))?;
    }
    Ok(())
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
