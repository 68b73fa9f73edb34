//! `podguard serve`: flags → a checked [`Plan`] → the running webhook.
//!
//! Flags are read in two stages (as ripgrep does): clap collects raw values, [`Plan::from_args`]
//! checks and builds them, and [`start`] loads TLS and policies. Anything wrong up to there is a
//! configuration error: it is printed and the process exits 64 before a port is bound. After
//! that, the certificate and policy files are watched and reloaded with last-known-good.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::admission::Settings;
use crate::admission::decision::OnError;
use crate::admission::exemptions::Exemptions;
use crate::admission::policies::PolicyConfigMaps;
use crate::metrics::Metrics;
use crate::policy::Mode;
use crate::server::tls::{CertFiles, CertResolver, SelfSigned};
use crate::server::{self, NamespaceLabels, NoNamespaceLabels, Options, Readiness, Server, Shared, State};
use crate::source::cluster::{self, ConfigMapOptions, default_policy_namespace};
use crate::source::watch::PolicyFiles;
use crate::source::{SourceKey, Store, collectors, embedded};

/// Exit code of a configuration error (`EX_USAGE`): nothing was started.
pub const EXIT_CONFIG: u8 = 64;

/// How often certificate and policy files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Flags of `podguard serve`. Each is also read from `PODGUARD_<NAME>`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// HTTPS address for `POST /validate`, `GET /healthz`, `GET /readyz`.
    #[arg(long, env = "PODGUARD_LISTEN", value_name = "ADDR", default_value = "0.0.0.0:9443")]
    pub listen: String,
    /// Plain-HTTP address for `GET /metrics` and `GET /policies`.
    #[arg(long, env = "PODGUARD_METRICS_LISTEN", value_name = "ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_listen: String,
    /// Serving certificate chain, PEM (reloaded when it changes).
    #[arg(long, env = "PODGUARD_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the certificate, PEM (reloaded when it changes).
    #[arg(long, env = "PODGUARD_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Generate a certificate for localhost/127.0.0.1 at start (local runs and tests).
    #[arg(long, env = "PODGUARD_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
    /// With --tls-self-signed: write the CA that signed it here (PEM), for clients to trust.
    #[arg(long, env = "PODGUARD_TLS_SELF_SIGNED_CA_OUT", value_name = "FILE")]
    pub tls_self_signed_ca_out: Option<PathBuf>,
    /// Policy files or folders (repeatable; comma-separated in the environment), reloaded when
    /// they change. Without it, the built-in library.
    #[arg(long, env = "PODGUARD_POLICIES", value_name = "PATH", value_delimiter = ',')]
    pub policies: Vec<PathBuf>,
    /// Mode of namespaces without a `podguard.dev/mode` label: enforce, warn or audit.
    #[arg(long, env = "PODGUARD_DEFAULT_MODE", value_name = "MODE", default_value = "enforce")]
    pub default_mode: String,
    /// Honour the `podguard.dev/mode` namespace label: true or false.
    #[arg(long, env = "PODGUARD_NAMESPACE_MODE_LABEL", value_name = "BOOL", default_value = "true")]
    pub namespace_mode_label: String,
    /// Namespaces no policy applies to (comma list).
    #[arg(
        long,
        env = "PODGUARD_EXEMPT_NAMESPACES",
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    pub exempt_namespaces: Vec<String>,
    /// Usernames no policy applies to (comma list).
    #[arg(long, env = "PODGUARD_EXEMPT_USERS", value_name = "LIST", value_delimiter = ',')]
    pub exempt_users: Vec<String>,
    /// `runtimeClassName`s no policy applies to (comma list).
    #[arg(long, env = "PODGUARD_EXEMPT_RUNTIME_CLASSES", value_name = "LIST", value_delimiter = ',')]
    pub exempt_runtime_classes: Vec<String>,
    /// Answer for an object that cannot be read as a pod spec: deny or allow.
    #[arg(long, env = "PODGUARD_ON_ERROR", value_name = "deny|allow", default_value = "deny")]
    pub on_error: String,
    /// Largest request body (bytes, or with Ki/Mi suffix); larger is HTTP 413.
    #[arg(long, env = "PODGUARD_MAX_BODY_BYTES", value_name = "SIZE", default_value = "3Mi")]
    pub max_body_bytes: String,
    /// Watch policy ConfigMaps (labelled `podguard.dev/policy=true`) in the policy namespace,
    /// and keep a cache of namespace labels, through the Kubernetes API (in-cluster config or
    /// KUBECONFIG). Without it and without --policies, the built-in library is used.
    #[arg(long, env = "PODGUARD_CONFIGMAPS")]
    pub configmaps: bool,
    /// With --configmaps, audit what already runs: watch every workload kind cluster-wide, judge
    /// each object as admission would, serve the results on the metrics port (`GET /report`)
    /// and as metrics. true or false.
    #[arg(
        long,
        env = "PODGUARD_AUDIT",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub audit: bool,
    /// With the audit, write one `wgpolicyk8s.io/v1alpha2` PolicyReport per namespace with
    /// findings (the CRD must be installed). One replica writes, chosen through a Lease in the
    /// policy namespace. true or false.
    #[arg(
        long,
        env = "PODGUARD_AUDIT_REPORTS",
        value_name = "BOOL",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub audit_reports: bool,
    /// Name of the Lease (in the policy namespace) through which one replica is chosen to write
    /// the audit's report objects and bypass Events.
    #[arg(long, env = "PODGUARD_AUDIT_LEASE", value_name = "NAME", default_value = "podguard-audit-writer")]
    pub audit_lease: String,
    /// Name of podguard's ValidatingWebhookConfiguration: objects whose pod spec was written
    /// before it was registered are reported as never judged at admission.
    #[arg(long, env = "PODGUARD_WEBHOOK_CONFIGURATION", value_name = "NAME")]
    pub webhook_configuration: Option<String>,
    /// Namespace of the policy ConfigMaps (default: $POD_NAMESPACE, else podguard-system).
    #[arg(long, env = "PODGUARD_POLICY_NAMESPACE", value_name = "NS")]
    pub policy_namespace: Option<String>,
    /// Label selector of policy ConfigMaps.
    #[arg(
        long,
        env = "PODGUARD_POLICY_SELECTOR",
        value_name = "SELECTOR",
        default_value = "podguard.dev/policy=true"
    )]
    pub policy_selector: String,
    /// How long a client may take for each step of a request (TLS handshake, headers, body),
    /// e.g. 10s, 500ms; slower is cut off (408 for a body).
    #[arg(long, env = "PODGUARD_CLIENT_TIMEOUT", value_name = "DURATION", default_value = "10s")]
    pub client_timeout: String,
    /// Connections open at once on the admission port; past it, the longest-idle one gives way.
    /// Lowered to fit the open-files limit (whose soft value is raised to the hard one at start).
    #[arg(long, env = "PODGUARD_MAX_CONNECTIONS", value_name = "N", default_value_t = 1000)]
    pub max_connections: usize,
    /// A connection without a request for this long is closed (e.g. 120s). Above the API
    /// server's own 90 s, so that it is normally the one to close.
    #[arg(long, env = "PODGUARD_IDLE_TIMEOUT", value_name = "DURATION", default_value = "120s")]
    pub idle_timeout: String,
    /// After SIGTERM/SIGINT, how long requests in flight may take to finish (e.g. 25s, 500ms).
    #[arg(long, env = "PODGUARD_SHUTDOWN_GRACE_PERIOD", value_name = "DURATION", default_value = "25s")]
    pub shutdown_grace_period: String,
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPlan {
    /// A PEM pair on disk, watched.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Generated at start.
    SelfSigned {
        /// Where to write the CA, if anywhere.
        ca_out: Option<PathBuf>,
    },
}

