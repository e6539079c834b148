//! LFU access counters as Redis 7.0 keeps them (evict.c), for the `*-lfu`
//! maxmemory policies: an entry's `access_ms` then holds, as Redis's 24-bit
//! `lru` field does, the minute of its last decrement (16 bits) above a
//! logarithmic access counter (8 bits); under any other policy it is the
//! last access time in unix ms. A touch under LFU is Redis's `updateLFU`
//! (decay by the minutes gone, then a probabilistic increment), a new entry
//! starts at `LFU_INIT_VAL`, OBJECT FREQ and the eviction pool read the
//! decayed counter. As in Redis, switching between LRU and LFU at run time
//! leaves the old stamps to be read the other way until the keys are touched.
//!
//! The policy and the two `lfu-*` settings are mirrored in atomics by
//! `apply_config`: a lookup pays one relaxed load to know which stamp to
//! write.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Redis's LFU_INIT_VAL: a new key's counter.
pub const INIT_VAL: u8 = 5;

static ON: AtomicBool = AtomicBool::new(false);
static LRU: AtomicBool = AtomicBool::new(false);
static LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Mirrors `maxmemory-policy`, `lfu-log-factor` and `lfu-decay-time`.
pub fn apply_config(policy: &str, log_factor: &str, decay_time: &str) {
    ON.store(policy.ends_with("-lfu"), Ordering::Relaxed);
    LRU.store(policy.ends_with("-lru"), Ordering::Relaxed);
    LOG_FACTOR.store(log_factor.parse().unwrap_or(10), Ordering::Relaxed);
    DECAY_TIME.store(decay_time.parse().unwrap_or(1), Ordering::Relaxed);
}

/// An LFU policy is set: `access_ms` holds LFU stamps.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Redis's LFUGetTimeInMinutes.
fn minutes(now_ms: i64) -> u64 {
    (now_ms.max(0) as u64 / 60_000) & 0xFFFF
}

/// A stamp with `counter`, decremented last at `now_ms`.
pub fn stamp(now_ms: i64, counter: u8) -> i64 {
    ((minutes(now_ms) << 8) | counter as u64) as i64
}

/// What a new entry's `access_ms` starts at: the time, or under LFU a
/// fresh counter (Redis's createObject).
#[inline]
pub fn fresh(now_ms: i64) -> i64 {
    if on() {
        stamp(now_ms, INIT_VAL)
    } else {
        now_ms
    }
}

/// An access: the time, or under LFU Redis's updateLFU of `old`.
#[inline]
pub fn touched(old: i64, now_ms: i64) -> i64 {
    if on() {
        stamp(now_ms, log_incr(counter(old, now_ms)))
    } else {
        now_ms
    }
}

/// Redis's LFUDecrAndReturn: the counter of `stamp`, less one per
/// `lfu-decay-time` minutes since its last decrement.
pub fn counter(stamp: i64, now_ms: i64) -> u8 {
    let (ldt, counter) = ((stamp as u64 >> 8) & 0xFFFF, stamp as u64 & 0xFF);
    let now = minutes(now_ms);
    let elapsed = if now >= ldt { now - ldt } else { 65535 - ldt + now };
    let decay = DECAY_TIME.load(Ordering::Relaxed) as u64;
    let periods = elapsed.checked_div(decay).unwrap_or(0);
    counter.saturating_sub(periods) as u8
}

/// What the RDB keeps of an entry's stamp, as Redis's rdbSaveKeyValuePair
/// writes it: under an LRU policy the idle time in seconds (`IDLE`),
/// under an LFU one the decayed counter (`FREQ`), under the others nothing.
pub enum Saved {
    Nothing,
    Idle(u64),
    Freq(u8),
}

/// The `Saved` form of `stamp` at `now_ms`.
pub fn saved(stamp: i64, now_ms: i64) -> Saved {
    if on() {
        Saved::Freq(counter(stamp, now_ms))
    } else if LRU.load(Ordering::Relaxed) {
        Saved::Idle(now_ms.saturating_sub(stamp).max(0) as u64 / 1000)
    } else {
        Saved::Nothing
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(0x9E37_79B9_7F4A_7C15 ^ crate::util::unix_us() as u64);
}

/// Redis's LFULogIncr: +1 with probability 1 / ((counter - 5) * factor + 1).
fn log_incr(counter: u8) -> u8 {
    if counter == 255 {
        return 255;
    }
    let r = RNG.with(|s| {
        let mut x = s.get();
        let v = super::keyspace::xorshift(&mut x);
        s.set(x);
        (v >> 11) as f64 / (1u64 << 53) as f64
    });
    let base = (counter as f64 - INIT_VAL as f64).max(0.0);
    let p = 1.0 / (base * LOG_FACTOR.load(Ordering::Relaxed) as f64 + 1.0);
    if r < p {
        counter + 1
    } else {
        counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_decay_by_the_minute_and_grow_logarithmically() {
        let now = 1_700_000_000_000;
        assert_eq!(counter(stamp(now, 100), now), 100);
        // lfu-decay-time 1: one less per minute gone.
        assert_eq!(counter(stamp(now, 100), now + 3 * 60_000 + 5), 97);
        assert_eq!(counter(stamp(now, 2), now + 10 * 60_000), 0);
        // Below LFU_INIT_VAL every access counts.
        assert_eq!(log_incr(0), 1);
        assert_eq!(log_incr(255), 255);
        // At 100 with factor 10 an increment takes ~950 accesses.
        let mut c = 100;
        for _ in 0..100 {
            c = log_incr(c);
        }
        assert!(c <= 102, "{c}");
    }
}
