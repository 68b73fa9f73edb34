//! Writing JSON text by hand where building a value first would cost more than the work it
//! frames: the decision log line and the AdmissionReview response, both on the path of every
//! admission request.

use std::fmt::{self, Write as _};

/// Serializes an `Arc<str>` as a string (serde's `rc` feature would do it for every `Arc`).
pub fn serialize_arc_str<S: serde::Serializer>(v: &std::sync::Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// Writes `s` as a JSON string literal, quotes included.
pub fn string(w: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escape(w).write_str(s)?;
    w.write_char('"')
}

/// Writes, escaped as the inside of a JSON string, what [`string`] writes for `s`: a JSON
/// document held in a JSON string (an audit annotation) gets its values this way.
pub fn string_in_string(w: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    w.write_str("\\\"")?;
    // One pass with the doubled escapes: escaping through two `Escape`s would scan every
    // escape's output again.
    escape(w, s, true)?;
    w.write_str("\\\"")
}

/// A writer that escapes what JSON strings cannot hold raw and passes everything else through
/// in slices; what is written through it becomes the inside of a string literal. The escapes
/// are serde_json's own, so hand-written and serialized JSON are the same bytes.
pub struct Escape<'a, W: fmt::Write + ?Sized>(pub &'a mut W);

/// Whether a JSON string cannot hold `b` raw: control characters, `"` and `\`. Bytes of 0x80
/// and above (UTF-8) never match.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Bytes tested at once while nothing needs escaping. The test is a branch-free fold over a
/// fixed-size block so that the compiler can turn it into a few SSE2 instructions.
const BLOCK: usize = 16;

#[inline]
fn block_needs_escape(block: &[u8; BLOCK]) -> bool {
    block.iter().fold(false, |any, &b| any | needs_escape(b))
}

/// The high bit of each byte of `word` that needs escaping, and possibly of bytes after such a
/// byte: the classic "has a byte less than n" and "has a zero byte" tests. A borrow only runs
/// towards later bytes, so the lowest bit set is exactly the first byte that needs escaping.
const fn escape_flags(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const fn zero_bytes(x: u64) -> u64 {
        x.wrapping_sub(ONES) & !x & HIGHS
    }
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    control | zero_bytes(word ^ (ONES * b'"' as u64)) | zero_bytes(word ^ (ONES * b'\\' as u64))
}

/// Where the first byte at or after `from` that needs escaping is.
fn find_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    // Escapes come in clusters (`\"` in text quoted twice): look at the next word first.
    if let Some(word) = word_at(bytes, at) {
        if let Some(i) = first_flagged(word, at) {
            return Some(i);
        }
        at += 8;
    }
    while let Some(block) = bytes.get(at..at + BLOCK).and_then(|b| <&[u8; BLOCK]>::try_from(b).ok()) {
        if block_needs_escape(block) {
            break;
        }
        at += BLOCK;
    }
    // In the block that has something (or the last few bytes): 8-byte words, then the rest.
    while let Some(word) = word_at(bytes, at) {
        if let Some(i) = first_flagged(word, at) {
            return Some(i);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter().position(|&b| needs_escape(b)).map(|k| at + k)
}

/// The 8 bytes at `at`, if there are that many.
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_le_bytes)
}

/// The index of the first byte that needs escaping in `word`, read at `at`.
fn first_flagged(word: u64, at: usize) -> Option<usize> {
    let flags = escape_flags(word);
    // trailing_zeros of a non-zero u64 is below 64, so the cast is exact.
    (flags != 0).then(|| at + (flags.trailing_zeros() / 8) as usize)
}

impl<W: fmt::Write + ?Sized> fmt::Write for Escape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s, false)
    }
}

