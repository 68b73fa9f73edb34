//! The compiled `match` block of a policy: namespace globs, label selectors, kinds and
//! operations, all validated and prepared at load so a request only compares.

use std::collections::BTreeMap;

use super::{LabelSelector, Match, SelectorOperator};
use crate::context::{Context, Operation};
use crate::object::KINDS;
use crate::subject::Subject;

/// A namespace pattern: `*` matches any run of characters, `?` one character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Validates a pattern.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("empty namespace pattern".into());
        }
        Ok(Self(pattern.to_owned()))
    }

    /// Whether `s` matches the pattern.
    pub fn matches(&self, s: &str) -> bool {
        glob_match(self.0.as_bytes(), s.as_bytes())
    }
}

/// Iterative glob matching with single-star backtracking: linear in practice, no recursion, so
/// a hostile pattern cannot blow the stack.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A compiled Kubernetes label selector.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector(LabelSelector);

impl Selector {
    /// Validates a selector (operators and their values, as the API server does).
    pub fn new(sel: &LabelSelector) -> Result<Self, (String, String)> {
        for (i, r) in sel.match_expressions.iter().enumerate() {
            let field = format!("matchExpressions[{i}].values");
            match r.operator {
                SelectorOperator::In | SelectorOperator::NotIn if r.values.is_empty() => {
                    return Err((field, format!("operator {:?} needs at least one value", r.operator)));
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist if !r.values.is_empty() => {
                    return Err((field, format!("operator {:?} takes no values", r.operator)));
                }
                _ => {}
            }
        }
        Ok(Self(sel.clone()))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.0.match_labels.iter().all(|(k, v)| get(k) == Some(v))
            && self.0.match_expressions.iter().all(|r| match r.operator {
                SelectorOperator::In => get(&r.key).is_some_and(|v| r.values.contains(v)),
                SelectorOperator::NotIn => get(&r.key).is_none_or(|v| !r.values.contains(v)),
                SelectorOperator::Exists => get(&r.key).is_some(),
                SelectorOperator::DoesNotExist => get(&r.key).is_none(),
            })
    }
}

/// A compiled `match` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    namespaces: Vec<Glob>,
    exclude_namespaces: Vec<Glob>,
    namespace_selector: Option<Selector>,
    object_selector: Option<Selector>,
    /// Bit i set = `KINDS[i]` matches.
    kinds: u16,
    create: bool,
    update: bool,
}

impl Matcher {
    /// Validates and compiles `m`. Errors are `(field under spec.match, reason)`.
    pub fn compile(m: &Match) -> Result<Self, (String, String)> {
        let globs = |list: &[String], name: &str| {
            list.iter()
                .enumerate()
                .map(|(i, p)| Glob::new(p).map_err(|e| (format!("{name}[{i}]"), e)))
                .collect::<Result<Vec<_>, _>>()
        };
        let selector = |s: &Option<LabelSelector>, name: &str| {
            s.as_ref().map(|s| Selector::new(s).map_err(|(f, e)| (format!("{name}.{f}"), e))).transpose()
        };
        let mut kinds = 0u16;
        for (i, k) in m.kinds.iter().enumerate() {
            let Some(bit) = KINDS.iter().position(|known| known == k) else {
                return Err((
                    format!("kinds[{i}]"),
                    format!("unknown kind `{k}`; expected one of {}", KINDS.join(", ")),
                ));
            };
            kinds |= 1 << bit;
        }
        if m.kinds.is_empty() {
            kinds = u16::MAX;
        }
        let (mut create, mut update) = (m.operations.is_empty(), m.operations.is_empty());
        for (i, op) in m.operations.iter().enumerate() {
            match op {
                Operation::Create => create = true,
                Operation::Update => update = true,
                other => {
                    return Err((
                        format!("operations[{i}]"),
                        format!("podguard evaluates CREATE and UPDATE only, not {}", other.as_str()),
                    ));
                }
            }
        }
        Ok(Self {
            namespaces: globs(&m.namespaces, "namespaces")?,
            exclude_namespaces: globs(&m.exclude_namespaces, "excludeNamespaces")?,
            namespace_selector: selector(&m.namespace_selector, "namespaceSelector")?,
            object_selector: selector(&m.object_selector, "objectSelector")?,
            kinds,
            create,
            update,
        })
    }

    /// Whether the policy applies to `subject` in this request. Without known namespace labels
    /// (offline, or before the namespace cache has the namespace), a namespaceSelector sees an
    /// empty label set.
    pub fn matches(&self, ctx: &Context<'_>, subject: &Subject<'_>) -> bool {
        let op_ok = match ctx.operation {
            Operation::Create => self.create,
            Operation::Update => self.update,
            _ => false,
        };
        let kind_ok =
            KINDS.iter().position(|k| *k == subject.kind).is_some_and(|b| self.kinds & (1 << b) != 0);
        op_ok
            && kind_ok
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|g| g.matches(ctx.namespace)))
            && !self.exclude_namespaces.iter().any(|g| g.matches(ctx.namespace))
            && self.namespace_selector.as_ref().is_none_or(|s| s.matches(ctx.namespace_labels))
            && self.object_selector.as_ref().is_none_or(|s| s.matches(subject.meta.labels.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::exact("prod", "prod", true)]
    #[case::star_suffix("prod-*", "prod-eu", true)]
    #[case::star_empty("prod-*", "prod-", true)]
    #[case::star_no_match("prod-*", "staging", false)]
    #[case::question("team-?", "team-a", true)]
    #[case::question_too_long("team-?", "team-ab", false)]
    #[case::middle_star("a*c", "abbbc", true)]
    #[case::middle_star_no("a*c", "abbbd", false)]
    #[case::only_star("*", "anything", true)]
    fn globs(#[case] pattern: &str, #[case] input: &str, #[case] expected: bool) {
        assert_eq!(Glob::new(pattern).unwrap().matches(input), expected);
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"tier":"prod"},"matchExpressions":[
                {"key":"team","operator":"In","values":["a","b"]},
                {"key":"legacy","operator":"DoesNotExist"},
                {"key":"zone","operator":"NotIn","values":["x"]}]}"#,
        )
        .unwrap();
        let s = Selector::new(&sel).unwrap();
        assert!(s.matches(Some(&labels(&[("tier", "prod"), ("team", "a")]))));
        assert!(!s.matches(Some(&labels(&[("tier", "prod"), ("team", "c")]))));
        assert!(!s.matches(Some(&labels(&[("tier", "prod"), ("team", "a"), ("legacy", "1")]))));
        assert!(!s.matches(Some(&labels(&[("tier", "prod"), ("team", "a"), ("zone", "x")]))));
        assert!(!s.matches(None));
    }

    #[test]
    fn bad_selector_and_kind_are_named() {
        let m: Match =
            serde_json::from_str(r#"{"objectSelector":{"matchExpressions":[{"key":"a","operator":"In"}]}}"#)
                .unwrap();
        assert_eq!(Matcher::compile(&m).unwrap_err().0, "objectSelector.matchExpressions[0].values");
        let m: Match = serde_json::from_str(r#"{"kinds":["Pod","Service"]}"#).unwrap();
        assert_eq!(Matcher::compile(&m).unwrap_err().0, "kinds[1]");
        let m: Match = serde_json::from_str(r#"{"operations":["DELETE"]}"#).unwrap();
        assert_eq!(Matcher::compile(&m).unwrap_err().0, "operations[0]");
    }
}
