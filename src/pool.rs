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
//!
//! One piece of work spread over every core (gzip of a large scrape, the
//! runs of a large plain-text scrape, the readers of a restore) goes
//! through [`spread`]: its jobs run on threads of their own, at the
//! caller's priority, and the caller runs itself any job no thread has
//! taken when it needs the result, so a caller on a pool thread never
//! waits for a job that has not started (no deadlock however busy the
//! threads are).
//!
//! This is the one way the gateway runs work on other threads. The
//! threads it starts otherwise are long-lived services, not work spread
//! out: the signal thread (`signals`), the HTTP I/O thread (`http-io`,
//! which owns every socket) and the snapshot writer (`snapshot-writer`,
//! which writes one file after another, in order).

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads kept even when idle, so bursts do not pay for spawning.
const MIN_THREADS: usize = 4;
/// How long a thread beyond the minimum waits for work before it exits.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The kinds of work that share the pool. Each kind may hold only its
/// share of the threads and queue only so many jobs, so a flood of one
/// kind (a thousand wrong passwords, a burst of huge pushes, costly
/// selectors) leaves threads for the others; past its queue, a kind's new
/// jobs are refused and the client gets 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Decompressing, parsing and preparing pushes.
    Push,
    /// Checking credentials (bcrypt).
    Auth,
    /// Parsing selectors and matching them against the store's keys.
    Match,
    /// Work the loop hands off after accepting a request: never refused.
    Loop,
    /// A job of [`spread`]: never refused, on threads of its own.
    Spread,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Push,
        Kind::Auth,
        Kind::Match,
        Kind::Loop,
        Kind::Spread,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// Most threads of the kind at once, out of `max`: every kind leaves
    /// at least one thread to the others.
    fn share(self, max: usize) -> usize {
        match self {
            Kind::Push | Kind::Loop => max.saturating_sub(1).max(1),
            Kind::Auth | Kind::Match => (max / 2).max(1),
            // The only kind on its threads.
            Kind::Spread => max,
        }
    }

    /// Most jobs of the kind waiting for a thread.
    fn queue_limit(self) -> usize {
        match self {
            // Each queued push holds its body, charged to the memory
            // budget; this bounds how long the last of them waits.
            Kind::Push => 1024,
            Kind::Auth => 256,
            Kind::Match => 64,
            Kind::Loop | Kind::Spread => usize::MAX,
        }
    }
}

#[derive(Default)]
struct State {
    /// Waiting jobs, one queue per [`Kind`].
    queues: [VecDeque<Job>; 5],
    /// Jobs running, per kind.
    running: [usize; 5],
    /// Where the next search for a job starts: kinds take turns.
    turn: usize,
    threads: usize,
    idle: usize,
}

impl State {
    fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// The next job whose kind is under its share, kinds taking turns.
    fn next_job(&mut self, max: usize) -> Option<(Kind, Job)> {
        for i in 0..Kind::ALL.len() {
            let kind = Kind::ALL[(self.turn + i) % Kind::ALL.len()];
            let k = kind.index();
            if self.running[k] < kind.share(max)
                && let Some(job) = self.queues[k].pop_front()
            {
                self.turn = (k + 1) % Kind::ALL.len();
                self.running[k] += 1;
                return Some((kind, job));
            }
        }
        None
    }
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    max_threads: usize,
    /// Threads kept even when idle.
    min_threads: usize,
    /// Threads run at [`crate::sys::BACKGROUND_NICE`].
    background: bool,
    /// The threads' name.
    name: &'static str,
}

impl Shared {
    fn new(max_threads: usize, background: bool) -> Arc<Shared> {
        let name = if background { "background" } else { "worker" };
        Shared::with(max_threads, MIN_THREADS, background, name)
    }

    fn with(
        max_threads: usize,
        min_threads: usize,
        background: bool,
        name: &'static str,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            max_threads: max_threads.max(1),
            min_threads,
            background,
            name,
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

    /// Runs `job` on a pool thread, starting a new thread if all are busy:
    /// for work the loop hands off, which is never refused.
    pub(crate) fn execute<F: FnOnce() + Send + 'static>(&self, job: F) {
        submit(&self.shared, Kind::Loop, Box::new(job));
    }

    /// Whether `kind` may queue another job; when not, the caller
    /// answers 503 instead of calling [`Pool::execute_as`]. Jobs of a
    /// kind are submitted by one thread (the I/O loop), and workers only
    /// shorten the queues, so the answer still holds when it submits.
    pub(crate) fn has_room(&self, kind: Kind) -> bool {
        lock(&self.shared.state).queues[kind.index()].len() < kind.queue_limit()
    }

