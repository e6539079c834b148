//! The clock commands are timed with: read once per command, cheap to
//! turn into unix milliseconds.

/// The loop's clock. clock_gettime was ~9% of a pipelined GET load with
/// three reads per command; now each command reads the monotonic clock once
/// (its end is the next command's start), kept as plain nanoseconds so that
/// durations are one subtraction, and unix milliseconds are derived from that
/// reading and a base re-synchronised with the wall clock by cron.
pub struct Clock {
    base_ns: u64,
    base_unix_ms: i64,
    /// The latest reading (monotonic nanoseconds): the start of the next command.
    pub last: u64,
}

#[inline]
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Clock {
    pub fn new() -> Clock {
        let now = monotonic_ns();
        Clock { base_ns: now, base_unix_ms: crate::util::unix_ms(), last: now }
    }
    /// Reads the clock; returns (and remembers) the reading.
    #[inline]
    pub fn tick(&mut self) -> u64 {
        self.last = monotonic_ns();
        self.last
    }
    /// Microseconds from `start` (an earlier reading) to a fresh reading.
    #[inline]
    pub fn usec_since(&mut self, start: u64) -> u64 {
        self.tick().saturating_sub(start) / 1000
    }
    /// Unix milliseconds at the latest reading.
    #[inline]
    pub fn now_ms(&self) -> i64 {
        self.base_unix_ms + (self.last.saturating_sub(self.base_ns) / 1_000_000) as i64
    }
    pub fn resync(&mut self) {
        self.base_ns = monotonic_ns();
        self.base_unix_ms = crate::util::unix_ms();
        self.last = self.base_ns;
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}
