//! `seLinuxOptions` (baseline, v1.0+; v1.31 allows `container_engine_t`): the pod and every
//! container may set only a container SELinux type, and never a custom user or role
//! (upstream `check_seLinuxOptions.go`). `level` is free.

use k8s_openapi::api::core::v1::SELinuxOptions;

use super::{Control, Quoted, Who, container_sc_path, pod_sc_path, sc};
use crate::finding::{FieldPath, Finding};
use crate::subject::{ContainerRef, Subject};

/// The allowed `type` values at a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Types {
    /// `""`, `container_t`, `container_init_t`, `container_kvm_t`.
    V1_0,
    /// v1.0's plus `container_engine_t`.
    V1_31,
}

impl Types {
    fn allows(self, t: &str) -> bool {
        matches!(t, "" | "container_t" | "container_init_t" | "container_kvm_t")
            || (self == Types::V1_31 && t == "container_engine_t")
    }
}

pub(super) fn pod(id: Control, types: Types, s: &Subject<'_>, out: &mut Vec<Finding>) {
    if let Some(o) = s.spec.security_context.as_ref().and_then(|sc| sc.se_linux_options.as_ref()) {
        options(id, types, o, "pod", || pod_sc_path(s), out);
    }
}

pub(super) fn container(
    id: Control,
    types: Types,
    s: &Subject<'_>,
    c: &ContainerRef<'_>,
    out: &mut Vec<Finding>,
) {
    if let Some(o) = sc(c).and_then(|sc| sc.se_linux_options.as_ref()) {
        options(id, types, o, Who(c), || container_sc_path(s, c), out);
    }
}

fn options(
    id: Control,
    types: Types,
    o: &SELinuxOptions,
    who: impl std::fmt::Display,
    sc_path: impl Fn() -> FieldPath,
    out: &mut Vec<Finding>,
) {
    let t = o.type_.as_deref().unwrap_or_default();
    if !types.allows(t) {
        out.push(Finding::new(
            sc_path().field("seLinuxOptions").field("type"),
            format!("{id}: {who} sets SELinux type {}", Quoted(t)),
            if types == Types::V1_31 {
                "use container_t, container_init_t, container_kvm_t or container_engine_t, or remove it"
            } else {
                "use container_t, container_init_t or container_kvm_t, or remove it"
            },
        ));
    }
    for (field, value) in [("user", &o.user), ("role", &o.role)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            out.push(Finding::new(
                sc_path().field("seLinuxOptions").field(field),
                format!("{id}: {who} sets SELinux {field} {}", Quoted(v)),
                "remove it",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::{rule_paths, spec_paths};
    use super::super::{Control, Rule};
    use super::Types;

    #[test]
    fn types_users_and_roles() {
        let pod = r#"
spec:
  securityContext: {seLinuxOptions: {type: spc_t, level: "s0:c1"}}
  containers:
  - {name: a, securityContext: {seLinuxOptions: {type: container_t, level: s0}}}
  - {name: b, securityContext: {seLinuxOptions: {user: system_u, role: system_r}}}
  - {name: c, securityContext: {seLinuxOptions: {type: "", user: "", role: ""}}}
  ephemeralContainers:
  - {name: e, securityContext: {seLinuxOptions: {type: container_engine_t}}}
"#;
        assert_eq!(
            rule_paths(Control::SeLinuxOptions, Rule::SeLinux(Types::V1_0), pod),
            [
                "spec.securityContext.seLinuxOptions.type",
                "spec.containers[1].securityContext.seLinuxOptions.user",
                "spec.containers[1].securityContext.seLinuxOptions.role",
                "spec.ephemeralContainers[0].securityContext.seLinuxOptions.type",
            ]
        );
    }

    #[test]
    fn container_engine_t_from_v1_31() {
        let spec = "containers: [{name: a, securityContext: {seLinuxOptions: {type: container_engine_t}}}]";
        assert_eq!(
            spec_paths("baseline/v1.30", spec),
            ["spec.containers[0].securityContext.seLinuxOptions.type"]
        );
        assert!(spec_paths("baseline/v1.31", spec).is_empty());
        for t in ["container_t", "container_init_t", "container_kvm_t"] {
            assert!(spec_paths("baseline/v1.0", &spec.replace("container_engine_t", t)).is_empty(), "{t}");
        }
    }
}
