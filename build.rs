//! Two things the crate needs from its checkout at build time.
//!
//! `embed_migrations!` only sees the migration files that existed when it was expanded; the
//! first line makes a new migrations/V*.sql rebuild the crate.
//!
//! `keysync --version` names the git commit it was built from (`KEYSYNC_GIT_COMMIT`), when it
//! was built from a git checkout of its own: not from a tarball, nor from a folder inside some
//! other repository, and nothing at all when git is missing. Cargo reruns this when HEAD moves
//! (a checkout, or a commit on the branch HEAD names).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    if let Some((commit, watched)) = git_commit() {
        println!("cargo:rustc-env=KEYSYNC_GIT_COMMIT={commit}");
        for path in watched {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// The short commit of HEAD, and the files whose change moves it: HEAD itself, the branch's
/// ref file when it has one, else `packed-refs`. Paths come from git (`--git-path`), so a
/// worktree, whose `.git` is a file, works as a clone does.
fn git_commit() -> Option<(String, Vec<PathBuf>)> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let top = PathBuf::from(git(&manifest_dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&manifest_dir, &["rev-parse", "--short", "HEAD"])?;
    let mut watched = vec![git_path(&manifest_dir, "HEAD")?];
    if let Some(branch) = git(&manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        let loose = git_path(&manifest_dir, &branch)?;
        let packed = git_path(&manifest_dir, "packed-refs")?;
        watched.extend([loose, packed].into_iter().filter(|path| path.exists()));
    }
    Some((commit, watched))
}

/// `git rev-parse --git-path NAME`, absolute.
fn git_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(dir, &["rev-parse", "--git-path", name])?);
    Some(if path.is_absolute() {
        path
    } else {
        dir.join(path)
    })
}

/// Runs git in `dir`; its trimmed stdout when it succeeds with some.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}
