//! Rendering `podguard check` results for people ([`text`], [`summary`]) and machines ([`json`],
//! [`sarif`], [`junit`]). One module per format over [`ObjectResult`]s; the contract of the JSON
//! format is documented in docs/cli.md.

pub mod compliance;
pub mod json;
pub mod junit;
pub mod sarif;
pub mod summary;
pub mod text;

use serde::Serialize;

use crate::policy::{Mode, Violation};

/// How the reason of an object that could not be evaluated starts.
pub const CANNOT_EVALUATE: &str = "cannot evaluate: ";

/// The result for one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// File as given, or `-`.
    pub file: String,
    /// Document index in the file.
    pub document: usize,
    /// Index in the `items` of a list kind, for an object that came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// 1-based line where the object starts.
    pub line: usize,
    /// Object kind.
    pub kind: String,
    /// Namespace it would be created in (empty: none named, see `--namespace`).
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
    /// What the reader noticed (an apiVersion no longer served).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Every violation, at its effective mode, with the line of its field.
    pub violations: Vec<Found>,
    /// The policies that applied, when the settings asked for them (`podguard test`).
    #[serde(skip)]
    pub applied: Vec<std::sync::Arc<str>>,
}

/// A violation and where its field is in the input.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The violation.
    #[serde(flatten)]
    pub violation: Violation,
    /// 1-based line of the field (or of its closest written parent) in the input file.
    pub line: usize,
}

impl ObjectResult {
    /// `file[document]`, `.items[i]` for a list item.
    pub fn place(&self) -> String {
        match self.item {
            Some(i) => format!("{}[{}].items[{i}]", self.file, self.document),
            None => format!("{}[{}]", self.file, self.document),
        }
    }

    /// Whether it has a violation at `mode`.
    pub fn has(&self, mode: Mode) -> bool {
        self.violations.iter().any(|v| v.violation.mode == mode)
    }

    /// Whether it fails a run that fails on violations at `mode` or stronger: refused objects
    /// always do.
    pub fn fails(&self, fail_on: Mode) -> bool {
        !self.allowed || self.violations.iter().any(|v| v.violation.mode >= fail_on)
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

impl std::fmt::Display for Summary {
    /// `3 objects: 1 denied, 2 warned, 0 audited, 0 skipped`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} object{}: {} denied, {} warned, {} audited, {} skipped",
            self.objects,
            if self.objects == 1 { "" } else { "s" },
            self.denied,
            self.warned,
            self.audited,
            self.skipped
        )
    }
}

/// Counts over all objects, kept while results stream past.
impl Summary {
    /// Counts `r`.
    pub fn add(&mut self, r: &ObjectResult) {
        self.objects += 1;
        self.denied += usize::from(!r.allowed);
        self.warned += usize::from(r.has(Mode::Warn));
        self.audited += usize::from(r.has(Mode::Audit));
        self.skipped += usize::from(r.skipped);
    }
}

/// A whole `check` run, for the formats that need every result before writing (and tests).
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
        let mut summary = Summary::default();
        for r in &results {
            summary.add(r);
        }
        Self { results, summary }
    }
}
