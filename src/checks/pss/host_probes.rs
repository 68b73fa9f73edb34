//! `hostProbesAndHostLifecycle` (baseline, v1.34+): probes and lifecycle handlers must not
//! target another host. Upstream `check_hostProbesAndhostLifecycle.go` forbids a non-empty
//! `host` in the `httpGet` and `tcpSocket` of the liveness, readiness and startup probes and of
//! the `postStart` and `preStop` handlers, in every container list.

use k8s_openapi::api::core::v1::{HTTPGetAction, TCPSocketAction};

use super::{Control, Quoted, Who};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

const FIX: &str = "remove the host field so the handler targets the pod itself";

pub(super) fn container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    let probes = [
        ("livenessProbe", c.liveness_probe),
        ("readinessProbe", c.readiness_probe),
        ("startupProbe", c.startup_probe),
    ];
    for (field, probe) in probes {
        if let Some(p) = probe {
            hosts(id, s, c, &[field], p.http_get.as_ref(), p.tcp_socket.as_ref(), out);
        }
    }
    let Some(lifecycle) = c.lifecycle else { return };
    let handlers = [("postStart", lifecycle.post_start.as_ref()), ("preStop", lifecycle.pre_stop.as_ref())];
    for (field, handler) in handlers {
        if let Some(h) = handler {
            hosts(id, s, c, &["lifecycle", field], h.http_get.as_ref(), h.tcp_socket.as_ref(), out);
        }
    }
}

fn hosts(
    id: Control,
    s: &Subject<'_>,
    c: &ContainerRef<'_>,
    fields: &[&str],
    http_get: Option<&HTTPGetAction>,
    tcp_socket: Option<&TCPSocketAction>,
    out: &mut Vec<Finding>,
) {
    let actions = [
        ("httpGet", http_get.and_then(|a| a.host.as_deref())),
        ("tcpSocket", tcp_socket.and_then(|a| a.host.as_deref())),
    ];
    for (action, host) in actions {
        let Some(host) = host.filter(|h| !h.is_empty()) else { continue };
        let path = fields.iter().fold(c.path(s), |p, f| p.field(f));
        let handler = fields.last().copied().unwrap_or_default();
        out.push(Finding::new(
            path.field(action).field("host"),
            format!("{id}: {} {handler} targets host {}", Who(c), Quoted(host)),
            FIX,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::{rule_findings, rule_paths, spec_paths};
    use super::super::{Control, Rule};

    const POD: &str = r#"
spec:
  containers:
  - name: a
    livenessProbe: {httpGet: {port: 80, host: 10.0.0.1}}
    readinessProbe: {tcpSocket: {port: 80, host: ""}}
    startupProbe: {tcpSocket: {port: 80, host: node.local}}
    lifecycle:
      postStart: {httpGet: {port: 80, host: metadata}}
      preStop: {tcpSocket: {port: 80, host: x}}
  - name: b
    livenessProbe: {httpGet: {port: 80}}
    lifecycle: {preStop: {exec: {command: ["true"]}}}
  initContainers:
  - name: i
    readinessProbe: {httpGet: {port: 80, host: h}}
"#;

    #[test]
    fn non_empty_hosts_fail_per_field() {
        assert_eq!(
            rule_paths(Control::HostProbesAndHostLifecycle, Rule::HostProbes, POD),
            [
                "spec.containers[0].livenessProbe.httpGet.host",
                "spec.containers[0].startupProbe.tcpSocket.host",
                "spec.containers[0].lifecycle.postStart.httpGet.host",
                "spec.containers[0].lifecycle.preStop.tcpSocket.host",
                "spec.initContainers[0].readinessProbe.httpGet.host",
            ]
        );
        let f = rule_findings(Control::HostProbesAndHostLifecycle, Rule::HostProbes, POD);
        assert_eq!(
            f[0].message,
            r#"hostProbesAndHostLifecycle: container "a" livenessProbe targets host "10.0.0.1""#
        );
    }

    #[test]
    fn applies_from_v1_34() {
        let spec = "containers:\n- {name: a, livenessProbe: {httpGet: {port: 80, host: h}}}";
        assert!(spec_paths("baseline/v1.33", spec).is_empty());
        assert_eq!(spec_paths("baseline/v1.34", spec), ["spec.containers[0].livenessProbe.httpGet.host"]);
        assert_eq!(spec_paths("baseline/latest", spec), ["spec.containers[0].livenessProbe.httpGet.host"]);
    }
}
