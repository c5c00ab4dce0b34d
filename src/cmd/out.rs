//! Where a file keysync writes may go (`html --out`, `metrics --out`, `pull --metrics-file`).
//! `-` is stdout. FILE is replaced only when nothing is lost by it, as its command's [`Rule`]
//! says: FILE does not exist, or it is a file that command wrote before (it begins with
//! [`Rule::own_start`]), or another regular file the rule lets go (`html --force`; metrics
//! always); never a database (an SQLite file, or its WAL or rollback journal). A symbolic link
//! is judged by the file it points at, which the new file replaces; the link stays. The new
//! file gets the rule's mode (the temporary file it starts as is private).
//!
//! FILE is judged by its metadata before anything is opened: opening a FIFO would block, and a
//! device, a directory or a socket is never read nor replaced. Only a regular file is opened,
//! without following links and without blocking, and only a bounded prefix of it is read. The
//! judgement is made twice: before the database is read, so a wrong path fails at once, and
//! again just before the temporary file is renamed into place, so that what FILE has become
//! meanwhile is what counts.

use std::fs::{self, Metadata, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::store::JOURNAL_MAGIC;

/// Every SQLite database file begins with these bytes (its header string).
const SQLITE_START: &[u8] = b"SQLite format 3\0";

/// A WAL database's shared-memory index (`-shm`) begins with its version, 3007000, in the
/// machine's byte order.
const WAL_INDEX_START: [u8; 4] = 3_007_000u32.to_ne_bytes();

/// The first bytes of an SQLite WAL file (two byte orders), of a rollback journal and of a WAL
/// index: the database's other half, as precious as the file itself.
const SQLITE_COMPANION_STARTS: [&[u8]; 4] = [
    &[0x37, 0x7f, 0x06, 0x82],
    &[0x37, 0x7f, 0x06, 0x83],
    &JOURNAL_MAGIC,
    &WAL_INDEX_START,
];

/// What a command writes, and what it may replace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rule {
    /// The flag that names FILE, for messages (`--out`).
    pub flag: &'static str,
    /// The command, for messages (`keysync html`).
    pub writer: &'static str,
    /// What is written, for messages (`page`).
    pub what: &'static str,
    /// An example file name, for messages (`report.html`).
    pub example: &'static str,
    /// How every file this command wrote begins: such a file is replaced.
    pub own_start: &'static str,
    /// Another regular file (not a database) is replaced too.
    pub replaces_other_files: bool,
    /// Whether a `--force` flag exists (that would replace another file), for messages.
    pub has_force: bool,
    /// The permissions of the file written.
    pub mode: u32,
}

/// Where one page is written.
pub(crate) enum Sink {
    Stdout,
    File(PageFile),
}

/// A page under way to a file: FILE as given, where the page goes, and the temporary file that
/// holds it until it is complete.
pub(crate) struct PageFile {
    out: PathBuf,
    rule: Rule,
    destination: Destination,
    temporary: NamedTempFile,
}

impl Sink {
    /// Judges `--out` and makes the temporary file, before any other work: a path that cannot
    /// or must not take the page fails at once.
    pub(crate) fn open(out: &Path, rule: Rule) -> Result<Sink> {
        if out == Path::new("-") {
            return Ok(Sink::Stdout);
        }
        let destination = check(out, rule)?;
        let temporary = destination.temporary(out, rule)?;
        Ok(Sink::File(PageFile {
            out: out.to_path_buf(),
            rule,
            destination,
            temporary,
        }))
    }

    /// Writes the whole page; a file is renamed into place only once complete. A closed stdout
    /// ends the page quietly, as it ends every other output.
    pub(crate) fn write(self, text: &str) -> Result<()> {
        match self {
            Sink::Stdout => crate::output::print_text(text),
            Sink::File(file) => file.write(text),
        }
    }
}

impl PageFile {
    fn write(mut self, text: &str) -> Result<()> {
        let file = &mut self.temporary;
        file.write_all(text.as_bytes())
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| cannot_write(&self.out, self.rule, &e))?;
        self.persist()
    }

    /// Judges FILE again and renames the page over it. A FILE that did not exist is never
    /// replaced by the rename itself, should one appear in between.
    fn persist(self) -> Result<()> {
        let now = check(&self.out, self.rule)?;
        // The temporary file sits beside the destination first judged: a rename elsewhere
        // would not be atomic, or not possible.
        if now != self.destination {
            return Err(changed(&self.out, self.rule));
        }
        let renamed = if now.exists {
            self.temporary.persist(&now.path).map(drop)
        } else {
            self.temporary.persist_noclobber(&now.path).map(drop)
        };
        renamed.map_err(|e| match e.error.kind() {
            ErrorKind::AlreadyExists => changed(&self.out, self.rule),
            _ => cannot_write(&self.out, self.rule, &e.error),
        })
    }
}

