//! Parser for OpenMetrics 1.0 text pushes
//! (`Content-Type: application/openmetrics-text; version=1.0.0`).
//!
//! The reference reads every push body that is not delimited protobuf as
//! text 0.0.4, which refuses most OpenMetrics bodies (`# EOF`, `# UNIT`,
//! exemplars). This gateway reads them strictly by the specification
//! (<https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md>):
//! the spec says a partial or invalid exposition is erroneous in its
//! entirety, so every rule it states is checked and any violation refuses
//! the whole push with the line and the rule, before anything is stored.
//!
//! # How OpenMetrics types become the gateway's
//!
//! The store keeps client_model's families, which Prometheus scrapes as
//! text 0.0.4 or protobuf; each OpenMetrics family is mapped to what
//! Prometheus itself ingests from it (its OpenMetrics parser names the
//! series by their sample names) and what prometheus_client writes for it
//! in the 0.0.4 format, so a scrape of the gateway shows the same series
//! as a direct scrape of the pusher would:
//!
//! | OpenMetrics `foo`        | stored family                                    |
//! |--------------------------|--------------------------------------------------|
//! | counter                  | counter `foo_total`; `foo_created` as its created timestamp |
//! | gauge                    | gauge `foo`                                      |
//! | summary                  | summary `foo`; `foo_created` as created          |
//! | histogram                | histogram `foo`; `foo_created` as created        |
//! | gaugehistogram           | gauge histogram `foo` (`_gcount`, `_gsum` as count and sum) |
//! | info                     | gauge `foo_info`, value 1                        |
//! | stateset                 | gauge `foo`, one series per state (`foo="state"`), 0 or 1 |
//! | unknown (or no `# TYPE`) | untyped `foo`                                    |
//!
//! Exemplars of counter totals and histogram buckets and created
//! timestamps go into [`Extra`] as protobuf pushes put them, so protobuf
//! scrapes and the snapshot keep them. `# UNIT` is checked and dropped:
//! client_model's unit field is not kept by the store. OpenMetrics 1.0
//! has no quoted names, so UTF-8 names (`--push.enable-utf8-names`) need
//! the text 0.0.4 or protobuf formats.
//!
//! Sample timestamps are kept only so that the push is refused with the
//! error every other format gets ("pushed metrics must not have
//! timestamps"). As a series then has one MetricPoint, a sample given
//! twice for one series is an error here.
//!
//! The parser is a pure function over bytes, near linear in any input
//! shape: names, series and suffixes already seen are found by hashing.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use super::{Meter, Unmetered, cost};
use crate::model::{
    Bucket, Exemplar, Extra, Label, Metric, MetricFamily, MetricType, Timestamp, Value,
};

/// The media type of OpenMetrics text.
pub const MEDIA_TYPE: &str = "application/openmetrics-text";

/// The `version` parameters read as OpenMetrics 1.0: 1.0.0, and 0.0.1,
/// the version number Prometheus and the clients used for the same format
/// before 1.0 was published.
pub const VERSIONS: [&str; 2] = ["1.0.0", "0.0.1"];

/// The longest exemplar label set, in UTF-8 characters of names and values.
const EXEMPLAR_MAX_CHARS: usize = 128;

/// A body OpenMetrics 1.0 does not allow, with the 1-based line it was
/// found on.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ErrorKind {
    /// The body ended without its `# EOF` line.
    MissingEof,
    AfterEof,
    NotUtf8,
    EmptyLine,
    CarriageReturn,
    /// A `#` line that is not `# TYPE`, `# HELP`, `# UNIT` or `# EOF`.
    InvalidComment,
    /// The grammar wanted `expected` where `found` stands.
    Syntax {
        expected: &'static str,
        found: String,
    },
    /// A metric or label name starting with `_`, which the spec reserves.
    ReservedName {
        name: String,
    },
    UnknownType {
        token: String,
    },
    SecondMetadata {
        keyword: &'static str,
        family: String,
    },
    MetadataAfterSamples {
        keyword: &'static str,
        family: String,
    },
    UnitNotSuffix {
        unit: String,
        family: String,
    },
    UnitNotAllowed {
        family: String,
        family_type: &'static str,
    },
    /// A family given again after another one began.
    FamilyAgain {
        family: String,
    },
    /// Two families whose sample names could be the same.
    NameClash {
        family: String,
        name: String,
        other: String,
    },
    /// A sample named like its family but without a suffix its type has.
    WrongSuffix {
        sample: String,
        family: String,
        family_type: &'static str,
    },
    /// A series given again after another series of its family began.
    SeriesAgain {
        family: String,
        labels: String,
    },
    RepeatedSample {
        sample: String,
    },
    DuplicateLabel {
        label: String,
    },
    /// `le` or `quantile` where the type does not allow it.
    LabelNotAllowed {
        label: &'static str,
        sample: String,
    },
    MissingLabel {
        label: String,
        sample: String,
    },
    InvalidLabelNumber {
        label: &'static str,
        value: String,
        why: &'static str,
    },
    InvalidNumber {
        token: String,
    },
    InvalidTimestamp {
        token: String,
    },
    /// A value the type's rules refuse.
    InvalidValue {
        sample: String,
        why: &'static str,
    },
    BucketsOutOfOrder {
        sample: String,
    },
    BucketsNotCumulative {
        sample: String,
    },
    /// A series that lacks or mismatches parts its type requires.
    IncompleteSeries {
        family: String,
        why: &'static str,
    },
    ExemplarNotAllowed {
        sample: String,
    },
    ExemplarTooLong {
        chars: usize,
    },
    ExemplarOutsideBucket {
        sample: String,
    },
    /// The meter refused the memory for the next parsed record.
    OverBudget,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenMetrics parsing error in line {}: ", self.line)?;
        self.kind.fmt(f)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
        match self {
            MissingEof => f.write_str("the body does not end with the line \"# EOF\""),
            AfterEof => f.write_str("nothing may follow \"# EOF\" but one line feed"),
            NotUtf8 => f.write_str("the line is not valid UTF-8"),
            EmptyLine => f.write_str("empty line"),
            CarriageReturn => f.write_str("lines end with a line feed alone, not CR LF"),
            InvalidComment => f.write_str(
                "a line starting with '#' must be \"# TYPE\", \"# HELP\", \"# UNIT\" or \"# EOF\"",
            ),
            Syntax { expected, found } => write!(f, "expected {expected}, found {found}"),
            ReservedName { name } => write!(
                f,
                "name {name:?} starts with an underscore, which OpenMetrics reserves"
            ),
            UnknownType { token } => write!(f, "unknown metric type {token:?}"),
            SecondMetadata { keyword, family } => {
                write!(f, "second {keyword} line for metric family {family:?}")
            }
            MetadataAfterSamples { keyword, family } => write!(
                f,
                "{keyword} line for metric family {family:?} after its samples"
            ),
            UnitNotSuffix { unit, family } => write!(
                f,
                "unit {unit:?} is not a suffix of the metric family name {family:?} (it must end in \"_{unit}\")"
            ),
            UnitNotAllowed {
                family,
                family_type,
            } => write!(
                f,
                "metric family {family:?} is a {family_type}, which must not have a unit"
            ),
            FamilyAgain { family } => write!(
                f,
                "metric family {family:?} appears again after another family (families must not be interleaved)"
            ),
            NameClash {
                family,
                name,
                other,
            } => write!(
                f,
                "metric family {family:?} may have samples named {name:?}, as does metric family {other:?}"
            ),
            WrongSuffix {
                sample,
                family,
                family_type,
            } => write!(
                f,
                "sample {sample:?} is not a sample name of the {family_type} {family:?}"
            ),
            SeriesAgain { family, labels } => write!(
                f,
                "series {labels} of metric family {family:?} appears again after another series (series must not be interleaved)"
            ),
            RepeatedSample { sample } => write!(
                f,
                "sample {sample:?} is given twice for one series (a push carries one point per series)"
            ),
            DuplicateLabel { label } => write!(f, "duplicate label name {label:?}"),
            LabelNotAllowed { label, sample } => {
                write!(f, "sample {sample:?} must not have a {label:?} label")
            }
            MissingLabel { label, sample } => {
                write!(f, "sample {sample:?} lacks its {label:?} label")
            }
            InvalidLabelNumber { label, value, why } => {
                write!(f, "label {label}={value:?}: {why}")
            }
            InvalidNumber { token } => write!(f, "invalid number {token:?}"),
            InvalidTimestamp { token } => write!(f, "invalid timestamp {token:?}"),
            InvalidValue { sample, why } => write!(f, "sample {sample:?}: {why}"),
            BucketsOutOfOrder { sample } => write!(
                f,
                "sample {sample:?}: buckets must be in increasing order of \"le\", each once"
            ),
            BucketsNotCumulative { sample } => write!(
                f,
                "sample {sample:?}: a bucket's count is less than the previous bucket's"
            ),
            IncompleteSeries { family, why } => {
                write!(f, "a series of metric family {family:?} {why}")
            }
            ExemplarNotAllowed { sample } => write!(
                f,
                "sample {sample:?} cannot have an exemplar (only counter totals and histogram buckets can)"
            ),
            ExemplarTooLong { chars } => write!(
                f,
                "the exemplar's labels have {chars} characters, more than {EXEMPLAR_MAX_CHARS}"
            ),
            ExemplarOutsideBucket { sample } => {
                write!(
                    f,
                    "sample {sample:?}: the exemplar's value is above the bucket's \"le\""
                )
            }
            OverBudget => {
                f.write_str("the parsed body needs more memory than is left for requests in flight")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole OpenMetrics 1.0 body into metric families, in the order
/// the families appear; families without samples are dropped.
pub fn parse(input: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    parse_metered(input, &mut Unmetered)
}

/// Like [`parse`], asking `meter` for an upper bound of each record's
/// memory before creating it: a refusal ends the parse with
/// [`ErrorKind::OverBudget`].
pub fn parse_metered(input: &[u8], meter: &mut dyn Meter) -> Result<Vec<MetricFamily>, ParseError> {
    let mut p = Parser::new(meter);
    let mut pos = 0;
    while pos < input.len() {
        p.line += 1;
        let (line, next) = match input[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (&input[pos..pos + i], pos + i + 1),
            None => (&input[pos..], input.len()),
        };
        if line == b"# EOF" {
            if next < input.len() {
                p.line += 1;
                return Err(p.err(ErrorKind::AfterEof));
            }
            return p.finish();
        }
        if next == input.len() && input.last() != Some(&b'\n') {
            // The last line, not "# EOF".
            return Err(p.err(ErrorKind::MissingEof));
        }
        p.parse_line(line)?;
        pos = next;
    }
    // Where "# EOF" should have been.
    p.line += 1;
    Err(p.err(ErrorKind::MissingEof))
}

/// The eight OpenMetrics types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OmType {
    Counter,
    Gauge,
    StateSet,
    Info,
    Histogram,
    GaugeHistogram,
    Summary,
    Unknown,
}

/// What a sample is to its series, told by its name's suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// A gauge's, stateset's, info's or unknown's single value.
    Value,
    Total,
    Created,
    Count,
    Sum,
    Bucket,
    Quantile,
}

