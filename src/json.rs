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

/// Go's `time.RFC3339Nano` in UTC: `2026-11-25T04:18:07.542346203Z`, with
/// trailing zeros of the fraction dropped (and the dot when it is zero).
pub fn rfc3339_nanos(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let (y, m, d) = crate::logging::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac > 0 {
        let f = format!(".{frac:09}");
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
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

    #[test]
    fn nano_times() {
        assert_eq!(
            rfc3339_nanos(1_795_580_287_542_346_203),
            "2026-11-25T04:18:07.542346203Z"
        );
        assert_eq!(
            rfc3339_nanos(1_795_580_287_500_000_000),
            "2026-11-25T04:18:07.5Z"
        );
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00Z");
    }
}
