//! Prometheus series selectors over grouping keys: `{job="backup"}`,
//! `{job="batch",instance=~"db-.*"}`, for deletes by selector.
//!
//! The syntax and semantics are Prometheus's: matchers `=`, `!=`, `=~` and
//! `!~`; values are Go string literals in double quotes, single quotes or
//! backticks; label names are classic or quoted; regular expressions are
//! fully anchored and `.` matches a newline (`^(?s:re)$`); a label the
//! group does not have has the empty value. A metric name before the
//! braces is refused: grouping keys have none. So is a selector whose
//! matchers all match the empty string (`{}`, `{job=~".*"}`), judged on the
//! selector alone as Prometheus does; the wipe exists for deleting
//! everything.
//!
//! Regular expressions are compiled by `regex-lite`, which reads RE2's
//! syntax except Unicode classes (`\pL`): those are refused with the
//! selector's position, never misread.

use std::fmt;

use regex_lite::Regex;

use crate::model::Label;

/// How a matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Matches,
    NotMatches,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Matches => "=~",
            Op::NotMatches => "!~",
        }
    }
}

/// One `name op "value"` of a selector.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    /// The anchored expression, for `=~` and `!~`.
    re: Option<Regex>,
}

impl Matcher {
    /// Does `value` (the empty string for an absent label) match?
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.re) {
            (Op::Equal, _) => value == self.value,
            (Op::NotEqual, _) => value != self.value,
            (Op::Matches, Some(re)) => re.is_match(value),
            (Op::NotMatches, Some(re)) => !re.is_match(value),
            (_, None) => false,
        }
    }
}

/// A parsed selector: every matcher must hold.
#[derive(Clone, Debug)]
pub struct Selector {
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// Does a group with these grouping labels match?
    pub fn matches(&self, labels: &[Label]) -> bool {
        self.matchers.iter().all(|m| {
            let value = labels.iter().find(|l| *l.name == m.name);
            m.matches(value.map_or("", |l| &l.value))
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}{}{:?}", m.name, m.op.as_str(), m.value)?;
        }
        f.write_str("}")
    }
}

/// What was wrong with a selector, and where (a byte offset into it).
#[derive(Debug, PartialEq)]
pub struct SelectorError {
    pub offset: usize,
    pub kind: SelectorErrorKind,
}

#[derive(Debug, PartialEq)]
pub enum SelectorErrorKind {
    Expected(&'static str),
    MetricName,
    BadString(&'static str),
    BadRegex(String),
    /// The expression compiles to more than [`REGEX_SIZE_LIMIT`] bytes.
    RegexTooBig,
    MatchesEverything,
    TrailingInput,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "selector at byte {}: ", self.offset)?;
        match &self.kind {
            SelectorErrorKind::Expected(what) => write!(f, "expected {what}"),
            SelectorErrorKind::MetricName => f.write_str(
                "a metric name cannot select groups (grouping keys have none); use {job=\"...\"}",
            ),
            SelectorErrorKind::BadString(why) => write!(f, "invalid string: {why}"),
            SelectorErrorKind::BadRegex(why) => write!(f, "invalid regular expression: {why}"),
            SelectorErrorKind::RegexTooBig => write!(
                f,
                "regular expression too large: it compiles to more than {} KiB",
                REGEX_SIZE_LIMIT / 1024
            ),
            SelectorErrorKind::MatchesEverything => f.write_str(
                "every matcher matches the empty string, so this would select every group \
                 (use the wipe to delete everything)",
            ),
            SelectorErrorKind::TrailingInput => f.write_str("unexpected input after '}'"),
        }
    }
}

impl std::error::Error for SelectorError {}

/// The most `match[]` a delete may carry: each is compiled, and matched
/// against every group, so a request head of a megabyte must not carry
/// thousands.
pub const MAX_SELECTORS: usize = 64;

/// The query of `/api/v1/admin/delete`: one or more `match[]` selectors
/// (their union is deleted) and `dry_run`.
#[derive(Debug)]
pub struct DeleteQuery {
    pub selectors: Vec<Selector>,
    pub dry_run: bool,
}

