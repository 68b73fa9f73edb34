//! CSV: one row per control and failing finding (one row with empty object columns for a control
//! nothing fails), for spreadsheets and GRC tools.

use std::io::Write;

use crate::report::compliance::evidence::Evidence;

const HEADER: [&str; 18] = [
    "framework",
    "framework_version",
    "control",
    "title",
    "admission",
    "coverage",
    "status",
    "evaluated",
    "kind",
    "namespace",
    "name",
    "location",
    "policy",
    "rule",
    "mode",
    "path",
    "message",
    "fix",
];

/// A spreadsheet runs a cell starting with one of these as a formula; object names and messages
/// come from manifests, so such a cell gets a leading `'` (OWASP's advice on CSV injection).
/// Standard input's location, `-:LINE`, is left as is: no spreadsheet reads it as a formula.
fn cell(s: &str) -> String {
    let stdin = s.strip_prefix("-:").is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && !stdin { format!("'{s}") } else { s.to_owned() }
}

/// The IO error inside a CSV error, kind kept (a closed pipe stays a closed pipe for the caller).
fn io(e: ::csv::Error) -> std::io::Error {
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// Writes `e` as CSV.
pub fn render(e: &Evidence, out: &mut dyn Write) -> std::io::Result<()> {
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(HEADER).map_err(io)?;
    for f in &e.frameworks {
        for c in &f.controls {
            // The control's columns, the same on each of its rows.
            let head: Vec<String> = [
                f.id.as_str(),
                f.version.as_str(),
                c.id.as_str(),
                c.title.as_str(),
                c.admission.as_str(),
                c.coverage.as_str(),
                c.status.as_str(),
            ]
            .iter()
            .map(|s| cell(s))
            .chain(std::iter::once(c.evaluated.to_string()))
            .collect();
            if c.failing.is_empty() {
                let mut row = head.clone();
                row.resize(HEADER.len(), String::new());
                w.write_record(&row).map_err(io)?;
            }
            for failing in &c.failing {
                let o = &failing.object;
                for finding in &failing.findings {
                    let mut row = head.clone();
                    row.extend(
                        [
                            o.kind.as_str(),
                            o.namespace.as_str(),
                            o.name.as_str(),
                            o.location.as_deref().unwrap_or_default(),
                            finding.policy.as_str(),
                            finding.rule.as_str(),
                            finding.mode.as_str(),
                            finding.path.as_str(),
                            finding.message.as_str(),
                            finding.fix.as_str(),
                        ]
                        .iter()
                        .map(|s| cell(s)),
                    );
                    w.write_record(&row).map_err(io)?;
                }
            }
        }
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{PODS, evidence_of};
    use super::*;

    #[test]
    fn one_row_per_failing_finding_and_per_clean_control() {
        let e = evidence_of(PODS);
        let mut out = Vec::new();
        render(&e, &mut out).unwrap();
        let mut r = ::csv::Reader::from_reader(out.as_slice());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), HEADER);
        let rows: Vec<::csv::StringRecord> = r.records().map(Result::unwrap).collect();
        let cis_421: Vec<_> = rows.iter().filter(|r| &r[0] == "cis-eks-1.8.0" && &r[2] == "4.2.1").collect();
        assert_eq!(cis_421.len(), 1, "{cis_421:?}");
        assert_eq!((&cis_421[0][6], &cis_421[0][10]), ("fail", "priv"));
        assert!(cis_421[0][15].ends_with("securityContext.privileged"));
        let controls: usize = e.frameworks.iter().map(|f| f.controls.len()).sum();
        assert!(rows.len() >= controls);
    }

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_quoted() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("-:12"), "-:12");
        assert_eq!(cell("-:1+1"), "'-:1+1");
    }
}
