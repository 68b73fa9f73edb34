//! Policy documents (`apiVersion: podguard.dev/v1`, `kind: Policy`) as written by users, and the
//! compiled [`PolicySet`] that evaluates them.
//!
//! The document model here is plain serde with `deny_unknown_fields`: a typo in a policy is an
//! error, never a silently ignored field. [`load`] turns YAML text into documents with precise
//! errors; [`set`] compiles and evaluates them.

pub mod configmap;
pub mod load;
pub mod matcher;
pub mod set;
pub mod violation;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use load::{LoadError, Origin, load_str};
pub use set::{CompiledPolicy, PolicySet};
pub use violation::{FieldPath, Finding, Violation};

/// The `apiVersion` of policy documents.
pub const API_VERSION: &str = "podguard.dev/v1";
/// The `kind` of policy documents.
pub const KIND: &str = "Policy";

/// What happens to a violation. Ordered weakest first, so the effective mode of a violation is
/// the `min` of the policy's and the namespace's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Admit silently, record in audit annotations, logs and metrics.
    Audit,
    /// Admit and tell the user (AdmissionResponse `warnings`).
    Warn,
    /// Refuse.
    #[default]
    Enforce,
}

impl Mode {
    /// `enforce`, `warn` or `audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Warn => "warn",
            Self::Audit => "audit",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "enforce" => Ok(Self::Enforce),
            "warn" => Ok(Self::Warn),
            "audit" => Ok(Self::Audit),
            _ => Err(format!("unknown mode `{s}` (expected enforce, warn or audit)")),
        }
    }
}

/// How bad a violation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    /// `low` … `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

pub use crate::compliance::Control;

/// A policy document as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    /// Name (unique in a policy set) and optional labels/annotations.
    pub metadata: Metadata,
    /// The policy itself.
    pub spec: Spec,
}

/// Policy metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Policy name: lower-case letters, digits and `-`.
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The body of a policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// What the policy is for, shown by `podguard policies list`.
    #[serde(default)]
    pub description: String,
    /// Severity of its violations (default `medium`).
    #[serde(default)]
    pub severity: Severity,
    /// The policy's own mode; unset means enforce (lowered by the namespace or cluster mode).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Compliance controls every finding of the policy carries, as its author claims them
    /// (built-in checks add the controls of docs/controls.md on their own).
    #[serde(default)]
    pub controls: Vec<Control>,
    /// Which requests the policy applies to; unset = all.
    #[serde(default, rename = "match")]
    pub match_: Match,
    /// Parameters for built-in checks (and CEL's `params`).
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The rules: at least one.
    pub rules: Vec<Rule>,
}

/// Which requests a policy applies to. Every field is optional; all given fields must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Match {
    /// Namespace globs (`*`, `?`); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespace globs to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_namespaces: Vec<String>,
    /// Label selector on the namespace's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Label selector on the pod's labels (the template's for workloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<LabelSelector>,
    /// Object kinds; empty = Pod and every workload kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Operations; empty = CREATE and UPDATE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<crate::context::Operation>,
}

/// A Kubernetes label selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact matches.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: SelectorOperator,
    /// Values for `In`/`NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Label selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One rule: a built-in `check` or a `cel` expression.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Rule name, unique within the policy.
    pub name: String,
    /// Built-in check name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// CEL expression that must be true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<String>,
    /// Compliance controls of this rule's findings, besides the policy's and, for a built-in
    /// check, those its findings are evidence against (docs/controls.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<Control>,
    /// Evaluate the CEL expression once per container of this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<Foreach>,
    /// Message when the CEL expression is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// CEL expression producing the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_expression: Option<String>,
    /// Cost units the CEL rule may spend on one subject (docs/cel.md); unset: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_limit: Option<u64>,
}

impl Rule {
    /// What the CEL compiler reads of this rule.
    pub fn cel_source(&self) -> crate::cel::RuleSource<'_> {
        crate::cel::RuleSource {
            cel: self.cel.as_deref(),
            message: self.message.as_deref(),
            message_expression: self.message_expression.as_deref(),
            foreach: self.foreach,
            cost_limit: self.cost_limit,
        }
    }
}

pub use crate::cel::Foreach;
