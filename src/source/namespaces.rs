//! The namespace cache: every Namespace of the cluster, kept current by a kube-rs reflector, so
//! each admission request finds its namespace's labels (for the `podguard.dev/mode` label and for
//! `namespaceSelector`) without calling the API server.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use super::cluster::{ApiBackoff, log_watch_error};

/// Read side of the namespace cache. Cheap to clone; lookups take a read lock and clone an `Arc`.
#[derive(Clone, Debug)]
pub struct NamespaceCache {
    store: reflector::Store<Namespace>,
}

impl NamespaceCache {
    /// The Namespace named `name`, if the cache has it (it may lag the cluster by the watch
    /// delay; a namespace created a moment ago can be missing). Hold the `Arc` for the request
    /// and borrow its labels with [`labels`].
    pub fn get(&self, name: &str) -> Option<Arc<Namespace>> {
        self.store.get(&ObjectRef::new(name))
    }

    /// How many namespaces the cache holds.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the cache holds no namespace (before the first list, or in an empty test).
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// A cache holding exactly `namespaces`, never updated: for tests and runs without a cluster.
    pub fn fixed(namespaces: impl IntoIterator<Item = Namespace>) -> Self {
        let mut writer = reflector::store::Writer::<Namespace>::default();
        writer.apply_watcher_event(&watcher::Event::Init);
        for ns in namespaces {
            writer.apply_watcher_event(&watcher::Event::InitApply(ns));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        Self { store: writer.as_reader() }
    }
}

/// The labels of a cached Namespace, if it has any.
pub fn labels(ns: &Namespace) -> Option<&BTreeMap<String, String>> {
    ns.metadata.labels.as_ref()
}

/// A cache and the writer that [`run_namespaces`] fills.
pub fn cache() -> (NamespaceCache, reflector::store::Writer<Namespace>) {
    let writer = reflector::store::Writer::<Namespace>::default();
    (NamespaceCache { store: writer.as_reader() }, writer)
}

/// Keeps `writer` in step with the cluster's Namespaces, forever: list, then watch; relist on
/// `410 Gone`; back off and retry while the API server is away (the cache keeps its content
/// meanwhile). `ready` turns true after the first complete list.
pub async fn run_namespaces(
    client: kube::Client,
    writer: reflector::store::Writer<Namespace>,
    ready: watch::Sender<bool>,
) {
    let api: kube::Api<Namespace> = kube::Api::all(client);
    // Managed fields are most of a Namespace's size and nothing here reads them.
    let stream = watcher(api, watcher::Config::default())
        .modify(|ns| ns.managed_fields_mut().clear())
        .backoff(ApiBackoff::default())
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(watcher::Event::InitDone) => {
                if !ready.send_replace(true) {
                    tracing::info!("namespaces listed");
                }
            }
            Ok(_) => {}
            Err(e) => log_watch_error("Namespaces", &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn ns(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    #[test]
    fn fixed_cache_finds_labels_by_name() {
        let cache = NamespaceCache::fixed([ns("prod", &[("podguard.dev/mode", "warn")]), ns("dev", &[])]);
        let prod = cache.get("prod").unwrap();
        assert_eq!(labels(&prod).unwrap()["podguard.dev/mode"], "warn");
        assert!(labels(&cache.get("dev").unwrap()).unwrap().is_empty());
        assert!(cache.get("missing").is_none());
        assert_eq!(cache.len(), 2);
    }
}
