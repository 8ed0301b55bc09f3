//! The calls into the operating system the rest of the crate needs, behind
//! safe functions.
//!
//! The event loop itself is `mio`'s (epoll on Linux, kqueue on macOS and
//! the BSDs, IOCP on Windows); what is left here is what neither std nor
//! mio offers: descriptor limits, the listen backlog, sockets inherited
//! from systemd, thread priority, shutdown signals (Ctrl-C and the
//! service control manager on Windows), and handing freed memory back to
//! the system. This is the one module with `unsafe` (the crate denies it
//! elsewhere); each block says why it is sound.
//!
//! Some of it exists on Linux only; each such function says what it does
//! elsewhere, and docs/deployment.md lists the differences for users:
//!
//! | what | Linux | elsewhere |
//! |---|---|---|
//! | systemd socket activation | [`inherited_listener`] | refused at start |
//! | `malloc_trim` (glibc), `mi_collect` (x86-64 musl: mimalloc) | [`trim_heap`] | nothing (arm64 musl, macOS, BSD, Windows) |
//! | per-thread nice | [`lower_thread_priority`] | background threads at normal priority |
//! | TCP_NODELAY inherited from the listener | [`set_nodelay`] | set on each accepted socket |
//! | listen backlog raised to somaxconn | [`raise_backlog`] | the same on Unix; std's 128 on Windows |
//! | SIGTERM, SIGINT | [`wait_shutdown_signal`] | the same on Unix; on Windows Ctrl-C, Ctrl-Break, console close, system shutdown (`on_console_ctrl`) and a service stop (`run_as_service`) |

use std::io;
use std::net::TcpListener;

#[cfg(unix)]
fn cvt(rc: i32) -> io::Result<i32> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Raises the soft limit on open descriptors to the hard limit, as Go does
/// since 1.19: the tutorial's systemd unit leaves the soft limit at 1024.
/// Returns the soft limit now in force.
#[cfg(unix)]
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit the call fills in.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    // macOS refuses a soft limit above OPEN_MAX (its hard limit is often
    // "unlimited"); Go caps it the same way.
    #[cfg(target_os = "macos")]
    let max = lim.rlim_max.min(10240);
    #[cfg(not(target_os = "macos"))]
    let max = lim.rlim_max;
    if lim.rlim_cur < max {
        let raised = libc::rlimit {
            rlim_cur: max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: reads a live rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = max;
        }
    }
    // rlim_t is u64 on the targets we build, but not on every libc.
    #[allow(clippy::unnecessary_cast)]
    Ok(lim.rlim_cur as u64)
}

/// What stands in for the descriptor limit on Windows, which has none per
/// process (sockets are handles, bounded by memory): the default
/// `--web.max-connections` derives from it as on Unix (61,440).
#[cfg(windows)]
pub(crate) const WINDOWS_SOCKET_LIMIT: u64 = 65536;

/// Windows has no descriptor limit to raise: [`WINDOWS_SOCKET_LIMIT`].
#[cfg(windows)]
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    Ok(WINDOWS_SOCKET_LIMIT)
}

/// Whether accepted sockets take TCP_NODELAY from their listener ([`set_nodelay`]);
/// elsewhere the front sets it on each accepted socket.
pub(crate) const NODELAY_INHERITED: bool = cfg!(target_os = "linux");

/// Turns off Nagle's algorithm for every connection accepted from
/// `listener` (Linux copies the option to accepted sockets). Without it a
/// keep-alive client waits for its own delayed ACK, 40 ms, whenever an
/// answer is written in two pieces.
#[cfg(target_os = "linux")]
pub(crate) fn set_nodelay(listener: &TcpListener) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd, a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Raises the accept queue of a listening socket to the system's limit
/// (`net.core.somaxconn`, 4096 on current Linux kernels; `kern.ipc.somaxconn`
/// on macOS and the BSDs), as Go does; std listens with 128. During a
/// burst of connections (a thousand clients connecting at once) a full
/// queue drops SYNs, and a client that happens to connect then waits a
/// second or three for the retransmission. Unix lets `listen` be called
/// again on a listening socket to change it.
#[cfg(unix)]
pub(crate) fn raise_backlog(listener: &TcpListener) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: no pointers; the kernel caps the backlog at somaxconn.
    cvt(unsafe { libc::listen(listener.as_raw_fd(), libc::c_int::MAX) }).map(drop)
}

