//! The shipped recipes in `contrib/`: the systemd service and timer, the Dockerfile, and the
//! Prometheus rules (which `metrics` tests with promtool). The guide (`docs/guide.md`) shows
//! each file verbatim, systemd accepts the units, and the command lines they run
//! work against the fake CometAPI, with the paths they name moved into a temporary folder.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use pretty_assertions::assert_eq;

use crate::common::{Harness, TOKEN, check_exit, int, run, text, wait_until};

const SERVICE: &str = include_str!("../../contrib/systemd/keysync.service");
const TIMER: &str = include_str!("../../contrib/systemd/keysync.timer");
const DOCKERFILE: &str = include_str!("../../contrib/Dockerfile");
const RULES: &str = include_str!("../../contrib/prometheus/keysync.rules.yml");
const GUIDE: &str = include_str!("../../docs/guide.md");

/// The binary path the service's `ExecStart` names.
const INSTALLED_BINARY: &str = "/usr/local/bin/keysync";

#[test]
fn the_guide_shows_each_shipped_file_verbatim() {
    for (name, file) in [
        ("contrib/systemd/keysync.service", SERVICE),
        ("contrib/systemd/keysync.timer", TIMER),
        ("contrib/Dockerfile", DOCKERFILE),
        ("contrib/prometheus/keysync.rules.yml", RULES),
    ] {
        assert!(
            GUIDE.contains(file),
            "docs/guide.md does not show {name} as it is:\n{file}"
        );
    }
}

/// `systemd-analyze verify` checks that the binary `ExecStart` names exists and is executable,
/// and `/usr/local/bin/keysync` is not installed on a build machine. So it verifies a copy of
/// the service whose `ExecStart` names the binary under test instead, and changes nothing else;
/// the test checks that the shipped file names `/usr/local/bin/keysync`, so the copy is the
/// shipped file but for that one path. Machines without systemd skip it, saying so.
#[test]
fn systemd_analyze_verifies_the_units() {
    let Ok(version) = StdCommand::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: no systemd-analyze on this machine");
        return;
    };
    assert!(version.status.success());
    assert_eq!(
        SERVICE.matches(INSTALLED_BINARY).count(),
        1,
        "ExecStart names {INSTALLED_BINARY}"
    );
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("keysync.service");
    let timer = dir.path().join("keysync.timer");
    std::fs::write(
        &service,
        SERVICE.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_keysync")),
    )
    .unwrap();
    std::fs::write(&timer, TIMER).unwrap();
    let output = StdCommand::new("systemd-analyze")
        .arg("verify")
        .args([&service, &timer])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // An unknown key or a bad value is only a warning (exit 0): any line about our units fails.
    let about_ours: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("keysync"))
        .collect();
    assert!(
        output.status.success() && about_ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        output.status
    );
}

/// The exposure `systemd-analyze security` gives the service's sandbox, from 0 (SAFE) to 10
/// (UNSAFE): at most 2.0, "OK", as a sandboxed network client can be. Offline, it rates the
/// file itself, so no systemd needs to run it.
#[test]
fn systemd_rates_the_service_sandbox_ok() {
    let Ok(version) = StdCommand::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: no systemd-analyze on this machine");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("keysync.service");
    std::fs::write(&service, SERVICE).unwrap();
    let output = StdCommand::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&service)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rated = stdout
        .lines()
        .find_map(|line| line.split_once("Overall exposure level for keysync.service: "))
        .and_then(|(_, rating)| rating.split_whitespace().next())
        .and_then(|score| score.parse::<f64>().ok());
    let Some(score) = rated else {
        panic!(
            "no rating from systemd-analyze security: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    assert!(score <= 2.0, "exposure {score}, above 2.0 (OK):\n{stdout}");
}

/// The values of `KEY=` lines in a unit file, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .collect()
}

