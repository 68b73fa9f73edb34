//! `--format text`: findings grouped by object, for a person at a terminal or reading CI logs,
//! written as each object is decided.

use std::io::{self, Write};

use super::{ObjectResult, Summary};
use crate::policy::Mode;

/// Writes results as text.
#[derive(Debug, Default)]
pub struct Text {
    /// List skipped objects too (hidden by default: in rendered charts they are most objects).
    pub show_skipped: bool,
}

impl Text {
    /// Writes one object's result.
    pub fn result(&self, out: &mut dyn Write, r: &ObjectResult) -> io::Result<()> {
        if r.skipped && !self.show_skipped {
            return Ok(());
        }
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
        let what = if r.kind.is_empty() { String::new() } else { format!(" {} {ns}{}", r.kind, r.name) };
        writeln!(out, "{}{what}: {verdict}", r.place())?;
        if let Some(reason) = &r.reason {
            writeln!(out, "    {reason}")?;
        }
        for note in &r.notes {
            writeln!(out, "    note: {note}")?;
        }
        for mode in [Mode::Enforce, Mode::Warn, Mode::Audit] {
            for v in r.violations.iter().filter(|v| v.violation.mode == mode) {
                writeln!(out, "  {:<7} {}", mode.as_str(), v.violation.line())?;
            }
        }
        Ok(())
    }

    /// Writes the closing count.
    pub fn finish(&self, out: &mut dyn Write, s: &Summary) -> io::Result<()> {
        let hidden =
            if s.skipped > 0 && !self.show_skipped { " (not listed; --show-skipped lists them)" } else { "" };
        writeln!(out, "{s}{hidden}")
    }
}
