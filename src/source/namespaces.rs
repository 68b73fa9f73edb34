//! The namespace cache: the labels of every Namespace in the cluster, kept current by a watch, so
//! each admission request finds its namespace's labels (for the `podguard.dev/mode` label and for
//! `namespaceSelector`) without calling the API server.
//!
//! Requests need only labels, so the cache holds a shared label map per namespace name: a lookup
//! is a read lock, a hash probe and an `Arc` clone. The watch asks for metadata only
//! (`PartialObjectMetadata`), which is all it reads. Like a kube-rs reflector, a relist is built
//! aside and swapped in whole at its end, so a namespace deleted during an outage disappears and a
//! request never sees a half-built cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use super::cluster::{ApiBackoff, log_watch_error};

/// The labels of one namespace, shared by every request that reads them.
pub type Labels = Arc<BTreeMap<String, String>>;

type Map = HashMap<String, Labels>;

#[derive(Debug, Default)]
struct Inner {
    map: RwLock<Map>,
    ready: AtomicBool,
}

/// Read side of the namespace cache. Cheap to clone (one `Arc`).
#[derive(Clone, Debug, Default)]
pub struct NamespaceCache {
    inner: Arc<Inner>,
}

impl NamespaceCache {
    /// Labels of namespace `name`, or `None` if the cache does not know it (it may lag the
    /// cluster by the watch delay: a namespace created a moment ago can be missing).
    pub fn labels(&self, name: &str) -> Option<Labels> {
        self.inner.map.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Whether the first complete list of Namespaces is in. Stays true through later outages:
    /// the labels last seen are still served.
    pub fn ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// How many namespaces the cache holds.
    pub fn len(&self) -> usize {
        self.inner.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache holds no namespace.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A ready cache holding exactly these `(name, labels)`, never updated: for tests and for
    /// runs without a cluster.
    pub fn fixed<'a>(namespaces: impl IntoIterator<Item = (&'a str, &'a [(&'a str, &'a str)])>) -> Self {
        let map = namespaces
            .into_iter()
            .map(|(name, labels)| {
                let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
                (name.to_owned(), Arc::new(labels))
            })
            .collect();
        Self { inner: Arc::new(Inner { map: RwLock::new(map), ready: AtomicBool::new(true) }) }
    }
}

/// Write side: applies watcher events to a [`NamespaceCache`].
#[derive(Debug)]
pub struct NamespaceWriter {
    cache: NamespaceCache,
    /// The relist in progress, swapped in at its end.
    relist: Option<Map>,
}

/// A new, empty, not yet ready cache and its writer.
pub fn cache() -> (NamespaceCache, NamespaceWriter) {
    let cache = NamespaceCache::default();
    (cache.clone(), NamespaceWriter { cache, relist: None })
}

impl NamespaceWriter {
    /// Applies one watcher event. True when it completed a list.
    pub fn apply(&mut self, event: watcher::Event<PartialObjectMeta<Namespace>>) -> bool {
        let entry = |ns: PartialObjectMeta<Namespace>| {
            let name = ns.name_any();
            (name, ns.metadata.labels.unwrap_or_default())
        };
        match event {
            watcher::Event::Init => self.relist = Some(Map::new()),
            watcher::Event::InitApply(ns) => {
                let (name, labels) = entry(ns);
                let shared = self.shared(&name, labels);
                self.relist.get_or_insert_default().insert(name, shared);
            }
            watcher::Event::InitDone => {
                let map = self.relist.take().unwrap_or_default();
                *self.write() = map;
                self.cache.inner.ready.store(true, Ordering::Release);
                return true;
            }
            watcher::Event::Apply(ns) => {
                let (name, labels) = entry(ns);
                let shared = self.shared(&name, labels);
                self.write().insert(name, shared);
            }
            watcher::Event::Delete(ns) => {
                self.write().remove(&ns.name_any());
            }
        }
        false
    }

