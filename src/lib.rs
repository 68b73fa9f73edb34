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
//! Pure modules (no IO): [`object`], [`subject`], [`context`], [`finding`], [`policy`],
//! [`checks`], [`cel`], [`admission`], [`audit`], [`report`], [`compliance`], [`json`], [`yaml`],
//! [`yaml11`]. IO lives in [`input`], [`source`], [`server`], [`cli`], [`telemetry`], [`metrics`]
//! and [`memory`]. Dependencies run one way: no module imports one that imports it back, and no
//! pure module imports an IO one (`tests/e2e/layers.rs` checks both; docs/architecture.md draws
//! the map).

pub mod admission;
pub mod audit;
pub mod cel;
pub mod checks;
pub mod cli;
pub mod compliance;
pub mod context;
pub mod finding;
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
