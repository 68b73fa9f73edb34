//! `disallowDefaultNamespace`: workloads do not run in the `default` namespace.
//!
//! The namespace comes from the request ([`Context::namespace`]), which is where the object will
//! actually live, whether or not its manifest names one.

use super::{Check, Definition, Params, ParamsError};
use crate::context::Context;
use crate::finding::{FieldPath, Finding};
use crate::subject::Subject;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "disallowDefaultNamespace",
    summary: "objects are not created in the default namespace",
    params: &[],
    parts: &[],
    build: DisallowDefaultNamespace::build,
}];

/// `disallowDefaultNamespace`: the request's namespace is not `default`.
#[derive(Debug)]
pub struct DisallowDefaultNamespace;

impl DisallowDefaultNamespace {
    fn build(_params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        Ok(Box::new(Self))
    }
}

impl Check for DisallowDefaultNamespace {
    fn evaluate(&self, ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        if ctx.namespace != "default" {
            return;
        }
        // Objects made from `generateName` have no name yet.
        let message = if ctx.name.is_empty() {
            format!("{} is in the default namespace", subject.kind)
        } else {
            format!("{} \"{}\" is in the default namespace", subject.kind, ctx.name)
        };
        out.push(Finding::new(
            FieldPath::new("metadata").field("namespace"),
            message,
            "create it in a namespace of its own: set metadata.namespace or use kubectl -n",
        ));
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use crate::checks::images::tests::{paths, run_in};

    const NAME: &str = "disallowDefaultNamespace";

    #[rstest]
    #[case::default_pod("default", "Pod", "spec: {containers: [{name: a}]}", 1)]
    #[case::default_deployment("default", "Deployment", "spec: {selector: {}, template: {}}", 1)]
    #[case::named_namespace("payments", "Pod", "spec: {containers: [{name: a}]}", 0)]
    #[case::default_prefix("default-apps", "Pod", "spec: {containers: [{name: a}]}", 0)]
    fn disallow_default_namespace(
        #[case] namespace: &str,
        #[case] kind: &str,
        #[case] yaml: &str,
        #[case] count: usize,
    ) {
        let f = run_in(namespace, NAME, "{}", kind, yaml);
        assert_eq!(f.len(), count, "{f:?}");
        if count == 1 {
            // The object's own metadata, even for a workload whose pod spec sits in a template.
            assert_eq!(paths(&f), ["metadata.namespace"]);
            assert_eq!(f[0].message, format!("{kind} \"web\" is in the default namespace"));
            assert!(!f[0].fix.is_empty());
        }
    }
}
