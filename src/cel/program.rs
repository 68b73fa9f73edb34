//! One compiled CEL expression: bounded in size and nesting before parsing, parsed once at policy
//! load, checked for unknown variables and functions, excessive nesting and a cost certain to
//! exceed its limit, instrumented with the cost meter, and evaluated per subject.
//!
//! cel 0.15 has no type checker, so what it cannot check at load (wrong argument types or count)
//! surfaces as run-time errors, which [`super::rule`] reports as findings.

use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, SourceInfo};
use cel::common::value::CowVal;
use cel::{Context, Env, ExecutionError, Value};

use super::patterns::{self, Pattern};
use super::{CompileError, Field, Position, budget};

/// Deepest expression tree accepted, counted after macro expansion and instrumentation. The
/// evaluator recurses once per level on the caller's stack (about 35 KiB a level in debug
/// builds, far less in release), and request threads have 2 MiB: 32 keeps every build safe and
/// is far above what real rules need (a `containers.all(c, ... .exists(...))` rule is ~12).
const MAX_DEPTH: usize = 32;

/// Stack of the thread that runs the parser. The generated parser recurses up to ~100 KiB per
/// nesting level in debug builds before its own limit of 96 levels stops it; parsing happens
/// only at policy load, so a dedicated thread with a large (lazily committed) stack is cheap.
const PARSE_STACK: usize = 64 << 20;

/// Identifiers that name function namespaces or types rather than variables.
const NON_VARIABLES: &[&str] = &[
    "math",
    "lists",
    "strings",
    "base64",
    "sets",
    "optional",
    "google",
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// Functions refused at load, and why.
const REFUSED: &[(&str, &str)] = &[(
    "distinct",
    "distinct() takes time quadratic in the list size and cannot be interrupted; \
     use sets.equivalent(), or compare sort()ed lists",
)];

/// A variable a rule can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Var {
    Object,
    OldObject,
    Request,
    Params,
    NamespaceObject,
    Spec,
    Metadata,
    Container,
    Index,
}

impl Var {
    const ALL: [Var; 9] = [
        Var::Object,
        Var::OldObject,
        Var::Request,
        Var::Params,
        Var::NamespaceObject,
        Var::Spec,
        Var::Metadata,
        Var::Container,
        Var::Index,
    ];

    /// The name expressions use.
    pub(super) fn name(self) -> &'static str {
        match self {
            Var::Object => "object",
            Var::OldObject => "oldObject",
            Var::Request => "request",
            Var::Params => "params",
            Var::NamespaceObject => "namespaceObject",
            Var::Spec => "spec",
            Var::Metadata => "metadata",
            Var::Container => "container",
            Var::Index => "index",
        }
    }

    fn by_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }

    fn per_container(self) -> bool {
        matches!(self, Var::Container | Var::Index)
    }
}

/// The set of variables an expression reads, so that evaluation converts only those.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Uses(u16);

impl Uses {
    /// Whether `v` is read.
    pub(super) fn has(self, v: Var) -> bool {
        self.0 & (1 << v as u16) != 0
    }

    fn add(&mut self, v: Var) {
        self.0 |= 1 << v as u16;
    }

    /// Both sets.
    #[must_use]
    pub(super) fn union(self, other: Uses) -> Uses {
        Uses(self.0 | other.0)
    }
}

/// A parsed, checked and instrumented expression.
#[derive(Debug)]
pub(super) struct Program {
    expr: IdedExpr,
    /// The variables it reads.
    pub(super) uses: Uses,
}

