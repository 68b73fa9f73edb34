//! A bound on YAML nesting checked before the YAML reader runs.
//!
//! serde_yaml_ng stops at 128 levels instead of overflowing, but its scanner takes time
//! quadratic in the nesting depth of flow collections (`[[[[…` or `{a: {a: …`): 100,000 levels
//! in a 200 KB file took 96 s of CPU before the depth error came. Block nesting needs ever deeper
//! indentation, so its size grows with the square of its depth and stays cheap; flow nesting is
//! what a few bytes per level can build. [`flow_depth_error`] finds the first place where flow
//! nesting passes [`MAX_DEPTH`], in one pass, so the reader never sees it.

/// Deepest flow nesting accepted: the YAML reader's own limit.
pub const MAX_DEPTH: usize = 128;

/// The 1-based line where flow nesting first goes deeper than [`MAX_DEPTH`], if it does.
/// Quoted scalars and comments are skipped; a bracket inside a plain scalar counts (real
/// documents do not hold a hundred unclosed ones).
pub fn flow_depth_error(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut line, mut i) = (0usize, 1usize, 0usize);
    // Whether the previous byte can precede the start of a token (where a quote opens a scalar).
    let mut at_token_start = true;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\n' => line += 1,
            b'#' if at_token_start => {
                while bytes.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'\'' | b'"' if at_token_start => {
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'\\' if b == b'"' => i += 1,
                        b'\'' if b == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
                        c if c == b => break,
                        b'\n' => line += 1,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at_token_start =
            matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',' | b':' | b'-'));
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_found_at_its_line() {
        let deep = format!("a: 1\nb: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(flow_depth_error(&deep), Some(2));
        let maps = format!("x:\n  y: {}1{}\n", "{a: ".repeat(200), "}".repeat(200));
        assert_eq!(flow_depth_error(&maps), Some(2));
    }

    #[test]
    fn ordinary_documents_pass() {
        let at_limit = format!("x: {}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(flow_depth_error(&at_limit), None);
        for text in [
            "cel: \"[[[[[[\" # [[[[[[[\n",
            "pattern: '^(a|[b]){3}$'\nlist: [1, [2, [3]], {a: [4]}]\n",
            "cel: |\n  spec.containers.all(c, c.image.matches('[a-z]+'))\n",
            &format!("quoted: '{}'\n", "[".repeat(1_000)),
            &format!("doubled: \"{}\\\"\"\n", "{".repeat(1_000)),
        ] {
            assert_eq!(flow_depth_error(text), None, "{text}");
        }
    }
}
