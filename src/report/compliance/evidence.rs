//! The evidence of `podguard report`: per framework and per control, the status the evaluated
//! objects give it, the objects that fail it with their findings, and what the evidence was
//! produced from. Built object by object from the decisions `check` makes; rendered by
//! [`crate::report::compliance`]. The JSON form is a versioned contract (docs/compliance.md).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::coverage::{By, Covered, coverage};
use crate::compliance::Admission;
use crate::policy::{Mode, PolicySet};
use crate::report::ObjectResult;

/// `apiVersion` of the JSON report; a field is never removed or changes meaning within it.
pub const API_VERSION: &str = "podguard.dev/report/v1";

/// A control's status in a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Checked on at least one object, and no object fails it.
    Pass,
    /// At least one object fails it.
    Fail,
    /// Covered by the policy set, but no evaluated object was in the scope of its rules.
    NotApplicable,
    /// Admission could decide it (fully or partly), but no rule of the policy set does.
    NotCovered,
    /// Admission cannot decide it.
    NotDecidable,
}

impl Status {
    /// Every status, in the order reports count them.
    pub const ALL: [Status; 5] =
        [Status::Fail, Status::Pass, Status::NotApplicable, Status::NotCovered, Status::NotDecidable];

    /// `pass`, `fail`, `not-applicable`, `not-covered` or `not-decidable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NotApplicable => "not-applicable",
            Self::NotCovered => "not-covered",
            Self::NotDecidable => "not-decidable",
        }
    }

    /// For people: `not decidable at admission` rather than `not-decidable`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NotApplicable => "not applicable",
            Self::NotCovered => "not covered",
            Self::NotDecidable => "not decidable at admission",
        }
    }
}

/// Where the evaluated objects came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Source {
    /// Manifests, as `podguard check` reads them.
    Manifests {
        /// The paths given.
        paths: Vec<String>,
    },
    /// The workloads stored in a cluster.
    Cluster {
        /// The cluster's name, when given or known from the kubeconfig.
        #[serde(skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
        /// The API server's address.
        server: String,
    },
}

/// A policy of the evaluated set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyMeta {
    /// Name.
    pub name: String,
    /// Its own mode (unset = enforce).
    pub mode: Mode,
    /// Where it was loaded from.
    pub origin: String,
}

/// What the evidence was produced from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// When, RFC 3339 in UTC.
    pub generated: String,
    /// podguard's version.
    pub podguard_version: String,
    /// `sha256:` of the policy set: its documents as loaded, in order, as JSON.
    pub policy_set_digest: String,
    /// The policies.
    pub policies: Vec<PolicyMeta>,
    /// Where the objects came from.
    pub source: Source,
    /// Namespaces left out, as the webhook leaves them out.
    pub exempt_namespaces: Vec<String>,
    /// The other settings that change what is decided.
    pub settings: SettingsMeta,
}

/// The admission settings a report was made with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsMeta {
    /// Mode of namespaces without a mode label.
    pub default_mode: Mode,
    /// Whether the `podguard.dev/mode` namespace label was honoured.
    pub namespace_mode_label: bool,
    /// `runtimeClassName`s left out.
    pub exempt_runtime_classes: Vec<String>,
    /// `deny` or `allow`: the answer for an object unreadable as its kind.
    pub on_error: &'static str,
}

/// The object a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    /// Kind.
    pub kind: String,
    /// Namespace (empty: none).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `file:line` for manifests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl ObjectRef {
    /// `Kind/namespace/name` (or `Kind/name`).
    pub fn id(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One finding, as evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FindingRef {
    /// Policy.
    pub policy: String,
    /// Rule.
    pub rule: String,
    /// The mode it has at admission in the object's namespace.
    pub mode: Mode,
    /// Other policies that found the same thing (both Pod Security levels).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// The field.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

/// An object failing a control. The object and its findings are shared by every control they
/// bear on (a privileged container bears on a dozen): a cluster-wide report holds each once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failing {
    /// The object.
    pub object: Arc<ObjectRef>,
    /// Its findings that bear on the control.
    pub findings: Vec<Arc<FindingRef>>,
}

/// One control in the report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlReport {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// How much of it admission decides.
    pub admission: Admission,
    /// Baselines it belongs to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<String>,
    /// Its status.
    pub status: Status,
    /// How the policy set covers it.
    pub coverage: Covered,
    /// The rules that give evidence for it.
    pub rules: Vec<By>,
    /// Objects in the scope of those rules.
    pub evaluated: usize,
    /// Objects failing it.
    pub failing: Vec<Failing>,
}

