//! The cost limit of a CEL rule: work counted, not time measured, so that the same rule on the
//! same object always gets the same verdict, in `podguard check` as in a busy webhook.
//!
//! cel 0.15 has no cost model and no way to interrupt a running program, so podguard makes one.
//! After parsing, [`instrument`] rewrites the program:
//!
//! - every comprehension (`all`, `exists`, `exists_one`, `map`, `filter`, `sortBy`, ...) calls
//!   the internal function `@tick` on each iteration, which charges one unit;
//! - every call that builds a string or a list (`+`, `split`, `lowerAscii`, `sort`, `findAll`,
//!   ...) is wrapped in `@cost`, which charges for the size of what was built and refuses a
//!   string over [`MAX_STRING_BYTES`] or a list over [`MAX_LIST_ELEMENTS`];
//! - the calls whose output can be far larger than their input are replaced by podguard's own
//!   versions, which check the size of the result before building it: `lists.range(n)`,
//!   `replace` and `join`.
//!
//! The first charge over the limit fails; the error ends the evaluation, and the meter stays
//! over for the rest of it, so that no `||` or `&&` can absorb the error into a verdict. Names
//! starting with `@` cannot be written in CEL source, so no expression can call or shadow these.
//! The meter lives in a thread-local because cel function overloads are plain `fn` pointers and
//! evaluation is synchronous on the calling thread.
//!
//! Without loops a CEL program is a tree walked once, so the work between two charges is bounded
//! by the size of the expression times the size of the values it reads, which are the object
//! (bounded by the request size) and what earlier calls built (bounded by the limits above).
//! A wall clock stays only as a safety net far above any rule that fits the cost limit.

use std::cell::Cell;
use std::time::{Duration, Instant};

use cel::common::ast::{CallExpr, Expr, IdedExpr, operators};
use cel::common::types::{CelBytes, CelInt, CelList, CelMap, CelString, DYN_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// The internal function wrapped around one sub-expression of every loop.
pub(super) const TICK: &str = "@tick";

/// The internal function wrapped around every call that builds a string or a list.
pub(super) const COST: &str = "@cost";

/// Longest string (or bytes) an expression may build.
pub const MAX_STRING_BYTES: usize = 1 << 20;

/// Longest list an expression may build.
pub const MAX_LIST_ELEMENTS: usize = 100_000;

/// Cost units a rule may spend on one subject (all containers and messages) unless the rule
/// says otherwise: about 10 ms of work on current hardware, far above real rules (tens of units).
pub const DEFAULT_COST_LIMIT: u64 = 100_000;

/// The most a rule may ask for with `costLimit`: about 100 ms of work, far below the wall-clock
/// safety net, so that the count, not the clock, stops every rule.
pub const MAX_COST_LIMIT: u64 = 1_000_000;

/// The wall-clock safety net: a rule still running after this long is stopped. Far above what
/// [`MAX_COST_LIMIT`] allows, so it never decides a verdict the cost limit would not.
pub const WALL_CLOCK_LIMIT: Duration = Duration::from_secs(2);

/// Bytes of a built string charged as one unit.
const BYTES_PER_UNIT: usize = 64;

/// Charges between two looks at the clock.
const CLOCK_EVERY: u64 = 1024;

/// Why an evaluation was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Over {
    /// The cost limit was reached.
    Cost,
    /// A string (or bytes) of this many bytes would have been built.
    String(usize),
    /// A list of this many elements would have been built.
    List(usize),
    /// The wall-clock safety net.
    Time,
}

#[derive(Clone, Copy, Debug)]
struct State {
    limit: u64,
    spent: u64,
    next_clock: u64,
    deadline: Option<Instant>,
    over: Option<Over>,
}

thread_local! {
    static METER: Cell<Option<State>> = const { Cell::new(None) };
}

/// The meter of one rule evaluated on one subject; the previous one (if any) comes back on drop,
/// so nested or interleaved evaluations on one thread cannot clear each other's.
#[derive(Debug)]
pub(super) struct Meter {
    previous: Option<State>,
}

impl Meter {
    /// Arms a meter allowing `limit` units, with the wall-clock safety net.
    pub(super) fn arm(limit: u64) -> Self {
        let state = State {
            limit,
            spent: 0,
            next_clock: CLOCK_EVERY,
            deadline: Instant::now().checked_add(WALL_CLOCK_LIMIT),
            over: None,
        };
        Self { previous: METER.replace(Some(state)) }
    }

