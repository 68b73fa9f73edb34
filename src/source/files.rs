//! Policy files and folders given with `--policies`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::manifests::load_file_text;
use crate::policy::{CompiledPolicy, LoadError, Origin};

/// Every policy file named by `paths`: files as given, folders searched recursively for `.yaml`
/// and `.yml`, sorted so load order (and so duplicate resolution) is stable.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Box<LoadError>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| io_error(p, &e))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Box<LoadError>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        // Mounted ConfigMaps hold `..data` and `..<timestamp>` folders beside the key symlinks;
        // walking them would load every file twice.
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

fn io_error(p: &Path, e: &std::io::Error) -> Box<LoadError> {
    Box::new(LoadError {
        origin: Origin::File { path: p.display().to_string() },
        document: None,
        line: None,
        policy: None,
        rule: None,
        field: None,
        reason: format!("cannot read: {e}"),
    })
}

/// Reads and loads one policy file.
pub fn load_file(path: &Path) -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![*io_error(path, &e)])?;
    load_file_text(&path.display().to_string(), &text)
}

/// Loads every file under `paths`, all or nothing (what `podguard check` and `policies lint`
/// want): any error in any file is returned, with every other error found.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    let files = discover(paths).map_err(|e| vec![*e])?;
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match load_file(f) {
            Ok(p) => policies.extend(p),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(policies) } else { Err(errors) }
}
