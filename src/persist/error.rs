//! Why a restore or an import failed, and where in the file.

use std::io;
use std::path::PathBuf;

use super::{gob, snapshot};
use crate::store;

/// Why the store could not be restored.
pub(crate) enum RestoreError {
    Read {
        path: PathBuf,
        err: io::Error,
    },
    Format {
        path: PathBuf,
        err: snapshot::SnapshotError,
    },
    /// The Go Pushgateway's file does not decode.
    Gob {
        path: PathBuf,
        err: gob::GobError,
    },
    Inconsistent {
        path: PathBuf,
        place: Place,
        group: String,
        err: Box<store::PushError>,
    },
    /// An imported gob file could not be kept aside, or our snapshot
    /// could not replace it.
    Import {
        path: PathBuf,
        why: ImportError,
    },
    NotWritable {
        dir: PathBuf,
        err: io::Error,
    },
}

/// Where in a persistence file a group starts.
#[derive(Clone, Copy)]
pub(crate) enum Place {
    /// In our snapshot, a line.
    Line(usize),
    /// In a Go gob file, a byte offset.
    Byte(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Byte(n) => write!(f, "byte {n}"),
        }
    }
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreError::Read { path, err } => {
                write!(f, "cannot read persistence file {}: {err}", path.display())
            }
            RestoreError::Format { path, err } => {
                write!(f, "persistence file {}: {err}", path.display())
            }
            RestoreError::Gob { path, err } => write!(
                f,
                "persistence file {} (the Go Pushgateway's gob format) cannot be imported: {err}",
                path.display()
            ),
            RestoreError::Inconsistent {
                path,
                place,
                group,
                err,
            } => write!(
                f,
                "persistence file {}: {place}: group {group} is inconsistent with the groups before it: {err}",
                path.display()
            ),
            RestoreError::Import { path, why } => write!(
                f,
                "importing the Go Pushgateway's persistence file {}: {why}",
                path.display()
            ),
            RestoreError::NotWritable { dir, err } => write!(
                f,
                "persistence directory {} is not writable ({err}); metrics could not be saved",
                dir.display()
            ),
        }
    }
}

/// As Display: messages never show Debug output, and a derived one would
/// only add to the static binary.
impl std::fmt::Debug for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for RestoreError {}

/// Why an imported file could not be kept or replaced.
pub(crate) enum ImportError {
    /// `<file>.gob-imported` exists and holds something else.
    AsideDiffers(PathBuf),
    KeepAside {
        aside: PathBuf,
        err: io::Error,
    },
    WriteSnapshot(io::Error),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::AsideDiffers(aside) => write!(
                f,
                "{} already exists with different content; it is not overwritten \
                 (move it away if it is no longer needed, then start again)",
                aside.display()
            ),
            ImportError::KeepAside { aside, err } => {
                write!(f, "cannot keep the original as {}: {err}", aside.display())
            }
            ImportError::WriteSnapshot(err) => write!(f, "{err}"),
        }
    }
}

/// As Display; a derived Debug would only add to the static binary.
impl std::fmt::Debug for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
