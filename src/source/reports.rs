//! What the background audit writes into the cluster, and who writes it.
//!
//! - **The writer's Lease.** Every replica audits and answers `GET /report`; one at a time
//!   writes, chosen through a `coordination.k8s.io` Lease ([`LEASE_DURATION`]; when the
//!   holder goes away another takes over once it expires).
//! - **Report objects** (`--audit-reports`): one `PolicyReport` per namespace with findings,
//!   built by [`crate::audit::policy_report`], written by server-side apply only when its bytes
//!   change, at most once per [`MIN_INTERVAL`] per namespace and [`MAX_WRITES_PER_TICK`] a
//!   second in all; deleted when the namespace has no finding left.
//! - **Bypasses**: every replica gives each object refused now a verdict
//!   ([`crate::audit::bypass`]) from the times the API server keeps, within [`BYPASS_EVERY`];
//!   the writer records a `Warning` Event on each new one.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::Store;
use super::audit::Audit;
use crate::audit::bypass::{self, Times};
use crate::audit::policy_report::{self, GROUP, KIND, MANAGED_BY, NAME, PLURAL, VERSION};
use crate::audit::{Candidate, NamespaceReport};
use crate::policy::Origin;

/// How long the writer's Lease lasts without renewal: the longest a dead writer's duty waits.
pub const LEASE_DURATION: u64 = 8;
/// How long before expiry the holder renews.
const LEASE_GRACE: u64 = 3;
/// A namespace's report is written at most this often.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Report objects written or deleted per second, at most, across namespaces.
pub const MAX_WRITES_PER_TICK: usize = 10;
/// How often objects refused now are given their bypass verdict.
pub const BYPASS_EVERY: Duration = Duration::from_secs(2);
/// Every verdict is made again this often, as the times it rests on may change without the
/// object changing (the webhook registered again, a policy ConfigMap rewritten).
pub const RECHECK_ALL: Duration = Duration::from_secs(60);
/// Verdicts made per round at most (each may need a few GETs).
const BYPASS_BATCH: usize = 1000;
/// Bypass Events waiting to be sent, at most; the others wait in the audit (not yet queued).
pub const EVENT_QUEUE: usize = 1000;
/// Bypass Events sent per second, at most: after an outage thousands of objects may have got in,
/// and one Event each must not flood the API server.
pub const EVENTS_PER_SECOND: u32 = 10;
/// Field manager of report objects.
const MANAGER: &str = "podguard";
/// Annotation on the writer's Lease recording when the settings took their current values.
pub const SETTINGS_ANNOTATION: &str = "podguard.dev/audit-settings";
/// Reason of the Event on an object that bypassed admission.
pub const REASON_BYPASS: &str = "AdmissionBypassed";

/// What to run beside the audit.
#[derive(Clone, Debug)]
pub struct Options {
    /// Write PolicyReport objects.
    pub reports: bool,
    /// Namespace and name of the writer's Lease.
    pub lease: (String, String),
    /// This replica's identity in the Lease.
    pub identity: String,
    /// Name of podguard's ValidatingWebhookConfiguration, to know when it was registered.
    pub webhook_configuration: Option<String>,
    /// Whether some users are exempt from the policies.
    pub exempt_users: bool,
    /// [`settings_fingerprint`] of the settings in force.
    pub settings: String,
}

/// This replica's identity: `$POD_NAME` (the chart sets it) or the host name, and the process.
pub fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "podguard".into());
    format!("{host}-{}", std::process::id())
}

