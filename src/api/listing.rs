//! Paging: from numbered pages to one de-duplicated listing, and whether it can be trusted.
//!
//! Offset paging over a live list drifts: a key created mid-listing makes a later page repeat an
//! item, a key deleted mid-listing makes one never served. A listing is *consistent* only when
//! every page reported the same `total` and the unique ids seen equal it; only a consistent
//! listing may mark keys removed. An inconsistent one is listed again, up to [`MAX_PASSES`].

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::api::{ApiClient, KeyRecord, PAGE_SIZE, Page};
use crate::error::{Error, Result};

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
pub async fn list_all(client: &Arc<ApiClient>) -> Result<Listing> {
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

/// The pages a listing of `total` keys takes; an empty account still answers page 1.
fn page_count(total: i64) -> u32 {
    let pages = (total.max(0) as u64).div_ceil(PAGE_SIZE as u64).max(1);
    u32::try_from(pages).unwrap_or(u32::MAX)
}

/// Page 1 alone (an auth failure costs one request, and its `total` fixes the page count),
/// then the rest concurrently, as many in flight as the client allows. Pages are recorded in
/// page order, so a key served twice keeps the observation of the later page.
async fn list_once(client: &Arc<ApiClient>) -> Result<Pass> {
    let first = client.fetch_page(1).await?;
    let pages = page_count(first.total);
    let mut pass = Pass::default();
    pass.record(first);
    let mut fetched = BTreeMap::new();
    let mut in_flight = JoinSet::new();
    let mut next = 2;
    loop {
        while next <= pages && in_flight.len() < client.in_flight_limit() {
            let client = Arc::clone(client);
            let number = next;
            in_flight.spawn(async move { client.fetch_page(number).await });
            next += 1;
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let page = joined.map_err(|e| Error::Internal(format!("a page fetch died: {e}")))??;
        fetched.insert(page.number, page);
    }
    for page in fetched.into_values() {
        pass.record(page);
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_count_follows_total() {
        assert_eq!(page_count(0), 1);
        assert_eq!(page_count(1), 1);
        assert_eq!(page_count(100), 1);
        assert_eq!(page_count(101), 2);
        assert_eq!(page_count(2345), 24);
    }
}
