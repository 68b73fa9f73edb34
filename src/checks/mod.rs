//! Built-in checks: native Rust rules over the typed pod spec, each configured by the policy's
//! `params`.
//!
//! A check is built once when its policy loads ([`Definition::build`]), then evaluated for every
//! subject without failing: what is wrong comes back as [`Finding`]s, one per offending field.
//! Contact points: [`crate::policy::set`] builds and calls checks; [`crate::subject`] gives the
//! view they read.

pub mod default_namespace;
pub mod host_paths;
pub mod images;
pub mod labels;
pub mod probes;
pub mod pss;
pub mod read_only_root_filesystem;
pub mod resources;
pub mod secrets;
pub mod service_account;

use std::fmt;

use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::finding::Finding;
use crate::subject::Subject;

/// A compiled rule body. Implementations never panic and never fail: anything wrong with the
/// subject is a [`Finding`] pushed to `out`; allocation happens only for findings.
pub trait Check: Send + Sync + fmt::Debug {
    /// Appends one finding per offending field of `subject` to `out`.
    fn evaluate(&self, ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>);

    /// The parts of [`Definition::parts`] this instance can find, when its params leave some
    /// out (a `baseline` Pod Security check never finds `runAsNonRoot`); `None` for all. A
    /// coverage report must not credit a rule with a control it never checks.
    fn active_parts(&self) -> Option<Vec<&'static str>> {
        None
    }
}

/// The `params` of a policy, as handed to each check's builder.
pub type Params = serde_json::Map<String, serde_json::Value>;

/// A bad parameter: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("params.{field}: {reason}")]
pub struct ParamsError {
    /// Dotted path inside `params` (e.g. `level`, `registries[2]`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl ParamsError {
    /// An error about `params.<field>`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// How to build a built-in check by name.
pub struct Definition {
    /// The name used in `check:`.
    pub name: &'static str,
    /// One line for `podguard policies list` and the docs.
    pub summary: &'static str,
    /// The `params` keys this check reads. A policy key read by none of its rules is an error.
    pub params: &'static [&'static str],
    /// The parts a finding may name ([`Finding::part`]) when the check is several things that
    /// compliance frameworks tell apart; empty for a check that is one thing.
    pub parts: &'static [&'static str],
    /// Builds the check from the policy's params.
    pub build: fn(&Params) -> Result<Box<dyn Check>, ParamsError>,
}

impl fmt::Debug for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Definition").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Every built-in check.
pub fn all() -> impl Iterator<Item = &'static Definition> {
    [
        pss::DEFINITIONS,
        images::DEFINITIONS,
        resources::DEFINITIONS,
        probes::DEFINITIONS,
        read_only_root_filesystem::DEFINITIONS,
        default_namespace::DEFINITIONS,
        service_account::DEFINITIONS,
        secrets::DEFINITIONS,
        labels::DEFINITIONS,
        host_paths::DEFINITIONS,
    ]
    .into_iter()
    .flatten()
}

/// The built-in check called `name`.
pub fn lookup(name: &str) -> Option<&'static Definition> {
    all().find(|d| d.name == name)
}

/// Reads `params` into a typed struct; the error names the offending key. Unknown keys are
/// ignored here (several rules share a policy's params); the policy loader rejects keys that no
/// rule reads.
pub fn parse_params<T: DeserializeOwned>(params: &Params) -> Result<T, ParamsError> {
    // A Map -> Value clone happens once per policy load, never per request.
    let value = serde_json::Value::Object(params.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ParamsError::new(field, e.inner().to_string())
    })
}
