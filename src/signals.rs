//! SIGTERM and SIGINT (on Windows: Ctrl-C, Ctrl-Break, a closed console)
//! as events for the request loop.
//!
//! On Unix a signal handler may do almost nothing safely, so none is
//! installed: the signals are blocked in every thread (the mask is
//! inherited, so this must run before any thread starts) and one thread
//! receives them with `sigwait` and sends an ordinary event. On Windows
//! the console's control handler runs on a thread of its own, so it sends
//! the event itself. Either way the shutdown is the same graceful drain
//! with its final snapshot, and a second signal during shutdown ends the
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

/// Where the console handler sends its event (Windows).
#[cfg(windows)]
static EVENTS: std::sync::OnceLock<Sender<Event>> = std::sync::OnceLock::new();

/// Console events seen so far (Windows).
#[cfg(windows)]
static SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Installs the console handler that turns Ctrl-C, Ctrl-Break and a
/// closing console into `Event::Shutdown`.
#[cfg(windows)]
pub(crate) fn forward(events: Sender<Event>) -> std::io::Result<()> {
    let _ = EVENTS.set(events);
    crate::sys::on_console_ctrl(on_console_event)
}

#[cfg(windows)]
fn on_console_event(name: &'static str) {
    if SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
        log::warn!(signal = name; "second signal during shutdown, exiting immediately");
        std::process::exit(1);
    }
    if let Some(events) = EVENTS.get() {
        let _ = events.send(Event::Shutdown { reason: name });
    }
}
