//! `keysync check` and `pull --check`: each rule on data built for it and on data just outside
//! it, the alarm state (firing since, resolved), deliveries to a local webhook receiver (new
//! once, nothing when unchanged, resolved once, a 500 retried and delivered by the next run,
//! Slack's escaping), the webhook's secret kept out of every output and of the database, exit
//! codes, and `--no-state` writing nothing.

use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};

use crate::common::{Harness, NOW, TOKEN, check_exit, run, wait_until};
use crate::daily_pulls::{DAY, HOUR, key};

/// A local webhook receiver: records each POSTed body (parsed as JSON) and answers 200, or
/// 500 while `failing`.
pub struct Receiver {
    base: String,
    seen: Arc<Mutex<Vec<Json>>>,
    failing: Arc<AtomicBool>,
    headers: Arc<Mutex<Vec<String>>>,
}

/// The secret part of the receiver's URL, which must never be shown or stored.
const SECRET: &str = "T0001/B0002/s3cr3tWebhookPath";

impl Receiver {
    pub fn start() -> Receiver {
        use axum::extract::State;
        use axum::http::StatusCode;
        type Shared = (
            Arc<Mutex<Vec<Json>>>,
            Arc<AtomicBool>,
            Arc<Mutex<Vec<String>>>,
        );
        async fn record(
            State((seen, failing, headers)): State<Shared>,
            request: axum::extract::Request,
        ) -> StatusCode {
            headers
                .lock()
                .unwrap()
                .push(format!("{:?}", request.headers()));
            let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap();
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).expect("a JSON body"));
            if failing.load(Ordering::SeqCst) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        let seen: Arc<Mutex<Vec<Json>>> = Default::default();
        let failing: Arc<AtomicBool> = Default::default();
        let headers: Arc<Mutex<Vec<String>>> = Default::default();
        let app = axum::Router::new().fallback(record).with_state((
            seen.clone(),
            failing.clone(),
            headers.clone(),
        ));
        let base = keysync::testing::serve_in_background(app).expect("the receiver starts");
        Receiver {
            base,
            seen,
            failing,
            headers,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/services/{SECRET}", self.base.trim_end_matches('/'))
    }

