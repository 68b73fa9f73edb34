//! YAML text -> compiled policies, with errors that say where: origin (file, or ConfigMap and key),
//! document index, line, field, reason.
//!
//! No file IO here: [`crate::source`] reads files and ConfigMaps and hands their text in. A text
//! loads whole or not at all: one broken document refuses its whole source (a file then keeps its
//! last good version; a ConfigMap contributes nothing, see `source::configmaps`).

use std::fmt;
use std::sync::Arc;

use super::set::CompiledPolicy;
use super::{API_VERSION, KIND, Policy};

/// Where a policy text came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Origin {
    /// The built-in library compiled into the binary.
    Builtin {
        /// File name in `policies/`.
        file: String,
    },
    /// A local file.
    File {
        /// Path as given.
        path: String,
    },
    /// A data key of a ConfigMap.
    ConfigMap {
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
        /// Data key.
        key: String,
    },
    /// A data key of a ConfigMap manifest in a local file: the form policies take in a GitOps
    /// repository before `kubectl apply` or Helm puts them in the cluster.
    Manifest {
        /// Path of the file as given.
        path: String,
        /// `metadata.namespace` of the ConfigMap (empty when the manifest leaves it out).
        namespace: String,
        /// ConfigMap name.
        name: String,
        /// Data key.
        key: String,
    },
}

/// `configmap/<namespace>/<name>[<key>]`, or `configmap/<name>[<key>]` without a namespace.
fn write_configmap(f: &mut fmt::Formatter<'_>, namespace: &str, name: &str, key: &str) -> fmt::Result {
    if namespace.is_empty() {
        write!(f, "configmap/{name}[{key}]")
    } else {
        write!(f, "configmap/{namespace}/{name}[{key}]")
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin { file } => write!(f, "builtin:{file}"),
            Self::File { path } => f.write_str(path),
            Self::ConfigMap { namespace, name, key } => write_configmap(f, namespace, name, key),
            Self::Manifest { path, namespace, name, key } => {
                write!(f, "{path}: ")?;
                write_configmap(f, namespace, name, key)
            }
        }
    }
}

/// A policy document that could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub struct LoadError {
    /// Where the text came from.
    pub origin: Origin,
    /// Index of the YAML document in the text (0-based), when the error is about one.
    pub document: Option<usize>,
    /// 1-based line in the text, when known.
    pub line: Option<usize>,
    /// The policy's name, when the document got as far as having one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The rule's name, when the error is about one rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Field path inside the document (`spec.rules[1].check`), when known.
    pub field: Option<String>,
    /// What is wrong and what to do.
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Origin::Manifest { path, namespace, name, key } = &self.origin {
            // The line is the file's, so it goes with the path: `file:line: configmap/…[key]`.
            f.write_str(path)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
            write_configmap(f, namespace, name, key)?;
        } else {
            write!(f, "{}", self.origin)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
        }
        self.write_place(f)
    }
}

impl LoadError {
    /// An error on the name of compiled policy `p` (defined twice): `reason` says where else.
    pub(crate) fn on_name(p: &super::CompiledPolicy, reason: String) -> Self {
        Self {
            origin: p.origin.clone(),
            document: Some(p.document),
            line: None,
            policy: Some(p.name.to_string()),
            rule: None,
            field: Some("metadata.name".into()),
            reason,
        }
    }

    /// `: document[i]: policy p, rule r: field: reason`, each part when known: what follows the
    /// source and line wherever an error is shown.
    pub fn write_place(&self, f: &mut impl fmt::Write) -> fmt::Result {
        if let Some(doc) = self.document {
            write!(f, ": document[{doc}]")?;
        }
        if let Some(policy) = &self.policy {
            write!(f, ": policy {policy}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ", rule {rule}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// One YAML document of a text, with where it starts.
#[derive(Debug)]
pub(crate) struct Document<'t> {
    pub(crate) index: usize,
    /// 1-based line of the document's first line in the whole text.
    pub(crate) first_line: usize,
    pub(crate) text: &'t str,
}

/// Splits a multi-document YAML text at `---` lines, keeping each document's first line so errors
/// can be reported against the whole file. Documents holding only comments or blanks are dropped
/// and not counted, so `document[1]` is the second document a reader sees.
pub(crate) fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut push = |start: usize, end: usize, first_line: usize| {
        let body = &text[start..end];
        let meaningful = body.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "..."
        });
        if meaningful {
            docs.push(Document { index: docs.len(), first_line, text: body });
        }
    };
    let (mut start, mut first_line, mut offset) = (0usize, 1usize, 0usize);
    for (line_no, line) in text.split_inclusive('\n').enumerate().map(|(i, l)| (i + 1, l)) {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") {
            push(start, offset, first_line);
            // Content after `--- ` on the same line belongs to the next document.
            (start, first_line) =
                if bare == "---" { (offset + line.len(), line_no + 1) } else { (offset + 4, line_no) };
        }
        offset += line.len();
    }
    push(start, text.len(), first_line);
    docs
}

