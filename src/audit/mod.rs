//! The background audit: every workload already stored in the cluster, judged as admission would
//! judge it now, kept current as objects, policies and namespace labels change.
//!
//! [`Auditor`] is the pure part: it holds each audited object (its pod-relevant JSON, stripped of
//! status and bookkeeping) and its result, evaluates with the webhook's own
//! [`crate::admission::evaluate`], and answers [`Auditor::snapshot`] for `GET /report` and
//! [`Auditor::counts`] for the metrics. `source::audit` feeds it from watches.
//!
//! Each finding carries two modes: the one it has at admission now (lowered by the namespace's
//! mode) and the policy's own, which is what it would have in an enforce namespace; so a warn
//! namespace shows what switching it to enforce would refuse.

pub mod bypass;
pub mod policy_report;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::admission::review::{AdmissionRequest, GroupVersionKind};
use crate::admission::{self, Outcome, Settings};
use crate::context::{Operation, UserInfo};
use crate::policy::{Mode, PolicySet};

/// Objects held at most: beyond, new objects are counted ([`Auditor::dropped`]) but not held, so
/// memory stays bounded on any cluster (about 5 KiB per object with findings: docs/audit.md).
pub const DEFAULT_MAX_OBJECTS: usize = 200_000;

/// Largest object held, as stripped JSON; a bigger one is judged once and its JSON not kept
/// (re-audits skip it until it changes).
pub const MAX_OBJECT_BYTES: usize = 256 << 10;

/// Annotations dropped before an object is held: large, and never read by a policy.
const DROPPED_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// One finding of an audited object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditFinding {
    /// Policy.
    pub policy: Arc<str>,
    /// Other policies that found the same thing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Arc<str>>,
    /// Rule.
    pub rule: Arc<str>,
    /// Field.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Its mode at admission now, in the object's namespace.
    pub mode: Mode,
    /// Its mode in an enforce namespace: the policy's own (the strongest of the policies that
    /// found it).
    pub enforce_mode: Mode,
    /// Compliance controls, compact.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub controls: String,
}

/// The audit result of one object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audited {
    /// Its findings (at most the webhook's 50 per mode; `omitted` counts the others).
    pub findings: Vec<AuditFinding>,
    /// Findings counted but not kept.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// Why it was not evaluated (exempt namespace, unreadable ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Refused now, and not judged at admission when it was written ([`bypass`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass: Option<bypass::Bypass>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Audited {
    /// Whether admission would refuse it now (a finding at enforce in its namespace).
    pub fn refused_now(&self) -> bool {
        self.findings.iter().any(|f| f.mode == Mode::Enforce)
    }

    /// The policies refusing it now (each once).
    pub fn refusing(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for f in self.findings.iter().filter(|f| f.mode == Mode::Enforce) {
            for p in std::iter::once(&f.policy).chain(&f.also) {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// Whether admission would refuse it in an enforce namespace.
    pub fn refused_if_enforced(&self) -> bool {
        self.findings.iter().any(|f| f.enforce_mode == Mode::Enforce)
    }
}

/// The object an entry is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Namespace (empty for none).
    pub namespace: String,
    /// Kind.
    pub kind: &'static str,
    /// Name.
    pub name: String,
}

#[derive(Debug)]
struct Entry {
    group: &'static str,
    uid: String,
    /// When its pod spec was last written ([`bypass::last_write`]).
    spec_written: Option<jiff::Timestamp>,
    /// Whether the bypass verdict was made for its current result.
    bypass_checked: bool,
    /// Whether this replica, as the writer, has queued the Event of its bypass.
    announced: bool,
    /// The stripped object, kept to judge it again when policies or labels change; `None` when
    /// it was too big to keep.
    json: Option<Box<RawValue>>,
    result: Audited,
    /// Seen in the relist in progress of its kind.
    fresh: bool,
}

/// An object refused now, to be given a bypass verdict ([`bypass::classify`]).
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Which object.
    pub key: Key,
    /// Its API group.
    pub group: &'static str,
    /// Its UID.
    pub uid: String,
    /// When its pod spec was last written.
    pub written: jiff::Timestamp,
    /// The policies refusing it now.
    pub refusing: Vec<Arc<str>>,
}

