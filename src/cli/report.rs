//! `podguard report`: compliance evidence per framework and control, from manifests (read as
//! `check` reads them) or from the workloads stored in a cluster (`--cluster`, read-only).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::check::{AdmissionArgs, Namespaces, decide, policies_and_namespaces, settings};
use crate::report::compliance;
use crate::report::compliance::evidence::{self, Builder, Meta, Source};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One self-contained page for auditors (summary chart, drill-down per control, prints).
    Html,
    /// Tables and lists, for a pull request, a wiki or a ticket.
    Markdown,
    /// The versioned JSON contract (docs/compliance.md).
    Json,
    /// One row per control and failing finding, for spreadsheets and GRC tools.
    Csv,
}

/// Flags of `podguard report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy files or folders (repeatable). Without it, the built-in library.
    #[arg(long = "policies", value_name = "PATH")]
    pub policies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Evaluate the workloads stored in the cluster of the kubeconfig (KUBECONFIG, or
    /// ~/.kube/config, or in-cluster) instead of manifests. Read-only: lists namespaces and
    /// every workload kind.
    #[arg(long, conflicts_with = "paths")]
    pub cluster: bool,
    /// Kubeconfig context to use with --cluster (default: the current one).
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub context: Option<String>,
    /// Cluster name written in the evidence (default: the kubeconfig context's cluster).
    #[arg(long, value_name = "NAME", requires = "cluster")]
    pub cluster_name: Option<String>,
    /// With --cluster, also report the objects a listed controller owns (the ReplicaSets and Pods
    /// of a Deployment ...), which otherwise are reported through their owner.
    #[arg(long, requires = "cluster")]
    pub include_owned: bool,
    /// How the webhook would see the objects.
    #[command(flatten)]
    pub admission: AdmissionArgs,
    /// Manifests: files, folders, or `-` for stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs the report.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (set, mut namespaces) = match policies_and_namespaces(&args.policies, &args.admission) {
        Ok(started) => started,
        Err(code) => return Ok(code),
    };
    if args.cluster && (args.admission.namespace.is_some() || !args.admission.namespace_labels.is_empty()) {
        eprintln!(
            "podguard: --namespace and --namespace-labels apply to manifests; with --cluster, objects and \
             namespace labels are the cluster's"
        );
        return Ok(ExitCode::from(2));
    }
    let mut settings = settings(&args.admission);
    settings.record_applied = true;
    let meta = |source| Meta {
        generated: evidence::now_rfc3339(),
        podguard_version: env!("CARGO_PKG_VERSION").to_owned(),
        policy_set_digest: evidence::digest(&set),
        policies: evidence::policies(&set),
        source,
        exempt_namespaces: sorted(&settings.exemptions.namespaces),
        settings: evidence::SettingsMeta {
            default_mode: settings.default_mode,
            namespace_mode_label: settings.namespace_mode_label,
            exempt_runtime_classes: sorted(&settings.exemptions.runtime_classes),
            on_error: match settings.on_error {
                crate::admission::OnError::Deny => "deny",
                crate::admission::OnError::Allow => "allow",
            },
        },
    };
    let mut failed_inputs = false;
    let evidence = if args.cluster {
        match from_cluster(&args, &set, &settings, meta) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("podguard: {e:#}");
                return Ok(ExitCode::from(2));
            }
        }
    } else {
        let paths = if args.paths.is_empty() { vec![PathBuf::from("-")] } else { args.paths.clone() };
        let options =
            crate::input::Options { namespace: args.admission.namespace.clone(), ..Default::default() };
        let inputs = crate::input::read(&paths, &options);
        for e in &inputs.errors {
            eprintln!("podguard: input error: {e}");
        }
        failed_inputs = !inputs.errors.is_empty();
        namespaces.add_objects(&inputs.documents);
        let shown = paths.iter().map(|p| p.display().to_string()).collect();
        let mut b = Builder::new(&set, meta(Source::Manifests { paths: shown }));
        for doc in &inputs.documents {
            b.add(&decide(&set, &settings, &namespaces, doc));
        }
        for n in &inputs.not_objects {
            b.add(&n.result());
        }
        b.finish()
    };
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        let mut out = BufWriter::new(out);
        match args.format {
            Format::Html => compliance::html::render(&evidence, &mut out)?,
            Format::Markdown => compliance::markdown::render(&evidence, &mut out)?,
            Format::Json => compliance::json(&evidence, &mut out)?,
            Format::Csv => compliance::csv::render(&evidence, &mut out)?,
        }
        out.flush()
    };
    match &args.output {
        Some(path) => {
            // Written beside and renamed, so a failed run never leaves half a report in place.
            let dir =
                path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let mut tmp =
                tempfile_in(dir).with_context(|| format!("creating a file in {}", dir.display()))?;
            write(tmp.as_file_mut()).with_context(|| format!("writing {}", path.display()))?;
            // A report is for others to read (CI artifacts, auditors): not the temporary
            // file's owner-only mode.
            readable(tmp.as_file()).with_context(|| format!("writing {}", path.display()))?;
            tmp.persist(path).with_context(|| format!("writing {}", path.display()))?;
        }
        // A reader that stops early (`| head`) is not an error, as for `policies list`.
        None => match write(&mut std::io::stdout().lock()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(anyhow::Error::new(e).context("writing the report"));
            }
            _ => {}
        },
    }
    Ok(ExitCode::from(if failed_inputs { 2 } else { 0 }))
}