/// Parses and compiles every policy document in `text`. All or nothing: any error rejects the
/// whole text, and every error found is returned (so `policies lint` shows them all at once).
pub fn load_str(origin: &Origin, text: &str) -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    load_documents(origin, split_documents(text))
}

/// [`load_str`] for documents already split.
pub(crate) fn load_documents<'t>(
    origin: &Origin,
    docs: impl IntoIterator<Item = Document<'t>>,
) -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut policies: Vec<Arc<CompiledPolicy>> = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    for doc in docs {
        let err = |line: Option<usize>, field: Option<String>, reason: String| LoadError {
            origin: origin.clone(),
            document: Some(doc.index),
            line,
            policy: None,
            rule: None,
            field,
            reason,
        };
        let policy = match parse_document(&doc) {
            Ok(p) => p,
            Err((line, field, reason)) => {
                errors.push(err(line, field, reason));
                continue;
            }
        };
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == policy.metadata.name) {
            errors.push(LoadError {
                policy: Some(policy.metadata.name.clone()),
                ..err(
                    doc.line_of(&format!("name: {}", policy.metadata.name)),
                    Some("metadata.name".into()),
                    format!(
                        "policy `{}` is defined twice in this text (first in document[{}]); rename one",
                        policy.metadata.name, first
                    ),
                )
            });
            continue;
        }
        names.push((policy.metadata.name.clone(), doc.index));
        let name = policy.metadata.name.clone();
        match CompiledPolicy::compile(policy, origin.clone(), doc.index) {
            Ok(p) => policies.push(Arc::new(p)),
            Err(e) => errors.extend(e.into_iter().map(|(place, field, reason)| LoadError {
                policy: Some(name.clone()).filter(|n| !n.is_empty()),
                rule: place.rule.clone().filter(|r| !r.is_empty()),
                ..err(doc.line_of_place(&place), Some(field), reason)
            })),
        }
    }
    if errors.is_empty() { Ok(policies) } else { Err(errors) }
}

impl Document<'_> {
    /// Best-effort line of the first line containing `needle`, for errors found after parsing
    /// (serde has no spans for those).
    pub(crate) fn line_of(&self, needle: &str) -> Option<usize> {
        self.text.lines().position(|l| l.contains(needle)).map(|i| self.first_line + i)
    }

    /// The line of `place`: for a rule, its `needle` within the rule (the first line holding it
    /// after the rule's `name:` under `rules:`), else the rule's name line; otherwise the first
    /// line holding the needle.
    pub(crate) fn line_of_place(&self, place: &super::set::Place) -> Option<usize> {
        let Some(rule) = place.rule.as_deref().filter(|r| !r.is_empty()) else {
            return place.needle.as_deref().and_then(|n| self.line_of(n));
        };
        let lines: Vec<&str> = self.text.lines().collect();
        let rules = lines.iter().position(|l| l.contains("rules:")).unwrap_or(0);
        let names_rule = |l: &str| {
            l.split("name:").skip(1).any(|after| {
                let value = after.trim_start().trim_start_matches(['"', '\'']);
                value
                    .strip_prefix(rule)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['"', '\'', ',', '}', ' ', '#']))
            })
        };
        let start = rules + lines[rules..].iter().position(|l| names_rule(l))?;
        // The rule's own entry runs to the next `- ` item at its indentation or less; the
        // needle is looked for there, from the entry's first line (flow style puts all on one).
        let entry_start =
            lines[..=start].iter().rposition(|l| l.trim_start().starts_with("- ")).unwrap_or(start);
        let indent = |l: &str| l.len() - l.trim_start().len();
        let item = indent(lines[entry_start]);
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with("- ") && indent(l) <= item)
            .map_or(lines.len(), |i| start + 1 + i);
        let found = place.needle.as_deref().and_then(|n| {
            lines[entry_start..end].iter().position(|l| l.contains(n)).map(|i| entry_start + i)
        });
        Some(self.first_line + found.unwrap_or(start))
    }
}

/// Why a document nested past the YAML limits is refused.
const DEEP: &str = "the document nests more than 128 levels deep; no policy needs that many";

/// Line, field and reason of an error in one document.
pub(crate) type DocError = (Option<usize>, Option<String>, String);

fn parse_document(doc: &Document<'_>) -> Result<Policy, DocError> {
    if let Some(line) = crate::yaml::flow_depth_error(doc.text) {
        return Err((Some(doc.first_line + line - 1), None, DEEP.into()));
    }
    // Check the header first, so that a ConfigMap carrying some other kind of document gets a
    // clear "not a podguard policy" instead of a list of unknown fields.
    let header: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(doc.text).map_err(|e| yaml_error(doc, &e, None))?;
    let Some(map) = header.as_mapping() else {
        return Err((Some(doc.first_line), None, "a policy document must be a YAML mapping".into()));
    };
    let get = |k: &str| map.get(k).and_then(|v| v.as_str());
    match (get("apiVersion"), get("kind")) {
        (Some(API_VERSION), Some(KIND)) => {}
        (api, kind) => {
            return Err((
                doc.line_of("apiVersion").or(Some(doc.first_line)),
                Some("apiVersion".into()),
                format!(
                    "expected `apiVersion: {API_VERSION}` and `kind: {KIND}`, found `{}` / `{}`",
                    api.unwrap_or("<missing>"),
                    kind.unwrap_or("<missing>")
                ),
            ));
        }
    }
    let de = serde_yaml_ng::Deserializer::from_str(doc.text);
    serde_path_to_error::deserialize::<_, Policy>(de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        yaml_error(doc, e.inner(), field)
    })
}

