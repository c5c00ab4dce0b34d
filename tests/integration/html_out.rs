//! `keysync html --out`: where the page may go. FILE is replaced only when it is missing or an
//! earlier page (recognised by its generator mark); `--force` replaces another regular file;
//! a database, a directory, a FIFO, a socket, a device, or a link to any of them is refused
//! with exit 2 and left exactly as it was (bytes, kind, mtime), as root too. `--out -` is
//! stdout.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use scraper::{Html, Selector};

use crate::common::{Harness, run};
use crate::daily_pulls::{HOUR, pull_time, ten_days};

/// What must not change about a path keysync refuses: the kind of file (and the device it
/// stands for), its mtime, its bytes if it is a regular file, its entries if a directory.
#[derive(Debug, PartialEq)]
struct Untouched {
    kind: String,
    rdev: u64,
    mtime: SystemTime,
    content: Vec<String>,
}

fn untouched(path: &Path) -> Untouched {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let kind = meta.file_type();
    let content = if kind.is_file() {
        vec![format!("{:?}", std::fs::read(path).unwrap())]
    } else if kind.is_dir() {
        listing(path)
    } else {
        Vec::new()
    };
    Untouched {
        kind: format!("{kind:?}"),
        rdev: meta.rdev(),
        mtime: meta.modified().unwrap(),
        content,
    }
}

