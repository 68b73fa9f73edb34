//! `/proc` mount controls (upstream `check_procMount_baseline.go`,
//! `check_procMount_restricted.go`): every container keeps the default `/proc` masks
//! (`procMount` unset or `Default`).
//! - `procMount` (baseline): from v1.35 a pod with `hostUsers: false` may use any value.
//! - `procMount_restricted` (restricted, v1.35+, replaces `procMount`): no relaxation, so
//!   restricted forbids `Unmasked` even in a user namespace.
//!
//! The user-namespace relaxation is decided by the caller ([`super::Rule::ProcMount`]).

use super::{Control, Quoted, Who, container_sc_path, sc};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

pub(super) fn container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    if let Some(pm) = sc(c).and_then(|sc| sc.proc_mount.as_deref()).filter(|pm| *pm != "Default") {
        out.push(Finding::new(
            container_sc_path(s, c).field("procMount"),
            format!("{id}: {} sets procMount {}", Who(c), Quoted(pm)),
            "set securityContext.procMount to Default or remove it",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::spec_paths;

    const UNMASKED: &str = "containers:\n- {name: a, securityContext: {procMount: Unmasked}}\n- {name: b, securityContext: {procMount: Default}}\ninitContainers:\n- {name: i, securityContext: {procMount: Unmasked}}";

    #[test]
    fn anything_but_default_fails_in_every_list() {
        assert_eq!(
            spec_paths("baseline/v1.0", UNMASKED),
            [
                "spec.containers[0].securityContext.procMount",
                "spec.initContainers[0].securityContext.procMount"
            ]
        );
    }

    #[test]
    fn baseline_relaxes_for_user_namespaces_from_v1_35() {
        let userns = format!("hostUsers: false\n{UNMASKED}");
        assert_eq!(spec_paths("baseline/v1.34", &userns).len(), 2);
        assert!(spec_paths("baseline/v1.35", &userns).is_empty());
        assert!(spec_paths("baseline/latest", &userns).is_empty());
        // hostUsers: true or unset is not a user namespace.
        assert_eq!(spec_paths("baseline/v1.35", &format!("hostUsers: true\n{UNMASKED}")).len(), 2);
    }

    #[test]
    fn restricted_never_relaxes() {
        let base = "securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\ncontainers:\n- name: a\n  securityContext: {procMount: Unmasked, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}";
        for v in ["v1.34", "v1.35", "latest"] {
            let got = spec_paths(&format!("restricted/{v}"), &format!("hostUsers: false\n{base}"));
            assert_eq!(got, ["spec.containers[0].securityContext.procMount"], "{v}");
        }
    }
}
