//! The config file: named profiles, one per CometAPI account.
//!
//! `$XDG_CONFIG_HOME/keysync/config.toml` (else `~/.config/keysync/config.toml`), or
//! `--config PATH`. Each `[profiles.NAME]` table may set `db`, `base_url`, `token_file`,
//! `user_id`, `timeout`, `retries`, `ping_url`, `ca_cert`, `max_rate`, `quota_per_unit` (for
//! `usage`), `metrics_file` and `metrics_listen` (for `pull`), and for `check` `check`,
//! `notify`, `notify_format` and an `alerts` table;
//! `--profile NAME` / `KEYSYNC_PROFILE` picks one, and without it the profile named `default` applies when there is one. Relative paths
//! are relative to the config file's folder, and `~/` is the home folder. A mistake in the
//! file is an error naming the file, the line and the key.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::alerts::ProfileAlerts;
use crate::alerts::notify::NotifyFormat;
use crate::api::Rate;
use crate::api::pacing::parse_rate;
use crate::config::{parse_quota_per_unit, parse_retries, parse_timeout, xdg_base_dir};
use crate::error::{Error, Result};

/// One profile's settings; every one is optional and loses to flags and environment.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub db: Option<PathBuf>,
    pub base_url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub user_id: Option<u64>,
    #[serde(default, deserialize_with = "timeout")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "retries")]
    pub retries: Option<u32>,
    pub ping_url: Option<String>,
    pub ca_cert: Option<PathBuf>,
    /// Quota units per US dollar, for `usage`; a positive integer.
    #[serde(default, deserialize_with = "quota_per_unit")]
    pub quota_per_unit: Option<NonZeroU64>,
    /// The server's rate limit to pace `pull` to, as `--max-rate` takes it (`"360/180s"`).
    #[serde(default, deserialize_with = "max_rate")]
    pub max_rate: Option<Rate>,
    /// `pull --metrics-file`: the Prometheus textfile written after every pull.
    pub metrics_file: Option<PathBuf>,
    /// `pull --every --metrics-listen`: where to serve `/metrics` (`"127.0.0.1:9184"`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `pull` runs `check` after each pull, as `pull --check` does.
    pub check: Option<bool>,
    /// The webhooks `check` delivers alarms to, as `--notify` takes them; secrets.
    #[serde(default, deserialize_with = "webhooks")]
    pub notify: Option<Vec<String>>,
    /// The body of those deliveries, as `--notify-format` takes it.
    pub notify_format: Option<NotifyFormat>,
    /// `[profiles.NAME.alerts]`: the rules of `check`, checked when the file is read.
    #[serde(default)]
    pub alerts: ProfileAlerts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// The same bounds as `--retries`.
