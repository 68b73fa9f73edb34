//! ConfigMap manifests in local policy files: the form policies take in a GitOps repository
//! before `kubectl apply` or Helm puts them in the cluster. Each is loaded by the same code as a
//! watched ConfigMap ([`configmaps::load_configmap_as`]), with errors placed at the file's lines.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use super::configmaps::{self, POLICY_LABEL};
use crate::policy::load::{Document, load_documents, split_documents, yaml_error};
use crate::policy::{CompiledPolicy, LoadError, Origin};

/// Loads a local policy file: policy documents, and ConfigMap manifests whose `.yaml`/`.yml` data
/// keys hold policy documents, read as the webhook reads them in the cluster. All or nothing,
/// like [`crate::policy::load_str`]; errors in a ConfigMap name the file, the file's line, the
/// ConfigMap and the key.
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
    // Too deep to read is a policy document's error to report (as one), not a ConfigMap's.
    crate::yaml::flow_depth_error(doc.text).is_none()
        && serde_yaml_ng::from_str::<Header>(doc.text)
            .is_ok_and(|h| h.api_version.as_deref() == Some("v1") && h.kind.as_deref() == Some("ConfigMap"))
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
            policy: None,
            rule: None,
            field,
            reason,
        }]
    };
    let de = serde_yaml_ng::Deserializer::from_str(doc.text);
    let cm: ConfigMap = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let (line, field, reason) = yaml_error(doc, e.inner(), (path != ".").then_some(path));
        file_error(line, field, format!("not a readable ConfigMap: {reason}"))
    })?;
    let name = cm.name_any();
    if cm.labels().get(POLICY_LABEL).map(String::as_str) != Some("true") {
        return Err(file_error(
            doc.line_of("metadata").or(Some(doc.first_line)),
            Some("metadata.labels".into()),
            format!(
                "ConfigMap `{name}` is not labelled `{POLICY_LABEL}: \"true\"`, so the webhook would not \
                 load it; add the label, or leave the file out of the policy paths"
            ),
        ));
    }
    if configmaps::policy_files(&cm).next().is_none() {
        return Err(file_error(
            doc.line_of("data:").or(Some(doc.first_line)),
            Some("data".into()),
            format!("ConfigMap `{name}` has no data key ending in `.yaml` or `.yml`, so it holds no policy"),
        ));
    }
    let namespace = cm.namespace().unwrap_or_default();
    configmaps::load_configmap_as(&cm, |key| Origin::Manifest {
        path: path.to_owned(),
        namespace: namespace.clone(),
        name: name.clone(),
        key: key.to_owned(),
    })
    .map_err(|errors| errors.into_iter().map(|e| at_file_line(doc, &cm, e)).collect())
}

/// Turns the line of an error inside a data key's value into the file's line.
fn at_file_line(doc: &Document<'_>, cm: &ConfigMap, mut e: LoadError) -> LoadError {
    let Origin::Manifest { key, .. } = &e.origin else { return e };
    let value = cm.data.as_ref().and_then(|d| d.get(key)).map_or("", String::as_str);
    match (block_offset(doc, key, value), e.line) {
        (Some(offset), Some(line)) => e.line = Some(offset + line),
        // A quoted or folded value: its lines are not the file's.
        (None, Some(line)) => {
            e.reason = format!("{} (line {line} of the value)", e.reason);
            e.line = doc.line_of(&format!("{key}:"));
        }
        (_, None) => {}
    }
    e
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::load_str;

    fn origin() -> Origin {
        Origin::File { path: "p.yaml".into() }
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
                "cm.yaml:{line}: configmap/podguard/team-a[b.yaml]: document[0]: policy bad, rule r: spec.rules[0].check: {}",
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
