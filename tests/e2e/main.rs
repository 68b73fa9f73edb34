//! End-to-end tests in one binary: the real CLI and the real HTTPS server.

mod check;
