//! `podSecurity`: the Kubernetes Pod Security Standards, with the semantics Pod Security
//! Admission (`k8s.io/pod-security-admission/policy`) gives every control at every policy
//! version from v1.0 to the newest it defines ([`NEWEST_MINOR`]).
//!
//! This file holds the level, the version, the control table (which revision of which control
//! applies from which version, and which restricted control replaces which baseline one) and
//! the [`Definition`]. `evaluate.rs` holds the per-request walk; one file per upstream control
//! family holds what that control reads.
//!
//! The check is planned once from its params ([`PodSecurity::new`]): the controls that apply at
//! that level and version, minus overridden and excluded ones, become a short list of
//! [`Rule`]s. Evaluating a compliant pod reads each field once and allocates nothing.
//! Contact points: [`crate::checks`] registers [`DEFINITIONS`]; [`crate::subject`] gives the pod
//! spec, its metadata and their paths.

mod apparmor;
mod capabilities;
mod evaluate;
mod host_namespaces;
mod host_ports;
mod host_probes;
mod params;
mod privilege_escalation;
mod privileged;
mod proc_mount;
mod run_as;
mod seccomp;
mod selinux;
mod sysctls;
mod volumes;
mod windows;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod test_pod;

use std::fmt;

use super::{Check, Definition, Params, ParamsError};
use evaluate::{Quoted, Who, container_message, container_sc_path, pod_sc_path, sc};

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "podSecurity",
    summary: "Kubernetes Pod Security Standards (baseline or restricted) at a pinned or latest version",
    params: &["level", "version", "exclude"],
    parts: &PARTS,
    build,
}];

/// What a finding of `podSecurity` can be found by: every control, the host namespaces apart.
const PARTS: [&str; 21] = [
    "allowPrivilegeEscalation",
    "appArmorProfile",
    "capabilities_baseline",
    "capabilities_restricted",
    host_namespaces::PARTS[0],
    host_namespaces::PARTS[1],
    host_namespaces::PARTS[2],
    "hostPathVolumes",
    "hostPorts",
    "hostProbesAndHostLifecycle",
    "privileged",
    "procMount",
    "procMount_restricted",
    "restrictedVolumes",
    "runAsNonRoot",
    "runAsUser",
    "seLinuxOptions",
    "seccompProfile_baseline",
    "seccompProfile_restricted",
    "sysctls",
    "windowsHostProcess",
];

fn build(params: &Params) -> Result<Box<dyn Check>, ParamsError> {
    let p = params::parse(params)?;
    Ok(Box::new(PodSecurity::new(p.level, p.minor, &p.exclude)))
}

/// The newest policy version with a version-specific change upstream: v1.37 added
/// `net.ipv4.tcp_slow_start_after_idle` and `net.ipv4.tcp_notsent_lowat` to the safe sysctls
/// (kubernetes/kubernetes#138389). `latest` and any newer version mean this one, as upstream's
/// registry clamps versions above its newest revision.
pub const NEWEST_MINOR: u32 = 37;

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Prevents known privilege escalations.
    Baseline,
    /// Baseline plus current pod hardening best practice.
    Restricted,
}

/// A control, named by its upstream Pod Security Admission check id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Control {
    AllowPrivilegeEscalation,
    AppArmorProfile,
    CapabilitiesBaseline,
    CapabilitiesRestricted,
    HostNamespaces,
    HostPathVolumes,
    HostPorts,
    HostProbesAndHostLifecycle,
    Privileged,
    ProcMount,
    ProcMountRestricted,
    RestrictedVolumes,
    RunAsNonRoot,
    RunAsUser,
    SeLinuxOptions,
    SeccompProfileBaseline,
    SeccompProfileRestricted,
    Sysctls,
    WindowsHostProcess,
}

