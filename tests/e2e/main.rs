//! End-to-end tests in one binary: the real CLI and the real HTTPS server.

// A test binary: a failed unwrap is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod support;
mod webhook;
