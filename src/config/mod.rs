//! Turns flags, environment, the config file's profile and defaults into checked options,
//! once, at the boundary.
//!
//! Precedence: flags, then environment, then the profile, then defaults; but a profile named
//! with `--profile` / `KEYSYNC_PROFILE` beats the `COMETAPI_*` variables for every value it sets
//! (naming a profile is the more deliberate choice, and a stray token of another account in the
//! environment must not write into this account's database). `KEYSYNC_DB` still beats the
//! profile's `db`. The access token is read from `--token-file`, `COMETAPI_ACCESS_TOKEN` or the
//! profile's `token_file` only; there is no flag that takes it, because a flag shows in `ps`.

pub mod file;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;

use crate::api::ApiOptions;
use crate::api::model::DATA_COLUMNS;
use crate::cli::{GlobalArgs, PullArgs};
use crate::error::{Error, Result};
use crate::output::readable_time;

pub use file::Profile;

pub const DEFAULT_BASE_URL: &str = "https://api.cometapi.com";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 8;
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_CONCURRENCY: usize = 4;
const TOKEN_ENV: &str = "COMETAPI_ACCESS_TOKEN";
const BASE_URL_ENV: &str = "COMETAPI_BASE_URL";
const USER_ID_ENV: &str = "COMETAPI_USER_ID";

/// The account credential. Its `Debug` is redacted so it cannot slip into a log line.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(token: String) -> AccessToken {
        AccessToken(token)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// Everything `pull` needs, checked.
#[derive(Debug)]
pub struct PullOptions {
    pub db: PathBuf,
    pub api: ApiOptions,
    pub store_secrets: bool,
    pub wait: Option<Duration>,
    /// `--now`: the time recorded for the sync instead of the clock's.
    pub now: Option<i64>,
    /// The healthchecks-style URL to ping; a credential, never logged.
    pub ping_url: Option<String>,
}

impl PullOptions {
    pub fn resolve(global: &GlobalArgs, args: &PullArgs) -> Result<PullOptions> {
        let profile = &global.profile_settings;
        let layers = Layers {
            named_profile: global.profile.as_deref(),
        };
        let base_url = match &args.base_url {
            Some(flag) => flag.clone(),
            None => layers
                .env(BASE_URL_ENV, profile.base_url.is_some(), "base_url")
                .or_else(|| profile.base_url.clone())
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
        };
        let user_id = match args.user_id {
            Some(flag) => Some(flag),
            None => match layers.env(USER_ID_ENV, profile.user_id.is_some(), "user_id") {
                Some(text) => Some(parse_user_id(&text)?),
                None => profile.user_id,
            },
        };
        let token_file = args
            .token_file
            .as_deref()
            .map(|path| (path, "--token-file"));
        let token_env = match token_file {
            Some(_) => None,
            None => layers.env(TOKEN_ENV, profile.token_file.is_some(), "token_file"),
        };
        let profile_token_file = profile
            .token_file
            .as_deref()
            .map(|path| (path, "the profile's token_file"));
        Ok(PullOptions {
            db: db_path(global)?,
            api: ApiOptions {
                base_url: check_base_url(&base_url)?,
                token: read_token(token_file, token_env, profile_token_file)?,
                user_id,
                timeout: args.timeout.or(profile.timeout).unwrap_or(DEFAULT_TIMEOUT),
                retries: args.retries.or(profile.retries).unwrap_or(DEFAULT_RETRIES),
                backoff_base: args.backoff_base.unwrap_or(DEFAULT_BACKOFF_BASE),
                concurrency: args.concurrency.map_or(DEFAULT_CONCURRENCY, usize::from),
                ca_cert: args.ca_cert.clone().or_else(|| profile.ca_cert.clone()),
            },
            store_secrets: args.store_secrets,
            wait: args.wait,
            now: refuse_future_now(global.now)?,
            ping_url: args.ping_url.clone().or_else(|| profile.ping_url.clone()),
        })
    }
}

