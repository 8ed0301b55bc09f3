//! `--web.config.file`: the Prometheus exporter-toolkit web configuration,
//! so a user's existing file works unchanged.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt       # relative paths: next to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients.pem
//! basic_auth_users:
//!   alice: $2y$10$...          # bcrypt hash
//! http_server_config:
//!   headers:
//!     X-Frame-Options: deny
//! rate_limit:
//!   burst: 10
//!   interval: 1s
//! ```
//!
//! Parsed with yaml-rust2. Unknown keys and invalid values stop the start
//! with the key's name: a typo must not silently leave the gateway open.
//! This module only reads the file; `tls` turns the TLS settings into a
//! rustls configuration and reads the certificate files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

/// What the web configuration file asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct WebConfig {
    /// User name to bcrypt hash. Empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(String, String)>,
    /// `tls_server_config`, when any of its TLS fields is set.
    pub tls: Option<TlsSettings>,
    /// `rate_limit`, when its interval is not zero.
    pub rate_limit: Option<RateLimit>,
}

/// `rate_limit`: a token bucket over all requests, as exporter-toolkit's
/// (`golang.org/x/time/rate`): one token every `interval`, `burst` at most.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RateLimit {
    pub burst: u32,
    pub interval: Duration,
}

/// `tls_server_config`. Paths are already joined with the directory of the
/// configuration file, as exporter-toolkit does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TlsSettings {
    pub cert: Source,
    pub key: Source,
    /// `client_ca_file` or `client_ca`.
    pub client_ca: Option<Source>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Go cipher suite names, in the file's order. Empty: the defaults.
    pub cipher_suites: Vec<String>,
    /// Key exchange groups by preference. Empty: the defaults.
    pub curves: Vec<Curve>,
    /// `client_allowed_sans`: a client certificate must name one of these.
    pub client_allowed_sans: Option<Vec<String>>,
}

/// PEM text given inline or as a file to read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Source {
    File(PathBuf),
    Inline(String),
}

impl Source {
    /// Where the text comes from, for error messages.
    #[cfg(feature = "tls")]
    pub(crate) fn describe(&self, field: &str) -> String {
        match self {
            Source::File(p) => format!("{field}_file {}", p.display()),
            Source::Inline(_) => field.to_owned(),
        }
    }
}

/// `client_auth_type`, named as in Go's `crypto/tls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Whether every client must send a certificate, verified or not: what
    /// `client_allowed_sans` needs to have SANs to check.
    pub(crate) fn demands_a_certificate(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// Whether a presented certificate is checked against the client CAs.
    pub(crate) fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

/// `curve_preferences` entries, Go's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
    X25519,
}

/// The cipher suite names Go's `tls.CipherSuites()` knows, which is what
/// exporter-toolkit accepts. Some of them (CBC, RSA key exchange) are not
/// implemented by rustls; `tls` skips those with a warning.
pub(crate) const GO_CIPHER_SUITES: &[&str] = &[
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
];

#[derive(Debug, PartialEq)]
pub(crate) struct WebConfigError {
    pub file: String,
    pub why: String,
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "web config file {}: {}", self.file, self.why)
    }
}

impl std::error::Error for WebConfigError {}

/// The response headers exporter-toolkit lets a configuration set.
const ALLOWED_HEADERS: &[&str] = &[
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

/// What tells that a file was changed or replaced: modification time,
/// size and inode (`None`: missing). Cheaper than reading it.
pub(crate) type Stamp = Option<(i64, i64, u64, u64)>;

#[cfg(unix)]
pub(crate) fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
}

/// Without inodes (Windows): the modification time and the size; a file
/// replaced by one of the same size and time goes unnoticed.
#[cfg(not(unix))]
pub(crate) fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    let since = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH);
    let (secs, nanos) = since.map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_nanos()));
    Some((secs, i64::from(nanos), m.len(), 0))
}

