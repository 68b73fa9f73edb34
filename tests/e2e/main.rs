//! End-to-end tests in one binary: the real CLI and the real HTTPS server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