/// Counts of controls per status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Passing.
    pub pass: usize,
    /// Failing.
    pub fail: usize,
    /// Not applicable.
    pub not_applicable: usize,
    /// Not covered.
    pub not_covered: usize,
    /// Not decidable at admission.
    pub not_decidable: usize,
}

impl Counts {
    fn add(&mut self, s: Status) {
        *self.slot(s) += 1;
    }

    fn slot(&mut self, s: Status) -> &mut usize {
        match s {
            Status::Pass => &mut self.pass,
            Status::Fail => &mut self.fail,
            Status::NotApplicable => &mut self.not_applicable,
            Status::NotCovered => &mut self.not_covered,
            Status::NotDecidable => &mut self.not_decidable,
        }
    }

    /// The count of `s`.
    pub fn get(&self, s: Status) -> usize {
        match s {
            Status::Pass => self.pass,
            Status::Fail => self.fail,
            Status::NotApplicable => self.not_applicable,
            Status::NotCovered => self.not_covered,
            Status::NotDecidable => self.not_decidable,
        }
    }

    /// All controls.
    pub fn total(&self) -> usize {
        Status::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// One framework in the report.
#[derive(Clone, Debug, Serialize)]
pub struct FrameworkReport {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Where its ids come from.
    pub source: String,
    /// What part of it is listed.
    pub scope: String,
    /// Controls per status.
    pub summary: Counts,
    /// Its controls.
    pub controls: Vec<ControlReport>,
}

/// Counts of objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Objects {
    /// Objects read.
    pub read: usize,
    /// Evaluated by at least one policy.
    pub evaluated: usize,
    /// Left out (not a pod kind, exempt namespace ...).
    pub skipped: usize,
    /// That could not be evaluated (unreadable as their kind).
    pub unreadable: usize,
    /// With at least one finding on a control of a catalogue.
    pub failing: usize,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// [`API_VERSION`].
    pub api_version: &'static str,
    /// `ComplianceReport`.
    pub kind: &'static str,
    /// What it was produced from.
    pub metadata: Meta,
    /// Counts of objects.
    pub objects: Objects,
    /// Objects that could not be evaluated, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Failing>,
    /// Every framework podguard has a catalogue of.
    pub frameworks: Vec<FrameworkReport>,
}

/// Gathers the evidence object by object.
pub struct Builder {
    evidence: Evidence,
    /// `(framework, control)` → its place in `evidence.frameworks`.
    index: HashMap<(&'static str, &'static str), (usize, usize)>,
    /// Policy name → the controls its rules cover.
    by_policy: HashMap<Arc<str>, Vec<(usize, usize)>>,
}

impl Builder {
    /// Starts a report of `set`'s evaluation, with `meta` describing it.
    pub fn new(set: &PolicySet, meta: Meta) -> Self {
        let mut index = HashMap::new();
        let mut by_policy: HashMap<Arc<str>, Vec<(usize, usize)>> = HashMap::new();
        let frameworks = coverage(set)
            .into_iter()
            .enumerate()
            .map(|(fi, cov)| {
                let f = cov.framework;
                let controls = cov
                    .controls
                    .into_iter()
                    .enumerate()
                    .map(|(ci, c)| {
                        index.insert((f.id.as_str(), c.control.id.as_str()), (fi, ci));
                        for b in &c.by {
                            let list = by_policy.entry(b.policy.clone()).or_default();
                            if !list.contains(&(fi, ci)) {
                                list.push((fi, ci));
                            }
                        }
                        ControlReport {
                            id: c.control.id.clone(),
                            title: c.control.title.clone(),
                            admission: c.control.admission,
                            baselines: c.control.baselines.clone(),
                            status: Status::NotApplicable,
                            coverage: c.covered(),
                            rules: c.by,
                            evaluated: 0,
                            failing: Vec::new(),
                        }
                    })
                    .collect();
                FrameworkReport {
                    id: f.id.clone(),
                    name: f.name.clone(),
                    version: f.version.clone(),
                    source: f.source.clone(),
                    scope: f.scope.clone(),
                    summary: Counts::default(),
                    controls,
                }
            })
            .collect();
        Self {
            evidence: Evidence {
                api_version: API_VERSION,
                kind: "ComplianceReport",
                metadata: meta,
                objects: Objects::default(),
                unreadable: Vec::new(),
                frameworks,
            },
            index,
            by_policy,
        }
    }