/// Which of the environment and the profile wins for a setting both may give.
struct Layers<'a> {
    /// The profile named by `--profile` / `KEYSYNC_PROFILE`; none for the implicit `default`.
    named_profile: Option<&'a str>,
}

impl Layers<'_> {
    /// The environment variable `var` (unset or blank is none), unless a named profile sets
    /// `key` itself: then the profile wins, and stderr says which variable was ignored. Call
    /// it only when no flag gave the setting, so that no needless warning is printed.
    fn env(&self, var: &str, profile_sets: bool, key: &str) -> Option<String> {
        let value = std::env::var(var).ok().filter(|v| !v.trim().is_empty())?;
        match self.named_profile {
            Some(name) if profile_sets => {
                tracing::warn!(
                    "ignoring {var}: profile {name:?} sets {key}, and a named profile wins over \
                     the environment (unset {var}, or pass a flag, to use another value)"
                );
                None
            }
            _ => Some(value),
        }
    }
}

fn parse_user_id(text: &str) -> Result<u64> {
    text.trim().parse().map_err(|_| {
        Error::Usage(format!(
            "{USER_ID_ENV} must be the account's numeric user id, got {text:?}; fix or unset it"
        ))
    })
}

/// `--db`, else `KEYSYNC_DB`, else the profile's `db`, else
/// `$XDG_DATA_HOME/keysync/keysync.db` (`~/.local/share` when unset). `KEYSYNC_DB` is read here
/// rather than by clap so that `demo` never picks it up.
pub fn db_path(global: &GlobalArgs) -> Result<PathBuf> {
    if let Some(path) = &global.db {
        return Ok(path.clone());
    }
    if let Some(path) = std::env::var_os("KEYSYNC_DB").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = &global.profile_settings.db {
        return Ok(path.clone());
    }
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let data_home = absolute("XDG_DATA_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local/share")))
        .ok_or_else(|| {
            Error::Usage(
                "cannot place the database: neither XDG_DATA_HOME nor HOME is set; pass --db \
                 PATH or set KEYSYNC_DB"
                    .into(),
            )
        })?;
    Ok(data_home.join("keysync").join("keysync.db"))
}

