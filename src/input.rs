//! Manifests for `podguard check`: files, folders (recursively, `.yaml`/`.yml`/`.json`), and
//! stdin; several documents per file; `kind: List`; AdmissionReview documents.
//!
//! Every document becomes an [`AdmissionRequest`], so the CLI runs exactly the webhook's
//! decision. A plain manifest is a `CREATE` in its namespace (or the default one given).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::admission::review::{self, AdmissionRequest, GroupVersionKind};
use crate::context::{Operation, UserInfo};
use crate::object::group_of_api_version;

/// One document to evaluate.
#[derive(Debug)]
pub struct Document {
    /// File as given (`-` for stdin).
    pub file: String,
    /// Index of the YAML/JSON document in the file (items of a `List` share it).
    pub document: usize,
    /// The request to evaluate.
    pub request: AdmissionRequest,
}

/// An input that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default(), document.map(|d| format!(": document[{d}]")).unwrap_or_default())]
pub struct InputError {
    /// File as given.
    pub file: String,
    /// Document index, when known.
    pub document: Option<usize>,
    /// Line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

/// Everything read from the inputs: documents to evaluate and errors met on the way.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Readable documents.
    pub documents: Vec<Document>,
    /// Unreadable files or documents.
    pub errors: Vec<InputError>,
}

/// Reads `paths` (`-` = stdin). `namespace` is used for manifests that name none.
pub fn read(paths: &[PathBuf], namespace: &str) -> Inputs {
    let mut inputs = Inputs::default();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => read_text("-", &text, false, namespace, &mut inputs),
                Err(e) => inputs.errors.push(err("-", None, None, format!("cannot read stdin: {e}"))),
            }
            continue;
        }
        for found in collect(p) {
            let (f, explicit) = match found {
                Ok(found) => found,
                Err((place, e)) => {
                    inputs.errors.push(err(&place, None, None, e));
                    continue;
                }
            };
            let name = f.display().to_string();
            match read_bounded(&f, explicit) {
                Ok(text) => {
                    let json = f.extension().is_some_and(|e| e == "json");
                    read_text(&name, &text, json, namespace, &mut inputs);
                }
                Err(e) => inputs.errors.push(err(&name, None, None, e)),
            }
        }
    }
    inputs
}

/// Largest input file read, in bytes: far above any manifest (the API server refuses objects
/// over 3 MiB), and a bound on what one file can make podguard hold.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The files under `p`, in name order: `p` itself when it is not a folder (whatever it is: a
/// FIFO from `<(helm template …)` is fine when named), else every `.yaml`, `.yml` and `.json`
/// file below it. In a folder, links are followed but a loop is an error, not a hang, and only
/// regular files are read: a `x.yaml` that is a FIFO or a device (`-> /dev/zero`) is skipped
/// with an error instead of blocking or filling memory.
fn collect(p: &Path) -> Vec<Result<(PathBuf, bool), (String, String)>> {
    let here = p.display().to_string();
    match std::fs::metadata(p) {
        Err(e) => return vec![Err((here, format!("cannot read: {e}")))],
        Ok(meta) if !meta.is_dir() => return vec![Ok((p.to_path_buf(), true))],
        Ok(_) => {}
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(p).follow_links(true).sort_by_file_name() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let place = e.path().map_or_else(|| here.clone(), |p| p.display().to_string());
                let why = if e.loop_ancestor().is_some() {
                    "a link back to a folder above it (a loop); not followed".to_owned()
                } else {
                    format!("cannot read: {e}")
                };
                out.push(Err((place, why)));
                continue;
            }
        };
        let path = entry.path();
        let manifest = path.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json");
        if entry.file_type().is_dir() || !manifest {
            continue;
        }
        if entry.file_type().is_file() {
            out.push(Ok((path.to_path_buf(), false)));
        } else {
            let what = "not a regular file (a FIFO, socket or device); skipped";
            out.push(Err((path.display().to_string(), what.to_owned())));
        }
    }
    out
}

/// Reads at most [`MAX_FILE_BYTES`] of `f`; more is an error, not a bigger buffer.
fn read_bounded(f: &Path, explicit: bool) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(f).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let what = if explicit { "input" } else { "file" };
        return Err(format!("{what} is larger than {} MiB; not read", MAX_FILE_BYTES >> 20));
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))
}

fn err(file: &str, document: Option<usize>, line: Option<usize>, reason: String) -> InputError {
    InputError { file: file.to_owned(), document, line, reason }
}