/// Checked flags.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Ports and limits.
    pub options: Options,
    /// TLS source.
    pub tls: TlsPlan,
    /// `--policies`; empty means the built-in library.
    pub policies: Vec<PathBuf>,
    /// Where policy ConfigMaps are, with `--configmaps`.
    pub configmaps: Option<ConfigMapOptions>,
    /// Decision settings.
    pub settings: Settings,
    /// Run the background audit (with --configmaps).
    pub audit: bool,
    /// What runs beside the audit: report objects, the writer's Lease, bypass verdicts.
    pub audit_duties: Option<crate::source::reports::Options>,
}

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--{flag}: {reason}")]
pub struct FlagError {
    /// The flag, without dashes.
    pub flag: &'static str,
    /// What is wrong and what is expected.
    pub reason: String,
}

fn flag_error(flag: &'static str, reason: impl Into<String>) -> FlagError {
    FlagError { flag, reason: reason.into() }
}

impl Plan {
    /// Checks every flag; the first error names the flag and what it expects.
    pub fn from_args(args: Args) -> Result<Self, FlagError> {
        let addr = |flag, v: &str| {
            v.parse::<SocketAddr>().map_err(|_| {
                flag_error(flag, format!("`{v}` is not an address; use IP:PORT, e.g. 0.0.0.0:9443"))
            })
        };
        let listen = addr("listen", &args.listen)?;
        let metrics_listen = addr("metrics-listen", &args.metrics_listen)?;
        if !args.configmaps && args.policy_namespace.is_some() {
            return Err(flag_error("policy-namespace", "needs --configmaps"));
        }
        if listen == metrics_listen && listen.port() != 0 {
            return Err(flag_error("metrics-listen", "must differ from --listen"));
        }
        let tls = match (args.tls_cert, args.tls_key, args.tls_self_signed) {
            (Some(cert), Some(key), false) => {
                if args.tls_self_signed_ca_out.is_some() {
                    return Err(flag_error("tls-self-signed-ca-out", "needs --tls-self-signed"));
                }
                TlsPlan::Files { cert, key }
            }
            (None, None, true) => TlsPlan::SelfSigned { ca_out: args.tls_self_signed_ca_out },
            (Some(_), None, false) => return Err(flag_error("tls-key", "--tls-cert needs --tls-key")),
            (None, Some(_), false) => return Err(flag_error("tls-cert", "--tls-key needs --tls-cert")),
            (_, _, true) => {
                return Err(flag_error(
                    "tls-self-signed",
                    "use either --tls-self-signed or --tls-cert/--tls-key",
                ));
            }
            (None, None, false) => {
                return Err(flag_error("tls-cert", "give --tls-cert and --tls-key, or --tls-self-signed"));
            }
        };
        let default_mode: Mode =
            args.default_mode.parse().map_err(|e: String| flag_error("default-mode", e))?;
        let namespace_mode_label = match args.namespace_mode_label.as_str() {
            "true" => true,
            "false" => false,
            v => return Err(flag_error("namespace-mode-label", format!("`{v}` is not true or false"))),
        };
        let on_error = match args.on_error.as_str() {
            "deny" => OnError::Deny,
            "allow" => OnError::Allow,
            v => return Err(flag_error("on-error", format!("`{v}` is not deny or allow"))),
        };
        let max_body_bytes = parse_size(&args.max_body_bytes).map_err(|r| flag_error("max-body-bytes", r))?;
        let client_timeout = parse_duration(&args.client_timeout)
            .and_then(|d| {
                if d.is_zero() { Err("a zero timeout would cut off every client".into()) } else { Ok(d) }
            })
            .map_err(|r| flag_error("client-timeout", r))?;
        let idle_timeout = parse_duration(&args.idle_timeout)
            .and_then(|d| {
                if d.is_zero() { Err("a zero timeout would close every connection".into()) } else { Ok(d) }
            })
            .map_err(|r| flag_error("idle-timeout", r))?;
        if args.max_connections == 0 {
            return Err(flag_error("max-connections", "must be at least 1"));
        }
        let grace_period = parse_duration(&args.shutdown_grace_period)
            .map_err(|r| flag_error("shutdown-grace-period", r))?;
        let set = |v: Vec<String>| -> HashSet<String> {
            v.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
        };
        let exemptions = Exemptions {
            namespaces: set(args.exempt_namespaces),
            usernames: set(args.exempt_users),
            runtime_classes: set(args.exempt_runtime_classes),
        };
        let policy_configmaps = if args.configmaps {
            let selector =
                args.policy_selector.parse().map_err(|r: String| flag_error("policy-selector", r))?;
            Some(PolicyConfigMaps {
                namespace: args.policy_namespace.clone().unwrap_or_else(default_policy_namespace),
                selector,
            })
        } else {
            None
        };
        Ok(Self {
            options: Options {
                listen,
                metrics_listen,
                max_body_bytes,
                grace_period,
                client_timeout,
                max_connections: args.max_connections,
                idle_timeout,
            },
            tls,
            policies: args.policies,
            audit: args.configmaps && args.audit,
            audit_duties: (args.configmaps && args.audit).then(|| crate::source::reports::Options {
                reports: args.audit_reports,
                lease: (
                    args.policy_namespace.clone().unwrap_or_else(default_policy_namespace),
                    args.audit_lease.clone(),
                ),
                identity: crate::source::reports::identity(),
                webhook_configuration: args.webhook_configuration.clone(),
                exempt_users: !exemptions.usernames.is_empty(),
                settings: crate::source::reports::settings_fingerprint(&Settings {
                    default_mode,
                    namespace_mode_label,
                    exemptions: exemptions.clone(),
                    ..Settings::default()
                }),
            }),
            configmaps: args.configmaps.then(|| ConfigMapOptions {
                namespace: args.policy_namespace.clone().unwrap_or_else(default_policy_namespace),
                selector: args.policy_selector.clone(),
            }),
            settings: Settings {
                default_mode,
                namespace_mode_label,
                exemptions,
                on_error,
                policy_configmaps,
                // The webhook answers with no more than it shows; `check` reports them all.
                keep_only_shown: true,
                record_applied: false,
            },
        })
    }
}

