//! Feeds the background [`Auditor`] from the cluster: one watch per workload kind, cluster-wide,
//! and a loop that judges everything again when the policy set or a namespace's labels change.
//!
//! Watches list in pages and then stream changes; each object is judged as it arrives, on the
//! task that received it, under the auditor's lock (tens of microseconds per object). Objects a
//! listed controller owns are left out, as in `podguard report --cluster`: a Deployment is
//! judged once, not again through its ReplicaSets and Pods.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;

use super::Store;
use super::cluster::{ApiBackoff, log_watch_error};
use super::inventory::{KINDS, owned_by_listed_controller};
use super::namespaces::NamespaceCache;
use crate::admission::Settings;
use crate::audit::Auditor;

/// How often the loop looks for a new policy set or changed namespace labels.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The running audit, shared with `GET /report` and the metrics.
#[derive(Clone, Debug)]
pub struct Audit {
    auditor: Arc<Mutex<Auditor>>,
    namespaces: NamespaceCache,
    kinds: Arc<Vec<&'static str>>,
    duty: Arc<Duty>,
}

/// The single-writer duty (report objects, bypass Events), held through a Lease.
#[derive(Debug, Default)]
struct Duty {
    writer: AtomicBool,
    report_writes: AtomicU64,
    report_errors: AtomicU64,
    events_recorded: AtomicU64,
}

impl Audit {
    /// The auditor, locked.
    pub fn lock(&self) -> MutexGuard<'_, Auditor> {
        self.auditor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kinds audited (those the API server serves).
    pub fn kinds(&self) -> &[&'static str] {
        &self.kinds
    }

    /// Whether this replica holds the writer's Lease now.
    pub fn is_writer(&self) -> bool {
        self.duty.writer.load(Ordering::Acquire)
    }

    /// Holds (or no longer holds) the writer's Lease.
    pub fn set_writer(&self, writer: bool) {
        self.duty.writer.store(writer, Ordering::Release);
    }

    /// Report objects written or deleted, and attempts that failed.
    pub fn report_writes(&self) -> (u64, u64) {
        (self.duty.report_writes.load(Ordering::Relaxed), self.duty.report_errors.load(Ordering::Relaxed))
    }

    /// Counts a report object written (`ok`) or a failed attempt.
    pub fn count_report_write(&self, ok: bool) {
        let c = if ok { &self.duty.report_writes } else { &self.duty.report_errors };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a bypass Event recorded.
    pub fn count_bypass_event(&self) {
        self.duty.events_recorded.fetch_add(1, Ordering::Relaxed);
    }

    /// Bypass Events recorded by this replica.
    pub fn bypass_events(&self) -> u64 {
        self.duty.events_recorded.load(Ordering::Relaxed)
    }

    /// The labels of a namespace, as the audit sees them.
    pub fn labels(&self, namespace: &str) -> Option<crate::source::namespaces::Labels> {
        self.namespaces.labels(namespace)
    }
}

/// Starts the audit: finds which version of each kind the API server serves, then watches them
/// all. Returns the shared state and the background tasks (abort them to stop).
pub async fn start(
    client: kube::Client,
    store: Arc<Store>,
    namespaces: NamespaceCache,
    settings: Settings,
) -> (Audit, Vec<JoinHandle<()>>) {
    let mut served = Vec::new();
    for k in KINDS {
        for version in k.versions {
            let gvk = GroupVersionKind::gvk(k.group, version, k.kind);
            let ar = ApiResource::from_gvk_with_plural(&gvk, k.plural);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            match api.list_metadata(&ListParams::default().limit(1)).await {
                Ok(_) => {
                    served.push((k.group, k.kind, ar));
                    break;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                // Not allowed, or the API server is away: watch it anyway; the watch retries
                // and says why.
                Err(_) => {
                    served.push((k.group, k.kind, ar));
                    break;
                }
            }
        }
    }
    let kinds: Arc<Vec<&'static str>> = Arc::new(served.iter().map(|(_, k, _)| *k).collect());
    let audit = Audit {
        auditor: Arc::new(Mutex::new(Auditor::new(settings, store.current()))),
        namespaces: namespaces.clone(),
        kinds: kinds.clone(),
        duty: Arc::default(),
    };
    let mut tasks = Vec::new();
    for (group, kind, ar) in served {
        tasks.push(tokio::spawn(watch_kind(client.clone(), audit.clone(), group, kind, ar)));
    }
    tasks.push(tokio::spawn(recheck(audit.clone(), store)));
    tracing::info!(kinds = ?kinds, "audit started");
    (audit, tasks)
}

async fn watch_kind(
    client: kube::Client,
    audit: Audit,
    group: &'static str,
    kind: &'static str,
    ar: ApiResource,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let backoff = ApiBackoff::default();
    let healthy = backoff.healthy();
    let config = watcher::Config::default().page_size(500);
    let stream = watcher(api, config).backoff(backoff);
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            Err(e) => {
                log_watch_error(kind, &e);
                continue;
            }
        };
        healthy.mark();
        let judge = |a: &mut Auditor, obj: DynamicObject| {
            let Ok(value) = serde_json::to_value(&obj) else { return };
            if value.get("metadata").is_some_and(owned_by_listed_controller) {
                // Its owner is judged; it may have become owned since it was judged itself.
                a.delete(kind, &value);
                return;
            }
            let ns = obj.metadata.namespace.as_deref().unwrap_or_default();
            let labels = audit.namespaces.labels(ns);
            a.apply(group, kind, value, labels.as_deref());
        };
        match event {
            watcher::Event::Init => audit.lock().relist_begins(kind),
            watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => judge(&mut audit.lock(), obj),
            watcher::Event::InitDone => {
                let mut a = audit.lock();
                let first = !a.synced(&audit.kinds);
                a.relist_done(kind, &audit.kinds);
                if first && let Some(took) = a.first_audit() {
                    tracing::info!(objects = a.len(), seconds = took.as_secs_f64(), "first audit complete");
                }
            }
            watcher::Event::Delete(obj) => {
                if let Ok(value) = serde_json::to_value(&obj) {
                    audit.lock().delete(kind, &value);
                }
            }
        }
    }
}

/// Judges everything again when the policy set in force or a namespace's labels changed.
async fn recheck(audit: Audit, store: Arc<Store>) {
    let mut generation = audit.namespaces.generation();
    let mut tick = tokio::time::interval(RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let set = store.current();
        let now = audit.namespaces.generation();
        let same_set = Arc::ptr_eq(&set, audit.lock().policies());
        if same_set && now == generation {
            continue;
        }
        generation = now;
        let audit = audit.clone();
        // Tens of microseconds per object: off the async workers.
        let done = tokio::task::spawn_blocking(move || {
            let mut a = audit.lock();
            let n = a.len();
            let start = std::time::Instant::now();
            a.reaudit(set, |ns| audit.namespaces.labels(ns));
            (n, start.elapsed())
        })
        .await;
        if let Ok((objects, took)) = done {
            tracing::info!(objects, seconds = took.as_secs_f64(), "audit: judged everything again");
        }
    }
}
