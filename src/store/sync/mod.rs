//! What one pull writes: its `syncs` row, the listed keys staged as they arrive, and the
//! staged listing applied to `keys` and `key_versions` in one transaction.
//!
//! Everything here is synchronous and takes a plain `Connection`: during a pull it all runs on
//! the pull's writer thread (`sync::writer`), which owns the connection from `begin_sync` to
//! the final row, while HTTP and parsing stay on the async runtime and hand it pages.
//!
//! The `syncs` row is committed on its own before the listing starts, so that a failed or
//! killed pull still leaves a trace. [`Staging`] then reads the live keys and the digests of
//! the item texts they were written from, which the API client uses to count an item sent
//! unchanged by id without reading it (`api::known`): on a re-pull, most keys cost a digest and
//! nothing here. The items that were read are staged into a TEMP table (never the database
//! file, and gone with the connection), so memory stays flat however large the account; its
//! key is descending, the order the API lists keys in, so staging appends. Then
//! [`Staging::apply`] compares the staged keys with the stored ones in set-based SQL (one join,
//! no query per key), takes the live keys no page listed as removed, and writes every change,
//! the removals and the finished sync row in a single IMMEDIATE transaction: the snapshot and
//! its sync row change together or not at all. The first keys of a database are all new, so
//! they are written without a comparison, in id order.
//!
//! The record must stay true even when something outside goes wrong, so a pull also refuses:
//! to start before the latest good sync (time moves forward), to list another account's
//! keys into this account's database (checked on page 1, so it costs one request), and to
//! apply a listing that a newer sync has overtaken (defence in depth behind the pull lock).
//! And no way out of a pull leaves its row `running`: [`UnfinishedSync`] marks it failed when
//! the pull ends without finishing it, a panic included.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
    params_from_iter,
};

use crate::api::known::ItemDigest;
use crate::api::model::{COLUMNS, ColumnSource, DATA_COLUMNS, DataColumn, data_column, same_extra};
use crate::api::{GatewayStatus, KnownItems, Listing, Page, RequestCounts};
use crate::error::{DbContext, Error, Result};
pub use crate::store::sync_status::SyncStatus;
use crate::store::wal::BulkJournal;
use crate::store::{Store, quoted_columns};
use crate::time::{readable_time, unix_now};

/// What applying one listing did, in keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    /// Full key values an earlier `--store-secrets` pull stored and this one cleared.
    pub secrets_cleared: usize,
}

/// Records the start of a pull and returns its sync id. Any `running` row left by a process
/// that died is closed as failed first: the caller holds the pull lock, so none is alive.
/// A start earlier than the latest recorded sync's is refused before anything is written.
fn begin_sync(conn: &Connection, base_url: &str, now: i64) -> Result<i64> {
    refuse_going_back(conn, now)?;
    let context = "cannot record the start of the sync";
    conn.execute(
        "UPDATE syncs SET status = ?2, finished_at = ?1,
                error = 'interrupted: the process ended before the sync finished'
         WHERE status = ?3",
        params![now, SyncStatus::Failed, SyncStatus::Running],
    )
    .db(context)?;
    conn.execute(
        "INSERT INTO syncs (started_at, status, base_url) VALUES (?1, ?2, ?3)",
        params![now, SyncStatus::Running, base_url],
    )
    .db(context)?;
    Ok(conn.last_insert_rowid())
}

/// The history is ordered by sync id and read by time (`diff 24h`, `status`); a sync that
/// started before an earlier one would make both lie. An equal start is fine (`--now` fixed).
/// Only good syncs count: a failed one wrote no keys, so its time orders nothing, and one
/// recorded in the future (a clock that was ahead) must not block every pull until then.
fn refuse_going_back(conn: &Connection, now: i64) -> Result<()> {
    let latest: Option<(i64, i64)> = conn
        .query_row(
            "SELECT id, started_at FROM good_syncs ORDER BY started_at DESC, id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .db("cannot read the latest sync")?;
    match latest {
        Some((id, started)) if now < started => Err(Error::Usage(format!(
            "this pull would start at {}, before sync {id} did ({}): the history must move \
             forward. Check the system clock and any --now you gave. If \
             sync {id}'s own time is what is wrong (the clock was ahead when it ran), correct \
             it as the README's \"A sync recorded in the future\" shows",
            readable_time(now),
            readable_time(started)
        ))),
        _ => Ok(()),
    }
}

/// Marks a sync failed, keeping the error text. Nothing else is touched.
fn fail_sync(conn: &Connection, sync: i64, now: i64, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE syncs SET status = ?4, finished_at = ?2, error = ?3 WHERE id = ?1",
        params![sync, now, error, SyncStatus::Failed],
    )
    .db("cannot record the failure of the sync")?;
    Ok(())
}

