//! The snapshot file on disk: written beside itself and renamed over
//! (never torn, the old one kept until the new one is complete), its
//! directory synced, an unreadable one moved aside.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::snapshot;
use crate::contract::WriteStats;
use crate::store::{Group, GroupKey};

/// The temporary file a write goes to before it is renamed over `path`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".in_progress");
    path.with_file_name(name)
}

pub(super) fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable: fsyncs the directory. Windows has no
/// such call in std (a directory cannot be opened as a file without a flag
/// std does not pass) and NTFS journals the rename itself, so there it
/// does nothing.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(not(windows))]
    File::open(dir)?.sync_all()?;
    #[cfg(windows)]
    let _ = dir;
    Ok(())
}

/// Writes a snapshot next to `path`, fsyncs it, renames it over `path`
/// and fsyncs the directory. On error the old file is untouched and the
/// temporary file removed.
pub(crate) fn write_atomically(
    path: &Path,
    groups: &[(GroupKey, Arc<Group>)],
) -> io::Result<WriteStats> {
    let started = Instant::now();
    let tmp = temp_path(path);
    let result = (|| -> io::Result<u64> {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        snapshot::write(&mut w, groups)?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir_of(path))?;
        Ok(bytes)
    })();
    match result {
        Ok(bytes) => Ok(WriteStats {
            groups: groups.len(),
            bytes,
            duration: started.elapsed(),
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(io::Error::new(
                e.kind(),
                format!("writing {}: {e}", path.display()),
            ))
        }
    }
}

/// Moves an unreadable persistence file aside so that starting empty does
/// not overwrite it. Returns the new name.
pub(crate) fn move_aside(path: &Path) -> io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".corrupt-{secs}"));
    let aside = path.with_file_name(name);
    fs::rename(path, &aside)?;
    Ok(aside)
}
