//! What `pull` does with the metrics after every pull, failed ones included: writes them to
//! `--metrics-file` and hands them to the `--metrics-listen` endpoint. The database is read on
//! the runtime's blocking pool, so the endpoint goes on answering meanwhile.

use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;

use tokio::sync::watch;

use super::endpoint::Endpoint;
use super::{Facts, PerKey, file_rule};
use crate::alerts::Rules;
use crate::cmd::out::Sink;
use crate::error::{Error, Result};
use crate::time::unix_now;

/// The flag that names the file, in messages.
const FILE_FLAG: &str = "--metrics-file";

/// Where a pull's metrics go: a file, the endpoint, both or neither.
pub(crate) struct Publisher {
    db: PathBuf,
    /// The profile's `quota_per_unit`, which wins over the gateway's price.
    price: Option<NonZeroU64>,
    /// The alert rules in force: the check's when the pull checks, else the profile's.
    rules: Rules,
    /// `--now`, for the facts that depend on it (what a key would do now).
    now: Option<i64>,
    file: Option<PathBuf>,
    endpoint: Option<watch::Sender<String>>,
}

impl Publisher {
    /// Checks `file` before any pull, so that a path that must not take the metrics fails at
    /// once (exit 2).
    pub(crate) fn new(
        db: PathBuf,
        (price, rules): (Option<NonZeroU64>, Rules),
        now: Option<i64>,
        file: Option<PathBuf>,
    ) -> Result<Publisher> {
        if let Some(file) = &file {
            // The temporary file it makes is removed again when the sink is dropped.
            drop(Sink::open(file, file_rule(FILE_FLAG))?);
        }
        Ok(Publisher {
            db,
            price,
            rules,
            now,
            file,
            endpoint: None,
        })
    }

    /// Starts serving `/metrics` at `addr`, with the database's metrics as they are until the
    /// first pull ends (none if there is no database yet).
    pub(crate) async fn listen(&mut self, addr: SocketAddr, quiet: bool) -> Result<()> {
        let endpoint = Endpoint::bind(addr).await?;
        let bound = endpoint.local_addr()?;
        let first = match self.db.exists() {
            true => self.render().await.unwrap_or_else(|error| {
                tracing::error!("{error}");
                String::new()
            }),
            false => String::new(),
        };
        let (sender, receiver) = watch::channel(first);
        endpoint.serve(receiver);
        self.endpoint = Some(sender);
        if !quiet {
            // Not `eprintln!`, which panics on a closed stderr.
            let _ = writeln!(
                std::io::stderr(),
                "keysync: serving metrics at http://{bound}/metrics"
            );
        }
        Ok(())
    }

    /// After a pull: the metrics read again, written to the file and served.
    pub(crate) async fn publish(&self) -> Result<()> {
        if self.file.is_none() && self.endpoint.is_none() {
            return Ok(());
        }
        let text = self.render().await?;
        if let Some(endpoint) = &self.endpoint {
            endpoint.send_replace(text.clone());
        }
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || Sink::open(&file, file_rule(FILE_FLAG))?.write(&text))
            .await
            .map_err(|e| Error::Internal(format!("the metrics file's writer failed: {e}")))?
    }

    async fn render(&self) -> Result<String> {
        let (db, price, now) = (self.db.clone(), self.price, unix_now(self.now));
        let rules = self.rules.clone();
        let read = move || Ok(Facts::read(&db, price, &rules, now)?.render(PerKey::Auto));
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| Error::Internal(format!("reading the metrics failed: {e}")))?
    }
}
