//! The running webhook: TLS and policies loaded ([`start`]), the cluster's sources and the audit
//! started, the ports bound, files watched until the process ends.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{EXIT_CONFIG, Plan, TlsPlan};
use crate::metrics::Metrics;
use crate::server::tls::{CertFiles, CertResolver, SelfSigned};
use crate::server::{self, NamespaceLabels, NoNamespaceLabels, Readiness, Server, Shared, State};
use crate::source::cluster::{self, ConfigMapOptions};
use crate::source::watch::PolicyFiles;
use crate::source::{SourceKey, Store, collectors, embedded};

/// How often certificate and policy files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What [`start`] loaded: the resolver, the watchers, the store.
pub(super) struct Started {
    certs: Arc<CertResolver>,
    cert_files: Option<CertFiles>,
    policy_files: Option<PolicyFiles>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// Where the audit goes once it runs, for its metrics.
    audit_slot: collectors::AuditSlot,
}

/// Loads TLS and policies. Every error here is a configuration error.
pub(super) fn start(plan: &Plan) -> anyhow::Result<Started> {
    let (certs, cert_files) = match &plan.tls {
        TlsPlan::Files { cert, key } => {
            let (files, resolver) = CertFiles::load(cert.clone(), key.clone())?;
            (resolver, Some(files))
        }
        TlsPlan::SelfSigned { ca_out } => {
            let generated = SelfSigned::generate("podguard self-signed CA", &["localhost", "127.0.0.1"])?;
            if let Some(path) = ca_out {
                std::fs::write(path, &generated.ca_pem)
                    .with_context(|| format!("--tls-self-signed-ca-out: cannot write {}", path.display()))?;
            }
            (Arc::new(CertResolver::new(generated.certified_key()?)), None)
        }
    };
    let store = Arc::new(Store::new());
    let audit_slot = collectors::AuditSlot::default();
    let metrics = Arc::new(Metrics::with(vec![
        collectors::policies(store.clone()),
        collectors::audit(audit_slot.clone()),
    ]));
    // The built-in library is the fallback when no source is configured; with --configmaps the
    // cluster's ConfigMaps (the Helm chart renders the library as ConfigMaps) are the policies.
    let policy_files = if plan.policies.is_empty() && plan.configmaps.is_some() {
        None
    } else if plan.policies.is_empty() {
        let loaded = embedded::load().map_err(|errors| load_errors("the built-in library", &errors))?;
        store.update(SourceKey::Builtin, Ok(loaded));
        None
    } else {
        let files = PolicyFiles::load(plan.policies.clone(), store.clone(), metrics.clone())
            .map_err(|errors| load_errors("--policies", &errors))?;
        Some(files)
    };
    let duplicates = store.errors();
    if !duplicates.is_empty() {
        return Err(load_errors("--policies", &duplicates));
    }
    Ok(Started { certs, cert_files, policy_files, store, metrics, audit_slot })
}

fn load_errors(what: &str, errors: &[crate::policy::LoadError]) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    anyhow::anyhow!("{what} did not load:\n{}", lines.join("\n"))
}

pub(super) async fn cluster_client() -> anyhow::Result<kube::Client> {
    // kube's errors already carry their causes in their text; printing the chain (`{:#}`) on
    // top of that would repeat each cause, so they are flattened to one message here.
    let config = kube::Config::infer().await.map_err(|e| {
        anyhow::anyhow!(
            "--configmaps: found no Kubernetes API server (neither in-cluster nor KUBECONFIG): {e}"
        )
    })?;
    kube::Client::try_from(config)
        .map_err(|e| anyhow::anyhow!("--configmaps: cannot build a Kubernetes client: {e}"))
}

pub(super) fn config_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("podguard: configuration error: {e:#}");
    ExitCode::from(EXIT_CONFIG)
}

/// `cluster`: the ConfigMap options and a client for them, when `--configmaps` is given.
pub(super) async fn serve(
    plan: Plan,
    started: Started,
    cluster: Option<(ConfigMapOptions, kube::Client)>,
) -> anyhow::Result<()> {
    let Started { certs, cert_files, policy_files, store, metrics, audit_slot } = started;
    let readiness = Arc::new(Readiness::default());
    // Kept alive for the life of the server: dropping it stops the watches.
    let mut _cluster = None;
    let mut audit = None;
    let mut _audit_tasks = Vec::new();
    let namespaces: Arc<dyn NamespaceLabels> = match cluster {
        Some((opts, client)) => {
            let hook_metrics = metrics.clone();
            let hook = Arc::new(move |_: &SourceKey, _: &[crate::policy::LoadError]| {
                hook_metrics.policy_load_failed()
            });
            tracing::info!(namespace = %opts.namespace, selector = %opts.selector, "watching policy ConfigMaps");
            let sources = cluster::start(client.clone(), Some(opts), store.clone(), hook).await;
            let cluster_ready = sources.readiness().clone();
            let ready = readiness.clone();
            tokio::spawn(async move {
                if cluster_ready.wait().await {
                    ready.policies_loaded();
                }
            });
            if plan.audit {
                let (a, tasks) = crate::source::audit::start(
                    client.clone(),
                    store.clone(),
                    sources.namespaces().clone(),
                    plan.settings.clone(),
                )
                .await;
                let _ = audit_slot.set(a.clone());
                _audit_tasks = tasks;
                if let Some(duties) = plan.audit_duties.clone() {
                    _audit_tasks.extend(crate::source::reports::start(
                        client.clone(),
                        a.clone(),
                        store.clone(),
                        duties,
                    ));
                }
                audit = Some(a);
            }
            let cache = Arc::new(sources.namespaces().clone());
            _cluster = Some(sources);
            cache
        }
        None => {
            readiness.policies_loaded();
            Arc::new(NoNamespaceLabels)
        }
    };
    let state = State(Arc::new(Shared {
        store: store.clone(),
        settings: plan.settings,
        metrics: metrics.clone(),
        namespaces,
        readiness,
        large_reviews: server::LargeReviews::for_max_body(plan.options.max_body_bytes),
        audit,
    }));
    let server = Server::bind(plan.options.clone(), state, certs).await?;
    let addr = server.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let metrics_addr = server.metrics_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        addr,
        metrics_addr,
        policies = store.current().policies().len(),
        version = env!("CARGO_PKG_VERSION"),
        "listening"
    );
    watch(cert_files, policy_files)?;
    server.run(server::shutdown::signal()).await;
    Ok(())
}

/// Polls the certificate and policy files on a thread of their own, so file IO and policy
/// compilation never sit on a request thread. It ends with the process.
fn watch(mut certs: Option<CertFiles>, mut policies: Option<PolicyFiles>) -> anyhow::Result<()> {
    if certs.is_none() && policies.is_none() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("podguard-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(WATCH_INTERVAL);
                if let Some(c) = certs.as_mut() {
                    c.poll();
                }
                if let Some(p) = policies.as_mut() {
                    p.poll();
                }
            }
        })
        .context("starting the file watcher")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::serve::plan::tests::plan;

    #[test]
    fn a_broken_policy_file_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        std::fs::write(
            &f,
            "apiVersion: podguard.dev/v1\nkind: Policy\nmetadata: {name: x}\nspec: {rules: []}\n",
        )
        .unwrap();
        let p = plan(&["--tls-self-signed", &format!("--policies={}", f.display())]).unwrap();
        let e = format!("{:#}", start(&p).err().unwrap());
        assert!(e.contains("p.yaml") && e.contains("at least one rule"), "{e}");
    }
}
