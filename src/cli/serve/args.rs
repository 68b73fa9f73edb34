//! The flags of `podguard serve`, as clap reads them. Values clap can check (numbers, modes,
//! booleans) are typed here; the rest are checked by [`Plan::from_args`](super::Plan::from_args).

use std::path::PathBuf;

use crate::cli::check::OnErrorArg;
use crate::policy::Mode;

/// Flags of `podguard serve`. Each is also read from `PODGUARD_<NAME>`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// HTTPS address for `POST /validate`, `GET /healthz`, `GET /readyz`.
    #[arg(long, env = "PODGUARD_LISTEN", value_name = "ADDR", default_value = "0.0.0.0:9443")]
    pub listen: String,
    /// Plain-HTTP address for `GET /metrics`, `GET /policies` and `GET /report` (the audit).
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
    /// Mode of namespaces without a `podguard.dev/mode` label.
    #[arg(long, env = "PODGUARD_DEFAULT_MODE", value_name = "MODE", value_enum, default_value = "enforce")]
    pub default_mode: ModeArg,
    /// Honour the `podguard.dev/mode` namespace label: true or false.
    #[arg(
        long,
        env = "PODGUARD_NAMESPACE_MODE_LABEL",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub namespace_mode_label: bool,
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
    /// Answer for an object that cannot be read as a pod spec.
    #[arg(long, env = "PODGUARD_ON_ERROR", value_name = "deny|allow", value_enum, default_value = "deny")]
    pub on_error: OnErrorArg,
    /// Largest request body (bytes, or with a Ki, Mi or Gi suffix); larger is HTTP 413.
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

/// `--default-mode`: the modes of [`Mode`], for clap to list and check (`policy` knows nothing
/// of clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Refuse objects that violate a policy.
    Enforce,
    /// Admit them with warnings.
    Warn,
    /// Admit them silently, recording the violations in audit annotations, logs and metrics.
    Audit,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Enforce => Self::Enforce,
            ModeArg::Warn => Self::Warn,
            ModeArg::Audit => Self::Audit,
        }
    }
}
