//! Compiled policies and the immutable [`PolicySet`] every request evaluates against.
//!
//! Compilation validates everything a document can get wrong beyond its YAML shape (unknown
//! checks, bad params, rule names, match blocks) and prepares checks and matchers once. A
//! [`PolicySet`] is never changed after it is built; sources swap in a new one atomically.

use std::collections::HashSet;
use std::sync::Arc;

use super::load::{LoadError, Origin};
use super::matcher::Matcher;
use super::{Control, Mode, Policy, Severity, Violation};
use crate::checks::{self, Check};
use crate::compliance::RuleControls;
use crate::context::Context;
use crate::subject::Subject;

/// One compiled rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// Rule name.
    pub name: Arc<str>,
    /// What it runs.
    pub check: Box<dyn Check>,
    /// The compliance controls its findings carry.
    pub controls: RuleControls,
}

/// A policy ready to evaluate.
#[derive(Debug)]
pub struct CompiledPolicy {
    /// Policy name.
    pub name: Arc<str>,
    /// Severity of its violations.
    pub severity: Severity,
    /// Its own mode (`None` = enforce, lowered by namespace/cluster mode).
    pub mode: Option<Mode>,
    /// Every compliance control a violation of the policy may carry (each rule's are in
    /// [`CompiledRule::controls`]).
    pub controls: crate::compliance::Controls,
    /// Where it was loaded from.
    pub origin: Origin,
    /// Its document index in that origin.
    pub document: usize,
    /// When it applies.
    pub matcher: Matcher,
    /// Its rules, in document order.
    pub rules: Vec<CompiledRule>,
    /// The document as written (for listings and `/policies`).
    pub source: Policy,
}

/// An error found while compiling one document: where it is, the field, the reason.
pub type CompileError = (Place, String, String);

/// Where in a document an error is: the rule it is about, by name, and text to find its line by
/// (inside that rule when there is one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// The rule's name.
    pub rule: Option<String>,
    /// Text on the line to report.
    pub needle: Option<String>,
}

impl Place {
    fn at(needle: impl Into<String>) -> Self {
        Self { rule: None, needle: Some(needle.into()) }
    }