/// Records what a pull that did not finish sent to the API (a finished one's row gets it with
/// the rest, in [`finish_sync`]).
fn count_requests(conn: &Connection, sync: i64, counts: RequestCounts) -> Result<()> {
    conn.execute(
        "UPDATE syncs SET requests = ?2, rate_limited = ?3 WHERE id = ?1",
        params![sync, counts.requests as i64, counts.rate_limited as i64],
    )
    .db("cannot record the requests of the sync")?;
    Ok(())
}

/// The live stored keys, sorted by id, with the last pass that listed each (0: none yet) and
/// whether its row in `temp.staged` is its latest observation.
struct StoredKeys {
    ids: Vec<i64>,
    listed: Vec<u32>,
    staged: Vec<bool>,
}

impl StoredKeys {
    fn position(&self, id: i64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// The live keys the last pass did not list: removed, when that pass is consistent.
    fn unlisted(&self, last_pass: u32) -> Vec<i64> {
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
    conn: &'c Connection,
    sync: i64,
    store_secrets: bool,
    /// The account this database is bound to, if a pull has seen keys yet.
    account: Option<i64>,
    stored: StoredKeys,
    /// The database holds no key yet: every listed key is new.
    first_keys: bool,
    known: Arc<KnownItems>,
    /// Listed items so far, over all passes: known unchanged, and read.
    items_known: usize,
    items_read: usize,
    /// The pass of the first item staged: passes only grow, so no staged row is older.
    first_staged_pass: Option<u32>,
    /// The staged items' accounts, while the database is unbound and holds no key.
    tally: Option<AccountTally>,
}

impl<'c> Staging<'c> {
    /// Creates the empty staging tables and reads the live keys, with the digests a known item
    /// may stand for. `staged` holds the items' values (its columns have no type, so values
    /// keep exactly the type they were bound with), `staged_digests` their digests, apart, so
    /// that writing them does not read every staged row again. Both are rowid tables keyed by
    /// the negated id (`neg`): the API lists keys newest first, so staging a page appends to
    /// them, the cheapest insert SQLite has, and reading them backwards gives id order without
    /// a sort. A row leaves both or neither.
    fn new(conn: &'c Connection, sync: i64, store_secrets: bool) -> Result<Staging<'c>> {
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

    /// Refuses a listing of another account's keys on its first page, before anything is
    /// written: one token lists one account, so page 1 (its newest keys) speaks for all of
    /// it. A page with some key of the bound account is this account's, whatever the others
    /// say (a key whose `user_id` changed is an ordinary change).
    fn check_account(&self, page: &Page) -> Result<()> {
        let Some(bound) = self.account else {
            return Ok(());
        };
        let column = data_column("user_id");
        let user_ids: Vec<&Value> = page.items.iter().map(|item| &item.values[column]).collect();
        let Some(listed) = user_ids.first() else {
            return Ok(());
        };
        if user_ids.contains(&&Value::Integer(bound)) {
            return Ok(());
        }
        let listed = match listed {
            Value::Integer(user) => format!("user {user}"),
            _ => "keys without a user_id".to_string(),
        };
        Err(Error::Usage(format!(
            "this database holds the keys of user {bound}; this token lists {listed}: use \
             another --db or --profile"
        )))
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

/// The account bound to this database (`account.user_id`), none before the first keys.
fn bound_account(conn: &Connection) -> Result<Option<i64>> {
    conn.query_row("SELECT user_id FROM account", [], |row| row.get(0))
        .optional()
        .db("cannot read the account this database is bound to")
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

impl Staging<'_> {
    /// Applies the listing as this pull's sync and finishes its row, with what the gateway
    /// published (its price), in the pull's one transaction: the snapshot and its sync row
    /// change together or not at all.
    pub fn apply(
        self,
        listing: &Listing,
        gateway: &GatewayStatus,
        now: i64,
    ) -> Result<(SyncStatus, ApplyCounts)> {
        // Declared before the transaction, so dropped after it has ended (a journal mode cannot
        // change inside one).
        let _journal = match self.first_keys {
            true => BulkJournal::begin(self.conn),
            false => None,
        };
        let tx = Transaction::new_unchecked(self.conn, TransactionBehavior::Immediate)
            .db("cannot start the write transaction")?;
        let sync = self.sync;
        refuse_if_overtaken(&tx, sync)?;
        tracing::info!(
            "sync {sync}: {} listed items known unchanged, {} read",
            self.items_known,
            self.items_read
        );
        let consistent = listing.consistent();
        let earlier_pass_dropped =
            consistent && self.first_staged_pass.is_some_and(|p| p < listing.passes);
        if earlier_pass_dropped {
            // Only the consistent pass counts: earlier passes may hold keys deleted since.
            tx.execute_batch(&format!(
                "DELETE FROM temp.staged WHERE pass <> {pass};
                 DELETE FROM temp.staged_digests WHERE pass <> {pass};",
                pass = listing.passes
            ))
            .db("cannot select the consistent pass")?;
        }
        let counts = match self.first_keys {
            true => write_first_keys(&tx, sync)?,
            false => {
                let removed = match consistent {
                    true => self.stored.unlisted(listing.passes),
                    false => Vec::new(),
                };
                keep_hashes_of_masked_keys(&tx)?;
                classify(&tx, &removed)?;
                write_changes(&tx, sync)?;
                count_changes(&tx)?
            }
        };
        write_digests(&tx)?;
        match (self.account, self.tally) {
            (Some(_), _) => {}
            (None, Some(tally)) => bind_first_account(&tx, sync, tally, earlier_pass_dropped)?,
            (None, None) => bind_account(&tx, sync)?,
        }
        let secrets_cleared = write_secrets(&tx, self.store_secrets)?;
        let counts = ApplyCounts {
            secrets_cleared,
            ..counts
        };
        let status = if consistent {
            SyncStatus::Ok
        } else {
            SyncStatus::Partial
        };
        finish_sync(&tx, sync, status, listing, counts, now)?;
        record_gateway(&tx, sync, gateway)?;
        tx.commit().db("cannot commit the sync")?;
        Ok((status, counts))
    }
}

/// Keeps the digest of every item staged: the one its key's row now stands for, changed or
/// not.
fn write_digests(tx: &Transaction<'_>) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO main.key_digests (key_id, digest)
         SELECT -neg, digest FROM temp.staged_digests ORDER BY neg DESC",
        [],
    )
    .db("cannot record the digests of the listed keys")?;
    Ok(())
}

/// The first keys of a database: every staged key is new, so none is compared, and each gets
/// its row and its first version, written in id order (appended, the cheap way for SQLite).
/// Their use counts by the rule of [`LEDGER_SQL`] for added keys: all of it, when created after
/// the good sync before this one started (an account that had no keys then).
fn write_first_keys(tx: &Transaction<'_>, sync: i64) -> Result<ApplyCounts> {
    let context = "cannot write the first keys";
    let plain = quoted_columns("");
    let added = tx
        .execute(
            &format!(
                "INSERT INTO main.keys (id, first_seen_sync, {plain})
                 SELECT id, ?1, {plain} FROM temp.staged ORDER BY neg DESC"
            ),
            [sync],
        )
        .db(context)?;
    tx.execute(
        &format!(
            "INSERT INTO main.key_versions (key_id, valid_from_sync, changed, {plain})
             SELECT id, ?1, '[]', {plain} FROM temp.staged ORDER BY neg DESC"
        ),
        [sync],
    )
    .db(context)?;
    let before: Option<i64> = tx
        .query_row(
            "SELECT started_at FROM main.good_syncs WHERE id < ?1 ORDER BY id DESC LIMIT 1",
            [sync],
            |row| row.get(0),
        )
        .optional()
        .db(context)?;
    if let Some(before) = before {
        tx.execute(
            "INSERT INTO main.use_ledger (key_id, sync_id, used, running_total)
             SELECT id, ?1, used_quota, used_quota FROM main.keys
             WHERE created_time > ?2 AND used_quota <> 0",
            [sync, before],
        )
        .db(context)?;
    }
    Ok(ApplyCounts {
        added,
        ..ApplyCounts::default()
    })
}

/// A gateway that starts masking keys (a 2026 upgrade) sends `abcd**********wxyz` where it sent
/// the full key. When that masked value equals the stored `key_hint`, it is the same key shown
/// differently: the staged row keeps the stored `key_sha256`, so no change is recorded. A masked
/// value that differs from the hint is a rotation, and stays a change (its hash unknown, NULL).
fn keep_hashes_of_masked_keys(tx: &Transaction<'_>) -> Result<()> {
    tx.execute(
        "UPDATE temp.staged SET key_sha256 = k.key_sha256
         FROM main.keys AS k
         WHERE k.id = staged.id AND staged.key_sha256 IS NULL
           AND instr(staged.key_hint, '*') > 0 AND staged.key_hint = k.key_hint",
        [],
    )
    .db("cannot compare masked keys with the stored hints")?;
    Ok(())
}

/// `same_extra(a, b)` in SQL: [`same_extra`], so that `extra` differing only by fields that
/// are `null` on one side and absent on the other is no change.
fn register_same_extra(conn: &Connection) -> Result<()> {
    conn.create_scalar_function(
        "same_extra",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let a: Option<String> = ctx.get(0)?;
            let b: Option<String> = ctx.get(1)?;
            Ok(same_extra(a.as_deref(), b.as_deref()))
        },
    )
    .db("cannot register the same_extra function")
}

/// Defence in depth behind the pull lock: a listing is only as new as its pull's start, so it
/// must not be applied over a sync that started later. Another pull that started while this
/// one listed closed this one's row as failed (see [`begin_sync`]); one that also finished has
/// an applied row with a higher id. Either way this pull writes nothing.
fn refuse_if_overtaken(tx: &Transaction<'_>, sync: i64) -> Result<()> {
    let context = "cannot check for a newer sync";
    let own: Option<SyncStatus> = tx
        .query_row("SELECT status FROM syncs WHERE id = ?1", [sync], |row| {
            row.get(0)
        })
        .optional()
        .db(context)?;
    let newer: Option<i64> = tx
        .query_row(
            "SELECT max(id) FROM good_syncs WHERE id > ?1",
            [sync],
            |row| row.get(0),
        )
        .db(context)?;
    if own == Some(SyncStatus::Running) && newer.is_none() {
        return Ok(());
    }
    let newer = newer.map_or_else(String::new, |id| format!(" and recorded sync {id}"));
    Err(Error::Locked(format!(
        "another pull started on this database while sync {sync} was listing{newer}, so this \
         older listing was not applied and nothing was written; make sure one scheduler runs \
         the pulls (two pulls of one file must share its lock), then pull again"
    )))
}

/// The `user_id`s of the items staged as a database's first keys, counted as they are staged:
/// binding the account then needs no scan of the keys just written.
#[derive(Default)]
struct AccountTally {
    users: HashMap<Option<i64>, usize>,
    /// The last id staged, and whether every id so far came lower than the one before, page 1
    /// read again aside: then no staged row replaced another.
    last_id: Option<i64>,
    descending: bool,
    /// Page 1 as first staged: its ids and users, which its reading again replaces.
    first_page: Vec<(i64, Option<i64>)>,
}

impl AccountTally {
    fn new() -> AccountTally {
        AccountTally {
            descending: true,
            ..AccountTally::default()
        }
    }

    fn add(&mut self, page: &Page) {
        let column = data_column("user_id");
        let listed: Vec<(i64, Option<i64>)> = page
            .items
            .iter()
            .map(|item| match item.values[column] {
                Value::Integer(user) => (item.id, Some(user)),
                _ => (item.id, None),
            })
            .collect();
        if page.number == 1 && !self.first_page.is_empty() {
            // Page 1 read again at the end of the pass: the same ids replace their rows.
            let same_ids = listed
                .iter()
                .map(|(id, _)| id)
                .eq(self.first_page.iter().map(|(id, _)| id));
            self.descending &= same_ids;
            for (_, user) in std::mem::replace(&mut self.first_page, listed.clone()) {
                self.count(user, -1);
            }
            for (_, user) in listed {
                self.count(user, 1);
            }
            return;
        }
        for &(id, user) in &listed {
            self.descending &= self.last_id.is_none_or(|last| id < last);
            self.last_id = Some(id);
            self.count(user, 1);
        }
        if page.number == 1 {
            self.first_page = listed;
        }
    }

    fn count(&mut self, user: Option<i64>, by: isize) {
        let keys = self.users.entry(user).or_default();
        *keys = keys.saturating_add_signed(by);
    }

    /// The `user_id` most staged keys carry (the smallest of a tie; `Some(None)` when none
    /// carries one), the way [`bind_account`] picks it. `None` when the tally cannot tell:
    /// it is exact only while every item staged is still one row, none replaced by a later
    /// observation of its key and none left out with an earlier pass.
    fn majority(self, earlier_pass_dropped: bool) -> Option<Option<i64>> {
        if !self.descending || earlier_pass_dropped {
            return None;
        }
        let most = self
            .users
            .into_iter()
            .filter_map(|(user, keys)| Some((user?, keys)).filter(|_| keys > 0))
            .max_by_key(|&(user, keys)| (keys, std::cmp::Reverse(user)));
        Some(most.map(|(user, _)| user))
    }
}

/// Binds the database to the account most of the first keys carry, from the tally when it
/// can tell.
fn bind_first_account(
    tx: &Transaction<'_>,
    sync: i64,
    tally: AccountTally,
    earlier_pass_dropped: bool,
) -> Result<()> {
    match tally.majority(earlier_pass_dropped) {
        None => bind_account(tx, sync),
        Some(None) => Ok(()),
        Some(Some(user)) => {
            tx.execute(
                "INSERT OR IGNORE INTO main.account (id, user_id, bound_sync) VALUES (1, ?1, ?2)",
                [user, sync],
            )
            .db("cannot record the account of this database")?;
            Ok(())
        }
    }
}

/// Binds the database to the account of the keys it first sees: the `user_id` most of its live
/// keys carry, once this sync's changes are written. A database that is bound already stays as
/// it is.
fn bind_account(tx: &Transaction<'_>, sync: i64) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO main.account (id, user_id, bound_sync)
         SELECT 1, user_id, ?1 FROM main.keys
         WHERE removed_sync IS NULL AND user_id IS NOT NULL
         GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 1",
        [sync],
    )
    .db("cannot record the account of this database")?;
    Ok(())
}

/// Fills `temp.delta` with every key this sync changes: `added` (new), `restored` (back after
/// a removal), `changed` (data differ, NULL-safely, from the stored state) with the names of
/// the changed columns, and `removed` (the live keys a consistent listing did not list).
fn classify(tx: &Transaction<'_>, removed: &[i64]) -> Result<()> {
    let context = "cannot compare the listing with the stored keys";
    let differing = COLUMNS
        .map(
            |DataColumn {
                 name: c, source, ..
             }| {
                let same = match source {
                    ColumnSource::Extra => {
                        format!("s.\"{c}\" IS k.\"{c}\" OR same_extra(s.\"{c}\", k.\"{c}\")")
                    }
                    _ => format!("s.\"{c}\" IS k.\"{c}\""),
                };
                format!("CASE WHEN {same} THEN '' ELSE ',\"{c}\"' END")
            },
        )
        .join(" || ");
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.delta;
         CREATE TEMP TABLE delta (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, changed TEXT);
         INSERT INTO temp.delta (id, kind, changed)
         SELECT id, kind, changed FROM (
             SELECT s.id AS id, s.neg AS neg,
                    CASE WHEN k.id IS NULL THEN 'added'
                         WHEN k.removed_sync IS NOT NULL THEN 'restored'
                         ELSE 'changed' END AS kind,
                    CASE WHEN k.id IS NULL THEN '[]'
                         ELSE '[' || ltrim({differing}, ',') || ']' END AS changed
             FROM temp.staged s LEFT JOIN main.keys k ON k.id = s.id)
         WHERE kind <> 'changed' OR changed <> '[]'
         ORDER BY neg DESC;"
    ))
    .db(context)?;
    let mut insert = tx
        .prepare("INSERT INTO temp.delta (id, kind) VALUES (?1, 'removed')")
        .db(context)?;
    for id in removed {
        insert.execute([id]).db(context)?;
    }
    Ok(())
}

/// The use ledger's rows for this sync `?1` (B), by the rule migrations/V8__refunds_and_prices.sql
/// states: a changed key was live at A (its `keys` row is its state there) and used the signed
/// difference of its `used_quota` (negative: the gateway refunded); an added or restored one was
/// not, and counts its whole use only when created after A started (never when there is no A:
/// the first good sync only opens the record). A `used_quota` that is NULL observed nothing: a
/// key listed without one writes no row, and the next value is compared with the last one its
/// versions hold since it was last added or restored (`baselines`, read only for those rare
/// keys). SQLite turns an integer overflow into a REAL, which the ledger's CHECK refuses.
const LEDGER_SQL: &str = "
WITH runs AS (
    SELECT d.id,
           (SELECT max(v.valid_from_sync) FROM main.key_versions AS v
            WHERE v.key_id = d.id
              AND NOT EXISTS (SELECT 1 FROM main.key_versions AS w
                              WHERE w.key_id = d.id AND w.valid_to_sync = v.valid_from_sync))
               AS run_start
    FROM temp.delta AS d
    JOIN main.keys AS k ON k.id = d.id
    WHERE d.kind = 'changed' AND k.used_quota IS NULL
),
baselines AS (
    SELECT r.id,
           coalesce(
               (SELECT v.used_quota FROM main.key_versions AS v
                WHERE v.key_id = r.id AND v.valid_from_sync >= r.run_start
                  AND v.used_quota IS NOT NULL
                ORDER BY v.valid_from_sync DESC LIMIT 1),
               CASE WHEN (SELECT v.created_time FROM main.key_versions AS v
                          WHERE v.key_id = r.id AND v.valid_from_sync = r.run_start)
                         > (SELECT a.started_at FROM main.good_syncs AS a
                            WHERE a.id < r.run_start ORDER BY a.id DESC LIMIT 1)
                    THEN 0 END) AS used_quota
    FROM runs AS r
)
INSERT INTO main.use_ledger (key_id, sync_id, used, running_total)
SELECT u.id, ?1, u.used,
       u.used + coalesce((SELECT l.running_total FROM main.use_ledger AS l
                          WHERE l.key_id = u.id ORDER BY l.sync_id DESC LIMIT 1), 0)
FROM (
    SELECT d.id,
           CASE
               WHEN d.kind = 'changed' THEN s.used_quota - coalesce(k.used_quota, b.used_quota)
               WHEN s.created_time > (SELECT a.started_at FROM main.good_syncs AS a
                                      WHERE a.id < ?1 ORDER BY a.id DESC LIMIT 1)
                   THEN s.used_quota
               ELSE 0
           END AS used
    FROM temp.delta AS d
    JOIN temp.staged AS s ON s.neg = -d.id
    LEFT JOIN main.keys AS k ON k.id = d.id
    LEFT JOIN baselines AS b ON b.id = d.id
    WHERE d.kind IN ('added', 'changed', 'restored')
      AND s.used_quota IS NOT NULL
      -- The first good sync has no A: SQLite tests this once, and skips the join.
      AND EXISTS (SELECT 1 FROM main.good_syncs AS a WHERE a.id < ?1)
) AS u
WHERE u.used <> 0";

/// Writes this sync's rows of the use ledger ([`LEDGER_SQL`]). Use that leaves 64-bit integers
/// (SQLite would make it a REAL, which the ledger refuses) fails the pull with one line.
fn write_ledger(tx: &Transaction<'_>, sync: i64) -> Result<()> {
    match tx.execute(LEDGER_SQL, [sync]) {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(Error::DatabaseState(
                "cannot record the keys' use: a key's used_quota moved by more than a 64-bit \
                 integer holds since the last pull (see `keysync history` for its values); \
                 nothing was written"
                    .to_string(),
            ))
        }
        done => done.map(drop).db("cannot record the keys' use"),
    }
}

