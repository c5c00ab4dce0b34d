//! `keysync demo`: the newcomer's first command. It starts the fake CometAPI on 127.0.0.1,
//! pulls from it over HTTP through the production code path, changes keys upstream, pulls again
//! and prints both summaries, the diff between them, and two reports of the result. No token,
//! no network.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::api::{AccessToken, ApiOptions};
use crate::cmd::show::{print_diff, print_report, print_summary};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::fake::{FakeAccount, FakeServer};
use crate::output::{RowFormat, print_line, print_parts, words};
use crate::puller::{PullOptions, Pulled, SyncSummary, pull};
use crate::report::{Report, ReportArgs};
use crate::store::{self, Store};

const DEMO_DB: &str = "keysync-demo.db";
/// The fake's token: a demo credential that grants nothing anywhere.
const DEMO_TOKEN: &str = "demo-access-token";
const DEMO_SEED: u64 = 2026;
const DAY: i64 = 86_400;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to make the demo database [default: keysync-demo.db, in the current folder].
    /// KEYSYNC_DB is not read; a file an earlier demo made is replaced, any other refused
    // The same id as the global --db, which clap then leaves out of this command, so that
    // `demo --help` does not claim the global flag's KEYSYNC_DB and default.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Print the summaries as JSON objects, one per line
    #[arg(long)]
    pub json: bool,
    /// How many keys the fake account starts with
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub keys: usize,
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
    crate::cmd::runtime()?.block_on(run_demo(settings, &args))
}

async fn run_demo(settings: &Settings, args: &Args) -> Result<()> {
    let db = (args.db.clone())
        .or_else(|| settings.db_flag.clone())
        .unwrap_or_else(|| PathBuf::from(DEMO_DB));
    clear_previous_demo(&db)?;
    // Marked before the first pull, so that even a demo cut short can be made again.
    Store::open(&db)?.mark_as_demo()?;
    let now = settings.now();
    let quiet = settings.quiet;
    let mut account = FakeAccount::new(DEMO_TOKEN);
    account.generate(args.keys, DEMO_SEED, now);
    let server = FakeServer::start(account)
        .map_err(|e| Error::Internal(format!("cannot start the fake CometAPI: {e}")))?;
    if !quiet && !args.json {
        print_line(&format!(
            "fake CometAPI with {} keys on {}",
            args.keys,
            server.url()
        ))?;
    }
    let options = PullOptions {
        db: db.clone(),
        api: ApiOptions::with_defaults(server.url(), AccessToken::new(DEMO_TOKEN.into())),
        store_secrets: false,
        wait: None,
        now: settings.now,
        ping_url: None,
    };
    let first = pulled(pull(&options, false, std::future::pending()).await?)?;
    print_summary(&first, args.json, quiet)?;
    let story = change_upstream(&mut server.account(), now);
    if !quiet && !args.json {
        print_parts(&words(&format!("upstream changes: {story}")), 2)?;
    }
    let second = pulled(pull(&options, false, std::future::pending()).await?)?;
    print_summary(&second, args.json, quiet)?;
    if !quiet && !args.json {
        print_line(&format!("database: {}", db.display()))?;
        let every_field = crate::cmd::FieldArgs::default().selected();
        let latest = Store::open_read_only(&db)?.diff(None, None, now, &every_field)?;
        print_diff(&latest, RowFormat::default(), false, false)?;
        print_reports(&db, settings.now, now)?;
    }
    Ok(())
}

/// What the database can answer: two preset reports, each under the command that prints it
/// (with `--now` when the demo was given one, so the command shows the same rows).
fn print_reports(db: &Path, fixed_now: Option<i64>, now: i64) -> Result<()> {
    let now_flag = fixed_now.map(|t| format!(" --now {t}")).unwrap_or_default();
    for report in [Report::ExpiringSoon, Report::TopConsumers] {
        print_line(&format!(
            "\n$ keysync --db {}{now_flag} query --report {}",
            db.display(),
            report.name()
        ))?;
        print_report(
            db,
            now,
            report,
            &ReportArgs::default(),
            RowFormat::default(),
        )?;
    }
    Ok(())
}

/// The demo never cancels its pulls, so each one is done.
fn pulled(outcome: Pulled) -> Result<SyncSummary> {
    match outcome {
        Pulled::Done(summary) => Ok(summary),
        Pulled::Interrupted(_) => Err(Error::Internal("the demo's pull was interrupted".into())),
    }
}

/// What happens to an account between two cron runs: keys created, deleted, disabled, used,
/// and given new expiries.
fn change_upstream(account: &mut FakeAccount, now: i64) -> String {
    let ids = account.ids();
    let created = account.generate(5, DEMO_SEED + 1, now);
    let deleted: Vec<i64> = ids.iter().step_by(97).take(3).copied().collect();
    for id in &deleted {
        account.remove(*id);
    }
    let live: Vec<i64> = ids
        .iter()
        .filter(|id| !deleted.contains(id))
        .copied()
        .collect();
    for id in live.iter().skip(1).step_by(71).take(4) {
        account.set(*id, "status", json!(2));
    }
    for (n, id) in live.iter().skip(2).step_by(29).take(10).enumerate() {
        let key = account.get(*id).expect("a live key");
        let used = key["used_quota"].as_i64().unwrap_or(0) + 10_000 * (n as i64 + 1);
        let remain = key["remain_quota"].as_i64().unwrap_or(0) - 10_000 * (n as i64 + 1);
        account.set(*id, "used_quota", json!(used));
        account.set(*id, "remain_quota", json!(remain));
        account.set(*id, "accessed_time", json!(now));
    }
    for id in live.iter().skip(3).step_by(53).take(2) {
        account.set(*id, "expired_time", json!(now + 3 * DAY));
    }
    format!(
        "{} created, {} deleted, 4 disabled, 10 used quota, 2 given a new expiry",
        created.len(),
        deleted.len()
    )
}

/// The demo starts from an empty database. It deletes an earlier demo's file and refuses
/// anything else, so it never eats real data: every sync in the file pulled from a loopback
/// fake, and the file carries the demo's mark (or, made before the mark existed, is named
/// `keysync-demo.db`). A real account pulled through a local proxy passes the first test but
/// not the second.
fn clear_previous_demo(db: &Path) -> Result<()> {
    if !db.exists() {
        return Ok(());
    }
    let store = Store::open_read_only(db)?;
    let made_by_demo = store.is_marked_as_demo()? || db.file_name() == Some(DEMO_DB.as_ref());
    let is_demo = made_by_demo && store.every_sync_from_loopback().unwrap_or(false);
    drop(store);
    if !is_demo {
        return Err(Error::Usage(format!(
            "{} exists and is not a keysync demo database; pass --db with a new file name",
            db.display()
        )));
    }
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let path = store::sibling(db, suffix);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::DatabaseState(format!(
                    "cannot remove the previous demo database {}: {e}",
                    path.display()
                )));
            }
            _ => {}
        }
    }
    Ok(())
}