/// The file a page may be written to: FILE, or the file the link FILE points at.
#[derive(Debug, PartialEq)]
struct Destination {
    path: PathBuf,
    exists: bool,
}

impl Destination {
    /// A new temporary file beside the destination, removed again unless it is renamed into
    /// place.
    fn temporary(&self, out: &Path, rule: Rule) -> Result<NamedTempFile> {
        let folder = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if !folder.is_dir() {
            return Err(Error::Usage(format!(
                "cannot write {} {}: the folder {} does not exist; create it first or pick \
                 another path",
                rule.flag,
                out.display(),
                folder.display()
            )));
        }
        // Named so that no collector of `*.prom` or `*.html` files reads it half written.
        let temporary = tempfile::Builder::new()
            .prefix(".keysync-")
            .suffix(".tmp")
            .permissions(fs::Permissions::from_mode(rule.mode))
            .tempfile_in(folder)
            .map_err(|e| cannot_write(out, rule, &e))?;
        // The umask may have taken bits from the mode asked for: set it whole.
        fs::set_permissions(temporary.path(), fs::Permissions::from_mode(rule.mode))
            .map_err(|e| cannot_write(out, rule, &e))?;
        Ok(temporary)
    }
}

/// Whether the page may be written to `out`, and where: the rule of the module's comment.
fn check(out: &Path, rule: Rule) -> Result<Destination> {
    if out.file_name().is_none() {
        return Err(Error::Usage(format!(
            "{} {} names no file: give a file name such as {}",
            rule.flag,
            out.display(),
            rule.example
        )));
    }
    let link = match fs::symlink_metadata(out) {
        Ok(meta) if meta.file_type().is_symlink() => Some(link_target(out, rule)?),
        _ => None,
    };
    let path = link.clone().unwrap_or_else(|| out.to_path_buf());
    let exists = match inspect(&path, rule)? {
        Found::Missing if link.is_none() => false,
        Found::Page => true,
        Found::OtherFile if rule.replaces_other_files => true,
        found => return Err(refusal(out, link.as_deref(), &found, rule)),
    };
    Ok(Destination { path, exists })
}

/// The file a link finally points at; a link to nothing names what it points at.
fn link_target(link: &Path, rule: Rule) -> Result<PathBuf> {
    match fs::canonicalize(link) {
        Ok(target) => Ok(target),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let target = fs::read_link(link).unwrap_or_default();
            Err(refusal(link, Some(&target), &Found::Missing, rule))
        }
        Err(e) => Err(cannot_write(link, rule, &e)),
    }
}

/// What is at a path, without following a link.
#[derive(Debug, PartialEq)]
enum Found {
    Missing,
    Page,
    Database,
    OtherFile,
    Directory,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    /// A link that appeared after its target was resolved, or a kind of file Unix adds.
    Special,
}

fn inspect(path: &Path, rule: Rule) -> Result<Found> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(cannot_write(path, rule, &e)),
    };
    let kind = meta.file_type();
    Ok(match () {
        () if kind.is_file() => by_content(path, &meta, rule)?,
        () if kind.is_dir() => Found::Directory,
        () if kind.is_char_device() => Found::CharDevice,
        () if kind.is_block_device() => Found::BlockDevice,
        () if kind.is_fifo() => Found::Fifo,
        () if kind.is_socket() => Found::Socket,
        () => Found::Special,
    })
}

/// A regular file by its first bytes. It is opened without following a link and without
/// blocking, and must still be the file `seen` described: a FIFO or a link swapped in since
/// is never read.
fn by_content(path: &Path, seen: &Metadata, rule: Rule) -> Result<Found> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| cannot_write(path, rule, &e))?;
    let opened = file.metadata().map_err(|e| cannot_write(path, rule, &e))?;
    if !opened.is_file() || (opened.dev(), opened.ino()) != (seen.dev(), seen.ino()) {
        return Err(changed(path, rule));
    }
    let bound = rule.own_start.len().max(SQLITE_START.len());
    let mut start = Vec::with_capacity(bound);
    file.take(bound as u64)
        .read_to_end(&mut start)
        .map_err(|e| cannot_write(path, rule, &e))?;
    // A database first: no rule's own start may ever cover one.
    let database = std::iter::once(SQLITE_START)
        .chain(SQLITE_COMPANION_STARTS)
        .any(|magic| start.starts_with(magic));
    Ok(if database {
        Found::Database
    } else if start.starts_with(rule.own_start.as_bytes()) {
        Found::Page
    } else {
        Found::OtherFile
    })
}