    /// Runs `job` of `kind` within the kind's share of the threads.
    pub(crate) fn execute_as<F: FnOnce() + Send + 'static>(&self, kind: Kind, job: F) {
        submit(&self.shared, kind, Box::new(job));
    }

    /// Runs `job` on a low-priority thread: for long work no client is
    /// waiting on the loop for (building and compressing large answers).
    pub(crate) fn execute_background<F: FnOnce() + Send + 'static>(&self, job: F) {
        submit(&self.background, Kind::Loop, Box::new(job));
    }
}

fn submit(shared: &Arc<Shared>, kind: Kind, job: Job) {
    let mut st = lock(&shared.state);
    st.queues[kind.index()].push_back(job);
    if st.idle >= st.queued() || st.threads >= shared.max_threads {
        shared.ready.notify_one();
        return;
    }
    st.threads += 1;
    let shared2 = Arc::clone(shared);
    drop(st);
    let spawned = thread::Builder::new()
        .name(shared.name.into())
        .spawn(move || worker(shared2));
    if let Err(e) = spawned {
        log::error!(err:display = e; "cannot start worker thread");
        lock(&shared.state).threads -= 1;
        // The job waits for a thread that is running already.
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
        BACKGROUND.with(|b| b.set(true));
    }
    let mut st = lock(&shared.state);
    loop {
        if let Some((kind, job)) = st.next_job(shared.max_threads) {
            drop(st);
            // A panicking job must not take the thread's accounting with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            st = lock(&shared.state);
            st.running[kind.index()] -= 1;
            // A job of this kind held back by its share may run now.
            if !st.queues[kind.index()].is_empty() {
                shared.ready.notify_one();
            }
            continue;
        }
        st.idle += 1;
        let (guard, timeout) = shared
            .ready
            .wait_timeout(st, IDLE_TIMEOUT)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        if timeout.timed_out() && st.queued() == 0 && st.threads > shared.min_threads {
            st.threads -= 1;
            return;
        }
    }
}

thread_local! {
    /// Whether this thread runs at [`crate::sys::BACKGROUND_NICE`]: the
    /// jobs it [`spread`]s run at the same priority.
    static BACKGROUND: Cell<bool> = const { Cell::new(false) };
}

/// The threads of [`spread`] jobs, one set per priority (normal,
/// background), started when first needed and retiring after
/// [`IDLE_TIMEOUT`] without work. As many as the cores and one more: a
/// restore runs a reader per core and a checksum while its caller puts
/// the groups into the store.
static SPREAD: [OnceLock<Arc<Shared>>; 2] = [OnceLock::new(), OnceLock::new()];

fn spread_threads() -> &'static Arc<Shared> {
    let background = BACKGROUND.with(Cell::get);
    SPREAD[usize::from(background)].get_or_init(|| {
        let name = if background {
            "spread-background"
        } else {
            "spread"
        };
        Shared::with(cores() + 1, 0, background, name)
    })
}

/// The cores this process may run on.
pub(crate) fn cores() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts `job` on a thread of its own at the caller's priority: for one
/// piece of work spread over the cores. Its result comes from
/// [`Spread::join`], which runs the job on the caller's thread if no
/// thread has taken it yet: a caller never waits for a job that has not
/// started, so spreading from a pool thread cannot deadlock however busy
/// the threads are.
pub(crate) fn spread<T, F>(job: F) -> Spread<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let result = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&result);
    let ticket = Arc::new(Ticket {
        stage: Mutex::new(Stage::Waiting(Box::new(move || {
            let r = panic::catch_unwind(AssertUnwindSafe(job));
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }))),
        finished: Condvar::new(),
    });
    let queued = Arc::clone(&ticket);
    submit(
        spread_threads(),
        Kind::Spread,
        Box::new(move || {
            queued.run();
        }),
    );
    Spread { ticket, result }
}

/// A job started by [`spread`]. Dropped without [`Spread::join`], a job
/// no thread has taken yet is dropped unrun.
#[must_use = "a spread job not joined may never run"]
pub(crate) struct Spread<T> {
    ticket: Arc<Ticket>,
    result: Arc<Mutex<Option<thread::Result<T>>>>,
}

impl<T> Spread<T> {
    /// The job's result: it runs here if no thread has taken it yet, or
    /// is waited for if one has. A panic of the job goes on here.
    pub(crate) fn join(self) -> T {
        if !self.ticket.run() {
            self.ticket.wait();
        }
        let result = self.result.lock().unwrap_or_else(|e| e.into_inner()).take();
        match result.expect("a finished job has left its result") {
            Ok(value) => value,
            Err(p) => panic::resume_unwind(p),
        }
    }
}

impl<T> Drop for Spread<T> {
    fn drop(&mut self) {
        let mut stage = self.ticket.stage();
        if matches!(*stage, Stage::Waiting(_)) {
            let unrun = std::mem::replace(&mut *stage, Stage::Done);
            drop(stage);
            drop(unrun);
        }
    }
}

/// A [`spread`] job's way from the queue to its end.
struct Ticket {
    stage: Mutex<Stage>,
    finished: Condvar,
}

enum Stage {
    Waiting(Job),
    Running,
    Done,
}

