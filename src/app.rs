//! Start-up and shutdown: flags, logging, listeners, the HTTP front's I/O
//! loop, a worker pool for CPU work, and the single request loop that owns
//! the store. `main.rs` only calls [`main`].

use crate::{
    access, cli, gateway, http, http::router, logging, model, persist, pool, signals, store, sys,
    telemetry,
};

use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::time::Duration;

#[cfg(feature = "tls")]
use crate::access::tls;
use cli::{Command, Config};

/// Pool threads at most: the pool only does CPU work (parsing, bcrypt,
/// gzip), never waits on a client, so a few threads per core suffice.
const MAX_POOL_THREADS: usize = 8;

/// The process: parses the flags, runs the gateway until a signal or
/// `/-/quit`, and says how it ended.
pub fn main() -> ExitCode {
    let config = match cli::parse_env() {
        Ok(Command::Run(c)) => c,
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("{}", version_text());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("pushgateway: error: {e}");
            return ExitCode::from(2);
        }
    };
    // Before any thread starts, so that every thread inherits the mask.
    if let Err(e) = signals::block() {
        eprintln!("pushgateway: error: {e}");
        return ExitCode::FAILURE;
    }
    logging::init(config.log_level, config.log_format);
    // Started by the service control manager, the gateway runs as the
    // service, and a service stop is its graceful stop; otherwise at once
    // as an ordinary process.
    #[cfg(windows)]
    {
        let service_config = config.clone();
        let body = Box::new(move || {
            log::info!("running as a Windows service");
            u32::from(run_to_exit_code(&service_config))
        });
        match signals::run_as_service(body) {
            Ok(code) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(sys::ServiceError::NotAService) => {}
            Err(e) => {
                log::error!(err:display = e; "exiting");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::from(run_to_exit_code(&config))
}

/// [`run`], its error logged: 0 for a clean stop, 1 otherwise.
fn run_to_exit_code(config: &Config) -> u8 {
    match run(config) {
        Ok(()) => 0,
        Err(e) => {
            log::error!(err:display = e; "exiting");
            1
        }
    }
}

/// prometheus/common's `version.Print` layout, line for line, so scripts
/// that read the reference's `--version` read ours.
fn version_text() -> String {
    format!(
        "pushgateway, version {} (branch: {}, revision: {})\n  build user:       {}\n  build date:       {}\n  go version:       {}\n  platform:         {}/{}\n  tags:             {}",
        telemetry::VERSION,
        telemetry::BRANCH,
        telemetry::REVISION,
        telemetry::BUILD_USER,
        telemetry::BUILD_DATE,
        telemetry::GO_VERSION,
        std::env::consts::OS,
        telemetry::go_arch(),
        if cfg!(feature = "tls") {
            "tls"
        } else {
            "notls"
        },
    )
}

fn run(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let version = format!(
        "(version={}, branch={}, revision={})",
        telemetry::VERSION,
        telemetry::BRANCH,
        telemetry::REVISION
    );
    log::info!(version = version; "starting pushgateway");
    let context = format!(
        "(go={}, platform={}/{}, user={}, date={})",
        telemetry::GO_VERSION,
        std::env::consts::OS,
        telemetry::go_arch(),
        telemetry::BUILD_USER,
        telemetry::BUILD_DATE
    );
    log::info!(build_context = context; "Build context");
    log::debug!(path = config.route_prefix; "path prefix for internal routing");

    let mut store = store::Store::new();
    store.set_default_ttl(config.group_ttl);
    let restored = !config.persistence_file.is_empty() && restore(config, &mut store)?;
    // Groups that expired while the gateway was down go now; the file is
    // rewritten without them at the next write (the generation before
    // expiry is what the file holds).
    // The file's bytes and the parser's buffers are gone: give the memory
    // back rather than keep the restore's peak as the idle RSS.
    crate::sys::trim_heap();
    let restored_generation = store.generation();
    let expired = store.expire_due(crate::time::now_nanos(), Duration::MAX);
    if !expired.is_empty() {
        log::info!(groups = expired.len(); "groups expired while the gateway was down; deleted");
    }

    let pool = pool::Pool::new(MAX_POOL_THREADS);
    let telemetry = telemetry::Telemetry::new();
    let (tx, rx) = mpsc::channel();
    let names = if config.enable_utf8_names {
        model::NameScheme::Utf8
    } else {
        model::NameScheme::Legacy
    };
    // A file written with --push.enable-utf8-names may hold names a
    // gateway started without it would not take: they are kept, and
    // scrapes escape them as they would with the flag (as 1.11 does).
    let rendered_names = if names == model::NameScheme::Legacy
        && restored
        && holds_utf8_names(&store)
    {
        log::warn!(file = config.persistence_file.as_str(); "the persistence file holds names that are not classic (written with --push.enable-utf8-names); they are kept and escaped in scrapes, but pushes of such names are refused without the flag");
        model::NameScheme::Utf8
    } else {
        names
    };
    let mut gw = gateway::Gateway::new(
        store,
        telemetry.clone(),
        !config.disable_consistency_check,
        flag_list(config),
    );
    gw.names = rendered_names;
    gw.telemetry.count_expired(expired.len());
    gw.admin_api = config.enable_admin_api;
    gw.offload = Some(gateway::Offload {
        pool: pool.clone(),
        events: tx.clone(),
    });
    gw.limits = store::Limits {
        max_groups: config.max_groups,
        max_series: config.max_series,
    };
    if !config.persistence_file.is_empty() {
        let p = persist::Persistence::start(
            config.persistence_file.clone().into(),
            config.persistence_interval,
            tx.clone(),
            restored_generation,
        )?;
        gw.persistence = Some(p);
        gw.telemetry
            .enable_persistence(config.persistence_interval, restored);
    }
    signals::forward(tx.clone())?;

    let mut web_reloader = None;
    let mut web = access::config::WebConfig::default();
    if !config.web_config_file.is_empty() {
        web = access::config::load(std::path::Path::new(&config.web_config_file))?;
        if !web.users.is_empty() {
            log::info!(users = web.users.len(); "basic authentication enabled");
        }
        web_reloader = Some(Arc::new(access::reload::WebReloader::new(
            config.web_config_file.clone().into(),
            &web,
        )));
    }
    let access = if config.access_file.is_empty() {
        None
    } else {
        let reloader = access::scopes::AccessReloader::new(config.access_file.clone().into())
            .map_err(|e| format!("--web.access-file: {e}"))?;
        log::info!(file = config.access_file.as_str(); "write scopes enabled");
        Some(Arc::new(reloader))
    };
    let tls = tls_setup(config, &web)?;
    let budget = http::budget::Budget::new(config.memory_budget as usize);
    telemetry.show_budget(&budget);
    let ctx = http::Context {
        routes: Arc::new(
            router::Routes::new(
                &config.route_prefix,
                &config.telemetry_path,
                config.enable_admin_api,
            )
            .with_names(names),
        ),
        pool: pool.clone(),
        events: tx,
        telemetry,
        max_body_bytes: config.max_body_bytes,
        budget: Arc::clone(&budget),
        enable_lifecycle: config.enable_lifecycle,
        names,
        web: web_reloader,
        beat: Arc::clone(&gw.beat),
        access,
        limiter: web.rate_limit.map(|limit| {
            log::info!(burst = limit.burst, interval = crate::time::go_duration(limit.interval); "Rate Limiter is enabled.");
            Arc::new(crate::access::rate_limit::RateLimiter::new(limit))
        }),
    };
    let listeners = if config.systemd_socket {
        http::systemd_listeners().map_err(|e| format!("--web.systemd-socket: {e}"))?
    } else {
        let mut l = Vec::new();
        for addr in &config.listen_addresses {
            l.push(http::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?);
        }
        l
    };
    for l in &listeners {
        log::info!(address = l.local_addr()?, tls = tls.is_some(); "Listening on");
    }
    let front = http::Front::start(listeners, tls, ctx, limits(config))?;

    // A panic in the loop is a bug; the store it leaves is still written
    // as the final snapshot, so the pushes since the last one survive it.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gw.run(&rx)));
    if ran.is_err() {
        log::error!(
            "the request loop failed (a bug, see the panic above); writing the final snapshot and exiting"
        );
    }

    log::info!("shutting down: no longer accepting connections");
    front.stop_accepting();
    gw.drain(&rx, Duration::from_millis(200), Duration::from_secs(10));
    let result = gw.finish(&rx);
    front.finish(http::DRAIN_TIMEOUT);
    match result {
        Ok(()) if ran.is_err() => Err("the request loop panicked; final snapshot written".into()),
        Ok(()) => {
            log::info!("pushgateway stopped");
            Ok(())
        }
        Err(e) => Err(format!("final snapshot failed, the previous file is kept: {e}").into()),
    }
}

/// Timeouts and the connection cap. The soft descriptor limit is raised
/// to the hard one first, as Go does, and the default cap derives from it.
fn limits(config: &Config) -> http::ConnLimits {
    let nofile = match sys::raise_nofile_limit() {
        Ok(n) => n,
        Err(e) => {
            log::warn!(err:display = e; "cannot read the open-files limit; assuming 1024");
            1024
        }
    };
    let max_connections = match config.max_connections {
        0 => http::ConnLimits::default_max_connections(nofile),
        n => n,
    };
    log::debug!(open_files = nofile, max_connections = max_connections; "connection limits");
    http::ConnLimits {
        header_timeout: config.read_header_timeout,
        read_timeout: config.read_timeout,
        idle_timeout: config.idle_timeout,
        write_timeout: Duration::from_secs(60),
        max_connections,
    }
}

/// TLS as the web configuration asks: the rustls configuration is built
/// (and every certificate file read) before anything listens, so a bad
/// path or key stops the start with the file's name.
#[cfg(feature = "tls")]
fn tls_setup(
    config: &Config,
    web: &access::config::WebConfig,
) -> Result<Option<Arc<tls::Reloader>>, Box<dyn std::error::Error>> {
    let Some(settings) = &web.tls else {
        return Ok(None);
    };
    let file = &config.web_config_file;
    let (rustls_config, warnings) =
        tls::build(settings).map_err(|e| format!("web config file {file}: {e}"))?;
    for w in warnings {
        log::warn!(setting = w.as_str(); "TLS setting not honoured exactly");
    }
    log::info!(client_auth = format!("{:?}", settings.client_auth); "TLS is enabled");
    Ok(Some(Arc::new(tls::Reloader::new(
        file.into(),
        settings,
        rustls_config,
    ))))
}

#[cfg(not(feature = "tls"))]
fn tls_setup(
    config: &Config,
    web: &access::config::WebConfig,
) -> Result<Option<std::convert::Infallible>, Box<dyn std::error::Error>> {
    match web.tls {
        None => Ok(None),
        Some(_) => Err(format!(
            "web config file {}: tls_server_config is set, but this binary was built without TLS \
             (cargo feature \"tls\"); rebuild with default features or remove the section",
            config.web_config_file
        )
        .into()),
    }
}

/// Loads the persistence file, or with
/// `--persistence.start-empty-if-unreadable` moves a bad one aside.
/// True if it loaded (or there was none yet), for
/// `pushgateway_persistence_last_restore_timestamp_seconds`.
fn restore(config: &Config, store: &mut store::Store) -> Result<bool, Box<dyn std::error::Error>> {
    let path = std::path::Path::new(&config.persistence_file);
    let started = std::time::Instant::now();
    match persist::restore(path, store) {
        Ok(groups) => {
            log::info!(file:display = path.display(), groups = groups, series = store.series_count(), duration = crate::time::go_duration(started.elapsed()); "metrics restored");
            Ok(true)
        }
        // Not an unreadable file: moving it aside would not help.
        Err(
            e @ (persist::RestoreError::NotWritable { .. } | persist::RestoreError::Import { .. }),
        ) => Err(e.into()),
        Err(e) if config.persistence_start_empty_if_unreadable => {
            let aside = persist::move_aside(path)
                .map_err(|err| format!("{e}; and it cannot be moved aside: {err}"))?;
            log::warn!(err:display = e, moved_to:display = aside.display(); "persistence file unreadable; moved aside, starting empty");
            *store = store::Store::new();
            store.set_default_ttl(config.group_ttl);
            Ok(false)
        }
        Err(e) => Err(format!(
            "{e}; refusing to start so the file is not overwritten (fix or move it, or pass --persistence.start-empty-if-unreadable)"
        )
        .into()),
    }
}

/// Whether any stored metric or label name is not classic: one pass over
/// the store, at start-up only.
fn holds_utf8_names(store: &store::Store) -> bool {
    let classic_labels =
        |labels: &[model::Label]| labels.iter().all(|l| model::is_valid_label_name(&l.name));
    store.groups().any(|(key, group)| {
        !classic_labels(key)
            || group.families.iter().any(|(name, family)| {
                !model::is_valid_metric_name(name)
                    || family.metrics.iter().any(|m| !classic_labels(&m.labels))
            })
    })
}

/// The flags and their values, for the status page.
fn flag_list(c: &Config) -> Vec<(String, String)> {
    let f = |k: &str, v: String| (k.to_owned(), v);
    vec![
        f("web.listen-address", c.listen_addresses.join(",")),
        f("web.systemd-socket", c.systemd_socket.to_string()),
        f("web.config.file", c.web_config_file.clone()),
        f("web.telemetry-path", c.telemetry_path.clone()),
        f("web.external-url", c.external_url.clone()),
        f("web.route-prefix", c.route_prefix.clone()),
        f("web.enable-lifecycle", c.enable_lifecycle.to_string()),
        f("web.enable-admin-api", c.enable_admin_api.to_string()),
        f("persistence.file", c.persistence_file.clone()),
        f(
            "persistence.interval",
            crate::time::go_duration(c.persistence_interval),
        ),
        f(
            "push.disable-consistency-check",
            c.disable_consistency_check.to_string(),
        ),
        f("push.enable-utf8-names", c.enable_utf8_names.to_string()),
        f("push.max-body-size", c.max_body_bytes.to_string()),
        f("push.max-groups", c.max_groups.to_string()),
        f("push.max-series", c.max_series.to_string()),
        f("push.group-ttl", crate::time::go_duration(c.group_ttl)),
        f(
            "web.read-header-timeout",
            crate::time::go_duration(c.read_header_timeout),
        ),
        f("web.read-timeout", crate::time::go_duration(c.read_timeout)),
        f("web.idle-timeout", crate::time::go_duration(c.idle_timeout)),
        f("web.memory-budget", c.memory_budget.to_string()),
        f("web.max-connections", c.max_connections.to_string()),
        f("log.level", c.log_level.to_string().to_lowercase()),
        f("log.format", c.log_format.as_str().into()),
    ]
}
