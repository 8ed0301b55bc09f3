//! Writing the snapshot to disk without ever tearing or losing the old one,
//! and reading it back at start-up.
//!
//! A write renders the snapshot into `<file>.in_progress` in the same
//! directory, fsyncs it, renames it over the file and fsyncs the directory.
//! A crash at any moment leaves either the old complete file or the new
//! complete one. Writes run on a dedicated writer thread over a shared,
//! copy-on-write view of the groups (`Store::snapshot`), so the loop pauses
//! only to collect the group pointers, not to render or to wait for the disk.
//!
//! Scheduling stays in the loop: `Persistence` decides when to start a
//! write (at most once per `--persistence.interval` after a change, or at
//! once in durable mode) from the loop's receive timeout; no timer thread
//! touches the store.

pub(crate) mod gob;
mod import;
mod restore;
pub(crate) mod snapshot;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::contract::{Ack, Event, Reply, Responder};
pub(crate) use crate::contract::{WriteOutcome, WriteStats};
use crate::store::{self, Group, GroupKey, Store};

/// How long durable mode waits before retrying a failed write, so a full
/// disk does not turn into a busy loop.
const DURABLE_RETRY: Duration = Duration::from_secs(1);

struct WriteJob {
    groups: Vec<(GroupKey, Arc<Group>)>,
    generation: u64,
    pause: Duration,
}

/// The loop's side of persistence.
pub(crate) struct Persistence {
    path: PathBuf,
    interval: Duration,
    jobs: Option<Sender<WriteJob>>,
    writer: Option<JoinHandle<()>>,
    /// Generation being written, if a write is under way.
    in_flight: Option<u64>,
    persisted_generation: u64,
    last_start: Instant,
    last_failed: bool,
    /// Durable mode: answers waiting for the next write.
    deferred: Vec<Ack>,
    /// Durable mode: answers waiting for the write under way.
    sent: Vec<Ack>,
}

impl Persistence {
    /// Starts the writer thread. `events` is where it reports each outcome.
    pub(crate) fn start(
        path: PathBuf,
        interval: Duration,
        events: Sender<Event>,
        generation: u64,
    ) -> io::Result<Persistence> {
        let (tx, rx) = mpsc::channel::<WriteJob>();
        let file = path.clone();
        let writer = thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || {
                for job in rx {
                    let result = write_atomically(&file, &job.groups).map_err(|e| e.to_string());
                    // Logged here, before the loop sends any deferred
                    // answer, so a client that sees a 500 finds the reason
                    // in the log.
                    if let Err(e) = &result {
                        log::error!(file:display = file.display(), err = e; "error persisting metrics; the previous file is kept and the write will be retried");
                    }
                    let outcome = WriteOutcome {
                        generation: job.generation,
                        pause: job.pause,
                        result,
                    };
                    if events.send(Event::Persisted(outcome)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Persistence {
            path,
            interval,
            jobs: Some(tx),
            writer: Some(writer),
            in_flight: None,
            persisted_generation: generation,
            last_start: Instant::now(),
            last_failed: false,
            deferred: Vec::new(),
            sent: Vec::new(),
        })
    }

    /// Durable mode: every change is answered only once it is on disk.
    pub(crate) fn durable(&self) -> bool {
        self.interval.is_zero()
    }

    /// Holds an answer until the next write has reached the disk.
    pub(crate) fn defer(&mut self, reply_to: Responder, reply: Reply) {
        self.deferred.push(Ack { reply_to, reply });
    }

    /// When the loop must wake up to start the next write, if one is due.
    pub(crate) fn deadline(&self, store: &Store) -> Option<Instant> {
        if self.in_flight.is_some() || !self.dirty(store) {
            return None;
        }
        let wait = if self.durable() {
            if self.last_failed {
                DURABLE_RETRY
            } else {
                Duration::ZERO
            }
        } else {
            self.interval
        };
        Some(self.last_start + wait)
    }

    /// Whether the store holds changes the file does not (yet): the
    /// `pushgateway_persistence_unwritten_changes` gauge, which tells an
    /// idle gateway (nothing to write) from a stuck one.
    pub(crate) fn unwritten(&self, store: &Store) -> bool {
        self.dirty(store)
    }

    fn dirty(&self, store: &Store) -> bool {
        store.generation() != self.persisted_generation || !self.deferred.is_empty()
    }

    /// Starts a write if one is due and none is under way.
    pub(crate) fn tick(&mut self, store: &Store) {
        if let Some(deadline) = self.deadline(store)
            && Instant::now() >= deadline
        {
            self.start_write(store);
        }
    }

    fn start_write(&mut self, store: &Store) {
        let Some(jobs) = &self.jobs else {
            return;
        };
        let started = Instant::now();
        let groups = store.snapshot();
        let job = WriteJob {
            groups,
            generation: store.generation(),
            pause: started.elapsed(),
        };
        self.sent.append(&mut self.deferred);
        self.in_flight = Some(job.generation);
        self.last_start = Instant::now();
        if jobs.send(job).is_err() {
            log::error!("snapshot writer thread is gone; changes are no longer persisted");
            self.in_flight = None;
        }
    }

    /// Takes a writer's report and settles the answers that waited for it.
    pub(crate) fn finished(&mut self, outcome: WriteOutcome) {
        self.in_flight = None;
        let written = outcome.result.as_ref().map(drop).map_err(String::as_str);
        for ack in std::mem::take(&mut self.sent) {
            ack.settle(written);
        }
        match outcome.result {
            Ok(stats) => {
                self.persisted_generation = outcome.generation;
                self.last_failed = false;
                log::info!(
                    file:display = self.path.display(),
                    groups = stats.groups,
                    bytes = stats.bytes,
                    duration = crate::time::go_duration(stats.duration),
                    loop_pause = crate::time::go_duration(outcome.pause);
                    "metrics persisted"
                );
            }
            Err(_) => {
                // The writer thread has logged the error already.
                self.last_failed = true;
            }
        }
    }

    /// Whether a write is under way (its outcome is still to come).
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Final write at shutdown, on the calling thread, after the writer
    /// thread has finished whatever it was doing. Answers deferred requests.
    pub(crate) fn shutdown(&mut self, store: &Store) -> Result<(), String> {
        self.jobs = None; // The writer thread ends once its queue is empty.
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let started = Instant::now();
        let result = write_atomically(&self.path, &store.snapshot()).map_err(|e| e.to_string());
        let written = result.as_ref().map(drop).map_err(String::as_str);
        for ack in self
            .sent
            .drain(..)
            .chain(std::mem::take(&mut self.deferred))
        {
            ack.settle(written);
        }
        match result {
            Ok(stats) => {
                log::info!(file:display = self.path.display(), groups = stats.groups, duration = crate::time::go_duration(started.elapsed()); "final snapshot written");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The temporary file a write goes to before it is renamed over `path`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".in_progress");
    path.with_file_name(name)
}

fn dir_of(path: &Path) -> &Path {
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
        why: import::ImportError,
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
    restore::restore_parallel(path, data, store)
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

fn check_writable(dir: &Path) -> Result<(), RestoreError> {
    let probe = dir.join(format!(".pushgateway-write-test-{}", std::process::id()));
    let result = File::create(&probe).and_then(|f| f.sync_all());
    let _ = fs::remove_file(&probe);
    result.map_err(|err| RestoreError::NotWritable {
        dir: dir.into(),
        err,
    })
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
