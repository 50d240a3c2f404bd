//! The import rules of `docs/ARCHITECTURE.md`, checked on the sources: which module of the core
//! may use which, and that the sans-IO modules (`protocol`, `sim`, `history`) use no tokio, no
//! socket and no clock. Doc comments and `#[cfg(test)]` modules (inline, or a `tests.rs` of
//! their own) are not code and are left out.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module of the core and the modules of the crate it may import.
const ALLOWED: &[(&str, &[&str])] = &[
    ("ids", &[]),
    ("codec", &[]),
    ("history", &["ids"]),
    ("rng", &[]),
    ("state_machine", &["codec", "ids"]),
    ("transport", &["ids"]),
    ("postcode", &["codec"]),
    ("protocol", &["codec", "ids", "state_machine"]),
    (
        "storage",
        &["codec", "ids", "protocol", "rng", "state_machine"],
    ),
    (
        "sim",
        &[
            "codec",
            "history",
            "ids",
            "protocol",
            "rng",
            "state_machine",
            "storage",
        ],
    ),
    (
        "runtime",
        &[
            "codec",
            "history",
            "ids",
            "protocol",
            "state_machine",
            "storage",
            "transport",
        ],
    ),
];

/// What the sans-IO modules must never name.
const IO: &[&str] = &[
    "tokio",
    "std::net",
    "std::thread::sleep",
    "Instant::now",
    "SystemTime",
];

fn sources(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && !is_test_module(&path) {
            files.push(path);
        }
    }
    files
}

/// Whether `path` is a `tests.rs` declared by its parent file as `#[cfg(test)] mod tests;`
/// (a test module in a file of its own, as the `#[cfg(test)]` tails left out of [`code`]).
fn is_test_module(path: &Path) -> bool {
    let Some(dir) = path.parent().filter(|_| path.ends_with("tests.rs")) else {
        return false;
    };
    let parent = dir.with_extension("rs");
    fs::read_to_string(&parent)
        .or_else(|_| fs::read_to_string(dir.join("mod.rs")))
        .is_ok_and(|text| text.contains("#[cfg(test)]\nmod tests;"))
}

/// The code of a file: without its `#[cfg(test)]` tail and its comment lines.
fn code(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).expect("a readable source");
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with("//"))
        .map(str::to_owned)
        .collect()
}

/// The top-level modules of the crate that `line` names through `crate::`.
fn crate_modules(line: &str) -> BTreeSet<String> {
    line.match_indices("crate::")
        .map(|(i, m)| {
            line[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn each_module_imports_only_what_the_architecture_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (module, allowed) in ALLOWED {
        let dir = src.join(module);
        let path = if dir.is_dir() {
            dir
        } else {
            src.join(format!("{module}.rs"))
        };
        for file in sources(&path) {
            for (n, line) in code(&file).iter().enumerate() {
                for used in crate_modules(line) {
                    if used != *module && !allowed.contains(&used.as_str()) {
                        broken.push(format!(
                            "{}:{}: {module} uses crate::{used}",
                            file.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against docs/ARCHITECTURE.md:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_sans_io_modules_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for module in ["protocol", "sim", "history"] {
        for file in sources(&src.join(module)) {
            for (n, line) in code(&file).iter().enumerate() {
                for io in IO {
                    if line.contains(io) {
                        broken.push(format!("{}:{}: {io}", file.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "I/O in a sans-IO module:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_has_a_rule() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let declared: BTreeSet<String> = code(&src.join("lib.rs"))
        .iter()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect();
    let ruled: BTreeSet<String> = ALLOWED.iter().map(|(m, _)| (*m).to_owned()).collect();
    assert_eq!(declared, ruled, "lib.rs's modules and the rules differ");
}
