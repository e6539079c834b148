//! The clock commands are timed with: read once per command, cheap to
//! turn into unix milliseconds.

/// The loop's clock. clock_gettime was ~9% of a pipelined GET load with
/// three reads per command; now each command reads the monotonic clock once
/// (its end is the next command's start), kept as plain nanoseconds so that
/// durations are one subtraction, and unix milliseconds are derived from that
/// reading and a base re-synchronised with the wall clock by cron.
pub struct Clock {
    base_ns: u64,
    /// Wall-clock nanoseconds at `base_ns`: kept whole, so that derived
    /// milliseconds truncate as the wall clock's do (a base truncated to
    /// milliseconds put the clock up to 2 ms behind: a PTTL right after
    /// GETEX PXAT now+10000 answered 10001).
    base_unix_ns: u64,
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

fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

impl Clock {
    pub fn new() -> Clock {
        let now = monotonic_ns();
        Clock { base_ns: now, base_unix_ns: unix_ns(), last: now }
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
        ((self.base_unix_ns + self.last.saturating_sub(self.base_ns)) / 1_000_000) as i64
    }
    pub fn resync(&mut self) {
        self.base_ns = monotonic_ns();
        self.base_unix_ns = unix_ns();
        self.last = self.base_ns;
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command's unix milliseconds are never behind the wall clock read
    /// before it (Redis's mstime(); the TCL suite's `clock milliseconds`).
    #[test]
    fn now_ms_is_not_behind_the_wall_clock() {
        let mut c = Clock::new();
        for _ in 0..20_000 {
            let wall = crate::util::unix_ms();
            c.tick();
            assert!(c.now_ms() >= wall, "{} < {}", c.now_ms(), wall);
        }
    }
}
