//! The listening sockets: `--web.listen-address` bound as Go binds it, or
//! the ones systemd hands over (socket activation).

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use crate::sys;

/// Binds one `--web.listen-address`. A bare `:port` means every interface,
/// IPv6 and IPv4 alike, as in Go.
pub(crate) fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let listener = if let Some(port) = addr.strip_prefix(':') {
        TcpListener::bind(format!("[::]:{port}"))
            .or_else(|_| TcpListener::bind(format!("0.0.0.0:{port}")))?
    } else {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        TcpListener::bind(&addrs[..])?
    };
    nodelay(&listener);
    if let Err(e) = sys::raise_backlog(&listener) {
        log::warn!(err:display = e; "cannot raise the listen backlog; bursts of new connections may wait");
    }
    Ok(listener)
}

/// TCP_NODELAY on a listener, for the connections it accepts (Linux; on
/// other systems the I/O loop sets it on each connection, see
/// [`sys::NODELAY_INHERITED`]).
#[cfg(target_os = "linux")]
fn nodelay(listener: &TcpListener) {
    if let Err(e) = sys::set_nodelay(listener) {
        log::warn!(err:display = e; "cannot set TCP_NODELAY; keep-alive answers may be delayed");
    }
}

#[cfg(not(target_os = "linux"))]
fn nodelay(_listener: &TcpListener) {}

/// Socket activation is systemd's: on other systems the flag stops the
/// start with this.
#[cfg(not(target_os = "linux"))]
pub(crate) fn systemd_listeners() -> Result<Vec<TcpListener>, String> {
    Err(format!(
        "socket activation is systemd's and only available on Linux (this is {}); listen with --web.listen-address instead",
        std::env::consts::OS
    ))
}

/// The listening sockets systemd passed (`--web.systemd-socket`): file
/// descriptors 3 to 3+LISTEN_FDS-1, meant for us if LISTEN_PID is our pid.
#[cfg(target_os = "linux")]
pub(crate) fn systemd_listeners() -> Result<Vec<TcpListener>, String> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            format!("{name} is not set; is the gateway started by a systemd .socket unit?")
        })
    };
    let pid: u32 = var("LISTEN_PID")?
        .parse()
        .map_err(|_| "LISTEN_PID is not a number".to_owned())?;
    if pid != std::process::id() {
        return Err(format!(
            "LISTEN_PID {pid} is not this process ({})",
            std::process::id()
        ));
    }
    let n: i32 = var("LISTEN_FDS")?
        .parse()
        .map_err(|_| "LISTEN_FDS is not a number".to_owned())?;
    if !(1..=64).contains(&n) {
        return Err(format!("LISTEN_FDS={n}: expected between 1 and 64 sockets"));
    }
    let mut out = Vec::new();
    for fd in 3..3 + n {
        let listener = sys::inherited_listener(fd).map_err(|e| {
            format!("file descriptor {fd} from systemd {e}; the socket unit must pass listening TCP sockets (ListenStream= with an address or port, Accept=no)")
        })?;
        nodelay(&listener);
        out.push(listener);
    }
    Ok(out)
}
