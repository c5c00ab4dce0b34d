//! The facts people ask about an account, each defined once: what a key would do if used now
//! (`key`), what the keys spent and at which price (`spend`), and whether the record is fresh
//! (`freshness`). Commands read facts from here and only print them (`status`, `usage`,
//! `html`, `metrics`, and the alert rules of `check`); the `.sql` reports and views define the
//! same facts for people running SQL, and tests check that both agree.

pub(crate) mod freshness;
pub(crate) mod key;
pub(crate) mod spend;
