//! CEL rules: `cel:` expressions in policies, compiled once at load with the `cel` crate
//! (cel-rust) and evaluated per subject as a [`Check`].
//!
//! A rule sees the variables of a Kubernetes ValidatingAdmissionPolicy (`object`, `oldObject`,
//! `request`, `params`, `namespaceObject`) plus podguard's `spec` and `metadata` (the subject's
//! pod spec and pod metadata, wherever they sit in the object) and, under `foreach`, `container`
//! and `index`. `true` passes; `false`, a run-time error, a non-bool result and an exhausted
//! stop by the cost limit are findings. docs/cel.md is the user-facing reference.
//!
//! Layout: `limits` bounds the text before parsing; `program` parses, checks and instruments one
//! expression; `budget` counts its cost; `patterns` compiles literal regexes at load; `vars`
//! builds the variables; `library` is
//! the function library (with `quantity`); `rule` is the `Check`.
//! Contact points: [`crate::policy::set`] calls [`compile`] for every rule with `cel`.

mod budget;
#[cfg(test)]
mod fuzz;
mod library;
pub mod limits;
mod patterns;
mod program;
mod quantity;
mod rule;
#[cfg(test)]
mod tests;
mod vars;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::checks::{Check, Params};

pub use budget::{DEFAULT_COST_LIMIT, MAX_COST_LIMIT, MAX_LIST_ELEMENTS, MAX_STRING_BYTES, WALL_CLOCK_LIMIT};

/// Container lists a CEL rule can iterate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub enum Foreach {
    Containers,
    InitContainers,
    EphemeralContainers,
    AllContainers,
}

/// What [`compile`] reads of a policy rule of kind `cel` (`policy::Rule::cel_source`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RuleSource<'a> {
    /// The `cel` expression.
    pub cel: Option<&'a str>,
    /// The fixed `message`.
    pub message: Option<&'a str>,
    /// The `messageExpression`.
    pub message_expression: Option<&'a str>,
    /// The container lists it iterates, if any.
    pub foreach: Option<Foreach>,
    /// The `costLimit`.
    pub cost_limit: Option<u64>,
}

/// Which expression of a rule an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The rule's `cel`.
    Cel,
    /// The rule's `messageExpression`.
    MessageExpression,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cel => "cel",
            Self::MessageExpression => "messageExpression",
        })
    }
}

/// A place in an expression: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A CEL expression of a rule that cannot be used: which one, where in it, and why.
///
/// ```
/// let rule = podguard::cel::RuleSource { cel: Some("spec.hostNetwork =="), ..Default::default() };
/// let err = podguard::cel::compile(rule, &Default::default()).unwrap_err();
/// assert_eq!(err.field, podguard::cel::Field::Cel);
/// assert_eq!(err.position.map(|p| (p.line, p.column)), Some((1, 20)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}{}: {reason}", .position.map(|p| format!(" at {p}")).unwrap_or_default())]
pub struct CompileError {
    /// The expression.
    pub field: Field,
    /// Where in it, when known.
    pub position: Option<Position>,
    /// What is wrong.
    pub reason: String,
}

/// Compiles one rule of kind `cel` at policy load: its `cel` and `messageExpression` with the
/// policy's `params`. The rule's `costLimit` ([`DEFAULT_COST_LIMIT`] when unset, at most
/// [`MAX_COST_LIMIT`]) bounds the work it may do on one subject, all of its containers and
/// messages included.
pub fn compile(rule: RuleSource<'_>, params: &Params) -> Result<Box<dyn Check>, CompileError> {
    let env = library::env().map_err(|e| CompileError {
        field: Field::Cel,
        position: None,
        reason: format!("the CEL environment failed to build: {e}"),
    })?;
    let source = rule.cel.ok_or_else(|| CompileError {
        field: Field::Cel,
        position: None,
        reason: "the rule has no `cel` expression".into(),
    })?;
    let cost_limit = match rule.cost_limit {
        None => DEFAULT_COST_LIMIT,
        Some(n) if (1..=MAX_COST_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(CompileError {
                field: Field::Cel,
                position: None,
                reason: format!("costLimit {n} is out of range: use 1 to {MAX_COST_LIMIT}"),
            });
        }
    };
    let foreach = rule.foreach.is_some();
    let mut patterns = Vec::new();
    let cel = program::Program::compile(&env, Field::Cel, source, foreach, cost_limit, &mut patterns)?;
    let message_expression = rule
        .message_expression
        .map(|m| {
            program::Program::compile(&env, Field::MessageExpression, m, foreach, cost_limit, &mut patterns)
        })
        .transpose()?;
    Ok(Box::new(rule::CelRule {
        env,
        source: source.to_owned(),
        cel,
        message: rule.message.map(str::to_owned),
        message_expression,
        foreach: rule.foreach,
        params: vars::from_params(params),
        patterns,
        cost_limit,
    }))
}