    /// Adds one object's result. It must have been decided with
    /// [`crate::admission::Settings::record_applied`], so the controls it was checked against
    /// are known.
    pub fn add(&mut self, r: &ObjectResult) {
        let o = &mut self.evidence.objects;
        o.read += 1;
        let object = || {
            Arc::new(ObjectRef {
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                location: (r.file != "cluster").then(|| format!("{}:{}", r.file, r.line)),
            })
        };
        if r.skipped {
            o.skipped += 1;
            return;
        }
        // An object unreadable as its kind (`--on-error`) was never evaluated: it is evidence
        // of nothing, and listed apart.
        if let Some(reason) = r.reason.as_ref().filter(|why| why.starts_with(crate::report::CANNOT_EVALUATE))
        {
            o.unreadable += 1;
            self.evidence.unreadable.push(Failing {
                object: object(),
                findings: vec![Arc::new(FindingRef {
                    policy: String::new(),
                    rule: String::new(),
                    mode: Mode::Enforce,
                    also: Vec::new(),
                    path: String::new(),
                    message: reason.clone(),
                    fix: String::new(),
                })],
            });
            return;
        }
        o.evaluated += 1;
        // Several applied policies may cover one control (both Pod Security levels): the
        // object counts once.
        let mut in_scope: Vec<(usize, usize)> =
            r.applied.iter().flat_map(|p| self.by_policy.get(p).into_iter().flatten().copied()).collect();
        in_scope.sort_unstable();
        in_scope.dedup();
        for &(fi, ci) in &in_scope {
            self.evidence.frameworks[fi].controls[ci].evaluated += 1;
        }
        // Per control, this object's findings on it.
        let mut mine: Vec<((usize, usize), Arc<FindingRef>)> = Vec::new();
        for found in &r.violations {
            let v = &found.violation;
            let mut shared: Option<Arc<FindingRef>> = None;
            for c in v.controls.iter() {
                let Some(&at) = self.index.get(&(c.framework.as_str(), c.id.as_str())) else { continue };
                let finding = shared.get_or_insert_with(|| {
                    Arc::new(FindingRef {
                        policy: v.policy.to_string(),
                        rule: v.rule.to_string(),
                        mode: v.mode,
                        also: v.also.iter().map(|p| p.to_string()).collect(),
                        path: v.path.to_string(),
                        message: v.message.clone(),
                        fix: v.fix.to_string(),
                    })
                });
                mine.push((at, finding.clone()));
            }
        }
        if mine.is_empty() {
            return;
        }
        self.evidence.objects.failing += 1;
        let object = object();
        mine.sort_by_key(|(at, _)| *at);
        let mut i = 0;
        while i < mine.len() {
            let at = mine[i].0;
            let end = mine[i..].iter().position(|(a, _)| *a != at).map_or(mine.len(), |n| i + n);
            let findings = mine[i..end].iter().map(|(_, f)| f.clone()).collect();
            let control = &mut self.evidence.frameworks[at.0].controls[at.1];
            control.failing.push(Failing { object: object.clone(), findings });
            // An object failing a control was in its scope, even if the finding came from a
            // policy's own declared controls.
            if in_scope.binary_search(&at).is_err() {
                control.evaluated += 1;
            }
            i = end;
        }
    }

    /// The finished report: statuses and counts.
    pub fn finish(mut self) -> Evidence {
        for f in &mut self.evidence.frameworks {
            let mut counts = Counts::default();
            for c in &mut f.controls {
                // A control admission cannot decide still fails when a policy's author claimed it
                // for a rule that found something.
                c.status = if !c.failing.is_empty() {
                    Status::Fail
                } else if c.admission == Admission::None {
                    Status::NotDecidable
                } else if c.rules.is_empty() {
                    Status::NotCovered
                } else if c.evaluated == 0 {
                    Status::NotApplicable
                } else {
                    Status::Pass
                };
                counts.add(c.status);
            }
            f.summary = counts;
        }
        self.evidence
    }
}

/// `sha256:<hex>` of the policy set: each policy document as loaded, as JSON, in name order (the
/// order sources were given in does not change what is decided).
pub fn digest(set: &PolicySet) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut policies: Vec<_> = set.policies().iter().collect();
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    for p in policies {
        // Serializing a policy document cannot fail: it came from JSON-compatible YAML.
        let json = serde_json::to_vec(&p.source).unwrap_or_default();
        ctx.update(&(json.len() as u64).to_be_bytes());
        ctx.update(&json);
    }
    let hex: String = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The policies of `set`, for [`Meta::policies`].
pub fn policies(set: &PolicySet) -> Vec<PolicyMeta> {
    set.policies()
        .iter()
        .map(|p| PolicyMeta {
            name: p.name.to_string(),
            mode: p.mode.unwrap_or(Mode::Enforce),
            origin: p.origin.to_string(),
        })
        .collect()
}

/// Now, as RFC 3339 in UTC to the second.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
