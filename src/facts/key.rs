//! What a key would do if used now, judged as the gateway judges it: the `status` upstream
//! recorded is not enough, because upstream flips a key to expired (3) or exhausted (4) only
//! when the key is used. The `key_info` view (migrations/V2__views.sql) defines the same
//! `effective_status` for SQL; a test checks that both agree on random keys.

use std::num::NonZeroU64;

use crate::error::Result;
use crate::store::Store;
pub(crate) use crate::store::status::{KeyState, LiveKey};

/// What a key would do if used now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum EffectiveStatus {
    Enabled,
    Disabled,
    Expired,
    Exhausted,
    Unknown,
    Removed,
}

impl EffectiveStatus {
    /// The live statuses, in the order counts and charts show them.
    pub(crate) const LIVE: [EffectiveStatus; 5] = [
        EffectiveStatus::Enabled,
        EffectiveStatus::Disabled,
        EffectiveStatus::Expired,
        EffectiveStatus::Exhausted,
        EffectiveStatus::Unknown,
    ];

    /// What upstream's `status` code says on its own: 1 enabled, 2 disabled, 3 expired,
    /// 4 exhausted, anything else unknown. A diff or a history shows a recorded status as this
    /// word; what the key would do now is [`KeyState::effective_status`].
    pub(crate) fn of_code(code: Option<i64>) -> EffectiveStatus {
        match code {
            Some(1) => EffectiveStatus::Enabled,
            Some(2) => EffectiveStatus::Disabled,
            Some(3) => EffectiveStatus::Expired,
            Some(4) => EffectiveStatus::Exhausted,
            _ => EffectiveStatus::Unknown,
        }
    }

    /// The word for it, as `key_info.effective_status` writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            EffectiveStatus::Enabled => "enabled",
            EffectiveStatus::Disabled => "disabled",
            EffectiveStatus::Expired => "expired",
            EffectiveStatus::Exhausted => "exhausted",
            EffectiveStatus::Unknown => "unknown",
            EffectiveStatus::Removed => "removed",
        }
    }
}

/// Live keys by effective status at `now`, one count per [`EffectiveStatus::LIVE`] entry.
pub(crate) fn count_by_status(keys: &[KeyState], now: i64) -> [i64; 5] {
    let mut counts = [0; 5];
    for key in keys {
        let status = key.effective_status(now);
        if let Some(i) = EffectiveStatus::LIVE.iter().position(|s| *s == status) {
            counts[i] += 1;
        }
    }
    counts
}

/// The store's live keys by effective status at `now` ([`count_by_status`]).
pub(crate) fn live_by_status(store: &Store, now: i64) -> Result<[i64; 5]> {
    Ok(count_by_status(&store.live_key_states()?, now))
}

// Quota left, low quota and expiry windows: the facts `html`'s tiles show and `check`'s
// `low_quota_usd` and `expiring` rules (issue 25) read.
impl KeyState {
    /// Past its expiry at `now` (`-1` never expires).
    pub(crate) fn is_expired(&self, now: i64) -> bool {
        self.expired_time.is_some_and(|t| t != -1 && t <= now)
    }

    /// Out of quota: a limited key with nothing left. The gateway still charges an unlimited
    /// key, so its `remain_quota` goes below zero, and that never makes it exhausted.
    pub(crate) fn is_exhausted(&self) -> bool {
        self.unlimited_quota == Some(false) && self.remain_quota.is_some_and(|q| q <= 0)
    }

    /// The quota left, for a key with a limit (not unlimited, and a `remain_quota` recorded).
    pub(crate) fn quota_left(&self) -> Option<i64> {
        self.remain_quota
            .filter(|_| self.unlimited_quota == Some(false))
    }

    /// [`Self::quota_left`] in US dollars at `quota_per_unit`.
    pub(crate) fn quota_left_usd(&self, quota_per_unit: NonZeroU64) -> Option<f64> {
        self.quota_left()
            .map(|left| left as f64 / quota_per_unit.get() as f64)
    }

    /// An enabled key with a limit and less than `below` quota units left (an exhausted one
    /// too); the `low-quota` report's rule.
    pub(crate) fn is_low_on_quota(&self, below: i64) -> bool {
        self.is_listed_enabled() && self.quota_left().is_some_and(|left| left < below)
    }

    /// An enabled key whose expiry falls in `(now, now + within]`: a key already expired is
    /// not expiring.
    pub(crate) fn expires_within(&self, now: i64, within: i64) -> bool {
        self.is_listed_enabled()
            && self
                .expired_time
                .is_some_and(|t| t != -1 && now < t && t <= now.saturating_add(within))
    }

    /// Live, and enabled upstream.
    fn is_listed_enabled(&self) -> bool {
        !self.removed && self.status == Some(1)
    }

