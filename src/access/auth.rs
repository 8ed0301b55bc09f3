//! HTTP basic authentication against bcrypt hashes, as exporter-toolkit
//! does it.
//!
//! bcrypt is slow on purpose (tens of milliseconds a check), so a client
//! that authenticated once is remembered: successful checks are cached,
//! keyed by the user and a keyed hash of the password, never the password
//! itself. Checks run on pool threads, never in the request loop, and at
//! most a few at a time, so a burst of wrong passwords costs CPU but cannot
//! stall pushes from clients whose credentials are cached. Unknown users
//! are checked against a dummy hash, so timing does not reveal which user
//! names exist.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Condvar, Mutex};

/// Remembered successful checks before the cache starts over.
const CACHE_LIMIT: usize = 4096;

/// A bcrypt hash (cost 10) of a random string: what unknown users are
/// checked against, so they take as long as known ones.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

pub(crate) struct Auth {
    users: BTreeMap<String, String>,
    cache: Mutex<HashSet<(String, u64)>>,
    hasher: RandomState,
    /// bcrypt checks allowed to run at the same time.
    running: Mutex<usize>,
    freed: Condvar,
    max_running: usize,
}

impl Auth {
    pub(crate) fn new(users: BTreeMap<String, String>) -> Auth {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Auth {
            users,
            cache: Mutex::new(HashSet::new()),
            hasher: RandomState::new(),
            running: Mutex::new(0),
            freed: Condvar::new(),
            max_running: cores.div_ceil(2),
        }
    }

    /// User and password from an `Authorization: Basic ...` header.
    fn credentials(header: Option<&str>) -> Option<(String, String)> {
        let h = header?.trim();
        let (scheme, b64) = h.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = decode_std_base64(b64.trim())?;
        let text = String::from_utf8(raw).ok()?;
        let (user, pass) = text.split_once(':')?;
        Some((user.to_owned(), pass.to_owned()))
    }

    /// The user an `Authorization: Basic ...` header names (checked or not:
    /// callers ask only after the gate passed the request).
    pub(crate) fn user_of(header: Option<&str>) -> Option<String> {
        Self::credentials(header).map(|(user, _)| user)
    }

    fn cache_key(&self, user: &str, pass: &str) -> (String, u64) {
        (user.to_owned(), self.hasher.hash_one(pass))
    }

    /// Whether these credentials were already verified: cheap, no bcrypt.
    pub(crate) fn cached(&self, header: Option<&str>) -> bool {
        let Some((user, pass)) = Self::credentials(header) else {
            return false;
        };
        let key = self.cache_key(&user, &pass);
        lock(&self.cache).contains(&key)
    }

    /// Full check; may take tens of milliseconds. Call off the loop.
    pub(crate) fn check(&self, header: Option<&str>) -> bool {
        let Some((user, pass)) = Self::credentials(header) else {
            return false;
        };
        let key = self.cache_key(&user, &pass);
        if lock(&self.cache).contains(&key) {
            return true;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let ok = {
            let _permit = self.permit();
            bcrypt::verify(&pass, hash).unwrap_or(false)
        } && known;
        if ok {
            let mut cache = lock(&self.cache);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }

    fn permit(&self) -> Permit<'_> {
        let mut n = lock(&self.running);
        while *n >= self.max_running {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Permit(self)
    }
}

struct Permit<'a>(&'a Auth);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *lock(&self.0.running) -= 1;
        self.0.freed.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Standard base64 (with `+`, `/` and padding), as in Authorization headers.
fn decode_std_base64(s: &str) -> Option<Vec<u8>> {
    if s.contains(['-', '_']) {
        return None; // Not the standard alphabet.
    }
    let url_safe = s.trim_end_matches('=').replace('+', "-").replace('/', "_");
    crate::wire::path::decode_base64(&url_safe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> String {
        format!("Basic {}", encode_std(format!("{user}:{pass}").as_bytes()))
    }

    fn encode_std(data: &[u8]) -> String {
        let mut s = crate::wire::path::encode_base64(data)
            .replace('-', "+")
            .replace('_', "/");
        while !s.len().is_multiple_of(4) {
            s.push('=');
        }
        s
    }

    #[test]
    fn right_wrong_missing_and_cached() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let auth = Auth::new(BTreeMap::from([("alice".to_owned(), hash)]));
        let good = header("alice", "secret");
        assert!(!auth.cached(Some(&good)));
        assert!(auth.check(Some(&good)));
        assert!(auth.cached(Some(&good)));
        assert!(!auth.check(Some(&header("alice", "wrong"))));
        assert!(!auth.check(Some(&header("bob", "secret"))));
        assert!(!auth.check(None));
        assert!(!auth.check(Some("Bearer xyz")));
        assert!(!auth.check(Some("Basic !!!")));
    }

    #[test]
    fn the_dummy_hash_is_a_valid_hash() {
        assert_eq!(bcrypt::verify("x", DUMMY_HASH).ok(), Some(false));
    }
}
