//! `--format text`: findings grouped by object, for a person at a terminal or reading CI logs.

use std::fmt::Write as _;

use super::Report;
use crate::policy::Mode;

/// The report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for r in &report.results {
        let verdict = if !r.allowed {
            "DENIED"
        } else if r.skipped {
            "skipped"
        } else if r.violations.is_empty() {
            "ok"
        } else {
            "allowed with findings"
        };
        let ns = if r.namespace.is_empty() { String::new() } else { format!("{}/", r.namespace) };
        let _ = writeln!(out, "{}[{}] {} {}{}: {}", r.file, r.document, r.kind, ns, r.name, verdict);
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "    {reason}");
        }
        for mode in [Mode::Enforce, Mode::Warn, Mode::Audit] {
            for v in r.violations.iter().filter(|v| v.mode == mode) {
                let _ = writeln!(out, "  {:<7} {}", mode.as_str(), v.line());
            }
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "{} object{}: {} denied, {} warned, {} audited, {} skipped",
        s.objects,
        if s.objects == 1 { "" } else { "s" },
        s.denied,
        s.warned,
        s.audited,
        s.skipped
    );
    out
}
