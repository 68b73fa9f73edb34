//! The CEL environment rules run in: cel's standard library and its `strings`, `lists`, `math`
//! and `base64` extensions, plus the parts of the Kubernetes CEL libraries that pod policies
//! use (`sets`, list helpers, regex `find`, `quantity`), and podguard's internal functions.
//!
//! Built once per process; docs/cel.md lists every function.

use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelUInt, DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{budget, patterns, quantity};

static ENV: LazyLock<Result<Arc<Env>, String>> =
    LazyLock::new(|| build().map(Arc::new).map_err(|e| e.to_string()));

/// The shared environment, or why it could not be built (a bug: declarations are static).
pub(super) fn env() -> Result<Arc<Env>, String> {
    ENV.clone()
}

fn build() -> Result<Env, DeclarationError> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)?;
    env.add_extension(cel::extensions::lists)?;
    env.add_extension(cel::extensions::math)?;
    env.add_extension(cel::extensions::encoders)?;
    env.add_extension(kubernetes_lists)?;
    env.add_extension(sets)?;
    env.add_extension(patterns::register)?;
    env.add_extension(quantity::register)?;
    env.add_extension(budget::register)?;
    Ok(env)
}

/// The elements of a list argument.
pub(super) fn elements<'b, 'v>(list: &'b (dyn Val + 'v)) -> Result<Vec<&'b (dyn Val + 'v)>, ExecutionError> {
    let iterable = list.as_iterable().ok_or_else(|| ExecutionError::UnexpectedType {
        got: list.get_type().name().to_owned(),
        want: "list".to_owned(),
    })?;
    let mut items = iterable.iter();
    let mut out = Vec::new();
    while let Some(item) = items.next() {
        out.push(item);
    }
    Ok(out)
}

fn args<'b, 'v, const N: usize>(args: Vec<CowVal<'b, 'v>>) -> Result<[CowVal<'b, 'v>; N], ExecutionError> {
    args.try_into().map_err(|a: Vec<_>| ExecutionError::invalid_argument_count(N, a.len()))
}

fn boolean<'b, 'v>(b: bool) -> CowVal<'b, 'v> {
    CowVal::owned(CelBool::from(b))
}

fn int<'b, 'v>(i: i64) -> CowVal<'b, 'v> {
    CowVal::owned(CelInt::from(i))
}

/// One unit per this many element comparisons of the `sets` functions.
const COMPARISONS_PER_UNIT: usize = 8;

/// `true` when every element of `of` equals some element of `within`. Charges as it goes: the
/// work is the product of the two sizes.
fn all_within(within: &[&dyn Val], of: &[&dyn Val]) -> Result<bool, ExecutionError> {
    for x in of {
        budget::charge(1 + (within.len() / COMPARISONS_PER_UNIT) as u64)?;
        if !within.iter().any(|y| x.equals(*y)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Kubernetes' `sets` library: lists as sets.
fn sets(env: &mut Env) -> Result<(), DeclarationError> {
    fn contains<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        let [a, b] = args(a)?;
        Ok(boolean(all_within(&elements(a.as_ref())?, &elements(b.as_ref())?)?))
    }
    fn equivalent<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        let [a, b] = args(a)?;
        let (a, b) = (elements(a.as_ref())?, elements(b.as_ref())?);
        Ok(boolean(all_within(&a, &b)? && all_within(&b, &a)?))
    }
    fn intersects<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        let [a, b] = args(a)?;
        let (a, b) = (elements(a.as_ref())?, elements(b.as_ref())?);
        for x in &a {
            budget::charge(1 + (b.len() / COMPARISONS_PER_UNIT) as u64)?;
            if b.iter().any(|y| x.equals(*y)) {
                return Ok(boolean(true));
            }
        }
        Ok(boolean(false))
    }
    let lists = || vec![LIST_TYPE, LIST_TYPE];
    env.add_overload("sets.contains", "sets.contains(list,list)", lists(), contains)?;
    env.add_overload("sets.equivalent", "sets.equivalent(list,list)", lists(), equivalent)?;
    env.add_overload("sets.intersects", "sets.intersects(list,list)", lists(), intersects)
}

