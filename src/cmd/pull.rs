//! `keysync pull`: list every key, apply the listing in one transaction, print a summary.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::api::{ApiClient, list_all};
use crate::cli::{GlobalArgs, PullArgs};
use crate::config::{PullOptions, unix_now};
use crate::error::Result;
use crate::output::print_line;
use crate::store;
use crate::store::lock::PullLock;
use crate::store::sync::{Staging, SyncStatus, apply_listing, begin_sync, fail_sync};

/// What one pull did; printed as a line, or as JSON with `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct SyncSummary {
    pub sync: i64,
    pub status: SyncStatus,
    pub keys: usize,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub pages: u32,
    pub duration_ms: u64,
}

impl SyncSummary {
    /// `sync 12 ok: 2345 keys, 3 added, 10 changed, 1 removed (1.4s)`
    pub fn line(&self) -> String {
        format!(
            "sync {} {}: {} keys, {} added, {} changed, {} removed ({:.1}s)",
            self.sync,
            self.status.as_str(),
            self.keys,
            self.added,
            self.changed,
            self.removed,
            self.duration_ms as f64 / 1000.0
        )
    }

    pub fn print(&self, json: bool, quiet: bool) -> Result<()> {
        if quiet {
            return Ok(());
        }
        if json {
            print_line(&serde_json::to_string(self).expect("a summary serialises"))
        } else {
            print_line(&self.line())
        }
    }
}

pub async fn run(global: &GlobalArgs, args: &PullArgs) -> Result<()> {
    let options = PullOptions::resolve(global, args)?;
    let summary = pull(&options).await?;
    summary.print(args.json, global.quiet)
}

/// One whole pull. Every failure after the sync row exists is recorded in it.
pub async fn pull(options: &PullOptions) -> Result<SyncSummary> {
    let client = Arc::new(ApiClient::new(&options.api)?);
    store::create_private_file(&options.db)?;
    let _lock = PullLock::acquire(&options.db, options.wait)?;
    let mut conn = store::open(&options.db)?;
    let started = Instant::now();
    let sync = begin_sync(&conn, &options.api.base_url, unix_now(options.now))?;
    let outcome = async {
        let listing = {
            let mut staging = Staging::new(&conn, options.store_secrets)?;
            list_all(&client, &mut staging).await?
        };
        let finished = unix_now(options.now);
        let (status, counts) =
            apply_listing(&mut conn, sync, &listing, options.store_secrets, finished)?;
        Ok::<_, crate::error::Error>((listing, status, counts))
    }
    .await;
    let (listing, status, counts) = match outcome {
        Ok(done) => done,
        Err(error) => {
            if let Err(record) = fail_sync(&conn, sync, unix_now(options.now), &error.to_string()) {
                tracing::warn!("{record}");
            }
            return Err(error);
        }
    };
    if status == SyncStatus::Partial {
        tracing::warn!(
            "sync {sync} is partial: the account changed during all {} listing passes, so no \
             key was marked removed this time; the next pull will settle it",
            listing.passes
        );
    }
    Ok(SyncSummary {
        sync,
        status,
        keys: listing.keys_seen,
        added: counts.added,
        changed: counts.changed,
        removed: counts.removed,
        pages: listing.pages,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