/// Windows ignores a second `listen` on a listening socket: the backlog
/// stays at std's 128.
#[cfg(windows)]
pub(crate) fn raise_backlog(_listener: &TcpListener) -> io::Result<()> {
    Ok(())
}

/// Whether `accept` failed for want of descriptors or kernel memory (the
/// front then rests the listener instead of spinning on it).
pub(crate) fn is_descriptor_exhaustion(e: &io::Error) -> bool {
    #[cfg(unix)]
    let codes = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];
    // WSAEMFILE, WSAENOBUFS.
    #[cfg(windows)]
    let codes = [10024, 10055];
    e.raw_os_error().is_some_and(|c| codes.contains(&c))
}

/// A descriptor kept open so that, out of descriptors, one can be freed to
/// accept and close a waiting connection. Windows has no descriptor limit
/// to run into: none.
pub(crate) fn spare_descriptor() -> Option<std::fs::File> {
    if cfg!(unix) {
        std::fs::File::open("/dev/null").ok()
    } else {
        None
    }
}

/// Why an inherited descriptor cannot serve as a listener.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) enum NotAListener {
    /// Not open, or open but not a socket (a file, a pipe, a terminal).
    NotASocket,
    /// A socket, but not a stream one (UDP, a datagram Unix socket).
    NotStream,
    /// A stream socket of another family than IPv4 or IPv6 (Unix).
    NotInet,
    /// A TCP socket on which `listen` was never called (a connection, or
    /// one bound but not listening): `accept` would fail for ever.
    NotListening,
    /// The kernel would not say.
    Query(io::Error),
}

#[cfg(target_os = "linux")]
impl std::fmt::Display for NotAListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAListener::NotASocket => f.write_str("is not an open socket"),
            NotAListener::NotStream => f.write_str("is not a stream (TCP) socket"),
            NotAListener::NotInet => f.write_str("is not an IPv4 or IPv6 socket"),
            NotAListener::NotListening => {
                f.write_str("is a TCP socket that is not listening (no listen() was called on it)")
            }
            NotAListener::Query(e) => write!(f, "cannot be inspected: {e}"),
        }
    }
}

/// An integer socket option of `fd` (SOL_SOCKET level).
#[cfg(target_os = "linux")]
fn socket_option(fd: std::os::fd::RawFd, name: libc::c_int) -> Result<libc::c_int, NotAListener> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live, and `len` is the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(NotAListener::Query(io::Error::last_os_error()));
    }
    Ok(value)
}

/// Checks that `fd` is a listening TCP socket, without taking it: a
/// socket unit with `ListenDatagram=`, a `ListenStream=` on a Unix path or
/// `Accept=yes` (a connection per instance) must stop the start with a
/// clear error instead of an accept loop that fails for ever.
#[cfg(target_os = "linux")]
fn check_listener(fd: std::os::fd::RawFd) -> Result<(), NotAListener> {
    // SAFETY: fstat only fills the zeroed struct.
    let is_socket = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    };
    if !is_socket {
        return Err(NotAListener::NotASocket);
    }
    if socket_option(fd, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(NotAListener::NotStream);
    }
    if !matches!(
        socket_option(fd, libc::SO_DOMAIN)?,
        libc::AF_INET | libc::AF_INET6
    ) {
        return Err(NotAListener::NotInet);
    }
    if socket_option(fd, libc::SO_ACCEPTCONN)? == 0 {
        return Err(NotAListener::NotListening);
    }
    Ok(())
}

/// Takes ownership of descriptor `fd`, inherited from systemd, after
/// checking that it is a listening TCP socket; marks it close-on-exec.
/// On an error the descriptor is left alone. Socket activation is
/// systemd's, so Linux only: elsewhere `--web.systemd-socket` is refused
/// at start (see `http::systemd_listeners`).
#[cfg(target_os = "linux")]
pub(crate) fn inherited_listener(fd: std::os::fd::RawFd) -> Result<TcpListener, NotAListener> {
    use std::os::fd::FromRawFd;
    check_listener(fd)?;
    // SAFETY: no pointers. The fd was checked to be an open, listening
    // TCP socket, and systemd's protocol hands it to this process once;
    // it is taken here exactly once.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        Ok(TcpListener::from_raw_fd(fd))
    }
}