    fn rule(rule: &str, needle: Option<String>) -> Self {
        Self { rule: Some(rule.to_owned()), needle }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl CompiledPolicy {
    /// Validates and compiles one document. Returns every error found.
    pub fn compile(policy: Policy, origin: Origin, document: usize) -> Result<Self, Vec<CompileError>> {
        let mut errors: Vec<CompileError> = Vec::new();
        let name = &policy.metadata.name;
        if !is_dns_label(name) {
            errors.push((
                Place::at("name:"),
                "metadata.name".into(),
                format!(
                    "`{name}` is not a valid policy name: use lower-case letters, digits and '-' (at most 63)"
                ),
            ));
        }
        let matcher = Matcher::compile(&policy.spec.match_).map_err(|(f, reason)| {
            let needle = f.split(['.', '[']).next().map(|k| format!("{k}:"));
            (Place { rule: None, needle }, format!("spec.match.{f}"), reason)
        });
        let matcher = matcher.map_err(|e| errors.push(e)).ok();
        if policy.spec.rules.is_empty() {
            errors.push((
                Place::at("rules:"),
                "spec.rules".into(),
                "a policy needs at least one rule".into(),
            ));
        }
        for (j, c) in policy.spec.controls.iter().enumerate() {
            if let Err(reason) = known_control(c) {
                errors.push((Place::at("controls:"), format!("spec.controls[{j}]"), reason));
            }
        }
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(policy.spec.rules.len());
        let mut read_params: HashSet<&str> = HashSet::new();
        let mut has_cel = false;
        for (i, rule) in policy.spec.rules.iter().enumerate() {
            let field = |f: &str| format!("spec.rules[{i}]{f}");
            let here = Place::rule(&rule.name, None);
            if !is_dns_label(&rule.name) && !rule.name.is_empty() {
                errors.push((
                    here.clone(),
                    field(".name"),
                    format!(
                        "`{}` is not a valid rule name: use lower-case letters, digits and '-'",
                        rule.name
                    ),
                ));
            }
            if rule.name.is_empty() {
                errors.push((Place::at("rules:"), field(".name"), "every rule needs a name".into()));
            }
            if !seen.insert(rule.name.as_str()) {
                errors.push((
                    here.clone(),
                    field(".name"),
                    format!("rule name `{}` is used twice in this policy", rule.name),
                ));
            }
            let check = match (&rule.check, &rule.cel) {
                (Some(_), Some(_)) => {
                    Err((here.clone(), field(""), "a rule has either `check` or `cel`, not both".into()))
                }
                (None, None) => Err((
                    here.clone(),
                    field(""),
                    "a rule needs `check` (a built-in) or `cel` (an expression)".into(),
                )),
                (Some(name), None) => {
                    if rule.foreach.is_some() || rule.message.is_some() || rule.message_expression.is_some() {
                        errors.push((
                            here.clone(),
                            field(""),
                            "`foreach`, `message` and `messageExpression` apply to `cel` rules only".into(),
                        ));
                    }
                    match checks::lookup(name) {
                        None => Err((
                            Place::rule(&rule.name, Some(format!("check: {name}"))),
                            field(".check"),
                            format!(
                                "unknown check `{name}`; built-in checks are: {}",
                                checks::all().map(|d| d.name).collect::<Vec<_>>().join(", ")
                            ),
                        )),
                        Some(def) => {
                            read_params.extend(def.params.iter().copied());
                            (def.build)(&policy.spec.params).map_err(|e| {
                                let key = e.field.split(['.', '[']).next().unwrap_or_default();
                                let needle =
                                    if key.is_empty() { "params:".to_owned() } else { format!("{key}:") };
                                let f = if e.field.is_empty() {
                                    "spec.params".to_owned()
                                } else {
                                    format!("spec.params.{}", e.field)
                                };
                                (
                                    Place::at(needle),
                                    f,
                                    format!("{} (check `{name}` in rule `{}`)", e.reason, rule.name),
                                )
                            })
                        }
                    }
                }
                (None, Some(_)) => {
                    has_cel = true;
                    crate::cel::compile(rule.cel_source(), &policy.spec.params).map_err(|e| {
                        let (needle, f) = match e.field {
                            crate::cel::Field::Cel => ("cel:", ".cel"),
                            crate::cel::Field::MessageExpression => {
                                ("messageExpression:", ".messageExpression")
                            }
                        };
                        (Place::rule(&rule.name, Some(needle.into())), field(f), e.to_string())
                    })
                }
            };
            for (j, c) in rule.controls.iter().enumerate() {
                if let Err(reason) = known_control(c) {
                    errors.push((here.clone(), field(&format!(".controls[{j}]")), reason));
                }
            }
            match check {
                Ok(check) => {
                    let mut declared = policy.spec.controls.clone();
                    declared
                        .extend(rule.controls.iter().filter(|c| !policy.spec.controls.contains(c)).cloned());
                    let def = rule.check.as_deref().and_then(checks::lookup);
                    let controls = RuleControls::new(&declared, def.map(|d| (d, check.active_parts())));
                    rules.push(CompiledRule { name: Arc::from(rule.name.as_str()), check, controls });
                }
                Err(e) => errors.push(e),
            }
        }
        // Params are shared by a policy's rules; a key that no rule reads is most likely a typo.
        // CEL can read any key, so a policy with CEL rules accepts all.
        let all_checks_known =
            policy.spec.rules.iter().all(|r| r.check.as_deref().is_none_or(|c| checks::lookup(c).is_some()));
        if !has_cel && all_checks_known {
            for key in policy.spec.params.keys() {
                if !read_params.contains(key.as_str()) {
                    errors.push((
                        Place::at(format!("{key}:")),
                        format!("spec.params.{key}"),
                        format!("no rule of this policy reads `{key}`; check the spelling or remove it"),
                    ));
                }
            }
        }
        let mut controls: Vec<Control> = Vec::new();
        for c in rules.iter().flat_map(|r| r.controls.all()) {
            if !controls.contains(&c) {
                controls.push(c);
            }
        }
        match matcher {
            Some(matcher) if errors.is_empty() => Ok(Self {
                name: Arc::from(name.as_str()),
                severity: policy.spec.severity,
                mode: policy.spec.mode,
                controls: controls.into(),
                origin,
                document,
                matcher,
                rules,
                source: policy,
            }),
            _ => Err(errors),
        }
    }
}

/// A control of a framework podguard has a catalogue of must be one of its controls (a typo in
/// an audit report is worse than a missing entry); other frameworks are the author's own.
fn known_control(c: &Control) -> Result<(), String> {
    let Some(f) = crate::compliance::framework(&c.framework) else { return Ok(()) };
    if f.control(&c.id).is_some() {
        return Ok(());
    }
    let near = f
        .controls
        .iter()
        // Of equally near ids, the one sharing the longest start, then the nearest where they
        // part (`4.2.6` means `4.2.5`, not `4.1.6` or `4.2.1`).
        .map(|k| {
            let shared = k.id.bytes().zip(c.id.bytes()).take_while(|(a, b)| a == b).count();
            let at = |s: &str| s.as_bytes().get(shared).copied().unwrap_or(0);
            let apart = at(&k.id).abs_diff(at(&c.id));
            (strsim::levenshtein(&k.id, &c.id), std::cmp::Reverse(shared), apart, &k.id)
        })
        .min()
        .filter(|(d, ..)| *d <= 2)
        .map(|(.., id)| format!(" (did you mean `{id}`?)"))
        .unwrap_or_default();
    Err(format!(
        "{} {} has no control `{}`{near}; its catalogue is in docs/controls.md",
        f.name, f.version, c.id
    ))
}

/// Longest violation message, in characters; a longer one (an image reference of kilobytes, a
/// CEL message built from the object) is cut so that one finding cannot make an answer huge.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// Longest fix, in characters.
pub const MAX_FIX_CHARS: usize = 512;

/// `text` cut to `max` characters, with `…` when cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max
        && let Some((cut, _)) = text.char_indices().nth(max)
    {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The policies in force: immutable, shared by every request.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Arc<CompiledPolicy>>,
    /// Rule names that two or more policies use, so that they can find the same thing (the Pod
    /// Security levels' `pod-security`): only their findings are looked at for merging.
    shared_rule_names: Vec<Arc<str>>,
}

impl PolicySet {
    /// A set of already-compiled policies with distinct names (see [`PolicySet::merge`]).
    pub fn new(policies: Vec<Arc<CompiledPolicy>>) -> Self {
        let mut names: Vec<(&Arc<str>, &str)> =
            policies.iter().flat_map(|p| p.rules.iter().map(move |r| (&r.name, &*p.name))).collect();
        names.sort_unstable();
        let mut shared_rule_names: Vec<Arc<str>> = names
            .windows(2)
            .filter(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1)
            .map(|w| w[0].0.clone())
            .collect();
        shared_rule_names.dedup();
        Self { policies, shared_rule_names }
    }

    /// Whether two policies of the set have a rule of the same name.
    pub fn shares_rule_names(&self) -> bool {
        !self.shared_rule_names.is_empty()
    }

    /// Whether `rule` is the name of a rule in two or more policies of the set.
    pub fn is_shared_rule_name(&self, rule: &str) -> bool {
        self.shared_rule_names.iter().any(|r| **r == *rule)
    }

    /// Merges the policies of several sources in order. A name defined again by a later source is
    /// an error reported against that later source; the first definition stays.
    pub fn merge<I>(sources: I) -> (Self, Vec<LoadError>)
    where
        I: IntoIterator<Item = Vec<Arc<CompiledPolicy>>>,
    {
        let mut policies: Vec<Arc<CompiledPolicy>> = Vec::new();
        let mut errors = Vec::new();
        for source in sources {
            for p in source {
                if let Some(first) = policies.iter().find(|q| q.name == p.name) {
                    errors.push(LoadError::on_name(
                        &p,
                        format!(
                            "policy `{}` is already defined by {}; this definition is ignored",
                            p.name, first.origin
                        ),
                    ));
                } else {
                    policies.push(p);
                }
            }
        }
        (Self::new(policies), errors)
    }

    /// The policies, in load order.
    pub fn policies(&self) -> &[Arc<CompiledPolicy>] {
        &self.policies
    }

    /// Whether the set holds no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Every violation of every matching policy for one subject. Modes are the policies' own
    /// (unset = enforce); [`crate::admission`] lowers them to the namespace mode.
    ///
    /// ```
    /// use podguard::policy::{load_str, Origin, PolicySet};
    /// # use podguard::{context::*, object::*, subject::Subject};
    /// let text = "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {name: no-default}\n\
    ///             spec: {rules: [{name: ns, check: disallowDefaultNamespace}]}\n";
    /// # let Ok(policies) = load_str(&Origin::File { path: "p.yaml".into() }, text) else { return };
    /// let set = PolicySet::new(policies);
    /// # let Decoded::Workload(pod) = decode("", "Pod", r#"{"spec":{"containers":[]}}"#).unwrap() else { panic!() };
    /// # let user = UserInfo::default();
    /// # let ctx = Context { operation: Operation::Create, namespace: "default", namespace_labels: None,
    /// #     name: "web", kind: "Pod", sub_resource: None, user: &user, dry_run: false, object: None, old_object: None };
    /// let violations = set.evaluate(&ctx, &Subject::of(&pod));
    /// assert_eq!(violations.len(), 1);
    /// ```
    pub fn evaluate(&self, ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Violation> {
        let mut out = Vec::new();
        self.evaluate_each(ctx, subject, |v| out.push(v));
        out
    }

    /// [`PolicySet::evaluate`], handing each violation to `sink` as it is found instead of
    /// collecting them: a caller that keeps only some need not hold them all.
    pub fn evaluate_each(&self, ctx: &Context<'_>, subject: &Subject<'_>, mut sink: impl FnMut(Violation)) {
        let mut findings = Vec::new();
        for p in &self.policies {
            if !p.matcher.matches(ctx, subject) {
                continue;
            }
            for rule in &p.rules {
                rule.check.evaluate(ctx, subject, &mut findings);
                for f in findings.drain(..) {
                    sink(Violation {
                        policy: p.name.clone(),
                        rule: rule.name.clone(),
                        severity: p.severity,
                        controls: rule.controls.of(f.part).clone(),
                        mode: p.mode.unwrap_or(Mode::Enforce),
                        path: f.path,
                        message: bounded(f.message, MAX_MESSAGE_CHARS),
                        fix: match f.fix {
                            std::borrow::Cow::Owned(fix) => {
                                std::borrow::Cow::Owned(bounded(fix, MAX_FIX_CHARS))
                            }
                            borrowed => borrowed,
                        },
                        also: Vec::new(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pod, privileged_policy, set, workload};

    #[test]
    fn messages_and_fixes_are_cut_to_their_limits() {
        let mut p = pod(&[true]);
        p["spec"]["containers"][0]["name"] = "x".repeat(5_000).into();
        let w = workload("Pod", &serde_yaml_ng::to_string(&p).unwrap());
        let user = crate::context::UserInfo::default();
        let ctx = Context {
            operation: crate::context::Operation::Create,
            namespace: "ns",
            namespace_labels: None,
            name: "web",
            kind: "Pod",
            sub_resource: None,
            user: &user,
            dry_run: false,
            object: None,
            old_object: None,
        };
        let v = set(vec![privileged_policy("p", None)]).evaluate(&ctx, &Subject::of(&w));
        assert_eq!(v[0].message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(v[0].message.ends_with("xx…"), "{}", &v[0].message[1000..]);
        assert_eq!(bounded("short".into(), 10), "short");
        assert_eq!(bounded("é".repeat(20), 10), format!("{}…", "é".repeat(10)));
    }

    #[test]
    fn controls_of_known_frameworks_must_exist_with_a_near_suggestion() {
        let c = |f: &str, id: &str| Control { framework: f.into(), id: id.into() };
        assert_eq!(known_control(&c("cis-eks-1.8.0", "4.2.1")), Ok(()));
        assert_eq!(known_control(&c("my-own-framework", "anything")), Ok(()));
        let e = known_control(&c("cis-eks-1.8.0", "4.2.6")).unwrap_err();
        assert!(e.contains("has no control `4.2.6` (did you mean `4.2.5`?)"), "{e}");
        let e = known_control(&c("nist-800-53-r5", "XX-99")).unwrap_err();
        assert!(!e.contains("did you mean"), "{e}");
    }
}
