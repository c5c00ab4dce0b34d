//! Turns flags, environment, the config file's profile and defaults into checked options,
//! once, at the boundary.
//!
//! Precedence: flags, then environment, then the profile, then defaults; but a profile named
//! with `--profile` / `KEYSYNC_PROFILE` beats the `COMETAPI_*` variables for every value it sets
//! (naming a profile is the more deliberate choice, and a stray token of another account in the
//! environment must not write into this account's database). `KEYSYNC_DB` still beats the
//! profile's `db`. The access token is read from `--token-file`, `COMETAPI_ACCESS_TOKEN` or the
//! profile's `token_file` only; there is no flag that takes it, because a flag shows in `ps`.

pub(crate) mod file;

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::client::{
    DEFAULT_BACKOFF_BASE, DEFAULT_CONCURRENCY, DEFAULT_RETRIES, DEFAULT_TIMEOUT,
};
use crate::api::{AccessToken, ApiOptions, Rate};
use crate::error::{Error, Result};
use crate::time::{parse_positive_duration, readable_time, unix_now};

pub(crate) use file::Profile;

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.cometapi.com";
const TOKEN_ENV: &str = "COMETAPI_ACCESS_TOKEN";
const BASE_URL_ENV: &str = "COMETAPI_BASE_URL";
const USER_ID_ENV: &str = "COMETAPI_USER_ID";

/// The global flags, as plain values (`cli` fills it; `config` knows no clap type).
#[derive(Debug, Default)]
pub(crate) struct Flags {
    pub db: Option<PathBuf>,
    pub quiet: bool,
    pub now: Option<i64>,
    pub config: Option<PathBuf>,
    pub profile: Option<String>,
}

/// `pull`'s flags that the environment and the profile may also give.
#[derive(Debug, Default)]
pub(crate) struct ApiFlags {
    pub base_url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub user_id: Option<u64>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub concurrency: Option<u16>,
    pub ca_cert: Option<PathBuf>,
    pub backoff_base: Option<Duration>,
    pub ping_url: Option<String>,
    /// `--max-rate`: the server's rate limit, to pace to.
    pub max_rate: Option<Rate>,
}

/// What every command may need from the global flags, the environment and the profile,
/// resolved and checked once before it runs. What only one command needs it resolves from
/// these at its start ([`resolve_pull`]), so that no other command reads a token it does not
/// use.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The database, or why it cannot be placed (only an error for the commands that use it).
    db: std::result::Result<PathBuf, String>,
    /// `--db` as given: `demo` uses it, never `KEYSYNC_DB` or the profile's database.
    pub db_flag: Option<PathBuf>,
    pub quiet: bool,
    /// `--now`, for reproducible reports (and, no later than the clock, pulls).
    pub now: Option<i64>,
    /// `--profile` / `KEYSYNC_PROFILE`: a profile named so wins over the environment.
    named_profile: Option<String>,
    /// The profile in force (the named one, else `default`, else none), its paths absolute.
    /// Its `quota_per_unit` is what `usage`, `html` and `status` fall back on without
    /// `--quota-per-unit`; without either, the prices the gateway published apply
    /// (`store::price`).
    pub profile: Profile,
}

/// `--quota-per-unit` and the profile's `quota_per_unit`: a whole number above zero (a price
/// of zero units per dollar would divide by zero).
pub(crate) fn parse_quota_per_unit(text: &str) -> Result<NonZeroU64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .and_then(NonZeroU64::new)
        .ok_or_else(|| {
            format!(
                "expected the quota units per US dollar as a whole number above 0, such as \
                 500000 (the gateway's), got {text:?}"
            )
        })
}

/// What `pull` needs beyond [`Settings`]: how to reach CometAPI, and the time to record.
#[derive(Debug)]
pub(crate) struct PullSettings {
    pub options: ApiOptions,
    /// The healthchecks-style URL to ping; a credential, never logged.
    pub ping_url: Option<String>,
    /// `--now`, no later than the clock.
    pub now: Option<i64>,
}

impl Settings {
    /// Reads the config file's profile and places the database.
    pub(crate) fn resolve(flags: Flags) -> Result<Settings> {
        let profile = file::load_profile(flags.config.as_deref(), flags.profile.as_deref())?;
        Ok(Settings {
            db: db_path(flags.db.as_deref(), profile.db.as_deref()),
            db_flag: flags.db,
            quiet: flags.quiet,
            now: flags.now,
            named_profile: flags.profile,
            profile,
        })
    }

    /// The database every command but `demo` uses, or a usage error when none can be placed.
    pub(crate) fn db(&self) -> Result<&Path> {
        self.db.as_deref().map_err(|why| Error::Usage(why.clone()))
    }

    /// Now, as unix seconds: `--now` when given, else the system clock.
    pub(crate) fn now(&self) -> i64 {
        unix_now(self.now)
    }
}

