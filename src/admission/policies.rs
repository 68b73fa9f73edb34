//! podguard's own policy ConfigMaps, judged at admission: one that does not load is refused at
//! `kubectl apply` with the errors `podguard policies lint` prints, so that a mistake never
//! reaches the replicas (which would then enforce nothing of it).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::decision::{Decision, Outcome};
use super::review::AdmissionRequest;
use crate::context::Operation;
use crate::policy::Mode;
use crate::policy::configmap::load_configmap;

/// Where the policy ConfigMaps are: their namespace and label selector (`--policy-namespace`,
/// `--policy-selector`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfigMaps {
    /// The policy namespace.
    pub namespace: String,
    /// Which ConfigMaps there hold policies.
    pub selector: LabelSelector,
}

/// A label selector in `kubectl -l` syntax: comma-separated requirements `k=v`, `k==v`, `k!=v`,
/// `k`, `!k`, `k in (a,b)`, `k notin (a,b)`; all must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

impl std::str::FromStr for LabelSelector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // A requirement ends at the first comma outside parentheses.
            let end = {
                let mut depth = 0i32;
                rest.char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        c == ',' && depth == 0
                    })
                    .map_or(rest.len(), |(i, _)| i)
            };
            out.push(requirement(rest[..end].trim())?);
            rest = rest[end..].trim_start_matches(',').trim();
        }
        if out.is_empty() {
            return Err("an empty selector would take every ConfigMap for a policy one".into());
        }
        Ok(Self(out))
    }
}

fn requirement(text: &str) -> Result<Requirement, String> {
    let bad = || format!("`{text}` is not a label requirement (k=v, k!=v, k, !k, k in (a,b), k notin (a,b))");
    let key = |k: &str| {
        let k = k.trim();
        let ok = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if ok { Ok(k.to_owned()) } else { Err(bad()) }
    };
    let set = |v: &str| -> Result<Vec<String>, String> {
        let inner = v.trim().strip_prefix('(').and_then(|v| v.strip_suffix(')')).ok_or_else(bad)?;
        Ok(inner.split(',').map(|s| s.trim().to_owned()).collect())
    };
    if let Some(k) = text.strip_prefix('!') {
        return Ok(Requirement::Absent(key(k)?));
    }
    if let Some((k, v)) = text.split_once("!=") {
        return Ok(Requirement::NotIn(key(k)?, vec![v.trim().to_owned()]));
    }
    if let Some((k, v)) = text.split_once("==").or_else(|| text.split_once('=')) {
        return Ok(Requirement::In(key(k)?, vec![v.trim().to_owned()]));
    }
    if let Some((k, v)) = text.split_once(" notin ") {
        return Ok(Requirement::NotIn(key(k)?, set(v)?));
    }
    if let Some((k, v)) = text.split_once(" in ") {
        return Ok(Requirement::In(key(k)?, set(v)?));
    }
    Ok(Requirement::Exists(key(text)?))
}

impl LabelSelector {
    /// Whether `labels` meet every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }
}

/// The decision for a ConfigMap request, or `None` when it is not one of podguard's policy
/// ConfigMaps (then nothing about it is podguard's business and it is admitted).
pub fn review(places: &PolicyConfigMaps, req: &AdmissionRequest) -> Option<Decision> {
    if !matches!(req.operation, Operation::Create | Operation::Update)
        || req.namespace.as_deref() != Some(&places.namespace)
    {
        return None;
    }
    let raw = req.object.as_deref()?;
    let cm: ConfigMap = match serde_json::from_str(raw.get()) {
        Ok(cm) => cm,
        Err(e) => return Some(refused(format!("podguard cannot read this ConfigMap: {e}"))),
    };
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    if !places.selector.matches(&labels) || cm.metadata.deletion_timestamp.is_some() {
        return None;
    }
    // The request's namespace and name, as the watch will see them once stored.
    let mut cm = cm;
    cm.metadata.namespace = Some(places.namespace.clone());
    if cm.metadata.name.is_none() {
        cm.metadata.name = req.name.clone();
    }
    Some(match load_configmap(&cm) {
        Ok(_) => Decision {
            allowed: true,
            outcome: Outcome::Evaluated,
            violations: Vec::new(),
            namespace_mode: Mode::Enforce,
            omitted: Vec::new(),
            applied: Vec::new(),
        },
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            refused(format!(
                "podguard refuses this policy ConfigMap: it does not load ({} error{}):\n{}",
                lines.len(),
                if lines.len() == 1 { "" } else { "s" },
                lines.join("\n")
            ))
        }
    })
}