impl OmType {
    fn parse(s: &str) -> Option<OmType> {
        Some(match s {
            "counter" => OmType::Counter,
            "gauge" => OmType::Gauge,
            "stateset" => OmType::StateSet,
            "info" => OmType::Info,
            "histogram" => OmType::Histogram,
            "gaugehistogram" => OmType::GaugeHistogram,
            "summary" => OmType::Summary,
            "unknown" => OmType::Unknown,
            _ => return None,
        })
    }

    fn keyword(self) -> &'static str {
        match self {
            OmType::Counter => "counter",
            OmType::Gauge => "gauge",
            OmType::StateSet => "stateset",
            OmType::Info => "info",
            OmType::Histogram => "histogram",
            OmType::GaugeHistogram => "gaugehistogram",
            OmType::Summary => "summary",
            OmType::Unknown => "unknown",
        }
    }

    /// The suffixes of its samples' names, and what each sample is.
    fn suffixes(self) -> &'static [(&'static str, Part)] {
        match self {
            OmType::Counter => &[("_total", Part::Total), ("_created", Part::Created)],
            OmType::Gauge | OmType::StateSet | OmType::Unknown => &[("", Part::Value)],
            OmType::Info => &[("_info", Part::Value)],
            OmType::Summary => &[
                ("", Part::Quantile),
                ("_count", Part::Count),
                ("_sum", Part::Sum),
                ("_created", Part::Created),
            ],
            OmType::Histogram => &[
                ("_bucket", Part::Bucket),
                ("_count", Part::Count),
                ("_sum", Part::Sum),
                ("_created", Part::Created),
            ],
            OmType::GaugeHistogram => &[
                ("_bucket", Part::Bucket),
                ("_gcount", Part::Count),
                ("_gsum", Part::Sum),
            ],
        }
    }

    /// The stored type, and the suffix the stored family's name gets (see
    /// the module's table).
    fn stored(self) -> (MetricType, &'static str) {
        match self {
            OmType::Counter => (MetricType::Counter, "_total"),
            OmType::Gauge | OmType::StateSet => (MetricType::Gauge, ""),
            OmType::Info => (MetricType::Gauge, "_info"),
            OmType::Histogram => (MetricType::Histogram, ""),
            OmType::GaugeHistogram => (MetricType::GaugeHistogram, ""),
            OmType::Summary => (MetricType::Summary, ""),
            OmType::Unknown => (MetricType::Untyped, ""),
        }
    }

    fn is_histogram(self) -> bool {
        matches!(self, OmType::Histogram | OmType::GaugeHistogram)
    }
}

/// The family being read.
struct Family {
    name: String,
    /// Its ordinal in the body, for the keys of `Parser::series_seen`.
    ordinal: usize,
    om_type: Option<OmType>,
    help: Option<String>,
    seen_type: bool,
    seen_help: bool,
    seen_unit: bool,
    /// A non-empty UNIT was given: infos and statesets must not have one.
    unit_nonempty: bool,
    /// A sample was read: metadata may no longer come.
    sampled: bool,
    /// Its sample names are registered in `Parser::sample_names`.
    sealed: bool,
    metrics: Vec<Metric>,
}

impl Family {
    fn om_type(&self) -> OmType {
        self.om_type.unwrap_or(OmType::Unknown)
    }

    /// What a sample called `sample` is to this family, if it is one of
    /// its samples.
    fn part_of(&self, sample: &str) -> Option<Part> {
        let rest = sample.strip_prefix(self.name.as_str())?;
        self.om_type()
            .suffixes()
            .iter()
            .find(|(suffix, _)| rest == *suffix)
            .map(|&(_, part)| part)
    }
}

/// The series being read: its samples are collected into one record.
struct Series {
    /// Its labels without `le` and `quantile`, sorted by name.
    labels: Box<[Label]>,
    value: Value,
    extra: Extra,
    /// The line of its latest sample, where a check of the whole series
    /// points.
    line: usize,
    has_value: bool,
    has_created: bool,
    has_count: bool,
    has_sum: bool,
    /// The histogram's +Inf bucket count, or the summary's count.
    inf_count: Option<u64>,
    count: Option<u64>,
    negative_bucket: bool,
    /// The quantiles given so far, as bit patterns.
    quantiles: HashSet<u64>,
}

/// One sample line as read, for [`Parser::apply`].
struct Sample<'a> {
    name: &'a str,
    t: OmType,
    part: Part,
    value: f64,
    /// The value as written.
    token: &'a str,
    exemplar: Option<Exemplar>,
}

/// The special labels of one line, kept apart from the series' labels.
#[derive(Default)]
struct LineLabels {
    le: Option<f64>,
    quantile: Option<f64>,
}

struct Parser<'m> {
    line: usize,
    meter: &'m mut dyn Meter,
    out: Vec<MetricFamily>,
    family: Option<Family>,
    series: Option<Series>,
    families: usize,
    /// The names of every family so far.
    family_names: HashSet<Box<str>>,
    /// Every sample name a family so far may use, and the family's name
    /// (spec: no two families may produce the same sample name).
    sample_names: HashMap<Box<str>, Box<str>>,
    /// Every series so far, by family ordinal and labels.
    series_seen: HashSet<(usize, Box<[Label]>)>,
    /// Label names as shared strings, each with the number of the label
    /// set that last used it: a duplicate is found by one lookup.
    names: HashMap<Arc<str>, Cell<u64>>,
    label_set: u64,
    /// The current line's labels.
    labels: Vec<Label>,
}

impl<'m> Parser<'m> {
    fn new(meter: &'m mut dyn Meter) -> Parser<'m> {
        Parser {
            line: 0,
            meter,
            out: Vec::new(),
            family: None,
            series: None,
            families: 0,
            family_names: HashSet::new(),
            sample_names: HashMap::new(),
            series_seen: HashSet::new(),
            names: HashMap::new(),
            label_set: 0,
            labels: Vec::new(),
        }
    }

    fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError {
            line: self.line,
            kind,
        }
    }

    fn charge(&mut self, bytes: usize) -> Result<(), ParseError> {
        if self.meter.take(bytes) {
            Ok(())
        } else {
            Err(self.err(ErrorKind::OverBudget))
        }
    }

    fn finish(mut self) -> Result<Vec<MetricFamily>, ParseError> {
        self.close_family()?;
        Ok(self.out)
    }

    fn parse_line(&mut self, bytes: &[u8]) -> Result<(), ParseError> {
        let Ok(line) = std::str::from_utf8(bytes) else {
            return Err(self.err(ErrorKind::NotUtf8));
        };
        if line.is_empty() {
            return Err(self.err(ErrorKind::EmptyLine));
        }
        if line.ends_with('\r') {
            return Err(self.err(ErrorKind::CarriageReturn));
        }
        if line.starts_with('#') {
            self.metadata(line)
        } else {
            self.sample(line)
        }
    }

    // ---- metadata ---------------------------------------------------------

    fn metadata(&mut self, line: &str) -> Result<(), ParseError> {
        let (keyword, rest) = match line.get(..7) {
            Some("# TYPE ") => ("TYPE", &line[7..]),
            Some("# HELP ") => ("HELP", &line[7..]),
            Some("# UNIT ") => ("UNIT", &line[7..]),
            _ => return Err(self.err(ErrorKind::InvalidComment)),
        };
        let mut c = Cursor::new(rest);
        let name = self.metric_name(&mut c)?;
        self.expect(&mut c, b' ', "a space after the metric family name")?;
        let text = c.rest();
        self.family_for_metadata(name, keyword)?;
        match keyword {
            "TYPE" => self.type_line(text),
            "HELP" => self.help_line(text),
            _ => self.unit_line(text),
        }
    }

    /// Makes `name` the current family for a metadata line: the current
    /// one if it is that family and has no samples yet, else a new one.
    fn family_for_metadata(&mut self, name: &str, keyword: &'static str) -> Result<(), ParseError> {
        if let Some(f) = &self.family
            && f.name == name
        {
            let kind = if f.sampled {
                ErrorKind::MetadataAfterSamples {
                    keyword,
                    family: name.into(),
                }
            } else if match keyword {
                "TYPE" => f.seen_type,
                "HELP" => f.seen_help,
                _ => f.seen_unit,
            } {
                ErrorKind::SecondMetadata {
                    keyword,
                    family: name.into(),
                }
            } else {
                return Ok(());
            };
            return Err(self.err(kind));
        }
        self.start_family(name)
    }

    fn type_line(&mut self, text: &str) -> Result<(), ParseError> {
        let Some(t) = OmType::parse(text) else {
            return Err(self.err(ErrorKind::UnknownType { token: text.into() }));
        };
        let f = self
            .family
            .as_mut()
            .expect("a metadata line has its family");
        f.seen_type = true;
        f.om_type = Some(t);
        if f.unit_nonempty {
            return self.check_unit_allowed();
        }
        Ok(())
    }

