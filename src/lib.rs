//! podguard: pod policies as code, enforced at admission and checked in CI.
//!
//! Every front door (the webhook, `podguard check`, `podguard policies`) runs the same pipeline:
//!
//! ```text
//! input ──> object ──> subject ──> policy set ──> violations ──> decision ──> rendering
//! (review,   (typed     (pod spec   (compiled,     (policy, rule,  (modes,       (AdmissionResponse,
//!  manifest)  workload)  + prefix)   immutable)     path, message)  exemptions)   report)
//! ```
//!
//! Pure modules (no IO): [`object`], [`subject`], [`context`], [`policy`], [`checks`], [`cel`],
//! [`admission`], [`audit`], [`report`], [`compliance`]. IO lives in [`input`], [`source`], [`server`], [`cli`],
//! [`telemetry`] and [`metrics`].

pub mod admission;
pub mod audit;
pub mod cel;
pub mod checks;
pub mod cli;
pub mod compliance;
pub mod context;
pub mod input;
pub mod json;
pub mod memory;
pub mod metrics;
pub mod object;
pub mod policy;
pub mod report;
pub mod server;
pub mod source;
pub mod subject;
pub mod telemetry;
pub mod yaml;
pub mod yaml11;

#[cfg(test)]
pub(crate) mod testing;
