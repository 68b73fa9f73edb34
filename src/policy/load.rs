//! (in progress)
/// Where a policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin;
/// Load error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("x")]
pub struct LoadError;
/// Load.
pub fn load_str() {}
