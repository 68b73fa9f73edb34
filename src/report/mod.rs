//! Rendering `podguard check` results for people ([`text`]) and machines ([`json`]). One module
//! per format behind [`Report`]; the contract of the JSON format is documented in docs/cli.md.

pub mod json;
pub mod text;

use serde::Serialize;

use crate::admission::{Decision, Outcome};
use crate::policy::{Mode, Violation};

/// The result for one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// File as given, or `-`.
    pub file: String,
    /// Document index in the file.
    pub document: usize,
    /// Object kind.
    pub kind: String,
    /// Namespace it would be created in.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Whether the webhook would admit it.
    pub allowed: bool,
    /// Whether it was admitted without evaluation (not a pod kind, exempt, ...).
    pub skipped: bool,
    /// Why it was skipped, or why it could not be evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every violation, at its effective mode.
    pub violations: Vec<Violation>,
}

impl ObjectResult {
    /// Builds the result of one document from its decision.
    pub fn new(doc: &crate::input::Document, decision: Decision) -> Self {
        let r = &doc.request;
        let (skipped, reason) = match &decision.outcome {
            Outcome::Evaluated => (false, None),
            Outcome::Skipped(why) => (true, Some(why.clone())),
            Outcome::Unreadable(e) => (false, Some(format!("cannot evaluate: {e}"))),
            Outcome::Refused(why) => (false, Some(why.clone())),
        };
        Self {
            file: doc.file.clone(),
            document: doc.document,
            kind: r.kind.kind.clone(),
            namespace: r.namespace.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
            allowed: decision.allowed,
            skipped,
            reason,
            violations: decision.violations,
        }
    }

    fn has(&self, mode: Mode) -> bool {
        self.violations.iter().any(|v| v.mode == mode)
    }
}

/// Counts over all objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Objects read.
    pub objects: usize,
    /// Objects that would be refused.
    pub denied: usize,
    /// Objects with at least one warn violation.
    pub warned: usize,
    /// Objects with at least one audit violation.
    pub audited: usize,
    /// Objects admitted without evaluation.
    pub skipped: usize,
}

/// A whole `check` run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// One entry per object, in input order.
    pub results: Vec<ObjectResult>,
    /// Counts.
    pub summary: Summary,
}

impl Report {
    /// A report over `results`.
    pub fn new(results: Vec<ObjectResult>) -> Self {
        let summary = Summary {
            objects: results.len(),
            denied: results.iter().filter(|r| !r.allowed).count(),
            warned: results.iter().filter(|r| r.has(Mode::Warn)).count(),
            audited: results.iter().filter(|r| r.has(Mode::Audit)).count(),
            skipped: results.iter().filter(|r| r.skipped).count(),
        };
        Self { results, summary }
    }
}