impl Control {
    /// Every control, in id order.
    pub const ALL: [Control; 19] = [
        Control::AllowPrivilegeEscalation,
        Control::AppArmorProfile,
        Control::CapabilitiesBaseline,
        Control::CapabilitiesRestricted,
        Control::HostNamespaces,
        Control::HostPathVolumes,
        Control::HostPorts,
        Control::HostProbesAndHostLifecycle,
        Control::Privileged,
        Control::ProcMount,
        Control::ProcMountRestricted,
        Control::RestrictedVolumes,
        Control::RunAsNonRoot,
        Control::RunAsUser,
        Control::SeLinuxOptions,
        Control::SeccompProfileBaseline,
        Control::SeccompProfileRestricted,
        Control::Sysctls,
        Control::WindowsHostProcess,
    ];

    /// The upstream check id, as used in `exclude` and in messages.
    pub fn id(self) -> &'static str {
        match self {
            Control::AllowPrivilegeEscalation => "allowPrivilegeEscalation",
            Control::AppArmorProfile => "appArmorProfile",
            Control::CapabilitiesBaseline => "capabilities_baseline",
            Control::CapabilitiesRestricted => "capabilities_restricted",
            Control::HostNamespaces => "hostNamespaces",
            Control::HostPathVolumes => "hostPathVolumes",
            Control::HostPorts => "hostPorts",
            Control::HostProbesAndHostLifecycle => "hostProbesAndHostLifecycle",
            Control::Privileged => "privileged",
            Control::ProcMount => "procMount",
            Control::ProcMountRestricted => "procMount_restricted",
            Control::RestrictedVolumes => "restrictedVolumes",
            Control::RunAsNonRoot => "runAsNonRoot",
            Control::RunAsUser => "runAsUser",
            Control::SeLinuxOptions => "seLinuxOptions",
            Control::SeccompProfileBaseline => "seccompProfile_baseline",
            Control::SeccompProfileRestricted => "seccompProfile_restricted",
            Control::Sysctls => "sysctls",
            Control::WindowsHostProcess => "windowsHostProcess",
        }
    }

    /// The control with upstream check id `id`.
    pub fn from_id(id: &str) -> Option<Control> {
        Control::ALL.into_iter().find(|c| c.id() == id)
    }

    /// The level that introduces the control.
    pub fn level(self) -> Level {
        entry(self).level
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One revision of a control's semantics, as one upstream `VersionedCheck`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Privileged,
    HostNamespaces,
    HostPathVolumes,
    HostPorts,
    HostProbes,
    CapabilitiesBaseline,
    AppArmor,
    SeLinux(selinux::Types),
    /// `relax_user_namespace`: a pod with `hostUsers: false` passes.
    ProcMount {
        relax_user_namespace: bool,
    },
    SeccompAnnotations,
    SeccompFields,
    Sysctls(sysctls::Allowed),
    WindowsHostProcess,
    RestrictedVolumes,
    /// `windows_exempt`: a pod with `spec.os.name: windows` passes.
    AllowPrivilegeEscalation {
        windows_exempt: bool,
    },
    RunAsNonRoot {
        relax_user_namespace: bool,
    },
    RunAsUser {
        relax_user_namespace: bool,
    },
    SeccompRestricted {
        windows_exempt: bool,
    },
    CapabilitiesRestricted {
        windows_exempt: bool,
    },
}

/// A control's revisions, oldest first: revision `i` applies from `since` up to the next one.
struct Entry {
    control: Control,
    level: Level,
    revisions: &'static [(u32, Rule)],
    /// The baseline control this restricted one replaces while it applies (upstream
    /// `OverrideCheckIDs`).
    overrides: Option<Control>,
}

const fn baseline(control: Control, revisions: &'static [(u32, Rule)]) -> Entry {
    Entry { control, level: Level::Baseline, revisions, overrides: None }
}

const fn restricted(
    control: Control,
    revisions: &'static [(u32, Rule)],
    overrides: Option<Control>,
) -> Entry {
    Entry { control, level: Level::Restricted, revisions, overrides }
}