/// Reads and checks the file.
pub(crate) fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| WebConfigError {
        file: file.clone(),
        why: format!("cannot read it: {e}"),
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    parse_in(&text, dir).map_err(|why| WebConfigError { file, why })
}

fn key_str(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Parses the YAML text of a web configuration whose relative paths are
/// relative to the current directory.
#[cfg(test)]
fn parse(text: &str) -> Result<WebConfig, String> {
    parse_in(text, Path::new(""))
}

/// Parses the YAML text of a web configuration read from directory `dir`.
pub(crate) fn parse_in(text: &str, dir: &Path) -> Result<WebConfig, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let mut config = WebConfig::default();
    let Some(doc) = docs.into_iter().next() else {
        return Ok(config); // An empty file configures nothing.
    };
    let top = match doc {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(config),
        _ => return Err("the top level must be a mapping".into()),
    };
    for (k, v) in top {
        let key = key_str(&k);
        match key.as_str() {
            "basic_auth_users" => config.users = users(&v)?,
            "http_server_config" => config.headers = http_server_config(&v)?,
            "tls_server_config" => config.tls = tls_server_config(&v, dir)?,
            "rate_limit" => config.rate_limit = rate_limit(&v)?,
            other => {
                return Err(format!(
                    "unknown key {other:?} (expected tls_server_config, http_server_config, basic_auth_users or rate_limit)"
                ));
            }
        }
    }
    Ok(config)
}

fn users(v: &Yaml) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let h = match v {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(out),
        _ => return Err("basic_auth_users must map user names to bcrypt hashes".into()),
    };
    for (user, hash) in h {
        let user = key_str(user);
        let Yaml::String(hash) = hash else {
            return Err(format!(
                "basic_auth_users.{user}: expected a bcrypt hash string"
            ));
        };
        // A malformed hash would make every login fail; say so at start-up.
        if !(hash.starts_with("$2") && hash.len() == 60) {
            return Err(format!(
                "basic_auth_users.{user}: {hash:?} is not a bcrypt hash"
            ));
        }
        out.insert(user, hash.clone());
    }
    Ok(out)
}

/// A YAML scalar as the string Go's YAML decoder would give a string field.
fn scalar(v: &Yaml, key: &str) -> Result<String, String> {
    match v {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Integer(i) => Ok(i.to_string()),
        Yaml::Real(r) => Ok(r.clone()),
        Yaml::Boolean(b) => Ok(b.to_string()),
        Yaml::Null => Ok(String::new()),
        _ => Err(format!("{key}: expected a string")),
    }
}

fn string_list(v: &Yaml, key: &str) -> Result<Vec<String>, String> {
    match v {
        Yaml::Null => Ok(Vec::new()),
        Yaml::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| scalar(item, &format!("{key}[{i}]")))
            .collect(),
        _ => Err(format!("{key}: expected a list")),
    }
}

fn tls_version(v: &Yaml, key: &str) -> Result<TlsVersion, String> {
    match scalar(v, key)?.as_str() {
        "TLS10" => Ok(TlsVersion::Tls10),
        "TLS11" => Ok(TlsVersion::Tls11),
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        other => Err(format!(
            "{key}: unknown TLS version {other:?} (expected TLS10, TLS11, TLS12 or TLS13)"
        )),
    }
}

