//! Rows to stdout in the format the user asked for: an aligned table for people, CSV/TSV,
//! JSON/JSONL and Markdown for other tools.
//!
//! Every command that prints rows (`query`, `diff`, `syncs`, `history`, ...) goes through
//! [`print_rows`], so they all share formats and flags. Machine formats stream row by row;
//! `table` and `markdown` collect first because they align columns. A closed pipe
//! (`keysync ... | head`) is not an error: the reader has what it wanted, so output stops
//! quietly.
//!
//! A table on a terminal fits its width (`COLUMNS`, else the terminal's size) as each column's
//! [`Fit`] allows: keysync's own tables hide their least important columns (and say which in a
//! line under the table) and cut free text with `…`, never splitting a time, an id, a hint, a
//! number or a sparkline; the columns of a user's SQL wrap between words. It has a bold header
//! when stdout takes colour; anywhere else it is printed whole and plain, so piped output stays
//! exact ([`crate::terminal`] decides both). A line of parts ([`print_parts`]) breaks between
//! them the same way.
//!
//! Text for people goes through [`escape_for_terminal`] (the tables here, and the lines of
//! `status`, `diff` and the error messages): a key's name comes from the API, and control
//! characters in it must not drive the terminal or make one row look like another. The machine
//! formats stay exact.

mod table;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use clap::ValueEnum;
use rusqlite::types::Value;
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::terminal::{self, Stream};
use table::write_table;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
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
    pub(crate) fn is_for_people(self) -> bool {
        matches!(self, Format::Table | Format::Markdown)
    }
}

/// Text as a terminal may show it: control characters (C0, DEL, C1) and the bidirectional
/// controls are written as escapes (`\x1b`, `\r`, `\t`, `\u{85}`, `\u{202e}`), so that a
/// name cannot set the title, clear the screen, return the cursor over its own row or reorder
/// what follows it. Only `\n` stays itself: a line break is how a multi-line value has always
/// shown. A backslash is left as it is: the escapes are for the terminal's safety, and the
/// exact value is in the CSV, TSV and JSON formats.
pub(crate) fn escape_for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => shown.push('\n'),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            '\0'..='\x1f' | '\x7f' => {
                let _ = write!(shown, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
            }
            c => shown.push(c),
        }
    }
    Cow::Owned(shown)
}

fn needs_escape(c: char) -> bool {
    c != '\n' && (c.is_control() || is_bidi_control(c))
}

/// The invisible characters that change the order text is shown in: embeddings and overrides
/// (U+202A–U+202E), isolates (U+2066–U+2069) and the marks (U+200E, U+200F, U+061C).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// A value as text for people: as its column's kind reads ([`ColumnKind::text`]), escaped for
/// the terminal.
fn to_shown(value: &Value, kind: ColumnKind) -> String {
    let text = kind.text(value);
    match escape_for_terminal(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

/// What a column's values measure, so that the formats for people (`table`, `markdown`, and
/// the HTML page) can write them as people read them. The machine formats (`csv`, `tsv`,
/// `json`, `jsonl`) write every kind exactly as stored: scripts and invoices see stable data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// As stored.
    #[default]
    Plain,
    /// Quota units, thousands separated: `232,075,351`, `-10`.
    Quota,
    /// US dollars to the cent: `$1,234.56`, `-$0.02`, `<$0.01`, `$0.00`.
    Dollars,
    /// A percentage to one decimal: `55.4`.
    Share,
}

/// US dollars as people read them, as the `Dollars` columns write them: `$1,234.56`,
/// `<$0.01`, `-$0.02`.
pub(crate) fn dollars_for_people(usd: f64) -> String {
    ColumnKind::Dollars.text(&Value::Real(usd))
}

impl ColumnKind {
    /// `value` as people read it in a column of this kind. A value the kind does not expect
    /// (NULL, text) is written as [`to_text`] writes it.
    pub(crate) fn text(self, value: &Value) -> String {
        let shown = match (self, value) {
            (ColumnKind::Plain, _) => None,
            (ColumnKind::Quota, Value::Integer(_) | Value::Real(_)) => {
                Some(thousands(&to_text(value)))
            }
            (ColumnKind::Quota, _) => None,
            (ColumnKind::Dollars, _) => millionths(value).map(dollars),
            (ColumnKind::Share, _) => millionths(value).map(share),
        };
        shown.unwrap_or_else(|| to_text(value))
    }
}

/// A column of printed rows: its name, what its values measure, and how a table on a narrow
/// terminal gives its room away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) kind: ColumnKind,
    pub(crate) fit: Fit,
}

/// How a table on a terminal too narrow for it treats a column. Each built-in table declares
/// it with its columns ([`Column::whole`], [`Column::cut`]); a column keysync knows nothing
/// about (a user's own SQL) wraps.
///
/// The table keeps the columns in order of priority (1 first, then left to right) while their
/// least widths fit, hides the rest and names them in a line under the table; a `Wrap` column
/// is always kept. Then the widest columns that may narrow give way, down to their least width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Wrapped between words; never hidden. Its least width is its longest word.
    Wrap,
    /// Shown whole or hidden: times, ids, hints, numbers, sparklines.
    Whole { priority: u8 },
    /// Free text (errors, names): each line longer than the column is cut with `…`, down to
    /// `least` columns (or the header's width, or the longest line, if that is less), or hidden.
    Cut { priority: u8, least: u16 },
}

