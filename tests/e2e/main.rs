//! End-to-end tests in one binary: the real CLI, the real HTTPS server, the rendered Helm chart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chart;
mod check;
