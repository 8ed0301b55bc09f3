//! SIGTERM and SIGINT as events for the request loop.
//!
//! A signal handler may do almost nothing safely, so none is installed:
//! the signals are blocked in every thread (the mask is inherited, so this
//! must run before any thread starts) and one thread receives them with
//! `sigwait` and sends an ordinary event. A second signal during shutdown
//! ends the process at once, for an operator who does not want to wait.

use std::sync::mpsc::Sender;
use std::thread;

use crate::contract::Event;

/// Blocks SIGTERM and SIGINT for this thread and every thread started after,
/// and ignores SIGXFSZ.
pub(crate) fn block() -> Result<(), String> {
    crate::sys::block_shutdown_signals()
}

fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// Starts the thread that turns signals into `Event::Shutdown`.
pub(crate) fn forward(events: Sender<Event>) -> std::io::Result<()> {
    thread::Builder::new()
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
                    log::warn!(signal = name(sig); "second signal during shutdown, exiting immediately");
                    std::process::exit(1);
                }
                let _ = events.send(Event::Shutdown { reason: name(sig) });
            }
        })?;
    Ok(())
}
