//! A text-exposition parser that normalizes scrapes, so two servers'
//! answers can be compared semantically.

use std::fmt::Write as _;

/// One sample line: name, labels sorted by name, normalized value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: String,
}

/// One metric family as it appears in a scrape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Family {
    pub name: String,
    /// Declared type; "untyped" when no TYPE line was given.
    pub kind: String,
    pub help: Option<String>,
    /// Sorted, so series order does not matter for equality.
    pub samples: Vec<Sample>,
}

/// A whole scrape, families sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposition {
    pub families: Vec<Family>,
}

/// Families owned by the server itself rather than by pushers; they differ
/// between implementations (Go runtime stats, request counters, ...).
pub const INTERNAL_PREFIXES: [&str; 3] = ["go_", "process_", "pushgateway_"];
/// Per-group gauges holding wall-clock times, never equal across servers.
pub const PUSH_TIME_FAMILIES: [&str; 2] = ["push_time_seconds", "push_failure_time_seconds"];

pub fn is_internal(name: &str) -> bool {
    INTERNAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// How to treat the wall-clock push time gauges when normalizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTimes {
    /// Keep the values as they are.
    Keep,
    /// Replace each value by "0" (never) or "nonzero" (some time).
    ZeroOrNonzero,
}

impl Exposition {
    /// Parses text format 0.0.4. Errors name the offending line, so a
    /// malformed scrape from the server under test is reported clearly.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut families: Vec<Family> = Vec::new();
        // Index of the family that the previous HELP/TYPE/sample belongs to.
        let mut current: Option<usize> = None;
        for (i, line) in text.lines().enumerate() {
            let err = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let comment = comment.trim_start_matches([' ', '\t']);
                let (keyword, rest) = split_token(comment);
                if keyword != "HELP" && keyword != "TYPE" {
                    continue; // ordinary comment
                }
                let (name, rest) = split_token(rest);
                if name.is_empty() {
                    return Err(err("HELP/TYPE without metric name"));
                }
                let idx = match current {
                    Some(c) if families[c].name == name => c,
                    _ => {
                        families.push(Family {
                            name: name.to_string(),
                            kind: "untyped".to_string(),
                            help: None,
                            samples: Vec::new(),
                        });
                        families.len() - 1
                    }
                };
                current = Some(idx);
                if keyword == "HELP" {
                    families[idx].help = Some(unescape(rest, false).map_err(|e| err(&e))?);
                } else {
                    families[idx].kind = rest.trim().to_string();
                }
                continue;
            }
            let sample = parse_sample(line).map_err(|e| err(&e))?;
            let idx = match current {
                Some(c) if belongs_to(&families[c], &sample.name) => c,
                _ => {
                    families.push(Family {
                        name: sample.name.clone(),
                        kind: "untyped".to_string(),
                        help: None,
                        samples: Vec::new(),
                    });
                    families.len() - 1
                }
            };
            current = Some(idx);
            families[idx].samples.push(sample);
        }
        for f in &mut families {
            f.samples.sort();
        }
        families.sort();
        Ok(Exposition { families })
    }

    /// Drops the server's own families (see [`INTERNAL_PREFIXES`]).
    pub fn without_internal(mut self) -> Exposition {
        self.families.retain(|f| !is_internal(&f.name));
        self
    }

    /// Applies the push time treatment to the push time gauges.
    pub fn with_push_times(mut self, mode: PushTimes) -> Exposition {
        if mode == PushTimes::ZeroOrNonzero {
            for f in &mut self.families {
                if PUSH_TIME_FAMILIES.contains(&f.name.as_str()) {
                    for s in &mut f.samples {
                        let zero = s.value.parse::<f64>().is_ok_and(|v| v == 0.0);
                        s.value = if zero { "0" } else { "nonzero" }.to_string();
                    }
                    f.samples.sort();
                }
            }
        }
        self
    }

    /// Forgets the HELP text of the named family (where the contract allows
    /// servers to pick a different one of several pushed HELP strings).
    pub fn without_help_of(mut self, names: &[&str]) -> Exposition {
        for f in &mut self.families {
            if names.contains(&f.name.as_str()) {
                f.help = None;
            }
        }
        self
    }

    /// The usual view for comparisons: pushed families only, push times
    /// reduced to zero/nonzero.
    pub fn normalized(text: &str) -> Result<Exposition, String> {
        Ok(Exposition::parse(text)?
            .without_internal()
            .with_push_times(PushTimes::ZeroOrNonzero))
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// One line per HELP, TYPE and sample, in a canonical form, for diffs.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.families {
            if let Some(h) = &f.help {
                out.push(format!("# HELP {} {h:?}", f.name));
            }
            out.push(format!("# TYPE {} {}", f.name, f.kind));
            for s in &f.samples {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                out.push(format!("{}{{{}}} {}", s.name, labels.join(","), s.value));
            }
        }
        out
    }
}

