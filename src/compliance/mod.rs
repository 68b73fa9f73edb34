//! Compliance frameworks: the catalogues podguard ships (`frameworks/*.yaml`, compiled in), the
//! evidence each built-in check gives for their controls, and the coverage of a policy set.
//!
//! A catalogue control lists the evidence keys that bear on it: a check's name (every finding of
//! that check) or `check/part` (findings of one part, such as `podSecurity/privileged`). A
//! violation carries exactly the controls whose keys name what it violated, worked out once per
//! rule when a policy compiles ([`RuleControls`]). Pure: no IO.

pub mod catalogue;
pub mod coverage;
pub mod evidence;

pub use catalogue::{Admission, Framework, FrameworkControl, catalogues, framework};
pub use coverage::{Coverage, coverage};

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use crate::policy::Control;

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
type PartControls = (&'static str, Arc<[Control]>);

/// The controls of one compiled rule: those its policy and the rule declare, plus, for a
/// built-in check, those its findings are evidence against, per part of the check.
#[derive(Clone, Debug, Default)]
pub struct RuleControls {
    whole: Arc<[Control]>,
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
        let with = |found: Vec<Control>| -> Arc<[Control]> {
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
    pub fn of(&self, part: &str) -> &Arc<[Control]> {
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
    pub fn by_part(&self) -> impl Iterator<Item = (Option<&'static str>, &Arc<[Control]>)> {
        std::iter::once((None, &self.whole)).chain(self.parts.iter().map(|(p, c)| (Some(*p), c)))
    }
}

/// Longest [`compact_union`], in bytes: answers stay small whatever a policy declares.
pub const MAX_COMPACT: usize = 480;

/// `(framework id, control id)` → `(framework place, control place, short name)`.
type Places = HashMap<(&'static str, &'static str), (u16, u16, &'static str)>;

/// Where each catalogue control is, and its framework's short name: looked up once per control of
/// an answer instead of scanning the catalogues.
static PLACES: LazyLock<Places> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for (fi, f) in catalogues().iter().enumerate() {
        for (ci, c) in f.controls.iter().enumerate() {
            // Catalogues are small (tens of controls); the casts cannot truncate.
            map.insert((f.id.as_str(), c.id.as_str()), (fi as u16, ci as u16, f.short.as_str()));
        }
    }
    map
});

/// The controls of several violations, each once, grouped by framework in catalogue order:
/// `CIS-EKS 4.2.1,4.2.4; NIST AC-6,CM-7`. This runs for every refusal and every decision logged:
/// lists are compared by pointer, then by content (the two Pod Security levels carry equal lists
/// for one finding), and controls are placed by one hash lookup each and sorted, never compared
/// pairwise. Cut at [`MAX_COMPACT`] with `…`.
pub fn compact_union<'a>(lists: impl IntoIterator<Item = &'a Arc<[Control]>>) -> String {
    let mut distinct: Vec<&Arc<[Control]>> = Vec::new();
    for l in lists {
        if !l.is_empty() && !distinct.iter().any(|d| Arc::ptr_eq(d, l) || ***d == **l) {
            distinct.push(l);
        }
    }
    if distinct.is_empty() {
        return String::new();
    }
    // Known controls sort by catalogue place; a framework without a catalogue comes after them,
    // by name, so the text is the same whatever order the violations came in.
    let mut keyed: Vec<((u16, u16), &str, &Control)> = distinct
        .iter()
        .flat_map(|l| l.iter())
        .map(|c| match PLACES.get(&(c.framework.as_str(), c.id.as_str())) {
            Some(&(fi, ci, short)) => ((fi, ci), short, c),
            None => ((u16::MAX, u16::MAX), c.framework.as_str(), c),
        })
        .collect();
    keyed.sort_unstable_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
    keyed.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
    let mut out = String::new();
    let mut last: Option<&str> = None;
    for (_, name, c) in keyed {
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
        out.push_str(&c.id);
        if out.len() > MAX_COMPACT {
            let cut = (0..=MAX_COMPACT).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
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
        controls.iter().map(|c| format!("{}:{}", c.framework, c.id)).collect()
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
        let a: Arc<[Control]> = vec![c("nist-800-53-r5", "CM-7"), c("cis-eks-1.8.0", "4.2.4")].into();
        let b: Arc<[Control]> =
            vec![c("cis-eks-1.8.0", "4.2.1"), c("nist-800-53-r5", "CM-7"), c("mine", "X")].into();
        assert_eq!(compact_union([&a, &a, &b]), "CIS-EKS 4.2.1,4.2.4; NIST CM-7; mine X");
        assert_eq!(compact_union(std::iter::empty()), "");
        let many: Arc<[Control]> = (0..200).map(|i| c("mine", &format!("CONTROL-{i}"))).collect();
        let cut = compact_union([&many]);
        assert!(cut.len() <= MAX_COMPACT + '…'.len_utf8() && cut.ends_with('…'), "{cut}");
    }
}
