//! User controls (upstream `check_runAsNonRoot.go`, `check_runAsUser.go`). From v1.35 both are
//! skipped for pods with `hostUsers: false`, where root maps to an unprivileged host user; the
//! caller decides that.
//! - `runAsNonRoot` (restricted, v1.0+): every container must end up with `runAsNonRoot: true`.
//!   A container's own value wins; a container that sets none inherits the pod's. An explicit
//!   `false` anywhere, the pod included, fails even if every container sets `true`.
//! - `runAsUser` (restricted, v1.23+): neither the pod nor a container may set `runAsUser: 0`;
//!   leaving it unset is fine.

use super::{Control, container_message, container_sc_path, pod_sc_path, sc};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

pub(super) fn non_root_pod(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    if pod_non_root(s) == Some(false) {
        out.push(Finding::new(
            pod_sc_path(s).field("runAsNonRoot"),
            format!("{id}: pod sets runAsNonRoot to false"),
            "set securityContext.runAsNonRoot to true",
        ));
    }
}

pub(super) fn non_root_container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    let what = match sc(c).and_then(|sc| sc.run_as_non_root) {
        Some(true) => return,
        Some(false) => "sets runAsNonRoot to false",
        // An unset container is covered by the pod's value; when that is an explicit false, the
        // pod's finding already says what to change.
        None if pod_non_root(s).is_some() => return,
        None => "must set runAsNonRoot to true (here or on the pod)",
    };
    out.push(Finding::new(
        container_sc_path(s, c).field("runAsNonRoot"),
        container_message(id, c, what),
        "set securityContext.runAsNonRoot to true on the container or the pod",
    ));
}

fn pod_non_root(s: &Subject<'_>) -> Option<bool> {
    s.spec.security_context.as_ref().and_then(|sc| sc.run_as_non_root)
}

const USER_FIX: &str = "set securityContext.runAsUser to a non-zero UID or remove it";

pub(super) fn user_pod(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    if s.spec.security_context.as_ref().and_then(|sc| sc.run_as_user) == Some(0) {
        out.push(Finding::new(
            pod_sc_path(s).field("runAsUser"),
            format!("{id}: pod runs as root (UID 0)"),
            USER_FIX,
        ));
    }
}

pub(super) fn user_container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    if sc(c).and_then(|sc| sc.run_as_user) == Some(0) {
        out.push(Finding::new(
            container_sc_path(s, c).field("runAsUser"),
            container_message(id, c, "runs as root (UID 0)"),
            USER_FIX,
        ));
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::super::test_pod::{findings, rule_paths, spec_paths};
    use super::super::{Control, Rule};

    fn non_root(spec: &str) -> Vec<String> {
        let pod = format!("spec:\n{}", spec.lines().map(|l| format!("  {l}\n")).collect::<String>());
        rule_paths(Control::RunAsNonRoot, Rule::RunAsNonRoot { relax_user_namespace: true }, &pod)
    }

    #[rstest]
    #[case::pod_true("securityContext: {runAsNonRoot: true}\ncontainers: [{name: a}, {name: b, securityContext: {}}]", &[])]
    #[case::all_containers_true("containers: [{name: a, securityContext: {runAsNonRoot: true}}]\ninitContainers: [{name: i, securityContext: {runAsNonRoot: true}}]", &[])]
    #[case::unset_everywhere("containers: [{name: a}]\ninitContainers: [{name: i}]", &["spec.containers[0].securityContext.runAsNonRoot", "spec.initContainers[0].securityContext.runAsNonRoot"])]
    #[case::pod_false("securityContext: {runAsNonRoot: false}\ncontainers: [{name: a}]", &["spec.securityContext.runAsNonRoot"])]
    #[case::pod_false_containers_true("securityContext: {runAsNonRoot: false}\ncontainers: [{name: a, securityContext: {runAsNonRoot: true}}]", &["spec.securityContext.runAsNonRoot"])]
    #[case::container_false_overrides_pod("securityContext: {runAsNonRoot: true}\ncontainers: [{name: a, securityContext: {runAsNonRoot: false}}]", &["spec.containers[0].securityContext.runAsNonRoot"])]
    #[case::container_true_overrides_pod_false("securityContext: {runAsNonRoot: false}\ncontainers: [{name: a, securityContext: {runAsNonRoot: true}}, {name: b, securityContext: {runAsNonRoot: false}}]", &["spec.securityContext.runAsNonRoot", "spec.containers[1].securityContext.runAsNonRoot"])]
    #[case::ephemeral_unset("containers: [{name: a, securityContext: {runAsNonRoot: true}}]\nephemeralContainers: [{name: e}]", &["spec.ephemeralContainers[0].securityContext.runAsNonRoot"])]
    #[case::user_namespace("hostUsers: false\ncontainers: [{name: a}]", &[])]
    fn run_as_non_root(#[case] spec: &str, #[case] want: &[&str]) {
        assert_eq!(non_root(spec), want);
    }

    #[test]
    fn missing_field_path_and_message() {
        let f = findings("level: restricted\nversion: v1.0", "Pod", "spec:\n  containers: [{name: app}]\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path.as_str(), "spec.containers[0].securityContext.runAsNonRoot");
        assert_eq!(
            f[0].message,
            r#"runAsNonRoot: container "app" must set runAsNonRoot to true (here or on the pod)"#
        );
    }

    #[test]
    fn run_as_user_zero_fails_from_v1_23() {
        let spec = "securityContext: {runAsNonRoot: true, runAsUser: 0, seccompProfile: {type: RuntimeDefault}}\ncontainers:\n- {name: a, securityContext: {runAsUser: 0, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}\n- {name: b, securityContext: {runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}";
        assert!(spec_paths("restricted/v1.22", spec).is_empty());
        assert_eq!(
            spec_paths("restricted/v1.23", spec),
            ["spec.securityContext.runAsUser", "spec.containers[0].securityContext.runAsUser"]
        );
        assert!(spec_paths("baseline/latest", spec).is_empty());
    }

    #[test]
    fn user_namespaces_relax_both_from_v1_35() {
        let spec = "hostUsers: false\nsecurityContext: {runAsUser: 0, seccompProfile: {type: RuntimeDefault}}\ncontainers:\n- {name: a, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}";
        assert_eq!(
            spec_paths("restricted/v1.34", spec),
            ["spec.securityContext.runAsUser", "spec.containers[0].securityContext.runAsNonRoot"]
        );
        assert!(spec_paths("restricted/v1.35", spec).is_empty());
        assert!(spec_paths("restricted/latest", spec).is_empty());
    }
}
