//! HTTP routes: the admission router (`POST /validate`, `GET /healthz`, `GET /readyz`) and
//! the metrics router (`GET /metrics`, `GET /policies`).
//!
//! Handlers stay thin: read the body (bounded in size and time), parse the review, take the
//! policy set once, call [`admission::evaluate`] inline (it takes microseconds; a thread hop would
//! cost more) or, for a body over 64 KiB, on a blocking thread under the memory budget of
//! [`LargeReviews`], answer, then record one log line and the metrics. Everything that decides lives in
//! [`crate::admission`], shared with `podguard check`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use super::{Fetched, LargeReviews, State};
use crate::admission::{self, AdmissionRequest, Decision, Outcome, review};
use crate::context::Operation;
use crate::metrics::DecisionLabel;
use crate::policy::{CompiledPolicy, LoadError, Mode, Origin, Severity};
use crate::telemetry::DECISION_TARGET;

/// The admission router, with the body size limit and panic guard applied, and the default
/// [`CLIENT_TIMEOUT`] for reading a body.
pub fn router(state: State, max_body_bytes: usize) -> Router {
    router_with(state, max_body_bytes, CLIENT_TIMEOUT)
}

/// [`router`] with `body_timeout` for reading a request body.
pub fn router_with(state: State, max_body_bytes: usize, body_timeout: Duration) -> Router {
    let routes = Router::new()
        .route("/validate", post(move |state, body| validate(state, body, max_body_bytes, body_timeout)))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    guard(routes, max_body_bytes)
}

/// Applies what every admission route gets: bodies over `max_body_bytes` are refused with 413,
/// and a panic (a bug) becomes a 500 for that request instead of killing the connection task.
pub fn guard(routes: Router, max_body_bytes: usize) -> Router {
    routes.layer(DefaultBodyLimit::max(max_body_bytes)).layer(CatchPanicLayer::new())
}

/// How long a client may take for each step of a request by default (`--client-timeout`): the
/// TLS handshake, the request headers, the request body. The API server sends a review in one go;
/// a client trickling bytes is holding a connection and a task.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an oversized body is read (and thrown away) before answering 413, as a multiple
/// of the limit. Reading the rest lets the answer reach HTTP/2 clients: answering while the
/// client still sends makes the server reset the stream, and clients then report a framing
/// error instead of the 413. Past this, the stream is reset anyway.
const DRAIN_FACTOR: usize = 4;

/// Why a body was not read.
enum BodyError {
    TooLarge,
    TimedOut,
    Broken,
}

/// Reads `body` whole when it holds at most `limit` bytes. An oversized body is read to its end
/// (up to [`DRAIN_FACTOR`] times the limit) and dropped, never held.
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    let read = async {
        let mut body = body;
        // Sized from the length the client announced (within the limit): grown by doubling,
        // a large body would be held in a buffer of up to twice its size, and its copies
        // along the way. The reservation is no more than a client can make podguard hold by
        // sending that many bytes: every open connection may hold one body of up to the limit.
        let announced = axum::body::HttpBody::size_hint(&body).exact().and_then(|n| usize::try_from(n).ok());
        let mut buf = bytes::BytesMut::with_capacity(announced.filter(|&n| n <= limit).unwrap_or(0));
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return Err(BodyError::Broken) };
            let Ok(data) = frame.into_data() else { continue };
            seen = seen.saturating_add(data.len());
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > limit.saturating_mul(DRAIN_FACTOR) {
                return Err(BodyError::TooLarge);
            } else if !buf.is_empty() {
                buf = bytes::BytesMut::new();
            }
        }
        if seen > limit { Err(BodyError::TooLarge) } else { Ok(buf.freeze()) }
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(BodyError::TimedOut))
}

