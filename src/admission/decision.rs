//! The decision: modes, exemptions, the unchanged-UPDATE skip, and which violations an answer
//! shows and which it only counts. Its rendering as an AdmissionResponse (deny message,
//! warnings, audit annotations) is [`super::render`]'s.

use std::collections::BTreeMap;

use super::exemptions::Exemptions;
use super::review::AdmissionRequest;
use crate::context::{Context, Operation};
use crate::object::{self, DecodeError, Decoded, Workload};
use crate::policy::{Mode, PolicySet, Violation};
use crate::subject::Subject;

/// Namespace label that sets the namespace's mode.
pub const MODE_LABEL: &str = "podguard.dev/mode";

/// What to answer when an object cannot be read as a pod spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnError {
    /// Refuse, naming the field.
    #[default]
    Deny,
    /// Admit with a warning.
    Allow,
}

/// Cluster-wide decision settings (flags / Helm values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Mode of namespaces without a `podguard.dev/mode` label.
    pub default_mode: Mode,
    /// Honour the namespace label (turn off where namespace labels are not guarded by RBAC).
    pub namespace_mode_label: bool,
    /// Exempt namespaces, users, runtime classes.
    pub exemptions: Exemptions,
    /// What to do with unreadable objects.
    pub on_error: OnError,
    /// podguard's own policy ConfigMaps, judged at admission (with `--configmaps`).
    pub policy_configmaps: Option<super::policies::PolicyConfigMaps>,
    /// Keep only the violations an answer shows ([`MAX_SHOWN`] per mode) and count the others
    /// in [`Decision::omitted`]: the webhook, which answers with no more, need not hold
    /// thousands. `podguard check` keeps them all for its reports.
    pub keep_only_shown: bool,
    /// Fill [`Decision::applied`] (costs a second pass over the policies' match blocks).
    pub record_applied: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_mode: Mode::Enforce,
            namespace_mode_label: true,
            exemptions: Exemptions::default(),
            on_error: OnError::Deny,
            policy_configmaps: None,
            keep_only_shown: false,
            record_applied: false,
        }
    }
}

/// How a request was handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Policies were evaluated.
    Evaluated,
    /// Admitted without evaluation, and why (DELETE, not a pod kind, exempt, unchanged spec).
    Skipped(String),
    /// The object could not be read as its kind.
    Unreadable(DecodeError),
    /// Refused for this reason, not for violations (a policy ConfigMap that does not load).
    Refused(String),
}

/// The verdict for one request, with every violation at its effective mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the object is admitted.
    pub allowed: bool,
    /// How it was handled.
    pub outcome: Outcome,
    /// Every violation, mode lowered to the namespace's.
    pub violations: Vec<Violation>,
    /// Mode of the namespace (label, else cluster default).
    pub namespace_mode: Mode,
    /// Violations found but not kept (see [`Settings::keep_only_shown`]), counted by policy,
    /// rule and effective mode.
    pub omitted: Vec<Omitted>,
    /// The policies that applied to the object (their match block matched), when
    /// [`Settings::record_applied`] asks for them: `podguard test` tells "passed" from "did not
    /// apply" with it.
    pub applied: Vec<std::sync::Arc<str>>,
}

/// How many violations of one policy rule at one effective mode were found but not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Omitted {
    /// The policy.
    pub policy: std::sync::Arc<str>,
    /// The rule.
    pub rule: std::sync::Arc<str>,
    /// The effective mode.
    pub mode: Mode,
    /// How many.
    pub count: usize,
}

impl Decision {
    pub(super) fn skipped(reason: impl Into<String>) -> Self {
        Self {
            allowed: true,
            outcome: Outcome::Skipped(reason.into()),
            violations: Vec::new(),
            namespace_mode: Mode::Enforce,
            omitted: Vec::new(),
            applied: Vec::new(),
        }
    }

    /// Violations with the given effective mode.
    pub fn with_mode(&self, mode: Mode) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.mode == mode)
    }

    /// The first [`MAX_SHOWN`] violations with `mode`, and how many more there are (kept or
    /// only counted).
    pub(super) fn shown(&self, mode: Mode) -> (impl Iterator<Item = &Violation>, usize) {
        let counted: usize = self.omitted.iter().filter(|o| o.mode == mode).map(|o| o.count).sum();
        // Merges can leave fewer than MAX_SHOWN kept while others are counted: every counted
        // one is "more", and so is every kept one past the first MAX_SHOWN.
        let more = counted + self.with_mode(mode).count().saturating_sub(MAX_SHOWN);
        (self.with_mode(mode).take(MAX_SHOWN), more)
    }

    /// Every violation found, kept or only counted.
    pub fn found(&self) -> usize {
        self.violations.len() + self.omitted.iter().map(|o| o.count).sum::<usize>()
    }
}

