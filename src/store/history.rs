//! Reading the history back: the state of every key at two syncs, and every version of one key.
//!
//! The state at sync `S` is the history contract (docs/database.md): the versions with `valid_from_sync <= S`
//! and `valid_to_sync` NULL or `> S`. It is found per key through the primary key
//! `(key_id, valid_from_sync)` (the one version that can be valid at `S` is the key's last to
//! start at or before `S`), so reading two states costs two index seeks per key, however long
//! the history is, and never scans `key_versions`.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::quoted_columns;
use crate::api::model::DATA_COLUMNS;
use crate::error::{DbContext, Error, Result};
use crate::store::Store;

/// One key whose version differs between two syncs: its data at each, `None` where absent.
/// The data may still be equal (a key removed and restored unchanged); comparing is the
/// caller's job, field by field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KeyStates {
    pub id: i64,
    pub old: Option<Vec<Value>>,
    pub new: Option<Vec<Value>>,
}

/// The keys whose version at sync `from` is not their version at sync `to`, by id.
pub(crate) fn differing_keys(conn: &Connection, from: i64, to: i64) -> Result<Vec<KeyStates>> {
    let context = "cannot read the key versions";
    let mut statement = conn.prepare_cached(&differing_keys_sql()).db(context)?;
    let width = DATA_COLUMNS.len();
    let rows = statement
        .query_map([from, to], |row| {
            let side = |present: usize, first: usize| -> rusqlite::Result<Option<Vec<Value>>> {
                if !row.get::<_, bool>(present)? {
                    return Ok(None);
                }
                (first..first + width)
                    .map(|i| row.get(i))
                    .collect::<rusqlite::Result<_>>()
                    .map(Some)
            };
            Ok(KeyStates {
                id: row.get(0)?,
                old: side(1, 3)?,
                new: side(2, 3 + width)?,
            })
        })
        .db(context)?;
    rows.collect::<rusqlite::Result<_>>().db(context)
}

/// `?1` is the `from` sync, `?2` the `to` sync. The two versions are compared by identity in
/// SQL so that unchanged keys never leave SQLite.
fn differing_keys_sql() -> String {
    format!(
        "SELECT k.id, a.key_id IS NOT NULL, b.key_id IS NOT NULL, {a}, {b}
         FROM (SELECT id,
                      (SELECT max(valid_from_sync) FROM key_versions
                       WHERE key_id = keys.id AND valid_from_sync <= ?1) AS from_start,
                      (SELECT max(valid_from_sync) FROM key_versions
                       WHERE key_id = keys.id AND valid_from_sync <= ?2) AS to_start
               FROM keys) AS k
         LEFT JOIN key_versions AS a
           ON a.key_id = k.id AND a.valid_from_sync = k.from_start
          AND (a.valid_to_sync IS NULL OR a.valid_to_sync > ?1)
         LEFT JOIN key_versions AS b
           ON b.key_id = k.id AND b.valid_from_sync = k.to_start
          AND (b.valid_to_sync IS NULL OR b.valid_to_sync > ?2)
         WHERE a.valid_from_sync IS NOT b.valid_from_sync
         ORDER BY k.id",
        a = quoted_columns("a."),
        b = quoted_columns("b."),
    )
}

/// A key as `history` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyRef {
    pub id: i64,
    pub first_seen_sync: i64,
}

/// The key whose id is `text`, else the one key whose current (or last) name is `text`. A name
/// several keys share is a usage error that lists their ids.
fn find_key(conn: &Connection, text: &str) -> Result<KeyRef> {
    let context = "cannot read the keys";
    let by_id = "SELECT id, first_seen_sync, removed_sync FROM keys WHERE id = ?1";
    if let Ok(id) = text.trim().parse::<i64>()
        && let Some((key, _)) = conn
            .query_row(by_id, [id], key_row)
            .optional()
            .db(context)?
    {
        return Ok(key);
    }
    let mut statement = conn
        .prepare("SELECT id, first_seen_sync, removed_sync FROM keys WHERE name = ?1 ORDER BY id")
        .db(context)?;
    let named = statement
        .query_map([text], key_row)
        .db(context)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db(context)?;
    match named.as_slice() {
        [(key, _)] => Ok(key.clone()),
        [] => Err(Error::Usage(format!(
            "no key has the id or name {text:?}; names must match exactly (see the `keys` table)"
        ))),
        several => {
            let ids: Vec<String> = several
                .iter()
                .map(|(key, removed)| match removed {
                    Some(sync) => format!("{} (removed at sync {sync})", key.id),
                    None => key.id.to_string(),
                })
                .collect();
            Err(Error::Usage(format!(
                "{} keys are named {text:?}: {}; pass the id instead",
                several.len(),
                ids.join(", ")
            )))
        }
    }
}

fn key_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(KeyRef, Option<i64>)> {
    Ok((
        KeyRef {
            id: row.get(0)?,
            first_seen_sync: row.get(1)?,
        },
        row.get(2)?,
    ))
}

