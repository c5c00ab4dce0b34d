//! Everything that talks to CometAPI: the HTTP client, the item model, and the paging logic
//! that turns pages into one listing.

pub mod client;
pub mod known;
pub mod listing;
pub mod model;
pub mod pacing;
pub(crate) mod raw;

pub use client::{AccessToken, ApiClient, ApiOptions, PAGE_SIZE, Page};
pub use known::KnownItems;
pub use listing::{Listing, PageSink, list_all};
pub use model::KeyRecord;
pub use pacing::{Rate, RequestCounts};
