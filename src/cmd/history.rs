//! `keysync history KEY`: every recorded version of one key, oldest first.
//!
//! One row per version: the syncs it was valid from and to (with their start times), how it
//! began (`added`, `changed`, `restored`) and ended (`changed`, `removed`, or NULL while it is
//! current), the fields that differ from the previous version, and its data. A removal is not
//! a row of its own: the version's end shows it.

use rusqlite::types::Value;

use crate::api::model::DATA_COLUMNS;
use crate::cmd::{FieldArgs, FormatArgs, field_column, readable_field};
use crate::config::Settings;
use crate::error::Result;
use crate::output::{Column, ColumnKind, NAME_WIDTH, print_columns};
use crate::store::Store;
use crate::store::history::{KeyRef, Version};
use crate::time::readable_time;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key: its id, or its exact (current or last) name
    #[arg(value_name = "KEY")]
    pub key: String,
    #[command(flatten)]
    pub fields: FieldArgs,
    #[command(flatten)]
    pub format: FormatArgs,
}

/// The columns before the data fields, in order, and what a narrow terminal gives up first:
/// where a version ended (its sync, time and how) goes before the fields; the list of changed
/// fields is cut.
fn range_columns() -> [Column; 7] {
    let column = |name| Column::new(name, ColumnKind::Plain);
    [
        column("from_sync").whole(1),
        column("from_time").whole(1),
        column("to_sync").whole(3),
        column("to_time").whole(3),
        column("start").whole(2),
        column("end").whole(3),
        column("changed").cut(2, NAME_WIDTH),
    ]
}

/// The priority of the data fields: after how a version began, before how it ended; the
/// fields named with `--fields` are what was asked for, hidden last.
fn field_priority(fields: &FieldArgs) -> u8 {
    if fields.fields.is_empty() { 2 } else { 1 }
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
    let store = Store::open_read_only(settings.db()?)?;
    let key = store.find_key(&args.key)?;
    let versions = store.versions(key.id)?;
    if versions.is_empty() {
        tracing::warn!(
            "key {} has no versions left: `keysync prune` deleted them",
            key.id
        );
    }
    let fields = args.fields.selected();
    let priority = field_priority(&args.fields);
    let columns: Vec<Column> = range_columns()
        .into_iter()
        .chain(fields.iter().map(|&i| field_column(i, priority)))
        .collect();
    let for_people = args.format.format.is_for_people();
    let rows = (0..versions.len()).map(|i| {
        let (previous, next) = (i.checked_sub(1).map(|p| &versions[p]), versions.get(i + 1));
        Ok(row(&key, &versions[i], previous, next, &fields, for_people))
    });
    print_columns(args.format.row_format(), &columns, rows)
}

fn row(
    key: &KeyRef,
    version: &Version,
    previous: Option<&Version>,
    next: Option<&Version>,
    fields: &[usize],
    for_people: bool,
) -> Vec<Value> {
    let time = |t: Option<i64>| match t {
        Some(t) if for_people => Value::Text(readable_time(t)),
        other => other.map_or(Value::Null, Value::Integer),
    };
    let mut values = vec![
        Value::Integer(version.from_sync),
        time(version.from_time),
        version.to_sync.map_or(Value::Null, Value::Integer),
        time(version.to_time),
        Value::Text(start(key, version, previous).to_string()),
        end(version, next).map_or(Value::Null, |e| Value::Text(e.to_string())),
        Value::Text(version.changed.join(", ")),
    ];
    values.extend(fields.iter().map(|i| {
        let value = version.values[*i].clone();
        if for_people {
            readable_field(DATA_COLUMNS[*i], value)
        } else {
            value
        }
    }));
    values
}

/// How a version began. Without a previous version (pruned), a version that names no changed
/// field can only be a restore: every other version after the first names what changed.
fn start(key: &KeyRef, version: &Version, previous: Option<&Version>) -> &'static str {
    if version.from_sync == key.first_seen_sync {
        return "added";
    }
    match previous {
        Some(previous) if previous.to_sync == Some(version.from_sync) => "changed",
        Some(_) => "restored",
        None if version.changed.is_empty() => "restored",
        None => "changed",
    }
}

/// How a version ended: replaced by the next one at the same sync, or removed; `None` while
/// it is current.
fn end(version: &Version, next: Option<&Version>) -> Option<&'static str> {
    let to = version.to_sync?;
    Some(if next.is_some_and(|n| n.from_sync == to) {
        "changed"
    } else {
        "removed"
    })
}
