//! The namespace cache: the labels of every Namespace in the cluster, kept current by a watch, so
//! each admission request finds its namespace's labels (for the `podguard.dev/mode` label and for
//! `namespaceSelector`) without calling the API server.
//!
//! Requests need only labels, so the cache holds a shared label map per namespace name: a lookup
//! is a read lock, a hash probe and an `Arc` clone. The watch asks for metadata only
//! (`PartialObjectMetadata`), which is all it reads. Like a kube-rs reflector, a relist is built
//! aside and swapped in whole at its end, so a namespace deleted during an outage disappears and a
//! request never sees a half-built cache.
//!
//! A namespace the watch has not delivered yet (created a moment before its first pod) is read
//! live on the request's path, as upstream Pod Security Admission does: one metadata GET, at most
//! [`FETCH_CONCURRENCY`] at a time and [`FETCH_TIMEOUT`] long including the wait for a turn, and
//! the result is cached until the watch brings the namespace itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Semaphore, watch};

use futures::future::BoxFuture;

use super::cluster::{ApiBackoff, log_watch_error};

/// The labels of one namespace, shared by every request that reads them.
pub type Labels = Arc<BTreeMap<String, String>>;

/// Labels of namespaces, for `podguard.dev/mode` and policies' `namespaceSelector`.
///
/// [`NamespaceLabels::labels`] is called once per admission request, on the request's task: it
/// must answer from memory (a map lookup and an `Arc` clone), never block or reach the API
/// server. The namespace cache fills its map from a watch and hands out shared label maps. Only
/// when it misses (a namespace created a moment ago, not yet seen by the watch) does the
/// request wait for [`NamespaceLabels::fetch`].
pub trait NamespaceLabels: Send + Sync + std::fmt::Debug {
    /// Labels of `namespace`, or `None` when the namespace is unknown.
    fn labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>>;

    /// After a miss of [`NamespaceLabels::labels`]: a bounded live read of the namespace, or
    /// `None` when there is nowhere to read it from (no cluster).
    fn fetch(&self, _namespace: &str) -> Option<BoxFuture<'static, Fetched>> {
        None
    }

    /// Whether the source has its first full view (gates `/readyz`).
    fn ready(&self) -> bool {
        true
    }
}

/// What a live read of a namespace found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The namespace exists; its labels (now cached).
    Labels(Arc<BTreeMap<String, String>>),
    /// The API server says there is no such namespace.
    Missing,
    /// No answer: the reason, for the log and the refusal.
    Failed(String),
}

impl Fetched {
    /// The `result` label of `podguard_namespace_fetches`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Labels(_) => "found",
            Self::Missing => "missing",
            Self::Failed(_) => "failed",
        }
    }
}

/// No namespace labels: running without a cluster, or before the namespace cache exists.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNamespaceLabels;

impl NamespaceLabels for NoNamespaceLabels {
    fn labels(&self, _namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
        None
    }
}

type Map = HashMap<String, Labels>;

/// How long a request waits for a live namespace read, its turn included. Well under the
/// webhook's timeout (5 s in the chart), so that the answer still reaches the API server.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Live namespace reads in flight at once; more requests that miss wait for a turn. A burst of
/// pods into one new namespace costs a few GETs, not one per pod: a request that gets its turn
/// first looks in the cache again.
pub const FETCH_CONCURRENCY: usize = 4;

#[derive(Debug, Default)]
struct Inner {
    map: RwLock<Map>,
    ready: AtomicBool,
    fetcher: Option<Fetcher>,
    /// Bumped whenever a namespace's labels change, appear or go: the audit judges again.
    generation: AtomicU64,
}

#[derive(Debug)]
struct Fetcher {
    api: kube::Api<Namespace>,
    turns: Semaphore,
    timeout: Duration,
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