/// The one-line refusal: what FILE is (through its link) and what to do instead.
fn refusal(out: &Path, link: Option<&Path>, found: &Found, rule: Rule) -> Error {
    let what = match found {
        Found::Missing => "which does not exist",
        Found::Database => "an SQLite database",
        Found::Page | Found::OtherFile => &format!("a file {} did not write", rule.writer),
        Found::Directory => "a directory",
        Found::CharDevice => "a character device",
        Found::BlockDevice => "a block device",
        Found::Fifo => "a FIFO (named pipe)",
        Found::Socket => "a socket",
        Found::Special => "not a regular file",
    };
    let even_forced = if rule.has_force {
        ", even with --force"
    } else {
        ""
    };
    let todo = match found {
        Found::Missing => "pick another path, or remove the link".to_string(),
        Found::Database => format!(
            "a {} never replaces a database{even_forced}: pick another path, such as {}",
            rule.what, rule.example
        ),
        Found::Page | Found::OtherFile => {
            "pick another path, or pass --force to replace it".to_string()
        }
        Found::Directory => format!(
            "give a file path, such as {}",
            out.join(rule.example).display()
        ),
        _ => format!(
            "only a regular file is ever replaced{even_forced}: pick another path, or --out - \
             to write the {} to stdout",
            rule.what
        ),
    };
    let is = match link {
        Some(target) => format!("a symbolic link to {}, {what}", target.display()),
        None => what.to_string(),
    };
    Error::Usage(format!(
        "refusing to write {} {}: it is {is}; {todo}",
        rule.flag,
        out.display()
    ))
}

fn changed(out: &Path, rule: Rule) -> Error {
    Error::Usage(format!(
        "{} {} changed while the {} was written, so it was left as it is: run the command \
         again",
        rule.flag,
        out.display(),
        rule.what
    ))
}

fn cannot_write(out: &Path, rule: Rule, error: &std::io::Error) -> Error {
    Error::Usage(format!(
        "cannot write {} {}: {error}; pick a file in a folder you can write to",
        rule.flag,
        out.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD_START: &str = "<!DOCTYPE html><meta name=\"generator\" content=\"keysync ";

    fn rule(force: bool) -> Rule {
        Rule {
            flag: "--out",
            writer: "keysync html",
            what: "page",
            example: "report.html",
            own_start: HEAD_START,
            replaces_other_files: force,
            has_force: true,
            mode: 0o600,
        }
    }

    /// What is in `folder` besides FILE: a temporary page left behind would show here.
    fn names(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn refusal_text(sink: Sink) -> String {
        match sink.write("<p>the new page</p>\n") {
            Err(Error::Usage(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_file_became_while_the_page_was_made_is_judged_again_before_the_rename() {
        let folder = tempfile::tempdir().unwrap();
        let out = folder.path().join("report.html");

        // Missing when checked, a database by the time the page is complete.
        let sink = Sink::open(&out, rule(false)).unwrap();
        fs::write(&out, b"SQLite format 3\0 and the pages").unwrap();
        assert!(refusal_text(sink).ends_with(
            "it is an SQLite database; a page never replaces a database, even with --force: \
             pick another path, such as report.html"
        ));
        assert_eq!(fs::read(&out).unwrap(), b"SQLite format 3\0 and the pages");
        assert_eq!(names(folder.path()), ["report.html"]);

        // An earlier page when checked, a directory by then.
        fs::write(&out, format!("{HEAD_START}0.1.0\">")).unwrap();
        let sink = Sink::open(&out, rule(true)).unwrap();
        fs::remove_file(&out).unwrap();
        fs::create_dir(&out).unwrap();
        assert!(refusal_text(sink).contains("it is a directory;"));
        assert!(out.is_dir());
        fs::remove_dir(&out).unwrap();

        // Missing when checked, a link to an earlier page elsewhere by then: the page went
        // beside the path first judged, so it is not renamed across.
        let elsewhere = folder.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let page = elsewhere.join("page.html");
        fs::write(&page, format!("{HEAD_START}0.1.0\">")).unwrap();
        let sink = Sink::open(&out, rule(false)).unwrap();
        std::os::unix::fs::symlink(&page, &out).unwrap();
        assert!(refusal_text(sink).contains("changed while the page was written"));
        assert_eq!(
            fs::read_to_string(&page).unwrap(),
            format!("{HEAD_START}0.1.0\">")
        );
        assert_eq!(names(folder.path()), ["elsewhere", "report.html"]);
    }
}
