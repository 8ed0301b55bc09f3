//! URL path handling: percent-decoding, Go-style path cleaning, and the
//! grouping key in `/metrics/job/<JOB>{/<NAME>/<VALUE>}`.
//!
//! The reference routes on the *decoded* path, so `%2F` inside a value acts
//! as a separator there; a `/` in a value must be sent base64-encoded
//! (`name@base64/value`). We decode first and split second to behave the
//! same for every client that works against the reference today.

use std::fmt;

use crate::model::{Label, NameScheme};

/// The suffix that marks a base64-encoded value in the URL path.
pub const BASE64_SUFFIX: &str = "@base64";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    BadPercentEncoding,
    NotUtf8,
    OddComponents { labels: String },
    InvalidLabelName { name: String },
    InvalidBase64 { name: String, value: String },
    ValueNotUtf8 { name: String },
    EmptyJob,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::BadPercentEncoding => {
                f.write_str("invalid percent-encoding in the URL path (a '%' must be followed by two hex digits)")
            }
            PathError::NotUtf8 => f.write_str("the URL path is not valid UTF-8 once percent-decoded"),
            PathError::OddComponents { labels } => write!(
                f,
                "odd number of components in label string {labels:?}: the path must continue with /<label name>/<label value> pairs"
            ),
            PathError::InvalidLabelName { name } => write!(
                f,
                "improper label name {name:?}: it must match [a-zA-Z_][a-zA-Z0-9_]* and must not start with \"__\""
            ),
            PathError::InvalidBase64 { name, value } => write!(
                f,
                "invalid base64 encoding for label {name}={value:?}: expected URL-safe base64 (A-Z a-z 0-9 - _), padding optional"
            ),
            PathError::ValueNotUtf8 { name } => {
                write!(f, "base64-decoded value of label {name:?} is not valid UTF-8")
            }
            PathError::EmptyJob => f.write_str("job name is required"),
        }
    }
}

impl std::error::Error for PathError {}

/// Decodes `%XX` escapes. Like Go's URL parser, a `%` not followed by two
/// hex digits makes the whole request invalid.
pub fn percent_decode(s: &str) -> Result<String, PathError> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return Ok(s.to_owned());
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(PathError::BadPercentEncoding),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Percent-encodes a decoded path for a `Location` header as Go's
/// `url.URL.EscapedPath` does: unreserved bytes and `$&+,/:;=@` stay, all
/// else (spaces, CR, LF, non-ASCII, ...) becomes `%XX`. A redirect built
/// from a decoded path can then never carry a control byte.
pub fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Go's `path.Clean` as `http.ServeMux` applies it: collapses `//`, removes
/// `.` and resolves `..`, keeping a trailing slash. A request whose path
/// changes under cleaning is redirected by the reference, not served.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".to_owned();
    }
    // Most paths are clean already: found so with a few substring scans,
    // not a split into every segment (a megabyte of grouping pairs is
    // two hundred thousand of them, on the I/O loop).
    let dotted = p.contains("/./") || p.contains("/../") || p.ends_with("/.") || p.ends_with("/..");
    if p.starts_with('/') && !p.contains("//") && !dotted {
        return p.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(p.len());
    for s in &parts {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || p.ends_with('/') {
        out.push('/');
    }
    out
}

/// Decodes RFC 4648 URL-safe base64 without padding, after trimming any
/// trailing `=`, as the reference does (`base64.RawURLEncoding`).
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// URL-safe base64 without padding, the form `decode_base64` reads.
pub fn encode_base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn decode_value(name: &str, value: &str) -> Result<String, PathError> {
    let bytes = decode_base64(value).ok_or_else(|| PathError::InvalidBase64 {
        name: name.to_owned(),
        value: value.to_owned(),
    })?;
    String::from_utf8(bytes).map_err(|_| PathError::ValueNotUtf8 {
        name: name.to_owned(),
    })
}

/// Escapes a label name for a URL path as Prometheus's `EscapeName`
/// (value-encoding escaping) does: a legacy name stays as it is; any other
/// becomes `U__` followed by its legacy characters, `__` for `_`, and
/// `_<hex>_` for every other character. The result holds no `/`, `.` or
/// `%`, so a path built from it names exactly this label.
pub fn escape_name(name: &str) -> String {
    let legacy = |c: char, i: usize| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    };
    if !name.is_empty() && name.chars().enumerate().all(|(i, c)| legacy(c, i)) {
        return name.to_owned();
    }
    let mut out = String::from("U__");
    for (i, c) in name.chars().enumerate() {
        if c == '_' {
            out.push_str("__");
        } else if legacy(c, i) {
            out.push(c);
        } else {
            out.push_str(&format!("_{:x}_", c as u32));
        }
    }
    out
}