    /// The bodies received so far, forgetting them.
    pub fn take(&self) -> Vec<Json> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

/// `keysync check --format json --now NOW ARGS`, expecting `code`; the rows.
fn check(h: &Harness, now: i64, args: &[&str], code: i32) -> Vec<Json> {
    let out = run(
        h.keysync()
            .args(["check", "--format", "json", "--now", &now.to_string()])
            .args(args),
        code,
    );
    match out.json() {
        Json::Array(rows) => rows,
        other => panic!("not rows: {other}"),
    }
}

/// `(rule, subject)` of each row.
fn alarms(rows: &[Json]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(rule: &str, subject: i64) -> (String, String) {
    (rule.to_string(), subject.to_string())
}

// Each rule ------------------------------------------------------------------------------------

/// The last of the 16 daily pulls of [`history`]; checks run an hour later.
const LAST: i64 = NOW - 2 * DAY;
const AT: i64 = LAST + HOUR;
/// Quota units per US dollar: the fake's price.
const DOLLAR: i64 = 500_000;

/// `(name, fields)`: every key of the rules' account, at the last pull.
fn keys() -> Vec<(&'static str, Vec<(&'static str, Json)>)> {
    vec![
        (
            "expiring-in-7d",
            vec![("expired_time", json!(AT + 7 * DAY))],
        ),
        (
            "expiring-in-7d-1s",
            vec![("expired_time", json!(AT + 7 * DAY + 1))],
        ),
        ("expired-already", vec![("expired_time", json!(AT - 10))]),
        ("low", vec![("remain_quota", json!(DOLLAR * 4 / 5))]),
        ("one-dollar-left", vec![("remain_quota", json!(DOLLAR))]),
        (
            "unlimited-overdrawn",
            vec![
                ("unlimited_quota", json!(true)),
                ("remain_quota", json!(-5 * DOLLAR)),
            ],
        ),
        (
            "unlimited-with-ips",
            vec![
                ("unlimited_quota", json!(true)),
                ("allow_ips", json!("10.0.0.1")),
            ],
        ),
        ("spiky", vec![]),
        ("small-spike", vec![]),
        ("steady", vec![]),
        ("ci-spiky", vec![]),
    ]
}

/// `(name, daily use before the last day, use in the last day)` in quota units.
const USE: [(&str, i64, i64); 4] = [
    // $0.50 a day, then $5: 10 times the median, above $1.
    ("spiky", DOLLAR / 2, 5 * DOLLAR),
    // $0.01 a day, then $0.50: 50 times, but under spike_min_usd.
    ("small-spike", DOLLAR / 100, DOLLAR / 2),
    // $2 a day, then $3.
    ("steady", 2 * DOLLAR, 3 * DOLLAR),
    // Spiky too, but ignored by name.
    ("ci-spiky", DOLLAR / 2, 5 * DOLLAR),
];

/// Sixteen daily pulls ending at [`LAST`], with the keys' use of [`USE`]; the ids by name.
fn history() -> (Harness, Vec<(&'static str, i64)>) {
    let mut account = keysync::testing::FakeAccount::new(TOKEN);
    let ids: Vec<(&str, i64)> = keys()
        .into_iter()
        .map(|(name, fields)| {
            let mut item = key(name, LAST - 400 * DAY, 0);
            item.insert("expired_time".into(), json!(AT + 100 * DAY));
            for (field, value) in fields {
                item.insert(field.into(), value);
            }
            (name, account.insert(item))
        })
        .collect();
    let h = Harness::new(account);
    let id = |name: &str| ids.iter().find(|(n, _)| *n == name).unwrap().1;
    let mut used = [0i64; 4];
    for day in 0..16 {
        for (i, (name, daily, last)) in USE.iter().enumerate() {
            used[i] += match day {
                0 => 0,
                15 => *last,
                _ => *daily,
            };
            h.server
                .account()
                .set(id(name), "used_quota", json!(used[i]));
        }
        h.pull(&["--now", &(LAST - (15 - day) * DAY).to_string()]);
    }
    (h, ids)
}

#[test]
fn each_rule_fires_on_data_built_for_it_and_not_on_data_just_outside_it() {
    let (h, ids) = history();
    let id = |name: &str| ids.iter().find(|(n, _)| *n == name).unwrap().1;
    let rows = check(
        &h,
        AT,
        &[
            "--no-state",
            "--spike",
            "5",
            "--daily-spend-usd",
            "10.99",
            "--unrestricted",
            "unlimited-quota,any-ip",
            "--stale",
            "1h",
            "--ignore",
            "ci-*",
        ],
        1,
    );
    assert_eq!(
        alarms(&rows),
        [
            pair("expiring", id("expiring-in-7d")),
            pair("low_quota_usd", id("low")),
            ("daily_spend_usd".into(), "account".into()),
            pair("spike", id("spiky")),
            pair("unrestricted", id("unlimited-overdrawn")),
        ]
    );
    let number = |row: &Json, field: &str| row[field].as_f64().unwrap();
    // Exactly 7 days ahead is within 7 days; the value and threshold are seconds.
    assert_eq!(number(&rows[0], "value"), (7 * DAY) as f64);
    assert_eq!(number(&rows[0], "threshold"), (7 * DAY) as f64);
    assert_eq!(rows[0]["name"], json!("expiring-in-7d"));
    assert_eq!(rows[0]["since"], Json::Null);
    // $0.80 left, under $1.00; $1.00 left is not under it.
    assert_eq!(
        (number(&rows[1], "value"), number(&rows[1], "threshold")),
        (0.8, 1.0)
    );
    // The last 24 h: $5 + $0.50 + $3 + $5 (ignore is for key rules only) = $13.50.
    assert_eq!(
        (number(&rows[2], "value"), number(&rows[2], "threshold")),
        (13.5, 10.99)
    );
    // $5 against 5 times the median $0.50.
    assert_eq!(
        (number(&rows[3], "value"), number(&rows[3], "threshold")),
        (5.0, 2.5)
    );
    assert_eq!(
        rows[4]["message"],
        json!(format!(
            "key {} \"unlimited-overdrawn\" is unrestricted: unlimited-quota, any-ip, any-model",
            id("unlimited-overdrawn")
        ))
    );
    // Just outside: $13.50 is not above $13.50; an hour old is not more than an hour.
    let quiet = check(
        &h,
        AT,
        &["--no-state", "--daily-spend-usd", "13.5", "--stale", "1h"],
        1,
    );
    assert_eq!(
        alarms(&quiet),
        [
            pair("expiring", id("expiring-in-7d")),
            pair("low_quota_usd", id("low"))
        ]
    );
    // A second later the sync is stale, and the key 7 d + 1 s out is within 7 days.
    let later = check(
        &h,
        AT + 1,
        &["--no-state", "--stale", "1h", "--low-quota-usd", "off"],
        1,
    );
    assert_eq!(
        alarms(&later),
        [
            pair("expiring", id("expiring-in-7d")),
            pair("expiring", id("expiring-in-7d-1s")),
            ("stale".into(), "account".into()),
        ]
    );
    assert_eq!(number(&later[2], "value"), 3601.0);
    // Every rule off, nothing fires: exit 0 and no rows.
    let none = check(
        &h,
        AT,
        &["--no-state", "--expiring", "off", "--low-quota-usd", "off"],
        0,
    );
    assert!(none.is_empty());
    // `ignore` takes ids as well as globs.
    let low = id("low").to_string();
    let ignored = check(&h, AT, &["--no-state", "--ignore", &low], 1);
    assert_eq!(alarms(&ignored), [pair("expiring", id("expiring-in-7d"))]);
}

#[test]
fn a_failed_pull_fires_last_pull_failed_for_the_account() {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    let rows = check(
        &h,
        NOW + DAY,
        &["--no-state", "--expiring", "off", "--low-quota-usd", "off"],
        0,
    );
    assert!(rows.is_empty());
    h.server.account().faults.fail_every = Some(1);
    h.pull_run(&["--retries", "0"], 4);
    let rows = check(
        &h,
        NOW + DAY,
        &["--no-state", "--expiring", "off", "--low-quota-usd", "off"],
        1,
    );
    assert_eq!(
        alarms(&rows),
        [("last_pull_failed".into(), "account".into())]
    );
    assert!(
        rows[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("the last sync (2) failed: "),
        "{rows:?}"
    );
    let off = check(
        &h,
        NOW + DAY,
        &[
            "--no-state",
            "--expiring",
            "off",
            "--low-quota-usd",
            "off",
            "--last-pull-failed",
            "false",
        ],
        0,
    );
    assert!(off.is_empty());
}

// State and deliveries --------------------------------------------------------------------------

/// Two keys, one of them low on quota ($0.40 left), pulled once at `NOW`.
fn one_low_key() -> (Harness, i64) {
    let mut account = keysync::testing::FakeAccount::new(TOKEN);
    let mut low = key("<b>low & co</b>", NOW - 400 * DAY, 0);
    low.insert("remain_quota".into(), json!(DOLLAR * 2 / 5));
    let id = account.insert(low);
    account.insert(key("fine", NOW - 400 * DAY, 0));
    let h = Harness::new(account);
    h.pull(&["--now", &NOW.to_string()]);
    (h, id)
}

/// The profile's `notify` is a secret too: one URL alone is taken as a list of one, and a value
/// of a type it cannot take is refused without being quoted.
#[test]
fn a_profiles_webhook_is_one_url_or_a_list_and_never_quoted_in_an_error() {
    let (h, _) = one_low_key();
    let hook = Receiver::start();
    let config = h.dir.path().join("config.toml");
    let with = |notify: &str| {
        std::fs::write(&config, format!("[profiles.default]\nnotify = {notify}\n")).unwrap();
        h.keysync()
            .args(["--config", config.to_str().unwrap(), "check"])
            .args(["--now", &NOW.to_string()])
            .output()
            .unwrap()
    };
    let one = with(&format!("\"{}\"", hook.url()));
    assert_eq!(one.status.code(), Some(1));
    assert_eq!(hook.take().len(), 1, "delivered to the one URL");
    for wrong in [
        format!("{{ url = \"{}\" }}", hook.url()),
        format!("[\"{}\", 5]", hook.url()),
    ] {
        let refused = with(&wrong);
        let stderr = String::from_utf8(refused.stderr).unwrap();
        assert_eq!(refused.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("bad config file"), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
    }
}

/// The database file and its WAL, as bytes.
fn database_bytes(h: &Harness) -> Vec<u8> {
    let mut bytes = std::fs::read(&h.db).unwrap();
    bytes.extend(std::fs::read(h.db.with_extension("db-wal")).unwrap_or_default());
    bytes
}

#[test]
fn alarms_are_delivered_once_as_new_once_as_resolved_and_a_failed_delivery_is_sent_again() {
    let (h, id) = one_low_key();
    let hook = Receiver::start();
    let url = hook.url();
    let notify = ["--notify", url.as_str(), "--notify-backoff", "10ms"];
    // First run: every alarm is new.
    let rows = check(&h, NOW + 60, &notify, 1);
    assert_eq!(rows[0]["since"], json!("2025-12-19T00:01:00Z"));
    let bodies = hook.take();
    assert_eq!(bodies.len(), 1);
    let body = &bodies[0];
    assert_eq!(body["keysync"], json!(1));
    assert_eq!(body["database"], json!(h.db.display().to_string()));
    assert_eq!(body["account"], json!(5678));
    assert_eq!(body["checked_at"], json!("2025-12-19T00:01:00Z"));
    assert_eq!(body["firing"], json!(rows));
    assert_eq!(body["new"], json!(rows));
    assert_eq!(body["resolved"], json!([]));
    assert_eq!(
        body["new"][0],
        json!({
            "rule": "low_quota_usd", "subject": id.to_string(), "name": "<b>low & co</b>",
            "value": 0.4, "threshold": 1, "since": "2025-12-19T00:01:00Z",
            "message": format!(
                "key {id} \"<b>low & co</b>\" has $0.40 of quota left (200,000 units), less \
                 than $1.00"
            ),
        })
    );
    // Unchanged: still firing since the first run, and nothing is sent.
    let again = check(&h, NOW + 120, &notify, 1);
    assert_eq!(again[0]["since"], json!("2025-12-19T00:01:00Z"));
    assert!(hook.take().is_empty());
    // Resolved: sent once with resolved_at, then never again.
    h.server
        .account()
        .set(id, "remain_quota", json!(DOLLAR * 3));
    h.pull(&["--now", &(NOW + 180).to_string()]);
    assert!(check(&h, NOW + 240, &notify, 0).is_empty());
    let bodies = hook.take();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["firing"], json!([]));
    assert_eq!(bodies[0]["new"], json!([]));
    assert_eq!(
        bodies[0]["resolved"][0]["resolved_at"],
        json!("2025-12-19T00:04:00Z")
    );
    assert_eq!(
        bodies[0]["resolved"][0]["since"],
        json!("2025-12-19T00:01:00Z")
    );
    assert!(check(&h, NOW + 300, &notify, 0).is_empty());
    assert!(hook.take().is_empty());
    // Low again, the receiver answers 500: 3 tries, exit 4, the host but not the secret shown.
    h.server.account().set(id, "remain_quota", json!(0));
    h.pull(&["--now", &(NOW + 360).to_string()]);
    hook.fail(true);
    let failed = run(
        h.keysync()
            .args(["-vvv", "check", "--now", &(NOW + 420).to_string()])
            .args(notify),
        4,
    );
    let tried = hook.take();
    assert_eq!(tried.len(), 3);
    assert!(tried.iter().all(|body| body == &tried[0]));
    assert_eq!(tried[0]["new"][0]["value"], json!(0));
    let host = hook
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/');
    assert!(
        failed.stderr.contains(&format!(
            "keysync: error: cannot deliver the alarms to the webhook http://{host}/***: HTTP \
             500 Internal Server Error after 3 tries"
        )),
        "{}",
        failed.stderr
    );
    // The next run delivers the same change, once.
    hook.fail(false);
    check(&h, NOW + 480, &notify, 1);
    let delivered = hook.take();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["new"], tried[0]["new"]);
    check(&h, NOW + 540, &notify, 1);
    assert!(hook.take().is_empty());
    // The secret is nowhere: not on stdout or stderr, not in the database.
    for output in [&failed.stdout, &failed.stderr] {
        assert!(!output.contains(SECRET), "{output}");
    }
    // The webhook is sent JSON, and never the CometAPI token.
    let headers = hook.headers.lock().unwrap().clone();
    assert_eq!(headers.len(), 6);
    for sent in headers {
        assert!(
            sent.contains("\"content-type\": \"application/json\""),
            "{sent}"
        );
        assert!(!sent.contains(TOKEN), "{sent}");
    }
    let stored = database_bytes(&h);
    let needle = SECRET.as_bytes();
    assert!(!stored.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn the_slack_body_is_text_with_names_escaped_as_slack_asks() {
    let (h, id) = one_low_key();
    let hook = Receiver::start();
    check(
        &h,
        NOW + 60,
        &["--notify", &hook.url(), "--notify-format", "slack"],
        1,
    );
    let bodies = hook.take();
    assert_eq!(bodies.len(), 1);
    let object = bodies[0].as_object().unwrap();
    assert_eq!(object.keys().collect::<Vec<_>>(), ["text"]);
    let text = object["text"].as_str().unwrap();
    assert_eq!(
        text,
        format!(
            "keysync: 1 firing, 1 new, 0 resolved ({})\n:rotating_light: FIRING low_quota_usd: \
             key {id} \"&lt;b&gt;low &amp; co&lt;/b&gt;\" has $0.40 of quota left (200,000 \
             units), less than $1.00",
            h.db.display()
        )
    );
}

#[test]
fn no_state_leaves_the_database_byte_for_byte_unchanged() {
    let (h, _) = one_low_key();
    // A check with state first, so that the file has the alarm tables and a firing alarm.
    check(&h, NOW + 60, &[], 1);
    let before = database_bytes(&h);
    let rows = check(&h, NOW + 120, &["--no-state"], 1);
    assert_eq!(rows[0]["since"], Json::Null);
    assert_eq!(database_bytes(&h), before);
    // The table for people leaves `since` empty too.
    let table = run(
        h.keysync().args([
            "check",
            "--no-state",
            "--format",
            "csv",
            "--now",
            &(NOW + 120).to_string(),
        ]),
        1,
    );
    let line = table.stdout.lines().nth(1).unwrap().to_string();
    assert!(line.ends_with(",0.4,1,,\"key 1 \"\"<b>low & co</b>\"\" has $0.40 of quota left (200,000 units), less than $1.00\""), "{line}");
    assert_eq!(database_bytes(&h), before);
}

#[test]
fn check_takes_the_pull_lock_and_no_state_needs_none() {
    let (h, _) = one_low_key();
    let lock = keysync::testing::PullLock::try_acquire(&h.db).unwrap();
    let locked = run(h.keysync().args(["check"]), 5);
    assert!(
        locked
            .stderr
            .starts_with("keysync: error: another keysync pull or prune is running"),
        "{}",
        locked.stderr
    );
    check(&h, NOW + 60, &["--no-state"], 1);
    drop(lock);
    check(&h, NOW + 60, &[], 1);
}

// pull --check ----------------------------------------------------------------------------------

#[test]
fn pull_check_exits_with_the_pulls_code_then_4_then_1_then_0() {
    let (h, id) = one_low_key();
    let fine = id + 1;
    let hook = Receiver::start();
    let url = hook.url();
    let pull_check = |extra: &[&str], code: i32| {
        h.pull_run(
            &[
                &[
                    "-q",
                    "--check",
                    "--notify",
                    url.as_str(),
                    "--notify-backoff",
                    "10ms",
                ],
                extra,
            ]
            .concat(),
            code,
        )
    };
    // An alarm fires: 1, and it is delivered.
    pull_check(&[], 1);
    assert_eq!(hook.take().len(), 1);
    // A new alarm whose delivery fails: 4, even while alarms fire.
    h.server.account().set(fine, "remain_quota", json!(0));
    hook.fail(true);
    pull_check(&[], 4);
    assert_eq!(hook.take().len(), 3);
    // Both resolve, and the receiver takes it: 0, and both are told resolved (the one it
    // never heard of firing too, so that nothing is lost).
    h.server
        .account()
        .set(id, "remain_quota", json!(3 * DOLLAR));
    h.server
        .account()
        .set(fine, "remain_quota", json!(3 * DOLLAR));
    hook.fail(false);
    pull_check(&[], 0);
    let resolved = hook.take();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["new"], json!([]));
    let subjects: Vec<&str> = resolved[0]["resolved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, [id.to_string(), fine.to_string()]);
    // The pull fails (a rejected token, 3): its own code, and last_pull_failed still goes out.
    let out = run(
        h.keysync()
            .env("COMETAPI_ACCESS_TOKEN", "revoked")
            .args(["pull", "-q", "--check", "--notify", &url]),
        3,
    );
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    let bodies = hook.take();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["new"][0]["rule"], json!("last_pull_failed"));
    // Alert flags without --check are a usage error.
    h.pull_run(&["--notify", &url], 2);
    // The profile's check = true and alerts work as the flags do.
    let config = h.dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.default]\ncheck = true\nnotify = [\"{url}\"]\n\n\
             [profiles.default.alerts]\nlast_pull_failed = false\nlow_quota_usd = 5\n"
        ),
    )
    .unwrap();
    let out = h.pull_run(&["--config", config.to_str().unwrap()], 1);
    // Without -q the summary comes first, then the alarms firing as a table.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("sync 6 ok: 2 keys"), "{}", out.stdout);
    let cells = crate::common::table_cells(&out.stdout[out.stdout.find('\n').unwrap() + 1..]);
    let rules: Vec<&str> = cells.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(
        rules,
        ["rule", "low_quota_usd", "low_quota_usd"],
        "{}",
        out.stdout
    );
    let bodies = hook.take();
    assert_eq!(bodies.len(), 1);
    let new: Vec<&str> = bodies[0]["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(new, ["low_quota_usd", "low_quota_usd"]);
    assert_eq!(bodies[0]["resolved"][0]["rule"], json!("last_pull_failed"));
}

fn terminate(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
}

#[test]
fn pull_every_checks_after_every_pull_and_keeps_running() {
    let (h, id) = one_low_key();
    let hook = Receiver::start();
    let url = hook.url();
    let child = h.spawn(&["pull", "-q", "--every", "1s", "--check", "--notify", &url]);
    wait_until("the first delivery", || {
        !hook.seen.lock().unwrap().is_empty()
    });
    assert_eq!(hook.take()[0]["new"][0]["rule"], json!("low_quota_usd"));
    h.server
        .account()
        .set(id, "remain_quota", json!(3 * DOLLAR));
    wait_until("the resolution", || !hook.seen.lock().unwrap().is_empty());
    assert_eq!(
        hook.take()[0]["resolved"][0]["rule"],
        json!("low_quota_usd")
    );
    terminate(&child);
    let out = check_exit(
        child.wait_with_output().unwrap(),
        0,
        "keysync pull --every 1s --check",
    );
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
}

// The README ------------------------------------------------------------------------------------

/// The README's "Alerts" section.
fn readme_alerts() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## Alerts\n")
        .expect("the README has an Alerts section");
    let end = readme[start..].find("<!-- END Alerts -->").unwrap();
    readme[start..start + end].to_string()
}

/// The keys of an object, and of the objects in its arrays, as `a`, `a[].b`.
fn shape(value: &Json, prefix: &str, into: &mut std::collections::BTreeSet<String>) {
    match value {
        Json::Object(map) => {
            for (key, value) in map {
                let path = format!("{prefix}{key}");
                into.insert(path.clone());
                shape(value, &format!("{path}."), into);
            }
        }
        Json::Array(items) => {
            for item in items {
                shape(item, &format!("{}[].", prefix.trim_end_matches('.')), into);
            }
        }
        _ => {}
    }
}

#[test]
fn the_readme_shows_the_body_a_webhook_is_sent_and_every_rule_check_takes() {
    let section = readme_alerts();
    let example = section.split("```json\n").nth(1).unwrap();
    let example: Json = serde_json::from_str(&example[..example.find("```").unwrap()]).unwrap();
    // A real body with the same parts: a firing alarm, and a resolved one.
    let (h, id) = one_low_key();
    let hook = Receiver::start();
    let url = hook.url();
    let args = ["--notify", url.as_str()];
    h.server
        .account()
        .set(id + 1, "expired_time", json!(NOW + DAY));
    h.pull(&["--now", &NOW.to_string()]);
    check(&h, NOW + 60, &args, 1);
    h.server
        .account()
        .set(id, "remain_quota", json!(3 * DOLLAR));
    h.pull(&["--now", &(NOW + 120).to_string()]);
    check(&h, NOW + 180, &args, 1);
    let bodies = hook.take();
    let (mut documented, mut sent) = Default::default();
    shape(&example, "", &mut documented);
    // The first body has a new alarm, the second a resolved one.
    for body in &bodies {
        shape(body, "", &mut sent);
    }
    assert_eq!(documented, sent);
    // Every flag under "Alert rules" in `check --help` is a row of the README's table.
    let help = run(h.keysync().args(["check", "--help"]), 0).stdout;
    // The heading's lines, up to the next heading (a line that is not indented).
    let rules: Vec<&str> = help[help.find("Alert rules:").unwrap()..]
        .lines()
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with(' '))
        .collect();
    let flags: Vec<&str> = rules
        .iter()
        .filter_map(|line| line.trim().strip_prefix("--"))
        .map(|flag| flag.split(' ').next().unwrap())
        .collect();
    assert_eq!(flags.len(), 9, "{flags:?}");
    for flag in flags {
        let setting = flag.replace('-', "_");
        assert!(
            section.contains(&format!("| `{setting} = ")),
            "the README's rule table has no row for {setting}"
        );
    }
}
