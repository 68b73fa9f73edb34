//! `--format json`: the stable machine contract of docs/cli.md.

use super::Report;

/// The report as pretty JSON with a trailing newline.
pub fn render(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{FieldPath, Mode, Severity, Violation};
    use crate::report::ObjectResult;

    #[test]
    fn keys_of_the_contract() {
        let v = Violation {
            policy: "p".into(),
            rule: "r".into(),
            severity: Severity::High,
            controls: vec![crate::policy::Control { framework: "nist-800-53-r5".into(), id: "AC-6".into() }]
                .into(),
            mode: Mode::Enforce,
            path: FieldPath::new("spec").field("hostPID"),
            message: "m".into(),
            fix: "f".into(),
        };
        let r = ObjectResult {
            file: "x.yaml".into(),
            document: 0,
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "web".into(),
            allowed: false,
            skipped: false,
            reason: None,
            violations: vec![v],
        };
        let json: serde_json::Value = serde_json::from_str(&render(&Report::new(vec![r]))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"results":[{"file":"x.yaml","document":0,"kind":"Pod","namespace":"default","name":"web",
                "allowed":false,"skipped":false,"violations":[{"policy":"p","rule":"r","severity":"high",
                "controls":["nist-800-53-r5:AC-6"],"mode":"enforce","path":"spec.hostPID","message":"m","fix":"f"}]}],
              "summary":{"objects":1,"denied":1,"warned":0,"audited":0,"skipped":0}})
        );
    }
}
