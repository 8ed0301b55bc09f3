//! The bytes under HTTP: a plain socket, or TLS records through rustls.
//!
//! rustls is sans-I/O: it never touches the socket itself, so a TLS
//! connection runs on the I/O loop like a plain one and never blocks it.
//! [`Transport`] hides the difference from the connection's state machine,
//! which only sees plaintext in and plaintext out.
//!
//! Except for the handshake's crypto: a step of a handshake (signing with
//! the server's key, a key exchange) takes milliseconds, and a thousand
//! handshakes a second would stall every other client. The loop only
//! moves the records: when a record arrives while handshaking, the
//! session goes to a handshake thread ([`Transport::take_for_handshake`],
//! [`handshake_step`]), the connection reads nothing meanwhile, and the
//! loop takes the session back ([`Transport::resume_handshake`]).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

use super::inbuf::InBuf;

/// What Go's `net/http` answers plain HTTP on a TLS port: a hint, no data.
#[cfg(feature = "tls")]
const PLAIN_HTTP_REPLY: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

pub(super) enum Transport {
    Plain,
    #[cfg(feature = "tls")]
    Tls(Box<rustls::ServerConnection>),
    /// The TLS session is on a handshake thread: nothing can be read or
    /// written until it is back.
    #[cfg(feature = "tls")]
    Away,
}

/// The TLS session of a connection, as it travels to a handshake thread.
#[cfg(feature = "tls")]
pub(super) type Session = Box<rustls::ServerConnection>;

/// One handshake step's crypto, on a handshake thread: whatever the
/// records read so far call for.
#[cfg(feature = "tls")]
pub(super) fn handshake_step(tls: &mut Session) -> Result<(), rustls::Error> {
    tls.process_new_packets().map(drop)
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
    /// Handshake records arrived: their crypto is for a handshake thread.
    #[cfg(feature = "tls")]
    Handshake,
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
            #[cfg(feature = "tls")]
            Transport::Away => true,
        }
    }

    /// The session is on a handshake thread.
    pub(super) fn is_away(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Transport::Away = self {
            return true;
        }
        false
    }

    /// The DNS and URI names of the client's certificate, verified by the
    /// handshake (none without TLS or a certificate).
    pub(super) fn client_names(&self) -> Vec<String> {
        #[cfg(feature = "tls")]
        if let Transport::Tls(tls) = self
            && let Some(cert) = tls.peer_certificates().and_then(|c| c.first())
        {
            return crate::access::tls::certificate_names(cert);
        }
        Vec::new()
    }

    /// Takes the TLS session out for a handshake step on another thread.
    #[cfg(feature = "tls")]
    pub(super) fn take_for_handshake(&mut self) -> Option<Session> {
        match std::mem::replace(self, Transport::Away) {
            Transport::Tls(tls) => Some(tls),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Puts the session back after a handshake step, sends the alert of a
    /// failed step, and takes out any plaintext the step uncovered (a
    /// client may send its first request right behind its last handshake
    /// record).
    #[cfg(feature = "tls")]
    pub(super) fn resume_handshake(
        &mut self,
        mut tls: Session,
        processed: Result<(), rustls::Error>,
        sock: &mut TcpStream,
        peer: SocketAddr,
        inbuf: &mut InBuf,
    ) -> io::Result<Received> {
        let mut scratch = [0u8; 16 * 1024];
        let got = after_processing(&mut tls, processed, sock, peer, &mut scratch, inbuf, true);
        *self = Transport::Tls(tls);
        got
    }

    /// TLS has records to send (handshake, alerts, close_notify).
    pub(super) fn wants_write(&self) -> bool {
        match self {
            Transport::Plain => false,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.wants_write(),
            #[cfg(feature = "tls")]
            Transport::Away => false,
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
            #[cfg(feature = "tls")]
            Transport::Away => Err(io::ErrorKind::WouldBlock.into()),
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
            #[cfg(feature = "tls")]
            Transport::Away => Ok(None),
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
/// Records of a handshake are only read: [`Received::Handshake`] says
/// their processing is for a handshake thread.
#[cfg(feature = "tls")]
fn read_tls(
    tls: &mut rustls::ServerConnection,
    sock: &mut TcpStream,
    peer: SocketAddr,
    scratch: &mut [u8],
    inbuf: &mut InBuf,
) -> io::Result<Received> {
    let n = tls.read_tls(sock)?;
    if n > 0 && tls.is_handshaking() {
        return Ok(Received::Handshake);
    }
    let processed = tls.process_new_packets().map(drop);
    after_processing(tls, processed, sock, peer, scratch, inbuf, n > 0)
}

/// After records were processed (here or on a handshake thread): sends
/// the alert of a failure, or takes out the plaintext. `more`: the socket
/// is still open.
#[cfg(feature = "tls")]
fn after_processing(
    tls: &mut rustls::ServerConnection,
    processed: Result<(), rustls::Error>,
    sock: &mut TcpStream,
    peer: SocketAddr,
    scratch: &mut [u8],
    inbuf: &mut InBuf,
    more: bool,
) -> io::Result<Received> {
    if let Err(e) = processed {
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
    Ok(if more { Received::Some } else { Received::End })
}