    /// `labels` as a shared map, reusing the one in force when nothing changed (most namespace
    /// updates touch annotations or status, not labels).
    fn shared(&self, name: &str, labels: BTreeMap<String, String>) -> Labels {
        match self.cache.labels(name) {
            Some(current) if *current == labels => current,
            _ => Arc::new(labels),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.cache.inner.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps the cache of `writer` in step with the cluster's Namespaces, forever: list, then watch;
/// relist on `410 Gone`; back off and retry while the API server is away (the cache keeps its
/// content meanwhile). `ready` turns true after the first complete list.
pub async fn run_namespaces(client: kube::Client, mut writer: NamespaceWriter, ready: watch::Sender<bool>) {
    // `PartialObjectMeta` makes every request metadata-only.
    let api: kube::Api<PartialObjectMeta<Namespace>> = kube::Api::all(client);
    let stream = watcher(api, watcher::Config::default()).backoff(ApiBackoff::default());
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if writer.apply(event) && !ready.send_replace(true) {
                    tracing::info!(namespaces = writer.cache.len(), "namespaces listed");
                }
            }
            Err(e) => log_watch_error("Namespaces", &e),
        }
    }
}

impl crate::server::NamespaceLabels for NamespaceCache {
    fn labels(&self, namespace: &str) -> Option<Labels> {
        NamespaceCache::labels(self, namespace)
    }

    fn ready(&self) -> bool {
        NamespaceCache::ready(self)
    }
}

#[cfg(test)]
mod tests {
    use kube::core::ObjectMeta;

    use super::*;

    fn ns(name: &str, labels: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    #[test]
    fn fixed_cache_finds_labels_by_name() {
        let cache = NamespaceCache::fixed([("prod", &[("podguard.dev/mode", "warn")][..]), ("dev", &[])]);
        assert_eq!(cache.labels("prod").unwrap()["podguard.dev/mode"], "warn");
        assert!(cache.labels("dev").unwrap().is_empty());
        assert!(cache.labels("missing").is_none());
        assert!(cache.ready());
    }

    #[test]
    fn relist_is_swapped_in_whole_at_its_end() {
        let (cache, mut w) = cache();
        w.apply(watcher::Event::Init);
        w.apply(watcher::Event::InitApply(ns("a", &[("x", "1")])));
        // Not visible, nor ready, before the list completes.
        assert!(cache.labels("a").is_none());
        assert!(!cache.ready());
        assert!(w.apply(watcher::Event::InitDone));
        assert!(cache.ready());
        assert_eq!(cache.labels("a").unwrap()["x"], "1");

        // A relist that no longer holds `a` drops it; the old content serves until the end.
        w.apply(watcher::Event::Init);
        w.apply(watcher::Event::InitApply(ns("b", &[])));
        assert!(cache.labels("a").is_some());
        w.apply(watcher::Event::InitDone);
        assert!(cache.labels("a").is_none());
        assert!(cache.labels("b").is_some());
    }

    #[test]
    fn watch_events_update_and_delete() {
        let (cache, mut w) = cache();
        w.apply(watcher::Event::Init);
        w.apply(watcher::Event::InitDone);
        w.apply(watcher::Event::Apply(ns("a", &[("podguard.dev/mode", "warn")])));
        let before = cache.labels("a").unwrap();
        // Same labels: the shared map is kept, not rebuilt.
        w.apply(watcher::Event::Apply(ns("a", &[("podguard.dev/mode", "warn")])));
        assert!(Arc::ptr_eq(&before, &cache.labels("a").unwrap()));
        w.apply(watcher::Event::Apply(ns("a", &[("podguard.dev/mode", "audit")])));
        assert_eq!(cache.labels("a").unwrap()["podguard.dev/mode"], "audit");
        assert_eq!(before["podguard.dev/mode"], "warn", "a reader's map never changes under it");
        w.apply(watcher::Event::Delete(ns("a", &[])));
        assert!(cache.is_empty());
    }
}
