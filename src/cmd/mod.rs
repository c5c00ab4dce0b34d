//! One module per subcommand.

pub mod completions;
pub mod demo;
pub mod pull;
