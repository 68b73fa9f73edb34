//! Regular expressions in rules: `matches` (cel's), and Kubernetes' `find` and `findAll`.
//!
//! cel compiles the pattern of `matches` on every call, which costs more than the rest of a
//! typical rule. So at load, every call whose pattern is a string literal is rewritten to an
//! internal function taking a pattern compiled once: `s.matches('^a')` becomes
//! `@matches(s, @re0)`, where the identifier `@re0` (which CEL source cannot spell) resolves to
//! the compiled pattern in the rule's table. A pattern that does not compile is then a load
//! error rather than a run-time one. Computed patterns keep the per-call path.

use std::borrow::Cow;

use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelBool, CelInt, CelString, STRING_TYPE, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use regex::Regex;

use super::library::list;

/// The functions whose literal patterns are compiled at load.
const REWRITTEN: &[&str] = &["matches", "find", "findAll"];

/// Prefix of the identifiers naming compiled patterns.
pub(super) const PREFIX: &str = "@re";

/// The type name of compiled patterns, which appears in error messages.
pub(super) const TYPE_NAME: &str = "podguard.pattern";

static PATTERN_TYPE: Type = Type::new_unspecified_type(TYPE_NAME);

/// A compiled regular expression, as a CEL value only podguard's internal functions accept.
#[derive(Clone, Debug)]
pub(super) struct Pattern(Regex);

impl Val for Pattern {
    fn get_type(&self) -> &Type {
        &PATTERN_TYPE
    }
    fn cel_type() -> &'static Type {
        &PATTERN_TYPE
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for Pattern {}

fn compile(function: &str, pattern: &str) -> Result<Regex, ExecutionError> {
    Regex::new(pattern)
        .map_err(|e| ExecutionError::function_error(function, format!("invalid regex '{pattern}': {e}")))
}

/// Rewrites the calls under `expr` whose pattern is a string literal, compiling each pattern into
/// `table`. Fails with the id of the literal and the reason when a pattern does not compile.
pub(super) fn precompile(expr: &mut IdedExpr, table: &mut Vec<Pattern>) -> Result<(), (u64, String)> {
    for child in super::program::children_mut(expr) {
        precompile(child, table)?;
    }
    let Expr::Call(call) = &mut expr.expr else { return Ok(()) };
    if !REWRITTEN.contains(&call.func_name.as_str()) {
        return Ok(());
    }
    // `s.f('p', ...)` or the global `matches(s, 'p')`.
    let pattern_at = usize::from(call.target.is_none());
    if call.target.is_none() && call.func_name != "matches" {
        return Ok(());
    }
    let Some(IdedExpr { id, expr: Expr::Literal(LiteralValue::String(p)) }) = call.args.get(pattern_at)
    else {
        return Ok(());
    };
    let regex = Regex::new(p.inner()).map_err(|e| (*id, format!("invalid regular expression: {e}")))?;
    let name = format!("{PREFIX}{}", table.len());
    table.push(Pattern(regex));
    let pattern = IdedExpr { id: *id, expr: Expr::Ident(name) };
    let mut args = std::mem::take(&mut call.args);
    args[pattern_at] = pattern;
    if let Some(target) = call.target.take() {
        args.insert(0, *target);
    }
    *call = CallExpr { func_name: format!("@{}", call.func_name), target: None, args };
    Ok(())
}

fn find_all<'v>(s: &str, re: &Regex, limit: Option<i64>) -> Vec<Box<dyn Val + 'v>> {
    let limit = match limit {
        Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    re.find_iter(s)
        .take(limit)
        .map(|m| Box::new(CelString::from(m.as_str().to_owned())) as Box<dyn Val>)
        .collect()
}

fn find_first(s: &str, re: &Regex) -> CelString<'static> {
    CelString::from(re.find(s).map_or(String::new(), |m| m.as_str().to_owned()))
}

fn str_arg<'a>(v: &'a CowVal<'_, '_>) -> Result<&'a str, ExecutionError> {
    v.downcast_ref::<CelString>().map(|s| s.inner()).ok_or_else(|| ExecutionError::UnexpectedType {
        got: v.get_type().name().to_owned(),
        want: "string".to_owned(),
    })
}

fn pattern_arg<'a>(v: &'a CowVal<'_, '_>) -> Result<&'a Regex, ExecutionError> {
    v.downcast_ref::<Pattern>()
        .map(|p| &p.0)
        .ok_or_else(|| ExecutionError::function_error("pattern", "expected a compiled pattern"))
}

fn int_arg(v: &CowVal<'_, '_>) -> Result<i64, ExecutionError> {
    v.downcast_ref::<CelInt>().map(|i| *i.inner()).ok_or_else(|| ExecutionError::UnexpectedType {
        got: v.get_type().name().to_owned(),
        want: "int".to_owned(),
    })
}

/// `(string, pattern-or-string[, int])` with the regex resolved.
fn regex_args<'a>(
    function: &str,
    args: &'a [CowVal<'_, '_>],
) -> Result<(&'a str, Cow<'a, Regex>, Option<i64>), ExecutionError> {
    let (s, p, n) = match args {
        [s, p] => (s, p, None),
        [s, p, n] => (s, p, Some(int_arg(n)?)),
        _ => return Err(ExecutionError::invalid_argument_count(2, args.len())),
    };
    // A compiled pattern is borrowed: cloning a `Regex` would drop its warmed-up search cache.
    let regex = match pattern_arg(p) {
        Ok(re) => Cow::Borrowed(re),
        Err(_) => Cow::Owned(compile(function, str_arg(p)?)?),
    };
    Ok((str_arg(s)?, regex, n))
}

fn matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (s, re, _) = regex_args("matches", &args)?;
    Ok(CowVal::owned(CelBool::from(re.is_match(s))))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (s, re, _) = regex_args("find", &args)?;
    Ok(CowVal::owned(find_first(s, &re)))
}

fn find_all_fn<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (s, re, n) = regex_args("findAll", &args)?;
    Ok(list(find_all(s, &re, n)))
}

/// Declares `find`, `findAll` and the internal `@matches`, `@find`, `@findAll`.
pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let p = || PATTERN_TYPE.to_owned();
    let int = || cel::common::types::INT_TYPE;
    env.add_member_overload("find", "string.find(string)", STRING_TYPE, vec![STRING_TYPE], find)?;
    env.add_member_overload(
        "findAll",
        "string.findAll(string)",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all_fn,
    )?;
    env.add_member_overload(
        "findAll",
        "string.findAll(string,int)",
        STRING_TYPE,
        vec![STRING_TYPE, int()],
        find_all_fn,
    )?;
    env.add_overload("@matches", "@matches(string,pattern)", vec![STRING_TYPE, p()], matches)?;
    env.add_overload("@find", "@find(string,pattern)", vec![STRING_TYPE, p()], find)?;
    env.add_overload("@findAll", "@findAll(string,pattern)", vec![STRING_TYPE, p()], find_all_fn)?;
    env.add_overload("@findAll", "@findAll(string,pattern,int)", vec![STRING_TYPE, p(), int()], find_all_fn)
}