/// Human-readable difference between two expositions, empty when equal.
pub fn diff_expositions(
    left_name: &str,
    left: &Exposition,
    right_name: &str,
    right: &Exposition,
) -> String {
    if left == right {
        return String::new();
    }
    let l = left.lines();
    let r = right.lines();
    let mut out = String::new();
    for line in &l {
        if !r.contains(line) {
            let _ = writeln!(out, "  only in {left_name}:  {line}");
        }
    }
    for line in &r {
        if !l.contains(line) {
            let _ = writeln!(out, "  only in {right_name}: {line}");
        }
    }
    if out.is_empty() {
        out.push_str("  (same lines, different grouping into families)\n");
    }
    let _ = writeln!(out, "--- {left_name} ---\n{}", l.join("\n"));
    let _ = writeln!(out, "--- {right_name} ---\n{}", r.join("\n"));
    out
}

/// The raw scrape text without the server's own families, for byte-level
/// comparisons of formatting. Push time values are masked as with
/// [`PushTimes`] when `mask_push_times` is set.
pub fn strip_internal(text: &str, mask_push_times: bool) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let name = if let Some(c) = line.strip_prefix('#') {
            let (kw, rest) = split_token(c.trim_start());
            if kw == "HELP" || kw == "TYPE" {
                split_token(rest).0
            } else {
                ""
            }
        } else {
            metric_name_of(line)
        };
        if is_internal(name) {
            continue;
        }
        let masked =
            mask_push_times && !line.starts_with('#') && PUSH_TIME_FAMILIES.contains(&name);
        if let Some((series, value)) = line.rsplit_once(' ').filter(|_| masked) {
            let zero = value.parse::<f64>().is_ok_and(|v| v == 0.0);
            let _ = writeln!(out, "{series} {}", if zero { "0" } else { "nonzero" });
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn metric_name_of(line: &str) -> &str {
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    &line[..end]
}

/// Splits off the first whitespace-separated token; the rest keeps its
/// inner spacing but loses the single separator.
fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// Whether a sample named `sample` belongs to family `f` (summaries and
/// histograms spread over several sample names).
fn belongs_to(f: &Family, sample: &str) -> bool {
    if sample == f.name {
        return true;
    }
    let Some(suffix) = sample.strip_prefix(f.name.as_str()) else {
        return false;
    };
    match f.kind.as_str() {
        "summary" => suffix == "_sum" || suffix == "_count",
        "histogram" => suffix == "_sum" || suffix == "_count" || suffix == "_bucket",
        _ => false,
    }
}

/// Undoes text-format escapes: `\\` and `\n` everywhere, `\"` in label values.
fn unescape(s: &str, label_value: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label_value => out.push('"'),
            // Go's parser keeps unknown escapes in HELP verbatim.
            Some(other) if !label_value => {
                out.push('\\');
                out.push(other);
            }
            other => return Err(format!("bad escape \\{other:?}")),
        }
    }
    Ok(out)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name = metric_name_of(line);
    if name.is_empty() {
        return Err("sample without metric name".to_string());
    }
    let mut rest = &line[name.len()..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let mut tokens = rest.split_whitespace();
    let raw_value = tokens.next().ok_or("sample without value")?;
    if tokens.next().is_some() {
        // Gateways never expose timestamps; a timestamp is a difference.
        return Err("sample carries a timestamp".to_string());
    }
    labels.sort();
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: normalize_value(raw_value),
    })
}

/// Label pairs of one series.
pub type Labels = Vec<(String, String)>;

/// Parses `name="value",...}` and returns the labels and what follows `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(tail) = s.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value not quoted")?;
        // Find the closing quote, skipping escaped characters.
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return Err("unterminated label value".to_string());
        }
        labels.push((name, unescape(&s[..i], true)?));
        s = s[i + 1..].trim_start();
        if let Some(tail) = s.strip_prefix(',') {
            s = tail;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after label".to_string());
        }
    }
}

/// Canonical spelling of a sample value, so `1e+06` equals `1000000`.
pub fn normalize_value(raw: &str) -> String {
    match raw.parse::<f64>() {
        Ok(v) if v.is_nan() => "NaN".to_string(),
        Ok(v) if v == f64::INFINITY => "+Inf".to_string(),
        Ok(v) if v == f64::NEG_INFINITY => "-Inf".to_string(),
        Ok(v) => format!("{v:e}"),
        // Rust does not read Go's "+Inf"; anything else stays visible as is.
        Err(_) => match raw {
            "+Inf" | "+inf" => "+Inf".to_string(),
            _ => format!("unparsed:{raw}"),
        },
    }
}
