//! pushgateway: a drop-in replacement for the Prometheus Pushgateway.
//!
//! `main` wires the parts together: flags, logging, listeners, one acceptor
//! thread per listener, a worker pool for slow I/O, and the single request
//! loop that owns the store.

mod cli;
mod exposition;
mod gateway;
mod http;
mod logging;
mod model;
mod path;
mod pool;
mod router;
mod store;
mod telemetry;
mod text_format;
mod ui;

use std::process::ExitCode;
use std::sync::{Arc, mpsc};
use std::thread;

use cli::{Command, Config};

/// Upper bound on pool threads: each stalled client holds one, so this caps
/// the threads a flood of slow clients can make us start.
const MAX_POOL_THREADS: usize = 4096;

fn main() -> ExitCode {
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
    logging::init(config.log_level, config.log_format);
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!(err:display = e; "exiting");
            ExitCode::FAILURE
        }
    }
}

fn version_text() -> String {
    format!(
        "pushgateway, version {} (branch: {}, revision: {})\n  build user:       {}\n  build date:       {}\n  platform:         {}/{}\n  implementation:   Rust",
        telemetry::VERSION,
        option_env!("PUSHGATEWAY_BRANCH").unwrap_or("unknown"),
        option_env!("PUSHGATEWAY_REVISION").unwrap_or("unknown"),
        option_env!("PUSHGATEWAY_BUILD_USER").unwrap_or("unknown"),
        option_env!("PUSHGATEWAY_BUILD_DATE").unwrap_or("unknown"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

fn run(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    log::info!(version = telemetry::VERSION; "starting pushgateway");
    log::info!(build_context = format!("(rust, platform={}/{})", std::env::consts::OS, std::env::consts::ARCH); "build context");
    log::debug!(path = config.route_prefix; "path prefix for internal routing");

    let pool = pool::Pool::new(MAX_POOL_THREADS);
    let telemetry = telemetry::Telemetry::new();
    let (tx, rx) = mpsc::channel();
    let ctx = http::Context {
        routes: Arc::new(router::Routes::new(&config.route_prefix, &config.telemetry_path)),
        pool: pool.clone(),
        events: tx,
        telemetry: telemetry.clone(),
        max_body_bytes: config.max_body_bytes,
        enable_lifecycle: config.enable_lifecycle,
    };
    let mut servers = Vec::new();
    for addr in &config.listen_addresses {
        let listener = http::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| format!("cannot serve on {addr}: {e}"))?;
        log::info!(address = local; "Listening on");
        servers.push(Arc::new(server));
    }
    for server in &servers {
        let (server, ctx) = (Arc::clone(server), ctx.clone());
        thread::Builder::new()
            .name("acceptor".into())
            .spawn(move || http::accept_loop(server, ctx))?;
    }
    drop(ctx);

    let mut gw = gateway::Gateway::new(pool, telemetry, !config.disable_consistency_check, flag_list(config));
    gw.run(rx);
    for s in &servers {
        s.unblock();
    }
    log::info!("pushgateway stopped");
    Ok(())
}

/// The flags and their values, for the status page.
fn flag_list(c: &Config) -> Vec<(String, String)> {
    let f = |k: &str, v: String| (k.to_owned(), v);
    vec![
        f("web.listen-address", c.listen_addresses.join(",")),
        f("web.telemetry-path", c.telemetry_path.clone()),
        f("web.external-url", c.external_url.clone()),
        f("web.route-prefix", c.route_prefix.clone()),
        f("web.enable-lifecycle", c.enable_lifecycle.to_string()),
        f("web.enable-admin-api", c.enable_admin_api.to_string()),
        f("persistence.file", c.persistence_file.clone()),
        f("persistence.interval", format!("{:?}", c.persistence_interval)),
        f("push.disable-consistency-check", c.disable_consistency_check.to_string()),
        f("push.max-body-size", c.max_body_bytes.to_string()),
        f("log.level", c.log_level.to_string().to_lowercase()),
        f("log.format", format!("{:?}", c.log_format).to_lowercase()),
    ]
}
