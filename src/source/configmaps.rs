//! Policy ConfigMaps: each one is a source of the [`Store`], loaded whole or refused whole.
//!
//! The pure part ([`apply_configmap`], [`delete_configmap`], [`ConfigMapTracker`]) turns watch
//! events into store updates and says what happened; [`run_configmaps`] drives it from a kube-rs
//! watcher and turns the outcomes into logs, Kubernetes Events and the load-error metric.
//!
//! Every data key ending in `.yaml` or `.yml` is a policy file; the keys of one ConfigMap load
//! together, so one broken key refuses the whole ConfigMap. A refused ConfigMap contributes no
//! policy, whatever an earlier version held: every replica reads the same ConfigMap, and what it
//! enforces must depend only on what is stored now, not on when the replica started (a last good
//! version kept in memory would differ between a replica that saw it and one started after the
//! break). The webhook refuses a policy ConfigMap that does not load (`admission::policies`), so
//! a broken one is stored only while podguard was not asked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::runtime::watcher;
use tokio::sync::watch;

use super::cluster::{ApiBackoff, log_watch_error};
use super::events::PolicyEvents;
use super::{Applied, SourceKey, Store};
pub use crate::policy::configmap::{is_policy_key, load_configmap, load_configmap_as, policy_files};
use crate::policy::{LoadError, Origin};

/// The label that marks a ConfigMap as holding policies.
pub const POLICY_LABEL: &str = "podguard.dev/policy";

/// The default `--policy-selector`.
pub const DEFAULT_SELECTOR: &str = "podguard.dev/policy=true";

/// The policy namespace when `$POD_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "podguard-system";

/// Told about every refused policy load, so the server can count
/// `podguard_policy_load_errors_total`. Called once per refused ConfigMap version, with all of
/// its errors.
pub trait LoadErrorHook: Send + Sync {
    /// `source` was refused for `errors`; it contributes no policy until fixed.
    fn load_failed(&self, source: &SourceKey, errors: &[LoadError]);
}

impl<F> LoadErrorHook for F
where
    F: Fn(&SourceKey, &[LoadError]) + Send + Sync,
{
    fn load_failed(&self, source: &SourceKey, errors: &[LoadError]) {
        self(source, errors)
    }
}

/// What applying one ConfigMap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigMapOutcome {
    /// Its policies are in force.
    Loaded {
        /// How many policies it holds.
        policies: usize,
        /// Whether its previous version had been refused (it is now fixed).
        recovered: bool,
        /// Its policies whose names an earlier source already defines: ignored, the earlier kept.
        duplicates: Vec<LoadError>,
    },
    /// It was refused; it contributes no policy until fixed.
    Rejected {
        /// Every error found, each with its key, document, line and field.
        errors: Vec<LoadError>,
    },
}

/// The [`SourceKey`] of a ConfigMap.
pub fn source_key(namespace: &str, name: &str) -> SourceKey {
    SourceKey::ConfigMap { namespace: namespace.to_owned(), name: name.to_owned() }
}

/// Loads `cm` into `store` as the source `configmap/<namespace>/<name>`. On any error the whole
/// ConfigMap is refused and contributes no policy (see the module doc).
pub fn apply_configmap(store: &Store, cm: &ConfigMap) -> ConfigMapOutcome {
    let namespace = cm.namespace().unwrap_or_default();
    let name = cm.name_any();
    let result = load_configmap(cm);
    let policies = result.as_ref().map_or(0, Vec::len);
    let key = source_key(&namespace, &name);
    match store.replace(key.clone(), result) {
        Applied::Loaded { recovered } => {
            let duplicates = store
                .errors()
                .into_iter()
                .filter(|e| {
                    matches!(&e.origin, Origin::ConfigMap { namespace: n, name: m, .. }
                        if *n == namespace && *m == name)
                })
                .collect();
            ConfigMapOutcome::Loaded { policies, recovered, duplicates }
        }
        Applied::Rejected => ConfigMapOutcome::Rejected { errors: store.source_errors(&key) },
    }
}

