//! `podguard test`: policy authors' own tests. A `PolicyTest` document names policies, manifests
//! and what each policy rule must say of each object; the command decides every object as
//! `check` does and compares.
//!
//! ```yaml
//! apiVersion: podguard.dev/v1
//! kind: PolicyTest
//! metadata: {name: registries}
//! spec:
//!   policies: [../allowed-registries.yaml]   # relative to this file; none: the built-in library
//!   resources: [resources/]                   # manifests, relative to this file
//!   expect:
//!   - {object: Pod/prod/web, policy: allowed-registries, rule: registry, result: fail}
//! ```
//!
//! `result` is `fail` (the rule reports the object), `pass` (the policy applies to the object
//! and the rule reports nothing) or `skip` (the object is not evaluated at all, or the policy's
//! match block leaves it out).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;

use crate::admission::Settings;
use crate::cli::check::{self, Namespaces};
use crate::input::{Document, Options};
use crate::policy::{Mode, PolicySet};

/// Flags of `podguard test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `PolicyTest` files, or folders holding them (every `.yaml`/`.yml` file whose documents
    /// are of kind `PolicyTest`; other documents are ignored).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// The `apiVersion` of test documents.
pub const API_VERSION: &str = "podguard.dev/v1";
/// The `kind` of test documents.
pub const KIND: &str = "PolicyTest";

/// A `PolicyTest` document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTest {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`KIND`].
    pub kind: String,
    /// Its name, shown in the output.
    pub metadata: TestMetadata,
    /// What to test.
    pub spec: TestSpec,
}

/// Metadata of a test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestMetadata {
    /// Name shown in the output.
    pub name: String,
}

/// The body of a test.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestSpec {
    /// Policy files or folders, relative to the test file; none: the built-in library.
    #[serde(default)]
    pub policies: Vec<PathBuf>,
    /// Manifest files or folders, relative to the test file.
    pub resources: Vec<PathBuf>,
    /// Namespace of manifests that name none (as `check --namespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Namespace labels (as `check --namespace-labels`).
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Mode of namespaces without a mode label (default enforce).
    #[serde(default)]
    pub default_mode: Option<Mode>,
    /// Namespaces no policy applies to (default `[kube-system]`, as `check` and `serve`).
    #[serde(default)]
    pub exempt_namespaces: Option<Vec<String>>,
    /// The expected results.
    pub expect: Vec<Expectation>,
}

/// What one policy rule must say of one object.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// `Kind/namespace/name`, or `Kind/name` for an object that names no namespace.
    pub object: String,
    /// Policy name.
    pub policy: String,
    /// Rule name in the policy.
    pub rule: String,
    /// The expected result.
    pub result: Expected,
}

/// A rule's result for an object.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// The policy applies and the rule reports nothing.
    Pass,
    /// The rule reports the object.
    Fail,
    /// Not evaluated, or the policy does not apply.
    Skip,
}

impl Expected {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// How one test file went.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Expectations met.
    pub passed: usize,
    /// `(expectation, what happened, detail)` for each one not met.
    pub mismatches: Vec<(Expectation, Expected, String)>,
    /// What kept the test from running or an expectation from being judged.
    pub errors: Vec<String>,
}

/// Runs the tests.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (mut failed, mut broken, mut total) = (0usize, 0usize, 0usize);
    let mut files = Vec::new();
    for p in &args.paths {
        if p.is_dir() {
            let found = walkdir::WalkDir::new(p).sort_by_file_name().into_iter().filter_map(Result::ok);
            files.extend(
                found
                    .filter(|e| e.file_type().is_file())
                    .map(walkdir::DirEntry::into_path)
                    .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml")),
            );
        } else {
            files.push(p.clone());
        }
    }
    for file in &files {
        let explicit = args.paths.contains(file);
        let tests = match read_tests(file) {
            Ok(tests) => tests,
            Err(e) => {
                eprintln!("podguard: test error: {}: {e}", file.display());
                broken += 1;
                total += 1;
                continue;
            }
        };
        if tests.is_empty() && explicit {
            eprintln!("podguard: test error: {}: holds no {KIND} document", file.display());
            broken += 1;
            total += 1;
        }
        for (line, test) in tests {
            total += 1;
            let outcomes = run_test(file, &test);
            let place = format!("{}:{line} ({})", file.display(), test.metadata.name);
            if !outcomes.errors.is_empty() {
                broken += 1;
                println!("ERROR {place}");
                for e in &outcomes.errors {
                    println!("  {e}");
                }
            } else if outcomes.mismatches.is_empty() {
                println!("ok    {place}: {} expectations met", outcomes.passed);
            } else {
                failed += 1;
                println!(
                    "FAIL  {place}: {} of {} expectations not met",
                    outcomes.mismatches.len(),
                    test.spec.expect.len()
                );
                print!("{}", diff(&outcomes.mismatches));
            }
        }
    }
    if total == 0 {
        // A folder without tests is a wrong path more often than a choice.
        eprintln!("podguard: test error: no {KIND} document found");
        return Ok(ExitCode::from(2));
    }
    println!(
        "{total} test{}: {} passed, {failed} failed, {broken} broken",
        if total == 1 { "" } else { "s" },
        total.saturating_sub(failed + broken)
    );
    Ok(ExitCode::from(if broken > 0 {
        2
    } else if failed > 0 {
        1
    } else {
        0
    }))
}

