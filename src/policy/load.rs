//! YAML text -> compiled policies, with errors that say where: origin (file, or ConfigMap and key),
//! document index, line, field, reason.
//!
//! No file IO here: [`crate::source`] reads files and ConfigMaps and hands their text in. A text
//! loads whole or not at all, so a source with one broken document keeps its last good version.

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
        if let Some(doc) = self.document {
            write!(f, ": document[{doc}]")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// One YAML document of a text, with where it starts.
#[derive(Debug)]
struct Document<'t> {
    index: usize,
    /// 1-based line of the document's first line in the whole text.
    first_line: usize,
    text: &'t str,
}

/// Splits a multi-document YAML text at `---` lines, keeping each document's first line so errors
/// can be reported against the whole file. Documents holding only comments or blanks are dropped
/// and not counted, so `document[1]` is the second document a reader sees.
fn split_documents(text: &str) -> Vec<Document<'_>> {
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

fn load_documents<'t>(
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
            errors.push(err(
                doc.line_of(&format!("name: {}", policy.metadata.name)),
                Some("metadata.name".into()),
                format!(
                    "policy `{}` is defined twice in this text (first in document[{}]); rename one",
                    policy.metadata.name, first
                ),
            ));
            continue;
        }
        names.push((policy.metadata.name.clone(), doc.index));
        match CompiledPolicy::compile(policy, origin.clone(), doc.index) {
            Ok(p) => policies.push(Arc::new(p)),
            Err(e) => errors.extend(e.into_iter().map(|(needle, field, reason)| {
                err(needle.and_then(|n| doc.line_of(&n)), Some(field), reason)
            })),
        }
    }
    if errors.is_empty() { Ok(policies) } else { Err(errors) }
}

/// Label a ConfigMap needs for the webhook's default `--policy-selector` to load it.
const POLICY_LABEL: (&str, &str) = ("podguard.dev/policy", "true");

/// Loads a local policy file: policy documents, and ConfigMap manifests whose `.yaml`/`.yml` data
/// keys hold policy documents, as the webhook reads them in the cluster. All or nothing, like
/// [`load_str`]; errors in a ConfigMap name the file, the file's line, the ConfigMap and the key.
pub fn load_file_text(path: &str, text: &str) -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    let (configmaps, docs): (Vec<_>, Vec<_>) = split_documents(text).into_iter().partition(is_configmap);
    let origin = Origin::File { path: path.to_owned() };
    if configmaps.is_empty() {
        return load_documents(&origin, docs);
    }
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    let results = std::iter::once(load_documents(&origin, docs))
        .chain(configmaps.iter().map(|doc| load_configmap_document(path, doc)));
    for result in results {
        match result {
            Ok(p) => policies.extend(p),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() { Ok(policies) } else { Err(errors) }
}

fn is_configmap(doc: &Document<'_>) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Header {
        api_version: Option<String>,
        kind: Option<String>,
    }
    serde_yaml_ng::from_str::<Header>(doc.text)
        .is_ok_and(|h| h.api_version.as_deref() == Some("v1") && h.kind.as_deref() == Some("ConfigMap"))
}

#[derive(serde::Deserialize)]
struct ConfigMapManifest {
    #[serde(default)]
    metadata: ConfigMapMeta,
    #[serde(default)]
    data: std::collections::BTreeMap<String, String>,
}

#[derive(Default, serde::Deserialize)]
struct ConfigMapMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

