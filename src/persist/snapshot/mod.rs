//! The persistence file format: plain text a person can read and grep.
//!
//! ```text
//! pushgateway-snapshot 2
//! # Written by pushgateway 0.1.0. Format: see docs/persistence.md.
//! group {instance="some_instance",job="some_job"}
//! times 1795578956809069400 -
//! family another_metric gauge 1795578956809069400
//! help Just an example.
//! series {instance="some_instance",job="some_job"} 2398.283
//! family rpc summary 1795578956809069400
//! series {instance="",job="batch"} sum=10 count=5 0.5:1 0.9:2
//! end groups=2 series=2
//! ```
//!
//! Each record is one line starting with a keyword. `times` holds the push
//! and failure times in nanoseconds since the epoch (`-` for never). Labels
//! are escaped as in the exposition format; `help` escapes `\\` and `\n`.
//! Floats are written in Rust's shortest round-trip form (`1e-7`, `NaN`,
//! `inf`, `-0.0`) and counts as integers, so everything comes back bit for
//! bit. The final `end` line, with its counts, tells a complete file from a
//! truncated one.
//!
//! Writing and reading are pure functions over a writer and bytes.

mod error;
mod extras;
mod fields;
mod frame;
mod read;
mod records;
#[cfg(test)]
mod tests;
mod version;
mod write;

pub(crate) use error::{SnapshotError, SnapshotErrorKind};
pub(crate) use fields::Strings;
pub(crate) use frame::{
    Stretch, body_start, cut, finish, lines_before, looks_gob, verify_checksum,
};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use read::read;
pub(crate) use read::read_stretch;
pub(crate) use records::{PreparedGroup, RestoredGroup};
pub(crate) use version::MAGIC;
#[cfg(test)]
pub(crate) use write::reseal;
pub(crate) use write::write;
