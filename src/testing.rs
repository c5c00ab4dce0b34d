//! What keysync's own integration tests and benchmarks reach inside the crate: the fake
//! CometAPI they pull from, and the few store and API items they drive or check directly. Not
//! an API for anyone else: nothing here is stable. The fake's fault switches, request records
//! and test servers exist only with the `test-support` feature (which `cargo test` and
//! `cargo bench` turn on).
//!
//! Each item is named from the module that defines it, so that the re-exports between the
//! crate's own modules stay crate-private.

pub use crate::api::client::page::Page;
pub use crate::api::gateway::GatewayStatus;
pub use crate::api::listing::Listing;
pub use crate::api::model::{API_FIELDS, DATA_COLUMNS, KeyRecord};
pub use crate::fake::FakeAccount;
#[cfg(feature = "test-support")]
pub use crate::fake::faults::{Drift, Faults, Malformed, Verbatim};
pub use crate::fake::generate::generate_keys;
#[cfg(feature = "test-support")]
pub use crate::fake::loopback::serve_in_background;
#[cfg(feature = "test-support")]
pub use crate::fake::record::RecordedRequest;
pub use crate::fake::server::FakeServer;
pub use crate::store::lock::PullLock;
pub use crate::store::sync::FUTURE_SYNC_REPAIR;
pub use crate::store::{Store, database_bytes, known_schema_version};
