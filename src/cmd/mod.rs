//! One module per subcommand: each owns its clap `Args` and runs as `run(&Settings, Args)`.
//! What several commands show the same way (diffs, sync summaries, reports) is in [`show`], and
//! what `usage` and `html` both compute from the quota use is in [`consumption`], the metrics
//! `metrics` and `pull` write in [`exposition`], and where a file may be written in [`out`], so
//! that no command calls another; the flags several commands share are here.

pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod consumption;
pub(crate) mod demo;
pub(crate) mod diff;
pub(crate) mod exposition;
pub(crate) mod history;
pub(crate) mod html;
pub(crate) mod man;
pub(crate) mod metrics;
pub(crate) mod out;
pub(crate) mod prune;
pub(crate) mod pull;
pub(crate) mod query;
pub(crate) mod show;
pub(crate) mod status;
pub(crate) mod syncs;
pub(crate) mod usage;
pub(crate) mod version;

use clap::Args;
use rusqlite::types::Value;

use crate::api::model::parse_field;
use crate::api::model::{COLUMNS, ColumnSource, DATA_COLUMNS, FieldKind, TIME_COLUMNS};
use crate::error::{Error, Result};
use crate::facts::key::EffectiveStatus;
use crate::output::{Column, ColumnKind, Format, NAME_WIDTH, RowFormat};
use crate::time::readable_time;

/// The async runtime of the commands that talk HTTP or wait for the pull lock. One thread: the
/// work is waiting on the network, and SQLite has a thread of its own during a pull. Measured
/// with that writer thread (issue 12), a multi-thread runtime pulled no faster (the same
/// instructions, wall times within noise) and held 8 MB more memory. Pages are parsed on the
/// blocking pool (see `api::client`), one thread per core at most: more cannot parse faster.
/// The pool also resolves host names, hence its name.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(cores)
        .thread_name("keysync-pool")
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

/// A data field's value as people read it: the unix times of [`TIME_COLUMNS`] as dates, a
/// `status` code as its word (`enabled`, `disabled`, ...), everything else as stored.
pub(crate) fn readable_field(column: &str, value: Value) -> Value {
    match value {
        Value::Integer(time) if TIME_COLUMNS.contains(&column) => Value::Text(readable_time(time)),
        Value::Integer(code) if column == "status" => {
            Value::Text(EffectiveStatus::of_code(Some(code)).name().to_string())
        }
        other => other,
    }
}

/// Data field `i` as a column of a table, hidden at `priority` on a narrow terminal: text
/// from upstream (a name, the model limits, the IPs, the group, the unknown fields) is cut,
/// everything else (times, numbers, flags, the hint and the digest) shown whole.
pub(crate) fn field_column(i: usize, priority: u8) -> Column {
    let column = Column::new(DATA_COLUMNS[i], ColumnKind::Plain);
    match COLUMNS[i].source {
        ColumnSource::Api(FieldKind::Text) | ColumnSource::Extra => {
            column.cut(priority, NAME_WIDTH)
        }
        _ => column.whole(priority),
    }
}

/// `--fields` / `--ignore`: which of the versioned data fields a command looks at.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct FieldArgs {
    /// Only these fields, comma-separated (e.g. status,expired_time)
    #[arg(long, value_name = "FIELD,...", value_delimiter = ',', value_parser = FieldParser,
          hide_possible_values = true, conflicts_with = "ignore")]
    pub fields: Vec<&'static str>,
    /// Every field but these, comma-separated (e.g. accessed_time,used_quota,remain_quota)
    #[arg(long, value_name = "FIELD,...", value_delimiter = ',', value_parser = FieldParser,
          hide_possible_values = true)]
    pub ignore: Vec<&'static str>,
}

/// A field name, as [`parse_field`] reads it, and the names for shell completion: clap_complete
/// offers an argument's possible values, which a plain function parser has none of.
#[derive(Clone, Copy, Debug)]
struct FieldParser;

impl clap::builder::TypedValueParser for FieldParser {
    type Value = &'static str;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<&'static str, clap::Error> {
        parse_field.parse_ref(command, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            DATA_COLUMNS.iter().map(clap::builder::PossibleValue::new),
        ))
    }
}

impl FieldArgs {
    /// The positions in `DATA_COLUMNS` of the selected fields, in column order.
    pub(crate) fn selected(&self) -> Vec<usize> {
        DATA_COLUMNS
            .iter()
            .enumerate()
            .filter(|(_, name)| self.fields.is_empty() || self.fields.contains(name))
            .filter(|(_, name)| !self.ignore.contains(name))
            .map(|(i, _)| i)
            .collect()
    }
}

/// `--format` and `--no-headers`, shared by every command that prints rows.
#[derive(Clone, Copy, Debug, Args)]
pub(crate) struct FormatArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Leave out the header row (table, csv, tsv)
    #[arg(long)]
    pub no_headers: bool,
}

impl FormatArgs {
    pub(crate) fn row_format(&self) -> RowFormat {
        RowFormat {
            format: self.format,
            headers: !self.no_headers,
        }
    }
}
