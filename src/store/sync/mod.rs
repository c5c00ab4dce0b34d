//! What one pull writes: its `syncs` row, the listed keys staged as they arrive, and the
//! staged listing applied to `keys` and `key_versions` in one transaction.
//!
//! Everything here is synchronous and takes a plain `Connection`: during a pull it all runs on
//! the pull's writer thread (`puller::writer`), which owns the connection from `begin_sync` to
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
//!
//! Its parts, by role: `row` (the `syncs` row), `staging` (pages in), `account` (the account
//! a database is bound to), `apply` (the one transaction), `ledger` (the use ledger's SQL),
//! `unfinished` (the guard of a pull that ends early).

mod account;
mod apply;
mod ledger;
mod row;
mod staging;
mod unfinished;

use crate::api::RequestCounts;
use crate::error::Result;
use crate::store::Store;
use row::{begin_sync, count_requests, fail_sync, price_lost};

pub(crate) use crate::store::sync_status::SyncStatus;
pub(crate) use row::FUTURE_SYNC_HELP;
pub use row::FUTURE_SYNC_REPAIR;
pub(crate) use staging::Staging;
pub(crate) use unfinished::{PANICKED, UnfinishedSync};

/// What applying one listing did, in keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    /// Full key values an earlier `--store-secrets` pull stored and this one cleared.
    pub secrets_cleared: usize,
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

#[cfg(test)]
mod tests;