impl Program {
    /// Compiles `source`, the text of `field`. `foreach` says whether `container` and `index`
    /// are bound; patterns of `matches`, `find` and `findAll` are compiled into `patterns`.
    pub(super) fn compile(
        env: &Arc<Env>,
        field: Field,
        source: &str,
        foreach: bool,
        cost_limit: u64,
        patterns: &mut Vec<Pattern>,
    ) -> Result<Program, CompileError> {
        let (mut expr, info) = parse(env, field, source)?;
        let at = |id: u64| position(&info, source, id);
        let mut uses = Uses::default();
        let mut max_id = 0;
        let mut scope = Vec::new();
        check(&expr, &mut scope, &mut uses, &mut max_id, &|id, reason| CompileError {
            field,
            position: at(id),
            reason,
        })?;
        if let Some((id, name, reason)) = unknown_function(env, &expr) {
            // The parser places a call at its `(`; the name before it is what to point at.
            let position = info.offset_for(id).and_then(|(start, _)| {
                let before = source.get(..start as usize)?.trim_end();
                let name_start = before.strip_suffix(name)?.len();
                offset_position(source, name_start)
            });
            return Err(CompileError { field, position: position.or_else(|| at(id)), reason });
        }
        if !foreach && let Some(v) = [Var::Container, Var::Index].into_iter().find(|v| uses.has(*v)) {
            let id = first_ident(&expr, v.name()).unwrap_or(expr.id);
            return Err(CompileError {
                field,
                position: at(id),
                reason: format!("`{}` is only bound in rules with `foreach`", v.name()),
            });
        }
        let certain =
            certain_cost(&expr).map_err(|(id, reason)| CompileError { field, position: at(id), reason })?;
        if certain.cost > cost_limit {
            return Err(CompileError {
                field,
                position: at(certain.costliest),
                reason: format!(
                    "this expression costs at least {} units whatever the object, more than the rule's cost \
                     limit of {cost_limit}; loop over less, or raise costLimit",
                    certain.cost
                ),
            });
        }
        patterns::precompile(&mut expr, patterns).map_err(|(id, reason)| CompileError {
            field,
            position: at(id),
            reason,
        })?;
        budget::instrument(&mut expr, &mut max_id);
        if let Some(id) = too_deep(&expr, 1, expr.id) {
            return Err(CompileError {
                field,
                position: at(id),
                reason: format!("expression nests more than {MAX_DEPTH} levels deep; split it up"),
            });
        }
        Ok(Program { expr, uses })
    }

    /// Evaluates the program against `ctx`.
    pub(super) fn run<'e, 'v>(&'e self, ctx: &'e Context<'_, 'v>) -> Result<CowVal<'e, 'v>, ExecutionError> {
        Value::resolve_val(&self.expr, ctx)
    }
}

fn parse(env: &Arc<Env>, field: Field, source: &str) -> Result<(IdedExpr, SourceInfo), CompileError> {
    // Before the parser: it recurses per level, and an overflow aborts the process.
    super::limits::check(source).map_err(|e| CompileError {
        field,
        position: e.position,
        reason: e.reason,
    })?;
    let crashed =
        || CompileError { field, position: None, reason: "the CEL parser failed on this text".into() };
    let parsed = std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("cel-parse".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(s, || env.parser().parse_with_source_info(source))
            .ok()?;
        handle.join().ok()
    });
    let errors = match parsed.ok_or_else(crashed)? {
        Ok(parsed) => return Ok(parsed),
        Err(errors) => errors,
    };
    let Some(first) = errors.errors.first() else { return Err(crashed()) };
    let reason = if first.msg.contains("Recursion limit") {
        "expression nests too deeply; split it up".to_owned()
    } else {
        let more = errors.errors.len() - 1;
        let msg = first.msg.strip_prefix("Syntax error: ").unwrap_or(&first.msg);
        if more > 0 { format!("{msg} (and {more} more errors)") } else { msg.to_owned() }
    };
    let position = match (u32::try_from(first.pos.0), u32::try_from(first.pos.1)) {
        (Ok(line), Ok(column)) if line > 0 && column > 0 => Some(Position { line, column }),
        _ => None,
    };
    Err(CompileError { field, position, reason })
}

/// Line and column (1-based, in characters) of node `id` in `source`; the parser records byte
/// offsets.
fn position(info: &SourceInfo, source: &str, id: u64) -> Option<Position> {
    let (start, _) = info.offset_for(id)?;
    offset_position(source, start as usize)
}

/// Line and column (1-based, in characters) of byte offset `start` in `source`.
fn offset_position(source: &str, start: usize) -> Option<Position> {
    let before = source.get(..start)?;
    let (mut line, mut column) = (1u32, 1u32);
    for c in before.chars() {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Some(Position { line, column })
}

/// Walks `e`: records the free variables it reads and the largest node id, and refuses unknown
/// identifiers. `scope` holds the names comprehensions bind around `e`.
fn check<'e>(
    e: &'e IdedExpr,
    scope: &mut Vec<&'e str>,
    uses: &mut Uses,
    max_id: &mut u64,
    error: &dyn Fn(u64, String) -> CompileError,
) -> Result<(), CompileError> {
    *max_id = (*max_id).max(e.id);
    match &e.expr {
        Expr::Ident(name) if scope.contains(&name.as_str()) || NON_VARIABLES.contains(&name.as_str()) => {}
        Expr::Ident(name) => match Var::by_name(name) {
            Some(v) => uses.add(v),
            None => {
                let known: Vec<&str> =
                    Var::ALL.iter().filter(|v| !v.per_container()).map(|v| v.name()).collect();
                return Err(error(
                    e.id,
                    format!(
                        "unknown variable `{name}` (known: {}; with `foreach` also container, index)",
                        known.join(", ")
                    ),
                ));
            }
        },
        Expr::Call(call) if REFUSED.iter().any(|(f, _)| *f == call.func_name) => {
            let why = REFUSED.iter().find(|(f, _)| *f == call.func_name).map_or("", |(_, why)| why);
            return Err(error(e.id, why.to_owned()));
        }
        Expr::Comprehension(c) => {
            check(&c.iter_range, scope, uses, max_id, error)?;
            check(&c.accu_init, scope, uses, max_id, error)?;
            let outer = scope.len();
            scope.push(&c.iter_var);
            scope.extend(c.iter_var2.as_deref());
            scope.push(&c.accu_var);
            for inner in [&c.loop_cond, &c.loop_step, &c.result] {
                check(inner, scope, uses, max_id, error)?;
            }
            scope.truncate(outer);
        }
        _ => {
            for child in children(e) {
                check(child, scope, uses, max_id, error)?;
            }
        }
    }
    Ok(())
}

