//! Everything that talks to CometAPI: the HTTP client, the item model, the paging logic
//! that turns pages into one listing, and the gateway's published price (`gateway`).

pub mod client;
pub mod gateway;
pub mod known;
pub mod listing;
pub mod model;
pub mod pacing;
pub(crate) mod raw;

pub use client::{AccessToken, ApiClient, ApiOptions, PAGE_SIZE, Page};
pub use gateway::GatewayStatus;
pub use known::KnownItems;
pub use listing::{Listing, PageSink, list_all};
pub use model::KeyRecord;
pub use pacing::{Rate, RequestCounts};

/// Test support only: a pull panics at page N where the tests ask for it, so they can check that
/// a panic anywhere mid-pull leaves no `running` sync row and exits 7:
/// `KEYSYNC_DEBUG_PANIC_PARSING_PAGE=N` on the parsing pool as it parses page N,
/// `KEYSYNC_DEBUG_PANIC_LISTING_PAGE=N` on the runtime as it hands page N to the writer, and
/// `KEYSYNC_DEBUG_PANIC_ON_PAGE=N` on the writer thread as it is about to stage page N. A build
/// with default features has no such switch.
#[cfg(feature = "test-support")]
pub fn panic_on_page_for_tests(var: &str, page: u32) {
    if std::env::var(var).is_ok_and(|n| n == page.to_string()) {
        panic!("{var}: a panic at page {page}");
    }
}
