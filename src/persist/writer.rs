//! The loop's side of persistence and the writer thread: when to write
//! (at most once per `--persistence.interval` after a change, or at once
//! in durable mode, decided from the loop's receive timeout; no timer
//! thread touches the store), and the writes themselves, one after another
//! on a thread of its own (`snapshot-writer`, a long-lived service, not
//! work spread over the pool) over a copy-on-write view of the groups.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::file::write_atomically;
use crate::contract::{Ack, Event, Reply, Responder, WriteOutcome};
use crate::store::{Group, GroupKey, Store};

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
