//! Taking over the Go Pushgateway's persistence file at start-up.
//!
//! The order keeps a complete file at `<file>` at every instant: decode
//! everything and restore it into the store (nothing on disk changes yet);
//! keep the gob file as `<file>.gob-imported` (a copy, fsynced); only then
//! write our snapshot over `<file>` with [`write_atomically`]. A crash before the last step leaves
//! the gob file in place and the next start imports it again; the kept copy
//! is then identical and reused.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{Place, RestoreError, dir_of, gob, restore_groups, temp_path, write_atomically};
use crate::store::Store;

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

/// Where the imported gob file is kept.
pub(crate) fn aside_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".gob-imported");
    path.with_file_name(name)
}

/// Imports the gob file `data` read from `path` into `store`, keeps it
/// aside and writes our snapshot in its place. Returns the group count.
pub(crate) fn import(path: &Path, data: &[u8], store: &mut Store) -> Result<usize, RestoreError> {
    let groups = gob::read(data).map_err(|err| RestoreError::Gob {
        path: path.into(),
        err,
    })?;
    let count = restore_groups(path, groups, store, Place::Byte)?;
    let fail = |why| RestoreError::Import {
        path: path.into(),
        why,
    };
    let aside = aside_path(path);
    keep_aside(path, &aside, data).map_err(fail)?;
    write_atomically(path, &store.snapshot()).map_err(|e| fail(ImportError::WriteSnapshot(e)))?;
    log::info!(file:display = path.display(), groups = count, original:display = aside.display(); "imported the Go Pushgateway's persistence file; it now holds this gateway's snapshot and the original is kept");
    Ok(count)
}

/// Makes `aside` a durable copy of `data` (the content of `path`), with
/// the same permissions (the Go gateway writes 0600): written under a
/// temporary name, fsynced, renamed, the directory fsynced, so `aside` is
/// never a partial file. A copy rather than a hard link: it works on every
/// file system and is one code path.
fn keep_aside(path: &Path, aside: &Path, data: &[u8]) -> Result<(), ImportError> {
    match fs::read(aside) {
        Ok(old) if old == data => return Ok(()),
        Ok(_) => return Err(ImportError::AsideDiffers(aside.into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(ImportError::KeepAside {
                aside: aside.into(),
                err,
            });
        }
    }
    let tmp = temp_path(aside);
    let result = fs::write(&tmp, data)
        .and_then(|()| fs::set_permissions(&tmp, fs::metadata(path)?.permissions()))
        .and_then(|()| File::open(&tmp)?.sync_all())
        .and_then(|()| fs::rename(&tmp, aside))
        .and_then(|()| super::sync_dir(dir_of(aside)));
    result.map_err(|err| {
        let _ = fs::remove_file(&tmp);
        ImportError::KeepAside {
            aside: aside.into(),
            err,
        }
    })
}