    /// Why the evaluation was stopped, if it was.
    pub(super) fn over(&self) -> Option<Over> {
        METER.get().and_then(|s| s.over)
    }

    /// Units spent so far.
    #[cfg(test)]
    pub(super) fn spent(&self) -> u64 {
        METER.get().map_or(0, |s| s.spent)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        METER.set(self.previous);
    }
}

fn stop(mut state: State, over: Over) -> ExecutionError {
    // The first reason stands: it is the one the rule's author can act on.
    state.over.get_or_insert(over);
    METER.set(Some(state));
    ExecutionError::function_error("cost", "CEL cost limit exceeded")
}

/// Charges `units`. Fails once the limit is passed (and keeps failing: a stopped evaluation
/// stays stopped). Without an armed meter nothing is counted.
pub(super) fn charge(units: u64) -> Result<(), ExecutionError> {
    let Some(mut state) = METER.get() else { return Ok(()) };
    if let Some(over) = state.over {
        return Err(stop(state, over));
    }
    state.spent = state.spent.saturating_add(units);
    if state.spent > state.limit {
        return Err(stop(state, Over::Cost));
    }
    if state.spent >= state.next_clock {
        state.next_clock = state.spent.saturating_add(CLOCK_EVERY);
        if state.deadline.is_some_and(|at| Instant::now() >= at) {
            return Err(stop(state, Over::Time));
        }
    }
    METER.set(Some(state));
    Ok(())
}

/// Refuses a string of `bytes` before it is built, else charges for building it.
pub(super) fn charge_string(bytes: usize) -> Result<(), ExecutionError> {
    if bytes > MAX_STRING_BYTES
        && let Some(state) = METER.get()
    {
        return Err(stop(state, Over::String(bytes)));
    }
    charge(1 + (bytes / BYTES_PER_UNIT) as u64)
}

/// Refuses a list of `elements` before it is built, else charges for building it.
pub(super) fn charge_list(elements: usize) -> Result<(), ExecutionError> {
    if elements > MAX_LIST_ELEMENTS
        && let Some(state) = METER.get()
    {
        return Err(stop(state, Over::List(elements)));
    }
    charge(1 + elements as u64)
}

fn tick<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    charge(1)?;
    args.pop().ok_or_else(ExecutionError::missing_argument_or_target)
}

/// `@cost(x)`: charges for the value just built and refuses one over the size limits.
fn cost<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args.pop().ok_or_else(ExecutionError::missing_argument_or_target)?;
    let v = value.as_ref();
    if let Some(s) = v.downcast_ref::<CelString>() {
        charge_string(s.inner().len())?;
    } else if let Some(b) = v.downcast_ref::<CelBytes>() {
        charge_string(b.inner().len())?;
    } else if let Some(l) = v.downcast_ref::<CelList>() {
        charge_list(l.inner().len())?;
    } else if let Some(m) = v.downcast_ref::<CelMap>() {
        charge_list(m.inner().len())?;
    } else {
        charge(1)?;
    }
    Ok(value)
}

fn string_arg<'a>(v: &'a CowVal<'_, '_>, want: &str) -> Result<&'a str, ExecutionError> {
    v.as_ref().downcast_ref::<CelString>().map(|s| s.inner()).ok_or_else(|| ExecutionError::UnexpectedType {
        got: v.as_ref().get_type().name().to_owned(),
        want: want.to_owned(),
    })
}

/// `@replace(s, from, to[, n])`: `s.replace(from, to[, n])`, with the result's size known
/// before it is built (one replacement can multiply the size of the string).
fn replace<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (s, from, to) = match args.as_slice() {
        [s, from, to] | [s, from, to, _] => {
            (string_arg(s, "string")?, string_arg(from, "string")?, string_arg(to, "string")?)
        }
        _ => return Err(ExecutionError::invalid_argument_count(3, args.len())),
    };
    // As cel's strings library: the first `n` occurrences, all when `n` is negative.
    let n = match args.get(3) {
        Some(n) => {
            let n = n.as_ref().downcast_ref::<CelInt>().ok_or_else(|| ExecutionError::UnexpectedType {
                got: n.as_ref().get_type().name().to_owned(),
                want: "int".to_owned(),
            })?;
            usize::try_from(*n.inner()).ok()
        }
        None => None,
    };
    let found = s.matches(from).count().min(n.unwrap_or(usize::MAX));
    // An empty `from` matches between every character and at both ends.
    let found = if from.is_empty() { (s.chars().count() + 1).min(n.unwrap_or(usize::MAX)) } else { found };
    charge(1 + (s.len() / BYTES_PER_UNIT) as u64)?;
    let size = (s.len() - found * from.len()).saturating_add(found.saturating_mul(to.len()));
    charge_string(size)?;
    let out = match n {
        Some(n) => s.replacen(from, to, n),
        None => s.replace(from, to),
    };
    Ok(CowVal::owned(CelString::from(out)))
}