/// What an expression costs whatever the object it reads: a lower bound of what the meter
/// (`budget`) will charge, counting only work that cannot depend on the input (loops over literal
/// lists and `lists.range` of a literal, and what every evaluation must do). When even that is
/// over the limit, the rule would be stopped on every object, so it is refused at load instead;
/// input-dependent work is counted at run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Certain {
    cost: u64,
    /// Elements of the list the expression yields, when known.
    size: Option<u64>,
    /// The node contributing the most, for the error's position.
    costliest: u64,
}

fn certain_cost(e: &IdedExpr) -> Result<Certain, (u64, String)> {
    let sum = |parts: &[Certain], own: u64, size: Option<u64>, id: u64| {
        let cost = parts.iter().fold(own, |c, p| c.saturating_add(p.cost));
        let costliest =
            parts.iter().max_by_key(|p| p.cost).filter(|p| p.cost > own).map_or(id, |p| p.costliest);
        Certain { cost, size, costliest }
    };
    Ok(match &e.expr {
        Expr::List(l) => {
            let parts = l.elements.iter().map(certain_cost).collect::<Result<Vec<_>, _>>()?;
            sum(&parts, 0, Some(l.elements.len() as u64), e.id)
        }
        Expr::Call(c)
            if c.func_name == "range"
                && matches!(c.target.as_deref().map(|t| &t.expr), Some(Expr::Ident(n)) if n == "lists") =>
        {
            let literal = match c.args.as_slice() {
                [IdedExpr { expr: Expr::Literal(cel::common::ast::LiteralValue::Int(n)), .. }] => {
                    Some(*n.inner())
                }
                _ => None,
            };
            match literal {
                Some(n) if n > budget::MAX_LIST_ELEMENTS as i64 => {
                    return Err((
                        e.id,
                        format!(
                            "lists.range({n}) would build a list of {n} elements, more than the limit of {}",
                            budget::MAX_LIST_ELEMENTS
                        ),
                    ));
                }
                Some(n) => {
                    let n = n.max(0) as u64;
                    Certain { cost: 1 + n, size: Some(n), costliest: e.id }
                }
                None => {
                    let parts = c.args.iter().map(certain_cost).collect::<Result<Vec<_>, _>>()?;
                    sum(&parts, 1, None, e.id)
                }
            }
        }
        Expr::Call(c) if matches!(c.func_name.as_str(), "_&&_" | "_||_") => {
            // The right side may never run.
            let first = c.args.first().map(certain_cost).transpose()?.unwrap_or_default();
            sum(&[first], 0, None, e.id)
        }
        Expr::Call(c) if c.func_name == cel::common::ast::operators::CONDITIONAL => {
            let parts = c.args.iter().map(certain_cost).collect::<Result<Vec<_>, _>>()?;
            let cheaper =
                parts.get(1..).and_then(|b| b.iter().min_by_key(|p| p.cost)).copied().unwrap_or_default();
            sum(&[parts.first().copied().unwrap_or_default(), cheaper], 0, None, e.id)
        }
        Expr::Call(c) => {
            let target = c.target.as_deref().map(certain_cost).transpose()?;
            let mut parts = c.args.iter().map(certain_cost).collect::<Result<Vec<_>, _>>()?;
            // Only what the meter charges at run time: a builder at least one unit (its size
            // when known: `sort`, `reverse`, `flatten` of a known list, `+` of known lists),
            // podguard's own `replace` and `join` at least one; other calls nothing.
            let appends = budget::appends_to_accumulator(c);
            let (own, size) = match (c.func_name.as_str(), target.and_then(|t| t.size)) {
                ("sort" | "reverse" | "flatten", Some(n)) => (1 + n, Some(n)),
                _ if c.func_name == cel::common::ast::operators::ADD && !appends => {
                    let n = parts.iter().map(|p| p.size).sum::<Option<u64>>();
                    (1 + n.unwrap_or(0), n)
                }
                ("replace" | "join", _) if c.target.is_some() => (1, None),
                (f, _) if budget::BUILDERS.contains(&f) && !appends => (1, None),
                _ => (0, None),
            };
            parts.extend(target);
            sum(&parts, own, size, e.id)
        }
        Expr::Comprehension(c) => {
            let range = certain_cost(&c.iter_range)?;
            let init = certain_cost(&c.accu_init)?;
            let cond = certain_cost(&c.loop_cond)?;
            let step = certain_cost(&c.loop_step)?;
            let result = certain_cost(&c.result)?;
            // `all`/`exists` may stop after one element; `map` and `filter` (a literal condition)
            // visit them all.
            let n = range.size.unwrap_or(0);
            let visits = if matches!(c.loop_cond.expr, Expr::Literal(_)) { n } else { n.min(1) };
            let each = 1u64.saturating_add(cond.cost).saturating_add(step.cost);
            let loop_cost = Certain { cost: visits.saturating_mul(each), size: None, costliest: e.id };
            let size = if matches!(c.loop_cond.expr, Expr::Literal(_)) && is_map(c) { Some(n) } else { None };
            sum(&[range, init, loop_cost, result], 0, size, e.id)
        }
        Expr::Select(s) => certain_cost(&s.operand)?,
        Expr::Map(m) => {
            let parts = m
                .entries
                .iter()
                .flat_map(|en| entry(&en.expr))
                .map(certain_cost)
                .collect::<Result<Vec<_>, _>>()?;
            sum(&parts, 0, Some(m.entries.len() as u64), e.id)
        }
        Expr::Struct(st) => {
            let parts = st
                .entries
                .iter()
                .flat_map(|en| entry(&en.expr))
                .map(certain_cost)
                .collect::<Result<Vec<_>, _>>()?;
            sum(&parts, 0, None, e.id)
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {
            Certain { cost: 0, size: None, costliest: e.id }
        }
    })
}

/// Whether a comprehension is a `map` (its step appends one element on every visit).
fn is_map(c: &cel::common::ast::ComprehensionExpr) -> bool {
    matches!(&c.loop_step.expr, Expr::Call(call) if call.func_name == cel::common::ast::operators::ADD)
}

/// Well-known function names, only for the suggestion in an unknown function's error (the
/// environment itself decides what is known; a test checks that every name here is).
const SUGGESTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "type",
    "duration",
    "timestamp",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "join",
    "format",
    "quote",
    "reverse",
    "slice",
    "flatten",
    "sort",
    "range",
    "isSorted",
    "sum",
    "min",
    "max",
    "find",
    "findAll",
    "quantity",
    "isQuantity",
    "isLessThan",
    "isGreaterThan",
    "compareTo",
    "sign",
    "isInteger",
    "asInteger",
    "asApproximateFloat",
    "add",
    "sub",
    "greatest",
    "least",
    "ceil",
    "floor",
    "round",
    "trunc",
    "abs",
    "sqrt",
    "isInf",
    "isNaN",
    "isFinite",
    "encode",
    "decode",
    "equivalent",
    "intersects",
    "of",
    "none",
    "ofNonZeroValue",
    "hasValue",
    "value",
    "orValue",
    "or",
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

/// How many arguments the library's functions take: `(namespace, name, member call, counts)`.
/// A call of a function listed here with another count is refused at load; cel-rust would only
/// fail it at run time (it has no type checker). A test runs an example of every count.
const ARITIES: &[(Option<&str>, &str, bool, &[usize])] = &[
    (None, "contains", true, &[1]),
    (None, "startsWith", true, &[1]),
    (None, "endsWith", true, &[1]),
    (None, "matches", true, &[1]),
    (None, "matches", false, &[2]),
    (None, "size", true, &[0]),
    (None, "size", false, &[1]),
    (None, "charAt", true, &[1]),
    (None, "indexOf", true, &[1, 2]),
    (None, "lastIndexOf", true, &[1, 2]),
    (None, "lowerAscii", true, &[0]),
    (None, "upperAscii", true, &[0]),
    (None, "trim", true, &[0]),
    (None, "replace", true, &[2, 3]),
    (None, "split", true, &[1, 2]),
    (None, "substring", true, &[1, 2]),
    (None, "join", true, &[0, 1]),
    (None, "format", true, &[1]),
    (None, "reverse", true, &[0]),
    (None, "slice", true, &[2]),
    (None, "flatten", true, &[0, 1]),
    (None, "sort", true, &[0]),
    (None, "isSorted", true, &[0]),
    (None, "sum", true, &[0]),
    (None, "min", true, &[0]),
    (None, "max", true, &[0]),
    (None, "find", true, &[1]),
    (None, "findAll", true, &[1, 2]),
    (None, "quantity", false, &[1]),
    (None, "isQuantity", false, &[1]),
    (None, "compareTo", true, &[1]),
    (None, "isLessThan", true, &[1]),
    (None, "isGreaterThan", true, &[1]),
    (None, "add", true, &[1]),
    (None, "sub", true, &[1]),
    (None, "isInteger", true, &[0]),
    (None, "asInteger", true, &[0]),
    (None, "asApproximateFloat", true, &[0]),
    (None, "hasValue", true, &[0]),
    (None, "orValue", true, &[1]),
    (Some("lists"), "range", false, &[1]),
    (Some("sets"), "contains", false, &[2]),
    (Some("sets"), "equivalent", false, &[2]),
    (Some("sets"), "intersects", false, &[2]),
    (Some("strings"), "quote", false, &[1]),
    (Some("base64"), "encode", false, &[1]),
    (Some("base64"), "decode", false, &[1]),
    (Some("math"), "abs", false, &[1]),
    (Some("math"), "ceil", false, &[1]),
    (Some("math"), "floor", false, &[1]),
    (Some("math"), "round", false, &[1]),
    (Some("optional"), "of", false, &[1]),
    (Some("optional"), "none", false, &[0]),
];

/// Why a call of `name` with `count` arguments cannot work, if the table above says so.
fn wrong_arity(namespace: Option<&str>, name: &str, member: bool, count: usize) -> Option<String> {
    let (_, _, _, counts) = ARITIES
        .iter()
        .find(|(ns, n, m, _)| *ns == namespace && *n == name && *m == (member && namespace.is_none()))?;
    if counts.contains(&count) {
        return None;
    }
    let written = namespace.map_or_else(|| name.to_owned(), |ns| format!("{ns}.{name}"));
    let takes: Vec<String> = counts.iter().map(ToString::to_string).collect();
    let noun = |n: usize| if n == 1 { "argument" } else { "arguments" };
    Some(format!(
        "`{written}` takes {} {}, not {count}",
        takes.join(" or "),
        noun(*counts.last().unwrap_or(&0))
    ))
}

/// The first call in `e` (in source order) to a function the environment does not have, or
/// with an argument count it cannot take, with the error to report. cel-rust has no type
/// checker; without this, a misspelt function passes `policies lint` and fails every request at
/// run time.
fn unknown_function<'e>(env: &Arc<Env>, e: &'e IdedExpr) -> Option<(u64, &'e str, String)> {
    let mut verdicts: Vec<(&str, Option<&str>, bool)> = Vec::new();
    let mut first: Option<(u64, &str, Option<String>)> = None;
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        stack.extend(children(e));
        let Expr::Call(call) = &e.expr else { continue };
        let namespace = call.target.as_deref().and_then(namespace_of);
        let known = match verdicts.iter().find(|(n, ns, _)| *n == call.func_name && *ns == namespace) {
            Some((_, _, known)) => *known,
            None => {
                let known = known_function(env, &call.func_name, call.target.is_some(), namespace);
                verdicts.push((&call.func_name, namespace, known));
                known
            }
        };
        let arity = known
            .then(|| wrong_arity(namespace, &call.func_name, call.target.is_some(), call.args.len()))
            .flatten();
        // Parser ids grow in source order.
        if (!known || arity.is_some()) && first.as_ref().is_none_or(|(id, _, _)| e.id < *id) {
            first = Some((e.id, &call.func_name, arity));
        }
    }
    let (id, name, arity) = first?;
    if let Some(reason) = arity {
        return Some((id, name, reason));
    }
    let close = SUGGESTIONS
        .iter()
        .filter(|s| strsim::levenshtein(s, name) <= 2)
        .min_by_key(|s| strsim::levenshtein(s, name));
    let hint = close
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_else(|| "; docs/cel.md lists every function".into());
    Some((id, name, format!("unknown function `{name}`{hint}")))
}

