//! keysync's integration tests: the real binary against the crate's fake CometAPI on
//! 127.0.0.1, with a temporary database and a cleaned environment. No test reaches the internet.
//!
//! A map: where a new test goes.
//! - `common`: the scaffolding every module shares: `Harness` (a fake account, a temporary
//!   database and a `keysync` command with a cleaned environment), the one `run` helper that
//!   checks an exit code and prints the command line, codes, stdout and stderr when it is
//!   wrong (`Harness::run`, `Harness::pull_run`, `run_in`, `check_exit` for spawned children),
//!   and small readers of the results (`rows`, `dump`, `table_cells`, `wait_until`); its own
//!   tests check that a failing `run` says what ran and masks the token.
//! - `pull`: `keysync pull` and `demo` on a well-behaved upstream: what lands in `keys` and
//!   `key_versions`, what is sent (token, user id), flags, summary line, plain failures.
//! - `integrity`: the pull guarantees under faults from the fake's switches: retries, no false
//!   removals, no duplicates, clean failures on bad pages, kill -9 (and the hot journal a first
//!   pull killed at its final write leaves), cron overlap, hostile values, the token nowhere.
//! - `upstream`: an upstream that lies or changes: paging that trusts no single number, bounded
//!   bodies, account rejections, gateway upgrades (recorded bytes), exact unknown values,
//!   retries that fit the error, HTTPS with a private CA.
//! - `local_side`: the local file: keysync's and one account's, time moves forward, an overtaken
//!   pull writes nothing, secrets leave the disk, credentials stay out of base URLs, readers on
//!   read-only media.
//! - `terminal`: one pull per file whatever path names it, output a key's name cannot spoof,
//!   signals and closed pipes, flag values that cannot work (exit 2).
//! - `on_a_terminal`: keysync on a pseudo-terminal and in pipes: colour per stream (`NO_COLOR`,
//!   `CLICOLOR_FORCE`), tables that fit `COLUMNS`, log lines above the progress bar, the
//!   `keysync: error:` / `keysync: warning:` prefixes, plurals, a `Bearer ` token, completions.
//! - `tables`: the built-in tables on a pseudo-terminal of 80 and 60 columns (with and without
//!   a row count): lines that fit, times whole, hidden columns named, names and errors cut; the
//!   diff for people without keys that only used quota, `--all`, statuses as words.
//! - `operations`: running for months: health pings, `pull --every`, config profiles and their
//!   precedence, completions, `status` and its alarms.
//! - `diff`: `diff`, `history`, `syncs` and `prune`: the history read back exactly.
//! - `query`: `keysync query`: formats, parameters, the read-only guard, the views and `--now`,
//!   and each preset report.
//! - `daily_pulls`: the ten daily pulls with known quota use that `usage` and `html` share, and
//!   the attribution rule computed from what the fake served.
//! - `html`: `keysync html`: the page parsed as a browser would, its numbers against `usage`
//!   and the reports' output, no script or external URL, escaping, and a file never half
//!   written.
//! - `html_page`: the page people read first, over issue 27's history (250 keys, 12 daily
//!   pulls, a failed pull, a refund day, hostile names): each tile against `usage`, `status` and
//!   the reports, the chart's no-data days, failed pull, spans and refund, money and statuses in
//!   words, the sections' order, key panels, escaped names, one snapshot while a pull commits,
//!   and the page on a 390 px phone in headless Chromium (skipped where none is installed).
//! - `html_out`: where `html --out` may write: an earlier page replaced, a database, another
//!   file, a directory, a FIFO, a socket, a device or a link to one refused and left as it was
//!   (`--force` for another regular file), `--out -` on stdout.
//! - `metrics`: `keysync metrics` read back with an independent parser and compared with the
//!   database and `status`, hostile names, `--per-key`, the file's write and refusals, `pull
//!   --metrics-file` and `--metrics-listen`, promtool on the text and the shipped rules,
//!   node_exporter's textfile collector.
//! - `usage`: `keysync usage`: quota use and dollars by the attribution rule, per key and per
//!   period, over ten daily pulls with a refund, a newcomer, a removal and a failed pull.
//! - `refunds`: the gateway's books: a refund is negative use, a pull without `used_quota`
//!   observes nothing, sums past 64 bits, an older ledger corrected by the upgrade.
//! - `money`: dollars, quota and shares as people read them in `usage`'s table and markdown, the
//!   reports' tables and the HTML page, and the exact values of csv and json.
//! - `docs`: the README and `docs/`: the README's length, links that land on headings, and
//!   the README's recipes run by `sh` as written.
//! - `contrib`: the shipped systemd units and Dockerfile: shown verbatim in `docs/guide.md`,
//!   `systemd-analyze verify` and the service's `security` rating, the image's Rust version,
//!   labels and `.dockerignore`, and their command lines run against the fake.
//! - `monitoring`: what a monitor reads: ping URLs with a query string, `pull --json` lines with
//!   times (failed pulls included), `prune --json`.
//! - `pacing`: the rate limit: the `requests` / `rate_limited` counts of every pull, `--max-rate`
//!   pacing without a 429, and the window learnt from 429s with and without `Retry-After`.
//! - `price`: the gateway's price from `/api/status`: recorded on each sync row, what counts as
//!   a price, a gateway without one (404, not JSON) never failing a pull and warning only when
//!   that is news, and the token never sent there.
//! - `unchanged`: a re-pull reads only what changed: items known by their digest, every change
//!   still recorded, databases without digests, `--store-secrets`.
//! - `unlimited`: keys with unlimited quota, whose `remain_quota` the gateway takes below zero,
//!   are never exhausted or low on quota: `status`, `key_info`, `low-quota`, `forecast`, the
//!   page's status chart.
//! - `calendar`: calendar windows over pulls on both sides of a month boundary: `--month`
//!   against its `--since`/`--until`, dates, `today` and `yesterday` in `usage`, `html`, `diff`,
//!   the reports' `--since` and `--now`, and the months and times refused.
//! - `alerts`: `keysync check` and `pull --check`: each rule on data built for it and just
//!   outside it, the alarm state, deliveries to a local webhook receiver (new once, resolved
//!   once, a 500 sent again next run, Slack's escaping), the webhook's secret kept out of
//!   output and the database, exit codes, `--no-state` writing nothing, `pull --every --check`.
//! - `manual`: what a user reads without the repository: `--help` (global options last, exit
//!   codes at the top only, defaults), `--version`, `keysync man` checked by groff, completion
//!   values.
//! - `installed`: an installed binary without a checkout: `query --report --show-sql` run back
//!   through `--file`, and `demo --db PATH` made again at any path.

mod alerts;
mod calendar;
mod common;
mod contrib;
mod daily_pulls;
mod diff;
mod docs;
mod html;
mod html_out;
mod html_page;
mod installed;
mod integrity;
mod local_side;
mod manual;
mod metrics;
mod money;
mod monitoring;
mod on_a_terminal;
mod operations;
mod pacing;
mod price;
mod pull;
mod query;
mod refunds;
mod tables;
mod terminal;
mod unchanged;
mod unlimited;
mod upstream;
mod usage;