fn load_configmap_document(
    path: &str,
    doc: &Document<'_>,
) -> Result<Vec<Arc<CompiledPolicy>>, Vec<LoadError>> {
    let file_error = |line: Option<usize>, field: Option<String>, reason: String| {
        vec![LoadError {
            origin: Origin::File { path: path.to_owned() },
            document: Some(doc.index),
            line,
            field,
            reason,
        }]
    };
    let de = serde_yaml_ng::Deserializer::from_str(doc.text);
    let cm: ConfigMapManifest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let (line, field, reason) = yaml_error(doc, e.inner(), (path != ".").then_some(path));
        file_error(line, field, format!("not a readable ConfigMap: {reason}"))
    })?;
    let (label, value) = POLICY_LABEL;
    if cm.metadata.labels.get(label).map(String::as_str) != Some(value) {
        return Err(file_error(
            doc.line_of("metadata").or(Some(doc.first_line)),
            Some("metadata.labels".into()),
            format!(
                "ConfigMap `{}` is not labelled `{label}: \"{value}\"`, so the webhook would not load it; \
                 add the label, or leave the file out of the policy paths",
                cm.metadata.name
            ),
        ));
    }
    let keys: Vec<(&String, &String)> =
        cm.data.iter().filter(|(k, _)| k.ends_with(".yaml") || k.ends_with(".yml")).collect();
    if keys.is_empty() {
        return Err(file_error(
            doc.line_of("data:").or(Some(doc.first_line)),
            Some("data".into()),
            format!(
                "ConfigMap `{}` has no data key ending in `.yaml` or `.yml`, so it holds no policy",
                cm.metadata.name
            ),
        ));
    }
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for (key, text) in keys {
        let origin = Origin::Manifest {
            path: path.to_owned(),
            namespace: cm.metadata.namespace.clone(),
            name: cm.metadata.name.clone(),
            key: key.clone(),
        };
        match load_str(&origin, text) {
            Ok(p) => policies.extend(p),
            Err(e) => {
                let offset = block_offset(doc, key, text);
                errors.extend(e.into_iter().map(|mut e| {
                    match (offset, e.line) {
                        (Some(offset), Some(line)) => e.line = Some(offset + line),
                        // A quoted or folded value: its lines are not the file's.
                        (None, Some(line)) => {
                            e.reason = format!("{} (line {line} of the value)", e.reason);
                            e.line = doc.line_of(&format!("{key}:"));
                        }
                        (_, None) => {}
                    }
                    e
                }));
            }
        }
    }
    if errors.is_empty() { Ok(policies) } else { Err(errors) }
}

/// For a data key written as a literal block (`key: |`), the file line just before the value's
/// first line, so that a line of the value plus this is a line of the file. `None` for any other
/// style, where the value's lines are not the file's.
fn block_offset(doc: &Document<'_>, key: &str, value: &str) -> Option<usize> {
    let lines: Vec<&str> = doc.text.lines().collect();
    let at = lines.iter().position(|l| {
        let t = l.trim_start();
        t.strip_prefix(key).and_then(|r| r.strip_prefix(':')).is_some_and(|r| r.trim_start().starts_with('|'))
    })?;
    let first_value_line = value.lines().next()?;
    (lines.get(at + 1)?.trim() == first_value_line.trim()).then_some(doc.first_line + at)
}

impl Document<'_> {
    /// Best-effort line of the first line containing `needle`, for errors found after parsing
    /// (serde has no spans for those).
    fn line_of(&self, needle: &str) -> Option<usize> {
        self.text.lines().position(|l| l.contains(needle)).map(|i| self.first_line + i)
    }
}

type DocError = (Option<usize>, Option<String>, String);

