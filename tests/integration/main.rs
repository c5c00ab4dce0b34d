//! keysync's integration tests: the real binary against the crate's fake CometAPI on
//! 127.0.0.1, with a temporary database and a cleaned environment. No test reaches the internet.

mod common;
mod diff;
mod integrity;
mod local_side;
mod operations;
mod pull;
mod query;
mod terminal;
mod upstream;
