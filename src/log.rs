//! Server log lines in Redis's format: `pid:role dd Mon yyyy hh:mm:ss.mmm <level> message`
//! (level marks: `.` debug, `-` verbose, `*` notice, `#` warning).
//! Logging is rare (start-up, saves, errors), so one mutex around the sink is fine;
//! it is never taken on the request path and never in a forked child.

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::config::LogLevel;

static SINK: Mutex<Option<std::fs::File>> = Mutex::new(None);
static LEVEL: AtomicU8 = AtomicU8::new(2);
static ROLE: AtomicU8 = AtomicU8::new(b'M');
/// The log file's descriptor (1, stdout, when there is none), for the two
/// places that cannot take the sink's mutex: a signal handler, and a forked
/// child deciding which inherited descriptors to keep.
static RAW_FD: AtomicI32 = AtomicI32::new(1);

/// The descriptor log lines go to.
pub fn raw_fd() -> RawFd {
    RAW_FD.load(Ordering::Relaxed)
}

/// `M` in the server, `C` in a forked child.
pub fn set_role(role: char) {
    ROLE.store(role as u8, Ordering::Relaxed);
}

pub fn init(level: LogLevel, logfile: &str) -> Result<(), String> {
    set_level(level);
    if !logfile.is_empty() {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(logfile).map_err(|e| format!("Can't open the log file: {}", e))?;
        RAW_FD.store(f.as_raw_fd(), Ordering::Relaxed);
        *SINK.lock().unwrap() = Some(f);
    }
    Ok(())
}

pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: LogLevel) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed) && level != LogLevel::Nothing
}

/// Formats a unix time in ms as Redis's log timestamp (UTC).
pub fn timestamp(ms: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{:02} {} {} {:02}:{:02}:{:02}.{:03}", d, MONTHS[(m - 1) as usize], y, rem / 3600, (rem % 3600) / 60, rem % 60, millis)
}

/// The role mark (`M`/`C`) comes from `set_role`.
pub fn log(level: LogLevel, msg: &str) {
    write_line(level, msg, false);
}

/// Logs without ever waiting for the sink's mutex (for a forked child,
/// where the mutex may be in any state); falls back to stdout.
pub fn log_try(level: LogLevel, msg: &str) {
    write_line(level, msg, true);
}

fn write_line(level: LogLevel, msg: &str, only_try: bool) {
    if !enabled(level) {
        return;
    }
    let role = ROLE.load(Ordering::Relaxed) as char;
    let mark = match level {
        LogLevel::Debug => '.',
        LogLevel::Verbose => '-',
        LogLevel::Notice => '*',
        _ => '#',
    };
    let line = format!("{}:{} {} {} {}\n", std::process::id(), role, timestamp(crate::util::unix_ms()), mark, msg);
    let mut guard = if only_try { SINK.try_lock().ok() } else { Some(SINK.lock().unwrap_or_else(|p| p.into_inner())) };
    match guard.as_mut().and_then(|g| g.as_mut()) {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            // SAFETY: a direct write(2) to stdout: no std lock involved.
            unsafe { libc::write(1, line.as_ptr() as *const libc::c_void, line.len()) };
        }
    }
}

/// Redis's serverLogFromHandler, for a signal handler: async-signal-safe
/// (no allocation, no lock, only write(2), getpid(2) and time(2)), in its
/// format `pid:signal-handler (unix-seconds) message`.
pub fn log_from_handler(level: LogLevel, msg: &str) {
    if !enabled(level) {
        return;
    }
    let mut line = [0u8; 256];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        let take = bytes.len().min(line.len() - n);
        line[n..n + take].copy_from_slice(&bytes[..take]);
        n += take;
    };
    let mut digits = [0u8; 20];
    // SAFETY: getpid and time(NULL) are async-signal-safe and cannot fail.
    let (pid, now) = unsafe { (libc::getpid() as u64, libc::time(std::ptr::null_mut()) as u64) };
    put(decimal(pid, &mut digits));
    put(b":signal-handler (");
    put(decimal(now, &mut digits));
    put(b") ");
    put(msg.as_bytes());
    put(b"\n");
    // SAFETY: a write(2) of a stack buffer to the log's descriptor.
    unsafe { libc::write(raw_fd(), line.as_ptr() as *const libc::c_void, n) };
}

/// `v` in decimal, written at the end of `buf`, without allocating.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

#[macro_export]
macro_rules! notice { ($($t:tt)*) => { $crate::log::log($crate::config::LogLevel::Notice, &format!($($t)*)) } }
#[macro_export]
macro_rules! warning { ($($t:tt)*) => { $crate::log::log($crate::config::LogLevel::Warning, &format!($($t)*)) } }
#[macro_export]
macro_rules! verbose { ($($t:tt)*) => { $crate::log::log($crate::config::LogLevel::Verbose, &format!($($t)*)) } }