/// The `PolicyTest` documents of `file`, with their first lines.
pub fn read_tests(file: &Path) -> Result<Vec<(usize, PolicyTest)>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let mut out = Vec::new();
    for doc in crate::yaml11::read_documents(&text, &Default::default()) {
        let doc = doc.map_err(|e| e.to_string())?;
        let is_test = doc.value.get("kind").and_then(|k| k.as_str()) == Some(KIND);
        if !is_test {
            continue;
        }
        let test: PolicyTest = serde_path_to_error::deserialize(&doc.value)
            .map_err(|e| format!("line {}: {}: {}", doc.line, e.path(), e.inner()))?;
        if test.api_version != API_VERSION {
            return Err(format!("line {}: apiVersion must be {API_VERSION}", doc.line));
        }
        out.push((doc.line, test));
    }
    Ok(out)
}

/// Runs one test: loads its policies and resources (relative to `file`), decides every object
/// and compares.
pub fn run_test(file: &Path, test: &PolicyTest) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let base = file.parent().unwrap_or(Path::new("."));
    let relative = |p: &PathBuf| base.join(p);
    let set = match check::load_policies(&test.spec.policies.iter().map(relative).collect::<Vec<_>>()) {
        Ok(set) => set,
        Err(errors) => {
            outcomes.errors.extend(errors.iter().map(|e| format!("policy error: {e}")));
            return outcomes;
        }
    };
    let options = Options { namespace: test.spec.namespace.clone(), ..Default::default() };
    let inputs = crate::input::read(&test.spec.resources.iter().map(relative).collect::<Vec<_>>(), &options);
    outcomes.errors.extend(inputs.errors.iter().map(|e| format!("input error: {e}")));
    if !outcomes.errors.is_empty() {
        return outcomes;
    }
    let mut namespaces = Namespaces::from_map(test.spec.namespace_labels.clone());
    namespaces.add_objects(&inputs.documents);
    let exempt = test.spec.exempt_namespaces.clone().unwrap_or_else(|| vec!["kube-system".to_owned()]);
    let settings = Settings {
        default_mode: test.spec.default_mode.unwrap_or(Mode::Enforce),
        exemptions: crate::admission::exemptions::Exemptions {
            namespaces: exempt.into_iter().collect(),
            ..Default::default()
        },
        record_applied: true,
        ..Settings::default()
    };
    for e in &test.spec.expect {
        match judge(&set, &settings, &namespaces, &inputs.documents, e) {
            Ok((got, _)) if got == e.result => outcomes.passed += 1,
            Ok((got, detail)) => outcomes.mismatches.push((e.clone(), got, detail)),
            Err(why) => outcomes.errors.push(format!("{} {}/{}: {why}", e.object, e.policy, e.rule)),
        }
    }
    outcomes
}

/// What `e.policy`/`e.rule` says of `e.object`, and the findings or the reason behind it.
fn judge(
    set: &PolicySet,
    settings: &Settings,
    namespaces: &Namespaces,
    documents: &[Document],
    e: &Expectation,
) -> Result<(Expected, String), String> {
    let Some(policy) = set.policies().iter().find(|p| *p.name == e.policy) else {
        return Err(format!("no policy {:?} in the test's policies", e.policy));
    };
    if !policy.rules.iter().any(|r| *r.name == e.rule) {
        let rules: Vec<&str> = policy.rules.iter().map(|r| &*r.name).collect();
        return Err(format!("policy {} has no rule {:?} (it has {})", e.policy, e.rule, rules.join(", ")));
    }
    let matching: Vec<&Document> = documents.iter().filter(|d| names(d, &e.object)).collect();
    let doc = match matching.as_slice() {
        [one] => *one,
        [] => return Err("no such object in the test's resources".to_owned()),
        many => return Err(format!("{} objects have this name; give the namespace", many.len())),
    };
    let result = check::decide(set, settings, namespaces, doc);
    let decision_reason = result.reason.clone().unwrap_or_default();
    if result.skipped {
        return Ok((Expected::Skip, decision_reason));
    }
    // An unreadable object (`on_error`) is refused by every policy alike.
    if let Some(reason) = result.reason.as_ref().filter(|_| !result.allowed && result.violations.is_empty()) {
        return Ok((Expected::Fail, reason.clone()));
    }
    let found: Vec<String> = result
        .violations
        .iter()
        .filter(|f| {
            let v = &f.violation;
            *v.rule == e.rule && (*v.policy == e.policy || v.also.iter().any(|p| **p == e.policy))
        })
        .map(|f| f.violation.line())
        .collect();
    if !found.is_empty() {
        return Ok((Expected::Fail, found.join("\n")));
    }
    let applied = result.applied.iter().any(|p| **p == e.policy);
    if !applied {
        return Ok((Expected::Skip, format!("policy {} does not apply to this object", e.policy)));
    }
    Ok((Expected::Pass, String::new()))
}

/// Whether `d` is the object `Kind/namespace/name` (or `Kind/name`: no namespace named).
fn names(d: &Document, object: &str) -> bool {
    let r = &d.request;
    let (kind, name) = (r.kind.kind.as_str(), r.name.as_deref().unwrap_or_default());
    let namespace = r.namespace.as_deref().unwrap_or_default();
    match object.split('/').collect::<Vec<_>>().as_slice() {
        [k, n] => *k == kind && *n == name,
        [k, ns, n] => *k == kind && *ns == namespace && *n == name,
        _ => false,
    }
}

/// The mismatches as a diff: `-` what was expected, `+` what happened, and why.
pub fn diff(mismatches: &[(Expectation, Expected, String)]) -> String {
    let mut out = String::new();
    for (e, got, detail) in mismatches {
        out.push_str(&format!("  {} {}/{}\n", e.object, e.policy, e.rule));
        out.push_str(&format!("  -   result: {}\n", e.result.as_str()));
        out.push_str(&format!("  +   result: {}\n", got.as_str()));
        for line in detail.lines() {
            out.push_str(&format!("        {line}\n"));
        }
    }
    out
}
