//! A compiled `cel` rule as a [`Check`]: binds the variables once per subject, evaluates the
//! expression once (or once per container under `foreach`), and turns every outcome other than
//! `true` into a [`Finding`] at the subject's or the container's path.

use std::fmt;
use std::sync::Arc;

use cel::common::types::{CelBool, CelString};
use cel::common::value::Val;
use cel::{Env, ExecutionError};

use super::Foreach;
use super::budget::{MAX_LIST_ELEMENTS, MAX_STRING_BYTES, Meter, Over};
use super::patterns::Pattern;
use super::program::{Program, Uses, Var};
use super::vars::{BindError, Bindings, SubjectVars, Texts, container_text, from_json};
use crate::checks::Check;
use crate::context::Context;
use crate::finding::{FieldPath, Finding};
use crate::subject::{ContainerKind, Subject};

/// Longest message a `messageExpression` may produce; longer ones are cut.
const MAX_MESSAGE: usize = 1024;

/// Longest excerpt of the expression quoted in the default message.
const MAX_QUOTE: usize = 160;

/// A compiled `cel` rule.
pub(super) struct CelRule {
    pub(super) env: Arc<Env>,
    pub(super) source: String,
    pub(super) cel: Program,
    pub(super) message: Option<String>,
    pub(super) message_expression: Option<Program>,
    pub(super) foreach: Option<Foreach>,
    pub(super) params: Box<dyn Val>,
    pub(super) patterns: Vec<Pattern>,
    pub(super) cost_limit: u64,
}

impl fmt::Debug for CelRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CelRule")
            .field("cel", &self.source)
            .field("foreach", &self.foreach)
            .field("cost_limit", &self.cost_limit)
            .finish_non_exhaustive()
    }
}

/// How one evaluation went, short of passing.
enum Outcome {
    False,
    NotBool(String),
    Error(ExecutionError),
    Stopped(Over),
}

fn includes(foreach: Foreach, kind: ContainerKind) -> bool {
    match foreach {
        Foreach::AllContainers => true,
        Foreach::Containers => kind == ContainerKind::Container,
        Foreach::InitContainers => kind == ContainerKind::InitContainer,
        Foreach::EphemeralContainers => kind == ContainerKind::EphemeralContainer,
    }
}

impl CelRule {
    fn uses(&self) -> Uses {
        self.message_expression.as_ref().map_or(self.cel.uses, |m| m.uses.union(self.cel.uses))
    }

    /// Runs the expression with `bindings`; `None` when it holds.
    fn judge(&self, bindings: &Bindings<'_, '_>, meter: &Meter) -> Option<Outcome> {
        let mut ctx = cel::Context::with_env(Arc::clone(&self.env));
        ctx.set_variable_resolver(bindings);
        let outcome = match self.cel.run(&ctx) {
            Ok(v) => match v.downcast_ref::<CelBool>() {
                Some(b) if *b.inner() => None,
                Some(_) => Some(Outcome::False),
                None => Some(Outcome::NotBool(v.get_type().name().to_owned())),
            },
            Err(e) => Some(Outcome::Error(e)),
        };
        // A cost error may have been absorbed by `||` or `&&`: the verdict does not count.
        match meter.over() {
            Some(over) => Some(Outcome::Stopped(over)),
            None => outcome,
        }
    }

    /// The message of a false verdict: the `messageExpression`'s, else `message`, else a default.
    fn message(&self, bindings: &Bindings<'_, '_>, meter: &Meter) -> (String, &'static str) {
        let fallback = || match &self.message {
            Some(m) => (m.clone(), ""),
            None => (
                format!("CEL rule is false: {}", quote(&self.source)),
                "change the object so that the rule holds",
            ),
        };
        let Some(program) = &self.message_expression else { return fallback() };
        let mut ctx = cel::Context::with_env(Arc::clone(&self.env));
        ctx.set_variable_resolver(bindings);
        // As in Kubernetes: a messageExpression that fails, or yields no usable one-line string,
        // gives way to `message`.
        let problem = match program.run(&ctx) {
            Ok(v) => match v.downcast_ref::<CelString>().map(|s| s.inner()) {
                Some(s) if !s.trim().is_empty() && !s.contains('\n') => {
                    return (truncate(s, MAX_MESSAGE), "");
                }
                Some(_) => "it produced an empty or multi-line string".to_owned(),
                None => format!("it returned {}, not string", v.get_type().name()),
            },
            Err(_) if meter.over().is_some() => "it exceeded the rule's cost limit".to_owned(),
            Err(e) => error_text(&e),
        };
        let (message, fix) = fallback();
        (format!("{message} (messageExpression failed: {problem})"), fix)
    }