/// `pull`'s settings: its flags, else the environment, else the profile, else the defaults
/// (a named profile before the environment, see the module's comment). Checked in the order a
/// user fixes them: the user id, then the database's place, then the base URL, the token, and
/// `--now`.
pub(crate) fn resolve_pull(settings: &Settings, flags: &ApiFlags) -> Result<PullSettings> {
    let profile = &settings.profile;
    let layers = Layers {
        named_profile: settings.named_profile.as_deref(),
    };
    let base_url = match &flags.base_url {
        Some(flag) => flag.clone(),
        None => layers
            .env(BASE_URL_ENV, profile.base_url.is_some(), "base_url")
            .or_else(|| profile.base_url.clone())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
    };
    let user_id = match flags.user_id {
        Some(flag) => Some(flag),
        None => match layers.env(USER_ID_ENV, profile.user_id.is_some(), "user_id") {
            Some(text) => Some(parse_user_id(&text)?),
            None => profile.user_id,
        },
    };
    settings.db()?;
    let token_file = flags
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
    let options = ApiOptions {
        base_url: check_base_url(&base_url)?,
        token: read_token(token_file, token_env, profile_token_file)?,
        user_id,
        timeout: flags.timeout.or(profile.timeout).unwrap_or(DEFAULT_TIMEOUT),
        retries: flags.retries.or(profile.retries).unwrap_or(DEFAULT_RETRIES),
        backoff_base: flags.backoff_base.unwrap_or(DEFAULT_BACKOFF_BASE),
        concurrency: flags.concurrency.map_or(DEFAULT_CONCURRENCY, usize::from),
        ca_cert: flags.ca_cert.clone().or_else(|| profile.ca_cert.clone()),
        max_rate: flags.max_rate.or(profile.max_rate),
    };
    Ok(PullSettings {
        options,
        ping_url: flags.ping_url.clone().or_else(|| profile.ping_url.clone()),
        now: refuse_future_now(settings.now)?,
    })
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
fn db_path(flag: Option<&Path>, profile: Option<&Path>) -> std::result::Result<PathBuf, String> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("KEYSYNC_DB").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = profile {
        return Ok(path.to_path_buf());
    }
    let data_home = xdg_base_dir("XDG_DATA_HOME", ".local/share").ok_or_else(|| {
        "cannot place the database: neither XDG_DATA_HOME nor HOME is set; pass --db PATH or \
         set KEYSYNC_DB"
            .to_string()
    })?;
    Ok(data_home.join("keysync").join("keysync.db"))
}

/// An XDG base directory: the variable `var`, else `fallback` under `HOME`. A relative value
/// counts as unset, as the XDG spec says, so that where keysync writes never depends on the
/// folder cron starts it in.
fn xdg_base_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute(var).or_else(|| absolute("HOME").map(|home| home.join(fallback)))
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
pub(crate) fn redact_url(url: &str) -> String {
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
    if has_bearer_prefix(&token) {
        let source = match file {
            Some((path, source)) => format!("{source} {}", path.display()),
            None => TOKEN_ENV.to_string(),
        };
        return Err(Error::Usage(format!(
            "the access token in {source} starts with \"Bearer \": drop the Bearer prefix and \
             keep only the token itself (CometAPI takes the bare token, and keysync sends it as \
             is)"
        )));
    }
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
    Ok(AccessToken::new(token))
}

/// `Bearer sk-...`, as copied from an `Authorization` header: CometAPI would refuse it as an
/// unknown token (exit 3) after a request, so it is caught before any.
fn has_bearer_prefix(token: &str) -> bool {
    token
        .split_once(char::is_whitespace)
        .is_some_and(|(first, _)| first.eq_ignore_ascii_case("bearer"))
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

/// The shortest `--timeout` (and profile `timeout`): below it no request can finish, so every
/// page would time out and the pull fail however healthy the API.
pub(crate) const SHORTEST_TIMEOUT: Duration = Duration::from_millis(100);

/// The shortest `--every`: below it a scheduled pull is a busy loop against the API.
pub(crate) const SHORTEST_INTERVAL: Duration = Duration::from_secs(1);

/// `--timeout DURATION`: at least [`SHORTEST_TIMEOUT`].
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    at_least(text, SHORTEST_TIMEOUT, "100ms", "a request timeout")
}

/// `--every DURATION`: at least [`SHORTEST_INTERVAL`].
pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
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
pub(crate) const MOST_RETRIES: u32 = 100;

/// `--retries N`: 0 to [`MOST_RETRIES`].
pub(crate) fn parse_retries(text: &str) -> Result<u32, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_intervals_have_floors() {
        assert_eq!(parse_timeout("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        for (text, minimum) in [("1ms", "100ms"), ("99ms", "100ms")] {
            let error = parse_timeout(text).unwrap_err();
            assert!(
                error.contains(&format!("the minimum is {minimum}")),
                "{error}"
            );
        }
        for text in ["1ms", "999ms"] {
            let error = parse_interval(text).unwrap_err();
            assert!(error.contains("the minimum is 1s"), "{error}");
        }
        assert!(parse_interval("0s").unwrap_err().contains("is zero"));
    }

    #[test]
    fn a_token_with_a_bearer_prefix_is_refused_naming_where_it_came_from() {
        for token in [
            "Bearer abc123",
            "bearer abc123",
            "BEARER\tabc123",
            "  Bearer  abc ",
        ] {
            let error = read_token(None, Some(token.to_string()), None).unwrap_err();
            assert_eq!(error.code(), crate::error::exit::USAGE, "{token:?}");
            assert_eq!(
                error.to_string(),
                "the access token in COMETAPI_ACCESS_TOKEN starts with \"Bearer \": drop the \
                 Bearer prefix and keep only the token itself (CometAPI takes the bare token, \
                 and keysync sends it as is)",
                "{token:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "Bearer abc123\n").unwrap();
        let error = read_token(Some((&file, "--token-file")), None, None).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "the access token in --token-file {} starts",
                file.display()
            )),
            "{error}"
        );
        let error = read_token(None, None, Some((&file, "the profile's token_file"))).unwrap_err();
        assert!(
            error.to_string().contains("in the profile's token_file "),
            "{error}"
        );
        // A token that merely contains the word, or is the word alone, is the token.
        for token in ["Bearerabc", "abcBearer xyz", "Bearer"] {
            let read = read_token(None, Some(token.to_string()), None);
            assert!(read.is_ok(), "{token:?}");
        }
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
}
