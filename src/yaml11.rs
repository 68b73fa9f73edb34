//! YAML read the way `kubectl` reads it.
//!
//! kubectl does not read YAML as a YAML 1.2 library does. k8s.io/apimachinery cuts the stream
//! into documents at every line that starts with `---`; sigs.k8s.io/yaml decodes each piece with
//! its fork of go-yaml v2 (YAML 1.1: `yes`, `on` and `y` are booleans, `0755` is octal, `1_000` is
//! a thousand, a date stays a string), turns mapping keys into strings and writes the result with
//! Go's encoding/json, and that JSON is what the API server receives. A checker that read the same
//! file with YAML 1.2 rules would judge another object than the one the cluster gets
//! (`privileged: on` a string, `defaultMode: 0644` the number 644), so this module reproduces
//! kubectl's reading, checked against kubectl itself on the corpus in `tests/fixtures/yaml11/`
//! (`scripts/yaml11-record.sh` records what kubectl makes of it; CI records it again and compares).
//!
//! yaml-rust2's event parser gives the structure. Where its YAML 1.2 syntax is stricter than
//! libyaml (a tab after `:`, flow collections or quoted scalars indented less than their key,
//! `"x"#comment`, `\'` in double quotes) the piece is rewritten to what libyaml reads and parsed
//! again, without moving any line; what it accepts and libyaml refuses is listed in the tests.
//! The code below then gives each scalar the value go-yaml v2's `resolve()` gives it, applies
//! merge keys and aliases in go-yaml's order, and refuses what Go's JSON writer or
//! sigs.k8s.io/yaml refuse (infinities, NaN, null or 64-bit unsigned keys).
//!
//! A document is read in two passes, as go-yaml reads it: the events become a compact tree of raw
//! nodes (an alias points into it, nothing is copied), then the tree is decoded into JSON.
//! Decoding expands aliases and merges and counts every node it produces, so a "billion laughs"
//! file stops at the node limit, or at go-yaml's own "excessive aliasing" rule (reproduced here),
//! before it can use memory. Nesting is bounded in both passes, so the decoder's recursion is
//! bounded by [`Limits::max_depth`].

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, Scanner, TScalarStyle, Token, TokenType};

/// Bounds on what one document may produce; a document past one of them is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most nodes one document may produce: every scalar, sequence, mapping, mapping key and
    /// alias, counting again each node an alias or a merge key (`<<`) copies. The text that
    /// aliases copy is bounded too, to 64 bytes per allowed node (64 MiB by default), since one
    /// long string repeated by aliases would otherwise grow without many nodes.
    pub max_nodes: usize,
    /// Deepest nesting of sequences and mappings; the document's root collection is depth 1.
    /// Values past 256 count as 256: decoding recurses once per level, and 256 levels stay well
    /// inside a 2 MiB thread stack even in a debug build.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_nodes: 1_000_000, max_depth: 128 }
    }
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A mapping entry, by its key (after kubectl turned it into a string).
    Key(String),
    /// A sequence item, by its 0-based position.
    Index(usize),
}

/// Where each node of a document was written.
///
/// A tree of line numbers in the shape of the document's value: one small record per node and
/// per mapping entry, and the mapping keys once in a shared buffer. Nodes copied by an alias share
/// the anchored node's records.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    nodes: Vec<LineNode>,
    entries: Vec<Entry>,
    keys: String,
    root: u32,
}

#[derive(Debug, Clone, Copy)]
struct LineNode {
    line: u32,
    /// Children are `entries[start..start + len]`: sorted by key for a mapping, in order for a
    /// sequence.
    start: u32,
    len: u32,
    keyed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key_start: u32,
    key_len: u32,
    key_line: u32,
    node: u32,
}

impl Lines {
    /// 1-based line of the node at `path` (relative to the document root): for a mapping entry the
    /// line of its key, for a sequence item the line of the item. When the exact node is absent
    /// (e.g. a field that was never written), the line of the deepest existing ancestor. Empty
    /// path = the document's first line.
    ///
    /// A node copied by an alias has the lines where the anchored node was written, except the
    /// copy itself, which is where the alias is.
    pub fn line_of(&self, path: &[Segment]) -> usize {
        let Some(mut node) = self.nodes.get(self.root as usize) else {
            return 1;
        };
        let mut line = node.line;
        for segment in path {
            let start = node.start as usize;
            let children = self.entries.get(start..start + node.len as usize).unwrap_or(&[]);
            let found = match segment {
                Segment::Key(key) if node.keyed => children
                    .binary_search_by(|e| self.key(e).cmp(key.as_str()))
                    .ok()
                    .and_then(|i| children.get(i))
                    .and_then(|e| Some((e.key_line, self.nodes.get(e.node as usize)?))),
                Segment::Index(i) if !node.keyed => {
                    children.get(*i).and_then(|e| self.nodes.get(e.node as usize)).map(|n| (n.line, n))
                }
                _ => None,
            };
            let Some((l, n)) = found else { break };
            line = l;
            node = n;
        }
        line as usize
    }

    fn key(&self, e: &Entry) -> &str {
        let start = e.key_start as usize;
        self.keys.get(start..start + e.key_len as usize).unwrap_or("")
    }
}

/// One document of a stream, as JSON.
#[derive(Debug, Clone)]
pub struct Document {
    /// 0-based index of the document in the stream (empty documents count).
    pub index: usize,
    /// The value kubectl would send.
    pub value: Value,
    /// 1-based line where the document's content starts.
    pub line: usize,
    /// Where each node of `value` was written.
    pub lines: Lines,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 0-based index of the document in the stream.
    pub document: usize,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for YamlError {}

/// Reads every document of a YAML stream. Empty documents (only comments, a bare `---`, or an
/// explicit null) are omitted but still counted in document indexes. A syntax error ends the
/// stream (returned as the last item); a document that exceeds a limit, or holds something JSON
/// cannot, is an Err for that document and reading goes on with the next one.
///
/// Documents are cut as kubectl cuts them: at lines that start with `---` (anything but spaces or
/// a comment after it is a syntax error), and only the first YAML document of each piece counts
/// (what follows a `...` in the same piece is ignored, as go-yaml ignores it).
pub fn read_documents(text: &str, limits: &Limits) -> Vec<Result<Document, YamlError>> {
    let limits = Bounds::new(limits);
    // go-yaml skips a byte order mark; yaml-rust2 would read it as part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (document, piece) in split(text).into_iter().enumerate() {
        let error = |line: Option<usize>, message: String| YamlError { document, line, message };
        match piece {
            Piece::BadSeparator { line, rest } => {
                let message = format!("a document separator is followed by `{rest}`");
                out.push(Err(error(Some(line), message)));
                break;
            }
            Piece::Text { text, first_line } => match read_piece(text, first_line, &limits) {
                Ok(None) => {}
                Ok(Some(doc)) => out.push(Ok(Document { index: document, ..doc })),
                Err(Fail::Document { line, message }) => out.push(Err(error(line, message))),
                Err(Fail::Syntax { line, message, .. }) => {
                    out.push(Err(error(line, message)));
                    break;
                }
            },
        }
    }
    out
}

/// The deepest nesting ever accepted, whatever the limits say: the decoder's recursion stays
/// well inside a thread's stack.
const MAX_DEPTH: usize = 256;

/// The limits in the integer sizes used inside, with room for `u32` indexes.
struct Bounds {
    max_nodes: u64,
    max_depth: usize,
    max_copied_bytes: u64,
}

impl Bounds {
    fn new(limits: &Limits) -> Bounds {
        let max_nodes = (limits.max_nodes as u64).min(u64::from(u32::MAX / 4));
        Bounds {
            max_nodes,
            max_depth: limits.max_depth.min(MAX_DEPTH),
            max_copied_bytes: max_nodes.saturating_mul(64),
        }
    }
}

enum Fail {
    /// The text is not YAML: nothing after it can be trusted. `retry` is the text with a
    /// construct libyaml accepts and yaml-rust2 does not rewritten, when that is the cause.
    Syntax { line: Option<usize>, message: String, retry: Option<String> },
    /// This document cannot be turned into JSON; the next one may.
    Document { line: Option<usize>, message: String },
}

fn doc_fail(line: u32, message: impl Into<String>) -> Fail {
    Fail::Document { line: Some(line as usize), message: message.into() }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Cutting the stream the way kubectl does (k8s.io/apimachinery's YAMLReader).

enum Piece<'a> {
    Text { text: &'a str, first_line: usize },
    BadSeparator { line: usize, rest: &'a str },
}

/// Pieces in document order. The text before the first separator is a document only if it holds
/// more than blank lines and comments (as in YAML, where comments before `---` start nothing);
/// every separator starts one, even if nothing follows it.
fn split(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let (mut start, mut first_line, mut offset, mut line_no) = (0, 1, 0, 1);
    let mut separated = false;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("---") {
            let piece = text.get(start..offset).unwrap_or("");
            if separated || has_content(piece) {
                pieces.push(Piece::Text { text: piece, first_line });
            }
            let rest = rest.trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                pieces.push(Piece::BadSeparator { line: line_no, rest });
                return pieces;
            }
            separated = true;
            start = offset + line.len();
            first_line = line_no + 1;
        }
        offset += line.len();
        line_no += 1;
    }
    let piece = text.get(start..).unwrap_or("");
    if separated || has_content(piece) {
        pieces.push(Piece::Text { text: piece, first_line });
    }
    pieces
}

/// The 1-based line of the first character libyaml refuses to read ("control characters are
/// not allowed"); yaml-rust2 reads them, or silently drops NUL.
fn control_character(piece: &str) -> Option<usize> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
            || c >= '\u{10000}'
    };
    let at = piece.find(|c: char| !allowed(c))?;
    Some(piece.get(..at).map_or(0, |p| p.matches('\n').count()) + 1)
}

