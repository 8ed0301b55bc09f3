//! SIGTERM and SIGINT as events for the request loop.
//!
//! A signal handler may do almost nothing safely, so none is installed:
//! the signals are blocked in every thread (the mask is inherited, so this
//! must run before any thread starts) and one thread receives them with
//! `sigwait` and sends an ordinary event. A second signal during shutdown
//! ends the process at once, for an operator who does not want to wait.

use std::sync::mpsc::Sender;
use std::thread;

use crate::http::Event;

/// Blocks SIGTERM and SIGINT for this thread and every thread started after,
/// and ignores SIGXFSZ.
pub fn block() -> Result<(), String> {
    // SAFETY: sigemptyset/sigaddset initialise a zeroed sigset_t we own;
    // pthread_sigmask only reads it.
    unsafe {
        let set = signal_set();
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(format!("pthread_sigmask failed with error {rc}"));
        }
        // A file-size limit (ulimit -f) must fail the snapshot write with
        // EFBIG, which we report and survive, not kill the process.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    Ok(())
}

unsafe fn signal_set() -> libc::sigset_t {
    // SAFETY: all-zero is a valid bit pattern for sigset_t, and the libc
    // calls below only fill it in.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// Starts the thread that turns signals into `Event::Shutdown`.
pub fn forward(events: Sender<Event>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is initialised and `sig` is a valid out-pointer.
                let rc = unsafe {
                    let set = signal_set();
                    libc::sigwait(&set, &mut sig)
                };
                if rc != 0 {
                    log::error!(err = rc; "sigwait failed; signals will not stop the gateway gracefully");
                    return;
                }
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
