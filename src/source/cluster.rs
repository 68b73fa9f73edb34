//! What `podguard serve` reads from the cluster, started with one call: policy ConfigMaps (into the
//! [`Store`]) and the namespace cache, plus the readiness they share and the backoff and logging
//! of their watches.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::events::Reporter;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Store;
use super::configmaps::{DEFAULT_NAMESPACE, DEFAULT_SELECTOR, LoadErrorHook, run_configmaps};
use super::events::PolicyEvents;
use super::namespaces::{NamespaceCache, run_namespaces};

/// Where the policy ConfigMaps are (`--policy-namespace`, `--policy-selector`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigMapOptions {
    /// The policy namespace.
    pub namespace: String,
    /// Label selector of policy ConfigMaps, in `kubectl -l` syntax.
    pub selector: String,
}

impl Default for ConfigMapOptions {
    /// The namespace podguard runs in (`$POD_NAMESPACE`), else `podguard-system`; the selector
    /// `podguard.dev/policy=true`.
    fn default() -> Self {
        Self { namespace: default_policy_namespace(), selector: DEFAULT_SELECTOR.to_owned() }
    }
}

/// `$POD_NAMESPACE` (set from the downward API by the Helm chart), else `podguard-system`.
pub fn default_policy_namespace() -> String {
    std::env::var("POD_NAMESPACE").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_NAMESPACE.into())
}

/// Whether the first complete lists (policy ConfigMaps, Namespaces) are done; `/readyz` waits for
/// it. Cheap to clone and to check.
#[derive(Clone, Debug)]
pub struct Readiness {
    parts: Vec<watch::Receiver<bool>>,
}

impl Readiness {
    /// Ready once every part is: a new sender per part, and the readiness over them all.
    pub fn new(parts: usize) -> (Vec<watch::Sender<bool>>, Self) {
        let (senders, parts) = (0..parts).map(|_| watch::channel(false)).unzip();
        (senders, Self { parts })
    }

    /// Whether every first list has completed. Stays true through later outages: the data in
    /// force is still served.
    pub fn is_ready(&self) -> bool {
        self.parts.iter().all(|r| *r.borrow())
    }