fn check_base_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let shown = redact_url(url);
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        Error::Usage(format!(
            "the base URL {shown:?} (--base-url, {BASE_URL_ENV} or the profile's base_url) is \
             not a URL ({e}); expected e.g. {DEFAULT_BASE_URL}"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Usage(format!(
            "the base URL (--base-url, {BASE_URL_ENV} or the profile's base_url) must start \
             with https:// (or http://), got {shown:?}"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::Usage(format!(
            "the base URL {shown} carries a user name or password: credentials belong in the \
             token ({TOKEN_ENV} or --token-file), not in the URL; remove them from \
             --base-url, {BASE_URL_ENV} or the profile's base_url"
        )));
    }
    Ok(url.to_string())
}

/// A URL as it may be shown or logged: `http://admin:hunter2@host` is `http://admin:***@host`.
/// An http(s) URL that parses without a password is shown as it is (its path may hold `@` or
/// `:`).
/// Anything else is read as text, so that a URL too broken to parse is shown redacted too: the
/// user information runs from after the scheme (`http://`, `http:\\`, `http:/`) to the *last*
/// `@`, because a password may hold `/`, `?` or `#`; after its first `:` it is hidden.
pub fn redact_url(url: &str) -> String {
    let plain_web_url = |parsed: reqwest::Url| {
        matches!(parsed.scheme(), "http" | "https") && parsed.password().is_none()
    };
    if reqwest::Url::parse(url).is_ok_and(plain_web_url) {
        return url.to_string();
    }
    let Some(at) = url.rfind('@') else {
        return url.to_string();
    };
    let start = userinfo_start(&url[..at]);
    match url[start..at].split_once(':') {
        Some((user, _password)) => format!("{}{user}:***{}", &url[..start], &url[at..]),
        None => url.to_string(),
    }
}

/// Where the user information of `text` (everything before its last `@`) starts: after the
/// first `//` or `\\`, else after a scheme written with one slash (`http:/`), else at once.
fn userinfo_start(text: &str) -> usize {
    if let Some(i) = text.find("//").into_iter().chain(text.find("\\\\")).min() {
        return i + 2;
    }
    let scheme = text
        .find(':')
        .filter(|&i| i > 0 && text[..i].bytes().all(|b| b.is_ascii_alphabetic()));
    match scheme {
        Some(i) if text[i + 1..].starts_with(['/', '\\']) => i + 2,
        _ => 0,
    }
}

/// `--token-file` wins over the token from the environment (`from_env`, already dropped by
/// [`Layers::env`] when a named profile sets `token_file`), which wins over the profile's
/// `token_file`; each is trimmed. Each file comes with the name to use for it in messages.
fn read_token(
    flag_file: Option<(&Path, &str)>,
    from_env: Option<String>,
    profile_file: Option<(&Path, &str)>,
) -> Result<AccessToken> {
    let file = match (flag_file, &from_env) {
        (Some(file), _) => Some(file),
        (None, Some(_)) => None,
        (None, None) => profile_file,
    };
    let token = match file {
        Some((path, source)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Usage(format!("cannot read {source} {}: {e}", path.display()))
            })?;
            warn_if_readable_by_others(path, source);
            text.trim().to_string()
        }
        None => from_env.unwrap_or_default().trim().to_string(),
    };
    if token.is_empty() {
        let source = match file {
            Some((path, source)) => format!("{source} {} is empty", path.display()),
            None => "no access token".to_string(),
        };
        return Err(Error::Usage(format!(
            "{source}: set {TOKEN_ENV} or pass --token-file PATH; create a token at CometAPI \
             Console → Personal Settings"
        )));
    }
    Ok(AccessToken(token))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, source: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{source} {} has mode {mode:o}, readable by others: run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _source: &str) {}

/// The latest time `--now` takes, 9999-12-31T23:59:59Z; the earliest is 1970-01-01T00:00:00Z.
/// Outside those, dates cannot be printed and ages overflow.
const LATEST_TIME: i64 = 253_402_300_799;

/// A point in time as unix seconds: `1766102400` or `2025-12-19T00:00:00Z`, from 1970 to 9999.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let seconds = match text.parse::<i64>() {
        Ok(seconds) => seconds,
        Err(_) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp())
            .map_err(|e| format!("{e}: expected unix seconds or an RFC 3339 time such as 2025-12-19T08:00:00Z, got {text:?}"))?,
    };
    if !(0..=LATEST_TIME).contains(&seconds) {
        return Err(format!(
            "{text:?} is outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59Z, the times \
             keysync takes"
        ));
    }
    Ok(seconds)
}

/// A pull records the time it ran, and no later pull may start before it: a `--now` in the
/// future would block every pull until then. Readers take any `--now`.
fn refuse_future_now(now: Option<i64>) -> Result<Option<i64>> {
    let clock = unix_now(None);
    match now {
        Some(given) if given > clock => Err(Error::Usage(format!(
            "--now {} is later than the system clock ({}): a pull records when it ran, and \
             one recorded in the future would block every pull until then; give --now a time \
             up to now, or leave it out",
            readable_time(given),
            readable_time(clock)
        ))),
        _ => Ok(now),
    }
}

/// Now, as unix seconds: `--now` when given, else the system clock.
pub fn unix_now(fixed: Option<i64>) -> i64 {
    fixed.unwrap_or_else(|| chrono::Utc::now().timestamp())
}

/// One `--param NAME=VALUE`, bound to `:NAME` in a query.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlParam {
    /// Without the leading `:`.
    pub name: String,
    pub value: Value,
}

