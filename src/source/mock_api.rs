//! A scripted Kubernetes API server for tests of the watch path: plain HTTP on `127.0.0.1:0`,
//! speaking just enough of the API for kube-rs's real client, watcher, reflector and event
//! recorder to run against it.
//!
//! It serves ConfigMaps (namespaced, with `labelSelector`) and Namespaces: lists carry a
//! `resourceVersion`; watches stream `ADDED`/`MODIFIED`/`DELETED` as newline-delimited JSON from
//! the requested version, and an object that stops matching the selector arrives as `DELETED`, as
//! with a real API server. [`MockApi::expire`] compacts the history and sends `410 Gone` to every
//! open watch, so clients must relist; [`MockApi::set_down`] makes every request fail with 503 and
//! cuts open watches. Events posted to `events.k8s.io/v1` are recorded for assertions.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use futures::channel::mpsc;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    ConfigMaps,
    Namespaces,
}

impl Resource {
    fn list_kind(self) -> &'static str {
        match self {
            Self::ConfigMaps => "ConfigMapList",
            Self::Namespaces => "NamespaceList",
        }
    }
}

/// One change: the object before and after (`None` = absent), at a resource version.
#[derive(Clone, Debug)]
struct Change {
    resource: Resource,
    rv: u64,
    old: Option<Value>,
    new: Option<Value>,
}

#[derive(Clone, Debug)]
enum Notice {
    Change(Change),
    /// History compacted: open watches get `410 Gone`.
    Gone,
    /// Outage: open watches are cut.
    Cut,
}

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    /// Current objects by `(resource, namespace, name)`.
    objects: BTreeMap<(u8, String, String), Value>,
    history: Vec<Change>,
    /// Watches from a version below this get `410 Gone`.
    oldest: u64,
    down: bool,
    /// Events received (POST and PATCH bodies, in order).
    events: Vec<Value>,
    /// Every request, as `METHOD path?query`.
    requests: Vec<String>,
    /// Namespaces a GET finds but no list or watch has shown yet (a watch that lags).
    unseen_namespaces: BTreeMap<String, Value>,
    /// How long a GET of one namespace takes.
    get_delay: std::time::Duration,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    notices: broadcast::Sender<Notice>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running mock; the server stops when it is dropped.
pub(crate) struct MockApi {
    shared: Shared,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(resource: Resource, obj: &Value) -> (u8, String, String) {
    let meta = &obj["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (resource as u8, s(&meta["namespace"]), s(&meta["name"]))
}

impl MockApi {
    /// Starts the server.
    pub(crate) async fn start() -> Self {
        let (notices, _) = broadcast::channel(256);
        let shared = Shared { inner: Arc::default(), notices };
        let app = Router::new()
            .route("/api/v1/namespaces", get(namespaces))
            .route("/api/v1/namespaces/{ns}", get(namespace))
            .route("/api/v1/namespaces/{ns}/configmaps", get(configmaps))
            .route("/apis/events.k8s.io/v1/namespaces/{ns}/events", post(event))
            .route("/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}", patch(event_patch))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { shared, addr, task }
    }

    /// A kube client for this server.
    pub(crate) fn client(&self) -> kube::Client {
        let uri = format!("http://{}", self.addr).parse().unwrap();
        kube::Client::try_from(kube::Config::new(uri)).unwrap()
    }

    fn write(&self, resource: Resource, obj: Option<Value>, delete: Option<(String, String)>, quiet: bool) {
        let mut inner = self.shared.lock();
        inner.rv += 1;
        let rv = inner.rv;
        let (k, new) = match (obj, delete) {
            (Some(mut obj), _) => {
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                obj["metadata"]["uid"] = json!(format!("uid-{}", obj["metadata"]["name"].as_str().unwrap()));
                (key(resource, &obj), Some(obj))
            }
            (None, Some((ns, name))) => ((resource as u8, ns, name), None),
            (None, None) => unreachable!(),
        };
        let mut old = match &new {
            Some(obj) => inner.objects.insert(k.clone(), obj.clone()),
            None => inner.objects.remove(&k),
        };
        if new.is_none() {
            // A DELETED event carries the object at its deletion's version.
            if let Some(o) = &mut old {
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
            }
        }
        let change = Change { resource, rv, old, new };
        if quiet {
            // Changed while the watch history is lost: only a relist can see it.
            return;
        }
        inner.history.push(change.clone());
        drop(inner);
        let _ = self.shared.notices.send(Notice::Change(change));
    }

    /// Creates or replaces a ConfigMap (a `k8s_openapi` object or any JSON of one).
    pub(crate) fn put_configmap(&self, cm: &k8s_openapi::api::core::v1::ConfigMap) {
        self.write(Resource::ConfigMaps, Some(serde_json::to_value(cm).unwrap()), None, false);
    }

    /// Deletes a ConfigMap.
    pub(crate) fn delete_configmap(&self, ns: &str, name: &str) {
        self.write(Resource::ConfigMaps, None, Some((ns.into(), name.into())), false);
    }

    /// Creates or replaces a Namespace with `labels`.
    pub(crate) fn put_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels,
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]}});
        self.write(Resource::Namespaces, Some(ns), None, false);
    }

    /// A Namespace with `labels` that a GET finds but lists and watches do not show: what a
    /// client sees in the moment between a namespace's creation and its watch event.
    pub(crate) fn put_namespace_unseen(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        self.shared.lock().unseen_namespaces.insert(name.to_owned(), ns);
    }

    /// Makes every GET of one namespace take `delay`.
    pub(crate) fn delay_namespace_gets(&self, delay: std::time::Duration) {
        self.shared.lock().get_delay = delay;
    }

    /// Compacts the history: open watches get `410 Gone`, and so does any watch from an older
    /// version. `changes` run first without reaching any watch, so only a relist sees them.
    pub(crate) fn expire(&self, changes: impl FnOnce(&QuietWriter<'_>)) {
        changes(&QuietWriter(self));
        let mut inner = self.shared.lock();
        inner.oldest = inner.rv + 1;
        inner.history.clear();
        drop(inner);
        let _ = self.shared.notices.send(Notice::Gone);
    }

    /// Takes the server down (every request gets 503, open watches are cut) or back up.
    pub(crate) fn set_down(&self, down: bool) {
        self.shared.lock().down = down;
        if down {
            let _ = self.shared.notices.send(Notice::Cut);
        }
    }

    /// Events received so far.
    pub(crate) fn events(&self) -> Vec<Value> {
        self.shared.lock().events.clone()
    }

    /// Requests received so far, as `METHOD path?query`, marked ` (metadata)` when metadata-only.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }
}