fn compare(a: &dyn Val, b: &dyn Val) -> Result<Ordering, ExecutionError> {
    let values = || {
        ExecutionError::no_such_overload(
            "compare",
            vec![a.get_type().name().into(), b.get_type().name().into()],
        )
    };
    a.as_comparer().ok_or_else(values)?.compare(b).map_err(|_| values())
}

/// Kubernetes' list library: `isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf`.
fn kubernetes_lists(env: &mut Env) -> Result<(), DeclarationError> {
    fn is_sorted<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        let [list] = args(a)?;
        let items = elements(list.as_ref())?;
        for pair in items.windows(2) {
            if compare(pair[0], pair[1])? == Ordering::Greater {
                return Ok(boolean(false));
            }
        }
        Ok(boolean(true))
    }
    fn sum<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        let [list] = args(a)?;
        let items = elements(list.as_ref())?;
        let overflow = || ExecutionError::function_error("sum", "overflow");
        let wrong = |v: &dyn Val| {
            ExecutionError::function_error("sum", format!("cannot add {}", v.get_type().name()))
        };
        match items.first() {
            None => Ok(int(0)),
            Some(first) if first.downcast_ref::<CelInt>().is_some() => {
                let mut total = 0i64;
                for v in &items {
                    let i = v.downcast_ref::<CelInt>().ok_or_else(|| wrong(*v))?;
                    total = total.checked_add(*i.inner()).ok_or_else(overflow)?;
                }
                Ok(int(total))
            }
            Some(first) if first.downcast_ref::<CelUInt>().is_some() => {
                let mut total = 0u64;
                for v in &items {
                    let u = v.downcast_ref::<CelUInt>().ok_or_else(|| wrong(*v))?;
                    total = total.checked_add(*u.inner()).ok_or_else(overflow)?;
                }
                Ok(CowVal::owned(CelUInt::from(total)))
            }
            Some(_) => {
                let mut total = 0f64;
                for v in &items {
                    total += *v.downcast_ref::<CelDouble>().ok_or_else(|| wrong(*v))?.inner();
                }
                Ok(CowVal::owned(CelDouble::from(total)))
            }
        }
    }
    fn extreme<'b, 'v>(
        a: Vec<CowVal<'b, 'v>>,
        keep: Ordering,
        name: &str,
    ) -> Result<CowVal<'b, 'v>, ExecutionError> {
        let [list] = args(a)?;
        let items = elements(list.as_ref())?;
        let mut best = *items.first().ok_or_else(|| ExecutionError::function_error(name, "empty list"))?;
        for v in &items[1..] {
            if compare(*v, best)? == keep {
                best = *v;
            }
        }
        Ok(CowVal::Owned(best.clone_as_boxed()))
    }
    fn min<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        extreme(a, Ordering::Less, "min")
    }
    fn max<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        extreme(a, Ordering::Greater, "max")
    }
    fn position(a: Vec<CowVal<'_, '_>>, last: bool) -> Result<i64, ExecutionError> {
        let [list, x] = args(a)?;
        let items = elements(list.as_ref())?;
        let found = if last {
            items.iter().rposition(|v| v.equals(x.as_ref()))
        } else {
            items.iter().position(|v| v.equals(x.as_ref()))
        };
        Ok(found.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)))
    }
    fn index_of<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        position(a, false).map(int)
    }
    fn last_index_of<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
        position(a, true).map(int)
    }
    env.add_member_overload("isSorted", "list.isSorted()", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list.sum()", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list.min()", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list.max()", LIST_TYPE, vec![], max)?;
    env.add_member_overload("indexOf", "list.indexOf(dyn)", LIST_TYPE, vec![DYN_TYPE], index_of)?;
    env.add_member_overload("lastIndexOf", "list.lastIndexOf(dyn)", LIST_TYPE, vec![DYN_TYPE], last_index_of)
}

/// A list of owned values.
pub(super) fn list<'b, 'v>(items: Vec<Box<dyn Val + 'v>>) -> CowVal<'b, 'v> {
    CowVal::owned(CelList::from(items))
}
