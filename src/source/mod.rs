//! Where policies come from (the built-in library, files, ConfigMaps) and the [`Store`] that
//! turns per-source results into the one [`PolicySet`] in force.
//!
//! Last-known-good lives here: a source whose new text fails to load keeps its previous
//! policies, and the error is kept for `/policies`, logs and metrics. Every change rebuilds the
//! whole set and swaps it atomically, so a request sees either the old set or the new one.

pub mod audit;
pub mod cluster;
pub mod collectors;
pub mod configmaps;
pub mod embedded;
pub mod events;
pub mod files;
pub mod inventory;
pub mod manifests;
pub mod namespaces;
pub mod reports;
pub mod watch;

#[cfg(test)]
mod mock_api;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::policy::{CompiledPolicy, LoadError, PolicySet};

/// Identifies one source; sources merge in this order, so on a duplicate policy name the
/// earlier source wins.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SourceKey {
    /// The built-in library.
    Builtin,
    /// A file given with `--policies` (directly or found in a folder).
    File {
        /// Path.
        path: String,
    },
    /// A policy ConfigMap.
    ConfigMap {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Builtin => f.write_str("builtin"),
            Self::File { path } => f.write_str(path),
            Self::ConfigMap { namespace, name } => write!(f, "configmap/{namespace}/{name}"),
        }
    }
}

#[derive(Debug, Default)]
struct SourceState {
    /// Policies of the last good load (empty if it never loaded).
    good: Vec<Arc<CompiledPolicy>>,
    /// Errors of the latest load, if it failed.
    errors: Vec<LoadError>,
}

/// What changed when a source was updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The new content is in force.
    Loaded {
        /// Whether the previous load of this source had failed (it is now fixed).
        recovered: bool,
    },
    /// The new content was refused: the previous good content stays ([`Store::update`]), or
    /// the source contributes nothing ([`Store::replace`]).
    Rejected,
}

/// The policies in force, built from all sources, swapped atomically on change.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<PolicySet>,
    sources: Mutex<BTreeMap<SourceKey, SourceState>>,
    /// Errors from merging (duplicate names across sources), recomputed on every rebuild.
    merge_errors: Mutex<Vec<LoadError>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store (an empty policy set is in force).
    pub fn new() -> Self {
        Self {
            current: ArcSwap::from_pointee(PolicySet::default()),
            sources: Mutex::new(BTreeMap::new()),
            merge_errors: Mutex::new(Vec::new()),
        }
    }

    /// The set in force. Cheap: one atomic load; hold it for the whole request.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Records the result of (re)loading `key`: on success its policies replace the previous
    /// ones; on failure the previous good policies stay and the errors are kept.
    pub fn update(
        &self,
        key: SourceKey,
        result: Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>>,
    ) -> Applied {
        self.record(key, result, true)
    }

    /// Records the result of (re)loading `key` as the only thing that counts: on success its
    /// policies replace the previous ones; on failure the source contributes nothing and the
    /// errors are kept. For sources that several replicas read: what is in force then depends
    /// only on what the source holds now, never on what one replica happened to see before.
    pub fn replace(
        &self,
        key: SourceKey,
        result: Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>>,
    ) -> Applied {
        self.record(key, result, false)
    }

    fn record(
        &self,
        key: SourceKey,
        result: Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>>,
        keep_last_good: bool,
    ) -> Applied {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let state = sources.entry(key).or_default();
        let applied = match result {
            Ok(policies) => {
                let recovered = !state.errors.is_empty();
                state.good = policies;
                state.errors.clear();
                Applied::Loaded { recovered }
            }
            Err(errors) => {
                if !keep_last_good {
                    state.good.clear();
                }
                state.errors = errors;
                Applied::Rejected
            }
        };
        self.rebuild(&sources);
        applied
    }

    /// How many sources are refused right now.
    pub fn refused(&self) -> usize {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.values().filter(|s| !s.errors.is_empty()).count()
    }

    /// Forgets a source (a deleted ConfigMap or file): its policies leave the set.
    pub fn remove(&self, key: &SourceKey) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.remove(key).is_some() {
            self.rebuild(&sources);
        }
    }

    /// Keys of the sources currently known.
    pub fn keys(&self) -> Vec<SourceKey> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    fn rebuild(&self, sources: &BTreeMap<SourceKey, SourceState>) {
        let (set, errors) = PolicySet::merge(sources.values().map(|s| s.good.clone()));
        *self.merge_errors.lock().unwrap_or_else(|p| p.into_inner()) = errors;
        self.current.store(Arc::new(set));
    }

    /// Every current load error: failed sources (a file's last good version stays in force, a
    /// refused ConfigMap's does not) and
    /// duplicate names.
    pub fn errors(&self) -> Vec<LoadError> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<LoadError> = sources.values().flat_map(|s| s.errors.iter().cloned()).collect();
        out.extend(self.merge_errors.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        out
    }

    /// Errors of one source's latest load (empty when it loaded).
    pub fn source_errors(&self, key: &SourceKey) -> Vec<LoadError> {
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        sources.get(key).map(|s| s.errors.clone()).unwrap_or_default()
    }
}
