//! Paging: from numbered pages to one listing of the account, and whether it can be trusted.
//!
//! No single number from the server is trusted (see ../shared/cometapi-api.md, "Pagination"):
//! offsets follow the page size the server echoes, a listing pass ends only at a page shorter
//! than that size, and `total` is a hint for how many pages to request at once, never a stop
//! condition. Pages stream into a [`PageSink`] in page order as they arrive, so a pull holds a
//! few pages at a time, never the whole account.
//!
//! Offset paging over a live list drifts: a key created mid-listing makes a later page repeat
//! an item, a key deleted mid-listing makes one never served. A pass is *consistent*, and may
//! mark keys removed, only when it ended on a short page, every page reported the same `total`
//! and page size, the unique ids equal `total`, and page 1 read again at the end lists the same
//! ids as at the start. An inconsistent pass is listed again, up to [`MAX_PASSES`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::task::{AbortHandle, JoinSet};

use crate::api::{ApiClient, Page, RequestCounts};
use crate::error::{Error, Result};
use crate::terminal::counted;

/// How many times one pull lists the account before it settles for a partial result.
pub(crate) const MAX_PASSES: u32 = 3;

/// Where listed keys go as their pages arrive. Within a pass, and across passes, a key
/// staged again replaces its earlier observation. Staging is async so that a sink which hands
/// pages to another thread can wait for room without blocking the runtime (back-pressure); the
/// future is `Send` so that a pull can run on any runtime.
pub(crate) trait PageSink {
    fn stage(&mut self, pass: u32, page: Page) -> impl Future<Output = Result<()>> + Send;
}

/// What one pull's listing amounted to; the keys themselves went to the sink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Pages of the last pass, up to its short page (the re-read of page 1 not counted).
    pub pages: u32,
    /// Unique keys the last pass saw.
    pub keys_seen: usize,
    /// Why the last pass could not be trusted to mark keys removed; `None` when consistent.
    pub inconsistency: Option<String>,
    /// The number of the last pass, 1-based.
    pub passes: u32,
    /// Every request the listing sent, over all its passes, and the 429s among them.
    pub requests: RequestCounts,
}

impl Listing {
    /// True when the last pass was consistent, so keys it did not see are really gone.
    pub fn consistent(&self) -> bool {
        self.inconsistency.is_none()
    }
}

/// How a pass stopped asking for pages.
enum PassEnd {
    /// At this page, shorter than the page size: the listing is complete.
    ShortPage,
    /// At this full page of ids already seen: the server is not paging.
    Repeated(u32),
}

/// One walk over the pages.
struct Pass {
    ids: HashSet<i64>,
    pages: u32,
    totals: Vec<Option<i64>>,
    page_size: usize,
    page_sizes_agree: bool,
    first_page_ids: Vec<i64>,
}

impl Pass {
    fn new(first: &Page) -> Pass {
        Pass {
            ids: HashSet::new(),
            pages: 0,
            totals: Vec::new(),
            page_size: first.page_size,
            page_sizes_agree: true,
            first_page_ids: ids_of(first),
        }
    }

    /// Counts a page in; false when it is full and lists only ids seen already.
    fn record(&mut self, page: &Page) -> bool {
        self.pages += 1;
        self.totals.push(page.total);
        self.page_sizes_agree &= page.page_size == self.page_size;
        let before = self.ids.len();
        self.ids.extend(page.ids());
        page.is_short() || self.ids.len() > before || page.number == 1
    }

    /// Why this pass cannot prove removals, or `None` when it can.
    fn inconsistency(&self, end: &PassEnd, first_page_again: &[i64]) -> Option<String> {
        if let PassEnd::Repeated(page) = end {
            return Some(format!(
                "page {page} listed only keys already seen (the server seems to ignore `p`)"
            ));
        }
        if !self.page_sizes_agree {
            return Some("the server changed its page size during the listing".into());
        }
        let Some(total) = self.totals[0] else {
            return Some("the server sent no usable `total` to check the listing against".into());
        };
        if self.totals.iter().any(|t| *t != Some(total)) {
            let mut distinct: Vec<String> = self
                .totals
                .iter()
                .map(|t| t.map_or("none".into(), |t| t.to_string()))
                .collect();
            distinct.sort();
            distinct.dedup();
            return Some(format!(
                "the pages reported different totals ({})",
                distinct.join(", ")
            ));
        }
        if self.ids.len() as i64 != total {
            let listed = match self.ids.len() {
                1 => "1 key was".to_string(),
                n => format!("{} were", counted(n, "key")),
            };
            return Some(format!(
                "{listed} listed but the server's total says {total}"
            ));
        }
        if first_page_again != self.first_page_ids {
            return Some("page 1 changed while the account was listed".into());
        }
        None
    }
}

fn ids_of(page: &Page) -> Vec<i64> {
    page.ids().collect()
}

/// A server that pages by fewer than 100 and does not say so (a proxy, a fork) serves a page 1
/// that looks short. When page 1 has no echoed size and fewer keys than its `total`, its own
/// length is taken as the page size, so the listing goes on to page 2 instead of stopping at
/// a fraction of the account.
fn infer_page_size(first: &mut Page) {
    let served = first.len();
    if first.page_size_echoed || served == 0 || !first.is_short() {
        return;
    }
    if first.total.is_some_and(|total| total > served as i64) {
        tracing::info!(
            "page 1 holds {served} of {} and names no page size: taking {served} as the page \
             size",
            counted(first.total.unwrap_or_default(), "key")
        );
        first.page_size = served;
    }
}

