//! The pieces records are made of, written and read: names, label sets,
//! floats and HELP texts; and the sharing of labels while reading.

use std::io::Write;
use std::sync::Arc;

use crate::model::{Label, PairKey};
use crate::wire::exposition;

/// Rust's shortest round-trip form, formatted straight into `out` (a
/// `Vec` takes every write).
pub(super) fn write_f64(out: &mut Vec<u8>, f: f64) {
    let _ = write!(out, "{f:?}");
}

pub(super) fn write_labels<'a>(out: &mut Vec<u8>, labels: impl IntoIterator<Item = &'a Label>) {
    out.push(b'{');
    for (i, l) in labels.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_name(out, &l.name);
        out.extend_from_slice(b"=\"");
        exposition::escape_into(out, &l.value, true);
        out.push(b'"');
    }
    out.push(b'}');
}

pub(super) fn unescape_help(s: &str) -> Result<String, String> {
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
            other => {
                return Err(format!(
                    "invalid escape \\{}",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

/// Parses `{a="b",c="d"}` at the start of `s`; returns the labels and the
/// rest of the line.
/// A name at the start of `s`: classic characters as they are, anything
/// else quoted and escaped. Returns the name and the rest.
pub(super) fn read_name(s: &str) -> Result<(std::borrow::Cow<'_, str>, &str), String> {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(s.len());
        return Ok((s[..end].into(), &s[end..]));
    };
    let mut name = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((name.into(), &quoted[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => name.push('\\'),
                Some((_, '"')) => name.push('"'),
                Some((_, 'n')) => name.push('\n'),
                _ => return Err("invalid escape in a quoted name".into()),
            },
            c => name.push(c),
        }
    }
    Err("unterminated quoted name".into())
}

/// Writes a name plainly when it is a classic one, else quoted.
pub(super) fn write_name(out: &mut Vec<u8>, name: &str) {
    if crate::model::is_valid_metric_name(name) {
        out.extend_from_slice(name.as_bytes());
        return;
    }
    out.push(b'"');
    exposition::escape_into(out, name, true);
    out.push(b'"');
}

pub(super) fn parse_labels(s: &str) -> Result<(Vec<Label>, &str), String> {
    parse_labels_shared(s, &mut Strings::default())
}

/// Labels already seen in this file, shared instead of allocated again:
/// a snapshot repeats them on every series (`job`, one `instance` per
/// group, one value per shard), and a restore of a million series
/// otherwise spends its time in the allocator. Pairs are shared whole, as
/// the store's interner shares them, so a restored store has the layout of
/// a filled one.
#[derive(Default)]
pub(crate) struct Strings {
    strings: std::collections::HashSet<Arc<str>>,
    pairs: std::collections::HashSet<Label>,
    /// The labels of the last series read, by position: most series
    /// repeat most of the previous one's (the grouping labels, a host),
    /// and comparing is cheaper than hashing.
    recent: Vec<Label>,
}

impl Strings {
    /// Past this many distinct strings (or pairs) the sets start over, so
    /// a file of unique values does not keep a second copy of them all.
    const MAX: usize = 1 << 16;

    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(s) {
            return Arc::clone(shared);
        }
        if self.strings.len() >= Self::MAX {
            self.strings.clear();
        }
        let new: Arc<str> = s.into();
        self.strings.insert(Arc::clone(&new));
        new
    }

    fn label(&mut self, name: &str, value: &str) -> Label {
        if let Some(shared) = self.pairs.get(&(name, value) as &dyn PairKey) {
            return shared.clone();
        }
        if self.pairs.len() >= Self::MAX {
            self.pairs.clear();
        }
        let new = Label::from_parts(self.get(name), self.get(value));
        self.pairs.insert(new.clone());
        new
    }

    /// [`Strings::label`] for the label at `position` in its series.
    fn label_at(&mut self, position: usize, name: &str, value: &str) -> Label {
        if let Some(l) = self.recent.get(position)
            && *l.name == *name
            && *l.value == *value
        {
            return l.clone();
        }
        let l = self.label(name, value);
        match self.recent.get_mut(position) {
            Some(slot) => *slot = l.clone(),
            None => self.recent.push(l.clone()),
        }
        l
    }

    /// The labels shared so far, for the store's interner to adopt.
    pub(crate) fn into_labels(self) -> impl Iterator<Item = Label> {
        self.pairs.into_iter()
    }
}

/// [`parse_labels`] sharing strings through `strings`.
pub(super) fn parse_labels_shared<'a>(
    s: &'a str,
    strings: &mut Strings,
) -> Result<(Vec<Label>, &'a str), String> {
    let mut rest = s.strip_prefix('{').ok_or("expected '{'")?;
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('}') {
        return Ok((labels, r));
    }
    loop {
        let (name, after) = read_name(rest)?;
        let name = &*name;
        if name.is_empty() {
            return Err("empty label name".into());
        }
        rest = after.strip_prefix("=\"").ok_or("expected name=\"value\"")?;
        // Most values hold no escapes: take them as they are.
        if let Some(end) = rest
            .find(['"', '\\'])
            .filter(|&i| rest.as_bytes()[i] == b'"')
        {
            let value = &rest[..end];
            labels.push(strings.label_at(labels.len(), name, value));
            rest = &rest[end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
                continue;
            } else if let Some(r) = rest.strip_prefix('}') {
                return Ok((labels, r));
            }
            return Err("expected ',' or '}' after a label".into());
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {name:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err(format!("invalid escape in value of label {name:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push(strings.label_at(labels.len(), name, &value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        } else {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

pub(super) fn parse_f64(s: &str) -> Result<f64, String> {
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}