/// Closes the versions that end at this sync, then writes the new state and opens a version
/// for every added, restored or changed key. Each statement touches only `temp.delta`'s keys.
fn write_changes(tx: &Transaction<'_>, sync: i64) -> Result<()> {
    let (plain, staged) = (quoted_columns(""), quoted_columns("s."));
    let assignments = DATA_COLUMNS
        .map(|c| format!("\"{c}\" = s.\"{c}\""))
        .join(", ");
    // Before `keys` takes the new state: a changed key's row there is its state at A.
    write_ledger(tx, sync)?;
    let statements = [
        "UPDATE main.key_versions SET valid_to_sync = ?1
         WHERE valid_to_sync IS NULL
           AND key_id IN (SELECT id FROM temp.delta WHERE kind IN ('changed', 'removed'))"
            .to_string(),
        "UPDATE main.keys SET removed_sync = ?1
         WHERE id IN (SELECT id FROM temp.delta WHERE kind = 'removed')"
            .to_string(),
        "DELETE FROM main.key_digests
         WHERE key_id IN (SELECT id FROM temp.delta WHERE kind = 'removed')"
            .to_string(),
        format!(
            "INSERT INTO main.keys (id, first_seen_sync, {plain})
             SELECT s.id, ?1, {staged} FROM temp.delta d JOIN temp.staged s ON s.neg = -d.id
             WHERE d.kind = 'added' ORDER BY d.id"
        ),
        format!(
            "UPDATE main.keys SET {assignments}, removed_sync = NULL
             FROM (SELECT s.* FROM temp.delta d JOIN temp.staged s ON s.neg = -d.id
                   WHERE d.kind IN ('changed', 'restored')) AS s
             WHERE s.id = main.keys.id"
        ),
        format!(
            "INSERT INTO main.key_versions (key_id, valid_from_sync, changed, {plain})
             SELECT s.id, ?1, d.changed, {staged} FROM temp.delta d JOIN temp.staged s ON s.neg = -d.id
             WHERE d.kind IN ('added', 'changed', 'restored') ORDER BY d.id"
        ),
    ];
    for sql in statements {
        let mut statement = tx.prepare(&sql).db("cannot write the changes")?;
        let uses_sync = statement.parameter_count() == 1;
        let done = if uses_sync {
            statement.execute([sync])
        } else {
            statement.execute([])
        };
        done.db("cannot write the changes")?;
    }
    Ok(())
}

