//! The per-request walk of `podSecurity`: the pod-level part of every planned step, then one
//! pass over the containers applying every step to each, so findings come pod first, then
//! container by container. Also the small pieces the control families share: exemptions,
//! container names for messages, security-context paths.

use std::fmt::{self, Write as _};

use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};

use super::{
    Control, PodSecurity, Rule, Step, apparmor, capabilities, host_namespaces, host_ports, host_probes,
    privilege_escalation, privileged, proc_mount, run_as, seccomp, selinux, sysctls, volumes, windows,
};
use crate::checks::Check;
use crate::context::Context;
use crate::finding::{FieldPath, Finding};
use crate::subject::{ContainerRef, Subject};

impl Check for PodSecurity {
    /// One pass over the pod-level fields, then one walk over the containers applying every
    /// step to each: findings come pod first, then container by container.
    fn evaluate(&self, _ctx: &Context<'_>, s: &Subject<'_>, out: &mut Vec<Finding>) {
        let exempt = Exempt { windows: is_windows(s.spec), user_namespace: user_namespace(s.spec) };
        for step in self.steps.iter().filter(|st| !exempt.skips(st.rule)) {
            let from = out.len();
            step.pod(s, out);
            tag(&mut out[from..], step.control);
        }
        for c in s.containers() {
            for step in self.steps.iter().filter(|st| !exempt.skips(st.rule)) {
                let from = out.len();
                step.container(s, &c, out);
                tag(&mut out[from..], step.control);
            }
        }
    }

    fn active_parts(&self) -> Option<Vec<&'static str>> {
        let parts = self
            .controls()
            .flat_map(|c| match c {
                Control::HostNamespaces => host_namespaces::PARTS.to_vec(),
                c => vec![c.id()],
            })
            .collect();
        Some(parts)
    }
}

/// Names the control that found each of `found`, unless the control named a finer part itself
/// (`hostNamespaces/hostPID`): compliance frameworks map the controls differently.
fn tag(found: &mut [Finding], control: Control) {
    for f in found.iter_mut().filter(|f| f.part.is_empty()) {
        f.part = control.id();
    }
}

/// What the pod is, for the revisions that skip some pods entirely.
struct Exempt {
    windows: bool,
    user_namespace: bool,
}

impl Exempt {
    fn skips(&self, rule: Rule) -> bool {
        match rule {
            Rule::ProcMount { relax_user_namespace }
            | Rule::RunAsNonRoot { relax_user_namespace }
            | Rule::RunAsUser { relax_user_namespace } => relax_user_namespace && self.user_namespace,
            Rule::AllowPrivilegeEscalation { windows_exempt }
            | Rule::SeccompRestricted { windows_exempt }
            | Rule::CapabilitiesRestricted { windows_exempt } => windows_exempt && self.windows,
            _ => false,
        }
    }
}

impl Step {
    /// The pod-level part: pod security context, volumes, annotations, host namespaces.
    fn pod(self, s: &Subject<'_>, out: &mut Vec<Finding>) {
        let id = self.control;
        match self.rule {
            Rule::HostNamespaces => host_namespaces::pod(id, s, out),
            Rule::HostPathVolumes => volumes::host_path(id, s, out),
            Rule::RestrictedVolumes => volumes::restricted(id, s, out),
            Rule::AppArmor => apparmor::pod(id, s, out),
            Rule::SeLinux(types) => selinux::pod(id, types, s, out),
            Rule::SeccompAnnotations => seccomp::annotations(id, s, out),
            Rule::SeccompFields | Rule::SeccompRestricted { .. } => seccomp::pod(id, s, out),
            Rule::Sysctls(allowed) => sysctls::pod(id, allowed, s, out),
            Rule::WindowsHostProcess => windows::pod(id, s, out),
            Rule::RunAsNonRoot { .. } => run_as::non_root_pod(id, s, out),
            Rule::RunAsUser { .. } => run_as::user_pod(id, s, out),
            Rule::Privileged
            | Rule::HostPorts
            | Rule::HostProbes
            | Rule::CapabilitiesBaseline
            | Rule::CapabilitiesRestricted { .. }
            | Rule::ProcMount { .. }
            | Rule::AllowPrivilegeEscalation { .. } => {}
        }
    }