/// Decodes the `U__` escaping of UTF-8 label names in URL paths
/// (`U__foo_2e_bar` is `foo.bar`, `__` is `_`), as Prometheus's
/// `UnescapeName` does; a name that is not validly escaped stays as it is.
pub fn unescape_name(name: &str) -> String {
    let Some(escaped) = name.strip_prefix("U__") else {
        return name.to_owned();
    };
    let b = escaped.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'_' {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        i += 1;
        if i >= b.len() {
            return name.to_owned();
        }
        if b[i] == b'_' {
            out.push('_');
            i += 1;
            continue;
        }
        let mut value: u32 = 0;
        let mut digits = 0;
        loop {
            let Some(&c) = b.get(i) else {
                return name.to_owned();
            };
            if c == b'_' {
                match char::from_u32(value) {
                    Some(ch) if digits > 0 => out.push(ch),
                    _ => return name.to_owned(),
                }
                i += 1;
                break;
            }
            if digits >= 6 {
                return name.to_owned();
            }
            let Some(d) = (c as char).to_digit(16) else {
                return name.to_owned();
            };
            value = value * 16 + d;
            digits += 1;
            i += 1;
        }
    }
    out
}

/// Builds the grouping key from the job segment and the rest of the path
/// after it (`""`, `"/"` or `"/name/value/..."`). The result is sorted by
/// label name; a later pair with the same name overrides an earlier one, and
/// `job` from the path overrides a `job` pair, as in the reference. With
/// `NameScheme::Utf8`, label names may use the `U__` escaping.
pub fn grouping_key(
    job: &str,
    job_base64: bool,
    rest: &str,
    scheme: NameScheme,
) -> Result<Vec<Label>, PathError> {
    let job = if job_base64 {
        decode_value("job", job)?
    } else {
        job.to_owned()
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if rest.len() > 1 {
        let components = rest[1..].split('/');
        if !components.clone().count().is_multiple_of(2) {
            return Err(PathError::OddComponents {
                labels: rest.to_owned(),
            });
        }
        let mut components = components;
        while let (Some(name), Some(value)) = (components.next(), components.next()) {
            let raw = name.strip_suffix(BASE64_SUFFIX).unwrap_or(name);
            let is_base64 = raw.len() != name.len();
            let unescaped = match scheme {
                NameScheme::Utf8 => unescape_name(raw),
                NameScheme::Legacy => raw.to_owned(),
            };
            let trimmed = unescaped.as_str();
            if !scheme.is_valid_label_name(trimmed) || trimmed.starts_with("__") {
                return Err(PathError::InvalidLabelName {
                    name: trimmed.to_owned(),
                });
            }
            let value = if is_base64 {
                decode_value(trimmed, value)?
            } else {
                value.to_owned()
            };
            pairs.push((trimmed.to_owned(), value));
        }
    }
    if job.is_empty() {
        return Err(PathError::EmptyJob);
    }
    pairs.push(("job".to_owned(), job));
    Ok(last_of_each_name(pairs)
        .iter()
        .map(|(n, v)| Label::new(n, v))
        .collect())
}

/// The pairs sorted by name, keeping for each name the one given last (a
/// later pair overrides an earlier one, the job segment every `job`
/// pair). A sort, not a scan of the pairs kept so far: a URL of a hundred
/// thousand pairs costs O(n log n).
fn last_of_each_name(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut numbered: Vec<(usize, (String, String))> = pairs.into_iter().enumerate().collect();
    // By name, the latest first within a name.
    numbered.sort_unstable_by(|a, b| a.1.0.cmp(&b.1.0).then_with(|| b.0.cmp(&a.0)));
    let mut out: Vec<(String, String)> = Vec::with_capacity(numbered.len());
    for (_, pair) in numbered {
        if out.last().is_none_or(|last| last.0 != pair.0) {
            out.push(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(job: &str, b64: bool, rest: &str) -> Vec<(String, String)> {
        grouping_key(job, b64, rest, NameScheme::Legacy)
            .unwrap()
            .into_iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn plain_keys() {
        assert_eq!(key("some_job", false, ""), kv(&[("job", "some_job")]));
        assert_eq!(key("j", false, "/"), kv(&[("job", "j")]));
        assert_eq!(
            key("some_job", false, "/instance/some_instance"),
            kv(&[("instance", "some_instance"), ("job", "some_job")])
        );
        assert_eq!(key("j", false, "/a/"), kv(&[("a", ""), ("job", "j")]));
        assert_eq!(key("j", false, "/job/x"), kv(&[("job", "j")]));
    }

    #[test]
    fn base64_keys() {
        assert_eq!(key("Zm9v", true, ""), kv(&[("job", "foo")]));
        assert_eq!(
            key("j", false, "/a@base64/="),
            kv(&[("a", ""), ("job", "j")])
        );
        assert_eq!(
            key("j", false, "/a@base64/L3Zhci90bXA="),
            kv(&[("a", "/var/tmp"), ("job", "j")])
        );
        assert_eq!(
            key("j", false, "/a@base64/L3Zhci90bXA"),
            kv(&[("a", "/var/tmp"), ("job", "j")])
        );
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "/var/tmp", "é日本\u{0}"] {
            assert_eq!(
                decode_base64(&encode_base64(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert_eq!(encode_base64(b"/var/tmp"), "L3Zhci90bXA");
    }

    #[test]
    fn path_errors() {
        let e = |job, b64, rest| grouping_key(job, b64, rest, NameScheme::Legacy).unwrap_err();
        assert!(matches!(
            e("j", false, "/a/b/c"),
            PathError::OddComponents { .. }
        ));
        assert!(matches!(
            e("j", false, "/a/b/"),
            PathError::OddComponents { .. }
        ));
        assert!(matches!(
            e("j", false, "/__a/b"),
            PathError::InvalidLabelName { .. }
        ));
        assert!(matches!(
            e("j", false, "/1a/b"),
            PathError::InvalidLabelName { .. }
        ));
        assert!(matches!(
            e("j", false, "/a@base64/!!"),
            PathError::InvalidBase64 { .. }
        ));
        assert!(matches!(
            e("j", false, "/a@base64/A"),
            PathError::InvalidBase64 { .. }
        ));
        assert!(matches!(
            e("j", false, "/a@base64/_w"),
            PathError::ValueNotUtf8 { .. }
        ));
        assert!(matches!(e("=", true, ""), PathError::EmptyJob));
    }

    #[test]
    fn utf8_label_names_in_paths() {
        assert_eq!(unescape_name("U__foo_2e_bar"), "foo.bar");
        assert_eq!(unescape_name("U___55_____"), "U__");
        assert_eq!(unescape_name("U__in_xxx_valid"), "U__in_xxx_valid");
        assert_eq!(unescape_name("U__a_1F60A_"), "a😊");
        assert_eq!(unescape_name("plain_name"), "plain_name");
        let k = grouping_key("j", false, "/U__foo_2e_bar/baz", NameScheme::Utf8).unwrap();
        assert_eq!(&*k[0].name, "foo.bar");
        // Without the flag the name is taken literally, as the reference does.
        let k = grouping_key("j", false, "/U__foo_2e_bar/baz", NameScheme::Legacy).unwrap();
        assert_eq!(&*k[0].name, "U__foo_2e_bar");
        assert!(grouping_key("j", false, "/foo.bar/baz", NameScheme::Legacy).is_err());
        assert!(
            grouping_key("j", false, "/U______x_2e_/baz", NameScheme::Utf8).is_err(),
            "__ prefix after unescaping"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b%2Fc").unwrap(), "/a b/c");
        assert_eq!(percent_decode("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(percent_decode("/a%2"), Err(PathError::BadPercentEncoding));
        assert_eq!(percent_decode("/%ff"), Err(PathError::NotUtf8));
        assert_eq!(percent_decode("/%C3%A9").unwrap(), "/é");
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean_path("/metrics/job/x"), "/metrics/job/x");
        assert_eq!(clean_path("/metrics/job//x"), "/metrics/job/x");
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c/");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path("/.."), "/");
    }

    /// A later pair overrides an earlier one of the same name, whatever
    /// the number of pairs; job from the path overrides them all.
    #[test]
    fn later_pairs_override_earlier_ones() {
        let rest: String = (0..2000).map(|i| format!("/k{}/{i}", i % 7)).collect();
        let got = key("j", false, &format!("{rest}/job/x"));
        let mut want: Vec<(String, String)> = (1993..2000)
            .map(|i| (format!("k{}", i % 7), i.to_string()))
            .collect();
        want.push(("job".into(), "j".into()));
        want.sort();
        assert_eq!(got, want);
    }
}
