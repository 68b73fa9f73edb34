//! Placeholder: filled in by the EKS checks work.

use super::Definition;

/// Checks defined here.
pub const DEFINITIONS: &[Definition] = &[];
