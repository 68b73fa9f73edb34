//! `podguard policies lint|list`.

use std::path::PathBuf;
use std::process::ExitCode;

use std::fmt::Write as _;
use std::io::Write as _;

use crate::checks;
use crate::compliance;
use crate::policy::PolicySet;
use crate::report::compliance::coverage::Covered;

/// Subcommands of `podguard policies`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate policy files; exit 2 on any error, naming file, document, line and field.
    Lint {
        /// Policy files or folders.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List policies (the built-in library when no path is given) and the built-in checks.
    List {
        /// Policy files or folders.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Show, per compliance framework, which controls the policies enforce, warn about,
        /// audit or do not cover, and which admission cannot decide.
        #[arg(long)]
        controls: bool,
    },
}

/// Runs the subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let (paths, list, controls) = match cmd {
        Command::Lint { paths } => (paths, false, false),
        Command::List { paths, controls } => (paths, true, controls),
    };
    let set = match super::check::load_policies(&paths) {
        Ok(set) => set,
        Err(errors) => {
            for e in &errors {
                eprintln!("podguard: policy error: {e}");
            }
            eprintln!("{} error{}", errors.len(), if errors.len() == 1 { "" } else { "s" });
            return Ok(ExitCode::from(2));
        }
    };
    let mut text = String::new();
    // Writing into a String cannot fail.
    if !list {
        let n = set.policies().len();
        let _ = writeln!(text, "{n} polic{} OK", if n == 1 { "y" } else { "ies" });
    } else if controls {
        text = coverage_text(&set);
    } else {
        for p in set.policies() {
            let mode = p.mode.map_or("enforce (default)", |m| m.as_str());
            let _ =
                writeln!(text, "{}  [{}; severity {}; mode {}]", p.name, p.origin, p.severity.as_str(), mode);
            if !p.source.spec.description.is_empty() {
                let _ = writeln!(text, "    {}", p.source.spec.description.trim());
            }
            for r in &p.source.spec.rules {
                let what = r.check.as_deref().map_or_else(|| "cel".to_owned(), |c| format!("check {c}"));
                let _ = writeln!(text, "    rule {}: {what}", r.name);
            }
            if !p.controls.is_empty() {
                let _ = writeln!(text, "    controls: {}", compliance::compact_union([&p.controls]));
            }
        }
        let _ = writeln!(text, "\nbuilt-in checks:");
        for d in checks::all() {
            let _ = writeln!(text, "  {:<38} {}", d.name, d.summary);
        }
    }
    // A reader that stops early (`| head`) is not an error.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Per framework: the counts, then each control with how it is covered and by which rules.
fn coverage_text(set: &PolicySet) -> String {
    let mut out = String::new();
    for cov in crate::report::compliance::coverage::coverage(set) {
        let f = cov.framework;
        let counts: Vec<String> = [
            Covered::Enforced,
            Covered::Warned,
            Covered::Audited,
            Covered::NotCovered,
            Covered::NotDecidable,
        ]
        .into_iter()
        .map(|c| format!("{} {}", cov.count(c), c.as_str()))
        .collect();
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{} ({} {}): {}", f.id, f.name, f.version, counts.join(", "));
        let width = cov.controls.iter().map(|c| c.control.id.len()).max().unwrap_or(0);
        for c in &cov.controls {
            let by: Vec<String> =
                c.by.iter().map(|b| format!("{}/{}={}", b.policy, b.rule, b.mode)).collect();
            let by = if by.is_empty() { String::new() } else { format!("  by {}", by.join(", ")) };
            let (id, covered, title) = (&c.control.id, c.covered().as_str(), &c.control.title);
            let _ = writeln!(out, "  {id:<width$} {covered:<14} {title}{by}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_of_the_library_per_framework() {
        let set = super::super::check::load_policies(&[]).unwrap();
        let text = coverage_text(&set);
        for f in compliance::catalogues() {
            assert!(
                text.contains(&format!("\n{} (", f.id)) || text.starts_with(&format!("{} (", f.id)),
                "{}",
                f.id
            );
        }
        let line = |id: &str| text.lines().find(|l| l.trim_start().starts_with(id)).unwrap().to_owned();
        // Baseline enforces privileged containers; restricted only warns about escalation.
        let l = line("4.2.1 ");
        assert!(l.contains("enforced") && l.contains("pod-security-baseline/pod-security=enforce"), "{l}");
        assert!(line("4.2.5 ").contains("warned"), "{}", line("4.2.5 "));
        assert!(line("4.1.5 ").contains("audited"), "{}", line("4.1.5 "));
        assert!(line("4.1.1 ").contains("not-decidable"), "{}", line("4.1.1 "));
    }
}
