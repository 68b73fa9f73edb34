//! Policies held in a ConfigMap: every data key ending in `.yaml` or `.yml` is a policy file, and
//! the keys of one ConfigMap load together, all or nothing. Pure: the watch that feeds ConfigMaps
//! in is `source::configmaps`; the webhook's own check of a policy ConfigMap at admission
//! (`admission::policies`) loads them the same way.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use super::{CompiledPolicy, LoadError, Origin, load_str};

/// Whether a data key holds policies.
pub fn is_policy_key(key: &str) -> bool {
    key.ends_with(".yaml") || key.ends_with(".yml")
}

/// The policy files of a ConfigMap: its data keys ending in `.yaml`/`.yml`, in key order.
pub fn policy_files(cm: &ConfigMap) -> impl Iterator<Item = (&String, &String)> {
    cm.data.iter().flatten().filter(|(k, _)| is_policy_key(k))
}

/// Loads every policy file of `cm` as one unit: all its policies, or every error found.
pub fn load_configmap(cm: &ConfigMap) -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    let namespace = cm.namespace().unwrap_or_default();
    let name = cm.name_any();
    load_configmap_as(cm, |key| Origin::ConfigMap {
        namespace: namespace.clone(),
        name: name.clone(),
        key: key.to_owned(),
    })
}

/// [`load_configmap`] with the origin of each key given by `origin`: the same ConfigMap read
/// from a manifest file says which file it came from.
pub fn load_configmap_as(
    cm: &ConfigMap,
    origin: impl Fn(&str) -> Origin,
) -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    let mut policies: Vec<Arc<CompiledPolicy>> = Vec::new();
    let mut errors = Vec::new();
    for (key, text) in policy_files(cm) {
        match load_str(&origin(key), text) {
            Ok(loaded) => {
                // `load_str` catches a name used twice within one key; the keys of one
                // ConfigMap are one source, so a name used in two keys is the same mistake.
                for p in loaded {
                    match policies.iter().find(|q| q.name == p.name) {
                        Some(first) => errors.push(LoadError::on_name(
                            &p,
                            format!(
                                "policy `{}` is defined twice in this ConfigMap (first in {} document[{}]); \
                                 rename one",
                                p.name,
                                origin_key(&first.origin),
                                first.document
                            ),
                        )),
                        None => policies.push(p),
                    }
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(policies) } else { Err(errors) }
}

fn origin_key(origin: &Origin) -> &str {
    match origin {
        Origin::ConfigMap { key, .. } | Origin::Manifest { key, .. } => key,
        Origin::File { path } => path,
        Origin::Builtin { file } => file,
    }
}
