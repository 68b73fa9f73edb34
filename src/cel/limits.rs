//! Limits checked on the text of an expression before anything parses it.
//!
//! The CEL parser and the tree walks after it recurse once per level of the expression, and the
//! depth of a CEL tree is not the depth of its parentheses: `a.b.c.…` and `1 + 1 + …` nest one
//! level per term without any bracket. 7,000 such terms overflowed the stack of the parser thread,
//! which aborts the process, so the depth must be known before the parser runs. [`check`] scans
//! the text once, without recursion, and bounds the depth from above: every node of a CEL tree that
//! has children owns an operator token of its own (`.`, `(`, `[`, `{`, `?`, a binary or unary
//! operator), so the depth at any token is at most the number of operator tokens around it in
//! every enclosing group of brackets, plus one per group. `&&` and `||` are the exception that
//! keeps long rules possible: the parser reads their chains in a loop and builds a balanced tree,
//! so a chain of n terms adds about log2(n) levels, and the bound counts the operators of one
//! term only, plus twice that logarithm (a chain of `||` whose terms are chains of `&&`). Strings
//! and comments are skipped; they hold no tree.

use super::Position;

/// Longest expression accepted, in bytes. Real rules are a few hundred bytes; this leaves
/// room for long messages while keeping every walk over the text and its tree small.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;

/// Largest depth bound accepted before parsing. The parsed tree is held to a much smaller depth
/// afterwards (`program::MAX_DEPTH`); this limit only has to keep the parser's own recursion far
/// from the parse thread's stack, with room for every expression the later check accepts.
pub const MAX_SCANNED_DEPTH: usize = 256;

/// Why a text is refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// Where, when it is one place.
    pub position: Option<Position>,
    /// What is wrong and what to do.
    pub reason: String,
}

/// One bracket group being scanned.
struct Group {
    /// The enclosing group's term this group sits in (indexes into the scan's lists), if any.
    parent: Option<(usize, usize)>,
    /// Operator tokens of each `&&`/`||`-separated term directly in this group.
    terms: Vec<usize>,
    /// Where it opened (the position reported when it is too deep).
    at: Position,
}

impl Group {
    /// Levels a balanced tree over this group's terms adds, for every term: 2·⌈log2(n)⌉.
    fn chain_levels(&self) -> usize {
        let n = self.terms.len().max(1);
        2 * (usize::BITS - (n - 1).leading_zeros()) as usize
    }
}

/// Refuses a text that is too long, or whose tree could nest deeper than [`MAX_SCANNED_DEPTH`].
pub fn check(source: &str) -> Result<(), TooLarge> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(TooLarge {
            position: None,
            reason: format!(
                "expression is {} bytes long, more than the limit of {MAX_SOURCE_BYTES}; split the rule",
                source.len()
            ),
        });
    }
    // The top level is group 0; groups are numbered in the order they open.
    let mut groups = vec![Group { parent: None, terms: vec![0], at: Position { line: 1, column: 1 } }];
    let mut open = vec![0usize];
    let mut scan = Scanner::new(source);
    while let Some((token, at)) = scan.next_token() {
        let current = *open.last().unwrap_or(&0);
        let g = &mut groups[current];
        let term = g.terms.len() - 1;
        match token {
            Token::Open => {
                // The group's node (call, list, map, parenthesis) counts in its parent too.
                g.terms[term] += 1;
                groups.push(Group { parent: Some((current, term)), terms: vec![0], at });
                open.push(groups.len() - 1);
            }
            Token::Close => {
                // An unbalanced `)` is the parser's to report; the scan only bounds depth.
                if open.len() > 1 {
                    open.pop();
                }
            }
            Token::Logical => g.terms.push(0),
            Token::Operator => g.terms[term] += 1,
            Token::Other => {}
        }
    }
    // A term's depth is bounded by its group's bound from above, the chain's levels and its own
    // operators; a group's bound from above is that of the term it sits in, plus one for itself.
    // Parents come before their children in `groups`, so one forward pass computes every bound.
    let mut above = vec![0usize; groups.len()];
    for i in 0..groups.len() {
        let g = &groups[i];
        above[i] = match g.parent {
            None => 1,
            Some((p, term)) => {
                let parent = &groups[p];
                above[p]
                    .saturating_add(parent.chain_levels())
                    .saturating_add(parent.terms[term])
                    .saturating_add(1)
            }
        };
        let deepest = above[i]
            .saturating_add(g.chain_levels())
            .saturating_add(g.terms.iter().copied().max().unwrap_or(0));
        if deepest > MAX_SCANNED_DEPTH {
            return Err(TooLarge {
                position: Some(g.at),
                reason: format!(
                    "expression could nest more than {MAX_SCANNED_DEPTH} levels deep (chains of \
                     operators, fields or calls nest like brackets); split it up"
                ),
            });
        }
    }
    Ok(())
}

