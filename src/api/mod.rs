//! Everything that talks to CometAPI: the HTTP client, the item model, the paging logic
//! that turns pages into one listing, and the gateway's published price (`gateway`).

pub(crate) mod client;
pub(crate) mod gateway;
pub(crate) mod known;
pub(crate) mod listing;
pub(crate) mod model;
pub(crate) mod pacing;
pub(crate) mod raw;

pub(crate) use client::{AccessToken, ApiClient, ApiOptions, Page};
pub(crate) use gateway::GatewayStatus;
pub(crate) use known::KnownItems;
pub(crate) use listing::{Listing, PageSink, list_all};
pub(crate) use pacing::{Rate, RequestCounts};

/// Test support only: a pull panics at page N where the tests ask for it, so they can check that
/// a panic anywhere mid-pull leaves no `running` sync row and exits 7:
/// `KEYSYNC_DEBUG_PANIC_PARSING_PAGE=N` on the parsing pool as it parses page N,
/// `KEYSYNC_DEBUG_PANIC_LISTING_PAGE=N` on the runtime as it hands page N to the writer, and
/// `KEYSYNC_DEBUG_PANIC_ON_PAGE=N` on the writer thread as it is about to stage page N. A build
/// with default features has no such switch.
#[cfg(feature = "test-support")]
pub(crate) fn panic_on_page_for_tests(var: &str, page: u32) {
    if std::env::var(var).is_ok_and(|n| n == page.to_string()) {
        panic!("{var}: a panic at page {page}");
    }
}
