//! `--format summary`: how many objects each policy rule finds something in, by mode; the
//! view for a first look at a large input, or a CI log that should stay short.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Report;
use crate::policy::Mode;

/// The counts as an aligned table, then the totals line.
pub fn render(report: &Report) -> String {
    // (policy, rule) -> objects with a finding at each mode [audit, warn, enforce].
    let mut rows: BTreeMap<(&str, &str), [usize; 3]> = BTreeMap::new();
    for r in &report.results {
        let mut seen: Vec<(&str, &str, Mode)> = Vec::new();
        for f in &r.violations {
            let v = &f.violation;
            for policy in std::iter::once(&v.policy).chain(&v.also) {
                let key = (&**policy, &*v.rule, v.mode);
                if !seen.contains(&key) {
                    seen.push(key);
                    rows.entry((key.0, key.1)).or_default()[v.mode as usize] += 1;
                }
            }
        }
    }
    let width = rows.keys().map(|(p, r)| p.len() + r.len() + 1).max().unwrap_or(0).max("policy/rule".len());
    let mut out = String::new();
    let _ = writeln!(out, "{:<width$}  {:>7}  {:>7}  {:>7}", "policy/rule", "enforce", "warn", "audit");
    for ((policy, rule), [audit, warn, enforce]) in &rows {
        let name = format!("{policy}/{rule}");
        let _ = writeln!(out, "{name:<width$}  {enforce:>7}  {warn:>7}  {audit:>7}");
    }
    let _ = writeln!(out, "{}", report.summary);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{FieldPath, Severity, Violation};
    use crate::report::{Found, ObjectResult};

    fn result(name: &str, found: &[(&str, &str, Mode)]) -> ObjectResult {
        let violations = found
            .iter()
            .map(|(policy, rule, mode)| Found {
                violation: Violation {
                    policy: (*policy).into(),
                    rule: (*rule).into(),
                    severity: Severity::High,
                    controls: Vec::new().into(),
                    mode: *mode,
                    path: FieldPath::new("spec"),
                    message: "m".into(),
                    fix: "".into(),
                    also: Vec::new(),
                },
                line: 1,
            })
            .collect();
        ObjectResult {
            file: "f".into(),
            document: 0,
            item: None,
            line: 1,
            kind: "Pod".into(),
            namespace: String::new(),
            name: name.into(),
            allowed: !found.iter().any(|f| f.2 == Mode::Enforce),
            skipped: false,
            reason: None,
            notes: Vec::new(),
            violations,
            applied: Vec::new(),
        }
    }

    #[test]
    fn counts_objects_per_rule_and_mode_once_each() {
        let report = Report::new(vec![
            result("a", &[("pss", "privileged", Mode::Enforce), ("pss", "privileged", Mode::Enforce)]),
            result("b", &[("pss", "privileged", Mode::Enforce), ("images", "tag", Mode::Warn)]),
        ]);
        let out = render(&report);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].starts_with("images/tag") && lines[1].ends_with("0        1        0"), "{out}");
        assert!(lines[2].starts_with("pss/privileged") && lines[2].ends_with("2        0        0"), "{out}");
        assert_eq!(lines[3], "2 objects: 2 denied, 1 warned, 0 audited, 0 skipped");
    }
}