/// Writes `s` escaped for the inside of a JSON string; `twice`: escaped again, for a JSON
/// string that holds JSON text.
fn escape<W: fmt::Write + ?Sized>(w: &mut W, s: &str, twice: bool) -> fmt::Result {
    // Messages and paths rarely hold anything to escape: jump from one byte that needs it to
    // the next and copy the clean runs between them whole.
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut from = 0;
    while let Some(i) = find_escape(bytes, from) {
        w.write_str(&s[start..i])?;
        from = i + 1;
        start = from;
        let b = bytes[i];
        if b == b'"' || b == b'\\' {
            // The escape is backslashes before the byte itself (one; three when escaped twice):
            // the byte opens the next clean run, which saves a write.
            w.write_str(if twice { "\\\\\\" } else { "\\" })?;
            start = i;
            continue;
        }
        // Escaped twice, a control character's escape gets its backslash escaped.
        if twice {
            w.write_char('\\')?;
        }
        match b {
            b'\n' => w.write_str("\\n")?,
            b'\r' => w.write_str("\\r")?,
            b'\t' => w.write_str("\\t")?,
            0x08 => w.write_str("\\b")?,
            0x0c => w.write_str("\\f")?,
            _ => write!(w, "\\u{b:04x}")?,
        }
    }
    w.write_str(&s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_strings_parse_back_to_the_original() {
        for s in ["", "plain", "a\"b\\c\nd\re\tf", "\u{1}\u{1f} control", "é ü 日本 🚀", "\\\"\\"] {
            let mut out = String::new();
            string(&mut out, s).unwrap();
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, s, "{out}");
        }
    }

    #[test]
    fn escapes_are_the_same_bytes_as_serde_json() {
        let all: String = (0u8..0x80).map(char::from).chain("é日🚀".chars()).collect();
        let mut out = String::new();
        string(&mut out, &all).unwrap();
        assert_eq!(out, serde_json::to_string(&all).unwrap());
    }

    #[test]
    fn escapes_anywhere_in_long_strings_match_serde_json() {
        // Every byte that needs escaping, at every offset within an 8-byte word, among ASCII
        // and multi-byte characters.
        let specials: Vec<char> = (0u8..0x20).map(char::from).chain(['"', '\\']).collect();
        for special in specials {
            for offset in 0..(2 * BLOCK + 1) {
                let s: String = "aé日"
                    .chars()
                    .cycle()
                    .take(offset)
                    .chain([special])
                    .chain("z".repeat(BLOCK + 1).chars())
                    .collect();
                let mut out = String::new();
                string(&mut out, &s).unwrap();
                assert_eq!(out, serde_json::to_string(&s).unwrap(), "{special:?} at {offset}");
            }
        }
        for b in 0u8..=0xff {
            for at in 0..BLOCK {
                let mut block = [b'a'; BLOCK];
                block[at] = b;
                assert_eq!(block_needs_escape(&block), needs_escape(b), "byte {b:#x} at {at}");
                assert_eq!(find_escape(&block, 0), needs_escape(b).then_some(at), "byte {b:#x} at {at}");
            }
        }
        // Several bytes that need escaping in one word: each is found in turn, whatever follows.
        let s = b"a\"\\\x01\"b\x1f\\";
        let found: Vec<usize> =
            std::iter::successors(find_escape(s, 0), |&i| find_escape(s, i + 1)).collect();
        assert_eq!(found, [1, 2, 3, 4, 6, 7]);
    }

    #[test]
    fn string_in_string_is_the_escaped_string_literal() {
        let every_ascii: String = (0u8..0x80).map(char::from).chain("é日🚀".chars()).collect();
        let mut cases = vec!["".to_owned(), "plain".to_owned(), "say \"hi\"\n".to_owned(), every_ascii];
        // Every byte that needs escaping after clean runs of every length up to two blocks.
        for b in (0u8..0x20).chain([b'"', b'\\']) {
            cases.extend((0..(2 * BLOCK + 1)).map(|n| format!("{}{}z\"", "a".repeat(n), char::from(b))));
        }
        for s in &cases {
            let mut literal = String::new();
            string(&mut literal, s).unwrap();
            let mut escaped = String::new();
            Escape(&mut escaped).write_str(&literal).unwrap();
            let mut direct = String::new();
            string_in_string(&mut direct, s).unwrap();
            assert_eq!(direct, escaped, "{s:?}");
        }
    }

    #[test]
    fn nested_escapes_make_json_inside_a_json_string() {
        let mut out = String::new();
        out.push('"');
        let mut outer = Escape(&mut out);
        string(&mut outer, "say \"hi\"\n").unwrap();
        out.push('"');
        let inner: String = serde_json::from_str(&out).unwrap();
        let back: String = serde_json::from_str(&inner).unwrap();
        assert_eq!(back, "say \"hi\"\n");
    }
}
