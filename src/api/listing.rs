//! Paging: from numbered pages to one listing of the account, and whether it can be trusted.
//!
//! Pages stream into a [`PageSink`] as they arrive, so a pull holds a few pages at a time,
//! never the whole account. Offset paging over a live list drifts: a key created mid-listing
//! makes a later page repeat an item, a key deleted mid-listing makes one never served. A
//! listing is *consistent* only when every page reported the same `total` and the unique ids
//! seen equal it; only a consistent listing may mark keys removed. An inconsistent one is
//! listed again, up to [`MAX_PASSES`].

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::api::{ApiClient, PAGE_SIZE, Page};
use crate::error::{Error, Result};

/// How many times one pull lists the account before it settles for a partial result.
pub const MAX_PASSES: u32 = 3;

/// Where listed keys go as their pages arrive. Within a pass, and across passes, a key
/// staged again replaces its earlier observation.
pub trait PageSink {
    fn stage(&mut self, pass: u32, page: Page) -> Result<()>;
}

/// What one pull's listing amounted to; the keys themselves went to the sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Pages fetched by the last pass.
    pub pages: u32,
    /// Unique keys the last pass saw.
    pub keys_seen: usize,
    /// True when the last pass was consistent, so keys it did not see are really gone.
    pub consistent: bool,
    /// The number of the last pass, 1-based.
    pub passes: u32,
}

/// One walk over the pages.
#[derive(Default)]
struct Pass {
    ids: HashSet<i64>,
    pages: u32,
    totals: Vec<i64>,
}

impl Pass {
    fn record(&mut self, page: &Page) {
        self.pages += 1;
        self.totals.push(page.total);
        self.ids.extend(page.items.iter().map(|item| item.id));
    }

    fn consistent(&self) -> bool {
        let first = self.totals[0];
        self.totals.iter().all(|t| *t == first) && self.ids.len() as i64 == first
    }
}

/// Lists the whole account into `sink`, passing again while the listing is inconsistent.
pub async fn list_all(client: &Arc<ApiClient>, sink: &mut impl PageSink) -> Result<Listing> {
    let mut listing = Listing::default();
    for pass_number in 1..=MAX_PASSES {
        let pass = list_once(client, pass_number, sink).await?;
        listing = Listing {
            pages: pass.pages,
            keys_seen: pass.ids.len(),
            consistent: pass.consistent(),
            passes: pass_number,
        };
        if listing.consistent {
            break;
        }
        tracing::info!(
            "listing pass {pass_number}: inconsistent (page totals {:?}, {} unique keys); the \
             account changed while it was listed",
            pass.totals,
            pass.ids.len()
        );
    }
    Ok(listing)
}

/// The pages a listing of `total` keys takes; an empty account still answers page 1.
pub fn page_count(total: i64) -> u32 {
    let pages = (total.max(0) as u64).div_ceil(PAGE_SIZE as u64).max(1);
    u32::try_from(pages).unwrap_or(u32::MAX)
}

/// Page 1 alone (an auth failure costs one request, and its `total` fixes the page count),
/// then the rest concurrently, as many in flight as the client allows, each staged as it
/// arrives.
async fn list_once(
    client: &Arc<ApiClient>,
    pass_number: u32,
    sink: &mut impl PageSink,
) -> Result<Pass> {
    let mut pass = Pass::default();
    let first = client.fetch_page(1).await?;
    let pages = page_count(first.total);
    pass.record(&first);
    sink.stage(pass_number, first)?;
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
            return Ok(pass);
        };
        let page = joined.map_err(|e| Error::Internal(format!("a page fetch died: {e}")))??;
        pass.record(&page);
        sink.stage(pass_number, page)?;
    }
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
