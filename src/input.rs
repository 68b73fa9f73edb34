//! Manifests for `podguard check`: files, folders (recursively, `.yaml`/`.yml`/`.json`), and
//! stdin; several documents per file; list kinds (`List`, `PodList`, …) item by item;
//! AdmissionReview documents.
//!
//! YAML is read with kubectl's rules ([`crate::yaml11`]), so that what `check` judges is what
//! `kubectl apply` would send. Every object becomes an [`AdmissionRequest`], so the CLI runs
//! exactly the webhook's decision. A plain manifest is a `CREATE` in its namespace, else in the
//! namespace given with `--namespace`, else in none in particular (see [`Options::namespace`]).

use crate::admission::{Decision, Outcome};
use crate::report::{CANNOT_EVALUATE, Found, ObjectResult};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::admission::review::{self, AdmissionRequest, GroupVersionKind};
use crate::context::{Operation, UserInfo};
use crate::object::group_of_api_version;
use crate::yaml11::{self, Lines, Segment};

/// Where a document came from: file, document index in the file, item index in a list kind,
/// and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// File as given (`-` for stdin).
    pub file: String,
    /// Index of the YAML/JSON document in the file.
    pub document: usize,
    /// Index in the `items` of a list kind, for an object that came from one.
    pub item: Option<usize>,
    /// 1-based line where the object starts.
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.file, self.document)?;
        if let Some(item) = self.item {
            write!(f, ".items[{item}]")?;
        }
        Ok(())
    }
}

/// One object to evaluate.
#[derive(Debug)]
pub struct Document {
    /// Where it came from.
    pub place: Place,
    /// Line numbers of the fields of the YAML document it came from (none for JSON).
    pub lines: Option<Arc<Lines>>,
    /// The request to evaluate.
    pub request: AdmissionRequest,
    /// What the reader noticed on the way (an apiVersion no longer served).
    pub notes: Vec<String>,
    /// Its apiVersion is no longer served: the API server would refuse it before admission.
    pub not_served: bool,
}

impl Document {
    /// The line of the field at `path` (a violation's path, relative to the object), or of its
    /// closest written ancestor.
    pub fn line_of(&self, path: &str) -> usize {
        let Some(lines) = &self.lines else { return self.place.line };
        let mut segments = Vec::with_capacity(8);
        if let Some(item) = self.place.item {
            segments.push(Segment::Key("items".into()));
            segments.push(Segment::Index(item));
        }
        segments.extend(path_segments(path));
        lines.line_of(&segments)
    }
}

/// A document that is not a Kubernetes object (a `kustomization.yaml`, Helm values), skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnObject {
    /// Where it is.
    pub place: Place,
    /// Why it was skipped.
    pub reason: String,
}

impl Document {
    /// Builds the result of one document from its decision.
    pub fn result(&self, decision: Decision) -> ObjectResult {
        let r = &self.request;
        let (skipped, reason) = match &decision.outcome {
            Outcome::Evaluated => (false, None),
            Outcome::Skipped(why) => (true, Some(why.clone())),
            Outcome::Unreadable(e) => (false, Some(format!("{CANNOT_EVALUATE}{e}"))),
            Outcome::Refused(why) => (false, Some(why.clone())),
        };
        let violations: Vec<Found> = decision
            .violations
            .into_iter()
            .map(|violation| Found { line: self.line_of(violation.path.as_str()), violation })
            .collect();
        ObjectResult {
            file: self.place.file.clone(),
            document: self.place.document,
            item: self.place.item,
            line: self.place.line,
            kind: r.kind.kind.clone(),
            namespace: r.namespace.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
            allowed: decision.allowed,
            skipped,
            reason,
            notes: self.notes.clone(),
            violations,
            applied: decision.applied,
        }
    }
}

impl NotAnObject {
    /// The result for a document that is not a Kubernetes object.
    pub fn result(&self) -> ObjectResult {
        ObjectResult {
            file: self.place.file.clone(),
            document: self.place.document,
            item: self.place.item,
            line: self.place.line,
            kind: String::new(),
            namespace: String::new(),
            name: String::new(),
            allowed: true,
            skipped: true,
            reason: Some(self.reason.clone()),
            notes: Vec::new(),
            violations: Vec::new(),
            applied: Vec::new(),
        }
    }
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

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Objects to evaluate, in input order.
    pub documents: Vec<Document>,
    /// Documents that are not Kubernetes objects.
    pub not_objects: Vec<NotAnObject>,
    /// Unreadable files or documents.
    pub errors: Vec<InputError>,
}