    fn help_line(&mut self, text: &str) -> Result<(), ParseError> {
        let help = self.unescape(text, false)?.0;
        self.charge(cost::string(help.len()))?;
        let f = self
            .family
            .as_mut()
            .expect("a metadata line has its family");
        f.seen_help = true;
        // An empty HELP is as if there were none (spec).
        f.help = (!help.is_empty()).then_some(help);
        Ok(())
    }

    fn unit_line(&mut self, unit: &str) -> Result<(), ParseError> {
        if let Some(i) = unit.bytes().position(|b| !is_name_char(b)) {
            let found = describe(&unit[i..]);
            return Err(self.err(ErrorKind::Syntax {
                expected: "a unit of the characters of metric names",
                found,
            }));
        }
        let f = self
            .family
            .as_mut()
            .expect("a metadata line has its family");
        f.seen_unit = true;
        if unit.is_empty() {
            // As if there were no UNIT line (spec).
            return Ok(());
        }
        f.unit_nonempty = true;
        let suffixed = f
            .name
            .strip_suffix(unit)
            .is_some_and(|head| head.ends_with('_'));
        if !suffixed {
            let family = f.name.clone();
            return Err(self.err(ErrorKind::UnitNotSuffix {
                unit: unit.into(),
                family,
            }));
        }
        self.check_unit_allowed()
    }

    /// Infos and statesets must have an empty unit.
    fn check_unit_allowed(&self) -> Result<(), ParseError> {
        let f = self
            .family
            .as_ref()
            .expect("a metadata line has its family");
        match f.om_type() {
            t @ (OmType::Info | OmType::StateSet) => Err(self.err(ErrorKind::UnitNotAllowed {
                family: f.name.clone(),
                family_type: t.keyword(),
            })),
            _ => Ok(()),
        }
    }

    // ---- families ---------------------------------------------------------

    /// Closes the current family and begins `name`, of unknown type until
    /// a TYPE line says otherwise.
    fn start_family(&mut self, name: &str) -> Result<(), ParseError> {
        self.close_family()?;
        if self.family_names.contains(name) {
            return Err(self.err(ErrorKind::FamilyAgain {
                family: name.into(),
            }));
        }
        self.charge(
            cost::items(1, std::mem::size_of::<Family>())
                + 2 * cost::string(name.len())
                + cost::items(1, 16),
        )?;
        self.family_names.insert(name.into());
        self.family = Some(Family {
            name: name.into(),
            ordinal: self.families,
            om_type: None,
            help: None,
            seen_type: false,
            seen_help: false,
            seen_unit: false,
            unit_nonempty: false,
            sampled: false,
            sealed: false,
            metrics: Vec::new(),
        });
        self.families += 1;
        Ok(())
    }

    /// Registers the current family's sample names, its type now final:
    /// one of them used by an earlier family is an error.
    fn seal(&mut self) -> Result<(), ParseError> {
        let Some(f) = &self.family else {
            return Ok(());
        };
        if f.sealed {
            return Ok(());
        }
        let name = f.name.clone();
        let suffixes = f.om_type().suffixes();
        let n = suffixes.len() + 1;
        self.charge(cost::items(n, 32) + n * 2 * cost::string(name.len() + 8))?;
        let names = std::iter::once("").chain(suffixes.iter().map(|(s, _)| *s));
        for suffix in names {
            let sample = format!("{name}{suffix}");
            if let Some(other) = self.sample_names.get(sample.as_str()) {
                if **other == *name {
                    continue; // The family's own name, a suffix ("") too.
                }
                return Err(self.err(ErrorKind::NameClash {
                    family: name,
                    name: sample,
                    other: other.to_string(),
                }));
            }
            self.sample_names
                .insert(sample.into_boxed_str(), name.clone().into_boxed_str());
        }
        if let Some(f) = &mut self.family {
            f.sealed = true;
        }
        Ok(())
    }

    /// Ends the current family: its last series is checked and added, and
    /// the family goes to the output if it has series.
    fn close_family(&mut self) -> Result<(), ParseError> {
        self.close_series()?;
        self.seal()?;
        let Some(f) = self.family.take() else {
            return Ok(());
        };
        if f.metrics.is_empty() {
            return Ok(());
        }
        let (metric_type, suffix) = f.om_type().stored();
        self.charge(
            cost::items(1, std::mem::size_of::<MetricFamily>())
                + cost::string(f.name.len() + suffix.len()),
        )?;
        self.out.push(MetricFamily {
            name: format!("{}{suffix}", f.name).into(),
            help: f.help.map(Into::into),
            metric_type,
            metrics: f.metrics,
        });
        Ok(())
    }

    // ---- samples ----------------------------------------------------------

    fn sample(&mut self, line: &str) -> Result<(), ParseError> {
        let mut c = Cursor::new(line);
        let name = self.metric_name(&mut c)?;
        let part = self.family_for_sample(name)?;
        let t = self
            .family
            .as_ref()
            .map_or(OmType::Unknown, Family::om_type);
        self.clear_labels();
        let special = if c.peek() == Some(b'{') {
            self.labels(&mut c, name, t, part)?
        } else {
            LineLabels::default()
        };
        self.check_special(name, t, part, &special)?;
        self.expect(&mut c, b' ', "a space before the value")?;
        let (value, token) = self.number(&mut c)?;
        let mut timestamp = None;
        let mut exemplar = None;
        if c.eat(b' ') {
            if c.peek() == Some(b'#') {
                exemplar = Some(self.exemplar(&mut c)?);
            } else {
                timestamp = Some(self.sample_timestamp(&mut c)?);
                if c.eat(b' ') {
                    exemplar = Some(self.exemplar(&mut c)?);
                }
            }
        }
        if !c.at_end() {
            return Err(self.err(ErrorKind::Syntax {
                expected: "the end of the line",
                found: describe(c.rest()),
            }));
        }
        if exemplar.is_some() && !matches!(part, Part::Total | Part::Bucket) {
            return Err(self.err(ErrorKind::ExemplarNotAllowed {
                sample: name.into(),
            }));
        }
        self.series_for_sample(t)?;
        let s = self.series.as_mut().expect("the sample's series");
        s.line = self.line;
        if let Some(ms) = timestamp {
            s.extra.timestamp_ms = Some(ms);
        }
        let sample = Sample {
            name,
            t,
            part,
            value,
            token,
            exemplar,
        };
        self.apply(sample, special)
    }

    /// The part of the current family a sample called `name` is; a sample
    /// of no part of it begins a family of its own, of unknown type.
    fn family_for_sample(&mut self, name: &str) -> Result<Part, ParseError> {
        if let Some(f) = &self.family {
            if let Some(part) = f.part_of(name) {
                self.family.as_mut().expect("checked").sampled = true;
                self.seal()?;
                return Ok(part);
            }
            if f.name == name {
                return Err(self.err(ErrorKind::WrongSuffix {
                    sample: name.into(),
                    family: f.name.clone(),
                    family_type: f.om_type().keyword(),
                }));
            }
        }
        self.start_family(name)?;
        self.family.as_mut().expect("just begun").sampled = true;
        self.seal()?;
        Ok(Part::Value)
    }

    /// `le` and `quantile` where the type and part need them, and nowhere
    /// else in histograms and summaries; a stateset's state label.
    fn check_special(
        &self,
        name: &str,
        t: OmType,
        part: Part,
        special: &LineLabels,
    ) -> Result<(), ParseError> {
        let missing = |label: &str| {
            Err(self.err(ErrorKind::MissingLabel {
                label: label.into(),
                sample: name.into(),
            }))
        };
        if part == Part::Bucket && special.le.is_none() {
            return missing("le");
        }
        if part == Part::Quantile && special.quantile.is_none() {
            return missing("quantile");
        }
        if t == OmType::StateSet {
            let family = &self.family.as_ref().expect("a sample's family").name;
            if !self.labels.iter().any(|l| *l.name == **family) {
                return missing(family);
            }
        }
        Ok(())
    }

    /// Makes the series of the current line's labels the current one: the
    /// same as the previous line's, or a new one never seen before in
    /// this family.
    fn series_for_sample(&mut self, t: OmType) -> Result<(), ParseError> {
        crate::model::sort_by_name(&mut self.labels);
        if let Some(s) = &self.series
            && s.labels[..] == self.labels[..]
        {
            return Ok(());
        }
        self.close_series()?;
        let ordinal = self.family.as_ref().expect("a sample's family").ordinal;
        let labels: Box<[Label]> = std::mem::take(&mut self.labels).into_boxed_slice();
        self.clear_labels();
        let key = (ordinal, labels);
        if self.series_seen.contains(&key) {
            let family = self.family.as_ref().expect("a sample's family");
            return Err(self.err(ErrorKind::SeriesAgain {
                family: family.name.clone(),
                labels: show_labels(&key.1),
            }));
        }
        let n = key.1.len();
        let mut bytes = cost::metric() + 2 * (cost::items(n, 8) + cost::ALLOC) + cost::items(1, 48);
        bytes += match t {
            OmType::Summary => cost::summary(),
            OmType::Histogram | OmType::GaugeHistogram => cost::histogram(),
            _ => 0,
        };
        self.charge(bytes)?;
        let labels = key.1.clone();
        self.series_seen.insert(key);
        let (metric_type, _) = t.stored();
        self.series = Some(Series {
            labels,
            value: Value::empty(metric_type),
            extra: Extra::default(),
            line: self.line,
            has_value: false,
            has_created: false,
            has_count: false,
            has_sum: false,
            inf_count: None,
            count: None,
            negative_bucket: false,
            quantiles: HashSet::new(),
        });
        Ok(())
    }