/// `NAME=VALUE` (or `:NAME=VALUE`). The value's type is read from its text, so that SQL like
/// `:n + 1` or `LIMIT :n` works: an integer written the canonical way (`42`, `-7`) binds as
/// INTEGER, a plain decimal (`0.5`, `-2.25`) as REAL, anything else as TEXT, including `007`,
/// `+1`, `1e3` and the empty string. Compared with a column, SQLite converts a value to the
/// column's type anyway, so `WHERE id = :id` matches with `007` too.
pub fn parse_param(text: &str) -> Result<SqlParam, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, e.g. id=42, got {text:?}"))?;
    let name = name.strip_prefix(':').unwrap_or(name);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "the parameter name {name:?} must be letters, digits and _ (it binds :NAME)"
        ));
    }
    Ok(SqlParam {
        name: name.to_string(),
        value: typed_value(value),
    })
}

fn typed_value(text: &str) -> Value {
    if let Ok(integer) = text.parse::<i64>()
        && integer.to_string() == text
    {
        return Value::Integer(integer);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if let Some((whole, fraction)) = unsigned.split_once('.')
        && digits(whole)
        && digits(fraction)
        && let Ok(real) = text.parse::<f64>()
    {
        return Value::Real(real);
    }
    Value::Text(text.to_string())
}

/// The longest duration any flag takes: 100 years. Longer ones cannot mean anything here, and
/// adding them to a clock overflows it (`--wait 500000000000y` once panicked).
pub const LONGEST_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// The one duration syntax of every command: `500ms`, `30s`, `15m`, `12h`, `7d`, `2w`, at most
/// [`LONGEST_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{e}: expected a duration such as 500ms, 30s, 15m, 12h, 7d or 2w, got {text:?}")
    })?;
    if duration > LONGEST_DURATION {
        return Err(format!(
            "{text:?} is longer than 100 years, the longest duration keysync takes"
        ));
    }
    Ok(duration)
}

/// A duration that must be longer than zero: a timeout, an interval, a window, a retention.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!(
            "{text:?} is zero, which cannot work here: give a duration longer than 0s, such \
             as 30s"
        ));
    }
    Ok(duration)
}

/// The shortest `--timeout` (and profile `timeout`): below it no request can finish, so every
/// page would time out and the pull fail however healthy the API.
pub const SHORTEST_TIMEOUT: Duration = Duration::from_millis(100);

/// The shortest `--every`: below it a scheduled pull is a busy loop against the API.
pub const SHORTEST_INTERVAL: Duration = Duration::from_secs(1);

/// `--timeout DURATION`: at least [`SHORTEST_TIMEOUT`].
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    at_least(text, SHORTEST_TIMEOUT, "100ms", "a request timeout")
}

/// `--every DURATION`: at least [`SHORTEST_INTERVAL`].
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    at_least(text, SHORTEST_INTERVAL, "1s", "the interval between pulls")
}

fn at_least(text: &str, shortest: Duration, shown: &str, what: &str) -> Result<Duration, String> {
    let duration = parse_positive_duration(text)?;
    if duration < shortest {
        return Err(format!(
            "{text:?} is too short for {what}: the minimum is {shown}"
        ));
    }
    Ok(duration)
}

/// The most retries per page `--retries` takes: with waits of up to 60 s each, more would
/// hold a page for hours rather than fail it.
pub const MOST_RETRIES: u32 = 100;

/// `--retries N`: 0 to [`MOST_RETRIES`].
pub fn parse_retries(text: &str) -> Result<u32, String> {
    let retries: u32 = text.trim().parse().map_err(|_| {
        format!("expected a whole number of retries, 0 to {MOST_RETRIES}, got {text:?}")
    })?;
    if retries > MOST_RETRIES {
        return Err(format!(
            "{retries} retries per page is more than {MOST_RETRIES}: each retry may wait up \
             to 60 s, so a failing page would hold the pull for hours; use at most \
             {MOST_RETRIES}"
        ));
    }
    Ok(retries)
}

