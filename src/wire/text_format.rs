//! Parser for the Prometheus text exposition format, version 0.0.4.
//!
//! Users switch from the Go Pushgateway without touching their jobs, so a body
//! that the reference accepts must be accepted here and a body it rejects must
//! be rejected here. The reference uses `expfmt.TextParser` from
//! prometheus/common, a byte-at-a-time state machine with a few surprising
//! corners (a trailing blank after the value is an error, `# HELP` for
//! `foo_sum` documents a summary `foo`, a body without its final newline is
//! rejected). This parser follows the same states in the same order so that
//! those corners come out the same, while reporting errors as typed values
//! with the line number.
//!
//! The parser is a pure function over bytes: no store, no I/O.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::{Meter, Unmetered, cost};
use crate::model::{Bucket, Extra, Label, Metric, MetricFamily, MetricType, NameScheme, Value};

/// A body the text format cannot accept, with the 1-based line it was found on.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ErrorKind {
    UnexpectedEof,
    InvalidMetricName,
    InvalidMetricNameInComment,
    InvalidLabelName {
        metric: String,
    },
    ReservedLabelName,
    ExpectedEquals {
        found: u8,
    },
    DuplicateLabelName {
        metric: String,
        label: String,
    },
    ExpectedQuote {
        found: u8,
    },
    InvalidLabelValue {
        value: String,
    },
    UnescapedNewline {
        value: String,
    },
    InvalidEscape {
        found: u8,
    },
    InvalidQuantile {
        value: String,
    },
    InvalidBucket {
        value: String,
    },
    UnexpectedEndOfLabelValue {
        value: String,
    },
    InvalidValue {
        token: String,
    },
    InvalidTimestamp {
        token: String,
    },
    SpuriousAfterTimestamp {
        token: String,
    },
    SecondHelp {
        metric: String,
    },
    SecondType {
        metric: String,
    },
    UnknownType {
        token: String,
    },
    InvalidUtf8Help {
        metric: String,
    },
    /// A quoted name that the name scheme does not allow.
    InvalidName {
        name: String,
        utf8_allowed: bool,
    },
    UnescapedNewlineInName,
    MetricNameInsideBraces(&'static str),
    /// The meter refused the memory for the next parsed record.
    OverBudget,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "text format parsing error in line {}: ", self.line)?;
        match &self.kind {
            ErrorKind::UnexpectedEof => f.write_str(
                "unexpected end of input stream (does the last line end with a newline?)",
            ),
            ErrorKind::InvalidMetricName => f.write_str("invalid metric name"),
            ErrorKind::InvalidMetricNameInComment => f.write_str("invalid metric name in comment"),
            ErrorKind::InvalidLabelName { metric } => {
                write!(f, "invalid label name for metric {metric:?}")
            }
            ErrorKind::ReservedLabelName => f.write_str("label name \"__name__\" is reserved"),
            ErrorKind::ExpectedEquals { found } => {
                write!(
                    f,
                    "expected '=' after label name, found {}",
                    show_byte(*found)
                )
            }
            ErrorKind::DuplicateLabelName { metric, label } => {
                write!(f, "duplicate label name {label:?} for metric {metric:?}")
            }
            ErrorKind::ExpectedQuote { found } => {
                write!(
                    f,
                    "expected '\"' at start of label value, found {}",
                    show_byte(*found)
                )
            }
            ErrorKind::InvalidLabelValue { value } => {
                write!(f, "invalid label value {value:?} (not valid UTF-8)")
            }
            ErrorKind::UnescapedNewline { value } => {
                write!(f, "label value {value:?} contains unescaped new-line")
            }
            ErrorKind::InvalidEscape { found } => {
                write!(
                    f,
                    "invalid escape sequence '\\{}'",
                    show_byte(*found).trim_matches('\'')
                )
            }
            ErrorKind::InvalidQuantile { value } => {
                write!(
                    f,
                    "expected float as value for 'quantile' label, got {value:?}"
                )
            }
            ErrorKind::InvalidBucket { value } => {
                write!(f, "expected float as value for 'le' label, got {value:?}")
            }
            ErrorKind::UnexpectedEndOfLabelValue { value } => {
                write!(f, "unexpected end of label value {value:?}")
            }
            ErrorKind::InvalidValue { token } => {
                write!(f, "expected float as value, got {token:?}")
            }
            ErrorKind::InvalidTimestamp { token } => {
                write!(f, "expected integer as timestamp, got {token:?}")
            }
            ErrorKind::SpuriousAfterTimestamp { token } => {
                write!(f, "spurious string after timestamp: {token:?}")
            }
            ErrorKind::SecondHelp { metric } => {
                write!(f, "second HELP line for metric name {metric:?}")
            }
            ErrorKind::SecondType { metric } => write!(
                f,
                "second TYPE line for metric name {metric:?}, or TYPE reported after samples"
            ),
            ErrorKind::UnknownType { token } => write!(f, "unknown metric type {token:?}"),
            ErrorKind::InvalidUtf8Help { metric } => {
                write!(f, "HELP text for metric {metric:?} is not valid UTF-8")
            }
            ErrorKind::InvalidName {
                name,
                utf8_allowed: false,
            } => write!(
                f,
                "invalid name {name:?}: names must match [a-zA-Z_:][a-zA-Z0-9_:]* unless the gateway runs with --push.enable-utf8-names"
            ),
            ErrorKind::InvalidName {
                name,
                utf8_allowed: true,
            } => {
                write!(
                    f,
                    "invalid name {name:?}: a name must be non-empty valid UTF-8"
                )
            }
            ErrorKind::UnescapedNewlineInName => {
                f.write_str("quoted name contains an unescaped new-line")
            }
            ErrorKind::MetricNameInsideBraces(why) => write!(f, "metric name inside braces: {why}"),
            ErrorKind::OverBudget => {
                f.write_str("the parsed body needs more memory than is left for requests in flight")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Renders a byte for an error message: printable ASCII as `'x'`, the rest
/// as an escape, so a message never carries raw control bytes into a log.
fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("'{}'", b.escape_ascii())
    }
}

