//! TLS for `tls_server_config`, through rustls.
//!
//! tiny_http cannot take a connection someone else accepted, and its own
//! TLS support has no client certificates and runs every handshake on its
//! single accept thread (one slow client would stall all new connections).
//! So TLS is terminated here, in front of tiny_http:
//!
//! ```text
//! client ──TLS──▶ listener ─▶ one thread per connection:
//!                             handshake (bounded by HANDSHAKE_TIMEOUT),
//!                             then pump plaintext both ways over a unix
//!                             socket ──▶ tiny_http ──▶ the usual loop
//! ```
//!
//! The unix socket lives in a directory only this process's user can enter
//! (mode 0700, made by `mkdtemp`), so nobody else on the machine can reach
//! the plaintext side. A client is connected to it only after its handshake
//! succeeded, client certificate included.
//!
//! The certificate files are watched like exporter-toolkit does it (it
//! reloads them on every new connection): at most once a second a new
//! connection looks at the web config file and the files it names, and
//! rebuilds the rustls configuration when one of them changed. A rotated
//! certificate is picked up without a restart. If the new files are bad,
//! new handshakes fail (closed, as the reference does) until they are fixed.

use std::ffi::{CString, OsString};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, ring as provider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, ServerConnection,
    SignatureScheme, SupportedProtocolVersion,
};

use crate::web_config::{self, ClientAuth, Curve, Source, Stamp, TlsSettings, TlsVersion};

/// How long a client may take from connecting to a finished handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS connections served at once; more are closed at once, with a warning.
const MAX_CONNECTIONS: usize = 4096;

/// Plaintext read from a client and not yet taken by tiny_http, at most.
const MAX_BUFFERED: usize = 256 * 1024;

/// What Go's `net/http` answers plain HTTP on a TLS port: a hint, no data.
const PLAIN_HTTP_REPLY: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Builds the rustls configuration from `settings`, reading the PEM files.
/// Also returns warnings about settings rustls cannot honour exactly.
pub fn build(settings: &TlsSettings) -> Result<(Arc<ServerConfig>, Vec<String>), String> {
    let mut warnings = Vec::new();
    let mut crypto = provider::default_provider();

    let versions = versions(settings, &mut crypto, &mut warnings)?;
    if !settings.curves.is_empty() {
        let mut groups = Vec::new();
        for curve in &settings.curves {
            match curve {
                Curve::P256 => groups.push(provider::kx_group::SECP256R1),
                Curve::P384 => groups.push(provider::kx_group::SECP384R1),
                Curve::X25519 => groups.push(provider::kx_group::X25519),
                Curve::P521 => warnings.push(
                    "curve_preferences: CurveP521 is not implemented by rustls; skipped".into(),
                ),
            }
        }
        if groups.is_empty() {
            return Err(
                "tls_server_config.curve_preferences: none of the curves is available \
                        (use X25519, CurveP256 or CurveP384)"
                    .into(),
            );
        }
        crypto.kx_groups = groups;
    }
    let crypto = Arc::new(crypto);

    let certs = read_certs(&settings.cert, "cert")?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no CERTIFICATE block found",
            settings.cert.describe("cert")
        ));
    }
    let key_pem = read(&settings.key, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "{}: no usable private key ({e}); expected an unencrypted PEM key",
            settings.key.describe("key")
        )
    })?;

    let builder = ServerConfig::builder_with_provider(Arc::clone(&crypto))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = if settings.client_auth == ClientAuth::NoClientCert {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(client_verifier(settings, &crypto)?)
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} and {} do not go together: {e}",
            settings.cert.describe("cert"),
            settings.key.describe("key")
        )
    })?;
    // No HTTP/2: tiny_http speaks HTTP/1.1, and so do all clients as a fallback.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), warnings))
}