/// A point in the history named on the command line: `diff FROM TO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRef {
    /// A sync id, as `keysync syncs` lists them.
    Id(i64),
    /// The last good sync that started at or before this unix time.
    At(i64),
    /// The last good sync that started at or before this long before now.
    Ago(Duration),
}

/// A diff point: a number is a sync id, then an RFC 3339 time, then a duration ago.
pub fn parse_sync_ref(text: &str) -> Result<SyncRef, String> {
    let text = text.trim();
    if let Ok(id) = text.parse::<i64>() {
        return Ok(SyncRef::Id(id));
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(SyncRef::At(time.timestamp()));
    }
    if humantime::parse_duration(text).is_ok() {
        return parse_duration(text).map(SyncRef::Ago);
    }
    Err(format!(
        "expected a sync id (see `keysync syncs`), an RFC 3339 time such as \
         2025-12-19T08:00:00Z, or a duration ago such as 24h or 7d; got {text:?}"
    ))
}

/// One of the versioned data fields, by its column name.
pub fn parse_field(text: &str) -> Result<&'static str, String> {
    let text = text.trim();
    DATA_COLUMNS
        .iter()
        .find(|column| **column == text)
        .copied()
        .ok_or_else(|| {
            format!(
                "unknown field {text:?}; the fields are: {}",
                DATA_COLUMNS.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_every_documented_form() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("100y"), Ok(LONGEST_DURATION));
        assert!(
            parse_duration("101y")
                .unwrap_err()
                .contains("longer than 100 years")
        );
        assert!(parse_duration("500000000000y").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(
            parse_positive_duration("0s")
                .unwrap_err()
                .contains("is zero")
        );
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn timeouts_and_intervals_have_floors() {
        assert_eq!(parse_timeout("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        for (text, minimum) in [("1ns", "100ms"), ("99ms", "100ms")] {
            let error = parse_timeout(text).unwrap_err();
            assert!(
                error.contains(&format!("the minimum is {minimum}")),
                "{error}"
            );
        }
        for text in ["1ns", "999ms"] {
            let error = parse_interval(text).unwrap_err();
            assert!(error.contains("the minimum is 1s"), "{error}");
        }
        assert!(parse_interval("0s").unwrap_err().contains("is zero"));
    }

    #[test]
    fn retries_are_bounded() {
        assert_eq!(parse_retries("0"), Ok(0));
        assert_eq!(parse_retries("100"), Ok(100));
        assert!(parse_retries("101").unwrap_err().contains("at most 100"));
        assert!(parse_retries("4294967295").is_err());
        assert!(parse_retries("-1").is_err());
    }

    #[test]
    fn times_take_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1766102400"), Ok(1_766_102_400));
        assert_eq!(parse_time("2025-12-19T00:00:00Z"), Ok(1_766_102_400));
        assert_eq!(parse_time("2025-12-19T08:00:00+08:00"), Ok(1_766_102_400));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("9999-12-31T23:59:59Z"), Ok(LATEST_TIME));
        assert!(parse_time("-1").is_err());
        assert!(parse_time("9223372036854775807").is_err());
    }

    #[test]
    fn sync_refs_are_ids_then_times_then_durations() {
        assert_eq!(parse_sync_ref("12"), Ok(SyncRef::Id(12)));
        assert_eq!(
            parse_sync_ref("2025-12-19 00:00:00Z"),
            Ok(SyncRef::At(1_766_102_400))
        );
        assert_eq!(
            parse_sync_ref("24h"),
            Ok(SyncRef::Ago(Duration::from_secs(86_400)))
        );
        assert!(parse_sync_ref("yesterday").unwrap_err().contains("sync id"));
    }

    #[test]
    fn fields_are_data_columns() {
        assert_eq!(parse_field("accessed_time"), Ok("accessed_time"));
        assert_eq!(parse_field("group"), Ok("group"));
        let error = parse_field("quota").unwrap_err();
        assert!(error.starts_with("unknown field \"quota\"; the fields are: user_id, name,"));
        assert!(parse_field("id").is_err(), "the id is the key, not a field");
    }

    #[test]
    fn params_bind_canonical_integers_and_decimals_by_type_and_the_rest_as_text() {
        let param = |text: &str| parse_param(text).map(|p| (p.name, p.value));
        let named = |value: Value| Ok(("n".to_string(), value));
        assert_eq!(param("n=42"), named(Value::Integer(42)));
        assert_eq!(param(":n=-7"), named(Value::Integer(-7)));
        assert_eq!(
            param("n=9223372036854775807"),
            named(Value::Integer(i64::MAX))
        );
        assert_eq!(param("n=0.5"), named(Value::Real(0.5)));
        assert_eq!(param("n=-2.25"), named(Value::Real(-2.25)));
        for text in [
            "007",
            "+1",
            "-0",
            "1e3",
            ".5",
            "5.",
            "",
            "abc",
            "9223372036854775808",
        ] {
            assert_eq!(param(&format!("n={text}")), named(Value::Text(text.into())));
        }
        assert_eq!(param("n=a=b"), named(Value::Text("a=b".into())));
        assert!(parse_param("n").is_err());
        assert!(parse_param("=1").is_err());
        assert!(parse_param("bad name=1").is_err());
        assert!(parse_param("@n=1").is_err());
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("http://admin:hunter2@host:8080/x?y=1"),
            "http://admin:***@host:8080/x?y=1"
        );
        assert_eq!(redact_url("https://u:p:q@h"), "https://u:***@h");
        assert_eq!(redact_url("http://admin@host/a@b"), "http://admin@host/a@b");
        assert_eq!(redact_url("http://host/a:b@c"), "http://host/a:b@c");
        assert_eq!(redact_url("not a url"), "not a url");
        for (malformed, shown) in [
            (
                "http:\\\\admin:hunter2@127.0.0.1:18001",
                "http:\\\\admin:***@127.0.0.1:18001",
            ),
            (
                "http:/admin:hunter2@127.0.0.1:18001",
                "http:/admin:***@127.0.0.1:18001",
            ),
            (
                "https//admin:hunter2@127.0.0.1",
                "https//admin:***@127.0.0.1",
            ),
            ("admin:hunter2@127.0.0.1:18001", "admin:***@127.0.0.1:18001"),
            // The last `@` ends the user information: a password may hold `/`, `?` or `#`.
            ("http:/admin:a:b@h/x@y", "http:/admin:***@y"),
            (
                "http://user:S3C/RETPW@127.0.0.1",
                "http://user:***@127.0.0.1",
            ),
            (
                "http://user:S3C#RETPW@127.0.0.1",
                "http://user:***@127.0.0.1",
            ),
            (
                "http://user:S3C?RETPW@127.0.0.1:99999",
                "http://user:***@127.0.0.1:99999",
            ),
            ("http:/admin@h", "http:/admin@h"),
            ("x/y@z", "x/y@z"),
            ("", ""),
        ] {
            assert_eq!(redact_url(malformed), shown, "{malformed}");
        }
        let refused = check_base_url("http://admin:hunter2@127.0.0.1:9")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("http://admin:***@127.0.0.1:9"),
            "{refused}"
        );
        assert!(!refused.contains("hunter2"), "{refused}");
        let broken = check_base_url("http://admin:hunter2@host:99999")
            .unwrap_err()
            .to_string();
        assert!(!broken.contains("hunter2"), "{broken}");
    }

    #[test]
    fn token_debug_is_redacted() {
        let token = AccessToken::new("s3cret".into());
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
    }
}
