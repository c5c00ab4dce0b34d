//! The listed keys on their way in: [`Staging`] reads the live keys and their digests, then
//! takes each page into `temp.staged` (the items read) or counts it as listed (the items
//! known unchanged), until [`Staging::apply`] writes them.

use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

use super::account::{AccountTally, bound_account};
use super::apply::register_same_extra;
use crate::api::known::ItemDigest;
use crate::api::model::DATA_COLUMNS;
use crate::api::{KnownItems, Page};
use crate::error::{DbContext, Result};
use crate::store::quoted_columns;

/// The live stored keys, sorted by id, with the last pass that listed each (0: none yet) and
/// whether its row in `temp.staged` is its latest observation.
pub(super) struct StoredKeys {
    ids: Vec<i64>,
    listed: Vec<u32>,
    staged: Vec<bool>,
}

impl StoredKeys {
    fn position(&self, id: i64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// The live keys the last pass did not list: removed, when that pass is consistent.
    pub(super) fn unlisted(&self, last_pass: u32) -> Vec<i64> {
        self.ids
            .iter()
            .zip(&self.listed)
            .filter(|(_, listed)| **listed != last_pass)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// The listed keys of one pull, on their way to the tables. The items read are staged in
/// `temp.staged`, one row per id (the latest observation), each page in a transaction of its
/// own; the known ones only count as listed. [`Staging::apply`] compares and writes them all.
pub struct Staging<'c> {
    pub(super) conn: &'c Connection,
    pub(super) sync: i64,
    pub(super) store_secrets: bool,
    /// The account this database is bound to, if a pull has seen keys yet.
    pub(super) account: Option<i64>,
    pub(super) stored: StoredKeys,
    /// The database holds no key yet: every listed key is new.
    pub(super) first_keys: bool,
    pub(super) known: Arc<KnownItems>,
    /// Listed items so far, over all passes: known unchanged, and read.
    pub(super) items_known: usize,
    pub(super) items_read: usize,
    /// The pass of the first item staged: passes only grow, so no staged row is older.
    pub(super) first_staged_pass: Option<u32>,
    /// The staged items' accounts, while the database is unbound and holds no key.
    pub(super) tally: Option<AccountTally>,
}

impl<'c> Staging<'c> {
    /// Creates the empty staging tables and reads the live keys, with the digests a known item
    /// may stand for. `staged` holds the items' values (its columns have no type, so values
    /// keep exactly the type they were bound with), `staged_digests` their digests, apart, so
    /// that writing them does not read every staged row again. Both are rowid tables keyed by
    /// the negated id (`neg`): the API lists keys newest first, so staging a page appends to
    /// them, the cheapest insert SQLite has, and reading them backwards gives id order without
    /// a sort. A row leaves both or neither.
    pub(super) fn new(conn: &'c Connection, sync: i64, store_secrets: bool) -> Result<Staging<'c>> {
        register_same_extra(conn)?;
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.staged;
             CREATE TEMP TABLE staged (neg INTEGER PRIMARY KEY, id INTEGER NOT NULL, pass,
                                       secret, {});
             DROP TABLE IF EXISTS temp.staged_digests;
             CREATE TEMP TABLE staged_digests (neg INTEGER PRIMARY KEY, pass, digest);",
            quoted_columns("")
        ))
        .db("cannot create the staging table")?;
        let (stored, known) = stored_keys(conn, store_secrets)?;
        let first_keys = conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM main.keys)", [], |row| {
                row.get(0)
            })
            .db("cannot read the stored keys")?;
        let account = bound_account(conn)?;
        Ok(Staging {
            conn,
            sync,
            store_secrets,
            account,
            stored,
            first_keys,
            known: Arc::new(known),
            items_known: 0,
            items_read: 0,
            first_staged_pass: None,
            tally: (first_keys && account.is_none()).then(AccountTally::new),
        })
    }

    /// The stored keys a listed item may be recognised as, for the API client.
    pub fn known(&self) -> Arc<KnownItems> {
        Arc::clone(&self.known)
    }
}

