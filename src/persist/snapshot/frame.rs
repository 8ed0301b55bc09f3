//! The file around the records: its header, the end record and its
//! checksum, and the cutting of the records into stretches that several
//! threads read at once.

use std::ops::Range;

use super::error::{SnapshotError, SnapshotErrorKind};
use super::version::{MAGIC, VERSION};

/// Whether `data`, which does not start with [`MAGIC`], is rather a Go
/// Pushgateway gob file: gob streams start with a length byte and type
/// definitions, never with printable text like ours.
pub(crate) fn looks_gob(data: &[u8]) -> bool {
    data.len() > 2 && !data[..16.min(data.len())].iter().all(|b| b.is_ascii())
}

/// Where the records start: after the first line, once it is known to be
/// a snapshot header of a version this reader knows.
pub(crate) fn body_start(data: &[u8]) -> Result<usize, SnapshotError> {
    let err = |kind| SnapshotError { line: 1, kind };
    if data.is_empty() {
        return Err(err(SnapshotErrorKind::Empty));
    }
    if !data.starts_with(MAGIC.as_bytes()) {
        // Go's gob streams start with a length byte and type definitions,
        // never with printable text like ours.
        let kind = if looks_gob(data) {
            SnapshotErrorKind::GoGobFile
        } else {
            SnapshotErrorKind::NotASnapshot
        };
        return Err(err(kind));
    }
    let Some(end) = data.iter().position(|b| *b == b'\n') else {
        return Err(err(SnapshotErrorKind::Truncated));
    };
    let first = std::str::from_utf8(&data[..end]).map_err(|e| not_utf8(data, e.valid_up_to()))?;
    match first[MAGIC.len()..].trim().parse::<u32>() {
        Ok(1 | VERSION) => Ok(end + 1),
        Ok(v) if v > VERSION => Err(err(SnapshotErrorKind::FutureVersion(v))),
        _ => Err(err(SnapshotErrorKind::NotASnapshot)),
    }
}

pub(super) fn not_utf8(data: &[u8], valid_up_to: usize) -> SnapshotError {
    SnapshotError {
        line: lines_before(data, valid_up_to) + 1,
        kind: SnapshotErrorKind::NotUtf8,
    }
}

/// How many lines end before byte `pos`.
pub(crate) fn lines_before(data: &[u8], pos: usize) -> usize {
    data[..pos].iter().filter(|b| **b == b'\n').count()
}

/// The records from `body` on, cut into at most `n` stretches of whole
/// groups (each but the first starts at a `group` record), to be read on
/// `n` threads. Small files are one stretch.
pub(crate) fn cut(data: &[u8], body: usize, n: usize) -> Vec<Range<usize>> {
    const MIN_STRETCH: usize = 1 << 20;
    let n = n.min((data.len() - body) / MIN_STRETCH).max(1);
    let mut starts = vec![body];
    for k in 1..n {
        let target = body + (data.len() - body) * k / n;
        let from = target.max(*starts.last().unwrap_or(&body));
        let next = data[from..]
            .windows(7)
            .position(|w| w == b"\ngroup ")
            .map(|i| from + i + 1);
        match next {
            Some(at) if at > *starts.last().unwrap_or(&body) => starts.push(at),
            _ => break,
        }
    }
    let mut ends: Vec<usize> = starts[1..].to_vec();
    ends.push(data.len());
    starts.into_iter().zip(ends).map(|(a, b)| a..b).collect()
}

/// What one stretch of a snapshot held.
pub(crate) struct Stretch {
    /// Groups handed to `each`.
    pub groups: usize,
    pub(super) series: usize,
    pub(super) end: Option<EndRecord>,
    pub(super) lines: usize,
    /// `each` asked to stop.
    pub(super) stopped: bool,
}

impl Stretch {
    pub(super) fn stopped(groups: usize) -> Stretch {
        Stretch {
            groups,
            series: 0,
            end: None,
            lines: 0,
            stopped: true,
        }
    }
}

/// The end record: its line (in its stretch) and the counts it states.
pub(super) struct EndRecord {
    pub(super) line: usize,
    pub(super) groups: usize,
    pub(super) series: usize,
}

/// Checks the stretches of a whole file, read in order: the end record
/// closes the last one and states the right counts. Lines in `stretches`
/// count from their stretch's start. Returns the groups read.
pub(crate) fn finish(
    data: &[u8],
    stretches: &[(Range<usize>, Stretch)],
) -> Result<usize, SnapshotError> {
    let line = |range: &Range<usize>, rel: usize| lines_before(data, range.start) + rel;
    let groups = stretches.iter().map(|(_, s)| s.groups).sum();
    let series = stretches.iter().map(|(_, s)| s.series).sum();
    if stretches.iter().any(|(_, s)| s.stopped) {
        // Its reader's consumer failed, and reports why.
        return Ok(groups);
    }
    let last = stretches.len().saturating_sub(1);
    for (i, (range, s)) in stretches.iter().enumerate() {
        match &s.end {
            Some(end) if i < last => {
                let kind = SnapshotErrorKind::DataAfterEnd;
                return Err(SnapshotError {
                    line: line(range, end.line + 1),
                    kind,
                });
            }
            Some(end) if i == last => {
                for (what, stated, found) in [
                    ("groups", end.groups, groups),
                    ("series", end.series, series),
                ] {
                    if stated != found {
                        let kind = SnapshotErrorKind::CountMismatch {
                            what,
                            stated,
                            found,
                        };
                        return Err(SnapshotError {
                            line: line(range, end.line),
                            kind,
                        });
                    }
                }
                return Ok(groups);
            }
            _ => {}
        }
    }
    // No end record: the file stops at the last line of the last stretch.
    let last_line = stretches
        .last()
        .map_or(1, |(range, s)| line(range, s.lines.max(1)));
    Err(SnapshotError {
        line: last_line,
        kind: SnapshotErrorKind::Truncated,
    })
}

/// Checks the end record's CRC-32 before anything is parsed, so that a
/// damaged file (a flipped bit, a half-copied file) is reported as damaged
/// rather than as whatever the damage happens to look like. Only this
/// version has the checksum: version 1 files have none, and a future
/// version is reported as such by the parser, as is a file without an end
/// record (truncated).
pub(crate) fn verify_checksum(data: &[u8]) -> Result<(), SnapshotError> {
    if !data.starts_with(format!("{MAGIC} {VERSION}\n").as_bytes()) {
        return Ok(());
    }
    let Some(body) = data.strip_suffix(b"\n") else {
        return Ok(());
    };
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let Some(end) = body[start..].strip_prefix(b"end ") else {
        return Ok(());
    };
    let line = body.iter().filter(|b| **b == b'\n').count() + 1;
    let stated = end
        .split(|b| *b == b' ')
        .find_map(|part| part.strip_prefix(b"crc32="))
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .and_then(|hex| u32::from_str_radix(hex, 16).ok());
    let Some(stated) = stated else {
        let why = "missing crc32= (every version 2 file has one)".into();
        let kind = SnapshotErrorKind::Malformed { record: "end", why };
        return Err(SnapshotError { line, kind });
    };
    let computed = crc32fast::hash(&data[..start]);
    if stated != computed {
        let kind = SnapshotErrorKind::ChecksumMismatch { stated, computed };
        return Err(SnapshotError { line, kind });
    }
    Ok(())
}