/// Full key values are kept only by a pull that opts in; any other pull clears them. A stored
/// value is also dropped once its key's hash is unknown (rotated behind upstream masking), so
/// that `key` never holds a value the key no longer has. Returns how many stored values it
/// cleared.
fn write_secrets(tx: &Transaction<'_>, store_secrets: bool) -> Result<usize> {
    let context = "cannot update stored key values";
    if !store_secrets {
        return tx
            .execute("UPDATE main.keys SET key = NULL WHERE key IS NOT NULL", [])
            .db(context);
    }
    tx.execute(
        "UPDATE main.keys SET key = s.secret FROM temp.staged s
         WHERE s.id = main.keys.id AND s.secret IS NOT NULL AND main.keys.key IS NOT s.secret",
        [],
    )
    .db(context)?;
    tx.execute(
        "UPDATE main.keys SET key = NULL WHERE key IS NOT NULL AND key_sha256 IS NULL",
        [],
    )
    .db(context)
}

fn count_changes(tx: &Transaction<'_>) -> Result<ApplyCounts> {
    let count = |kinds: &str| -> Result<usize> {
        let sql = format!("SELECT count(*) FROM temp.delta WHERE kind IN ({kinds})");
        let n: i64 = tx
            .query_row(&sql, [], |row| row.get(0))
            .db("cannot count the changes")?;
        Ok(n as usize)
    };
    Ok(ApplyCounts {
        added: count("'added', 'restored'")?,
        changed: count("'changed'")?,
        removed: count("'removed'")?,
        secrets_cleared: 0,
    })
}

