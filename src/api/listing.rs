//! Paging: from numbered pages to one de-duplicated listing, and whether it can be trusted.
//!
//! Offset paging over a live list drifts: a key created mid-listing makes a later page repeat an
//! item, a key deleted mid-listing makes one never served. A listing is *consistent* only when
//! every page reported the same `total` and the unique ids seen equal it; only a consistent
//! listing may mark keys removed. An inconsistent one is listed again, up to [`MAX_PASSES`].

use std::collections::BTreeMap;

use crate::api::{ApiClient, KeyRecord, PAGE_SIZE, Page};
use crate::error::Result;

/// How many times one pull lists the account before it settles for a partial result.
pub const MAX_PASSES: u32 = 3;

/// Every key one pull observed.
#[derive(Debug, Default)]
pub struct Listing {
    /// By id; a key served more than once keeps its latest observation.
    pub keys: BTreeMap<i64, KeyRecord>,
    /// Pages fetched by the last pass.
    pub pages: u32,
    /// Unique keys the last pass saw.
    pub keys_seen: usize,
    /// True when the last pass was consistent, so keys it did not see are really gone.
    pub consistent: bool,
    pub passes: u32,
}

/// One walk over the pages, first to last.
#[derive(Default)]
struct Pass {
    keys: BTreeMap<i64, KeyRecord>,
    pages: u32,
    totals: Vec<i64>,
}

impl Pass {
    fn record(&mut self, page: Page) {
        self.pages += 1;
        self.totals.push(page.total);
        for item in page.items {
            self.keys.insert(item.id, item);
        }
    }

    fn consistent(&self) -> bool {
        let first = self.totals[0];
        self.totals.iter().all(|t| *t == first) && self.keys.len() as i64 == first
    }
}

/// Lists the whole account, passing again while the listing is inconsistent.
pub async fn list_all(client: &ApiClient) -> Result<Listing> {
    let mut listing = Listing::default();
    for pass_number in 1..=MAX_PASSES {
        let pass = list_once(client).await?;
        let consistent = pass.consistent();
        listing.pages = pass.pages;
        listing.keys_seen = pass.keys.len();
        listing.passes = pass_number;
        listing.consistent = consistent;
        if consistent {
            // Only this pass's view counts: earlier passes may hold keys deleted since.
            listing.keys = pass.keys;
            return Ok(listing);
        }
        tracing::info!(
            "listing pass {pass_number}: inconsistent (page totals {:?}, {} unique keys); the \
             account changed while it was listed",
            pass.totals,
            pass.keys.len()
        );
        listing.keys.extend(pass.keys);
    }
    Ok(listing)
}

async fn list_once(client: &ApiClient) -> Result<Pass> {
    let mut pass = Pass::default();
    let mut number = 1;
    loop {
        let page = client.fetch_page(number).await?;
        let full = page.items.len() >= PAGE_SIZE;
        let total = page.total;
        pass.record(page);
        let highest_total = pass.totals.iter().copied().max().unwrap_or(0);
        let past_every_total =
            i64::from(number) * PAGE_SIZE as i64 >= highest_total + PAGE_SIZE as i64;
        if !full || pass.keys.len() as i64 >= total || past_every_total {
            return Ok(pass);
        }
        number += 1;
    }
}
