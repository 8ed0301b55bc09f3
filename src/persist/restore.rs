//! Restoring a snapshot on every core.
//!
//! The file is cut at `group` records into one stretch per core. Each
//! stretch is checked (UTF-8), parsed and prepared (labels shared, lines
//! rendered, series hashed) on a thread of its own (jobs spread over the
//! cores by the pool, `crate::pool::spread`), while this thread puts
//! the groups into the store as they come, and one more thread checks the
//! CRC-32. A restart then costs about the parsing divided by the cores,
//! not the sum of reading and applying, and never holds the parsed form of
//! the whole file.
//!
//! Groups from different stretches arrive interleaved. A consistent file
//! (every file the gateway writes) restores the same in any order; an
//! inconsistent one is refused either way, naming one of the two groups.
//! Errors are reported as a one-threaded read would meet them first: bad
//! UTF-8 anywhere, then a damaged file (checksum), then the first
//! stretch's malformed record, then an inconsistent group, then the end
//! record's counts.

use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, mpsc};

use super::error::{Place, RestoreError};
use super::file::{dir_of, temp_path};
use super::import;
use super::snapshot::{self, SnapshotError, SnapshotErrorKind, Stretch, Strings};
use crate::pool::spread;
use crate::store::{self, Store};

/// Restores `store` from `path`. A missing file is a normal first start.
/// Also removes a temporary file left by a crash mid-write, and checks that
/// the directory is writable, so a misconfiguration shows at start-up rather
/// than five minutes later.
pub(crate) fn restore(path: &Path, store: &mut Store) -> Result<usize, RestoreError> {
    let tmp = temp_path(path);
    if tmp.exists() {
        log::warn!(file:display = tmp.display(); "removing incomplete snapshot left by an interrupted write");
        let _ = fs::remove_file(&tmp);
    }
    check_writable(dir_of(path))?;
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            log::info!(file:display = path.display(); "no persistence file yet; starting empty");
            return Ok(0);
        }
        Err(err) => {
            return Err(RestoreError::Read {
                path: path.into(),
                err,
            });
        }
    };
    if !data.starts_with(snapshot::MAGIC.as_bytes()) && snapshot::looks_gob(&data) {
        return import::import(path, &data, store);
    }
    restore_parallel(path, data, store)
}

fn check_writable(dir: &Path) -> Result<(), RestoreError> {
    let probe = dir.join(format!(".pushgateway-write-test-{}", std::process::id()));
    let result = File::create(&probe).and_then(|f| f.sync_all());
    let _ = fs::remove_file(&probe);
    result.map_err(|err| RestoreError::NotWritable {
        dir: dir.into(),
        err,
    })
}

/// A prepared group on its way to the store: its stretch, its line in
/// that stretch, and its key as shown in errors.
type Item = (usize, usize, String, snapshot::PreparedGroup);

fn restore_parallel(path: &Path, data: Vec<u8>, store: &mut Store) -> Result<usize, RestoreError> {
    restore_in(path, Arc::new(data), store, crate::pool::cores())
}

