//! Writing JSON text by hand where building a value first would cost more than the work it
//! frames: the decision log line and the AdmissionReview response, both on the path of every
//! admission request.

use std::fmt::{self, Write as _};

/// Writes `s` as a JSON string literal, quotes included.
pub fn string(w: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escape(w).write_str(s)?;
    w.write_char('"')
}

/// A writer that escapes what JSON strings cannot hold raw and passes everything else through
/// in slices; what is written through it becomes the inside of a string literal. The escapes
/// are serde_json's own, so hand-written and serialized JSON are the same bytes.
pub struct Escape<'a, W: fmt::Write + ?Sized>(pub &'a mut W);

/// Bytes a JSON string cannot hold raw: control characters, `"` and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether any of the 8 bytes in `word` needs escaping: the classic "has a byte less than n" and
/// "has a zero byte" tests, which are exact as yes/no answers. Bytes of 0x80 and above (UTF-8)
/// never match.
const fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const fn has_zero(x: u64) -> bool {
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    }
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    control || has_zero(word ^ (ONES * b'"' as u64)) || has_zero(word ^ (ONES * b'\\' as u64))
}

impl<W: fmt::Write + ?Sized> Escape<'_, W> {
    /// Escapes `bytes[i]`, which needs it, after flushing the clean run before it.
    fn escape_at(&mut self, s: &str, start: usize, i: usize) -> fmt::Result {
        self.0.write_str(&s[start..i])?;
        match s.as_bytes()[i] {
            b'"' => self.0.write_str("\\\""),
            b'\\' => self.0.write_str("\\\\"),
            b'\n' => self.0.write_str("\\n"),
            b'\r' => self.0.write_str("\\r"),
            b'\t' => self.0.write_str("\\t"),
            0x08 => self.0.write_str("\\b"),
            0x0c => self.0.write_str("\\f"),
            b => write!(self.0, "\\u{b:04x}"),
        }
    }
}

impl<W: fmt::Write + ?Sized> fmt::Write for Escape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        // Messages and paths rarely hold anything to escape: test 8 bytes at a time, look at
        // single bytes only in a word that has something, and copy the clean runs whole.
        let mut words = bytes.chunks_exact(8);
        let mut at = 0;
        for word in words.by_ref() {
            let Ok(word) = <[u8; 8]>::try_from(word) else { break };
            if word_needs_escape(u64::from_le_bytes(word)) {
                for (j, b) in word.iter().enumerate() {
                    if NEEDS_ESCAPE[usize::from(*b)] {
                        self.escape_at(s, start, at + j)?;
                        start = at + j + 1;
                    }
                }
            }
            at += 8;
        }
        for (j, b) in words.remainder().iter().enumerate() {
            if NEEDS_ESCAPE[usize::from(*b)] {
                self.escape_at(s, start, at + j)?;
                start = at + j + 1;
            }
        }
        self.0.write_str(&s[start..])
    }
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
            for offset in 0..17 {
                let s: String = "aé日"
                    .chars()
                    .cycle()
                    .take(offset)
                    .chain([special])
                    .chain("z".repeat(9).chars())
                    .collect();
                let mut out = String::new();
                string(&mut out, &s).unwrap();
                assert_eq!(out, serde_json::to_string(&s).unwrap(), "{special:?} at {offset}");
            }
        }
        for b in 0u8..=0x7f {
            let word = u64::from_le_bytes([b'a', b'a', b'a', b, b'a', b'a', b'a', b'a']);
            assert_eq!(word_needs_escape(word), NEEDS_ESCAPE[usize::from(b)], "byte {b:#x}");
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
