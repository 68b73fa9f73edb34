//! Compliance frameworks: the catalogues podguard ships (`frameworks/*.yaml`, compiled in), the
//! evidence keys each built-in check gives their controls, and the control lists violations
//! carry. What a policy set covers and the evidence of a report are built from these in
//! [`crate::report::compliance`].
//!
//! A catalogue control lists the evidence keys that bear on it: a check's name (every finding of
//! that check) or `check/part` (findings of one part, such as `podSecurity/privileged`). A
//! violation carries exactly the controls whose keys name what it violated, worked out once per
//! rule when a policy compiles ([`RuleControls`]). Pure: no IO.

pub mod catalogue;

pub use catalogue::{Admission, Framework, FrameworkControl, catalogues, framework};

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// One compliance control, e.g. `{framework: cis-eks-1.8.0, id: "4.2.1"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Framework id, free-form (`cis-eks-1.7`, `nist-800-53-r5`, `pci-dss-4.0`).
    pub framework: String,
    /// Control id within the framework.
    pub id: String,
}

impl std::fmt::Display for Control {
    /// `framework:id`, the form reports, SARIF tags and `/policies` use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.framework, self.id)
    }
}

/// Whether evidence key `key` (`check` or `check/part...`) names findings of `check` found by
/// `part` (empty for the check as a whole).
pub fn key_names(key: &str, check: &str, part: &str) -> bool {
    match key.split_once('/') {
        None => key == check,
        Some((k, prefix)) => {
            k == check
                && part.starts_with(prefix)
                && (part.len() == prefix.len() || part.as_bytes()[prefix.len()] == b'/')
        }
    }
}

/// The catalogue controls that a finding of `check` found by `part` is evidence against, in
/// catalogue order.
pub fn controls_for(check: &str, part: &str) -> Vec<Control> {
    catalogues()
        .iter()
        .flat_map(|f| {
            f.controls
                .iter()
                .filter(move |c| c.checks.iter().any(|k| key_names(k, check, part)))
                .map(move |c| Control { framework: f.id.clone(), id: c.id.clone() })
        })
        .collect()
}

/// A part of a check and the controls of its findings.
type PartControls = (&'static str, Controls);

/// The controls of one compiled rule: those its policy and the rule declare, plus, for a
/// built-in check, those its findings are evidence against, per part of the check.
#[derive(Clone, Debug, Default)]
pub struct RuleControls {
    whole: Controls,
    /// Parts whose controls differ from `whole`'s; usually empty.
    parts: Box<[PartControls]>,
}

impl RuleControls {
    /// Works out the controls of a rule running `check` (none for a CEL rule) with the
    /// `declared` controls of its policy and itself.
    pub fn new(
        declared: &[Control],
        check: Option<(&crate::checks::Definition, Option<Vec<&'static str>>)>,
    ) -> Self {
        let with = |found: Vec<Control>| -> Controls {
            let mut all = declared.to_vec();
            for c in found {
                if !all.contains(&c) {
                    all.push(c);
                }
            }
            all.into()
        };
        let Some((def, active)) = check else {
            return Self { whole: with(Vec::new()), parts: Box::default() };
        };
        let whole = with(controls_for(def.name, ""));
        let parts = def
            .parts
            .iter()
            .filter(|p| active.as_ref().is_none_or(|a| a.contains(p)))
            .map(|&part| (part, with(controls_for(def.name, part))))
            .filter(|(_, c)| *c != whole)
            .collect();
        Self { whole, parts }
    }

    /// The controls of a finding found by `part`.
    pub fn of(&self, part: &str) -> &Controls {
        if !part.is_empty()
            && let Some((_, c)) = self.parts.iter().find(|(p, _)| *p == part)
        {
            return c;
        }
        &self.whole
    }

    /// Every control a finding of the rule may carry, each once.
    pub fn all(&self) -> Vec<Control> {
        let mut all = self.whole.to_vec();
        for c in self.parts.iter().flat_map(|(_, c)| c.iter()) {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        all
    }

    /// Every control with the parts of the check that bear on it (`None` = the whole rule).
    pub fn by_part(&self) -> impl Iterator<Item = (Option<&'static str>, &Controls)> {
        std::iter::once((None, &self.whole)).chain(self.parts.iter().map(|(p, c)| (Some(*p), c)))
    }
}

/// Every catalogue control by its place (framework, then control, in catalogue order): its
/// framework's short name and its id. A control's place is its index here.
static NAMES: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    catalogues()
        .iter()
        .flat_map(|f| f.controls.iter().map(move |c| (f.short.as_str(), c.id.as_str())))
        .collect()
});

/// `(framework id, control id)` → place in [`NAMES`].
static PLACES: LazyLock<HashMap<(&'static str, &'static str), u32>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    let mut place = 0u32;
    for f in catalogues() {
        for c in &f.controls {
            map.insert((f.id.as_str(), c.id.as_str()), place);
            place += 1;
        }
    }
    map
});