/// The service's own command line and environment, run with what systemd would provide moved
/// into `root`: the state directory (`/var/lib/keysync`) and the credentials directory, which
/// holds the token as systemd copies it (mode 0400).
#[test]
fn the_service_pulls_as_written() {
    let h = Harness::with_keys(40);
    let root = h.dir.path();
    let state = root.join("var/lib/keysync");
    let credentials = root.join("credentials");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(&credentials).unwrap();
    let token = credentials.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    set_mode(&token, 0o400);
    assert_eq!(unit_values(SERVICE, "StateDirectory"), ["keysync"]);
    assert_eq!(
        unit_values(SERVICE, "LoadCredential"),
        ["token:/etc/keysync/token"]
    );
    let moved = |value: &str| {
        value
            .replace("/var/lib/keysync", &state.display().to_string())
            .replace(
                "${CREDENTIALS_DIRECTORY}",
                &credentials.display().to_string(),
            )
    };
    let exec = unit_values(SERVICE, "ExecStart");
    assert_eq!(exec.len(), 1);
    let words: Vec<String> = exec[0].split_whitespace().map(moved).collect();
    assert_eq!(words[0], INSTALLED_BINARY);
    let mut command = Command::cargo_bin("keysync").unwrap();
    command
        .env_clear()
        .env("COMETAPI_BASE_URL", h.server.url())
        .args(&words[1..]);
    for assignment in unit_values(SERVICE, "Environment") {
        let (name, value) = assignment.split_once('=').unwrap();
        command.env(name, moved(value));
    }
    let pulled = run(&mut command, 0);
    assert_eq!((pulled.stdout.as_str(), pulled.stderr.as_str()), ("", ""));
    let conn = rusqlite::Connection::open(state.join("keysync.db")).unwrap();
    let sync: (i64, String, i64) = conn
        .query_row("SELECT id, status, keys_seen FROM syncs", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(sync, (1, "ok".to_string(), 40));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The body of `GET http://URL` (`HOST:PORT/PATH`), read whole over HTTP/1.0.
fn scrape(url: &str) -> String {
    use std::io::{Read, Write};
    let (host, path) = url.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// What the image says it is, from the one place each is defined: the Rust it is built with is
/// Cargo.toml's `rust-version`, its OCI labels are the package's version and description.
#[test]
fn the_image_is_built_with_the_declared_rust_and_labelled_as_the_package() {
    let manifest: toml::Table =
        toml::from_str(include_str!("../../Cargo.toml")).expect("Cargo.toml parses");
    let package = &manifest["package"];
    let rust = package["rust-version"].as_str().unwrap();
    let from = DOCKERFILE
        .lines()
        .find_map(|line| line.strip_prefix("FROM rust:"))
        .expect("a rust build stage");
    let tag = from.split_whitespace().next().unwrap();
    assert!(
        tag.starts_with(&format!("{rust}.")) && tag.ends_with("-slim-bookworm"),
        "FROM rust:{tag} is not rust-version {rust}"
    );
    let label = |name: &str| {
        let prefix = format!("org.opencontainers.image.{name}=\"");
        let at = DOCKERFILE
            .find(&prefix)
            .unwrap_or_else(|| panic!("no {name} label"));
        let rest = &DOCKERFILE[at + prefix.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    assert_eq!(label("version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        label("description"),
        package["description"].as_str().unwrap()
    );
    assert_eq!(label("licenses"), package["license"].as_str().unwrap());
    assert_eq!(label("title"), "keysync");
    // The registry and the target folder are cached across builds.
    for cache in ["/usr/local/cargo/registry", "/src/target"] {
        assert!(
            DOCKERFILE.contains(&format!("--mount=type=cache,target={cache},")),
            "no cache mount for {cache}"
        );
    }
}

/// The build context is the repository: `.dockerignore` lets through exactly what the
/// Dockerfile copies from it, so neither target/ nor .git is sent to the daemon.
#[test]
fn dockerignore_sends_only_what_the_image_copies() {
    let ignore = include_str!("../../.dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"*"), "everything is left out first");
    let let_through: Vec<&str> = rules[1..]
        .iter()
        .map(|rule| rule.strip_prefix('!').expect("only exceptions after *"))
        .collect();
    let copied: Vec<&str> = DOCKERFILE
        .lines()
        .filter_map(|line| line.strip_prefix("COPY "))
        .filter(|args| !args.starts_with("--from"))
        .flat_map(|args| {
            let words: Vec<&str> = args.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    assert_eq!(
        let_through, copied,
        ".dockerignore lets through what COPY takes"
    );
    for each in &copied {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(each).exists(),
            "{each}"
        );
    }
}

/// The JSON array of a Dockerfile instruction in exec form, e.g. `CMD ["pull", ...]`: the
/// words after `prefix` on the one line that starts with it.
fn exec_form(prefix: &str) -> Vec<String> {
    let lines: Vec<&str> = DOCKERFILE
        .lines()
        .filter_map(|line| line.strip_prefix(prefix))
        .collect();
    assert_eq!(lines.len(), 1, "one {prefix:?} line");
    let json = &lines[0][lines[0].find('[').expect("exec form")..];
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{prefix} {json}: {e}"))
}

/// The image's `ENV` values, as `NAME=VALUE` lines.
fn image_environment() -> Vec<(String, String)> {
    DOCKERFILE
        .lines()
        .filter_map(|line| line.strip_prefix("ENV "))
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("ENV NAME=VALUE");
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// Docker is not needed (nor installed) to run the test: it runs the image's entrypoint and
/// command, and its health check, as the image would, with the volume `/data` moved into a
/// temporary folder. Before the first pull the check fails (no database, exit 6); after one
/// it passes. The image's build and its packages are the part this cannot check.
#[test]
fn the_container_pulls_on_its_schedule_and_its_health_check_passes() {
    let h = Harness::with_keys(30);
    let volume = h.dir.path().join("data");
    std::fs::create_dir(&volume).unwrap();
    assert!(DOCKERFILE.contains("VOLUME /data\n"));
    assert!(DOCKERFILE.contains("FROM debian:bookworm-slim\n"));
    assert!(DOCKERFILE.contains("install -y --no-install-recommends ca-certificates"));
    assert!(DOCKERFILE.contains("cargo build --release --locked"));
    assert!(DOCKERFILE.contains("\nUSER keysync\n"));
    let environment: Vec<(String, String)> = image_environment()
        .into_iter()
        .map(|(name, value)| (name, value.replace("/data", &volume.display().to_string())))
        .collect();
    assert_eq!(
        environment,
        [(
            "KEYSYNC_DB".to_string(),
            volume.join("keysync.db").display().to_string()
        )]
    );
    let keysync = |words: &[String]| {
        assert_eq!(words[0], "keysync");
        let mut command = StdCommand::new(env!("CARGO_BIN_EXE_keysync"));
        command
            .env_clear()
            .envs(environment.iter().map(|(n, v)| (n, v)))
            .env("COMETAPI_ACCESS_TOKEN", TOKEN)
            .env("COMETAPI_BASE_URL", h.server.url())
            .args(&words[1..]);
        command
    };
    let health = exec_form("HEALTHCHECK --interval=5m --start-period=2m CMD ");
    assert_eq!(health, ["keysync", "status", "--max-age", "30m"]);
    let unhealthy = keysync(&health).output().unwrap();
    check_exit(unhealthy, 6, "the health check before any pull");

    let mut schedule: Vec<String> = [exec_form("ENTRYPOINT "), exec_form("CMD ")].concat();
    assert_eq!(
        schedule,
        [
            "keysync",
            "pull",
            "--every",
            "15m",
            "--metrics-listen",
            "0.0.0.0:9184"
        ]
    );
    assert!(DOCKERFILE.contains("\nEXPOSE 9184\n"));
    // Any free port on loopback here, as the container's own network would be.
    schedule[5] = "127.0.0.1:0".to_string();
    let mut child = keysync(&schedule)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut serving = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut serving).unwrap();
    let metrics_at = serving
        .strip_prefix("keysync: serving metrics at http://")
        .and_then(|rest| rest.strip_suffix("\n"))
        .unwrap_or_else(|| panic!("{serving:?}"))
        .to_string();
    let db: PathBuf = volume.join("keysync.db");
    wait_until("the first pull", || {
        rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM syncs WHERE status = 'ok'", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .is_ok_and(|n| n == 1)
    });
    wait_until("the first pull's metrics", || {
        scrape(&metrics_at).contains("\nkeysync_last_sync_success 1\n")
    });
    // SAFETY: sending a signal to our own child process.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let stopped = check_exit(child.wait_with_output().unwrap(), 0, "the container's CMD");
    assert!(
        stopped.stdout.starts_with("sync 1 ok: 30 keys, 30 added"),
        "{}",
        stopped.stdout
    );
    let healthy = check_exit(
        keysync(&health).output().unwrap(),
        0,
        "the health check after a pull",
    );
    assert!(
        healthy.stdout.contains("last good sync: 1 ok"),
        "{}",
        healthy.stdout
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut statement = conn.prepare("SELECT id, status FROM syncs").unwrap();
    let rows: Vec<Vec<rusqlite::types::Value>> = statement
        .query_map([], |r| Ok(vec![r.get(0)?, r.get(1)?]))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [vec![int(1), text("ok")]]);
}
