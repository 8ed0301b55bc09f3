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

use super::error::{ImportError, Place, RestoreError};
use super::file::{dir_of, sync_dir, temp_path, write_atomically};
use super::{gob, snapshot};
use crate::store::{self, Store};

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
        .and_then(|()| sync_dir(dir_of(aside)));
    result.map_err(|err| {
        let _ = fs::remove_file(&tmp);
        ImportError::KeepAside {
            aside: aside.into(),
            err,
        }
    })
}

/// Puts restored groups into `store`; `place` says where each one started
/// (its `line` field), for the error message.
fn restore_groups(
    path: &Path,
    groups: Vec<snapshot::RestoredGroup>,
    store: &mut Store,
    place: fn(usize) -> Place,
) -> Result<usize, RestoreError> {
    let count = groups.len();
    for g in groups {
        let (at, group) = (g.line, store::show_labels(&g.key));
        g.restore_into(store)
            .map_err(|err| RestoreError::Inconsistent {
                path: path.into(),
                place: place(at),
                group,
                err: Box::new(err),
            })?;
    }
    Ok(count)
}
