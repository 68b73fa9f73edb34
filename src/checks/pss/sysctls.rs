//! `sysctls` (baseline): only sysctls that are namespaced to the pod and isolated from the
//! node may be set in `spec.securityContext.sysctls` (upstream `check_sysctls.go`). The safe
//! list grows with the version; names compare exactly.

use super::{Control, Quoted, pod_sc_path};
use crate::finding::Finding;
use crate::subject::Subject;

/// Every safe sysctl, in the order upstream added them.
const SAFE: [&str; 14] = [
    // v1.0
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    // v1.27
    "net.ipv4.ip_local_reserved_ports",
    // v1.29
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    // v1.32
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    // v1.37 (kubernetes/kubernetes#138389)
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

/// The safe list at a version: a prefix of [`SAFE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Allowed {
    V1_0,
    V1_27,
    V1_29,
    V1_32,
    V1_37,
}

impl Allowed {
    fn names(self) -> &'static [&'static str] {
        let n = match self {
            Allowed::V1_0 => 5,
            Allowed::V1_27 => 6,
            Allowed::V1_29 => 10,
            Allowed::V1_32 => 12,
            Allowed::V1_37 => 14,
        };
        &SAFE[..n]
    }
}

pub(super) fn pod(id: Control, allowed: Allowed, s: &Subject<'_>, out: &mut Vec<Finding>) {
    let sysctls = s.spec.security_context.as_ref().and_then(|sc| sc.sysctls.as_ref());
    for (i, sysctl) in sysctls.into_iter().flatten().enumerate() {
        if !allowed.names().contains(&sysctl.name.as_str()) {
            out.push(Finding::new(
                pod_sc_path(s).field("sysctls").index(i).field("name"),
                format!("{id}: pod sets unsafe sysctl {}", Quoted(&sysctl.name)),
                "remove it; only namespaced, node-isolated sysctls are allowed",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::super::test_pod::spec_paths;

    fn sysctl(version: &str, name: &str) -> bool {
        let spec = format!(
            "securityContext: {{sysctls: [{{name: {name}, value: '1'}}]}}\ncontainers: [{{name: a}}]"
        );
        spec_paths(&format!("baseline/{version}"), &spec).is_empty()
    }

    #[rstest]
    #[case::shm("kernel.shm_rmid_forced", "v1.0")]
    #[case::port_range("net.ipv4.ip_local_port_range", "v1.0")]
    #[case::syncookies("net.ipv4.tcp_syncookies", "v1.0")]
    #[case::ping("net.ipv4.ping_group_range", "v1.0")]
    #[case::unprivileged_port("net.ipv4.ip_unprivileged_port_start", "v1.0")]
    #[case::reserved_ports("net.ipv4.ip_local_reserved_ports", "v1.27")]
    #[case::keepalive_time("net.ipv4.tcp_keepalive_time", "v1.29")]
    #[case::fin_timeout("net.ipv4.tcp_fin_timeout", "v1.29")]
    #[case::keepalive_intvl("net.ipv4.tcp_keepalive_intvl", "v1.29")]
    #[case::keepalive_probes("net.ipv4.tcp_keepalive_probes", "v1.29")]
    #[case::rmem("net.ipv4.tcp_rmem", "v1.32")]
    #[case::wmem("net.ipv4.tcp_wmem", "v1.32")]
    #[case::slow_start("net.ipv4.tcp_slow_start_after_idle", "v1.37")]
    #[case::notsent_lowat("net.ipv4.tcp_notsent_lowat", "v1.37")]
    fn safe_from_its_version(#[case] name: &str, #[case] since: &str) {
        let minor: u32 = since.trim_start_matches("v1.").parse().unwrap();
        assert!(sysctl(since, name), "{name} allowed at {since}");
        assert!(sysctl("latest", name), "{name} allowed at latest");
        if minor > 0 {
            assert!(!sysctl(&format!("v1.{}", minor - 1), name), "{name} forbidden before {since}");
        }
    }

    #[test]
    fn unsafe_names_fail_each() {
        let spec = "securityContext:\n  sysctls:\n  - {name: kernel.shm_rmid_forced, value: '1'}\n  - {name: kernel.msgmax, value: '1'}\n  - {name: net/ipv4/tcp_syncookies, value: '1'}\ncontainers: [{name: a}]";
        assert_eq!(
            spec_paths("baseline/latest", spec),
            ["spec.securityContext.sysctls[1].name", "spec.securityContext.sysctls[2].name"]
        );
    }
}
