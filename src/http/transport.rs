//! The bytes under HTTP: a plain socket, or TLS records through rustls.
//!
//! rustls is sans-I/O: it never touches the socket itself, so a TLS
//! connection runs on the I/O loop like a plain one and never blocks it.
//! [`Transport`] hides the difference from the connection's state machine,
//! which only sees plaintext in and plaintext out.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::inbuf::InBuf;

/// What Go's `net/http` answers plain HTTP on a TLS port: a hint, no data.
#[cfg(feature = "tls")]
const PLAIN_HTTP_REPLY: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

pub(super) enum Transport {
    Plain,
    #[cfg(feature = "tls")]
    Tls(Box<rustls::ServerConnection>),
}

/// What one read brought.
pub(super) enum Received {
    /// The peer closed its side (or TLS said close_notify).
    End,
    /// Something arrived, possibly only handshake records (no plaintext).
    Some,
    /// Plaintext arrived that the memory budget cannot buffer now; it is
    /// lost, so the connection cannot go on.
    OverBudget,
}

/// What the first byte on a TLS port says.
#[cfg(feature = "tls")]
pub(super) enum FirstByte {
    /// A TLS record: go on with the handshake.
    Tls,
    /// Plain HTTP (answered with Go's hint) or garbage: not TLS.
    NotTls,
    /// Nothing to look at yet.
    NotYet,
    /// The socket failed.
    Failed,
}

impl Transport {
    /// Still handshaking (always false for plain).
    pub(super) fn is_handshaking(&self) -> bool {
        match self {
            Transport::Plain => false,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.is_handshaking(),
        }
    }

    /// TLS has records to send (handshake, alerts, close_notify).
    pub(super) fn wants_write(&self) -> bool {
        match self {
            Transport::Plain => false,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.wants_write(),
        }
    }

    /// Reads once from `sock`, appending the plaintext to `inbuf`.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub(super) fn read(
        &mut self,
        sock: &mut TcpStream,
        peer: SocketAddr,
        scratch: &mut [u8],
        inbuf: &mut InBuf,
    ) -> io::Result<Received> {
        match self {
            Transport::Plain => {
                // Read into the loop's scratch first: the connection's own
                // buffer grows only once the budget has covered it.
                let n = sock.read(scratch)?;
                Ok(if n == 0 {
                    Received::End
                } else if inbuf.append(&scratch[..n]).is_err() {
                    Received::OverBudget
                } else {
                    Received::Some
                })
            }
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => read_tls(tls, sock, peer, scratch, inbuf),
        }
    }

    /// Writes some of `plaintext` (TLS: or pending records first). Returns
    /// the plaintext bytes taken, or `None` when nothing was sent.
    pub(super) fn write(
        &mut self,
        sock: &mut TcpStream,
        plaintext: Option<&[u8]>,
    ) -> io::Result<Option<usize>> {
        match self {
            Transport::Plain => match plaintext {
                Some(p) => sock.write(p).map(|n| (n > 0).then_some(n)),
                None => Ok(None),
            },
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => {
                if tls.wants_write() {
                    // Records, not plaintext: progress, but nothing taken.
                    tls.write_tls(sock).map(|n| (n > 0).then_some(0))
                } else if let Some(p) = plaintext {
                    tls.writer().write(p).map(|n| (n > 0).then_some(n))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Sends TLS close_notify, best effort, before our side shuts.
    #[cfg_attr(not(feature = "tls"), allow(unused_variables))]
    pub(super) fn close_notify(&mut self, sock: &mut TcpStream) {
        #[cfg(feature = "tls")]
        if let Transport::Tls(tls) = self {
            tls.send_close_notify();
            let _ = tls.write_tls(sock);
        }
    }

    /// On a fresh TLS connection, looks at the first byte: plain HTTP gets
    /// Go's hint, and the transport becomes plain (no TLS was spoken, so
    /// no close_notify either).
    #[cfg(feature = "tls")]
    pub(super) fn check_first_byte(&mut self, sock: &mut TcpStream, peer: SocketAddr) -> FirstByte {
        let mut first = [0u8; 1];
        match sock.peek(&mut first) {
            Ok(1) if first[0] == 0x16 => FirstByte::Tls,
            Ok(1) => {
                if first[0].is_ascii_uppercase() {
                    let _ = sock.write(PLAIN_HTTP_REPLY);
                }
                log::debug!(source:display = peer; "plain HTTP on a TLS port");
                *self = Transport::Plain;
                FirstByte::NotTls
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => FirstByte::NotYet,
            _ => FirstByte::Failed,
        }
    }
}

/// Reads TLS records and takes out whatever plaintext they carry. A
/// record that fails gets its alert sent, then the connection ends.
#[cfg(feature = "tls")]
fn read_tls(
    tls: &mut rustls::ServerConnection,
    sock: &mut TcpStream,
    peer: SocketAddr,
    scratch: &mut [u8],
    inbuf: &mut InBuf,
) -> io::Result<Received> {
    let n = tls.read_tls(sock)?;
    if let Err(e) = tls.process_new_packets() {
        let _ = tls.write_tls(sock);
        if tls.is_handshaking() {
            log::warn!(source:display = peer, err:display = e; "TLS handshake failed");
        }
        return Err(io::Error::other(e));
    }
    loop {
        match tls.reader().read(scratch) {
            Ok(0) => return Ok(Received::End),
            Ok(m) => {
                if inbuf.append(&scratch[..m]).is_err() {
                    return Ok(Received::OverBudget);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    // Handshake records carry no plaintext; only a closed socket is the end.
    Ok(if n == 0 {
        Received::End
    } else {
        Received::Some
    })
}