/// Gives memory freed after a burst back to the system (glibc keeps it in
/// its arenas otherwise, and idle RSS stays at the burst's peak). The
/// x86-64 static (musl) build allocates with mimalloc, which returns freed pages
/// only a while after the free and only when it is called again: an idle
/// gateway would keep them, so they go now. Nothing elsewhere: musl's
/// malloc (arm64), macOS, the BSDs and Windows return memory on their
/// own terms.
pub(crate) fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: no pointers; malloc_trim is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
    #[cfg(all(target_env = "musl", target_arch = "x86_64"))]
    // SAFETY: no pointers; mi_collect is thread-safe.
    unsafe {
        mi_collect(true);
    }
}

/// The x86-64 static (musl) build allocates with mimalloc: musl's malloc
/// takes one global lock per call, which serialises the parallel restore
/// and the gzip scrapes (docs/benchmarks.md has the figures). The arm64
/// one keeps musl's (Cargo.toml says why).
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
unsafe extern "C" {
    /// mimalloc's: frees what the heaps hold and purges freed pages now.
    fn mi_collect(force: bool);
}

/// How much nicer background threads are than the process: enough that
/// a push's threads preempt them at once on a busy machine, as they must
/// for a push never to wait on a scrape.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`] above the
/// process's (its main thread's; 19 at most). Absolute, not relative to
/// the calling thread: a background thread started by another background
/// thread inherits the lowered value, and lowering that again gave 19 (a
/// spread job of a background caller ran at 19, not 10). On Linux the nice
/// value is per thread, and threads it starts inherit it. It cannot be
/// raised back without privileges, so only threads that do nothing but
/// background work call this. Elsewhere the nice value is the whole
/// process's, so background threads keep the normal priority.
pub(crate) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no pointers; on Linux PRIO_PROCESS of the process id
        // reads its main thread's nice value.
        let base = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::getpid() as libc::id_t) };
        let nice = (base + BACKGROUND_NICE).min(19);
        if thread_nice() >= nice {
            return;
        }
        // SAFETY: no pointers; who = 0 is the calling thread.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if r != 0 {
            let e = io::Error::last_os_error();
            log::debug!(err:display = e; "cannot lower a background thread's priority");
        }
    }
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
pub(crate) fn thread_nice() -> i32 {
    // SAFETY: no pointers; who = 0 is the calling thread.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

/// The signals that ask for a graceful shutdown.
#[cfg(unix)]
fn shutdown_signals() -> libc::sigset_t {
    // SAFETY: all-zero is a valid bit pattern for sigset_t, and the libc
    // calls below only fill it in.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it
/// starts later (the mask is inherited), and ignores SIGXFSZ: a file-size
/// limit must fail a snapshot write with EFBIG, not kill the process.
#[cfg(unix)]
pub(crate) fn block_shutdown_signals() -> Result<(), String> {
    let set = shutdown_signals();
    // SAFETY: `set` is initialised; pthread_sigmask only reads it.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(format!("pthread_sigmask failed with error {rc}"));
    }
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    Ok(())
}

/// Waits for a blocked SIGTERM or SIGINT; returns its name, or sigwait's
/// error code.
#[cfg(unix)]
pub(crate) fn wait_shutdown_signal() -> Result<&'static str, i32> {
    let set = shutdown_signals();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised and `sig` is a valid out-pointer.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc != 0 {
        return Err(rc);
    }
    Ok(match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    })
}

/// Why Windows asks the process to stop, in place of SIGTERM and SIGINT:
/// a console control event, or the service control manager.
#[cfg(windows)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopRequest {
    /// Ctrl-C in the console (wine also turns a SIGINT into it).
    CtrlC,
    /// Ctrl-Break in the console.
    CtrlBreak,
    /// The console window was closed.
    ConsoleClosed,
    /// The system is shutting down (the console event, or the service
    /// control manager's SERVICE_CONTROL_SHUTDOWN).
    SystemShutdown,
    /// The service control manager's SERVICE_CONTROL_STOP (`sc stop`,
    /// `net stop`, `Stop-Service`, the Services console).
    ServiceStop,
}