fn finish_sync(
    tx: &Transaction<'_>,
    sync: i64,
    status: SyncStatus,
    listing: &Listing,
    counts: ApplyCounts,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE syncs SET status = ?2, finished_at = ?3, pages = ?4, keys_seen = ?5, added = ?6,
                changed = ?7, removed = ?8, requests = ?9, rate_limited = ?10, error = NULL
         WHERE id = ?1",
        params![
            sync,
            status,
            now,
            listing.pages,
            listing.keys_seen as i64,
            counts.added as i64,
            counts.changed as i64,
            counts.removed as i64,
            listing.requests.requests as i64,
            listing.requests.rate_limited as i64
        ],
    )
    .db("cannot finish the sync row")?;
    Ok(())
}

/// Keeps on the sync row what the gateway published at this pull (all NULL when it could not
/// be read): reports convert quota to dollars with the price in force at each sync.
fn record_gateway(tx: &Transaction<'_>, sync: i64, gateway: &GatewayStatus) -> Result<()> {
    tx.execute(
        "UPDATE syncs SET quota_per_unit = ?2, quota_display_type = ?3, usd_exchange_rate = ?4,
                gateway_version = ?5
         WHERE id = ?1",
        params![
            sync,
            gateway.quota_per_unit,
            gateway.quota_display_type,
            gateway.usd_exchange_rate,
            gateway.version
        ],
    )
    .db("cannot record the gateway's price on the sync row")?;
    Ok(())
}