/// Parses a whole text-format body into metric families.
///
/// Families that end up without any sample (a lone `# HELP` or `# TYPE`) are
/// dropped, as the reference drops them. The families come out in the order
/// their names first appeared.
pub fn parse(input: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    parse_with(input, NameScheme::Legacy)
}

/// Like [`parse`], with the name rules of `scheme`: with
/// `NameScheme::Utf8` (`--push.enable-utf8-names`) quoted names such as
/// `{"my.metric", "label.name"="v"} 1` may hold any UTF-8.
pub fn parse_with(input: &[u8], scheme: NameScheme) -> Result<Vec<MetricFamily>, ParseError> {
    parse_metered(input, scheme, &mut Unmetered)
}

/// Like [`parse_with`], asking `meter` for an upper bound of each record's
/// memory before creating it: a refusal ends the parse with
/// [`ErrorKind::OverBudget`], so a body's parsed form never outgrows what
/// the meter allows.
pub fn parse_metered(
    input: &[u8],
    scheme: NameScheme,
    meter: &mut dyn Meter,
) -> Result<Vec<MetricFamily>, ParseError> {
    let mut p = Parser::new(input, scheme, meter);
    p.run()?;
    Ok(p.finish())
}

/// Parses a float the way Go's `strconv.ParseFloat` does after expfmt has
/// refused `p`, `P` and `_`: decimal notation with optional exponent, or
/// `Inf`/`Infinity` with an optional sign, or `NaN` without one. Out-of-range
/// literals such as `1e400` are errors, not infinities.
pub fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains(['p', 'P', '_']) {
        return None;
    }
    let (sign, rest) = match s.as_bytes()[0] {
        b'+' => (1.0, &s[1..]),
        b'-' => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest.eq_ignore_ascii_case("inf") || rest.eq_ignore_ascii_case("infinity") {
        return Some(sign * f64::INFINITY);
    }
    if rest.eq_ignore_ascii_case("nan") {
        return if rest.len() == s.len() {
            Some(f64::NAN)
        } else {
            None
        };
    }
    // Only the characters of decimal notation: this keeps out everything
    // Rust would accept but Go would not.
    if !rest
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    if v.is_infinite() {
        return None; // Go reports ErrRange for overflow.
    }
    Some(v)
}

/// Where the value of the current sample goes within a summary or histogram.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Plain,
    Count,
    Sum,
}

/// Per-family parse state. Its series are already in their final form,
/// so that finishing the parse copies nothing.
struct FamilyState {
    /// Shared with `by_name` and then the family: one allocation.
    name: Arc<str>,
    help: Option<Box<str>>,
    metric_type: Option<MetricType>,
    metrics: Vec<Metric>,
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    /// The byte most recently read (Go's `currentByte`).
    cur: u8,
    /// Set once a read ran past the end (Go's `err == io.EOF`).
    eof: bool,
    line: usize,
    token: Vec<u8>,
    families: Vec<FamilyState>,
    by_name: HashMap<Arc<str>, usize>,
    /// The series of summaries and histograms seen so far, by family and
    /// labels (sorted, without `quantile`/`le`): their lines are collected
    /// into one series each.
    by_signature: HashMap<(usize, Box<[Label]>), usize>,
    /// Label names as shared strings, each with the number of the label
    /// set that last used it: a name repeated on every line is allocated
    /// once per body, and a name given twice in one label set is found by
    /// one lookup, not a scan of the labels before it (a line may carry a
    /// hundred thousand).
    names: HashMap<Arc<str>, Cell<u64>>,
    /// The number of the current line's label set, for `names`.
    label_set: u64,
    meter: &'a mut dyn Meter,
    // The sample being parsed.
    family: usize,
    part: Part,
    labels: Vec<Label>,
    /// The name of the label whose value is being read.
    label_name: String,
    quantile: Option<f64>,
    bucket: Option<f64>,
    /// Index of the metric the current sample writes to.
    metric: usize,
    scheme: NameScheme,
    /// The line started with `{`: the metric name is the first, quoted
    /// entry inside the braces.
    inside_braces: bool,
    name_in_braces: bool,
}

type Step = Result<State, ParseError>;

