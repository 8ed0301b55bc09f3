//! Basic-auth users and response headers that follow the web config file.
//!
//! exporter-toolkit reads the file again for every request, so users add a
//! user or change a header without a restart. Reading and parsing YAML per
//! request would be waste; instead the file's modification time, size and
//! inode are looked at, at most once a second, and the file is parsed again
//! only when they changed. Like the reference, a file that has become
//! invalid makes every request fail with 500 until it is fixed: keeping the
//! old users would keep a user someone just tried to remove.
//! (`rate_limit` is read once at start, as in exporter-toolkit; TLS files
//! are watched by `tls`.)

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::access::auth::Auth;
use crate::access::config::{self, Stamp, WebConfig};

/// How often a request may look at the file.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The part of the web configuration requests need.
pub(crate) struct Active {
    /// `None`: no users, no authentication.
    pub auth: Option<Arc<Auth>>,
    pub headers: Vec<(String, String)>,
}

pub(crate) struct WebReloader {
    path: PathBuf,
    state: Mutex<State>,
    /// What `current` last returned, for the response writer's headers.
    headers: RwLock<Arc<Vec<(String, String)>>>,
}

struct State {
    checked: Instant,
    stamp: Stamp,
    users: std::collections::BTreeMap<String, String>,
    current: Result<Arc<Active>, String>,
}

impl WebReloader {
    /// Starts from the configuration read at start-up from `path`.
    pub(crate) fn new(path: PathBuf, config: &WebConfig) -> WebReloader {
        let active = activate(config);
        WebReloader {
            state: Mutex::new(State {
                checked: Instant::now(),
                stamp: config::stamp(&path),
                users: config.users.clone(),
                current: Ok(Arc::clone(&active)),
            }),
            headers: RwLock::new(Arc::new(active.headers.clone())),
            path,
        }
    }

    /// The configuration a request should be checked against.
    pub(crate) fn current(&self) -> Result<Arc<Active>, String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.checked.elapsed() >= CHECK_EVERY {
            st.checked = Instant::now();
            let stamp = config::stamp(&self.path);
            if stamp != st.stamp {
                st.stamp = stamp;
                match config::load(&self.path) {
                    Ok(config) => {
                        // Keep the cache of checked passwords unless the users changed.
                        let active = match (&st.current, config.users == st.users) {
                            (Ok(old), true) => Arc::new(Active {
                                auth: old.auth.clone(),
                                headers: config.headers.clone(),
                            }),
                            _ => activate(&config),
                        };
                        log::info!(file:display = self.path.display(), users = config.users.len(); "web config reloaded");
                        st.users = config.users;
                        *self.headers.write().unwrap_or_else(|e| e.into_inner()) =
                            Arc::new(active.headers.clone());
                        st.current = Ok(active);
                    }
                    Err(e) => {
                        log::error!(err:display = e; "web config unreadable; answering 500 until it is fixed");
                        st.current = Err(e.to_string());
                    }
                }
            }
        }
        st.current.clone()
    }

    /// `http_server_config.headers` as last loaded.
    pub(crate) fn headers(&self) -> Arc<Vec<(String, String)>> {
        Arc::clone(&self.headers.read().unwrap_or_else(|e| e.into_inner()))
    }
}

fn activate(config: &WebConfig) -> Arc<Active> {
    Arc::new(Active {
        auth: (!config.users.is_empty()).then(|| Arc::new(Auth::new(config.users.clone()))),
        headers: config.headers.clone(),
    })
}