/// Whether good sync `sync`, recorded without a price, is news: it is the database's first
/// good sync, or the good sync before it had a price. After a sync without one, the next
/// without one is not (a gateway that never publishes a price must not warn on every run).
fn price_lost(conn: &Connection, sync: i64) -> Result<bool> {
    let before: Option<bool> = conn
        .query_row(
            "SELECT quota_per_unit IS NOT NULL FROM good_syncs WHERE id < ?1
             ORDER BY id DESC LIMIT 1",
            [sync],
            |row| row.get(0),
        )
        .optional()
        .db("cannot read the price of the sync before")?;
    Ok(before.unwrap_or(true))
}

/// The writes of a pull, in the order it makes them.
impl Store {
    /// Records the start of a pull: see [`begin_sync`].
    pub fn begin_sync(&self, base_url: &str, now: i64) -> Result<i64> {
        begin_sync(self.conn(), base_url, now)
    }

    /// Where sync `sync`'s pages go, until [`Staging::apply`] applies them.
    pub fn staging(&self, sync: i64, store_secrets: bool) -> Result<Staging<'_>> {
        Staging::new(self.conn(), sync, store_secrets)
    }

    /// Records the requests of a pull that did not finish: see [`count_requests`].
    pub(crate) fn count_requests(&self, sync: i64, counts: RequestCounts) -> Result<()> {
        count_requests(self.conn(), sync, counts)
    }

    /// Whether sync `sync`'s missing price is news: see [`price_lost`].
    pub(crate) fn price_lost(&self, sync: i64) -> Result<bool> {
        price_lost(self.conn(), sync)
    }

    /// Marks a sync failed, keeping the error text.
    pub(crate) fn fail_sync(&self, sync: i64, now: i64, error: &str) -> Result<()> {
        fail_sync(self.conn(), sync, now, error)
    }
}