    fn finding(
        &self,
        outcome: Outcome,
        path: FieldPath,
        bindings: &Bindings<'_, '_>,
        meter: &Meter,
    ) -> Finding {
        match outcome {
            Outcome::False => {
                let (message, fix) = self.message(bindings, meter);
                Finding::new(path, message, fix)
            }
            Outcome::NotBool(t) => Finding::new(
                path,
                format!("CEL rule returned {t}, not bool: {}", quote(&self.source)),
                "make the expression evaluate to true or false",
            ),
            Outcome::Error(e) => Finding::new(
                path,
                format!("CEL rule failed: {}", error_text(&e)),
                "fix the rule: guard optional fields with has() and compare values of one type",
            ),
            Outcome::Stopped(over) => self.stopped(path, over),
        }
    }

    fn stopped(&self, path: FieldPath, over: Over) -> Finding {
        let (what, fix) = match over {
            Over::Cost => (
                format!("CEL rule exceeded its cost limit of {} units", self.cost_limit),
                "do less per subject (fewer or smaller nested loops), or raise the rule's costLimit",
            ),
            Over::String(bytes) => (
                format!(
                    "CEL rule would build a string of {bytes} bytes, more than the limit of {MAX_STRING_BYTES}"
                ),
                "build smaller strings (replace, join and + can multiply sizes)",
            ),
            Over::List(n) => (
                format!(
                    "CEL rule would build a list of {n} elements, more than the limit of {MAX_LIST_ELEMENTS}"
                ),
                "build smaller lists (lists.range, split, map)",
            ),
            Over::Time => (
                format!("CEL rule ran past the {:?} safety limit", super::WALL_CLOCK_LIMIT),
                "do less per subject; this limit is a safety net the cost limit should reach first",
            ),
        };
        Finding::new(path, what, fix)
    }

    fn unbound(path: FieldPath, e: &BindError) -> Finding {
        Finding::new(
            path,
            format!("CEL rule could not read `{}`: {}", e.var, e.reason),
            "the object cannot be given to CEL rules; check that it is well-formed",
        )
    }
}

impl Check for CelRule {
    fn evaluate(&self, ctx: &Context<'_>, subject: &Subject<'_>, out: &mut Vec<Finding>) {
        let meter = Meter::arm(self.cost_limit);
        let uses = self.uses();
        let texts = match Texts::render(uses, subject) {
            Ok(t) => t,
            Err(e) => return out.push(Self::unbound(subject.path(), &e)),
        };
        let vars = match SubjectVars::bind(uses, ctx, &texts, &*self.params) {
            Ok(v) => v,
            Err(e) => return out.push(Self::unbound(subject.path(), &e)),
        };
        let Some(foreach) = self.foreach else {
            let bindings = Bindings::new(&vars, &self.patterns, None);
            if let Some(outcome) = self.judge(&bindings, &meter) {
                out.push(self.finding(outcome, subject.path(), &bindings, &meter));
            }
            return;
        };
        for c in subject.containers().filter(|c| includes(foreach, c.kind)) {
            let text = if uses.has(Var::Container) {
                match container_text(&c) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        out.push(Self::unbound(c.path(subject), &e));
                        continue;
                    }
                }
            } else {
                None
            };
            let value = match text.as_deref().map(from_json).transpose() {
                Ok(v) => v,
                Err(e) => {
                    let e = BindError { var: Var::Container.name(), reason: e.to_string() };
                    out.push(Self::unbound(c.path(subject), &e));
                    continue;
                }
            };
            let bindings = Bindings::new(&vars, &self.patterns, Some((value.as_deref(), c.index)));
            if let Some(outcome) = self.judge(&bindings, &meter) {
                let over = matches!(outcome, Outcome::Stopped(_));
                out.push(self.finding(outcome, c.path(subject), &bindings, &meter));
                if over {
                    return;
                }
            }
        }
    }
}

/// The error as users should read it: internal names mapped back to the ones they wrote.
fn error_text(e: &ExecutionError) -> String {
    e.to_string().replace("'@", "'").replace(super::patterns::TYPE_NAME, "string")
}

fn quote(source: &str) -> String {
    truncate(&source.split_whitespace().collect::<Vec<_>>().join(" "), MAX_QUOTE)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