/// A folder's entries, sorted: a temporary page left behind would show here.
fn listing(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `keysync html --out OUT EXTRA...`, expecting exit `code`: its stdout must be empty, its
/// stderr is returned.
#[track_caller]
fn html_to(h: &Harness, out: &Path, extra: &[&str], code: i32) -> String {
    let done = run(
        h.keysync().args(["html", "--out"]).arg(out).args(extra),
        code,
    );
    assert_eq!(done.stdout, "");
    done.stderr
}

/// Asserts that `keysync html --out OUT`, with and without `--force`, refuses with `why` and
/// leaves OUT and its folder as they were.
#[track_caller]
fn refused(h: &Harness, out: &Path, why: &str) {
    let before = untouched(out);
    let folder = listing(out.parent().unwrap());
    for extra in [&[][..], &["--force"]] {
        assert_eq!(
            html_to(h, out, extra, 2),
            format!(
                "keysync: error: refusing to write --out {}: it is {why}\n",
                out.display()
            ),
            "{extra:?}"
        );
        assert_eq!(untouched(out), before, "{} {extra:?}", out.display());
        assert_eq!(listing(out.parent().unwrap()), folder);
    }
}

/// The page's generator mark: `keysync VERSION`.
fn generator(page: &str) -> Vec<String> {
    let selector = Selector::parse(r#"head > meta[name="generator"]"#).unwrap();
    Html::parse_document(page)
        .select(&selector)
        .map(|meta| meta.attr("content").unwrap_or_default().to_string())
        .collect()
}

fn wrote(out: &Path) -> String {
    format!(
        "keysync: wrote {} ({} bytes)\n",
        out.display(),
        std::fs::metadata(out).unwrap().len()
    )
}

fn pulled() -> Harness {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    h
}

const OTHER_FILE: &str = "a file keysync html did not write; pick another path, or pass \
                          --force to replace it";
const DATABASE: &str = "a page never replaces a database, even with --force: pick another path, \
                        such as report.html";
const NOT_REGULAR: &str = "only a regular file is ever replaced, even with --force: pick \
                           another path, or --out - to write the page to stdout";

#[test]
fn an_earlier_page_carries_the_generator_mark_and_is_replaced() {
    let h = pulled();
    let out = h.dir.path().join("report.html");
    assert_eq!(html_to(&h, &out, &["--now", "2100-01-01"], 0), wrote(&out));
    let first = std::fs::read_to_string(&out).unwrap();
    let mark = format!("keysync {}", env!("CARGO_PKG_VERSION"));
    assert_eq!(generator(&first), std::slice::from_ref(&mark));

    assert_eq!(html_to(&h, &out, &["--now", "2100-01-02"], 0), wrote(&out));
    let second = std::fs::read_to_string(&out).unwrap();
    assert_ne!(second, first);
    assert!(second.contains("2100-01-02 00:00:00Z (--now)"));
    assert_eq!(generator(&second), [mark]);
    assert_eq!(
        listing(h.dir.path())
            .iter()
            .filter(|n| n.contains("keysync-html"))
            .count(),
        0
    );
}

#[test]
fn a_database_is_refused_even_with_force_and_still_opens() {
    let h = pulled();
    // At one fixed --now: the status line of the last sync says how long ago it ran.
    let status = || run(h.keysync().args(["status", "--now", "2100-01-01"]), 0).stdout;
    let keys = status();
    refused(&h, &h.db, &format!("an SQLite database; {DATABASE}"));
    assert_eq!(status(), keys);

    // Any SQLite file, not only keysync's.
    let other = h.dir.path().join("notes.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me')")
        .unwrap();
    refused(&h, &other, &format!("an SQLite database; {DATABASE}"));

    // Through a symbolic link: the link and the database both stay.
    let link = h.dir.path().join("latest.html");
    std::os::unix::fs::symlink(&h.db, &link).unwrap();
    let target = std::fs::canonicalize(&h.db).unwrap();
    refused(
        &h,
        &link,
        &format!(
            "a symbolic link to {}, an SQLite database; {DATABASE}",
            target.display()
        ),
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), h.db);
    assert_eq!(status(), keys);
}

#[test]
fn another_file_is_refused_unless_forced() {
    let h = pulled();
    let out = h.dir.path().join("notes.txt");
    std::fs::write(&out, "my notes\n").unwrap();
    let before = untouched(&out);
    assert_eq!(
        html_to(&h, &out, &[], 2),
        format!(
            "keysync: error: refusing to write --out {}: it is {OTHER_FILE}\n",
            out.display()
        )
    );
    assert_eq!(untouched(&out), before);
    // An HTML page that names keysync somewhere, but not as the first bytes of its head, is
    // not one keysync wrote.
    let lookalike = h.dir.path().join("lookalike.html");
    std::fs::write(
        &lookalike,
        "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"generator\" content=\"keysync 0.1.0\">",
    )
    .unwrap();
    assert_eq!(
        html_to(&h, &lookalike, &[], 2),
        format!(
            "keysync: error: refusing to write --out {}: it is {OTHER_FILE}\n",
            lookalike.display()
        )
    );

    assert_eq!(html_to(&h, &out, &["--force"], 0), wrote(&out));
    let page = std::fs::read_to_string(&out).unwrap();
    assert_eq!(generator(&page).len(), 1);
}

#[test]
fn a_link_to_an_earlier_page_replaces_the_page_and_keeps_the_link() {
    let h = pulled();
    let page = h.dir.path().join("report-2100-01-01.html");
    html_to(&h, &page, &["--now", "2100-01-01"], 0);
    let link = h.dir.path().join("latest.html");
    std::os::unix::fs::symlink("report-2100-01-01.html", &link).unwrap();

    assert_eq!(
        html_to(&h, &link, &["--now", "2100-01-02"], 0),
        wrote(&link)
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("report-2100-01-01.html")
    );
    let written = std::fs::read_to_string(&page).unwrap();
    assert!(written.contains("2100-01-02 00:00:00Z (--now)"));

    // A link to another file needs --force, and then replaces that file; a link to nothing is
    // refused, and stays.
    let notes = h.dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    let to_notes = h.dir.path().join("notes.html");
    std::os::unix::fs::symlink(&notes, &to_notes).unwrap();
    let target = std::fs::canonicalize(&notes).unwrap();
    assert_eq!(
        html_to(&h, &to_notes, &[], 2),
        format!(
            "keysync: error: refusing to write --out {}: it is a symbolic link to {}, \
             {OTHER_FILE}\n",
            to_notes.display(),
            target.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
    assert_eq!(html_to(&h, &to_notes, &["--force"], 0), wrote(&to_notes));
    assert_eq!(
        generator(&std::fs::read_to_string(&notes).unwrap()).len(),
        1
    );
    assert_eq!(std::fs::read_link(&to_notes).unwrap(), notes);

    let dangling = h.dir.path().join("gone.html");
    std::os::unix::fs::symlink("no-such-report.html", &dangling).unwrap();
    refused(
        &h,
        &dangling,
        "a symbolic link to no-such-report.html, which does not exist; pick another path, or \
         remove the link",
    );
    assert!(!h.dir.path().join("no-such-report.html").exists());
}

#[test]
fn a_directory_fifo_socket_or_device_is_never_replaced_even_with_force() {
    let h = pulled();
    let folder = h.dir.path().join("reports");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("old.html"), "old").unwrap();
    refused(
        &h,
        &folder,
        &format!(
            "a directory; give a file path, such as {}",
            folder.join("report.html").display()
        ),
    );

    // Opening a FIFO for reading would block until a writer came: the test would hang.
    let fifo = h.dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    refused(&h, &fifo, &format!("a FIFO (named pipe); {NOT_REGULAR}"));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let to_fifo = h.dir.path().join("pipe.html");
    std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
    refused(
        &h,
        &to_fifo,
        &format!(
            "a symbolic link to {}, a FIFO (named pipe); {NOT_REGULAR}",
            std::fs::canonicalize(&fifo).unwrap().display()
        ),
    );

    let socket = h.dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    refused(&h, &socket, &format!("a socket; {NOT_REGULAR}"));
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());

    for device in devices(h.dir.path()) {
        refused(&h, &device, &format!("a character device; {NOT_REGULAR}"));
        let meta = std::fs::metadata(&device).unwrap();
        assert!(meta.file_type().is_char_device(), "{}", device.display());
        assert_eq!(meta.rdev(), libc::makedev(1, 3));
    }
}

/// Character devices to try: `/dev/null` itself when the test runs as root (who could replace
/// it), and one made with `mknod` in `folder` where that is permitted.
fn devices(folder: &Path) -> Vec<PathBuf> {
    let mut devices = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        devices.push(PathBuf::from("/dev/null"));
    } else {
        println!("not root: /dev/null is not tried (it could not be replaced anyway)");
    }
    let null = folder.join("null");
    let made = std::process::Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .stderr(std::process::Stdio::null())
        .status();
    match made {
        Ok(status) if status.success() => devices.push(null),
        _ => println!("mknod is not permitted here: no device made in the test's folder"),
    }
    devices
}

#[test]
fn a_dash_writes_the_same_page_to_stdout() {
    let (h, _, _) = ten_days();
    let now = (pull_time(9) + HOUR).to_string();
    let out = h.dir.path().join("report.html");
    html_to(&h, &out, &["--now", &now], 0);
    let before = listing(h.dir.path());

    let done = run(h.keysync().args(["html", "--out", "-", "--now", &now]), 0);
    assert_eq!(done.stderr, "", "the page is the output");
    assert_eq!(done.stdout, std::fs::read_to_string(&out).unwrap());
    assert_eq!(listing(h.dir.path()), before, "no temporary file");

    // A reader that is gone (`keysync html --out - | head -1` once head has its line) ends the
    // page quietly.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("keysync"))
        .env_clear()
        .env("HOME", h.dir.path())
        .env("KEYSYNC_DB", &h.db)
        .args(["html", "--out", "-", "--now", &now])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