/// Starts the Lease, the bypass verdicts and (with `reports`) the report writer.
pub fn start(client: kube::Client, audit: Audit, store: Arc<Store>, opts: Options) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(hold_lease(client.clone(), audit.clone(), opts.clone()))];
    let reporter = Reporter { controller: "podguard".into(), instance: Some(opts.identity.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let (events, queue) = tokio::sync::mpsc::channel(EVENT_QUEUE);
    tasks.push(tokio::spawn(send_events(client.clone(), audit.clone(), opts.clone(), recorder, queue)));
    tasks.push(tokio::spawn(find_bypasses(client.clone(), audit.clone(), store, opts.clone(), events)));
    if opts.reports {
        tasks.push(tokio::spawn(write_reports(client, audit, opts)));
    }
    tasks
}

/// Competes for the writer's Lease for the life of the process, and mirrors the outcome in
/// [`Audit::is_writer`].
async fn hold_lease(client: kube::Client, audit: Audit, opts: Options) {
    let (namespace, name) = opts.lease.clone();
    let manager = loop {
        let built = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &name)
            .with_namespace(&namespace)
            .with_identity(&opts.identity)
            .with_field_manager(format!("podguard-{}", opts.identity))
            .with_duration(LEASE_DURATION)
            .with_grace(LEASE_GRACE)
            .build()
            .await;
        match built {
            Ok(m) => break m,
            Err(e) => {
                tracing::warn!(lease = %format!("{namespace}/{name}"), error = %e,
                    "cannot use the audit writer's Lease (podguard needs get/create/patch on coordination.k8s.io leases); retrying in 10 s");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    };
    let (mut state, task) = manager.watch().await;
    // The crate's flag can lag: a holder whose renewals stalled still believes it holds the
    // Lease after another replica took it over (an e2e run saw both replicas report `writer`).
    // What this replica reports (`/report`, the metric) is therefore the flag confirmed by
    // the Lease itself, as for writes ([`holds_lease`]), read again every CONFIRM_EVERY:
    // with at least a second left at each reading, two replicas never both claim the duty.
    let mut confirm = tokio::time::interval(CONFIRM_EVERY);
    confirm.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = false;
    loop {
        tokio::select! {
            changed = state.changed() => if changed.is_err() { break },
            _ = confirm.tick() => {}
        }
        let claimed = *state.borrow_and_update();
        let writer = claimed && holds_lease(&client, &opts).await;
        audit.set_writer(writer);
        if writer != reported {
            reported = writer;
            tracing::info!(identity = %opts.identity, writer, "audit writer's Lease {}", if writer { "acquired" } else { "lost" });
        }
    }
    audit.set_writer(false);
    drop(task);
}

/// How often the holder reads its Lease to confirm it still names this replica: well under the
/// second of margin [`holds_lease`] asks for.
const CONFIRM_EVERY: Duration = Duration::from_millis(500);

/// What the writer knows of a report object it wrote, or found.
#[derive(Debug, Clone, Copy)]
struct Written {
    /// Hash of the body written; `None` for one found, not written.
    hash: Option<u64>,
    at: Option<Instant>,
}

async fn write_reports(client: kube::Client, audit: Audit, opts: Options) {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL);
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let mut ledger = Ledger::default();
    let mut known = false;
    let mut done_generation = None;
    let mut complained = None::<Instant>;
    let mut complain = |what: &str, e: &kube::Error| {
        if complained.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            complained = Some(Instant::now());
            tracing::warn!(error = %e, "cannot {what} PolicyReports (is the wgpolicyk8s.io CRD installed, and does podguard have list/create/patch/delete on policyreports?)");
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !audit.is_writer() {
            // Another replica writes; what it wrote is learnt again when the duty returns.
            known = false;
            ledger.forget();
            done_generation = None;
            continue;
        }
        if !known {
            match all.list_metadata(&ListParams::default().labels(&selector)).await {
                Ok(list) => {
                    for o in list.items.into_iter().filter(|o| o.metadata.name.as_deref() == Some(NAME)) {
                        ledger.found(o.metadata.namespace.unwrap_or_default());
                    }
                    known = true;
                }
                Err(e) => {
                    complain("list", &e);
                    continue;
                }
            }
        }
        // Building every namespace's report takes a while on a large cluster: off the async
        // workers, as /report is.
        let source = audit.clone();
        let built = tokio::task::spawn_blocking(move || {
            let a = source.lock();
            if !a.synced(source.kinds()) || done_generation == Some(a.generation()) {
                return None;
            }
            let set = a.policies().clone();
            let severity = |p: &str| set.policies().iter().find(|c| &*c.name == p).map(|c| c.severity);
            let snapshot = a.snapshot(None, source.kinds(), |ns| source.labels(ns));
            let desired: BTreeMap<String, Value> = snapshot
                .namespaces
                .iter()
                .filter(|ns| !ns.results.is_empty() && !ns.name.is_empty())
                .map(|ns: &NamespaceReport| (ns.name.clone(), policy_report::build(ns, severity)))
                .collect();
            Some((a.generation(), desired))
        })
        .await;
        let Ok(Some((generation, desired))) = built else { continue };
        let hashes: BTreeMap<&str, u64> = desired.iter().map(|(ns, b)| (ns.as_str(), hash_of(b))).collect();
        let (ops, mut complete) = ledger.plan(&hashes, Instant::now());
        if !ops.is_empty() && !holds_lease(&client, &opts).await {
            continue;
        }
        for op in ops {
            match op {
                Op::Write(ns) => {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                    let body = &desired[&ns];
                    match api.patch(NAME, &PatchParams::apply(MANAGER).force(), &Patch::Apply(body)).await {
                        Ok(_) => {
                            audit.count_report_write(true);
                            ledger.wrote(&ns, hashes[ns.as_str()], Instant::now());
                        }
                        Err(e) => {
                            audit.count_report_write(false);
                            complain("write", &e);
                            complete = false;
                        }
                    }
                }
                Op::Delete(ns) => {
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                    match api.delete(NAME, &DeleteParams::default()).await {
                        Ok(_) => {
                            audit.count_report_write(true);
                            ledger.deleted(&ns);
                        }
                        Err(kube::Error::Api(s)) if s.code == 404 => ledger.deleted(&ns),
                        Err(e) => {
                            audit.count_report_write(false);
                            complain("delete", &e);
                            complete = false;
                        }
                    }
                }
            }
        }
        if complete {
            done_generation = Some(generation);
        }
    }
}

/// A report object to write or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Write(String),
    Delete(String),
}