/// `3145728`, `512Ki`, `3Mi`, `3MiB`, `1Gi`.
fn parse_size(v: &str) -> Result<usize, String> {
    let t = v.trim();
    let t = t.strip_suffix('B').unwrap_or(t);
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => return Err(format!("`{v}` is not a size; use bytes or a Ki/Mi/Gi suffix, e.g. 3Mi")),
    };
    let n: usize = digits.parse().map_err(|_| format!("`{v}` is not a size; use bytes or e.g. 3Mi"))?;
    match n.checked_shl(shift).filter(|b| *b >> shift == n) {
        Some(0) => Err("must be more than 0".into()),
        Some(b) => Ok(b),
        None => Err(format!("`{v}` is too large")),
    }
}

/// `25s`, `500ms`, `1m`, or plain seconds.
fn parse_duration(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let bad = || format!("`{v}` is not a duration; use e.g. 25s, 500ms or 1m");
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    })
}

/// What [`start`] loaded: the resolver, the watchers, the store.
struct Started {
    certs: Arc<CertResolver>,
    cert_files: Option<CertFiles>,
    policy_files: Option<PolicyFiles>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// Where the audit goes once it runs, for its metrics.
    audit_slot: collectors::AuditSlot,
}

/// Loads TLS and policies. Every error here is a configuration error.
fn start(plan: &Plan) -> anyhow::Result<Started> {
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

/// Runs the webhook until SIGTERM/SIGINT.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = match Plan::from_args(args) {
        Ok(plan) => plan,
        Err(e) => return Ok(config_error(&e.into())),
    };
    let started = match start(&plan) {
        Ok(s) => s,
        Err(e) => return Ok(config_error(&e)),
    };
    // Kept to the end of `run`: dropping it flushes the log lines still queued.
    let _log = crate::telemetry::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("podguard")
        .build()
        .context("starting the async runtime")?;
    // Where the API server is comes from the environment: not finding it is a configuration
    // error like a bad flag, found before any port is bound.
    let cluster = match plan.configmaps.clone() {
        None => None,
        Some(opts) => match runtime.block_on(cluster_client()) {
            Ok(client) => Some((opts, client)),
            Err(e) => return Ok(config_error(&e)),
        },
    };
    runtime.block_on(serve(plan, started, cluster))?;
    Ok(ExitCode::SUCCESS)
}

