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

impl<W: fmt::Write + ?Sized> fmt::Write for Escape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut start = 0;
        // Runs without escapes (nearly all of a message) are found by a table lookup per byte
        // and copied in one piece.
        while let Some(offset) = bytes[start..].iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]) {
            let i = start + offset;
            self.0.write_str(&s[start..i])?;
            match bytes[i] {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                0x08 => self.0.write_str("\\b")?,
                0x0c => self.0.write_str("\\f")?,
                b => write!(self.0, "\\u{b:04x}")?,
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// A writer that only counts the characters written through it.
#[derive(Debug, Default)]
pub struct CharCount(pub usize);

impl fmt::Write for CharCount {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.chars().count();
        Ok(())
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

    #[test]
    fn char_count_counts_characters_not_bytes() {
        let mut c = CharCount::default();
        let (a, b) = ("日本", "é");
        write!(c, "{a}-{b}").unwrap();
        assert_eq!(c.0, 4);
    }
}
