//! The `table` format: rows collected, each value shown as its column's kind reads, and the
//! columns fitted to the terminal's width by wrapping cells between words (widest first).

use std::io::Write;

use comfy_table::{Attribute, Cell, ColumnConstraint, ContentArrangement, Width};
use rusqlite::types::Value;

use super::{Column, Screen, escape_for_terminal, kind_at, to_shown};
use crate::error::{Error, Result};

/// Rows as a table for people: each value as its column's kind reads, fitted to `screen`'s
/// width when it has one.
pub(super) fn write_table(
    out: &mut impl Write,
    headers: bool,
    screen: Screen,
    columns: &[Column],
    rows: impl IntoIterator<Item = Result<Vec<Value>>>,
) -> Result<()> {
    let rows = rows.into_iter().collect::<Result<Vec<_>>>()?;
    let shown: Vec<Vec<String>> = rows.iter().map(|row| shown_row(row, columns)).collect();
    let columns: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let columns = &columns[..];
    let mut table = comfy_table::Table::new();
    // keysync decides width and styling (`Screen`), not comfy-table's own look at the tty.
    table
        .load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .force_no_tty();
    let fitted_columns = arrange(&mut table, screen, columns, headers, &shown);
    if screen.bold_header {
        table.enforce_styling();
    }
    if headers {
        table.set_header(columns.iter().map(|c| {
            let cell = Cell::new(escape_for_terminal(c));
            if screen.bold_header {
                cell.add_attribute(Attribute::Bold)
            } else {
                cell
            }
        }));
    }
    for row in shown {
        table.add_row(row);
    }
    // Too narrow for the longest words, comfy-table breaks them: a table wider than the
    // terminal would have every line garbled. (Constraints need the columns to exist.)
    if let Some(widths) = fitted_columns {
        // comfy-table's widths count the cell's padding, a space each side.
        table.set_constraints(
            widths
                .into_iter()
                .map(|w| ColumnConstraint::Absolute(Width::Fixed(w + 2))),
        );
    }
    align_numbers(&mut table, &rows);
    writeln!(out, "{table}").map_err(Error::Output)
}

/// Lays `table` out for `screen`: fitted to its width, or printed whole where it has none.
/// Returns the column widths that fit, set once the columns exist.
fn arrange(
    table: &mut comfy_table::Table,
    screen: Screen,
    columns: &[String],
    headers: bool,
    shown: &[Vec<String>],
) -> Option<Vec<u16>> {
    let Some(width) = screen.width else {
        table.set_content_arrangement(ContentArrangement::Disabled);
        return None;
    };
    let fitted = fitted_widths(
        &column_widths(columns, headers, shown, longest_line),
        &column_widths(columns, headers, shown, longest_word),
        usize::from(width),
    );
    table
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width);
    fitted
}

/// A column of numbers reads best right-aligned.
fn align_numbers(table: &mut comfy_table::Table, rows: &[Vec<Value>]) {
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
}

/// The display width of the longest line of `text`.
fn longest_line(text: &str) -> usize {
    text.lines()
        .map(unicode_width::UnicodeWidthStr::width)
        .max()
        .unwrap_or(0)
}

/// The display width of the longest word of `text`: a column narrower than that would break a
/// time, a hint, a number or a name in the middle.
fn longest_word(text: &str) -> usize {
    text.split_whitespace()
        .map(unicode_width::UnicodeWidthStr::width)
        .max()
        .unwrap_or(0)
}

/// Per column, the largest `measure` of its cells (and of its header, when printed).
fn column_widths(
    columns: &[String],
    headers: bool,
    shown: &[Vec<String>],
    measure: fn(&str) -> usize,
) -> Vec<usize> {
    (0..columns.len())
        .map(|i| {
            let header = if headers { measure(&columns[i]) } else { 0 };
            let cells = shown.iter().filter_map(|row| row.get(i));
            cells.map(|c| measure(c)).fold(header, usize::max)
        })
        .collect()
}

/// Column widths for a table at most `screen` wide (`│ a ┆ b │`: three characters a column
/// and one more), wrapping cells only between words: the widest columns give way first, down
/// to their longest word. `None` when even the longest words do not fit.
fn fitted_widths(natural: &[usize], words: &[usize], screen: usize) -> Option<Vec<u16>> {
    let room = screen.checked_sub(3 * natural.len() + 1)?;
    if words.iter().sum::<usize>() > room {
        return None;
    }
    let mut widths = natural.to_vec();
    let mut excess = widths.iter().sum::<usize>().saturating_sub(room);
    while excess > 0 {
        let widest = (0..widths.len())
            .filter(|&i| widths[i] > words[i])
            .max_by_key(|&i| widths[i])?;
        widths[widest] -= 1;
        excess -= 1;
    }
    widths.into_iter().map(|w| u16::try_from(w).ok()).collect()
}

/// A row's values as a table shows them: each as its column's kind reads, escaped.
fn shown_row(row: &[Value], columns: &[Column]) -> Vec<String> {
    row.iter()
        .enumerate()
        .map(|(i, value)| to_shown(value, kind_at(columns, i)))
        .collect()
}
