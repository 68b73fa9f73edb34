//! A self-contained HTML page for auditors: the evidence metadata, a bar per framework showing
//! its controls by status, then per framework a table of controls whose failing objects open on
//! demand. No external resource, no script but one that opens every control for printing. The
//! markup is also well-formed XML, so tests parse it strictly.

use std::fmt::Write as _;
use std::io::Write;

use crate::report::compliance::evidence::{ControlReport, Evidence, Status};

/// `s` escaped for text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in HTML text (nor in XML).
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn class(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::NotApplicable => "na",
        Status::NotCovered => "nc",
        Status::NotDecidable => "nd",
    }
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1f24;margin:2rem auto;max-width:72rem;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e6e9ed;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta td:first-child{color:#57606a;width:12rem}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.8rem;font-weight:600;white-space:nowrap}
.pass{background:#dafbe1;color:#116329}.fail{background:#ffebe9;color:#a40e26}.na{background:#eaeef2;color:#424a53}
.nc{background:#fff8c5;color:#7d4e00}.nd{background:#f6f8fa;color:#6e7781;border:1px solid #d0d7de}
svg.bar{display:block;width:100%;height:18px}svg.bar rect.pass{fill:#2da44e}svg.bar rect.fail{fill:#cf222e}
svg.bar rect.na{fill:#afb8c1}svg.bar rect.nc{fill:#d4a72c}svg.bar rect.nd{fill:#eaeef2}
.legend span{margin-right:1rem}.scope{color:#57606a}details{margin:.2rem 0}summary{cursor:pointer}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:0 .2rem}
ul.findings{margin:.2rem 0 .6rem 1rem;padding-left:1rem}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-before:page}tr,li{break-inside:avoid}
details>summary{list-style:none}.noprint{display:none}}
";

/// Opens every control before printing, so the paper copy holds all the evidence.
const SCRIPT: &str = "window.addEventListener('beforeprint',function(){document.querySelectorAll('details').forEach(function(d){d.open=true})});";

fn bar(s: &mut String, counts: &crate::report::compliance::evidence::Counts) {
    let total = counts.total().max(1) as f64;
    let _ = write!(
        s,
        r#"<svg class="bar" viewBox="0 0 1000 18" preserveAspectRatio="none" role="img" aria-label="controls by status">"#
    );
    let mut x = 0.0;
    for st in Status::ALL {
        let n = counts.get(st);
        if n == 0 {
            continue;
        }
        let w = 1000.0 * n as f64 / total;
        let _ = write!(
            s,
            r#"<rect class="{}" x="{x:.1}" y="0" width="{w:.1}" height="18"><title>{}: {n}</title></rect>"#,
            class(st),
            st.label()
        );
        x += w;
    }
    s.push_str("</svg>");
}

fn control_row(s: &mut String, framework: &str, c: &ControlReport) {
    let _ = write!(
        s,
        r#"<tr id="{}"><td><code>{}</code></td><td>"#,
        esc(&format!("{framework}-{}", c.id)),
        esc(&c.id)
    );
    if c.failing.is_empty() {
        s.push_str(&esc(&c.title));
    } else {
        let _ = write!(s, "<details><summary>{}</summary>", esc(&c.title));
        for f in c.failing.iter().take(super::MAX_OBJECTS_SHOWN) {
            let at = f
                .object
                .location
                .as_deref()
                .map(|l| format!(" <small>{}</small>", esc(l)))
                .unwrap_or_default();
            let _ =
                write!(s, "<div><strong>{}</strong>{at}</div><ul class=\"findings\">", esc(&f.object.id()));
            for x in &f.findings {
                let _ = write!(
                    s,
                    "<li><span class=\"badge {}\">{}</span> {}/{} <code>{}</code>: {}",
                    if x.mode == crate::policy::Mode::Enforce { "fail" } else { "nc" },
                    x.mode,
                    esc(&x.policy),
                    esc(&x.rule),
                    esc(&x.path),
                    esc(&x.message)
                );
                if !x.fix.is_empty() {
                    let _ = write!(s, " <em>({})</em>", esc(&x.fix));
                }
                s.push_str("</li>");
            }
            s.push_str("</ul>");
        }
        if c.failing.len() > super::MAX_OBJECTS_SHOWN {
            let _ = write!(
                s,
                "<p>… and {} more objects (the JSON and CSV reports list every one)</p>",
                c.failing.len() - super::MAX_OBJECTS_SHOWN
            );
        }
        s.push_str("</details>");
    }
    let rules: Vec<String> =
        c.rules.iter().map(|r| format!("{}/{} ({})", r.policy, r.rule, r.mode)).collect();
    let _ = write!(
        s,
        r#"</td><td>{}</td><td>{}</td><td><span class="badge {}">{}</span></td><td class="n">{} / {}</td></tr>"#,
        c.admission.as_str(),
        esc(&if rules.is_empty() { "—".to_owned() } else { rules.join(", ") }),
        class(c.status),
        c.status.label(),
        c.failing.len(),
        c.evaluated
    );
}

/// Writes `e` as one HTML page.
pub fn render(e: &Evidence, out: &mut dyn Write) -> std::io::Result<()> {
    let mut s = String::with_capacity(64 << 10);
    let m = &e.metadata;
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>");
    let _ = write!(s, "<title>podguard compliance report, {}</title>", esc(&m.generated));
    let _ = write!(s, "<style>{STYLE}</style><script>{SCRIPT}</script></head><body>");
    s.push_str("<h1>Compliance report</h1>");
    let _ = write!(
        s,
        r#"<p class="scope">Evidence from podguard {} on {}.</p>"#,
        esc(&m.podguard_version),
        esc(&m.generated)
    );
    s.push_str(r#"<table class="meta">"#);
    let o = &e.objects;
    let rows = [
        ("Source", super::source_line(e)),
        ("Policy set", format!("{} ({} policies)", m.policy_set_digest, m.policies.len())),
        (
            "Policies",
            m.policies.iter().map(|p| format!("{} ({})", p.name, p.mode)).collect::<Vec<_>>().join(", "),
        ),
        (
            "Objects",
            format!(
                "{} read, {} evaluated, {} skipped, {} unreadable; {} fail at least one control",
                o.read, o.evaluated, o.skipped, o.unreadable, o.failing
            ),
        ),
        ("Exempt namespaces", m.exempt_namespaces.join(", ")),
    ];
    for (k, v) in rows {
        let _ = write!(s, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    }
    s.push_str("</table>");

    s.push_str(r#"<h2 id="summary">Summary</h2><p class="legend">"#);
    for st in Status::ALL {
        let _ = write!(s, r#"<span><span class="badge {}">{}</span></span>"#, class(st), st.label());
    }
    s.push_str("</p><table><tr><th>Framework</th><th>Controls by status</th><th class=\"n\">fail</th><th class=\"n\">pass</th><th class=\"n\">n/a</th><th class=\"n\">not covered</th><th class=\"n\">not decidable</th></tr>");
    for f in &e.frameworks {
        let _ = write!(
            s,
            r##"<tr class="framework" data-framework="{}"><td><a href="#{}">{} {}</a></td><td style="width:40%">"##,
            esc(&f.id),
            esc(&f.id),
            esc(&f.name),
            esc(&f.version)
        );
        bar(&mut s, &f.summary);
        let c = &f.summary;
        let _ = write!(
            s,
            r#"</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            c.fail, c.pass, c.not_applicable, c.not_covered, c.not_decidable
        );
    }
    s.push_str("</table>");

    if !e.unreadable.is_empty() {
        s.push_str("<h2>Objects that could not be evaluated</h2><ul>");
        for u in &e.unreadable {
            let why = u.findings.first().map(|f| f.message.as_str()).unwrap_or_default();
            let _ = write!(s, "<li><strong>{}</strong>: {}</li>", esc(&u.object.id()), esc(why));
        }
        s.push_str("</ul>");
    }

    for f in &e.frameworks {
        let _ = write!(
            s,
            r#"<h2 id="{}">{} {}</h2><p class="scope">{} Source: {}</p>"#,
            esc(&f.id),
            esc(&f.name),
            esc(&f.version),
            esc(&f.scope),
            esc(&f.source)
        );
        s.push_str("<table><tr><th>Control</th><th>Title</th><th>Admission</th><th>Evidence from</th><th>Status</th><th class=\"n\">Failing / in scope</th></tr>");
        for c in &f.controls {
            control_row(&mut s, &f.id, c);
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>\n");
    out.write_all(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{PODS, evidence_of, rendered};
    use super::*;

    #[test]
    fn the_page_is_well_formed_and_holds_every_framework_and_control() {
        let e = evidence_of(PODS);
        let page = rendered(render, &e);
        let doc = roxmltree::Document::parse_with_options(
            &page,
            roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() },
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let rows: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("framework")).collect();
        assert_eq!(rows.len(), e.frameworks.len());
        let controls =
            doc.descendants().filter(|n| n.has_tag_name("tr") && n.attribute("id").is_some()).count();
        assert_eq!(controls, e.frameworks.iter().map(|f| f.controls.len()).sum::<usize>());
        // The object named with markup is text, not markup.
        assert!(
            page.contains("&lt;plain &amp; &quot;quoted&quot;&gt;") || !page.contains("plain &"),
            "escaped"
        );
        assert!(!page.contains("<plain"));
        let failing = doc.descendants().find(|n| n.attribute("id") == Some("cis-eks-1.8.0-4.2.1")).unwrap();
        assert!(failing.descendants().any(|n| n.text() == Some("Pod/shop/priv")));
    }
}
