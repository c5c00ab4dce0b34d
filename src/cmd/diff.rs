//! `keysync diff`: what changed between two syncs, read from the recorded history
//! (`store::diff` computes it; `show` prints it).

use crate::cmd::{FieldArgs, FormatArgs};
use crate::config::Settings;
use crate::error::{Outcome, Result};
use crate::store::Store;
use crate::store::points::{SyncRef, parse_sync_ref};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The earlier point: sync id, RFC 3339 time, date, today, yesterday or duration ago
    /// [default: the second most recent good sync]
    #[arg(value_name = "FROM", value_parser = parse_sync_ref)]
    pub from: Option<SyncRef>,
    /// The later point [default: the most recent good sync]
    #[arg(value_name = "TO", value_parser = parse_sync_ref)]
    pub to: Option<SyncRef>,
    /// Exit 1 when there are differences (0 when there are none), for cron alerts
    #[arg(long)]
    pub exit_code: bool,
    /// Show every changed key in table and markdown, those that only used quota too
    /// (accessed_time, used_quota, remain_quota); csv, tsv, json and jsonl always do
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub fields: FieldArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<Outcome> {
    let mut store = Store::open_read_only(settings.db()?)?;
    let fields = args.fields.selected();
    let found = store.diff(args.from, args.to, settings.now(), &fields)?;
    // Fields named with --fields are what the user asked to see, quota use included.
    let all = args.all || !args.fields.fields.is_empty();
    crate::cmd::show::print_diff(&found, args.format.row_format(), settings.quiet, all)?;
    Ok(if args.exit_code && !found.rows.is_empty() {
        Outcome::Alarm
    } else {
        Outcome::Success
    })
}
