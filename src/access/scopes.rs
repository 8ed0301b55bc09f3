//! Write scopes on grouping keys (`--web.access-file`): which identity may
//! push to or delete which groups, read, or use the admin endpoints.
//!
//! The file is ours alone, kept apart from the web config file, whose Go
//! parser refuses unknown keys (the same web config must keep working with
//! the Go gateway):
//!
//! ```yaml
//! users:                       # a basic-auth user, or a client certificate's SAN or CN
//!   ci:
//!     push: ['{job=~"ci-.*"}'] # selectors on the grouping key
//!     read: true               # scrapes, the JSON API, the page
//!   ops:
//!     push: ['{job="backup"}']
//!     read: true
//!     admin: true              # wipe, delete by selector, /-/quit
//! default:                     # everyone else; omitted: nothing allowed
//!   read: true
//! ```
//!
//! A group may be changed (PUT, POST, DELETE) when its grouping labels
//! match one of the identity's `push` selectors; whatever a rule leaves
//! out is denied. The file is followed like the web config file: looked at
//! at most once a second, parsed again when it changed; a file that turned
//! bad keeps the rules in force (denying more or less than intended would
//! both surprise) and is logged with its error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader};

use crate::model::Label;
use crate::wire::selector::{self, Selector};

/// What one identity may do.
#[derive(Debug, Default)]
pub(crate) struct Grant {
    /// Groups it may change: those any of these match.
    push: Vec<Selector>,
    read: bool,
    admin: bool,
}

impl Grant {
    /// May it push to, or delete, the group of these grouping labels?
    pub(crate) fn may_push(&self, key: &[Label]) -> bool {
        self.push.iter().any(|s| s.matches(key))
    }

    pub(crate) fn may_read(&self) -> bool {
        self.read
    }

    pub(crate) fn may_admin(&self) -> bool {
        self.admin
    }
}

/// The rules of an access file.
#[derive(Debug, Default)]
pub(crate) struct Rules {
    users: BTreeMap<String, Grant>,
    default: Grant,
}

impl Rules {
    /// The grant of the first of `names` the file lists, else the
    /// default's, with the name it goes by in refusals.
    pub(crate) fn grant<'a>(&'a self, names: &'a [String]) -> (&'a str, &'a Grant) {
        names
            .iter()
            .find_map(|n| self.users.get(n).map(|g| (n.as_str(), g)))
            .unwrap_or(("(default)", &self.default))
    }
}

/// One identity under the rules in force: what the web page asks of each
/// group it lists, off the front.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    rules: Arc<Rules>,
    names: Vec<String>,
}

impl Scope {
    pub(crate) fn new(rules: Arc<Rules>, names: Vec<String>) -> Scope {
        Scope { rules, names }
    }

    /// May the identity push to, or delete, the group of `key`?
    pub(crate) fn may_push(&self, key: &[Label]) -> bool {
        self.rules.grant(&self.names).1.may_push(key)
    }

    pub(crate) fn may_admin(&self) -> bool {
        self.rules.grant(&self.names).1.may_admin()
    }
}

/// A bad access file: where and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccessError {
    pub file: String,
    /// The 1-based line of the error, when known.
    pub line: Option<usize>,
    pub why: String,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.why),
            None => write!(f, "{}: {}", self.file, self.why),
        }
    }
}

/// Reads and checks an access file.
pub(crate) fn load(path: &Path) -> Result<Rules, AccessError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| AccessError {
        file: file.clone(),
        line: None,
        why: format!("cannot read it: {e}"),
    })?;
    parse(&text).map_err(|(line, why)| AccessError { file, line, why })
}

/// An error and the line it is on, when known.
type Bad = (Option<usize>, String);