fn has_content(piece: &str) -> bool {
    piece.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#')
    })
}

/// libyaml starts an implicit document at the first token, so a piece whose first token is `...`
/// has a document with no content, which go-yaml rejects; yaml-rust2 skips the marker instead.
fn leading_document_end(piece: &str) -> Option<usize> {
    for (i, l) in piece.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let marker =
            l.strip_prefix("...").is_some_and(|r| r.is_empty() || r.starts_with(char::is_whitespace));
        return marker.then_some(i + 1);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// First pass: events to raw nodes.

struct RawNode {
    line: u32,
    /// Anchored, or inside an anchored collection: an alias may decode it again.
    shared: bool,
    anchored: bool,
    kind: RawKind,
}

enum RawKind {
    Scalar {
        text: String,
        plain: bool,
        tag: TagKind,
    },
    Seq(Span),
    Map(Span),
    Alias(u32),
    /// A collection whose end has not been read yet.
    Open,
}

/// A collection's children: `Raw::children[start..start + len]` (keys and values alternate for
/// a mapping).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// A raw node's kind without its text, to decode it while the decoder changes.
#[derive(Clone, Copy)]
enum Shape {
    Scalar { plain: bool, tag: TagKind },
    Seq(Span),
    Map(Span),
    Alias(u32),
    Open,
}

impl RawKind {
    fn shape(&self) -> Shape {
        match *self {
            RawKind::Scalar { plain, tag, .. } => Shape::Scalar { plain, tag },
            RawKind::Seq(s) => Shape::Seq(s),
            RawKind::Map(s) => Shape::Map(s),
            RawKind::Alias(t) => Shape::Alias(t),
            RawKind::Open => Shape::Open,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    None,
    /// `!`: go-yaml keeps it as the tag, which resolves to nothing, so the scalar is a string.
    NonSpecific,
    Str,
    Bool,
    Int,
    Float,
    Null,
    Timestamp,
    Binary,
    Merge,
    Other,
}

impl TagKind {
    fn of(tag: Option<&Tag>) -> TagKind {
        let Some(tag) = tag else { return TagKind::None };
        let full = format!("{}{}", tag.handle, tag.suffix);
        match full.strip_prefix("tag:yaml.org,2002:") {
            Some("str") => TagKind::Str,
            Some("bool") => TagKind::Bool,
            Some("int") => TagKind::Int,
            Some("float") => TagKind::Float,
            Some("null") => TagKind::Null,
            Some("timestamp") => TagKind::Timestamp,
            Some("binary") => TagKind::Binary,
            Some("merge") => TagKind::Merge,
            Some(_) => TagKind::Other,
            None if full == "!" => TagKind::NonSpecific,
            None => TagKind::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TagKind::Str => "!!str",
            TagKind::Bool => "!!bool",
            TagKind::Int => "!!int",
            TagKind::Float => "!!float",
            TagKind::Null => "!!null",
            TagKind::Timestamp => "!!timestamp",
            TagKind::Binary => "!!binary",
            TagKind::Merge => "!!merge",
            TagKind::None | TagKind::NonSpecific | TagKind::Other => "tagged value",
        }
    }
}

struct Raw {
    nodes: Vec<RawNode>,
    children: Vec<u32>,
    root: u32,
}

struct Frame {
    id: u32,
    children: Vec<u32>,
    map: bool,
    /// This collection or one around it is anchored.
    shared: bool,
}

struct RawBuilder<'l> {
    limits: &'l Bounds,
    first_line: usize,
    nodes: Vec<RawNode>,
    children: Vec<u32>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, u32>,
    root: Option<u32>,
}

impl RawBuilder<'_> {
    fn line(&self, mark: &Marker) -> u32 {
        to_u32(self.first_line + mark.line().saturating_sub(1))
    }

    fn event(&mut self, event: Event, mark: &Marker) -> Result<(), Fail> {
        let line = self.line(mark);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let kind = RawKind::Scalar {
                    text,
                    plain: style == TScalarStyle::Plain,
                    tag: TagKind::of(tag.as_ref()),
                };
                let id = self.push(line, anchor, kind)?;
                self.attach(id);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() >= self.limits.max_depth {
                    return Err(depth_fail(line, self.limits.max_depth));
                }
                let map = matches!(event, Event::MappingStart(..));
                let id = self.push(line, anchor, RawKind::Open)?;
                let shared = self.nodes.get(id as usize).is_some_and(|n| n.shared);
                self.stack.push(Frame { id, children: Vec::new(), map, shared });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let span = Span { start: to_u32(self.children.len()), len: to_u32(frame.children.len()) };
                    self.children.extend(frame.children);
                    if let Some(node) = self.nodes.get_mut(frame.id as usize) {
                        node.kind = if frame.map { RawKind::Map(span) } else { RawKind::Seq(span) };
                    }
                    self.attach(frame.id);
                }
            }
            Event::Alias(anchor) => {
                let Some(&target) = self.anchors.get(&anchor) else {
                    return Err(doc_fail(line, "an alias refers to an anchor that is not defined before it"));
                };
                if self.nodes.get(target as usize).is_some_and(|n| matches!(n.kind, RawKind::Open)) {
                    return Err(doc_fail(line, "an alias refers to the collection that contains it"));
                }
                let id = self.push(line, 0, RawKind::Alias(target))?;
                self.attach(id);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn push(&mut self, line: u32, anchor: usize, kind: RawKind) -> Result<u32, Fail> {
        // Raw nodes are bounded only to bound memory: `<<` keys and the sequences of merge keys
        // are never decoded, so the exact count is the decoder's.
        if self.nodes.len() as u64 >= self.limits.max_nodes.saturating_mul(2).saturating_add(2) {
            return Err(nodes_fail(line, self.limits.max_nodes));
        }
        let id = to_u32(self.nodes.len());
        let anchored = anchor != 0;
        let shared = anchored || self.stack.last().is_some_and(|f| f.shared);
        self.nodes.push(RawNode { line, shared, anchored, kind });
        if anchored {
            self.anchors.insert(anchor, id);
        }
        Ok(id)
    }

    fn attach(&mut self, id: u32) {
        match self.stack.last_mut() {
            Some(frame) => frame.children.push(id),
            None => self.root = self.root.or(Some(id)),
        }
    }
}

fn depth_fail(line: u32, max: usize) -> Fail {
    doc_fail(line, format!("the document nests sequences and mappings more than {max} deep"))
}

fn nodes_fail(line: u32, max: u64) -> Fail {
    doc_fail(line, format!("the document has more than {max} nodes once aliases and merge keys are expanded"))
}

/// Reads the first document of one piece; `None` when it is empty or null.
fn read_piece(text: &str, first_line: usize, limits: &Bounds) -> Result<Option<Document>, Fail> {
    // go-yaml reads each piece as a stream of its own, so a byte order mark may start any of them.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(line) = control_character(text) {
        let line = Some(first_line + line - 1);
        let message = "the document holds a control character, which YAML does not allow".into();
        return Err(Fail::Syntax { line, message, retry: None });
    }
    // libyaml (YAML 1.1) reads NEL as a line feed, yaml-rust2 (YAML 1.2) as text. (libyaml also
    // breaks lines at LS and PS, yet keeps them in quoted and block scalars as yaml-rust2 does;
    // elsewhere, as in a comment, the two differ: a divergence listed in the tests.)
    let normalized;
    let text = if text.contains('\u{85}') {
        normalized = text.replace('\u{85}', "\n");
        normalized.as_str()
    } else {
        text
    };
    if let Some(line) = leading_document_end(text) {
        let line = Some(first_line + line - 1);
        return Err(Fail::Syntax {
            line,
            message: "`...` ends a document that has not started".into(),
            retry: None,
        });
    }
    let mut repaired: Option<String> = None;
    let mut repairs = 0;
    let max_repairs = ((4 << 20) / text.len().max(1)).clamp(16, 1000);
    let raw = loop {
        let text = repaired.as_deref().unwrap_or(text);
        // yaml-rust2 is not known to panic, but a panic in it must not take the program down.
        let parsed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(text, first_line, limits)))
                .unwrap_or_else(|_| {
                    Err(Fail::Syntax { line: None, message: "the YAML parser failed".into(), retry: None })
                });
        match parsed {
            // Each repair parses the piece again: a bounded number, more for small pieces.
            Err(Fail::Syntax { retry: Some(text), .. }) if repairs < max_repairs => {
                repaired = Some(text);
                repairs += 1;
            }
            other => break other?,
        }
    };
    let Some(raw) = raw else { return Ok(None) };
    let root_line = raw.nodes.get(raw.root as usize).map_or(1, |n| n.line);
    let mut decoder = Decoder {
        nodes: raw.nodes,
        children: raw.children,
        limits,
        // go-yaml counts the document node too.
        decoded: 1,
        aliased: 0,
        alias_depth: 0,
        copied: 0,
        lines: Lines::default(),
        memo: HashMap::new(),
    };
    let out = decoder.value(raw.root, 1, true)?;
    if let Some(line) = out.unsupported {
        return Err(doc_fail(
            line,
            "the document holds an infinity or NaN (`.inf`, `.nan`), which JSON cannot hold",
        ));
    }
    if out.value.is_null() {
        return Ok(None);
    }
    let mut lines = decoder.lines;
    lines.root = out.line;
    Ok(Some(Document { index: 0, value: out.value, line: root_line as usize, lines }))
}