/// `tls_server_config`. `None` when no TLS field is set, which means plain
/// HTTP, as exporter-toolkit's `IsEnabled`.
fn tls_server_config(v: &Yaml, dir: &Path) -> Result<Option<TlsSettings>, String> {
    let h = match v {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(None),
        _ => return Err("tls_server_config must be a mapping".into()),
    };
    let file = |s: String| (!s.is_empty()).then(|| Source::File(dir.join(s)));
    let inline = |s: String| (!s.is_empty()).then_some(Source::Inline(s));
    let (mut cert_file, mut cert, mut key_file, mut key) = (None, None, None, None);
    let (mut ca_file, mut ca, mut auth_name) = (None, None, String::new());
    let mut settings = TlsSettings {
        cert: Source::Inline(String::new()),
        key: Source::Inline(String::new()),
        client_ca: None,
        client_auth: ClientAuth::NoClientCert,
        min_version: TlsVersion::Tls12,
        max_version: TlsVersion::Tls13,
        cipher_suites: Vec::new(),
        curves: Vec::new(),
        client_allowed_sans: None,
    };
    for (k, v) in h {
        let name = key_str(k);
        let key_name = format!("tls_server_config.{name}");
        let text = || scalar(v, &key_name);
        match name.as_str() {
            "cert_file" => cert_file = file(text()?),
            "cert" => cert = inline(text()?),
            "key_file" => key_file = file(text()?),
            "key" => key = inline(text()?),
            "client_ca_file" => ca_file = file(text()?),
            "client_ca" => ca = inline(text()?),
            "client_auth_type" => auth_name = text()?,
            "min_version" => settings.min_version = tls_version(v, &key_name)?,
            "max_version" => settings.max_version = tls_version(v, &key_name)?,
            "cipher_suites" => {
                settings.cipher_suites = string_list(v, &key_name)?;
                if let Some(bad) = settings
                    .cipher_suites
                    .iter()
                    .find(|c| !GO_CIPHER_SUITES.contains(&c.as_str()))
                {
                    return Err(format!("{key_name}: unknown cipher suite {bad:?}"));
                }
            }
            "curve_preferences" => {
                for c in string_list(v, &key_name)? {
                    settings.curves.push(match c.as_str() {
                        "CurveP256" => Curve::P256,
                        "CurveP384" => Curve::P384,
                        "CurveP521" => Curve::P521,
                        "X25519" => Curve::X25519,
                        _ => return Err(format!(
                            "{key_name}: unknown curve {c:?} (expected CurveP256, CurveP384, CurveP521 or X25519)"
                        )),
                    });
                }
            }
            "prefer_server_cipher_suites" => {
                // Go ignores it since 1.17; rustls always prefers its own order.
                if !matches!(v, Yaml::Boolean(_)) {
                    return Err(format!("{key_name} must be true or false"));
                }
            }
            "client_allowed_sans" => {
                settings.client_allowed_sans = Some(string_list(v, &key_name)?)
            }
            other => {
                return Err(format!("unknown key tls_server_config.{other:?}"));
            }
        }
    }
    let enabled = cert_file.is_some()
        || cert.is_some()
        || key_file.is_some()
        || key.is_some()
        || ca_file.is_some()
        || ca.is_some()
        || !auth_name.is_empty();
    if !enabled {
        return Ok(None);
    }
    settings.cert = cert_file
        .or(cert)
        .ok_or("tls_server_config: missing one of cert or cert_file")?;
    settings.key = key_file
        .or(key)
        .ok_or("tls_server_config: missing one of key or key_file")?;
    settings.client_ca = ca_file.or(ca);
    settings.client_auth = match auth_name.as_str() {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        // "RequireClientCert" is exporter-toolkit's old spelling.
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: unknown value {other:?} (expected NoClientCert, \
                 RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
            ));
        }
    };
    if settings.client_ca.is_some() && settings.client_auth == ClientAuth::NoClientCert {
        return Err(
            "tls_server_config: client_ca_file is set but client_auth_type is not; \
                    set client_auth_type (for example RequireAndVerifyClientCert)"
                .into(),
        );
    }
    if settings.client_auth.verifies() && settings.client_ca.is_none() {
        return Err(format!(
            "tls_server_config.client_auth_type: {auth_name} needs client_ca_file (or client_ca) \
             naming the CAs that sign client certificates"
        ));
    }
    if settings.client_allowed_sans.is_some() && !settings.client_auth.demands_a_certificate() {
        // As exporter-toolkit: with any other mode a client may send no
        // certificate at all (or is never asked for one), and then there
        // are no SANs to check: the restriction would silently not apply.
        return Err(format!(
            "tls_server_config.client_allowed_sans needs client_auth_type RequireAndVerifyClientCert \
             (or RequireAnyClientCert), not {}: with it a client may connect without a certificate \
             and its SANs would never be checked",
            if auth_name.is_empty() {
                "NoClientCert (the default)"
            } else {
                auth_name.as_str()
            }
        ));
    }
    if settings.max_version < TlsVersion::Tls12 {
        return Err(
            "tls_server_config.max_version: this gateway speaks TLS 1.2 and 1.3 only \
             (TLS 1.0 and 1.1 are insecure and not implemented by rustls)"
                .into(),
        );
    }
    if settings.min_version > settings.max_version {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    Ok(Some(settings))
}

