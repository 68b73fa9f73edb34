//! `podguard check`: manifests in, report and exit code out, through the webhook's own decision.
//!
//! The namespace context is the webhook's too: `Namespace` objects in the input and
//! `--namespace-labels` give namespaces their labels (the mode label, and what policies'
//! `namespaceSelector`s see), and the webhook's exemption flags skip what it would skip.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::admission::exemptions::Exemptions;
use crate::admission::{self, Settings};
use crate::input::{Document, Inputs};
use crate::policy::{Mode, PolicySet};
use crate::report::{self, ObjectResult, Summary};
use crate::source;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Grouped by object, for people.
    Text,
    /// The stable JSON contract (docs/cli.md).
    Json,
    /// SARIF 2.1.0, for code scanning (GitHub, GitLab, Azure DevOps).
    Sarif,
    /// JUnit XML: one test case per object, failed when it fails the run.
    Junit,
    /// Counts by policy and rule only.
    Summary,
}

/// What makes `check` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Objects the webhook would refuse.
    Enforce,
    /// ... and objects it would admit with warnings.
    Warn,
    /// ... and objects with any finding at all.
    Audit,
}

impl FailOn {
    fn mode(self) -> Mode {
        match self {
            Self::Enforce => Mode::Enforce,
            Self::Warn => Mode::Warn,
            Self::Audit => Mode::Audit,
        }
    }
}

/// Flags of `podguard check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files or folders (repeatable). Without it, the built-in library.
    #[arg(long = "policies", value_name = "PATH")]
    pub policies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// What makes the exit code 1: violations at this mode or a stronger one (and refused objects
    /// in any case).
    #[arg(long, value_enum, default_value = "enforce")]
    pub fail_on: FailOn,
    /// List skipped objects (not a pod kind, exempt, not a Kubernetes object) in text output.
    #[arg(long)]
    pub show_skipped: bool,
    /// How the webhook would see the objects.
    #[command(flatten)]
    pub admission: AdmissionArgs,
    /// Manifests: files, folders, or `-` for stdin.
    #[arg(value_name = "PATH", default_value = "-")]
    pub paths: Vec<PathBuf>,
}

/// The flags that make `check` and `report` decide as the webhook does: namespace modes and
/// labels, exemptions, unreadable objects.
#[derive(Debug, Clone, clap::Args)]
pub struct AdmissionArgs {
    /// Mode of namespaces without a `podguard.dev/mode` label (as the webhook's `--default-mode`).
    #[arg(long, default_value = "enforce")]
    pub default_mode: Mode,
    /// Honour the `podguard.dev/mode` namespace label (as the webhook's flag).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub namespace_mode_label: bool,
    /// Namespace of manifests that name none, as `kubectl -n` or `helm -n` would give them.
    /// Without it they are in no namespace in particular: checks of the namespace itself,
    /// namespace labels and namespace exemptions do not apply to them.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Labels of a namespace as it is in the cluster, `NS:KEY=VALUE,KEY=VALUE` (repeatable);
    /// a `Namespace` object in the input adds to and overrides them.
    #[arg(long = "namespace-labels", value_name = "NS:LABELS")]
    pub namespace_labels: Vec<String>,
    /// Namespaces no policy applies to (comma list), as the webhook's flag.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "kube-system")]
    pub exempt_namespaces: Vec<String>,
    /// `runtimeClassName`s no policy applies to (comma list), as the webhook's flag.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub exempt_runtime_classes: Vec<String>,
    /// Answer for an object that cannot be read as its kind, as the webhook's flag.
    #[arg(long, value_enum, default_value = "deny")]
    pub on_error: OnErrorArg,
}

/// `--on-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnErrorArg {
    /// Refuse it, naming the field.
    Deny,
    /// Admit it with a warning.
    Allow,
}

impl From<OnErrorArg> for crate::admission::OnError {
    fn from(on_error: OnErrorArg) -> Self {
        match on_error {
            OnErrorArg::Deny => Self::Deny,
            OnErrorArg::Allow => Self::Allow,
        }
    }
}

/// Loads the policies of `--policies` (all or nothing), or the built-in library.
pub fn load_policies(paths: &[PathBuf]) -> Result<PolicySet, Vec<crate::policy::LoadError>> {
    let loaded = if paths.is_empty() { source::embedded::load()? } else { source::files::load_all(paths)? };
    let (set, errors) = PolicySet::merge([loaded]);
    if errors.is_empty() { Ok(set) } else { Err(errors) }
}