/// The error a sync row gets when keysync panicked during its pull.
pub(crate) const PANICKED: &str =
    "internal error: keysync panicked during the pull (the message is on stderr)";

/// A `syncs` row that is still `running`. Dropped before [`UnfinishedSync::finished`] was
/// called, it marks the row failed on a connection of its own (the pull's may be in the
/// middle of unwinding): `internal error: ...` during a panic, `interrupted` otherwise (the
/// pull's writer gave up before the row was final).
pub(crate) struct UnfinishedSync {
    db: PathBuf,
    sync: i64,
    now: Option<i64>,
    armed: bool,
}

impl UnfinishedSync {
    /// `now` is `--now`, so that the row's end time follows the same clock as its start.
    pub fn new(db: &Path, sync: i64, now: Option<i64>) -> UnfinishedSync {
        UnfinishedSync {
            db: db.to_path_buf(),
            sync,
            now,
            armed: true,
        }
    }

    /// The row has been given its final status.
    pub fn finished(mut self) {
        self.armed = false;
    }
}

impl Drop for UnfinishedSync {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let error = if std::thread::panicking() {
            PANICKED
        } else {
            "interrupted"
        };
        let failed = Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .and_then(|conn| conn.busy_timeout(Duration::from_secs(5)).map(|()| conn))
            .map_err(|source| Error::Database {
                context: format!("cannot record the end of sync {}", self.sync),
                source,
            })
            .and_then(|conn| fail_sync(&conn, self.sync, unix_now(self.now), error));
        if let Err(record) = failed {
            tracing::warn!("{record}; the next pull marks the sync failed");
        }
    }
}

#[cfg(test)]
mod tests;
