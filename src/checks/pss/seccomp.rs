//! Seccomp controls (upstream `check_seccompProfile_baseline.go`,
//! `check_seccompProfile_restricted.go`):
//! - `seccompProfile_baseline` (baseline): before v1.19 only the alpha annotations are read
//!   (`seccomp.security.alpha.kubernetes.io/pod`, `container.seccomp.security.alpha.kubernetes.io/<name>`;
//!   `runtime/default`, `docker/default` or `localhost/*`); from v1.19 only the
//!   `seccompProfile.type` fields (`RuntimeDefault` or `Localhost`). Unset is fine.
//! - `seccompProfile_restricted` (restricted, v1.19+, replaces the baseline one): every
//!   container must end up with `RuntimeDefault` or `Localhost`, set on it or inherited from the
//!   pod; from v1.25 Windows pods are exempt.

use k8s_openapi::api::core::v1::SeccompProfile;

use super::{Control, Quoted, Who, container_message, container_sc_path, pod_sc_path, sc};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

const POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";
const FIX: &str = "set securityContext.seccompProfile.type to RuntimeDefault or Localhost";

fn valid_type(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

fn valid_annotation(v: &str) -> bool {
    v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/")
}

pub(super) fn annotations(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    for (key, value) in s.meta.annotations.iter().flatten() {
        let target = if key == POD_ANNOTATION {
            None
        } else if let Some(name) = key.strip_prefix(CONTAINER_ANNOTATION_PREFIX) {
            // Upstream looks the annotation up per container, so one naming no container is
            // ignored.
            let Some(c) = s.containers().find(|c| c.name == name) else { continue };
            Some(c)
        } else {
            continue;
        };
        if valid_annotation(value) {
            continue;
        }
        let whose = target.map_or_else(|| "pod".to_owned(), |c| Who(&c).to_string());
        out.push(Finding::new(
            s.meta_path().field("annotations").key(key),
            format!("{id}: annotation sets seccomp profile {} for {whose}", Quoted(value)),
            "use runtime/default or localhost/<profile>, or set securityContext.seccompProfile instead",
        ));
    }
}

/// The pod-level field (baseline from v1.19, and restricted).
pub(super) fn pod(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    if let Some(p) = pod_profile(s).filter(|p| !valid_type(&p.type_)) {
        out.push(Finding::new(
            pod_sc_path(s).field("seccompProfile").field("type"),
            format!("{id}: pod sets seccomp profile {}", Quoted(&p.type_)),
            FIX,
        ));
    }
}

/// A container's field. `required` (restricted): a container with no profile must inherit a
/// pod-level one.
pub(super) fn container(
    id: Control,
    s: &Subject<'_>,
    c: &ContainerRef<'_>,
    required: bool,
    out: &mut Vec<Finding>,
) {
    match sc(c).and_then(|sc| sc.seccomp_profile.as_ref()) {
        Some(p) if !valid_type(&p.type_) => out.push(Finding::new(
            container_sc_path(s, c).field("seccompProfile").field("type"),
            format!("{id}: {} sets seccomp profile {}", Who(c), Quoted(&p.type_)),
            FIX,
        )),
        // An unset container inherits the pod's profile. When the pod sets a bad one, its own
        // finding already says what to change.
        None if required && pod_profile(s).is_none() => out.push(Finding::new(
            container_sc_path(s, c).field("seccompProfile").field("type"),
            container_message(id, c, "must set a seccomp profile (here or on the pod)"),
            "set securityContext.seccompProfile.type to RuntimeDefault or Localhost on the pod or container",
        )),
        _ => {}
    }
}

fn pod_profile<'a>(s: &Subject<'a>) -> Option<&'a SeccompProfile> {
    s.spec.security_context.as_ref().and_then(|sc| sc.seccomp_profile.as_ref())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::super::test_pod::{rule_findings, rule_paths, spec_paths};
    use super::super::{Control, Rule};

    #[test]
    fn annotations_before_v1_19() {
        let pod = r#"
metadata:
  annotations:
    seccomp.security.alpha.kubernetes.io/pod: unconfined
    container.seccomp.security.alpha.kubernetes.io/a: runtime/default
    container.seccomp.security.alpha.kubernetes.io/b: docker/default
    container.seccomp.security.alpha.kubernetes.io/c: localhost/p.json
    container.seccomp.security.alpha.kubernetes.io/i: unconfined
    container.seccomp.security.alpha.kubernetes.io/ghost: unconfined
spec:
  containers: [{name: a}, {name: b}, {name: c, securityContext: {seccompProfile: {type: Unconfined}}}]
  initContainers: [{name: i}]
"#;
        let got = rule_paths(Control::SeccompProfileBaseline, Rule::SeccompAnnotations, pod);
        assert_eq!(
            got,
            [
                r#"metadata.annotations["container.seccomp.security.alpha.kubernetes.io/i"]"#,
                r#"metadata.annotations["seccomp.security.alpha.kubernetes.io/pod"]"#,
            ]
        );
        let f = rule_findings(Control::SeccompProfileBaseline, Rule::SeccompAnnotations, pod);
        assert_eq!(
            f[0].message,
            r#"seccompProfile_baseline: annotation sets seccomp profile "unconfined" for init container "i""#
        );
        // From v1.19 baseline reads the fields instead.
        assert_eq!(
            rule_paths(Control::SeccompProfileBaseline, Rule::SeccompFields, pod),
            ["spec.containers[2].securityContext.seccompProfile.type"]
        );
    }

    #[test]
    fn baseline_version_boundary() {
        let spec = "securityContext: {seccompProfile: {type: Unconfined}}\ncontainers: [{name: a}]";
        assert!(spec_paths("baseline/v1.18", spec).is_empty());
        assert_eq!(spec_paths("baseline/v1.19", spec), ["spec.securityContext.seccompProfile.type"]);
    }

    fn restricted(spec: &str) -> Vec<String> {
        let pod = format!("spec:\n{}", spec.lines().map(|l| format!("  {l}\n")).collect::<String>());
        rule_paths(Control::SeccompProfileRestricted, Rule::SeccompRestricted { windows_exempt: true }, &pod)
    }

    #[rstest]
    #[case::pod_runtime_default("securityContext: {seccompProfile: {type: RuntimeDefault}}\ncontainers: [{name: a}]", &[])]
    #[case::pod_localhost("securityContext: {seccompProfile: {type: Localhost, localhostProfile: p}}\ncontainers: [{name: a}]", &[])]
    #[case::containers_only("containers: [{name: a, securityContext: {seccompProfile: {type: RuntimeDefault}}}]\ninitContainers: [{name: i, securityContext: {seccompProfile: {type: Localhost}}}]", &[])]
    #[case::unset_everywhere("containers: [{name: a}]\ninitContainers: [{name: i}]", &["spec.containers[0].securityContext.seccompProfile.type", "spec.initContainers[0].securityContext.seccompProfile.type"])]
    #[case::pod_unconfined("securityContext: {seccompProfile: {type: Unconfined}}\ncontainers: [{name: a}]", &["spec.securityContext.seccompProfile.type"])]
    #[case::unset_init("containers: [{name: a, securityContext: {seccompProfile: {type: RuntimeDefault}}}]\ninitContainers: [{name: i}]", &["spec.initContainers[0].securityContext.seccompProfile.type"])]
    #[case::container_unconfined_overrides_pod("securityContext: {seccompProfile: {type: RuntimeDefault}}\ncontainers: [{name: a, securityContext: {seccompProfile: {type: Unconfined}}}]", &["spec.containers[0].securityContext.seccompProfile.type"])]
    #[case::ephemeral_unset("containers: [{name: a, securityContext: {seccompProfile: {type: RuntimeDefault}}}]\nephemeralContainers: [{name: e}]", &["spec.ephemeralContainers[0].securityContext.seccompProfile.type"])]
    #[case::windows_exempt("os: {name: windows}\ncontainers: [{name: a}]", &[])]
    fn restricted_cases(#[case] spec: &str, #[case] want: &[&str]) {
        assert_eq!(restricted(spec), want);
    }

    #[test]
    fn restricted_version_boundaries() {
        let spec = "securityContext: {runAsNonRoot: true}\ncontainers: [{name: a, securityContext: {allowPrivilegeEscalation: false}}]";
        assert!(spec_paths("restricted/v1.18", spec).is_empty());
        assert_eq!(
            spec_paths("restricted/v1.19", spec),
            ["spec.containers[0].securityContext.seccompProfile.type"]
        );
        let windows = format!("os: {{name: windows}}\n{spec}");
        assert_eq!(
            spec_paths("restricted/v1.19", &windows),
            ["spec.containers[0].securityContext.seccompProfile.type"]
        );
        assert!(spec_paths("restricted/v1.25", &windows).is_empty());
    }
}
