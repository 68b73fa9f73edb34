//! The time budget of a CEL rule: a deadline checked on every loop iteration.
//!
//! cel 0.15 has no cost limit and no way to interrupt a running program, so podguard makes one:
//! after parsing, [`instrument`] rewrites every comprehension (`all`, `exists`, `exists_one`,
//! `map`, `filter`, `sortBy`, ...) so that each iteration calls the internal function `@tick`.
//! `@tick(x)` returns `x` unchanged, unless the deadline armed by [`Deadline::arm`] has passed:
//! then it fails, the error ends the loop at once, and [`Deadline::exceeded`] stays true for the
//! rest of the evaluation, so that no `||` or `&&` can absorb the error into a verdict.
//!
//! Without loops a CEL program is a tree walked once, so the work between two ticks is bounded by
//! the size of the expression times the size of the input: the budget is overrun at most by one
//! loop-free step. Names starting with `@` cannot be written in CEL source, so no expression can
//! call or shadow `@tick`. The deadline lives in a thread-local because cel function overloads
//! are plain `fn` pointers and evaluation is synchronous on the calling thread.

use std::cell::Cell;
use std::time::{Duration, Instant};

use cel::common::ast::{CallExpr, Expr, IdedExpr, operators};
use cel::common::types::DYN_TYPE;
use cel::common::value::CowVal;
use cel::{DeclarationError, Env, ExecutionError};

/// The internal function wrapped around one sub-expression of every loop.
pub(super) const TICK: &str = "@tick";

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// The deadline of one rule evaluated on one subject; the previous one (if any) comes back on
/// drop, so nested or interleaved evaluations on one thread cannot clear each other's.
#[derive(Debug)]
pub(super) struct Deadline {
    previous: Option<Instant>,
    previous_exceeded: bool,
}

impl Deadline {
    /// Arms a deadline `budget` from now.
    pub(super) fn arm(budget: Duration) -> Self {
        let at = Instant::now().checked_add(budget);
        let previous = DEADLINE.replace(at);
        let previous_exceeded = EXCEEDED.replace(false);
        Self { previous, previous_exceeded }
    }

    /// Whether a check of the deadline failed since [`Deadline::arm`]. Only work that was
    /// actually cut short counts: a loop-free rule that completed is judged on its result even
    /// if its thread was descheduled past the deadline, so a busy node does not fail it.
    pub(super) fn exceeded(&self) -> bool {
        EXCEEDED.get()
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.set(self.previous);
        EXCEEDED.set(self.previous_exceeded);
    }
}

/// Fails once the armed deadline has passed. Long-running functions of podguard's own library
/// call it as they go; loops call it through `@tick`.
pub(super) fn checkpoint() -> Result<(), ExecutionError> {
    if DEADLINE.get().is_some_and(|at| Instant::now() >= at) {
        EXCEEDED.set(true);
        return Err(ExecutionError::function_error("budget", "time budget exceeded"));
    }
    Ok(())
}

fn tick<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    checkpoint()?;
    args.pop().ok_or_else(ExecutionError::missing_argument_or_target)
}

/// Declares `@tick` in `env`.
pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(TICK, "@tick(dyn)", vec![DYN_TYPE], tick)
}

/// Rewrites every comprehension under `expr` so that each iteration ticks. New nodes take ids
/// above `next_id`, so they never collide with the parser's.
pub(super) fn instrument(expr: &mut IdedExpr, next_id: &mut u64) {
    for child in super::program::children_mut(expr) {
        instrument(child, next_id);
    }
    let Expr::Comprehension(c) = &mut expr.expr else { return };
    // cel runs `map`/`filter` in place when the loop condition is a literal and the step only
    // appends (`@result + [x]`, or `g ? @result + [x] : @result`); ticking inside the step keeps
    // that fast path, where ticking the condition would make them quadratic.
    let accu = c.accu_var.as_str();
    if matches!(c.loop_cond.expr, Expr::Literal(_))
        && is_ident(&c.result, accu)
        && let Some(spot) = append_spot(&mut c.loop_step, accu)
    {
        wrap(spot, next_id);
        return;
    }
    wrap(&mut c.loop_cond, next_id);
}