/// How manifests are read.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Namespace of objects whose manifest names none, as `kubectl -n` or `helm -n` would give
    /// them. `None`: no namespace in particular, so checks about the namespace itself
    /// (`disallowDefaultNamespace`), namespace exemptions and namespace labels do not apply to
    /// them; `helm template` output names no namespace, and the one it is installed into is
    /// only known at install time.
    pub namespace: Option<String>,
    /// Bounds on reading YAML.
    pub limits: yaml11::Limits,
}

/// Reads `paths` (`-` = stdin).
pub fn read(paths: &[PathBuf], options: &Options) -> Inputs {
    let mut inputs = Inputs::default();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut bytes = Vec::new();
            let read = std::io::stdin().take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes);
            match read.map_err(|e| format!("cannot read stdin: {e}")).and_then(|_| text_of(bytes, true)) {
                Ok(text) => read_text("-", &text, false, true, options, &mut inputs),
                Err(e) => inputs.errors.push(err("-", None, None, e)),
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
                    read_text(&name, &text, json, explicit, options, &mut inputs);
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
    let file = std::fs::File::open(f).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    text_of(bytes, explicit)
}

fn text_of(bytes: Vec<u8>, explicit: bool) -> Result<String, String> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let what = if explicit { "input" } else { "file" };
        return Err(format!("{what} is larger than {} MiB; not read", MAX_FILE_BYTES >> 20));
    }
    String::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))
}

fn err(file: &str, document: Option<usize>, line: Option<usize>, reason: String) -> InputError {
    InputError { file: file.to_owned(), document, line, reason }
}

/// Reads one file's text: a JSON value, or a stream of YAML documents. `explicit`: the file was
/// named on the command line (or is stdin), so holding no object at all is an error; in a
/// folder, such a file is one of the many YAML files that are not manifests.
pub fn read_text(file: &str, text: &str, json: bool, explicit: bool, options: &Options, inputs: &mut Inputs) {
    let before = inputs.documents.len();
    let skipped_before = inputs.not_objects.len();
    let errors_before = inputs.errors.len();
    if json {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => add_value(file, 0, v, None, options, inputs),
            Err(e) => inputs.errors.push(err(file, Some(0), Some(e.line()), e.to_string())),
        }
    } else if let Some(line) = crate::yaml::flow_depth_error(text) {
        // The YAML reader would stop at the same depth, after time quadratic in it.
        let reason = format!("YAML nests more than {} levels deep", crate::yaml::MAX_DEPTH);
        inputs.errors.push(err(file, None, Some(line), reason));
    } else {
        for doc in yaml11::read_documents(text, &options.limits) {
            match doc {
                Ok(doc) => {
                    let (index, line, lines) = (doc.index, doc.line, Arc::new(doc.lines));
                    add_value(file, index, doc.value, Some((line, lines)), options, inputs);
                }
                Err(e) => inputs.errors.push(err(file, Some(e.document), e.line, e.message)),
            }
        }
    }
    let nothing_read = inputs.documents.len() == before && inputs.errors.len() == errors_before;
    if explicit && nothing_read {
        // A file named on the command line is meant to hold manifests.
        let reasons: Vec<String> = inputs.not_objects.drain(skipped_before..).map(|n| n.reason).collect();
        let reason = match reasons.first() {
            None => "holds no Kubernetes object (no document at all)".to_owned(),
            Some(first) => format!("holds no Kubernetes object: {first}"),
        };
        inputs.errors.push(err(file, None, None, reason));
    }
}

/// Kinds whose apiVersion is no longer served, with the version that replaced it and the
/// Kubernetes release that stopped serving it. Objects in them are still evaluated (their pod
/// template has the same shape), with a note: the cluster would refuse them before admission.
const NOT_SERVED: &[(&str, &str, &str, &str)] = &[
    ("extensions/v1beta1", "Deployment", "apps/v1", "1.16"),
    ("extensions/v1beta1", "DaemonSet", "apps/v1", "1.16"),
    ("extensions/v1beta1", "ReplicaSet", "apps/v1", "1.16"),
    ("apps/v1beta1", "Deployment", "apps/v1", "1.16"),
    ("apps/v1beta1", "StatefulSet", "apps/v1", "1.16"),
    ("apps/v1beta2", "Deployment", "apps/v1", "1.16"),
    ("apps/v1beta2", "StatefulSet", "apps/v1", "1.16"),
    ("apps/v1beta2", "DaemonSet", "apps/v1", "1.16"),
    ("apps/v1beta2", "ReplicaSet", "apps/v1", "1.16"),
    ("batch/v2alpha1", "CronJob", "batch/v1", "1.21"),
    ("batch/v1beta1", "CronJob", "batch/v1", "1.25"),
];