/// The control table, read from upstream `check_*.go` (release-1.37). Baseline controls come
/// first, so a restricted plan still evaluates them in this order.
const TABLE: [Entry; 19] = [
    baseline(Control::HostNamespaces, &[(0, Rule::HostNamespaces)]),
    baseline(Control::Privileged, &[(0, Rule::Privileged)]),
    baseline(Control::CapabilitiesBaseline, &[(0, Rule::CapabilitiesBaseline)]),
    baseline(Control::HostPathVolumes, &[(0, Rule::HostPathVolumes)]),
    baseline(Control::HostPorts, &[(0, Rule::HostPorts)]),
    // The field check was added to the 1.0 revision in place (Kubernetes 1.30), so it applies
    // at every pinned version, like upstream.
    baseline(Control::AppArmorProfile, &[(0, Rule::AppArmor)]),
    baseline(
        Control::SeLinuxOptions,
        &[(0, Rule::SeLinux(selinux::Types::V1_0)), (31, Rule::SeLinux(selinux::Types::V1_31))],
    ),
    baseline(
        Control::ProcMount,
        &[
            (0, Rule::ProcMount { relax_user_namespace: false }),
            (35, Rule::ProcMount { relax_user_namespace: true }),
        ],
    ),
    baseline(Control::SeccompProfileBaseline, &[(0, Rule::SeccompAnnotations), (19, Rule::SeccompFields)]),
    baseline(
        Control::Sysctls,
        &[
            (0, Rule::Sysctls(sysctls::Allowed::V1_0)),
            (27, Rule::Sysctls(sysctls::Allowed::V1_27)),
            (29, Rule::Sysctls(sysctls::Allowed::V1_29)),
            (32, Rule::Sysctls(sysctls::Allowed::V1_32)),
            (37, Rule::Sysctls(sysctls::Allowed::V1_37)),
        ],
    ),
    baseline(Control::WindowsHostProcess, &[(0, Rule::WindowsHostProcess)]),
    baseline(Control::HostProbesAndHostLifecycle, &[(34, Rule::HostProbes)]),
    restricted(Control::RestrictedVolumes, &[(0, Rule::RestrictedVolumes)], Some(Control::HostPathVolumes)),
    restricted(
        Control::AllowPrivilegeEscalation,
        &[
            (8, Rule::AllowPrivilegeEscalation { windows_exempt: false }),
            (25, Rule::AllowPrivilegeEscalation { windows_exempt: true }),
        ],
        None,
    ),
    restricted(
        Control::RunAsNonRoot,
        &[
            (0, Rule::RunAsNonRoot { relax_user_namespace: false }),
            (35, Rule::RunAsNonRoot { relax_user_namespace: true }),
        ],
        None,
    ),
    restricted(
        Control::RunAsUser,
        &[
            (23, Rule::RunAsUser { relax_user_namespace: false }),
            (35, Rule::RunAsUser { relax_user_namespace: true }),
        ],
        None,
    ),
    restricted(
        Control::SeccompProfileRestricted,
        &[
            (19, Rule::SeccompRestricted { windows_exempt: false }),
            (25, Rule::SeccompRestricted { windows_exempt: true }),
        ],
        Some(Control::SeccompProfileBaseline),
    ),
    restricted(
        Control::CapabilitiesRestricted,
        &[
            (22, Rule::CapabilitiesRestricted { windows_exempt: false }),
            (25, Rule::CapabilitiesRestricted { windows_exempt: true }),
        ],
        Some(Control::CapabilitiesBaseline),
    ),
    // Baseline relaxes procMount for user-namespace pods from 1.35; restricted keeps the
    // unconditional 1.0 rule from then on by replacing the baseline control.
    restricted(
        Control::ProcMountRestricted,
        &[(35, Rule::ProcMount { relax_user_namespace: false })],
        Some(Control::ProcMount),
    ),
];

