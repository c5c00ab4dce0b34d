//! One page of the key listing: the [`Page`] type, and the parsing of a response body into
//! one, on the runtime's blocking pool. A page of the expected shape is read in one pass; any
//! other is read again step by step to say what is wrong with it.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::value::RawValue;

use super::PAGE_SIZE;
use super::errors::{auth_error, rejects_credentials};
use crate::api::known::{KnownItems, item_digest};
use crate::api::model::KeyRecord;
use crate::api::raw::{self, Members};
use crate::error::{Error, Result};

/// One page of the listing as the API served it.
#[derive(Debug)]
pub struct Page {
    pub number: u32,
    /// The account's key count as the server reported it: a hint, never proof; `None` when
    /// it sent none that can be a count.
    pub total: Option<i64>,
    /// The page size the server used: its echo in `data.page_size` when that is a positive
    /// integer no larger than asked for, else the size asked for.
    pub page_size: usize,
    /// Whether `page_size` is the server's echo rather than keysync's assumption.
    pub page_size_echoed: bool,
    /// The items read in full: every item of page 1, and on later pages those not known.
    pub items: Vec<KeyRecord>,
    /// The ids of the items the client recognised as stored keys unchanged ([`KnownItems`]),
    /// and so did not read.
    pub known: Vec<i64>,
}

/// Pages made by hand, for the unit tests of what consumes them (staging, the writer).
#[cfg(test)]
impl Page {
    /// Page `number` holding `items`, with an echoed page size and no `total`.
    pub(crate) fn of(number: u32, items: Vec<KeyRecord>) -> Page {
        Page {
            number,
            total: None,
            page_size: 2,
            page_size_echoed: true,
            items,
            known: Vec::new(),
        }
    }
}

impl Page {
    /// How many items the page listed, read or known.
    pub fn len(&self) -> usize {
        self.items.len() + self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every id the page listed, read or known.
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.items
            .iter()
            .map(|item| item.id)
            .chain(self.known.iter().copied())
    }

    /// A page with fewer items than the page size ends a listing; a full one never does.
    pub fn is_short(&self) -> bool {
        self.len() < self.page_size
    }

    /// The page `total` says will be the short (or empty) last one, when it says anything.
    pub fn expected_last_page(&self) -> Option<u32> {
        let pages = self.total? as u64 / self.page_size.max(1) as u64 + 1;
        Some(u32::try_from(pages).unwrap_or(u32::MAX))
    }
}

/// [`parse_page`] on the runtime's blocking pool. Parsing is most of a listing's CPU: on the
/// runtime's one thread it held up the requests, and with 2 cores the first pull of 1,000,000
/// keys took up to 10% longer (8.6 s against 7.6 s, medians of 7 alternated runs of each build;
/// docs/performance.md). A panic while parsing goes on from here, as on the runtime.
pub(super) async fn parse_page_on_pool(
    page: u32,
    body: Vec<u8>,
    known: Option<Arc<KnownItems>>,
) -> Result<Page> {
    let parse = move || {
        #[cfg(feature = "test-support")]
        crate::api::panic_on_page_for_tests("KEYSYNC_DEBUG_PANIC_PARSING_PAGE", page);
        parse_page(page, &body, known.as_deref())
    };
    match tokio::task::spawn_blocking(parse).await {
        Ok(parsed) => parsed,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Internal(format!(
            "page {page}: parsing stopped: {e}"
        ))),
    }
}

