//! `--web.config.file`: the Prometheus exporter-toolkit web configuration,
//! so a user's existing file works unchanged.
//!
//! ```yaml
//! basic_auth_users:
//!   alice: $2y$10$...          # bcrypt hash
//! http_server_config:
//!   headers:
//!     X-Frame-Options: deny
//! tls_server_config:            # not supported by this build yet
//!   cert_file: server.crt
//! ```
//!
//! Parsed with yaml-rust2. Unknown keys and invalid values stop the start
//! with the key's name: a typo must not silently leave the gateway open.
//! TLS settings are refused for now rather than ignored, for the same reason.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

/// What the web configuration file asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebConfig {
    /// User name to bcrypt hash. Empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, PartialEq)]
pub struct WebConfigError {
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

/// Reads and checks the file.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| WebConfigError {
        file: file.clone(),
        why: format!("cannot read it: {e}"),
    })?;
    parse(&text).map_err(|why| WebConfigError { file, why })
}

fn key_str(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Parses the YAML text of a web configuration.
pub fn parse(text: &str) -> Result<WebConfig, String> {
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
            "tls_server_config" => {
                if !matches!(v, Yaml::Null) && !matches!(&v, Yaml::Hash(h) if h.is_empty()) {
                    return Err(
                        "tls_server_config: TLS is not supported by this build yet; \
                                terminate TLS in front of the gateway or remove the section"
                            .into(),
                    );
                }
            }
            other => {
                return Err(format!(
                    "unknown key {other:?} (expected basic_auth_users, http_server_config or tls_server_config)"
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
            // HTTP/2 needs TLS, which this build does not serve yet.
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
    fn mistakes_name_the_key() {
        for (text, want) in [
            ("basic_auth_user:\n  a: b\n", "basic_auth_user"),
            (
                "basic_auth_users:\n  alice: notahash\n",
                "basic_auth_users.alice",
            ),
            ("http_server_config:\n  headers:\n    Server: x\n", "Server"),
            ("http_server_config:\n  http3: true\n", "http3"),
            (
                "tls_server_config:\n  cert_file: a.crt\n",
                "tls_server_config",
            ),
            ("basic_auth_users: [1, 2\n", "invalid YAML"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