async fn validate(
    Extract(state): Extract<State>,
    body: Body,
    max_body_bytes: usize,
    body_timeout: Duration,
) -> Response {
    let started = Instant::now();
    let body = match read_body(body, max_body_bytes, body_timeout).await {
        Ok(body) => body,
        Err(e) => {
            state.metrics.record(DecisionLabel::Invalid, None, "", started.elapsed());
            let (status, why) = match e {
                BodyError::TooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over the limit of {max_body_bytes} bytes\n"),
                ),
                BodyError::TimedOut => (
                    StatusCode::REQUEST_TIMEOUT,
                    format!("request body not received within {} ms\n", body_timeout.as_millis()),
                ),
                BodyError::Broken => (StatusCode::BAD_REQUEST, "request body could not be read\n".to_owned()),
            };
            return (status, why).into_response();
        }
    };
    let request = match review::parse(&body) {
        Ok(request) => request,
        Err(e) => {
            state.metrics.record(DecisionLabel::Invalid, None, "", started.elapsed());
            tracing::warn!(error = %e, "refused a request that is not an AdmissionReview");
            return (StatusCode::BAD_REQUEST, one_line(&e.to_string(), MAX_REASON_CHARS)).into_response();
        }
    };
    // The request holds its own copy of the object: the body need not wait with it.
    let size = body.len();
    drop(body);
    // Allowing by default while nothing is loaded would let through what any policy refuses;
    // a 503 leaves the answer to the API server's failurePolicy, which is the operator's choice.
    if !state.readiness.has_policies() {
        return unavailable(&state, &request, started, "podguard has no policy set in force yet".into());
    }
    let labels = match namespace_labels(&state, &request).await {
        Ok(labels) => labels,
        Err(why) => return unavailable(&state, &request, started, why),
    };
    let policies = state.store.current();
    let (decision, request, body) = if size <= LargeReviews::INLINE_BYTES {
        let decision = admission::evaluate(&policies, &state.settings, &request, labels.as_deref());
        let json = decision.review_json(&request.uid);
        (decision, request, json)
    } else {
        let kib = state.large_reviews.cost(size);
        let budget = state.large_reviews.permits.clone();
        let Ok(Ok(permit)) = tokio::time::timeout(body_timeout, budget.acquire_many_owned(kib)).await else {
            let why = "podguard is evaluating as many large requests as its memory budget allows".to_owned();
            return unavailable(&state, &request, started, why);
        };
        let shared = state.clone();
        let evaluated = tokio::task::spawn_blocking(move || {
            let decision = admission::evaluate(&policies, &shared.settings, &request, labels.as_deref());
            let json = decision.review_json(&request.uid);
            // Before the permit goes, so that the next large review starts from a small heap.
            crate::memory::release();
            drop(permit);
            (decision, request, json)
        })
        .await;
        match evaluated {
            Ok(done) => done,
            // The evaluation panicked (a bug): answer like the panic guard does.
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    };
    let elapsed = started.elapsed();
    let label = DecisionLabel::of(&decision);
    state.metrics.record(label, Some(request.operation), &request.kind.kind, elapsed);
    state.metrics.record_violations(&decision);
    log_decision(&request, &decision, label, elapsed);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The labels of the request's namespace: from the cache, else read live when the request is one
/// podguard evaluates. `Err` when they cannot be known: deciding without them could apply the
/// wrong mode, or miss a policy's `namespaceSelector`.
async fn namespace_labels(
    state: &State,
    request: &AdmissionRequest,
) -> Result<Option<super::Labels>, String> {
    let Some(ns) = request.namespace.as_deref().filter(|ns| !ns.is_empty()) else {
        return Ok(None);
    };
    if let Some(labels) = state.namespaces.labels(ns) {
        return Ok(Some(labels));
    }
    let kind = &request.kind;
    let evaluated = matches!(request.operation, Operation::Create | Operation::Update)
        && (crate::object::group_of(&kind.kind) == Some(kind.group.as_str())
            || kind.kind == crate::object::LEGACY_EPHEMERAL_KIND)
        && !state.settings.exemptions.namespaces.contains(ns);
    let Some(fetch) = evaluated.then(|| state.namespaces.fetch(ns)).flatten() else {
        return Ok(None);
    };
    let fetched = fetch.await;
    state.metrics.namespace_fetched(fetched.label());
    match fetched {
        Fetched::Labels(labels) => Ok(Some(labels)),
        Fetched::Missing => Ok(None),
        Fetched::Failed(why) => {
            tracing::warn!(namespace = ns, uid = %request.uid, error = %why, "namespace labels unknown; not deciding");
            Err(format!("podguard cannot read the labels of namespace {ns:?}: {why}"))
        }
    }
}

/// HTTP 503 with a one-line reason: podguard does not decide this request, the webhook's
/// `failurePolicy` does.
fn unavailable(state: &State, request: &AdmissionRequest, started: Instant, why: String) -> Response {
    state.metrics.record(
        DecisionLabel::Unavailable,
        Some(request.operation),
        &request.kind.kind,
        started.elapsed(),
    );
    tracing::warn!(
        target: DECISION_TARGET,
        uid = %request.uid,
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or_default(),
        name = request.name.as_deref().unwrap_or_default(),
        operation = request.operation.as_str(),
        decision = DecisionLabel::Unavailable.as_str(),
        reason = %why,
        "decision"
    );
    let line = format!("{}; the webhook's failurePolicy decides\n", why.replace(['\n', '\r'], " "));
    (StatusCode::SERVICE_UNAVAILABLE, line).into_response()
}

/// Longest reason of a 400 answer, in characters; the rest is cut.
const MAX_REASON_CHARS: usize = 512;

/// `text` as one line ending in `\n`: control characters written as escapes (the reason echoes
/// what the client sent, and a newline in it would break the line), cut after `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 4);
    let mut written = 0;
    let mut piece = String::new();
    for c in text.chars() {
        piece.clear();
        match c {
            '\n' => piece.push_str("\\n"),
            '\r' => piece.push_str("\\r"),
            '\t' => piece.push_str("\\t"),
            c if c.is_control() => piece.extend(c.escape_unicode()),
            c => piece.push(c),
        }
        let len = piece.chars().count();
        if written + len > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        written += len;
    }
    out.push('\n');
    out
}