#[cfg(windows)]
impl StopRequest {
    /// What the log calls it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StopRequest::CtrlC => "Ctrl-C",
            StopRequest::CtrlBreak => "Ctrl-Break",
            StopRequest::ConsoleClosed => "console closed",
            StopRequest::SystemShutdown => "system shutdown",
            StopRequest::ServiceStop => "service stop",
        }
    }

    /// Whether a second one during the shutdown ends the process at once:
    /// an operator pressing Ctrl-C again does not want to wait. What the
    /// system sends (a closed console, a shutdown, which a service gets
    /// both as a console event and as a service control) never cuts the
    /// drain and the final snapshot short.
    pub(crate) fn repeated_exits_at_once(self) -> bool {
        matches!(self, StopRequest::CtrlC | StopRequest::CtrlBreak)
    }
}

/// Windows' console control events.
#[cfg(windows)]
mod console {
    use super::StopRequest;
    use std::sync::OnceLock;

    /// What the handler calls with the request; set once.
    pub(super) static NOTIFY: OnceLock<fn(StopRequest)> = OnceLock::new();

    // From wincon.h.
    const CTRL_C_EVENT: u32 = 0;
    const CTRL_BREAK_EVENT: u32 = 1;
    const CTRL_CLOSE_EVENT: u32 = 2;
    const CTRL_LOGOFF_EVENT: u32 = 5;
    const CTRL_SHUTDOWN_EVENT: u32 = 6;

    pub(super) type Handler = unsafe extern "system" fn(u32) -> i32;

    #[link(name = "kernel32")]
    unsafe extern "system" {
        pub(super) fn SetConsoleCtrlHandler(handler: Option<Handler>, add: i32) -> i32;
    }

    /// Runs on a thread Windows starts for the event, so it may block and
    /// take locks (unlike a Unix signal handler). After it returns from a
    /// close or shutdown event Windows ends the process, so for those it
    /// waits: the process exits when the drain and the final snapshot are
    /// done, or when Windows' own timeout (5 s for a closed console) runs
    /// out. A logoff is ignored: only services receive it, for any user's
    /// logoff, and a service keeps running.
    pub(super) unsafe extern "system" fn on_event(kind: u32) -> i32 {
        let request = match kind {
            CTRL_C_EVENT => StopRequest::CtrlC,
            CTRL_BREAK_EVENT => StopRequest::CtrlBreak,
            CTRL_CLOSE_EVENT => StopRequest::ConsoleClosed,
            CTRL_SHUTDOWN_EVENT => StopRequest::SystemShutdown,
            CTRL_LOGOFF_EVENT => return 1,
            // Not ours: the next handler (the default ends the process).
            _ => return 0,
        };
        if let Some(notify) = NOTIFY.get() {
            notify(request);
        }
        if matches!(kind, CTRL_CLOSE_EVENT | CTRL_SHUTDOWN_EVENT) {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        1
    }
}

/// Calls `notify` on Ctrl-C, Ctrl-Break, and when the console closes or
/// the system shuts down, instead of ending the process. `notify` must
/// not panic (it runs in a callback from Windows, where a panic aborts).
#[cfg(windows)]
pub(crate) fn on_console_ctrl(notify: fn(StopRequest)) -> io::Result<()> {
    if console::NOTIFY.set(notify).is_err() {
        return Err(io::Error::other("a console handler is already installed"));
    }
    // SAFETY: `on_event` is a function of the signature the call expects,
    // alive for the whole process; it only reads a OnceLock.
    let ok = unsafe { console::SetConsoleCtrlHandler(Some(console::on_event), 1) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Why the process did not run as a Windows service.
#[cfg(windows)]
#[derive(Debug)]
pub(crate) enum ServiceError {
    /// Not started by the service control manager (from a console, a
    /// script, a scheduled task): the process runs as an ordinary one.
    NotAService,
    /// The dispatcher was called a second time in this process.
    AlreadyDispatched,
    /// The service control manager started the process, but connecting
    /// to it failed otherwise.
    Dispatcher(io::Error),
}

#[cfg(windows)]
impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::NotAService => {
                f.write_str("not started by the Windows service control manager")
            }
            ServiceError::AlreadyDispatched => {
                f.write_str("the service control dispatcher was already started in this process")
            }
            ServiceError::Dispatcher(e) => {
                write!(
                    f,
                    "cannot connect to the Windows service control manager: {e}"
                )
            }
        }
    }
}

#[cfg(windows)]
impl std::error::Error for ServiceError {}

/// The service side of the Windows service control manager (SCM): the
/// dispatcher, the service's main function and its control handler, all
/// from advapi32 (winsvc.h).
#[cfg(windows)]
mod service {
    use super::{ServiceError, StopRequest};
    use std::ffi::c_void;
    use std::io;
    use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
    use std::sync::{Mutex, OnceLock};