/// The states of the reference's state machine; `Done` ends the parse.
#[derive(Clone, Copy)]
enum State {
    StartOfLine,
    StartComment,
    ReadingMetricName,
    ReadingLabels,
    StartLabelName,
    StartLabelValue,
    ReadingValue,
    StartTimestamp,
    ReadingHelp,
    ReadingType,
    Done,
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8], scheme: NameScheme, meter: &'a mut dyn Meter) -> Parser<'a> {
        Parser {
            input,
            pos: 0,
            cur: 0,
            eof: false,
            line: 0,
            token: Vec::new(),
            families: Vec::new(),
            by_name: HashMap::new(),
            by_signature: HashMap::new(),
            names: HashMap::new(),
            label_set: 0,
            meter,
            family: 0,
            part: Part::Plain,
            labels: Vec::new(),
            label_name: String::new(),
            quantile: None,
            bucket: None,
            metric: 0,
            scheme,
            inside_braces: false,
            name_in_braces: false,
        }
    }

    fn run(&mut self) -> Result<(), ParseError> {
        let mut state = State::StartOfLine;
        loop {
            state = match state {
                State::StartOfLine => self.start_of_line(),
                State::StartComment => self.start_comment(),
                State::ReadingMetricName => self.reading_metric_name(),
                State::ReadingLabels => self.reading_labels(),
                State::StartLabelName => self.start_label_name(),
                State::StartLabelValue => self.start_label_value(),
                State::ReadingValue => self.reading_value(),
                State::StartTimestamp => self.start_timestamp(),
                State::ReadingHelp => self.reading_help(),
                State::ReadingType => self.reading_type(),
                State::Done => return Ok(()),
            }?;
        }
    }

    fn finish(mut self) -> Vec<MetricFamily> {
        // The lookups go first, before the families are copied out.
        let families = std::mem::take(&mut self.families);
        drop(self);
        // Into the states' own list (a map of a vector into one of items
        // no larger reuses its allocation), not a second one: made after
        // the lookups are freed, a list of its own came from the heap
        // (glibc raises its mmap threshold as big blocks are freed), the
        // push kept it there as its prepared list, below the stored
        // families, and it left a hole of its size behind (8 MB for
        // 125,000 families).
        families
            .into_iter()
            .filter(|fam| !fam.metrics.is_empty())
            .map(|fam| MetricFamily {
                name: fam.name,
                help: fam.help,
                metric_type: fam.metric_type.unwrap_or(MetricType::Untyped),
                metrics: fam.metrics,
            })
            .collect()
    }

    /// Asks the meter for `bytes` before a record of that size is made.
    fn charge(&mut self, bytes: usize) -> Result<(), ParseError> {
        if self.meter.take(bytes) {
            Ok(())
        } else {
            Err(self.err(ErrorKind::OverBudget))
        }
    }

    /// Forgets the current line's labels: a new label set begins.
    fn clear_labels(&mut self) {
        self.labels.clear();
        self.label_set += 1;
    }

    /// Whether the current line already has a label called `name`.
    fn has_label(&self, name: &str) -> bool {
        self.names
            .get(name)
            .is_some_and(|set| set.get() == self.label_set)
    }

    /// Adds a label to the current line, its name shared with earlier
    /// lines' and marked as used by this one.
    fn push_label(&mut self, name: &str, value: String) -> Result<(), ParseError> {
        self.charge(cost::label(name.len(), value.len()))?;
        let name = match self.names.get_key_value(name) {
            Some((n, set)) => {
                set.set(self.label_set);
                Arc::clone(n)
            }
            None => {
                let n: Arc<str> = name.into();
                self.names.insert(Arc::clone(&n), Cell::new(self.label_set));
                n
            }
        };
        self.labels.push(Label::from_parts(name, value.into()));
        Ok(())
    }

    fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError {
            line: self.line,
            kind,
        }
    }

    fn eof_err(&self) -> ParseError {
        self.err(ErrorKind::UnexpectedEof)
    }

    /// Reads the next byte into `cur`; false at the end of the input.
    fn read(&mut self) -> bool {
        match self.input.get(self.pos) {
            Some(&b) => {
                self.cur = b;
                self.pos += 1;
                true
            }
            None => {
                self.eof = true;
                false
            }
        }
    }

    /// Reads past blanks and tabs; false if the input ended.
    fn skip_blank_tab(&mut self) -> bool {
        loop {
            if !self.read() {
                return false;
            }
            if !is_blank(self.cur) {
                return true;
            }
        }
    }

    fn skip_blank_tab_if_current_blank_tab(&mut self) -> bool {
        if is_blank(self.cur) {
            self.skip_blank_tab()
        } else {
            true
        }
    }

    /// Collects bytes from `cur` up to a blank, tab or newline.
    fn read_token_until_whitespace(&mut self) -> bool {
        self.token.clear();
        while !is_blank(self.cur) && self.cur != b'\n' {
            self.token.push(self.cur);
            if !self.read() {
                return false;
            }
        }
        true
    }

    /// Collects bytes from `cur` to the end of the line, optionally
    /// unescaping `\\` and `\n` (HELP text).
    fn read_token_until_newline(&mut self, escapes: bool) -> Result<bool, ParseError> {
        self.token.clear();
        let mut escaped = false;
        loop {
            if escapes && escaped {
                match self.cur {
                    b'\\' => self.token.push(b'\\'),
                    b'n' => self.token.push(b'\n'),
                    other => return Err(self.err(ErrorKind::InvalidEscape { found: other })),
                }
                escaped = false;
            } else {
                match self.cur {
                    b'\n' => return Ok(true),
                    b'\\' => escaped = true,
                    other => self.token.push(other),
                }
            }
            if !self.read() {
                return Ok(false);
            }
        }
    }

    fn read_token_as_metric_name(&mut self) -> Result<bool, ParseError> {
        self.token.clear();
        if self.cur == b'"' {
            return self.read_quoted_name();
        }
        if !is_metric_name_start(self.cur) {
            return Ok(true);
        }
        loop {
            self.token.push(self.cur);
            if !self.read() {
                return Ok(false);
            }
            if !is_metric_name_continuation(self.cur) {
                return Ok(true);
            }
        }
    }

    fn read_token_as_label_name(&mut self) -> Result<bool, ParseError> {
        self.token.clear();
        if self.cur == b'"' {
            return self.read_quoted_name();
        }
        if !is_label_name_start(self.cur) {
            return Ok(true);
        }
        loop {
            self.token.push(self.cur);
            if !self.read() {
                return Ok(false);
            }
            if !is_label_name_continuation(self.cur) {
                return Ok(true);
            }
        }
    }

    /// A `"quoted"` name, `cur` on the opening quote; leaves `cur` on the
    /// byte after the closing quote.
    fn read_quoted_name(&mut self) -> Result<bool, ParseError> {
        Ok(self.read_quoted(true)? && self.read())
    }

    /// Checks a (possibly quoted) name against the name scheme.
    fn check_name(&self, metric: bool) -> Result<String, ParseError> {
        let name = match std::str::from_utf8(&self.token) {
            Ok(n) => n.to_owned(),
            Err(_) => {
                return Err(self.err(ErrorKind::InvalidName {
                    name: self.token_str(),
                    utf8_allowed: self.scheme == NameScheme::Utf8,
                }));
            }
        };
        let ok = if metric {
            self.scheme.is_valid_metric_name(&name)
        } else {
            self.scheme.is_valid_label_name(&name)
        };
        if !ok {
            return Err(self.err(ErrorKind::InvalidName {
                name,
                utf8_allowed: self.scheme == NameScheme::Utf8,
            }));
        }
        Ok(name)
    }

    /// Reads a quoted label value after its opening quote, unescaping it.
    fn read_token_as_label_value(&mut self) -> Result<bool, ParseError> {
        self.token.clear();
        self.read_quoted(false)
    }

    /// Reads up to the closing quote after an opening one (`cur`),
    /// appending to `token` with `\\`, `\"` and `\n` unescaped. False if
    /// the input ended first.
    fn read_quoted(&mut self, name: bool) -> Result<bool, ParseError> {
        let mut escaped = false;
        loop {
            if !self.read() {
                return Ok(false);
            }
            if escaped {
                match self.cur {
                    b'"' | b'\\' => self.token.push(self.cur),
                    b'n' => self.token.push(b'\n'),
                    other => return Err(self.err(ErrorKind::InvalidEscape { found: other })),
                }
                escaped = false;
                continue;
            }
            match self.cur {
                b'"' => return Ok(true),
                b'\n' if name => return Err(self.err(ErrorKind::UnescapedNewlineInName)),
                b'\n' => {
                    let value = String::from_utf8_lossy(&self.token).into_owned();
                    return Err(self.err(ErrorKind::UnescapedNewline { value }));
                }
                b'\\' => escaped = true,
                other => self.token.push(other),
            }
        }
    }

    /// The token as text. Names are ASCII by construction; values that may
    /// carry other bytes are checked by their callers.
    fn token_str(&self) -> String {
        String::from_utf8_lossy(&self.token).into_owned()
    }

    fn start_of_line(&mut self) -> Step {
        self.line += 1;
        if !self.skip_blank_tab() {
            return Ok(State::Done); // The only clean end of input.
        }
        self.inside_braces = false;
        self.name_in_braces = false;
        match self.cur {
            b'#' => Ok(State::StartComment),
            b'\n' => Ok(State::StartOfLine),
            b'{' => {
                self.inside_braces = true;
                self.clear_labels();
                self.quantile = None;
                self.bucket = None;
                Ok(State::StartLabelName)
            }
            _ => Ok(State::ReadingMetricName),
        }
    }

    fn start_comment(&mut self) -> Step {
        if !self.skip_blank_tab() {
            return Err(self.eof_err());
        }
        if self.cur == b'\n' {
            return Ok(State::StartOfLine);
        }
        if !self.read_token_until_whitespace() {
            return Err(self.eof_err());
        }
        if self.cur == b'\n' {
            return Ok(State::StartOfLine);
        }
        let keyword = self.token.clone();
        if keyword != b"HELP" && keyword != b"TYPE" {
            // A plain comment: skip to the end of the line.
            while self.cur != b'\n' {
                if !self.read() {
                    return Err(self.eof_err());
                }
            }
            return Ok(State::StartOfLine);
        }
        if !self.skip_blank_tab() {
            return Err(self.eof_err());
        }
        if !self.read_token_as_metric_name()? {
            return Err(self.eof_err());
        }
        if self.cur == b'\n' {
            return Ok(State::StartOfLine);
        }
        if !is_blank(self.cur) {
            return Err(self.err(ErrorKind::InvalidMetricNameInComment));
        }
        self.check_name(true)?;
        self.set_or_create_current_family()?;
        if !self.skip_blank_tab() {
            return Err(self.eof_err());
        }
        if self.cur == b'\n' {
            return Ok(State::StartOfLine);
        }
        if keyword == b"HELP" {
            Ok(State::ReadingHelp)
        } else {
            Ok(State::ReadingType)
        }
    }

    fn reading_metric_name(&mut self) -> Step {
        if !self.read_token_as_metric_name()? {
            return Err(self.eof_err());
        }
        if self.token.is_empty() {
            return Err(self.err(ErrorKind::InvalidMetricName));
        }
        self.check_name(true)?;
        self.set_or_create_current_family()?;
        let fam = &mut self.families[self.family];
        if fam.metric_type.is_none() {
            fam.metric_type = Some(MetricType::Untyped);
        }
        self.clear_labels();
        if !self.skip_blank_tab_if_current_blank_tab() {
            return Err(self.eof_err());
        }
        Ok(State::ReadingLabels)
    }

    fn current_type(&self) -> MetricType {
        self.families[self.family]
            .metric_type
            .unwrap_or(MetricType::Untyped)
    }

    fn reading_labels(&mut self) -> Step {
        self.quantile = None;
        self.bucket = None;
        if self.cur != b'{' {
            return Ok(State::ReadingValue);
        }
        Ok(State::StartLabelName)
    }

    fn start_label_name(&mut self) -> Step {
        if !self.skip_blank_tab() {
            return Err(self.eof_err());
        }
        if self.cur == b'}' {
            if self.inside_braces && !self.name_in_braces {
                return Err(self.err(ErrorKind::MetricNameInsideBraces("missing")));
            }
            if !self.skip_blank_tab() {
                return Err(self.eof_err());
            }
            return Ok(State::ReadingValue);
        }
        if !self.read_token_as_label_name()? {
            return Err(self.eof_err());
        }
        if self.token.is_empty() {
            let metric = if self.inside_braces && !self.name_in_braces {
                String::new()
            } else {
                self.families[self.family].name.to_string()
            };
            return Err(self.err(ErrorKind::InvalidLabelName { metric }));
        }
        if !self.skip_blank_tab_if_current_blank_tab() {
            return Err(self.eof_err());
        }
        if self.inside_braces && !self.name_in_braces {
            // The first entry inside braces is the metric name.
            if self.cur == b'=' {
                return Err(self.err(ErrorKind::MetricNameInsideBraces(
                    "the quoted metric name must come first, before any label",
                )));
            }
            self.check_name(true)?;
            self.set_or_create_current_family()?;
            let fam = &mut self.families[self.family];
            if fam.metric_type.is_none() {
                fam.metric_type = Some(MetricType::Untyped);
            }
            self.name_in_braces = true;
            return match self.cur {
                b',' => Ok(State::StartLabelName),
                b'}' => {
                    if !self.skip_blank_tab() {
                        return Err(self.eof_err());
                    }
                    Ok(State::ReadingValue)
                }
                found => Err(self.err(ErrorKind::ExpectedEquals { found })),
            };
        }
        if self.cur != b'=' {
            if self.inside_braces {
                return Err(self.err(ErrorKind::MetricNameInsideBraces(
                    "only one metric name is allowed",
                )));
            }
            return Err(self.err(ErrorKind::ExpectedEquals { found: self.cur }));
        }
        let name = self.check_name(false)?;
        if name == "__name__" {
            return Err(self.err(ErrorKind::ReservedLabelName));
        }
        let t = self.current_type();
        let special = (t == MetricType::Summary && name == "quantile")
            || (t == MetricType::Histogram && name == "le");
        if !special && self.has_label(&name) {
            let metric = self.families[self.family].name.to_string();
            return Err(self.err(ErrorKind::DuplicateLabelName {
                metric,
                label: name,
            }));
        }
        // Remember which label (perhaps a special one) is being read.
        self.label_name = name;
        Ok(State::StartLabelValue)
    }

    fn start_label_value(&mut self) -> Step {
        if !self.skip_blank_tab() {
            return Err(self.eof_err());
        }
        if self.cur != b'"' {
            return Err(self.err(ErrorKind::ExpectedQuote { found: self.cur }));
        }
        if !self.read_token_as_label_value()? {
            return Err(self.eof_err());
        }
        let value = match String::from_utf8(self.token.clone()) {
            Ok(v) => v,
            Err(_) => {
                let value = self.token_str();
                return Err(self.err(ErrorKind::InvalidLabelValue { value }));
            }
        };
        let t = self.current_type();
        let name = &*self.label_name;
        if t == MetricType::Summary && name == "quantile" {
            match parse_go_float(&value) {
                Some(q) => self.quantile = Some(q),
                None => return Err(self.err(ErrorKind::InvalidQuantile { value })),
            }
        } else if t == MetricType::Histogram && name == "le" {
            match parse_go_float(&value) {
                Some(b) => self.bucket = Some(b),
                None => return Err(self.err(ErrorKind::InvalidBucket { value })),
            }
        } else {
            let name = std::mem::take(&mut self.label_name);
            let pushed = self.push_label(&name, value);
            self.label_name = name;
            pushed?;
        }
        if !self.skip_blank_tab() {
            return Err(self.eof_err());
        }
        match self.cur {
            b',' => Ok(State::StartLabelName),
            b'}' => {
                if !self.skip_blank_tab() {
                    return Err(self.eof_err());
                }
                Ok(State::ReadingValue)
            }
            _ => {
                let value = self
                    .labels
                    .last()
                    .map(|l| l.value.to_string())
                    .unwrap_or_default();
                Err(self.err(ErrorKind::UnexpectedEndOfLabelValue { value }))
            }
        }
    }

    /// The series the current line's sample belongs to: a new one, or for
    /// summaries and histograms the one whose other lines had the same
    /// labels (all but quantile/le), collected into one series.
    fn current_series(&mut self) -> Result<usize, ParseError> {
        let t = self.current_type();
        let collected = matches!(t, MetricType::Summary | MetricType::Histogram);
        let mut signature = None;
        if collected {
            let mut labels: Box<[Label]> = self.labels.iter().cloned().collect();
            crate::model::sort_by_name(&mut labels);
            let key = (self.family, labels);
            if let Some(&i) = self.by_signature.get(&key) {
                self.clear_labels();
                return Ok(i);
            }
            signature = Some(key);
        }
        let first = self.families[self.family].metrics.is_empty();
        let slot = if first {
            cost::first_metric()
        } else {
            cost::metric()
        };
        let mut bytes = slot + cost::items(self.labels.len(), 8) + cost::ALLOC;
        if let Some((_, labels)) = &signature {
            bytes += cost::items(labels.len() + 4, 8) + cost::ALLOC;
        }
        bytes += match t {
            MetricType::Summary => cost::summary(),
            MetricType::Histogram => cost::histogram(),
            _ => 0,
        };
        self.charge(bytes)?;
        let labels: Box<[Label]> = self.labels.drain(..).collect();
        self.clear_labels();
        let metrics = &mut self.families[self.family].metrics;
        let i = metrics.len();
        if let Some(key) = signature {
            self.by_signature.insert(key, i);
        }
        super::push_series(metrics, Metric::new(labels, Value::empty(t)));
        Ok(i)
    }

    fn reading_value(&mut self) -> Step {
        self.metric = self.current_series()?;
        if !self.read_token_until_whitespace() {
            return Err(self.eof_err());
        }
        let token = self.token_str();
        let Some(v) = parse_go_float(&token) else {
            return Err(self.err(ErrorKind::InvalidValue { token }));
        };
        let (part, quantile, bucket) = (self.part, self.quantile, self.bucket);
        if part == Part::Plain && (quantile.is_some() || bucket.is_some()) {
            self.charge(cost::items(1, std::mem::size_of::<Bucket>()))?;
        }
        let metric = &mut self.families[self.family].metrics[self.metric];
        match &mut metric.value {
            Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x = v,
            Value::Summary(s) => match part {
                Part::Count => s.count = go_float_to_u64(v),
                Part::Sum => s.sum = v,
                Part::Plain => {
                    if let Some(q) = quantile {
                        s.quantiles.push((q, v));
                    }
                }
            },
            Value::Histogram(h) => match part {
                Part::Count => h.count = go_float_to_u64(v),
                Part::Sum => h.sum = v,
                Part::Plain => {
                    if let Some(b) = bucket {
                        h.buckets.push(Bucket::new(b, go_float_to_u64(v)));
                    }
                }
            },
        }
        if self.cur == b'\n' {
            return Ok(State::StartOfLine);
        }
        Ok(State::StartTimestamp)
    }

    fn start_timestamp(&mut self) -> Step {
        if !self.skip_blank_tab() {
            return Err(self.eof_err());
        }
        if !self.read_token_until_whitespace() {
            return Err(self.eof_err());
        }
        let token = self.token_str();
        let Some(ts) = parse_go_int(&token) else {
            return Err(self.err(ErrorKind::InvalidTimestamp { token }));
        };
        self.charge(cost::extra())?;
        self.families[self.family].metrics[self.metric].extra = Some(Extra::with_timestamp(ts));
        if !self.read_token_until_newline(false)? {
            return Err(self.eof_err());
        }
        if !self.token.is_empty() {
            let token = self.token_str();
            return Err(self.err(ErrorKind::SpuriousAfterTimestamp { token }));
        }
        Ok(State::StartOfLine)
    }

    fn reading_help(&mut self) -> Step {
        if self.families[self.family].help.is_some() {
            let metric = self.families[self.family].name.to_string();
            return Err(self.err(ErrorKind::SecondHelp { metric }));
        }
        if !self.read_token_until_newline(true)? {
            return Err(self.eof_err());
        }
        self.charge(cost::string(self.token.len()))?;
        let help = match String::from_utf8(self.token.clone()) {
            Ok(h) => h,
            Err(_) => {
                let metric = self.families[self.family].name.to_string();
                return Err(self.err(ErrorKind::InvalidUtf8Help { metric }));
            }
        };
        self.families[self.family].help = Some(help.into());
        Ok(State::StartOfLine)
    }

    fn reading_type(&mut self) -> Step {
        if self.families[self.family].metric_type.is_some() {
            let metric = self.families[self.family].name.to_string();
            return Err(self.err(ErrorKind::SecondType { metric }));
        }
        if !self.read_token_until_newline(false)? {
            return Err(self.eof_err());
        }
        let token = self.token_str();
        let Some(t) = MetricType::parse(&token) else {
            return Err(self.err(ErrorKind::UnknownType { token }));
        };
        self.families[self.family].metric_type = Some(t);
        Ok(State::StartOfLine)
    }

    /// Finds the family a name belongs to: itself, or the summary or
    /// histogram it is the `_count`/`_sum`/`_bucket` line of; otherwise
    /// creates a new family for it.
    fn set_or_create_current_family(&mut self) -> Result<(), ParseError> {
        self.part = Part::Plain;
        let name = self.token_str();
        if let Some(&i) = self.by_name.get(name.as_str()) {
            self.family = i;
            return Ok(());
        }
        let is_count = name.len() > 6 && name.ends_with("_count");
        let is_sum = name.len() > 4 && name.ends_with("_sum");
        let is_bucket = name.len() > 7 && name.ends_with("_bucket");
        let part = if is_count {
            Part::Count
        } else if is_sum {
            Part::Sum
        } else {
            Part::Plain
        };
        let summary_name = if is_count {
            &name[..name.len() - 6]
        } else if is_sum {
            &name[..name.len() - 4]
        } else {
            &name[..]
        };
        if let Some(&i) = self.by_name.get(summary_name)
            && self.families[i].metric_type == Some(MetricType::Summary)
        {
            self.family = i;
            self.part = part;
            return Ok(());
        }
        let histogram_name = if is_bucket {
            &name[..name.len() - 7]
        } else {
            summary_name
        };
        if let Some(&i) = self.by_name.get(histogram_name)
            && self.families[i].metric_type == Some(MetricType::Histogram)
        {
            self.family = i;
            self.part = part;
            return Ok(());
        }
        // The state and the map's entry, the name they and then the
        // family share, and the family it becomes.
        let bytes = cost::items(1, std::mem::size_of::<FamilyState>() + 48)
            + cost::string(2 * 8 + name.len())
            + cost::items(1, std::mem::size_of::<MetricFamily>());
        self.charge(bytes)?;
        let name: Arc<str> = name.into();
        self.family = self.families.len();
        self.by_name.insert(Arc::clone(&name), self.family);
        self.families.push(FamilyState {
            name,
            help: None,
            metric_type: None,
            metrics: Vec::new(),
        });
        Ok(())
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_label_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_label_name_continuation(b: u8) -> bool {
    is_label_name_start(b) || b.is_ascii_digit()
}

fn is_metric_name_start(b: u8) -> bool {
    is_label_name_start(b) || b == b':'
}

fn is_metric_name_continuation(b: u8) -> bool {
    is_label_name_continuation(b) || b == b':'
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits only.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `uint64(f)` on amd64, which the reference applies to summary and
/// histogram counts. In range it truncates; out of range it yields the
/// bit patterns the hardware conversion produces, which we reproduce so
/// that a negative or NaN count is exposed exactly as the reference exposes it.
pub fn go_float_to_u64(f: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    const INDEFINITE: u64 = 1 << 63;
    if f < TWO63 {
        // CVTTSD2SQ: in-range values truncate, everything else (including
        // NaN, which fails the comparison below) is the "integer indefinite".
        if f > -TWO63 - 1.0 {
            (f as i64) as u64
        } else {
            INDEFINITE
        }
    } else {
        let y = f - TWO63;
        let low = if y < TWO63 {
            y as i64 as u64
        } else {
            INDEFINITE
        };
        low | INDEFINITE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Histogram, Summary};

    fn ok(s: &str) -> Vec<MetricFamily> {
        match parse(s.as_bytes()) {
            Ok(f) => f,
            Err(e) => panic!("{s:?} should parse, got {e}"),
        }
    }

    fn fails(s: &str) -> ParseError {
        match parse(s.as_bytes()) {
            Ok(f) => panic!("{s:?} should fail, parsed {f:?}"),
            Err(e) => e,
        }
    }

    fn labels(m: &Metric) -> Vec<(String, String)> {
        m.labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }

    #[test]
    fn tutorial_bodies() {
        let f = ok("second_metric 99\n");
        assert_eq!(f.len(), 1);
        assert_eq!(&*f[0].name, "second_metric");
        assert_eq!(f[0].metric_type, MetricType::Untyped);
        assert_eq!(f[0].metrics[0].value, Value::Untyped(99.0));

        let f = ok(
            "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n\
                    # TYPE another_metric gauge\n# HELP another_metric Just an example.\n\
                    another_metric 2398.283\n",
        );
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].metric_type, MetricType::Counter);
        assert_eq!(
            labels(&f[0].metrics[0]),
            vec![("label".into(), "val1".into())]
        );
        assert_eq!(f[0].metrics[0].value, Value::Counter(42.0));
        assert_eq!(f[1].help.as_deref(), Some("Just an example."));
        assert_eq!(f[1].metrics[0].value, Value::Gauge(2398.283));
    }

    #[test]
    fn summary_lines_are_collected_into_one_series() {
        let f = ok("# TYPE rpc summary\n\
                    rpc{service=\"a\",quantile=\"0.5\"} 1\n\
                    rpc{service=\"a\",quantile=\"0.9\"} 2\n\
                    rpc_sum{service=\"a\"} 10\n\
                    rpc_count{service=\"a\"} 5\n\
                    rpc{quantile=\"0.5\",service=\"b\"} 3\n");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].metrics.len(), 2);
        assert_eq!(
            f[0].metrics[0].value,
            Value::Summary(Box::new(Summary {
                count: 5,
                sum: 10.0,
                quantiles: vec![(0.5, 1.0), (0.9, 2.0)],
            }))
        );
        assert_eq!(
            labels(&f[0].metrics[1]),
            vec![("service".into(), "b".into())]
        );
    }

    #[test]
    fn histogram_lines_are_collected_into_one_series() {
        let f = ok("# HELP h Latency.\n# TYPE h histogram\n\
                    h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 1.5\nh_count 3\n");
        assert_eq!(
            f[0].metrics[0].value,
            Value::Histogram(Box::new(Histogram {
                count: 3,
                sum: 1.5,
                buckets: vec![Bucket::new(0.1, 1), Bucket::new(f64::INFINITY, 3)],
                ..Histogram::default()
            }))
        );
    }

    #[test]
    fn count_of_an_untyped_family_is_its_own_family() {
        let f = ok("x 1\nx_count 2\n");
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn escapes_in_label_values_and_help() {
        let f = ok("# HELP m a\\\\b\\nc\nm{l=\"q\\\"b\\\\s\\nn\"} 1\n");
        assert_eq!(f[0].help.as_deref(), Some("a\\b\nc"));
        assert_eq!(labels(&f[0].metrics[0])[0].1, "q\"b\\s\nn");
    }

    #[test]
    fn blanks_tabs_comments_and_empty_lines() {
        let f = ok("\n  # just a comment\n\t m \t{ a = \"1\" , b=\"2\" } \t 3\n#\n\n");
        assert_eq!(labels(&f[0].metrics[0]).len(), 2);
        assert_eq!(f[0].metrics[0].value, Value::Untyped(3.0));
        assert!(ok("").is_empty());
        assert!(ok("# TYPE lonely counter\n").is_empty());
    }

    #[test]
    fn special_floats() {
        let f = ok("a +Inf\nb -Inf\nc NaN\nd -0\ne 1e-7\nf inf\n");
        let v: Vec<f64> = f
            .iter()
            .map(|f| match f.metrics[0].value {
                Value::Untyped(x) => x,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(v[0], f64::INFINITY);
        assert_eq!(v[1], f64::NEG_INFINITY);
        assert!(v[2].is_nan());
        assert!(v[3] == 0.0 && v[3].is_sign_negative());
        assert_eq!(v[4], 1e-7);
        assert_eq!(v[5], f64::INFINITY);
    }

    #[test]
    fn go_float_rules() {
        assert_eq!(parse_go_float("1e400"), None);
        assert_eq!(parse_go_float("0x1p3"), None);
        assert_eq!(parse_go_float("1_000"), None);
        assert_eq!(parse_go_float("+NaN"), None);
        assert_eq!(parse_go_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_go_float(".5"), Some(0.5));
        assert_eq!(parse_go_float("5."), Some(5.0));
        assert_eq!(parse_go_float(""), None);
        assert_eq!(parse_go_float("1e"), None);
    }

    #[test]
    fn timestamps_are_kept_for_the_store_to_reject() {
        let f = ok("m 1 1700000000000\n");
        assert_eq!(f[0].metrics[0].timestamp_ms(), Some(1_700_000_000_000));
    }

    #[test]
    fn errors_carry_line_numbers() {
        let e = fails("a 1\nb 2\nc{ 3\n");
        assert_eq!(e.line, 3);
        assert!(
            matches!(e.kind, ErrorKind::InvalidLabelName { .. }),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("text format parsing error in line 3:")
        );
    }

    #[test]
    fn error_cases_of_the_reference() {
        use ErrorKind::*;
        type Check = fn(&ErrorKind) -> bool;
        let cases: &[(&str, Check)] = &[
            ("m 1", |k| matches!(k, UnexpectedEof)),
            ("# HELP m x", |k| matches!(k, UnexpectedEof)),
            ("1m 1\n", |k| matches!(k, InvalidMetricName)),
            ("# TYPE 1m counter\n", |k| {
                matches!(k, InvalidMetricNameInComment)
            }),
            ("m{__name__=\"x\"} 1\n", |k| matches!(k, ReservedLabelName)),
            ("m{a 1\n", |k| matches!(k, ExpectedEquals { .. })),
            ("m{a=\"1\",a=\"2\"} 1\n", |k| {
                matches!(k, DuplicateLabelName { .. })
            }),
            ("m{a=1} 1\n", |k| matches!(k, ExpectedQuote { .. })),
            ("m{a=\"x\ny\"} 1\n", |k| {
                matches!(k, UnescapedNewline { .. })
            }),
            ("m{a=\"\\t\"} 1\n", |k| {
                matches!(k, InvalidEscape { found: b't' })
            }),
            ("# HELP m bad \\t\n", |k| matches!(k, InvalidEscape { .. })),
            ("m{a=\"1\" b=\"2\"} 1\n", |k| {
                matches!(k, UnexpectedEndOfLabelValue { .. })
            }),
            ("m one\n", |k| matches!(k, InvalidValue { .. })),
            ("m\n", |k| matches!(k, InvalidValue { .. })),
            ("m 1 \n", |k| matches!(k, InvalidTimestamp { .. })),
            ("m 1 12x\n", |k| matches!(k, InvalidTimestamp { .. })),
            ("m 1 12 x\n", |k| matches!(k, SpuriousAfterTimestamp { .. })),
            ("# HELP m a\n# HELP m b\n", |k| {
                matches!(k, SecondHelp { .. })
            }),
            ("m 1\n# TYPE m counter\n", |k| {
                matches!(k, SecondType { .. })
            }),
            ("# TYPE m counters\n", |k| matches!(k, UnknownType { .. })),
            ("# TYPE m counter \n", |k| matches!(k, UnknownType { .. })),
            ("# TYPE s summary\ns{quantile=\"x\"} 1\n", |k| {
                matches!(k, InvalidQuantile { .. })
            }),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", |k| {
                matches!(k, InvalidBucket { .. })
            }),
        ];
        for (body, check) in cases {
            let e = fails(body);
            assert!(check(&e.kind), "{body:?} gave {e:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let e = parse(b"m{a=\"\xff\"} 1\n").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidLabelValue { .. }));
        let e = parse(b"# HELP m \xff\nm 1\n").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidUtf8Help { .. }));
    }

    #[test]
    fn float_to_u64_matches_go_on_amd64() {
        assert_eq!(go_float_to_u64(5.9), 5);
        assert_eq!(go_float_to_u64(-1.0), u64::MAX);
        assert_eq!(go_float_to_u64(f64::NAN), 1 << 63);
        assert_eq!(go_float_to_u64(f64::INFINITY), 1 << 63);
        assert_eq!(go_float_to_u64(1e19), 10_000_000_000_000_000_000);
    }

    /// A meter allowing `limit` bytes in all, and what it was asked for.
    fn allowing(limit: usize) -> impl FnMut(usize) -> bool {
        let mut used = 0;
        move |n| {
            used += n;
            used <= limit
        }
    }

    #[test]
    fn a_refusing_meter_stops_the_parse_midway() {
        let body: String = (0..1000).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
        let mut total = 0;
        parse_metered(body.as_bytes(), NameScheme::Legacy, &mut |n| {
            total += n;
            true
        })
        .unwrap();
        assert!(total >= 1000 * std::mem::size_of::<Metric>(), "{total}");
        let e = parse_metered(
            body.as_bytes(),
            NameScheme::Legacy,
            &mut allowing(total / 2),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::OverBudget);
        assert!(
            (400..=600).contains(&e.line),
            "refused about half-way, not at the end: line {}",
            e.line
        );
        assert!(e.to_string().contains("memory"), "{e}");
        assert!(parse_metered(body.as_bytes(), NameScheme::Legacy, &mut allowing(total)).is_ok());
    }

    /// Many labels on a line, and a duplicate after many: found by the set.
    #[test]
    fn duplicate_labels_on_long_lines() {
        let labels: Vec<String> = (0..100).map(|i| format!("l{i}=\"v\"")).collect();
        let line = format!("m{{{}}} 1\n", labels.join(","));
        assert_eq!(ok(&line)[0].metrics[0].labels.len(), 100);
        let dup = format!("m{{{},l57=\"w\"}} 1\n", labels.join(","));
        assert!(matches!(
            fails(&dup).kind,
            ErrorKind::DuplicateLabelName { ref label, .. } if label == "l57"
        ));
        // Per line: the next line may use the same names.
        let two = format!("{line}{}", line.replace("m{", "n{"));
        assert_eq!(ok(&two).len(), 2);
    }
}
