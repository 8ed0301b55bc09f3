//! Command-line flags, spelled exactly as the reference spells them so that
//! a systemd unit or container command line works unchanged.
//!
//! Parsing is plain lexopt: one match arm per flag. `--flag=value` and
//! `--flag value` both work; boolean flags also take kingpin's `--no-flag`.
//! Settings a build cannot honour (TLS in `--web.config.file` without the
//! `tls` feature) are refused at start-up with a clear message, never
//! silently ignored.

use std::fmt;
use std::time::Duration;

use lexopt::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Logfmt,
    Json,
}

impl LogFormat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogFormat::Logfmt => "logfmt",
            LogFormat::Json => "json",
        }
    }
}

/// Everything the flags decide.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Config {
    pub listen_addresses: Vec<String>,
    pub telemetry_path: String,
    pub external_url: String,
    /// Normalized route prefix: empty, or `/x` without a trailing slash.
    pub route_prefix: String,
    pub enable_lifecycle: bool,
    pub enable_admin_api: bool,
    pub web_config_file: String,
    /// `--web.access-file`: write scopes on grouping keys (ours alone).
    pub access_file: String,
    pub systemd_socket: bool,
    pub persistence_file: String,
    pub persistence_interval: Duration,
    /// Start empty when the persistence file cannot be read, moving it aside.
    pub persistence_start_empty_if_unreadable: bool,
    pub disable_consistency_check: bool,
    pub enable_utf8_names: bool,
    pub max_body_bytes: u64,
    /// `--push.max-groups`, `--push.max-series`: 0 is unlimited.
    pub max_groups: usize,
    pub max_series: usize,
    /// `--push.group-ttl`: how long a group lives after its last push;
    /// zero is forever.
    pub group_ttl: Duration,
    /// `--web.read-header-timeout`: from a head's first byte to its end.
    pub read_header_timeout: Duration,
    /// `--web.read-timeout`: for a request body, from the end of its head.
    pub read_timeout: Duration,
    /// `--web.idle-timeout`: a kept connection waiting for its next request.
    pub idle_timeout: Duration,
    /// `--web.max-connections`; 0 derives it from the descriptor limit.
    pub max_connections: usize,
    /// `--web.memory-budget`: bytes all requests in flight may hold.
    pub memory_budget: u64,
    pub log_level: log::LevelFilter,
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen_addresses: vec![":9091".to_owned()],
            telemetry_path: "/metrics".to_owned(),
            external_url: String::new(),
            route_prefix: String::new(),
            enable_lifecycle: false,
            enable_admin_api: false,
            web_config_file: String::new(),
            access_file: String::new(),
            systemd_socket: false,
            persistence_file: String::new(),
            persistence_interval: Duration::from_secs(300),
            persistence_start_empty_if_unreadable: false,
            disable_consistency_check: false,
            enable_utf8_names: false,
            max_body_bytes: 64 << 20,
            max_groups: 0,
            max_series: 0,
            group_ttl: Duration::ZERO,
            read_header_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            max_connections: 0,
            memory_budget: 1 << 30,
            log_level: log::LevelFilter::Info,
            log_format: LogFormat::Logfmt,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

#[derive(Debug)]
pub(crate) enum CliError {
    Parse(lexopt::Error),
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Parse(e) => write!(f, "{e} (see --help)"),
            CliError::Invalid { flag, value, why } => {
                write!(f, "invalid value {value:?} for --{flag}: {why}")
            }
        }
    }
}

impl std::error::Error for CliError {}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> CliError {
        CliError::Parse(e)
    }
}

pub(crate) const HELP: &str = "usage: pushgateway [<flags>]

The Pushgateway: accepts metrics pushed by batch jobs and exposes them to
Prometheus. A drop-in replacement for the Go Pushgateway.