/// Largest object accepted, as JSON: the API server's limit on a request body. A manifest that
/// YAML aliases blow up past it could never be applied, and is not evaluated either.
pub const MAX_OBJECT_BYTES: usize = 3 << 20;

/// Deepest nesting of list kinds inside list kinds followed (kubectl flattens them too).
const MAX_LIST_NESTING: usize = 8;

/// Adds one parsed object (or list of objects) as document `document` of `file`; `yaml` gives
/// its first line and its fields' lines when it was read from YAML.
pub fn add_value(
    file: &str,
    document: usize,
    v: Value,
    yaml: Option<(usize, Arc<Lines>)>,
    options: &Options,
    inputs: &mut Inputs,
) {
    let (line, lines) = match yaml {
        Some((line, lines)) => (line, Some(lines)),
        None => (1, None),
    };
    let place = Place { file: file.to_owned(), document, item: None, line };
    add_object(place, lines, v, options, inputs, 0);
}

fn add_object(
    place: Place,
    lines: Option<Arc<Lines>>,
    mut v: Value,
    options: &Options,
    inputs: &mut Inputs,
    nesting: usize,
) {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let (api_version, kind) = (s(&v, "apiVersion"), s(&v, "kind"));
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        let what = match &v {
            Value::Object(_) => "a mapping without `apiVersion` and `kind`",
            Value::Array(_) => "a sequence",
            _ => "a single value",
        };
        let reason = format!("not a Kubernetes object ({what}); skipped");
        inputs.not_objects.push(NotAnObject { place, reason });
        return;
    };
    if kind == "AdmissionReview" && api_version.starts_with("admission.k8s.io/") {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        match review::parse(&bytes) {
            Ok(request) => inputs.documents.push(Document {
                place,
                lines,
                request,
                notes: Vec::new(),
                not_served: false,
            }),
            Err(e) => {
                inputs.errors.push(err(&place.file, Some(place.document), Some(place.line), e.to_string()))
            }
        }
        return;
    }
    if kind.ends_with("List") && nesting >= MAX_LIST_NESTING {
        let reason = format!("lists nested more than {MAX_LIST_NESTING} deep; not read");
        inputs.errors.push(err(&place.file, Some(place.document), Some(place.line), reason));
        return;
    }
    if kind.ends_with("List") {
        let items = match v.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => {
                let reason = format!("{kind}: `items` is not a list");
                inputs.errors.push(err(&place.file, Some(place.document), Some(place.line), reason));
                return;
            }
        };
        // Items of a typed list (`PodList` from the API) may leave out their own kind.
        let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
        for (i, mut item) in items.into_iter().enumerate() {
            if let (Some(k), Value::Object(map)) = (item_kind, &mut item) {
                map.entry("kind").or_insert_with(|| Value::String(k.to_owned()));
                map.entry("apiVersion").or_insert_with(|| Value::String(api_version.clone()));
            }
            // Lines are known for the items of a list document, not for lists inside lists.
            let lines = lines.clone().filter(|_| nesting == 0);
            let line = lines
                .as_ref()
                .map_or(place.line, |l| l.line_of(&[Segment::Key("items".into()), Segment::Index(i)]));
            let item_place = Place { item: Some(i), line, ..place.clone() };
            add_object(item_place, lines, item, options, inputs, nesting + 1);
        }
        return;
    }
    let mut notes = Vec::new();
    let mut not_served = false;
    let (mut group, version) = match api_version.rsplit_once('/') {
        Some((g, ver)) => (g.to_owned(), ver.to_owned()),
        None => (group_of_api_version(&api_version).to_owned(), api_version.clone()),
    };
    if let Some((_, _, now, since)) = NOT_SERVED.iter().find(|(av, k, ..)| *av == api_version && *k == kind) {
        notes.push(format!(
            "{api_version} {kind} is no longer served (since Kubernetes {since}): the API server \
             refuses it before admission; use {now} (the findings are those of the object as {now})"
        ));
        not_served = true;
        group = group_of_api_version(now).to_owned();
        // The typed decoding checks apiVersion: the object is read as the version that replaced it.
        v["apiVersion"] = Value::String((*now).to_owned());
    }
    let meta = v.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str).map(str::to_owned);
    // An empty `metadata.namespace` names none, as for kubectl.
    let namespace = get("namespace")
        .filter(|ns| !ns.is_empty())
        .or_else(|| options.namespace.clone())
        .unwrap_or_default();
    let name = get("name").or_else(|| get("generateName"));
    let object = match serde_json::to_string(&v).ok().and_then(|t| RawValue::from_string(t).ok()) {
        Some(o) if o.get().len() > MAX_OBJECT_BYTES => {
            let reason = format!(
                "{kind} {}: {} bytes as JSON, more than the {} MiB the API server accepts in a request",
                name.as_deref().unwrap_or_default(),
                o.get().len(),
                MAX_OBJECT_BYTES >> 20
            );
            inputs.errors.push(err(&place.file, Some(place.document), Some(place.line), reason));
            return;
        }
        Some(o) => o,
        None => {
            let reason = "cannot re-encode document as JSON".to_owned();
            inputs.errors.push(err(&place.file, Some(place.document), Some(place.line), reason));
            return;
        }
    };
    let request = AdmissionRequest {
        uid: place.to_string(),
        kind: GroupVersionKind { group, version, kind },
        resource: Default::default(),
        sub_resource: None,
        name,
        namespace: Some(namespace),
        operation: Operation::Create,
        user_info: UserInfo::default(),
        object: Some(object),
        old_object: None,
        dry_run: Some(true),
    };
    inputs.documents.push(Document { place, lines, request, notes, not_served });
}