/// `@join(list[, sep])`: `list.join([sep])`, with the result's size known before it is built.
fn join<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (list, sep) = match args.as_slice() {
        [list] => (list, ""),
        [list, sep] => (list, string_arg(sep, "string")?),
        _ => return Err(ExecutionError::invalid_argument_count(1, args.len())),
    };
    let items = super::library::elements(list.as_ref())?;
    let mut parts = Vec::with_capacity(items.len());
    for item in &items {
        parts.push(item.downcast_ref::<CelString>().map(|s| s.inner()).ok_or_else(|| {
            ExecutionError::UnexpectedType {
                got: item.get_type().name().to_owned(),
                want: "string".to_owned(),
            }
        })?);
    }
    let size = parts
        .iter()
        .map(|p| p.len())
        .fold(sep.len().saturating_mul(parts.len().saturating_sub(1)), usize::saturating_add);
    charge_string(size)?;
    Ok(CowVal::owned(CelString::from(parts.join(sep))))
}

/// `@range(n)`: `lists.range(n)`, refused before it is built when `n` is over the list limit.
fn range<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [n] = args.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(1, args.len()));
    };
    let n = *n
        .as_ref()
        .downcast_ref::<CelInt>()
        .ok_or_else(|| ExecutionError::UnexpectedType {
            got: n.as_ref().get_type().name().to_owned(),
            want: "int".to_owned(),
        })?
        .inner();
    // As cel's lists library.
    let len = usize::try_from(n).map_err(|_| {
        ExecutionError::function_error("lists.range", format!("size must be non-negative, got {n}"))
    })?;
    charge_list(len)?;
    let items: Vec<Box<dyn Val>> = (0..n).map(|i| Box::new(CelInt::from(i)) as Box<dyn Val>).collect();
    Ok(CowVal::owned(CelList::from(items)))
}

/// Declares the internal functions in `env`.
pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(TICK, "@tick(dyn)", vec![DYN_TYPE], tick)?;
    env.add_overload(COST, "@cost(dyn)", vec![DYN_TYPE], cost)?;
    env.add_overload(REPLACE, "@replace(dyn,dyn,dyn)", vec![DYN_TYPE, DYN_TYPE, DYN_TYPE], replace)?;
    env.add_overload(
        REPLACE,
        "@replace(dyn,dyn,dyn,dyn)",
        vec![DYN_TYPE, DYN_TYPE, DYN_TYPE, DYN_TYPE],
        replace,
    )?;
    env.add_overload(JOIN, "@join(dyn)", vec![DYN_TYPE], join)?;
    env.add_overload(JOIN, "@join(dyn,dyn)", vec![DYN_TYPE, DYN_TYPE], join)?;
    env.add_overload(RANGE, "@range(dyn)", vec![DYN_TYPE], range)
}

const REPLACE: &str = "@replace";
const JOIN: &str = "@join";
const RANGE: &str = "@range";

/// Calls whose result is a built string or list, charged by its size through `@cost`.
pub(super) const BUILDERS: &[&str] = &[
    operators::ADD,
    "split",
    "lowerAscii",
    "upperAscii",
    "trim",
    "substring",
    "reverse",
    "quote",
    "format",
    "sort",
    "flatten",
    "slice",
    "findAll",
    "encode",
    "decode",
    "string",
    "bytes",
];