Flags:
  -h, --help                     Show this help.
      --web.listen-address=:9091 ...
                                 Addresses on which to expose metrics and web
                                 interface. Repeatable for multiple addresses.
      --web.systemd-socket       Use systemd socket activation listeners
                                 instead of port listeners.
      --web.config.file=\"\"       Path to configuration file that can enable TLS
                                 or authentication (exporter-toolkit format).
      --web.access-file=\"\"       Path to a file of write scopes: which user or
                                 client certificate may push to which groups,
                                 read, or use the admin API. Not in Go.
      --web.telemetry-path=\"/metrics\"
                                 Path under which to expose metrics.
      --web.external-url=        The URL under which the Pushgateway is
                                 externally reachable.
      --web.route-prefix=\"\"      Prefix for the internal routes of web
                                 endpoints. Defaults to the path of
                                 --web.external-url.
      --web.enable-lifecycle     Enable shutdown via HTTP request.
      --web.enable-admin-api     Enable API endpoints for admin control actions.
      --persistence.file=\"\"      File to persist metrics. If empty, metrics are
                                 only kept in memory.
      --persistence.interval=5m  The minimum interval at which to write out the
                                 persistence file. 0 makes every push durable:
                                 it is answered once it is on disk.
      --persistence.start-empty-if-unreadable
                                 If the persistence file cannot be read, move it
                                 aside and start empty instead of refusing to
                                 start.
      --push.disable-consistency-check
                                 Do not check consistency of pushed metrics.
                                 DANGEROUS.
      --push.enable-utf8-names   Allow UTF-8 characters in metric and label
                                 names: quoted names in pushed bodies, U__
                                 escaping of label names in URL paths.
                                 Scrapes get them escaped (underscores)
                                 unless Accept says escaping=allow-utf-8.
      --push.max-body-size=64MiB Largest request body accepted; larger pushes
                                 get 413. Units: B, KB, MB, GB, KiB, MiB, GiB.
      --push.max-groups=0        Most groups stored; a push that would create
                                 another gets 429. 0: unlimited.
      --push.max-series=0        Most series (sample lines of the exposition)
                                 stored; a push that would go past it gets 429.
                                 0: unlimited.
      --push.group-ttl=0s        Delete a group this long after its last
                                 successful push (or its creation). A push can
                                 set its group's own with the header
                                 Pushgateway-Group-TTL. 0: never.
      --web.read-header-timeout=30s
                                 Longest time a client may take to send a
                                 request head, from its first byte; slower ones
                                 get 408 and are closed.
      --web.read-timeout=5m      Longest time a client may take to send a
                                 request body, from the end of its head.
      --web.idle-timeout=5m      How long a kept-alive connection may wait for
                                 its next request before it is closed.
      --web.max-connections=0    Most connections served at once; more get 503
                                 and are closed. 0: the open-files limit minus a
                                 reserve (the soft limit is raised to the hard
                                 one at start, as Go does).
      --web.memory-budget=1GiB   Memory all requests in flight may hold together:
                                 heads and bodies being read or decompressed,
                                 answers waiting for slow clients. Past it,
                                 requests get 503 and may retry.
      --log.level=info           Only log messages with the given severity or
                                 above. One of: [debug, info, warn, error]
      --log.format=logfmt        Output format of log messages. One of:
                                 [logfmt, json]
      --version                  Show application version.
";

/// Parses the process's arguments.
pub(crate) fn parse_env() -> Result<Command, CliError> {
    parse(lexopt::Parser::from_env())
}

/// The reference's `computeRoutePrefix` (1.7+): the flag, else the path
/// of `--web.external-url`; `/` means none; a leading slash added if
/// missing, and one trailing slash removed (`/foo//` stays `/foo/`).
pub(crate) fn compute_route_prefix(prefix: &str, external_url_path: &str) -> String {
    let p = if prefix.is_empty() {
        external_url_path
    } else {
        prefix
    };
    if p == "/" {
        return String::new();
    }
    let p = if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    };
    p.strip_suffix('/').unwrap_or(&p).to_owned()
}

/// Parses arguments (without the program name), for tests.
#[cfg(test)]
pub(crate) fn parse_args<I: IntoIterator<Item = &'static str>>(
    args: I,
) -> Result<Command, CliError> {
    parse(lexopt::Parser::from_args(args))
}

