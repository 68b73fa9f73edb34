//! Command-line front doors: `check`, `policies`, `report`, `serve`, `test`. Flags are parsed by clap into `Args`,
//! each subcommand turns them into a plan and runs it. `anyhow` lives here and in `main.rs` only.

pub mod check;
pub mod policies;
pub mod report;
pub mod serve;
pub mod test;

use std::ffi::OsString;
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

/// Reads the command line. `Err` carries the exit code of what clap printed instead: 0 after
/// `--help` or `--version`, 2 for a refused command line, but 64 for a value `serve` refuses
/// (a configuration error, as when `serve` finds it after parsing).
pub fn parse() -> Result<Cli, ExitCode> {
    parse_from(std::env::args_os().collect())
}

fn parse_from(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    Cli::try_parse_from(&args).map_err(|e| {
        // clap's error does not say which subcommand refused; the first argument does, as
        // `podguard` itself has no option that takes a value.
        if args.get(1).is_some_and(|a| a == "serve")
            && let Some(code) = serve::refused_value(&e)
        {
            return code;
        }
        // What `e.exit()` would do, without leaving from inside the library.
        let _ = e.print();
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
    })
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

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::serve_bad_value(&["serve", "--default-mode=strict"], serve::EXIT_CONFIG)]
    #[case::serve_bad_number(&["serve", "--max-connections=many"], serve::EXIT_CONFIG)]
    #[case::serve_unknown_flag(&["serve", "--no-such-flag"], 2)]
    #[case::check_bad_value(&["check", "--on-error=ignore"], 2)]
    fn refused_command_lines_exit(#[case] args: &[&str], #[case] code: u8) {
        let argv = std::iter::once("podguard").chain(args.iter().copied()).map(OsString::from).collect();
        assert_eq!(parse_from(argv).err(), Some(ExitCode::from(code)));
    }
}