async fn cluster_client() -> anyhow::Result<kube::Client> {
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

fn config_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("podguard: configuration error: {e:#}");
    ExitCode::from(EXIT_CONFIG)
}

/// `cluster`: the ConfigMap options and a client for them, when `--configmaps` is given.
async fn serve(
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
    use clap::Parser;
    use rstest::rstest;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn plan(flags: &[&str]) -> Result<Plan, String> {
        let argv = std::iter::once("serve").chain(flags.iter().copied());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Plan::from_args(cli.args).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let p = plan(&["--tls-self-signed"]).unwrap();
        assert_eq!(p.options.listen, "0.0.0.0:9443".parse().unwrap());
        assert_eq!(p.options.metrics_listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(p.options.max_body_bytes, 3 * 1024 * 1024);
        assert_eq!(p.options.grace_period, Duration::from_secs(25));
        assert_eq!(p.settings.default_mode, Mode::Enforce);
        assert!(p.settings.namespace_mode_label);
        assert_eq!(p.settings.on_error, OnError::Deny);
        assert!(p.settings.exemptions.namespaces.contains("kube-system"));
        assert_eq!(p.tls, TlsPlan::SelfSigned { ca_out: None });
    }

    #[test]
    fn lists_and_values_are_read() {
        let p = plan(&[
            "--tls-cert=c.pem",
            "--tls-key=k.pem",
            "--exempt-users=a,b",
            "--exempt-namespaces=ops",
            "--default-mode=warn",
            "--namespace-mode-label=false",
            "--on-error=allow",
            "--max-body-bytes=512Ki",
            "--shutdown-grace-period=500ms",
            "--policies=a.yaml",
            "--policies=dir",
        ])
        .unwrap();
        assert_eq!(p.settings.exemptions.usernames, HashSet::from(["a".into(), "b".into()]));
        assert_eq!(p.settings.exemptions.namespaces, HashSet::from(["ops".into()]));
        assert_eq!(p.settings.default_mode, Mode::Warn);
        assert!(!p.settings.namespace_mode_label);
        assert_eq!(p.settings.on_error, OnError::Allow);
        assert_eq!(p.options.max_body_bytes, 512 * 1024);
        assert_eq!(p.options.grace_period, Duration::from_millis(500));
        assert_eq!(p.policies, [PathBuf::from("a.yaml"), PathBuf::from("dir")]);
    }

    #[rstest]
    #[case::no_tls(&[], "--tls-cert")]
    #[case::cert_without_key(&["--tls-cert=c"], "--tls-key")]
    #[case::both_tls(&["--tls-self-signed", "--tls-cert=c", "--tls-key=k"], "either")]
    #[case::ca_out_without_self_signed(&["--tls-cert=c", "--tls-key=k", "--tls-self-signed-ca-out=x"], "needs")]
    #[case::bad_listen(&["--tls-self-signed", "--listen=9443"], "--listen")]
    #[case::same_ports(&["--tls-self-signed", "--listen=0.0.0.0:1", "--metrics-listen=0.0.0.0:1"], "differ")]
    #[case::bad_mode(&["--tls-self-signed", "--default-mode=strict"], "--default-mode")]
    #[case::bad_bool(&["--tls-self-signed", "--namespace-mode-label=yes"], "true or false")]
    #[case::bad_on_error(&["--tls-self-signed", "--on-error=ignore"], "deny or allow")]
    #[case::bad_size(&["--tls-self-signed", "--max-body-bytes=3MB"], "--max-body-bytes")]
    #[case::zero_size(&["--tls-self-signed", "--max-body-bytes=0"], "more than 0")]
    #[case::bad_grace(&["--tls-self-signed", "--shutdown-grace-period=soon"], "duration")]
    fn bad_flags_name_the_flag(#[case] flags: &[&str], #[case] needle: &str) {
        let e = plan(flags).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }

    #[rstest]
    #[case::bytes("3145728", 3_145_728)]
    #[case::kib("64Ki", 65_536)]
    #[case::mib_with_b("3MiB", 3_145_728)]
    #[case::gib("1Gi", 1 << 30)]
    fn sizes(#[case] v: &str, #[case] want: usize) {
        assert_eq!(parse_size(v).unwrap(), want);
    }

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
