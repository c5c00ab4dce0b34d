//! `keysync diff`: what changed between two syncs, read from the recorded history.
//!
//! The two states come from `store::history`; this module compares them field by field
//! (NULL-safely: two NULLs are equal) and prints one row per added or removed key and one per
//! changed field. Because each state is exactly the versions valid at its sync, the diff from A
//! to B and then from B to C compose to the diff from A to C, and a key removed and restored
//! between two points shows only the fields that differ, if any.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::Value;

use crate::api::model::{DATA_COLUMNS, data_column, same_column_value};
use crate::cli::{DiffArgs, FieldArgs, GlobalArgs};
use crate::config::{SyncRef, db_path, unix_now};
use crate::error::{DbContext, Error, Outcome, Result};
use crate::output::{Format, RowFormat, print_line, print_rows, readable_field};
use crate::store;
use crate::store::history::{KeyStates, differing_keys};
use crate::store::points::{SyncPoint, latest_good, resolve};

/// The columns every format prints, in order.
const COLUMNS: [&str; 7] = ["kind", "id", "name", "hint", "field", "old", "new"];

/// What happened to a key between the two points, in the order rows are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Added,
    Changed,
    Removed,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Changed => "changed",
            Kind::Removed => "removed",
        }
    }
}

/// One printed row: an added or removed key (no field), or one changed field of a key.
#[derive(Clone, Debug, PartialEq)]
pub struct DiffRow {
    pub kind: Kind,
    pub id: i64,
    /// The key's name and hint where it exists: at `to`, or at `from` for a removed key.
    pub name: Value,
    pub hint: Value,
    /// The position of the changed field in `DATA_COLUMNS`.
    pub field: Option<usize>,
    pub old: Value,
    pub new: Value,
}

pub fn run(global: &GlobalArgs, args: &DiffArgs) -> Result<Outcome> {
    let mut conn = store::open_read_only(&db_path(global)?)?;
    // One read transaction: a prune that commits meanwhile cannot delete a resolved point's
    // versions between resolving it and reading its state.
    let conn = conn.transaction().db("cannot start reading")?;
    let (from, to) = points(&conn, args.from, args.to, unix_now(global.now))?;
    let rows = diff_rows(
        &differing_keys(&conn, from.id, to.id)?,
        &args.fields.selected(),
    );
    print_diff(from, to, &rows, args.format.row_format(), global.quiet)?;
    Ok(if args.exit_code && !rows.is_empty() {
        Outcome::Alarm
    } else {
        Outcome::Success
    })
}

/// Prints, as a table, the diff between the two most recent good syncs of `db` (for `demo`).
pub fn print_latest(db: &Path) -> Result<()> {
    let mut conn = store::open_read_only(db)?;
    let conn = conn.transaction().db("cannot start reading")?;
    let (from, to) = points(&conn, None, None, 0)?;
    let every_field = FieldArgs::default().selected();
    let rows = diff_rows(&differing_keys(&conn, from.id, to.id)?, &every_field);
    let table = RowFormat {
        format: Format::Table,
        headers: true,
    };
    print_diff(from, to, &rows, table, false)
}

/// The two syncs to compare: as named, with the latest good sync standing in for a missing
/// TO, and the two most recent good syncs when neither is named.
fn points(
    conn: &Connection,
    from: Option<SyncRef>,
    to: Option<SyncRef>,
    now: i64,
) -> Result<(SyncPoint, SyncPoint)> {
    match (from, to) {
        (Some(from), Some(to)) => Ok((resolve(conn, from, now)?, resolve(conn, to, now)?)),
        (Some(from), None) => Ok((resolve(conn, from, now)?, latest_good(conn, 1)?[0])),
        (None, _) => match latest_good(conn, 2)?.as_slice() {
            [latest, previous] => Ok((*previous, *latest)),
            [only] => Err(Error::Usage(format!(
                "there is only one good sync so far ({}), so nothing to compare it with: \
                 run `keysync pull` again later, or name the points",
                only.describe()
            ))),
            _ => unreachable!("latest_good returns one or two syncs, or fails"),
        },
    }
}