fn parse(text: &str, first_line: usize, limits: &Bounds) -> Result<Option<Raw>, Fail> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = RawBuilder {
        limits,
        first_line,
        nodes: Vec::new(),
        children: Vec::new(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
    };
    // After a document error the events are still read to the document's end: go-yaml parses the
    // whole document before decoding it, so a syntax error further on is what it reports.
    let mut failed: Option<Fail> = None;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(e) => e,
            Err(e) => return Err(scan_fail(&e, text, first_line, failed)),
        };
        match event {
            Event::DocumentEnd | Event::StreamEnd => break,
            event if failed.is_none() => {
                if let Err(f) = builder.event(event, &mark) {
                    failed = Some(f);
                }
            }
            _ => {}
        }
    }
    if let Some(f) = failed {
        return Err(f);
    }
    Ok(builder.root.map(|root| Raw { nodes: builder.nodes, children: builder.children, root }))
}

fn scan_fail(e: &ScanError, text: &str, first_line: usize, failed: Option<Fail>) -> Fail {
    let line = Some(first_line + e.marker().line().saturating_sub(1));
    let info = e.info();
    // yaml-rust2 reports these two as parse errors; for kubectl they are not syntax errors, and
    // the next document can still be read.
    let document = if info.contains("unknown anchor") {
        Some("an alias refers to an anchor that is not defined before it".to_owned())
    } else if info.contains("recursion limit exceeded") {
        Some("the document nests flow collections too deep".to_owned())
    } else {
        None
    };
    match (document, failed) {
        (Some(_), Some(f)) => f,
        (Some(message), None) => Fail::Document { line, message },
        (None, _) => {
            Fail::Syntax { line, message: format!("YAML syntax error: {info}"), retry: repair(text, e) }
        }
    }
}

/// `text` with the construct that made yaml-rust2 fail rewritten, when libyaml (so kubectl)
/// accepts it and the rewrite keeps its meaning: a tab between `:` and a value; `\'` in a
/// double-quoted scalar (libyaml reads `'`); a comment right after a token (`"x"#c`); a plain `-`
/// right before `,]}` in a flow collection; and lines of a flow collection or of a quoted scalar
/// indented less than YAML 1.2 requires (libyaml does not look at indentation there, and leading
/// white space on those lines means nothing). Lines stay where they were.
fn repair(text: &str, e: &ScanError) -> Option<String> {
    let info = e.info();
    let at = byte_index(text, e.marker().index());
    let (before, after) = (text.get(..at)?, text.get(at..)?);
    let repaired = if info.contains("':' must be followed by a valid YAML whitespace") {
        let key = before.trim_end_matches([' ', '\t']);
        let blanks = before.get(key.len()..)?;
        if !key.ends_with(':') || !blanks.contains('\t') {
            return None;
        }
        format!("{key}{}{after}", blanks.replace('\t', " "))
    } else if info.contains("unknown escape character") && after.starts_with('"') {
        unescape_quotes(before, after)?
    } else if info.contains("comments must be separated from other tokens by whitespace")
        && after.starts_with('#')
    {
        format!("{before} {after}")
    } else if info.contains("plain scalar cannot start with '-'")
        && after.starts_with('-')
        && before.trim_end().ends_with(['[', '{', ',', ':', '?'])
    {
        format!("{before}\"-\"{}", after.get(1..)?)
    } else if info.contains("invalid indentation in quoted scalar") && after.starts_with(['"', '\'']) {
        reindent(text, at)?
    } else if info == "invalid indentation"
        || info.contains("invalid indentation in flow construct")
        || info.contains("tabs disallowed within this context")
    {
        reindent(text, outermost_open_flow(before)?)?
    } else {
        return None;
    };
    (repaired != text).then_some(repaired)
}

/// The byte offset of yaml-rust2's mark, which counts characters.
fn byte_index(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i)
}

