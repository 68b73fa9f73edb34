//! `podguard serve` (in progress: lands with the webhook issue).

use std::process::ExitCode;

/// Flags of `podguard serve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the webhook.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`podguard serve` is not available yet")
}