/// What the writer wrote, per namespace: decides what to write next, within the limits.
#[derive(Debug, Default)]
struct Ledger {
    written: HashMap<String, Written>,
}

impl Ledger {
    /// A report object found in the cluster (content unknown: written again at once).
    fn found(&mut self, ns: String) {
        self.written.insert(ns, Written { hash: None, at: None });
    }

    fn wrote(&mut self, ns: &str, hash: u64, at: Instant) {
        self.written.insert(ns.to_owned(), Written { hash: Some(hash), at: Some(at) });
    }

    fn deleted(&mut self, ns: &str) {
        self.written.remove(ns);
    }

    fn forget(&mut self) {
        self.written.clear();
    }

    /// What to do now to reach `desired` (namespace -> hash of its report): writes where the
    /// hash differs, deletes where no report is desired; a namespace written less than
    /// [`MIN_INTERVAL`] ago waits, and at most [`MAX_WRITES_PER_TICK`] operations. Also
    /// whether that reaches `desired` (nothing left waiting).
    fn plan(&self, desired: &BTreeMap<&str, u64>, now: Instant) -> (Vec<Op>, bool) {
        let mut ops = Vec::new();
        let mut complete = true;
        let recent = |w: &Written| w.at.is_some_and(|at| now.duration_since(at) < MIN_INTERVAL);
        let changed =
            desired.iter().filter(|(ns, hash)| self.written.get(**ns).is_none_or(|w| w.hash != Some(**hash)));
        let writes = changed.map(|(ns, _)| (*ns, true));
        let mut stale: Vec<&str> =
            self.written.keys().map(String::as_str).filter(|ns| !desired.contains_key(ns)).collect();
        stale.sort_unstable();
        let deletes = stale.into_iter().map(|ns| (ns, false));
        for (ns, write) in writes.chain(deletes) {
            if self.written.get(ns).is_some_and(recent) || ops.len() >= MAX_WRITES_PER_TICK {
                complete = false;
                continue;
            }
            ops.push(if write { Op::Write(ns.to_owned()) } else { Op::Delete(ns.to_owned()) });
        }
        (ops, complete)
    }
}

