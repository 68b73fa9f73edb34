//! Command-line front doors: `check`, `policies`, `report`, `serve`, `test`. Flags are parsed by clap into `Args`,
//! each subcommand turns them into a plan and runs it. `anyhow` lives here and in `main.rs` only.

pub mod check;
pub mod policies;
pub mod report;
pub mod serve;
pub mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// podguard: pod policies as code, for admission and CI.
#[derive(Debug, Parser)]
#[command(name = "podguard", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests (files, folders, `-` for stdin) against policies, as the webhook would.
    Check(check::Args),
    /// Lint or list policies.
    #[command(subcommand)]
    Policies(policies::Command),
    /// Compliance evidence per framework and control, from manifests or a cluster (--cluster).
    Report(Box<report::Args>),
    /// Run the HTTPS admission webhook.
    Serve(Box<serve::Args>),
    /// Run policy tests (`PolicyTest` documents): what each rule must say of each object.
    Test(test::Args),
}

/// Runs the command; `Ok` carries the exit code (0 clean, 1 would be denied, 2 error).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Policies(cmd) => policies::run(cmd),
        Command::Report(args) => report::run(*args),
        Command::Serve(args) => serve::run(*args),
        Command::Test(args) => test::run(args),
    }
}
