//! Which controls of each framework a policy set covers, and how strongly: a control is
//! enforced, warned or audited by the strongest mode among the rules whose findings carry it.

use std::sync::Arc;

use serde::Serialize;

use crate::compliance::{Admission, Framework, FrameworkControl, catalogues};
use crate::policy::{Mode, PolicySet};

/// How a policy set covers one control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Covered {
    /// Admission cannot decide the control.
    NotDecidable,
    /// No rule of the set gives evidence for it.
    NotCovered,
    /// The strongest rule for it audits.
    Audited,
    /// The strongest rule for it warns.
    Warned,
    /// A rule for it refuses.
    Enforced,
}

impl Covered {
    /// `enforced`, `warned`, `audited`, `not-covered` or `not-decidable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforced => "enforced",
            Self::Warned => "warned",
            Self::Audited => "audited",
            Self::NotCovered => "not-covered",
            Self::NotDecidable => "not-decidable",
        }
    }
}

/// A rule that gives evidence for a control.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct By {
    /// Policy name.
    #[serde(serialize_with = "crate::json::serialize_arc_str")]
    pub policy: Arc<str>,
    /// Rule name.
    #[serde(serialize_with = "crate::json::serialize_arc_str")]
    pub rule: Arc<str>,
    /// The policy's own mode.
    pub mode: Mode,
}

/// One control and the rules that cover it.
#[derive(Clone, Debug)]
pub struct ControlCoverage {
    /// The control.
    pub control: &'static FrameworkControl,
    /// The rules whose findings carry it.
    pub by: Vec<By>,
}

impl ControlCoverage {
    /// How it is covered.
    pub fn covered(&self) -> Covered {
        if self.control.admission == Admission::None {
            return Covered::NotDecidable;
        }
        match self.by.iter().map(|b| b.mode).max() {
            None => Covered::NotCovered,
            Some(Mode::Audit) => Covered::Audited,
            Some(Mode::Warn) => Covered::Warned,
            Some(Mode::Enforce) => Covered::Enforced,
        }
    }
}

/// One framework's coverage.
#[derive(Clone, Debug)]
pub struct Coverage {
    /// The framework.
    pub framework: &'static Framework,
    /// Every control of its catalogue, in order.
    pub controls: Vec<ControlCoverage>,
}

impl Coverage {
    /// How many controls are covered each way.
    pub fn count(&self, covered: Covered) -> usize {
        self.controls.iter().filter(|c| c.covered() == covered).count()
    }
}

/// The coverage of every framework by `set`.
pub fn coverage(set: &PolicySet) -> Vec<Coverage> {
    catalogues()
        .iter()
        .map(|f| Coverage {
            framework: f,
            controls: f
                .controls
                .iter()
                .map(|c| ControlCoverage {
                    control: c,
                    by: set
                        .policies()
                        .iter()
                        .flat_map(|p| {
                            p.rules.iter().filter_map(move |r| {
                                let carries = r
                                    .controls
                                    .by_part()
                                    .any(|(_, cs)| cs.iter().any(|x| x.framework == f.id && x.id == c.id));
                                carries.then(|| By {
                                    policy: p.name.clone(),
                                    rule: r.name.clone(),
                                    mode: p.mode.unwrap_or(Mode::Enforce),
                                })
                            })
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}