/// The rows for keys whose versions differ, counting only the `fields` (positions in
/// `DATA_COLUMNS`) for changes: added, then changed, then removed; by id; fields in column
/// order.
pub fn diff_rows(keys: &[KeyStates], fields: &[usize]) -> Vec<DiffRow> {
    let mut rows: Vec<DiffRow> = keys.iter().flat_map(|key| key_rows(key, fields)).collect();
    // Keys arrive by id and fields in column order; a stable sort groups the kinds.
    rows.sort_by_key(|row| row.kind);
    rows
}

fn key_rows(key: &KeyStates, fields: &[usize]) -> Vec<DiffRow> {
    let whole = |kind, data| DiffRow::new(kind, key.id, data, None, Value::Null, Value::Null);
    match (&key.old, &key.new) {
        (None, Some(new)) => vec![whole(Kind::Added, new)],
        (Some(old), None) => vec![whole(Kind::Removed, old)],
        (Some(old), Some(new)) => fields
            .iter()
            .filter(|&&i| !same_column_value(i, &old[i], &new[i]))
            .map(|&i| {
                let (was, is) = (old[i].clone(), new[i].clone());
                DiffRow::new(Kind::Changed, key.id, new, Some(i), was, is)
            })
            .collect(),
        (None, None) => Vec::new(),
    }
}

impl DiffRow {
    /// A row naming the key by its `data` (all of `DATA_COLUMNS`) at the point it exists.
    fn new(
        kind: Kind,
        id: i64,
        data: &[Value],
        field: Option<usize>,
        old: Value,
        new: Value,
    ) -> Self {
        DiffRow {
            kind,
            id,
            name: data[data_column("name")].clone(),
            hint: data[data_column("key_hint")].clone(),
            field,
            old,
            new,
        }
    }
}

fn print_diff(
    from: SyncPoint,
    to: SyncPoint,
    rows: &[DiffRow],
    how: RowFormat,
    quiet: bool,
) -> Result<()> {
    let for_people = how.format.is_for_people();
    if how.format == Format::Table {
        if !quiet {
            print_line(&caption(from, to, rows))?;
        }
        if rows.is_empty() {
            return Ok(());
        }
    }
    let columns = COLUMNS.map(String::from);
    print_rows(
        how,
        &columns,
        rows.iter().map(|row| Ok(values(row, for_people))),
    )
}

/// `sync 3 (2025-12-19 08:00:00Z) → sync 5 (2025-12-19 09:00:00Z): 1 added, 2 changed, 0 removed`
fn caption(from: SyncPoint, to: SyncPoint, rows: &[DiffRow]) -> String {
    let keys = |kind| {
        let mut ids: Vec<i64> = rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.id)
            .collect();
        ids.dedup();
        ids.len()
    };
    let counts = if rows.is_empty() {
        "no differences".to_string()
    } else {
        format!(
            "{} added, {} changed, {} removed",
            keys(Kind::Added),
            keys(Kind::Changed),
            keys(Kind::Removed)
        )
    };
    format!("{} → {}: {counts}", from.describe(), to.describe())
}

