//! The `podguard` binary: parse flags, run, turn the result into an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = podguard::cli::Cli::parse();
    match podguard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podguard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
