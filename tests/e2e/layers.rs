//! The crate's modules depend one way: no top-level module of `src/` imports one that imports it
//! back, and the pure modules import no IO module. Read from the source text, test code left
//! out (`#[cfg(test)]` items and the files they name), comments too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that do no IO (lib.rs says so in its doc; this test holds them to it).
const PURE: &[&str] = &[
    "object",
    "subject",
    "context",
    "finding",
    "policy",
    "checks",
    "cel",
    "admission",
    "audit",
    "report",
    "compliance",
    "json",
    "yaml",
    "yaml11",
];
/// Modules that do IO.
const IO: &[&str] = &["input", "source", "server", "cli", "telemetry", "metrics", "memory"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of a file without comments and without `#[cfg(test)]` items; the names of the
/// modules it declares test-only (`#[cfg(test)] mod x;`).
fn code_of(text: &str) -> (String, Vec<String>) {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if text[i..].starts_with("//") {
            i = text[i..].find('\n').map_or(b.len(), |n| i + n);
        } else if text[i..].starts_with("/*") {
            i = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else if text[i..].starts_with('"') {
            // Skip string literals (they may hold "//" or "crate::").
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if text[i..].starts_with("#[cfg(test)]") {
            let rest = text[i + "#[cfg(test)]".len()..].trim_start();
            let start = text.len() - rest.len();
            let rest_code = rest.trim_start_matches(|c: char| c.is_whitespace());
            if let Some(m) =
                rest_code.strip_prefix("mod ").or_else(|| rest_code.strip_prefix("pub(crate) mod "))
            {
                let name: String = m.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if m[name.len()..].trim_start().starts_with(';') {
                    test_mods.push(name);
                }
            }
            i = skip_item(text, start);
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    (out, test_mods)
}

/// The end of the item starting at `start`: its `;` or its closing brace, whichever comes first
/// at depth 0 (attributes before it included).
fn skip_item(text: &str, start: usize) -> usize {
    let mut depth = 0usize;
    let mut in_attr = 0usize;
    for (k, c) in text[start..].char_indices() {
        match c {
            '[' if depth == 0 => in_attr += 1,
            ']' if depth == 0 && in_attr > 0 => in_attr -= 1,
            ';' if depth == 0 && in_attr == 0 => return start + k + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return start + k + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// Every `.rs` file of a top-level module (a file, or a folder), test-only files left out.
fn files(module: &Path) -> Vec<PathBuf> {
    if module.is_file() {
        return vec![module.to_owned()];
    }
    let mut out = Vec::new();
    let mut test_only = BTreeSet::new();
    let mut stack = vec![module.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    for f in &out {
        let (_, tests) = code_of(&std::fs::read_to_string(f).unwrap());
        let dir = if f.file_name().is_some_and(|n| n == "mod.rs") {
            f.parent().unwrap().to_owned()
        } else {
            f.with_extension("")
        };
        for t in tests {
            test_only.insert(dir.join(format!("{t}.rs")));
            test_only.insert(dir.join(&t));
        }
    }
    out.retain(|f| !test_only.iter().any(|t| f.starts_with(t)));
    out
}

/// Top-level module -> the top-level modules its non-test code names through `crate::`.
fn imports() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let root = src();
    let (lib, lib_tests) = code_of(&std::fs::read_to_string(root.join("lib.rs")).unwrap());
    let modules: Vec<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").and_then(|m| m.strip_suffix(';')))
        .map(str::to_owned)
        .filter(|m| !lib_tests.contains(m))
        .collect();
    assert!(modules.len() > 10, "lib.rs lists its modules as `pub mod x;`: {modules:?}");
    let mut out = BTreeMap::new();
    for m in &modules {
        let path = if root.join(m).is_dir() { root.join(m) } else { root.join(format!("{m}.rs")) };
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in files(&path) {
            let (code, _) = code_of(&std::fs::read_to_string(&f).unwrap());
            let name = f.strip_prefix(&root).unwrap().display().to_string();
            let mut named = |d: &str| {
                if d != m && modules.iter().any(|x| x == d) {
                    deps.entry(d.to_owned()).or_default().insert(name.clone());
                }
            };
            for (k, _) in code.match_indices("crate::") {
                let rest = &code[k + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    // `use crate::{a::X, b};`: every top-level name in the group.
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for part in group.split(',') {
                        let d: String =
                            part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        named(&d);
                    }
                } else {
                    let d: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    named(&d);
                }
            }
        }
        out.insert(m.clone(), deps);
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let deps = imports();
    let mut cycles = Vec::new();
    for (a, of_a) in &deps {
        for (b, files_a) in of_a {
            if a < b
                && let Some(files_b) = deps.get(b).and_then(|d| d.get(a))
            {
                cycles.push(format!("{a} <-> {b}: {a} in {files_a:?}, {b} in {files_b:?}"));
            }
        }
    }
    assert!(cycles.is_empty(), "modules that import each other:\n{}", cycles.join("\n"));
}

#[test]
fn pure_modules_import_no_io_module() {
    let deps = imports();
    let mut wrong = Vec::new();
    for (m, of_m) in &deps {
        if !PURE.contains(&m.as_str()) {
            continue;
        }
        for (d, files) in of_m {
            if IO.contains(&d.as_str()) {
                wrong.push(format!("{m} imports {d} in {files:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "pure modules importing IO:\n{}", wrong.join("\n"));
}

#[test]
fn every_module_is_named_pure_or_io() {
    for m in imports().keys() {
        assert!(
            PURE.contains(&m.as_str()) || IO.contains(&m.as_str()),
            "lib.rs module {m} is neither in PURE nor IO"
        );
    }
}

#[test]
fn the_scanner_sees_imports_and_skips_tests_comments_and_strings() {
    let text = "use crate::a::X;\n// crate::b\n/* crate::c */\nlet s = \"crate::d\";\nuse crate::{e::Y, f};\n\
                #[cfg(test)]\nmod tests {\n use crate::g;\n}\n#[cfg(test)]\nmod fixtures;\nfn h() { crate::i::j(); }\n";
    let (code, tests) = code_of(text);
    for seen in ["crate::a", "crate::{e::Y, f}", "crate::i"] {
        assert!(code.contains(seen), "{seen} missing from {code}");
    }
    for unseen in ["crate::b", "crate::c", "crate::d", "crate::g"] {
        assert!(!code.contains(unseen), "{unseen} in {code}");
    }
    assert_eq!(tests, ["fixtures"]);
}