pub(crate) fn yaml_error(doc: &Document<'_>, e: &serde_yaml_ng::Error, field: Option<String>) -> DocError {
    let line = e.location().map(|l| doc.first_line + l.line().saturating_sub(1));
    // serde_yaml_ng appends "at line N column M" and sometimes prefixes the path; we report both
    // separately, so strip them from the reason.
    let mut reason = e.to_string();
    if let Some(i) = reason.find(" at line ") {
        reason.truncate(i);
    }
    // serde_yaml_ng prefixes the path of the enclosing map ("spec.rules[0]: unknown field");
    // the field we report already holds it.
    if let (Some(f), Some((head, rest))) = (&field, reason.split_once(": "))
        && f.starts_with(head)
    {
        reason = rest.to_owned();
    }
    if reason.ends_with("recursion limit exceeded") {
        // The YAML reader stops at 128 levels (no policy needs more) rather than overflow.
        reason = DEEP.into();
    }
    (line, field, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin::File { path: "p.yaml".into() }
    }

    #[test]
    fn splits_documents_with_lines() {
        let text = "# c\n---\na: 1\n---\n\n---\nb: 2\nc: 3\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].index, docs[0].first_line, docs[0].text), (0, 3, "a: 1\n"));
        assert_eq!((docs[1].index, docs[1].first_line), (1, 7));
    }

    #[test]
    fn yaml_syntax_error_has_line() {
        let text = "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {name: a\n";
        let e = &load_str(&origin(), text).unwrap_err()[0];
        assert_eq!(e.document, Some(0));
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn wrong_kind_is_named() {
        let e = &load_str(&origin(), "apiVersion: v1\nkind: ConfigMap\n").unwrap_err()[0];
        assert_eq!(e.field.as_deref(), Some("apiVersion"));
        assert!(e.reason.contains("podguard.dev/v1"), "{e}");
        assert!(e.to_string().starts_with("p.yaml:1: document[0]: apiVersion: "), "{e}");
    }

    fn errors(text: &str) -> Vec<LoadError> {
        load_str(&origin(), text).unwrap_err()
    }

    const HEAD: &str = "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata:\n  name: p\nspec:\n";

    #[test]
    fn unknown_field_names_field_and_line() {
        let e = &errors(&format!("{HEAD}  rules:\n    - name: r\n      chek: podSecurity\n"))[0];
        assert_eq!(e.field.as_deref(), Some("spec.rules[0].chek"));
        assert!(e.reason.contains("unknown field `chek`"), "{e}");
        assert_eq!(e.line, Some(8), "{e}");
    }

    #[test]
    fn unknown_check_lists_the_known_ones() {
        let e = &errors(&format!("{HEAD}  rules:\n    - name: r\n      check: nope\n"))[0];
        assert_eq!(e.field.as_deref(), Some("spec.rules[0].check"));
        assert!(e.reason.starts_with("unknown check `nope`"), "{e}");
        assert_eq!(e.line, Some(8));
    }

    #[test]
    fn empty_rules_and_bad_names() {
        let e = &errors(&format!("{HEAD}  rules: []\n"))[0];
        assert_eq!((e.field.as_deref(), e.line), (Some("spec.rules"), Some(6)));
        let e = errors(
            "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {name: Bad_Name}\nspec: {rules: []}\n",
        );
        assert!(e.iter().any(|e| e.field.as_deref() == Some("metadata.name")), "{e:?}");
    }

    #[test]
    fn rule_shape_errors() {
        let both = format!("{HEAD}  rules:\n    - {{name: r, check: x, cel: 'true'}}\n");
        assert!(errors(&both)[0].reason.contains("not both"));
        let neither = format!("{HEAD}  rules:\n    - {{name: r}}\n");
        assert!(errors(&neither)[0].reason.contains("needs `check`"));
        let twice =
            format!("{HEAD}  rules:\n    - {{name: r, cel: 'true'}}\n    - {{name: r, cel: 'true'}}\n");
        assert!(errors(&twice).iter().any(|e| e.reason.contains("used twice")));
    }

    #[test]
    fn duplicate_policy_in_one_text() {
        let doc = format!("{HEAD}  rules: [{{name: r, check: nope}}]\n");
        let e = errors(&format!("{doc}---\n{doc}"));
        assert!(e.iter().any(|e| e.document == Some(1) && e.reason.contains("defined twice")), "{e:?}");
    }

    #[test]
    fn bad_match_is_reported_under_spec_match() {
        let e =
            &errors(&format!("{HEAD}  match: {{kinds: [Service]}}\n  rules: [{{name: r, cel: 'true'}}]\n"))
                [0];
        assert_eq!(e.field.as_deref(), Some("spec.match.kinds[0]"));
    }
}