impl Ticket {
    fn stage(&self) -> std::sync::MutexGuard<'_, Stage> {
        self.stage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the job if no one has taken it; whether this call ran it.
    fn run(&self) -> bool {
        let job = {
            let mut stage = self.stage();
            match std::mem::replace(&mut *stage, Stage::Running) {
                Stage::Waiting(job) => job,
                other => {
                    *stage = other;
                    return false;
                }
            }
        };
        // It catches its own panic: this never unwinds.
        job();
        *self.stage() = Stage::Done;
        self.finished.notify_all();
        true
    }

    /// Returns once the job is no longer running.
    fn wait(&self) {
        let mut stage = self.stage();
        while matches!(*stage, Stage::Running) {
            stage = self.finished.wait(stage).unwrap_or_else(|e| e.into_inner());
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
    #[cfg(target_os = "linux")]
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
    fn a_flood_of_one_kind_leaves_a_thread_to_the_others() {
        let pool = Pool::new(4);
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let block_rx = Arc::new(Mutex::new(block_rx));
        let (started_tx, started_rx) = mpsc::channel();
        for _ in 0..20 {
            let (rx, started) = (Arc::clone(&block_rx), started_tx.clone());
            let job = move || {
                started.send(()).unwrap();
                let _ = rx.lock().unwrap().recv();
            };
            pool.execute_as(Kind::Auth, job);
        }
        for _ in 0..2 {
            started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        assert!(
            started_rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "credential checks hold at most half of 4 threads"
        );
        let (tx, rx) = mpsc::channel();
        pool.execute_as(Kind::Push, move || tx.send(7).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(7));
        drop(block_tx);
    }

    #[test]
    fn a_full_queue_refuses_its_kind_only() {
        let pool = Pool::new(2);
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let block_rx = Arc::new(Mutex::new(block_rx));
        let limit = Kind::Match.queue_limit();
        let (started_tx, started_rx) = mpsc::channel();
        let rx = Arc::clone(&block_rx);
        let first = move || {
            started_tx.send(()).unwrap();
            let _ = rx.lock().unwrap().recv();
        };
        pool.execute_as(Kind::Match, first);
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let mut refused = 0;
        for _ in 0..limit + 4 {
            let rx = Arc::clone(&block_rx);
            let job = move || {
                let _ = rx.lock().unwrap().recv();
            };
            if pool.has_room(Kind::Match) {
                pool.execute_as(Kind::Match, job);
            } else {
                refused += 1;
            }
        }
        // One runs (its share of 2 threads), `limit` wait, 4 are refused.
        assert_eq!(refused, 4);
        let (tx, rx) = mpsc::channel();
        assert!(pool.has_room(Kind::Push));
        pool.execute_as(Kind::Push, move || tx.send(1).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
        drop(block_tx);
    }

    #[test]
    fn spread_jobs_give_their_results_to_the_caller() {
        let jobs: Vec<_> = (0..20u64)
            .map(|i| spread(move || (0..=i * 1000).sum::<u64>()))
            .collect();
        let sums: Vec<u64> = jobs.into_iter().map(Spread::join).collect();
        let want: Vec<u64> = (0..20u64).map(|i| (0..=i * 1000).sum()).collect();
        assert_eq!(sums, want);
    }

    /// A job that has not started when it is joined runs on the joining
    /// thread: spreading from every busy thread cannot deadlock.
    #[test]
    fn a_job_no_thread_took_runs_on_the_caller() {
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let block_rx = Arc::new(Mutex::new(block_rx));
        let blockers: Vec<_> = (0..cores() + 1)
            .map(|_| {
                let rx = Arc::clone(&block_rx);
                spread(move || {
                    let _ = rx.lock().unwrap().recv();
                })
            })
            .collect();
        let caller = thread::current().id();
        let ran_on = spread(move || thread::current().id());
        // The blockers hold every spread thread (or wait for one).
        thread::sleep(Duration::from_millis(50));
        let ran_on = ran_on.join();
        drop(block_tx);
        for b in blockers {
            b.join();
        }
        assert_eq!(ran_on, caller);
    }

    #[test]
    fn a_spread_job_passes_its_panic_to_the_caller() {
        let job = spread(|| panic!("boom"));
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| job.join()));
        assert!(caught.is_err());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn spread_jobs_run_at_the_callers_priority() {
        let pool = Pool::new(2);
        let (tx, rx) = mpsc::channel();
        pool.execute_background(move || {
            let jobs: Vec<_> = (0..4).map(|_| spread(crate::sys::thread_nice)).collect();
            let nices: Vec<i32> = jobs.into_iter().map(Spread::join).collect();
            tx.send(nices).unwrap();
        });
        let nices = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let base = crate::sys::thread_nice();
        let lowered = (base + crate::sys::BACKGROUND_NICE).min(19);
        assert_eq!(nices, [lowered; 4]);
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