/// Removes a deleted ConfigMap's policies from `store`.
pub fn delete_configmap(store: &Store, namespace: &str, name: &str) {
    store.remove(&source_key(namespace, name));
}

/// What the watcher should report after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A ConfigMap was applied.
    Applied {
        /// The ConfigMap as received (for its Event).
        configmap: Box<ConfigMap>,
        /// What applying it did.
        outcome: ConfigMapOutcome,
        /// Whether its previous version had a warning (refused, or duplicate names), so a clean
        /// load now deserves a `PolicyLoaded` Event.
        was_warned: bool,
    },
    /// A ConfigMap left (deleted, unlabelled, or missing from a relist).
    Removed {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A complete list finished.
    Listed {
        /// How many policy ConfigMaps it held.
        count: usize,
    },
}

/// What the tracker remembers of one ConfigMap.
#[derive(Debug)]
struct Known {
    /// The policy files of the version last applied, to skip versions that change nothing
    /// (a relist re-delivers every object; label or annotation edits do not touch policies).
    files: BTreeMap<String, String>,
    /// Whether that version got a warning.
    warned: bool,
}

/// Feeds watcher events to a [`Store`], remembering enough to skip versions that change no
/// policy file and to drop ConfigMaps that vanished while the watch was down (a relist after
/// `410 Gone` does not say what was deleted: whatever it does not list is gone).
#[derive(Debug, Default)]
pub struct ConfigMapTracker {
    known: BTreeMap<(String, String), Known>,
    /// Keys seen since the relist in progress began.
    relisting: Option<BTreeSet<(String, String)>>,
}

impl ConfigMapTracker {
    /// Applies one watcher event to `store` and says what changed (nothing for markers and for
    /// versions whose policy files are unchanged).
    pub fn handle(&mut self, store: &Store, event: watcher::Event<ConfigMap>) -> Vec<Change> {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(BTreeSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(cm) => {
                if let Some(seen) = &mut self.relisting {
                    seen.insert(id(&cm));
                }
                self.apply(store, cm).into_iter().collect()
            }
            watcher::Event::Apply(cm) => self.apply(store, cm).into_iter().collect(),
            watcher::Event::Delete(cm) => {
                let (namespace, name) = id(&cm);
                self.remove(store, namespace, name).into_iter().collect()
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.take().unwrap_or_default();
                let gone: Vec<_> = self.known.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                let mut out: Vec<Change> =
                    gone.into_iter().filter_map(|(ns, name)| self.remove(store, ns, name)).collect();
                out.push(Change::Listed { count: seen.len() });
                out
            }
        }
    }

    fn apply(&mut self, store: &Store, cm: ConfigMap) -> Option<Change> {
        let files: BTreeMap<String, String> =
            policy_files(&cm).map(|(k, v)| (k.clone(), v.clone())).collect();
        let key = id(&cm);
        if self.known.get(&key).is_some_and(|k| k.files == files) {
            return None;
        }
        let outcome = apply_configmap(store, &cm);
        let warned = match &outcome {
            ConfigMapOutcome::Loaded { duplicates, .. } => !duplicates.is_empty(),
            ConfigMapOutcome::Rejected { .. } => true,
        };
        let was_warned = self.known.insert(key, Known { files, warned }).is_some_and(|k| k.warned);
        Some(Change::Applied { configmap: Box::new(cm), outcome, was_warned })
    }

    fn remove(&mut self, store: &Store, namespace: String, name: String) -> Option<Change> {
        let key = (namespace, name);
        self.known.remove(&key)?;
        delete_configmap(store, &key.0, &key.1);
        Some(Change::Removed { namespace: key.0, name: key.1 })
    }
}

fn id(cm: &ConfigMap) -> (String, String) {
    (cm.namespace().unwrap_or_default(), cm.name_any())
}