fn parse_document(doc: &Document<'_>) -> Result<Policy, DocError> {
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

fn yaml_error(doc: &Document<'_>, e: &serde_yaml_ng::Error, field: Option<String>) -> DocError {
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

    const POLICY: &str = "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata:\n  name: NAME\nspec:\n  rules: [{name: r, check: CHECK}]\n";

    fn policy(name: &str, check: &str) -> String {
        POLICY.replace("NAME", name).replace("CHECK", check)
    }

    /// A ConfigMap manifest whose keys are literal blocks, as `kubectl create configmap
    /// --dry-run=client -o yaml` and Helm charts write them.
    fn configmap(labels: &str, keys: &[(&str, &str)]) -> String {
        let mut s = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: team-a\n  namespace: podguard\n  labels: {labels}\ndata:\n"
        );
        for (key, text) in keys {
            s.push_str(&format!("  {key}: |\n"));
            for line in text.lines() {
                s.push_str(&format!("    {line}\n"));
            }
        }
        s
    }

    const LABELLED: &str = "{podguard.dev/policy: \"true\"}";

    #[test]
    fn configmap_manifests_load_their_policy_keys() {
        let text = format!(
            "{}---\n{}",
            policy("plain", "requireProbes"),
            configmap(LABELLED, &[("a.yaml", &policy("in-a", "requireProbes")), ("notes.txt", "x")])
        );
        let loaded = load_file_text("cm.yaml", &text).unwrap();
        let names: Vec<&str> = loaded.iter().map(|p| &*p.name).collect();
        assert_eq!(names, ["plain", "in-a"]);
        assert_eq!(loaded[0].origin, Origin::File { path: "cm.yaml".into() });
        assert_eq!(
            loaded[1].origin,
            Origin::Manifest {
                path: "cm.yaml".into(),
                namespace: "podguard".into(),
                name: "team-a".into(),
                key: "a.yaml".into()
            }
        );
        assert_eq!(loaded[1].origin.to_string(), "cm.yaml: configmap/podguard/team-a[a.yaml]");
    }

    #[test]
    fn configmap_key_errors_name_the_file_line_configmap_and_key() {
        let text = configmap(
            LABELLED,
            &[("a.yaml", &policy("good", "requireProbes")), ("b.yaml", &policy("bad", "nope"))],
        );
        let errors = load_file_text("cm.yaml", &text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        // The file's own line, not the sixth line of b.yaml's value.
        let line = text.lines().position(|l| l.contains("check: nope")).unwrap() + 1;
        assert_eq!(e.line, Some(line));
        assert_eq!(
            e.to_string(),
            format!(
                "cm.yaml:{line}: configmap/podguard/team-a[b.yaml]: document[0]: spec.rules[0].check: {}",
                e.reason
            )
        );
        assert!(e.reason.starts_with("unknown check `nope`"), "{e}");
    }

    #[test]
    fn quoted_configmap_values_point_at_the_key() {
        let value = policy("q", "nope").replace('\n', "\\n");
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\n  labels: {LABELLED}\ndata:\n  q.yaml: \"{value}\"\n"
        );
        let e = &load_file_text("cm.yaml", &text).unwrap_err()[0];
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.reason.ends_with("(line 6 of the value)"), "{e}");
        assert!(e.to_string().starts_with("cm.yaml:7: configmap/q[q.yaml]: document[0]"), "{e}");
    }

    #[test]
    fn unlabelled_or_empty_configmaps_are_refused() {
        let text = configmap("{app: x}", &[("a.yaml", &policy("a", "requireProbes"))]);
        let e = &load_file_text("cm.yaml", &text).unwrap_err()[0];
        assert_eq!((e.field.as_deref(), e.line), (Some("metadata.labels"), Some(3)));
        assert!(e.reason.contains("not labelled `podguard.dev/policy: \"true\"`"), "{e}");
        let text = configmap(LABELLED, &[("readme.md", "hello")]);
        let e = &load_file_text("cm.yaml", &text).unwrap_err()[0];
        assert_eq!(e.field.as_deref(), Some("data"));
        assert!(e.reason.contains("no data key ending in `.yaml`"), "{e}");
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: {podguard.dev/policy: \"true\"}}\ndata: [1]\n";
        let e = &load_file_text("cm.yaml", text).unwrap_err()[0];
        assert_eq!(e.field.as_deref(), Some("data"), "{e}");
        assert!(e.reason.starts_with("not a readable ConfigMap"), "{e}");
    }

    #[test]
    fn strict_texts_still_refuse_configmaps() {
        // Inside a ConfigMap key (and in the built-in library) a ConfigMap is not a policy.
        let text = configmap(LABELLED, &[("a.yaml", &policy("a", "requireProbes"))]);
        assert!(load_str(&origin(), &text).is_err());
    }
}
