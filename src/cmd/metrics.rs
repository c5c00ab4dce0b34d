//! `keysync metrics`: the database's current facts as Prometheus metrics (text format 0.0.4),
//! on stdout or written to a file for node_exporter's textfile collector (see `exposition`).

use std::io::Write;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use crate::alerts::Rules;
use crate::cmd::exposition::{Facts, PerKey, file_rule};
use crate::cmd::out::Sink;
use crate::config::{Settings, parse_quota_per_unit};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Write the metrics to FILE (atomically: a temporary file beside it, then a rename;
    /// mode 0644) instead of stdout. FILE may be any regular file but a database; anything
    /// else is refused
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The families with one series per key (keysync_key_*): auto writes them for up to 1,000
    /// live keys
    #[arg(long, value_enum, default_value_t = PerKey::Auto, value_name = "WHEN")]
    pub per_key: PerKey,
    /// Quota units per US dollar, shown as keysync_quota_per_unit [default: the price in force
    /// that `status` shows: the profile's quota_per_unit, else the gateway's, else 500000]
    #[arg(long, value_name = "N", value_parser = parse_quota_per_unit)]
    pub quota_per_unit: Option<NonZeroU64>,
}

pub(crate) fn run(settings: &Settings, args: Args) -> Result<()> {
    let db = settings.db()?;
    let out = args.out.as_deref().unwrap_or(Path::new("-"));
    let sink = Sink::open(out, file_rule("--out"))?;
    let price = args.quota_per_unit.or(settings.profile.quota_per_unit);
    let rules = Rules::from_profile(&settings.profile.alerts, price);
    let text = Facts::read(db, price, &rules, settings.now())?.render(args.per_key);
    sink.write(&text)?;
    if args.out.is_some() && !settings.quiet {
        // Not `eprintln!`, which panics on a closed stderr.
        let _ = writeln!(
            std::io::stderr(),
            "keysync: wrote {} ({} bytes)",
            out.display(),
            text.len()
        );
    }
    Ok(())
}