fn parse(mut p: lexopt::Parser) -> Result<Command, CliError> {
    let mut c = Config::default();
    let mut listen: Vec<String> = Vec::new();
    let mut prefix_flag = String::new();
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") | Long("help-long") | Long("help-man") => {
                return Ok(Command::Help);
            }
            Long("version") => return Ok(Command::Version),
            Long("web.listen-address") => listen.push(string(&mut p)?),
            Long("web.telemetry-path") => c.telemetry_path = string(&mut p)?,
            Long("web.external-url") => c.external_url = string(&mut p)?,
            Long("web.route-prefix") => prefix_flag = string(&mut p)?,
            Long("web.config.file") => c.web_config_file = string(&mut p)?,
            Long("web.access-file") => c.access_file = string(&mut p)?,
            Long("persistence.file") => c.persistence_file = string(&mut p)?,
            Long("persistence.interval") => {
                let v = string(&mut p)?;
                c.persistence_interval = parse_duration(&v).map_err(|why| CliError::Invalid {
                    flag: "persistence.interval",
                    value: v.clone(),
                    why,
                })?;
            }
            Long(flag @ ("web.read-header-timeout" | "web.read-timeout" | "web.idle-timeout")) => {
                let flag: &'static str = match flag {
                    "web.read-header-timeout" => "web.read-header-timeout",
                    "web.read-timeout" => "web.read-timeout",
                    _ => "web.idle-timeout",
                };
                let v = string(&mut p)?;
                let d = parse_duration(&v)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| CliError::Invalid {
                        flag,
                        value: v.clone(),
                        why: "a positive duration such as 30s or 5m".into(),
                    })?;
                *match flag {
                    "web.read-header-timeout" => &mut c.read_header_timeout,
                    "web.read-timeout" => &mut c.read_timeout,
                    _ => &mut c.idle_timeout,
                } = d;
            }
            Long("web.max-connections") => {
                let v = string(&mut p)?;
                c.max_connections = v.parse().map_err(|_| CliError::Invalid {
                    flag: "web.max-connections",
                    value: v.clone(),
                    why: "a number of connections (0: from the open-files limit)".into(),
                })?;
            }
            Long("web.memory-budget") => {
                let v = string(&mut p)?;
                c.memory_budget = parse_size(&v).map_err(|why| CliError::Invalid {
                    flag: "web.memory-budget",
                    value: v.clone(),
                    why,
                })?;
            }
            Long("push.max-body-size") => {
                let v = string(&mut p)?;
                c.max_body_bytes = parse_size(&v).map_err(|why| CliError::Invalid {
                    flag: "push.max-body-size",
                    value: v.clone(),
                    why,
                })?;
            }
            Long(flag @ ("push.max-groups" | "push.max-series")) => {
                let flag = if flag == "push.max-groups" {
                    "push.max-groups"
                } else {
                    "push.max-series"
                };
                let v = string(&mut p)?;
                let n = v.parse().map_err(|_| CliError::Invalid {
                    flag,
                    value: v.clone(),
                    why: "a count (0: unlimited)".into(),
                })?;
                match flag {
                    "push.max-groups" => c.max_groups = n,
                    _ => c.max_series = n,
                }
            }
            Long("push.group-ttl") => {
                let v = string(&mut p)?;
                c.group_ttl = parse_duration(&v).map_err(|why| CliError::Invalid {
                    flag: "push.group-ttl",
                    value: v.clone(),
                    why,
                })?;
            }
            Long("log.level") => {
                let v = string(&mut p)?;
                c.log_level = match v.as_str() {
                    "debug" => log::LevelFilter::Debug,
                    "info" => log::LevelFilter::Info,
                    "warn" => log::LevelFilter::Warn,
                    "error" => log::LevelFilter::Error,
                    _ => {
                        return Err(CliError::Invalid {
                            flag: "log.level",
                            value: v,
                            why: "one of debug, info, warn, error".into(),
                        });
                    }
                };
            }
            Long("log.format") => {
                let v = string(&mut p)?;
                c.log_format = match v.as_str() {
                    "logfmt" => LogFormat::Logfmt,
                    "json" => LogFormat::Json,
                    _ => {
                        return Err(CliError::Invalid {
                            flag: "log.format",
                            value: v,
                            why: "one of logfmt, json".into(),
                        });
                    }
                };
            }
            Long(name) => {
                let name = name.to_owned();
                let (flag, negated) = match name.strip_prefix("no-") {
                    Some(n) => (n, true),
                    None => (name.as_str(), false),
                };
                let slot = match flag {
                    "web.enable-lifecycle" => &mut c.enable_lifecycle,
                    "web.enable-admin-api" => &mut c.enable_admin_api,
                    "web.systemd-socket" => &mut c.systemd_socket,
                    "push.disable-consistency-check" => &mut c.disable_consistency_check,
                    "push.enable-utf8-names" => &mut c.enable_utf8_names,
                    "persistence.start-empty-if-unreadable" => {
                        &mut c.persistence_start_empty_if_unreadable
                    }
                    _ => return Err(lexopt::Error::UnexpectedOption(format!("--{name}")).into()),
                };
                let value = match p.optional_value() {
                    None => !negated,
                    Some(v) => match v.to_str() {
                        Some("true") if !negated => true,
                        Some("false") if !negated => false,
                        _ => {
                            return Err(CliError::Parse(lexopt::Error::Custom(
                                format!("--{name} takes no value other than true or false").into(),
                            )));
                        }
                    },
                };
                *slot = value;
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if !listen.is_empty() {
        c.listen_addresses = listen;
    }
    c.route_prefix = compute_route_prefix(&prefix_flag, url_path(&c.external_url));
    Ok(Command::Run(Box::new(c)))
}