/// What the depth bound needs to know of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `(`, `[`, `{`.
    Open,
    /// `)`, `]`, `}`.
    Close,
    /// A token that makes a tree node: `.`, `?`, `!`, `-`, `+`, `*`, `/`, `%`, `<`, `>`, `=`,
    /// and the keyword `in`.
    Operator,
    /// `&&` or `||`: separates the terms of a balanced chain.
    Logical,
    /// Names, numbers, strings, `,`, `:`.
    Other,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    i: usize,
    line: u32,
    column: u32,
}

impl<'a> Scanner<'a> {
    fn new(source: &'a str) -> Self {
        Self { bytes: source.as_bytes(), i: 0, line: 1, column: 1 }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.i + ahead).copied()
    }

    fn bump(&mut self) {
        if let Some(&b) = self.bytes.get(self.i) {
            self.i += 1;
            if b == b'\n' {
                self.line += 1;
                self.column = 1;
            } else if b & 0xC0 != 0x80 {
                // Columns count characters: continuation bytes of UTF-8 do not start one.
                self.column += 1;
            }
        }
    }

    fn next_token(&mut self) -> Option<(Token, Position)> {
        loop {
            let b = self.peek(0)?;
            let at = Position { line: self.line, column: self.column };
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.bump(),
                b'/' if self.peek(1) == Some(b'/') => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.bump();
                    }
                }
                b'\'' | b'"' => {
                    self.string(false);
                    return Some((Token::Other, at));
                }
                b'r' | b'R' | b'b' | b'B' if self.string_prefix() => {
                    return Some((Token::Other, at));
                }
                b'(' | b'[' | b'{' => {
                    self.bump();
                    return Some((Token::Open, at));
                }
                b')' | b']' | b'}' => {
                    self.bump();
                    return Some((Token::Close, at));
                }
                b'.' if self.peek(1).is_some_and(|c| c.is_ascii_digit()) => {
                    self.number();
                    return Some((Token::Other, at));
                }
                b'.' | b'?' | b'!' | b'-' | b'+' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=' | b'&' | b'|' => {
                    // `&&`, `||`, `==`, `<=` … are one operator; a run of `!` or `-` is one
                    // unary per character, which the per-byte count bounds from above.
                    let logical = matches!((b, self.peek(1)), (b'&', Some(b'&')) | (b'|', Some(b'|')));
                    let pair = logical
                        || matches!(self.peek(1), Some(b'=')) && matches!(b, b'=' | b'!' | b'<' | b'>');
                    self.bump();
                    if pair {
                        self.bump();
                    }
                    return Some((if logical { Token::Logical } else { Token::Operator }, at));
                }
                c if c.is_ascii_digit() => {
                    self.number();
                    return Some((Token::Other, at));
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let start = self.i;
                    while self.peek(0).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                        self.bump();
                    }
                    let word = &self.bytes[start..self.i];
                    return Some((if word == b"in" { Token::Operator } else { Token::Other }, at));
                }
                _ => {
                    // `,`, `:` and anything the parser will refuse: no node of their own.
                    self.bump();
                    return Some((Token::Other, at));
                }
            }
        }
    }

    /// At `r`, `b`, `rb`, `br` (any case) followed by a quote: skips the whole string literal.
    fn string_prefix(&mut self) -> bool {
        let is = |c: Option<u8>, set: &[u8]| c.is_some_and(|c| set.contains(&c));
        let quote = |c: Option<u8>| is(c, b"'\"");
        let (len, raw) = if quote(self.peek(1)) {
            (1, is(self.peek(0), b"rR"))
        } else if is(self.peek(0), b"rRbB") && is(self.peek(1), b"rRbB") && quote(self.peek(2)) {
            (2, true)
        } else {
            return false;
        };
        if len == 2 && !(is(self.peek(0), b"rR") || is(self.peek(1), b"rR")) {
            return false;
        }
        for _ in 0..len {
            self.bump();
        }
        self.string(raw);
        true
    }

    /// At a quote: skips a string literal, single or triple quoted. In a raw string a backslash
    /// escapes nothing. An unterminated string runs to the end (the parser reports it).
    fn string(&mut self, raw: bool) {
        let Some(q) = self.peek(0) else { return };
        let triple = self.peek(1) == Some(q) && self.peek(2) == Some(q);
        let skip = if triple { 3 } else { 1 };
        for _ in 0..skip {
            self.bump();
        }
        while let Some(c) = self.peek(0) {
            if c == b'\\' && !raw {
                self.bump();
                self.bump();
                continue;
            }
            if c == q && (!triple || (self.peek(1) == Some(q) && self.peek(2) == Some(q))) {
                for _ in 0..skip {
                    self.bump();
                }
                return;
            }
            if c == b'\n' && !triple {
                return;
            }
            self.bump();
        }
    }

    fn number(&mut self) {
        let hex = matches!((self.peek(0), self.peek(1)), (Some(b'0'), Some(b'x' | b'X')));
        while self.peek(0).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.') {
            // An exponent's sign belongs to the number (`1e-5`); in `0x1e-5` it is a minus.
            let exponent = !hex
                && matches!(self.peek(0), Some(b'e' | b'E'))
                && matches!(self.peek(1), Some(b'-' | b'+'));
            self.bump();
            if exponent {
                self.bump();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(source: &str) -> Option<TooLarge> {
        check(source).err()
    }

    #[test]
    fn long_chains_are_refused_before_parsing() {
        let fields = format!("has(spec{})", ".a".repeat(7_000));
        let err = depth_error(&fields).unwrap();
        assert!(err.reason.contains("nest more than 256 levels"), "{}", err.reason);
        // The group the chain sits in: `has(`.
        assert_eq!(err.position, Some(Position { line: 1, column: 4 }));

        let sums = format!("1{} == 2", " + 1".repeat(7_000));
        assert!(depth_error(&sums).is_some());
        let unary = format!("{}true", "!".repeat(1_000));
        assert!(depth_error(&unary).is_some());
    }

    #[test]
    fn the_deep_group_is_named() {
        let inner = format!("[{}]", "1 + ".repeat(300) + "1");
        let err = depth_error(&format!("spec.hostNetwork ||\n  size({inner}) > 0")).unwrap();
        assert_eq!(err.position, Some(Position { line: 2, column: 8 }));
    }

    #[test]
    fn size_limit() {
        let long = format!("'{}' != ''", "x".repeat(MAX_SOURCE_BYTES));
        let err = depth_error(&long).unwrap();
        assert!(err.reason.contains("more than the limit of 16384"), "{}", err.reason);
        assert_eq!(err.position, None);
    }

    #[test]
    fn strings_and_comments_hold_no_operators() {
        let pattern = format!("container.image.matches('{}')", "(a|b)+.".repeat(300));
        assert!(check(&pattern).is_ok(), "operators in a string count for nothing");
        let triple = format!("'''{}''' != '' // {}", "'(((".repeat(200), "+ ".repeat(400));
        assert!(check(&triple).is_ok());
        let raw = format!("r'\\' != '{}'", "x".repeat(10));
        assert!(check(&raw).is_ok());
        let escaped = format!("\"a\\\"{}\" != ''", "+".repeat(400));
        assert!(check(&escaped).is_ok());
    }

    #[test]
    fn real_rules_pass() {
        for rule in [
            "spec.containers.all(c, !has(c.securityContext) || c.securityContext.privileged != true)",
            "container.image.startsWith('registry.example/') && !container.image.endsWith(':latest')",
            "object.metadata.?labels.orValue({}).exists(k, k == 'team') ? true : 1.5e-3 < 2.0",
            "quantity(container.resources.limits['memory']).compareTo(quantity('1Gi')) <= 0",
        ] {
            assert_eq!(check(rule), Ok(()), "{rule}");
        }
        // Long `&&` and `||` chains are balanced by the parser: 500 terms nest about 9 deep.
        let terms =
            vec!["spec.hostNetwork == false && spec.containers[0].image.startsWith('x')"; 200].join(" || ");
        assert_eq!(check(&terms), Ok(()));
    }

    /// The depth of the tree the parser builds for `source`.
    fn parsed_depth(source: &str) -> usize {
        fn depth(e: &cel::common::ast::IdedExpr) -> usize {
            1 + crate::cel::program::children(e).into_iter().map(depth).max().unwrap_or(0)
        }
        depth(&cel::Env::stdlib().parser().parse(source).unwrap())
    }

    /// The scan's bound for `source`, found by raising a chain in front of it until refused.
    fn bound(source: &str) -> usize {
        (0..MAX_SCANNED_DEPTH)
            .find(|n| check(&format!("{}({source})", "!".repeat(*n))).is_err())
            .map_or(0, |n| MAX_SCANNED_DEPTH + 1 - n)
    }

    #[test]
    fn the_bound_is_never_below_the_parsed_depth() {
        for source in [
            "a.b.c.d.e",
            "1 + 2 * 3 - 4 / 5 % 6",
            "a && b && c && d && e && f && g && h && i",
            "a || b && c || d && e && f || g",
            "(a.b || c.d.e) && [1, 2, [3, [4]]].all(x, x > 0 && f(x.y.z)) || {'k': v.w}.k == 1",
            "x ? (y ? 1 : 2) : z ? 3 : 4",
            &vec!["spec.a.b > 0 && spec.c.d.e < 1"; 40].join(" || "),
        ] {
            let (real, scanned) = (parsed_depth(source), bound(source));
            assert!(scanned >= real, "{source}: scanned {scanned} < parsed {real}");
        }
    }

    #[test]
    fn the_bound_is_never_below_the_real_depth() {
        // a.b.c…: one Select per dot; 1+1+…: one call per operator.
        for n in [10usize, 100, 255] {
            assert!(check(&format!("a{}", ".b".repeat(n))).is_ok(), "{n}");
        }
        assert!(check(&format!("a{}", ".b".repeat(256))).is_err());
        assert!(check(&format!("1{}", "+1".repeat(256))).is_err());
        let nested = format!("{}1{}", "[".repeat(128), "]".repeat(128));
        assert!(check(&nested).is_err(), "each bracket counts in its parent and for itself");
    }
}