/// [`restore_parallel`] on at most `threads` readers.
///
/// The readers and the checksum are jobs [`spread`] over the cores: at
/// start-up nothing else runs there, and there are threads for all of
/// them at once, which the readers need (each waits for this thread to
/// take its groups).
fn restore_in(
    path: &Path,
    data: Arc<Vec<u8>>,
    store: &mut Store,
    threads: usize,
) -> Result<usize, RestoreError> {
    let format = |err| RestoreError::Format {
        path: path.into(),
        err,
    };
    let body = snapshot::body_start(&data).map_err(format)?;
    let stretches = snapshot::cut(&data, body, threads);
    // Absolute line of line `rel` of stretch `k`.
    let line = |k: usize, rel: usize| snapshot::lines_before(&data, stretches[k].start) + rel;
    let (tx, rx) = mpsc::sync_channel::<Item>(256);
    let checksum = {
        let data = Arc::clone(&data);
        spread(move || snapshot::verify_checksum(&data))
    };
    let readers: Vec<_> = stretches
        .iter()
        .enumerate()
        .map(|(k, range)| {
            let (tx, range, data) = (tx.clone(), range.clone(), Arc::clone(&data));
            spread(move || read(&data, k, range, &tx))
        })
        .collect();
    drop(tx);
    let mut applied: Result<usize, RestoreError> = Ok(0);
    for (k, rel, group, ready) in rx.iter() {
        if let Err(err) = ready.apply(store) {
            applied = Err(RestoreError::Inconsistent {
                path: path.into(),
                place: Place::Line(line(k, rel)),
                group,
                err: Box::new(err),
            });
            break;
        }
        applied = applied.map(|n| n + 1);
    }
    // Dropping the receiver stops the readers still sending.
    drop(rx);
    let mut read: Vec<(Range<usize>, Result<Stretch, SnapshotError>)> = Vec::new();
    for (reader, range) in readers.into_iter().zip(&stretches) {
        let (stretch, strings) = reader.join();
        // Restored labels went past the interner: it learns them now,
        // so that later pushes share them.
        store.adopt_labels(strings.into_labels());
        read.push((range.clone(), stretch));
    }
    let checksum = checksum.join();
    // The first error of each kind, its line made absolute.
    let mut stretches: Vec<(Range<usize>, Stretch)> = Vec::new();
    let (mut utf8, mut malformed) = (None, None);
    for (k, (range, r)) in read.into_iter().enumerate() {
        match r {
            Ok(s) => stretches.push((range, s)),
            Err(mut e) => {
                e.line = line(k, e.line);
                let first = if e.kind == SnapshotErrorKind::NotUtf8 {
                    &mut utf8
                } else {
                    &mut malformed
                };
                first.get_or_insert(e);
            }
        }
    }
    if let Some(e) = utf8 {
        return Err(format(e));
    }
    checksum.map_err(format)?;
    if let Some(e) = malformed {
        return Err(format(e));
    }
    let count = applied?;
    snapshot::finish(&data, &stretches).map_err(format)?;
    Ok(count)
}

