//! `allowPrivilegeEscalation` (restricted, v1.8+; Windows pods exempt from v1.25): every
//! container must set `securityContext.allowPrivilegeEscalation: false` explicitly (upstream
//! `check_allowPrivilegeEscalation.go`). The Windows exemption is decided by the caller.

use super::{Control, container_message, container_sc_path, sc};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

pub(super) fn container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    let what = match sc(c).and_then(|sc| sc.allow_privilege_escalation) {
        Some(false) => return,
        Some(true) => "allows privilege escalation",
        None => "must set allowPrivilegeEscalation to false",
    };
    out.push(Finding::new(
        container_sc_path(s, c).field("allowPrivilegeEscalation"),
        container_message(id, c, what),
        "set securityContext.allowPrivilegeEscalation to false",
    ));
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::{findings, spec_paths};

    const BASE: &str = "securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}";

    #[test]
    fn unset_or_true_fails_in_every_list() {
        let spec = format!(
            "{BASE}\ncontainers:\n- {{name: a, securityContext: {{allowPrivilegeEscalation: false}}}}\n- {{name: b, securityContext: {{allowPrivilegeEscalation: true}}}}\n- {{name: c}}\ninitContainers: [{{name: i}}]\nephemeralContainers: [{{name: e}}]"
        );
        assert_eq!(
            spec_paths("restricted/v1.21", &spec),
            [
                "spec.containers[1].securityContext.allowPrivilegeEscalation",
                "spec.containers[2].securityContext.allowPrivilegeEscalation",
                "spec.initContainers[0].securityContext.allowPrivilegeEscalation",
                "spec.ephemeralContainers[0].securityContext.allowPrivilegeEscalation",
            ]
        );
    }

    #[test]
    fn starts_at_v1_8_and_exempts_windows_from_v1_25() {
        let spec = "securityContext: {runAsNonRoot: true}\ncontainers: [{name: a}]";
        assert!(spec_paths("restricted/v1.7", spec).is_empty());
        assert_eq!(
            spec_paths("restricted/v1.8", spec),
            ["spec.containers[0].securityContext.allowPrivilegeEscalation"]
        );
        let windows = format!("os: {{name: windows}}\n{BASE}\ncontainers: [{{name: a}}]");
        assert_eq!(
            spec_paths("restricted/v1.24", &windows).len(),
            2,
            "drop ALL and allowPrivilegeEscalation"
        );
        assert!(spec_paths("restricted/v1.25", &windows).is_empty());
    }

    #[test]
    fn message_says_the_field_is_required() {
        let pod = "spec:\n  securityContext: {runAsNonRoot: true}\n  containers: [{name: app}]\n";
        let f = findings("level: restricted\nversion: v1.8", "Pod", pod);
        assert_eq!(
            f[0].message,
            r#"allowPrivilegeEscalation: container "app" must set allowPrivilegeEscalation to false"#
        );
    }
}
