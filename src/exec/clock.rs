//! The clock commands are timed with: read once per command, cheap to
//! turn into unix milliseconds.

use std::sync::OnceLock;

/// The loop's clock. clock_gettime was ~9% of a pipelined GET load with
/// three reads per command; now each command reads the clock once (its end
/// is the next command's start), kept as plain nanoseconds so that
/// durations are one subtraction, and unix milliseconds are derived from that
/// reading and a base re-synchronised with the wall clock by cron.
///
/// Where the kernel's own clocksource is the TSC (x86_64), a command's
/// reading is the TSC scaled from an anchor: a (TSC, CLOCK_MONOTONIC) pair
/// the loop takes once per turn (`turn`). A plain `rdtsc` and a multiply
/// cost about a third of the vDSO's clock_gettime (its `lfence`/`rdtscp`,
/// seqlock and call through the PLT: 2.7-4.3% of GET's sampled user time
/// at -P 1, two reads a request), and the scaled reading is within a
/// microsecond of CLOCK_MONOTONIC over a turn (the scale is measured
/// against it, see `Tsc`). commandstats' `usec`, the latency histograms,
/// the slowlog and the latency monitor read durations in microseconds, as
/// Redis's `call()` does from its monotonic clock.
pub struct Clock {
    base_ns: u64,
    /// Wall-clock nanoseconds at `base_ns`: kept whole, so that derived
    /// milliseconds truncate as the wall clock's do (a base truncated to
    /// milliseconds put the clock up to 2 ms behind: a PTTL right after
    /// GETEX PXAT now+10000 answered 10001).
    base_unix_ns: u64,
    /// The latest reading (monotonic nanoseconds): the start of the next command.
    pub last: u64,
    tsc: Option<Tsc>,
}

/// The TSC as a clock: nanoseconds = `anchor_ns` + (TSC - `anchor_tsc`) x
/// `mult` / 2^32. `mult` is first measured over a 10 ms spin at start-up
/// (shared by every clock of the process), then, by each clock, over the
/// whole time from its first anchor to its latest one once that is a
/// second or more (100 ns of jitter in a pair is 1e-7 of a second).
/// The scale is rounded up by about 1e-4 (start-up) or 1e-5 (measured) so
/// that a reading between anchors is never behind CLOCK_MONOTONIC (a unix
/// millisecond derived from it must not be behind the wall clock); the
/// next anchor sets it back to the kernel's figure. A reading more than
/// `SPAN_MAX_TICKS` after its anchor (a clock the loop does not turn:
/// a script's, AOF loading's) anchors afresh instead.
#[derive(Clone, Copy)]
struct Tsc {
    anchor_tsc: u64,
    anchor_ns: u64,
    mult: u64,
    /// The first anchor: the start of the window `mult` is measured over.
    first_tsc: u64,
    first_ns: u64,
    /// The anchor `mult` was last measured at.
    measured_ns: u64,
}

/// Extrapolate at most about this many TSC ticks (~0.3-1 s at 1-3 GHz).
const SPAN_MAX_TICKS: u64 = 1 << 30;
/// A (TSC, monotonic) pair whose two TSC reads are further apart than this
/// (the thread was preempted between them) does not measure the scale.
const PAIR_MAX_TICKS: u64 = 1_000;

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

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU and only reads the counter
    // (it is used only where the kernel itself keeps time by it: `tsc_scale`).
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn rdtsc() -> u64 {
    0
}

/// (TSC, monotonic ns) read together, and whether the pair is tight
/// enough to measure the scale with.
#[inline]
fn pair() -> (u64, u64, bool) {
    let t0 = rdtsc();
    let ns = monotonic_ns();
    let t1 = rdtsc();
    (t0 / 2 + t1 / 2, ns, t1.wrapping_sub(t0) <= PAIR_MAX_TICKS)
}

/// A tight pair, if one of `PAIR_TRIES` reads in a row is. A single read
/// is often loose on this kind of VM right after a spin or a preemption:
/// the first clock_gettime of a thread took 12-41k ticks, and the first
/// one after `tsc_scale`'s 10 ms spin 2.3-4.2k ticks in about half the
/// tries (measured here under load, 78 ticks otherwise), so with one read
/// per end all five tries of `tsc_scale` failed in 1 start of 6-8: that
/// server then read clock_gettime (~50 ns on this VM) for every command
/// of its life, 4% of a pipelined LPUSH's samples. The read after a loose
/// one was tight in every case seen.
fn tight_pair() -> Option<(u64, u64)> {
    (0..PAIR_TRIES).find_map(|_| {
        let (t, ns, tight) = pair();
        tight.then_some((t, ns))
    })
}

/// Reads `tight_pair` makes before it gives up.
const PAIR_TRIES: usize = 8;

/// ns per tick (32.32 fixed point) of TSC ticks `ticks` over `ns` nanoseconds,
/// rounded up by 2^-`round_up_shift`.
fn scale(ns: u64, ticks: u64, round_up_shift: u32) -> Option<u64> {
    if ticks == 0 {
        return None;
    }
    let m = ((ns as u128) << 32) / ticks as u128;
    let m = u64::try_from(m).ok()?;
    (m > 0).then(|| m + (m >> round_up_shift) + 1)
}

