//! `podguard check`: manifests in, report and exit code out, through the webhook's own decision.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::admission::{self, Settings};
use crate::policy::{Mode, PolicySet};
use crate::report::{self, ObjectResult, Report};
use crate::source;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Grouped by object, for people.
    Text,
    /// The stable JSON contract (docs/cli.md).
    Json,
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
    /// Mode of namespaces (as the webhook's `--default-mode`).
    #[arg(long, default_value = "enforce")]
    pub default_mode: Mode,
    /// Namespace for manifests that name none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Manifests: files, folders, or `-` for stdin.
    #[arg(value_name = "PATH", default_value = "-")]
    pub paths: Vec<PathBuf>,
}

/// Loads the policies of `--policies` (all or nothing), or the built-in library.
pub fn load_policies(paths: &[PathBuf]) -> Result<PolicySet, Vec<crate::policy::LoadError>> {
    let loaded = if paths.is_empty() { source::embedded::load()? } else { source::files::load_all(paths)? };
    let (set, errors) = PolicySet::merge([loaded]);
    if errors.is_empty() { Ok(set) } else { Err(errors) }
}

/// Runs the check.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let set = match load_policies(&args.policies) {
        Ok(set) => set,
        Err(errors) => {
            for e in &errors {
                eprintln!("podguard: policy error: {e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let settings = Settings { default_mode: args.default_mode, ..Settings::default() };
    let inputs = crate::input::read(&args.paths, &args.namespace);
    for e in &inputs.errors {
        eprintln!("podguard: input error: {e}");
    }
    let results: Vec<ObjectResult> = inputs
        .documents
        .iter()
        .map(|doc| ObjectResult::new(doc, admission::evaluate(&set, &settings, &doc.request, None)))
        .collect();
    let report = Report::new(results);
    let rendered = match args.format {
        Format::Text => report::text::render(&report),
        Format::Json => report::json::render(&report),
    };
    std::io::stdout().lock().write_all(rendered.as_bytes()).context("writing the report")?;
    Ok(ExitCode::from(if !inputs.errors.is_empty() {
        2
    } else if report.summary.denied > 0 {
        1
    } else {
        0
    }))
}
