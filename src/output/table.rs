//! The `table` format: rows collected, each value shown as its column's kind reads, and the
//! table fitted to the terminal's width: columns hidden by priority (named in a line under
//! the table), free text cut with `…`, the cells of a user's own SQL wrapped between words.
//! What each column allows is its [`Fit`].

use std::borrow::Cow;
use std::io::Write;

use comfy_table::{Attribute, Cell, ColumnConstraint, ContentArrangement, Width};
use rusqlite::types::Value;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::{Column, Fit, Screen, escape_for_terminal, kind_at, to_shown};
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
    let layout = screen
        .width
        .map(|width| Layout::new(columns, headers, &shown, usize::from(width)));
    let kept: Vec<usize> = match &layout {
        Some(layout) => layout.kept.clone(),
        None => (0..columns.len().max(shown.first().map_or(0, Vec::len))).collect(),
    };
    let mut table = comfy_table::Table::new();
    // keysync decides width and styling (`Screen`), not comfy-table's own look at the tty.
    table
        .load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
        .force_no_tty();
    if screen.bold_header {
        table.enforce_styling();
    }
    if headers {
        table.set_header(kept.iter().map(|&i| {
            let name = columns.get(i).map_or("", |c| c.name.as_str());
            let cell = Cell::new(escape_for_terminal(name));
            if screen.bold_header {
                cell.add_attribute(Attribute::Bold)
            } else {
                cell
            }
        }));
    }
    for row in &shown {
        table.add_row(kept.iter().map(|&i| {
            let text = row.get(i).map_or("", String::as_str);
            match layout.as_ref().and_then(|l| l.cut_width(columns, i)) {
                Some(width) => cut(text, width),
                None => text.to_string(),
            }
        }));
    }
    match &layout {
        Some(layout) => layout.arrange(&mut table),
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    align_numbers(&mut table, &rows, &kept);
    writeln!(out, "{table}").map_err(Error::Output)?;
    match layout.and_then(|layout| layout.note(columns)) {
        Some(note) => writeln!(out, "{note}").map_err(Error::Output),
        None => Ok(()),
    }
}

/// Where a table goes on a screen of `width` columns: which columns it keeps, and how wide.
struct Layout {
    width: usize,
    /// The columns shown, in their order.
    kept: Vec<usize>,
    /// The width of each kept column, when their least widths fit the screen: a user's own
    /// SQL may need more, and then comfy-table breaks its words.
    widths: Option<Vec<usize>>,
}

impl Layout {
    fn new(columns: &[Column], headers: bool, shown: &[Vec<String>], width: usize) -> Layout {
        let natural = column_widths(columns, headers, shown, longest_line);
        let words = column_widths(columns, headers, shown, longest_word);
        let least: Vec<usize> = (0..columns.len())
            .map(|i| match columns[i].fit {
                Fit::Wrap => words[i],
                Fit::Whole { .. } => natural[i],
                Fit::Cut { least, .. } => {
                    let header = if headers { columns[i].name.width() } else { 0 };
                    natural[i].min(usize::from(least).max(header))
                }
            })
            .collect();
        // A column with nothing in any row says nothing: it gives way first.
        let empty: Vec<bool> = (0..columns.len())
            .map(|i| !shown.is_empty() && shown.iter().all(|row| row[i].is_empty()))
            .collect();
        let kept = kept_columns(columns, (&least, &empty), width);
        let of_kept = |all: &[usize]| kept.iter().map(|&i| all[i]).collect::<Vec<_>>();
        let widths = fitted_widths(&of_kept(&natural), &of_kept(&least), width);
        Layout {
            width,
            kept,
            widths,
        }
    }

    /// The width that column `i`'s cells are cut to, if it is a kept column of free text.
    fn cut_width(&self, columns: &[Column], i: usize) -> Option<usize> {
        let widths = self.widths.as_ref()?;
        let at = self.kept.iter().position(|&k| k == i)?;
        matches!(columns.get(i)?.fit, Fit::Cut { .. }).then(|| widths[at])
    }

    fn arrange(&self, table: &mut comfy_table::Table) {
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(u16::try_from(self.width).unwrap_or(u16::MAX));
        // Without widths that fit, comfy-table breaks words: a table wider than the terminal
        // would have every line garbled. (Constraints need the columns to exist.)
        if let Some(widths) = &self.widths {
            // comfy-table's widths count the cell's padding, a space each side.
            table.set_constraints(widths.iter().map(|&w| {
                let w = u16::try_from(w + 2).unwrap_or(u16::MAX);
                ColumnConstraint::Absolute(Width::Fixed(w))
            }));
        }
    }

