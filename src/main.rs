//! The `podguard` binary: parse flags, run, turn the result into an exit code.

use std::process::ExitCode;

// Each admission request allocates a few dozen short-lived objects on whichever worker thread
// runs it; under load glibc's malloc took a fifth of the webhook's CPU (perf, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the pages this thread's heap holds free, and abandoned ones, to the operating system.
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and only walks mimalloc's own heaps; mimalloc
    // documents it as callable from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> ExitCode {
    podguard::memory::set_release(release_free_memory);
    let cli = match podguard::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match podguard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podguard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