/// Reads the response envelope. Every way it can be wrong is an error naming the page. The
/// body is read as raw slices (see [`raw`]): no tree of it is ever built, and a page of more
/// items than keysync asked for is refused before any is read.
pub(super) fn parse_page(page: u32, body: &[u8], known: Option<&KnownItems>) -> Result<Page> {
    if let Some(fetched) = parse_good_page(page, body, known) {
        return fetched;
    }
    let bad = |what: String| Error::Api(format!("page {page}: {what}"));
    if body.starts_with(b"\xEF\xBB\xBF") {
        return Err(bad(
            "the response starts with a byte-order mark, which JSON does not allow".into(),
        ));
    }
    let whole: &RawValue = std::str::from_utf8(body)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(text).map_err(|e| e.to_string()))
        .map_err(|e| bad(format!("the response is not valid JSON ({e})")))?;
    let Some(mut envelope) = Members::of(whole) else {
        return Err(bad(format!(
            "the response is {}, expected a JSON object",
            raw::kind(whole)
        )));
    };
    let success = envelope.take("success");
    match success.map(|s| (raw::kind(s), s.get().trim())) {
        Some(("a boolean", "true")) => {}
        Some(("a boolean", _)) => {
            let mut text = |name| {
                envelope
                    .take(name)
                    .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            };
            let message = text("message").unwrap_or_default();
            if rejects_credentials(StatusCode::OK, text("code").as_deref(), &message) {
                return Err(auth_error(&message));
            }
            return Err(bad(format!("the API answered success:false: {message}")));
        }
        Some((kind, _)) => return Err(bad(format!("`success` is {kind}, expected a boolean"))),
        None => return Err(bad("the response has no `success` field".into())),
    }
    let Some(mut data) = envelope.take("data").and_then(Members::of) else {
        return Err(bad("the response has no `data` object".into()));
    };
    let total = data.take("total");
    let page_size = data.take("page_size");
    let items = match data.take("items") {
        Some(items) => serde_json::from_str::<Vec<&RawValue>>(items.get()).map_err(|_| {
            bad(format!(
                "`data.items` is {}, expected an array",
                raw::kind(items)
            ))
        })?,
        None => return Err(bad("`data.items` is missing".into())),
    };
    page_of(page, total, page_size, items, known)
}

/// A page from the parts of its `data`. `total` and `page_size` are hints only: a count that
/// is missing or not a count leaves the listing unprovable (partial), never failed. A page of
/// more items than keysync asked for is refused before any item is read.
fn page_of(
    page: u32,
    total: Option<&RawValue>,
    page_size: Option<&RawValue>,
    items: Vec<&RawValue>,
    known: Option<&KnownItems>,
) -> Result<Page> {
    let bad = |what: String| Error::Api(format!("page {page}: {what}"));
    if items.len() > PAGE_SIZE {
        return Err(bad(format!(
            "the page holds {} items, more than the {PAGE_SIZE} asked for; is --base-url a \
             CometAPI gateway?",
            items.len()
        )));
    }
    let number = |value: Option<&RawValue>| value?.get().trim().parse::<i64>().ok();
    let echoed = number(page_size)
        .and_then(|size| usize::try_from(size).ok())
        .filter(|size| (1..=PAGE_SIZE).contains(size));
    let (mut read, mut known_ids) = (Vec::with_capacity(items.len()), Vec::new());
    for (i, item) in items.into_iter().enumerate() {
        // Hashed once: the digest finds a known item, and is kept with one that is read.
        let digest = item_digest(item.get());
        match known.and_then(|known| known.id_of(&digest)) {
            Some(id) => known_ids.push(id),
            None => read.push(
                KeyRecord::from_raw_with_digest(item, digest)
                    .map_err(|e| bad(format!("item {i}: {e}")))?,
            ),
        }
    }
    Ok(Page {
        number: page,
        total: number(total).filter(|t| *t >= 0),
        page_size: echoed.unwrap_or(PAGE_SIZE),
        page_size_echoed: echoed.is_some(),
        items: read,
        known: known_ids,
    })
}

/// A page of the expected shape, read in one pass over the body: `None` when the shape is
/// off anywhere (or `success` is false), so that [`parse_page`] reads it again step by step to
/// say what is wrong.
fn parse_good_page(page: u32, body: &[u8], known: Option<&KnownItems>) -> Option<Result<Page>> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        success: bool,
        #[serde(borrow)]
        data: Data<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Data<'a> {
        total: Option<&'a RawValue>,
        page_size: Option<&'a RawValue>,
        #[serde(borrow)]
        items: Vec<&'a RawValue>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    let data = envelope.data;
    envelope
        .success
        .then(|| page_of(page, data.total, data.page_size, data.items, known))
}