/// The segments of a violation's field path: `spec.containers[0].securityContext` or
/// `metadata.annotations["a.b/c"]`.
pub fn path_segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[\"") {
            let Some(end) = after.find("\"]") else { break };
            out.push(Segment::Key(after[..end].to_owned()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else { break };
            let Ok(i) = after[..end].parse() else { break };
            out.push(Segment::Index(i));
            rest = &after[end + 1..];
        } else {
            let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
            out.push(Segment::Key(rest_trimmed[..end].to_owned()));
            rest = &rest_trimmed[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_one(text: &str, explicit: bool) -> Inputs {
        let mut inputs = Inputs::default();
        read_text("f.yaml", text, false, explicit, &Options::default(), &mut inputs);
        inputs
    }

    #[test]
    fn multi_document_yaml_list_and_review() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d, namespace: prod}}\n";
        let inputs = read_one(text, true);
        assert!(inputs.errors.is_empty(), "{:?}", inputs.errors);
        let docs: Vec<_> = inputs
            .documents
            .iter()
            .map(|d| {
                let r = &d.request;
                (
                    d.place.document,
                    d.place.item,
                    r.kind.group.clone(),
                    r.namespace.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            docs,
            [(0, None, String::new(), String::new()), (2, Some(0), "apps".into(), "prod".into())]
        );
        assert_eq!(inputs.documents[1].place.line, 9);
    }

    #[test]
    fn typed_lists_give_their_items_kind_and_api_version() {
        let text = "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a}\n  spec: {containers: []}\n- kind: Pod\n  apiVersion: v1\n  metadata: {name: b}\n";
        let inputs = read_one(text, true);
        let kinds: Vec<_> = inputs
            .documents
            .iter()
            .map(|d| (d.request.kind.kind.as_str(), d.request.name.clone().unwrap(), d.place.to_string()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Pod", "a".to_owned(), "f.yaml[0].items[0]".to_owned()),
                ("Pod", "b".into(), "f.yaml[0].items[1]".into())
            ]
        );
    }

    #[test]
    fn documents_that_are_not_objects_are_skipped_in_folders_and_an_error_for_a_named_file() {
        let values = "replicaCount: 1\nimage: {repository: nginx}\n";
        let in_folder = read_one(values, false);
        assert!(in_folder.errors.is_empty(), "{:?}", in_folder.errors);
        assert_eq!(in_folder.not_objects.len(), 1);
        assert!(
            in_folder.not_objects[0].reason.starts_with("not a Kubernetes object"),
            "{:?}",
            in_folder.not_objects
        );
        let named = read_one(values, true);
        assert_eq!(named.errors.len(), 1, "{:?}", named.errors);
        assert!(named.errors[0].reason.starts_with("holds no Kubernetes object"), "{}", named.errors[0]);
        // A named file with one object and one stray document: the stray one is only skipped.
        let mixed =
            read_one(&format!("{values}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: a}}\n"), true);
        assert!(mixed.errors.is_empty(), "{:?}", mixed.errors);
        assert_eq!((mixed.documents.len(), mixed.not_objects.len()), (1, 1));
        assert!(read_one("", true).errors[0].reason.contains("no document at all"));
    }

    #[test]
    fn bad_yaml_is_an_error_with_its_place() {
        let mut inputs = Inputs::default();
        read_text("g.yaml", "a: [1,\n", false, false, &Options::default(), &mut inputs);
        assert_eq!(inputs.errors.len(), 1, "{:?}", inputs.errors);
        assert!(inputs.errors[0].to_string().starts_with("g.yaml:"), "{}", inputs.errors[0]);
    }

    #[test]
    fn api_versions_no_longer_served_are_evaluated_with_a_note() {
        let text = "apiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  template:\n    spec: {containers: [{name: c, image: x}]}\n";
        let inputs = read_one(text, true);
        let d = &inputs.documents[0];
        assert_eq!(d.request.kind.group, "apps");
        assert!(d.notes[0].contains("no longer served (since Kubernetes 1.16)"), "{:?}", d.notes);
        assert!(d.not_served);
    }

    #[test]
    fn namespace_comes_from_the_manifest_else_the_option_else_none() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: prod}\n";
        let mut inputs = Inputs::default();
        let options = Options { namespace: Some("team".into()), ..Options::default() };
        read_text("f.yaml", text, false, true, &options, &mut inputs);
        let ns: Vec<_> = inputs.documents.iter().map(|d| d.request.namespace.clone().unwrap()).collect();
        assert_eq!(ns, ["team", "prod"]);
        let ns: Vec<_> =
            read_one(text, true).documents.iter().map(|d| d.request.namespace.clone().unwrap()).collect();
        assert_eq!(ns, ["", "prod"]);
        // An empty metadata.namespace names none.
        let mut inputs = Inputs::default();
        let empty = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ''}\n";
        read_text("f.yaml", empty, false, true, &options, &mut inputs);
        assert_eq!(inputs.documents[0].request.namespace.as_deref(), Some("team"));
    }

    #[test]
    fn an_object_that_aliases_blow_up_past_what_the_api_server_accepts_is_an_error() {
        let big = "x".repeat(60_000);
        let refs = vec!["*c"; 60].join(", ");
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: big}}\nc: &c {{name: c, image: \"{big}\"}}\nspec:\n  containers: [{refs}]\n"
        );
        let inputs = read_one(&text, true);
        assert!(inputs.documents.is_empty());
        assert!(
            inputs.errors[0].reason.contains("more than the 3 MiB the API server accepts"),
            "{:?}",
            inputs.errors
        );
    }

    #[test]
    fn violation_paths_split_into_segments() {
        use Segment::{Index, Key};
        let k = |s: &str| Key(s.to_owned());
        assert_eq!(
            path_segments("spec.template.spec.containers[10].securityContext"),
            [k("spec"), k("template"), k("spec"), k("containers"), Index(10), k("securityContext")]
        );
        assert_eq!(
            path_segments("metadata.annotations[\"container.apparmor.security.beta.kubernetes.io/app\"]"),
            [k("metadata"), k("annotations"), k("container.apparmor.security.beta.kubernetes.io/app")]
        );
        assert_eq!(path_segments(""), []);
    }

    #[test]
    fn lines_of_violation_paths_point_into_list_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec:\n    containers:\n    - name: c\n      securityContext:\n        privileged: true\n";
        let inputs = read_one(text, true);
        let d = &inputs.documents[0];
        assert_eq!(d.line_of("spec.containers[0].securityContext.privileged"), 11);
        assert_eq!(d.line_of("spec.containers[0].securityContext.runAsNonRoot"), 10);
        assert_eq!(d.line_of("spec.hostPID"), 7);
    }
}
