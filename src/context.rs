//! What a rule can see besides the pod spec: the admission request around the subject.
//!
//! The webhook fills it from the AdmissionReview; `podguard check` fills it from the manifest
//! as a `CREATE` by an unnamed user, in the manifest's namespace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// `CREATE`
    Create,
    /// `UPDATE`
    Update,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
}

impl Operation {
    /// `CREATE`, `UPDATE`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
}

/// The requesting user, as the API server authenticated them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<BTreeMap<String, Vec<String>>>,
}

/// Everything about the request that matchers and rules may read.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The operation.
    pub operation: Operation,
    /// Namespace of the object (`default` when a manifest names none).
    pub namespace: &'a str,
    /// Labels of that namespace, when known (namespace cache; none offline).
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// Object name (may be empty for `generateName` objects).
    pub name: &'a str,
    /// Object kind, e.g. `Deployment`.
    pub kind: &'a str,
    /// Subresource, e.g. `ephemeralcontainers`.
    pub sub_resource: Option<&'a str>,
    /// Who asked.
    pub user: &'a UserInfo,
    /// `request.dryRun`.
    pub dry_run: bool,
    /// The object as JSON text, for CEL's `object`.
    pub object: Option<&'a RawValue>,
    /// The previous object on UPDATE, for CEL's `oldObject`.
    pub old_object: Option<&'a RawValue>,
}
