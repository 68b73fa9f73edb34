//! `podguard serve`: flags → a checked [`Plan`] → the running webhook.
//!
//! Flags are read in two stages (as ripgrep does): clap collects the values ([`Args`]) and
//! refuses those outside a closed set (modes, booleans, `--on-error`), [`Plan::from_args`]
//! checks and builds the rest, and `run::start` loads TLS and policies. Anything wrong up to
//! there is a configuration error: it is printed and the process exits 64 before a port is
//! bound. After that, the certificate and policy files are watched and reloaded with
//! last-known-good.

mod args;
mod plan;
mod run;

use std::process::ExitCode;

use anyhow::Context as _;

pub use self::args::{Args, ModeArg};
pub use self::plan::{FlagError, Plan, TlsPlan};
use self::run::{cluster_client, config_error, serve, start};

/// Exit code of a configuration error (`EX_USAGE`): nothing was started.
pub const EXIT_CONFIG: u8 = 64;

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

/// A value clap refuses for a flag of `serve` is a configuration error like one
/// [`Plan::from_args`] refuses: a bad value exits 64 whichever of the two finds it
/// (docs/server.md). Prints it as such and gives the exit code; `None` for clap's other
/// refusals (an unknown flag), which exit 2 as in every subcommand.
pub(super) fn refused_value(e: &clap::Error) -> Option<ExitCode> {
    use clap::error::ErrorKind;
    if !matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text).trim_end();
    Some(config_error(&anyhow::anyhow!("{text}")))
}
