//! The built-in policy library: the repo's `policies/` folder, compiled into the binary.

use std::sync::Arc;

use include_dir::{Dir, include_dir};

use crate::policy::{CompiledPolicy, LoadError, Origin, load_str};

static LIBRARY: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/policies");

/// `(file name, YAML text)` of every library file, sorted by name.
pub fn files() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<_> = LIBRARY
        .files()
        .filter(|f| f.path().extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter_map(|f| Some((f.path().to_str()?, f.contents_utf8()?)))
        .collect();
    out.sort_unstable();
    out
}

/// Loads the built-in library.
pub fn load() -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files() {
        match load_str(&Origin::Builtin { file: file.to_owned() }, text) {
            Ok(p) => policies.extend(p),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(policies) } else { Err(errors) }
}
