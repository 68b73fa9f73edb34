//! Runs `helm template` on charts/podguard and checks every rendered object of a built-in kind
//! against the k8s-openapi types, strictly: a wrong type or a missing required field fails the
//! deserialization (with the field path, from serde_path_to_error), and a field the type does not
//! know (a typo, or a field at the wrong level) fails the round trip, because k8s-openapi drops
//! unknown fields where the API server would reject or silently ignore them.
//!
//! helm comes from `$HELM`, else `PATH`, else the cache `scripts/tools.sh` fills (see [`helm`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The release every test renders.
pub const RELEASE: &str = "podguard";
/// The namespace every test renders into.
pub const NAMESPACE: &str = "podguard-system";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// charts/podguard.
pub fn chart_dir() -> PathBuf {
    repo().join("charts/podguard")
}

/// The helm binary: `$HELM`, else `helm` on `PATH`, else the one `scripts/tools.sh` caches
/// (installing it there on first use, as CI does).
pub fn helm() -> PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("HELM") {
            return PathBuf::from(path);
        }
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .map(|dir| dir.join("helm"))
            .find(|candidate| candidate.is_file());
        on_path.unwrap_or_else(|| {
            let output = Command::new("bash").arg(repo().join("scripts/tools.sh")).output().unwrap();
            assert!(
                output.status.success(),
                "helm not found and scripts/tools.sh could not install it:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            PathBuf::from(String::from_utf8(output.stdout).unwrap().trim()).join("helm")
        })
    })
    .clone()
}

/// The objects `helm template` rendered, in order.
pub struct Rendered(pub Vec<Value>);

impl Rendered {
    /// Every object of this kind.
    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The one object of this kind; panics if there is not exactly one.
    pub fn one(&self, kind: &str) -> &Value {
        let found = self.all(kind);
        assert_eq!(found.len(), 1, "expected exactly one {kind}, found {}", found.len());
        found[0]
    }

    /// The one object of this kind, deserialized.
    pub fn typed<T: DeserializeOwned>(&self, kind: &str) -> T {
        serde_json::from_value(self.one(kind).clone()).unwrap()
    }

    /// The object of this kind and name.
    pub fn named(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    }

    /// `kind/name` of every object, for messages.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(describe).collect()
    }
}

/// `helm template` of `chart` with extra arguments; panics with helm's stderr if it fails.
pub fn render_chart(chart: &Path, args: &[&str]) -> Rendered {
    match try_render_chart(chart, args) {
        Ok(rendered) => rendered,
        Err(stderr) => panic!("helm template {args:?} failed:\n{stderr}"),
    }
}

/// `helm template` of charts/podguard with extra arguments.
pub fn render(args: &[&str]) -> Rendered {
    render_chart(&chart_dir(), args)
}

/// `helm template` of `chart`: the objects, or helm's stderr.
pub fn try_render_chart(chart: &Path, args: &[&str]) -> Result<Rendered, String> {
    let output = Command::new(helm())
        .arg("template")
        .arg(RELEASE)
        .arg(chart)
        .args(["--namespace", NAMESPACE])
        .args(args)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(parse(&String::from_utf8(output.stdout).unwrap()))
}

/// Every non-empty document of a multi-document YAML text.
pub fn parse(text: &str) -> Rendered {
    let objects = serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    Rendered(objects)
}

fn describe(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Kinds the chart renders that are not built into Kubernetes (CRDs of cert-manager and the
/// Prometheus Operator). They are checked for shape by the tests that enable them.
const CUSTOM_KINDS: &[(&str, &str)] = &[
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
];

/// Whether objects of this kind live in a namespace.
pub fn is_namespaced(kind: &str) -> bool {
    !matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "ValidatingWebhookConfiguration")
}

/// Checks one object strictly against its k8s-openapi type. Err says which object and field.
pub fn validate(object: &Value) -> Result<(), String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let checked = match (api_version, kind) {
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(object),
        ("v1", "Namespace") => round_trip::<Namespace>(object),
        ("v1", "Pod") => round_trip::<Pod>(object),
        ("v1", "Secret") => round_trip::<Secret>(object),
        ("v1", "Service") => round_trip::<Service>(object),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(object),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(object),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(object),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
            round_trip::<ValidatingWebhookConfiguration>(object)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(object),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => round_trip::<ClusterRoleBinding>(object),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(object),
        (group, kind) if CUSTOM_KINDS.contains(&(group, kind)) => Ok(()),
        _ => Err(format!("unexpected kind {api_version}/{kind}")),
    };
    let metadata = &object["metadata"];
    let checked = checked.and_then(|()| match metadata["name"].as_str() {
        Some(name) if !name.is_empty() && name.len() <= 253 => Ok(()),
        _ => Err("metadata.name is missing or too long".to_owned()),
    });
    let checked = checked.and_then(|()| match (is_namespaced(kind), metadata["namespace"].as_str()) {
        // `helm template | kubectl apply` and deploy/podguard.yaml need the namespace written out.
        (true, None) => Err("namespaced object without metadata.namespace".to_owned()),
        (false, Some(_)) => Err("cluster-scoped object with metadata.namespace".to_owned()),
        _ => Ok(()),
    });
    checked.map_err(|reason| format!("{}: {reason}", describe(object)))
}

fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<(), String> {
    let typed: T = serde_path_to_error::deserialize(object.clone())
        .map_err(|e| format!("at {}: {}", e.path(), e.inner()))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut dropped = Vec::new();
    compare(object, &back, String::new(), &mut dropped);
    if dropped.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fields unknown to {} or of the wrong shape: {}",
            std::any::type_name::<T>(),
            dropped.join(", ")
        ))
    }
}

/// Collects the paths where `original` holds something `back` (the typed round trip) lost or
/// changed. Nulls and empty maps or lists in the original are the same as absent.
fn compare(original: &Value, back: &Value, path: String, out: &mut Vec<String>) {
    match (original, back) {
        (Value::Null, _) => {}
        (Value::Object(o), _) if o.is_empty() && back.is_null() => {}
        (Value::Array(a), _) if a.is_empty() && back.is_null() => {}
        (Value::Object(o), Value::Object(b)) => {
            for (key, value) in o {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                compare(value, b.get(key).unwrap_or(&Value::Null), child, out);
            }
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            for (i, (value, other)) in o.iter().zip(b).enumerate() {
                compare(value, other, format!("{path}[{i}]"), out);
            }
        }
        _ if original == back => {}
        _ => out.push(if path.is_empty() { "(object)".to_owned() } else { path }),
    }
}

#[test]
fn validation_catches_unknown_and_mistyped_fields() {
    let good = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"ports": [{"port": 443, "targetPort": "https"}]}
    });
    assert_eq!(validate(&good), Ok(()));

    let mut typo = good.clone();
    typo["spec"]["ports"][0]["targetPortt"] = "https".into();
    let err = validate(&typo).unwrap_err();
    assert!(err.contains("spec.ports[0].targetPortt"), "{err}");

    let mut mistyped = good.clone();
    mistyped["spec"]["ports"][0]["port"] = "443".into();
    let err = validate(&mistyped).unwrap_err();
    assert!(err.contains("spec.ports[0].port"), "{err}");

    let mut unnamespaced = good;
    unnamespaced["metadata"].as_object_mut().unwrap().remove("namespace");
    assert!(validate(&unnamespaced).unwrap_err().contains("without metadata.namespace"));
}