    /// Puts one sample's value into the current series, checked by the
    /// rules of its type and part. `token` is the value as written, which
    /// a created timestamp is read from exactly.
    fn apply(&mut self, sample: Sample<'_>, special: LineLabels) -> Result<(), ParseError> {
        let Sample {
            name,
            t,
            part,
            value: v,
            token,
            exemplar,
        } = sample;
        match part {
            Part::Bucket => return self.bucket(name, v, special.le.unwrap_or_default(), exemplar),
            Part::Quantile => return self.quantile(name, v, special.quantile.unwrap_or_default()),
            _ => {}
        }
        let invalid = |why| ErrorKind::InvalidValue {
            sample: name.into(),
            why,
        };
        let line = self.line;
        let s = self.series.as_mut().expect("the sample's series");
        let flag = match part {
            Part::Created => &mut s.has_created,
            Part::Count => &mut s.has_count,
            Part::Sum => &mut s.has_sum,
            _ => &mut s.has_value,
        };
        if std::mem::replace(flag, true) {
            return Err(ParseError {
                line,
                kind: ErrorKind::RepeatedSample {
                    sample: name.into(),
                },
            });
        }
        let applied = match (part, t) {
            (Part::Created, _) => match is_realnumber(token).then(|| parse_timestamp(token)) {
                Some(Some(ts)) => {
                    s.extra.created = Some(ts);
                    Ok(())
                }
                _ => Err(invalid(
                    "a created time must be a finite number of seconds in range",
                )),
            },
            (Part::Total, _) if v.is_nan() || v < 0.0 => {
                Err(invalid("a counter's total must not be NaN or negative"))
            }
            (Part::Total, _) => {
                s.value = Value::Counter(v);
                s.extra.exemplar = exemplar;
                Ok(())
            }
            (Part::Count, _) => match count_of(v) {
                Some(n) => {
                    s.count = Some(n);
                    if let Value::Summary(sm) = &mut s.value {
                        sm.count = n;
                    }
                    Ok(())
                }
                None => Err(invalid("a count must be a non-negative integer")),
            },
            (Part::Sum, OmType::GaugeHistogram) if v.is_nan() => {
                Err(invalid("a gauge histogram's sum must not be NaN"))
            }
            (Part::Sum, OmType::Histogram | OmType::Summary) if v.is_nan() || v < 0.0 => {
                Err(invalid("a sum must not be NaN or negative"))
            }
            (Part::Sum, _) => {
                match &mut s.value {
                    Value::Summary(sm) => sm.sum = v,
                    Value::Histogram(h) => h.sum = v,
                    _ => {}
                }
                Ok(())
            }
            (_, OmType::Info) if v != 1.0 => Err(invalid("an info's value must be 1")),
            (_, OmType::StateSet) if v != 0.0 && v != 1.0 => {
                Err(invalid("a state's value must be 0 or 1"))
            }
            (_, OmType::Unknown) => {
                s.value = Value::Untyped(v);
                Ok(())
            }
            _ => {
                s.value = Value::Gauge(v);
                Ok(())
            }
        };
        applied.map_err(|kind| ParseError { line, kind })
    }

    /// A summary's quantile: each once, its value not negative.
    fn quantile(&mut self, name: &str, v: f64, q: f64) -> Result<(), ParseError> {
        if v < 0.0 {
            return Err(self.err(ErrorKind::InvalidValue {
                sample: name.into(),
                why: "a quantile's value must not be negative",
            }));
        }
        self.charge(cost::items(1, 16) + cost::items(1, 16))?;
        let s = self.series.as_mut().expect("the sample's series");
        if !s.quantiles.insert(q.to_bits()) {
            return Err(self.err(ErrorKind::RepeatedSample {
                sample: name.into(),
            }));
        }
        if let Value::Summary(sm) = &mut s.value {
            sm.quantiles.push((q, v));
        }
        Ok(())
    }

    /// A histogram bucket: in increasing order of `le`, cumulative, an
    /// integer count, its exemplar within the bucket.
    fn bucket(
        &mut self,
        name: &str,
        v: f64,
        le: f64,
        exemplar: Option<Exemplar>,
    ) -> Result<(), ParseError> {
        let sample = || name.to_string();
        let Some(count) = count_of(v) else {
            return Err(self.err(ErrorKind::InvalidValue {
                sample: sample(),
                why: "a bucket's count must be a non-negative integer",
            }));
        };
        let s = self.series.as_ref().expect("the sample's series");
        let Value::Histogram(h) = &s.value else {
            return Ok(());
        };
        if let Some(last) = h.buckets.last() {
            if le <= last.upper_bound {
                return Err(self.err(ErrorKind::BucketsOutOfOrder { sample: sample() }));
            }
            if count < last.count {
                return Err(self.err(ErrorKind::BucketsNotCumulative { sample: sample() }));
            }
        }
        if exemplar.as_ref().is_some_and(|e| e.value > le) {
            return Err(self.err(ErrorKind::ExemplarOutsideBucket { sample: sample() }));
        }
        let mut bytes = cost::items(1, std::mem::size_of::<Bucket>());
        if exemplar.is_some() {
            bytes += cost::items(1, std::mem::size_of::<(u32, Exemplar)>());
        }
        self.charge(bytes)?;
        let s = self.series.as_mut().expect("the sample's series");
        let Value::Histogram(h) = &mut s.value else {
            return Ok(());
        };
        if let Some(e) = exemplar {
            s.extra.bucket_exemplars.push((h.buckets.len() as u32, e));
        }
        h.buckets.push(Bucket::new(le, count));
        s.negative_bucket |= le < 0.0;
        if le == f64::INFINITY {
            s.inf_count = Some(count);
        }
        Ok(())
    }

    /// Ends the current series: checks what its type requires of it as a
    /// whole and adds it to its family.
    fn close_series(&mut self) -> Result<(), ParseError> {
        let Some(mut s) = self.series.take() else {
            return Ok(());
        };
        let f = self.family.as_ref().expect("a series has its family");
        let t = f.om_type();
        let incomplete = |why| ParseError {
            line: s.line,
            kind: ErrorKind::IncompleteSeries {
                family: f.name.clone(),
                why,
            },
        };
        if t == OmType::Counter && !s.has_value {
            return Err(incomplete("has a created time but no \"_total\" sample"));
        }
        if t.is_histogram() {
            let Some(inf) = s.inf_count else {
                return Err(incomplete("has no bucket with le=\"+Inf\""));
            };
            if s.has_sum != s.has_count {
                return Err(incomplete(
                    "has a sum without a count or a count without a sum (both or neither)",
                ));
            }
            if s.count.is_some_and(|c| c != inf) {
                return Err(incomplete("has a count other than its +Inf bucket's"));
            }
            if t == OmType::Histogram && s.negative_bucket && s.has_sum {
                return Err(incomplete("has a negative bucket and a sum (not both)"));
            }
            if let Value::Histogram(h) = &mut s.value {
                h.count = inf;
            }
        }
        let extra = if s.extra.is_empty() {
            None
        } else {
            self.charge(cost::extra())?;
            Some(Box::new(std::mem::take(&mut s.extra)))
        };
        let f = self.family.as_mut().expect("a series has its family");
        if f.metrics.is_empty() {
            f.metrics.reserve_exact(1);
        }
        f.metrics.push(Metric {
            labels: s.labels,
            value: s.value,
            extra,
        });
        Ok(())
    }

    // ---- tokens -----------------------------------------------------------