fn sorted(set: &std::collections::HashSet<String>) -> Vec<String> {
    let mut v: Vec<String> = set.iter().cloned().collect();
    v.sort_unstable();
    v
}

#[cfg(unix)]
fn readable(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn readable(_: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

fn tempfile_in(dir: &std::path::Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new().prefix(".podguard-report").tempfile_in(dir)
}

/// Lists the cluster's namespaces and workloads and decides each object as admission would.
fn from_cluster(
    args: &Args,
    set: &crate::policy::PolicySet,
    settings: &crate::admission::Settings,
    meta: impl FnOnce(Source) -> Meta,
) -> anyhow::Result<evidence::Evidence> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let options = kube::config::KubeConfigOptions { context: args.context.clone(), ..Default::default() };
        let (config, known_name) = match kube::config::Kubeconfig::read() {
            Ok(kubeconfig) => {
                let context = args.context.clone().or_else(|| kubeconfig.current_context.clone());
                let cluster = context.as_ref().and_then(|c| {
                    kubeconfig
                        .contexts
                        .iter()
                        .find(|n| &n.name == c)
                        .and_then(|n| n.context.as_ref())
                        .map(|c| c.cluster.clone())
                });
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| anyhow::anyhow!("--cluster: the kubeconfig cannot be used: {e}"))?;
                (config, cluster)
            }
            Err(_) if args.context.is_none() => (
                kube::Config::incluster().map_err(|e| {
                    anyhow::anyhow!("--cluster: found no kubeconfig and not in a cluster: {e}")
                })?,
                None,
            ),
            Err(e) => anyhow::bail!("--cluster --context: cannot read the kubeconfig: {e}"),
        };
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config)
            .map_err(|e| anyhow::anyhow!("--cluster: cannot build a Kubernetes client: {e}"))?;
        eprintln!("podguard: reading namespaces from {server}");
        let labels = crate::source::inventory::namespaces(&client)
            .await
            .map_err(|e| anyhow::anyhow!("--cluster: listing namespaces at {server}: {}", said(&e)))?;
        let namespaces = Namespaces::from_map(labels);
        let cluster = args.cluster_name.clone().or(known_name);
        let mut b = Builder::new(set, meta(Source::Cluster { cluster, server: server.clone() }));
        let options = crate::input::Options::default();
        let mut index = 0usize;
        let listed = crate::source::inventory::workloads(
            &client,
            args.include_owned,
            |line| eprintln!("podguard: {line}"),
            |object| {
                let mut inputs = crate::input::Inputs::default();
                crate::input::add_value("cluster", index, object, None, &options, &mut inputs);
                index += 1;
                for e in &inputs.errors {
                    eprintln!("podguard: cannot evaluate an object from the cluster: {e}");
                }
                for doc in &inputs.documents {
                    b.add(&decide(set, settings, &namespaces, doc));
                }
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("--cluster: listing workloads at {server}: {}", said(&e)))?;
        let total: usize = listed.reported.values().sum();
        eprintln!(
            "podguard: listed {total} objects to report ({} owned by a reported controller left out)",
            listed.owned
        );
        Ok(b.finish())
    })
}

/// What the API server said, in one line: its own message for a refusal (`pods is forbidden:
/// User "x" cannot list ...`), kube's text otherwise.
fn said(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
}
