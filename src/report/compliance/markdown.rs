//! Markdown: the summary per framework, each framework's controls in a table, then the failing
//! controls with their objects and findings. For a pull request, a wiki or a ticket.

use std::fmt::Write as _;
use std::io::Write;

use crate::report::compliance::evidence::{Evidence, Status};

/// Text safe inside a table cell or a list item: no line breaks, `|` and markup escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\n' | '\r' => out.push(' '),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Writes `e` as Markdown.
pub fn render(e: &Evidence, out: &mut dyn Write) -> std::io::Result<()> {
    let mut s = String::new();
    let m = &e.metadata;
    // Writing into a String cannot fail.
    let _ = writeln!(s, "# Compliance report\n");
    let _ = writeln!(s, "- Generated: {} by podguard {}", m.generated, esc(&m.podguard_version));
    let _ = writeln!(s, "- Source: {}", esc(&super::source_line(e)));
    let _ = writeln!(s, "- Policy set: `{}` ({} policies)", m.policy_set_digest, m.policies.len());
    let o = &e.objects;
    let _ = writeln!(
        s,
        "- Objects: {} read, {} evaluated, {} skipped, {} unreadable; {} fail at least one control",
        o.read, o.evaluated, o.skipped, o.unreadable, o.failing
    );
    if !m.exempt_namespaces.is_empty() {
        let _ = writeln!(s, "- Exempt namespaces: {}", esc(&m.exempt_namespaces.join(", ")));
    }
    if !e.unreadable.is_empty() {
        let _ = writeln!(s, "\n## Objects that could not be evaluated\n");
        for u in &e.unreadable {
            let why = u.findings.first().map(|f| f.message.as_str()).unwrap_or_default();
            let _ = writeln!(s, "- {}: {}", esc(&u.object.id()), esc(why));
        }
    }
    let _ = writeln!(s, "\n## Summary\n");
    let _ =
        writeln!(s, "| framework | version | fail | pass | not applicable | not covered | not decidable |");
    let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for f in &e.frameworks {
        let c = &f.summary;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            esc(&f.name),
            esc(&f.version),
            c.fail,
            c.pass,
            c.not_applicable,
            c.not_covered,
            c.not_decidable
        );
    }
    for f in &e.frameworks {
        let _ = writeln!(s, "\n## {} {}\n", esc(&f.name), esc(&f.version));
        let _ = writeln!(s, "{}\n", esc(&f.scope));
        let _ =
            writeln!(s, "| control | title | admission | covered | status | objects failing / in scope |");
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | ---: |");
        for c in &f.controls {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | **{}** | {} / {} |",
                esc(&c.id),
                esc(&c.title),
                c.admission.as_str(),
                c.coverage.as_str(),
                c.status.label(),
                c.failing.len(),
                c.evaluated
            );
        }
        for c in f.controls.iter().filter(|c| c.status == Status::Fail) {
            let _ = writeln!(s, "\n### {} {}: {}\n", esc(&f.id), esc(&c.id), esc(&c.title));
            for failing in c.failing.iter().take(super::MAX_OBJECTS_SHOWN) {
                let at =
                    failing.object.location.as_deref().map(|l| format!(" ({})", esc(l))).unwrap_or_default();
                let _ = writeln!(s, "- {}{at}", esc(&failing.object.id()));
                for x in &failing.findings {
                    let _ = writeln!(
                        s,
                        "  - {} {}/{} `{}`: {}",
                        x.mode,
                        esc(&x.policy),
                        esc(&x.rule),
                        x.path.replace('`', "'"),
                        esc(&x.message)
                    );
                }
            }
            if c.failing.len() > super::MAX_OBJECTS_SHOWN {
                let _ = writeln!(
                    s,
                    "- … and {} more objects (the JSON and CSV reports list every one)",
                    c.failing.len() - super::MAX_OBJECTS_SHOWN
                );
            }
        }
    }
    out.write_all(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{PODS, evidence_of, rendered};
    use super::*;

    #[test]
    fn tables_and_failing_objects() {
        let e = evidence_of(PODS);
        let md = rendered(render, &e);
        assert!(md.contains("| framework | version | fail |"), "{md}");
        assert_eq!(md.matches("\n## ").count(), 1 + e.frameworks.len());
        assert!(
            md.contains("### cis-eks-1.8.0 4.2.1: Minimize the admission of privileged containers"),
            "{md}"
        );
        assert!(md.contains("- Pod/shop/priv (m.yaml:1)"), "{md}");
        // Object names cannot break the markup.
        assert!(md.contains("Pod/shop/\\<plain & \"quoted\"\\>"), "{md}");
        assert_eq!(esc("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn long_lists_of_failing_objects_are_cut_for_people() {
        let pods: String = (0..super::super::MAX_OBJECTS_SHOWN + 3)
            .map(|i| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: shop}}\n\
                     spec: {{containers: [{{name: a, securityContext: {{privileged: true}}}}]}}\n---\n"
                )
            })
            .collect();
        let e = evidence_of(&pods);
        let md = rendered(render, &e);
        let section = md.split("### cis-eks-1.8.0 4.2.1").nth(1).unwrap().split("\n### ").next().unwrap();
        assert_eq!(section.matches("\n- Pod/shop/").count(), super::super::MAX_OBJECTS_SHOWN);
        assert!(section.contains("- … and 3 more objects (the JSON and CSV reports list every one)"));
        let c = &e.frameworks[0].controls.iter().find(|c| c.id == "4.2.1").unwrap();
        assert_eq!(c.failing.len(), super::super::MAX_OBJECTS_SHOWN + 3);
    }
}
