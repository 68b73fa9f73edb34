//! `--policies` files and folders kept in force while the webhook runs: loaded once at start
//! (all or nothing: a broken file there is a configuration error), then polled for changes.
//!
//! Polling (modification time and size, following symlinks) rather than inotify, because it
//! sees the atomic `..data` symlink swap of a mounted ConfigMap or Secret the same way as an
//! editor's save, with no watch descriptors to lose. Each file is its own source in the
//! [`Store`], so one broken file keeps its last good version while the others change freely.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::{Applied, SourceKey, Store, files};
use crate::metrics::Metrics;
use crate::policy::{CompiledPolicy, LoadError};

/// Records a (re)load of `key` in `store`, logging what happened and counting refusals. Every
/// policy file that reloads at run time goes through here (ConfigMaps: `configmaps::apply_configmap`).
pub fn apply(
    store: &Store,
    metrics: &Metrics,
    key: SourceKey,
    result: Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>>,
) -> Applied {
    let count = result.as_ref().map_or(0, Vec::len);
    let errors: Vec<String> = result.as_ref().err().into_iter().flatten().map(ToString::to_string).collect();
    let source = key.to_string();
    let applied = store.update(key, result);
    match &applied {
        Applied::Loaded { recovered } => {
            tracing::info!(source, policies = count, recovered, "policies loaded");
        }
        Applied::Rejected => {
            metrics.policy_load_failed();
            for error in errors {
                tracing::error!(source, error, "policy source refused; its previous policies stay in force");
            }
        }
    }
    applied
}

/// What a file looked like at the last poll. Metadata follows symlinks, so the atomic `..data`
/// swap of a mounted ConfigMap or Secret shows up as a new modification time.
pub(crate) type Stamp = Option<(SystemTime, u64)>;

pub(crate) fn stamp(path: &std::path::Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The `--policies` paths and what their files looked like at the last poll.
#[derive(Debug)]
pub struct PolicyFiles {
    paths: Vec<PathBuf>,
    seen: BTreeMap<PathBuf, Stamp>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
}

impl PolicyFiles {
    /// Loads every file under `paths` into `store`. Any error (a missing path, a file that does
    /// not load) is returned and nothing is stored: the server must not start half-configured.
    pub fn load(
        paths: Vec<PathBuf>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Vec<LoadError>> {
        let found = files::discover(&paths).map_err(|e| vec![*e])?;
        let mut loaded = Vec::with_capacity(found.len());
        let mut errors = Vec::new();
        for path in found {
            let before = stamp(&path);
            match files::load_file(&path) {
                Ok(policies) => loaded.push((path, before, policies)),
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut seen = BTreeMap::new();
        for (path, before, policies) in loaded {
            store.update(file_key(&path), Ok(policies));
            seen.insert(path, before);
        }
        Ok(Self { paths, seen, store, metrics })
    }

    /// Reloads changed files, loads new ones, drops deleted ones. Returns how many files
    /// changed.
    pub fn poll(&mut self) -> usize {
        let found = match files::discover(&self.paths) {
            Ok(found) => found,
            Err(e) => {
                // A folder that vanished for a moment (a remount) must not empty the set.
                tracing::warn!(error = %e, "cannot list policy files; keeping the policies in force");
                return 0;
            }
        };
        let mut changed = 0;
        let gone: Vec<PathBuf> = self.seen.keys().filter(|p| !found.contains(p)).cloned().collect();
        for path in gone {
            self.seen.remove(&path);
            self.store.remove(&file_key(&path));
            tracing::info!(source = %path.display(), "policy file removed; its policies left the set");
            changed += 1;
        }
        for path in found {
            let now = stamp(&path);
            if self.seen.get(&path) == Some(&now) {
                continue;
            }
            self.seen.insert(path.clone(), now);
            apply(&self.store, &self.metrics, file_key(&path), files::load_file(&path));
            changed += 1;
        }
        changed
    }
}

fn file_key(path: &std::path::Path) -> SourceKey {
    SourceKey::File { path: path.display().to_string() }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn policy(name: &str, check: &str) -> String {
        format!(
            "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {{name: {name}}}\n\
             spec: {{rules: [{{name: r, check: {check}}}]}}\n"
        )
    }

    fn names(store: &Store) -> Vec<String> {
        store.current().policies().iter().map(|p| p.name.to_string()).collect()
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn start_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.yaml"), &policy("a", "disallowLatestTag"));
        write(&dir.path().join("b.yaml"), &policy("b", "noSuchCheck"));
        let store = Arc::new(Store::new());
        let metrics = Arc::new(Metrics::new());
        let errors = PolicyFiles::load(vec![dir.path().into()], store.clone(), metrics.clone()).unwrap_err();
        assert!(errors[0].to_string().contains("b.yaml"), "{}", errors[0]);
        assert!(store.current().is_empty());
        let missing = PolicyFiles::load(vec![dir.path().join("nope")], store, metrics).unwrap_err();
        assert!(missing[0].to_string().contains("nope"), "{}", missing[0]);
    }

    #[test]
    fn poll_follows_changes_with_last_known_good() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        write(&a, &policy("a", "disallowLatestTag"));
        let store = Arc::new(Store::new());
        let metrics = Arc::new(Metrics::new());
        let mut files = PolicyFiles::load(vec![dir.path().into()], store.clone(), metrics.clone()).unwrap();
        assert_eq!(names(&store), ["a"]);
        assert_eq!(files.poll(), 0);

        // A new file in the folder is picked up.
        write(&dir.path().join("b.yaml"), &policy("b", "disallowLatestTag"));
        assert_eq!(files.poll(), 1);
        assert_eq!(names(&store), ["a", "b"]);

        // A broken edit keeps the previous version of that file and is counted.
        write(&a, &format!("{}# broken\n", policy("a2", "noSuchCheck")));
        assert_eq!(files.poll(), 1);
        assert_eq!(names(&store), ["a", "b"]);
        assert_eq!(store.errors().len(), 1);
        assert!(metrics.encode().contains("podguard_policy_load_errors_total 1"));

        // Fixing it replaces the old version; deleting a file removes its policies.
        write(&a, &policy("a3", "disallowLatestTag"));
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        assert_eq!(files.poll(), 2);
        assert_eq!(names(&store), ["a3"]);
        assert!(store.errors().is_empty());
    }
}