/// The function namespace a call's target names (`math` in `math.abs(x)`), if it names one.
fn namespace_of(target: &IdedExpr) -> Option<&str> {
    match &target.expr {
        Expr::Ident(name) if NON_VARIABLES.contains(&name.as_str()) => Some(name),
        _ => None,
    }
}

/// Whether the environment resolves a call to `name` of this shape, asked of the environment
/// itself: a call with no arguments is evaluated and only "undeclared" counts as unknown (a
/// known function fails on its arguments instead). Operators and podguard's internal functions
/// are not names CEL source can spell, and are known.
fn known_function(env: &Arc<Env>, name: &str, member: bool, namespace: Option<&str>) -> bool {
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return true;
    }
    let probe = match (member, namespace) {
        (false, _) => format!("{name}()"),
        (true, Some(ns)) => format!("{ns}.{name}()"),
        (true, None) => format!("0.{name}()"),
    };
    // A probe that does not parse cannot tell; the rule's own run will.
    let Ok(program) = env.compile(&probe) else { return true };
    let ctx = cel::Context::with_env(Arc::clone(env));
    match program.execute(&ctx) {
        Err(ExecutionError::UndeclaredReference(undeclared)) => {
            *undeclared != *name && Some(undeclared.as_str()) != namespace
        }
        _ => true,
    }
}

