//! TLS for `tls_server_config`, through rustls: building the server
//! configuration from the web config file, checking client certificates,
//! and reloading certificate files when they change.
//!
//! The records themselves are processed on the HTTP front's I/O loop
//! (`http::conn`), with rustls's `ServerConnection` fed from non-blocking
//! sockets: no thread per connection, and every request knows its client.
//!
//! The certificate files are watched like exporter-toolkit does it (it
//! reloads them on every new connection): at most once a second a new
//! connection looks at the web config file and the files it names, and
//! rebuilds the rustls configuration when one of them changed. A rotated
//! certificate is picked up without a restart. If the new files are bad,
//! new handshakes fail (closed, as the reference does) until they are fixed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, ring as provider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};

use crate::access::config::{self, ClientAuth, Curve, Source, Stamp, TlsSettings, TlsVersion};

/// How long a client may take from connecting to a finished handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most TLS records a session holds to be sent: an answer's plaintext
/// is handed over this much at a time, the rest waits in the connection's
/// own (charged) output queue.
pub(crate) const SEND_BUFFER: usize = 32 * 1024;

/// What one TLS session's buffers may hold, charged to the memory budget
/// ([`Class::Head`](crate::http::budget::Class)) when the connection is
/// accepted: a handshake message being joined (up to 64 KiB, rustls'
/// limit) or, after it, a record being read (about 18 KiB) with the
/// plaintext read ahead (16 KiB, rustls' default); and the records to send
/// ([`SEND_BUFFER`], overshot by at most one record). Ten thousand idle TLS
/// connections would otherwise hold up to a gigabyte the budget never saw.
pub(crate) const SESSION_HOLDS: usize = 96 * 1024;

/// Builds the rustls configuration from `settings`, reading the PEM files.
/// Also returns warnings about settings rustls cannot honour exactly.
pub(crate) fn build(settings: &TlsSettings) -> Result<(Arc<ServerConfig>, Vec<String>), String> {
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
    if settings.client_allowed_sans.is_some()
        && settings.client_auth == ClientAuth::RequireAnyClientCert
    {
        warnings.push(
            "client_allowed_sans with client_auth_type RequireAnyClientCert: client certificates \
             are not verified against client CAs, so any client can make one that names an \
             allowed SAN; use RequireAndVerifyClientCert"
                .into(),
        );
    }
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
    // No HTTP/2: the front speaks HTTP/1.1, and so do all clients as a fallback.
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
            let builder = if mode.demands_a_certificate() {
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
        mandatory: mode.demands_a_certificate(),
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
/// The DNS and URI subject alternative names of a certificate: who a
/// client certificate says it is, for write scopes.
///
/// Then its subject's common name, for certificates issued without SANs.
pub(crate) fn certificate_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(parsed) = webpki::EndEntityCert::try_from(cert) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .valid_dns_names()
        .chain(parsed.valid_uri_names())
        .map(str::to_owned)
        .collect();
    names.extend(common_name(cert));
    names
}

/// One DER element: its tag, its content and what follows it.
fn der(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes.iter().fold(0usize, |a, &b| a << 8 | usize::from(b));
        (len, rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// The subject's common name (OID 2.5.4.3) of a DER certificate that
/// webpki accepted, the last one as Go's `pkix.Name` keeps it.
fn common_name(cert: &[u8]) -> Option<String> {
    let (_, certificate, _) = der(cert)?;
    let (_, tbs, _) = der(certificate)?;
    // An explicit version ([0]) first, when there is one; then the serial
    // number, the signature algorithm, the issuer and the validity.
    let (tag, _, after) = der(tbs)?;
    let mut fields = if tag == 0xa0 { after } else { tbs };
    for _ in 0..4 {
        fields = der(fields)?.2;
    }
    let (_, mut rdns, _) = der(fields)?;
    let mut cn = None;
    while !rdns.is_empty() {
        let (_, set, rest) = der(rdns)?;
        rdns = rest;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, rest) = der(attributes)?;
            attributes = rest;
            let (_, oid, value) = der(attribute)?;
            if oid == [0x55, 0x04, 0x03] {
                let (_, text, _) = der(value)?;
                cn = std::str::from_utf8(text).ok().map(str::to_owned);
            }
        }
    }
    cn
}

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
pub(crate) struct Reloader {
    web_config: PathBuf,
    state: Mutex<ReloadState>,
}

struct ReloadState {
    checked: Instant,
    /// Whether `current` verifies client certificates against client CAs
    /// (`VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`): only
    /// then may a certificate's names stand for who the client is.
    verifies_clients: bool,
    /// What the watched files looked like when `current` was built.
    stamps: Vec<Stamp>,
    files: Vec<PathBuf>,
    current: Result<Arc<ServerConfig>, String>,
}

/// How often a new connection may look at the files.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

impl Reloader {
    /// Starts from the configuration read at start-up.
    pub(crate) fn new(
        web_config: PathBuf,
        settings: &TlsSettings,
        config: Arc<ServerConfig>,
    ) -> Reloader {
        let files = watched(&web_config, settings);
        Reloader {
            state: Mutex::new(ReloadState {
                checked: Instant::now(),
                verifies_clients: settings.client_auth.verifies(),
                stamps: files.iter().map(|f| config::stamp(f)).collect(),
                files,
                current: Ok(config),
            }),
            web_config,
        }
    }

    /// The configuration a new connection should use.
    pub(crate) fn current(&self) -> Result<Arc<ServerConfig>, String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.checked.elapsed() >= RELOAD_CHECK {
            st.checked = Instant::now();
            let stamps: Vec<_> = st.files.iter().map(|f| config::stamp(f)).collect();
            if stamps != st.stamps {
                let (result, files, verifies) = self.reload();
                match &result {
                    Ok(_) => {
                        log::info!(file:display = self.web_config.display(); "TLS configuration reloaded")
                    }
                    Err(e) => {
                        log::error!(err = e.as_str(); "TLS configuration not reloaded; new TLS connections are refused until it is fixed")
                    }
                }
                st.files = files;
                st.stamps = st.files.iter().map(|f| config::stamp(f)).collect();
                if result.is_ok() {
                    st.verifies_clients = verifies;
                }
                st.current = result;
            }
        }
        st.current.clone()
    }

    /// Whether the configuration `current` last returned verifies client
    /// certificates (see [`ReloadState::verifies_clients`]).
    pub(crate) fn verifies_clients(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .verifies_clients
    }

    fn reload(&self) -> (Result<Arc<ServerConfig>, String>, Vec<PathBuf>, bool) {
        let settings = match config::load(&self.web_config) {
            Ok(c) => c.tls,
            Err(e) => return (Err(e.to_string()), vec![self.web_config.clone()], false),
        };
        let Some(settings) = settings else {
            return (
                Err("tls_server_config was removed; restart to serve plain HTTP".into()),
                vec![self.web_config.clone()],
                false,
            );
        };
        let files = watched(&self.web_config, &settings);
        let result = build(&settings).map(|(config, warnings)| {
            for w in warnings {
                log::warn!(setting = w.as_str(); "TLS setting not honoured exactly");
            }
            config
        });
        (result, files, settings.client_auth.verifies())
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