    /// The line under the table that names the hidden columns, if any, cut to the screen.
    fn note(&self, columns: &[Column]) -> Option<String> {
        let hidden: Vec<Cow<'_, str>> = (0..columns.len())
            .filter(|i| !self.kept.contains(i))
            .map(|i| escape_for_terminal(&columns[i].name))
            .collect();
        if hidden.is_empty() {
            return None;
        }
        let note = format!("hidden to fit: {}", hidden.join(", "));
        Some(cut_line(&note, self.width).into_owned())
    }
}

/// The columns a table of `width` keeps: by priority (then left to right) while their `least`
/// widths and borders (`│ a ┆ b │`: three characters a column and one more) fit; a column that
/// wraps, and the first column, always. A column `empty` in every row says nothing: it is kept
/// only when every other column is.
fn kept_columns(
    columns: &[Column],
    (least, empty): (&[usize], &[bool]),
    width: usize,
) -> Vec<usize> {
    let priority = |fit: Fit| match fit {
        Fit::Wrap => 0,
        Fit::Whole { priority } | Fit::Cut { priority, .. } => priority,
    };
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by_key(|&i| (empty[i], priority(columns[i].fit), i));
    let (mut kept, mut used, mut hid_one) = (Vec::with_capacity(columns.len()), 1, false);
    for i in order {
        let needs = least[i] + 3;
        let room = used + needs <= width && !(empty[i] && hid_one);
        if kept.is_empty() || columns[i].fit == Fit::Wrap || room {
            kept.push(i);
            used += needs;
        } else {
            hid_one = true;
        }
    }
    kept.sort_unstable();
    kept
}

/// `text` with each line wider than `width` display columns cut to end in `…` within it.
fn cut(text: &str, width: usize) -> String {
    text.split('\n')
        .map(|line| cut_line(line, width))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `line` cut to end in `…` within `width` display columns, if it is wider.
pub(super) fn cut_line(line: &str, width: usize) -> Cow<'_, str> {
    if line.width() <= width {
        return Cow::Borrowed(line);
    }
    let mut kept = String::with_capacity(width + 3);
    let mut used = 0;
    for c in line.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        kept.push(c);
        used += w;
    }
    let mut kept = kept.trim_end().to_string();
    kept.push('…');
    Cow::Owned(kept)
}

/// A column of numbers reads best right-aligned.
fn align_numbers(table: &mut comfy_table::Table, rows: &[Vec<Value>], kept: &[usize]) {
    for (column, &i) in table.column_iter_mut().zip(kept) {
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
    text.lines().map(UnicodeWidthStr::width).max().unwrap_or(0)
}

/// The display width of the longest word of `text`: a column narrower than that would break a
/// time, a hint, a number or a name in the middle.
fn longest_word(text: &str) -> usize {
    text.split_whitespace()
        .map(UnicodeWidthStr::width)
        .max()
        .unwrap_or(0)
}

/// Per column, the largest `measure` of its cells (and of its header, when printed).
fn column_widths(
    columns: &[Column],
    headers: bool,
    shown: &[Vec<String>],
    measure: fn(&str) -> usize,
) -> Vec<usize> {
    (0..columns.len())
        .map(|i| {
            let header = if headers {
                measure(&escape_for_terminal(&columns[i].name))
            } else {
                0
            };
            let cells = shown.iter().filter_map(|row| row.get(i));
            cells.map(|c| measure(c)).fold(header, usize::max)
        })
        .collect()
}

/// Column widths for a table at most `screen` wide (`│ a ┆ b │`: three characters a column
/// and one more): the widest columns give way first, down to their `least` width (the longest
/// word of a column that wraps, the whole cell of one that does not). `None` when even the
/// least widths do not fit.
fn fitted_widths(natural: &[usize], least: &[usize], screen: usize) -> Option<Vec<usize>> {
    let room = screen.checked_sub(3 * natural.len() + 1)?;
    if least.iter().sum::<usize>() > room {
        return None;
    }
    let mut widths = natural.to_vec();
    let mut excess = widths.iter().sum::<usize>().saturating_sub(room);
    while excess > 0 {
        let widest = (0..widths.len())
            .filter(|&i| widths[i] > least[i])
            .max_by_key(|&i| widths[i])?;
        widths[widest] -= 1;
        excess -= 1;
    }
    Some(widths)
}

/// A row's values as a table shows them: each as its column's kind reads, escaped.
fn shown_row(row: &[Value], columns: &[Column]) -> Vec<String> {
    row.iter()
        .enumerate()
        .map(|(i, value)| to_shown(value, kind_at(columns, i)))
        .collect()
}
