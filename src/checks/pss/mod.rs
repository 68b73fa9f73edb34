//! Placeholder: filled in by the Pod Security Standards work.

use super::Definition;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[];