/// Counts for the metrics: current violations per policy, rule and namespace.
pub type Counts = BTreeMap<(Arc<str>, Arc<str>, String), usize>;

/// The audit state.
#[derive(Debug)]
pub struct Auditor {
    settings: Settings,
    set: Arc<PolicySet>,
    objects: HashMap<Key, Entry>,
    max_objects: usize,
    dropped: usize,
    /// Kinds whose first list is complete.
    synced: Vec<&'static str>,
    /// Kinds a relist is in progress for.
    relisting: Vec<&'static str>,
    started: Instant,
    /// How long the first full audit (every kind listed and judged) took.
    first_audit: Option<Duration>,
    /// How long the last re-audit of everything took, and when it ended.
    last_reaudit: Option<(Duration, jiff::Timestamp)>,
    /// Bumped whenever a result may have changed: report writers skip an unchanged audit.
    generation: u64,
    /// Bypasses found since start (a counter).
    bypasses_found: u64,
}

/// What `GET /report` shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// When it was taken.
    pub generated: String,
    /// Whether every kind has been listed once; before, the report is partial.
    pub synced: bool,
    /// The first full audit's duration, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_audit_seconds: Option<f64>,
    /// Objects held.
    pub objects: usize,
    /// Objects not held (over the limit).
    pub dropped: usize,
    /// Whether this replica is the writer (holds the Lease) of report objects and Events.
    pub writer: bool,
    /// Objects refused now that were not judged at admission, in all namespaces shown.
    pub bypassed: usize,
    /// Per namespace, the objects with findings; counts of all.
    pub namespaces: Vec<NamespaceReport>,
}

/// One namespace in the snapshot.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceReport {
    /// Name (empty for cluster-scoped objects, which podguard does not audit today).
    pub name: String,
    /// Its mode at admission.
    pub mode: Mode,
    /// Objects audited in it.
    pub objects: usize,
    /// Objects admission would refuse now.
    pub refused_now: usize,
    /// Objects admission would refuse if the namespace enforced.
    pub refused_if_enforced: usize,
    /// Objects refused now that were not judged at admission ([`bypass`]).
    pub bypassed: usize,
    /// Objects with findings, and their findings.
    pub results: Vec<ObjectReport>,
}

/// One object in the snapshot.
#[derive(Debug, Serialize)]
pub struct ObjectReport {
    /// API group (empty for the core group).
    #[serde(skip)]
    pub group: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// UID.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Its result.
    #[serde(flatten)]
    pub result: Audited,
}

impl Auditor {
    /// An auditor judging with `settings` and `set`.
    pub fn new(mut settings: Settings, set: Arc<PolicySet>) -> Self {
        // As the webhook: hold only what an answer would show.
        settings.keep_only_shown = true;
        settings.policy_configmaps = None;
        Self {
            settings,
            set,
            objects: HashMap::new(),
            max_objects: DEFAULT_MAX_OBJECTS,
            dropped: 0,
            synced: Vec::new(),
            relisting: Vec::new(),
            started: Instant::now(),
            first_audit: None,
            last_reaudit: None,
            generation: 0,
            bypasses_found: 0,
        }
    }

    /// Holds at most `max` objects.
    #[must_use]
    pub fn with_max_objects(mut self, max: usize) -> Self {
        self.max_objects = max;
        self
    }