    /// The part about one container.
    fn container(self, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
        let id = self.control;
        match self.rule {
            Rule::Privileged => privileged::container(id, s, c, out),
            Rule::HostPorts => host_ports::container(id, s, c, out),
            Rule::HostProbes => host_probes::container(id, s, c, out),
            Rule::CapabilitiesBaseline => capabilities::baseline(id, s, c, out),
            Rule::CapabilitiesRestricted { .. } => capabilities::restricted(id, s, c, out),
            Rule::AppArmor => apparmor::container(id, s, c, out),
            Rule::SeLinux(types) => selinux::container(id, types, s, c, out),
            Rule::ProcMount { .. } => proc_mount::container(id, s, c, out),
            Rule::SeccompFields => seccomp::container(id, s, c, false, out),
            Rule::SeccompRestricted { .. } => seccomp::container(id, s, c, true, out),
            Rule::WindowsHostProcess => windows::container(id, s, c, out),
            Rule::AllowPrivilegeEscalation { .. } => privilege_escalation::container(id, s, c, out),
            Rule::RunAsNonRoot { .. } => run_as::non_root_container(id, s, c, out),
            Rule::RunAsUser { .. } => run_as::user_container(id, s, c, out),
            Rule::HostNamespaces
            | Rule::HostPathVolumes
            | Rule::RestrictedVolumes
            | Rule::SeccompAnnotations
            | Rule::Sysctls(_) => {}
        }
    }
}

/// `spec.os.name: windows`. From v1.25 restricted skips its Linux-only controls for such pods,
/// whose API validation already rejects those fields (upstream `check_*_restricted.go`).
fn is_windows(spec: &PodSpec) -> bool {
    spec.os.as_ref().is_some_and(|os| os.name == "windows")
}

/// `spec.hostUsers: false`: the pod runs in a user namespace, where root maps to an
/// unprivileged host user (KEP-127; upstream `relaxPolicyForUserNamespacePod`).
fn user_namespace(spec: &PodSpec) -> bool {
    spec.host_users == Some(false)
}

/// A container named for messages: `container "app"`, `init container "setup"`, ...
pub(super) struct Who<'c, 'a>(pub(super) &'c ContainerRef<'a>);

impl fmt::Display for Who<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.kind.noun(), Quoted(self.0.name))
    }
}

/// `<control>: <container> <what>`, the shape of most container findings. Put together
/// without `format!`, whose machinery costs more than the rest of a finding.
pub(super) fn container_message(id: Control, c: &ContainerRef<'_>, what: &str) -> String {
    if is_plain(c.name) {
        [id.id(), ": ", c.kind.noun(), " \"", c.name, "\" ", what].concat()
    } else {
        format!("{id}: {} {what}", Who(c))
    }
}

/// Whether debug quoting leaves `s` as it is.
fn is_plain(s: &str) -> bool {
    s.bytes().all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
}

/// A name or value in double quotes, as `{:?}` writes it. Strings that debug quoting leaves as
/// they are (every valid Kubernetes name) are copied whole: the debug formatter walks them a
/// character at a time, and findings quote something in almost every message.
pub(super) struct Quoted<'a>(pub(super) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain(self.0) {
            f.write_char('"')?;
            f.write_str(self.0)?;
            f.write_char('"')
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// `<container>.securityContext`.
pub(super) fn container_sc_path(s: &Subject<'_>, c: &ContainerRef<'_>) -> FieldPath {
    c.path(s).field("securityContext")
}

/// `<spec>.securityContext`.
pub(super) fn pod_sc_path(s: &Subject<'_>) -> FieldPath {
    s.path().field("securityContext")
}

/// The container's security context, if it has one.
pub(super) fn sc<'a>(c: &ContainerRef<'a>) -> Option<&'a SecurityContext> {
    c.security_context
}

#[cfg(test)]
mod tests {
    use super::super::Control;
    use super::{Quoted, container_message};
    use crate::subject::{ContainerKind, ContainerRef};

    #[test]
    fn quoted_is_debug_quoting_for_every_kind_of_string() {
        for s in [
            "web",
            "log-shipper",
            "a b",
            "",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "é",
            "\u{7f}",
            "\u{200b}",
        ] {
            assert_eq!(Quoted(s).to_string(), format!("{s:?}"), "{s:?}");
        }
    }

    #[test]
    fn container_message_is_the_formatted_message() {
        let spec = k8s_openapi::api::core::v1::Container::default();
        for name in ["web", "odd \"name\"\n"] {
            for kind in
                [ContainerKind::Container, ContainerKind::InitContainer, ContainerKind::EphemeralContainer]
            {
                let mut c = ContainerRef::regular(kind, 0, &spec);
                c.name = name;
                assert_eq!(
                    container_message(Control::Privileged, &c, "runs privileged"),
                    format!("privileged: {} {:?} runs privileged", c.kind.noun(), name)
                );
            }
        }
    }
}
