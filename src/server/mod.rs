//! The admission webhook server: HTTPS `POST /validate`, `/healthz`, `/readyz` on one port,
//! plain-HTTP `/metrics` and `/policies` on another.
//!
//! [`Server::bind`] binds both ports (so a port in use is reported before anything runs),
//! [`Server::run`] serves until the shutdown future resolves, then drains in-flight requests
//! within the grace period. What a request meets is in [`State`]: the policy [`Store`], the
//! decision [`Settings`], [`Metrics`], the [`NamespaceLabels`] hook and [`Readiness`]. Policy
//! sources and TLS files are loaded and watched by the caller (`cli::serve`), not here.

pub mod connections;
pub mod routes;
pub mod shutdown;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;

pub use routes::{metrics_router, router};
pub use tls::CertResolver;

use crate::admission::Settings;
use crate::metrics::Metrics;
use crate::source::Store;

/// A server that cannot start or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A port cannot be bound.
    // The cause is said in the message and is not also a `source`: a chain printed with `{:#}`
    // would say it twice.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The TLS configuration cannot be built.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

pub use crate::source::namespaces::{Fetched, Labels, NamespaceLabels, NoNamespaceLabels};

/// What `/readyz` waits for: a TLS pair and a first policy set.
#[derive(Debug, Default)]
pub struct Readiness {
    tls: AtomicBool,
    policies: AtomicBool,
}

impl Readiness {
    /// Marks the TLS pair loaded.
    pub fn tls_loaded(&self) {
        self.tls.store(true, Ordering::Release);
    }

    /// Marks the first policy set loaded (every configured source has been read once).
    pub fn policies_loaded(&self) {
        self.policies.store(true, Ordering::Release);
    }

    /// Whether the first policy set is in force.
    pub fn has_policies(&self) -> bool {
        self.policies.load(Ordering::Acquire)
    }

    /// What is still missing, if anything.
    pub fn missing(&self) -> Option<&'static str> {
        if !self.tls.load(Ordering::Acquire) {
            Some("no TLS certificate loaded yet")
        } else if !self.policies.load(Ordering::Acquire) {
            Some("no policy set loaded yet")
        } else {
            None
        }
    }
}

/// Everything a request handler reads, shared by all requests.
#[derive(Debug)]
pub struct Shared {
    /// The policies in force.
    pub store: Arc<Store>,
    /// Modes, exemptions, `--on-error`.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Namespace labels hook.
    pub namespaces: Arc<dyn NamespaceLabels>,
    /// Readiness gates.
    pub readiness: Arc<Readiness>,
    /// Kibibytes of large requests in evaluation at once ([`LargeReviews`]).
    pub large_reviews: LargeReviews,
    /// The background audit, for `GET /report`, when it runs.
    pub audit: Option<crate::source::audit::Audit>,
}

/// The budget of large requests (over [`LargeReviews::INLINE_BYTES`]) in evaluation at once,
/// counted in kibibytes of request body. Decoding an object and listing its findings take
/// memory in proportion to its size, so a few huge pods at once must wait for each other
/// rather than all be held together; small reviews (nearly all) never touch the budget. A large
/// request also runs on a blocking thread, so that it never holds up the workers that answer
/// `/healthz` and every small review.
#[derive(Clone, Debug)]
pub struct LargeReviews {
    /// The budget's permits, one a kibibyte.
    pub permits: Arc<tokio::sync::Semaphore>,
    /// The whole budget, in kibibytes.
    pub kib: usize,
    /// Large requests in evaluation at once at most: one core fewer than the machine has, so
    /// that one stays for the async workers.
    pub slots: usize,
}

impl LargeReviews {
    /// Bodies up to this size are evaluated inline, on the request's worker.
    pub const INLINE_BYTES: usize = 64 * 1024;
    /// Kibibytes of large bodies in evaluation at once by default: two of the largest (3 MiB).
    pub const DEFAULT_KIB: usize = 6 * 1024;

    /// A budget of `kib` kibibytes.
    pub fn new(kib: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(kib)),
            kib,
            slots: cores.saturating_sub(1).max(1),
        }
    }

    /// The budget for bodies of up to `max_body_bytes`: room for two of the largest at once.
    pub fn for_max_body(max_body_bytes: usize) -> Self {
        Self::new(Self::DEFAULT_KIB.max(max_body_bytes.div_ceil(1024).saturating_mul(2)))
    }

    /// The permits a body of `bytes` takes: its size in kibibytes, at least one slot's share
    /// of the budget, at most the whole budget.
    pub fn cost(&self, bytes: usize) -> u32 {
        let share = self.kib / self.slots;
        u32::try_from(bytes.div_ceil(1024).max(share).min(self.kib)).unwrap_or(u32::MAX)
    }
}

impl Default for LargeReviews {
    fn default() -> Self {
        Self::new(Self::DEFAULT_KIB)
    }
}

/// Handler state: a cheap clone of the shared parts.
#[derive(Debug, Clone)]
pub struct State(pub Arc<Shared>);

impl std::ops::Deref for State {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Ports and limits.
#[derive(Debug, Clone)]
pub struct Options {
    /// HTTPS admission address.
    pub listen: SocketAddr,
    /// Plain-HTTP metrics address.
    pub metrics_listen: SocketAddr,
    /// Largest accepted request body; larger is HTTP 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after the shutdown signal.
    pub grace_period: Duration,
    /// How long a client may take for each step of a request: TLS handshake, headers, body.
    pub client_timeout: Duration,
    /// Connections open at once on the admission port (lowered to fit the open-files limit).
    pub max_connections: usize,
    /// A connection without a request for this long is closed.
    pub idle_timeout: Duration,
}

/// Both ports bound, ready to serve.
#[derive(Debug)]
pub struct Server {
    admission: TcpListener,
    metrics: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: State,
    options: Options,
}

impl Server {
    /// Binds both ports and builds the TLS configuration around `certs`.
    pub async fn bind(options: Options, state: State, certs: Arc<CertResolver>) -> Result<Self, Error> {
        let tls = Arc::new(tls::server_config(certs)?);
        state.readiness.tls_loaded();
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|error| Error::Bind { addr, error })
        };
        let admission = bind(options.listen).await?;
        let metrics = bind(options.metrics_listen).await?;
        Ok(Self { admission, metrics, tls, state, options })
    }

    /// The bound admission address (with the real port when `:0` was asked).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.admission.local_addr().ok()
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.local_addr().ok()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish
    /// within the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let metrics_app = metrics_router(self.state.clone());
        let metrics_stop = stopped(stop_rx.clone());
        let metrics = tokio::spawn(async move {
            let serve = axum::serve(self.metrics, metrics_app).with_graceful_shutdown(metrics_stop);
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
        let app = routes::router_with(self.state, self.options.max_body_bytes, self.options.client_timeout);
        let admission = shutdown::serve_tls(
            self.admission,
            self.tls,
            app,
            stopped(stop_rx),
            self.options.grace_period,
            shutdown::ConnectionLimits {
                max_connections: connections::cap_under_file_limit(self.options.max_connections),
                client_timeout: self.options.client_timeout,
                idle_timeout: self.options.idle_timeout,
            },
        );
        let admission = tokio::spawn(admission);
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stop_tx.send(true);
        let _ = admission.await;
        // The metrics port has nothing worth waiting for.
        metrics.abort();
        tracing::info!("stopped");
    }
}
