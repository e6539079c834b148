//! SIGTERM and SIGINT, as Redis 7.0's sigShutdownHandler: the handler only
//! logs (async-signal-safe) and records the signal; shard 0's cron sees it
//! and runs the same shutdown as the SHUTDOWN command, with every shard held
//! and the flags of `shutdown-on-sigterm` / `shutdown-on-sigint`. A second
//! SIGINT while a shutdown is pending (a long final save) exits at once.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};

use crate::config::LogLevel;

/// The signal that asked for a shutdown not yet done or given up (Redis's
/// `shutdown_asap` and `last_sig_received`), or 0.
static SHUTDOWN_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The dataset is loading (a copy of `Server::loading` the handler can
/// read): the handler's log line says so, as Redis's.
static LOADING: AtomicBool = AtomicBool::new(false);

/// Start-up loading began or ended (see `LOADING`).
pub fn set_loading(on: bool) {
    LOADING.store(on, Ordering::Release);
}

/// The temp file of the foreground save (SAVE, the final save of a
/// shutdown): a second SIGINT removes it before exiting, as Redis's
/// rdbRemoveTempFile(getpid()). A leaked C string, replaced only when the
/// path changes (CONFIG SET dir), so the handler can read it without a lock.
static FOREGROUND_TEMP: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

/// Installs the handlers for SIGTERM and SIGINT.
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid; the handler only uses
        // async-signal-safe calls (atomics, write(2), unlink(2), _exit(2)).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_shutdown_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// In a forked child: SIGTERM and SIGINT end it (the parent reaps it as a
/// save terminated by a signal) instead of scheduling a shutdown that only
/// the parent's cron would act on.
pub fn reset_in_child() {
    // SAFETY: restoring the default disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

extern "C" fn on_shutdown_signal(sig: libc::c_int) {
    let msg = match sig {
        _ if LOADING.load(Ordering::Acquire) => "Received shutdown signal during loading, scheduling shutdown.",
        libc::SIGINT => "Received SIGINT scheduling shutdown...",
        libc::SIGTERM => "Received SIGTERM scheduling shutdown...",
        _ => "Received shutdown signal, scheduling shutdown...",
    };
    // Ctrl+C twice: the user wants out now, without the final save.
    if sig == libc::SIGINT && SHUTDOWN_SIGNAL.load(Ordering::Acquire) != 0 {
        crate::log::log_from_handler(LogLevel::Warning, "You insist... exiting now.");
        let temp = FOREGROUND_TEMP.load(Ordering::Acquire);
        // SAFETY: `temp` is null or a C string that is never freed; unlink
        // and _exit are async-signal-safe. Exit status 1: not a clean shutdown.
        unsafe {
            if !temp.is_null() {
                libc::unlink(temp);
            }
            libc::_exit(1);
        }
    }
    crate::log::log_from_handler(LogLevel::Warning, msg);
    SHUTDOWN_SIGNAL.store(sig, Ordering::Release);
}

/// The signal of a pending shutdown request, if any.
pub fn shutdown_requested() -> Option<i32> {
    match SHUTDOWN_SIGNAL.load(Ordering::Acquire) {
        0 => None,
        sig => Some(sig),
    }
}

/// The shutdown failed (the final save did): serve on, and let the next
/// signal schedule a new attempt (Redis's cancelShutdown).
pub fn cancel_shutdown() {
    SHUTDOWN_SIGNAL.store(0, Ordering::Release);
}

/// Records where the foreground save writes its temp file (see `FOREGROUND_TEMP`).
pub fn set_foreground_temp(path: &str) {
    let current = FOREGROUND_TEMP.load(Ordering::Acquire);
    // SAFETY: non-null values are C strings leaked below, never freed.
    if !current.is_null() && unsafe { std::ffi::CStr::from_ptr(current) }.to_bytes() == path.as_bytes() {
        return;
    }
    if let Ok(c) = CString::new(path) {
        FOREGROUND_TEMP.store(c.into_raw(), Ordering::Release);
    }
}

/// `shutdown-on-sigterm` / `shutdown-on-sigint` for `sig`, as SHUTDOWN's
/// flags: "default" is none of them.
pub fn configured_flags(config: &crate::config::Config, sig: i32) -> crate::commands::server::ShutdownFlags {
    let name = if sig == libc::SIGINT { "shutdown-on-sigint" } else { "shutdown-on-sigterm" };
    let words = config.others.get(name).map(String::as_str).unwrap_or("default");
    let mut flags = crate::commands::server::ShutdownFlags::default();
    for w in words.split_whitespace() {
        match w {
            "save" => flags.save = true,
            "nosave" => flags.nosave = true,
            "now" => flags.now = true,
            "force" => flags.force = true,
            _ => {}
        }
    }
    flags
}
