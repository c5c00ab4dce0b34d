//! Realistic keys for the fake: the mix of statuses, expiries, quotas and restrictions a real
//! account accumulates, made from a seed so every run of the demo and the tests is the same.

use serde_json::{Map, Value as Json, json};

const DAY: i64 = 86_400;

const NAMES: [&str; 12] = [
    "production",
    "staging",
    "ci-runner",
    "batch-jobs",
    "analytics",
    "mobile-app",
    "support-bot",
    "customer",
    "eval-harness",
    "café-bot",
    "エージェント",
    "O'Brien \"test\"",
];

const MODELS: [&str; 3] = [
    "gpt-4o,claude-sonnet-4",
    "gpt-4o-mini",
    "deepseek-chat,gemini-2.5-pro",
];

/// `count` keys created before `now`, oldest first, as API items without `id`.
pub fn generate_keys(count: usize, seed: u64, now: i64) -> Vec<Map<String, Json>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count)
        .map(|i| {
            let age_days = (count - i) as i64;
            let created = now - age_days * DAY / 2 - rng.i64(0..DAY / 4);
            one_key(&mut rng, i, created, now)
        })
        .collect()
}

fn one_key(rng: &mut fastrand::Rng, index: usize, created: i64, now: i64) -> Map<String, Json> {
    let key: String = std::iter::repeat_with(|| rng.alphanumeric())
        .take(48)
        .collect();
    let name = format!("{}-{}", NAMES[rng.usize(..NAMES.len())], index + 1);
    let used = if rng.u8(..10) < 2 {
        0
    } else {
        rng.i64(1..2_000_000)
    };
    let accessed = if used == 0 {
        created
    } else {
        rng.i64(created..=now)
    };
    let expired = expiry(rng, now);
    let unlimited = rng.u8(..10) < 2;
    let model_limits = if rng.u8(..10) < 3 {
        MODELS[rng.usize(..MODELS.len())]
    } else {
        ""
    };
    let allow_ips = match rng.u8(..10) {
        0..=4 => Json::Null,
        5 | 6 => json!(""),
        _ => json!("203.0.113.7\n2001:db8::/32"),
    };
    let status = status(rng);
    let mut fields = Map::new();
    for (name, value) in [
        ("key", json!(key)),
        ("status", json!(status)),
        ("name", json!(name)),
        ("created_time", json!(created)),
        ("accessed_time", json!(accessed)),
        ("expired_time", json!(expired)),
        (
            "remain_quota",
            json!(if unlimited { 0 } else { rng.i64(0..5_000_000) }),
        ),
        ("unlimited_quota", json!(unlimited)),
        ("model_limits_enabled", json!(!model_limits.is_empty())),
        ("model_limits", json!(model_limits)),
        ("allow_ips", allow_ips),
        ("used_quota", json!(used)),
        ("group", json!(if rng.bool() { "" } else { "default" })),
        ("cross_group_retry", json!(rng.u8(..10) == 0)),
    ] {
        fields.insert(name.to_string(), value);
    }
    fields
}

/// Never (40%), within a week, past, or within the year: the mix `expiring-soon` reports on.
fn expiry(rng: &mut fastrand::Rng, now: i64) -> i64 {
    match rng.u8(..10) {
        0..=3 => -1,
        4 => now + rng.i64(DAY / 2..7 * DAY),
        5 => now - rng.i64(DAY..30 * DAY),
        _ => now + rng.i64(30 * DAY..365 * DAY),
    }
}

/// Mostly enabled (1), some disabled (2), one in twenty expired (3) or exhausted (4).
fn status(rng: &mut fastrand::Rng) -> i64 {
    match rng.u8(..20) {
        0..=15 => 1,
        16 | 17 => 2,
        18 => 3,
        _ => 4,
    }
}
