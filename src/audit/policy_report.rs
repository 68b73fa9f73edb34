//! The audit's results of one namespace as a `wgpolicyk8s.io/v1alpha2` `PolicyReport`: the
//! object Kyverno's reports, Policy Reporter and the Trivy adapters read (docs/audit.md says
//! why this API and not OpenReports' yet).
//!
//! One report per namespace, named [`NAME`], hard-capped: at most [`MAX_RESULTS`] results
//! (refusals first), each message at most [`MAX_MESSAGE`] bytes, the whole object at most
//! [`MAX_BYTES`]; what does not fit is summarised in one last `skip` result, and the summary
//! counts everything. Built deterministically (no timestamps, stable order), so an unchanged
//! namespace yields the same bytes and is not written again.

use serde_json::{Map, Value, json};

use super::{NamespaceReport, ObjectReport};
use crate::policy::{Mode, Severity};

/// API group, version and kind.
pub const GROUP: &str = "wgpolicyk8s.io";
/// Version.
pub const VERSION: &str = "v1alpha2";
/// Kind.
pub const KIND: &str = "PolicyReport";
/// Plural.
pub const PLURAL: &str = "policyreports";
/// Name of the one report podguard keeps in a namespace.
pub const NAME: &str = "podguard";
/// Label on every report podguard writes (and selects to find them again).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "podguard");
/// Results listed at most; beyond, one `skip` result says how many are left out.
pub const MAX_RESULTS: usize = 500;
/// Bytes of one result's message at most.
pub const MAX_MESSAGE: usize = 1024;
/// Bytes of the whole report at most (etcd's limit on an object is 1.5 MiB).
pub const MAX_BYTES: usize = 512 << 10;

/// The report for `ns`. `severity` gives a policy's severity.
pub fn build(ns: &NamespaceReport, severity: impl Fn(&str) -> Option<Severity>) -> Value {
    let mut results: Vec<(bool, Value)> = Vec::new();
    let (mut fail, mut warn) = (0, 0);
    for object in &ns.results {
        for f in &object.result.findings {
            let refused = f.mode == Mode::Enforce;
            if refused {
                fail += 1;
            } else {
                warn += 1;
            }
            let mut properties = Map::new();
            properties.insert("path".into(), f.path.clone().into());
            properties.insert("mode".into(), f.mode.as_str().into());
            properties.insert("enforceMode".into(), f.enforce_mode.as_str().into());
            if !f.controls.is_empty() {
                properties.insert("controls".into(), f.controls.clone().into());
            }
            if !f.also.is_empty() {
                let also: Vec<&str> = f.also.iter().map(|p| &**p).collect();
                properties.insert("alsoPolicies".into(), also.join(",").into());
            }
            if let Some(b) = &object.result.bypass {
                properties.insert("bypass".into(), json!(b.reason).as_str().unwrap_or_default().into());
            }
            let mut r = json!({
                "source": "podguard",
                "policy": &*f.policy,
                "rule": &*f.rule,
                "result": if refused { "fail" } else { "warn" },
                "scored": true,
                "resources": [reference(ns, object)],
                "message": truncate(&f.message, MAX_MESSAGE),
                "properties": properties,
            });
            if let Some(s) = severity(&f.policy) {
                r["severity"] = s.as_str().into();
            }
            results.push((refused, r));
        }
    }
    // Refusals first; within each, the objects' order (kind, name), which is stable.
    results.sort_by_key(|(refused, _)| !refused);
    let mut results: Vec<Value> = results.into_iter().map(|(_, r)| r).collect();
    let total = results.len();
    let with_findings = ns.results.len();
    let summary = json!({
        "pass": ns.objects.saturating_sub(with_findings),
        "fail": fail,
        "warn": warn,
        "error": 0,
        "skip": 0,
    });
    let mut keep = total.min(MAX_RESULTS);
    loop {
        let report = assemble(ns, &summary, &results[..keep], total - keep);
        let fits = serde_json::to_vec(&report).map_or(0, |b| b.len()) <= MAX_BYTES;
        if fits || keep == 0 {
            return report;
        }
        keep = keep * 3 / 4;
        results.truncate(keep);
    }
}

fn assemble(ns: &NamespaceReport, summary: &Value, results: &[Value], left_out: usize) -> Value {
    let mut results = results.to_vec();
    if left_out > 0 {
        results.push(json!({
            "source": "podguard",
            "policy": "podguard",
            "rule": "report-limit",
            "result": "skip",
            "scored": false,
            "message": format!(
                "{left_out} more results are not listed: a report holds at most {MAX_RESULTS} results and \
                 {} KiB (the summary counts them all); GET /report on podguard's metrics port lists \
                 every finding",
                MAX_BYTES >> 10
            ),
        }));
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {
            "name": NAME,
            "namespace": ns.name,
            "labels": {MANAGED_BY.0: MANAGED_BY.1},
        },
        "summary": summary,
        "results": results,
    })
}