    fn expect(&self, c: &mut Cursor, b: u8, expected: &'static str) -> Result<(), ParseError> {
        if c.eat(b) {
            Ok(())
        } else {
            Err(self.err(ErrorKind::Syntax {
                expected,
                found: describe(c.rest()),
            }))
        }
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, not starting with `_`.
    fn metric_name<'a>(&self, c: &mut Cursor<'a>) -> Result<&'a str, ParseError> {
        let name = c.take_while(is_name_char);
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            return Err(self.err(ErrorKind::Syntax {
                expected: "a metric name",
                found: describe(&format!("{name}{}", c.rest())),
            }));
        }
        if name.starts_with('_') {
            return Err(self.err(ErrorKind::ReservedName { name: name.into() }));
        }
        Ok(name)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `_`.
    fn label_name<'a>(&self, c: &mut Cursor<'a>) -> Result<&'a str, ParseError> {
        let name = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            return Err(self.err(ErrorKind::Syntax {
                expected: "a label name",
                found: describe(&format!("{name}{}", c.rest())),
            }));
        }
        if name.starts_with('_') {
            return Err(self.err(ErrorKind::ReservedName { name: name.into() }));
        }
        Ok(name)
    }

    /// A quoted label value after `="`, unescaped; the cursor after the
    /// closing quote.
    fn label_value(&self, c: &mut Cursor) -> Result<String, ParseError> {
        let (value, used) = self.unescape(c.rest(), true)?;
        c.skip(used);
        Ok(value)
    }

    /// Reads an escaped string: `\\`, `\"` and `\n` are escapes, a
    /// backslash before any other character stands for itself (the spec's
    /// `BS normal-char`, as Prometheus reads it); an unescaped `"` ends a
    /// quoted string and is refused in HELP text. Returns the text and the
    /// bytes read (with the closing quote).
    fn unescape(&self, s: &str, quoted: bool) -> Result<(String, usize), ParseError> {
        let b = s.as_bytes();
        let mut out = String::new();
        let (mut i, mut run) = (0, 0);
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    out.push_str(&s[run..i]);
                    match b.get(i + 1) {
                        Some(b'n') => out.push('\n'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'"') => out.push('"'),
                        Some(_) => {
                            out.push('\\');
                            i += 1;
                            run = i;
                            continue;
                        }
                        None => break,
                    }
                    i += 2;
                    run = i;
                }
                b'"' if quoted => {
                    out.push_str(&s[run..i]);
                    return Ok((out, i + 1));
                }
                b'"' => {
                    return Err(self.err(ErrorKind::Syntax {
                        expected: "HELP text with its double quotes escaped (\\\")",
                        found: describe(&s[i..]),
                    }));
                }
                _ => i += 1,
            }
        }
        if quoted || i < b.len() {
            return Err(self.err(ErrorKind::Syntax {
                expected: if quoted {
                    "a closing double quote"
                } else {
                    "an escape after the backslash"
                },
                found: "the end of the line".into(),
            }));
        }
        out.push_str(&s[run..]);
        Ok((out, b.len()))
    }

    /// Forgets the current line's labels: a new label set begins.
    fn clear_labels(&mut self) {
        self.labels.clear();
        self.label_set += 1;
    }

    /// `{name="value",...}` of a sample: its labels into `self.labels`,
    /// `le` of a histogram bucket and `quantile` of a summary quantile
    /// apart.
    fn labels(
        &mut self,
        c: &mut Cursor,
        sample: &str,
        t: OmType,
        part: Part,
    ) -> Result<LineLabels, ParseError> {
        let mut special = LineLabels::default();
        c.skip(1);
        if c.eat(b'}') {
            return Ok(special);
        }
        loop {
            let name = self.label_name(c)?;
            self.expect(c, b'=', "'=' after the label name")?;
            self.expect(c, b'"', "'\"' before the label value")?;
            let value = self.label_value(c)?;
            if self.has_label(name) {
                return Err(self.err(ErrorKind::DuplicateLabel { label: name.into() }));
            }
            match (name, t, part) {
                ("le", OmType::Histogram | OmType::GaugeHistogram, Part::Bucket) => {
                    self.mark_label(name);
                    special.le = Some(self.label_number("le", &value)?);
                }
                ("le", OmType::Histogram | OmType::GaugeHistogram, _) => {
                    return Err(self.err(ErrorKind::LabelNotAllowed {
                        label: "le",
                        sample: sample.into(),
                    }));
                }
                ("quantile", OmType::Summary, Part::Quantile) => {
                    self.mark_label(name);
                    special.quantile = Some(self.label_number("quantile", &value)?);
                }
                ("quantile", OmType::Summary, _) => {
                    return Err(self.err(ErrorKind::LabelNotAllowed {
                        label: "quantile",
                        sample: sample.into(),
                    }));
                }
                _ => self.push_label(name, value)?,
            }
            if c.eat(b'}') {
                return Ok(special);
            }
            self.expect(c, b',', "',' or '}' after a label")?;
        }
    }

    /// The number of an `le` or `quantile` label.
    fn label_number(&self, label: &'static str, value: &str) -> Result<f64, ParseError> {
        let bad = |why| {
            Err(self.err(ErrorKind::InvalidLabelNumber {
                label,
                value: value.into(),
                why,
            }))
        };
        match parse_number(value) {
            None => bad("not a number"),
            Some(v) if v.is_nan() => bad("must not be NaN"),
            Some(v) if label == "quantile" && !(0.0..=1.0).contains(&v) => {
                bad("a quantile must be between 0 and 1")
            }
            Some(v) => Ok(v),
        }
    }

    fn has_label(&self, name: &str) -> bool {
        self.names
            .get(name)
            .is_some_and(|set| set.get() == self.label_set)
    }

    /// Marks `name` as used by the current label set.
    fn mark_label(&mut self, name: &str) -> Arc<str> {
        if let Some((n, set)) = self.names.get_key_value(name) {
            set.set(self.label_set);
            return Arc::clone(n);
        }
        let n: Arc<str> = name.into();
        self.names.insert(Arc::clone(&n), Cell::new(self.label_set));
        n
    }

    fn push_label(&mut self, name: &str, value: String) -> Result<(), ParseError> {
        self.charge(cost::label(name.len(), value.len()))?;
        let name = self.mark_label(name);
        self.labels.push(Label::from_parts(name, value.into()));
        Ok(())
    }

    /// A value, up to a space or the end of the line, and its text.
    fn number<'a>(&self, c: &mut Cursor<'a>) -> Result<(f64, &'a str), ParseError> {
        let token = c.take_while(|b| b != b' ');
        match parse_number(token) {
            Some(v) => Ok((v, token)),
            None => Err(self.err(ErrorKind::InvalidNumber {
                token: token.into(),
            })),
        }
    }

    /// A sample's timestamp, in milliseconds: kept only for the refusal.
    fn sample_timestamp(&self, c: &mut Cursor) -> Result<i64, ParseError> {
        let token = c.take_while(|b| b != b' ');
        match is_realnumber(token).then(|| parse_number(token)).flatten() {
            Some(seconds) => Ok((seconds * 1000.0) as i64),
            None => Err(self.err(ErrorKind::InvalidTimestamp {
                token: token.into(),
            })),
        }
    }

    /// `# {labels} value [timestamp]` after the sample, the cursor on `#`.
    fn exemplar(&mut self, c: &mut Cursor) -> Result<Exemplar, ParseError> {
        self.expect(c, b'#', "'#' before an exemplar")?;
        self.expect(c, b' ', "a space after '#'")?;
        if c.peek() != Some(b'{') {
            return Err(self.err(ErrorKind::Syntax {
                expected: "the exemplar's labels in braces",
                found: describe(c.rest()),
            }));
        }
        c.skip(1);
        let mut labels = Vec::new();
        let mut chars = 0;
        let set = self.label_set + 1;
        self.label_set = set;
        if !c.eat(b'}') {
            loop {
                let name = self.label_name(c)?;
                self.expect(c, b'=', "'=' after the label name")?;
                self.expect(c, b'"', "'\"' before the label value")?;
                let value = self.label_value(c)?;
                if self.has_label(name) {
                    return Err(self.err(ErrorKind::DuplicateLabel { label: name.into() }));
                }
                chars += name.chars().count() + value.chars().count();
                if chars > EXEMPLAR_MAX_CHARS {
                    return Err(self.err(ErrorKind::ExemplarTooLong { chars }));
                }
                self.charge(cost::label(name.len(), value.len()))?;
                let name = self.mark_label(name);
                labels.push(Label::from_parts(name, value.into()));
                if c.eat(b'}') {
                    break;
                }
                self.expect(c, b',', "',' or '}' after a label")?;
            }
        }
        self.expect(c, b' ', "a space before the exemplar's value")?;
        let (value, _) = self.number(c)?;
        let mut timestamp = None;
        if c.eat(b' ') {
            let token = c.take_while(|b| b != b' ');
            timestamp = Some(
                is_realnumber(token)
                    .then(|| parse_timestamp(token))
                    .flatten()
                    .ok_or_else(|| {
                        self.err(ErrorKind::InvalidTimestamp {
                            token: token.into(),
                        })
                    })?,
            );
        }
        self.charge(cost::items(1, std::mem::size_of::<Exemplar>()))?;
        Ok(Exemplar {
            labels: labels.into(),
            value,
            timestamp,
        })
    }
}

/// A cursor over one line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Cursor<'a> {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Skips `n` bytes known to end on a character boundary.
    fn skip(&mut self, n: usize) {
        self.pos += n;
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let b = self.s.as_bytes();
        while self.pos < b.len() && f(b[self.pos]) {
            self.pos += 1;
        }
        // Stops at ASCII bytes only (every predicate accepts only ASCII or
        // stops at a space), so this is a character boundary.
        &self.s[start..self.pos]
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos == self.s.len()
    }
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// What stands at the start of `rest`, for an error message: a few
/// characters, escaped, or "the end of the line".
fn describe(rest: &str) -> String {
    if rest.is_empty() {
        return "the end of the line".into();
    }
    let head: String = rest.chars().take(16).collect();
    let more = if head.len() < rest.len() { "..." } else { "" };
    format!("{head:?}{more}")
}

fn show_labels(labels: &[Label]) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, &*l.value))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// The spec's `realnumber`: `[sign] digits [. digits] [e [sign] digits]`,
/// with a digit before or after the point (`1.`, `.5`); `e` in either case.
fn is_realnumber(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let whole = digits(&mut i);
    let mut fraction = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        fraction = digits(&mut i);
    }
    if whole == 0 && fraction == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The spec's `number`: a `realnumber` in the range of a float64, or
/// `[sign] inf|infinity`, or `nan` (case-insensitive).
pub fn parse_number(s: &str) -> Option<f64> {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1.0, &s[1..]),
        Some(b'-') => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest.eq_ignore_ascii_case("inf") || rest.eq_ignore_ascii_case("infinity") {
        return Some(sign * f64::INFINITY);
    }
    if s.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    if !is_realnumber(s) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    // The spec: numbers must fit in a float64; 1e400 does not.
    v.is_finite().then_some(v)
}

/// A count: a non-negative integer in a float's clothes (`17`, `17.0`).
fn count_of(v: f64) -> Option<u64> {
    const TWO64: f64 = 18_446_744_073_709_551_616.0;
    ((0.0..TWO64).contains(&v) && v.fract() == 0.0).then_some(v as u64)
}

