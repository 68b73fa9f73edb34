//! Typed decoding of the objects podguard evaluates: Pods and every workload kind that carries a
//! pod template. Anything else is [`Decoded::Other`] and is skipped, never guessed at.
//!
//! Decoding goes straight from the JSON text to k8s-openapi types (no intermediate
//! `serde_json::Value`), and a field of the wrong type is reported with its path.

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
    batch::v1::{CronJob, Job},
    core::v1::{Pod, PodTemplate, ReplicationController},
};
use serde::de::DeserializeOwned;

/// A decoded object that holds a pod spec.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Workload {
    Pod(Box<Pod>),
    PodTemplate(Box<PodTemplate>),
    Deployment(Box<Deployment>),
    ReplicaSet(Box<ReplicaSet>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
    Job(Box<Job>),
    CronJob(Box<CronJob>),
    ReplicationController(Box<ReplicationController>),
    /// The body of the `pods/ephemeralcontainers` subresource on Kubernetes 1.16–1.21: kind
    /// `EphemeralContainers`, holding only the pod's metadata and its ephemeral containers
    /// (1.22 moved the subresource to the Pod itself). Held as a Pod whose spec has nothing else.
    LegacyEphemeralContainers(Box<Pod>),
}

/// The result of decoding one object.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// A kind podguard evaluates.
    Workload(Workload),
    /// Any other kind: not a subject, skipped.
    Other,
}

/// The object's JSON could not be read as its kind: a field has the wrong type or shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {kind} field `{path}`: {reason}")]
pub struct DecodeError {
    /// The kind being decoded.
    pub kind: String,
    /// Dotted path of the offending field (`spec.containers[0].securityContext.runAsUser`).
    pub path: String,
    /// What serde said.
    pub reason: String,
}

/// The group podguard expects for a workload kind, or `None` for kinds it does not evaluate.
pub fn group_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod" | "PodTemplate" | "ReplicationController" => "",
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps",
        "Job" | "CronJob" => "batch",
        _ => return None,
    })
}

/// Every kind podguard evaluates, in the order docs list them.
pub const KINDS: &[&str] = &[
    "Pod",
    "PodTemplate",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

/// Decodes `json` as an object of `group`/`kind`. A kind outside [`KINDS`], or one of those names
/// in another API group (a custom resource that happens to be called `Deployment`), is
/// [`Decoded::Other`].
pub fn decode(group: &str, kind: &str, json: &str) -> Result<Decoded, DecodeError> {
    if group_of(kind) != Some(group) {
        return Ok(Decoded::Other);
    }
    let w = match kind {
        "Pod" => Workload::Pod(parse(kind, json)?),
        "PodTemplate" => Workload::PodTemplate(parse(kind, json)?),
        "Deployment" => Workload::Deployment(parse(kind, json)?),
        "ReplicaSet" => Workload::ReplicaSet(parse(kind, json)?),
        "StatefulSet" => Workload::StatefulSet(parse(kind, json)?),
        "DaemonSet" => Workload::DaemonSet(parse(kind, json)?),
        "Job" => Workload::Job(parse(kind, json)?),
        "CronJob" => Workload::CronJob(parse(kind, json)?),
        "ReplicationController" => Workload::ReplicationController(parse(kind, json)?),
        _ => return Ok(Decoded::Other),
    };
    Ok(Decoded::Workload(w))
}

/// [`decode`] for one admission request: also reads the `EphemeralContainers` kind that
/// Kubernetes before 1.22 sends for the `pods/ephemeralcontainers` subresource, which is a pod
/// change (`kubectl debug`) in another shape. Manifests never hold that kind.
pub fn decode_request(group: &str, kind: &str, json: &str) -> Result<Decoded, DecodeError> {
    if group.is_empty() && kind == LEGACY_EPHEMERAL_KIND {
        let legacy: Box<LegacyEphemeral> = parse(kind, json)?;
        let LegacyEphemeral { metadata, ephemeral_containers } = *legacy;
        let spec = k8s_openapi::api::core::v1::PodSpec {
            ephemeral_containers: Some(ephemeral_containers),
            ..Default::default()
        };
        let pod = Pod { metadata, spec: Some(spec), status: None };
        return Ok(Decoded::Workload(Workload::LegacyEphemeralContainers(Box::new(pod))));
    }
    decode(group, kind, json)
}

/// The kind of the pre-1.22 `pods/ephemeralcontainers` body.
pub const LEGACY_EPHEMERAL_KIND: &str = "EphemeralContainers";

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyEphemeral {
    #[serde(default)]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default)]
    ephemeral_containers: Vec<k8s_openapi::api::core::v1::EphemeralContainer>,
}

fn parse<T: DeserializeOwned>(kind: &str, json: &str) -> Result<Box<T>, DecodeError> {
    // Tracking the path costs an allocation per key of the object and is needed only to say
    // where a bad object is wrong: parse without it, and again with it after a failure.
    if let Ok(value) = serde_json::from_str(json) {
        return Ok(Box::new(value));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut de).map(Box::new).map_err(|e| DecodeError {
        kind: kind.to_owned(),
        path: e.path().to_string(),
        reason: without_position(e.inner().to_string()),
    })
}

/// serde_json ends its messages with "at line 1 column 812": a position in JSON the user never
/// wrote (the API server's or the CLI's re-encoding). The field path says where instead.
fn without_position(mut reason: String) -> String {
    if let Some(i) = reason.rfind(" at line ") {
        reason.truncate(i);
    }
    reason
}

/// Splits an `apiVersion` into its group (`apps/v1` -> `apps`, `v1` -> ``).
pub fn group_of_api_version(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_and_workloads_decode_by_group_and_kind() {
        let d =
            decode("apps", "Deployment", r#"{"metadata":{"name":"x"},"spec":{"selector":{},"template":{}}}"#)
                .unwrap();
        assert!(matches!(d, Decoded::Workload(Workload::Deployment(_))));
        assert_eq!(decode("", "Service", "{}").unwrap(), Decoded::Other);
        assert_eq!(decode("example.com", "Deployment", "{}").unwrap(), Decoded::Other);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = decode(
            "",
            "Pod",
            r#"{"spec":{"containers":[{"name":"a","securityContext":{"runAsUser":"x"}}]}}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.containers[0].securityContext.runAsUser");
        assert!(e.to_string().contains("runAsUser"), "{e}");
    }

    #[test]
    fn api_version_group() {
        assert_eq!(group_of_api_version("apps/v1"), "apps");
        assert_eq!(group_of_api_version("v1"), "");
    }
}