/// The live keys, and the index of those whose digest a known item may stand for. With
/// `--store-secrets`, a key whose full value is not stored yet is not in it: its items are
/// read, so that the value gets stored.
fn stored_keys(conn: &Connection, store_secrets: bool) -> Result<(StoredKeys, KnownItems)> {
    let context = "cannot read the stored keys";
    let mut statement = conn
        .prepare(
            "SELECT k.id, d.digest FROM main.keys AS k
             LEFT JOIN main.key_digests AS d ON d.key_id = k.id
                  AND NOT (?1 AND k.key IS NULL AND k.key_sha256 IS NOT NULL)
             WHERE k.removed_sync IS NULL ORDER BY k.id",
        )
        .db(context)?;
    // Sized once (by the digests, a small table to count): a million keys' vectors grown by
    // doubling would hold twice that for a while.
    let expected: i64 = conn
        .query_row("SELECT count(*) FROM main.key_digests", [], |row| {
            row.get(0)
        })
        .db(context)?;
    let expected = usize::try_from(expected).unwrap_or(0);
    let mut rows = statement.query([store_secrets]).db(context)?;
    let (mut ids, mut digests) = (Vec::with_capacity(expected), Vec::with_capacity(expected));
    while let Some(row) = rows.next().db(context)? {
        let id: i64 = row.get(0).db(context)?;
        // A digest that is not 16 bytes of blob vouches for nothing: that key is read.
        let digest = row.get_ref(1).db(context)?.as_blob_or_null();
        if let Ok(Some(digest)) = digest.map(|d| d.and_then(|d| ItemDigest::try_from(d).ok())) {
            digests.push((digest, id));
        }
        ids.push(id);
    }
    let stored = StoredKeys {
        listed: vec![0; ids.len()],
        staged: vec![false; ids.len()],
        ids,
    };
    Ok((stored, KnownItems::new(digests)))
}

/// `INSERT OR REPLACE` of a listed key into `table`: the `leading` columns, then the data
/// columns.
fn insert_sql(table: &str, leading: &[&str]) -> String {
    let placeholders = vec!["?"; leading.len() + DATA_COLUMNS.len()].join(", ");
    format!(
        "INSERT OR REPLACE INTO {table} ({}, {}) VALUES ({placeholders})",
        leading.join(", "),
        quoted_columns("")
    )
}

impl Staging<'_> {
    /// Takes one page of listing pass `pass`. Page 1 is first checked against the account this
    /// database is bound to. A key listed again replaces its earlier observation.
    pub fn stage(&mut self, pass: u32, page: Page) -> Result<()> {
        if page.number == 1 {
            self.check_account(&page)?;
        }
        let context = "cannot stage a page of keys";
        self.items_known += page.known.len();
        self.items_read += page.items.len();
        if !page.items.is_empty() {
            self.first_staged_pass.get_or_insert(pass);
        }
        if let Some(tally) = &mut self.tally {
            tally.add(&page);
        }
        let tx = self.conn.unchecked_transaction().db(context)?;
        stage_page(&tx, self.store_secrets, &mut self.stored, pass, page)?;
        tx.commit().db(context)
    }
}

/// Stages the items of a page that were read, and counts every listed key in.
fn stage_page(
    conn: &Connection,
    store_secrets: bool,
    stored: &mut StoredKeys,
    pass: u32,
    page: Page,
) -> Result<()> {
    let context = "cannot stage a page of keys";
    for id in page.known {
        let Some(at) = stored.position(id) else {
            continue;
        };
        stored.listed[at] = pass;
        // Listed again as stored: an earlier, different observation no longer stands.
        if std::mem::take(&mut stored.staged[at]) {
            conn.execute_batch(&format!(
                "DELETE FROM temp.staged WHERE neg = -{id};
                 DELETE FROM temp.staged_digests WHERE neg = -{id};"
            ))
            .db(context)?;
        }
    }
    let mut insert = conn
        .prepare_cached(&insert_sql("temp.staged", &["neg", "id", "pass", "secret"]))
        .db(context)?;
    let mut insert_digest = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO temp.staged_digests (neg, pass, digest) VALUES (?1, ?2, ?3)",
        )
        .db(context)?;
    for item in page.items {
        if let Some(at) = stored.position(item.id) {
            stored.listed[at] = pass;
            stored.staged[at] = true;
        }
        let secret = item.secret.filter(|_| store_secrets);
        insert_digest
            .execute(params![-item.id, pass, &item.digest[..]])
            .db(context)?;
        let head = [
            Value::Integer(-item.id),
            Value::Integer(item.id),
            Value::from(pass),
            Value::from(secret),
        ];
        insert
            .execute(params_from_iter(head.iter().chain(&item.values)))
            .db(context)?;
    }
    Ok(())
}