    /// A number that changes whenever some namespace's labels change, appear or go.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// How many namespaces the cache holds.
    pub fn len(&self) -> usize {
        self.inner.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache holds no namespace.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads namespace `name` from the API server after a cache miss (see the module doc): its
    /// labels, cached unless the watch has brought them meanwhile.
    pub async fn fetch(&self, name: &str) -> Fetched {
        let Some(f) = &self.inner.fetcher else {
            return Fetched::Missing;
        };
        let read = async {
            let _turn = f.turns.acquire().await;
            if let Some(labels) = self.labels(name) {
                return Ok(Some(labels));
            }
            let found = f.api.get_metadata_opt(name).await?;
            Ok::<_, kube::Error>(found.map(|ns| {
                let labels = Arc::new(ns.metadata.labels.unwrap_or_default());
                let mut map = self.inner.map.write().unwrap_or_else(|p| p.into_inner());
                // The watch is never older than this read once it has the namespace: keep its.
                map.entry(name.to_owned()).or_insert(labels).clone()
            }))
        };
        match tokio::time::timeout(f.timeout, read).await {
            Ok(Ok(Some(labels))) => Fetched::Labels(labels),
            Ok(Ok(None)) => Fetched::Missing,
            Ok(Err(e)) => Fetched::Failed(format!("reading namespace {name:?} failed: {e}")),
            Err(_) => Fetched::Failed(format!(
                "reading namespace {name:?} took longer than {} ms",
                f.timeout.as_millis()
            )),
        }
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
        Self {
            inner: Arc::new(Inner {
                map: RwLock::new(map),
                ready: AtomicBool::new(true),
                ..Inner::default()
            }),
        }
    }
}

/// Write side: applies watcher events to a [`NamespaceCache`].
#[derive(Debug)]
pub struct NamespaceWriter {
    cache: NamespaceCache,
    /// The relist in progress, swapped in at its end.
    relist: Option<Map>,
}

/// A new, empty, not yet ready cache and its writer; with a client, misses are read live
/// through it (see [`NamespaceCache::fetch`]).
pub fn cache(client: Option<kube::Client>) -> (NamespaceCache, NamespaceWriter) {
    cache_with_timeout(client, FETCH_TIMEOUT)
}

fn cache_with_timeout(client: Option<kube::Client>, timeout: Duration) -> (NamespaceCache, NamespaceWriter) {
    let fetcher =
        client.map(|c| Fetcher { api: kube::Api::all(c), turns: Semaphore::new(FETCH_CONCURRENCY), timeout });
    let cache = NamespaceCache { inner: Arc::new(Inner { fetcher, ..Inner::default() }) };
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
                self.changed();
                self.cache.inner.ready.store(true, Ordering::Release);
                return true;
            }
            watcher::Event::Apply(ns) => {
                let (name, labels) = entry(ns);
                let before = self.cache.labels(&name);
                let shared = self.shared(&name, labels);
                if before.is_none_or(|b| !Arc::ptr_eq(&b, &shared)) {
                    self.changed();
                }
                self.write().insert(name, shared);
            }
            watcher::Event::Delete(ns) => {
                self.write().remove(&ns.name_any());
                self.changed();
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

    fn changed(&self) {
        self.cache.inner.generation.fetch_add(1, Ordering::AcqRel);
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
    let backoff = ApiBackoff::default();
    let healthy = backoff.healthy();
    let stream = watcher(api, watcher::Config::default()).backoff(backoff);
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                healthy.mark();
                if writer.apply(event) && !ready.send_replace(true) {
                    tracing::info!(namespaces = writer.cache.len(), "namespaces listed");
                }
            }
            Err(e) => log_watch_error("Namespaces", &e),
        }
    }
}

impl NamespaceLabels for NamespaceCache {
    fn labels(&self, namespace: &str) -> Option<Labels> {
        NamespaceCache::labels(self, namespace)
    }

    fn ready(&self) -> bool {
        NamespaceCache::ready(self)
    }