/// Lists the whole account into `sink`, passing again while the listing is inconsistent.
pub(crate) async fn list_all(client: &Arc<ApiClient>, sink: &mut impl PageSink) -> Result<Listing> {
    let mut listing = Listing::default();
    for pass in 1..=MAX_PASSES {
        listing = list_once(client, pass, sink).await?;
        let Some(why) = &listing.inconsistency else {
            break;
        };
        tracing::info!("listing pass {pass} cannot be trusted for removals: {why}");
    }
    listing.requests = client.request_counts();
    Ok(listing)
}

/// One pass: page 1 alone (an auth failure costs one request, and it fixes the page size and
/// the hint), then the following pages concurrently, staged in page order, until a short page;
/// then page 1 again.
async fn list_once(
    client: &Arc<ApiClient>,
    number: u32,
    sink: &mut impl PageSink,
) -> Result<Listing> {
    let mut first = client.fetch_page(1).await?;
    infer_page_size(&mut first);
    let mut pass = Pass::new(&first);
    pass.record(&first);
    let end = if first.is_short() {
        sink.stage(number, first).await?;
        PassEnd::ShortPage
    } else {
        // Page 1 is full, so a `total` that makes it the last (or no `total`) is wrong: keep
        // listing, as far as the window allows.
        let hint = first
            .expected_last_page()
            .filter(|last| *last > 1)
            .unwrap_or(u32::MAX);
        sink.stage(number, first).await?;
        list_rest(client, number, hint, &mut pass, sink).await?
    };
    let again = client.fetch_page(1).await?;
    let first_page_again = ids_of(&again);
    pass.totals.push(again.total);
    sink.stage(number, again).await?;
    Ok(Listing {
        pages: pass.pages,
        keys_seen: pass.ids.len(),
        inconsistency: pass.inconsistency(&end, &first_page_again),
        passes: number,
        requests: RequestCounts::default(),
    })
}

/// Pages 2.. of a pass. Requests go out while the client allows and, until the page `total`
/// promises as the last (`hint`, at least 2) proves full, no further than that page; answers are buffered so that
/// pages reach the sink in order. The first short page ends the pass: requests for later pages
/// are aborted and their answers, failures included, dropped.
async fn list_rest(
    client: &Arc<ApiClient>,
    number: u32,
    mut hint: u32,
    pass: &mut Pass,
    sink: &mut impl PageSink,
) -> Result<PassEnd> {
    let mut in_flight = JoinSet::new();
    let mut handles: BTreeMap<u32, AbortHandle> = BTreeMap::new();
    let mut arrived: BTreeMap<u32, Result<Page>> = BTreeMap::new();
    let mut next_request = 2;
    let mut next_stage = 2;
    loop {
        let limit = client.in_flight_limit();
        // Buffered pages count against the window, so one slow page cannot make the rest of
        // the account pile up in memory.
        while in_flight.len() < limit
            && next_request <= hint
            && next_request - next_stage < limit as u32
        {
            let client = Arc::clone(client);
            let page = next_request;
            let handle = in_flight.spawn(async move { (page, client.fetch_page(page).await) });
            handles.insert(page, handle);
            next_request += 1;
        }
        let (page_number, fetched) =
            next_fetched(&mut in_flight, next_stage, pass.page_size).await?;
        handles.remove(&page_number);
        arrived.insert(page_number, fetched);
        // A failure counts only once every page before it has arrived: a page past the end
        // may fail without harm.
        while let Some(page) = arrived.remove(&next_stage) {
            let page = page?;
            next_stage += 1;
            let new_ids = pass.record(&page);
            let short = page.is_short();
            if !short && page.number >= hint {
                // `total` promised fewer keys than the server has: keep listing.
                hint = u32::MAX;
            }
            sink.stage(number, page).await?;
            let end = match (short, new_ids) {
                (true, _) => Some(PassEnd::ShortPage),
                (false, false) => Some(PassEnd::Repeated(next_stage - 1)),
                (false, true) => None,
            };
            if let Some(end) = end {
                for handle in handles.values() {
                    handle.abort();
                }
                return Ok(end);
            }
        }
    }
}

/// The next page fetch to finish, by page number. A page whose server echoed no usable size
/// gets `page_size`, the pass's. `next_stage` only names the page awaited when none is left.
async fn next_fetched(
    in_flight: &mut JoinSet<(u32, Result<Page>)>,
    next_stage: u32,
    page_size: usize,
) -> Result<(u32, Result<Page>)> {
    let Some(joined) = in_flight.join_next().await else {
        return Err(Error::Internal(format!(
            "the listing stopped before a short page (next page {next_stage})"
        )));
    };
    let (page_number, mut fetched) = match joined {
        Ok(answer) => answer,
        // keysync's own bug (in parsing, say): it ends the pull as a panic, not as an error.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => return Err(Error::Internal(format!("a page fetch died: {e}"))),
    };
    if let Ok(page) = &mut fetched
        && !page.page_size_echoed
    {
        page.page_size = page_size;
    }
    Ok((page_number, fetched))
}
