//! Capability controls (upstream `check_capabilities_baseline.go`,
//! `check_capabilities_restricted.go`):
//! - `capabilities_baseline` (baseline, v1.0+): `capabilities.add` only from the default set a
//!   container runtime grants anyway.
//! - `capabilities_restricted` (restricted, v1.22+, replaces the baseline one): every container
//!   drops `ALL` and adds nothing but `NET_BIND_SERVICE`; from v1.25 Windows pods are exempt.
//!
//! Names compare exactly, as upstream: `CAP_CHOWN` or `all` are not `CHOWN` or `ALL`.

use super::{Control, Quoted, Who, container_message, container_sc_path, sc};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

/// Capabilities baseline lets a container add (upstream `capabilities_allowed_1_0`).
const BASELINE_ALLOWED: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

pub(super) fn baseline(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    forbidden_adds(id, s, c, |cap| BASELINE_ALLOWED.contains(&cap), out);
}

pub(super) fn restricted(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    let caps = sc(c).and_then(|sc| sc.capabilities.as_ref());
    let drops_all = caps.and_then(|c| c.drop.as_ref()).is_some_and(|d| d.iter().any(|x| x == "ALL"));
    if !drops_all {
        out.push(Finding::new(
            container_sc_path(s, c).field("capabilities").field("drop"),
            container_message(id, c, "must drop ALL capabilities"),
            r#"set securityContext.capabilities.drop to ["ALL"]"#,
        ));
    }
    forbidden_adds(id, s, c, |cap| cap == "NET_BIND_SERVICE", out);
}

fn forbidden_adds(
    id: Control,
    s: &Subject<'_>,
    c: &ContainerRef<'_>,
    allowed: impl Fn(&str) -> bool,
    out: &mut Vec<Finding>,
) {
    let adds = sc(c).and_then(|sc| sc.capabilities.as_ref()).and_then(|caps| caps.add.as_ref());
    for (j, cap) in adds.into_iter().flatten().enumerate() {
        if !allowed(cap) {
            out.push(Finding::new(
                container_sc_path(s, c).field("capabilities").field("add").index(j),
                format!("{id}: {} adds capability {}", Who(c), Quoted(cap)),
                "remove it from securityContext.capabilities.add",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::{rule_findings, rule_paths, spec_paths};
    use super::super::{Control, Rule};

    #[test]
    fn baseline_allows_the_default_set_only() {
        let pod = r#"
spec:
  containers:
  - name: a
    securityContext:
      capabilities:
        add: [AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT]
  - name: b
    securityContext: {capabilities: {add: [NET_RAW, CAP_CHOWN, ALL], drop: [ALL]}}
  ephemeralContainers:
  - {name: e, securityContext: {capabilities: {add: [SYS_ADMIN]}}}
"#;
        assert_eq!(
            rule_paths(Control::CapabilitiesBaseline, Rule::CapabilitiesBaseline, pod),
            [
                "spec.containers[1].securityContext.capabilities.add[0]",
                "spec.containers[1].securityContext.capabilities.add[1]",
                "spec.containers[1].securityContext.capabilities.add[2]",
                "spec.ephemeralContainers[0].securityContext.capabilities.add[0]",
            ]
        );
    }

    fn restricted(pod: &str) -> Vec<String> {
        rule_paths(
            Control::CapabilitiesRestricted,
            Rule::CapabilitiesRestricted { windows_exempt: true },
            pod,
        )
    }

    #[test]
    fn restricted_requires_drop_all_everywhere() {
        let pod = r#"
spec:
  containers:
  - {name: a, securityContext: {capabilities: {drop: [ALL]}}}
  - {name: b}
  - {name: c, securityContext: {capabilities: {drop: [NET_RAW, all]}}}
  - {name: d, securityContext: {capabilities: {drop: [NET_RAW, ALL], add: [NET_BIND_SERVICE]}}}
  initContainers:
  - {name: i, securityContext: {}}
"#;
        assert_eq!(
            restricted(pod),
            [
                "spec.containers[1].securityContext.capabilities.drop",
                "spec.containers[2].securityContext.capabilities.drop",
                "spec.initContainers[0].securityContext.capabilities.drop",
            ]
        );
        let f = rule_findings(
            Control::CapabilitiesRestricted,
            Rule::CapabilitiesRestricted { windows_exempt: false },
            pod,
        );
        assert_eq!(f[0].message, r#"capabilities_restricted: container "b" must drop ALL capabilities"#);
    }

    #[test]
    fn restricted_allows_only_net_bind_service() {
        let pod = "spec:\n  containers:\n  - {name: a, securityContext: {capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, CHOWN]}}}\n";
        assert_eq!(restricted(pod), ["spec.containers[0].securityContext.capabilities.add[1]"]);
    }

    const BASE: &str = "securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}";

    #[test]
    fn restricted_starts_at_v1_22_and_replaces_baseline() {
        let spec = format!(
            "{BASE}\ncontainers:\n- {{name: a, securityContext: {{allowPrivilegeEscalation: false, capabilities: {{add: [SYS_ADMIN]}}}}}}"
        );
        // v1.21: only the baseline control, which flags the add.
        assert_eq!(
            spec_paths("restricted/v1.21", &spec),
            ["spec.containers[0].securityContext.capabilities.add[0]"]
        );
        // v1.22: the restricted control replaces it: missing drop, then the add.
        assert_eq!(
            spec_paths("restricted/v1.22", &spec),
            [
                "spec.containers[0].securityContext.capabilities.drop",
                "spec.containers[0].securityContext.capabilities.add[0]",
            ]
        );
    }

    #[test]
    fn windows_pods_are_exempt_from_v1_25() {
        let spec = format!(
            "{BASE}\nos: {{name: windows}}\ncontainers:\n- {{name: a, securityContext: {{allowPrivilegeEscalation: false}}}}"
        );
        assert_eq!(
            spec_paths("restricted/v1.24", &spec),
            ["spec.containers[0].securityContext.capabilities.drop"]
        );
        assert!(spec_paths("restricted/v1.25", &spec).is_empty());
        let linux = spec.replace("windows", "linux");
        assert_eq!(
            spec_paths("restricted/v1.25", &linux),
            ["spec.containers[0].securityContext.capabilities.drop"]
        );
    }
}