impl DeleteQuery {
    /// Parses a raw query string (`match[]=%7Bjob%3D%22x%22%7D&dry_run=true`),
    /// form-encoded as browsers and curl's `--data-urlencode -G` send it.
    /// Other parameters are ignored, as Prometheus ignores them.
    pub fn parse(raw_query: &str) -> Result<DeleteQuery, String> {
        let mut q = DeleteQuery {
            selectors: Vec::new(),
            dry_run: false,
        };
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                crate::wire::path::percent_decode(&s.replace('+', " "))
                    .map_err(|e| format!("query parameter {k:?}: {e}"))
            };
            match decode(k)?.as_str() {
                "match[]" => {
                    if q.selectors.len() == MAX_SELECTORS {
                        return Err(format!(
                            "more than {MAX_SELECTORS} match[] selectors in one request"
                        ));
                    }
                    let text = decode(v)?;
                    let sel = parse(&text).map_err(|e| format!("match[]={text}: {e}"))?;
                    q.selectors.push(sel);
                }
                "dry_run" => {
                    q.dry_run = match decode(v)?.as_str() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        other => return Err(format!("dry_run={other:?}: expected true or false")),
                    }
                }
                _ => {}
            }
        }
        if q.selectors.is_empty() {
            return Err(
                "no match[] parameter: give at least one selector, e.g. match[]={job=\"backup\"}"
                    .into(),
            );
        }
        Ok(q)
    }

    /// Does any of the selectors match these grouping labels?
    pub fn matches(&self, labels: &[Label]) -> bool {
        self.selectors.iter().any(|s| s.matches(labels))
    }
}

/// The most memory one compiled expression may take: a delete carries up
/// to [`MAX_SELECTORS`] selectors of several matchers each, and counted
/// repetitions (`a{1000}{1000}`) compile to far more than they spell.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Compiles a matcher's expression, anchored as Prometheus anchors it,
/// within [`REGEX_SIZE_LIMIT`].
fn compile(value: &str) -> Result<Regex, SelectorErrorKind> {
    regex_lite::RegexBuilder::new(&format!("^(?s:{value})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let why = e.to_string();
            if why.contains("size limit") {
                SelectorErrorKind::RegexTooBig
            } else {
                SelectorErrorKind::BadRegex(why.replace('\n', " "))
            }
        })
}

