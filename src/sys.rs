//! The calls into the operating system the rest of the crate needs, behind
//! safe functions.
//!
//! The event loop itself is `mio`'s (epoll on Linux, kqueue on macOS and
//! the BSDs, IOCP on Windows); what is left here is what neither std nor
//! mio offers: descriptor limits, the listen backlog, sockets inherited
//! from systemd, thread priority, shutdown signals (Ctrl-C on Windows),
//! and handing freed memory back to the system. This is the one module
//! with `unsafe` (the crate denies it elsewhere); each block says why it
//! is sound.
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
//! | SIGTERM, SIGINT | [`wait_shutdown_signal`] | the same on Unix; Ctrl-C, Ctrl-Break, console close on Windows |

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

/// Lowers the calling thread's priority by [`BACKGROUND_NICE`] (to 19 at
/// most). On Linux the nice value is per thread, and threads it starts
/// inherit it. It cannot be raised back without privileges, so only
/// threads that do nothing but background work call this. Elsewhere the
/// nice value is the whole process's, so background threads keep the
/// normal priority.
pub(crate) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        let nice = (thread_nice() + BACKGROUND_NICE).min(19);
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

/// Windows' console control events, in place of SIGTERM and SIGINT.
#[cfg(windows)]
mod console {
    use std::sync::OnceLock;

    /// What the handler calls with the event's name; set once.
    pub(super) static NOTIFY: OnceLock<fn(&'static str)> = OnceLock::new();

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
    /// close, logoff or shutdown event Windows ends the process, so for
    /// those it waits: the process exits when the drain and the final
    /// snapshot are done, or when Windows' own timeout (5 s for a closed
    /// console) runs out.
    pub(super) unsafe extern "system" fn on_event(kind: u32) -> i32 {
        let name = match kind {
            CTRL_C_EVENT => "Ctrl-C",
            CTRL_BREAK_EVENT => "Ctrl-Break",
            CTRL_CLOSE_EVENT => "console closed",
            CTRL_LOGOFF_EVENT => "logoff",
            CTRL_SHUTDOWN_EVENT => "system shutdown",
            // Not ours: the next handler (the default ends the process).
            _ => return 0,
        };
        if let Some(notify) = NOTIFY.get() {
            notify(name);
        }
        if matches!(
            kind,
            CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT
        ) {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        1
    }
}

/// Calls `notify` with the event's name on Ctrl-C, Ctrl-Break, and when
/// the console closes or the user logs off or the system shuts down,
/// instead of ending the process. `notify` must not panic (it runs in a
/// callback from Windows, where a panic aborts).
#[cfg(windows)]
pub(crate) fn on_console_ctrl(notify: fn(&'static str)) -> io::Result<()> {
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
