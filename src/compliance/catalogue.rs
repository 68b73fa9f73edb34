//! The framework catalogues compiled into podguard (`frameworks/*.yaml`): per framework its
//! version and source, and per control its title, whether admission can decide it, and the
//! evidence keys of the checks that bear on it. docs/controls.md gives the reasoning.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// How much of a control a pod admission webhook can decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Admission {
    /// Entirely, from pod specs.
    Full,
    /// One part; the rest needs evidence from elsewhere.
    Partial,
    /// Not at all (RBAC, network, encryption, node configuration ...): listed so a report shows it.
    None,
}

impl Admission {
    /// `full`, `partial` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Partial => "partial",
            Self::None => "none",
        }
    }
}

/// One framework's catalogue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Framework {
    /// Id used in policies' `controls` (`cis-eks-1.8.0`).
    pub id: String,
    /// Full name.
    pub name: String,
    /// Short name for compact control ids (`CIS-EKS`).
    pub short: String,
    /// Version of the framework.
    pub version: String,
    /// Where its ids and titles come from.
    pub source: String,
    /// Which part of the framework the catalogue lists.
    pub scope: String,
    /// Its controls, in the framework's order.
    pub controls: Vec<FrameworkControl>,
}

/// One control of a framework.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameworkControl {
    /// Id within the framework (`4.2.1`, `AC-6`).
    pub id: String,
    /// Official title.
    pub title: String,
    /// How much of it admission decides.
    pub admission: Admission,
    /// Baselines the control belongs to (`fedramp-moderate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<String>,
    /// What it asks.
    pub description: String,
    /// Evidence keys: `check` or `check/part`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Why the checks are evidence for it, and what they do not show.
    pub rationale: String,
}

impl Framework {
    /// The control with id `id`.
    pub fn control(&self, id: &str) -> Option<&FrameworkControl> {
        self.controls.iter().find(|c| c.id == id)
    }
}

/// The catalogue files, in the order reports list them.
const FILES: [(&str, &str); 7] = [
    ("cis-eks-1.8.0", include_str!("../../frameworks/cis-eks-1.8.0.yaml")),
    ("nsa-cisa-1.2", include_str!("../../frameworks/nsa-cisa-1.2.yaml")),
    ("nist-800-53-r5", include_str!("../../frameworks/nist-800-53-r5.yaml")),
    ("pci-dss-4.0.1", include_str!("../../frameworks/pci-dss-4.0.1.yaml")),
    ("hipaa-164.312", include_str!("../../frameworks/hipaa-164.312.yaml")),
    ("soc2-2017", include_str!("../../frameworks/soc2-2017.yaml")),
    ("iso-27001-2022", include_str!("../../frameworks/iso-27001-2022.yaml")),
];

fn parse(file: &str, text: &str) -> Result<Framework, String> {
    serde_yaml_ng::from_str(text).map_err(|e| format!("frameworks/{file}.yaml: {e}"))
}

static CATALOGUES: LazyLock<Vec<Framework>> = LazyLock::new(|| {
    FILES
        .iter()
        .filter_map(|(file, text)| {
            // The files are compiled in and checked by the tests below; a broken one is a build
            // that was never tested, and losing its mappings beats taking the process down.
            parse(file, text)
                .map_err(|e| tracing::error!(error = %e, "a framework catalogue does not load"))
                .ok()
        })
        .collect()
});

/// Every catalogue.
pub fn catalogues() -> &'static [Framework] {
    &CATALOGUES
}

/// The catalogue with id `id`.
pub fn framework(id: &str) -> Option<&'static Framework> {
    catalogues().iter().find(|f| f.id == id)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::checks;

    #[test]
    fn every_catalogue_loads_under_its_file_name() {
        for (file, text) in FILES {
            let f = parse(file, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.id, file);
            assert!(!f.short.is_empty() && f.short.len() <= 8 && !f.short.contains(' '), "{}", f.short);
        }
        assert_eq!(catalogues().len(), FILES.len());
    }

    #[test]
    fn controls_are_unique_and_their_evidence_is_consistent() {
        for f in catalogues() {
            let mut seen = HashSet::new();
            for c in &f.controls {
                let at = format!("{}:{}", f.id, c.id);
                assert!(seen.insert(&c.id), "{at} twice");
                assert!(!c.title.is_empty() && !c.description.is_empty() && !c.rationale.is_empty(), "{at}");
                match c.admission {
                    Admission::None => assert!(c.checks.is_empty(), "{at}: undecidable, yet has checks"),
                    _ => assert!(!c.checks.is_empty(), "{at}: decidable, yet no check"),
                }
                for b in &c.baselines {
                    assert_eq!((f.id.as_str(), b.as_str()), ("nist-800-53-r5", "fedramp-moderate"), "{at}");
                }
            }
        }
    }

    /// A key names a built-in check, and a part the check declares (or a prefix of parts).
    #[test]
    fn every_evidence_key_names_a_check_and_a_part_it_has() {
        for f in catalogues() {
            for c in &f.controls {
                for key in &c.checks {
                    let (check, part) = key.split_once('/').unwrap_or((key, ""));
                    let def = checks::lookup(check)
                        .unwrap_or_else(|| panic!("{}:{}: no check `{check}`", f.id, c.id));
                    assert!(
                        part.is_empty() || def.parts.iter().any(|p| super::super::key_names(key, check, p)),
                        "{}:{}: `{check}` has no part `{part}`",
                        f.id,
                        c.id
                    );
                }
            }
        }
    }

    /// Whether a control keyed `k` is listed on the row of `key`: the same key, or a part it
    /// holds (`podSecurity/hostNamespaces` on the `hostPID` row); the whole check's controls
    /// have their own row.
    fn names_row(k: &str, key: &str) -> bool {
        k == key || (k.contains('/') && key.strip_prefix(k).is_some_and(|rest| rest.starts_with('/')))
    }

    fn cells(line: &str) -> Vec<&str> {
        line.trim().trim_matches('|').split(" | ").map(str::trim).collect()
    }

    /// docs/controls.md gives every control with its title and how much admission decides, and
    /// for every evidence key the controls it carries: it is the page auditors read, so it must
    /// say what the code does.
    #[test]
    fn the_controls_page_matches_the_catalogues() {
        let doc = include_str!("../../docs/controls.md");
        for f in catalogues() {
            for c in &f.controls {
                let start = format!("| `{}:{}` |", f.id, c.id);
                let row =
                    doc.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("no row {start}"));
                let cells = cells(row);
                assert_eq!((cells[1], cells[2]), (c.title.as_str(), c.admission.as_str()), "{row}");
            }
        }
        let mut keys: Vec<&str> = catalogues()
            .iter()
            .flat_map(|f| &f.controls)
            .flat_map(|c| &c.checks)
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("no evidence key row for `{key}`"));
            let listed: Vec<&str> =
                cells(row)[2].split(", ").filter(|s| !s.contains("`podSecurity` row") && *s != "—").collect();
            let want: Vec<String> = catalogues()
                .iter()
                .flat_map(|f| {
                    f.controls
                        .iter()
                        .filter(|c| c.checks.iter().any(|k| names_row(k, key)))
                        .map(move |c| format!("{} {}", f.short, c.id))
                })
                .collect();
            assert_eq!(listed, want, "{row}");
        }
    }
}
