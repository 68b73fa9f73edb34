//! Test-only helpers: build a workload from a few lines of YAML, run `podSecurity` on it with
//! params given as YAML, and collect findings or their paths.

use crate::checks::{Check, Params};
use crate::finding::Finding;
use crate::object::Workload;

/// Decodes a workload of `kind` from YAML (group chosen from the kind).
pub(super) fn workload(kind: &str, yaml: &str) -> Workload {
    crate::testing::workload(kind, yaml)
}

/// The check built from YAML params.
pub(super) fn check(params: &str) -> Box<dyn Check> {
    let params: Params = serde_yaml_ng::from_str(params).unwrap();
    (super::DEFINITIONS[0].build)(&params).unwrap()
}

/// Runs `check` on a workload.
pub(super) fn run(check: &dyn Check, w: &Workload) -> Vec<Finding> {
    crate::testing::run_check(check, w, "default", "", "Pod")
}

/// Findings of `podSecurity` with `params` on a `kind` given as YAML.
pub(super) fn findings(params: &str, kind: &str, yaml: &str) -> Vec<Finding> {
    run(check(params).as_ref(), &workload(kind, yaml))
}

/// Just the paths of [`findings`].
pub(super) fn paths(params: &str, kind: &str, yaml: &str) -> Vec<String> {
    findings(params, kind, yaml).into_iter().map(|f| f.path.to_string()).collect()
}

/// Paths of findings for a Pod whose `spec` is given as YAML, at `level`/`version`.
pub(super) fn spec_paths(level_version: &str, spec: &str) -> Vec<String> {
    let (level, version) = level_version.split_once('/').unwrap_or((level_version, "latest"));
    let indented: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    paths(&format!("level: {level}\nversion: {version}"), "Pod", &format!("spec:\n{indented}"))
}

/// Findings of a single control revision on a Pod given as YAML, ignoring every other control.
pub(super) fn rule_findings(control: super::Control, rule: super::Rule, pod: &str) -> Vec<Finding> {
    let check = super::PodSecurity { steps: Box::new([super::Step { control, rule }]) };
    run(&check, &workload("Pod", pod))
}

/// Just the paths of [`rule_findings`].
pub(super) fn rule_paths(control: super::Control, rule: super::Rule, pod: &str) -> Vec<String> {
    rule_findings(control, rule, pod).into_iter().map(|f| f.path.to_string()).collect()
}