/// Label every namespace has in a cluster since Kubernetes 1.21 (the API server sets it), and
/// that `namespaceSelector`s commonly use.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// What `check` knows of namespaces: their labels, from `--namespace-labels` and the `Namespace`
/// objects of the input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Namespaces(HashMap<String, BTreeMap<String, String>>);

impl Namespaces {
    /// Parses `--namespace-labels` values (`NS:KEY=VALUE,KEY=VALUE`; `NS:` for none).
    pub fn from_flags(values: &[String]) -> Result<Self, String> {
        let mut out = Self::default();
        for value in values {
            let Some((ns, labels)) = value.split_once(':').filter(|(ns, _)| !ns.is_empty()) else {
                return Err(format!("--namespace-labels {value:?}: expected NS:KEY=VALUE,KEY=VALUE"));
            };
            let map = out.0.entry(ns.to_owned()).or_default();
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let Some((k, v)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                    return Err(format!("--namespace-labels {value:?}: {pair:?} is not KEY=VALUE"));
                };
                map.insert(k.to_owned(), v.to_owned());
            }
        }
        Ok(out)
    }

    /// Namespaces with the given labels.
    pub fn from_map(map: BTreeMap<String, BTreeMap<String, String>>) -> Self {
        Self(map.into_iter().collect())
    }

    /// Adds the labels of the `Namespace` objects among `documents`.
    pub fn add_objects(&mut self, documents: &[Document]) {
        for d in documents {
            let kind = &d.request.kind;
            if kind.kind != "Namespace" || !kind.group.is_empty() {
                continue;
            }
            let Some(object) = d.request.object.as_deref() else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(object.get()) else { continue };
            let Some(name) = v.pointer("/metadata/name").and_then(|n| n.as_str()) else { continue };
            let map = self.0.entry(name.to_owned()).or_default();
            if let Some(labels) = v.pointer("/metadata/labels").and_then(|l| l.as_object()) {
                for (k, v) in labels {
                    if let Some(v) = v.as_str() {
                        map.insert(k.clone(), v.to_owned());
                    }
                }
            }
        }
    }

    /// The labels of `namespace` as the webhook would see them: those known, and the name label
    /// the API server sets. `None` for no namespace in particular.
    pub fn labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        if namespace.is_empty() {
            return None;
        }
        let mut labels = self.0.get(namespace).cloned().unwrap_or_default();
        // The API server sets it whatever the object says.
        labels.insert(NAME_LABEL.to_owned(), namespace.to_owned());
        Some(labels)
    }
}

/// Decides one document as the webhook would.
pub fn decide(set: &PolicySet, settings: &Settings, namespaces: &Namespaces, doc: &Document) -> ObjectResult {
    let labels = doc.request.namespace.as_deref().and_then(|ns| namespaces.labels(ns));
    let mut result = doc.result(admission::evaluate(set, settings, &doc.request, labels.as_ref()));
    if doc.not_served {
        // The API server refuses the apiVersion before any webhook sees the object.
        result.allowed = false;
    }
    result
}

/// The settings of the admission flags.
pub fn settings(args: &AdmissionArgs) -> Settings {
    let set = |v: &[String]| v.iter().filter(|s| !s.is_empty()).cloned().collect();
    Settings {
        default_mode: args.default_mode,
        namespace_mode_label: args.namespace_mode_label,
        exemptions: Exemptions {
            namespaces: set(&args.exempt_namespaces),
            usernames: Default::default(),
            runtime_classes: set(&args.exempt_runtime_classes),
        },
        on_error: args.on_error.into(),
        ..Settings::default()
    }
}

/// The policies of `--policies` and the namespaces of `--namespace-labels`, or, having said what
/// is wrong on stderr, the exit code 2: what `check` and `report` start from.
pub fn policies_and_namespaces(
    policies: &[PathBuf],
    admission: &AdmissionArgs,
) -> Result<(PolicySet, Namespaces), ExitCode> {
    let set = load_policies(policies).map_err(|errors| {
        for e in &errors {
            eprintln!("podguard: policy error: {e}");
        }
        ExitCode::from(2)
    })?;
    let namespaces = Namespaces::from_flags(&admission.namespace_labels).map_err(|e| {
        eprintln!("podguard: {e}");
        ExitCode::from(2)
    })?;
    Ok((set, namespaces))
}