    /// The policy set it judges with.
    pub fn policies(&self) -> &Arc<PolicySet> {
        &self.set
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether it holds no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Bytes of object JSON held (the largest part of the audit's memory).
    pub fn held_bytes(&self) -> usize {
        self.objects.values().filter_map(|e| e.json.as_ref()).map(|j| j.get().len()).sum()
    }

    /// Objects not held because of the limit.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The first full audit's duration, once every kind in `kinds` has been listed.
    pub fn first_audit(&self) -> Option<Duration> {
        self.first_audit
    }

    /// Changes whenever a result may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bypasses found since start.
    pub fn bypasses_found(&self) -> u64 {
        self.bypasses_found
    }

    /// The result of one object.
    pub fn result(&self, key: &Key) -> Option<&Audited> {
        self.objects.get(key).map(|e| &e.result)
    }

    /// A relist of `kind` begins: objects it does not deliver again are removed at its end.
    pub fn relist_begins(&mut self, kind: &'static str) {
        for (k, e) in &mut self.objects {
            if k.kind == kind {
                e.fresh = false;
            }
        }
        if !self.relisting.contains(&kind) {
            self.relisting.push(kind);
        }
    }

    /// The relist of `kind` is complete. `all` is every kind audited, to time the first audit.
    pub fn relist_done(&mut self, kind: &'static str, all: &[&'static str]) {
        self.generation += 1;
        self.objects.retain(|k, e| k.kind != kind || e.fresh);
        self.relisting.retain(|k| *k != kind);
        if !self.synced.contains(&kind) {
            self.synced.push(kind);
        }
        if self.first_audit.is_none() && all.iter().all(|k| self.synced.contains(k)) {
            self.first_audit = Some(self.started.elapsed());
        }
    }

    /// Whether every kind in `all` has been listed once.
    pub fn synced(&self, all: &[&'static str]) -> bool {
        all.iter().all(|k| self.synced.contains(k))
    }

    /// An object was listed, added or changed: judged and held (`labels`: its namespace's).
    pub fn apply(
        &mut self,
        group: &'static str,
        kind: &'static str,
        mut object: Value,
        labels: Option<&BTreeMap<String, String>>,
    ) {
        let Some(key) = key_of(kind, &object) else { return };
        self.generation += 1;
        let meta = object.get("metadata");
        let uid = meta.and_then(|m| m.get("uid")).and_then(Value::as_str).unwrap_or_default().to_owned();
        let spec_written = meta.and_then(|m| bypass::last_write(m, bypass::pod_spec_fields(kind)));
        strip(&mut object);
        let json = serde_json::to_string(&object).ok().and_then(|t| RawValue::from_string(t).ok());
        let result = match &json {
            Some(raw) => judge(&self.set, &self.settings, group, &key, raw, labels),
            None => {
                Audited { skipped: Some("cannot encode the object as JSON".into()), ..Audited::default() }
            }
        };
        let json = json.filter(|j| j.get().len() <= MAX_OBJECT_BYTES);
        let full = self.objects.len() >= self.max_objects;
        match self.objects.get_mut(&key) {
            Some(e) => {
                if e.result.findings != result.findings || e.spec_written != spec_written {
                    e.bypass_checked = false;
                }
                // Kept until the verdict is made again, so a bypass is counted and announced
                // once, not again after each change of the object.
                let bypass = e.result.bypass.take();
                e.result = Audited { bypass, ..result };
                e.json = json;
                e.uid = uid;
                e.spec_written = spec_written;
                e.fresh = true;
            }
            None if full => self.dropped += 1,
            None => {
                let entry = Entry {
                    group,
                    uid,
                    spec_written,
                    bypass_checked: false,
                    announced: false,
                    json,
                    result,
                    fresh: true,
                };
                self.objects.insert(key, entry);
            }
        }
    }

    /// An object was deleted.
    pub fn delete(&mut self, kind: &'static str, object: &Value) {
        if let Some(key) = key_of(kind, object) {
            self.generation += 1;
            self.objects.remove(&key);
        }
    }

    /// Judges every held object again: the policy set or namespace labels changed.
    /// `labels` gives a namespace's labels.
    pub fn reaudit(
        &mut self,
        set: Arc<PolicySet>,
        labels: impl Fn(&str) -> Option<Arc<BTreeMap<String, String>>>,
    ) {
        let start = Instant::now();
        self.generation += 1;
        self.set = set;
        for (key, e) in &mut self.objects {
            let Some(raw) = &e.json else { continue };
            let l = labels(&key.namespace);
            let bypass = e.result.bypass.take();
            e.result =
                Audited { bypass, ..judge(&self.set, &self.settings, e.group, key, raw, l.as_deref()) };
            // The policies or the namespace's mode changed: the verdict is made again.
            e.bypass_checked = false;
        }
        self.last_reaudit = Some((start.elapsed(), jiff::Timestamp::now()));
    }

    /// Objects refused now whose bypass verdict is not made yet: what to look up for them.
    pub fn bypass_candidates(&mut self) -> Vec<Candidate> {
        let mut out = Vec::new();
        for (key, e) in &mut self.objects {
            if e.bypass_checked {
                continue;
            }
            if !e.result.refused_now() {
                e.bypass_checked = true;
                if e.result.bypass.take().is_some() {
                    self.generation += 1;
                }
                continue;
            }
            let Some(written) = e.spec_written else {
                e.bypass_checked = true;
                continue;
            };
            out.push(Candidate {
                key: key.clone(),
                group: e.group,
                uid: e.uid.clone(),
                written,
                refusing: e.result.refusing(),
            });
        }
        out
    }

    /// Makes every verdict again (the times it was made from may have changed: a webhook
    /// configuration registered again, a policy ConfigMap rewritten).
    pub fn recheck_bypasses(&mut self) {
        for e in self.objects.values_mut() {
            e.bypass_checked = false;
        }
    }

    /// Records the bypass verdict on a candidate (unless it changed since). Returns whether
    /// it is a new bypass (to count and announce once).
    pub fn set_bypass(&mut self, candidate: &Candidate, verdict: Option<bypass::Bypass>) -> bool {
        let Some(e) = self.objects.get_mut(&candidate.key) else { return false };
        if e.bypass_checked || e.spec_written != Some(candidate.written) {
            return false;
        }
        e.bypass_checked = true;
        let new = verdict.is_some() && e.result.bypass.is_none();
        if new {
            self.bypasses_found += 1;
            e.announced = false;
        }
        if e.result.bypass != verdict {
            self.generation += 1;
        }
        e.result.bypass = verdict;
        new
    }

    /// Up to `max` bypasses whose Event this replica has not queued yet, marked queued: the
    /// writer announces each bypass it holds once, including those found before it became the
    /// writer (the sender skips objects that already carry the Event).
    pub fn take_unannounced(&mut self, max: usize) -> Vec<(Candidate, bypass::Bypass)> {
        let mut out = Vec::new();
        for (key, e) in &mut self.objects {
            if out.len() >= max {
                break;
            }
            let (Some(b), false, Some(written)) = (&e.result.bypass, e.announced, e.spec_written) else {
                continue;
            };
            e.announced = true;
            let c = Candidate {
                key: key.clone(),
                group: e.group,
                uid: e.uid.clone(),
                written,
                refusing: e.result.refusing(),
            };
            out.push((c, b.clone()));
        }
        out
    }

    /// Every bypass is to be queued again (an Event was not sent): the sender skips objects
    /// that already carry one.
    pub fn announce_again(&mut self) {
        for e in self.objects.values_mut() {
            e.announced = false;
        }
    }

    /// Objects held that are bypasses now.
    pub fn bypasses(&self) -> usize {
        self.objects.values().filter(|e| e.result.bypass.is_some()).count()
    }

    /// Current violations per policy (also-policies included), rule and namespace.
    pub fn counts(&self) -> Counts {
        let mut out = Counts::new();
        for (key, e) in &self.objects {
            for f in &e.result.findings {
                for p in std::iter::once(&f.policy).chain(&f.also) {
                    *out.entry((p.clone(), f.rule.clone(), key.namespace.clone())).or_default() += 1;
                }
            }
        }
        out
    }

    /// The report: per namespace (only `namespace` when given), the objects with findings, and
    /// counts of all.
    pub fn snapshot(
        &self,
        namespace: Option<&str>,
        all: &[&'static str],
        labels: impl Fn(&str) -> Option<Arc<BTreeMap<String, String>>>,
    ) -> Snapshot {
        let mut by_ns: BTreeMap<&str, Vec<(&Key, &Entry)>> = BTreeMap::new();
        for (k, e) in &self.objects {
            if namespace.is_none_or(|n| n == k.namespace) {
                by_ns.entry(k.namespace.as_str()).or_default().push((k, e));
            }
        }
        let namespaces: Vec<NamespaceReport> = by_ns
            .into_iter()
            .map(|(ns, mut entries)| {
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let l = labels(ns);
                NamespaceReport {
                    name: ns.to_owned(),
                    mode: admission::decision::namespace_mode(&self.settings, l.as_deref()),
                    objects: entries.len(),
                    refused_now: entries.iter().filter(|(_, e)| e.result.refused_now()).count(),
                    refused_if_enforced: entries
                        .iter()
                        .filter(|(_, e)| e.result.refused_if_enforced())
                        .count(),
                    bypassed: entries.iter().filter(|(_, e)| e.result.bypass.is_some()).count(),
                    results: entries
                        .into_iter()
                        .filter(|(_, e)| !e.result.findings.is_empty())
                        .map(|(k, e)| ObjectReport {
                            group: e.group,
                            kind: k.kind,
                            name: k.name.clone(),
                            uid: e.uid.clone(),
                            result: e.result.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        Snapshot {
            generated: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            synced: self.synced(all),
            first_audit_seconds: self.first_audit.map(|d| d.as_secs_f64()),
            objects: self.objects.len(),
            dropped: self.dropped,
            writer: false,
            bypassed: namespaces.iter().map(|n: &NamespaceReport| n.bypassed).sum(),
            namespaces,
        }
    }
}

fn key_of(kind: &'static str, object: &Value) -> Option<Key> {
    let meta = object.get("metadata")?;
    let s = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let name = s("name");
    (!name.is_empty()).then(|| Key { namespace: s("namespace"), kind, name })
}

/// Drops what no policy reads and what would make the held copy large: status, managed fields,
/// the last applied configuration.
fn strip(object: &mut Value) {
    let Value::Object(map) = object else { return };
    map.remove("status");
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        meta.remove("managedFields");
        if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
            for a in DROPPED_ANNOTATIONS {
                annotations.remove(*a);
            }
        }
    }
}

/// Judges one object as a CREATE of it would be judged.
fn judge(
    set: &PolicySet,
    settings: &Settings,
    group: &'static str,
    key: &Key,
    raw: &RawValue,
    labels: Option<&BTreeMap<String, String>>,
) -> Audited {
    // Every kind audited is read as its v1 (a `batch/v1beta1` CronJob's pod template is the same).
    let version = "v1";
    let user = UserInfo::default();
    let req = AdmissionRequest {
        uid: String::new(),
        kind: GroupVersionKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: key.kind.to_owned(),
        },
        resource: Default::default(),
        sub_resource: None,
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        operation: Operation::Create,
        user_info: user,
        // Cheap: the held JSON is copied into the request's own box once per judgement.
        object: Some(raw.to_owned()),
        old_object: None,
        dry_run: Some(true),
    };
    let d = admission::evaluate(set, settings, &req, labels);
    let skipped = match &d.outcome {
        Outcome::Evaluated => None,
        Outcome::Skipped(why) | Outcome::Refused(why) => Some(why.clone()),
        Outcome::Unreadable(e) => Some(format!("cannot evaluate: {e}")),
    };
    let own_mode = |name: &str| {
        set.policies()
            .iter()
            .find(|p| &*p.name == name)
            .map_or(Mode::Enforce, |p| p.mode.unwrap_or(Mode::Enforce))
    };
    let findings = d
        .violations
        .iter()
        .map(|v| AuditFinding {
            policy: v.policy.clone(),
            also: v.also.clone(),
            rule: v.rule.clone(),
            path: v.path.to_string(),
            message: v.message.clone(),
            mode: v.mode,
            enforce_mode: std::iter::once(&v.policy)
                .chain(&v.also)
                .map(|p| own_mode(p))
                .max()
                .unwrap_or(v.mode),
            controls: v.controls.compact().to_owned(),
        })
        .collect();
    Audited { findings, omitted: d.omitted.iter().map(|o| o.count).sum(), skipped, bypass: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[&str] = &["Pod", "Deployment"];

    fn library() -> Arc<PolicySet> {
        Arc::new(crate::cli::check::load_policies(&[]).unwrap())
    }

    fn pod(name: &str, ns: &str, privileged: bool) -> Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "managedFields": [{"manager": "kubectl"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(1000)}},
            "spec": {"serviceAccountName": "app", "containers": [{"name": "a", "image": "r/a:1",
                "securityContext": {"privileged": privileged}}]},
            "status": {"phase": "Running"}
        })
    }

    fn key(ns: &str, name: &str) -> Key {
        Key { namespace: ns.into(), kind: "Pod", name: name.into() }
    }

    fn labels(mode: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("podguard.dev/mode".to_owned(), mode.to_owned())])
    }

    #[test]
    fn a_warn_namespace_shows_what_enforce_would_refuse() {
        let mut a = Auditor::new(Settings::default(), library());
        a.apply("", "Pod", pod("priv", "shop", true), Some(&labels("warn")));
        let r = a.result(&key("shop", "priv")).unwrap();
        let privileged = r.findings.iter().find(|f| f.path.ends_with("privileged")).unwrap();
        assert_eq!((privileged.mode, privileged.enforce_mode), (Mode::Warn, Mode::Enforce));
        assert!(!r.refused_now() && r.refused_if_enforced());
        assert!(privileged.controls.contains("CIS-EKS 4.2.1"), "{}", privileged.controls);
        let snap = a.snapshot(None, KINDS, |_| Some(Arc::new(labels("warn"))));
        let ns = &snap.namespaces[0];
        assert_eq!(
            (ns.name.as_str(), ns.mode, ns.refused_now, ns.refused_if_enforced),
            ("shop", Mode::Warn, 0, 1)
        );
    }

    #[test]
    fn a_label_change_is_seen_on_reaudit() {
        let mut a = Auditor::new(Settings::default(), library());
        a.apply("", "Pod", pod("priv", "shop", true), Some(&labels("warn")));
        assert!(!a.result(&key("shop", "priv")).unwrap().refused_now());
        let set = a.policies().clone();
        a.reaudit(set, |_| Some(Arc::new(labels("enforce"))));
        assert!(a.result(&key("shop", "priv")).unwrap().refused_now());
    }

    #[test]
    fn a_policy_change_is_seen_on_reaudit() {
        let mut a = Auditor::new(Settings::default(), library());
        a.apply("", "Pod", pod("priv", "shop", true), None);
        assert!(a.result(&key("shop", "priv")).unwrap().refused_now());
        a.reaudit(Arc::new(PolicySet::default()), |_| None);
        assert!(a.result(&key("shop", "priv")).unwrap().findings.is_empty());
    }

    #[test]
    fn relists_drop_what_is_gone_and_time_the_first_audit() {
        let mut a = Auditor::new(Settings::default(), library());
        a.relist_begins("Pod");
        a.apply("", "Pod", pod("a", "shop", false), None);
        a.apply("", "Pod", pod("b", "shop", false), None);
        a.relist_done("Pod", KINDS);
        assert!(a.first_audit().is_none(), "Deployments not listed yet");
        a.relist_begins("Deployment");
        a.relist_done("Deployment", KINDS);
        assert!(a.first_audit().is_some() && a.synced(KINDS));
        a.relist_begins("Pod");
        a.apply("", "Pod", pod("b", "shop", false), None);
        a.relist_done("Pod", KINDS);
        assert!(a.result(&key("shop", "a")).is_none() && a.result(&key("shop", "b")).is_some());
        a.delete("Pod", &pod("b", "shop", false));
        assert!(a.is_empty());
    }

    #[test]
    fn held_objects_are_stripped_and_bounded_in_number() {
        let mut a = Auditor::new(Settings::default(), library()).with_max_objects(2);
        for i in 0..5 {
            a.apply("", "Pod", pod(&format!("p{i}"), "shop", false), None);
        }
        assert_eq!((a.len(), a.dropped()), (2, 3));
        let held = a.objects.values().next().unwrap().json.as_ref().unwrap().get();
        assert!(
            !held.contains("managedFields") && !held.contains("last-applied") && !held.contains("Running"),
            "{held}"
        );
        // An object already held is updated, never dropped.
        let held: Vec<Key> = a.objects.keys().cloned().collect();
        let mut changed = pod(&held[0].name, "shop", true);
        changed["metadata"]["name"] = held[0].name.clone().into();
        a.apply("", "Pod", changed, None);
        assert!(a.result(&held[0]).is_some_and(Audited::refused_now));
        assert_eq!(a.dropped(), 3);
    }

    #[test]
    fn a_bypass_is_found_for_objects_refused_now_and_counted_once() {
        let mut a = Auditor::new(Settings::default(), library());
        let mut p = pod("priv", "shop", true);
        p["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z".into();
        a.apply("", "Pod", p.clone(), None);
        a.apply("", "Pod", pod("plain", "shop", false), Some(&labels("warn")));
        let candidates = a.bypass_candidates();
        assert_eq!(candidates.len(), 1, "only the pod refused now: {candidates:?}");
        let c = &candidates[0];
        assert_eq!(c.written, "2026-01-01T00:00:00Z".parse().unwrap());
        assert!(c.refusing.iter().any(|p| &**p == "pod-security-baseline"), "{:?}", c.refusing);
        let verdict = bypass::classify(
            c.written,
            &bypass::Times {
                webhook_registered: Some("2026-02-01T00:00:00Z".parse().unwrap()),
                ..Default::default()
            },
        );
        assert!(a.set_bypass(c, verdict.clone()), "a new bypass");
        assert_eq!((a.bypasses(), a.bypasses_found()), (1, 1));
        // The writer queues its Event once, whenever it holds the duty.
        assert!(a.take_unannounced(0).is_empty(), "no room, nothing taken");
        let queued = a.take_unannounced(10);
        assert_eq!(queued.len(), 1);
        assert_eq!(
            (queued[0].0.key.name.as_str(), queued[0].1.reason),
            ("priv", bypass::Reason::PredatesWebhook)
        );
        assert!(a.take_unannounced(10).is_empty());
        assert!(a.bypass_candidates().is_empty(), "the verdict is made");
        // Judged again (a namespace's labels changed): asked again, but not counted again.
        let set = a.policies().clone();
        a.reaudit(set, |_| None);
        let again = a.bypass_candidates();
        assert_eq!(again.len(), 1);
        assert!(!a.set_bypass(&again[0], verdict), "the same bypass is not new");
        assert_eq!((a.bypasses(), a.bypasses_found()), (1, 1));
        let snap = a.snapshot(None, KINDS, |_| None);
        assert_eq!(snap.bypassed, 1);
        assert!(snap.namespaces[0].results.iter().any(|o| o.result.bypass.is_some()));
        // Once its namespace only warns, it is refused no more, and no longer a bypass.
        let set = a.policies().clone();
        a.reaudit(set, |_| Some(Arc::new(labels("warn"))));
        assert!(a.bypass_candidates().is_empty());
        assert_eq!((a.bypasses(), a.bypasses_found()), (0, 1));
    }

    #[test]
    fn exempt_namespaces_are_skipped_and_counts_name_every_policy() {
        let mut settings = Settings::default();
        settings.exemptions.namespaces.insert("kube-system".into());
        let mut a = Auditor::new(settings, library());
        a.apply("", "Pod", pod("sys", "kube-system", true), None);
        a.apply("", "Pod", pod("priv", "shop", true), None);
        assert!(a.result(&key("kube-system", "sys")).unwrap().skipped.is_some());
        let counts = a.counts();
        let baseline = counts.iter().find(|((p, r, ns), _)| {
            &**p == "pod-security-baseline" && &**r == "pod-security" && ns == "shop"
        });
        let restricted =
            counts.iter().find(|((p, _, ns), _)| &**p == "pod-security-restricted" && ns == "shop");
        assert!(baseline.is_some() && restricted.is_some(), "{counts:?}");
        assert!(!counts.keys().any(|(_, _, ns)| ns == "kube-system"));
    }
}