/// The compliance controls of a finding: the list, and what answers need of it worked out once
/// when a policy compiles, since every refusal, audit annotation and decision log line names
/// them: their places in the catalogues, sorted, and their compact text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Controls(Arc<ControlsInner>);

#[derive(Debug, Default, PartialEq, Eq)]
struct ControlsInner {
    list: Vec<Control>,
    /// Places of the controls of a catalogue, sorted.
    places: Vec<u32>,
    /// Whether some control is of a framework without a catalogue.
    foreign: bool,
    /// [`compact_union`] of this list alone.
    compact: String,
}

impl Controls {
    /// The controls `list`, in its order.
    pub fn new(list: Vec<Control>) -> Self {
        let mut places: Vec<u32> =
            list.iter().filter_map(|c| PLACES.get(&(c.framework.as_str(), c.id.as_str())).copied()).collect();
        places.sort_unstable();
        places.dedup();
        let foreign = places.len() < list.len();
        let compact = if foreign { compact_slow(&[&list]) } else { compact_places(&places) };
        Self(Arc::new(ControlsInner { list, places, foreign, compact }))
    }

    /// `CIS-EKS 4.2.1; NIST AC-6,CM-7`: the list compact ([`compact_union`] of it alone).
    pub fn compact(&self) -> &str {
        &self.0.compact
    }

    /// Whether `other` is this very list (a cheap test before comparing contents).
    pub fn same(&self, other: &Controls) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Controls {
    type Target = [Control];

    fn deref(&self) -> &[Control] {
        &self.0.list
    }
}

impl From<Vec<Control>> for Controls {
    fn from(list: Vec<Control>) -> Self {
        Self::new(list)
    }
}

impl serde::Serialize for Controls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(ToString::to_string))
    }
}

/// Longest [`compact_union`], in bytes: answers stay small whatever a policy declares.
pub const MAX_COMPACT: usize = 480;

/// The controls of several violations, each once, grouped by framework in catalogue order:
/// `CIS-EKS 4.2.1,4.2.4; NIST AC-6,CM-7`. This runs for every refusal and every decision logged,
/// so it works on what [`Controls`] worked out at compile time: one list is its own compact text;
/// several merge their sorted places. Cut at [`MAX_COMPACT`] with `…`.
pub fn compact_union<'a>(lists: impl IntoIterator<Item = &'a Controls>) -> String {
    let mut distinct: Vec<&Controls> = Vec::new();
    for l in lists {
        if !l.is_empty() && !distinct.iter().any(|d| d.same(l) || **d == *l) {
            distinct.push(l);
        }
    }
    match distinct.as_slice() {
        [] => String::new(),
        [one] => one.compact().to_owned(),
        many if many.iter().any(|l| l.0.foreign) => {
            compact_slow(&many.iter().map(|l| l.0.list.as_slice()).collect::<Vec<_>>())
        }
        many => {
            let mut places: Vec<u32> = many.iter().flat_map(|l| l.0.places.iter().copied()).collect();
            places.sort_unstable();
            places.dedup();
            compact_places(&places)
        }
    }
}

/// The compact text of catalogue controls by their sorted places.
fn compact_places(places: &[u32]) -> String {
    let names = &*NAMES;
    compact_text(places.iter().filter_map(|&p| names.get(p as usize).copied()))
}