/// Parses one selector.
pub fn parse(input: &str) -> Result<Selector, SelectorError> {
    let mut p = Parser { s: input, pos: 0 };
    p.skip_space();
    if p.peek().is_some_and(|c| c != '{') {
        return Err(p.err(SelectorErrorKind::MetricName));
    }
    p.expect('{', "'{'")?;
    let mut matchers = Vec::new();
    loop {
        p.skip_space();
        if p.eat('}') {
            break;
        }
        matchers.push(p.matcher()?);
        p.skip_space();
        if p.eat('}') {
            break;
        }
        p.expect(',', "',' or '}'")?;
    }
    p.skip_space();
    if p.pos < input.len() {
        return Err(p.err(SelectorErrorKind::TrailingInput));
    }
    if matchers.iter().all(|m| m.matches("")) {
        return Err(SelectorError {
            offset: 0,
            kind: SelectorErrorKind::MatchesEverything,
        });
    }
    Ok(Selector { matchers })
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, kind: SelectorErrorKind) -> SelectorError {
        SelectorError {
            offset: self.pos,
            kind,
        }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += c.len_utf8();
        }
        hit
    }

    fn expect(&mut self, c: char, what: &'static str) -> Result<(), SelectorError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(SelectorErrorKind::Expected(what)))
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += self.peek().map_or(1, char::len_utf8);
        }
    }

    fn matcher(&mut self) -> Result<Matcher, SelectorError> {
        let name = match self.peek() {
            Some('"' | '\'' | '`') => self.string()?,
            _ => self.label_name()?,
        };
        self.skip_space();
        let op = if self.eat('=') {
            if self.eat('~') {
                Op::Matches
            } else {
                Op::Equal
            }
        } else if self.eat('!') {
            match self.peek() {
                Some('=') => Op::NotEqual,
                Some('~') => Op::NotMatches,
                _ => return Err(self.err(SelectorErrorKind::Expected("'=' or '~' after '!'"))),
            }
        } else {
            return Err(self.err(SelectorErrorKind::Expected("=, !=, =~ or !~")));
        };
        if matches!(op, Op::NotEqual | Op::NotMatches) {
            self.pos += 1;
        }
        self.skip_space();
        let value_at = self.pos;
        let value = self.string()?;
        let re = match op {
            Op::Matches | Op::NotMatches => {
                Some(compile(&value).map_err(|kind| SelectorError {
                    offset: value_at,
                    kind,
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    fn label_name(&mut self) -> Result<String, SelectorError> {
        let rest = &self.s[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 || rest.as_bytes()[0].is_ascii_digit() {
            return Err(self.err(SelectorErrorKind::Expected("a label name")));
        }
        self.pos += len;
        Ok(rest[..len].to_owned())
    }

    /// A Go string literal: "..." or '...' with escapes, `...` raw.
    fn string(&mut self) -> Result<String, SelectorError> {
        let Some(quote) = self.peek().filter(|c| matches!(c, '"' | '\'' | '`')) else {
            return Err(self.err(SelectorErrorKind::Expected("a quoted string")));
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err(SelectorErrorKind::BadString("unterminated")));
            };
            self.pos += c.len_utf8();
            match c {
                c if c == quote => return Ok(out),
                '\\' if quote != '`' => out.push(self.escape(quote)?),
                '\n' if quote != '`' => {
                    return Err(self.err(SelectorErrorKind::BadString("newline in string")));
                }
                c => out.push(c),
            }
        }
    }

    /// The character after a backslash, as Go's `strconv.Unquote` reads it.
    fn escape(&mut self, quote: char) -> Result<char, SelectorError> {
        let bad = |p: &Self| p.err(SelectorErrorKind::BadString("invalid escape"));
        let c = self.peek().ok_or_else(|| bad(self))?;
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            c if c == quote => Some(c),
            _ => None,
        };
        if let Some(c) = simple {
            return Ok(c);
        }
        let (digits, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => {
                self.pos -= 1;
                (3, 8)
            }
            _ => return Err(bad(self)),
        };
        let hex = self
            .s
            .get(self.pos..self.pos + digits)
            .ok_or_else(|| bad(self))?;
        let v = u32::from_str_radix(hex, radix).map_err(|_| bad(self))?;
        self.pos += digits;
        // \x and octal escapes are bytes in Go; only ASCII ones make text.
        if radix == 8 || c == 'x' {
            return char::from_u32(v)
                .filter(char::is_ascii)
                .ok_or_else(|| bad(self));
        }
        char::from_u32(v).ok_or_else(|| bad(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(n, v)).collect()
    }

    fn sel(s: &str) -> Selector {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn matchers_follow_prometheus() {
        let g = labels(&[("job", "batch"), ("instance", "db-1")]);
        assert!(sel(r#"{job="batch"}"#).matches(&g));
        assert!(!sel(r#"{job="batc"}"#).matches(&g));
        assert!(sel(r#"{job="batch",instance=~"db-.*"}"#).matches(&g));
        // Anchored on both ends.
        assert!(!sel(r#"{instance=~"db"}"#).matches(&g));
        assert!(!sel(r#"{instance=~"b-1"}"#).matches(&g));
        assert!(sel(r#"{instance="db-1",job!="x"}"#).matches(&g));
        assert!(!sel(r#"{instance="db-1",job!~"b.*"}"#).matches(&g));
        // An absent label has the empty value.
        assert!(sel(r#"{job="batch",zone=""}"#).matches(&g));
        assert!(!sel(r#"{job="batch",zone!=""}"#).matches(&g));
        // `.` matches a newline, as in Prometheus's (?s:...).
        assert!(sel(r#"{job=~"a.b"}"#).matches(&labels(&[("job", "a\nb")])));
        // Alternation stays inside the anchors.
        assert!(!sel(r#"{job=~"a|b"}"#).matches(&labels(&[("job", "ab")])));
    }

    #[test]
    fn strings_are_go_literals() {
        let m = |s: &str| sel(s).matchers.remove(0).value;
        assert_eq!(m(r#"{job="a\"b\\c\n"}"#), "a\"b\\c\n");
        assert_eq!(m(r#"{job='it\'s'}"#), "it's");
        assert_eq!(m(r#"{job=`raw\n`}"#), "raw\\n");
        assert_eq!(m(r#"{job="\x41\u00e9\U0001F600\101"}"#), "Aé😀A");
        assert_eq!(m(r#"{ "job" = "x" , }"#), "x");
        assert_eq!(sel(r#"{"a.b"="x"}"#).matchers[0].name, "a.b");
    }

    #[test]
    fn delete_queries() {
        let q = DeleteQuery::parse(
            "match[]=%7Bjob%3D%22a%22%7D&x=1&match%5B%5D={job=~\"b|c\",+zone=\"z\"}&dry_run=true",
        )
        .unwrap();
        assert!(q.dry_run);
        assert_eq!(q.selectors.len(), 2);
        assert!(q.matches(&labels(&[("job", "a")])));
        assert!(q.matches(&labels(&[("job", "c"), ("zone", "z")])));
        assert!(!q.matches(&labels(&[("job", "c")])));
        let err = |s: &str| DeleteQuery::parse(s).unwrap_err();
        assert!(err("dry_run=true").contains("no match[]"));
        let many = "match[]={job=\"a\"}&".repeat(MAX_SELECTORS + 1);
        assert!(err(&many).contains("more than 64"));
        assert!(DeleteQuery::parse(&many[..many.len() - 15]).is_ok());
        assert!(err("match[]={}").contains("every matcher matches the empty string"));
        assert!(err("match[]=%7").contains("match[]"));
        assert!(err("match[]={job=\"a\"}&dry_run=yes").contains("dry_run"));
    }

    #[test]
    fn errors_name_the_position() {
        let e = |s: &str| parse(s).unwrap_err();
        assert_eq!(e("{}").kind, SelectorErrorKind::MatchesEverything);
        assert_eq!(
            e(r#"{job=~".*"}"#).kind,
            SelectorErrorKind::MatchesEverything
        );
        assert_eq!(e(r#"{job=""}"#).kind, SelectorErrorKind::MatchesEverything);
        assert_eq!(
            e(r#"{job!="x"}"#).kind,
            SelectorErrorKind::MatchesEverything
        );
        assert_eq!(e(r#"up{job="x"}"#).kind, SelectorErrorKind::MetricName);
        let bad = e(r#"{job="x",instance~"y"}"#);
        assert_eq!(bad.offset, 17, "{bad}");
        assert!(bad.to_string().contains("byte 17"), "{bad}");
        let unterminated = e(r#"{job="x}"#);
        assert_eq!(
            unterminated.kind,
            SelectorErrorKind::BadString("unterminated")
        );
        let re = e(r#"{job=~"a("}"#);
        assert!(matches!(re.kind, SelectorErrorKind::BadRegex(_)), "{re}");
        assert_eq!(re.offset, 6);
        assert!(matches!(
            e(r#"{job=~"\\pL"}"#).kind,
            SelectorErrorKind::BadRegex(_)
        ));
        assert_eq!(
            e(r#"{job="x"} extra"#).kind,
            SelectorErrorKind::TrailingInput
        );
        assert_eq!(
            e(r#"{job="\q"}"#).kind,
            SelectorErrorKind::BadString("invalid escape")
        );
        assert_eq!(
            e(r#"{9job="x"}"#).kind,
            SelectorErrorKind::Expected("a label name")
        );
        assert_eq!(
            e(r#"{job="x""#).kind,
            SelectorErrorKind::Expected("',' or '}'")
        );
        assert_eq!(e("").kind, SelectorErrorKind::Expected("'{'"));
    }

    /// A short expression that compiles to a huge program is refused,
    /// with a message that says so.
    #[test]
    fn huge_compiled_expressions_are_refused() {
        let big = parse(r#"{job=~"(a{100}){100}"}"#).unwrap_err();
        assert_eq!(big.kind, SelectorErrorKind::RegexTooBig, "{big}");
        assert!(big.to_string().contains("too large"), "{big}");
        assert!(parse(r#"{job=~"(a{10}){10}"}"#).is_ok());
    }
}
