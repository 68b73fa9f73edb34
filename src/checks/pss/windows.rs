//! `windowsHostProcess` (baseline, v1.0+): neither the pod nor any container may run as a
//! Windows HostProcess container (upstream `check_windowsHostProcess.go`).

use super::{Control, container_message, container_sc_path, pod_sc_path, sc};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

const FIX: &str = "set securityContext.windowsOptions.hostProcess to false or remove it";

pub(super) fn pod(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    let pod = s.spec.security_context.as_ref().and_then(|sc| sc.windows_options.as_ref());
    if pod.and_then(|w| w.host_process) == Some(true) {
        out.push(Finding::new(
            pod_sc_path(s).field("windowsOptions").field("hostProcess"),
            format!("{id}: pod runs as a Windows HostProcess"),
            FIX,
        ));
    }
}

pub(super) fn container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    if sc(c).and_then(|sc| sc.windows_options.as_ref()).and_then(|w| w.host_process) == Some(true) {
        out.push(Finding::new(
            container_sc_path(s, c).field("windowsOptions").field("hostProcess"),
            container_message(id, c, "runs as a Windows HostProcess"),
            FIX,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::rule_paths;
    use super::super::{Control, Rule};

    #[test]
    fn host_process_true_fails_at_pod_and_container_level() {
        let pod = r#"
spec:
  securityContext: {windowsOptions: {hostProcess: true}}
  hostNetwork: true
  containers:
  - {name: a, securityContext: {windowsOptions: {hostProcess: true}}}
  - {name: b, securityContext: {windowsOptions: {hostProcess: false}}}
  initContainers:
  - {name: i, securityContext: {windowsOptions: {hostProcess: true}}}
"#;
        assert_eq!(
            rule_paths(Control::WindowsHostProcess, Rule::WindowsHostProcess, pod),
            [
                "spec.securityContext.windowsOptions.hostProcess",
                "spec.containers[0].securityContext.windowsOptions.hostProcess",
                "spec.initContainers[0].securityContext.windowsOptions.hostProcess",
            ]
        );
    }

    #[test]
    fn unset_or_false_passes() {
        let pod = "spec:\n  securityContext: {windowsOptions: {hostProcess: false}}\n  containers:\n  - {name: a, securityContext: {windowsOptions: {runAsUserName: x}}}\n";
        assert!(rule_paths(Control::WindowsHostProcess, Rule::WindowsHostProcess, pod).is_empty());
    }
}
