//! The account a database is bound to: the `user_id` most of its first keys carry, and the
//! refusal of a page 1 that lists another account's keys.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction};

use super::Staging;
use crate::api::Page;
use crate::api::model::data_column;
use crate::error::{DbContext, Error, Result};

impl Staging<'_> {
    /// Refuses a listing of another account's keys on its first page, before anything is
    /// written: one token lists one account, so page 1 (its newest keys) speaks for all of
    /// it. A page with some key of the bound account is this account's, whatever the others
    /// say (a key whose `user_id` changed is an ordinary change).
    pub(super) fn check_account(&self, page: &Page) -> Result<()> {
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

/// The account bound to this database (`account.user_id`), none before the first keys.
pub(super) fn bound_account(conn: &Connection) -> Result<Option<i64>> {
    conn.query_row("SELECT user_id FROM account", [], |row| row.get(0))
        .optional()
        .db("cannot read the account this database is bound to")
}

/// The `user_id`s of the items staged as a database's first keys, counted as they are staged:
/// binding the account then needs no scan of the keys just written.
#[derive(Default)]
pub(super) struct AccountTally {
    users: HashMap<Option<i64>, usize>,
    /// The last id staged, and whether every id so far came lower than the one before, page 1
    /// read again aside: then no staged row replaced another.
    last_id: Option<i64>,
    descending: bool,
    /// Page 1 as first staged: its ids and users, which its reading again replaces.
    first_page: Vec<(i64, Option<i64>)>,
}

impl AccountTally {
    pub(super) fn new() -> AccountTally {
        AccountTally {
            descending: true,
            ..AccountTally::default()
        }
    }

    pub(super) fn add(&mut self, page: &Page) {
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
    pub(super) fn majority(self, earlier_pass_dropped: bool) -> Option<Option<i64>> {
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
pub(super) fn bind_first_account(
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
pub(super) fn bind_account(tx: &Transaction<'_>, sync: i64) -> Result<()> {
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
