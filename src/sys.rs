//! The calls into libc the rest of the crate needs, behind safe functions.
//!
//! The event loop itself is `mio`'s; what is left here is what neither
//! std nor mio offers: descriptor limits, socket options, sockets
//! inherited from systemd, shutdown signals, and handing freed memory back
//! to the system. This is the one module with `unsafe` (the crate denies
//! it elsewhere); each block says why it is sound.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

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
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit the call fills in.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: reads a live rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    // rlim_t is u64 on the targets we build, but not on every libc.
    #[allow(clippy::unnecessary_cast)]
    Ok(lim.rlim_cur as u64)
}

/// Turns off Nagle's algorithm for every connection accepted from
/// `listener` (Linux copies the option to accepted sockets). Without it a
/// keep-alive client waits for its own delayed ACK, 40 ms, whenever an
/// answer is written in two pieces.
pub(crate) fn set_nodelay(listener: &TcpListener) -> io::Result<()> {
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

/// Whether `accept` failed for want of descriptors or kernel memory (the
/// front then rests the listener instead of spinning on it).
pub(crate) fn is_descriptor_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A descriptor kept open so that, out of descriptors, one can be freed to
/// accept and close a waiting connection.
pub(crate) fn spare_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Why an inherited descriptor cannot serve as a listener.
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
fn socket_option(fd: RawFd, name: libc::c_int) -> Result<libc::c_int, NotAListener> {
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
fn check_listener(fd: RawFd) -> Result<(), NotAListener> {
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

/// Raises the accept queue of a listening socket to the system's limit
/// (`net.core.somaxconn`, 4096 on current kernels), as Go does; std
/// listens with 128. During a burst of connections (a thousand clients
/// connecting at once) a full queue drops SYNs, and a client that happens
/// to connect then waits a second or three for the retransmission. Linux
/// lets `listen` be called again on a listening socket to change it.
pub(crate) fn raise_backlog(listener: &TcpListener) -> io::Result<()> {
    // SAFETY: no pointers; the kernel caps the backlog at somaxconn.
    cvt(unsafe { libc::listen(listener.as_raw_fd(), libc::c_int::MAX) }).map(drop)
}

/// Takes ownership of descriptor `fd`, inherited from systemd, after
/// checking that it is a listening TCP socket; marks it close-on-exec.
/// On an error the descriptor is left alone.
pub(crate) fn inherited_listener(fd: RawFd) -> Result<TcpListener, NotAListener> {
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
/// its arenas otherwise, and idle RSS stays at the burst's peak).
pub(crate) fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: no pointers; malloc_trim is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How much nicer background threads are than the process: enough that
/// a push's threads preempt them at once on a busy machine, as they must
/// for a push never to wait on a scrape.
pub(crate) const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority by [`BACKGROUND_NICE`] (to 19 at
/// most). On Linux the nice value is per thread, and threads it starts
/// inherit it. It cannot be raised back without privileges, so only
/// threads that do nothing but background work call this.
pub(crate) fn lower_thread_priority() {
    let nice = (thread_nice() + BACKGROUND_NICE).min(19);
    // SAFETY: no pointers; who = 0 is the calling thread.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if r != 0 {
        let e = io::Error::last_os_error();
        log::debug!(err:display = e; "cannot lower a background thread's priority");
    }
}

/// The calling thread's nice value.
pub(crate) fn thread_nice() -> i32 {
    // SAFETY: no pointers; who = 0 is the calling thread.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

/// The signals that ask for a graceful shutdown.
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

/// Waits for a blocked SIGTERM or SIGINT; returns its number, or
/// sigwait's error code.
pub(crate) fn wait_shutdown_signal() -> Result<i32, i32> {
    let set = shutdown_signals();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised and `sig` is a valid out-pointer.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc == 0 { Ok(sig) } else { Err(rc) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpStream, UdpSocket};
    use std::os::fd::IntoRawFd;
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
