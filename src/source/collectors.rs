//! The metrics of the policy sources and the background audit, read from them at each scrape:
//! [`policies`] (`podguard_policies`, `podguard_policy_sources_refused`) and [`audit`] (the
//! `podguard_audit_*` family). Registered into [`crate::metrics::Metrics`] by whoever builds it.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Store;
use super::audit::Audit;
use crate::policy::Origin;

/// Where the audit is put once it runs (it starts after the metrics are built).
pub type AuditSlot = Arc<OnceLock<Audit>>;

/// `podguard_policies{source}` and `podguard_policy_sources_refused`, from `store`.
pub fn policies(store: Arc<Store>) -> Box<dyn Collector> {
    Box::new(PolicyCount(store))
}

/// The `podguard_audit_*` metrics, from the audit in `slot` once it is there.
pub fn audit(slot: AuditSlot) -> Box<dyn Collector> {
    Box::new(AuditCollector(slot))
}

/// Series of `podguard_audit_violations` at most: past it, the rest are summed under namespace
/// `(other)`, so a cluster of thousands of namespaces cannot flood Prometheus.
pub const MAX_AUDIT_SERIES: usize = 2000;

#[derive(Debug)]
struct AuditCollector(AuditSlot);

impl Collector for AuditCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(audit) = self.0.get() else { return Ok(()) };
        let (counts, objects, dropped, first, bypassed, bypasses) = {
            let a = audit.lock();
            (a.counts(), a.len(), a.dropped(), a.first_audit(), a.bypasses(), a.bypasses_found())
        };
        let (writes, write_errors) = audit.report_writes();
        let mut metric = encoder.encode_descriptor(
            "podguard_audit_violations",
            "Findings on objects already in the cluster, by policy, rule and namespace (the background audit)",
            None,
            MetricType::Gauge,
        )?;
        let mut other: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (i, ((policy, rule, ns), n)) in counts.iter().enumerate() {
            if i < MAX_AUDIT_SERIES {
                let labels = [("policy", &**policy), ("rule", &**rule), ("namespace", ns.as_str())];
                ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX))
                    .encode(metric.encode_family(&labels)?)?;
            } else {
                *other.entry((policy, rule)).or_default() += n;
            }
        }
        for ((policy, rule), n) in other {
            let labels = [("policy", policy), ("rule", rule), ("namespace", "(other)")];
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(metric.encode_family(&labels)?)?;
        }
        let held = encoder.encode_descriptor(
            "podguard_audit_objects",
            "Objects the background audit holds and judges",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(objects).unwrap_or(i64::MAX)).encode(held)?;
        let not_held = encoder.encode_descriptor(
            "podguard_audit_dropped_objects",
            "Objects not held because the audit's object limit was reached",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(dropped).unwrap_or(i64::MAX)).encode(not_held)?;
        let g = |n: usize| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        let now = encoder.encode_descriptor(
            "podguard_audit_bypassed_objects",
            "Objects refused now that were not judged at admission (created while podguard was down, unregistered or not yet installed)",
            None,
            MetricType::Gauge,
        )?;
        g(bypassed).encode(now)?;
        let found = encoder.encode_descriptor(
            "podguard_audit_bypasses",
            "Objects found refused now and not judged at admission, since start",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(bypasses).encode(found)?;
        let mut w = encoder.encode_descriptor(
            "podguard_audit_report_writes",
            "PolicyReport objects written or deleted by this replica (the Lease holder), by outcome",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(writes).encode(w.encode_family(&[("outcome", "ok")])?)?;
        ConstCounter::new(write_errors).encode(w.encode_family(&[("outcome", "error")])?)?;
        let events = encoder.encode_descriptor(
            "podguard_audit_bypass_events",
            "AdmissionBypassed Events recorded by this replica (as the writer)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(audit.bypass_events()).encode(events)?;
        let writer = encoder.encode_descriptor(
            "podguard_audit_writer",
            "1 while this replica holds the Lease that makes it the audit's writer",
            None,
            MetricType::Gauge,
        )?;
        g(usize::from(audit.is_writer())).encode(writer)?;
        if let Some(took) = first {
            let d = encoder.encode_descriptor(
                "podguard_audit_first_duration_seconds",
                "How long the first full audit took (every kind listed and judged)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(took.as_secs_f64()).encode(d)?;
        }
        Ok(())
    }
}

/// `podguard_policies{source}`: the policies in force by kind of source, read at scrape time so
/// it is right whichever source (files, ConfigMaps) changed the set.
#[derive(Debug)]
struct PolicyCount(Arc<Store>);

impl Collector for PolicyCount {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let set = self.0.current();
        let mut counts = [("builtin", 0i64), ("file", 0), ("configmap", 0)];
        for p in set.policies() {
            let i = match p.origin {
                Origin::Builtin { .. } => 0,
                Origin::File { .. } | Origin::Manifest { .. } => 1,
                Origin::ConfigMap { .. } => 2,
            };
            counts[i].1 += 1;
        }
        let mut metric = encoder.encode_descriptor(
            "podguard_policies",
            "Policies in force, by kind of source",
            None,
            MetricType::Gauge,
        )?;
        for (source, n) in counts {
            ConstGauge::new(n).encode(metric.encode_family(&[("source", source)])?)?;
        }
        let refused = encoder.encode_descriptor(
            "podguard_policy_sources_refused",
            "Policy sources (ConfigMaps, files) whose current version does not load; a refused ConfigMap contributes no policy",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(self.0.refused()).unwrap_or(i64::MAX)).encode(refused)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn policies_and_refused_sources_are_read_at_each_scrape() {
        let store = Arc::new(Store::new());
        let m = Metrics::with(vec![policies(store.clone())]);
        assert!(m.encode().contains("podguard_policy_sources_refused 0"));
        let refused = crate::policy::LoadError {
            origin: Origin::ConfigMap { namespace: "ns".into(), name: "cm".into(), key: "p.yaml".into() },
            document: None,
            line: None,
            policy: None,
            rule: None,
            field: None,
            reason: "broken".into(),
        };
        store.replace(
            super::super::SourceKey::ConfigMap { namespace: "ns".into(), name: "cm".into() },
            Err(vec![refused]),
        );
        let text = m.encode();
        for needle in [r#"podguard_policies{source="builtin"} 0"#, "podguard_policy_sources_refused 1"] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn the_audit_metrics_appear_once_it_runs() {
        let slot = AuditSlot::default();
        let m = Metrics::with(vec![audit(slot.clone())]);
        assert!(!m.encode().contains("podguard_audit_objects"));
    }
}
