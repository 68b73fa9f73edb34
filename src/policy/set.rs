//! (in progress)
/// Set.
pub struct PolicySet;
/// Compiled.
pub struct CompiledPolicy;
