//! Name escaping for scrapers that cannot read UTF-8 names, as
//! prometheus/common's `model.EscapeName` does it (1.11 answers every
//! scrape with an `escaping=` scheme; Prometheus 2.x can only read
//! classic names).
//!
//! Only names that are not classic are changed, so with classic names
//! every scheme leaves the exposition as it was. Label values are never
//! touched.

use std::borrow::Cow;

use crate::model::{is_valid_label_name, is_valid_metric_name};

/// The `escaping=` parameter of `Accept` and of the answer's
/// Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    /// `allow-utf-8`: names as pushed, quoted where not classic.
    AllowUtf8,
    /// `underscores` (the default): every character a classic name cannot
    /// hold becomes `_`.
    Underscores,
    /// `dots`: `.` becomes `_dot_`, `_` becomes `__`, others `__`.
    Dots,
    /// `values`: `U__` and each character a classic name cannot hold as
    /// `_<hex code point>_`.
    Values,
}

impl Escaping {
    /// The scheme a token names (`allow-utf-8`, `underscores`, `dots`,
    /// `values`); `None` for anything else, which the reference ignores.
    pub fn from_token(token: &str) -> Option<Escaping> {
        match token {
            "allow-utf-8" => Some(Escaping::AllowUtf8),
            "underscores" => Some(Escaping::Underscores),
            "dots" => Some(Escaping::Dots),
            "values" => Some(Escaping::Values),
            _ => None,
        }
    }

    pub fn token(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }
}

/// A metric name as the scheme writes it.
pub fn metric_name(name: &str, scheme: Escaping) -> Cow<'_, str> {
    if scheme == Escaping::AllowUtf8 || name.is_empty() || is_valid_metric_name(name) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(escape(name, scheme, true))
}

/// A label name as the scheme writes it. Classic here means a classic
/// label name: the reference checks label names with the metric-name rule,
/// which lets `a:b` through unescaped, and Prometheus 2.x then cannot
/// parse the scrape; ours escapes it.
pub fn label_name(name: &str, scheme: Escaping) -> Cow<'_, str> {
    if scheme == Escaping::AllowUtf8 || name.is_empty() || is_valid_label_name(name) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(escape(name, scheme, false))
}

/// Whether a series has a name that is not classic for its kind: the
/// fast test a scrape makes before it re-renders anything.
pub fn needs_escaping(metric: &str, labels: &[crate::model::Label]) -> bool {
    !is_valid_metric_name(metric) || labels.iter().any(|l| !is_valid_label_name(&l.name))
}

/// `model.EscapeName` for a name that is not classic. `colon`: whether
/// `:` may stay (metric names) or not (label names).
fn escape(name: &str, scheme: Escaping, colon: bool) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let classic = |c: char, i: usize| {
        c.is_ascii_alphabetic() || c == '_' || (c == ':' && colon) || (c.is_ascii_digit() && i > 0)
    };
    match scheme {
        Escaping::AllowUtf8 => out.push_str(name),
        Escaping::Underscores => {
            for (i, c) in name.char_indices() {
                out.push(if classic(c, i) { c } else { '_' });
            }
        }
        Escaping::Dots => {
            for (i, c) in name.char_indices() {
                match c {
                    '_' => out.push_str("__"),
                    '.' => out.push_str("_dot_"),
                    c if classic(c, i) => out.push(c),
                    _ => out.push_str("__"),
                }
            }
        }
        Escaping::Values => {
            out.push_str("U__");
            for (i, c) in name.char_indices() {
                match c {
                    '_' => out.push_str("__"),
                    c if classic(c, i) => out.push(c),
                    c => out.push_str(&format!("_{:x}_", c as u32)),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_as_prometheus_common_does() {
        use Escaping::*;
        for (name, scheme, want) in [
            ("my.metric", Underscores, "my_metric"),
            ("1x", Underscores, "_x"),
            ("héllo wörld", Underscores, "h_llo_w_rld"),
            ("my.metric", Dots, "my_dot_metric"),
            ("my_metric.x", Dots, "my__metric_dot_x"),
            ("a-b", Dots, "a__b"),
            ("my.metric", Values, "U__my_2e_metric"),
            ("1a", Values, "U___31_a"),
            ("a_b.c", Values, "U__a__b_2e_c"),
            ("my.metric", AllowUtf8, "my.metric"),
            // Classic names are never changed, whatever the scheme.
            ("my_metric", Dots, "my_metric"),
            ("my_metric", Values, "my_metric"),
            ("a:b", Underscores, "a:b"),
        ] {
            assert_eq!(metric_name(name, scheme), want, "{name} {scheme:?}");
        }
        assert_eq!(label_name("a.b", Underscores), "a_b");
        assert_eq!(label_name("a:b", Underscores), "a_b");
        assert_eq!(label_name("job", Values), "job");
    }

    #[test]
    fn tokens_round_trip() {
        for s in [
            Escaping::AllowUtf8,
            Escaping::Underscores,
            Escaping::Dots,
            Escaping::Values,
        ] {
            assert_eq!(Escaping::from_token(s.token()), Some(s));
        }
        assert_eq!(Escaping::from_token("bogus"), None);
    }
}