fn entry(control: Control) -> &'static Entry {
    // Every control has exactly one entry; the table test checks it.
    TABLE.iter().find(|e| e.control == control).unwrap_or(&TABLE[0])
}

/// The revision of `e` in force at policy version `v1.<minor>`, if the control exists yet.
fn revision(e: &Entry, minor: u32) -> Option<Rule> {
    e.revisions.iter().rev().find(|(since, _)| *since <= minor).map(|(_, rule)| *rule)
}

/// A control and the revision of it that applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    control: Control,
    rule: Rule,
}

/// The built `podSecurity` check: the rules that apply at one level and version.
#[derive(Debug)]
pub struct PodSecurity {
    steps: Box<[Step]>,
}

impl PodSecurity {
    /// Plans the check for `level` at policy version `v1.<minor>` (clamped to
    /// [`NEWEST_MINOR`]), without the `exclude`d controls.
    pub fn new(level: Level, minor: u32, exclude: &[Control]) -> Self {
        let minor = minor.min(NEWEST_MINOR);
        let active = |e: &Entry| {
            (e.level == Level::Baseline || level == Level::Restricted) && revision(e, minor).is_some()
        };
        let overridden = |c: Control| {
            TABLE.iter().any(|e| e.overrides == Some(c) && e.level == Level::Restricted && active(e))
        };
        let steps = TABLE
            .iter()
            .filter(|e| active(e) && !overridden(e.control) && !exclude.contains(&e.control))
            .filter_map(|e| revision(e, minor).map(|rule| Step { control: e.control, rule }))
            .collect();
        Self { steps }
    }

    /// The controls this check evaluates, in evaluation order.
    pub fn controls(&self) -> impl Iterator<Item = Control> + '_ {
        self.steps.iter().map(|s| s.control)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::test_pod::{findings, paths};
    use super::*;

    #[test]
    fn table_has_one_entry_per_control_and_newest_matches() {
        for c in Control::ALL {
            assert_eq!(TABLE.iter().filter(|e| e.control == c).count(), 1, "{c}");
            assert_eq!(Control::from_id(c.id()), Some(c));
        }
        let newest = TABLE.iter().flat_map(|e| e.revisions.iter().map(|r| r.0)).max();
        assert_eq!(newest, Some(NEWEST_MINOR));
        for e in &TABLE {
            assert!(e.revisions.windows(2).all(|w| w[0].0 < w[1].0), "{}", e.control);
            if let Some(o) = e.overrides {
                assert_eq!((e.level, o.level()), (Level::Restricted, Level::Baseline));
            }
        }
    }