fn reference(ns: &NamespaceReport, object: &ObjectReport) -> Value {
    let api_version = if object.group.is_empty() { "v1".to_owned() } else { format!("{}/v1", object.group) };
    let mut r = json!({
        "apiVersion": api_version,
        "kind": object.kind,
        "name": object.name,
        "namespace": ns.name,
    });
    if !object.uid.is_empty() {
        r["uid"] = object.uid.clone().into();
    }
    r
}

/// At most `max` bytes, cut at a character boundary, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditFinding, Audited};

    fn finding(policy: &str, mode: Mode, message: &str) -> AuditFinding {
        AuditFinding {
            policy: policy.into(),
            also: vec![],
            rule: "pod-security".into(),
            path: "spec.containers[0].securityContext.privileged".into(),
            message: message.into(),
            mode,
            enforce_mode: Mode::Enforce,
            controls: "CIS-EKS 4.2.1".into(),
        }
    }

    fn object(name: &str, findings: Vec<AuditFinding>) -> ObjectReport {
        ObjectReport {
            group: "apps",
            kind: "Deployment",
            name: name.into(),
            uid: format!("uid-{name}"),
            result: Audited { findings, ..Audited::default() },
        }
    }

    fn namespace(objects: usize, results: Vec<ObjectReport>) -> NamespaceReport {
        NamespaceReport {
            name: "shop".into(),
            mode: Mode::Warn,
            objects,
            refused_now: 0,
            refused_if_enforced: 0,
            bypassed: 0,
            results,
        }
    }

    #[test]
    fn findings_become_results_naming_the_object_and_refusals_come_first() {
        let ns = namespace(
            5,
            vec![
                object("a", vec![finding("baseline", Mode::Warn, "privileged")]),
                object("b", vec![finding("restricted", Mode::Enforce, "runs as root")]),
            ],
        );
        let r = build(&ns, |p| (p == "restricted").then_some(Severity::High));
        assert_eq!(r["metadata"]["name"], NAME);
        assert_eq!(r["metadata"]["namespace"], "shop");
        assert_eq!(r["summary"], json!({"pass": 3, "fail": 1, "warn": 1, "error": 0, "skip": 0}));
        let results = r["results"].as_array().unwrap();
        assert_eq!(
            (results[0]["result"].as_str(), results[0]["policy"].as_str()),
            (Some("fail"), Some("restricted"))
        );
        assert_eq!(results[0]["severity"], "high");
        assert_eq!(
            results[1]["resources"][0],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "a", "namespace": "shop", "uid": "uid-a"})
        );
        assert_eq!(results[1]["properties"]["enforceMode"], "enforce");
        assert_eq!(results[1]["properties"]["controls"], "CIS-EKS 4.2.1");
        // Deterministic: the same results give the same bytes, so nothing is written again.
        let again = build(&ns, |p| (p == "restricted").then_some(Severity::High));
        assert_eq!(serde_json::to_string(&r).unwrap(), serde_json::to_string(&again).unwrap());
    }

    #[test]
    fn a_report_is_capped_in_results_and_summarises_the_rest() {
        let many: Vec<ObjectReport> = (0..1000)
            .map(|i| object(&format!("o{i:04}"), vec![finding("baseline", Mode::Enforce, "privileged")]))
            .collect();
        let r = build(&namespace(1000, many), |_| None);
        let results = r["results"].as_array().unwrap();
        assert_eq!(results.len(), MAX_RESULTS + 1);
        let last = results.last().unwrap();
        assert_eq!((last["result"].as_str(), last["rule"].as_str()), (Some("skip"), Some("report-limit")));
        assert!(last["message"].as_str().unwrap().starts_with("500 more results"), "{last}");
        assert_eq!(r["summary"]["fail"], 1000);
    }

    #[test]
    fn a_report_is_capped_in_bytes_and_messages_are_cut() {
        let long = "x".repeat(10_000);
        let many: Vec<ObjectReport> = (0..1000)
            .map(|i| object(&format!("o{i:04}"), vec![finding("p", Mode::Enforce, &long)]))
            .collect();
        let r = build(&namespace(1000, many), |_| None);
        let bytes = serde_json::to_vec(&r).unwrap().len();
        assert!(bytes <= MAX_BYTES, "{bytes}");
        let results = r["results"].as_array().unwrap();
        assert!(results.len() > 100, "{}", results.len());
        assert!(results[0]["message"].as_str().unwrap().len() <= MAX_MESSAGE);
        assert!(results[0]["message"].as_str().unwrap().ends_with('…'));
        let left_out = 1000 - (results.len() - 1);
        assert!(
            results.last().unwrap()["message"].as_str().unwrap().starts_with(&format!("{left_out} more"))
        );
        assert_eq!(r["summary"]["fail"], 1000);
    }
}
