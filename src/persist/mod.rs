//! Writing the snapshot to disk without ever tearing or losing the old one,
//! and reading it back at start-up.
//!
//! A write renders the snapshot into `<file>.in_progress` in the same
//! directory, fsyncs it, renames it over the file and fsyncs the directory
//! (`file.rs`). A crash at any moment leaves either the old complete file
//! or the new complete one. Writes run on a dedicated writer thread over a
//! shared, copy-on-write view of the groups (`Store::snapshot`), so the
//! loop pauses only to collect the group pointers, not to render or to
//! wait for the disk; scheduling stays in the loop (`writer.rs`).
//!
//! At start-up, `restore.rs` reads the file back on every core, or
//! `import.rs` takes over the Go gateway's (`gob.rs`); `error.rs` says why
//! either failed. The file's format is `snapshot/`.

mod error;
mod file;
pub(crate) mod gob;
mod import;
mod restore;
pub(crate) mod snapshot;
mod writer;

pub(crate) use error::RestoreError;
pub(crate) use file::move_aside;
pub(crate) use restore::restore;
pub(crate) use writer::Persistence;