/// The one log line of a decision.
fn log_decision(request: &AdmissionRequest, decision: &Decision, label: DecisionLabel, elapsed: Duration) {
    // Rendered plain first and escaped in one pass: through tracing's Display path every piece
    // of every `policy/rule=mode` would be escaped on its own.
    let violations = violated(decision);
    let reason = match &decision.outcome {
        Outcome::Evaluated => None,
        Outcome::Skipped(reason) => Some(reason.clone()),
        Outcome::Unreadable(e) => Some(e.to_string()),
        Outcome::Refused(why) => Some(why.clone()),
    };
    tracing::info!(
        target: DECISION_TARGET,
        uid = %request.uid,
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or_default(),
        name = request.name.as_deref().unwrap_or_default(),
        user = %request.user_info.username,
        operation = request.operation.as_str(),
        dry_run = request.dry_run.unwrap_or(false),
        decision = label.as_str(),
        allowed = decision.allowed,
        violations = violations.as_str(),
        controls = crate::compliance::compact_union(decision.violations.iter().map(|v| &v.controls)).as_str(),
        findings = decision.found(),
        reason,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "decision"
    );
}

/// `policy/rule=mode` of every violated rule, each once, comma-separated (rules whose violations
/// were only counted included).
fn violated(decision: &Decision) -> String {
    let mut seen: Vec<(&str, &str, Mode)> = Vec::new();
    let mut out = String::new();
    let kept = decision
        .violations
        .iter()
        .flat_map(|v| std::iter::once(&v.policy).chain(&v.also).map(move |p| (&**p, &*v.rule, v.mode)));
    let counted = decision.omitted.iter().map(|o| (&*o.policy, &*o.rule, o.mode));
    for key in kept.chain(counted) {
        if seen.contains(&key) {
            continue;
        }
        if !seen.is_empty() {
            out.push(',');
        }
        // Pushed piece by piece rather than with `write!`: this runs for every denial.
        let (policy, rule, mode) = key;
        out.push_str(policy);
        out.push('/');
        out.push_str(rule);
        out.push('=');
        out.push_str(mode.as_str());
        seen.push(key);
    }
    out
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(Extract(state): Extract<State>) -> Response {
    let missing = state
        .readiness
        .missing()
        .or_else(|| (!state.namespaces.ready()).then_some("namespace labels not synced yet"));
    match missing {
        None => "ok\n".into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}

/// The metrics router: Prometheus text and the policy listing, plain HTTP.
pub fn metrics_router(state: State) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/policies", get(policies))
        .route("/report", get(report))
        .with_state(state)
}

/// `GET /report[?namespace=NS]`: what the background audit found, per namespace and object, with
/// the mode each finding has at admission now and the one it would have if the namespace
/// enforced. 404 when the audit does not run.
async fn report(
    Extract(state): Extract<State>,
    axum::extract::Query(q): axum::extract::Query<ReportQuery>,
) -> Response {
    let Some(audit) = state.audit.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "the audit does not run (it needs --configmaps; --audit false turns it off)\n",
        )
            .into_response();
    };
    // A snapshot of a large cluster takes a while to build: off the async workers.
    let built = tokio::task::spawn_blocking(move || {
        let a = audit.lock();
        let mut snapshot = a.snapshot(q.namespace.as_deref(), audit.kinds(), |ns| audit.labels(ns));
        snapshot.writer = audit.is_writer();
        serde_json::to_vec(&snapshot)
    })
    .await;
    match built {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "cannot build the report\n").into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ReportQuery {
    namespace: Option<String>,
}