fn string(p: &mut lexopt::Parser) -> Result<String, CliError> {
    Ok(p.value()?.string()?)
}

/// The path part of a URL such as `http://host:9091/gw/`.
fn url_path(url: &str) -> &str {
    let after_scheme = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => return "",
    };
    match after_scheme.find('/') {
        Some(i) => {
            let p = &after_scheme[i..];
            p.split(['?', '#']).next().unwrap_or("")
        }
        None => "",
    }
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `5m`, `1h30m`, `1.5s`;
/// a bare `0` is zero. Negative durations are refused: an interval must not be.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err("a negative duration makes no sense here".into());
    }
    let mut total = 0f64;
    let mut rest = rest;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." {
            return Err("expected a number, like 5m or 1h30m".into());
        }
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{num:?} is not a number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err("missing unit: use ns, us, ms, s, m or h".into()),
            u => return Err(format!("unknown unit {u:?}: use ns, us, ms, s, m or h")),
        };
        total += n * nanos_per;
        rest = &rest[unit_len..];
    }
    if total > u64::MAX as f64 {
        return Err("duration too large".into());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// A byte size such as `64MiB`, `10MB`, `512KiB` or plain `1048576`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        "expected a whole number of bytes, optionally with a unit like MiB".to_owned()
    })?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => {
            return Err(format!(
                "unknown unit {u:?}: use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let v = n.checked_mul(mult).ok_or("size too large")?;
    if v == 0 {
        return Err("must be at least 1 byte".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&'static str]) -> Config {
        match parse_args(args.iter().copied()) {
            Ok(Command::Run(c)) => *c,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[]);
        assert_eq!(c.listen_addresses, vec![":9091"]);
        assert_eq!(c.persistence_interval, Duration::from_secs(300));
        assert_eq!(c.telemetry_path, "/metrics");
    }

    #[test]
    fn both_value_spellings_and_repeats() {
        let c = run(&[
            "--web.listen-address=:1",
            "--web.listen-address",
            "127.0.0.1:2",
        ]);
        assert_eq!(c.listen_addresses, vec![":1", "127.0.0.1:2"]);
        let c = run(&["--web.route-prefix", "/pg/", "--web.enable-lifecycle"]);
        assert_eq!(c.route_prefix, "/pg");
        assert!(c.enable_lifecycle);
        let c = run(&["--web.enable-lifecycle", "--no-web.enable-lifecycle"]);
        assert!(!c.enable_lifecycle);
        let c = run(&["--web.external-url=http://example.org:9091/gw/"]);
        assert_eq!(c.route_prefix, "/gw");
    }

    #[test]
    fn errors_are_clear() {
        let e = parse_args(["--nope"]).unwrap_err().to_string();
        assert!(e.contains("--nope"), "{e}");
        let e = parse_args(["--log.level=loud"]).unwrap_err().to_string();
        assert!(e.contains("log.level") && e.contains("debug"), "{e}");
        assert!(parse_args(["--web.config.file="]).is_ok());
        assert!(parse_args(["--web.systemd-socket"]).is_ok());
        assert!(matches!(parse_args(["-h"]), Ok(Command::Help)));
        assert!(matches!(parse_args(["--version"]), Ok(Command::Version)));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-5m").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn route_prefix_rules() {
        assert_eq!(compute_route_prefix("", ""), "");
        assert_eq!(compute_route_prefix("/", ""), "");
        assert_eq!(compute_route_prefix("", "/gw/"), "/gw");
        assert_eq!(compute_route_prefix("a/b", "/gw"), "/a/b");
        assert_eq!(compute_route_prefix("/foo/", ""), "/foo");
        // 1.7+ trims one slash at each end only.
        assert_eq!(compute_route_prefix("/foo//", ""), "/foo/");
        assert_eq!(compute_route_prefix("//foo", ""), "//foo");
    }
}
