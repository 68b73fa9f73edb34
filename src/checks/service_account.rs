//! Service account checks.
//!
//! `disallowServiceAccountTokenAutomount`: pods opt out of the automatically mounted service
//! account token by setting `spec.automountServiceAccountToken: false`. Unset counts as a
//! violation: the pod then inherits the ServiceAccount's setting, which admission cannot see and
//! which defaults to mounting the token.
//!
//! `disallowDefaultServiceAccount`: pods run as a service account of their own, not the
//! namespace's `default` one, so that whatever is granted to one workload is not granted to every
//! pod that names no account (CIS EKS 4.1.5).

use super::{Check, Definition, Params, ParamsError};
use crate::context::Context;
use crate::finding::Finding;
use crate::subject::Subject;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[
    Definition {
        name: "disallowServiceAccountTokenAutomount",
        summary: "pods set automountServiceAccountToken: false",
        params: &[],
        parts: &[],
        build: DisallowServiceAccountTokenAutomount::build,
    },
    Definition {
        name: "disallowDefaultServiceAccount",
        summary: "pods name a service account other than the namespace's `default`",
        params: &[],
        parts: &[],
        build: DisallowDefaultServiceAccount::build,
    },
];

/// `disallowDefaultServiceAccount`: `spec.serviceAccountName` names an account other than
/// `default`.
#[derive(Debug)]
pub struct DisallowDefaultServiceAccount;

impl DisallowDefaultServiceAccount {
    fn build(_params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        Ok(Box::new(Self))
    }
}

const DEFAULT_SA_FIX: &str = "create a ServiceAccount for the workload and set serviceAccountName to it; \
     give the namespace's default ServiceAccount automountServiceAccountToken: false";

impl Check for DisallowDefaultServiceAccount {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        let spec = subject.spec;
        // The API server fills serviceAccountName from the deprecated serviceAccount when only
        // that is set, and with `default` when neither is.
        let named = [&spec.service_account_name, &spec.service_account]
            .into_iter()
            .find_map(|n| n.as_deref().filter(|n| !n.is_empty()));
        let message = match named {
            Some("default") => "the pod runs as the namespace's default service account",
            Some(_) => return,
            None => "the pod names no service account, so it runs as the namespace's default one",
        };
        out.push(Finding::new(subject.path().field("serviceAccountName"), message, DEFAULT_SA_FIX));
    }
}

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
    #[case::own("serviceAccountName: web, ", None)]
    #[case::deprecated_field("serviceAccount: web, ", None)]
    #[case::default("serviceAccountName: default, ", Some("runs as the namespace's default service account"))]
    #[case::deprecated_default("serviceAccount: default, ", Some("runs as the namespace's default"))]
    #[case::empty("serviceAccountName: '', ", Some("names no service account"))]
    #[case::unset("", Some("names no service account"))]
    fn default_service_account(#[case] field: &str, #[case] problem: Option<&str>) {
        let f = run(
            "disallowDefaultServiceAccount",
            "{}",
            "Pod",
            &format!("spec: {{{field}containers: [{{name: a}}]}}"),
        );
        match problem {
            None => assert!(f.is_empty(), "{f:?}"),
            Some(p) => {
                assert_eq!(paths(&f), ["spec.serviceAccountName"]);
                assert!(f[0].message.contains(p), "{}", f[0].message);
                assert!(f[0].fix.contains("serviceAccountName"));
            }
        }
    }

    #[test]
    fn default_service_account_of_a_template() {
        let f = run(
            "disallowDefaultServiceAccount",
            "{}",
            "CronJob",
            "spec: {schedule: '* * * * *', jobTemplate: {spec: {template: {spec: {containers: []}}}}}",
        );
        assert_eq!(paths(&f), ["spec.jobTemplate.spec.template.spec.serviceAccountName"]);
    }

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
