//! `--format json`: the stable machine contract of docs/cli.md, written as each object is
//! decided (one result per line inside the `results` array), so a run over thousands of objects
//! never holds them all.

use std::io::{self, Write};

use super::{ObjectResult, Summary};

/// Writes results as one JSON document.
#[derive(Debug, Default)]
pub struct Json {
    written: usize,
}

impl Json {
    /// Writes one object's result.
    pub fn result(&mut self, out: &mut dyn Write, r: &ObjectResult) -> io::Result<()> {
        out.write_all(if self.written == 0 { b"{\"results\": [\n  " } else { b",\n  " })?;
        serde_json::to_writer(&mut *out, r)?;
        self.written += 1;
        Ok(())
    }

    /// Closes the document with the counts.
    pub fn finish(&mut self, out: &mut dyn Write, s: &Summary) -> io::Result<()> {
        out.write_all(if self.written == 0 { b"{\"results\": [" } else { b"\n" })?;
        out.write_all(b"],\n\"summary\": ")?;
        serde_json::to_writer(&mut *out, s)?;
        out.write_all(b"}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{FieldPath, Mode, Severity, Violation};
    use crate::report::{Found, ObjectResult, Report};

    fn render(report: &Report) -> String {
        let mut out = Vec::new();
        let mut json = Json::default();
        for r in &report.results {
            json.result(&mut out, r).unwrap();
        }
        json.finish(&mut out, &report.summary).unwrap();
        String::from_utf8(out).unwrap()
    }

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
            also: vec!["q".into()],
        };
        let r = ObjectResult {
            file: "x.yaml".into(),
            document: 0,
            item: None,
            line: 3,
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "web".into(),
            allowed: false,
            skipped: false,
            reason: None,
            notes: Vec::new(),
            violations: vec![Found { violation: v, line: 9 }],
            applied: Vec::new(),
        };
        let json: serde_json::Value = serde_json::from_str(&render(&Report::new(vec![r]))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"results":[{"file":"x.yaml","document":0,"line":3,"kind":"Pod","namespace":"default","name":"web",
                "allowed":false,"skipped":false,"violations":[{"policy":"p","rule":"r","severity":"high",
                "controls":["nist-800-53-r5:AC-6"],"mode":"enforce","path":"spec.hostPID","message":"m","fix":"f",
                "also":["q"],"line":9}]}],
              "summary":{"objects":1,"denied":1,"warned":0,"audited":0,"skipped":0}})
        );
    }

    #[test]
    fn an_empty_run_is_a_valid_document() {
        let json: serde_json::Value = serde_json::from_str(&render(&Report::default())).unwrap();
        assert_eq!(json["results"], serde_json::json!([]));
    }
}