/// One reader: stretch `k` of `data`, each group prepared and sent.
fn read(
    data: &[u8],
    k: usize,
    range: Range<usize>,
    tx: &mpsc::SyncSender<Item>,
) -> (Result<Stretch, SnapshotError>, Strings) {
    let mut strings = Strings::default();
    let read = snapshot::read_stretch(data, range, &mut strings, &mut |g| {
        let (rel, shown) = (g.line, store::show_labels(&g.key));
        tx.send((k, rel, shown, g.prepare())).is_ok()
    });
    (read, strings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;
    use crate::persist::snapshot::reseal;
    use crate::telemetry::GatewayFamilies;

    /// A store of `groups` groups of 40 series each: about 2.3 kB of
    /// snapshot per group.
    fn store(groups: usize) -> Store {
        let mut store = Store::new();
        for g in 0..groups {
            let key: Vec<Label> = vec![
                Label::new("instance", &format!("i{g}")),
                Label::new("job", "j"),
            ];
            let mut body = String::new();
            for s in 0..40 {
                body.push_str(&format!(
                    "m{}{{host=\"h{g}.example.org\",s=\"{s}\"}} {}\n",
                    s % 4,
                    g * 40 + s
                ));
            }
            let fams = crate::wire::text_format::parse(body.as_bytes()).unwrap();
            let push = store::prepare_push(key.into(), fams, true).unwrap();
            store.check(&push, &GatewayFamilies).unwrap();
            store.apply(push, 1_700_000_000_000_000_000 + g as i64);
        }
        store
    }

    fn snapshot_of(store: &Store) -> String {
        let mut buf = Vec::new();
        snapshot::write(&mut buf, &store.snapshot()).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn restore(text: &[u8]) -> Result<Store, RestoreError> {
        let mut store = Store::new();
        restore_in(
            Path::new("test.store"),
            Arc::new(text.to_vec()),
            &mut store,
            4,
        )?;
        Ok(store)
    }

    fn format_error(text: &[u8]) -> SnapshotError {
        match restore(text) {
            Err(RestoreError::Format { err, .. }) => err,
            Err(e) => panic!("not a format error: {e}"),
            Ok(_) => panic!("restored"),
        }
    }

    /// The line (1-based) of the first line containing `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn a_file_read_in_stretches_restores_the_same_store() {
        let text = snapshot_of(&store(2000));
        let body = snapshot::body_start(text.as_bytes()).unwrap();
        assert_eq!(
            snapshot::cut(text.as_bytes(), body, 4).len(),
            4,
            "four stretches"
        );
        let restored = restore(text.as_bytes()).unwrap();
        assert_eq!(restored.group_count(), 2000);
        assert!(
            snapshot_of(&restored) == text,
            "the restored store writes the same file"
        );
    }

    #[test]
    fn errors_in_later_stretches_name_their_line_in_the_file() {
        let text = snapshot_of(&store(2000));
        let series = "series {host=\"h1900.example.org\",instance=\"i1900\",job=\"j\",s=\"3\"} ";
        let line = line_of(&text, series);
        // A malformed value, the file resealed: reported at its line.
        let bad = reseal(&text.replace(&format!("{series}76003.0"), &format!("{series}x")));
        let e = format_error(bad.as_bytes());
        assert_eq!(e.line, line, "{e}");
        assert!(e.to_string().contains("not a number"), "{e}");
        // Not resealed: the damage is reported as such.
        let damaged = text.replace(&format!("{series}76003.0"), &format!("{series}x"));
        assert!(matches!(
            format_error(damaged.as_bytes()).kind,
            SnapshotErrorKind::ChecksumMismatch { .. }
        ));
        // Bad UTF-8 beats both.
        let mut bytes = damaged.into_bytes();
        let at = bytes.len() - 200;
        bytes[at] = 0xff;
        let e = format_error(&bytes);
        assert_eq!(e.kind, SnapshotErrorKind::NotUtf8);
        assert_eq!(e.line, snapshot::lines_before(&bytes, at) + 1);
        // The end record's counts are checked across stretches.
        let fewer = reseal(&text.replace("end groups=2000 ", "end groups=1999 "));
        assert!(matches!(
            format_error(fewer.as_bytes()).kind,
            SnapshotErrorKind::CountMismatch { .. }
        ));
        let cut = &text[..text.trim_end().rfind('\n').unwrap() + 1];
        let e = format_error(cut.as_bytes());
        assert_eq!(
            (e.kind, e.line),
            (SnapshotErrorKind::Truncated, cut.lines().count())
        );
    }

    #[test]
    fn an_inconsistent_group_in_a_later_stretch_is_refused_with_its_line() {
        let text = snapshot_of(&store(2000));
        // A group without an instance label, last in the file, claims a
        // series of group i5, in the first stretch.
        let end = text.trim_end().rfind('\n').unwrap() + 1;
        let extra = "group {job=\"j\"}\ntimes 1 -\nfamily m0 untyped 1\n\
            series {host=\"h5.example.org\",instance=\"i5\",job=\"j\",s=\"0\"} 1.0\n";
        let clash = format!("{}{extra}end groups=2001 series=80001\n", &text[..end]);
        match restore(reseal(&clash).as_bytes()) {
            Err(RestoreError::Inconsistent {
                place: Place::Line(line),
                ..
            }) => {
                let a = line_of(&clash, "group {instance=\"i5\",job=\"j\"}");
                let b = line_of(&clash, "group {job=\"j\"}");
                assert!(line == a || line == b, "line {line}, not {a} or {b}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("an inconsistent file restored"),
        }
    }
}