/// `rate_limit`: `burst` requests at once, one more every `interval`.
fn rate_limit(v: &Yaml) -> Result<Option<RateLimit>, String> {
    let h = match v {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(None),
        _ => return Err("rate_limit must be a mapping".into()),
    };
    let mut limit = RateLimit {
        burst: 0,
        interval: Duration::ZERO,
    };
    for (k, v) in h {
        match key_str(k).as_str() {
            "burst" => {
                limit.burst = match v {
                    Yaml::Integer(n) => u32::try_from(*n).ok(),
                    _ => None,
                }
                .ok_or("rate_limit.burst must be a whole number of requests")?;
            }
            "interval" => {
                limit.interval = match v {
                    // A bare number is nanoseconds, as Go's YAML decoder reads it.
                    Yaml::Integer(n) => u64::try_from(*n)
                        .map(Duration::from_nanos)
                        .map_err(|_| "rate_limit.interval must not be negative".to_owned())?,
                    Yaml::String(s) => crate::cli::parse_duration(s)
                        .map_err(|e| format!("rate_limit.interval: {e}"))?,
                    _ => return Err("rate_limit.interval must be a duration like 1s".into()),
                };
            }
            other => return Err(format!("unknown key rate_limit.{other:?}")),
        }
    }
    if limit.interval.is_zero() {
        return Ok(None);
    }
    if limit.burst == 0 {
        // Go's limiter would then refuse every request.
        return Err("rate_limit.burst must be at least 1 when an interval is set".into());
    }
    Ok(Some(limit))
}

