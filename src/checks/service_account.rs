//! `disallowServiceAccountTokenAutomount`: pods opt out of the automatically mounted service
//! account token by setting `spec.automountServiceAccountToken: false`.
//!
//! Unset counts as a violation: the pod then inherits the ServiceAccount's setting, which
//! admission cannot see and which defaults to mounting the token.

use super::{Check, Definition, Params, ParamsError};
use crate::context::Context;
use crate::policy::Finding;
use crate::subject::Subject;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "disallowServiceAccountTokenAutomount",
    summary: "pods set automountServiceAccountToken: false",
    params: &[],
    build: DisallowServiceAccountTokenAutomount::build,
}];

/// `disallowServiceAccountTokenAutomount`: `spec.automountServiceAccountToken` is explicitly
/// `false`.
#[derive(Debug)]
pub struct DisallowServiceAccountTokenAutomount;

impl DisallowServiceAccountTokenAutomount {
    fn build(_params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        Ok(Box::new(Self))
    }
}

const FIX: &str =
    "set automountServiceAccountToken: false in the pod spec unless the pod calls the Kubernetes API";

impl Check for DisallowServiceAccountTokenAutomount {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        let message = match subject.spec.automount_service_account_token {
            Some(false) => return,
            Some(true) => "the pod sets automountServiceAccountToken: true, so it gets an API token",
            None => "the pod does not set automountServiceAccountToken: false, so it may get an API token",
        };
        out.push(Finding::new(subject.path().field("automountServiceAccountToken"), message, FIX));
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use crate::checks::images::tests::{paths, run};

    const NAME: &str = "disallowServiceAccountTokenAutomount";

    #[rstest]
    #[case::disabled("automountServiceAccountToken: false, ", None)]
    #[case::enabled("automountServiceAccountToken: true, ", Some("sets automountServiceAccountToken: true"))]
    #[case::unset("", Some("does not set automountServiceAccountToken: false"))]
    fn pod(#[case] field: &str, #[case] problem: Option<&str>) {
        let f = run(NAME, "{}", "Pod", &format!("spec: {{{field}containers: [{{name: a}}]}}"));
        match problem {
            None => assert!(f.is_empty(), "{f:?}"),
            Some(p) => {
                assert_eq!(paths(&f), ["spec.automountServiceAccountToken"]);
                assert!(f[0].message.contains(p), "{}", f[0].message);
                assert!(f[0].fix.contains("automountServiceAccountToken: false"));
            }
        }
    }

    #[rstest]
    #[case::job(
        "Job",
        "spec: {template: {spec: {containers: []}}}",
        "spec.template.spec.automountServiceAccountToken"
    )]
    #[case::pod_template(
        "PodTemplate",
        "template: {spec: {containers: []}}",
        "template.spec.automountServiceAccountToken"
    )]
    fn workloads(#[case] kind: &str, #[case] yaml: &str, #[case] path: &str) {
        assert_eq!(paths(&run(NAME, "{}", kind, yaml)), [path]);
    }
}
