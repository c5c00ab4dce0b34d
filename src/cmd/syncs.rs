//! `keysync syncs`: the sync log, newest first.

use std::time::Duration;

use rusqlite::types::Value;

use crate::cmd::FormatArgs;
use crate::config::Settings;
use crate::error::Result;
use crate::output::{Column, ColumnKind, TIME_WIDTH, print_columns};
use crate::store::Store;
use crate::store::points::SYNC_LOG_COLUMNS;
use crate::time::{readable_duration, readable_time};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Show at most this many syncs (0: all)
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: u32,
    #[command(flatten)]
    pub format: FormatArgs,
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
    let store = Store::open_read_only(settings.db()?)?;
    let limit = (args.limit > 0).then_some(args.limit);
    let mut rows = store.sync_log(limit)?;
    if args.format.format.is_for_people() {
        rows.iter_mut().for_each(|row| make_readable(row));
    }
    print_columns(
        args.format.row_format(),
        &columns(),
        rows.into_iter().map(Ok),
    )
}

/// The sync log's columns, and what a narrow terminal gives up first: the duration, then the
/// counts; an error is cut, never a time.
fn columns() -> Vec<Column> {
    SYNC_LOG_COLUMNS
        .iter()
        .map(|&name| {
            let column = Column::new(name, ColumnKind::Plain);
            match name {
                "id" | "time" | "status" => column.whole(1),
                "error" => column.cut(2, TIME_WIDTH),
                "keys" => column.whole(3),
                "duration" => column.whole(5),
                _ => column.whole(4),
            }
        })
        .collect()
}

/// The time as a date and the duration as `1m 5s`, for people.
fn make_readable(row: &mut [Value]) {
    let column = |name: &str| {
        SYNC_LOG_COLUMNS
            .iter()
            .position(|c| *c == name)
            .expect("a sync log column")
    };
    let (time, duration) = (column("time"), column("duration"));
    if let Value::Integer(started) = row[time] {
        row[time] = Value::Text(readable_time(started));
    }
    if let Value::Integer(seconds) = row[duration] {
        let seconds = Duration::from_secs(seconds.max(0) as u64);
        row[duration] = Value::Text(readable_duration(seconds));
    }
}