/// How narrow a cut column of names may get: enough to tell most names apart.
pub(crate) const NAME_WIDTH: u16 = 10;
/// How narrow a cut column that may also hold times may get: `2025-12-19 08:00:00Z`.
pub(crate) const TIME_WIDTH: u16 = 20;

impl Column {
    /// A column that wraps between words ([`Fit::Wrap`]).
    pub(crate) fn new(name: &str, kind: ColumnKind) -> Column {
        Column {
            name: name.to_string(),
            kind,
            fit: Fit::Wrap,
        }
    }

    /// This column, shown whole or hidden at `priority` (1 is hidden last).
    pub(crate) fn whole(self, priority: u8) -> Column {
        Column {
            fit: Fit::Whole { priority },
            ..self
        }
    }

    /// This column, cut with `…` down to `least` display columns, or hidden at `priority`.
    pub(crate) fn cut(self, priority: u8, least: u16) -> Column {
        Column {
            fit: Fit::Cut { priority, least },
            ..self
        }
    }

    /// Columns whose values are shown as stored.
    pub(crate) fn plain<S: AsRef<str>>(names: &[S]) -> Vec<Column> {
        names
            .iter()
            .map(|name| Column::new(name.as_ref(), ColumnKind::Plain))
            .collect()
    }
}

/// A number in millionths: `usd` is stored to 6 decimals, so rounding this integer (not the
/// binary fraction a REAL holds, where 0.125 may sit just under its half) decides a half cent.
/// `None` for a value that is not a number, or one far past any amount of quota.
fn millionths(value: &Value) -> Option<i128> {
    match value {
        Value::Integer(i) => Some(i128::from(*i) * 1_000_000),
        // The whole part apart: scaling a large amount would invent digits below its cents.
        Value::Real(f) if f.abs() < 1e30 => {
            let whole = f.trunc();
            Some(whole as i128 * 1_000_000 + ((f - whole) * 1e6).round() as i128)
        }
        _ => None,
    }
}

/// `$1,234.56` from millionths of a dollar, rounded to the cent half away from zero. A non-zero
/// amount under a cent is `<$0.01` (`-<$0.01` for a refund), never a `$0.00` that reads as
/// nothing.
fn dollars(millionths: i128) -> String {
    let sign = if millionths < 0 { "-" } else { "" };
    let amount = millionths.unsigned_abs();
    if amount != 0 && amount < 10_000 {
        return format!("{sign}<$0.01");
    }
    let cents = (amount + 5_000) / 10_000;
    format!(
        "{sign}${}.{:02}",
        thousands(&(cents / 100).to_string()),
        cents % 100
    )
}

/// `55.4` from millionths of a percent, rounded to one decimal half away from zero.
fn share(millionths: i128) -> String {
    let tenths = (millionths.unsigned_abs() + 50_000) / 100_000;
    let sign = if millionths < 0 && tenths != 0 {
        "-"
    } else {
        ""
    };
    format!(
        "{sign}{}.{}",
        thousands(&(tenths / 10).to_string()),
        tenths % 10
    )
}

/// `-1234567.5` as `-1,234,567.5`: a comma between each three digits of the whole part of a
/// number written out in decimal (as [`to_text`] writes numbers: never with an exponent).
pub(crate) fn thousands(number: &str) -> String {
    let (sign, unsigned) = match number.strip_prefix('-') {
        Some(unsigned) => ("-", unsigned),
        None => ("", number),
    };
    let (whole, fraction) = unsigned.split_at(unsigned.find('.').unwrap_or(unsigned.len()));
    let mut grouped = String::with_capacity(number.len() + whole.len() / 3);
    grouped.push_str(sign);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped.push_str(fraction);
    grouped
}

/// How rows are printed, from `--format` and `--no-headers`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowFormat {
    pub format: Format,
    /// Print the header row (table, csv, tsv; a Markdown table always has one).
    pub headers: bool,
}

/// The command line's defaults: a table with headers.
impl Default for RowFormat {
    fn default() -> RowFormat {
        RowFormat {
            format: Format::Table,
            headers: true,
        }
    }
}

/// Prints one line to stdout.
pub(crate) fn print_line(text: &str) -> Result<()> {
    finish(writeln!(io::stdout().lock(), "{text}"))
}