/// Reads one file's text: a JSON value, or a stream of YAML documents.
pub fn read_text(file: &str, text: &str, json: bool, namespace: &str, inputs: &mut Inputs) {
    if json {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => add_value(file, 0, v, namespace, inputs),
            Err(e) => inputs.errors.push(err(file, Some(0), Some(e.line()), e.to_string())),
        }
        return;
    }
    if let Some(line) = crate::yaml::flow_depth_error(text) {
        // The YAML reader would stop at the same depth, after time quadratic in it.
        let reason = format!("YAML nests more than {} levels deep", crate::yaml::MAX_DEPTH);
        inputs.errors.push(err(file, None, Some(line), reason));
        return;
    }
    let mut index = 0;
    let mut last_error: Option<String> = None;
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        match serde::Deserialize::deserialize(de) {
            Ok(Value::Null) => {} // empty document (e.g. a trailing `---`)
            Ok(v) => {
                add_value(file, index, v, namespace, inputs);
                index += 1;
            }
            Err(e) => {
                let e: serde_yaml_ng::Error = e;
                let line = e.location().map(|l| l.line());
                let full = e.to_string();
                // A document with a wrong type is skipped and reading goes on; after a syntax
                // error the stream repeats the same error forever, so stop there.
                if last_error.as_deref() == Some(full.as_str()) {
                    return;
                }
                let reason = full.rfind(" at line ").map_or(full.as_str(), |i| &full[..i]).to_owned();
                inputs.errors.push(err(file, Some(index), line, reason));
                last_error = Some(full);
                index += 1;
            }
        }
    }
}

fn add_value(file: &str, document: usize, v: Value, namespace: &str, inputs: &mut Inputs) {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let (api_version, kind) = (s(&v, "apiVersion"), s(&v, "kind"));
    match (api_version.as_deref(), kind.as_deref()) {
        (Some(av), Some("AdmissionReview")) if av.starts_with("admission.k8s.io/") => {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            match review::parse(&bytes) {
                Ok(request) => inputs.documents.push(Document { file: file.to_owned(), document, request }),
                Err(e) => inputs.errors.push(err(file, Some(document), None, e.to_string())),
            }
        }
        (Some("v1"), Some("List")) => match v.get("items").and_then(Value::as_array) {
            Some(items) => {
                for item in items {
                    add_value(file, document, item.clone(), namespace, inputs);
                }
            }
            None => {
                inputs.errors.push(err(file, Some(document), None, "a List needs an `items` array".into()))
            }
        },
        (Some(av), Some(kind)) => {
            let meta = v.get("metadata");
            let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str).map(str::to_owned);
            let (group, version) = match av.rsplit_once('/') {
                Some((g, ver)) => (g.to_owned(), ver.to_owned()),
                None => (group_of_api_version(av).to_owned(), av.to_owned()),
            };
            let object = match serde_json::to_string(&v).ok().and_then(|t| RawValue::from_string(t).ok()) {
                Some(o) => o,
                None => {
                    inputs.errors.push(err(
                        file,
                        Some(document),
                        None,
                        "cannot re-encode document as JSON".into(),
                    ));
                    return;
                }
            };
            let request = AdmissionRequest {
                uid: format!("{file}#{document}"),
                kind: GroupVersionKind { group, version, kind: kind.to_owned() },
                resource: Default::default(),
                sub_resource: None,
                name: get("name").or_else(|| get("generateName")),
                namespace: Some(get("namespace").unwrap_or_else(|| namespace.to_owned())),
                operation: Operation::Create,
                user_info: UserInfo::default(),
                object: Some(object),
                old_object: None,
                dry_run: Some(true),
            };
            inputs.documents.push(Document { file: file.to_owned(), document, request });
        }
        _ => inputs.errors.push(err(
            file,
            Some(document),
            None,
            "not a Kubernetes object: `apiVersion` and `kind` are required".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_list_and_review() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d, namespace: prod}}\n";
        let mut inputs = Inputs::default();
        read_text("f.yaml", text, false, "default", &mut inputs);
        assert!(inputs.errors.is_empty(), "{:?}", inputs.errors);
        let docs: Vec<_> = inputs
            .documents
            .iter()
            .map(|d| {
                (d.document, d.request.kind.group.clone(), d.request.namespace.clone().unwrap_or_default())
            })
            .collect();
        assert_eq!(docs, [(0, String::new(), "default".into()), (1, "apps".into(), "prod".into())]);
    }

    #[test]
    fn not_an_object_and_bad_yaml_are_errors_with_place() {
        let mut inputs = Inputs::default();
        read_text("f.yaml", "just: a map\n", false, "default", &mut inputs);
        read_text("g.yaml", "a: [1,\n", false, "default", &mut inputs);
        read_text("h.yaml", "a: [1,\n---\nb: 2\n", false, "default", &mut inputs);
        assert_eq!(inputs.errors.len(), 3, "{:?}", inputs.errors);
        assert_eq!(inputs.errors[0].document, Some(0));
        assert!(inputs.errors[1].to_string().starts_with("g.yaml:"), "{}", inputs.errors[1]);
    }
}
