//! Rows to stdout in the format the user asked for: an aligned table for people, CSV/TSV,
//! JSON/JSONL and Markdown for other tools.
//!
//! Every command that prints rows (`query`, `diff`, `syncs`, `history`, ...) goes through
//! [`print_rows`], so they all share formats and flags. Machine formats stream row by row;
//! `table` and `markdown` collect first because they align columns. A closed pipe
//! (`keysync ... | head`) is not an error: the reader has what it wanted, so output stops
//! quietly.

use std::io::{self, Write};

use clap::ValueEnum;
use rusqlite::types::Value;
use serde_json::Value as Json;

use crate::api::model::TIME_COLUMNS;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, for people
    #[default]
    Table,
    /// Comma-separated, RFC 4180 quoting, header row
    Csv,
    /// Tab-separated, quoted where needed, header row
    Tsv,
    /// One JSON array of objects with native types
    Json,
    /// One JSON object per line
    Jsonl,
    /// A GitHub-flavoured Markdown table
    Markdown,
}

impl Format {
    /// Table and Markdown are read by people, so commands show times there as text; the other
    /// formats keep the stored values for the tools that read them.
    pub fn is_for_people(self) -> bool {
        matches!(self, Format::Table | Format::Markdown)
    }
}

/// A unix time as people read it, `2025-12-19 08:00:00Z` (UTC; RFC 3339, so `diff` accepts it
/// back). `-1` is the API's "never" (e.g. `expired_time`).
pub fn readable_time(unix: i64) -> String {
    if unix == -1 {
        return "never".to_string();
    }
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

/// A data field's value as people read it: the unix times of [`TIME_COLUMNS`] as dates,
/// everything else as stored.
pub fn readable_field(column: &str, value: Value) -> Value {
    match value {
        Value::Integer(time) if TIME_COLUMNS.contains(&column) => Value::Text(readable_time(time)),
        other => other,
    }
}

/// How rows are printed, from `--format` and `--no-headers`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowFormat {
    pub format: Format,
    /// Print the header row (csv, tsv, table, markdown).
    pub headers: bool,
}

/// Prints one line to stdout.
pub fn print_line(text: &str) -> Result<()> {
    finish(writeln!(io::stdout().lock(), "{text}"))
}

/// Prints rows with named columns to stdout in `how.format`.
pub fn print_rows(
    how: RowFormat,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = match how.format {
        Format::Table => write_table(&mut out, how.headers, columns, rows),
        Format::Markdown => write_markdown(&mut out, columns, rows),
        Format::Csv => write_delimited(&mut out, b',', how.headers, columns, rows),
        Format::Tsv => write_delimited(&mut out, b'\t', how.headers, columns, rows),
        Format::Json => write_json(&mut out, columns, rows),
        Format::Jsonl => write_jsonl(&mut out, columns, rows),
    };
    match written {
        Err(Error::Output(e)) => finish(Err(e)),
        other => other.and_then(|()| finish(out.flush())),
    }
}

/// A closed pipe ends output quietly; any other write failure is an error.
fn finish(result: io::Result<()>) -> Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Internal(format!("cannot write to stdout: {e}"))),
        Ok(()) => Ok(()),
    }
}

/// A value as JSON with its native type: integers stay integers, NULL is null.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(*i),
        Value::Real(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::Blob(b) => Json::String(hex(b)),
    }
}

/// A value as text for the text formats: NULL is empty.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => hex(b),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_delimited(
    out: &mut impl Write,
    delimiter: u8,
    headers: bool,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(out);
    if headers {
        writer.write_record(columns).map_err(csv_error)?;
    }
    for row in rows {
        writer
            .write_record(row?.iter().map(to_text))
            .map_err(csv_error)?;
    }
    writer.flush().map_err(Error::Output)
}

fn csv_error(error: csv::Error) -> Error {
    match error.into_kind() {
        csv::ErrorKind::Io(e) => Error::Output(e),
        other => Error::Internal(format!("cannot write CSV: {other:?}")),
    }
}

fn object(columns: &[String], row: &[Value]) -> Json {
    let map = columns
        .iter()
        .zip(row)
        .map(|(name, value)| (name.clone(), to_json(value)));
    // Keep the query's column order rather than sorting the keys.
    Json::Object(map.collect())
}

fn write_json(
    out: &mut impl Write,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    out.write_all(b"[").map_err(Error::Output)?;
    for (i, row) in rows.into_iter().enumerate() {
        let separator: &[u8] = if i == 0 { b"\n" } else { b",\n" };
        out.write_all(separator).map_err(Error::Output)?;
        serde_json::to_writer(&mut *out, &object(columns, &row?))
            .map_err(|e| Error::Output(e.into()))?;
    }
    out.write_all(b"\n]\n").map_err(Error::Output)
}

fn write_jsonl(
    out: &mut impl Write,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    for row in rows {
        serde_json::to_writer(&mut *out, &object(columns, &row?))
            .map_err(|e| Error::Output(e.into()))?;
        out.write_all(b"\n").map_err(Error::Output)?;
    }
    Ok(())
}

fn write_table(
    out: &mut impl Write,
    headers: bool,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let rows = rows.into_iter().collect::<Result<Vec<_>>>()?;
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    if headers {
        table.set_header(columns);
    }
    for row in &rows {
        table.add_row(row.iter().map(to_text));
    }
    // A column of numbers reads best right-aligned.
    for (i, column) in table.column_iter_mut().enumerate() {
        let numeric = rows.iter().all(|row| {
            matches!(
                row.get(i),
                Some(Value::Integer(_) | Value::Real(_) | Value::Null)
            )
        });
        if numeric && !rows.is_empty() {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    writeln!(out, "{table}").map_err(Error::Output)
}

fn write_markdown(
    out: &mut impl Write,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let cell = |text: String| text.replace('|', "\\|").replace('\n', "<br>");
    let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    writeln!(out, "{}", line(columns.iter().cloned().map(cell).collect()))
        .map_err(Error::Output)?;
    writeln!(out, "{}", line(vec!["---".to_string(); columns.len()])).map_err(Error::Output)?;
    for row in rows {
        let cells = row?.iter().map(|v| cell(to_text(v))).collect();
        writeln!(out, "{}", line(cells)).map_err(Error::Output)?;
    }
    Ok(())
}
