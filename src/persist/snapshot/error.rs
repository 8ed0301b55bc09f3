//! What can be wrong with a snapshot, and on which line.

use std::fmt;

use super::version::{MAGIC, VERSION};

#[derive(Debug, PartialEq)]
pub(crate) struct SnapshotError {
    pub line: usize,
    pub kind: SnapshotErrorKind,
}

#[derive(Debug, PartialEq)]
pub(crate) enum SnapshotErrorKind {
    Empty,
    GoGobFile,
    NotASnapshot,
    FutureVersion(u32),
    NotUtf8,
    UnknownRecord(String),
    OutsideGroup(&'static str),
    OutsideFamily(&'static str),
    OutsideSeries(&'static str),
    Malformed {
        record: &'static str,
        why: String,
    },
    Truncated,
    CountMismatch {
        what: &'static str,
        stated: usize,
        found: usize,
    },
    DataAfterEnd,
    ChecksumMismatch {
        stated: u32,
        computed: u32,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SnapshotErrorKind::*;
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            Empty => f.write_str(
                "the file is empty (a complete snapshot has at least a header and an end line)",
            ),
            GoGobFile => f.write_str(
                "this is a persistence file of the Go Pushgateway (gob format), not a snapshot; \
                 it is imported at start-up, not read as a snapshot",
            ),
            NotASnapshot => write!(
                f,
                "not a pushgateway snapshot (the first line must be \"{MAGIC} {VERSION}\")"
            ),
            FutureVersion(v) => write!(
                f,
                "snapshot format version {v} was written by a newer pushgateway; this one reads version {VERSION}"
            ),
            NotUtf8 => f.write_str("not valid UTF-8"),
            UnknownRecord(r) => write!(f, "unknown record {r:?}"),
            OutsideGroup(r) => write!(f, "{r} record before any group record"),
            OutsideFamily(r) => write!(f, "{r} record before any family record"),
            OutsideSeries(r) => write!(f, "{r} record before any series record of its family"),
            Malformed { record, why } => write!(f, "malformed {record} record: {why}"),
            Truncated => f.write_str("the file ends without its end record: it is truncated"),
            CountMismatch {
                what,
                stated,
                found,
            } => {
                write!(
                    f,
                    "end record states {stated} {what} but the file holds {found}"
                )
            }
            DataAfterEnd => f.write_str("data after the end record"),
            ChecksumMismatch { stated, computed } => write!(
                f,
                "the end record states crc32={stated:08x} but the file before it hashes to \
                 {computed:08x}: the file is damaged (a changed byte, or a partial copy)"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {}