async fn metrics(Extract(state): Extract<State>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.metrics.encode(),
    )
        .into_response()
}

/// `GET /policies`: what is in force and what failed to load.
#[derive(serde::Serialize)]
struct Listing<'a> {
    policies: Vec<PolicyEntry<'a>>,
    errors: Vec<LoadError>,
}

#[derive(serde::Serialize)]
struct PolicyEntry<'a> {
    name: &'a str,
    origin: &'a Origin,
    document: usize,
    mode: Mode,
    severity: Severity,
    rules: Vec<&'a str>,
    controls: Vec<String>,
}

impl<'a> PolicyEntry<'a> {
    fn of(p: &'a CompiledPolicy) -> Self {
        Self {
            name: &p.name,
            origin: &p.origin,
            document: p.document,
            mode: p.mode.unwrap_or(Mode::Enforce),
            severity: p.severity,
            rules: p.rules.iter().map(|r| &*r.name).collect(),
            controls: p.controls.iter().map(ToString::to_string).collect(),
        }
    }
}

async fn policies(Extract(state): Extract<State>) -> Response {
    let set = state.store.current();
    let listing = Listing {
        policies: set.policies().iter().map(|p| PolicyEntry::of(p)).collect(),
        errors: state.store.errors(),
    };
    axum::Json(listing).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use rstest::rstest;
    use tower::ServiceExt;

    use super::*;
    use crate::admission::Settings;
    use crate::metrics::Metrics;
    use crate::policy::{Origin, load_str};
    use crate::server::{NamespaceLabels, NoNamespaceLabels, Readiness, Shared};
    use crate::source::{SourceKey, Store};

    const LIMIT: usize = 64 * 1024;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// Namespaces labelled `podguard.dev/mode: warn`, from a fixed map.
    #[derive(Debug)]
    struct WarnNamespaces(Arc<BTreeMap<String, String>>);

    impl NamespaceLabels for WarnNamespaces {
        fn labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
            (namespace == "payments").then(|| self.0.clone())
        }
    }

    fn state_with(namespaces: Arc<dyn NamespaceLabels>, ready: bool) -> State {
        let store = Arc::new(Store::new());
        let text = String::from_utf8(fixture("policies/webhook.yaml")).unwrap();
        let policies = load_str(&Origin::File { path: "webhook.yaml".into() }, &text).unwrap();
        store.update(SourceKey::File { path: "webhook.yaml".into() }, Ok(policies));
        let readiness = Arc::new(Readiness::default());
        readiness.tls_loaded();
        if ready {
            readiness.policies_loaded();
        }
        State(Arc::new(Shared {
            audit: None,
            metrics: Arc::new(Metrics::new()),
            store,
            settings: Settings::default(),
            namespaces,
            readiness,
            large_reviews: crate::server::LargeReviews::default(),
        }))
    }

    fn state() -> State {
        state_with(Arc::new(NoNamespaceLabels), true)
    }

    async fn call(app: Router, method: Method, uri: &str, body: Vec<u8>) -> (StatusCode, String) {
        let req = Request::builder().method(method).uri(uri).body(Body::from(body)).unwrap();
        let res = app.oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn review(app: Router, path: &str) -> serde_json::Value {
        let (status, body) = call(app, Method::POST, "/validate", fixture(path)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["response"].clone()
    }

    #[rstest]
    #[case::get_validate(Method::GET, "/validate", StatusCode::METHOD_NOT_ALLOWED)]
    #[case::post_healthz(Method::POST, "/healthz", StatusCode::METHOD_NOT_ALLOWED)]
    #[case::unknown_path(Method::POST, "/mutate", StatusCode::NOT_FOUND)]
    #[case::healthz(Method::GET, "/healthz", StatusCode::OK)]
    #[case::readyz(Method::GET, "/readyz", StatusCode::OK)]
    #[tokio::test]
    async fn methods_and_paths(#[case] method: Method, #[case] uri: &str, #[case] want: StatusCode) {
        let (status, _) = call(router(state(), LIMIT), method, uri, Vec::new()).await;
        assert_eq!(status, want);
    }

    #[tokio::test]
    async fn readyz_waits_for_policies() {
        let s = state_with(Arc::new(NoNamespaceLabels), false);
        let (status, body) = call(router(s.clone(), LIMIT), Method::GET, "/readyz", Vec::new()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no policy set"), "{body}");
        s.readiness.policies_loaded();
        let (status, _) = call(router(s, LIMIT), Method::GET, "/readyz", Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn validate_answers_503_until_the_first_policy_set_is_in_force() {
        let s = state_with(Arc::new(NoNamespaceLabels), false);
        let (status, body) =
            call(router(s.clone(), LIMIT), Method::POST, "/validate", fixture("reviews/pod-violating.json"))
                .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "podguard has no policy set in force yet; the webhook's failurePolicy decides\n");
        let text = s.metrics.encode();
        assert!(
            text.contains(
                r#"podguard_admission_requests_total{decision="unavailable",operation="CREATE",kind="Pod"} 1"#
            ),
            "{text}"
        );
        s.readiness.policies_loaded();
        let r = review(router(s, LIMIT), "reviews/pod-violating.json").await;
        assert_eq!(r["allowed"], false);
    }

    /// A cache that knows no namespace and answers every live read with `fetched`, counting
    /// the reads.
    #[derive(Debug)]
    struct Unseen {
        fetched: Fetched,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl NamespaceLabels for Unseen {
        fn labels(&self, _: &str) -> Option<Arc<BTreeMap<String, String>>> {
            None
        }

        fn fetch(&self, _: &str) -> Option<futures::future::BoxFuture<'static, Fetched>> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let fetched = self.fetched.clone();
            Some(Box::pin(async move { fetched }))
        }
    }

    fn unseen(fetched: Fetched) -> Arc<Unseen> {
        Arc::new(Unseen { fetched, reads: Default::default() })
    }

    #[tokio::test]
    async fn a_namespace_missing_from_the_cache_is_read_and_its_mode_honoured() {
        let warn = Arc::new(BTreeMap::from([("podguard.dev/mode".to_owned(), "warn".to_owned())]));
        let namespaces = unseen(Fetched::Labels(warn));
        let s = state_with(namespaces.clone(), true);
        let r = review(router(s.clone(), LIMIT), "reviews/pod-violating.json").await;
        assert_eq!(r["allowed"], true, "{r}");
        assert_eq!(namespaces.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(s.metrics.encode().contains(r#"podguard_namespace_fetches_total{result="found"} 1"#));
    }

    #[tokio::test]
    async fn a_namespace_that_cannot_be_read_is_not_decided() {
        let s = state_with(
            unseen(Fetched::Failed("reading namespace \"x\" took longer than 2000 ms".into())),
            true,
        );
        let (status, body) =
            call(router(s.clone(), LIMIT), Method::POST, "/validate", fixture("reviews/pod-violating.json"))
                .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body.lines().count(), 1, "{body}");
        assert!(body.starts_with("podguard cannot read the labels of namespace "), "{body}");
        assert!(body.contains("took longer than 2000 ms; the webhook's failurePolicy decides"), "{body}");
        assert!(s.metrics.encode().contains(r#"podguard_namespace_fetches_total{result="failed"} 1"#));
    }

    #[tokio::test]
    async fn a_namespace_that_does_not_exist_is_decided_without_labels() {
        let s = state_with(unseen(Fetched::Missing), true);
        let r = review(router(s, LIMIT), "reviews/pod-violating.json").await;
        assert_eq!(r["allowed"], false, "cluster default mode (enforce) applies");
    }

    #[tokio::test]
    async fn exempt_namespaces_and_skipped_operations_read_nothing() {
        let body = String::from_utf8(fixture("reviews/pod-violating.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let ns = v["request"]["namespace"].as_str().unwrap().to_owned();
        let namespaces = unseen(Fetched::Failed("must not be read".into()));
        let mut s = state_with(namespaces.clone(), true);
        Arc::get_mut(&mut s.0).unwrap().settings.exemptions.namespaces.insert(ns);
        let r = review(router(s, LIMIT), "reviews/pod-violating.json").await;
        assert_eq!(r["allowed"], true);

        let mut delete = v.clone();
        delete["request"]["operation"] = "DELETE".into();
        let s = state_with(namespaces.clone(), true);
        let (status, _) =
            call(router(s, LIMIT), Method::POST, "/validate", delete.to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(namespaces.reads.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[rstest]
    #[case::malformed("reviews/malformed.json", "invalid AdmissionReview JSON")]
    #[case::wrong_api_version("reviews/wrong-api-version.json", "admission.k8s.io/v1beta1")]
    #[tokio::test]
    async fn bad_reviews_get_400_with_one_line(#[case] path: &str, #[case] needle: &str) {
        let (status, body) = call(router(state(), LIMIT), Method::POST, "/validate", fixture(path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains(needle), "{body}");
        assert_eq!(body.trim_end().lines().count(), 1, "{body}");
    }

    #[tokio::test]
    async fn a_400_reason_stays_one_line_whatever_the_client_sent() {
        let body = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"Admission\nReview\r\u0007{}","request":{{"uid":"1","kind":{{"kind":"Pod"}},"operation":"CREATE","userInfo":{{}}}}}}"#,
            "x".repeat(2_000)
        );
        let (status, text) = call(router(state(), LIMIT), Method::POST, "/validate", body.into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with("…\n"), "cut: {text}");
        assert!(text.contains(r"Admission\nReview\r\u{7}x"), "{text}");
        assert!(text.chars().count() <= MAX_REASON_CHARS + 2);
    }

    #[tokio::test]
    async fn oversized_body_gets_413() {
        let (status, _) =
            call(router(state(), LIMIT), Method::POST, "/validate", vec![b' '; LIMIT + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500() {
        async fn boom() -> &'static str {
            panic!("a bug")
        }
        let routes = Router::new().route("/boom", get(boom));
        let (status, _) = call(guard(routes, LIMIT), Method::GET, "/boom", Vec::new()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn violating_pod_is_denied_and_counted() {
        let s = state();
        let r = review(router(s.clone(), LIMIT), "reviews/pod-violating.json").await;
        assert_eq!(r["allowed"], false);
        assert_eq!(r["status"]["code"], 403);
        let text = s.metrics.encode();
        assert!(
            text.contains(
                r#"podguard_admission_requests_total{decision="denied",operation="CREATE",kind="Pod"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"podguard_violations_total{policy="no-latest-tag",mode="enforce"} 2"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn namespace_label_hook_lowers_the_mode() {
        let labels = BTreeMap::from([("podguard.dev/mode".to_owned(), "warn".to_owned())]);
        let s = state_with(Arc::new(WarnNamespaces(Arc::new(labels))), true);
        let r = review(router(s, LIMIT), "reviews/pod-violating.json").await;
        assert_eq!(r["allowed"], true, "{r}");
        assert!(
            r["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("no-latest-tag"))
        );
    }

    #[tokio::test]
    async fn report_is_404_without_the_audit() {
        let (status, body) = call(metrics_router(state()), Method::GET, "/report", Vec::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("--configmaps"), "{body}");
    }

    #[tokio::test]
    async fn policies_lists_what_is_in_force() {
        let (status, body) = call(metrics_router(state()), Method::GET, "/policies", Vec::new()).await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let names: Vec<&str> =
            v["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["no-latest-tag", "read-only-root", "readiness-probes", "no-default-namespace"]);
        assert_eq!(v["policies"][2]["mode"], "warn");
        assert_eq!(v["policies"][0]["origin"], serde_json::json!({"type": "file", "path": "webhook.yaml"}));
        assert_eq!(v["errors"], serde_json::json!([]));
    }

    #[test]
    fn violated_lists_each_rule_once() {
        let s = state();
        let req = review::parse(&fixture("reviews/pod-violating.json")).unwrap();
        let d = admission::evaluate(&s.store.current(), &s.settings, &req, None);
        assert_eq!(
            violated(&d),
            "no-latest-tag/explicit-tag=enforce,read-only-root/read-only=enforce,readiness-probes/readiness=warn"
        );
    }
}
