//! The diff between two syncs, as rows: one per added or removed key, one per changed field.
//!
//! The two states come from [`super::history`]; this compares them field by field
//! (NULL-safely: two NULLs are equal). Because each state is exactly the versions valid at its
//! sync, the diff from A to B and then from B to C compose to the diff from A to C, and a key
//! removed and restored between two points shows only the fields that differ, if any.

use std::collections::{BTreeSet, HashSet};

use rusqlite::Connection;
use rusqlite::types::Value;

use super::history::{KeyStates, differing_keys};
use super::points::{SyncPoint, SyncRef, latest_good, resolve};
use crate::api::model::{DATA_COLUMNS, data_column, same_column_value};
use crate::error::{DbContext, Error, Result};
use crate::store::Store;

/// Two points of the history and the rows that differ between them.
#[derive(Clone, Debug)]
pub(crate) struct Diff {
    pub from: SyncPoint,
    pub to: SyncPoint,
    pub rows: Vec<DiffRow>,
}

/// What happened to a key between the two points, in the order rows are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Added,
    Changed,
    Removed,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Added => "added",
            Kind::Changed => "changed",
            Kind::Removed => "removed",
        }
    }
}

/// How many keys the `rows` of a diff show as `kind`: a changed key has a row per field, and
/// its rows are next to each other.
pub(crate) fn keys_of(rows: &[DiffRow], kind: Kind) -> usize {
    let mut ids: Vec<i64> = rows
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.id)
        .collect();
    ids.dedup();
    ids.len()
}

/// The fields that change when a key is only used: people's diffs (the `diff` table, the
/// page's changes) set apart the keys whose every change is to one of them.
pub(crate) const QUOTA_USE_FIELDS: [&str; 3] = ["accessed_time", "used_quota", "remain_quota"];

/// The ids of the changed keys whose every changed field is one of [`QUOTA_USE_FIELDS`],
/// sorted.
pub(crate) fn keys_that_only_used_quota(rows: &[DiffRow]) -> Vec<i64> {
    let mut changed = BTreeSet::new();
    let mut otherwise = HashSet::new();
    for row in rows.iter().filter(|row| row.kind == Kind::Changed) {
        changed.insert(row.id);
        if !row
            .field
            .is_some_and(|i| QUOTA_USE_FIELDS.contains(&DATA_COLUMNS[i]))
        {
            otherwise.insert(row.id);
        }
    }
    changed
        .into_iter()
        .filter(|id| !otherwise.contains(id))
        .collect()
}

/// One printed row: an added or removed key (no field), or one changed field of a key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DiffRow {
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

/// The diff between two points, counting only the `fields` (positions in `DATA_COLUMNS`). A
/// missing `to` is the latest good sync; neither named, the two most recent good syncs.
fn diff(
    conn: &mut Connection,
    from: Option<SyncRef>,
    to: Option<SyncRef>,
    now: i64,
    fields: &[usize],
) -> Result<Diff> {
    // One read transaction: a prune that commits meanwhile cannot delete a resolved point's
    // versions between resolving it and reading its state.
    let conn = conn.savepoint().db("cannot start reading")?;
    let (from, to) = points(&conn, from, to, now)?;
    let rows = diff_rows(&differing_keys(&conn, from.id, to.id)?, fields);
    Ok(Diff { from, to, rows })
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
pub(crate) fn diff_rows(keys: &[KeyStates], fields: &[usize]) -> Vec<DiffRow> {
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

impl Store {
    /// The diff between two points: see [`diff`].
    pub(crate) fn diff(
        &mut self,
        from: Option<SyncRef>,
        to: Option<SyncRef>,
        now: i64,
        fields: &[usize],
    ) -> Result<Diff> {
        diff(self.conn_mut(), from, to, now, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::DATA_COLUMNS;

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
}
