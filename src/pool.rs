//! A thread pool that grows when every thread is busy and shrinks when idle.
//!
//! It runs CPU work that would hold up the I/O loop or the request loop:
//! decompressing and parsing large pushes, bcrypt, gzip for scrapes. Jobs
//! never wait on a peer (the I/O loop owns every socket), so the gateway
//! caps it at a few threads; beyond them, jobs queue. Threads are reused
//! while there is work and retire after a quiet spell.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads kept even when idle, so bursts do not pay for spawning.
const MIN_THREADS: usize = 4;
/// How long a thread beyond the minimum waits for work before it exits.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    max_threads: usize,
}

/// Cloneable handle; jobs run on the pool's threads.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool that never runs more than `max_threads` threads; beyond that,
    /// jobs queue until a thread is free.
    pub(crate) fn new(max_threads: usize) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                ready: Condvar::new(),
                max_threads: max_threads.max(1),
            }),
        }
    }

    /// Runs `job` on a pool thread, starting a new thread if all are busy.
    pub(crate) fn execute<F: FnOnce() + Send + 'static>(&self, job: F) {
        let mut st = lock(&self.shared.state);
        st.jobs.push_back(Box::new(job));
        if st.idle >= st.jobs.len() {
            self.shared.ready.notify_one();
            return;
        }
        if st.threads < self.shared.max_threads {
            st.threads += 1;
            let shared = Arc::clone(&self.shared);
            drop(st);
            let spawned = thread::Builder::new()
                .name("worker".into())
                .spawn(move || worker(shared));
            if let Err(e) = spawned {
                log::error!(err:display = e; "cannot start worker thread");
                lock(&self.shared.state).threads -= 1;
            }
        } else {
            self.shared.ready.notify_one();
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Jobs run outside the lock, so a poisoned lock only means a panic
    // between two plain field updates; the state is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker(shared: Arc<Shared>) {
    let mut st = lock(&shared.state);
    loop {
        if let Some(job) = st.jobs.pop_front() {
            drop(st);
            // A panicking job must not take the thread's accounting with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            st = lock(&shared.state);
            continue;
        }
        st.idle += 1;
        let (guard, timeout) = shared
            .ready
            .wait_timeout(st, IDLE_TIMEOUT)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        if timeout.timed_out() && st.jobs.is_empty() && st.threads > MIN_THREADS {
            st.threads -= 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_blocked_job_does_not_block_the_next() {
        let pool = Pool::new(8);
        let (block_tx, block_rx) = mpsc::channel::<()>();
        pool.execute(move || {
            let _ = block_rx.recv();
        });
        let (tx, rx) = mpsc::channel();
        pool.execute(move || tx.send(42).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(42));
        drop(block_tx);
    }

    #[test]
    fn many_jobs_all_run() {
        let pool = Pool::new(3);
        let (tx, rx) = mpsc::channel();
        for i in 0..100 {
            let tx = tx.clone();
            pool.execute(move || tx.send(i).unwrap());
        }
        let mut got: Vec<i32> = (0..100)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
