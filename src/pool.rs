//! A thread pool that grows when every thread is busy and shrinks when idle.
//!
//! It runs CPU work that would hold up the I/O loop or the request loop:
//! decompressing and parsing large pushes, bcrypt, gzip for scrapes. Jobs
//! never wait on a peer (the I/O loop owns every socket), so the gateway
//! caps it at a few threads; beyond them, jobs queue. Threads are reused
//! while there is work and retire after a quiet spell.
//!
//! Building and compressing large answers (a million-series scrape takes
//! every core for a hundred milliseconds and more) goes to a second set
//! of threads running at a lower priority: on a busy machine a push's
//! threads preempt them at once instead of waiting for a time slice.

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
    /// Threads run at [`crate::sys::BACKGROUND_NICE`].
    background: bool,
}

impl Shared {
    fn new(max_threads: usize, background: bool) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            max_threads: max_threads.max(1),
            background,
        })
    }
}

/// Cloneable handle; jobs run on the pool's threads.
#[derive(Clone)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// The low-priority threads for [`Pool::execute_background`].
    background: Arc<Shared>,
}

impl Pool {
    /// A pool that never runs more than `max_threads` threads of each
    /// priority; beyond that, jobs queue until a thread is free.
    pub(crate) fn new(max_threads: usize) -> Pool {
        Pool {
            shared: Shared::new(max_threads, false),
            background: Shared::new(max_threads, true),
        }
    }

    /// Runs `job` on a pool thread, starting a new thread if all are busy.
    pub(crate) fn execute<F: FnOnce() + Send + 'static>(&self, job: F) {
        submit(&self.shared, Box::new(job));
    }

    /// Runs `job` on a low-priority thread: for long work no client is
    /// waiting on the loop for (building and compressing large answers).
    pub(crate) fn execute_background<F: FnOnce() + Send + 'static>(&self, job: F) {
        submit(&self.background, Box::new(job));
    }
}

fn submit(shared: &Arc<Shared>, job: Job) {
    let mut st = lock(&shared.state);
    st.jobs.push_back(job);
    if st.idle >= st.jobs.len() {
        shared.ready.notify_one();
        return;
    }
    if st.threads < shared.max_threads {
        st.threads += 1;
        let shared2 = Arc::clone(shared);
        drop(st);
        let name = if shared.background {
            "background"
        } else {
            "worker"
        };
        let spawned = thread::Builder::new()
            .name(name.into())
            .spawn(move || worker(shared2));
        if let Err(e) = spawned {
            log::error!(err:display = e; "cannot start worker thread");
            lock(&shared.state).threads -= 1;
        }
    } else {
        shared.ready.notify_one();
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Jobs run outside the lock, so a poisoned lock only means a panic
    // between two plain field updates; the state is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker(shared: Arc<Shared>) {
    if shared.background {
        crate::sys::lower_thread_priority();
    }
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
    fn background_jobs_run_at_a_lower_priority() {
        let pool = Pool::new(2);
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        pool.execute(move || tx.send(("normal", crate::sys::thread_nice())).unwrap());
        pool.execute_background(move || {
            tx2.send(("background", crate::sys::thread_nice())).unwrap()
        });
        let mut got: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        let base = crate::sys::thread_nice();
        let lowered = (base + crate::sys::BACKGROUND_NICE).min(19);
        assert_eq!(got, [("background", lowered), ("normal", base)]);
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
