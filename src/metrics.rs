//! Prometheus metrics of the webhook: one [`Metrics`] struct, served as text on the plain
//! metrics port.
//!
//! Labels are bounded on purpose: decisions, operations and kinds are closed sets of
//! `&'static str`, policy names are the set's own `Arc<str>` (as many as policies ever loaded);
//! never a namespace, user or object name, which would grow without limit.

use std::sync::Arc;
use std::time::Duration;

pub use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::admission::{Decision, Outcome};
use crate::context::Operation;

/// Upper bounds of the latency histogram, in seconds: fine steps below a millisecond (where
/// every normal decision falls) and coarse ones up to the API server's 10 s webhook limit.
const DURATION_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What happened to a request, as the `decision` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecisionLabel {
    /// Evaluated and admitted (possibly with warnings or audit annotations).
    Allowed,
    /// Evaluated and refused.
    Denied,
    /// Admitted without evaluation (DELETE, exempt, unchanged pod spec, not a pod kind).
    Skipped,
    /// The object could not be read; answered per `--on-error`.
    Error,
    /// Not an AdmissionReview, or a body too large or too slow (HTTP 400, 413, 408).
    Invalid,
    /// Not decided (HTTP 503): no policy set in force yet, the namespace's labels could not be
    /// read, or the budget of large reviews stayed full. The webhook's `failurePolicy` decides.
    Unavailable,
}

impl DecisionLabel {
    /// The label for a decision.
    pub fn of(decision: &Decision) -> Self {
        match (&decision.outcome, decision.allowed) {
            (Outcome::Unreadable(_), _) => Self::Error,
            (Outcome::Skipped(_), _) => Self::Skipped,
            (Outcome::Refused(_), _) => Self::Denied,
            (Outcome::Evaluated, true) => Self::Allowed,
            (Outcome::Evaluated, false) => Self::Denied,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Skipped => "skipped",
            Self::Error => "error",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    decision: &'static str,
    operation: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FetchLabels {
    result: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ViolationLabels {
    policy: Arc<str>,
    mode: &'static str,
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
    violations: Family<ViolationLabels, Counter>,
    load_errors: Counter,
    namespace_fetches: Family<FetchLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the request metrics (those of the policy sources and the audit come from
    /// their owners through [`Metrics::with`]).
    pub fn new() -> Self {
        Self::with(Vec::new())
    }

    /// Registers the request metrics and `collectors`, read at each scrape.
    pub fn with(collectors: Vec<Box<dyn Collector>>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Histogram::new(DURATION_BUCKETS.iter().copied());
        let violations = Family::<ViolationLabels, Counter>::default();
        let load_errors = Counter::default();
        let namespace_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "podguard_admission_requests",
            "Admission requests by decision, operation and kind",
            requests.clone(),
        );
        registry.register(
            "podguard_admission_duration_seconds",
            "Time from request body to response body, per admission request",
            duration.clone(),
        );
        registry.register(
            "podguard_violations",
            "Policy violations found, by policy and effective mode",
            violations.clone(),
        );
        registry.register(
            "podguard_policy_load_errors",
            "Policy loads refused (a file keeps its last good policies; a ConfigMap contributes none until fixed)",
            load_errors.clone(),
        );
        registry.register(
            "podguard_namespace_fetches",
            "Requests that missed the namespace label cache and looked the namespace up live, by result (found, missing, failed)",
            namespace_fetches.clone(),
        );
        registry.register_collector(Box::new(LogLines));
        for c in collectors {
            registry.register_collector(c);
        }
        Self { registry, requests, duration, violations, load_errors, namespace_fetches }
    }

    /// Records one answered admission request.
    pub fn record(&self, label: DecisionLabel, operation: Option<Operation>, kind: &str, elapsed: Duration) {
        // Kinds the engine reads; anything else (bounded or not) is `other`.
        let kind = crate::object::KINDS.iter().find(|k| **k == kind).copied().unwrap_or("other");
        let operation = operation.map_or("unknown", Operation::as_str);
        self.requests.get_or_create(&RequestLabels { decision: label.as_str(), operation, kind }).inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts the violations of a decision, by policy and effective mode.
    pub fn record_violations(&self, decision: &Decision) {
        // Violations come grouped by policy: one counter lookup per run, not per finding.
        let mut rest = decision.violations.as_slice();
        while let Some(first) = rest.first() {
            let run = rest.iter().take_while(|v| v.policy == first.policy && v.mode == first.mode).count();
            let labels = ViolationLabels { policy: first.policy.clone(), mode: first.mode.as_str() };
            self.violations.get_or_create(&labels).inc_by(run as u64);
            rest = &rest[run..];
        }
        // Findings merged into another policy's count for their own policies too.
        for v in decision.violations.iter().filter(|v| !v.also.is_empty()) {
            for policy in &v.also {
                let labels = ViolationLabels { policy: policy.clone(), mode: v.mode.as_str() };
                self.violations.get_or_create(&labels).inc();
            }
        }
        // Found but not kept: counted all the same.
        for o in &decision.omitted {
            let labels = ViolationLabels { policy: o.policy.clone(), mode: o.mode.as_str() };
            self.violations.get_or_create(&labels).inc_by(o.count as u64);
        }
    }

    /// Counts one live namespace read by its result (`found`, `missing`, `failed`).
    pub fn namespace_fetched(&self, result: &'static str) {
        self.namespace_fetches.get_or_create(&FetchLabels { result }).inc();
    }

    /// Counts one refused policy load.
    pub fn policy_load_failed(&self) {
        self.load_errors.inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `podguard_log_lines_dropped`: read from the log writer at each scrape.
#[derive(Debug)]
struct LogLines;

impl Collector for LogLines {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let dropped = encoder.encode_descriptor(
            "podguard_log_lines_dropped",
            "Log lines dropped because the log output did not keep up (the queue was full)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(crate::telemetry::dropped_lines() as u64).encode(dropped)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_only_counted_are_counted_too() {
        let m = Metrics::new();
        let d = Decision {
            allowed: false,
            outcome: Outcome::Evaluated,
            violations: Vec::new(),
            namespace_mode: crate::policy::Mode::Enforce,
            omitted: vec![crate::admission::decision::Omitted {
                policy: "p".into(),
                rule: "r".into(),
                mode: crate::policy::Mode::Enforce,
                count: 6_950,
            }],
            applied: Vec::new(),
        };
        m.record_violations(&d);
        assert!(m.encode().contains(r#"podguard_violations_total{policy="p",mode="enforce"} 6950"#));
    }

    #[test]
    fn text_has_every_metric_with_bounded_labels() {
        let m = Metrics::new();
        m.record(DecisionLabel::Denied, Some(Operation::Create), "Pod", Duration::from_micros(120));
        m.record(DecisionLabel::Invalid, None, "", Duration::from_micros(5));
        m.record(DecisionLabel::Allowed, Some(Operation::Update), "Widget", Duration::from_millis(2));
        m.policy_load_failed();
        let text = m.encode();
        for needle in [
            r#"podguard_admission_requests_total{decision="denied",operation="CREATE",kind="Pod"} 1"#,
            r#"podguard_admission_requests_total{decision="invalid",operation="unknown",kind="other"} 1"#,
            r#"podguard_admission_requests_total{decision="allowed",operation="UPDATE",kind="other"} 1"#,
            r#"podguard_admission_duration_seconds_bucket{le="0.00025"} 2"#,
            "podguard_admission_duration_seconds_count 3",
            "podguard_policy_load_errors_total 1",
            "podguard_log_lines_dropped_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
