//! `--format junit`: JUnit XML, which every CI system shows as a test report. One test suite per
//! input file, one test case per object: failed when the object fails the run (`--fail-on`),
//! skipped when it was not evaluated, with the findings as the failure's text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{ObjectResult, Report};
use crate::policy::Mode;

/// The report as a JUnit XML document.
pub fn render(report: &Report, fail_on: Mode) -> String {
    let mut files: BTreeMap<&str, Vec<&ObjectResult>> = BTreeMap::new();
    for r in &report.results {
        files.entry(r.file.as_str()).or_default().push(r);
    }
    let failures = report.results.iter().filter(|r| r.fails(fail_on)).count();
    let skipped = report.results.iter().filter(|r| r.skipped).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"podguard check\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
        report.results.len()
    );
    for (file, results) in files {
        let failures = results.iter().filter(|r| r.fails(fail_on)).count();
        let skipped = results.iter().filter(|r| r.skipped).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
            escape(file),
            results.len()
        );
        for r in results {
            let name = if r.kind.is_empty() {
                r.place()
            } else if r.namespace.is_empty() {
                format!("{} {} ({})", r.kind, r.name, r.place())
            } else {
                format!("{} {}/{} ({})", r.kind, r.namespace, r.name, r.place())
            };
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" line=\"{}\"",
                escape(&name),
                escape(file),
                escape(file),
                r.line
            );
            if r.fails(fail_on) {
                let enforced = r.violations.iter().filter(|v| v.violation.mode == Mode::Enforce).count();
                let message = if r.allowed {
                    let at_or_above = r.violations.iter().filter(|v| v.violation.mode >= fail_on).count();
                    format!("{at_or_above} finding(s) at or above {}", fail_on.as_str())
                } else if enforced == 0 {
                    r.reason.clone().unwrap_or_else(|| "refused".to_owned())
                } else {
                    format!("refused: {enforced} enforce violation(s)")
                };
                let _ = writeln!(out, ">\n      <failure message=\"{}\" type=\"denied\">", escape(&message));
                if let Some(reason) = &r.reason {
                    let _ = writeln!(out, "{}", escape(reason));
                }
                findings(&mut out, r);
                let _ = writeln!(out, "      </failure>\n    </testcase>");
            } else if r.skipped {
                let why = r.reason.as_deref().unwrap_or("not evaluated");
                let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", escape(why));
            } else if !r.violations.is_empty() {
                let _ = writeln!(out, ">\n      <system-out>");
                findings(&mut out, r);
                let _ = writeln!(out, "      </system-out>\n    </testcase>");
            } else {
                out.push_str("/>\n");
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// One line per finding: mode, line in the input, the finding's line.
fn findings(out: &mut String, r: &ObjectResult) {
    for v in &r.violations {
        let _ =
            writeln!(out, "{} line {}: {}", v.violation.mode.as_str(), v.line, escape(&v.violation.line()));
    }
}

/// Escapes text for XML attributes and content; characters XML 1.0 cannot hold at all (most
/// control characters) become U+FFFD.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(escape("a<b & \"c\" 'd'>\u{1}"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\u{FFFD}");
    }
}
