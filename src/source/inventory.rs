//! What runs in a cluster, read once for `podguard report --cluster`: namespaces (for their
//! labels) and every workload kind, listed in pages through the API and handed over object by
//! object, so memory holds one page at a time.
//!
//! An object a controller podguard also lists owns (a ReplicaSet of a Deployment, a Pod of a
//! ReplicaSet or a Job) is left out unless asked for: its spec is its owner's template, and
//! reporting it again would count one workload three times.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

/// Objects per page: as `kubectl get` asks for.
const PAGE: u32 = 500;

/// A kind to list: group, versions to try newest first, kind, plural.
pub(crate) struct Kind {
    pub(crate) group: &'static str,
    pub(crate) versions: &'static [&'static str],
    pub(crate) kind: &'static str,
    pub(crate) plural: &'static str,
}

/// Every kind whose objects hold a pod spec, owners before what they own.
pub(crate) const KINDS: &[Kind] = &[
    Kind { group: "batch", versions: &["v1", "v1beta1"], kind: "CronJob", plural: "cronjobs" },
    Kind { group: "apps", versions: &["v1"], kind: "Deployment", plural: "deployments" },
    Kind { group: "apps", versions: &["v1"], kind: "StatefulSet", plural: "statefulsets" },
    Kind { group: "apps", versions: &["v1"], kind: "DaemonSet", plural: "daemonsets" },
    Kind { group: "apps", versions: &["v1"], kind: "ReplicaSet", plural: "replicasets" },
    Kind { group: "batch", versions: &["v1"], kind: "Job", plural: "jobs" },
    Kind { group: "", versions: &["v1"], kind: "ReplicationController", plural: "replicationcontrollers" },
    Kind { group: "", versions: &["v1"], kind: "PodTemplate", plural: "podtemplates" },
    Kind { group: "", versions: &["v1"], kind: "Pod", plural: "pods" },
];

/// Whether `meta`'s controller is a kind listed here, so the object is reported through it.
pub(crate) fn owned_by_listed_controller(meta: &Value) -> bool {
    let Some(owners) = meta.get("ownerReferences").and_then(Value::as_array) else { return false };
    owners.iter().any(|o| {
        o.get("controller").and_then(Value::as_bool) == Some(true)
            && o.get("kind").and_then(Value::as_str).is_some_and(|k| {
                let group = o.get("apiVersion").and_then(Value::as_str).and_then(|v| v.rsplit_once('/'));
                let group = group.map_or("", |(g, _)| g);
                KINDS.iter().any(|x| x.kind == k && x.group == group)
            })
    })
}

/// Counts of what was listed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Objects handed over, per kind.
    pub reported: BTreeMap<&'static str, usize>,
    /// Objects left out because their controller is reported.
    pub owned: usize,
}

/// The labels of every namespace.
pub async fn namespaces(client: &kube::Client) -> kube::Result<BTreeMap<String, BTreeMap<String, String>>> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut out = BTreeMap::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list_metadata(&params).await?;
        for ns in page.items {
            let name = ns.metadata.name.unwrap_or_default();
            out.insert(name, ns.metadata.labels.unwrap_or_default());
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Lists every workload kind cluster-wide, handing each object to `each` as a JSON value with
/// `apiVersion` and `kind` set (a CronJob of `batch/v1beta1` as `batch/v1`: the same pod
/// template), and reporting progress to `progress`. A kind the server does not serve is skipped
/// with a progress line.
pub async fn workloads(
    client: &kube::Client,
    include_owned: bool,
    mut progress: impl FnMut(String),
    mut each: impl FnMut(Value),
) -> kube::Result<Listed> {
    let mut listed = Listed::default();
    for k in KINDS {
        let mut served = false;
        for version in k.versions {
            let gvk = GroupVersionKind::gvk(k.group, version, k.kind);
            let api: Api<DynamicObject> =
                Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, k.plural));
            let mut params = ListParams::default().limit(PAGE);
            let mut count = 0usize;
            let mut first = true;
            loop {
                let page = match api.list(&params).await {
                    Ok(page) => page,
                    Err(kube::Error::Api(e)) if first && e.code == 404 => break,
                    Err(e) => return Err(e),
                };
                first = false;
                served = true;
                for obj in page.items {
                    let Ok(mut v) = serde_json::to_value(&obj) else { continue };
                    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                        // Large, and nothing a policy reads.
                        meta.remove("managedFields");
                    }
                    if !include_owned && v.get("metadata").is_some_and(owned_by_listed_controller) {
                        listed.owned += 1;
                        continue;
                    }
                    if let Value::Object(map) = &mut v {
                        let api_version =
                            if k.group.is_empty() { "v1".to_owned() } else { format!("{}/v1", k.group) };
                        map.insert("apiVersion".into(), Value::String(api_version));
                        map.insert("kind".into(), Value::String(k.kind.into()));
                    }
                    count += 1;
                    each(v);
                }
                progress(format!("listed {count} {}", k.plural));
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
            if served {
                *listed.reported.entry(k.kind).or_default() += count;
                break;
            }
        }
        if !served {
            progress(format!("the API server serves no {}; skipped", k.plural));
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_of_listed_controllers_are_reported_through_them() {
        let meta = |api: &str, kind: &str, controller: bool| serde_json::json!({"ownerReferences": [{"apiVersion": api, "kind": kind, "name": "x", "uid": "u", "controller": controller}]});
        assert!(owned_by_listed_controller(&meta("apps/v1", "ReplicaSet", true)));
        assert!(owned_by_listed_controller(&meta("batch/v1", "Job", true)));
        assert!(owned_by_listed_controller(&meta("v1", "ReplicationController", true)));
        // Not the controller, or a controller podguard does not list (an operator's resource).
        assert!(!owned_by_listed_controller(&meta("apps/v1", "ReplicaSet", false)));
        assert!(!owned_by_listed_controller(&meta("example.com/v1", "ReplicaSet", true)));
        assert!(!owned_by_listed_controller(&meta("argoproj.io/v1alpha1", "Rollout", true)));
        assert!(!owned_by_listed_controller(&serde_json::json!({})));
    }
}