    /// Waits until ready. False if a watch task ended before it got there.
    pub async fn wait(&self) -> bool {
        for part in &self.parts {
            if part.clone().wait_for(|ready| *ready).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// The running cluster watches. Dropping it stops them.
#[derive(Debug)]
pub struct ClusterSources {
    namespaces: NamespaceCache,
    readiness: Readiness,
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterSources {
    /// The namespace cache, for namespace labels per request.
    pub fn namespaces(&self) -> &NamespaceCache {
        &self.namespaces
    }

    /// Readiness of the first lists.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }
}

impl Drop for ClusterSources {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the namespace cache and, when `configmaps` is given, the policy ConfigMap watch feeding
/// `store` (each refused ConfigMap is told to `hook`, and recorded as an Event on it). Returns at
/// once; the watches run in background tasks until the result is dropped.
pub async fn start(
    client: kube::Client,
    configmaps: Option<ConfigMapOptions>,
    store: Arc<Store>,
    hook: Arc<dyn LoadErrorHook>,
) -> ClusterSources {
    let parts = if configmaps.is_some() { 2 } else { 1 };
    let (mut senders, readiness) = Readiness::new(parts);
    let mut tasks = Vec::new();
    let (namespaces, writer) = super::namespaces::cache(Some(client.clone()));
    if let Some(ns_ready) = senders.pop() {
        tasks.push(tokio::spawn(run_namespaces(client.clone(), writer, ns_ready)));
    }
    if let (Some(opts), Some(cm_ready)) = (configmaps, senders.pop()) {
        let (events, events_task) = PolicyEvents::spawn(client.clone(), reporter());
        tasks.push(events_task);
        tasks.push(tokio::spawn(run_configmaps(
            client,
            opts.namespace,
            opts.selector,
            store,
            events,
            hook,
            cm_ready,
        )));
    }
    ClusterSources { namespaces, readiness, tasks }
}

/// Events name podguard as the controller and the pod (`$POD_NAME`, else the host name) as the
/// instance, so with several replicas one can tell whose Event it is.
fn reporter() -> Reporter {
    let mut reporter = Reporter::from("podguard");
    if let Some(pod) = std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()) {
        reporter.instance = Some(pod);
    }
    reporter
}

/// Logs a watch error once, at a level that matches what it means.
pub(crate) fn log_watch_error(what: &str, e: &watcher::Error) {
    match e {
        watcher::Error::WatchError(status) if status.code == 410 => {
            tracing::info!(watch = what, "watch expired (410 Gone); listing again");
        }
        _ => tracing::warn!(
            watch = what,
            error = %e,
            cause = ?std::error::Error::source(e).map(ToString::to_string),
            "cannot reach the API server; serving what is in force and retrying with backoff"
        ),
    }
}

/// Retry delays for the watches: 200 ms doubling to [`BACKOFF_MAX`], plus up to a quarter of
/// jitter; back to 200 ms once the watch delivers again ([`Healthy::mark`]). The cap is low on
/// purpose: a change made just after the API server comes back must apply within about 2 s,
/// and the retry in progress at that moment is at most one cap long. Two watches per replica
/// retrying every second cost an API server that is down nothing it would notice. The watcher's
/// own `reset` is ignored: it reports a success before every list attempt, so a down API server
/// would never see the delay grow.
#[derive(Debug)]
pub(crate) struct ApiBackoff {
    next: Duration,
    healthy: Healthy,
    random: RandomState,
}

/// Tells an [`ApiBackoff`] that its watch delivered data: the next retry starts over.
#[derive(Clone, Debug, Default)]
pub(crate) struct Healthy(Arc<std::sync::atomic::AtomicBool>);

impl Healthy {
    /// The watch delivered an event.
    pub(crate) fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.0.swap(false, std::sync::atomic::Ordering::Relaxed)
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// The longest retry delay, before jitter.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Default for ApiBackoff {
    fn default() -> Self {
        Self { next: BACKOFF_MIN, healthy: Healthy::default(), random: RandomState::new() }
    }
}

impl ApiBackoff {
    /// The handle the watch loop marks on every event it receives.
    pub(crate) fn healthy(&self) -> Healthy {
        self.healthy.clone()
    }
}

impl Iterator for ApiBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.healthy.take() {
            self.next = BACKOFF_MIN;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let jitter = self.random.hash_one(Instant::now()) % (delay.as_millis() as u64 / 4 + 1);
        Some(delay + Duration::from_millis(jitter))
    }
}

impl Backoff for ApiBackoff {
    fn reset(&mut self) {
        // Deliberately ignored (see the type's doc); `Healthy` starts it over.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_under_two_seconds_and_ignores_the_watchers_resets() {
        let mut b = ApiBackoff::default();
        let first = b.next().unwrap();
        assert!(first >= BACKOFF_MIN && first <= BACKOFF_MIN * 5 / 4, "{first:?}");
        b.reset();
        let second = b.next().unwrap();
        assert!(second >= BACKOFF_MIN * 2, "{second:?}");
        let last = (0..20).map(|_| b.next().unwrap()).last().unwrap();
        assert!(last >= BACKOFF_MAX && last <= BACKOFF_MAX * 5 / 4, "{last:?}");
        assert!(last < Duration::from_secs(2));
    }

    #[test]
    fn backoff_starts_over_once_the_watch_delivers() {
        let mut b = ApiBackoff::default();
        let healthy = b.healthy();
        for _ in 0..5 {
            b.next();
        }
        healthy.mark();
        assert!(b.next().unwrap() <= BACKOFF_MIN * 5 / 4);
        assert!(b.next().unwrap() >= BACKOFF_MIN * 2, "one mark, one start-over");
    }

    #[tokio::test]
    async fn readiness_needs_every_part() {
        let (senders, ready) = Readiness::new(2);
        assert!(!ready.is_ready());
        senders[0].send_replace(true);
        assert!(!ready.is_ready());
        senders[1].send_replace(true);
        assert!(ready.is_ready());
        assert!(ready.wait().await);
    }

    #[tokio::test]
    async fn readiness_wait_ends_when_a_task_ends() {
        let (senders, ready) = Readiness::new(1);
        drop(senders);
        assert!(!ready.wait().await);
    }

    /// The watch path end to end, through kube-rs's client, watcher, reflector and event
    /// recorder, against the scripted API server.
    mod watch {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::ResourceExt;
        use serde_json::Value;

        use super::*;
        use crate::policy::LoadError;
        use crate::source::SourceKey;
        use crate::source::configmaps::tests::fixture;
        use crate::source::mock_api::MockApi;

        const NS: &str = "podguard-system";
        /// What the issue promises for a ConfigMap change.
        const RELOAD: Duration = Duration::from_secs(2);
        /// Generous bound for steps that involve backoff.
        const RECOVER: Duration = Duration::from_secs(5);

        async fn eventually<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
            let deadline = Instant::now() + within;
            loop {
                if let Some(v) = probe() {
                    return v;
                }
                assert!(Instant::now() < deadline, "{what}: not within {within:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }

        fn names(store: &Store) -> Vec<String> {
            let mut v: Vec<String> = store.current().policies().iter().map(|p| p.name.to_string()).collect();
            v.sort();
            v
        }

        const TEAM_A: [&str; 3] = ["allowed-registries", "no-default-namespace", "no-latest-tag"];

        struct Running {
            mock: MockApi,
            store: Arc<Store>,
            sources: ClusterSources,
            load_errors: Arc<AtomicUsize>,
        }

        /// A mock holding `configmaps`, and podguard's watches started against it and listed.
        async fn running(configmaps: &[ConfigMap]) -> Running {
            let mock = MockApi::start().await;
            mock.put_namespace(NS, &[]);
            mock.put_namespace("prod", &[("podguard.dev/mode", "warn")]);
            for cm in configmaps {
                mock.put_configmap(cm);
            }
            let store = Arc::new(Store::new());
            let load_errors = Arc::new(AtomicUsize::new(0));
            let counter = load_errors.clone();
            let hook = Arc::new(move |_: &SourceKey, _: &[LoadError]| {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            let opts = ConfigMapOptions { namespace: NS.into(), selector: "podguard.dev/policy=true".into() };
            let sources = start(mock.client(), Some(opts), store.clone(), hook).await;
            let ready = tokio::time::timeout(RELOAD, sources.readiness().wait()).await;
            assert_eq!(ready, Ok(true), "first lists not complete");
            Running { mock, store, sources, load_errors }
        }

        fn event<'a>(events: &'a [Value], reason: &str) -> Option<&'a Value> {
            events.iter().rev().find(|e| e["reason"] == reason)
        }

        #[tokio::test]
        async fn configmap_changes_reach_the_policy_set_with_events() {
            let mut unlabelled = fixture("team-b-duplicate.yaml");
            unlabelled.metadata.name = Some("not-a-policy".into());
            unlabelled.labels_mut().clear();
            let r = running(&[fixture("team-a.yaml"), unlabelled]).await;
            // Listed before ready; the unlabelled ConfigMap is not read.
            assert_eq!(names(&r.store), TEAM_A);
            assert!(
                r.mock
                    .requests()
                    .iter()
                    .any(|q| q.starts_with(&format!("GET /api/v1/namespaces/{NS}/configmaps?"))
                        && q.contains("labelSelector=podguard.dev/policy=true")),
                "{:?}",
                r.mock.requests()
            );

            // Add.
            r.mock.put_configmap(&fixture("team-b-duplicate.yaml"));
            eventually("team-b added", RELOAD, || {
                names(&r.store).contains(&"read-only-root".into()).then_some(())
            })
            .await;
            // Its duplicate of team-a's policy is ignored, and said so on team-b.
            let ignored = eventually("duplicate reported", RELOAD, || {
                event(&r.mock.events(), "PolicyInvalid").cloned()
            })
            .await;
            assert_eq!(ignored["regarding"]["name"], "team-b");
            assert!(
                ignored["note"].as_str().unwrap().contains("`no-default-namespace` is already defined"),
                "{ignored}"
            );
            r.mock.delete_configmap(NS, "team-b");
            eventually("team-b deleted", RELOAD, || (names(&r.store) == TEAM_A).then_some(())).await;

            // Modify to bad: refused, its policies leave (as in a replica started now), a Warning
            // Event names the place.
            r.mock.put_configmap(&fixture("team-a-bad-policy.yaml"));
            eventually("refusal", RELOAD, || (!r.store.errors().is_empty()).then_some(())).await;
            assert!(names(&r.store).is_empty());
            let warning = eventually("PolicyInvalid on team-a", RELOAD, || {
                event(&r.mock.events(), "PolicyInvalid")
                    .filter(|e| e["regarding"]["name"] == "team-a")
                    .cloned()
            })
            .await;
            assert_eq!(warning["type"], "Warning");
            assert_eq!(warning["regarding"]["kind"], "ConfigMap");
            assert_eq!(warning["regarding"]["namespace"], NS);
            assert_eq!(warning["reportingController"], "podguard");
            assert_eq!(warning["metadata"]["namespace"], NS);
            let note = warning["note"].as_str().unwrap();
            assert!(
                note.contains(
                    "namespaces.yaml:17: document[1]: policy probes, rule probes: spec.rules[0].check: unknown check `requireProbez`"
                ),
                "{note}"
            );
            assert_eq!(r.load_errors.load(Ordering::SeqCst), 1);

            // Fix: in force again, and a Normal Event says so.
            r.mock.put_configmap(&fixture("team-a.yaml"));
            let loaded =
                eventually("PolicyLoaded", RELOAD, || event(&r.mock.events(), "PolicyLoaded").cloned()).await;
            assert_eq!(loaded["type"], "Normal");
            assert_eq!(loaded["note"], "loaded 3 policies");
            assert!(r.store.errors().is_empty());

            // Delete.
            r.mock.delete_configmap(NS, "team-a");
            eventually("team-a deleted", RELOAD, || r.store.current().is_empty().then_some(())).await;
            assert_eq!(r.load_errors.load(Ordering::SeqCst), 1);
        }

        #[tokio::test]
        async fn relabelled_configmap_leaves_the_set() {
            let r = running(&[fixture("team-a.yaml")]).await;
            let mut cm = fixture("team-a.yaml");
            cm.labels_mut().insert("podguard.dev/policy".into(), "false".into());
            r.mock.put_configmap(&cm);
            eventually("team-a unselected", RELOAD, || r.store.current().is_empty().then_some(())).await;
        }

        #[tokio::test]
        async fn namespace_labels_follow_the_cluster() {
            let r = running(&[]).await;
            let cache = r.sources.namespaces();
            assert!(cache.ready());
            assert_eq!(cache.labels("prod").unwrap()["podguard.dev/mode"], "warn");
            r.mock.put_namespace("prod", &[("podguard.dev/mode", "audit")]);
            r.mock.put_namespace("new", &[("tier", "prod")]);
            eventually("labels updated", RELOAD, || {
                (cache.labels("prod")?["podguard.dev/mode"] == "audit" && cache.labels("new").is_some())
                    .then_some(())
            })
            .await;
            // Metadata is all the cache needs, and all it asks for.
            assert!(
                r.mock.requests().iter().any(|q| q.starts_with("GET /api/v1/namespaces?")
                    && q.contains("watch=")
                    && q.ends_with(" (metadata)")),
                "{:?}",
                r.mock.requests()
            );
        }

        #[tokio::test]
        async fn gone_relists_and_catches_up() {
            let r = running(&[fixture("team-a.yaml"), fixture("team-b-duplicate.yaml")]).await;
            let lists = |r: &Running| {
                r.mock
                    .requests()
                    .iter()
                    .filter(|q| q.contains("/configmaps?") && !q.contains("watch="))
                    .count()
            };
            assert_eq!(lists(&r), 1);
            let mut smaller = fixture("team-a.yaml");
            smaller.data.as_mut().unwrap().remove("images.yml");
            // Changes no watch sees, then 410 Gone: only the relist can tell.
            r.mock.expire(|quiet| {
                quiet.delete_configmap(NS, "team-b");
                quiet.put_configmap(&smaller);
            });
            eventually("relist caught up", RECOVER, || {
                (names(&r.store) == ["no-default-namespace"]).then_some(())
            })
            .await;
            assert_eq!(lists(&r), 2);
            // And the new watch works.
            r.mock.put_configmap(&fixture("team-a.yaml"));
            eventually("watch after relist", RELOAD, || (names(&r.store) == TEAM_A).then_some(())).await;
        }

        #[tokio::test]
        async fn outage_keeps_the_set_in_force_and_reconnects() {
            let r = running(&[fixture("team-a.yaml")]).await;
            r.mock.set_down(true);
            // The watch retries (and fails) meanwhile; nothing in force changes.
            eventually("retries while down", RECOVER, || {
                (r.mock
                    .requests()
                    .iter()
                    .filter(|q| q.contains("/configmaps?") && q.contains("watch="))
                    .count()
                    >= 2)
                    .then_some(())
            })
            .await;
            assert_eq!(names(&r.store), TEAM_A);
            assert!(r.sources.readiness().is_ready());
            assert!(r.sources.namespaces().labels("prod").is_some());
            // A change made while podguard could not see it arrives once the server is back.
            r.mock.delete_configmap(NS, "team-a");
            r.mock.set_down(false);
            eventually("caught up after the outage", RECOVER, || r.store.current().is_empty().then_some(()))
                .await;
        }
    }
}
