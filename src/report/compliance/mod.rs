//! `podguard report`: the [`Evidence`] built from `check`'s results ([`evidence`]), what a policy
//! set covers of each framework ([`coverage`]), and their rendering for auditors ([`html`],
//! [`markdown`]) and machines ([`csv`], JSON through serde: the contract is [`Evidence`]'s,
//! docs/compliance.md).

pub mod coverage;
pub mod csv;
pub mod evidence;
pub mod html;
pub mod markdown;

use std::io::Write;

use crate::report::compliance::evidence::{Evidence, Source};

/// Failing objects listed per control in the pages for people (HTML, Markdown); the JSON and CSV
/// reports list every one. A cluster of thousands of failing pods would otherwise make a page
/// no browser opens.
pub const MAX_OBJECTS_SHOWN: usize = 100;

/// Writes `evidence` as pretty JSON, with a final newline.
pub fn json(evidence: &Evidence, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, evidence)?;
    out.write_all(b"\n")
}

/// One line on where the objects came from.
pub(crate) fn source_line(e: &Evidence) -> String {
    match &e.metadata.source {
        Source::Manifests { paths } => format!("manifests: {}", paths.join(", ")),
        Source::Cluster { cluster: Some(name), server } => format!("cluster {name} ({server})"),
        Source::Cluster { cluster: None, server } => format!("cluster at {server}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::admission::Settings;
    use crate::cli::check::{Namespaces, decide, load_policies};
    use crate::report::compliance::evidence::{Builder, Evidence, Meta, Source, digest, policies};

    /// The report of the built-in library on `yaml`.
    pub(crate) fn evidence_of(yaml: &str) -> Evidence {
        let set = load_policies(&[]).unwrap();
        let settings = Settings { record_applied: true, ..Settings::default() };
        let mut inputs = crate::input::Inputs::default();
        crate::input::read_text("m.yaml", yaml, false, true, &Default::default(), &mut inputs);
        let meta = Meta {
            generated: "2026-12-02T00:00:00Z".into(),
            podguard_version: "0.0.0".into(),
            policy_set_digest: digest(&set),
            policies: policies(&set),
            source: Source::Manifests { paths: vec!["m.yaml".into()] },
            exempt_namespaces: vec!["kube-system".into()],
            settings: crate::report::compliance::evidence::SettingsMeta {
                default_mode: crate::policy::Mode::Enforce,
                namespace_mode_label: true,
                exempt_runtime_classes: Vec::new(),
                on_error: "deny",
            },
        };
        let mut b = Builder::new(&set, meta);
        for d in &inputs.documents {
            b.add(&decide(&set, &settings, &Namespaces::default(), d));
        }
        b.finish()
    }

    /// What `render` writes for `e`, as text.
    pub(crate) fn rendered(
        render: fn(&Evidence, &mut dyn std::io::Write) -> std::io::Result<()>,
        e: &Evidence,
    ) -> String {
        let mut out = Vec::new();
        render(e, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    pub(crate) const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: priv, namespace: shop}\n\
        spec: {containers: [{name: a, image: 'r/a:1', securityContext: {privileged: true}}]}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: <plain & \"quoted\">, namespace: shop}\n\
        spec: {containers: [{name: a, image: 'r/a:1'}]}\n";
}
