//! `hostNamespaces` (baseline, v1.0+): the pod must not share the host's network, PID or IPC
//! namespace (upstream `check_hostNamespaces.go`).

use super::Control;
use crate::finding::Finding;
use crate::subject::Subject;

/// The namespaces apart: frameworks name them apart (CIS EKS 4.2.2–4.2.4).
pub(super) const PARTS: [&str; 3] =
    ["hostNamespaces/hostNetwork", "hostNamespaces/hostPID", "hostNamespaces/hostIPC"];

pub(super) fn pod(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    let spec = s.spec;
    let fields = [
        (spec.host_network, "hostNetwork", "network", "remove hostNetwork or set it to false", PARTS[0]),
        (spec.host_pid, "hostPID", "PID", "remove hostPID or set it to false", PARTS[1]),
        (spec.host_ipc, "hostIPC", "IPC", "remove hostIPC or set it to false", PARTS[2]),
    ];
    for (value, field, name, fix, part) in fields {
        if value == Some(true) {
            out.push(
                Finding::new(
                    s.path().field(field),
                    format!("{id}: pod shares the host {name} namespace"),
                    fix,
                )
                .part(part),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::super::test_pod::rule_paths;
    use super::super::{Control, Rule};

    #[rstest]
    #[case::network("hostNetwork: true", &["spec.hostNetwork"])]
    #[case::pid("hostPID: true", &["spec.hostPID"])]
    #[case::ipc("hostIPC: true", &["spec.hostIPC"])]
    #[case::all("hostNetwork: true, hostPID: true, hostIPC: true", &["spec.hostNetwork", "spec.hostPID", "spec.hostIPC"])]
    #[case::false_values("hostNetwork: false, hostPID: false, hostIPC: false", &[])]
    fn host_namespaces(#[case] fields: &str, #[case] want: &[&str]) {
        let pod = format!("spec: {{{fields}, containers: [{{name: a}}]}}");
        assert_eq!(rule_paths(Control::HostNamespaces, Rule::HostNamespaces, &pod), want);
    }
}