    type ServiceMain = unsafe extern "system" fn(argc: u32, argv: *mut *mut u16);
    type HandlerEx = unsafe extern "system" fn(
        control: u32,
        event_type: u32,
        event_data: *mut c_void,
        context: *mut c_void,
    ) -> u32;

    /// SERVICE_TABLE_ENTRYW.
    #[repr(C)]
    struct TableEntry {
        name: *const u16,
        main: Option<ServiceMain>,
    }

    /// SERVICE_STATUS.
    #[repr(C)]
    struct Status {
        service_type: u32,
        current_state: u32,
        controls_accepted: u32,
        win32_exit_code: u32,
        service_specific_exit_code: u32,
        check_point: u32,
        wait_hint: u32,
    }

    #[link(name = "advapi32")]
    unsafe extern "system" {
        fn StartServiceCtrlDispatcherW(table: *const TableEntry) -> i32;
        fn RegisterServiceCtrlHandlerExW(
            name: *const u16,
            handler: Option<HandlerEx>,
            context: *mut c_void,
        ) -> *mut c_void;
        fn SetServiceStatus(handle: *mut c_void, status: *const Status) -> i32;
    }

    // From winsvc.h and winerror.h.
    const SERVICE_WIN32_OWN_PROCESS: u32 = 0x10;
    const SERVICE_STOPPED: u32 = 1;
    const SERVICE_STOP_PENDING: u32 = 3;
    const SERVICE_RUNNING: u32 = 4;
    const SERVICE_ACCEPT_STOP: u32 = 1;
    const SERVICE_ACCEPT_SHUTDOWN: u32 = 4;
    const SERVICE_CONTROL_STOP: u32 = 1;
    const SERVICE_CONTROL_INTERROGATE: u32 = 4;
    const SERVICE_CONTROL_SHUTDOWN: u32 = 5;
    const NO_ERROR: u32 = 0;
    const ERROR_CALL_NOT_IMPLEMENTED: u32 = 120;
    const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
    const ERROR_SERVICE_SPECIFIC_ERROR: u32 = 1066;

    /// How long the SCM is told a stop may take before the next word from
    /// the service: the drain (10 s at most) and the final snapshot.
    const STOP_WAIT_HINT_MS: u32 = 30_000;

    /// The service's name in the dispatch table, NUL-terminated UTF-16.
    /// A process of type SERVICE_WIN32_OWN_PROCESS runs one service,
    /// whatever name it was installed under, so this one serves any.
    static NAME: [u16; 12] = wide(b"pushgateway\0");

    const fn wide<const N: usize>(ascii: &[u8; N]) -> [u16; N] {
        let mut out = [0u16; N];
        let mut i = 0;
        while i < N {
            out[i] = ascii[i] as u16;
            i += 1;
        }
        out
    }

    /// What the service runs, taken once by `service_main`.
    pub(super) static BODY: Mutex<Option<Box<dyn FnOnce() -> u32 + Send>>> = Mutex::new(None);
    /// Called on a stop or shutdown control.
    pub(super) static ON_STOP: OnceLock<fn(StopRequest)> = OnceLock::new();
    /// The body's exit code, for the process's own.
    pub(super) static EXIT_CODE: AtomicU32 = AtomicU32::new(1);
    /// From RegisterServiceCtrlHandlerExW; null until then.
    static HANDLE: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
    /// The state last reported; the lock orders the reports of the
    /// service's thread and the handler's.
    static STATE: Mutex<u32> = Mutex::new(0);

    /// Tells the SCM the service's state. Once stopped, nothing more is
    /// reported (a stop control racing the body's own end).
    fn report(state: u32, exit_code: u32) {
        let handle = HANDLE.load(Ordering::Acquire);
        if handle.is_null() {
            return;
        }
        let mut last = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if *last == SERVICE_STOPPED {
            return;
        }
        *last = state;
        let status = Status {
            service_type: SERVICE_WIN32_OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == SERVICE_RUNNING {
                SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN
            } else {
                0
            },
            win32_exit_code: if exit_code == 0 {
                NO_ERROR
            } else {
                ERROR_SERVICE_SPECIFIC_ERROR
            },
            service_specific_exit_code: exit_code,
            check_point: u32::from(state == SERVICE_STOP_PENDING),
            wait_hint: if state == SERVICE_STOP_PENDING {
                STOP_WAIT_HINT_MS
            } else {
                0
            },
        };
        // SAFETY: `handle` came from RegisterServiceCtrlHandlerExW and
        // `status` is a live SERVICE_STATUS the call only reads.
        if unsafe { SetServiceStatus(handle, &status) } == 0 {
            let e = io::Error::last_os_error();
            log::warn!(err:display = e, state = state; "cannot report the service's state to the service control manager");
        }
    }

