//! One module per subcommand.

pub mod demo;
pub mod pull;
pub mod query;