/// One stored version of a key, with the start times of the syncs that bound it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Version {
    pub from_sync: i64,
    /// NULL when that sync was pruned (the version was still valid at the oldest kept sync).
    pub from_time: Option<i64>,
    pub to_sync: Option<i64>,
    pub to_time: Option<i64>,
    /// The fields that differ from the key's previous version.
    pub changed: Vec<String>,
    /// One value per entry of `DATA_COLUMNS`.
    pub values: Vec<Value>,
}

/// `?1` is the key id: a range of the primary key.
fn versions_sql() -> String {
    format!(
        "SELECT v.valid_from_sync, f.started_at, v.valid_to_sync, t.started_at, v.changed, {}
         FROM key_versions AS v
         LEFT JOIN syncs AS f ON f.id = v.valid_from_sync
         LEFT JOIN syncs AS t ON t.id = v.valid_to_sync
         WHERE v.key_id = ?1
         ORDER BY v.valid_from_sync",
        quoted_columns("v.")
    )
}

/// Every stored version of key `id`, oldest first.
fn versions(conn: &Connection, id: i64) -> Result<Vec<Version>> {
    let context = "cannot read the key's versions";
    let mut statement = conn.prepare(&versions_sql()).db(context)?;
    let rows = statement
        .query_map([id], |row| {
            let changed: String = row.get(4)?;
            let changed = serde_json::from_str(&changed).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
            })?;
            Ok(Version {
                from_sync: row.get(0)?,
                from_time: row.get(1)?,
                to_sync: row.get(2)?,
                to_time: row.get(3)?,
                changed,
                values: (5..5 + DATA_COLUMNS.len())
                    .map(|i| row.get(i))
                    .collect::<rusqlite::Result<_>>()?,
            })
        })
        .db(context)?;
    rows.collect::<rusqlite::Result<_>>().db(context)
}

impl Store {
    /// The key named by its id or its exact (current or last) name.
    pub(crate) fn find_key(&self, text: &str) -> Result<KeyRef> {
        find_key(self.conn(), text)
    }

    /// Every recorded version of key `id`, oldest first.
    pub(crate) fn versions(&self, id: i64) -> Result<Vec<Version>> {
        versions(self.conn(), id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{first_column, migrated_in_memory};

    /// The steps of SQLite's plan for `sql`, e.g. `SEARCH a USING PRIMARY KEY (key_id=? ...)`.
    fn query_plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let parameters = vec![1; statement.parameter_count()];
        statement
            .query_map(rusqlite::params_from_iter(parameters), |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The history grows by every change of every key; reading it must cost index seeks per
    /// key, never a pass over all of `key_versions`.
    #[test]
    fn reading_the_history_never_scans_key_versions() {
        let conn = migrated_in_memory();
        for sql in [differing_keys_sql(), versions_sql()] {
            let plan = query_plan(&conn, &sql);
            let scans: Vec<&String> = plan
                .iter()
                .filter(|step| step.starts_with("SCAN") && step.as_str() != "SCAN keys")
                .collect();
            assert!(scans.is_empty(), "{plan:#?}");
            assert!(
                plan.iter()
                    .any(|step| step.contains("USING PRIMARY KEY (key_id=?"))
            );
        }
    }

    #[test]
    fn names_find_one_key_or_say_which() {
        let conn = migrated_in_memory();
        conn.execute_batch(
            "INSERT INTO keys (id, name, first_seen_sync, removed_sync) VALUES
                 (1, 'ci', 1, NULL), (2, '7', 1, NULL), (7, 'prod', 2, NULL), (8, 'prod', 3, 4);",
        )
        .unwrap();
        let key = |id, first_seen_sync| KeyRef {
            id,
            first_seen_sync,
        };
        assert_eq!(find_key(&conn, "ci").unwrap(), key(1, 1));
        assert_eq!(
            find_key(&conn, "7").unwrap(),
            key(7, 2),
            "an id wins over a name"
        );
        assert_eq!(find_key(&conn, "2").unwrap(), key(2, 1));
        let shared = find_key(&conn, "prod").unwrap_err().to_string();
        assert_eq!(
            shared,
            "2 keys are named \"prod\": 7, 8 (removed at sync 4); pass the id instead"
        );
    }

    /// The one column list (`api::model::COLUMNS`) is the data the migrations give `keys` and
    /// `key_versions`, in their order, between each table's own bookkeeping columns.
    #[test]
    fn the_column_list_is_the_schemas() {
        let conn = migrated_in_memory();
        let data: Vec<String> = DATA_COLUMNS.map(String::from).to_vec();
        let own = |table, skipped: &[&str]| -> Vec<String> {
            first_column::<String>(
                &conn,
                &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
            )
            .into_iter()
            .filter(|c| !skipped.contains(&c.as_str()))
            .collect()
        };
        assert_eq!(
            own("keys", &["id", "key", "first_seen_sync", "removed_sync"]),
            data
        );
        assert_eq!(
            own(
                "key_versions",
                &["key_id", "valid_from_sync", "valid_to_sync", "changed"]
            ),
            data
        );
    }
}