fn http_server_config(v: &Yaml) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    let h = match v {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(headers),
        _ => return Err("http_server_config must be a mapping".into()),
    };
    for (k, v) in h {
        let key = key_str(k);
        match key.as_str() {
            // Accepted for compatibility; over TLS this gateway offers
            // HTTP/1.1 only (ALPN), which every client falls back to.
            "http2" => {
                if !matches!(v, Yaml::Boolean(_)) {
                    return Err("http_server_config.http2 must be true or false".into());
                }
            }
            "headers" => {
                let Yaml::Hash(hs) = v else {
                    return Err("http_server_config.headers must be a mapping".into());
                };
                for (name, value) in hs {
                    let name = key_str(name);
                    let Some(canonical) = ALLOWED_HEADERS
                        .iter()
                        .find(|a| a.eq_ignore_ascii_case(&name))
                    else {
                        return Err(format!(
                            "http_server_config.headers: {name:?} may not be set (allowed: {})",
                            ALLOWED_HEADERS.join(", ")
                        ));
                    };
                    let Yaml::String(value) = value else {
                        return Err(format!(
                            "http_server_config.headers.{name}: expected a string"
                        ));
                    };
                    headers.push(((*canonical).to_owned(), value.clone()));
                }
            }
            other => return Err(format!("unknown key http_server_config.{other:?}")),
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$s5ZsIY5rm3kqJ5qyNP1fKuMGaG8Gwn0yPxQy3kBl0GPpSgtmkhJ6K";

    #[test]
    fn users_and_headers() {
        let c = parse(&format!(
            "basic_auth_users:\n  alice: {HASH}\nhttp_server_config:\n  http2: false\n  headers:\n    x-frame-options: deny\n"
        ))
        .unwrap();
        assert_eq!(c.users.get("alice").map(String::as_str), Some(HASH));
        assert_eq!(
            c.headers,
            vec![("X-Frame-Options".to_owned(), "deny".to_owned())]
        );
        assert_eq!(parse("").unwrap(), WebConfig::default());
    }

    #[test]
    fn tls_settings_with_paths_next_to_the_file() {
        let c = parse_in(
            "tls_server_config:\n  cert_file: certs/server.crt\n  key_file: /abs/server.key\n  \
             client_auth_type: RequireClientCert\n  client_ca: |\n    -----BEGIN CERTIFICATE-----\n  \
             min_version: TLS13\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  \
             curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\n  \
             client_allowed_sans: [a.example]\nrate_limit:\n  burst: 5\n  interval: 100ms\n",
            Path::new("/etc/pgw"),
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, Source::File("/etc/pgw/certs/server.crt".into()));
        assert_eq!(tls.key, Source::File("/abs/server.key".into()));
        assert!(
            matches!(tls.client_ca, Some(Source::Inline(ref t)) if t.starts_with("-----BEGIN"))
        );
        assert_eq!(tls.client_auth, ClientAuth::RequireAnyClientCert);
        assert_eq!(
            (tls.min_version, tls.max_version),
            (TlsVersion::Tls13, TlsVersion::Tls13)
        );
        assert_eq!(tls.curves, vec![Curve::X25519, Curve::P256]);
        assert_eq!(tls.client_allowed_sans, Some(vec!["a.example".to_owned()]));
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                burst: 5,
                interval: Duration::from_millis(100)
            })
        );
        // An empty section, or one with only version settings, is plain HTTP.
        assert_eq!(
            parse("tls_server_config:\n  min_version: TLS12\n")
                .unwrap()
                .tls,
            None
        );
    }

    /// exporter-toolkit's rule: SANs can only be checked when every
    /// client must send a certificate.
    #[test]
    fn allowed_sans_need_a_mode_that_demands_a_certificate() {
        let with = |mode: &str| {
            parse(&format!(
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: ca\n  \
                 client_auth_type: {mode}\n  client_allowed_sans: [client.example]\n"
            ))
        };
        for mode in ["RequestClientCert", "VerifyClientCertIfGiven"] {
            let e = with(mode).unwrap_err();
            assert!(
                e.contains("tls_server_config.client_allowed_sans")
                    && e.contains("client_auth_type")
                    && e.contains(&format!("not {mode}")),
                "{mode}: {e}"
            );
        }
        for mode in [
            "RequireAnyClientCert",
            "RequireClientCert",
            "RequireAndVerifyClientCert",
        ] {
            let c = with(mode).unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(
                c.tls.unwrap().client_allowed_sans,
                Some(vec!["client.example".to_owned()])
            );
        }
        // Loading the file names it.
        let dir = std::env::temp_dir().join(format!("pgw-config-sans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: ca\n  \
             client_auth_type: RequestClientCert\n  client_allowed_sans: [x]\n",
        )
        .unwrap();
        let e = load(&path).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            e.starts_with(&format!("web config file {}: ", path.display()))
                && e.contains("client_allowed_sans"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        for (text, want) in [
            ("basic_auth_user:\n  a: b\n", "basic_auth_user"),
            (
                "basic_auth_users:\n  alice: notahash\n",
                "basic_auth_users.alice",
            ),
            ("http_server_config:\n  headers:\n    Server: x\n", "Server"),
            ("http_server_config:\n  http3: true\n", "http3"),
            ("basic_auth_users: [1, 2\n", "invalid YAML"),
            ("tls_server_config:\n  key_file: a.key\n", "cert_file"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n",
                "client_auth_type",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
                "min_version is above max_version",
            ),
            (
                "rate_limit:\n  burst: 0\n  interval: 1s\n",
                "rate_limit.burst",
            ),
            (
                "rate_limit:\n  burst: 1\n  interval: 1y\n",
                "rate_limit.interval",
            ),
            ("rate_limit:\n  every: 1s\n", "every"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
                "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert (or RequireAnyClientCert), not NoClientCert",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