/// Prints a whole text, as it is, to stdout.
pub(crate) fn print_text(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    finish(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// Prints `parts` to stdout as one line, joined by spaces. On a terminal too narrow for it the
/// line breaks between parts, never inside one (a part is a time, or a count with its noun),
/// each further line indented by `indent` spaces; a part wider than the terminal is cut with
/// `…`. Anywhere else the line is printed whole.
pub(crate) fn print_parts(parts: &[String], indent: usize) -> Result<()> {
    print_text(&wrap_parts(
        parts,
        indent,
        terminal::table_width().map(usize::from),
    ))
}

/// `text`'s words, as parts for [`print_parts`] to break a line between.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(' ').map(String::from).collect()
}

/// [`print_parts`]'s text for a screen of `width` columns (none: one line).
fn wrap_parts(parts: &[String], indent: usize, width: Option<usize>) -> String {
    let Some(width) = width else {
        return format!("{}\n", escape_for_terminal(&parts.join(" ")));
    };
    let mut text = String::new();
    let mut used = 0;
    for (i, part) in parts.iter().enumerate() {
        let part = escape_for_terminal(part);
        if i > 0 && used + 1 + unicode_width::UnicodeWidthStr::width(&*part) > width {
            text.push('\n');
            text.push_str(&" ".repeat(indent));
            used = indent;
        } else if i > 0 {
            text.push(' ');
            used += 1;
        }
        let part = table::cut_line(&part, width.saturating_sub(used).max(1));
        used += unicode_width::UnicodeWidthStr::width(&*part);
        text.push_str(&part);
    }
    text.push('\n');
    text
}

/// Prints rows with named columns to stdout in `how.format`, a table fitted to the terminal
/// when stdout is one; every value as stored.
pub(crate) fn print_rows(
    how: RowFormat,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    print_columns(how, &Column::plain(columns), rows)
}

/// [`print_rows`], with the formats for people writing each column as its kind reads.
pub(crate) fn print_columns(
    how: RowFormat,
    columns: &[Column],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let screen = Screen {
        width: terminal::table_width(),
        bold_header: terminal::colour(Stream::Stdout),
    };
    write_rows_on(io::stdout().lock(), how, screen, columns, rows)
}

/// Writes rows with named columns to `out` in `how.format`, as for a pipe (no wrapping, no
/// styling); a closed pipe ends quietly. The tests' way in.
#[cfg(test)]
pub(crate) fn write_rows(
    out: impl Write,
    how: RowFormat,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    write_rows_on(out, how, Screen::default(), &Column::plain(columns), rows)
}

/// What a table may do where it is printed: the width to fit (none: print it whole) and
/// whether to embolden the header.
#[derive(Clone, Copy, Debug, Default)]
struct Screen {
    width: Option<u16>,
    bold_header: bool,
}

fn write_rows_on(
    out: impl Write,
    how: RowFormat,
    screen: Screen,
    columns: &[Column],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let mut out = io::BufWriter::new(out);
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let written = match how.format {
        Format::Table => write_table(&mut out, how.headers, screen, columns, rows),
        Format::Markdown => write_markdown(&mut out, columns, rows),
        Format::Csv => write_delimited(&mut out, b',', how.headers, &names, rows),
        Format::Tsv => write_delimited(&mut out, b'\t', how.headers, &names, rows),
        Format::Json => write_json(&mut out, &names, rows),
        Format::Jsonl => write_jsonl(&mut out, &names, rows),
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
        Err(e) => Err(Error::Output(e)),
        Ok(()) => Ok(()),
    }
}

/// A value as JSON with its native type: integers stay integers, NULL is null.
pub(crate) fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(*i),
        Value::Real(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::Blob(b) => Json::String(hex(b)),
    }
}

/// A value as text for the text formats: NULL is empty. A REAL keeps a decimal point, as
/// SQLite writes it (`3.0`, not `3`), so its type shows.
pub(crate) fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) if f.is_finite() && f.fract() == 0.0 => format!("{f:.1}"),
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

/// One row as a JSON object, keys in the query's column order. Written key by key because
/// serde_json's own map sorts its keys (and `extra` in the database relies on that sorting,
/// so its `preserve_order` feature is not an option).
fn write_object(out: &mut impl Write, keys: &[String], row: &[Value]) -> Result<()> {
    let json_error = |e: serde_json::Error| Error::Output(e.into());
    out.write_all(b"{").map_err(Error::Output)?;
    for (i, (key, value)) in keys.iter().zip(row).enumerate() {
        if i > 0 {
            out.write_all(b",").map_err(Error::Output)?;
        }
        serde_json::to_writer(&mut *out, key).map_err(json_error)?;
        out.write_all(b":").map_err(Error::Output)?;
        serde_json::to_writer(&mut *out, &to_json(value)).map_err(json_error)?;
    }
    out.write_all(b"}").map_err(Error::Output)
}

/// Column names made unique for JSON objects, where a repeated key would silently drop a value
/// (`SELECT a.id, b.id ...`): the second `id` becomes `id_2`, the third `id_3`, skipping any
/// name already taken.
fn object_keys(columns: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(columns.len());
    for name in columns {
        let mut key = name.clone();
        let mut n = 1;
        while keys.contains(&key) || (n > 1 && columns.contains(&key)) {
            n += 1;
            key = format!("{name}_{n}");
        }
        keys.push(key);
    }
    keys
}