/// In an append-only loop step, the sub-expression evaluated on every iteration: the guard of
/// `g ? @result + [x] : @result`, or the single element of `@result + [x]`.
fn append_spot<'e>(step: &'e mut IdedExpr, accu: &str) -> Option<&'e mut IdedExpr> {
    let guarded = match &step.expr {
        Expr::Call(c) if c.target.is_none() && c.func_name == operators::CONDITIONAL => {
            match c.args.as_slice() {
                [_, then, otherwise] if is_ident(otherwise, accu) && appended(then, accu).is_some() => true,
                _ => return None,
            }
        }
        _ => match appended(step, accu) {
            Some([_]) => false,
            _ => return None,
        },
    };
    let Expr::Call(call) = &mut step.expr else { return None };
    if guarded {
        return call.args.first_mut();
    }
    match call.args.get_mut(1).map(|l| &mut l.expr) {
        Some(Expr::List(l)) => l.elements.first_mut(),
        _ => None,
    }
}

/// The elements `xs` of a step `@result + [xs]`.
fn appended<'e>(step: &'e IdedExpr, accu: &str) -> Option<&'e [IdedExpr]> {
    let Expr::Call(CallExpr { func_name, target: None, args }) = &step.expr else { return None };
    match (func_name.as_str(), args.as_slice()) {
        (operators::ADD, [lhs, IdedExpr { expr: Expr::List(l), .. }]) if is_ident(lhs, accu) => {
            Some(&l.elements)
        }
        _ => None,
    }
}

fn is_ident(e: &IdedExpr, name: &str) -> bool {
    matches!(&e.expr, Expr::Ident(n) if n == name)
}

fn wrap(e: &mut IdedExpr, next_id: &mut u64) {
    let inner = std::mem::take(e);
    *next_id += 1;
    *e = IdedExpr {
        id: *next_id,
        expr: Expr::Call(CallExpr { func_name: TICK.to_owned(), target: None, args: vec![inner] }),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instrumented(source: &str) -> IdedExpr {
        let mut e = cel::Env::stdlib().parser().parse(source).unwrap();
        instrument(&mut e, &mut 1000);
        e
    }

    fn comprehension(e: &IdedExpr) -> &cel::common::ast::ComprehensionExpr {
        match &e.expr {
            Expr::Comprehension(c) => c,
            other => panic!("not a comprehension: {other:?}"),
        }
    }

    fn ticks(e: &IdedExpr) -> bool {
        matches!(&e.expr, Expr::Call(c) if c.func_name == TICK)
    }

    #[test]
    fn map_ticks_inside_the_appended_element_and_keeps_a_literal_condition() {
        let e = instrumented("[1, 2].map(x, x * 2)");
        let c = comprehension(&e);
        assert!(matches!(c.loop_cond.expr, Expr::Literal(_)));
        let Expr::Call(step) = &c.loop_step.expr else { panic!() };
        let Expr::List(l) = &step.args[1].expr else { panic!() };
        assert!(ticks(&l.elements[0]));
    }

    #[test]
    fn filter_ticks_its_guard() {
        let e = instrumented("[1, 2].filter(x, x > 1)");
        let Expr::Call(step) = &comprehension(&e).loop_step.expr else { panic!() };
        assert_eq!(step.func_name, operators::CONDITIONAL);
        assert!(ticks(&step.args[0]));
    }

    #[test]
    fn all_and_exists_tick_their_condition_at_every_depth() {
        let e = instrumented("[1].all(x, [2].exists(y, y > x))");
        let outer = comprehension(&e);
        assert!(ticks(&outer.loop_cond));
        let Expr::Call(step) = &outer.loop_step.expr else { panic!() };
        let inner = comprehension(&step.args[1]);
        assert!(ticks(&inner.loop_cond));
    }

    #[test]
    fn a_deadline_is_sticky_and_restored_on_drop() {
        assert!(checkpoint().is_ok(), "no deadline armed: no limit");
        {
            let outer = Deadline::arm(Duration::from_secs(60));
            {
                let inner = Deadline::arm(Duration::ZERO);
                assert!(!inner.exceeded(), "nothing was cut short yet");
                assert!(checkpoint().is_err());
                assert!(inner.exceeded());
            }
            assert!(checkpoint().is_ok());
            assert!(!outer.exceeded());
        }
        assert!(checkpoint().is_ok());
    }
}
