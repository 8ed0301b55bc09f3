//! SIGTERM and SIGINT (on Windows: Ctrl-C, Ctrl-Break, a closed console,
//! a system shutdown, and a service stop from the service control manager)
//! as events for the request loop.
//!
//! On Unix a signal handler may do almost nothing safely, so none is
//! installed: the signals are blocked in every thread (the mask is
//! inherited, so this must run before any thread starts) and one thread
//! receives them with `sigwait` and sends an ordinary event. On Windows
//! the console's control handler and the service's control handler run
//! on threads of their own, so they send the event themselves. Either way
//! the shutdown is the same graceful drain with its final snapshot, and a
//! second SIGTERM, SIGINT, Ctrl-C or Ctrl-Break during shutdown ends the
//! process at once, for an operator who does not want to wait.

use std::sync::mpsc::Sender;

use crate::contract::Event;

/// Blocks SIGTERM and SIGINT for this thread and every thread started after,
/// and ignores SIGXFSZ.
#[cfg(unix)]
pub(crate) fn block() -> Result<(), String> {
    crate::sys::block_shutdown_signals()
}

/// Nothing to block on Windows: console events arrive on a thread Windows
/// starts for them.
#[cfg(windows)]
pub(crate) fn block() -> Result<(), String> {
    Ok(())
}

/// Starts the thread that turns signals into `Event::Shutdown`.
#[cfg(unix)]
pub(crate) fn forward(events: Sender<Event>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            loop {
                let sig = match crate::sys::wait_shutdown_signal() {
                    Ok(sig) => sig,
                    Err(rc) => {
                        log::error!(err = rc; "sigwait failed; signals will not stop the gateway gracefully");
                        return;
                    }
                };
                seen += 1;
                if seen > 1 {
                    log::warn!(signal = sig; "second signal during shutdown, exiting immediately");
                    std::process::exit(1);
                }
                let _ = events.send(Event::Shutdown { reason: sig });
            }
        })?;
    Ok(())
}

/// What the console handler and the service's control handler share
/// (Windows): where a stop request goes, and one that came before there
/// was anywhere to send it (a service stop during start-up, which the
/// gateway takes once it is running).
#[cfg(windows)]
struct StopRoute {
    events: Option<Sender<Event>>,
    early: Option<crate::sys::StopRequest>,
}

#[cfg(windows)]
static ROUTE: std::sync::Mutex<StopRoute> = std::sync::Mutex::new(StopRoute {
    events: None,
    early: None,
});

/// Stop requests seen so far (Windows).
#[cfg(windows)]
static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Installs the console handler that turns Ctrl-C, Ctrl-Break, a closing
/// console and a system shutdown into `Event::Shutdown`, and sends a
/// service stop that came during start-up.
#[cfg(windows)]
pub(crate) fn forward(events: Sender<Event>) -> std::io::Result<()> {
    {
        let mut route = ROUTE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(request) = route.early.take() {
            let _ = events.send(Event::Shutdown {
                reason: request.name(),
            });
        }
        route.events = Some(events);
    }
    crate::sys::on_console_ctrl(on_stop_request)
}

/// A console event or a service control asks for the graceful stop.
#[cfg(windows)]
fn on_stop_request(request: crate::sys::StopRequest) {
    if SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
        if request.repeated_exits_at_once() {
            log::warn!(signal = request.name(); "second signal during shutdown, exiting immediately");
            std::process::exit(1);
        }
        log::info!(signal = request.name(); "already shutting down");
        return;
    }
    let mut route = ROUTE.lock().unwrap_or_else(|e| e.into_inner());
    match &route.events {
        Some(events) => {
            let _ = events.send(Event::Shutdown {
                reason: request.name(),
            });
        }
        None => route.early = Some(request),
    }
}

/// Runs `body` (the gateway; its exit code) as a Windows service when the
/// service control manager started the process, with a stop or shutdown
/// control as the graceful stop; returns the exit code. Started from a
/// console or a script, it returns [`crate::sys::ServiceError::NotAService`]
/// at once without running `body`.
#[cfg(windows)]
pub(crate) fn run_as_service(
    body: Box<dyn FnOnce() -> u32 + Send>,
) -> Result<u32, crate::sys::ServiceError> {
    crate::sys::run_as_service(body, on_stop_request)
}