/// Parses the text of an access file.
pub(crate) fn parse(text: &str) -> Result<Rules, Bad> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| yaml_error(text, &e))?;
    let top = match docs.into_iter().next() {
        Some(Yaml::Hash(h)) => h,
        None | Some(Yaml::Null) => {
            return Err((None, "the file is empty: it would deny everything".into()));
        }
        Some(_) => return Err((Some(1), "the top level must be a mapping".into())),
    };
    let mut rules = Rules::default();
    for (k, v) in top {
        match k.as_str() {
            Some("users") => rules.users = users(text, &v)?,
            Some("default") => rules.default = grant(text, "default", &v)?,
            _ => {
                let name = key_name(&k);
                return Err((
                    line_of(text, &name),
                    format!("unknown key {name:?} (expected users or default)"),
                ));
            }
        }
    }
    Ok(rules)
}

fn users(text: &str, v: &Yaml) -> Result<BTreeMap<String, Grant>, Bad> {
    let Yaml::Hash(h) = v else {
        return Err((
            line_of(text, "users"),
            "users must map names to rules".into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in h {
        let name = key_name(k);
        if name.is_empty() {
            return Err((line_of(text, "users"), "a user with an empty name".into()));
        }
        let g = grant(text, &name, v)?;
        if out.insert(name.clone(), g).is_some() {
            return Err((
                line_of(text, &name),
                format!("user {name:?} is listed twice"),
            ));
        }
    }
    Ok(out)
}

/// One identity's rules: `push` (a list of selectors), `read`, `admin`.
fn grant(text: &str, who: &str, v: &Yaml) -> Result<Grant, Bad> {
    let mut g = Grant::default();
    let h = match v {
        Yaml::Hash(h) => h,
        Yaml::Null => return Ok(g),
        _ => {
            return Err((
                line_of(text, who),
                format!("{who}: expected push, read or admin"),
            ));
        }
    };
    for (k, v) in h {
        let key = key_name(k);
        match key.as_str() {
            "push" => g.push = selectors(text, who, v)?,
            "read" | "admin" => {
                let Yaml::Boolean(b) = v else {
                    return Err((
                        line_of(text, who),
                        format!("{who}: {key} must be true or false"),
                    ));
                };
                if key == "read" {
                    g.read = *b;
                } else {
                    g.admin = *b;
                }
            }
            other => {
                return Err((
                    line_of(text, who),
                    format!("{who}: unknown key {other:?} (expected push, read or admin)"),
                ));
            }
        }
    }
    Ok(g)
}

fn selectors(text: &str, who: &str, v: &Yaml) -> Result<Vec<Selector>, Bad> {
    let items = match v {
        Yaml::Array(items) => items.as_slice(),
        Yaml::Null => &[],
        _ => {
            return Err((
                line_of(text, who),
                format!("{who}: push must be a list of selectors"),
            ));
        }
    };
    items
        .iter()
        .map(|item| {
            let Yaml::String(s) = item else {
                return Err((
                    line_of(text, who),
                    format!("{who}: a push selector must be a string"),
                ));
            };
            selector::parse(s)
                .map_err(|e| (line_of(text, s), format!("{who}: selector {s:?}: {e}")))
        })
        .collect()
}

/// A YAML error and its line. A key given twice (an identity listed
/// twice) is reported where the mapping ends: pointed at its second
/// occurrence instead.
fn yaml_error(text: &str, e: &yaml_rust2::ScanError) -> Bad {
    let info = e.info();
    if info.contains("duplicated key")
        && let Some(key) = info
            .strip_prefix("String(\"")
            .and_then(|r| r.split_once("\")"))
    {
        let key = key.0;
        let at = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with(&format!("{key}:")))
            .map(|(i, _)| i + 1)
            .last();
        return (at, format!("{key:?} is listed twice"));
    }
    (Some(e.marker().line()), format!("invalid YAML: {info}"))
}

fn key_name(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        _ => String::new(),
    }
}

/// The first line holding `needle`: where a semantic error points (the
/// YAML loader keeps no positions past its own syntax errors).
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// How often a request may look at the file.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The rules in force, following the file.
pub(crate) struct AccessReloader {
    path: PathBuf,
    state: Mutex<(Instant, crate::access::config::Stamp, Arc<Rules>)>,
}

impl AccessReloader {
    /// Loads `path`; a bad file is a start-up error.
    pub(crate) fn new(path: PathBuf) -> Result<AccessReloader, AccessError> {
        let stamp = crate::access::config::stamp(&path);
        let rules = load(&path)?;
        Ok(AccessReloader {
            path,
            state: Mutex::new((Instant::now(), stamp, Arc::new(rules))),
        })
    }

    /// The rules a request is checked against.
    pub(crate) fn current(&self) -> Arc<Rules> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (checked, stamp, rules) = &mut *st;
        if checked.elapsed() >= CHECK_EVERY {
            *checked = Instant::now();
            let now = crate::access::config::stamp(&self.path);
            if now != *stamp {
                *stamp = now;
                match load(&self.path) {
                    Ok(new) => {
                        log::info!(file:display = self.path.display(), users = new.users.len(); "access file reloaded");
                        *rules = Arc::new(new);
                    }
                    Err(e) => {
                        log::error!(err:display = e; "access file unusable; keeping the rules in force until it is fixed");
                    }
                }
            }
        }
        Arc::clone(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"users:
  ci:
    push: ['{job=~"ci-.*"}']
    read: true
  ops:
    push: ['{job="backup"}', '{job="nightly", env!="prod"}']
    read: true
    admin: true
default:
  read: true
"#;

    fn key(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(n, v)).collect()
    }

    #[test]
    fn grants_follow_the_file() {
        let rules = parse(FILE).unwrap();
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ci = names(&["ci"]);
        let (who, g) = rules.grant(&ci);
        assert_eq!(who, "ci");
        assert!(g.may_push(&key(&[("job", "ci-build")])));
        assert!(!g.may_push(&key(&[("job", "backup")])));
        assert!(g.may_read() && !g.may_admin());
        let ops = names(&["ops"]);
        let (_, g) = rules.grant(&ops);
        assert!(g.may_push(&key(&[("env", "dev"), ("job", "nightly")])));
        assert!(!g.may_push(&key(&[("env", "prod"), ("job", "nightly")])));
        assert!(g.may_admin());
        let nobody = names(&["eve", "x.example"]);
        let (who, g) = rules.grant(&nobody);
        assert_eq!(who, "(default)");
        assert!(g.may_read() && !g.may_push(&key(&[("job", "ci-x")])));
        // The first listed name of a client certificate's wins.
        let cert = names(&["unknown.example", "ops", "ci"]);
        let (who, _) = rules.grant(&cert);
        assert_eq!(who, "ops");
    }

    #[test]
    fn an_omitted_default_denies_everything() {
        let rules = parse("users:\n  a:\n    read: true\n").unwrap();
        let (_, g) = rules.grant(&[]);
        assert!(!g.may_read() && !g.may_admin() && !g.may_push(&key(&[("job", "x")])));
    }

    #[test]
    fn bad_files_say_where() {
        let cases = [
            (
                "users:\n  ci:\n    push: ['{job=~\"(\"}']\n",
                3,
                "ci: selector",
            ),
            (
                "users:\n  ci:\n    read: yes please\n",
                2,
                "read must be true or false",
            ),
            (
                "users:\n  ci:\n    write: true\n",
                2,
                "unknown key \"write\"",
            ),
            ("admins:\n  - x\n", 1, "unknown key \"admins\""),
            (
                "users:\n  ci:\n    read: true\n  ci:\n    admin: true\n",
                4,
                "\"ci\" is listed twice",
            ),
            ("users: [\n", 2, "invalid YAML"),
        ];
        for (text, line, why) in cases {
            let (at, msg) = parse(text).unwrap_err();
            assert!(msg.contains(why), "{text:?}: {msg}");
            assert_eq!(at, Some(line), "{text:?}: {msg}");
        }
        assert!(parse("").is_err(), "an empty file would deny everything");
    }
}
