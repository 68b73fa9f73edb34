//! Handing freed memory back to the operating system after a request that needed a lot of it.
//!
//! The allocator belongs to the binary (`main.rs`), so the library cannot call it: the binary
//! installs the function that does, once, at start. Without one (tests, other embedders) this
//! is a no-op.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Installs `release`, the allocator's "return what is free now" call. Only the first call counts.
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Returns the memory this thread freed to the operating system, if a release function is set.
///
/// Called after each large review: the allocator keeps freed pages for reuse for a while, and the
/// blocking threads that evaluate large reviews each keep their own, so eight huge reviews one
/// after the other would otherwise leave the process holding several reviews' worth at once.
pub fn release() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn release_calls_the_installed_function_and_only_the_first_one_installed() {
        super::set_release(|| {
            CALLS.fetch_add(1, Ordering::SeqCst);
        });
        super::set_release(|| panic!("a second release function was installed"));
        super::release();
        super::release();
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    }
}
