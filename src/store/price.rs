//! The price of quota: quota units per US dollar, as the gateway published it at each pull
//! (`GET /api/status`, recorded on the `syncs` row since schema 8), or as the user set it.
//!
//! Every interval of use between good syncs A and B is converted at the price in force at B:
//! the one recorded at B, else the latest recorded before B, else the gateway's default
//! ([`DEFAULT_QUOTA_PER_UNIT`]). A price the user set (`--quota-per-unit`, the profile's
//! `quota_per_unit`) replaces all of them.

use std::num::NonZeroU64;

use rusqlite::Connection;

use crate::error::{DbContext, Result};
use crate::store::Store;

/// The gateway's quota units per US dollar when it publishes none (new-api's default).
pub(crate) const DEFAULT_QUOTA_PER_UNIT: NonZeroU64 = NonZeroU64::new(500_000).unwrap();

/// The schema version that records the gateway's price on each sync.
const PRICE_SCHEMA: i64 = 8;

/// Where a price in force came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PriceSource {
    /// Recorded from the gateway by this sync.
    Gateway { sync: i64 },
    /// Set by the user: `--quota-per-unit` or the profile's `quota_per_unit`.
    Setting,
    /// Nothing recorded or set: the gateway's default.
    Default,
}

/// Quota units per US dollar, and where that number came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Price {
    pub quota_per_unit: NonZeroU64,
    pub source: PriceSource,
}

impl Price {
    /// `gateway`, `profile` or `default`: the names `status --json` gives sources.
    pub(crate) fn source_name(&self) -> &'static str {
        match self.source {
            PriceSource::Gateway { .. } => "gateway",
            PriceSource::Setting => "profile",
            PriceSource::Default => "default",
        }
    }
}

/// A price the gateway published, recorded by a good sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Recorded {
    sync: i64,
    started_at: i64,
    quota_per_unit: NonZeroU64,
}

/// Every price in force over the history: what converts each interval's use.
#[derive(Clone, Debug)]
pub(crate) struct PriceBook {
    setting: Option<NonZeroU64>,
    /// By sync id, ascending.
    recorded: Vec<Recorded>,
}

impl PriceBook {
    /// One price for every interval: the user's.
    pub(crate) fn fixed(quota_per_unit: NonZeroU64) -> PriceBook {
        PriceBook {
            setting: Some(quota_per_unit),
            recorded: Vec::new(),
        }
    }

    /// The price in force at good sync `sync`.
    pub(crate) fn at(&self, sync: i64) -> Price {
        if let Some(quota_per_unit) = self.setting {
            return Price {
                quota_per_unit,
                source: PriceSource::Setting,
            };
        }
        let before = self.recorded.partition_point(|r| r.sync <= sync);
        match before.checked_sub(1).map(|i| self.recorded[i]) {
            Some(r) => Price {
                quota_per_unit: r.quota_per_unit,
                source: PriceSource::Gateway { sync: r.sync },
            },
            None => Price {
                quota_per_unit: DEFAULT_QUOTA_PER_UNIT,
                source: PriceSource::Default,
            },
        }
    }

    /// The times a usage window must be cut at so that each piece holds one price: the last
    /// second before each recorded sync whose price differs from the one in force before it.
    pub(crate) fn change_times(&self) -> Vec<i64> {
        if self.setting.is_some() {
            return Vec::new();
        }
        let mut in_force = DEFAULT_QUOTA_PER_UNIT;
        let mut times = Vec::new();
        for r in &self.recorded {
            if r.quota_per_unit != in_force {
                times.push(r.started_at - 1);
                in_force = r.quota_per_unit;
            }
        }
        times
    }
}

/// The prices recorded by good syncs, by sync id (none in a file older than schema 8).
fn recorded_prices(conn: &Connection, schema: i64) -> Result<Vec<Recorded>> {
    if schema < PRICE_SCHEMA {
        return Ok(Vec::new());
    }
    let context = "cannot read the prices the gateway published";
    let mut statement = conn
        .prepare(
            "SELECT id, started_at, quota_per_unit FROM good_syncs
             WHERE quota_per_unit > 0 ORDER BY id",
        )
        .db(context)?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get(1)?, row.get::<_, i64>(2)?))
        })
        .db(context)?
        .collect::<rusqlite::Result<Vec<(i64, i64, i64)>>>()
        .db(context)?;
    Ok(rows
        .into_iter()
        .filter_map(|(sync, started_at, units)| {
            let quota_per_unit = NonZeroU64::new(u64::try_from(units).ok()?)?;
            Some(Recorded {
                sync,
                started_at,
                quota_per_unit,
            })
        })
        .collect())
}

/// The prices in force over the history of a file of schema `schema`; `setting` (the user's)
/// replaces them all.
pub(crate) fn price_book(
    conn: &Connection,
    schema: i64,
    setting: Option<NonZeroU64>,
) -> Result<PriceBook> {
    Ok(match setting {
        Some(quota_per_unit) => PriceBook::fixed(quota_per_unit),
        None => PriceBook {
            setting: None,
            recorded: recorded_prices(conn, schema)?,
        },
    })
}

impl Store {
    /// The prices in force over the history; `setting` (the user's) replaces them all.
    pub(crate) fn price_book(&self, setting: Option<NonZeroU64>) -> Result<PriceBook> {
        price_book(self.conn(), self.schema_version()?, setting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).unwrap()
    }

    fn book(recorded: &[(i64, i64, u64)]) -> PriceBook {
        PriceBook {
            setting: None,
            recorded: recorded
                .iter()
                .map(|&(sync, started_at, n)| Recorded {
                    sync,
                    started_at,
                    quota_per_unit: units(n),
                })
                .collect(),
        }
    }

    #[test]
    fn the_price_at_a_sync_is_the_one_recorded_there_or_before_else_the_default() {
        let book = book(&[(3, 300, 400_000), (5, 500, 250_000)]);
        assert_eq!(book.at(2).quota_per_unit, DEFAULT_QUOTA_PER_UNIT);
        assert_eq!(book.at(2).source, PriceSource::Default);
        assert_eq!(book.at(3).quota_per_unit, units(400_000));
        assert_eq!(book.at(4).source, PriceSource::Gateway { sync: 3 });
        assert_eq!(book.at(9).quota_per_unit, units(250_000));
        let fixed = PriceBook::fixed(units(1000));
        assert_eq!(fixed.at(9).quota_per_unit, units(1000));
        assert_eq!(fixed.at(9).source_name(), "profile");
    }

    #[test]
    fn windows_are_cut_only_where_the_price_changes() {
        let book = book(&[
            (2, 200, 500_000),
            (3, 300, 400_000),
            (4, 400, 400_000),
            (6, 600, 500_000),
        ]);
        assert_eq!(book.change_times(), [299, 599]);
        assert_eq!(PriceBook::fixed(units(7)).change_times(), Vec::<i64>::new());
    }
}