    fn fetch(&self, namespace: &str) -> Option<futures::future::BoxFuture<'static, Fetched>> {
        self.inner.fetcher.as_ref()?;
        let (cache, name) = (self.clone(), namespace.to_owned());
        Some(Box::pin(async move { cache.fetch(&name).await }))
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
    fn the_generation_moves_when_labels_change_and_only_then() {
        let (cache, mut writer) = cache(None);
        let g0 = cache.generation();
        writer.apply(watcher::Event::Init);
        writer.apply(watcher::Event::InitApply(ns("prod", &[("podguard.dev/mode", "warn")])));
        writer.apply(watcher::Event::InitDone);
        let g1 = cache.generation();
        assert!(g1 > g0, "a list swapped in");
        writer.apply(watcher::Event::Apply(ns("prod", &[("podguard.dev/mode", "warn")])));
        assert_eq!(cache.generation(), g1, "same labels: the audit has nothing to judge again");
        writer.apply(watcher::Event::Apply(ns("prod", &[("podguard.dev/mode", "enforce")])));
        let g2 = cache.generation();
        assert!(g2 > g1);
        writer.apply(watcher::Event::Delete(ns("prod", &[])));
        assert!(cache.generation() > g2);
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
        let (cache, mut w) = cache(None);
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
        let (cache, mut w) = cache(None);
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

    /// A cache whose watch runs against `mock` and has listed it.
    async fn watched(mock: &crate::source::mock_api::MockApi, timeout: Duration) -> NamespaceCache {
        let (cache, writer) = cache_with_timeout(Some(mock.client()), timeout);
        let (ready_tx, mut ready_rx) = watch::channel(false);
        tokio::spawn(run_namespaces(mock.client(), writer, ready_tx));
        tokio::time::timeout(Duration::from_secs(5), ready_rx.wait_for(|r| *r)).await.unwrap().unwrap();
        cache
    }

    fn gets(mock: &crate::source::mock_api::MockApi, name: &str) -> usize {
        let get = format!("GET /api/v1/namespaces/{name} (metadata)");
        mock.requests().iter().filter(|r| **r == get).count()
    }

    #[tokio::test]
    async fn a_namespace_the_watch_has_not_shown_is_read_live_once_and_cached() {
        let mock = crate::source::mock_api::MockApi::start().await;
        let cache = watched(&mock, FETCH_TIMEOUT).await;
        mock.put_namespace_unseen("brand-new", &[("podguard.dev/mode", "audit")]);
        assert!(cache.labels("brand-new").is_none());
        let fetched = cache.fetch("brand-new").await;
        let Fetched::Labels(labels) = fetched else { panic!("{fetched:?}") };
        assert_eq!(labels["podguard.dev/mode"], "audit");
        assert_eq!(cache.labels("brand-new").unwrap()["podguard.dev/mode"], "audit");
        assert_eq!(gets(&mock, "brand-new"), 1, "metadata only, once");
        // A lookup that finds it cached asks nothing.
        assert!(matches!(cache.fetch("brand-new").await, Fetched::Labels(_)));
        assert_eq!(gets(&mock, "brand-new"), 1);
    }

    #[tokio::test]
    async fn a_namespace_that_does_not_exist_is_missing_and_not_cached() {
        let mock = crate::source::mock_api::MockApi::start().await;
        let cache = watched(&mock, FETCH_TIMEOUT).await;
        assert_eq!(cache.fetch("nowhere").await, Fetched::Missing);
        assert!(cache.labels("nowhere").is_none());
    }

    #[tokio::test]
    async fn a_slow_or_failing_api_server_is_a_failure_within_the_timeout() {
        let mock = crate::source::mock_api::MockApi::start().await;
        let cache = watched(&mock, Duration::from_millis(200)).await;
        mock.put_namespace_unseen("slow", &[]);
        mock.delay_namespace_gets(Duration::from_secs(5));
        let started = std::time::Instant::now();
        let fetched = cache.fetch("slow").await;
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(fetched, Fetched::Failed("reading namespace \"slow\" took longer than 200 ms".into()));
        assert!(cache.labels("slow").is_none());

        mock.delay_namespace_gets(Duration::ZERO);
        mock.set_down(true);
        // kube's client retries a 503 with backoff, so this may end either way, but it ends.
        let started = std::time::Instant::now();
        let Fetched::Failed(why) = cache.fetch("slow").await else { panic!("not a failure") };
        assert!(why.starts_with("reading namespace \"slow\" "), "{why}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn concurrent_misses_share_a_few_reads() {
        let mock = crate::source::mock_api::MockApi::start().await;
        let cache = watched(&mock, FETCH_TIMEOUT).await;
        mock.put_namespace_unseen("burst", &[]);
        mock.delay_namespace_gets(Duration::from_millis(100));
        let all = (0..40).map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { c.fetch("burst").await })
        });
        for r in futures::future::join_all(all).await {
            assert!(matches!(r.unwrap(), Fetched::Labels(_)));
        }
        // The first turns read; every later one finds the cache filled.
        assert!(gets(&mock, "burst") <= FETCH_CONCURRENCY, "{}", gets(&mock, "burst"));
    }

    #[tokio::test]
    async fn the_watch_wins_over_a_live_read() {
        let mock = crate::source::mock_api::MockApi::start().await;
        let cache = watched(&mock, FETCH_TIMEOUT).await;
        mock.put_namespace_unseen("team", &[("podguard.dev/mode", "audit")]);
        assert!(matches!(cache.fetch("team").await, Fetched::Labels(_)));
        // The namespace's label changes; the watch brings the new state and it replaces the read.
        mock.put_namespace("team", &[("podguard.dev/mode", "enforce")]);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cache.labels("team").unwrap()["podguard.dev/mode"] != "enforce" {
            assert!(std::time::Instant::now() < deadline, "watch event not applied");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn without_a_client_nothing_is_fetched() {
        let cache = NamespaceCache::fixed([]);
        assert!(NamespaceLabels::fetch(&cache, "x").is_none());
        assert_eq!(cache.fetch("x").await, Fetched::Missing);
    }
}