/// Watches the policy ConfigMaps of `namespace` matching `selector` and keeps `store` in step,
/// forever: list, then watch; relist on `410 Gone`; back off and retry while the API server is
/// away, serving the set in force meanwhile. `ready` turns true after the first complete list.
pub async fn run_configmaps(
    client: kube::Client,
    namespace: String,
    selector: String,
    store: Arc<Store>,
    events: PolicyEvents,
    hook: Arc<dyn LoadErrorHook>,
    ready: watch::Sender<bool>,
) {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&selector);
    let backoff = ApiBackoff::default();
    let healthy = backoff.healthy();
    let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::backoff(watcher(api, config), backoff));
    let mut tracker = ConfigMapTracker::default();
    tracing::info!(%namespace, %selector, "watching policy ConfigMaps");
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => {
                healthy.mark();
                event
            }
            Err(e) => {
                log_watch_error("ConfigMaps", &e);
                continue;
            }
        };
        for change in tracker.handle(&store, event) {
            report(change, &events, hook.as_ref(), &ready);
        }
    }
}

fn report(change: Change, events: &PolicyEvents, hook: &dyn LoadErrorHook, ready: &watch::Sender<bool>) {
    match change {
        Change::Applied { configmap, outcome, was_warned } => {
            let cm = configmap.as_ref();
            let (namespace, name) = id(cm);
            let source = source_key(&namespace, &name);
            match outcome {
                ConfigMapOutcome::Loaded { policies, recovered, duplicates } => {
                    tracing::info!(configmap = %source, policies, recovered, "policy ConfigMap loaded");
                    if duplicates.is_empty() {
                        if was_warned || recovered {
                            events.loaded(cm, policies);
                        }
                    } else {
                        for e in &duplicates {
                            tracing::warn!(configmap = %source, error = %e, "policy ignored");
                        }
                        events.ignored(cm, &duplicates);
                    }
                }
                ConfigMapOutcome::Rejected { errors } => {
                    for e in &errors {
                        tracing::warn!(
                            configmap = %source,
                            error = %e,
                            "policy ConfigMap refused; it contributes no policy until fixed"
                        );
                    }
                    hook.load_failed(&source, &errors);
                    events.invalid(cm, &errors);
                }
            }
        }
        Change::Removed { namespace, name } => {
            tracing::info!(configmap = %source_key(&namespace, &name), "policy ConfigMap removed");
        }
        Change::Listed { count } => {
            if !*ready.borrow() {
                tracing::info!(configmaps = count, "policy ConfigMaps listed");
            }
            ready.send_replace(true);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;

    /// A ConfigMap from `tests/fixtures/configmaps/`.
    pub(crate) fn fixture(name: &str) -> ConfigMap {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/configmaps").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        serde_yaml_ng::from_str(&text).unwrap()
    }

    fn names(store: &Store) -> Vec<String> {
        let mut v: Vec<String> = store.current().policies().iter().map(|p| p.name.to_string()).collect();
        v.sort();
        v
    }

    const TEAM_A: [&str; 3] = ["allowed-registries", "no-default-namespace", "no-latest-tag"];

    #[test]
    fn add_loads_every_yaml_key_and_ignores_others() {
        let store = Store::new();
        let outcome = apply_configmap(&store, &fixture("team-a.yaml"));
        // README.md is not valid YAML; it is not read.
        assert_eq!(outcome, ConfigMapOutcome::Loaded { policies: 3, recovered: false, duplicates: vec![] });
        assert_eq!(names(&store), TEAM_A);
        assert!(store.errors().is_empty());
    }

    #[test]
    fn change_replaces_the_policies() {
        let store = Store::new();
        apply_configmap(&store, &fixture("team-a.yaml"));
        let mut cm = fixture("team-a.yaml");
        cm.data.as_mut().unwrap().remove("images.yml");
        let outcome = apply_configmap(&store, &cm);
        assert_eq!(outcome, ConfigMapOutcome::Loaded { policies: 1, recovered: false, duplicates: vec![] });
        assert_eq!(names(&store), ["no-default-namespace"]);
    }

    #[test]
    fn delete_removes_the_policies() {
        let store = Store::new();
        apply_configmap(&store, &fixture("team-a.yaml"));
        delete_configmap(&store, "podguard-system", "team-a");
        assert!(store.current().is_empty());
        assert!(store.keys().is_empty());
    }

    #[rstest]
    #[case::bad_yaml("team-a-bad-yaml.yaml", "namespaces.yaml", 0, Some(4), None)]
    #[case::bad_policy("team-a-bad-policy.yaml", "namespaces.yaml", 1, Some(17), Some("spec.rules[0].check"))]
    fn bad_configmap_contributes_nothing_whatever_came_before(
        #[case] file: &str,
        #[case] key: &str,
        #[case] document: usize,
        #[case] line: Option<usize>,
        #[case] field: Option<&str>,
    ) {
        let store = Store::new();
        apply_configmap(&store, &fixture("team-a.yaml"));
        let ConfigMapOutcome::Rejected { errors } = apply_configmap(&store, &fixture(file)) else {
            panic!("{file} should be refused")
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(
            e.origin,
            Origin::ConfigMap { namespace: "podguard-system".into(), name: "team-a".into(), key: key.into() }
        );
        assert_eq!((e.document, e.line, e.field.as_deref()), (Some(document), line, field), "{e}");
        // The whole ConfigMap is refused, even its good documents, and its previous version
        // leaves too: a replica that saw the good version and one started after the break
        // enforce the same (nothing of it).
        assert!(names(&store).is_empty(), "{:?}", names(&store));
        assert_eq!(store.errors(), errors);
        assert_eq!(store.refused(), 1);
        let started_later = Store::new();
        apply_configmap(&started_later, &fixture(file));
        assert_eq!(names(&started_later), names(&store));
    }

    #[test]
    fn bad_configmap_never_loaded_contributes_nothing() {
        let store = Store::new();
        let outcome = apply_configmap(&store, &fixture("team-a-bad-policy.yaml"));
        assert!(matches!(outcome, ConfigMapOutcome::Rejected { .. }));
        assert!(store.current().is_empty());
    }

    #[test]
    fn fix_after_bad_recovers() {
        let store = Store::new();
        apply_configmap(&store, &fixture("team-a.yaml"));
        apply_configmap(&store, &fixture("team-a-bad-yaml.yaml"));
        let outcome = apply_configmap(&store, &fixture("team-a.yaml"));
        assert_eq!(outcome, ConfigMapOutcome::Loaded { policies: 3, recovered: true, duplicates: vec![] });
        assert!(store.errors().is_empty());
        assert_eq!(names(&store), TEAM_A);
    }

    #[test]
    fn same_name_in_two_configmaps_keeps_the_first() {
        let store = Store::new();
        apply_configmap(&store, &fixture("team-a.yaml"));
        let ConfigMapOutcome::Loaded { duplicates, policies: 2, .. } =
            apply_configmap(&store, &fixture("team-b-duplicate.yaml"))
        else {
            panic!("team-b loads")
        };
        assert_eq!(duplicates.len(), 1, "{duplicates:?}");
        let later = Origin::ConfigMap {
            namespace: "podguard-system".into(),
            name: "team-b".into(),
            key: "policies.yaml".into(),
        };
        assert_eq!(duplicates[0].origin, later);
        assert!(duplicates[0].reason.contains("configmap/podguard-system/team-a"), "{}", duplicates[0]);
        let set = store.current();
        let kept = set.policies().iter().find(|p| &*p.name == "no-default-namespace").unwrap();
        assert!(matches!(&kept.origin, Origin::ConfigMap { name, .. } if name == "team-a"));
        assert!(set.policies().iter().any(|p| &*p.name == "read-only-root"));
    }

    #[test]
    fn same_name_in_two_configmaps_is_reported_for_the_later_by_name_order() {
        // Sources merge by namespace/name, not arrival: team-a wins even when it arrives second.
        let store = Store::new();
        apply_configmap(&store, &fixture("team-b-duplicate.yaml"));
        let ConfigMapOutcome::Loaded { duplicates, .. } = apply_configmap(&store, &fixture("team-a.yaml"))
        else {
            panic!("team-a loads")
        };
        assert!(duplicates.is_empty(), "{duplicates:?}");
        let errors = store.errors();
        assert_eq!(errors.len(), 1);
        assert!(matches!(&errors[0].origin, Origin::ConfigMap { name, .. } if name == "team-b"));
    }

    #[test]
    fn same_name_in_two_keys_of_one_configmap_refuses_it() {
        let mut cm = fixture("team-a.yaml");
        let data = cm.data.as_mut().unwrap();
        let text = data["namespaces.yaml"].clone();
        data.insert("again.yaml".into(), text);
        let store = Store::new();
        let ConfigMapOutcome::Rejected { errors } = apply_configmap(&store, &cm) else { panic!("refused") };
        // Keys load in order: again.yaml first, so namespaces.yaml holds the second definition.
        assert_eq!(errors.len(), 1);
        assert!(matches!(&errors[0].origin, Origin::ConfigMap { key, .. } if key == "namespaces.yaml"));
        assert!(errors[0].reason.contains("again.yaml document[0]"), "{}", errors[0]);
    }

    #[rstest]
    #[case::yaml("a.yaml", true)]
    #[case::yml("a.yml", true)]
    #[case::markdown("README.md", false)]
    #[case::json("a.json", false)]
    #[case::yaml_inside("a.yaml.bak", false)]
    fn policy_keys(#[case] key: &str, #[case] expected: bool) {
        assert_eq!(is_policy_key(key), expected);
    }

    #[test]
    fn configmap_without_policy_keys_loads_nothing() {
        let mut cm = fixture("team-a.yaml");
        cm.data.as_mut().unwrap().retain(|k, _| k == "README.md");
        let store = Store::new();
        assert_eq!(
            apply_configmap(&store, &cm),
            ConfigMapOutcome::Loaded { policies: 0, recovered: false, duplicates: vec![] }
        );
    }

    mod tracker {
        use super::*;

        fn relabelled(mut cm: ConfigMap) -> ConfigMap {
            cm.labels_mut().insert("team".into(), "a".into());
            cm
        }

        #[test]
        fn unchanged_policy_files_are_skipped() {
            let (store, mut t) = (Store::new(), ConfigMapTracker::default());
            let first = t.handle(&store, watcher::Event::Apply(fixture("team-a.yaml")));
            assert!(matches!(&first[..], [Change::Applied { .. }]));
            let again = t.handle(&store, watcher::Event::Apply(relabelled(fixture("team-a.yaml"))));
            assert!(again.is_empty(), "{again:?}");
        }

        #[test]
        fn relist_removes_what_it_does_not_list() {
            let (store, mut t) = (Store::new(), ConfigMapTracker::default());
            t.handle(&store, watcher::Event::Apply(fixture("team-a.yaml")));
            t.handle(&store, watcher::Event::Apply(fixture("team-b-duplicate.yaml")));
            assert!(t.handle(&store, watcher::Event::Init).is_empty());
            // team-a unchanged: nothing to report.
            assert!(t.handle(&store, watcher::Event::InitApply(fixture("team-a.yaml"))).is_empty());
            let done = t.handle(&store, watcher::Event::InitDone);
            assert_eq!(
                done,
                [
                    Change::Removed { namespace: "podguard-system".into(), name: "team-b".into() },
                    Change::Listed { count: 1 }
                ]
            );
            assert_eq!(names(&store), TEAM_A);
        }

        #[test]
        fn fixed_after_warning_is_flagged() {
            let (store, mut t) = (Store::new(), ConfigMapTracker::default());
            t.handle(&store, watcher::Event::Apply(fixture("team-a-bad-policy.yaml")));
            let fixed = t.handle(&store, watcher::Event::Apply(fixture("team-a.yaml")));
            let [Change::Applied { was_warned, outcome, .. }] = &fixed[..] else { panic!("{fixed:?}") };
            assert!(*was_warned);
            assert!(matches!(outcome, ConfigMapOutcome::Loaded { recovered: true, .. }));
        }

        #[test]
        fn delete_of_unknown_configmap_is_ignored() {
            let (store, mut t) = (Store::new(), ConfigMapTracker::default());
            assert!(t.handle(&store, watcher::Event::Delete(fixture("team-a.yaml"))).is_empty());
        }
    }
}