fn retries<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let retries = u64::deserialize(deserializer)?;
    parse_retries(&retries.to_string())
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The same bounds as `--quota-per-unit`.
fn quota_per_unit<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NonZeroU64>, D::Error> {
    let units = i64::deserialize(deserializer)?;
    parse_quota_per_unit(&units.to_string())
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The same syntax as `--max-rate`.
fn max_rate<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Rate>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_rate(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A list of webhook URLs, or one. A URL is a secret (Slack's path is its credential): serde's
/// own error for a value of another type quotes a string whole, so none is ever quoted here.
fn webhooks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Urls;
    impl<'de> serde::de::Visitor<'de> for Urls {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of webhook URLs, such as notify = [\"https://...\"]")
        }

        fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<Vec<String>, E> {
            Ok(vec![url.to_string()])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut urls = Vec::new();
            while let Some(url) = seq.next_element::<String>()? {
                urls.push(url);
            }
            Ok(urls)
        }
    }
    deserializer.deserialize_any(Urls).map(Some)
}

/// The same bounds as `--timeout`.
fn timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_timeout(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The default config file, when a home for it is known.
pub(crate) fn default_path() -> Option<PathBuf> {
    xdg_base_dir("XDG_CONFIG_HOME", ".config").map(|dir| dir.join("keysync").join("config.toml"))
}

/// Reads the profile in force. A missing default config file is no profile; a missing
/// `--config` file, an unknown profile or a malformed file is a usage error (exit 2).
///
/// A default config file that cannot be looked at (a HOME the user may not read, as cron run
/// as another user with HOME=/root gives) is no profile too when none is named: nobody asked
/// for that file. A named profile or `--config` needs the file, so there it stays an error.
pub(crate) fn load_profile(explicit: Option<&Path>, name: Option<&str>) -> Result<Profile> {
    let Some(path) = explicit.map(Path::to_path_buf).or_else(default_path) else {
        return no_file(name, Path::new("config.toml"));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return no_file(name, &path);
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && explicit.is_none()
                && name.is_none() =>
        {
            tracing::info!(
                "reading no config file: cannot read the default one, {}: {e}",
                path.display()
            );
            return Ok(Profile::default());
        }
        Err(e) => {
            return Err(Error::Usage(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    let file: ConfigFile = toml::from_str(&text).map_err(|e| malformed(&path, &text, &e))?;
    let profile = match name {
        Some(name) => file.profiles.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            Error::Usage(format!(
                "no profile {name:?} in {}; it has: {}. Add a [profiles.{name}] table or pick \
                 one of those with --profile",
                path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })?,
        None => file.profiles.get("default").cloned().unwrap_or_default(),
    };
    Ok(profile.relative_to(path.parent().unwrap_or(Path::new("."))))
}

fn no_file(name: Option<&str>, path: &Path) -> Result<Profile> {
    match name {
        None => Ok(Profile::default()),
        Some(name) => Err(Error::Usage(format!(
            "profile {name:?} was asked for, but there is no config file at {}: create it with \
             a [profiles.{name}] table, or pass --config PATH",
            path.display()
        ))),
    }
}

/// `config.toml:7: unknown field `tokn_file`, expected one of ...`
fn malformed(path: &Path, text: &str, error: &toml::de::Error) -> Error {
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let place = match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    };
    Error::Usage(format!(
        "bad config file {place}: {}; fix it, or point --config at another file",
        error.message().trim()
    ))
}

impl Profile {
    fn relative_to(mut self, dir: &Path) -> Profile {
        let anchor = |path: PathBuf| -> PathBuf {
            if let Ok(rest) = path.strip_prefix("~")
                && let Some(home) = std::env::var_os("HOME")
            {
                return PathBuf::from(home).join(rest);
            }
            if path.is_relative() {
                dir.join(path)
            } else {
                path
            }
        };
        self.db = self.db.map(anchor);
        self.token_file = self.token_file.map(anchor);
        self.ca_cert = self.ca_cert.map(anchor);
        self.metrics_file = self.metrics_file.map(anchor);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_named_profile_is_read_with_paths_made_absolute() {
        let (dir, path) = write(
            "[profiles.work]\ndb = \"work.db\"\ntoken_file = \"/etc/token\"\nuser_id = 7\n\
             timeout = \"10s\"\nretries = 2\nping_url = \"https://hc.example/abc\"\n",
        );
        let profile = load_profile(Some(&path), Some("work")).unwrap();
        assert_eq!(profile.db, Some(dir.path().join("work.db")));
        assert_eq!(profile.token_file, Some(PathBuf::from("/etc/token")));
        assert_eq!(profile.user_id, Some(7));
        assert_eq!(profile.timeout, Some(Duration::from_secs(10)));
        assert_eq!(profile.retries, Some(2));
    }

    #[test]
    fn mistakes_name_the_line_and_the_key() {
        let (_dir, path) = write("[profiles.a]\nretries = 1\ntokn_file = \"x\"\n");
        let message = load_profile(Some(&path), Some("a"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("config.toml:3: unknown field `tokn_file`"),
            "{message}"
        );
        let (_dir, path) = write("[profiles.a]\ntimeout = \"soon\"\n");
        let message = load_profile(Some(&path), None).unwrap_err().to_string();
        assert!(
            message.contains("config.toml:2:") && message.contains("30s"),
            "{message}"
        );
        let (_dir, path) = write("[profiles.a]\ntimeout = \"1ms\"\n");
        let message = load_profile(Some(&path), None).unwrap_err().to_string();
        assert!(
            message.contains("config.toml:2:") && message.contains("the minimum is 100ms"),
            "{message}"
        );
        let (_dir, too_many) = write("[profiles.a]\nretries = 1000\n");
        let err = load_profile(Some(&too_many), Some("a"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 100"), "{err}");
        let (_dir, path) = write("[profiles.a]\nretries = 1\n");
        let message = load_profile(Some(&path), Some("b"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("no profile \"b\"") && message.contains("it has: a"),
            "{message}"
        );
    }

    #[test]
    fn without_a_name_the_default_profile_applies() {
        let (_dir, path) =
            write("[profiles.default]\nretries = 3\n[profiles.other]\nretries = 4\n");
        assert_eq!(load_profile(Some(&path), None).unwrap().retries, Some(3));
    }
}