/// `NAME ID,ID; NAME ID`: consecutive controls of one framework share its name. Cut at
/// [`MAX_COMPACT`].
fn compact_text<'a>(controls: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    let mut last: Option<&str> = None;
    for (name, id) in controls {
        if last == Some(name) {
            out.push(',');
        } else {
            if last.is_some() {
                out.push_str("; ");
            }
            out.push_str(name);
            out.push(' ');
            last = Some(name);
        }
        out.push_str(id);
        if out.len() > MAX_COMPACT {
            let cut = (0..=MAX_COMPACT).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}

/// [`compact_union`] for lists holding controls of frameworks without a catalogue (a policy
/// author's own), which come after the catalogues' controls, by framework and id.
fn compact_slow(lists: &[&[Control]]) -> String {
    let mut keyed: Vec<(u32, &str, &Control)> = lists
        .iter()
        .flat_map(|l| l.iter())
        .map(|c| match PLACES.get(&(c.framework.as_str(), c.id.as_str())) {
            Some(&place) => (place, NAMES[place as usize].0, c),
            None => (u32::MAX, c.framework.as_str(), c),
        })
        .collect();
    keyed.sort_unstable_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
    keyed.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
    compact_text(keyed.into_iter().map(|(_, name, c)| (name, c.id.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_a_check_or_a_part_on_segment_boundaries() {
        assert!(key_names("podSecurity", "podSecurity", ""));
        assert!(key_names("podSecurity", "podSecurity", "privileged"));
        assert!(key_names("podSecurity/privileged", "podSecurity", "privileged"));
        assert!(!key_names("podSecurity/privileged", "podSecurity", ""));
        assert!(!key_names("podSecurity/privileged", "podSecurity", "privilegedX"));
        assert!(key_names("podSecurity/hostNamespaces", "podSecurity", "hostNamespaces/hostPID"));
        assert!(key_names("podSecurity/hostNamespaces/hostPID", "podSecurity", "hostNamespaces/hostPID"));
        assert!(!key_names("podSecurity/hostNamespaces/hostPID", "podSecurity", "hostNamespaces/hostIPC"));
        assert!(!key_names("podSecurity/seccompProfile", "podSecurity", "seccompProfile_restricted"));
        assert!(!key_names("readOnlyRootFilesystem", "podSecurity", ""));
    }

    fn ids(controls: &[Control]) -> Vec<String> {
        controls.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_missing_seccomp_profile_is_not_a_privileged_container() {
        let def = crate::checks::lookup("podSecurity").unwrap();
        let rc = RuleControls::new(&[], Some((def, None)));
        let privileged = ids(rc.of("privileged"));
        let seccomp = ids(rc.of("seccompProfile_restricted"));
        assert!(privileged.contains(&"cis-eks-1.8.0:4.2.1".to_owned()), "{privileged:?}");
        assert!(!seccomp.contains(&"cis-eks-1.8.0:4.2.1".to_owned()), "{seccomp:?}");
        assert!(ids(rc.of("hostNamespaces/hostPID")).contains(&"cis-eks-1.8.0:4.2.2".to_owned()));
        assert!(!ids(rc.of("hostNamespaces/hostPID")).contains(&"cis-eks-1.8.0:4.2.4".to_owned()));
    }

    #[test]
    fn declared_controls_come_first_and_once() {
        let declared = [
            Control { framework: "mine".into(), id: "X-1".into() },
            Control { framework: "cis-eks-1.8.0".into(), id: "4.5.2".into() },
        ];
        let def = crate::checks::lookup("disallowDefaultNamespace").unwrap();
        let rc = RuleControls::new(&declared, Some((def, None)));
        let got = ids(rc.of(""));
        assert_eq!(got[..2], ["mine:X-1", "cis-eks-1.8.0:4.5.2"]);
        assert_eq!(got.iter().filter(|c| *c == "cis-eks-1.8.0:4.5.2").count(), 1);
        let cel = RuleControls::new(&declared, None);
        assert_eq!(ids(cel.of("anything")), ["mine:X-1", "cis-eks-1.8.0:4.5.2"]);
    }

    #[test]
    fn compact_union_groups_by_framework_once_each() {
        let c = |f: &str, id: &str| Control { framework: f.into(), id: id.into() };
        let a: Controls = vec![c("nist-800-53-r5", "CM-7"), c("cis-eks-1.8.0", "4.2.4")].into();
        let b: Controls =
            vec![c("cis-eks-1.8.0", "4.2.1"), c("nist-800-53-r5", "CM-7"), c("mine", "X")].into();
        assert_eq!(compact_union([&a, &a, &b]), "CIS-EKS 4.2.1,4.2.4; NIST CM-7; mine X");
        assert_eq!(compact_union(std::iter::empty()), "");
        let many: Controls = (0..200).map(|i| c("mine", &format!("CONTROL-{i}"))).collect::<Vec<_>>().into();
        let cut = compact_union([&many]);
        assert!(cut.len() <= MAX_COMPACT + '…'.len_utf8() && cut.ends_with('…'), "{cut}");
    }
}
