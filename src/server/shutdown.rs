//! The HTTPS accept loop with a graceful stop, and the process signals that start it.
//!
//! On stop the listener is closed first (new connections are refused), idle keep-alive
//! connections are closed, and requests in flight run to completion, bounded by the grace
//! period: after it, whatever is left is dropped so the process can exit before the kubelet's
//! SIGKILL.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::connections::{Activity, Connections};

/// Resolves on SIGTERM (what the kubelet sends) or SIGINT (Ctrl-C).
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "signal received"),
        () = term => tracing::info!(signal = "SIGTERM", "signal received"),
    }
}

/// Limits of the admission port's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once (see [`super::connections`]).
    pub max_connections: usize,
    /// Each step of a request: TLS handshake, headers, body.
    pub client_timeout: Duration,
    /// A connection without a request for this long is closed.
    pub idle_timeout: Duration,
}

/// Accepts TLS connections on `listener` and serves `app` on them until `stop` resolves; then
/// drains as described in the module docs. Open connections are capped and idle ones closed as
/// `limits` says.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    stop: impl Future<Output = ()>,
    grace_period: Duration,
    limits: ConnectionLimits,
) -> Arc<Connections> {
    let acceptor = TlsAcceptor::from(tls);
    let connections = Connections::new(limits.max_connections);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its headers must not hold a task forever.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.client_timeout);
    let builder = Arc::new(builder);
    let mut stop = std::pin::pin!(stop);
    let tasks = tokio_util_tasks::Tracker::default();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Registered before the handshake: a connection still shaking hands counts, and is the
        // first to give way.
        let Some(registered) = connections.register() else {
            tracing::debug!(%peer, "every connection is busy; closing the new one");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app, builder) = (acceptor.clone(), app.clone(), builder.clone());
        let mut stopping = stopping.clone();
        let task = tasks.token();
        tokio::spawn(async move {
            let _task = task;
            let activity = registered.activity.clone();
            // Nor one that never finishes the handshake, or is evicted meanwhile.
            let handshake = tokio::time::timeout(limits.client_timeout, acceptor.accept(tcp));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                () = activity.evicted.notified() => return,
            };
            let service = TowerToHyperService::new(Tracked { inner: app, activity: activity.clone() });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let check_every =
                (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
            let mut idle_check = tokio::time::interval(check_every);
            // Once asked to close gracefully, how long it may take before it is dropped.
            let mut closing: Option<tokio::time::Instant> = None;
            loop {
                let deadline =
                    closing.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    done = conn.as_mut() => {
                        if let Err(e) = done {
                            tracing::debug!(%peer, error = %e, "connection closed with an error");
                        }
                        break;
                    }
                    _ = idle_check.tick(), if closing.is_none() => {
                        if activity.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                            conn.as_mut().graceful_shutdown();
                            closing = Some(tokio::time::Instant::now() + limits.client_timeout);
                        }
                    }
                    _ = stopping.changed(), if closing.is_none() => {
                        conn.as_mut().graceful_shutdown();
                        // The drain's own grace period bounds it from here.
                        closing = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                    }
                    () = activity.evicted.notified() => break,
                    () = tokio::time::sleep_until(deadline), if closing.is_some() => break,
                }
            }
            drop(registered);
        });
    }
    drop(listener);
    let open = connections.open();
    let _ = stopping_tx.send(true);
    if tokio::time::timeout(grace_period, tasks.all_done()).await.is_err() {
        tracing::warn!(
            grace_period_s = grace_period.as_secs_f64(),
            "grace period over; dropping connections still open"
        );
    } else {
        tracing::info!(connections = open, "all connections finished");
    }
    connections
}

/// The app, counting the requests in flight on one connection.
#[derive(Clone)]
struct Tracked {
    inner: Router,
    activity: Arc<Activity>,
}

impl tower::Service<axum::http::Request<hyper::body::Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<axum::http::Request<hyper::body::Incoming>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await;
            drop(in_flight);
            response
        })
    }
}

/// Counts the connection tasks still running, for the drain.
mod tokio_util_tasks {
    use std::sync::Arc;

    /// Hands out tokens; [`Tracker::all_done`] resolves when every token is dropped.
    #[derive(Debug, Default)]
    pub struct Tracker(Arc<tokio::sync::Notify>, Arc<()>);

    /// Held by a running task.
    #[derive(Debug)]
    pub struct Token(Arc<tokio::sync::Notify>, #[allow(dead_code)] Arc<()>);

    impl Drop for Token {
        fn drop(&mut self) {
            self.0.notify_waiters();
        }
    }

    impl Tracker {
        /// A token for one more task.
        pub fn token(&self) -> Token {
            Token(self.0.clone(), self.1.clone())
        }

        /// Resolves once no token is left.
        pub async fn all_done(&self) {
            loop {
                let notified = self.0.notified();
                // Only the tracker's own reference left: every task has ended.
                if Arc::strong_count(&self.1) == 1 {
                    return;
                }
                notified.await;
            }
        }
    }
}