/// The id of the first node of `e` deeper than [`MAX_DEPTH`] (or of its nearest ancestor the
/// parser placed), if any.
fn too_deep(e: &IdedExpr, depth: usize, placed: u64) -> Option<u64> {
    // Instrumentation ids are above the parser's and have no source position.
    let instrumented =
        matches!(&e.expr, Expr::Call(c) if c.func_name == budget::TICK || c.func_name == budget::COST);
    let placed = if instrumented { placed } else { e.id };
    if depth > MAX_DEPTH {
        return Some(placed);
    }
    children(e).into_iter().find_map(|c| too_deep(c, depth + 1, placed))
}

fn first_ident(e: &IdedExpr, name: &str) -> Option<u64> {
    if matches!(&e.expr, Expr::Ident(n) if n == name) {
        return Some(e.id);
    }
    children(e).into_iter().find_map(|c| first_ident(c, name))
}

/// The direct sub-expressions of `e`.
pub(crate) fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(c) => c.target.as_deref().into_iter().chain(&c.args).collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m.entries.iter().flat_map(|e| entry(&e.expr)).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(|e| entry(&e.expr)).collect(),
        Expr::Select(s) => vec![&s.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry(e: &EntryExpr) -> Vec<&IdedExpr> {
    match e {
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

/// The direct sub-expressions of `e`, mutably.
pub(super) fn children_mut(e: &mut IdedExpr) -> Vec<&mut IdedExpr> {
    fn entry_mut(e: &mut EntryExpr) -> Vec<&mut IdedExpr> {
        match e {
            EntryExpr::MapEntry(m) => vec![&mut m.key, &mut m.value],
            EntryExpr::StructField(f) => vec![&mut f.value],
        }
    }
    match &mut e.expr {
        Expr::Call(c) => c.target.as_deref_mut().into_iter().chain(&mut c.args).collect(),
        Expr::Comprehension(c) => {
            vec![&mut c.iter_range, &mut c.accu_init, &mut c.loop_cond, &mut c.loop_step, &mut c.result]
        }
        Expr::List(l) => l.elements.iter_mut().collect(),
        Expr::Map(m) => m.entries.iter_mut().flat_map(|e| entry_mut(&mut e.expr)).collect(),
        Expr::Struct(s) => s.entries.iter_mut().flat_map(|e| entry_mut(&mut e.expr)).collect(),
        Expr::Select(s) => vec![&mut s.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(source: &str, foreach: bool) -> Result<Program, CompileError> {
        let env = super::super::library::env().unwrap();
        Program::compile(&env, Field::Cel, source, foreach, super::super::DEFAULT_COST_LIMIT, &mut Vec::new())
    }

    fn uses(source: &str) -> Vec<&'static str> {
        let u = compile(source, true).unwrap().uses;
        Var::ALL.into_iter().filter(|v| u.has(*v)).map(Var::name).collect()
    }

    #[test]
    fn uses_lists_only_the_variables_read() {
        assert_eq!(uses("spec.hostNetwork && metadata.name != ''"), ["spec", "metadata"]);
        assert_eq!(
            uses("container.image != '' && index >= 0 && has(object.spec)"),
            ["object", "container", "index"]
        );
        assert_eq!(uses("true"), Vec::<&str>::new());
    }

    #[test]
    fn comprehension_variables_and_namespaces_are_not_variables() {
        assert_eq!(uses("[1].all(object, object > 0)"), Vec::<&str>::new());
        assert_eq!(uses("[1].map(x, x).exists(y, y == request.name.size())"), ["request"]);
        assert_eq!(
            uses("math.greatest(1, 2) == 2 && strings.quote('a') != '' && type(1) == int"),
            Vec::<&str>::new()
        );
        assert_eq!(uses("lists.range(2).size() == 2 && sets.contains([1], [1])"), Vec::<&str>::new());
    }

    #[test]
    fn an_iteration_variable_is_scoped_to_its_loop() {
        let err = compile("[1].all(x, x > 0) && x > 0", true).unwrap_err();
        assert_eq!(err.position, Some(Position { line: 1, column: 22 }));
        assert!(err.reason.starts_with("unknown variable `x`"), "{err}");
    }

    #[rstest::rstest]
    #[case::member_typo(
        "container.image.startsWithh('1111')",
        "unknown function `startsWithh`; did you mean `startsWith`?",
        17
    )]
    #[case::global_typo("sizee(spec.containers) > 0", "unknown function `sizee`; did you mean `size`?", 1)]
    #[case::namespace_typo(
        "math.greatst(1, 2) == 2",
        "unknown function `greatst`; did you mean `greatest`?",
        6
    )]
    #[case::nothing_close(
        "spec.containers.frobnicate()",
        "unknown function `frobnicate`; docs/cel.md lists every function",
        17
    )]
    #[case::first_of_two("spec.a.shout() && spec.b.whisper()", "unknown function `shout`", 8)]
    fn unknown_functions_are_refused_at_load(
        #[case] source: &str,
        #[case] reason: &str,
        #[case] column: u32,
    ) {
        let err = compile(source, true).unwrap_err();
        assert!(err.reason.starts_with(reason), "{err}");
        assert_eq!(err.position, Some(Position { line: 1, column }), "{err}");
    }

    #[rstest::rstest]
    #[case::member("container.image.startsWith('a', 'b')", "`startsWith` takes 1 argument, not 2", 17)]
    #[case::none("metadata.name.contains()", "`contains` takes 1 argument, not 0", 15)]
    #[case::several_counts("'a,b'.split(',', 2, 3).size() == 2", "`split` takes 1 or 2 arguments, not 3", 7)]
    #[case::namespaced("lists.range(1, 2).size() == 1", "`lists.range` takes 1 argument, not 2", 7)]
    #[case::global("quantity() == quantity('1')", "`quantity` takes 1 argument, not 0", 1)]
    fn wrong_argument_counts_are_refused_at_load(
        #[case] source: &str,
        #[case] reason: &str,
        #[case] column: u32,
    ) {
        let err = compile(source, true).unwrap_err();
        assert_eq!(err.reason, reason, "{err}");
        assert_eq!(err.position, Some(Position { line: 1, column }), "{err}");
    }

    #[test]
    fn every_argument_count_in_the_table_is_one_the_library_takes() {
        // One call per (function, count) of the table, each evaluating to true.
        let examples = [
            "'abc'.contains('b')",
            "'abc'.startsWith('a')",
            "'abc'.endsWith('c')",
            "'abc'.matches('b')",
            "matches('abc', 'b')",
            "'abc'.size() == 3",
            "size('abc') == 3",
            "'abc'.charAt(1) == 'b'",
            "'abcb'.indexOf('b') == 1",
            "'abcb'.indexOf('b', 2) == 3",
            "'abcb'.lastIndexOf('b') == 3",
            "'abcb'.lastIndexOf('b', 2) == 1",
            "'A'.lowerAscii() == 'a'",
            "'a'.upperAscii() == 'A'",
            "' a '.trim() == 'a'",
            "'aa'.replace('a', 'b') == 'bb'",
            "'aa'.replace('a', 'b', 1) == 'ba'",
            "'a,b'.split(',').size() == 2",
            "'a,b,c'.split(',', 2).size() == 2",
            "'abc'.substring(1) == 'bc'",
            "'abc'.substring(1, 2) == 'b'",
            "['a', 'b'].join() == 'ab'",
            "['a', 'b'].join('-') == 'a-b'",
            "'%s'.format(['a']) == 'a'",
            "'ab'.reverse() == 'ba'",
            "[1, 2].reverse() == [2, 1]",
            "[1, 2, 3].slice(1, 2) == [2]",
            "[[1], [2]].flatten() == [1, 2]",
            "[[1, [2]]].flatten(2) == [1, 2]",
            "[2, 1].sort() == [1, 2]",
            "[1, 2].isSorted()",
            "[1, 2].sum() == 3",
            "[1, 2].min() == 1",
            "[1, 2].max() == 2",
            "'a1'.find('[0-9]') == '1'",
            "'a1b2'.findAll('[0-9]').size() == 2",
            "'a1b2'.findAll('[0-9]', 1).size() == 1",
            "quantity('1') == quantity('1')",
            "isQuantity('1Gi')",
            "quantity('1').compareTo(quantity('2')) == -1",
            "quantity('1').isLessThan(quantity('2'))",
            "quantity('2').isGreaterThan(quantity('1'))",
            "quantity('1').add(1) == quantity('2')",
            "quantity('2').sub(1) == quantity('1')",
            "quantity('1').isInteger()",
            "quantity('1').asInteger() == 1",
            "quantity('1').asApproximateFloat() == 1.0",
            "optional.of(1).hasValue()",
            "optional.none().orValue(1) == 1",
            "lists.range(2).size() == 2",
            "sets.contains([1], [1])",
            "sets.equivalent([1], [1])",
            "sets.intersects([1], [1])",
            "strings.quote('a') != ''",
            "base64.encode(b'a') == 'YQ=='",
            "base64.decode('YQ==') == b'a'",
            "math.abs(-1) == 1",
            "math.ceil(1.2) == 2.0",
            "math.floor(1.2) == 1.0",
            "math.round(1.2) == 1.0",
        ];
        let env = super::super::library::env().unwrap();
        for source in examples {
            let program = env.compile(source).unwrap();
            let ctx = cel::Context::with_env(Arc::clone(&env));
            assert_eq!(program.execute(&ctx), Ok(cel::Value::Bool(true)), "{source}");
            assert!(compile(source, false).is_ok(), "{source}: {:?}", compile(source, false).err());
        }
        // Every row of the table has an example of each of its counts.
        for (ns, name, member, counts) in ARITIES {
            for count in *counts {
                let written = match (ns, member) {
                    (Some(ns), _) => format!("{ns}.{name}("),
                    (None, true) => format!(".{name}("),
                    (None, false) => format!("{name}("),
                };
                let found = examples.iter().any(|e| {
                    e.match_indices(&written).any(|(i, _)| {
                        let global_ok = *member
                            || ns.is_some()
                            || i == 0
                            || !e[..i].ends_with(['.', '_'])
                                && !e[..i].ends_with(|c: char| c.is_alphanumeric());
                        global_ok && args_at(&e[i + written.len()..]) == *count
                    })
                });
                assert!(found, "no example of {written}…) with {count} argument(s)");
            }
        }
    }

    /// Arguments of the call whose text starts right after its `(`: commas at depth 0.
    fn args_at(rest: &str) -> usize {
        let mut depth = 0;
        let mut count = 0;
        let mut any = false;
        let mut quote = None;
        for c in rest.chars() {
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                }
                continue;
            }
            match c {
                '\'' | '"' => {
                    quote = Some(c);
                    any = true;
                }
                '(' | '[' => depth += 1,
                ')' | ']' if depth == 0 => break,
                ')' | ']' => depth -= 1,
                ',' if depth == 0 => count += 1,
                c if !c.is_whitespace() => any = true,
                _ => {}
            }
        }
        if any { count + 1 } else { 0 }
    }

    #[test]
    fn every_suggested_and_documented_function_is_known() {
        let env = super::super::library::env().unwrap();
        for name in SUGGESTIONS {
            let known = known_function(&env, name, false, None)
                || known_function(&env, name, true, None)
                || NON_VARIABLES.iter().any(|ns| known_function(&env, name, true, Some(ns)));
            assert!(known, "{name}");
        }
        for source in [
            "spec.containers.all(c, c.image.startsWith('a') && c.name.size() > 0 && size(c.name) > 0)",
            "lists.range(3).sum() == 3 && math.abs(-1) == 1 && strings.quote('a') != ''",
            "optional.of(1).hasValue() && base64.encode(b'a') != '' && sets.contains([1], [1])",
            "quantity('1Gi').isGreaterThan(quantity('1Mi')) && int('1') == 1 && type(1) == int",
            "metadata.name.find('[a-z]+') != '' && [3, 1].sort().isSorted() && duration('1s') > duration('0s')",
            "spec.?hostNetwork.orValue(false) == false && 'a,b'.split(',').join('-') == 'a-b'",
        ] {
            assert!(compile(source, false).is_ok(), "{source}: {:?}", compile(source, false).err());
        }
    }

    #[test]
    fn deep_chains_below_the_scan_limit_stop_at_the_depth_check_on_a_small_stack() {
        // A tokio worker has 2 MiB of stack: compiling there must not overflow either.
        let worker = std::thread::Builder::new().stack_size(2 << 20);
        let handle = worker
            .spawn(|| {
                for source in
                    [format!("has(spec{})", ".a".repeat(250)), format!("1{} == 2", " + 1".repeat(250))]
                {
                    let err = compile(&source, false).unwrap_err();
                    assert!(err.reason.contains("nests more than 32 levels"), "{err}");
                }
            })
            .unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn depth_counts_after_instrumentation() {
        let nested = |n: usize| format!("{}true{}", "[1].all(x, ".repeat(n), ")".repeat(n));
        assert!(compile(&nested(8), false).is_ok());
        assert!(compile(&nested(16), false).unwrap_err().reason.contains("nests more than 32"));
    }
}