    fn ids(level: Level, minor: u32) -> Vec<&'static str> {
        PodSecurity::new(level, minor, &[]).controls().map(Control::id).collect()
    }

    #[test]
    fn baseline_controls_per_version() {
        let v0 = ids(Level::Baseline, 0);
        assert_eq!(v0.len(), 11);
        assert!(!v0.contains(&"hostProbesAndHostLifecycle"));
        assert!(ids(Level::Baseline, 34).contains(&"hostProbesAndHostLifecycle"));
        assert!(!ids(Level::Baseline, 37).iter().any(|id| id.ends_with("_restricted")));
    }

    #[rstest]
    #[case::v1_0(0, &["restrictedVolumes", "runAsNonRoot", "seccompProfile_baseline", "capabilities_baseline", "procMount"], &["hostPathVolumes", "allowPrivilegeEscalation"])]
    #[case::v1_8(8, &["allowPrivilegeEscalation", "seccompProfile_baseline"], &["runAsUser", "seccompProfile_restricted"])]
    #[case::v1_19(19, &["seccompProfile_restricted", "capabilities_baseline"], &["seccompProfile_baseline"])]
    #[case::v1_22(22, &["capabilities_restricted"], &["capabilities_baseline", "runAsUser"])]
    #[case::v1_23(23, &["runAsUser", "procMount"], &["procMount_restricted"])]
    #[case::v1_34(34, &["hostProbesAndHostLifecycle", "procMount"], &["procMount_restricted"])]
    #[case::v1_35(35, &["procMount_restricted"], &["procMount", "hostPathVolumes", "capabilities_baseline"])]
    fn restricted_controls_and_overrides_per_version(
        #[case] minor: u32,
        #[case] present: &[&str],
        #[case] absent: &[&str],
    ) {
        let got = ids(Level::Restricted, minor);
        for id in present {
            assert!(got.contains(id), "{id} missing at v1.{minor}: {got:?}");
        }
        for id in absent {
            assert!(!got.contains(id), "{id} should not apply at v1.{minor}: {got:?}");
        }
    }

    #[test]
    fn restricted_v1_18_keeps_baseline_seccomp_annotations() {
        let pod = r#"
metadata:
  annotations:
    seccomp.security.alpha.kubernetes.io/pod: unconfined
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: app
    securityContext: {allowPrivilegeEscalation: false}
"#;
        assert_eq!(
            paths("level: restricted\nversion: v1.18", "Pod", pod),
            [r#"metadata.annotations["seccomp.security.alpha.kubernetes.io/pod"]"#]
        );
    }

    #[test]
    fn versions_above_newest_clamp_to_newest() {
        assert_eq!(
            PodSecurity::new(Level::Restricted, 99, &[]).steps,
            PodSecurity::new(Level::Restricted, 37, &[]).steps
        );
    }

    #[test]
    fn exclude_drops_the_control_only() {
        let pod =
            "spec:\n  hostPID: true\n  containers:\n  - name: app\n    securityContext: {privileged: true}\n";
        assert_eq!(
            paths("level: baseline", "Pod", pod),
            ["spec.hostPID", "spec.containers[0].securityContext.privileged"]
        );
        assert_eq!(paths("level: baseline\nexclude: [privileged]", "Pod", pod), ["spec.hostPID"]);
        assert!(paths("level: baseline\nexclude: [privileged, hostNamespaces]", "Pod", pod).is_empty());
    }

    #[test]
    fn excluding_a_restricted_variant_does_not_bring_back_the_baseline_one() {
        let pod = "spec:\n  securityContext: {runAsNonRoot: true, seccompProfile: {type: Unconfined}}\n  containers:\n  - name: app\n    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n";
        assert_eq!(paths("level: restricted", "Pod", pod), ["spec.securityContext.seccompProfile.type"]);
        assert!(paths("level: restricted\nexclude: [seccompProfile_restricted]", "Pod", pod).is_empty());
    }

    #[test]
    fn deployment_paths_use_the_template() {
        let d = r#"
spec:
  selector: {}
  template:
    metadata:
      annotations:
        container.apparmor.security.beta.kubernetes.io/app: unconfined
    spec:
      containers:
      - name: app
      - name: side
        securityContext: {privileged: true}
"#;
        assert_eq!(
            paths("level: baseline", "Deployment", d),
            [
                r#"spec.template.metadata.annotations["container.apparmor.security.beta.kubernetes.io/app"]"#,
                "spec.template.spec.containers[1].securityContext.privileged",
            ]
        );
    }

    #[test]
    fn compliant_restricted_pod_has_no_findings() {
        let pod = r#"
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  initContainers:
  - name: init
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
  containers:
  - name: app
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}
  volumes:
  - name: v
    configMap: {name: c}
"#;
        for v in ["v1.0", "v1.22", "v1.35", "latest"] {
            assert!(findings(&format!("level: restricted\nversion: {v}"), "Pod", pod).is_empty(), "{v}");
        }
    }

    #[test]
    fn messages_name_the_control_and_container() {
        let pod = "spec:\n  containers:\n  - name: app\n    securityContext: {privileged: true}\n";
        let f = findings("level: baseline", "Pod", pod);
        assert_eq!(f[0].message, r#"privileged: container "app" runs privileged"#);
        assert_eq!(f[0].fix, "set securityContext.privileged to false or remove it");
    }
}