/// The protocol versions in [min_version, max_version] rustls has, and the
/// TLS 1.2 cipher suites `cipher_suites` allows.
fn versions(
    settings: &TlsSettings,
    crypto: &mut CryptoProvider,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    if settings.min_version < TlsVersion::Tls12 {
        warnings.push(format!(
            "min_version {:?}: rustls speaks TLS 1.2 and 1.3 only; older clients cannot connect",
            settings.min_version
        ));
    }
    let mut tls12 = settings.min_version <= TlsVersion::Tls12;
    let tls13 = settings.max_version >= TlsVersion::Tls13;
    if !settings.cipher_suites.is_empty() {
        // Go applies the list to TLS 1.2 only; TLS 1.3 suites are fixed.
        let named = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
        for wanted in &settings.cipher_suites {
            let known = crypto.cipher_suites.iter().any(|s| &named(s) == wanted);
            if !known && !wanted.starts_with("TLS_AES_") && !wanted.starts_with("TLS_CHACHA20_") {
                warnings.push(format!(
                    "cipher_suites: {wanted} is not implemented by rustls; skipped"
                ));
            }
        }
        crypto.cipher_suites.retain(|s| {
            s.version() == &rustls::version::TLS13 || settings.cipher_suites.contains(&named(s))
        });
        let any12 = crypto
            .cipher_suites
            .iter()
            .any(|s| s.version() == &rustls::version::TLS12);
        if tls12 && !any12 {
            if !tls13 {
                return Err(
                    "tls_server_config.cipher_suites: none of the listed TLS 1.2 suites \
                            is available, and TLS 1.3 is not allowed"
                        .into(),
                );
            }
            warnings.push(
                "cipher_suites: none of the listed TLS 1.2 suites is available; only TLS 1.3 is offered"
                    .into(),
            );
            tls12 = false;
        }
    }
    let mut out = Vec::new();
    if tls13 {
        out.push(&rustls::version::TLS13);
    }
    if tls12 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

fn client_verifier(
    settings: &TlsSettings,
    crypto: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mode = settings.client_auth;
    let webpki = match (&settings.client_ca, mode.verifies()) {
        (Some(ca), true) => {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(read_certs(ca, "client_ca")?);
            if added == 0 {
                return Err(format!(
                    "{}: no usable CA certificate found",
                    ca.describe("client_ca")
                ));
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(crypto));
            let builder = if mode.mandatory() {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            Some(
                builder
                    .build()
                    .map_err(|e| format!("tls_server_config.client_ca: {e}"))?,
            )
        }
        _ => None,
    };
    Ok(Arc::new(ClientVerifier {
        webpki,
        mandatory: mode.mandatory(),
        allowed_sans: settings.client_allowed_sans.clone(),
        crypto: Arc::clone(crypto),
    }))
}

/// Client certificates as `client_auth_type` wants them: checked against
/// the client CAs or only asked for, then `client_allowed_sans`.
#[derive(Debug)]
struct ClientVerifier {
    /// Chain verification against the client CAs, for the Verify* modes.
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    allowed_sans: Option<Vec<String>>,
    crypto: Arc<CryptoProvider>,
}

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki
            .as_ref()
            .map(|w| w.root_hint_subjects())
            .unwrap_or_default()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(w) = &self.webpki {
            w.verify_client_cert(end_entity, intermediates, now)?;
        }
        if let Some(allowed) = &self.allowed_sans
            && !san_allowed(end_entity, allowed)
        {
            return Err(rustls::Error::General(
                "the client certificate names none of client_allowed_sans".into(),
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.crypto.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.crypto
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether the certificate's subject alternative names include one of
/// `allowed`, compared as exact strings as exporter-toolkit does (DNS names
/// and URIs; IP addresses by value). E-mail SANs are not looked at.
fn san_allowed(cert: &CertificateDer<'_>, allowed: &[String]) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(cert) else {
        return false;
    };
    let by_name = cert
        .valid_dns_names()
        .chain(cert.valid_uri_names())
        .any(|name| allowed.iter().any(|a| a == name));
    by_name
        || allowed.iter().any(|a| {
            a.parse::<IpAddr>().is_ok_and(|ip| {
                cert.verify_is_valid_for_subject_name(&ServerName::IpAddress(ip.into()))
                    .is_ok()
            })
        })
}

fn read(source: &Source, field: &str) -> Result<Vec<u8>, String> {
    match source {
        Source::Inline(text) => Ok(text.as_bytes().to_vec()),
        Source::File(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", source.describe(field)))
        }
    }
}

fn read_certs(source: &Source, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(source, field)?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", source.describe(field)))
}

fn path_of(source: &Source) -> Option<&Path> {
    match source {
        Source::File(p) => Some(p),
        Source::Inline(_) => None,
    }
}

/// The rustls configuration of the moment, rebuilt when the web config
/// file or a file it names changes.
pub struct Reloader {
    web_config: PathBuf,
    state: Mutex<ReloadState>,
}

struct ReloadState {
    checked: Instant,
    /// What the watched files looked like when `current` was built.
    stamps: Vec<Stamp>,
    files: Vec<PathBuf>,
    current: Result<Arc<ServerConfig>, String>,
}

/// How often a new connection may look at the files.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

impl Reloader {
    /// Starts from the configuration read at start-up.
    pub fn new(web_config: PathBuf, settings: &TlsSettings, config: Arc<ServerConfig>) -> Reloader {
        let files = watched(&web_config, settings);
        Reloader {
            state: Mutex::new(ReloadState {
                checked: Instant::now(),
                stamps: files.iter().map(|f| web_config::stamp(f)).collect(),
                files,
                current: Ok(config),
            }),
            web_config,
        }
    }

    /// The configuration a new connection should use.
    pub fn current(&self) -> Result<Arc<ServerConfig>, String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.checked.elapsed() >= RELOAD_CHECK {
            st.checked = Instant::now();
            let stamps: Vec<_> = st.files.iter().map(|f| web_config::stamp(f)).collect();
            if stamps != st.stamps {
                let (result, files) = self.reload();
                match &result {
                    Ok(_) => {
                        log::info!(file:display = self.web_config.display(); "TLS configuration reloaded")
                    }
                    Err(e) => {
                        log::error!(err = e.as_str(); "TLS configuration not reloaded; new TLS connections are refused until it is fixed")
                    }
                }
                st.files = files;
                st.stamps = st.files.iter().map(|f| web_config::stamp(f)).collect();
                st.current = result;
            }
        }
        st.current.clone()
    }

    fn reload(&self) -> (Result<Arc<ServerConfig>, String>, Vec<PathBuf>) {
        let settings = match web_config::load(&self.web_config) {
            Ok(c) => c.tls,
            Err(e) => return (Err(e.to_string()), vec![self.web_config.clone()]),
        };
        let Some(settings) = settings else {
            return (
                Err("tls_server_config was removed; restart to serve plain HTTP".into()),
                vec![self.web_config.clone()],
            );
        };
        let files = watched(&self.web_config, &settings);
        let result = build(&settings).map(|(config, warnings)| {
            for w in warnings {
                log::warn!(setting = w.as_str(); "TLS setting not honoured exactly");
            }
            config
        });
        (result, files)
    }
}

fn watched(web_config: &Path, s: &TlsSettings) -> Vec<PathBuf> {
    let mut files = vec![web_config.to_path_buf()];
    for source in [Some(&s.cert), Some(&s.key), s.client_ca.as_ref()]
        .into_iter()
        .flatten()
    {
        files.extend(path_of(source).map(Path::to_path_buf));
    }
    files
}

/// The private directory holding the plaintext unix sockets; removed on drop.
pub struct SocketDir {
    dir: PathBuf,
    sockets: Vec<PathBuf>,
}

impl SocketDir {
    /// Makes a fresh 0700 directory in the first writable place among
    /// `$RUNTIME_DIRECTORY` (systemd), `$XDG_RUNTIME_DIR`, `$TMPDIR`,
    /// `/dev/shm` (present in every container) and `/tmp`.
    pub fn create() -> io::Result<SocketDir> {
        let mut bases: Vec<PathBuf> = Vec::new();
        for var in ["RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR", "TMPDIR"] {
            if let Some(v) = std::env::var_os(var) {
                // systemd separates several runtime directories with ':'.
                let first = v.to_string_lossy().split(':').next().map(PathBuf::from);
                bases.extend(first.filter(|p| p.is_absolute()));
            }
        }
        bases.extend(["/dev/shm", "/tmp"].map(PathBuf::from));
        let mut last = io::Error::other("no candidate directory");
        for base in bases {
            let template = base.join("pushgateway-tls-XXXXXX");
            let Ok(c) = CString::new(template.into_os_string().into_vec()) else {
                continue;
            };
            let raw = c.into_raw();
            // SAFETY: `raw` is a NUL-terminated buffer we own; mkdtemp
            // only rewrites the XXXXXX in place.
            let made = unsafe { !libc::mkdtemp(raw).is_null() };
            // SAFETY: `raw` came from CString::into_raw just above.
            let c = unsafe { CString::from_raw(raw) };
            if made {
                let dir = PathBuf::from(OsString::from_vec(c.into_bytes()));
                return Ok(SocketDir {
                    dir,
                    sockets: Vec::new(),
                });
            }
            last = io::Error::last_os_error();
        }
        Err(io::Error::new(
            last.kind(),
            format!(
                "cannot create a private directory for TLS (tried $RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR, $TMPDIR, /dev/shm, /tmp): {last}"
            ),
        ))
    }

    /// A new unix listener in the directory, for one TLS listener.
    pub fn listener(&mut self) -> io::Result<(UnixListener, PathBuf)> {
        let path = self.dir.join(format!("{}.sock", self.sockets.len()));
        let listener = UnixListener::bind(&path)?;
        self.sockets.push(path.clone());
        Ok((listener, path))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Stops a TLS listener's accept thread.
pub struct Stopper {
    fd: RawFd,
    stop: Arc<AtomicBool>,
}

impl Stopper {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the thread blocked in accept(); the listener stays open
        // (and its fd valid) until that thread drops it.
        // SAFETY: shutdown on a descriptor we own; no memory is involved.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
}

/// Accepts TLS connections on `listener` and hands each, once its
/// handshake is done, to tiny_http listening on `plain`.
pub fn serve(
    listener: TcpListener,
    plain: PathBuf,
    reloader: Arc<Reloader>,
) -> io::Result<Stopper> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Stopper {
        fd: listener.as_raw_fd(),
        stop: Arc::clone(&stop),
    };
    thread::Builder::new()
        .name("tls-accept".into())
        .spawn(move || accept_loop(&listener, &plain, &reloader, &stop))?;
    Ok(stopper)
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

fn accept_loop(listener: &TcpListener, plain: &Path, reloader: &Reloader, stop: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                log::warn!(err:display = e; "TLS listener: accept failed");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if ACTIVE.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            log::warn!(source:display = peer, limit = MAX_CONNECTIONS; "too many TLS connections; closing a new one");
            continue;
        }
        let config = match reloader.current() {
            Ok(c) => c,
            Err(_) => continue, // Already logged when the reload failed.
        };
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        let plain = plain.to_path_buf();
        let spawned = thread::Builder::new()
            .name("tls-conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                if let Err(why) = connection(tcp, config, &plain) {
                    log::debug!(source:display = peer, why = why.as_str(); "TLS connection ended");
                }
                ACTIVE.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
            log::warn!(err:display = e; "cannot start a TLS connection thread");
        }
    }
}

/// One TLS connection: handshake, then plaintext to and from tiny_http
/// until either side closes. Non-blocking sockets and poll(2), so neither
/// direction can block the other.
fn connection(mut tcp: TcpStream, config: Arc<ServerConfig>, plain: &Path) -> Result<(), String> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut first = [0u8; 1];
    match tcp.peek(&mut first) {
        Ok(1) => {}
        _ => return Err("closed or silent before the handshake".into()),
    }
    // 0x16 starts a TLS handshake record; a letter starts an HTTP request.
    if first[0] != 0x16 {
        if first[0].is_ascii_uppercase() {
            let _ = tcp.write_all(PLAIN_HTTP_REPLY);
        }
        return Err("plain HTTP on a TLS port".into());
    }
    tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut tls = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut app: Option<UnixStream> = None;
    let mut to_app: Vec<u8> = Vec::new();
    let (mut client_done, mut app_done, mut app_shut) = (false, false, false);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if app.is_none() && !tls.is_handshaking() {
            let s = UnixStream::connect(plain).map_err(|e| format!("internal socket: {e}"))?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            app = Some(s);
        }
        if let Some(a) = app.as_mut() {
            while !to_app.is_empty() {
                match a.write(&to_app) {
                    Ok(n) => drop(to_app.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("internal socket: {e}")),
                }
            }
            if client_done && to_app.is_empty() && !app_shut {
                let _ = a.shutdown(Shutdown::Write);
                app_shut = true;
            }
        }
        while tls.wants_write() {
            match tls.write_tls(&mut tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("writing to client: {e}")),
            }
        }
        if app_done && !tls.wants_write() {
            let _ = tcp.shutdown(Shutdown::Both);
            return Ok(());
        }
        if client_done && tls.is_handshaking() {
            return Err("client left during the handshake".into());
        }

        let mut tcp_events = 0;
        if !client_done && to_app.len() < MAX_BUFFERED {
            tcp_events |= libc::POLLIN;
        }
        if tls.wants_write() {
            tcp_events |= libc::POLLOUT;
        }
        let mut app_events = 0;
        if let Some(_a) = &app {
            if !to_app.is_empty() {
                app_events |= libc::POLLOUT;
            }
            if !app_done && !tls.wants_write() {
                app_events |= libc::POLLIN;
            }
        }
        let fd_or_none = |fd: RawFd, events: i16| if events == 0 { -1 } else { fd };
        let mut fds = [
            libc::pollfd {
                fd: fd_or_none(tcp.as_raw_fd(), tcp_events),
                events: tcp_events,
                revents: 0,
            },
            libc::pollfd {
                fd: app
                    .as_ref()
                    .map_or(-1, |a| fd_or_none(a.as_raw_fd(), app_events)),
                events: app_events,
                revents: 0,
            },
        ];
        let timeout = if tls.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("handshake timed out".into());
            }
            i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1)
        } else {
            -1
        };
        // SAFETY: `fds` is a valid array of two pollfd for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        let ready = libc::POLLIN | libc::POLLHUP | libc::POLLERR;
        if fds[0].revents & ready != 0 {
            loop {
                match tls.read_tls(&mut tcp) {
                    Ok(0) => {
                        client_done = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("reading from client: {e}")),
                }
                if let Err(e) = tls.process_new_packets() {
                    // Send the alert that says why, then give up.
                    let _ = tls.write_tls(&mut tcp);
                    if tls.is_handshaking() {
                        log::warn!(source = peer_of(&tcp), err:display = e; "TLS handshake failed");
                    }
                    return Err(e.to_string());
                }
                loop {
                    match tls.reader().read(&mut buf) {
                        Ok(0) => {
                            client_done = true;
                            break;
                        }
                        Ok(n) => to_app.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            client_done = true;
                            break;
                        }
                    }
                }
                if client_done || to_app.len() >= MAX_BUFFERED {
                    break;
                }
            }
        }
        if fds[1].revents & ready != 0
            && let Some(a) = app.as_mut()
        {
            match a.read(&mut buf) {
                Ok(0) => {
                    app_done = true;
                    tls.send_close_notify();
                }
                Ok(n) => {
                    // Buffered by rustls and sent by write_tls above.
                    tls.writer()
                        .write_all(&buf[..n])
                        .map_err(|e| e.to_string())?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    app_done = true;
                    tls.send_close_notify();
                }
            }
        }
    }
}

fn peer_of(tcp: &TcpStream) -> String {
    tcp.peer_addr()
        .map(|a: SocketAddr| a.to_string())
        .unwrap_or_default()
}