    /// What the key would do if used at `now`.
    pub(crate) fn effective_status(&self, now: i64) -> EffectiveStatus {
        match self.status {
            _ if self.removed => EffectiveStatus::Removed,
            Some(1) if self.is_expired(now) => EffectiveStatus::Expired,
            Some(1) if self.is_exhausted() => EffectiveStatus::Exhausted,
            code => EffectiveStatus::of_code(code),
        }
    }
}

/// The ways an enabled key can be exposed, as the `unrestricted` report names them
/// (src/report/unrestricted.sql): no spending cap, no IP allowlist, no model limits, no expiry.
pub(crate) const EXPOSURES: [&str; 4] = ["unlimited-quota", "any-ip", "any-model", "never-expires"];

impl LiveKey {
    /// The [`EXPOSURES`] this key has, in that order; none unless it is live and enabled
    /// upstream (the report's rule).
    pub(crate) fn exposures(&self) -> Vec<&'static str> {
        if !self.state.is_listed_enabled() {
            return Vec::new();
        }
        let blank = |text: &Option<String>| {
            text.as_deref()
                .is_none_or(|t| t.trim_matches([' ', '\t', '\n', '\r']).is_empty())
        };
        let has = [
            self.state.unlimited_quota == Some(true),
            blank(&self.allow_ips),
            self.model_limits_enabled != Some(1),
            self.state.expired_time == Some(-1),
        ];
        EXPOSURES
            .into_iter()
            .zip(has)
            .filter_map(|(name, has)| has.then_some(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::migrated_in_memory;

    const NOW: i64 = 1_766_102_400;

    fn key(status: i64, expired_time: i64, remain: i64, unlimited: bool) -> KeyState {
        KeyState {
            id: 1,
            status: Some(status),
            expired_time: Some(expired_time),
            remain_quota: Some(remain),
            unlimited_quota: Some(unlimited),
            removed: false,
        }
    }

    #[test]
    fn an_enabled_key_is_judged_by_its_expiry_and_quota_and_an_unlimited_one_never_runs_out() {
        assert_eq!(
            key(1, -1, 5, false).effective_status(NOW),
            EffectiveStatus::Enabled
        );
        assert_eq!(
            key(1, NOW, 5, false).effective_status(NOW),
            EffectiveStatus::Expired
        );
        assert_eq!(
            key(1, -1, 0, false).effective_status(NOW),
            EffectiveStatus::Exhausted
        );
        assert_eq!(
            key(1, -1, -9, true).effective_status(NOW),
            EffectiveStatus::Enabled
        );
        assert_eq!(
            key(2, NOW, 0, false).effective_status(NOW),
            EffectiveStatus::Disabled
        );
        assert_eq!(
            key(7, -1, 5, false).effective_status(NOW),
            EffectiveStatus::Unknown
        );
        let gone = KeyState {
            removed: true,
            ..key(1, -1, 5, false)
        };
        assert_eq!(gone.effective_status(NOW), EffectiveStatus::Removed);
    }

    /// The status timeline counts the view's statuses in the order of [`EffectiveStatus::LIVE`].
    #[test]
    fn the_timelines_statuses_are_the_live_effective_statuses_in_order() {
        assert_eq!(
            crate::store::timeline::EFFECTIVE_STATUSES,
            EffectiveStatus::LIVE.map(EffectiveStatus::name)
        );
    }

    /// 500 random keys, NULLs included, written to `keys` of a database whose views read the
    /// clock at [`NOW`], as `keysync query --now` pins it.
    fn random_keys() -> (rusqlite::Connection, Vec<KeyState>) {
        let conn = migrated_in_memory();
        let mut rng = fastrand::Rng::with_seed(24);
        let mut keys = Vec::new();
        for id in 1..=500 {
            // Each column drawn at random, and NULL one time in eight.
            let values = [rng.i64(0..6), rng.i64(-3..3), rng.i64(0..4), rng.i64(0..2)];
            let mut maybe = |value: i64| (rng.u8(0..8) != 0).then_some(value);
            let (status, remain) = (maybe(values[0]), maybe(values[1]));
            let expired_time = maybe([-1, NOW - 5, NOW, NOW + 5][values[2] as usize]);
            let unlimited_quota = maybe(values[3]).map(|u| u == 1);
            let state = KeyState {
                id,
                status,
                expired_time,
                remain_quota: remain,
                unlimited_quota,
                removed: rng.u8(0..10) == 0,
            };
            conn.execute(
                "INSERT INTO keys (id, status, expired_time, remain_quota, unlimited_quota,
                                   first_seen_sync, removed_sync)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
                rusqlite::params![
                    id,
                    state.status,
                    state.expired_time,
                    state.remain_quota,
                    state.unlimited_quota,
                    state.removed.then_some(2)
                ],
            )
            .unwrap();
            keys.push(state);
        }
        crate::store::views::install_temp_views(&conn, NOW).unwrap();
        (conn, keys)
    }

    /// The first column of `sql`'s rows, `params` bound by name.
    fn first_column<T: rusqlite::types::FromSql>(
        conn: &rusqlite::Connection,
        sql: &str,
        params: &[(&str, &dyn rusqlite::ToSql)],
    ) -> Vec<T> {
        let mut statement = conn.prepare(sql).unwrap();
        statement
            .query_map(params, |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn the_key_info_view_and_this_module_agree_on_random_keys() {
        let (conn, keys) = random_keys();
        let from_sql: Vec<String> = first_column(
            &conn,
            "SELECT effective_status FROM key_info ORDER BY id",
            &[],
        );
        let from_rust: Vec<&str> = keys
            .iter()
            .map(|k| k.effective_status(NOW).name())
            .collect();
        assert_eq!(from_sql, from_rust);
    }

    /// The `unrestricted` report's `risks` are exactly the exposures here, in its order.
    #[test]
    fn the_unrestricted_report_and_this_module_agree_on_random_keys() {
        let conn = migrated_in_memory();
        let mut rng = fastrand::Rng::with_seed(25);
        let mut from_rust = Vec::new();
        for id in 1..=400 {
            let pick =
                |rng: &mut fastrand::Rng, values: &[Option<i64>]| values[rng.usize(..values.len())];
            let ips = ["", " \t", "10.0.0.1", "NULL"][rng.usize(..4)];
            let key = LiveKey {
                state: KeyState {
                    id,
                    status: pick(&mut rng, &[Some(1), Some(1), Some(2), None]),
                    expired_time: pick(&mut rng, &[Some(-1), Some(NOW + 5), None]),
                    remain_quota: Some(1),
                    unlimited_quota: pick(&mut rng, &[Some(0), Some(1), None]).map(|u| u == 1),
                    removed: rng.u8(..10) == 0,
                },
                name: Some(format!("k{id}")),
                allow_ips: (ips != "NULL").then(|| ips.to_string()),
                model_limits_enabled: pick(&mut rng, &[Some(0), Some(1), None]),
            };
            conn.execute(
                "INSERT INTO keys (id, name, status, expired_time, remain_quota, unlimited_quota,
                                   allow_ips, model_limits_enabled, first_seen_sync, removed_sync)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9)",
                rusqlite::params![
                    id,
                    key.name,
                    key.state.status,
                    key.state.expired_time,
                    key.state.remain_quota,
                    key.state.unlimited_quota,
                    key.allow_ips,
                    key.model_limits_enabled,
                    key.state.removed.then_some(2)
                ],
            )
            .unwrap();
            let exposures = key.exposures();
            if !exposures.is_empty() {
                from_rust.push((id, exposures.join(", ")));
            }
        }
        crate::store::views::install_temp_views(&conn, NOW).unwrap();
        let sql = include_str!("../report/unrestricted.sql");
        let mut statement = conn.prepare(sql).unwrap();
        let mut from_sql: Vec<(i64, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        from_sql.sort_unstable();
        assert!(from_rust.len() > 100, "{}", from_rust.len());
        assert_eq!(from_sql, from_rust);
    }

    /// The `low-quota` report lists exactly the keys low on quota here.
    #[test]
    fn the_low_quota_report_and_this_module_agree_on_random_keys() {
        let (conn, keys) = random_keys();
        let sql = include_str!("../report/low-quota.sql");
        for below in [-2, 0, 1, 3] {
            let mut from_sql: Vec<i64> = first_column(&conn, sql, &[(":below", &below)]);
            from_sql.sort_unstable();
            let from_rust: Vec<i64> = keys
                .iter()
                .filter(|k| k.is_low_on_quota(below))
                .map(|k| k.id)
                .collect();
            assert!(!from_rust.is_empty(), "below {below}");
            assert_eq!(from_sql, from_rust, "below {below}");
        }
    }

    /// The `expiring-soon` report's keys that have not expired yet are exactly the keys
    /// expiring here (the report lists the expired ones too).
    #[test]
    fn the_expiring_soon_report_and_this_module_agree_on_random_keys() {
        let (conn, keys) = random_keys();
        let sql = include_str!("../report/expiring-soon.sql");
        for within in [0, 4, 5, 86_400] {
            let listed: Vec<i64> = first_column(&conn, sql, &[(":within", &within)]);
            let mut from_sql: Vec<i64> = listed
                .into_iter()
                .filter(|id| keys[usize::try_from(*id - 1).unwrap()].expired_time > Some(NOW))
                .collect();
            from_sql.sort_unstable();
            let from_rust: Vec<i64> = keys
                .iter()
                .filter(|k| k.expires_within(NOW, within))
                .map(|k| k.id)
                .collect();
            assert_eq!(from_sql, from_rust, "within {within}");
        }
        let price = NonZeroU64::new(4).unwrap();
        assert_eq!(
            keys.iter().filter_map(|k| k.quota_left_usd(price)).count(),
            keys.iter().filter(|k| k.quota_left().is_some()).count()
        );
    }
}