fn values(row: &DiffRow, for_people: bool) -> Vec<Value> {
    let field = row.field.map(|i| DATA_COLUMNS[i]);
    let shown = |value: &Value| match field {
        Some(name) if for_people => readable_field(name, value.clone()),
        _ => value.clone(),
    };
    vec![
        Value::Text(row.kind.as_str().to_string()),
        Value::Integer(row.id),
        row.name.clone(),
        row.hint.clone(),
        field.map_or(Value::Null, |name| Value::Text(name.to_string())),
        shown(&row.old),
        shown(&row.new),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's data with `name`, `status` and `extra` set, every other field NULL.
    fn key(name: &str, status: i64, extra: &str) -> Vec<Value> {
        DATA_COLUMNS
            .iter()
            .map(|column| match *column {
                "name" => Value::Text(name.into()),
                "status" => Value::Integer(status),
                "extra" => Value::Text(extra.into()),
                _ => Value::Null,
            })
            .collect()
    }

    fn states(id: i64, old: Option<Vec<Value>>, new: Option<Vec<Value>>) -> KeyStates {
        KeyStates { id, old, new }
    }

    fn summary(rows: &[DiffRow]) -> Vec<(Kind, i64, Option<&'static str>, Value, Value)> {
        rows.iter()
            .map(|r| {
                (
                    r.kind,
                    r.id,
                    r.field.map(|i| DATA_COLUMNS[i]),
                    r.old.clone(),
                    r.new.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn kinds_are_grouped_and_fields_compared_null_safely() {
        let every: Vec<usize> = (0..DATA_COLUMNS.len()).collect();
        let mut renamed = key("b", 1, "{}");
        renamed[data_column("user_id")] = Value::Integer(7);
        let keys = vec![
            states(1, Some(key("gone", 1, "{}")), None),
            states(2, Some(key("a", 1, "{}")), Some(renamed)),
            states(3, None, Some(key("new", 2, "{}"))),
            // Removed and restored with the same data: different versions, no difference.
            states(4, Some(key("same", 1, "{}")), Some(key("same", 1, "{}"))),
            states(
                5,
                Some(key("x", 1, "{}")),
                Some(key("x", 1, r#"{"tier":"gold"}"#)),
            ),
        ];
        let rows = diff_rows(&keys, &every);
        let text = |s: &str| Value::Text(s.into());
        assert_eq!(
            summary(&rows),
            vec![
                (Kind::Added, 3, None, Value::Null, Value::Null),
                (
                    Kind::Changed,
                    2,
                    Some("user_id"),
                    Value::Null,
                    Value::Integer(7)
                ),
                (Kind::Changed, 2, Some("name"), text("a"), text("b")),
                (
                    Kind::Changed,
                    5,
                    Some("extra"),
                    text("{}"),
                    text(r#"{"tier":"gold"}"#)
                ),
                (Kind::Removed, 1, None, Value::Null, Value::Null),
            ]
        );
        assert_eq!(
            rows[0].name,
            text("new"),
            "an added key is named as it is at TO"
        );
        assert_eq!(
            rows[1].name,
            text("b"),
            "a changed key is named as it is at TO"
        );
        assert_eq!(
            rows[4].name,
            text("gone"),
            "a removed key is named as it was at FROM"
        );
    }

    #[test]
    fn only_the_selected_fields_count() {
        let keys = vec![states(1, Some(key("a", 1, "{}")), Some(key("b", 2, "{}")))];
        let rows = diff_rows(&keys, &[data_column("status")]);
        assert_eq!(
            summary(&rows),
            vec![(
                Kind::Changed,
                1,
                Some("status"),
                Value::Integer(1),
                Value::Integer(2)
            )]
        );
        assert!(diff_rows(&keys, &[data_column("extra")]).is_empty());
    }

    #[test]
    fn people_read_times_and_tools_read_numbers() {
        let row = DiffRow {
            kind: Kind::Changed,
            id: 9,
            name: Value::Null,
            hint: Value::Null,
            field: Some(data_column("expired_time")),
            old: Value::Integer(-1),
            new: Value::Integer(1_766_102_400),
        };
        let shown = values(&row, true);
        assert_eq!(
            shown[5..],
            [
                Value::Text("never".into()),
                Value::Text("2025-12-19 00:00:00Z".into())
            ]
        );
        assert_eq!(
            values(&row, false)[5..],
            [Value::Integer(-1), Value::Integer(1_766_102_400)]
        );
    }
}