/// Runs the check.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (set, mut namespaces) = match policies_and_namespaces(&args.policies, &args.admission) {
        Ok(started) => started,
        Err(code) => return Ok(code),
    };
    let settings = settings(&args.admission);
    let options = crate::input::Options { namespace: args.admission.namespace.clone(), ..Default::default() };
    let inputs = crate::input::read(&args.paths, &options);
    for e in &inputs.errors {
        eprintln!("podguard: input error: {e}");
    }
    namespaces.add_objects(&inputs.documents);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let failed =
        write_report(&args, &set, &settings, &namespaces, &inputs, &mut out).context("writing the report")?;
    out.flush().context("writing the report")?;
    Ok(ExitCode::from(if !inputs.errors.is_empty() {
        2
    } else if failed {
        1
    } else {
        0
    }))
}

/// A report being written.
enum Streamed {
    Text(report::text::Text),
    Json(report::json::Json),
    Sarif(report::sarif::Sarif),
    /// Every result, for the formats written at the end.
    No(Vec<ObjectResult>),
}

/// Decides every document and writes the report in the chosen format; text, JSON and SARIF are
/// written object by object. Returns whether any object fails the run.
fn write_report(
    args: &Args,
    set: &PolicySet,
    settings: &Settings,
    namespaces: &Namespaces,
    inputs: &Inputs,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let fail_on = args.fail_on.mode();
    let mut summary = Summary::default();
    let mut failed = false;
    let results = inputs
        .documents
        .iter()
        .map(|doc| decide(set, settings, namespaces, doc))
        .chain(inputs.not_objects.iter().map(crate::input::NotAnObject::result));
    // Text, JSON and SARIF are written object by object; JUnit and the summary need every
    // result first.
    let mut streamed = match args.format {
        Format::Text => Streamed::Text(report::text::Text { show_skipped: args.show_skipped }),
        Format::Json => Streamed::Json(report::json::Json::default()),
        Format::Sarif => Streamed::Sarif(report::sarif::Sarif::begin(set, out)?),
        Format::Junit | Format::Summary => Streamed::No(Vec::new()),
    };
    for r in results {
        summary.add(&r);
        failed |= r.fails(fail_on);
        match &mut streamed {
            Streamed::Text(text) => text.result(out, &r)?,
            Streamed::Json(json) => json.result(out, &r)?,
            Streamed::Sarif(sarif) => sarif.result(out, &r)?,
            Streamed::No(all) => all.push(r),
        }
    }
    match streamed {
        Streamed::Text(text) => text.finish(out, &summary)?,
        Streamed::Json(mut json) => json.finish(out, &summary)?,
        Streamed::Sarif(sarif) => sarif.finish(out)?,
        Streamed::No(all) => {
            let report = report::Report::new(all);
            let rendered = match args.format {
                Format::Junit => report::junit::render(&report, fail_on),
                _ => report::summary::render(&report),
            };
            out.write_all(rendered.as_bytes())?;
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_labels_from_flags_and_objects() {
        let mut ns =
            Namespaces::from_flags(&["prod:team=a,podguard.dev/mode=warn".into(), "dev:".into()]).unwrap();
        assert_eq!(ns.labels("prod").unwrap()["podguard.dev/mode"], "warn");
        assert_eq!(ns.labels("dev").unwrap()[NAME_LABEL], "dev");
        assert_eq!(ns.labels("other").unwrap().len(), 1);
        assert_eq!(ns.labels(""), None);
        let text =
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {podguard.dev/mode: audit}}\n";
        let mut inputs = Inputs::default();
        crate::input::read_text("n.yaml", text, false, true, &Default::default(), &mut inputs);
        ns.add_objects(&inputs.documents);
        let prod = ns.labels("prod").unwrap();
        assert_eq!((prod["podguard.dev/mode"].as_str(), prod["team"].as_str()), ("audit", "a"));
        // The name label is the API server's, whatever an object says.
        let mut inputs = Inputs::default();
        let lying = "apiVersion: v1\nkind: Namespace\nmetadata: {name: dev, labels: {kubernetes.io/metadata.name: prod}}\n";
        crate::input::read_text("n.yaml", lying, false, true, &Default::default(), &mut inputs);
        ns.add_objects(&inputs.documents);
        assert_eq!(ns.labels("dev").unwrap()[NAME_LABEL], "dev");
        for bad in ["prod", ":a=b", "prod:a", "prod:=b"] {
            assert!(Namespaces::from_flags(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