fn hash_of(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(v).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Gives each object refused now its bypass verdict, counts new bypasses, and (on the writer)
/// records an Event on each.
async fn find_bypasses(
    client: kube::Client,
    audit: Audit,
    store: Arc<Store>,
    opts: Options,
    events: tokio::sync::mpsc::Sender<(ObjectReference, Event)>,
) {
    let mut tick = tokio::time::interval(BYPASS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_full = Instant::now();
    let mut complained = None::<Instant>;
    loop {
        tick.tick().await;
        let candidates = audit.lock().bypass_candidates();
        // Every verdict again once a pass is through, so that none starves on a large cluster.
        if candidates.is_empty() && last_full.elapsed() >= RECHECK_ALL {
            last_full = Instant::now();
            audit.lock().recheck_bypasses();
        }
        if !candidates.is_empty() {
            match verdicts(&client, &audit, &store, &opts, &candidates).await {
                Ok(()) => {}
                Err(what) if complained.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) => {
                    complained = Some(Instant::now());
                    tracing::warn!(
                        "audit: cannot tell bypasses from objects admitted under older rules: cannot read {what}; retrying every {} s",
                        BYPASS_EVERY.as_secs()
                    );
                }
                Err(_) => {}
            }
        }
        if audit.is_writer() {
            let room = events.capacity();
            for (c, b) in audit.lock().take_unannounced(room) {
                // Room was reserved above: this cannot fail but on a closed channel.
                let _ = events.try_send(bypass_event(&c, &b));
            }
        }
    }
}

/// Makes the verdicts of one round. Err names what could not be read (the round's remaining
/// candidates wait for the next).
async fn verdicts(
    client: &kube::Client,
    audit: &Audit,
    store: &Store,
    opts: &Options,
    candidates: &[Candidate],
) -> Result<(), String> {
    // Looked up afresh each round: a label written a second ago must be seen.
    let mut lookup = Lookup::new(client.clone());
    let registered = match &opts.webhook_configuration {
        Some(name) => lookup.webhook_registered(name).await?,
        None => None,
    };
    // Without it only "not asked" verdicts wait; "before the webhook was registered" need not.
    let settings_since = match lookup.settings_since(&opts.lease, &opts.settings, audit.is_writer()).await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, "audit: the settings' time is unknown this round");
            None
        }
    };
    let set = store.current();
    for c in candidates.iter().take(BYPASS_BATCH) {
        let mode_since = lookup.namespace_labels_written(&c.key.namespace).await?;
        let mut policies = Vec::new();
        for p in &c.refusing {
            let origin = set.policies().iter().find(|x| x.name == *p).map(|x| &x.origin);
            let since = match origin {
                Some(Origin::ConfigMap { namespace, name, .. }) => {
                    lookup.data_written(namespace, name).await?
                }
                // Built in or from a file: in force since podguard was registered.
                _ => registered,
            };
            policies.push((p.clone(), since));
        }
        let times = Times {
            webhook_registered: registered,
            namespace_mode_since: mode_since,
            policies,
            settings_since,
            exempt_users: opts.exempt_users,
        };
        let verdict = bypass::classify(c.written, &times);
        let new = audit.lock().set_bypass(c, verdict.clone());
        if let (true, Some(b)) = (new, verdict) {
            tracing::warn!(namespace = %c.key.namespace, kind = c.key.kind, name = %c.key.name,
                reason = ?b.reason, "audit: an object refused now was not judged at admission: {}", b.message);
        }
    }
    Ok(())
}

/// Whether the writer's Lease, read now, names this replica and still has at least a second to
/// run: checked before each write, so that a replica that lost the duty without noticing
/// (renewals failing, a paused process) never writes beside the new writer.
async fn holds_lease(client: &kube::Client, opts: &Options) -> bool {
    let (namespace, name) = &opts.lease;
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let Ok(lease) = api.get(name).await else { return false };
    let Some(spec) = lease.spec else { return false };
    let mine = spec.holder_identity.as_deref() == Some(opts.identity.as_str());
    let expires = spec.renew_time.zip(spec.lease_duration_seconds).and_then(|(renewed, seconds)| {
        renewed.0.checked_add(jiff::SignedDuration::from_secs(i64::from(seconds) - 1)).ok()
    });
    mine && expires.is_some_and(|e| e > jiff::Timestamp::now())
}

