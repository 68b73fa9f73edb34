//! `requiredLabels`: the pod carries the listed labels, optionally with values that match a
//! pattern.
//!
//! Labels are read from the pod metadata: the Pod's own, or the pod template's for workloads,
//! since those are the labels the running pods (and the tools that select them) will see.

use std::borrow::Cow;

use regex::Regex;
use serde::Deserialize;

use super::{Check, Definition, Params, ParamsError, parse_params};
use crate::context::Context;
use crate::finding::Finding;
use crate::subject::Subject;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[Definition {
    name: "requiredLabels",
    summary: "pods carry the listed labels, with values matching their patterns",
    params: &["labels"],
    parts: &[],
    build: RequiredLabels::build,
}];

/// One required label, compiled.
#[derive(Debug)]
struct Required {
    key: String,
    /// The pattern as written, for messages.
    pattern: Option<String>,
    /// `^(?:pattern)$`: the whole value must match.
    regex: Option<Regex>,
    fix: String,
}

/// `requiredLabels`: each label in `params.labels` is present on the pod and matches its pattern.
#[derive(Debug)]
pub struct RequiredLabels {
    labels: Vec<Required>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LabelsParams {
    labels: Option<Vec<LabelParam>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LabelParam {
    key: String,
    #[serde(default)]
    pattern: Option<String>,
}

/// Why `key` is not a valid label key (`[prefix/]name`), if it is not.
fn label_key_error(key: &str) -> Option<&'static str> {
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    let name_ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !name_ok {
        return Some(
            "the name part must be 1-63 letters, digits, `-`, `_` or `.`, starting and ending with a \
             letter or digit",
        );
    }
    let prefix_ok = prefix.is_none_or(|p| {
        (1..=253).contains(&p.len())
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    if !prefix_ok {
        return Some("the prefix before `/` must be a lower-case DNS subdomain such as example.com");
    }
    None
}

/// The one-line reason of a regex error, whose display is a multi-line diagram ending in
/// `error: <reason>`.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.lines().rev().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(reason) => reason.to_owned(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

impl RequiredLabels {
    fn build(params: &Params) -> Result<Box<dyn Check>, ParamsError> {
        let p: LabelsParams = parse_params(params)?;
        let listed = p
            .labels
            .ok_or_else(|| ParamsError::new("labels", "is required: list the labels as {key, pattern}"))?;
        if listed.is_empty() {
            return Err(ParamsError::new("labels", "must list at least one label"));
        }
        let mut labels = Vec::with_capacity(listed.len());
        for (i, LabelParam { key, pattern }) in listed.into_iter().enumerate() {
            if let Some(reason) = label_key_error(&key) {
                return Err(ParamsError::new(format!("labels[{i}].key"), format!("`{key}`: {reason}")));
            }
            let regex = pattern
                .as_deref()
                .map(|p| {
                    // Compile the pattern as written first, so the error quotes the user's text
                    // rather than the anchored form.
                    Regex::new(p).and_then(|_| Regex::new(&format!("^(?:{p})$"))).map_err(|e| {
                        ParamsError::new(
                            format!("labels[{i}].pattern"),
                            format!("`{p}` is not a valid regular expression: {}", regex_reason(&e)),
                        )
                    })
                })
                .transpose()?;
            let fix = match &pattern {
                Some(p) => format!("add the label \"{key}\" with a value matching {p}"),
                None => format!("add the label \"{key}\""),
            };
            labels.push(Required { key, pattern, regex, fix });
        }
        Ok(Box::new(Self { labels }))
    }
}

impl Check for RequiredLabels {
    fn evaluate(&self, _ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        let present = subject.meta.labels.as_ref();
        for req in &self.labels {
            let (message, fix) = match present.and_then(|l| l.get(&req.key)) {
                None => (format!("the pod has no label \"{}\"", req.key), Cow::Owned(req.fix.clone())),
                Some(value) => match (&req.regex, &req.pattern) {
                    (Some(re), Some(pattern)) if !re.is_match(value) => (
                        format!(
                            "the pod label \"{}\" is \"{value}\", which does not match {pattern}",
                            req.key
                        ),
                        Cow::Owned(format!("set it to a value matching {pattern}")),
                    ),
                    _ => continue,
                },
            };
            out.push(Finding::new(subject.meta_path().field("labels").key(&req.key), message, fix));
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use crate::checks::images::tests::{build_err, paths, run};

    const NAME: &str = "requiredLabels";
    const TEAM: &str = "labels: [{key: team, pattern: '[a-z][a-z0-9-]*'}, {key: app.kubernetes.io/name}]";

    #[rstest]
    #[case::both_present("{team: payments, app.kubernetes.io/name: api}", &[])]
    #[case::missing_team("{app.kubernetes.io/name: api}", &["metadata.labels[\"team\"]"])]
    #[case::no_labels_at_all("{}", &["metadata.labels[\"team\"]", "metadata.labels[\"app.kubernetes.io/name\"]"])]
    #[case::value_not_matching("{team: Payments, app.kubernetes.io/name: api}", &["metadata.labels[\"team\"]"])]
    #[case::partial_match_is_not_enough("{team: 'payments team', app.kubernetes.io/name: api}", &[
        "metadata.labels[\"team\"]",
    ])]
    #[case::any_value_without_pattern("{team: a, app.kubernetes.io/name: ''}", &[])]
    fn required_labels(#[case] labels: &str, #[case] want: &[&str]) {
        let f = run(NAME, TEAM, "Pod", &format!("metadata: {{labels: {labels}}}\nspec: {{containers: []}}"));
        assert_eq!(paths(&f), want);
    }

    #[test]
    fn messages_say_what_is_wrong_and_how_to_fix_it() {
        let f = run(NAME, TEAM, "Pod", "metadata: {labels: {team: Payments}}\nspec: {containers: []}");
        assert_eq!(
            f[0].message,
            "the pod label \"team\" is \"Payments\", which does not match [a-z][a-z0-9-]*"
        );
        assert_eq!(f[0].fix, "set it to a value matching [a-z][a-z0-9-]*");
        assert_eq!(f[1].message, "the pod has no label \"app.kubernetes.io/name\"");
        assert_eq!(f[1].fix, "add the label \"app.kubernetes.io/name\"");
    }

    #[test]
    fn workloads_are_judged_by_their_pod_template_labels() {
        let yaml = r"
metadata: {labels: {team: payments}}
spec:
  selector: {}
  template:
    metadata: {labels: {app.kubernetes.io/name: api}}
    spec: {containers: []}
";
        let f = run(NAME, TEAM, "Deployment", yaml);
        assert_eq!(paths(&f), ["spec.template.metadata.labels[\"team\"]"]);
    }

    #[rstest]
    #[case::missing("{}", "labels")]
    #[case::empty("labels: []", "labels")]
    #[case::bad_regex("labels: [{key: a}, {key: team, pattern: '[a-z'}]", "labels[1].pattern")]
    #[case::bad_key("labels: [{key: 'my team'}]", "labels[0].key")]
    #[case::bad_prefix("labels: [{key: 'Example.com/team'}]", "labels[0].key")]
    #[case::empty_key("labels: [{key: ''}]", "labels[0].key")]
    #[case::key_missing("labels: [{pattern: x}]", "labels[0]")]
    #[case::unknown_field("labels: [{key: a, value: b}]", "labels[0].value")]
    fn rejects_bad_params(#[case] params: &str, #[case] field: &str) {
        let e = build_err(NAME, params);
        assert_eq!(e.field, field, "{e}");
    }

    #[test]
    fn bad_pattern_reason_is_one_line_about_the_pattern_as_written() {
        let e = build_err(NAME, "labels: [{key: team, pattern: '[a-z'}]");
        assert_eq!(e.reason, "`[a-z` is not a valid regular expression: unclosed character class");
    }
}