/// `before` and `after` (which starts at a double-quoted scalar) with each `\'` of that scalar
/// replaced by `'`.
fn unescape_quotes(before: &str, after: &str) -> Option<String> {
    let mut out = String::with_capacity(before.len() + after.len());
    out.push_str(before);
    out.push('"');
    let mut chars = after.char_indices().skip(1);
    let mut changed = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                out.push_str(after.get(i..)?);
                return changed.then_some(out);
            }
            '\\' => match chars.next() {
                Some((_, '\'')) => {
                    out.push('\'');
                    changed = true;
                }
                Some((_, next)) => {
                    out.push('\\');
                    out.push(next);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// Where the outermost flow collection still open at the end of `prefix` starts, from
/// yaml-rust2's own tokens (the parser's events come too late: the scanner fails while looking
/// ahead, before the collection's start is reported).
fn outermost_open_flow(prefix: &str) -> Option<usize> {
    let mut scanner = Scanner::new(prefix.chars());
    let mut open: Vec<usize> = Vec::new();
    while let Ok(Some(Token(mark, token))) = scanner.next_token() {
        match token {
            TokenType::FlowSequenceStart | TokenType::FlowMappingStart => open.push(mark.index()),
            TokenType::FlowSequenceEnd | TokenType::FlowMappingEnd => {
                open.pop();
            }
            TokenType::StreamEnd => break,
            _ => {}
        }
    }
    open.first().map(|&i| byte_index(prefix, i))
}

/// `text` with the lines of the flow collection or quoted scalar that starts at byte `open`
/// (after its first line) indented past its opening character, tabs made spaces.
fn reindent(text: &str, open: usize) -> Option<String> {
    let end = construct_end(text, open)?;
    let line_start = text.get(..open)?.rfind('\n').map_or(0, |i| i + 1);
    let target = text.get(line_start..open)?.chars().count() + 1;
    let first_break = open + text.get(open..)?.find('\n')?;
    if first_break >= end {
        return None;
    }
    let (head, rest) = text.split_at(first_break + 1);
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(head);
    let mut offset = first_break + 1;
    for line in rest.split_inclusive('\n') {
        let content = line.trim_start_matches([' ', '\t']);
        let blank = content.trim_end_matches(['\r', '\n']).is_empty();
        if offset < end && !blank && !content.starts_with("...") {
            let width = line.len() - content.len();
            out.push_str(&" ".repeat(width.max(target)));
            out.push_str(content);
        } else {
            out.push_str(line);
        }
        offset += line.len();
    }
    Some(out)
}

/// The byte just past the quoted scalar or flow collection that starts at `open`.
fn construct_end(text: &str, open: usize) -> Option<usize> {
    let b = text.as_bytes();
    let quoted_end = |quote: u8, from: usize| -> Option<usize> {
        let mut i = from + 1;
        loop {
            match *b.get(i)? {
                b'\\' if quote == b'"' => i += 2,
                b'\'' if quote == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 2,
                c if c == quote => return Some(i + 1),
                _ => i += 1,
            }
        }
    };
    match *b.get(open)? {
        q @ (b'"' | b'\'') => quoted_end(q, open),
        b'[' | b'{' => {
            let (mut depth, mut i) = (0usize, open);
            while let Some(&c) = b.get(i) {
                let token_start = i == 0
                    || matches!(b.get(i - 1), Some(b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',' | b':'));
                match c {
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    b'"' | b'\'' if token_start => {
                        i = quoted_end(c, i)?;
                        continue;
                    }
                    b'#' if token_start => {
                        i = text.get(i..)?.find('\n').map_or(b.len(), |n| i + n);
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Second pass: raw nodes to JSON, in go-yaml v2's order (its counters depend on it).

struct Decoder<'l> {
    nodes: Vec<RawNode>,
    children: Vec<u32>,
    limits: &'l Bounds,
    /// go-yaml's decodeCount and aliasCount.
    decoded: u64,
    aliased: u64,
    alias_depth: u32,
    copied: u64,
    lines: Lines,
    /// Line records of anchored nodes, shared by their copies.
    memo: HashMap<u32, u32>,
}

/// A decoded node.
struct Out {
    value: Value,
    /// Its line record, or `NO_LINE` when line records are not being built (inside a copy).
    line: u32,
    /// The line of a value in it that JSON cannot hold (kubectl fails only if one is still there
    /// after duplicate keys have replaced values, so this is carried up rather than failed on).
    unsupported: Option<u32>,
}

const NO_LINE: u32 = u32::MAX;

#[derive(Default)]
struct MapAcc {
    map: Map<String, Value>,
    entries: Vec<Entry>,
    unsupported: Vec<(String, u32)>,
}

/// go-yaml v2's allowedAliasRatio: the share of decoded nodes that aliases may produce.
fn allowed_alias_ratio(decoded: u64) -> f64 {
    const LOW: u64 = 400_000;
    const HIGH: u64 = 4_000_000;
    if decoded <= LOW {
        0.99
    } else if decoded >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((decoded - LOW) as f64 / (HIGH - LOW) as f64)
    }
}

impl Decoder<'_> {
    fn count(&mut self, line: u32) -> Result<(), Fail> {
        self.decoded += 1;
        if self.alias_depth > 0 {
            self.aliased += 1;
        }
        if self.aliased > 100
            && self.decoded > 1000
            && self.aliased as f64 / self.decoded as f64 > allowed_alias_ratio(self.decoded)
        {
            return Err(doc_fail(line, "the document contains excessive aliasing"));
        }
        if self.decoded - 1 > self.limits.max_nodes {
            return Err(nodes_fail(line, self.limits.max_nodes));
        }
        Ok(())
    }

    /// Counts the text of scalar `id` when an alias copies it, before it is copied.
    fn copy_text(&mut self, id: u32, line: u32) -> Result<(), Fail> {
        if self.alias_depth > 0 {
            let len = match self.nodes.get(id as usize) {
                Some(RawNode { kind: RawKind::Scalar { text, .. }, .. }) => text.len(),
                _ => 0,
            };
            self.copied = self.copied.saturating_add(len as u64);
            if self.copied > self.limits.max_copied_bytes {
                let max = self.limits.max_copied_bytes;
                return Err(doc_fail(line, format!("aliases copy more than {max} bytes of text")));
            }
        }
        Ok(())
    }

    /// A raw node's line, whether it is anchored, and its shape.
    fn node(&self, id: u32) -> Result<(u32, bool, Shape), Fail> {
        self.nodes
            .get(id as usize)
            .map(|n| (n.line, n.anchored, n.kind.shape()))
            .ok_or_else(|| Fail::Document { line: None, message: "internal error: missing YAML node".into() })
    }

    fn child(&self, span: Span, i: u32) -> u32 {
        self.children.get(span.start as usize + i as usize).copied().unwrap_or(u32::MAX)
    }

    /// A scalar's text: moved out when no alias can decode the node again.
    fn take_text(&mut self, id: u32) -> String {
        match self.nodes.get_mut(id as usize) {
            Some(RawNode { shared: false, kind: RawKind::Scalar { text, .. }, .. }) => std::mem::take(text),
            Some(RawNode { kind: RawKind::Scalar { text, .. }, .. }) => text.clone(),
            _ => String::new(),
        }
    }

    fn value(&mut self, id: u32, depth: usize, build: bool) -> Result<Out, Fail> {
        let (line, anchored, shape) = self.node(id)?;
        self.count(line)?;
        let out = match shape {
            Shape::Scalar { plain, tag } => {
                self.copy_text(id, line)?;
                let text = self.take_text(id);
                let (value, unsupported) = scalar_value(text, plain, tag).map_err(|m| doc_fail(line, m))?;
                let line_rec = if build { self.leaf(line) } else { NO_LINE };
                Out { value, line: line_rec, unsupported: unsupported.then_some(line) }
            }
            Shape::Seq(span) => {
                if depth > self.limits.max_depth {
                    return Err(depth_fail(line, self.limits.max_depth));
                }
                let mut items = Vec::with_capacity(span.len as usize);
                let mut item_lines = Vec::new();
                let mut unsupported: Option<u32> = None;
                for i in 0..span.len {
                    let o = self.value(self.child(span, i), depth + 1, build)?;
                    items.push(o.value);
                    if build {
                        item_lines.push(o.line);
                    }
                    unsupported = unsupported.or(o.unsupported);
                }
                let line_rec = if build { self.seq_lines(line, &item_lines) } else { NO_LINE };
                Out { value: Value::Array(items), line: line_rec, unsupported }
            }
            Shape::Map(span) => {
                if depth > self.limits.max_depth {
                    return Err(depth_fail(line, self.limits.max_depth));
                }
                let mut acc = MapAcc::default();
                self.mapping_into(span, depth, &mut acc, build)?;
                let unsupported = acc.unsupported.iter().map(|(_, l)| *l).min();
                let line_rec = if build { self.map_lines(line, acc.entries) } else { NO_LINE };
                Out { value: Value::Object(acc.map), line: line_rec, unsupported }
            }
            Shape::Alias(target) => {
                let memo = if build { self.memo.get(&target).copied() } else { None };
                self.alias_depth += 1;
                let o = self.value(target, depth, build && memo.is_none());
                self.alias_depth -= 1;
                let o = o?;
                let line_rec = if build { self.alias_lines(line, memo.unwrap_or(o.line)) } else { NO_LINE };
                Out { line: line_rec, ..o }
            }
            Shape::Open => return Err(doc_fail(line, "internal error: unfinished YAML node")),
        };
        if build && anchored {
            self.memo.insert(id, out.line);
        }
        Ok(out)
    }

    /// Decodes a mapping's entries into `acc`, as go-yaml decodes a mapping into an existing map
    /// (which is also how it applies merge keys).
    fn mapping_into(&mut self, span: Span, depth: usize, acc: &mut MapAcc, build: bool) -> Result<(), Fail> {
        for i in (0..span.len / 2).map(|i| i * 2) {
            let (key, value) = (self.child(span, i), self.child(span, i + 1));
            if self.is_merge(key) {
                self.merge(value, depth, acc, build)?;
                continue;
            }
            let (key, key_line) = self.key(key)?;
            let out = self.value(value, depth + 1, build)?;
            if build {
                let key_start = to_u32(self.lines.keys.len());
                self.lines.keys.push_str(&key);
                let key_len = to_u32(key.len());
                acc.entries.push(Entry { key_start, key_len, key_line, node: out.line });
            }
            if let Some(i) = acc.unsupported.iter().position(|(k, _)| *k == key) {
                acc.unsupported.swap_remove(i);
            }
            if let Some(l) = out.unsupported {
                acc.unsupported.push((key.clone(), l));
            }
            // Duplicate keys: the later one wins, as in go-yaml.
            acc.map.insert(key, out.value);
        }
        Ok(())
    }

    fn is_merge(&self, id: u32) -> bool {
        matches!(
            self.nodes.get(id as usize),
            Some(RawNode { kind: RawKind::Scalar { text, plain, tag }, .. })
                if text == "<<" && (matches!(tag, TagKind::NonSpecific | TagKind::Merge)
                    || (*plain && *tag == TagKind::None))
        )
    }

    /// go-yaml v2's merge: a mapping, an alias to one, or a sequence of those. Entries are set in
    /// place, so a key written before `<<` is overridden by the merge, and one written after it
    /// overrides the merge; a sequence is applied from its last item to its first, so earlier
    /// items win.
    fn merge(&mut self, id: u32, depth: usize, acc: &mut MapAcc, build: bool) -> Result<(), Fail> {
        let (line, _, shape) = self.node(id)?;
        match shape {
            Shape::Map(span) => {
                self.count(line)?;
                self.mapping_into(span, depth, acc, build)
            }
            Shape::Alias(target) => self.merge_alias(line, target, depth, acc, build),
            Shape::Seq(items) => {
                for i in (0..items.len).rev() {
                    let (line, _, shape) = self.node(self.child(items, i))?;
                    match shape {
                        Shape::Map(span) => {
                            self.count(line)?;
                            self.mapping_into(span, depth, acc, build)?;
                        }
                        Shape::Alias(target) => self.merge_alias(line, target, depth, acc, build)?,
                        _ => return Err(merge_fail(line)),
                    }
                }
                Ok(())
            }
            _ => Err(merge_fail(line)),
        }
    }

    fn merge_alias(
        &mut self,
        line: u32,
        target: u32,
        depth: usize,
        acc: &mut MapAcc,
        build: bool,
    ) -> Result<(), Fail> {
        let (target_line, _, shape) = self.node(target)?;
        let Shape::Map(span) = shape else { return Err(merge_fail(line)) };
        self.count(line)?;
        self.alias_depth += 1;
        let result = self.count(target_line).and_then(|()| self.mapping_into(span, depth, acc, build));
        self.alias_depth -= 1;
        result
    }

    /// A mapping key, turned into a string as sigs.k8s.io/yaml turns it.
    fn key(&mut self, id: u32) -> Result<(String, u32), Fail> {
        let (line, _, shape) = self.node(id)?;
        self.count(line)?;
        match shape {
            Shape::Scalar { plain, tag } => {
                self.copy_text(id, line)?;
                let text = self.take_text(id);
                let key = key_string(text, plain, tag).map_err(|m| doc_fail(line, m))?;
                Ok((key, line))
            }
            Shape::Alias(target) => {
                self.alias_depth += 1;
                let key = self.key(target);
                self.alias_depth -= 1;
                Ok((key?.0, line))
            }
            _ => Err(doc_fail(line, "a mapping key is a sequence or a mapping, which JSON cannot hold")),
        }
    }

    fn leaf(&mut self, line: u32) -> u32 {
        self.lines.nodes.push(LineNode { line, start: 0, len: 0, keyed: false });
        to_u32(self.lines.nodes.len() - 1)
    }

    fn seq_lines(&mut self, line: u32, items: &[u32]) -> u32 {
        let start = to_u32(self.lines.entries.len());
        self.lines.entries.extend(items.iter().map(|&node| Entry {
            key_start: 0,
            key_len: 0,
            key_line: 0,
            node,
        }));
        self.lines.nodes.push(LineNode { line, start, len: to_u32(items.len()), keyed: false });
        to_u32(self.lines.nodes.len() - 1)
    }

    fn map_lines(&mut self, line: u32, mut entries: Vec<Entry>) -> u32 {
        let keys = &self.lines.keys;
        let key = |e: &Entry| {
            keys.get(e.key_start as usize..e.key_start as usize + e.key_len as usize).unwrap_or("")
        };
        // Stable, so among equal keys the last one set (the one in the value) stays last.
        entries.sort_by(|a, b| key(a).cmp(key(b)));
        let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
        for e in entries {
            match kept.last_mut() {
                Some(last) if key(last) == key(&e) => *last = e,
                _ => kept.push(e),
            }
        }
        let start = to_u32(self.lines.entries.len());
        let len = to_u32(kept.len());
        self.lines.entries.extend(kept);
        self.lines.nodes.push(LineNode { line, start, len, keyed: true });
        to_u32(self.lines.nodes.len() - 1)
    }

    fn alias_lines(&mut self, line: u32, source: u32) -> u32 {
        let Some(&src) = self.lines.nodes.get(source as usize) else { return self.leaf(line) };
        self.lines.nodes.push(LineNode { line, ..src });
        to_u32(self.lines.nodes.len() - 1)
    }
}

fn merge_fail(line: u32) -> Fail {
    doc_fail(line, "a merge key (`<<`) needs a mapping, an alias to one, or a sequence of those")
}

// ---------------------------------------------------------------------------------------------
// Scalars: go-yaml v2's resolve() and sigs.k8s.io/yaml's key conversion.

/// What a scalar resolves to; `Text` is the scalar's own text.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Text,
    Binary(String),
}

/// The value of a scalar, and whether it is one JSON cannot hold.
fn scalar_value(text: String, plain: bool, tag: TagKind) -> Result<(Value, bool), String> {
    Ok(match resolve(&text, plain, tag)? {
        Resolved::Null => (Value::Null, false),
        Resolved::Bool(b) => (Value::Bool(b), false),
        Resolved::Int(i) => (Value::Number(i.into()), false),
        Resolved::Uint(u) => (Value::Number(u.into()), false),
        Resolved::Float(f) => match json_number(f) {
            Some(n) => (Value::Number(n), false),
            None => (Value::Null, true),
        },
        Resolved::Text => (Value::String(text), false),
        Resolved::Binary(s) => (Value::String(s), false),
    })
}

/// The number Go's encoding/json writes for `f`, as serde_json reads it back: integral values
/// below 1e21 are written without a fraction or exponent, so they read back as integers.
fn json_number(f: f64) -> Option<Number> {
    const TWO_53: f64 = 9_007_199_254_740_992.0;
    if !f.is_finite() || f.fract() != 0.0 || f.abs() >= 1e21 {
        return Number::from_f64(f);
    }
    if f.abs() <= TWO_53 {
        // Exact; -0 becomes 0, as kubectl prints it.
        return Some(Number::from(f as i64));
    }
    // Past 2^53 Go writes the shortest digits that read back as `f`, then zeros: 2^63 is written
    // 9223372036854776000, which is the integer serde_json reads.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e')?;
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let width = exponent.parse::<usize>().ok()? + 1;
    let text = format!(
        "{}{digits}{}",
        if f < 0.0 { "-" } else { "" },
        "0".repeat(width.saturating_sub(digits.len()))
    );
    match text.parse::<i64>() {
        Ok(i) => Some(Number::from(i)),
        Err(_) => text.parse::<u64>().ok().map(Number::from).or_else(|| Number::from_f64(f)),
    }
}

/// A mapping key as sigs.k8s.io/yaml writes it: go-yaml's value, then a string (`strconv.Itoa`,
/// `FormatFloat(f, 'g', -1, 32)`, `true`/`false`); null and uint64 keys are errors there.
fn key_string(text: String, plain: bool, tag: TagKind) -> Result<String, String> {
    Ok(match resolve(&text, plain, tag)? {
        Resolved::Text => text,
        Resolved::Binary(s) => s,
        Resolved::Bool(b) => b.to_string(),
        Resolved::Int(i) => i.to_string(),
        Resolved::Float(f) => format_float32(f),
        Resolved::Null => return Err("a mapping key is null, which JSON cannot hold".into()),
        Resolved::Uint(_) => {
            return Err(format!(
                "a mapping key is the integer {text}, too large for kubectl to use as a key"
            ));
        }
    })
}

/// go-yaml v2's value for a scalar: quoted and block scalars are strings unless tagged; a plain
/// or tagged one goes through resolve(), and a tag that disagrees with what resolve() finds is an
/// error, except an integer tagged `!!float` (but not a uint64: go-yaml converts int and int64
/// only). Unknown tags, `!` and `!!merge` leave the text a string; `!!binary` decodes base64.
fn resolve(text: &str, plain: bool, tag: TagKind) -> Result<Resolved, String> {
    let wanted = match tag {
        TagKind::None if plain => TagKind::None,
        TagKind::None | TagKind::Str | TagKind::NonSpecific | TagKind::Merge | TagKind::Other => {
            return Ok(Resolved::Text);
        }
        TagKind::Binary => {
            return decode_base64(text)
                .map(|b| Resolved::Binary(go_string(&b)))
                .ok_or_else(|| "a !!binary value is not valid base64".to_owned());
        }
        t => t,
    };
    let (found, value) = resolve_implicit(text, wanted);
    if wanted == TagKind::None || wanted == found {
        return Ok(value);
    }
    match (wanted, value) {
        (TagKind::Float, Resolved::Int(i)) => Ok(Resolved::Float(i as f64)),
        _ => Err(format!("cannot decode {} `{text}` as a {}", found.name(), wanted.name())),
    }
}

/// go-yaml v2's resolve() for a plain scalar, or for a tagged one with `tag` (which only changes
/// whether a timestamp is looked for). Returns the tag found.
fn resolve_implicit(text: &str, tag: TagKind) -> (TagKind, Resolved) {
    let Some(&first) = text.as_bytes().first() else { return (TagKind::Null, Resolved::Null) };
    if !matches!(
        first,
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' | b'.' | b'+' | b'-'
    ) && !first.is_ascii_digit()
    {
        return (TagKind::Str, Resolved::Text);
    }
    if let Some(found) = lookup(text) {
        return found;
    }
    if first == b'.' {
        return match dot_float(text) {
            Some(f) => (TagKind::Float, Resolved::Float(f)),
            None => (TagKind::Str, Resolved::Text),
        };
    }
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return (TagKind::Str, Resolved::Text);
    }
    if matches!(tag, TagKind::None | TagKind::Timestamp) && is_timestamp(text) {
        return (TagKind::Timestamp, Resolved::Text);
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(i) = parse_int(&plain, 0) {
        return (TagKind::Int, Resolved::Int(i));
    }
    if let Some(u) = parse_uint(&plain, 0) {
        return (TagKind::Int, Resolved::Uint(u));
    }
    if is_yaml_float(&plain)
        && let Some(f) = plain.parse::<f64>().ok().filter(|f| f.is_finite())
    {
        return (TagKind::Float, Resolved::Float(f));
    }
    if let Some(rest) = plain.strip_prefix("0b") {
        if let Some(i) = parse_int(rest, 2) {
            return (TagKind::Int, Resolved::Int(i));
        }
        if let Some(u) = parse_uint(rest, 2) {
            return (TagKind::Int, Resolved::Uint(u));
        }
    } else if let Some(rest) = plain.strip_prefix("-0b")
        && let Some(i) = parse_int(&format!("-{rest}"), 2)
    {
        return (TagKind::Int, Resolved::Int(i));
    }
    // Integers past 64 bits stay strings: the go-yaml in kubectl 1.33 has no big.Int fallback.
    (TagKind::Str, Resolved::Text)
}

fn lookup(text: &str) -> Option<(TagKind, Resolved)> {
    Some(match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            (TagKind::Bool, Resolved::Bool(true))
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            (TagKind::Bool, Resolved::Bool(false))
        }
        "~" | "null" | "Null" | "NULL" => (TagKind::Null, Resolved::Null),
        ".nan" | ".NaN" | ".NAN" => (TagKind::Float, Resolved::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            (TagKind::Float, Resolved::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => (TagKind::Float, Resolved::Float(f64::NEG_INFINITY)),
        _ => return None,
    })
}

/// Go's `strconv.ParseFloat` for text that starts with `.`: digits, an optional exponent, and
/// underscores only between digits.
fn dot_float(text: &str) -> Option<f64> {
    if !underscores_between_digits(text) {
        return None;
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    let rest = plain.strip_prefix('.')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let exponent = rest.get(digits..).unwrap_or("");
    let exponent_ok = exponent.is_empty() || {
        let e = exponent.strip_prefix(['e', 'E']).unwrap_or("");
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    };
    if digits == 0 || !exponent_ok {
        return None;
    }
    plain.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn underscores_between_digits(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0
                && b.get(i - 1).is_some_and(u8::is_ascii_digit)
                && b.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let digits_from = |i: usize| b.get(i..).unwrap_or(&[]).iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    if b.get(i) == Some(&b'.') {
        let n = digits_from(i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    } else {
        let n = digits_from(i);
        if n == 0 {
            return false;
        }
        i += n;
        if b.get(i) == Some(&b'.') {
            i += 1 + digits_from(i + 1);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits_from(i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == b.len()
}

/// Go's `strconv.ParseUint(s, base, 64)`; base 0 reads the `0x`, `0o`, `0b` and `0` prefixes.
fn parse_uint(s: &str, base: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let (base, digits) = if base != 0 {
        (base, s)
    } else if b.first() == Some(&b'0') {
        match b.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if b.len() >= 3 => (2, s.get(2..).unwrap_or("")),
            Some(b'o') if b.len() >= 3 => (8, s.get(2..).unwrap_or("")),
            Some(b'x') if b.len() >= 3 => (16, s.get(2..).unwrap_or("")),
            _ => (8, s.get(1..).unwrap_or("")),
        }
    } else {
        (10, s)
    };
    let mut n: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(36).filter(|&d| d < base)?;
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// Go's `strconv.ParseInt(s, base, 64)`.
fn parse_int(s: &str, base: u32) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let (negative, body) = match s.as_bytes().first() {
        Some(b'+') => (false, s.get(1..).unwrap_or("")),
        Some(b'-') => (true, s.get(1..).unwrap_or("")),
        _ => (false, s),
    };
    let magnitude = parse_uint(body, base)?;
    if negative { 0i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() }
}

/// go-yaml v2's parseTimestamp: `YYYY-` and then one of Go's layouts
/// `2006-1-2T15:4:5.999999999Z07:00`, the same with `t`, `2006-1-2 15:4:5.999999999`, `2006-1-2`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.iter().take_while(|c| c.is_ascii_digit()).count() != 4 || b.get(4) != Some(&b'-') {
        return false;
    }
    [Layout::Date, Layout::Zoned(b'T'), Layout::Zoned(b't'), Layout::Spaced].iter().any(|&l| parses_as(b, l))
}

#[derive(Clone, Copy)]
enum Layout {
    Date,
    Zoned(u8),
    Spaced,
}

/// Go's `time.Parse` for one of the layouts above.
fn parses_as(b: &[u8], layout: Layout) -> bool {
    let mut p = Cursor { b, i: 0 };
    let year = p.fixed(4);
    let date = (|| {
        p.literal(b'-')?;
        let month = p.num()?;
        p.literal(b'-')?;
        let day = p.num()?;
        Some((month, day))
    })();
    let (Some(year), Some((month, day))) = (year, date) else { return false };
    let rest_ok = match layout {
        Layout::Date => true,
        Layout::Zoned(t) => p.literal(t).is_some() && p.clock() && p.zone(),
        Layout::Spaced => {
            // A space in a Go layout matches one or more spaces.
            p.b.get(p.i).is_none_or(|&c| c == b' ') && {
                while p.b.get(p.i) == Some(&b' ') {
                    p.i += 1;
                }
                p.clock()
            }
        }
    };
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 0,
    };
    rest_ok && p.i == b.len() && (1..=12).contains(&month) && (1..=days).contains(&day)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digit(&self, at: usize) -> Option<u32> {
        self.b.get(at).filter(|c| c.is_ascii_digit()).map(|c| u32::from(c - b'0'))
    }

    fn fixed(&mut self, n: usize) -> Option<u32> {
        let mut v = 0;
        for k in 0..n {
            v = v * 10 + self.digit(self.i + k)?;
        }
        self.i += n;
        Some(v)
    }

    /// Go's getnum(s, false): one digit, or two when there are two.
    fn num(&mut self) -> Option<u32> {
        let first = self.digit(self.i)?;
        match self.digit(self.i + 1) {
            Some(second) => {
                self.i += 2;
                Some(first * 10 + second)
            }
            None => {
                self.i += 1;
                Some(first)
            }
        }
    }

    fn literal(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// `15:4:5.999999999`: the fraction is optional and takes any number of digits.
    fn clock(&mut self) -> bool {
        let parsed = (|| {
            let hour = self.num()?;
            self.literal(b':')?;
            let minute = self.num()?;
            self.literal(b':')?;
            let second = self.num()?;
            Some(hour < 24 && minute < 60 && second < 60)
        })();
        if parsed != Some(true) {
            return false;
        }
        if matches!(self.b.get(self.i), Some(b'.' | b',')) && self.digit(self.i + 1).is_some() {
            self.i += 1;
            while self.digit(self.i).is_some() {
                self.i += 1;
            }
        }
        true
    }

    /// `Z07:00`: `Z`, or a sign, two digits, `:` and two digits.
    fn zone(&mut self) -> bool {
        if self.literal(b'Z').is_some() {
            return true;
        }
        let sign = matches!(self.b.get(self.i), Some(b'+' | b'-'));
        let hour = self.digit(self.i + 1).zip(self.digit(self.i + 2)).map(|(a, b)| a * 10 + b);
        let colon = self.b.get(self.i + 3) == Some(&b':');
        let minute = self.digit(self.i + 4).zip(self.digit(self.i + 5)).map(|(a, b)| a * 10 + b);
        self.i += 6;
        sign && colon && hour.is_some_and(|h| h <= 24) && minute.is_some_and(|m| m <= 60)
    }
}

/// Go's `base64.StdEncoding.DecodeString`: padding required, line breaks ignored.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let chars: Vec<u8> = s.bytes().filter(|&c| c != b'\n' && c != b'\r').collect();
    if !chars.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let groups = chars.len() / 4;
    let mut out = Vec::with_capacity(groups * 3);
    for (g, group) in chars.chunks(4).enumerate() {
        let &[a, b, c, d] = group else { return None };
        let last = g + 1 == groups;
        let (a, b) = (value(a)?, value(b)?);
        let pad = match (c, d) {
            (b'=', b'=') if last => 2,
            (_, b'=') if last && c != b'=' => 1,
            _ => 0,
        };
        let c = if pad == 2 { 0 } else { value(c)? };
        let d = if pad >= 1 { 0 } else { value(d)? };
        let n = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend(bytes.iter().take(3 - pad));
    }
    Some(out)
}

/// Bytes as Go's encoding/json writes them: each byte that is not part of valid UTF-8 becomes
/// U+FFFD.
fn go_string(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or(""));
                out.push('\u{FFFD}');
                bytes = rest.get(1..).unwrap_or(&[]);
            }
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`, with sigs.k8s.io/yaml's names for infinities and
/// NaN: how a float mapping key becomes a string.
fn format_float32(f: f64) -> String {
    let x = f as f32;
    if x.is_nan() {
        return ".nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { ".inf".into() } else { "-.inf".into() };
    }
    // Rust's `{:e}` gives the shortest digits that read back as the same f32, as Go's does.
    let sci = format!("{x:e}");
    let (negative, sci) = match sci.strip_prefix('-') {
        Some(s) => (true, s),
        None => (false, sci.as_str()),
    };
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let exp: i64 = exponent.parse().unwrap_or(0);
    let mut out = String::from(if negative { "-" } else { "" });
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push_str(&format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs()));
    } else {
        let point = exp + 1;
        let nd = digits.len() as i64;
        if point <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat(point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else if point >= nd {
            out.push_str(&digits);
            out.push_str(&"0".repeat((point - nd) as usize));
        } else {
            let (int, frac) = digits.split_at(point as usize);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    fn read(text: &str) -> Vec<Result<Document, YamlError>> {
        read_documents(text, &Limits::default())
    }

    fn one(text: &str) -> Document {
        let mut docs = read(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0).unwrap()
    }

    /// A path written as strings: numbers are sequence indexes.
    fn path(p: &[&str]) -> Vec<Segment> {
        p.iter()
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key((*s).to_owned()),
            })
            .collect()
    }

    // --- Lines ----------------------------------------------------------------------------------

    #[test]
    fn line_of_keys_items_and_missing_fields() {
        let text = "# comment\n\na: 1\nb:\n  c: x\n  d:\n  - p\n  - q: r\n    s: t\n  -\n    u\n";
        let doc = one(text);
        let l = |p: &[&str]| doc.lines.line_of(&path(p));
        assert_eq!(doc.line, 3);
        assert_eq!(l(&[]), 3);
        assert_eq!(l(&["a"]), 3);
        assert_eq!(l(&["b"]), 4);
        assert_eq!(l(&["b", "c"]), 5);
        assert_eq!(l(&["b", "d"]), 6);
        assert_eq!(l(&["b", "d", "0"]), 7);
        assert_eq!(l(&["b", "d", "1"]), 8);
        assert_eq!(l(&["b", "d", "1", "s"]), 9);
        // An item on the line after its `-` is where its node is.
        assert_eq!(l(&["b", "d", "2"]), 11);
        // Absent: the deepest ancestor that exists.
        assert_eq!(l(&["b", "missing"]), 4);
        assert_eq!(l(&["b", "d", "9"]), 6);
        assert_eq!(l(&["b", "d", "1", "nope", "deeper"]), 8);
        assert_eq!(l(&["a", "x"]), 3);
        assert_eq!(l(&["b", "0"]), 4);
        assert_eq!(l(&["zz"]), 3);
    }

    #[test]
    fn line_of_aliases_merges_duplicates_and_converted_keys() {
        let text = "\
e: &anc
  f: 1
  g: [x, z]
h: *anc
base: &b {m: 1, p: 2}
merged:
  <<: *b
  p: 3
dup: 1
dup: 2
1: one
true: yes
0x10: sixteen
1.5: x
";
        let doc = one(text);
        let l = |p: &[&str]| doc.lines.line_of(&path(p));
        assert_eq!(l(&["h"]), 4);
        // Inside a copy: where the anchored node was written.
        assert_eq!(l(&["h", "f"]), 2);
        assert_eq!(l(&["h", "g", "1"]), 3);
        assert_eq!(l(&["merged", "m"]), 5);
        assert_eq!(l(&["merged", "p"]), 8);
        // YAML 1.1: the key `n` is the boolean false.
        assert_eq!(one("n: 1").value, serde_json::json!({"false": 1}));
        assert_eq!(l(&["dup"]), 10);
        let key = |k: &str| doc.lines.line_of(&[Segment::Key(k.into())]);
        assert_eq!(key("1"), 11);
        assert_eq!(key("true"), 12);
        assert_eq!(key("16"), 13);
        assert_eq!(key("1.5"), 14);
        assert_eq!(doc.value["h"]["g"][1], "z");
    }

    #[test]
    fn line_of_in_later_documents_counts_file_lines() {
        let docs = read("a: 1\n---\n# c\nb:\n  c: 2\n---\n\n[x,\n y]\n");
        let docs: Vec<Document> = docs.into_iter().map(Result::unwrap).collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].line, 4);
        assert_eq!(docs[1].lines.line_of(&path(&["b", "c"])), 5);
        assert_eq!(docs[2].line, 8);
        assert_eq!(docs[2].lines.line_of(&path(&["1"])), 9);
    }

    // --- Limits ---------------------------------------------------------------------------------

    fn billion_laughs(levels: usize, fan: usize) -> String {
        let mut text = format!("a: &a [{}]\n", vec!["lol"; fan].join(", "));
        let names: Vec<char> = ('a'..='z').collect();
        for w in names.windows(2).take(levels - 1) {
            let (prev, this) = (w[0], w[1]);
            text.push_str(&format!("{this}: &{this} [{}]\n", vec![format!("*{prev}"); fan].join(", ")));
        }
        text
    }

    #[test]
    fn billion_laughs_fails_fast() {
        let text = billion_laughs(10, 10);
        for limits in [Limits::default(), Limits { max_nodes: usize::MAX, max_depth: 128 }] {
            let start = Instant::now();
            let docs = read_documents(&text, &limits);
            assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
            let err = docs[0].as_ref().unwrap_err();
            assert!(err.message.contains("aliasing") || err.message.contains("nodes"), "{err}");
        }
    }

    #[test]
    fn node_limit_counts_every_node_including_copies() {
        // The mapping, key `a`, the sequence and two items: 5 nodes.
        let text = "a: [1, 2]";
        assert!(read_documents(text, &Limits { max_nodes: 5, max_depth: 128 })[0].is_ok());
        assert!(read_documents(text, &Limits { max_nodes: 4, max_depth: 128 })[0].is_err());
        // A copy counts: the alias, then the sequence and its items again.
        let text = "a: &x [1, 2]\nb: *x";
        assert!(read_documents(text, &Limits { max_nodes: 10, max_depth: 128 })[0].is_ok());
        assert!(read_documents(text, &Limits { max_nodes: 9, max_depth: 128 })[0].is_err());
        // Few nodes, much text: aliases of a long string stop at the copy budget (64 bytes a node).
        let long = "x".repeat(100_000);
        let text = format!("s: &s {long}\nl: [{}]\n", vec!["*s"; 20].join(", "));
        let docs = read_documents(&text, &Limits { max_nodes: 10_000, max_depth: 128 });
        assert!(docs[0].as_ref().unwrap_err().message.contains("bytes"), "{docs:?}");
        assert!(read_documents(&text, &Limits::default())[0].is_ok());
    }

    #[test]
    fn depth_limit() {
        let block = |depth: usize| (0..depth).map(|i| format!("{}k:\n", "  ".repeat(i))).collect::<String>();
        let flow = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        // `k:` nested n times holds n mappings; the innermost value is null.
        assert!(read(&block(128))[0].is_ok());
        assert!(read(&block(129))[0].is_err());
        assert!(read(&flow(128))[0].is_ok());
        for text in [block(200), flow(129), flow(200), flow(300), flow(100_000)] {
            let docs = read_documents(&format!("{text}\n---\nnext: 1\n"), &Limits::default());
            let err = docs[0].as_ref().unwrap_err();
            assert!(err.message.contains("deep"), "{err}");
            // Not a syntax error: the next document is read.
            assert_eq!(docs.len(), 2, "{docs:?}");
            assert!(docs[1].is_ok());
        }
        // The cap on max_depth keeps the recursion inside a test thread's 2 MiB stack.
        let limits = Limits { max_nodes: usize::MAX, max_depth: usize::MAX };
        assert!(read_documents(&block(256), &limits)[0].is_ok());
        assert!(read_documents(&block(257), &limits)[0].is_err());
        // Aliases can nest deeper than the text does.
        let text = format!("a: &a {}\nb: {}*a{}\n", flow(100), "[".repeat(50), "]".repeat(50));
        assert!(read(&text)[0].as_ref().unwrap_err().message.contains("deep"));
    }

    #[test]
    fn documents_after_a_failed_document_are_read() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let text = format!("a: .inf\n---\nb: 1\n---\n{deep}\n---\nc: *nowhere\n---\n~: x\n---\nd: 2\n");
        let docs = read(&text);
        let shape: Vec<bool> = docs.iter().map(Result::is_ok).collect();
        assert_eq!(shape, [false, true, false, false, false, true], "{docs:?}");
        let errors: Vec<(usize, Option<usize>)> =
            docs.iter().filter_map(|d| d.as_ref().err()).map(|e| (e.document, e.line)).collect();
        assert_eq!(errors, [(0, Some(1)), (2, Some(5)), (3, Some(7)), (4, Some(9))]);
        assert_eq!(docs[5].as_ref().unwrap().value, serde_json::json!({"d": 2}));
    }

    #[test]
    fn a_syntax_error_ends_the_stream() {
        let docs = read("a: 1\n---\nb: c: d\n---\ne: 1\n");
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert!(docs[0].is_ok());
        let err = docs[1].as_ref().unwrap_err();
        assert_eq!((err.document, err.line), (1, Some(3)));
        assert!(err.to_string().ends_with(" at line 3"), "{err}");

        let docs = read("a: 1\n--- b\nc: 2\n");
        let err = docs[1].as_ref().unwrap_err();
        assert_eq!((docs.len(), err.document, err.line), (2, 1, Some(2)));
    }

    #[test]
    fn empty_documents_are_skipped_but_counted() {
        let docs = read("# only a comment\n---\n# c\n---\n~\n---\n---\nnull\n---\na: .nan\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].as_ref().unwrap_err().document, 4);
        assert!(read("").is_empty());
        assert!(read("# nothing\n").is_empty());
        assert!(read("---\n...\n").is_empty() || read("---\n...\n")[0].is_err());
    }

    #[test]
    fn error_display() {
        let e = YamlError { document: 0, line: Some(3), message: "bad".into() };
        assert_eq!(e.to_string(), "bad at line 3");
        assert_eq!(YamlError { line: None, ..e }.to_string(), "bad");
    }

    // --- Values ---------------------------------------------------------------------------------

    #[test]
    fn merge_precedence() {
        let doc = one("b1: &b1 {k: 1, x: 1}\nb2: &b2 {k: 2, z: 2}\n\
             before: {k: 0, <<: *b1}\nafter: {<<: *b1, k: 0}\nlist: {<<: [*b1, *b2]}\n");
        // A key written before `<<` is overridden by the merge; one after it wins; in a list the
        // first mapping wins.
        assert_eq!(doc.value["before"]["k"], 1);
        assert_eq!(doc.value["after"]["k"], 0);
        assert_eq!(doc.value["list"], serde_json::json!({"k": 1, "x": 1, "z": 2}));
    }

    #[test]
    fn scalars_resolve_as_go_yaml_v2() {
        let cases: &[(&str, Value)] = &[
            ("0755", 493.into()),
            ("08", 8.into()),
            ("0x_1F", 31.into()),
            ("0b-101", (-5).into()),
            ("1e3", 1000.into()),
            ("1.0", 1.into()),
            ("-0.0", 0.into()),
            ("1e21", serde_json::json!(1e21)),
            // Go writes 2^63 as 9223372036854776000 (shortest digits, then zeros).
            ("9223372036854775807.0", 9_223_372_036_854_776_000u64.into()),
            ("1e309", "1e309".into()),
            ("1:20:30", "1:20:30".into()),
            ("2001-12-14", "2001-12-14".into()),
            ("0x10000000000000000", "0x10000000000000000".into()),
            ("18446744073709551615", u64::MAX.into()),
            ("yes", true.into()),
            ("Off", false.into()),
            ("~", Value::Null),
            ("", Value::Null),
            (".5", serde_json::json!(0.5)),
            ("._5", "._5".into()),
            ("<<", "<<".into()),
            ("!!binary aGk=", "hi".into()),
            ("!!binary /w==", "\u{FFFD}".into()),
            ("!!float 3", 3.into()),
            ("!!timestamp 2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00".into()),
            ("!!timestamp 2001-12-14   1:2:3,5", "2001-12-14   1:2:3,5".into()),
        ];
        for (text, want) in cases {
            let doc = one(&format!("v: {text}\n"));
            assert_eq!(&doc.value["v"], want, "{text}");
        }
        for bad in ["!!timestamp 2001-02-29", "!!timestamp 2001-12-14T1:2:3", "!!int 1.5", "!!bool 1", ".inf"]
        {
            assert!(read(&format!("v: {bad}\n"))[0].is_err(), "{bad}");
        }
        assert!(read("v: !!timestamp 2000-02-29\n")[0].is_ok());
    }

    #[test]
    fn float_keys_are_written_as_float32() {
        for (f, want) in [
            (1.5, "1.5"),
            (1000.0, "1000"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.234_567_89, "1.2345679"),
            (16777217.0, "1.6777216e+07"),
            (-0.0, "-0"),
            (1e39, ".inf"),
            (-1e39, "-.inf"),
            (f64::NAN, ".nan"),
        ] {
            assert_eq!(format_float32(f), want, "{f}");
        }
    }

    #[test]
    fn numbers_are_what_go_writes() {
        assert_eq!(json_number(8.0), Some(Number::from(8)));
        assert_eq!(
            json_number(9_223_372_036_854_775_808.0),
            Some(Number::from(9_223_372_036_854_776_000u64))
        );
        assert_eq!(json_number(-9_223_372_036_854_775_808.0), Number::from_f64(-9.223372036854776e18));
        assert_eq!(json_number(1e20), Number::from_f64(1e20));
        assert_eq!(json_number(0.5), Number::from_f64(0.5));
        assert_eq!(json_number(f64::INFINITY), None);
    }

    #[test]
    fn many_repairs_in_one_piece() {
        let mut text = String::from("list:\n");
        for i in 0..100 {
            text.push_str(&format!("- name: c{i}\n  args: [\n    \"a\",\n  ]\n  note: \"x\n  y\"\n"));
        }
        let doc = one(&text);
        assert_eq!(doc.value["list"][99]["args"], serde_json::json!(["a"]));
        assert_eq!(doc.value["list"][99]["note"], "x y");
        assert_eq!(doc.lines.line_of(&path(&["list", "99", "note"])), 2 + 99 * 6 + 4);
    }

    /// Mutated corpus files: nothing panics, in this module or in yaml-rust2.
    #[test]
    fn mutations_do_not_panic() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "[", "]", "{", "}", ":", " ", "\n", "-", "&a", "*a", "<<", "\"", "'", "#", "!!", "\t", "|", ">",
            "?",
        ];
        let mut files: Vec<String> = std::fs::read_dir(cases_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        files.sort();
        for round in 0..600 {
            let base = &files[round % files.len()];
            let mut text: Vec<char> = base.chars().collect();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % (text.len() + 1);
                let piece = pieces[(next() as usize) % pieces.len()];
                if next() % 3 == 0 && at < text.len() {
                    text.remove(at);
                } else {
                    text.splice(at..at, piece.chars());
                }
            }
            let text: String = text.into_iter().collect();
            for d in read(&text) {
                if let Err(e) = d {
                    assert!(
                        !e.message.contains("parser failed") && !e.message.contains("internal"),
                        "{e}: {text}"
                    );
                }
            }
        }
    }

    // --- The corpus recorded from kubectl -----------------------------------------------------

    /// What this module does differently from kubectl on a corpus case, and why.
    struct Divergence {
        case: &'static str,
        what: Differs,
        why: &'static str,
    }

    #[derive(Debug, PartialEq)]
    enum Differs {
        /// kubectl rejects the case, this module reads it.
        WeRead,
        /// kubectl reads the case, this module rejects it.
        WeReject,
        /// Both read it, into different values.
        Values,
    }

    /// Syntax yaml-rust2 (YAML 1.2) and libyaml (kubectl) disagree on, where rewriting the text
    /// as [`repair`] does is not possible or not worth it: finding these would take a YAML scanner
    /// of our own. Most are inputs kubectl rejects and this module reads, the safe side for a
    /// checker (nothing kubectl can apply is refused); the two the other way round are plain
    /// scalars in flow collections that end in `:` or hold a lone `-`, which no manifest writer
    /// produces.
    const DIVERGENCES: &[Divergence] = &[
        Divergence {
            case: "66-anchor-name-punctuation",
            what: Differs::WeRead,
            why: "libyaml allows only letters, digits, `_` and `-` in anchor names; yaml-rust2 allows any \
                  character but spaces and `,[]{}`, and its events do not carry the names",
        },
        Divergence {
            case: "87-escape-slash",
            what: Differs::WeRead,
            why: "`\\/` is an escape in YAML 1.2, not in libyaml (kubectl accepts it in files it reads as JSON, \
                  those starting with `{`)",
        },
        Divergence {
            case: "99-tab-only-line",
            what: Differs::WeRead,
            why: "libyaml refuses a tab at the start of a line in block context even on a blank line",
        },
        Divergence {
            case: "100-tab-after-dash",
            what: Differs::WeRead,
            why: "libyaml refuses a tab right after a block sequence's `-`; YAML 1.2 allows it",
        },
        Divergence {
            case: "101-colon-first-in-flow",
            what: Differs::WeRead,
            why: "YAML 1.2 lets a plain scalar start with `:` in a flow collection (`[:b]`); libyaml does not",
        },
        Divergence {
            case: "106-flow-plain-ending-with-colon",
            what: Differs::WeReject,
            why: "in a flow collection libyaml reads `2:}` as the scalar `2:`; YAML 1.2 reads a `:` indicator",
        },
        Divergence {
            case: "107-flow-plain-with-lone-dash-inside",
            what: Differs::WeReject,
            why: "yaml-rust2 refuses `-` before `,]}` even inside a plain scalar (`[x -]`); libyaml reads `x -`",
        },
        Divergence {
            case: "108-line-separator-in-comment",
            what: Differs::Values,
            why: "libyaml breaks lines at LS and PS (U+2028, U+2029), also in comments, yet keeps them in \
                  quoted scalars; yaml-rust2 reads them as text everywhere (NEL is made a line feed)",
        },
        Divergence {
            case: "109-question-mark-inside-flow-plain",
            what: Differs::WeRead,
            why: "libyaml ends a plain scalar at `? ` in a flow collection; YAML 1.2 does not",
        },
    ];

    /// The corpus, relative to the crate's root: `NN-name.yaml` with kubectl's reading of it in
    /// `NN-name.kubectl.json` or `NN-name.kubectl.err`, recorded by `record.sh`.
    const CASES: &str = "tests/fixtures/yaml11";

    fn cases_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(CASES)
    }

    /// kubectl prints integers past i64 through a float64 (its unstructured objects hold int64 or
    /// float64), so numbers are compared as i64 when they fit and as f64 otherwise.
    fn normalize(v: &mut Value) {
        match v {
            Value::Number(n) if n.as_i64().is_none() => {
                if let Some(f) = n.as_f64().and_then(Number::from_f64) {
                    *n = f;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(normalize),
            Value::Object(map) => map.values_mut().for_each(normalize),
            _ => {}
        }
    }

    fn kubectl_documents(json: &str) -> Vec<Value> {
        let v: Value = serde_json::from_str(json).unwrap();
        let mut docs = match (v.get("kind").and_then(Value::as_str), v.get("items").and_then(Value::as_array))
        {
            (Some("List"), Some(items)) => items.clone(),
            _ => vec![v],
        };
        for d in &mut docs {
            // kubectl's `label` adds an empty `metadata.labels`.
            if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut)
                && meta.get("labels").and_then(Value::as_object).is_some_and(Map::is_empty)
            {
                meta.remove("labels");
            }
            normalize(d);
        }
        docs
    }

    /// Whether our reading of one case agrees with kubectl's; the difference when it does not.
    fn agrees(name: &str) -> Result<(), String> {
        let dir = cases_dir();
        let text = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap();
        let ours = read(&text);
        if let Ok(err) = std::fs::read_to_string(dir.join(format!("{name}.kubectl.err"))) {
            // kubectl stops at the first document it cannot read, and says nothing of the others.
            return match ours.iter().any(Result::is_err) {
                true => Ok(()),
                false => Err(format!("kubectl rejects it ({}), we read it", err.trim())),
            };
        }
        let json = std::fs::read_to_string(dir.join(format!("{name}.kubectl.json")))
            .map_err(|_| "not recorded: run ./record.sh".to_owned())?;
        let expected = kubectl_documents(&json);
        let mut got = Vec::new();
        for doc in ours {
            let mut doc = doc.map_err(|e| format!("kubectl reads it, we fail: {e}"))?;
            normalize(&mut doc.value);
            got.push(doc.value);
        }
        if got.len() != expected.len() {
            return Err(format!("kubectl reads {} documents, we read {}", expected.len(), got.len()));
        }
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            if g != e {
                return Err(format!("document {i}:\n  kubectl: {e}\n  ours:    {g}"));
            }
        }
        Ok(())
    }

    #[test]
    fn corpus_agrees_with_kubectl() {
        let mut names: Vec<String> = std::fs::read_dir(cases_dir())
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".yaml").map(str::to_owned))
            .collect();
        names.sort();
        assert!(names.len() >= 50, "only {} cases", names.len());
        let mut problems = Vec::new();
        let mut agreed = 0;
        for name in &names {
            let divergence = DIVERGENCES.iter().find(|d| d.case == name);
            match (agrees(name), divergence) {
                (Ok(()), None) => agreed += 1,
                (Err(e), None) => problems.push(format!("{name}: {e}")),
                (Ok(()), Some(_)) => problems.push(format!("{name}: agrees now; remove it from DIVERGENCES")),
                (Err(e), Some(d)) => {
                    let what = if e.starts_with("kubectl rejects it") {
                        Differs::WeRead
                    } else if e.starts_with("kubectl reads it, we fail") {
                        Differs::WeReject
                    } else {
                        Differs::Values
                    };
                    if what != d.what {
                        problems.push(format!("{name}: expected {:?} ({}), got: {e}", d.what, d.why));
                    }
                }
            }
        }
        for d in DIVERGENCES {
            assert!(names.iter().any(|n| n == d.case), "divergence for a missing case {}", d.case);
        }
        assert!(
            problems.is_empty(),
            "{} of {} cases agree; problems:\n{}",
            agreed,
            names.len(),
            problems.join("\n")
        );
        assert_eq!(agreed + DIVERGENCES.len(), names.len());
    }
}
