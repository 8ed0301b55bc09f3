//! The little JSON writing the gateway needs (API answers, JSON logs),
//! by hand: a string escaper and RFC 3339 times.

use std::fmt::Write as _;

/// Writes `s` as a JSON string literal, escaping as Go's encoding/json
/// does (including `<`, `>`, `&`, U+2028 and U+2029), so the output is safe
/// to embed in HTML and matches the reference byte for byte.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_go() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd<e>&\u{1}é\u{2028}");
        assert_eq!(
            s,
            "\"a\\\"b\\\\c\\nd\\u003ce\\u003e\\u0026\\u0001é\\u2028\""
        );
    }
}