/// The start-up scale, when the kernel keeps CLOCK_MONOTONIC by the TSC
/// (then the TSC is invariant and synchronised across CPUs, or the kernel
/// would have switched away from it). `RINGKV_CLOCK=monotonic` turns it off.
fn tsc_scale() -> Option<u64> {
    static SCALE: OnceLock<Option<u64>> = OnceLock::new();
    *SCALE.get_or_init(|| {
        if !cfg!(target_arch = "x86_64") || std::env::var_os("RINGKV_CLOCK").is_some_and(|v| v == "monotonic") {
            return None;
        }
        let source = std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource").ok()?;
        if source.trim() != "tsc" {
            return None;
        }
        // A few tries, in case the thread is preempted around the spin.
        for _ in 0..5 {
            let Some((t0, n0)) = tight_pair() else { continue };
            while monotonic_ns() < n0 + 10_000_000 {
                std::hint::spin_loop();
            }
            let Some((t1, n1)) = tight_pair() else { continue };
            if t1 > t0 {
                return scale(n1 - n0, t1 - t0, 13);
            }
        }
        None
    })
}

impl Tsc {
    #[inline(always)]
    fn since_anchor(&self, now_tsc: u64) -> Option<u64> {
        let d = now_tsc.wrapping_sub(self.anchor_tsc);
        (d <= SPAN_MAX_TICKS).then(|| self.anchor_ns + ((d as u128 * self.mult as u128) >> 32) as u64)
    }
}

impl Clock {
    pub fn new() -> Clock {
        let now = monotonic_ns();
        let mut c = Clock { base_ns: now, base_unix_ns: unix_ns(), last: now, tsc: None };
        if let Some(mult) = tsc_scale() {
            let (t, ns, _) = pair();
            c.tsc = Some(Tsc { anchor_tsc: t, anchor_ns: ns, mult, first_tsc: t, first_ns: ns, measured_ns: ns });
            c.last = ns;
        }
        c
    }
    /// Reads the clock; returns (and remembers) the reading.
    #[inline]
    pub fn tick(&mut self) -> u64 {
        self.last = match self.tsc.as_ref().and_then(|t| t.since_anchor(rdtsc())) {
            Some(ns) => ns,
            None => self.turn_read(),
        };
        self.last
    }
    /// Reads CLOCK_MONOTONIC itself (once per loop turn): the anchor the
    /// turn's commands are timed from.
    #[inline]
    pub fn turn(&mut self) -> u64 {
        self.last = self.turn_read();
        self.last
    }
    fn turn_read(&mut self) -> u64 {
        let Some(t) = self.tsc.as_mut() else {
            return monotonic_ns();
        };
        let (tsc, ns, tight) = pair();
        t.anchor_tsc = tsc;
        t.anchor_ns = ns;
        if tight && ns >= t.measured_ns + 1_000_000_000 && tsc > t.first_tsc {
            if let Some(m) = scale(ns - t.first_ns, tsc - t.first_tsc, 17) {
                t.mult = m;
                t.measured_ns = ns;
            }
        }
        ns
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
        self.base_ns = self.turn();
        self.base_unix_ns = unix_ns();
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
        for i in 0..20_000 {
            let wall = crate::util::unix_ms();
            if i % 1000 == 0 {
                c.turn();
            } else {
                c.tick();
            }
            assert!(c.now_ms() >= wall, "{} < {}", c.now_ms(), wall);
        }
    }

    /// Readings between anchors keep to CLOCK_MONOTONIC: never behind it,
    /// and ahead by no more than the scale's rounding (plus the two reads'
    /// distance), over spans from nothing to 50 ms.
    #[test]
    fn ticks_follow_the_monotonic_clock() {
        let mut c = Clock::new();
        for sleep_us in [0u64, 10, 1_000, 50_000] {
            c.turn();
            let before = monotonic_ns();
            std::thread::sleep(std::time::Duration::from_micros(sleep_us));
            let t = c.tick();
            let after = monotonic_ns();
            assert!(t + 2_000 >= before, "reading {t} behind {before}");
            let span = after.saturating_sub(before);
            assert!(t <= after + span / 1000 + 50_000, "reading {t} far ahead of {after} (span {span} ns)");
        }
    }

    /// Durations: a 20 ms sleep reads 20-40 ms, whichever clock is in use.
    #[test]
    fn usec_since_measures_a_sleep() {
        let mut c = Clock::new();
        let start = c.turn();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let us = c.usec_since(start);
        assert!((20_000..40_000).contains(&us), "{us} us");
    }

    /// Where the kernel keeps time by the TSC, the clock does too: a
    /// start-up calibration that gave up (a loose read of the pair at
    /// either end of its spin, see `tight_pair`) left a server on
    /// clock_gettime for every command.
    #[test]
    fn the_tsc_is_used_where_the_kernel_uses_it() {
        let source = std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource").unwrap_or_default();
        if !cfg!(target_arch = "x86_64") || source.trim() != "tsc" || std::env::var_os("RINGKV_CLOCK").is_some() {
            return;
        }
        assert!(tsc_scale().is_some());
        assert!(Clock::new().tsc.is_some());
        assert!((0..100).all(|_| tight_pair().is_some()));
    }

    #[test]
    fn scale_rounds_up_and_refuses_nonsense() {
        assert_eq!(scale(1000, 0, 13), None);
        // 1 ns per tick is 2^32, rounded up by 2^-13 and 1.
        assert_eq!(scale(1_000_000, 1_000_000, 13), Some((1 << 32) + (1 << 19) + 1));
        assert_eq!(scale(u64::MAX, 1, 13), None);
    }
}
