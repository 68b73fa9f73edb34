//! `requireResources`: containers declare the resource requests and limits the policy names.
//!
//! Containers and init containers are checked; ephemeral containers are exempt because the API
//! forbids resources on them. A request counts as set when the matching limit is set, because
//! the API server defaults a missing request to its limit when it creates the pod.

use std::borrow::Cow;

use serde::Deserialize;

use super::{Check, Definition, Params, ParamsError, parse_params};
use crate::context::Context;
use crate::finding::Finding;
use crate::subject::{ContainerKind, Subject};

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "requireResources",
    summary: "containers set the listed resource requests and limits (default: cpu+memory requests, memory limit)",
    params: &["requests", "limits"],
    parts: &[],
    build: RequireResources::build,
}];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Requests,
    Limits,
}

impl Side {
    fn field(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Limits => "limits",
        }
    }
}

/// One resource that must be present, with its finding text prepared at load.
#[derive(Debug)]
struct Requirement {
    side: Side,
    resource: String,
    /// `cpu request`, `memory limit`.
    what: String,
    fix: Cow<'static, str>,
}

/// `requireResources`: every container and init container sets each listed request and limit.
#[derive(Debug)]
pub struct RequireResources {
    required: Vec<Requirement>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourcesParams {
    requests: Option<Vec<String>>,
    limits: Option<Vec<String>>,
}

/// Whether `name` is a resource a container can request: the built-in names, or an extended
/// resource, which is always domain-qualified (`nvidia.com/gpu`).
fn is_resource_name(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || name.strip_prefix("hugepages-").is_some_and(|size| !size.is_empty())
        || name.split_once('/').is_some_and(|(domain, rest)| domain.contains('.') && !rest.is_empty())
}

impl RequireResources {
    fn build(params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        let p: ResourcesParams = parse_params(params)?;
        let requests = p.requests.unwrap_or_else(|| vec!["cpu".into(), "memory".into()]);
        let limits = p.limits.unwrap_or_else(|| vec!["memory".into()]);
        if requests.is_empty() && limits.is_empty() {
            return Err(ParamsError::new(
                "requests",
                "requests and limits are both empty: nothing to require",
            ));
        }
        let mut required = Vec::with_capacity(requests.len() + limits.len());
        for (side, names) in [(Side::Requests, requests), (Side::Limits, limits)] {
            for (i, resource) in names.into_iter().enumerate() {
                if !is_resource_name(&resource) {
                    return Err(ParamsError::new(
                        format!("{}[{i}]", side.field()),
                        format!(
                            "unknown resource `{resource}` (expected cpu, memory, ephemeral-storage, \
                             hugepages-<size> or a domain-qualified name such as example.com/gpu)"
                        ),
                    ));
                }
                if required.iter().any(|r: &Requirement| r.side == side && r.resource == resource) {
                    continue;
                }
                let noun = if side == Side::Requests { "request" } else { "limit" };
                let fix = match (side, resource.as_str()) {
                    (Side::Requests, "cpu") => Cow::Borrowed("set resources.requests.cpu, e.g. 100m"),
                    (Side::Requests, "memory") => Cow::Borrowed("set resources.requests.memory, e.g. 128Mi"),
                    (Side::Limits, "cpu") => Cow::Borrowed("set resources.limits.cpu, e.g. 500m"),
                    (Side::Limits, "memory") => {
                        Cow::Borrowed("set resources.limits.memory, e.g. 256Mi, at least the request")
                    }
                    _ => Cow::Owned(format!("set resources.{}[\"{resource}\"]", side.field())),
                };
                required.push(Requirement { side, what: format!("{resource} {noun}"), resource, fix });
            }
        }
        Ok(Box::new(Self { required }))
    }
}

impl Check for RequireResources {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        for c in subject.containers().filter(|c| c.kind != ContainerKind::EphemeralContainer) {
            let requests = c.resources.and_then(|r| r.requests.as_ref());
            let limits = c.resources.and_then(|r| r.limits.as_ref());
            for req in &self.required {
                let has = |m: Option<&std::collections::BTreeMap<String, _>>| {
                    m.is_some_and(|m| m.contains_key(&req.resource))
                };
                let set = match req.side {
                    Side::Requests => has(requests) || has(limits),
                    Side::Limits => has(limits),
                };
                if set {
                    continue;
                }
                let path = c.path(subject).field("resources").field(req.side.field());
                // Extended resource names hold `.` and `/`, which a dotted path cannot show.
                let path = if req.resource.contains(['.', '/']) {
                    path.key(&req.resource)
                } else {
                    path.field(&req.resource)
                };
                out.push(Finding::new(
                    path,
                    format!("{} \"{}\" has no {}", c.kind.noun(), c.name, req.what),
                    req.fix.clone(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use crate::checks::images::tests::{build_err, paths, run};

    const NAME: &str = "requireResources";

    fn pod(resources: &str) -> String {
        format!("spec: {{containers: [{{name: app, image: 'a:1', resources: {resources}}}]}}")
    }

    #[rstest]
    #[case::defaults_met("{}", "{requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 64Mi}}", &[])]
    #[case::defaults_nothing_set("{}", "{}", &[
        "spec.containers[0].resources.requests.cpu",
        "spec.containers[0].resources.requests.memory",
        "spec.containers[0].resources.limits.memory",
    ])]
    #[case::request_defaulted_from_limit("{}", "{requests: {cpu: 1}, limits: {memory: 1Gi}}", &[])]
    #[case::limit_not_defaulted_from_request("{}", "{requests: {cpu: 1, memory: 1Gi}}", &[
        "spec.containers[0].resources.limits.memory",
    ])]
    #[case::cpu_limit_required("{limits: [cpu, memory]}", "{limits: {memory: 1Gi, cpu: 1}}", &[])]
    #[case::cpu_limit_missing("{limits: [cpu]}", "{requests: {cpu: 1, memory: 1Gi}}", &[
        "spec.containers[0].resources.limits.cpu",
    ])]
    #[case::only_limits("{requests: [], limits: [memory]}", "{limits: {memory: 1Gi}}", &[])]
    #[case::extended_resource("{requests: [], limits: [nvidia.com/gpu]}", "{}", &[
        "spec.containers[0].resources.limits[\"nvidia.com/gpu\"]",
    ])]
    fn require_resources(#[case] params: &str, #[case] resources: &str, #[case] want: &[&str]) {
        let f = run(NAME, params, "Pod", &pod(resources));
        assert_eq!(paths(&f), want);
        assert!(f.iter().all(|f| f.message.starts_with("container \"app\" has no ") && !f.fix.is_empty()));
    }

    #[test]
    fn message_says_what_is_missing() {
        let f = run(NAME, "{requests: [], limits: [memory]}", "Pod", &pod("{}"));
        assert_eq!(f[0].message, "container \"app\" has no memory limit");
        assert!(f[0].fix.contains("resources.limits.memory"), "{}", f[0].fix);
    }

    #[test]
    fn init_containers_checked_ephemeral_exempt_under_a_statefulset() {
        let yaml = r"
spec:
  selector: {}
  serviceName: db
  template:
    spec:
      containers: [{name: db, resources: {requests: {cpu: 1, memory: 1Gi}, limits: {memory: 1Gi}}}]
      initContainers: [{name: migrate, resources: {limits: {memory: 1Gi}}}]
      ephemeralContainers: [{name: debug}]
";
        let f = run(NAME, "{}", "StatefulSet", yaml);
        assert_eq!(paths(&f), ["spec.template.spec.initContainers[0].resources.requests.cpu"]);
        assert_eq!(f[0].message, "init container \"migrate\" has no cpu request");
    }

    #[rstest]
    #[case::both_empty("{requests: [], limits: []}", "requests")]
    #[case::unknown_request("{requests: [cpu, memroy]}", "requests[1]")]
    #[case::unknown_limit("{limits: [gpu]}", "limits[0]")]
    #[case::not_a_list("{limits: memory}", "limits")]
    fn rejects_bad_params(#[case] params: &str, #[case] field: &str) {
        assert_eq!(build_err(NAME, params).field, field);
    }
}