    /// The control handler: runs on the dispatcher's thread (the main
    /// thread, inside StartServiceCtrlDispatcherW), and must return
    /// quickly; the shutdown itself happens on the request loop.
    unsafe extern "system" fn on_control(
        control: u32,
        _event_type: u32,
        _event_data: *mut c_void,
        _context: *mut c_void,
    ) -> u32 {
        let request = match control {
            SERVICE_CONTROL_STOP => StopRequest::ServiceStop,
            SERVICE_CONTROL_SHUTDOWN => StopRequest::SystemShutdown,
            SERVICE_CONTROL_INTERROGATE => return NO_ERROR,
            _ => return ERROR_CALL_NOT_IMPLEMENTED,
        };
        report(SERVICE_STOP_PENDING, 0);
        if let Some(notify) = ON_STOP.get() {
            notify(request);
        }
        NO_ERROR
    }

    /// The service's main function, on a thread the dispatcher starts:
    /// registers the handler, reports running, runs the body and reports
    /// its end with its exit code. Its arguments are StartService's (the
    /// service's name at least); the gateway's flags are the command
    /// line's, read by the body as always.
    unsafe extern "system" fn service_main(_argc: u32, _argv: *mut *mut u16) {
        // SAFETY: NAME is NUL-terminated and static; `on_control` has the
        // signature of LPHANDLER_FUNCTION_EX and lives for the process.
        let handle = unsafe {
            RegisterServiceCtrlHandlerExW(NAME.as_ptr(), Some(on_control), std::ptr::null_mut())
        };
        if handle.is_null() {
            let e = io::Error::last_os_error();
            log::error!(err:display = e; "cannot register with the Windows service control manager");
            return;
        }
        HANDLE.store(handle, Ordering::Release);
        report(SERVICE_RUNNING, 0);
        let body = BODY.lock().unwrap_or_else(|e| e.into_inner()).take();
        // A panic must not unwind into Windows' code (it would abort
        // without telling the SCM): it is exit code 101, as std's.
        let code = body.map_or(1, |body| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101)
        });
        EXIT_CODE.store(code, Ordering::Release);
        report(SERVICE_STOPPED, code);
    }

    /// PROCESSENTRY32W (tlhelp32.h).
    #[repr(C)]
    struct ProcessEntry {
        size: u32,
        usage: u32,
        process_id: u32,
        default_heap_id: usize,
        module_id: u32,
        threads: u32,
        parent_process_id: u32,
        priority_class_base: i32,
        flags: u32,
        exe_file: [u16; 260],
    }

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn CreateToolhelp32Snapshot(flags: u32, process_id: u32) -> *mut c_void;
        fn Process32FirstW(snapshot: *mut c_void, entry: *mut ProcessEntry) -> i32;
        fn Process32NextW(snapshot: *mut c_void, entry: *mut ProcessEntry) -> i32;
        fn CloseHandle(handle: *mut c_void) -> i32;
    }

    const TH32CS_SNAPPROCESS: u32 = 2;

    /// Every process's id, its parent's id and its executable's file name,
    /// from a snapshot of the process list; None if there is none.
    fn processes() -> Option<Vec<(u32, u32, String)>> {
        // SAFETY: no pointers; the handle is closed below.
        let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
        // INVALID_HANDLE_VALUE is -1.
        if snapshot.is_null() || snapshot as isize == -1 {
            return None;
        }
        let mut entry = ProcessEntry {
            size: std::mem::size_of::<ProcessEntry>() as u32,
            usage: 0,
            process_id: 0,
            default_heap_id: 0,
            module_id: 0,
            threads: 0,
            parent_process_id: 0,
            priority_class_base: 0,
            flags: 0,
            exe_file: [0; 260],
        };
        let mut found = Vec::new();
        // SAFETY: `snapshot` is a live process snapshot and `entry` a
        // PROCESSENTRY32W whose size field is set, as the calls require.
        let mut more = unsafe { Process32FirstW(snapshot, &mut entry) } != 0;
        while more {
            let len = entry.exe_file.iter().position(|&c| c == 0).unwrap_or(260);
            found.push((
                entry.process_id,
                entry.parent_process_id,
                String::from_utf16_lossy(&entry.exe_file[..len]),
            ));
            // SAFETY: as for Process32FirstW.
            more = unsafe { Process32NextW(snapshot, &mut entry) } != 0;
        }
        // SAFETY: the snapshot handle is ours and closed once.
        unsafe { CloseHandle(snapshot) };
        Some(found)
    }

    /// Whether the parent process is `services.exe`, the service control
    /// manager, as .NET's and Go's service helpers check. Asking the
    /// dispatcher instead is instant on Windows, but under wine it waits
    /// 10 s for a control pipe before it gives up; that would delay every
    /// start from a console.
    pub(super) fn parent_is_service_manager() -> bool {
        let Some(all) = processes() else {
            return false;
        };
        let me = std::process::id();
        let Some(&(_, parent, _)) = all.iter().find(|(pid, _, _)| *pid == me) else {
            return false;
        };
        all.iter()
            .any(|(pid, _, exe)| *pid == parent && exe.eq_ignore_ascii_case("services.exe"))
    }

    /// Connects the main thread to the SCM; blocks until the service has
    /// stopped.
    pub(super) fn dispatch() -> Result<(), ServiceError> {
        let table = [
            TableEntry {
                name: NAME.as_ptr(),
                main: Some(service_main),
            },
            TableEntry {
                name: std::ptr::null(),
                main: None,
            },
        ];
        // SAFETY: `table` is a SERVICE_TABLE_ENTRYW array ended by a null
        // entry, alive until the call returns (the call blocks until every
        // service of the table has stopped); NAME is static.
        if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } != 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        Err(match e.raw_os_error() {
            Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => ServiceError::NotAService,
            _ => ServiceError::Dispatcher(e),
        })
    }
}

