//! Test-only builders: small objects and policies that read like prose in tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::admission::review::{AdmissionRequest, GroupVersionKind};
use crate::checks::Check;
use crate::context::{Context, Operation, UserInfo};
use crate::object::{Decoded, Workload, decode, group_of};
use crate::policy::matcher::Matcher;
use crate::policy::set::CompiledRule;
use crate::policy::{CompiledPolicy, Finding, Match, Mode, Origin, Policy, PolicySet, Severity};
use crate::subject::Subject;

/// Flags every container whose `securityContext.privileged` is true: a stand-in for the real
/// checks so decision tests do not depend on them.
#[derive(Debug)]
pub struct FlagPrivileged;

impl Check for FlagPrivileged {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        for c in subject.containers() {
            if c.security_context.and_then(|s| s.privileged) == Some(true) {
                out.push(Finding::new(
                    c.path(subject).field("securityContext").field("privileged"),
                    format!("container {:?} is privileged", c.name),
                    "set it to false",
                ));
            }
        }
    }
}

/// A policy `name` with one rule `privileged` running [`FlagPrivileged`]. Two of them in a set
/// find the same things, which a decision merges: see [`privileged_rule`] for distinct ones.
pub fn privileged_policy(name: &str, mode: Option<Mode>) -> Arc<CompiledPolicy> {
    privileged_rule(name, mode, "privileged")
}

/// A policy `name` with one rule `rule` running [`FlagPrivileged`].
pub fn privileged_rule(name: &str, mode: Option<Mode>, rule: &str) -> Arc<CompiledPolicy> {
    let source: Policy = serde_json::from_value(serde_json::json!({
        "apiVersion": "podguard.dev/v1", "kind": "Policy", "metadata": {"name": name},
        "spec": {"rules": [{"name": rule, "check": "test"}]}
    }))
    .unwrap();
    Arc::new(CompiledPolicy {
        name: name.into(),
        severity: Severity::High,
        mode,
        controls: Default::default(),
        origin: Origin::File { path: format!("{name}.yaml") },
        document: 0,
        matcher: Matcher::compile(&Match::default()).unwrap(),
        rules: vec![CompiledRule {
            name: rule.into(),
            check: Box::new(FlagPrivileged),
            controls: Default::default(),
        }],
        source,
    })
}

/// A set of the given policies.
pub fn set(policies: Vec<Arc<CompiledPolicy>>) -> PolicySet {
    PolicySet::new(policies)
}

/// An admission request for `object` (JSON) of `group`/`kind`.
pub fn request(group: &str, kind: &str, op: Operation, object: serde_json::Value) -> AdmissionRequest {
    let raw = |v: &serde_json::Value| serde_json::value::RawValue::from_string(v.to_string()).unwrap();
    AdmissionRequest {
        uid: "uid-1".into(),
        kind: GroupVersionKind { group: group.into(), version: "v1".into(), kind: kind.into() },
        resource: Default::default(),
        sub_resource: None,
        name: Some("web".into()),
        namespace: Some("team-a".into()),
        operation: op,
        user_info: UserInfo { username: "alice".into(), ..Default::default() },
        object: Some(raw(&object)),
        old_object: None,
        dry_run: None,
    }
}

/// A Pod with one container per `privileged` flag.
pub fn pod(privileged: &[bool]) -> serde_json::Value {
    let containers: Vec<_> = privileged
        .iter()
        .enumerate()
        .map(|(i, p)| serde_json::json!({"name": format!("c{i}"), "image": "nginx:1", "securityContext": {"privileged": p}}))
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": containers}})
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Decodes a workload of `kind` written in YAML (its group chosen from the kind).
pub fn workload(kind: &str, yaml: &str) -> Workload {
    let value: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
    match decode(group_of(kind).unwrap(), kind, &value.to_string()).unwrap() {
        Decoded::Workload(w) => w,
        Decoded::Other => panic!("{kind} is not a workload"),
    }
}

/// Runs `check` on `workload` as the CREATE of a `kind` called `name` in `namespace` by an
/// unnamed user, with no raw object (what a built-in check sees).
pub fn run_check(
    check: &dyn Check,
    workload: &Workload,
    namespace: &str,
    name: &str,
    kind: &str,
) -> Vec<Finding> {
    let user = UserInfo::default();
    let ctx = Context {
        operation: Operation::Create,
        namespace,
        namespace_labels: None,
        name,
        kind,
        sub_resource: None,
        user: &user,
        dry_run: false,
        object: None,
        old_object: None,
    };
    let mut out = Vec::new();
    check.evaluate(&ctx, &Subject::of(workload), &mut out);
    out
}
