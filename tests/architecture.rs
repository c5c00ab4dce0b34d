//! The module graph of `src/` (ARCHITECTURE.md's code map), checked: each top-level module
//! imports only the modules below it, so dependencies point one way and no cycle can form.
//! Unit tests (`#[cfg(test)] mod tests` at the end of a file, or a `tests.rs` of their own) may
//! reach further, e.g. for the fake server.

use std::collections::BTreeSet;
use std::path::Path;

/// Each top-level module of `src/` and the top-level modules it may import. `error`, `time`
/// and `terminal` are leaves every module may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("cli", &["cmd", "config"]),
    (
        "cmd",
        &[
            "config", "puller", "fake", "report", "alerts", "facts", "store", "api", "output",
        ],
    ),
    ("alerts", &["facts", "store", "output"]),
    ("facts", &["store"]),
    ("testing", &["api", "fake", "store"]),
    ("puller", &["store", "api"]),
    ("config", &["alerts", "api"]),
    ("fake", &["api"]),
    ("report", &["store"]),
    ("store", &["api"]),
    ("api", &[]),
    ("output", &[]),
    ("error", &[]),
    ("time", &[]),
    ("terminal", &[]),
];
const LEAVES: [&str; 3] = ["error", "time", "terminal"];

#[test]
fn modules_import_only_the_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (module, allowed) in ALLOWED {
        let imports = imports_of(&src, module);
        for import in imports {
            let fine = import == *module
                || allowed.contains(&import.as_str())
                || (LEAVES.contains(&import.as_str()) && !LEAVES.contains(module));
            if !fine {
                wrong.push(format!("{module} -> {import}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the module graph (see ARCHITECTURE.md): {wrong:?}"
    );
}

#[test]
fn every_top_level_module_has_a_place_in_the_graph() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known: BTreeSet<&str> = ALLOWED.iter().map(|(name, _)| *name).collect();
    let found: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir() || path.extension().is_some_and(|e| e == "rs"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|name| !["lib", "main"].contains(&name.as_str()))
        .collect();
    let missing: Vec<&String> = found
        .iter()
        .filter(|n| !known.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from ALLOWED: {missing:?}"
    );
}

/// The top-level modules that the production code of `module` (its file or folder) names
/// with `crate::`.
fn imports_of(src: &Path, module: &str) -> BTreeSet<String> {
    let folder = src.join(module);
    let files = if folder.is_dir() {
        rust_files(&folder)
    } else {
        vec![src.join(format!("{module}.rs"))]
    };
    let mut imports = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let production = text
            .find("#[cfg(test)]\nmod tests")
            .map_or(text.as_str(), |end| &text[..end]);
        imports.extend(crate_paths(production));
    }
    imports
}

fn rust_files(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
            files.push(path);
        }
    }
    files
}

/// The first segment after every `crate::` in `text`, including each name of a
/// `crate::{a, b::c}` group. Comments count too: a doc link upward is a dependency in spirit.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            names.extend(top_level_items(group).map(first_segment));
        } else {
            names.insert(first_segment(rest));
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

/// The items of a `{a, b::{c, d}, e}` group that starts `group` (after its `{`): `a`, `b::{c, d}`
/// and `e`, trimmed.
fn top_level_items(group: &str) -> impl Iterator<Item = &str> {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.into_iter().map(str::trim)
}

fn first_segment(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn paths_are_read_in_every_form() {
    let found =
        crate_paths("use crate::api::x; use crate::{store::{a, b}, time};\n/// [`crate::cli`]");
    let names: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(names, ["api", "cli", "store", "time"]);
}