/// The Warning Event on an object that bypassed admission.
fn bypass_event(c: &Candidate, b: &bypass::Bypass) -> (ObjectReference, Event) {
    let api_version = if c.group.is_empty() { "v1".to_owned() } else { format!("{}/v1", c.group) };
    let reference = ObjectReference {
        api_version: Some(api_version),
        kind: Some(c.key.kind.to_owned()),
        name: Some(c.key.name.clone()),
        namespace: Some(c.key.namespace.clone()),
        uid: (!c.uid.is_empty()).then(|| c.uid.clone()),
        ..ObjectReference::default()
    };
    let policies: Vec<&str> = c.refusing.iter().map(|p| &**p).collect();
    let mut note = format!(
        "refused now by {} and not judged at admission: {}. GET /report on podguard's metrics port lists its findings",
        policies.join(", "),
        b.message
    );
    if note.len() > 1024 {
        let mut end = 1021;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    let event = Event {
        type_: EventType::Warning,
        reason: REASON_BYPASS.into(),
        note: Some(note),
        action: "Audit".into(),
        secondary: None,
    };
    (reference, event)
}

/// Sends bypass Events in order, at most [`EVENTS_PER_SECOND`], each unless the object already
/// carries one (recorded by an earlier writer, or before a restart).
async fn send_events(
    client: kube::Client,
    audit: Audit,
    opts: Options,
    recorder: Recorder,
    mut queue: tokio::sync::mpsc::Receiver<(ObjectReference, Event)>,
) {
    let mut pace = tokio::time::interval(Duration::from_secs(1) / EVENTS_PER_SECOND);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while let Some((reference, event)) = queue.recv().await {
        pace.tick().await;
        let name = reference.name.clone().unwrap_or_default();
        // Not sent now (the duty moved, or the API server failed): queued again from the
        // audit later, by whichever replica then writes; the check below skips duplicates.
        if !holds_lease(&client, &opts).await {
            audit.lock().announce_again();
            continue;
        }
        if already_recorded(&client, &reference).await {
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(10), recorder.publish(&event, &reference)).await {
            Ok(Ok(())) => audit.count_bypass_event(),
            Ok(Err(e)) => {
                audit.lock().announce_again();
                tracing::warn!(name, error = %e,
                    "cannot record the bypass Event (podguard needs create/patch on events.k8s.io events)");
            }
            Err(_) => {
                audit.lock().announce_again();
                tracing::warn!(name, "cannot record the bypass Event: the API server did not answer in time");
            }
        }
    }
}

/// Whether the object already has an `AdmissionBypassed` Event (read through the core API,
/// whose field selectors reach the object's UID).
async fn already_recorded(client: &kube::Client, reference: &ObjectReference) -> bool {
    let ns = reference.namespace.as_deref().unwrap_or_default();
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let about = match &reference.uid {
        Some(uid) => format!("involvedObject.uid={uid}"),
        None => format!("involvedObject.name={}", reference.name.as_deref().unwrap_or_default()),
    };
    let params = ListParams::default().fields(&format!("{about},reason={REASON_BYPASS}")).limit(1);
    match api.list_metadata(&params).await {
        Ok(list) => !list.items.is_empty(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list Events: recording the bypass Event anyway");
            false
        }
    }
}

/// GETs of one round, each made once.
struct Lookup {
    client: kube::Client,
    namespaces: HashMap<String, Option<jiff::Timestamp>>,
    configmaps: HashMap<(String, String), Option<jiff::Timestamp>>,
}

impl Lookup {
    fn new(client: kube::Client) -> Self {
        Self { client, namespaces: HashMap::new(), configmaps: HashMap::new() }
    }

    async fn webhook_registered(&self, name: &str) -> Result<Option<jiff::Timestamp>, String> {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        match api.get(name).await {
            Ok(o) => Ok(bypass::created(&metadata(&o.metadata))),
            // Not registered now: what is written meanwhile is judged by the other rule, and
            // predates the registration once it is registered again.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(format!("ValidatingWebhookConfiguration {name}: {e}")),
        }
    }

    async fn namespace_labels_written(&mut self, name: &str) -> Result<Option<jiff::Timestamp>, String> {
        if let Some(t) = self.namespaces.get(name) {
            return Ok(*t);
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let t = match api.get(name).await {
            Ok(o) => bypass::last_write(&metadata(&o.metadata), &["f:metadata", "f:labels"]),
            Err(e) => return Err(format!("Namespace {name}: {e}")),
        };
        self.namespaces.insert(name.to_owned(), t);
        Ok(t)
    }

    async fn data_written(&mut self, namespace: &str, name: &str) -> Result<Option<jiff::Timestamp>, String> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(t) = self.configmaps.get(&key) {
            return Ok(*t);
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let t = match api.get(name).await {
            Ok(o) => bypass::last_write(&metadata(&o.metadata), &["f:data"]),
            Err(e) => return Err(format!("ConfigMap {namespace}/{name}: {e}")),
        };
        self.configmaps.insert(key, t);
        Ok(t)
    }
}

impl Lookup {
    /// When podguard's settings took their current values: recorded on the writer's Lease as
    /// `FINGERPRINT TIME` (the writer records the time it first sees a new fingerprint, so the
    /// time only moves forward). `None` until recorded for these settings.
    async fn settings_since(
        &self,
        (namespace, name): &(String, String),
        fingerprint: &str,
        writer: bool,
    ) -> Result<Option<jiff::Timestamp>, String> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let lease = match api.get(name).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(e) => return Err(format!("Lease {namespace}/{name}: {e}")),
        };
        let recorded = lease.metadata.annotations.as_ref().and_then(|a| a.get(SETTINGS_ANNOTATION));
        if let Some((fp, at)) = recorded.and_then(|r| r.split_once(' '))
            && fp == fingerprint
        {
            return Ok(at.parse().ok());
        }
        if !writer {
            return Ok(None);
        }
        let now = jiff::Timestamp::now();
        let value = format!("{fingerprint} {}", now.strftime("%Y-%m-%dT%H:%M:%SZ"));
        let patch = serde_json::json!({"metadata": {"annotations": {SETTINGS_ANNOTATION: value}}});
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(fingerprint, "audit: new settings recorded on the writer's Lease");
                Ok(None)
            }
            Err(e) => Err(format!("Lease {namespace}/{name} (to record the settings): {e}")),
        }
    }
}

