//! The `podguard` binary: parse flags, run, turn the result into an exit code.

use std::process::ExitCode;

use clap::Parser;

// Each admission request allocates a few dozen short-lived objects on whichever worker thread
// runs it; under load glibc's malloc took a fifth of the webhook's CPU (perf, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
