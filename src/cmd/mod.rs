//! One module per subcommand.

pub mod completions;
pub mod demo;
pub mod diff;
pub mod history;
pub mod prune;
pub mod pull;
pub mod query;
pub mod status;
pub mod syncs;