/// Rewrites every comprehension under `expr` so that each iteration ticks. New nodes take ids
/// above `next_id`, so they never collide with the parser's.
pub(super) fn instrument(expr: &mut IdedExpr, next_id: &mut u64) {
    for child in super::program::children_mut(expr) {
        instrument(child, next_id);
    }
    if let Expr::Call(call) = &mut expr.expr {
        if let Some(own) = own_version(call) {
            // `s.replace(a, b)` becomes `@replace(s, a, b)`: the target is the first argument.
            if let Some(target) = call.target.take().filter(|_| own != RANGE) {
                call.args.insert(0, *target);
            }
            call.target = None;
            call.func_name = own.to_owned();
        } else if BUILDERS.contains(&call.func_name.as_str()) && !appends_to_accumulator(call) {
            wrap_in(COST, expr, next_id);
        }
        return;
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
        wrap_in(TICK, spot, next_id);
        return;
    }
    wrap_in(TICK, &mut c.loop_cond, next_id);
}

/// The name of podguard's own version of `call`'s function, if it has one.
fn own_version(call: &CallExpr) -> Option<&'static str> {
    let target = call.target.as_deref();
    match (call.func_name.as_str(), target.map(|t| &t.expr), call.args.len()) {
        ("replace", Some(_), 2 | 3) => Some(REPLACE),
        ("join", Some(_), 0 | 1) => Some(JOIN),
        ("range", Some(Expr::Ident(ns)), 1) if ns == "lists" => Some(RANGE),
        _ => None,
    }
}

/// `@result + [x]`, the step of `map` and `filter`: charged by their ticks, and left as it is so
/// that cel keeps appending in place (wrapping it would make those loops quadratic).
pub(super) fn appends_to_accumulator(call: &CallExpr) -> bool {
    call.func_name == operators::ADD
        && matches!(call.args.first().map(|a| &a.expr), Some(Expr::Ident(n)) if n.starts_with('@'))
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

fn wrap_in(function: &str, e: &mut IdedExpr, next_id: &mut u64) {
    let inner = std::mem::take(e);
    *next_id += 1;
    *e = IdedExpr {
        id: *next_id,
        expr: Expr::Call(CallExpr { func_name: function.to_owned(), target: None, args: vec![inner] }),
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
    fn a_meter_is_sticky_and_restored_on_drop() {
        assert!(charge(u64::MAX).is_ok(), "no meter armed: no limit");
        {
            let outer = Meter::arm(100);
            charge(10).unwrap();
            {
                let inner = Meter::arm(5);
                assert_eq!(inner.over(), None);
                charge(5).unwrap();
                assert!(charge(1).is_err());
                assert_eq!(inner.over(), Some(Over::Cost));
                assert!(charge(0).is_err(), "a stopped evaluation stays stopped");
            }
            assert_eq!((outer.over(), outer.spent()), (None, 10));
            assert!(charge_string(MAX_STRING_BYTES + 1).is_err());
            assert_eq!(outer.over(), Some(Over::String(MAX_STRING_BYTES + 1)));
            assert!(charge(1).is_err());
            assert_eq!(outer.over(), Some(Over::String(MAX_STRING_BYTES + 1)), "the first reason stands");
        }
        assert!(charge(1).is_ok());
    }

    #[test]
    fn builders_are_wrapped_and_growers_replaced() {
        let e = instrumented("'a,b'.split(',').join('-').replace('-', '+') + 'x'");
        let Expr::Call(outer) = &e.expr else { panic!() };
        assert_eq!(outer.func_name, COST, "the `+` is charged");
        let Expr::Call(add) = &outer.args[0].expr else { panic!() };
        let Expr::Call(replace) = &add.args[0].expr else { panic!() };
        assert_eq!(
            (replace.func_name.as_str(), replace.target.is_none(), replace.args.len()),
            (REPLACE, true, 3)
        );
        let Expr::Call(join) = &replace.args[0].expr else { panic!() };
        assert_eq!((join.func_name.as_str(), join.args.len()), (JOIN, 2));
        let Expr::Call(split) = &join.args[0].expr else { panic!() };
        assert_eq!(split.func_name, COST);
        let e = instrumented("lists.range(3).size() == 3");
        let Expr::Call(eq) = &e.expr else { panic!() };
        let Expr::Call(size) = &eq.args[0].expr else { panic!() };
        let Expr::Call(range) = &size.target.as_deref().unwrap().expr else { panic!() };
        assert_eq!((range.func_name.as_str(), range.target.is_none(), range.args.len()), (RANGE, true, 1));
    }
}