/// A timestamp from its decimal text, exact to the nanosecond where the
/// text has that many digits (`1520430000.123` is 123 000 000 ns, not the
/// float's 122 999 906); `None` outside the range of i64 seconds.
fn parse_timestamp(token: &str) -> Option<Timestamp> {
    let (negative, body) = match token.as_bytes().first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, "0"),
    };
    let exp: i64 = exp.parse().unwrap_or(if exp.starts_with('-') {
        i64::MIN / 2
    } else {
        i64::MAX / 2
    });
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    let lead = digits.iter().take_while(|&&d| d == b'0').count();
    let digits = &digits[lead..];
    if digits.is_empty() {
        return Some(Timestamp::default());
    }
    // Where the point stands in `digits`.
    let point = (whole.len() as i64 - lead as i64).saturating_add(exp);
    if point > 19 {
        return None;
    }
    let digit = |i: i64| -> i64 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or(0, |d| i64::from(d - b'0'))
    };
    let mut secs: i64 = 0;
    for i in 0..point.max(0) {
        secs = secs.checked_mul(10)?.checked_add(digit(i))?;
    }
    let mut nanos: i64 = 0;
    for i in point..point + 9 {
        nanos = nanos * 10 + digit(i);
    }
    if negative && (secs, nanos) != (0, 0) {
        if nanos > 0 {
            secs = -secs - 1;
            nanos = 1_000_000_000 - nanos;
        } else {
            secs = -secs;
        }
    }
    Some(Timestamp {
        seconds: secs,
        nanos: nanos as i32,
    })
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

    /// What an error case expects of the error.
    type Check = fn(&ErrorKind) -> bool;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn the_specs_example_parses() {
        let f = ok("# TYPE acme_http_router_request_seconds summary\n\
             # UNIT acme_http_router_request_seconds seconds\n\
             # HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.\n\
             acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32\n\
             acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0\n\
             acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0\n\
             acme_http_router_request_seconds_sum{path=\"/api/v2\",method=\"POST\"} 479.3\n\
             acme_http_router_request_seconds_count{path=\"/api/v2\",method=\"POST\"} 34.0\n\
             acme_http_router_request_seconds_created{path=\"/api/v2\",method=\"POST\"} 1605281325.0\n\
             # TYPE go_goroutines gauge\n\
             # HELP go_goroutines Number of goroutines that currently exist.\n\
             go_goroutines 69\n\
             # TYPE process_cpu_seconds counter\n\
             # UNIT process_cpu_seconds seconds\n\
             # HELP process_cpu_seconds Total user and system CPU time spent in seconds.\n\
             process_cpu_seconds_total 4.20072246e+06\n\
             # EOF\n");
        let names: Vec<&str> = f.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            [
                "acme_http_router_request_seconds",
                "go_goroutines",
                "process_cpu_seconds_total"
            ]
        );
        assert_eq!(f[0].metric_type, MetricType::Summary);
        assert_eq!(f[0].metrics.len(), 2);
        assert_eq!(
            f[0].metrics[0].value,
            Value::Summary(Box::new(Summary {
                count: 807283,
                sum: 9036.32,
                quantiles: vec![],
            }))
        );
        assert_eq!(
            labels(&f[0].metrics[0]),
            [
                ("method".into(), "GET".into()),
                ("path".into(), "/api/v1".into())
            ]
        );
        let created = f[0].metrics[1].extra.as_ref().unwrap().created;
        assert_eq!(created, Some(ts(1605281325, 0)));
        assert_eq!(f[1].metrics[0].value, Value::Gauge(69.0));
        assert_eq!(f[2].metric_type, MetricType::Counter);
        assert_eq!(f[2].metrics[0].value, Value::Counter(4.20072246e6));
        assert_eq!(
            f[2].help.as_deref(),
            Some("Total user and system CPU time spent in seconds.")
        );
    }

    #[test]
    fn eof_is_required_last() {
        assert!(ok("# EOF").is_empty());
        assert!(ok("# EOF\n").is_empty());
        assert_eq!(ok("a 1\n# EOF").len(), 1);
        for body in ["", "a 1\n", "a 1", "a 1\n# EOF \n", "# EOF\r\n"] {
            assert!(
                matches!(
                    fails(body).kind,
                    ErrorKind::MissingEof | ErrorKind::InvalidComment | ErrorKind::CarriageReturn
                ),
                "{body:?}"
            );
        }
        assert_eq!(fails("a 1\n").kind, ErrorKind::MissingEof);
        assert_eq!(fails("a 1\n").line, 2, "where # EOF should be");
        assert_eq!(fails("").line, 1);
        let e = fails("a 1\n# EOF\n\n");
        assert_eq!((e.line, e.kind), (3, ErrorKind::AfterEof));
        assert_eq!(fails("# EOF\na 1\n# EOF\n").kind, ErrorKind::AfterEof);
    }

    #[test]
    fn lines_are_strict() {
        assert_eq!(fails("a 1\n\n# EOF\n").kind, ErrorKind::EmptyLine);
        assert_eq!(fails("a 1\r\n# EOF\n").kind, ErrorKind::CarriageReturn);
        assert_eq!(
            fails("# a comment\n# EOF\n").kind,
            ErrorKind::InvalidComment
        );
        assert_eq!(
            fails("#TYPE a gauge\n# EOF\n").kind,
            ErrorKind::InvalidComment
        );
        let e = parse(b"a{l=\"\xff\"} 1\n# EOF\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotUtf8);
        for body in [
            "a  1\n# EOF\n",
            "a 1 \n# EOF\n",
            " a 1\n# EOF\n",
            "a{l=\"v\",} 1\n# EOF\n",
            "a{l = \"v\"} 1\n# EOF\n",
            "a{l=\"v\"}1\n# EOF\n",
            "a{l=v} 1\n# EOF\n",
            "a{l=\"v} 1\n# EOF\n",
            "1a 1\n# EOF\n",
            "a\t1\n# EOF\n",
            "# TYPE a\n# EOF\n",
            "# HELP a\n# EOF\n",
        ] {
            assert!(
                matches!(
                    fails(body).kind,
                    ErrorKind::Syntax { .. }
                        | ErrorKind::InvalidNumber { .. }
                        | ErrorKind::InvalidTimestamp { .. }
                ),
                "{body:?}: {}",
                fails(body)
            );
        }
        // Reserved names.
        assert!(matches!(
            fails("_a 1\n# EOF\n").kind,
            ErrorKind::ReservedName { .. }
        ));
        assert!(matches!(
            fails("a{_l=\"x\"} 1\n# EOF\n").kind,
            ErrorKind::ReservedName { .. }
        ));
        // Empty braces and the line number of an error.
        assert_eq!(ok("a{} 1\n# EOF\n")[0].metrics[0].labels.len(), 0);
        let e = fails("a 1\nb 2\nc{ 3\n# EOF\n");
        assert_eq!(e.line, 3);
        assert!(
            e.to_string()
                .starts_with("OpenMetrics parsing error in line 3: expected a label name"),
            "{e}"
        );
    }

    #[test]
    fn metadata_comes_first_and_once() {
        let f = ok("# TYPE a gauge\n# UNIT a \n# HELP a \na 1\n# EOF\n");
        assert_eq!(f[0].help, None, "an empty HELP is none");
        let cases: &[(&str, Check)] = &[
            ("# TYPE a gauge\n# TYPE a gauge\n# EOF\n", |k| {
                matches!(
                    k,
                    ErrorKind::SecondMetadata {
                        keyword: "TYPE",
                        ..
                    }
                )
            }),
            ("# HELP a x\n# HELP a y\n# EOF\n", |k| {
                matches!(
                    k,
                    ErrorKind::SecondMetadata {
                        keyword: "HELP",
                        ..
                    }
                )
            }),
            ("# UNIT a_s s\n# UNIT a_s s\n# EOF\n", |k| {
                matches!(
                    k,
                    ErrorKind::SecondMetadata {
                        keyword: "UNIT",
                        ..
                    }
                )
            }),
            ("a 1\n# TYPE a gauge\n# EOF\n", |k| {
                matches!(k, ErrorKind::MetadataAfterSamples { .. })
            }),
            ("# TYPE a gauges\n# EOF\n", |k| {
                matches!(k, ErrorKind::UnknownType { .. })
            }),
            ("# TYPE a Gauge\n# EOF\n", |k| {
                matches!(k, ErrorKind::UnknownType { .. })
            }),
            ("# TYPE a untyped\n# EOF\n", |k| {
                matches!(k, ErrorKind::UnknownType { .. })
            }),
            ("# HELP a say \"hi\"\n# EOF\n", |k| {
                matches!(k, ErrorKind::Syntax { .. })
            }),
            ("# HELP a trailing \\\n# EOF\n", |k| {
                matches!(k, ErrorKind::Syntax { .. })
            }),
        ];
        for (body, check) in cases {
            let e = fails(body);
            assert!(check(&e.kind), "{body:?} gave {e}");
        }
        let f = ok("# HELP a x \\\"q\\\" \\\\ \\n \\a\na 1\n# EOF\n");
        assert_eq!(f[0].help.as_deref(), Some("x \"q\" \\ \n \\a"));
    }

    #[test]
    fn units_are_suffixes() {
        let f = ok(
            "# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\nfoo_seconds_total 1\n# EOF\n",
        );
        assert_eq!(&*f[0].name, "foo_seconds_total");
        assert!(matches!(
            fails("# TYPE foo counter\n# UNIT foo seconds\n# EOF\n").kind,
            ErrorKind::UnitNotSuffix { .. }
        ));
        assert!(matches!(
            fails("# UNIT fooseconds seconds\n# EOF\n").kind,
            ErrorKind::UnitNotSuffix { .. }
        ));
        assert!(matches!(
            fails("# UNIT a_b b-c\n# EOF\n").kind,
            ErrorKind::Syntax { .. }
        ));
        for body in [
            "# TYPE a_b info\n# UNIT a_b b\n# EOF\n",
            "# UNIT a_b b\n# TYPE a_b stateset\n# EOF\n",
        ] {
            assert!(
                matches!(fails(body).kind, ErrorKind::UnitNotAllowed { .. }),
                "{body:?}"
            );
        }
    }

    #[test]
    fn families_are_contiguous_and_their_names_do_not_clash() {
        let f = ok("a 1\nb 2\n# TYPE c gauge\n# TYPE d gauge\nd 3\n# EOF\n");
        assert_eq!(f.len(), 3, "c has no samples");
        let e = fails("a 1\nb 2\na 3\n# EOF\n");
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, ErrorKind::FamilyAgain { .. }), "{e}");
        assert!(matches!(
            fails("# TYPE a gauge\n# TYPE b gauge\n# HELP a x\n# EOF\n").kind,
            ErrorKind::FamilyAgain { .. }
        ));
        for body in [
            "# TYPE foo counter\nfoo_total 1\n# TYPE foo_created gauge\nfoo_created 1\n# EOF\n",
            "foo_total 1\n# TYPE foo counter\nfoo_total 1\n# EOF\n",
            "# TYPE foo info\nfoo_info 1\n# TYPE foo_info gauge\n# EOF\n",
            "# TYPE foo histogram\n# TYPE foo_count gauge\n# EOF\n",
        ] {
            let e = fails(body);
            assert!(
                matches!(
                    e.kind,
                    ErrorKind::NameClash { .. } | ErrorKind::SeriesAgain { .. }
                ),
                "{body:?}: {e}"
            );
        }
        // A sample named like its family but without its type's suffix.
        assert!(matches!(
            fails("# TYPE foo counter\nfoo 1\n# EOF\n").kind,
            ErrorKind::WrongSuffix { .. }
        ));
    }

    #[test]
    fn series_are_contiguous_with_one_point_each() {
        let f = ok("# TYPE s summary\n\
                    s_count{a=\"1\"} 2\ns_sum{a=\"1\"} 3\n\
                    s_sum{a=\"2\"} 1\ns_count{a=\"2\"} 1\n# EOF\n");
        assert_eq!(f[0].metrics.len(), 2);
        let e = fails(
            "# TYPE s summary\ns_count{a=\"1\"} 2\ns_count{a=\"2\"} 1\ns_sum{a=\"1\"} 3\n# EOF\n",
        );
        assert_eq!(e.line, 4);
        assert!(matches!(e.kind, ErrorKind::SeriesAgain { .. }), "{e}");
        assert!(matches!(
            fails("a 1\na 2\n# EOF\n").kind,
            ErrorKind::RepeatedSample { .. }
        ));
        assert!(matches!(
            fails("# TYPE c counter\nc_total 1\nc_total 2\n# EOF\n").kind,
            ErrorKind::RepeatedSample { .. }
        ));
        // Label order does not matter for which series a sample is of.
        let f =
            ok("# TYPE s summary\ns_count{a=\"1\",b=\"2\"} 2\ns_sum{b=\"2\",a=\"1\"} 3\n# EOF\n");
        assert_eq!(f[0].metrics.len(), 1);
        assert!(matches!(
            fails("a{x=\"1\",x=\"2\"} 1\n# EOF\n").kind,
            ErrorKind::DuplicateLabel { .. }
        ));
    }

    #[test]
    fn counters_have_a_total_and_may_have_created() {
        let f = ok(
            "# TYPE foo counter\n# HELP foo Foos.\nfoo_total 17.0\nfoo_created 1520430000.123\n# EOF\n",
        );
        assert_eq!(&*f[0].name, "foo_total");
        assert_eq!(f[0].help.as_deref(), Some("Foos."));
        assert_eq!(f[0].metrics[0].value, Value::Counter(17.0));
        let extra = f[0].metrics[0].extra.as_deref().unwrap();
        assert_eq!(extra.created, Some(ts(1520430000, 123_000_000)));
        // Created first is as good.
        let f = ok("# TYPE foo counter\nfoo_created 1.5e9\nfoo_total 1\n# EOF\n");
        assert_eq!(
            f[0].metrics[0].extra.as_ref().unwrap().created,
            Some(ts(1_500_000_000, 0))
        );
        for (body, why) in [
            ("# TYPE foo counter\nfoo_created 1\n# EOF\n", "no _total"),
            ("# TYPE foo counter\nfoo_total -1\n# EOF\n", "negative"),
            ("# TYPE foo counter\nfoo_total NaN\n# EOF\n", "NaN"),
            (
                "# TYPE foo counter\nfoo_total 1\nfoo_created NaN\n# EOF\n",
                "NaN created",
            ),
            (
                "# TYPE foo counter\nfoo_total 1\nfoo_created 1e30\n# EOF\n",
                "created out of range",
            ),
        ] {
            let e = fails(body);
            assert!(
                matches!(
                    e.kind,
                    ErrorKind::IncompleteSeries { .. } | ErrorKind::InvalidValue { .. }
                ),
                "{why}: {e}"
            );
        }
    }

    #[test]
    fn exemplars_on_totals_and_buckets_only() {
        let f = ok("# TYPE foo counter\n\
                    foo_total 17.0 # {trace_id=\"KOO5S4vxi0o\"} 0.67 1520879607.789\n# EOF\n");
        let ex = f[0].metrics[0]
            .extra
            .as_ref()
            .unwrap()
            .exemplar
            .clone()
            .unwrap();
        assert_eq!(&*ex.labels[0].name, "trace_id");
        assert_eq!(&*ex.labels[0].value, "KOO5S4vxi0o");
        assert_eq!(ex.value, 0.67);
        assert_eq!(ex.timestamp, Some(ts(1520879607, 789_000_000)));
        let f = ok("# TYPE foo histogram\n\
                    foo_bucket{le=\"0.01\"} 0\n\
                    foo_bucket{le=\"0.1\"} 8 # {} 0.054\n\
                    foo_bucket{le=\"1\"} 11 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
                    foo_bucket{le=\"10\"} 17 # {trace_id=\"oHg5SJYRHA0\"} 9.8 1520879607.789\n\
                    foo_bucket{le=\"+Inf\"} 17\n\
                    foo_count 17\nfoo_sum 324789.3\nfoo_created 1520430000.123\n# EOF\n");
        let extra = f[0].metrics[0].extra.as_ref().unwrap();
        assert!(extra.bucket_exemplar(0).is_none());
        assert_eq!(extra.bucket_exemplar(1).unwrap().labels.len(), 0);
        assert_eq!(extra.bucket_exemplar(2).unwrap().value, 0.67);
        assert_eq!(
            extra.bucket_exemplar(3).unwrap().timestamp,
            Some(ts(1520879607, 789_000_000))
        );
        assert_eq!(extra.created, Some(ts(1520430000, 123_000_000)));
        let long = "x".repeat(120);
        ok(&format!("# TYPE c counter\nc_total 1 # {{trace_id=\"{long}\"}} 1\n# EOF\n")[..]);
        let e = fails(&format!(
            "# TYPE c counter\nc_total 1 # {{trace_id=\"{long}x\"}} 1\n# EOF\n"
        ));
        assert_eq!(e.kind, ErrorKind::ExemplarTooLong { chars: 129 });
        // Characters, not bytes: 64 two-byte characters are 64.
        let wide = "é".repeat(64);
        ok(&format!(
            "# TYPE c counter\nc_total 1 # {{a=\"{wide}\"}} 1\n# EOF\n"
        ));
        for body in [
            "g 1 # {a=\"b\"} 1\n# EOF\n",
            "# TYPE c counter\nc_total 1\nc_created 1 # {a=\"b\"} 1\n# EOF\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1 # {a=\"b\"} 1\nh_sum 1\n# EOF\n",
            "# TYPE s summary\ns{quantile=\"0.5\"} 1 # {a=\"b\"} 1\n# EOF\n",
        ] {
            assert!(
                matches!(fails(body).kind, ErrorKind::ExemplarNotAllowed { .. }),
                "{body:?}"
            );
        }
        assert!(matches!(
            fails("# TYPE h histogram\nh_bucket{le=\"1\"} 1 # {a=\"b\"} 2\nh_bucket{le=\"+Inf\"} 1\n# EOF\n").kind,
            ErrorKind::ExemplarOutsideBucket { .. }
        ));
        for body in [
            "# TYPE c counter\nc_total 1 #{a=\"b\"} 1\n# EOF\n",
            "# TYPE c counter\nc_total 1 # a=\"b\" 1\n# EOF\n",
            "# TYPE c counter\nc_total 1 # {a=\"b\"}\n# EOF\n",
            "# TYPE c counter\nc_total 1 # {a=\"b\"} 1 NaN\n# EOF\n",
            "# TYPE c counter\nc_total 1 # {a=\"b\",a=\"c\"} 1\n# EOF\n",
        ] {
            assert!(
                matches!(
                    fails(body).kind,
                    ErrorKind::Syntax { .. }
                        | ErrorKind::InvalidNumber { .. }
                        | ErrorKind::InvalidTimestamp { .. }
                        | ErrorKind::DuplicateLabel { .. }
                ),
                "{body:?}: {}",
                fails(body)
            );
        }
    }

    #[test]
    fn histograms_need_increasing_cumulative_buckets_up_to_inf() {
        let f = ok(
            "# TYPE h histogram\nh_bucket{a=\"x\",le=\"0.5\"} 1\nh_bucket{le=\"+Inf\",a=\"x\"} 3\nh_count{a=\"x\"} 3\nh_sum{a=\"x\"} 2.5\n# EOF\n",
        );
        assert_eq!(
            f[0].metrics[0].value,
            Value::Histogram(Box::new(Histogram {
                count: 3,
                sum: 2.5,
                buckets: vec![Bucket::new(0.5, 1), Bucket::new(f64::INFINITY, 3)],
                ..Histogram::default()
            }))
        );
        assert_eq!(labels(&f[0].metrics[0]), [("a".into(), "x".into())]);
        // Without sum and count: the count is the +Inf bucket's.
        let f = ok("# TYPE h histogram\nh_bucket{le=\"-1\"} 1\nh_bucket{le=\"+Inf\"} 2.0\n# EOF\n");
        let Value::Histogram(h) = &f[0].metrics[0].value else {
            panic!("a histogram")
        };
        assert_eq!(h.count, 2);
        let cases: &[(&str, Check)] = &[
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\n# EOF\n", |k| {
                matches!(k, ErrorKind::IncompleteSeries { .. })
            }),
            ("# TYPE h histogram\nh_count 1\nh_sum 1\n# EOF\n", |k| {
                matches!(k, ErrorKind::IncompleteSeries { .. })
            }),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n# EOF\n",
                |k| matches!(k, ErrorKind::IncompleteSeries { .. }),
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 2\nh_sum 1\n# EOF\n",
                |k| matches!(k, ErrorKind::IncompleteSeries { .. }),
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"-1\"} 0\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n# EOF\n",
                |k| matches!(k, ErrorKind::IncompleteSeries { .. }),
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n# EOF\n",
                |k| matches!(k, ErrorKind::BucketsOutOfOrder { .. }),
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1\"} 1\n# EOF\n",
                |k| matches!(k, ErrorKind::BucketsOutOfOrder { .. }),
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n# EOF\n",
                |k| matches!(k, ErrorKind::BucketsNotCumulative { .. }),
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1.5\n# EOF\n",
                |k| matches!(k, ErrorKind::InvalidValue { .. }),
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum -1\n# EOF\n",
                |k| matches!(k, ErrorKind::InvalidValue { .. }),
            ),
            ("# TYPE h histogram\nh_bucket 1\n# EOF\n", |k| {
                matches!(k, ErrorKind::MissingLabel { .. })
            }),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n# EOF\n", |k| {
                matches!(k, ErrorKind::InvalidLabelNumber { .. })
            }),
            ("# TYPE h histogram\nh_bucket{le=\"NaN\"} 1\n# EOF\n", |k| {
                matches!(k, ErrorKind::InvalidLabelNumber { .. })
            }),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count{le=\"1\"} 1\n# EOF\n",
                |k| matches!(k, ErrorKind::LabelNotAllowed { .. }),
            ),
        ];
        for (body, check) in cases {
            let e = fails(body);
            assert!(check(&e.kind), "{body:?} gave {e}");
        }
    }

    /// A sample whose name is not one of its family's begins a family
    /// of its own: `foo_created` after a gauge histogram `foo` (which has
    /// no created samples) is an unknown `foo_created`, as the grammar
    /// reads it; the spec only says exposers SHOULD avoid such names.
    #[test]
    fn other_suffixes_begin_families_of_their_own() {
        let f = ok("# TYPE foo gaugehistogram\nfoo_bucket{le=\"+Inf\"} 1\nfoo_created 1\n# EOF\n");
        assert_eq!(&*f[1].name, "foo_created");
        assert_eq!(f[1].metric_type, MetricType::Untyped);
        let f = ok("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_gcount 1\n# EOF\n");
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn gauge_histograms_keep_their_type() {
        let f = ok("# TYPE foo gaugehistogram\n\
                    foo_bucket{le=\"0.01\"} 20.0\nfoo_bucket{le=\"+Inf\"} 42.0 # {id=\"a\"} 3\n\
                    foo_gcount 42.0\nfoo_gsum -3289.3\n# EOF\n");
        assert_eq!(f[0].metric_type, MetricType::GaugeHistogram);
        let Value::Histogram(h) = &f[0].metrics[0].value else {
            panic!("a histogram")
        };
        assert_eq!((h.count, h.sum, h.buckets.len()), (42, -3289.3, 2));
        assert!(
            f[0].metrics[0]
                .extra
                .as_ref()
                .unwrap()
                .bucket_exemplar(1)
                .is_some()
        );
        for body in [
            "# TYPE foo gaugehistogram\nfoo_bucket{le=\"+Inf\"} 1\nfoo_gcount 1\nfoo_gsum NaN\n# EOF\n",
            "# TYPE foo gaugehistogram\nfoo_bucket{le=\"1\"} 1\n# EOF\n",
            "# TYPE foo gaugehistogram\nfoo_bucket{le=\"+Inf\"} 1\nfoo_gsum 1\n# EOF\n",
        ] {
            fails(body);
        }
    }

    #[test]
    fn summaries_have_quantiles_count_sum_created() {
        let f = ok(
            "# TYPE s summary\ns{quantile=\"0.95\"} 123.7\ns{quantile=\"0.99\"} NaN\n\
                    s_count 17\ns_sum 3.5\ns_created 1.5e9\n# EOF\n",
        );
        let Value::Summary(s) = &f[0].metrics[0].value else {
            panic!("a summary")
        };
        assert_eq!((s.count, s.sum), (17, 3.5));
        assert_eq!(s.quantiles[0], (0.95, 123.7));
        assert!(s.quantiles[1].1.is_nan());
        for body in [
            "# TYPE s summary\ns 1\n# EOF\n",
            "# TYPE s summary\ns{quantile=\"1.5\"} 1\n# EOF\n",
            "# TYPE s summary\ns{quantile=\"0.5\"} -1\n# EOF\n",
            "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"0.5\"} 2\n# EOF\n",
            "# TYPE s summary\ns_count{quantile=\"0.5\"} 1\n# EOF\n",
            "# TYPE s summary\ns_count 1.5\n# EOF\n",
            "# TYPE s summary\ns_sum NaN\n# EOF\n",
        ] {
            fails(body);
        }
    }

    #[test]
    fn infos_statesets_and_unknowns_map_as_prometheus_exposes_them() {
        let f = ok(
            "# TYPE foo info\nfoo_info{name=\"pretty name\",version=\"8.2.7\"} 1\n\
                    # TYPE st stateset\nst{entity=\"c\",st=\"a\"} 1.0\nst{entity=\"c\",st=\"bb\"} 0.0\n\
                    # TYPE u unknown\nu 42.23\nv 1\n# EOF\n",
        );
        assert_eq!(&*f[0].name, "foo_info");
        assert_eq!(f[0].metric_type, MetricType::Gauge);
        assert_eq!(f[0].metrics[0].value, Value::Gauge(1.0));
        assert_eq!(&*f[1].name, "st");
        assert_eq!(f[1].metric_type, MetricType::Gauge);
        assert_eq!(f[1].metrics.len(), 2);
        assert_eq!(f[1].metrics[1].value, Value::Gauge(0.0));
        assert_eq!(
            (f[2].metric_type, f[3].metric_type),
            (MetricType::Untyped, MetricType::Untyped)
        );
        assert_eq!(f[2].metrics[0].value, Value::Untyped(42.23));
        for body in [
            "# TYPE foo info\nfoo_info 2\n# EOF\n",
            "# TYPE foo info\nfoo 1\n# EOF\n",
            "# TYPE st stateset\nst{st=\"a\"} 0.5\n# EOF\n",
            "# TYPE st stateset\nst{other=\"a\"} 1\n# EOF\n",
        ] {
            fails(body);
        }
    }

    #[test]
    fn label_values_are_unescaped() {
        let f = ok("a{l=\"q\\\"b\\\\s\\nn\",m=\"\\a\",e=\"\",u=\"ü\"} 1\n# EOF\n");
        let l = labels(&f[0].metrics[0]);
        assert_eq!(l[0], ("e".into(), "".into()));
        assert_eq!(l[1], ("l".into(), "q\"b\\s\nn".into()));
        assert_eq!(l[2], ("m".into(), "\\a".into()));
        assert_eq!(l[3], ("u".into(), "ü".into()));
        fails("a{l=\"x\\\"} 1\n# EOF\n");
    }

    #[test]
    fn numbers_follow_the_grammar() {
        for (s, v) in [
            ("1", 1.0),
            ("-0042", -42.0),
            ("1.", 1.0),
            (".5", 0.5),
            ("+.5e1", 5.0),
            ("1.89e-7", 1.89e-7),
            ("1E3", 1000.0),
            ("1.e5", 1e5),
            ("+Inf", f64::INFINITY),
            ("-infinity", f64::NEG_INFINITY),
            ("inf", f64::INFINITY),
        ] {
            assert_eq!(parse_number(s), Some(v), "{s}");
        }
        assert!(parse_number("NaN").unwrap().is_nan());
        assert!(parse_number("nan").unwrap().is_nan());
        for s in [
            "", ".", "+", "e5", "1e", "1e+", "0x10", "1_000", "+NaN", "1e400", "1.2.3", "Infinit",
            "1 ",
        ] {
            assert_eq!(parse_number(s), None, "{s:?}");
        }
        assert!(matches!(
            fails("a 0x1\n# EOF\n").kind,
            ErrorKind::InvalidNumber { .. }
        ));
    }

    #[test]
    fn timestamps_are_exact_decimals() {
        assert_eq!(
            parse_timestamp("1520430000.123"),
            Some(ts(1520430000, 123_000_000))
        );
        assert_eq!(
            parse_timestamp("1.7966598520239124e+09"),
            Some(ts(1796659852, 23_912_400))
        );
        assert_eq!(parse_timestamp("0.001"), Some(ts(0, 1_000_000)));
        assert_eq!(parse_timestamp("-1.5"), Some(ts(-2, 500_000_000)));
        assert_eq!(parse_timestamp("-2"), Some(ts(-2, 0)));
        assert_eq!(parse_timestamp("000"), Some(ts(0, 0)));
        assert_eq!(parse_timestamp("0e999999999999999999999"), Some(ts(0, 0)));
        assert_eq!(parse_timestamp("1e-12"), Some(ts(0, 0)));
        assert_eq!(parse_timestamp("1e19"), None);
        assert_eq!(
            parse_timestamp("9223372036854775807"),
            Some(ts(i64::MAX, 0))
        );
        assert_eq!(parse_timestamp("9223372036854775808"), None);
    }

    #[test]
    fn sample_timestamps_are_kept_for_the_refusal() {
        let f = ok("a 1 1520879607.789\n# EOF\n");
        assert_eq!(f[0].metrics[0].timestamp_ms(), Some(1_520_879_607_789));
        let f = ok("# TYPE c counter\nc_total 1 1520879607 # {a=\"b\"} 1\n# EOF\n");
        assert!(f[0].metrics[0].timestamp_ms().is_some());
        assert!(matches!(
            fails("a 1 NaN\n# EOF\n").kind,
            ErrorKind::InvalidTimestamp { .. }
        ));
        assert!(matches!(
            fails("a 1 2 3\n# EOF\n").kind,
            ErrorKind::Syntax { .. }
        ));
    }

    /// A meter allowing `limit` bytes in all.
    fn allowing(limit: usize) -> impl FnMut(usize) -> bool {
        let mut used = 0;
        move |n| {
            used += n;
            used <= limit
        }
    }

    #[test]
    fn a_refusing_meter_stops_the_parse_midway() {
        let mut body: String = (0..1000).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
        body.push_str("# EOF\n");
        let mut total = 0;
        parse_metered(body.as_bytes(), &mut |n| {
            total += n;
            true
        })
        .unwrap();
        assert!(total >= 1000 * std::mem::size_of::<Metric>(), "{total}");
        let e = parse_metered(body.as_bytes(), &mut allowing(total / 2)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::OverBudget);
        assert!((400..=600).contains(&e.line), "line {}", e.line);
        assert!(parse_metered(body.as_bytes(), &mut allowing(total)).is_ok());
    }

    /// Many labels on a line and a duplicate after many: found by the set.
    #[test]
    fn duplicate_labels_on_long_lines() {
        let labels: Vec<String> = (0..100).map(|i| format!("l{i}=\"v\"")).collect();
        let line = format!("m{{{}}} 1\n", labels.join(","));
        assert_eq!(
            ok(&format!("{line}# EOF\n"))[0].metrics[0].labels.len(),
            100
        );
        let dup = format!("m{{{},l57=\"w\"}} 1\n# EOF\n", labels.join(","));
        assert!(matches!(
            fails(&dup).kind,
            ErrorKind::DuplicateLabel { ref label } if label == "l57"
        ));
    }
}