/// Writes that bypass open watches (see [`MockApi::expire`]).
pub(crate) struct QuietWriter<'a>(&'a MockApi);

impl QuietWriter<'_> {
    /// Creates or replaces a ConfigMap unseen by watches.
    pub(crate) fn put_configmap(&self, cm: &k8s_openapi::api::core::v1::ConfigMap) {
        self.0.write(Resource::ConfigMaps, Some(serde_json::to_value(cm).unwrap()), None, true);
    }

    /// Deletes a ConfigMap unseen by watches.
    pub(crate) fn delete_configmap(&self, ns: &str, name: &str) {
        self.0.write(Resource::ConfigMaps, None, Some((ns.into(), name.into())), true);
    }
}

/// What a list or watch request asks for.
struct Filter {
    resource: Resource,
    namespace: Option<String>,
    /// `key=value` pairs, all required.
    labels: Vec<(String, String)>,
    /// Metadata only (`Accept: application/json;as=PartialObjectMetadata...`), as kube-rs's
    /// metadata watcher asks.
    metadata_only: bool,
}

impl Filter {
    fn new(
        resource: Resource,
        namespace: Option<String>,
        query: &HashMap<String, String>,
        headers: &HeaderMap,
    ) -> Self {
        let metadata_only = headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
        let labels = query
            .get("labelSelector")
            .map(|s| {
                s.split(',')
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.trim_end_matches('=').to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self { resource, namespace, labels, metadata_only }
    }

    /// An object as this request gets it: whole, or its metadata only.
    fn shape(&self, obj: Value) -> Value {
        if self.metadata_only {
            let metadata = &obj["metadata"];
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": metadata})
        } else {
            obj
        }
    }

    fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        self.namespace.as_deref().is_none_or(|ns| meta["namespace"] == ns)
            && self.labels.iter().all(|(k, v)| meta["labels"][k] == v.as_str())
    }

    /// The watch event a change is for this watch, if any.
    fn event(&self, change: &Change) -> Option<Value> {
        if change.resource != self.resource {
            return None;
        }
        let was = change.old.as_ref().filter(|o| self.matches(o));
        let is = change.new.as_ref().filter(|o| self.matches(o));
        let (kind, obj) = match (was, is) {
            (None, Some(o)) => ("ADDED", o.clone()),
            (Some(_), Some(o)) => ("MODIFIED", o.clone()),
            (Some(o), None) => {
                // Left the selection (deleted or relabelled): the last state, at this version.
                let mut o = change.new.clone().unwrap_or_else(|| o.clone());
                o["metadata"]["resourceVersion"] = json!(change.rv.to_string());
                ("DELETED", o)
            }
            (None, None) => return None,
        };
        Some(json!({"type": kind, "object": self.shape(obj)}))
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

fn unavailable() -> Response {
    let body = status(503, "ServiceUnavailable", "the mock API server is down").to_string();
    (StatusCode::SERVICE_UNAVAILABLE, [("content-type", "application/json")], body).into_response()
}

async fn namespaces(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filter = Filter::new(Resource::Namespaces, None, &q, &headers);
    serve(s, filter, q, "/api/v1/namespaces".into())
}

async fn namespace(State(s): State<Shared>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let filter = Filter::new(Resource::Namespaces, None, &HashMap::new(), &headers);
    let (found, delay) = {
        let mut inner = s.lock();
        let shape = if filter.metadata_only { " (metadata)" } else { "" };
        inner.requests.push(format!("GET /api/v1/namespaces/{name}{shape}"));
        if inner.down {
            return unavailable();
        }
        let watched = inner.objects.get(&(Resource::Namespaces as u8, String::new(), name.clone()));
        (watched.or(inner.unseen_namespaces.get(&name)).cloned(), inner.get_delay)
    };
    tokio::time::sleep(delay).await;
    match found {
        Some(ns) => ([("content-type", "application/json")], filter.shape(ns).to_string()).into_response(),
        None => {
            let body = status(404, "NotFound", &format!("namespaces \"{name}\" not found")).to_string();
            (StatusCode::NOT_FOUND, [("content-type", "application/json")], body).into_response()
        }
    }
}

async fn configmaps(
    State(s): State<Shared>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    serve(s, Filter::new(Resource::ConfigMaps, Some(ns), &q, &headers), q, path)
}

fn serve(s: Shared, filter: Filter, q: HashMap<String, String>, path: String) -> Response {
    let mut query: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    query.sort();
    let mut inner = s.lock();
    let shape = if filter.metadata_only { " (metadata)" } else { "" };
    inner.requests.push(format!("GET {path}?{}{shape}", query.join("&")));
    if inner.down {
        return unavailable();
    }
    if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let from: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let (tx, rx) = mpsc::unbounded::<Result<Bytes, std::io::Error>>();
        let line = |v: Value| Ok(Bytes::from(format!("{v}\n")));
        if from < inner.oldest {
            let gone = status(410, "Expired", "too old resource version");
            let _ = tx.unbounded_send(line(json!({"type": "ERROR", "object": gone})));
        } else {
            let mut live = s.notices.subscribe();
            let mut last = from;
            for c in inner.history.iter().filter(|c| c.rv > from) {
                if let Some(e) = filter.event(c) {
                    let _ = tx.unbounded_send(line(e));
                }
                last = c.rv;
            }
            tokio::spawn(async move {
                while let Ok(notice) = live.recv().await {
                    let sent = match notice {
                        Notice::Change(c) if c.rv > last => {
                            last = c.rv;
                            filter.event(&c).is_none_or(|e| tx.unbounded_send(line(e)).is_ok())
                        }
                        Notice::Change(_) => true,
                        Notice::Gone => {
                            let gone = status(410, "Expired", "too old resource version");
                            let _ = tx.unbounded_send(line(json!({"type": "ERROR", "object": gone})));
                            false
                        }
                        Notice::Cut => false,
                    };
                    if !sent {
                        break;
                    }
                }
            });
        }
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(rx))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((r, _, _), o)| *r == filter.resource as u8 && filter.matches(o))
        .map(|(_, o)| {
            // A real API server leaves apiVersion and kind off list items.
            let mut o = filter.shape(o.clone());
            if let Some(m) = o.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
            o
        })
        .collect();
    let (api_version, kind) = match filter.metadata_only {
        true => ("meta.k8s.io/v1", "PartialObjectMetadataList"),
        false => ("v1", filter.resource.list_kind()),
    };
    let body = json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn event(State(s): State<Shared>, Path(ns): Path<String>, body: String) -> Response {
    record_event(&s, format!("POST /apis/events.k8s.io/v1/namespaces/{ns}/events"), body, StatusCode::CREATED)
}

async fn event_patch(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: String,
) -> Response {
    let path = format!("PATCH /apis/events.k8s.io/v1/namespaces/{ns}/events/{name}");
    record_event(&s, path, body, StatusCode::OK)
}

fn record_event(s: &Shared, request: String, body: String, code: StatusCode) -> Response {
    let mut inner = s.lock();
    inner.requests.push(request);
    if inner.down {
        return unavailable();
    }
    let Ok(event) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    inner.events.push(event.clone());
    (code, [("content-type", "application/json")], event.to_string()).into_response()
}