/// Runs `body` as a Windows service when the service control manager
/// started the process: the main thread becomes the SCM's dispatcher,
/// `body` runs on the service's thread, `on_stop` is called on a stop or
/// shutdown control (it must not panic, and should only ask for the
/// shutdown), and the service is reported stopped with `body`'s exit code
/// (non-zero as a service-specific error), which is returned.
///
/// Started any other way (a console, a script: the parent process is not
/// `services.exe`) it returns [`ServiceError::NotAService`] at once,
/// without running `body`.
#[cfg(windows)]
pub(crate) fn run_as_service(
    body: Box<dyn FnOnce() -> u32 + Send>,
    on_stop: fn(StopRequest),
) -> Result<u32, ServiceError> {
    if !service::parent_is_service_manager() {
        return Err(ServiceError::NotAService);
    }
    if service::ON_STOP.set(on_stop).is_err() {
        return Err(ServiceError::AlreadyDispatched);
    }
    *service::BODY.lock().unwrap_or_else(|e| e.into_inner()) = Some(body);
    let result = service::dispatch();
    // Not run when the dispatcher failed; dropped here.
    service::BODY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    result.map(|()| service::EXIT_CODE.load(std::sync::atomic::Ordering::Acquire))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::{TcpStream, UdpSocket};
    use std::os::fd::{AsRawFd, IntoRawFd};
    use std::os::unix::net::UnixListener;

    #[test]
    fn only_a_listening_tcp_socket_is_taken_as_a_listener() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!("pgw-sys-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let unix = UnixListener::bind(dir.join("s")).unwrap();
        let cases = [
            (file.as_raw_fd(), "is not an open socket"),
            (udp.as_raw_fd(), "is not a stream (TCP) socket"),
            (conn.as_raw_fd(), "is a TCP socket that is not listening"),
            (unix.as_raw_fd(), "is not an IPv4 or IPv6 socket"),
            (-1, "is not an open socket"),
        ];
        for (fd, want) in cases {
            let err = inherited_listener(fd).expect_err(want).to_string();
            assert!(err.starts_with(want), "fd {fd}: {err}");
        }
        // Refused descriptors are left open for their owners.
        assert!(conn.peer_addr().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
        let addr = listener.local_addr().unwrap();
        let taken = inherited_listener(listener.into_raw_fd()).expect("a listening TCP socket");
        assert_eq!(taken.local_addr().unwrap(), addr);
    }
}