/// Violations listed per mode in one answer: the refusal's lines, the warnings, the audit
/// annotation. A pod with 7,000 privileged containers would otherwise get a 78 MB answer (the
/// API server shows only the first warnings anyway); the rest are summarised, and counted in full
/// in the metrics. With messages bounded too, an answer stays under 256 KiB.
pub const MAX_SHOWN: usize = 50;

/// The mode of a namespace: its `podguard.dev/mode` label when honoured and valid, else the
/// cluster default.
pub fn namespace_mode(settings: &Settings, labels: Option<&BTreeMap<String, String>>) -> Mode {
    settings
        .namespace_mode_label
        .then(|| labels?.get(MODE_LABEL)?.parse().ok())
        .flatten()
        .unwrap_or(settings.default_mode)
}

/// Annotations whose change on UPDATE can change a verdict even when the spec did not.
const SECURITY_ANNOTATION_PREFIXES: &[&str] =
    &["container.apparmor.security.beta.kubernetes.io/", "seccomp.security.alpha.kubernetes.io/"];

fn security_annotations_equal(a: &Workload, b: &Workload) -> bool {
    let pick = |w: &Workload| {
        let meta = Subject::of(w).meta;
        meta.annotations
            .iter()
            .flatten()
            .filter(|(k, _)| SECURITY_ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    pick(a) == pick(b)
}

/// Why an UPDATE is admitted without evaluation, if it is.
///
/// Controllers update workloads all the time without touching what their pods will run: the
/// deployment controller scales old ReplicaSets to zero and rewrites their annotations, the
/// garbage collector removes finalizers, people label and annotate. Judging those like a CREATE
/// would freeze every object admitted before a policy existed, including the old ReplicaSet
/// that a rollout fixing a violation has to scale down. So an UPDATE is judged only when the
/// pod spec or a security annotation of the pod (template) changed, and then judged whole, like
/// a CREATE. An object already being deleted is never refused: its controllers only wind it
/// down (none creates pods from a template with `deletionTimestamp` set).
fn unchanged_update(req: &AdmissionRequest, kind: &str, new: &Workload) -> Option<String> {
    if Subject::of(new).object_meta.deletion_timestamp.is_some() {
        return Some(format!("{kind} is being deleted"));
    }
    // An old object that cannot be read gives no ground to skip: the new one is judged.
    let old = match object::decode_request(&req.kind.group, kind, req.old_object.as_deref()?.get()) {
        Ok(Decoded::Workload(old)) => old,
        _ => return None,
    };
    let unchanged = Subject::of(&old).spec == Subject::of(new).spec && security_annotations_equal(&old, new);
    unchanged.then(|| {
        if kind == "Pod" {
            "Pod update does not change its spec".to_owned()
        } else {
            format!("{kind} update does not change its pod template")
        }
    })
}

/// Evaluates one admission request against `policies`.
///
/// `namespace_labels` are the labels of the request's namespace when known.
pub fn evaluate(
    policies: &PolicySet,
    settings: &Settings,
    req: &AdmissionRequest,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Decision {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Decision::skipped(format!("{} is not evaluated", req.operation.as_str()));
    }
    let sub_resource = req.sub_resource.as_deref().filter(|s| !s.is_empty());
    if sub_resource.is_some_and(|s| s != "ephemeralcontainers") {
        return Decision::skipped(format!(
            "subresource {} is not evaluated",
            sub_resource.unwrap_or_default()
        ));
    }
    let kind = req.kind.kind.as_str();
    if kind == "ConfigMap"
        && req.kind.group.is_empty()
        && let Some(places) = &settings.policy_configmaps
    {
        return super::policies::review(places, req)
            .unwrap_or_else(|| Decision::skipped("not a policy ConfigMap"));
    }
    let Some(raw) = req.object.as_deref() else {
        return Decision::skipped("the request carries no object");
    };
    let unreadable = |e: DecodeError| Decision {
        allowed: settings.on_error == OnError::Allow,
        outcome: Outcome::Unreadable(e),
        violations: Vec::new(),
        namespace_mode: settings.default_mode,
        omitted: Vec::new(),
        applied: Vec::new(),
    };
    let workload = match object::decode_request(&req.kind.group, kind, raw.get()) {
        Ok(Decoded::Workload(w)) => w,
        Ok(Decoded::Other) => return Decision::skipped(format!("kind {kind} holds no pod spec")),
        Err(e) => return unreadable(e),
    };
    let subject = Subject::of(&workload);
    let namespace =
        req.namespace.as_deref().or(subject.object_meta.namespace.as_deref()).unwrap_or("default");
    if let Some(reason) = settings.exemptions.reason(
        namespace,
        &req.user_info.username,
        subject.spec.runtime_class_name.as_deref(),
    ) {
        return Decision::skipped(reason);
    }
    if req.operation == Operation::Update
        && sub_resource.is_none()
        && let Some(reason) = unchanged_update(req, kind, &workload)
    {
        return Decision::skipped(reason);
    }
    let ns_mode = namespace_mode(settings, namespace_labels);
    let ctx = Context {
        operation: req.operation,
        namespace,
        namespace_labels,
        name: req.name.as_deref().or(subject.object_meta.name.as_deref()).unwrap_or_default(),
        kind,
        sub_resource,
        user: &req.user_info,
        dry_run: req.dry_run.unwrap_or(false),
        object: Some(raw),
        old_object: req.old_object.as_deref(),
    };
    let mut violations: Vec<Violation> = Vec::new();
    let mut omitted: Vec<Omitted> = Vec::new();
    let mut kept = [0usize; 3];
    let mut same = SameFindings::default();
    let merge = policies.shares_rule_names();
    policies.evaluate_each(&ctx, &subject, |mut v| {
        v.mode = v.mode.min(ns_mode);
        let fits = !settings.keep_only_shown || kept[v.mode as usize] < MAX_SHOWN;
        // Only a rule whose name another policy uses can find what another policy found.
        if merge && policies.is_shared_rule_name(&v.rule) {
            if let Some(i) = same.kept(&violations, &v) {
                let before = violations[i].mode;
                violations[i].absorb(v);
                let after = violations[i].mode;
                kept[before as usize] -= 1;
                kept[after as usize] += 1;
                return;
            }
            // Only-counted findings are known by a hash that includes the message; nearly every
            // review has none, and pays nothing for them.
            if !fits || !same.omitted.is_empty() {
                let whole = SameFindings::whole_key(&v);
                if let Some(&o) = same.omitted.get(&whole) {
                    // The same finding as one only counted: counted once, at the stronger mode;
                    // kept and shown when that mode still has room.
                    if v.mode > omitted[o].mode {
                        omitted[o].count -= 1;
                        let weaker = omitted[o].policy.clone();
                        if fits {
                            same.omitted.remove(&whole);
                            let mut v = v;
                            v.also.push(weaker);
                            kept[v.mode as usize] += 1;
                            violations.push(v);
                        } else {
                            let at = count_omitted(&mut omitted, v);
                            same.omitted.insert(whole, at);
                        }
                    }
                    return;
                }
                if !fits {
                    let at = count_omitted(&mut omitted, v);
                    same.omitted.insert(whole, at);
                    return;
                }
            }
        }
        if fits {
            kept[v.mode as usize] += 1;
            violations.push(v);
        } else {
            count_omitted(&mut omitted, v);
        }
    });
    omitted.retain(|o| o.count > 0);
    let enforced =
        violations.iter().any(|v| v.mode == Mode::Enforce) || omitted.iter().any(|o| o.mode == Mode::Enforce);
    let applied = if settings.record_applied {
        policies
            .policies()
            .iter()
            .filter(|p| p.matcher.matches(&ctx, &subject))
            .map(|p| p.name.clone())
            .collect()
    } else {
        Vec::new()
    };
    Decision {
        allowed: !enforced,
        outcome: Outcome::Evaluated,
        violations,
        namespace_mode: ns_mode,
        omitted,
        applied,
    }
}

/// Counts `v` among the violations found but not kept; returns the index of its count.
fn count_omitted(omitted: &mut Vec<Omitted>, v: Violation) -> usize {
    match omitted.iter().position(|o| o.policy == v.policy && o.rule == v.rule && o.mode == v.mode) {
        Some(i) => {
            omitted[i].count += 1;
            i
        }
        None => {
            omitted.push(Omitted { policy: v.policy, rule: v.rule, mode: v.mode, count: 1 });
            omitted.len() - 1
        }
    }
}

/// Finds the [same finding](Violation::same_finding) as a new violation among those already
/// found. A review has a few dozen at most, compared one by one; past [`SameFindings::LINEAR`]
/// kept ones (a pod of thousands of containers has tens of thousands) they are found through a
/// hash of rule and field, built then. Violations only counted are known by a 64-bit hash of
/// rule, field and message alone: what keeping only the shown ones saves is holding them.
#[derive(Default)]
struct SameFindings {
    /// Hash of rule and field -> indexes of kept violations, for those indexed so far.
    index: std::collections::HashMap<u64, Vec<usize>>,
    indexed: usize,
    /// Hash of an only-counted finding -> the index of its count in the omitted list.
    omitted: std::collections::HashMap<u64, usize>,
}

impl SameFindings {
    /// Kept violations compared one by one up to this many.
    const LINEAR: usize = 64;

    /// A fixed-key hasher: the hashes only group candidates within one decision.
    const HASHER: std::hash::BuildHasherDefault<std::hash::DefaultHasher> =
        std::hash::BuildHasherDefault::new();

    /// Rule and field: candidates, compared whole.
    fn key(v: &Violation) -> u64 {
        std::hash::BuildHasher::hash_one(&Self::HASHER, (&v.rule, &v.path))
    }

    /// Rule, field and message: the finding itself.
    fn whole_key(v: &Violation) -> u64 {
        std::hash::BuildHasher::hash_one(&Self::HASHER, (&v.rule, &v.path, &v.message))
    }

    fn kept(&mut self, kept: &[Violation], v: &Violation) -> Option<usize> {
        if kept.len() <= Self::LINEAR {
            return kept.iter().position(|k| k.same_finding(v));
        }
        while let Some(k) = kept.get(self.indexed) {
            self.index.entry(Self::key(k)).or_default().push(self.indexed);
            self.indexed += 1;
        }
        self.index.get(&Self::key(v))?.iter().copied().find(|&i| kept[i].same_finding(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{labels, pod, privileged_policy, privileged_rule, request, set};
    use rstest::rstest;

    #[test]
    fn compliant_pod_is_allowed_without_findings() {
        let d = evaluate(
            &set(vec![privileged_policy("p", None)]),
            &Settings::default(),
            &request("", "Pod", Operation::Create, pod(&[false])),
            None,
        );
        assert!(d.allowed);
        assert_eq!(d.outcome, Outcome::Evaluated);
        assert!(d.violations.is_empty());
    }

    #[test]
    fn enforce_violations_deny_with_one_line_each() {
        let d = evaluate(
            &set(vec![privileged_policy("p", None)]),
            &Settings::default(),
            &request("", "Pod", Operation::Create, pod(&[true, false, true])),
            None,
        );
        assert!(!d.allowed);
        let r = d.response("uid-1");
        let status = r.status.unwrap();
        assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            status.message,
            "[p/privileged] spec.containers[0].securityContext.privileged: container \"c0\" is privileged (set it to false)\n\
             [p/privileged] spec.containers[2].securityContext.privileged: container \"c2\" is privileged (set it to false)"
        );
    }

    #[rstest]
    #[case::same_mode(None, None, "[a/privileged, b/privileged]", Mode::Enforce)]
    #[case::second_stronger(Some(Mode::Warn), None, "[b/privileged, a/privileged]", Mode::Enforce)]
    #[case::first_stronger(None, Some(Mode::Audit), "[a/privileged, b/privileged]", Mode::Enforce)]
    #[case::both_warn(Some(Mode::Warn), Some(Mode::Warn), "[a/privileged, b/privileged]", Mode::Warn)]
    fn two_policies_finding_the_same_thing_give_one_line_naming_both(
        #[case] a: Option<Mode>,
        #[case] b: Option<Mode>,
        #[case] named: &str,
        #[case] mode: Mode,
    ) {
        let d = evaluate(
            &set(vec![privileged_policy("a", a), privileged_policy("b", b)]),
            &Settings::default(),
            &request("", "Pod", Operation::Create, pod(&[true, false, true])),
            None,
        );
        let lines: Vec<String> = d.violations.iter().map(Violation::line).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        for (line, c) in lines.iter().zip(["c0", "c2"]) {
            assert!(line.starts_with(named), "{line}");
            assert!(line.contains(&format!("container \"{c}\" is privileged")), "{line}");
        }
        assert!(d.violations.iter().all(|v| v.mode == mode));
        assert_eq!(d.allowed, mode != Mode::Enforce);
    }

    #[test]
    fn many_findings_of_two_policies_merge_through_the_index_and_answer_alike_kept_or_counted() {
        let s = set(vec![privileged_policy("w", Some(Mode::Warn)), privileged_policy("e", None)]);
        let req = request("", "Pod", Operation::Create, pod(&[true; 300]));
        let all = evaluate(&s, &Settings::default(), &req, None);
        assert_eq!(all.violations.len(), 300);
        assert!(
            all.violations.iter().all(|v| v.mode == Mode::Enforce && *v.policy == *"e" && v.also.len() == 1)
        );
        let lean = evaluate(&s, &Settings { keep_only_shown: true, ..Settings::default() }, &req, None);
        assert_eq!(lean.found(), 300);
        assert_eq!(lean.review_json("u"), all.review_json("u"));
    }

    #[test]
    fn a_finding_only_counted_at_warn_and_found_again_at_enforce_is_shown_in_the_refusal() {
        // `r` (warn) finds 50 things with rule `x` first, so its `privileged` finding is only
        // counted; `b` (enforce) then finds the same: the refusal must show it.
        let s = set(vec![
            privileged_rule("r", Some(Mode::Warn), "x"),
            privileged_policy("r2", Some(Mode::Warn)),
            privileged_policy("b", None),
        ]);
        let req = request("", "Pod", Operation::Create, pod(&[true; MAX_SHOWN]));
        let all = evaluate(&s, &Settings::default(), &req, None);
        let lean = evaluate(&s, &Settings { keep_only_shown: true, ..Settings::default() }, &req, None);
        assert!(!lean.allowed);
        let message = lean.response("u").status.unwrap().message;
        assert_eq!(message.lines().count(), MAX_SHOWN, "{message}");
        assert!(message.lines().all(|l| l.starts_with("[b/privileged, r2/privileged]")), "{message}");
        assert_eq!(lean.review_json("u"), all.review_json("u"));
    }

    #[test]
    fn merged_findings_still_fill_the_shown_slots_once() {
        let settings = Settings { keep_only_shown: true, ..Settings::default() };
        let d = evaluate(
            &set(vec![privileged_policy("a", None), privileged_policy("b", None)]),
            &settings,
            &request("", "Pod", Operation::Create, pod(&[true; MAX_SHOWN + 5])),
            None,
        );
        assert_eq!(d.violations.len(), MAX_SHOWN);
        assert!(d.violations.iter().all(|v| v.also.len() == 1));
    }

    #[rstest]
    #[case::policy_warn(Some(Mode::Warn), Mode::Enforce, None, Mode::Warn)]
    #[case::policy_audit(Some(Mode::Audit), Mode::Enforce, None, Mode::Audit)]
    #[case::cluster_warn(None, Mode::Warn, None, Mode::Warn)]
    #[case::namespace_audit(None, Mode::Enforce, Some("audit"), Mode::Audit)]
    #[case::namespace_cannot_raise(Some(Mode::Warn), Mode::Enforce, Some("enforce"), Mode::Warn)]
    #[case::namespace_overrides_cluster(None, Mode::Warn, Some("enforce"), Mode::Enforce)]
    #[case::bad_label_is_cluster_default(None, Mode::Warn, Some("strict"), Mode::Warn)]
    fn effective_mode_is_the_weaker(
        #[case] policy: Option<Mode>,
        #[case] cluster: Mode,
        #[case] ns_label: Option<&str>,
        #[case] expected: Mode,
    ) {
        let settings = Settings { default_mode: cluster, ..Settings::default() };
        let ns = ns_label.map(|m| labels(&[(MODE_LABEL, m)]));
        let d = evaluate(
            &set(vec![privileged_policy("p", policy)]),
            &settings,
            &request("", "Pod", Operation::Create, pod(&[true])),
            ns.as_ref(),
        );
        assert_eq!(d.violations[0].mode, expected);
        assert_eq!(d.allowed, expected != Mode::Enforce);
    }

    #[test]
    fn namespace_label_ignored_when_turned_off() {
        let settings = Settings { namespace_mode_label: false, ..Settings::default() };
        let ns = labels(&[(MODE_LABEL, "audit")]);
        let d = evaluate(
            &set(vec![privileged_policy("p", None)]),
            &settings,
            &request("", "Pod", Operation::Create, pod(&[true])),
            Some(&ns),
        );
        assert!(!d.allowed);
    }

    #[test]
    fn deployment_paths_sit_under_the_template() {
        let dep = serde_json::json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
            "spec":{"selector":{},"template":{"spec": pod(&[true])["spec"]}}});
        let d = evaluate(
            &set(vec![privileged_policy("p", None)]),
            &Settings::default(),
            &request("apps", "Deployment", Operation::Create, dep),
            None,
        );
        assert_eq!(
            d.violations[0].path.as_str(),
            "spec.template.spec.containers[0].securityContext.privileged"
        );
    }

    #[rstest]
    #[case::namespace(Exemptions { namespaces: ["team-a".to_owned()].into(), ..Default::default() })]
    #[case::user(Exemptions { usernames: ["alice".to_owned()].into(), ..Default::default() })]
    #[case::runtime_class(Exemptions { runtime_classes: ["kata".to_owned()].into(), ..Default::default() })]
    fn exemptions_skip_evaluation(#[case] exemptions: Exemptions) {
        let mut p = pod(&[true]);
        p["spec"]["runtimeClassName"] = "kata".into();
        let settings = Settings { exemptions, ..Settings::default() };
        let d = evaluate(
            &set(vec![privileged_policy("p", None)]),
            &settings,
            &request("", "Pod", Operation::Create, p),
            None,
        );
        assert!(d.allowed);
        assert!(matches!(d.outcome, Outcome::Skipped(_)));
    }

    #[test]
    fn pod_update_without_spec_change_is_skipped_but_spec_change_is_evaluated() {
        let s = set(vec![privileged_policy("p", None)]);
        let mut old = pod(&[true]);
        old["metadata"]["labels"] = serde_json::json!({"new": "label"});
        let d = evaluate(&s, &Settings::default(), &update("", "Pod", old, pod(&[true])), None);
        assert_eq!(
            (d.allowed, d.outcome),
            (true, Outcome::Skipped("Pod update does not change its spec".into()))
        );

        let mut old = pod(&[true]);
        old["spec"]["containers"][0]["image"] = "nginx:0".into();
        assert!(!evaluate(&s, &Settings::default(), &update("", "Pod", old, pod(&[true])), None).allowed);
    }

    /// An UPDATE request of `kind` from `old` to `new`.
    fn update(group: &str, kind: &str, old: serde_json::Value, new: serde_json::Value) -> AdmissionRequest {
        let mut req = request(group, kind, Operation::Update, new);
        req.old_object = Some(serde_json::value::RawValue::from_string(old.to_string()).unwrap());
        req
    }

    /// `kind` (a workload kind) holding `pod`'s spec and metadata as its pod template.
    fn workload_of(kind: &str, pod: &serde_json::Value) -> serde_json::Value {
        let template = serde_json::json!({"metadata": {"labels": {"app": "web"}}, "spec": pod["spec"]});
        let selector = serde_json::json!({"matchLabels": {"app": "web"}});
        let spec = match kind {
            "PodTemplate" => return serde_json::json!({"metadata": {"name": "web"}, "template": template}),
            "CronJob" => {
                serde_json::json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}})
            }
            "Job" => serde_json::json!({"template": template}),
            "StatefulSet" => {
                serde_json::json!({"serviceName": "web", "selector": selector, "template": template})
            }
            "ReplicationController" => {
                serde_json::json!({"replicas": 3, "selector": {"app": "web"}, "template": template})
            }
            _ => serde_json::json!({"replicas": 3, "selector": selector, "template": template}),
        };
        serde_json::json!({"metadata": {"name": "web"}, "spec": spec})
    }

    /// The pod template inside a workload built by [`workload_of`].
    fn template_of<'a>(kind: &str, w: &'a mut serde_json::Value) -> &'a mut serde_json::Value {
        match kind {
            "PodTemplate" => &mut w["template"],
            "CronJob" => &mut w["spec"]["jobTemplate"]["spec"]["template"],
            _ => &mut w["spec"]["template"],
        }
    }

    /// Every kind podguard evaluates except Pod: the ones holding a pod template.
    fn template_kinds() -> impl Iterator<Item = &'static &'static str> {
        crate::object::KINDS.iter().filter(|k| **k != "Pod")
    }

    #[test]
    fn workload_update_that_leaves_the_template_alone_is_skipped_for_every_kind() {
        let s = set(vec![privileged_policy("p", None)]);
        for kind in template_kinds() {
            let group = crate::object::group_of(kind).unwrap();
            let old = workload_of(kind, &pod(&[true]));
            // What controllers and people change without touching the pods: replicas, the
            // object's labels, annotations and finalizers, the template's plain labels.
            let mut new = old.clone();
            new["metadata"]["labels"] = serde_json::json!({"touched": "yes"});
            new["metadata"]["annotations"] = serde_json::json!({"deployment.kubernetes.io/revision": "2"});
            new["metadata"]["finalizers"] = serde_json::json!(["example.com/hold"]);
            if *kind != "PodTemplate" && *kind != "CronJob" && *kind != "Job" {
                new["spec"]["replicas"] = 0.into();
            }
            template_of(kind, &mut new)["metadata"]["labels"]["pod-template-hash"] = "abc".into();
            let d = evaluate(&s, &Settings::default(), &update(group, kind, old.clone(), new), None);
            assert_eq!(
                (d.allowed, &d.outcome),
                (true, &Outcome::Skipped(format!("{kind} update does not change its pod template"))),
                "{kind}"
            );

            // A changed template is judged whole, like a CREATE: the unchanged privileged
            // container is reported too.
            let mut new = old.clone();
            template_of(kind, &mut new)["spec"]["containers"][0]["image"] = "nginx:2".into();
            let d = evaluate(&s, &Settings::default(), &update(group, kind, old.clone(), new), None);
            assert!(!d.allowed, "{kind}: image change of a violating template must be denied");
            assert_eq!(d.outcome, Outcome::Evaluated);

            // A security annotation of the template is part of what the pods run.
            let mut new = old.clone();
            template_of(kind, &mut new)["metadata"]["annotations"] =
                serde_json::json!({"container.apparmor.security.beta.kubernetes.io/c0": "unconfined"});
            let d = evaluate(&s, &Settings::default(), &update(group, kind, old, new), None);
            assert_eq!((d.allowed, d.outcome), (false, Outcome::Evaluated), "{kind}");
        }
    }

    #[test]
    fn scaling_a_violating_replicaset_to_zero_is_allowed_in_an_enforce_namespace() {
        let s = set(vec![privileged_policy("p", None)]);
        let old = workload_of("ReplicaSet", &pod(&[true]));
        let mut new = old.clone();
        new["spec"]["replicas"] = 0.into();
        let ns = labels(&[(MODE_LABEL, "enforce")]);
        let d = evaluate(&s, &Settings::default(), &update("apps", "ReplicaSet", old, new), Some(&ns));
        assert!(d.allowed);
        assert!(d.violations.is_empty());
    }

    #[test]
    fn deployment_update_to_another_violating_image_is_denied() {
        let s = set(vec![privileged_policy("p", None)]);
        let old = workload_of("Deployment", &pod(&[true]));
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2".into();
        let d = evaluate(&s, &Settings::default(), &update("apps", "Deployment", old, new), None);
        assert!(!d.allowed);
        assert_eq!(
            d.deny_message(),
            "[p/privileged] spec.template.spec.containers[0].securityContext.privileged: container \"c0\" is privileged (set it to false)"
        );
    }

    #[test]
    fn a_violating_object_being_deleted_may_drop_its_finalizer() {
        let s = set(vec![privileged_policy("p", None)]);
        for (group, kind, object) in
            [("apps", "Deployment", workload_of("Deployment", &pod(&[true]))), ("", "Pod", pod(&[true]))]
        {
            let mut old = object;
            old["metadata"]["deletionTimestamp"] = "2026-12-01T10:00:00Z".into();
            old["metadata"]["finalizers"] = serde_json::json!(["foregroundDeletion"]);
            let mut new = old.clone();
            new["metadata"]["finalizers"] = serde_json::json!([]);
            // Even with a template that differs (an update racing the deletion).
            template_or_spec(kind, &mut new)["containers"][0]["image"] = "nginx:3".into();
            let d = evaluate(&s, &Settings::default(), &update(group, kind, old, new), None);
            assert_eq!((d.allowed, d.outcome), (true, Outcome::Skipped(format!("{kind} is being deleted"))));
        }
    }

    fn template_or_spec<'a>(kind: &str, w: &'a mut serde_json::Value) -> &'a mut serde_json::Value {
        if kind == "Pod" { &mut w["spec"] } else { &mut template_of(kind, w)["spec"] }
    }

    #[test]
    fn update_whose_old_object_is_unreadable_or_missing_is_judged() {
        let s = set(vec![privileged_policy("p", None)]);
        let new = workload_of("ReplicaSet", &pod(&[true]));
        let mut broken = new.clone();
        broken["spec"]["replicas"] = "three".into();
        let d = evaluate(&s, &Settings::default(), &update("apps", "ReplicaSet", broken, new.clone()), None);
        assert_eq!((d.allowed, d.outcome), (false, Outcome::Evaluated));
        let d =
            evaluate(&s, &Settings::default(), &request("apps", "ReplicaSet", Operation::Update, new), None);
        assert_eq!((d.allowed, d.outcome), (false, Outcome::Evaluated));
    }

    #[test]
    fn create_with_a_deletion_timestamp_is_still_judged() {
        let mut p = pod(&[true]);
        p["metadata"]["deletionTimestamp"] = "2026-12-01T10:00:00Z".into();
        let d = evaluate(
            &set(vec![privileged_policy("p", None)]),
            &Settings::default(),
            &request("", "Pod", Operation::Create, p),
            None,
        );
        assert!(!d.allowed);
    }

    #[test]
    fn legacy_ephemeral_containers_body_is_judged() {
        // What a 1.16–1.21 API server sends for `kubectl debug`: kind EphemeralContainers.
        let body = serde_json::json!({"apiVersion": "v1", "kind": "EphemeralContainers",
            "metadata": {"name": "web", "namespace": "team-a"},
            "ephemeralContainers": [{"name": "debugger", "image": "busybox", "securityContext": {"privileged": true}}]});
        let mut req =
            update("", "EphemeralContainers", serde_json::json!({"metadata": {"name": "web"}}), body);
        req.sub_resource = Some("ephemeralcontainers".into());
        let d = evaluate(&set(vec![privileged_policy("p", None)]), &Settings::default(), &req, None);
        assert!(!d.allowed);
        assert_eq!(d.violations.len(), 1);
        assert_eq!(d.violations[0].path.as_str(), "ephemeralContainers[0].securityContext.privileged");
        // Outside that subresource's request, the kind is nothing podguard reads.
        let d = evaluate(
            &set(vec![privileged_policy("p", None)]),
            &Settings::default(),
            &request("apps", "EphemeralContainers", Operation::Create, serde_json::json!({})),
            None,
        );
        assert!(matches!(d.outcome, Outcome::Skipped(_)));
    }

    #[test]
    fn ephemeral_container_update_is_evaluated() {
        let mut p = pod(&[false]);
        p["spec"]["ephemeralContainers"] = serde_json::json!([{"name": "debug", "image": "busybox", "securityContext": {"privileged": true}}]);
        let mut req = request("", "Pod", Operation::Update, p.clone());
        req.sub_resource = Some("ephemeralcontainers".into());
        req.old_object = Some(serde_json::value::RawValue::from_string(pod(&[false]).to_string()).unwrap());
        let d = evaluate(&set(vec![privileged_policy("p", None)]), &Settings::default(), &req, None);
        assert!(!d.allowed);
        assert_eq!(d.violations[0].path.as_str(), "spec.ephemeralContainers[0].securityContext.privileged");
    }

    #[rstest]
    #[case::deny(OnError::Deny, false)]
    #[case::allow(OnError::Allow, true)]
    fn unreadable_object_follows_on_error(#[case] on_error: OnError, #[case] allowed: bool) {
        let bad = serde_json::json!({"spec": {"containers": [{"name": "a", "securityContext": {"runAsUser": "x"}}]}});
        let settings = Settings { on_error, ..Settings::default() };
        let r = evaluate(&set(vec![]), &settings, &request("", "Pod", Operation::Create, bad), None)
            .response("u");
        assert_eq!(r.allowed, allowed);
        let text = if allowed { r.warnings.join("") } else { r.status.unwrap().message };
        assert!(text.contains("spec.containers[0].securityContext.runAsUser"), "{text}");
    }

    #[rstest]
    #[case::delete(Operation::Delete, "Pod", None)]
    #[case::connect(Operation::Connect, "Pod", None)]
    #[case::other_kind(Operation::Create, "Service", None)]
    #[case::status_subresource(Operation::Update, "Pod", Some("status"))]
    fn not_evaluated(#[case] op: Operation, #[case] kind: &str, #[case] sub: Option<&str>) {
        let mut req = request("", kind, op, pod(&[true]));
        req.sub_resource = sub.map(str::to_owned);
        let d = evaluate(&set(vec![privileged_policy("p", None)]), &Settings::default(), &req, None);
        assert!(d.allowed);
        assert!(matches!(d.outcome, Outcome::Skipped(_)), "{:?}", d.outcome);
    }

    #[test]
    fn keeping_only_the_shown_violations_changes_nothing_in_the_answer() {
        let s = set(vec![
            privileged_rule("e", None, "e"),
            privileged_rule("w", Some(Mode::Warn), "w"),
            privileged_rule("a", Some(Mode::Audit), "a"),
        ]);
        let req = request("", "Pod", Operation::Create, pod(&[true; 700]));
        let all = evaluate(&s, &Settings::default(), &req, None);
        let lean = evaluate(&s, &Settings { keep_only_shown: true, ..Settings::default() }, &req, None);
        assert_eq!(lean.violations.len(), 3 * MAX_SHOWN);
        assert_eq!((all.found(), lean.found()), (2_100, 2_100));
        assert_eq!(lean.omitted.len(), 3, "one count per policy rule and mode: {:?}", lean.omitted);
        assert_eq!(lean.allowed, all.allowed);
        assert_eq!(lean.review_json("u"), all.review_json("u"));
        assert_eq!(lean.response("u"), all.response("u"));
        // Caps are per mode: warn-mode findings never crowd out the enforce ones that refuse.
        let s = set(vec![privileged_rule("w", Some(Mode::Warn), "w"), privileged_rule("e", None, "e")]);
        let lean = evaluate(&s, &Settings { keep_only_shown: true, ..Settings::default() }, &req, None);
        assert!(!lean.allowed);
    }
}
