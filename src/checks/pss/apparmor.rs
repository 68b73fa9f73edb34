//! `appArmorProfile` (baseline, v1.0+): AppArmor must not be disabled or overridden with an
//! unknown profile. Upstream `check_appArmorProfile.go` reads both channels at every version:
//! the `appArmorProfile.type` fields of the pod and every container (`RuntimeDefault` or
//! `Localhost`; added to the 1.0 revision in place in Kubernetes 1.30) and the deprecated
//! `container.apparmor.security.beta.kubernetes.io/*` annotations (empty, `runtime/default` or
//! `localhost/*`), whether or not the annotation names an existing container.

use super::{Control, Quoted, Who, container_sc_path, pod_sc_path, sc};
use crate::finding::Finding;
use crate::subject::{ContainerRef, Subject};

const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
const FIX: &str = "set appArmorProfile.type to RuntimeDefault or Localhost, or remove it";

fn valid_type(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

fn valid_annotation(v: &str) -> bool {
    v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")
}

pub(super) fn pod(id: Control, s: &Subject<'_>, out: &mut Vec<Finding>) {
    let pod = s.spec.security_context.as_ref().and_then(|sc| sc.app_armor_profile.as_ref());
    if let Some(p) = pod.filter(|p| !valid_type(&p.type_)) {
        out.push(Finding::new(
            pod_sc_path(s).field("appArmorProfile").field("type"),
            format!("{id}: pod sets AppArmor profile {}", Quoted(&p.type_)),
            FIX,
        ));
    }
    for (key, value) in s.meta.annotations.iter().flatten() {
        let Some(name) = key.strip_prefix(ANNOTATION_PREFIX) else { continue };
        if !valid_annotation(value) {
            out.push(Finding::new(
                s.meta_path().field("annotations").key(key),
                format!(
                    "{id}: annotation sets AppArmor profile {} for container {}",
                    Quoted(value),
                    Quoted(name)
                ),
                "use runtime/default or localhost/<profile>, or set securityContext.appArmorProfile instead",
            ));
        }
    }
}

pub(super) fn container(id: Control, s: &Subject<'_>, c: &ContainerRef<'_>, out: &mut Vec<Finding>) {
    if let Some(p) = sc(c).and_then(|sc| sc.app_armor_profile.as_ref()).filter(|p| !valid_type(&p.type_)) {
        out.push(Finding::new(
            container_sc_path(s, c).field("appArmorProfile").field("type"),
            format!("{id}: {} sets AppArmor profile {}", Who(c), Quoted(&p.type_)),
            FIX,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_pod::{rule_findings, rule_paths, spec_paths};
    use super::super::{Control, Rule};

    #[test]
    fn fields_and_annotations() {
        let pod = r#"
metadata:
  annotations:
    container.apparmor.security.beta.kubernetes.io/a: runtime/default
    container.apparmor.security.beta.kubernetes.io/b: localhost/custom
    container.apparmor.security.beta.kubernetes.io/c: ""
    container.apparmor.security.beta.kubernetes.io/d: unconfined
    container.apparmor.security.beta.kubernetes.io/nobody: unconfined
spec:
  securityContext: {appArmorProfile: {type: Unconfined}}
  containers:
  - {name: a, securityContext: {appArmorProfile: {type: RuntimeDefault}}}
  - {name: b, securityContext: {appArmorProfile: {type: Localhost, localhostProfile: p}}}
  initContainers:
  - {name: i, securityContext: {appArmorProfile: {type: Unconfined}}}
"#;
        assert_eq!(
            rule_paths(Control::AppArmorProfile, Rule::AppArmor, pod),
            [
                "spec.securityContext.appArmorProfile.type",
                r#"metadata.annotations["container.apparmor.security.beta.kubernetes.io/d"]"#,
                r#"metadata.annotations["container.apparmor.security.beta.kubernetes.io/nobody"]"#,
                "spec.initContainers[0].securityContext.appArmorProfile.type",
            ]
        );
        let f = rule_findings(Control::AppArmorProfile, Rule::AppArmor, pod);
        assert_eq!(f[3].message, r#"appArmorProfile: init container "i" sets AppArmor profile "Unconfined""#);
        assert_eq!(
            f[1].message,
            r#"appArmorProfile: annotation sets AppArmor profile "unconfined" for container "d""#
        );
    }

    #[test]
    fn field_is_checked_at_every_version() {
        let spec = "containers: [{name: a, securityContext: {appArmorProfile: {type: Unconfined}}}]";
        assert_eq!(
            spec_paths("baseline/v1.0", spec),
            ["spec.containers[0].securityContext.appArmorProfile.type"]
        );
        assert_eq!(
            spec_paths("baseline/latest", spec),
            ["spec.containers[0].securityContext.appArmorProfile.type"]
        );
    }
}
