//! End-to-end tests in one binary: the real CLI, the real HTTPS server, the rendered Helm chart.

// A test binary: a failed unwrap is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chart;
mod check;
mod ci;
mod layers;
mod policy_safety;
mod report;
mod support;
mod webhook;