/// A fingerprint of the settings that decide a namespace's mode and exemptions.
pub fn settings_fingerprint(settings: &crate::admission::Settings) -> String {
    let sorted = |set: &std::collections::HashSet<String>| {
        let mut v: Vec<&str> = set.iter().map(String::as_str).collect();
        v.sort_unstable();
        v.join(",")
    };
    let e = &settings.exemptions;
    let text = format!(
        "mode={};label={};namespaces={};users={};runtimeClasses={}",
        settings.default_mode.as_str(),
        settings.namespace_mode_label,
        sorted(&e.namespaces),
        sorted(&e.usernames),
        sorted(&e.runtime_classes)
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn metadata(m: &kube::api::ObjectMeta) -> Value {
    serde_json::to_value(m).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(items: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
        items.iter().copied().collect()
    }

    #[test]
    fn a_report_is_written_when_it_changes_and_not_again_when_it_does_not() {
        let mut l = Ledger::default();
        let t0 = Instant::now();
        assert_eq!(l.plan(&desired(&[("shop", 1)]), t0), (vec![Op::Write("shop".into())], true));
        l.wrote("shop", 1, t0);
        let later = t0 + MIN_INTERVAL * 3;
        assert_eq!(l.plan(&desired(&[("shop", 1)]), later), (vec![], true));
        assert_eq!(l.plan(&desired(&[("shop", 2)]), later), (vec![Op::Write("shop".into())], true));
    }

    #[test]
    fn a_namespace_is_written_at_most_once_per_interval() {
        let mut l = Ledger::default();
        let t0 = Instant::now();
        l.wrote("shop", 1, t0);
        let soon = t0 + MIN_INTERVAL / 2;
        assert_eq!(l.plan(&desired(&[("shop", 2)]), soon), (vec![], false), "waits, and says so");
        assert_eq!(
            l.plan(&desired(&[("shop", 2)]), t0 + MIN_INTERVAL),
            (vec![Op::Write("shop".into())], true)
        );
        // Deleting waits likewise.
        assert_eq!(l.plan(&desired(&[]), soon), (vec![], false));
        assert_eq!(l.plan(&desired(&[]), t0 + MIN_INTERVAL), (vec![Op::Delete("shop".into())], true));
    }

    #[test]
    fn writes_per_tick_are_capped_and_the_rest_wait() {
        let l = Ledger::default();
        let names: Vec<String> = (0..25).map(|i| format!("ns{i:02}")).collect();
        let want: BTreeMap<&str, u64> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let (ops, complete) = l.plan(&want, Instant::now());
        assert_eq!(ops.len(), MAX_WRITES_PER_TICK);
        assert!(!complete);
    }

    #[test]
    fn reports_found_are_rewritten_at_once_or_deleted_when_clean() {
        let mut l = Ledger::default();
        l.found("shop".into());
        l.found("gone".into());
        let (ops, complete) = l.plan(&desired(&[("shop", 7)]), Instant::now());
        assert_eq!(ops, vec![Op::Write("shop".into()), Op::Delete("gone".into())]);
        assert!(complete);
        l.deleted("gone");
        l.wrote("shop", 7, Instant::now());
        assert_eq!(l.plan(&desired(&[("shop", 7)]), Instant::now()), (vec![], true));
    }
}