fn write_json(
    out: &mut impl Write,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let keys = object_keys(columns);
    out.write_all(b"[").map_err(Error::Output)?;
    for (i, row) in rows.into_iter().enumerate() {
        let separator: &[u8] = if i == 0 { b"\n" } else { b",\n" };
        out.write_all(separator).map_err(Error::Output)?;
        write_object(out, &keys, &row?)?;
    }
    out.write_all(b"\n]\n").map_err(Error::Output)
}

fn write_jsonl(
    out: &mut impl Write,
    columns: &[String],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let keys = object_keys(columns);
    for row in rows {
        write_object(out, &keys, &row?)?;
        out.write_all(b"\n").map_err(Error::Output)?;
    }
    Ok(())
}

/// The kind of column `i`; a value past the last column is shown as stored.
fn kind_at(columns: &[Column], i: usize) -> ColumnKind {
    columns.get(i).map_or(ColumnKind::Plain, |c| c.kind)
}

fn write_markdown(
    out: &mut impl Write,
    columns: &[Column],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    // Markdown viewers render inline HTML: `&`, `<` and `>` become entities, so that a key
    // named `<img src=x onerror=...>` is shown as text. Line breaks become `<br>` after that.
    let cell = |text: String| {
        escape_for_terminal(&text)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('|', "\\|")
            .replace('\n', "<br>")
    };
    let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    writeln!(
        out,
        "{}",
        line(columns.iter().map(|c| cell(c.name.clone())).collect())
    )
    .map_err(Error::Output)?;
    writeln!(out, "{}", line(vec!["---".to_string(); columns.len()])).map_err(Error::Output)?;
    for row in rows {
        let row = row?;
        let texts = row.iter().enumerate();
        let cells = texts
            .map(|(i, value)| cell(kind_at(columns, i).text(value)))
            .collect();
        writeln!(out, "{}", line(cells)).map_err(Error::Output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<String> {
        ["id", "name", "ratio", "nothing", "blob"]
            .map(String::from)
            .to_vec()
    }

    /// Names that break naive writers: delimiters, quotes, line breaks, pipes, wide characters.
    fn rows() -> Vec<Vec<Value>> {
        let row = |id: i64, name: &str, ratio: f64| {
            vec![
                Value::Integer(id),
                Value::Text(name.into()),
                Value::Real(ratio),
                Value::Null,
                Value::Blob(vec![0, 255]),
            ]
        };
        vec![
            row(1, "O'Brien \"test\", a|b", 0.5),
            row(-2, "line one\nline two\ttabbed", 3.0),
            row(9_007_199_254_740_993, "エージェント", -1e20),
        ]
    }

    fn written(format: Format, headers: bool) -> String {
        written_with(columns(), rows(), format, headers)
    }

    fn written_with(
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
        format: Format,
        headers: bool,
    ) -> String {
        let mut out = Vec::new();
        write_rows(
            &mut out,
            RowFormat { format, headers },
            &columns,
            rows.into_iter().map(Ok),
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn records(text: &str, delimiter: u8) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect()
    }

    fn expected_records(headers: bool) -> Vec<Vec<String>> {
        let mut expected: Vec<Vec<String>> = Vec::new();
        if headers {
            expected.push(columns());
        }
        for (id, name, ratio) in [
            ("1", "O'Brien \"test\", a|b", "0.5"),
            ("-2", "line one\nline two\ttabbed", "3.0"),
            (
                "9007199254740993",
                "エージェント",
                "-100000000000000000000.0",
            ),
        ] {
            expected.push([id, name, ratio, "", "00ff"].map(String::from).to_vec());
        }
        expected
    }

    #[test]
    fn csv_and_tsv_round_trip_through_a_csv_parser() {
        assert_eq!(
            records(&written(Format::Csv, true), b','),
            expected_records(true)
        );
        assert_eq!(
            records(&written(Format::Csv, false), b','),
            expected_records(false)
        );
        assert_eq!(
            records(&written(Format::Tsv, true), b'\t'),
            expected_records(true)
        );
        let tsv = written(Format::Tsv, false);
        assert_eq!(records(&tsv, b'\t'), expected_records(false));
        assert!(
            tsv.starts_with("1\t\"O'Brien \"\"test\"\", a|b\"\t0.5\t\t00ff\n"),
            "{tsv}"
        );
    }

    #[test]
    fn json_keeps_native_types_and_the_column_order() {
        let parsed: Json = serde_json::from_str(&written(Format::Json, true)).unwrap();
        let objects = parsed.as_array().unwrap();
        assert_eq!(objects.len(), 3);
        assert_eq!(
            objects[0],
            serde_json::json!({"id": 1, "name": "O'Brien \"test\", a|b", "ratio": 0.5,
                               "nothing": null, "blob": "00ff"})
        );
        assert_eq!(objects[2]["id"].as_i64(), Some(9_007_199_254_740_993));
        assert!(objects[1]["ratio"].is_f64());
        // serde_json's map sorts keys; an IndexMap shows the order they were written in.
        let ordered: Vec<indexmap::IndexMap<String, Json>> =
            serde_json::from_str(&written(Format::Json, true)).unwrap();
        let keys: Vec<&String> = ordered[0].keys().collect();
        assert_eq!(keys, ["id", "name", "ratio", "nothing", "blob"]);
    }

    #[test]
    fn json_of_no_rows_is_an_empty_array_and_jsonl_is_nothing() {
        let json = written_with(columns(), vec![], Format::Json, true);
        assert_eq!(
            serde_json::from_str::<Json>(&json).unwrap(),
            serde_json::json!([])
        );
        assert_eq!(written_with(columns(), vec![], Format::Jsonl, true), "");
    }

    #[test]
    fn jsonl_is_one_parseable_object_per_line() {
        let text = written(Format::Jsonl, true);
        let objects: Vec<Json> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(objects.len(), 3);
        assert_eq!(objects[1]["name"], "line one\nline two\ttabbed");
        assert_eq!(objects[1]["id"], -2);
    }

    #[test]
    fn repeated_column_names_stay_apart_in_json() {
        let columns = ["id", "id", "id_2", "id"].map(String::from).to_vec();
        let row = (1..=4).map(Value::Integer).collect();
        let text = written_with(columns, vec![row], Format::Jsonl, true);
        assert_eq!(text, "{\"id\":1,\"id_3\":2,\"id_2\":3,\"id_4\":4}\n");
    }

    #[test]
    fn markdown_escapes_pipes_and_line_breaks() {
        let text = written(Format::Markdown, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "| id | name | ratio | nothing | blob |",
                "| --- | --- | --- | --- | --- |",
                "| 1 | O'Brien \"test\", a\\|b | 0.5 |  | 00ff |",
                "| -2 | line one<br>line two\\ttabbed | 3.0 |  | 00ff |",
                "| 9007199254740993 | エージェント | -100000000000000000000.0 |  | 00ff |",
            ]
        );
    }

    #[test]
    fn markdown_shows_html_as_text_in_cells_and_headers() {
        let columns = vec!["<b>n&m</b>".to_string()];
        let rows = vec![vec![Value::Text(
            "<img src=x onerror=alert(1)> &amp; a>b\nc".into(),
        )]];
        assert_eq!(
            written_with(columns.clone(), rows.clone(), Format::Markdown, true),
            "| &lt;b&gt;n&amp;m&lt;/b&gt; |\n| --- |\n\
             | &lt;img src=x onerror=alert(1)&gt; &amp;amp; a&gt;b<br>c |\n"
        );
        let csv = written_with(columns, rows, Format::Csv, true);
        assert_eq!(
            records(&csv, b','),
            vec![
                vec!["<b>n&m</b>".to_string()],
                vec!["<img src=x onerror=alert(1)> &amp; a>b\nc".to_string()],
            ]
        );
    }

    #[test]
    fn table_aligns_columns_and_drops_headers_on_request() {
        let text = written(Format::Table, true);
        let lines: Vec<&str> = text.lines().collect();
        // border, header, separator, three rows (one of them two lines tall), border
        assert_eq!(lines.len(), 8, "{text}");
        assert!(lines[1].contains("id") && lines[1].contains("ratio"));
        assert!(lines[3].contains("O'Brien \"test\", a|b"));
        assert!(lines[4].contains("line one") && lines[5].contains("line two"));
        // Numbers are right-aligned: the short id ends where the long one does.
        let id_end = |line: &str| line.find(" ┆").unwrap();
        assert_eq!(id_end(lines[3]), id_end(lines[6]));
        assert!(lines[3].contains("│                1 ┆"), "{text}");
        let headless = written(Format::Table, false);
        assert_eq!(headless.lines().count(), 6);
        assert!(!headless.contains("ratio"));
    }

    fn on_screen(screen: Screen, columns: &[&str], row: Vec<Value>) -> String {
        let mut out = Vec::new();
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let columns = Column::plain(&columns);
        write_rows_on(&mut out, RowFormat::default(), screen, &columns, [Ok(row)]).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_table_wraps_to_the_screen_width_and_bolds_its_header_only_when_told() {
        let row = || {
            vec![
                Value::Integer(1),
                Value::Text("one two three four five six".into()),
            ]
        };
        let narrow = Screen {
            width: Some(24),
            bold_header: false,
        };
        assert_eq!(
            on_screen(narrow, &["id", "note"], row()),
            "┌────┬─────────────────┐\n\
             │ id ┆ note            │\n\
             ╞════╪═════════════════╡\n\
             │  1 ┆ one two three   │\n\
             │    ┆ four five six   │\n\
             └────┴─────────────────┘\n"
        );
        assert_eq!(
            on_screen(Screen::default(), &["id", "note"], row()),
            "┌────┬─────────────────────────────┐\n\
             │ id ┆ note                        │\n\
             ╞════╪═════════════════════════════╡\n\
             │  1 ┆ one two three four five six │\n\
             └────┴─────────────────────────────┘\n"
        );
        let bold = Screen {
            width: None,
            bold_header: true,
        };
        assert_eq!(
            on_screen(bold, &["n"], vec![Value::Integer(1)]),
            "┌───┐\n│\x1b[1m n \x1b[0m│\n╞═══╡\n│ 1 │\n└───┘\n"
        );
    }

    #[test]
    fn a_narrow_screen_wraps_between_words_and_breaks_one_only_when_nothing_else_fits() {
        let columns = ["used_quota", "hint", "note"];
        let row = || {
            vec![
                Value::Integer(1_234_567),
                Value::Text("V22m**********qul2".into()),
                Value::Text("エージェント one two".into()),
            ]
        };
        let at = |width| Screen {
            width: Some(width),
            bold_header: false,
        };
        // Headers, numbers, hints and CJK words stay whole; the note wraps at its spaces.
        assert_eq!(
            on_screen(at(52), &columns, row()),
            "┌────────────┬────────────────────┬────────────────┐\n\
             │ used_quota ┆ hint               ┆ note           │\n\
             ╞════════════╪════════════════════╪════════════════╡\n\
             │    1234567 ┆ V22m**********qul2 ┆ エージェント   │\n\
             │            ┆                    ┆ one two        │\n\
             └────────────┴────────────────────┴────────────────┘\n"
        );
        // A screen as wide as the table needs is not wrapped at all.
        assert_eq!(on_screen(at(58), &columns, row()).lines().count(), 5);
        // Narrower than its longest words: the table still fits, words broken.
        let squeezed = on_screen(at(40), &columns, row());
        assert!(
            squeezed.lines().all(|l| l.chars().count() <= 40),
            "{squeezed}"
        );
    }

    fn declared(screen: Screen, columns: &[Column], rows: Vec<Vec<Value>>) -> String {
        let mut out = Vec::new();
        let rows = rows.into_iter().map(Ok);
        write_rows_on(&mut out, RowFormat::default(), screen, columns, rows).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_narrow_screen_hides_columns_by_priority_cuts_free_text_and_names_what_it_hid() {
        let columns = [
            Column::new("id", ColumnKind::Plain).whole(1),
            Column::new("time", ColumnKind::Plain).whole(1),
            Column::new("name", ColumnKind::Plain).cut(2, NAME_WIDTH),
            Column::new("used", ColumnKind::Quota).whole(3),
            Column::new("hint", ColumnKind::Plain).whole(4),
        ];
        let rows = || {
            vec![vec![
                Value::Integer(7),
                Value::Text("2025-12-19 08:00:00Z".into()),
                Value::Text("エージェント production key".into()),
                Value::Integer(1_234_567),
                Value::Text("V22m**********qul2".into()),
            ]]
        };
        let at = |width| Screen {
            width: Some(width),
            bold_header: false,
        };
        // The hint goes first; the name is cut to what is left.
        assert_eq!(
            declared(at(60), &columns, rows()),
            "┌────┬──────────────────────┬──────────────────┬───────────┐\n\
             │ id ┆ time                 ┆ name             ┆      used │\n\
             ╞════╪══════════════════════╪══════════════════╪═══════════╡\n\
             │  7 ┆ 2025-12-19 08:00:00Z ┆ エージェント pr… ┆ 1,234,567 │\n\
             └────┴──────────────────────┴──────────────────┴───────────┘\n\
             hidden to fit: hint\n"
        );
        // Narrower, the used quota (priority 3) is hidden before the name (priority 2).
        assert_eq!(
            declared(at(50), &columns, rows()),
            "┌────┬──────────────────────┬────────────────────┐\n\
             │ id ┆ time                 ┆ name               │\n\
             ╞════╪══════════════════════╪════════════════════╡\n\
             │  7 ┆ 2025-12-19 08:00:00Z ┆ エージェント prod… │\n\
             └────┴──────────────────────┴────────────────────┘\n\
             hidden to fit: used, hint\n"
        );
        // Wide enough, nothing is hidden or cut; piped, never.
        for screen in [at(92), Screen::default()] {
            let whole = declared(screen, &columns, rows());
            assert!(whole.contains("エージェント production key") && !whole.contains("hidden"));
        }
    }

    #[test]
    fn a_column_empty_in_every_row_gives_way_before_any_other() {
        let columns = [
            Column::new("id", ColumnKind::Plain).whole(1),
            Column::new("error", ColumnKind::Plain).cut(2, 20),
            Column::new("removed", ColumnKind::Plain).whole(3),
            Column::new("duration", ColumnKind::Plain).whole(4),
        ];
        let row = |n| {
            vec![
                Value::Integer(n),
                Value::Null,
                Value::Integer(3),
                Value::Text("12s".into()),
            ]
        };
        let at = |width| Screen {
            width: Some(width),
            bold_header: false,
        };
        // The empty error goes first, though its priority is higher; once it has, it is not
        // squeezed back into the room another column left.
        assert_eq!(
            declared(at(30), &columns, vec![row(1), row(2)]),
            "┌────┬─────────┬──────────┐\n\
             │ id ┆ removed ┆ duration │\n\
             ╞════╪═════════╪══════════╡\n\
             │  1 ┆       3 ┆ 12s      │\n\
             │  2 ┆       3 ┆ 12s      │\n\
             └────┴─────────┴──────────┘\n\
             hidden to fit: error\n"
        );
        // With room for every column, it stays.
        assert!(declared(at(60), &columns, vec![row(1)]).contains("error"));
        assert!(!declared(at(60), &columns, vec![row(1)]).contains("hidden"));
    }

    #[test]
    fn parts_break_between_parts_indented_and_a_part_too_wide_is_cut() {
        let parts: Vec<String> = [
            "last sync:     ",
            "3 failed,",
            "2025-12-19 08:00:00Z (1h ago):",
        ]
        .into_iter()
        .chain(["error: HTTP 500 from the gateway after 3 attempts"])
        .map(String::from)
        .collect();
        assert_eq!(
            wrap_parts(&parts, 16, None),
            "last sync:      3 failed, 2025-12-19 08:00:00Z (1h ago): error: HTTP 500 from the \
             gateway after 3 attempts\n"
        );
        assert_eq!(
            wrap_parts(&parts, 16, Some(60)),
            "last sync:      3 failed, 2025-12-19 08:00:00Z (1h ago):\n\
             \x20               error: HTTP 500 from the gateway after 3 at…\n"
        );
    }

    #[test]
    fn control_and_bidi_characters_are_shown_escaped_and_only_newline_breaks_a_line() {
        let cases = [
            ("plain name エージェント", "plain name エージェント"),
            (
                "evil\x1b]0;pwned\x07\x1b[2J",
                "evil\\x1b]0;pwned\\x07\\x1b[2J",
            ),
            ("a\r\nb", "a\\r\nb"),
            ("cr\rover", "cr\\rover"),
            ("tab\there", "tab\\there"),
            ("nul\0 del\x7f", "nul\\x00 del\\x7f"),
            ("c1 \u{85}\u{9b}", "c1 \\u{85}\\u{9b}"),
            ("rtl\u{202e}gnp.exe", "rtl\\u{202e}gnp.exe"),
            (
                "\u{202a}\u{202d}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}",
                "\\u{202a}\\u{202d}\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{61c}",
            ),
            ("back\\slash stays", "back\\slash stays"),
            ("line\nbreak", "line\nbreak"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape_for_terminal(raw), shown, "{raw:?}");
        }
        assert!(matches!(escape_for_terminal("safe"), Cow::Borrowed("safe")));
    }

    #[test]
    fn tables_for_people_escape_and_the_machine_formats_stay_exact() {
        let name = "evil\x1b[2J\r\u{202e}x\ny";
        let columns = vec!["na\x1bme".to_string()];
        let rows = || vec![vec![Value::Text(name.into())]];
        let markdown = written_with(columns.clone(), rows(), Format::Markdown, true);
        assert_eq!(
            markdown,
            "| na\\x1bme |\n| --- |\n| evil\\x1b[2J\\r\\u{202e}x<br>y |\n"
        );
        let table = written_with(columns.clone(), rows(), Format::Table, true);
        assert_eq!(
            table,
            "┌────────────────────────┐\n\
             │ na\\x1bme               │\n\
             ╞════════════════════════╡\n\
             │ evil\\x1b[2J\\r\\u{202e}x │\n\
             │ y                      │\n\
             └────────────────────────┘\n"
        );
        let csv = written_with(columns.clone(), rows(), Format::Csv, false);
        assert_eq!(records(&csv, b','), vec![vec![name.to_string()]]);
        let jsonl = written_with(columns, rows(), Format::Jsonl, true);
        let object: Json = serde_json::from_str(jsonl.trim_end()).unwrap();
        assert_eq!(object["na\x1bme"], name);
    }

    #[test]
    fn dollars_round_to_the_cent_half_away_from_zero_and_never_hide_a_fraction_of_one() {
        let cases = [
            (Value::Real(1234.56), "$1,234.56"),
            (Value::Real(41.393974), "$41.39"),
            (Value::Real(0.125), "$0.13"),
            (Value::Real(-0.125), "-$0.13"),
            (Value::Real(0.005), "<$0.01"),
            // Just under their half cent as binary fractions; exact halves in millionths.
            (Value::Real(0.015), "$0.02"),
            (Value::Real(1.005), "$1.01"),
            (Value::Real(-2.675), "-$2.68"),
            (Value::Real(0.004999), "<$0.01"),
            (Value::Real(0.000001), "<$0.01"),
            (Value::Real(-0.000001), "-<$0.01"),
            (Value::Real(-0.02), "-$0.02"),
            (Value::Real(0.0), "$0.00"),
            (Value::Real(-0.0), "$0.00"),
            (Value::Real(999.995), "$1,000.00"),
            (Value::Real(1e20), "$100,000,000,000,000,000,000.00"),
            (Value::Integer(i64::MAX), "$9,223,372,036,854,775,807.00"),
            (Value::Integer(-3), "-$3.00"),
            (Value::Null, ""),
            (Value::Real(f64::NAN), "NaN"),
        ];
        for (value, shown) in cases {
            assert_eq!(ColumnKind::Dollars.text(&value), shown, "{value:?}");
        }
    }

    #[test]
    fn quota_is_thousands_separated_and_shares_have_one_decimal() {
        let quota = [
            (Value::Integer(232_075_351), "232,075,351"),
            (Value::Integer(-10), "-10"),
            (Value::Integer(-1_234), "-1,234"),
            (Value::Integer(999), "999"),
            (Value::Integer(1_000), "1,000"),
            (Value::Integer(0), "0"),
            (Value::Integer(i64::MIN), "-9,223,372,036,854,775,808"),
            (Value::Real(1234.5), "1,234.5"),
            (Value::Real(-1e20), "-100,000,000,000,000,000,000.0"),
            (Value::Null, ""),
            (Value::Text("n/a".into()), "n/a"),
        ];
        for (value, shown) in quota {
            assert_eq!(ColumnKind::Quota.text(&value), shown, "{value:?}");
        }
        let shares = [
            (Value::Real(55.41), "55.4"),
            (Value::Real(66.67), "66.7"),
            (Value::Real(0.25), "0.3"),
            (Value::Real(100.0), "100.0"),
            (Value::Real(-0.05), "-0.1"),
            (Value::Real(-0.04), "0.0"),
            (Value::Real(12_345.66), "12,345.7"),
            (Value::Null, ""),
        ];
        for (value, shown) in shares {
            assert_eq!(ColumnKind::Share.text(&value), shown, "{value:?}");
        }
        assert_eq!(ColumnKind::Plain.text(&Value::Integer(1_234)), "1234");
    }

    #[test]
    fn column_kinds_shape_tables_and_markdown_but_not_the_machine_formats() {
        let columns = [
            Column::new("name", ColumnKind::Plain),
            Column::new("used", ColumnKind::Quota),
            Column::new("usd", ColumnKind::Dollars),
            Column::new("share", ColumnKind::Share),
        ];
        let rows = || {
            [
                vec![
                    Value::Text("big".into()),
                    Value::Integer(232_075_351),
                    Value::Real(464.150702),
                    Value::Real(100.02),
                ],
                vec![
                    Value::Text("refund".into()),
                    Value::Integer(-10),
                    Value::Real(-0.00002),
                    Value::Real(-0.02),
                ],
            ]
            .map(Ok)
        };
        let written = |format| {
            let mut out = Vec::new();
            let how = RowFormat {
                format,
                headers: true,
            };
            write_rows_on(&mut out, how, Screen::default(), &columns, rows()).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            written(Format::Table),
            "┌────────┬─────────────┬─────────┬───────┐\n\
             │ name   ┆        used ┆     usd ┆ share │\n\
             ╞════════╪═════════════╪═════════╪═══════╡\n\
             │ big    ┆ 232,075,351 ┆ $464.15 ┆ 100.0 │\n\
             │ refund ┆         -10 ┆ -<$0.01 ┆   0.0 │\n\
             └────────┴─────────────┴─────────┴───────┘\n"
        );
        assert_eq!(
            written(Format::Markdown),
            "| name | used | usd | share |\n| --- | --- | --- | --- |\n\
             | big | 232,075,351 | $464.15 | 100.0 |\n\
             | refund | -10 | -&lt;$0.01 | 0.0 |\n"
        );
        assert_eq!(
            records(&written(Format::Csv), b','),
            [
                ["name", "used", "usd", "share"],
                ["big", "232075351", "464.150702", "100.02"],
                ["refund", "-10", "-0.00002", "-0.02"],
            ]
        );
        let json: Json = serde_json::from_str(&written(Format::Json)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "big", "used": 232_075_351, "usd": 464.150702, "share": 100.02},
                {"name": "refund", "used": -10, "usd": -0.00002, "share": -0.02},
            ])
        );
    }

    /// A reader that went away, as `keysync query ... | head -1` leaves stdout.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    struct FullDisk;

    impl Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("no space left on device"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_every_format_quietly_but_other_write_errors_fail() {
        let many: Vec<Vec<Value>> = (0..10_000).map(|i| vec![Value::Integer(i)]).collect();
        let columns = vec!["n".to_string()];
        for format in Format::value_variants() {
            let how = RowFormat {
                format: *format,
                headers: true,
            };
            let rows = many.iter().cloned().map(Ok);
            assert!(
                write_rows(ClosedPipe, how, &columns, rows).is_ok(),
                "{format:?}"
            );
            let rows = many.iter().cloned().map(Ok);
            let error = write_rows(FullDisk, how, &columns, rows).unwrap_err();
            assert_eq!(error.code(), crate::error::exit::INTERNAL, "{format:?}");
        }
    }

    #[test]
    fn a_failing_row_stops_the_output_with_its_error() {
        let rows = vec![
            Ok(vec![Value::Integer(1)]),
            Err(Error::Usage("the SQL does not run".into())),
        ];
        let error =
            write_rows(Vec::new(), RowFormat::default(), &["n".to_string()], rows).unwrap_err();
        assert_eq!(error.to_string(), "the SQL does not run");
    }
}
