//! `hostPorts` (baseline, v1.0+): no container port may bind a host port. Upstream
//! `check_hostPorts.go` allows only an unset or zero `hostPort`, with no range exception.

use super::{Control, Who};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

pub(super) fn container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    for (j, port) in c.ports.iter().enumerate() {
        let host_port = port.host_port.unwrap_or(0);
        if host_port != 0 {
            out.push(Finding::new(
                c.path(s).field("ports").index(j).field("hostPort"),
                format!("{id}: {} binds host port {host_port}", Who(c)),
                "remove hostPort (or set it to 0) and expose the port through a Service",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::{rule_findings, rule_paths};
    use super::super::{Control, Rule};

    #[test]
    fn nonzero_host_ports_fail_per_port() {
        let pod = r#"
spec:
  containers:
  - name: a
    ports: [{containerPort: 80}, {containerPort: 81, hostPort: 0}, {containerPort: 82, hostPort: 8082}]
  initContainers:
  - {name: i, ports: [{containerPort: 9, hostPort: 9}]}
  ephemeralContainers:
  - {name: e, ports: [{containerPort: 7, hostPort: 7}]}
"#;
        assert_eq!(
            rule_paths(Control::HostPorts, Rule::HostPorts, pod),
            [
                "spec.containers[0].ports[2].hostPort",
                "spec.initContainers[0].ports[0].hostPort",
                "spec.ephemeralContainers[0].ports[0].hostPort",
            ]
        );
        let f = rule_findings(Control::HostPorts, Rule::HostPorts, pod);
        assert_eq!(f[0].message, r#"hostPorts: container "a" binds host port 8082"#);
        assert_eq!(f[1].message, r#"hostPorts: init container "i" binds host port 9"#);
    }
}
