//! One compiled CEL expression: parsed once at policy load, checked for unknown variables and
//! excessive nesting, instrumented with the time budget, and evaluated per subject.
//!
//! cel 0.15 has no type checker, so the checks it cannot do at load (unknown functions, wrong
//! types) surface as run-time errors, which [`super::rule`] reports as findings.

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
        if !foreach && let Some(v) = [Var::Container, Var::Index].into_iter().find(|v| uses.has(*v)) {
            let id = first_ident(&expr, v.name()).unwrap_or(expr.id);
            return Err(CompileError {
                field,
                position: at(id),
                reason: format!("`{}` is only bound in rules with `foreach`", v.name()),
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
    let before = source.get(..start as usize)?;
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

/// The id of the first node of `e` deeper than [`MAX_DEPTH`] (or of its nearest ancestor the
/// parser placed), if any.
fn too_deep(e: &IdedExpr, depth: usize, placed: u64) -> Option<u64> {
    // Instrumentation ids are above the parser's and have no source position.
    let placed = if matches!(&e.expr, Expr::Call(c) if c.func_name == budget::TICK) { placed } else { e.id };
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
pub(super) fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
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
        Program::compile(&env, Field::Cel, source, foreach, &mut Vec::new())
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

    #[test]
    fn depth_counts_after_instrumentation() {
        let nested = |n: usize| format!("{}true{}", "[1].all(x, ".repeat(n), ")".repeat(n));
        assert!(compile(&nested(8), false).is_ok());
        assert!(compile(&nested(16), false).unwrap_err().reason.contains("nests more than 32"));
    }
}