fn refused(message: String) -> Decision {
    Decision {
        allowed: false,
        outcome: Outcome::Refused(message),
        violations: Vec::new(),
        namespace_mode: Mode::Enforce,
        omitted: Vec::new(),
        applied: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{labels, request};

    fn places() -> PolicyConfigMaps {
        PolicyConfigMaps {
            namespace: "podguard-system".into(),
            selector: "podguard.dev/policy=true".parse().unwrap(),
        }
    }

    fn configmap(policy: &str, label: bool) -> serde_json::Value {
        let mut cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "team-a", "namespace": "podguard-system"},
            "data": {"policy.yaml": policy}});
        if label {
            cm["metadata"]["labels"] = serde_json::json!({"podguard.dev/policy": "true"});
        }
        cm
    }

    const GOOD: &str = "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n  rules: [{name: r, check: disallowLatestTag}]\n";

    fn review_of(cm: serde_json::Value, namespace: &str) -> Option<Decision> {
        let mut req = request("", "ConfigMap", Operation::Create, cm);
        req.namespace = Some(namespace.into());
        review(&places(), &req)
    }

    #[test]
    fn a_policy_configmap_that_loads_is_admitted() {
        let d = review_of(configmap(GOOD, true), "podguard-system").unwrap();
        assert!(d.allowed);
    }

    #[test]
    fn a_policy_configmap_that_does_not_load_is_refused_with_the_lint_errors() {
        let broken = GOOD.replace("disallowLatestTag", "disallowLatestTagz");
        let d = review_of(configmap(&broken, true), "podguard-system").unwrap();
        assert!(!d.allowed);
        let message = d.deny_message();
        assert!(
            message.starts_with("podguard refuses this policy ConfigMap: it does not load (1 error):\n"),
            "{message}"
        );
        assert!(
            message.contains(
                "configmap/podguard-system/team-a[policy.yaml]:5: document[0]: policy p, rule r: spec.rules[0].check: unknown check `disallowLatestTagz`"
            ),
            "{message}"
        );
        let deep = format!(
            "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {{name: p}}\nspec:\n  rules:\n    - name: deep\n      cel: \"has(spec{})\"\n",
            ".a".repeat(7_000)
        );
        let d = review_of(configmap(&deep, true), "podguard-system").unwrap();
        assert!(d.deny_message().contains("could nest more than 256 levels"), "{}", d.deny_message());
    }

    #[test]
    fn other_configmaps_are_not_podguards_business() {
        let broken = GOOD.replace("disallowLatestTag", "nope");
        assert!(review_of(configmap(&broken, false), "podguard-system").is_none(), "no policy label");
        assert!(review_of(configmap(&broken, true), "team-a").is_none(), "another namespace");
    }

    #[test]
    fn selectors_parse_and_match_as_kubectl_reads_them() {
        let l = labels(&[("podguard.dev/policy", "true"), ("team", "a")]);
        for (selector, matches) in [
            ("podguard.dev/policy=true", true),
            ("podguard.dev/policy==true", true),
            ("podguard.dev/policy!=true", false),
            ("podguard.dev/policy", true),
            ("!podguard.dev/policy", false),
            ("team in (a, b),podguard.dev/policy", true),
            ("team notin (a,b)", false),
            ("team=b", false),
            ("missing!=x", true),
        ] {
            let s: LabelSelector = selector.parse().unwrap();
            assert_eq!(s.matches(&l), matches, "{selector}");
        }
        for bad in ["", "team in a", "te am=x"] {
            assert!(bad.parse::<LabelSelector>().is_err(), "{bad}");
        }
    }
}
