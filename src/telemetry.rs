//! Logging: `tracing` events as one JSON object per line on stdout, filtered by `RUST_LOG`
//! (default `info`).
//!
//! Every admission decision is one event with target [`DECISION_TARGET`], so
//! `RUST_LOG=info,podguard::decision=off` silences decisions while keeping the rest.

use tracing_subscriber::EnvFilter;

/// Target of the one-line-per-decision events.
pub const DECISION_TARGET: &str = "podguard::decision";

/// Installs the JSON subscriber. Calling it twice is harmless (the second call does nothing), so
/// tests that start several servers in one process can call it freely.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}
