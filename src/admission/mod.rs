//! The decision: from an admission request and a policy set to allow/deny with reasons.
//!
//! [`evaluate`] is the one function the webhook and `podguard check` both call, so the two
//! cannot disagree. It is pure: no IO, no clock, no globals.

pub mod decision;
pub mod exemptions;
pub mod policies;
pub mod render;
pub mod review;

pub use decision::{Decision, OnError, Outcome, Settings, evaluate};
pub use exemptions::Exemptions;
pub use review::{AdmissionRequest, AdmissionResponse, ReviewError};
