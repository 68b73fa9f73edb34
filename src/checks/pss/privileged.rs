//! `privileged` (baseline, v1.0+): no container may run privileged. Upstream
//! `check_privileged.go` reads `securityContext.privileged` of every container, init container
//! and ephemeral container; there is no pod-level field.

use super::{Control, container_message, container_sc_path, sc};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

pub(super) fn container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    if sc(c).and_then(|sc| sc.privileged) == Some(true) {
        out.push(Finding::new(
            container_sc_path(s, c).field("privileged"),
            container_message(id, c, "runs privileged"),
            "set securityContext.privileged to false or remove it",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::rule_paths;
    use super::super::{Control, Rule};

    fn paths(pod: &str) -> Vec<String> {
        rule_paths(Control::Privileged, Rule::Privileged, pod)
    }

    #[test]
    fn privileged_true_fails_in_every_container_list() {
        let pod = r#"
spec:
  containers:
  - {name: a, securityContext: {privileged: true}}
  - {name: b, securityContext: {privileged: false}}
  - {name: c}
  initContainers:
  - {name: i, securityContext: {privileged: true}}
  ephemeralContainers:
  - {name: e, securityContext: {privileged: true}}
"#;
        assert_eq!(
            paths(pod),
            [
                "spec.containers[0].securityContext.privileged",
                "spec.initContainers[0].securityContext.privileged",
                "spec.ephemeralContainers[0].securityContext.privileged",
            ]
        );
    }

    #[test]
    fn unset_or_false_passes() {
        assert!(
            paths(
                "spec:\n  containers:\n  - {name: a, securityContext: {privileged: false}}\n  - {name: b}\n"
            )
            .is_empty()
        );
    }
}
