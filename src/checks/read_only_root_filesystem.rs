//! `readOnlyRootFilesystem`: every container runs with a read-only root filesystem.
//!
//! All three container lists are checked: a writable root filesystem lets an intruder drop tools
//! into a debug container as much as into the app. Pods with `spec.os.name: windows` are skipped,
//! because the API refuses `readOnlyRootFilesystem` on them.

use super::{Check, Definition, Params, ParamsError};
use crate::context::Context;
use crate::finding::Finding;
use crate::subject::Subject;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "readOnlyRootFilesystem",
    summary: "containers set securityContext.readOnlyRootFilesystem: true",
    params: &[],
    parts: &[],
    build: ReadOnlyRootFilesystem::build,
}];

/// `readOnlyRootFilesystem`: `securityContext.readOnlyRootFilesystem` is `true` in every container.
#[derive(Debug)]
pub struct ReadOnlyRootFilesystem;

impl ReadOnlyRootFilesystem {
    fn build(_params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        Ok(Box::new(Self))
    }
}

const FIX: &str =
    "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the app writes, e.g. /tmp";

impl Check for ReadOnlyRootFilesystem {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        if subject.spec.os.as_ref().is_some_and(|os| os.name == "windows") {
            return;
        }
        for c in subject.containers() {
            let what = match c.security_context.and_then(|s| s.read_only_root_filesystem) {
                Some(true) => continue,
                Some(false) => "sets readOnlyRootFilesystem: false",
                None => "does not set readOnlyRootFilesystem: true",
            };
            out.push(Finding::new(
                c.path(subject).field("securityContext").field("readOnlyRootFilesystem"),
                [c.kind.noun(), " \"", c.name, "\" ", what].concat(),
                FIX,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use crate::checks::images::tests::{paths, run};

    const NAME: &str = "readOnlyRootFilesystem";

    #[rstest]
    #[case::read_only("{securityContext: {readOnlyRootFilesystem: true}}", None)]
    #[case::writable(
        "{securityContext: {readOnlyRootFilesystem: false}}",
        Some("sets readOnlyRootFilesystem: false")
    )]
    #[case::unset_field("{securityContext: {runAsNonRoot: true}}", Some("does not set"))]
    #[case::no_security_context("{}", Some("does not set"))]
    fn read_only_root_filesystem(#[case] fields: &str, #[case] problem: Option<&str>) {
        let yaml =
            format!("spec: {{containers: [{{name: app, image: a, {}}}]}}", &fields[1..fields.len() - 1]);
        let f = run(NAME, "{}", "Pod", &yaml);
        match problem {
            None => assert!(f.is_empty(), "{f:?}"),
            Some(p) => {
                assert_eq!(paths(&f), ["spec.containers[0].securityContext.readOnlyRootFilesystem"]);
                assert!(f[0].message.starts_with("container \"app\" ") && f[0].message.contains(p));
                assert!(f[0].fix.contains("readOnlyRootFilesystem: true"));
            }
        }
    }

    #[test]
    fn every_container_list_under_a_daemonset() {
        let ro = "securityContext: {readOnlyRootFilesystem: true}";
        let yaml = format!(
            "spec: {{selector: {{}}, template: {{spec: {{containers: [{{name: a, {ro}}}, {{name: b}}], \
             initContainers: [{{name: i}}], ephemeralContainers: [{{name: e}}, {{name: f, {ro}}}]}}}}}}"
        );
        let f = run(NAME, "{}", "DaemonSet", &yaml);
        assert_eq!(
            paths(&f),
            [
                "spec.template.spec.containers[1].securityContext.readOnlyRootFilesystem",
                "spec.template.spec.initContainers[0].securityContext.readOnlyRootFilesystem",
                "spec.template.spec.ephemeralContainers[0].securityContext.readOnlyRootFilesystem",
            ]
        );
        let named: Vec<&str> =
            f.iter().map(|f| f.message.split(" does").next().unwrap_or_default()).collect();
        assert_eq!(named, ["container \"b\"", "init container \"i\"", "ephemeral container \"e\""]);
    }

    #[rstest]
    #[case::windows("windows", 0)]
    #[case::linux("linux", 1)]
    fn windows_pods_are_skipped(#[case] os: &str, #[case] count: usize) {
        let yaml = format!("spec: {{os: {{name: {os}}}, containers: [{{name: app}}]}}");
        assert_eq!(run(NAME, "{}", "Pod", &yaml).len(), count);
    }
}
