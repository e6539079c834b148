//! One word for "something unusual is in force" (issue 14): the states
//! that refuse, hold back or redirect a command before it runs (Redis's
//! processCommand gates: MISCONF after a failed BGSAVE, an AOF write or
//! fsync error, the replication gates, loading, CLIENT PAUSE, maxmemory,
//! MONITOR). Each had its own relaxed load and test on every command
//! (about ten, with the write test they need); now `dispatch` loads this
//! word once and, while it is zero (always, on a server in its ordinary
//! state), skips them all.
//!
//! The word holds one 8-bit counter per reason: how many servers of this
//! process are in that state (one, in the binary; lib tests build several).
//! Every place that changes a gated state swaps the state's own atomic and
//! reports the transition here (`store_*`), so the counter moves only on
//! a change from "off" to "on" or back, and can neither drift nor go
//! negative. A set counter only sends commands through the full checks,
//! which read the states themselves: with several servers in one process
//! one server's state costs the others the slow path, never a wrong
//! answer. Visibility is as before: the state is stored, then the word
//! changed, before the command that caused it replies; a reader of the
//! word sees either the old state or the new one, as a relaxed load of
//! the state's own atomic did.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};

static ALERTS: AtomicU64 = AtomicU64::new(0);

/// The gated states, each an 8-bit counter of `ALERTS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `stop-writes-on-bgsave-error` after a failed save (`Persistence::writes_blocked`).
    Misconf = 0,
    /// The AOF's last write failed (`Sink::write_errno`).
    AofWrite = 1,
    /// The AOF's last fsync failed (`Sink::fsync_errno`).
    AofFsync = 2,
    /// NOREPLICAS / READONLY / MASTERDOWN (`replication::Master::gate`).
    Replication = 3,
    /// Start-up loading or DEBUG LOADAOF (`Server::loading`).
    Loading = 4,
    /// CLIENT PAUSE set (`Server::pause_end_ms` not 0; whether it has
    /// ended is the full check's question).
    Pause = 5,
    /// A maxmemory limit (`shard::memory::Memory::limit`).
    Maxmemory = 6,
    /// Some client monitors (`Server::monitors`).
    Monitor = 7,
}

/// The reasons checked before a command runs, in `dispatch`'s first block.
pub const BEFORE_RUN: u64 = mask(Reason::Misconf) | mask(Reason::AofWrite) | mask(Reason::AofFsync) | mask(Reason::Replication) | mask(Reason::Loading);

/// The bits of `reason`'s counter in the word.
pub const fn mask(reason: Reason) -> u64 {
    0xFF << (8 * reason as u32)
}

/// The word: zero while no gated state is in force anywhere in the process.
#[inline(always)]
pub fn alerts() -> u64 {
    ALERTS.load(Ordering::Relaxed)
}

/// Records that `reason`'s state went from `was` to `now` (on or off).
#[inline]
pub fn note(reason: Reason, was: bool, now: bool) {
    if was != now {
        let one = 1u64 << (8 * reason as u32);
        if now {
            ALERTS.fetch_add(one, Ordering::SeqCst);
        } else {
            ALERTS.fetch_sub(one, Ordering::SeqCst);
        }
    }
}

pub fn store_bool(a: &AtomicBool, v: bool, order: Ordering, reason: Reason) {
    note(reason, a.swap(v, order), v);
}

pub fn store_i32(a: &AtomicI32, v: i32, order: Ordering, reason: Reason) {
    note(reason, a.swap(v, order) != 0, v != 0);
}

pub fn store_i64(a: &AtomicI64, v: i64, order: Ordering, reason: Reason) {
    note(reason, a.swap(v, order) != 0, v != 0);
}

pub fn store_u64(a: &AtomicU64, v: u64, order: Ordering, reason: Reason) {
    note(reason, a.swap(v, order) != 0, v != 0);
}

pub fn store_u8(a: &AtomicU8, v: u8, order: Ordering, reason: Reason) {
    note(reason, a.swap(v, order) != 0, v != 0);
}

/// A counter of `reason`'s state (monitors) moved by `delta` (+1 / -1).
pub fn add_usize(a: &AtomicUsize, delta: isize, reason: Reason) {
    let was = if delta >= 0 { a.fetch_add(delta as usize, Ordering::AcqRel) } else { a.fetch_sub(delta.unsigned_abs(), Ordering::AcqRel) };
    let now = was.wrapping_add_signed(delta);
    note(reason, was != 0, now != 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transitions move the reason's counter, repeats do not; other
    /// reasons' bits stay as they were (other tests of this process may
    /// hold states on: only this test's own deltas are compared).
    #[test]
    fn counters_move_on_transitions_only() {
        let a = AtomicI32::new(0);
        let counter = |w: u64| (w & mask(Reason::AofFsync)) >> 16;
        let before = counter(alerts());
        store_i32(&a, 5, Ordering::Relaxed, Reason::AofFsync);
        store_i32(&a, 7, Ordering::Relaxed, Reason::AofFsync);
        assert!(counter(alerts()) >= 1);
        store_i32(&a, 0, Ordering::Relaxed, Reason::AofFsync);
        store_i32(&a, 0, Ordering::Relaxed, Reason::AofFsync);
        let m = AtomicUsize::new(0);
        add_usize(&m, 1, Reason::AofFsync);
        add_usize(&m, 1, Reason::AofFsync);
        add_usize(&m, -1, Reason::AofFsync);
        assert_eq!(m.load(Ordering::Relaxed), 1);
        add_usize(&m, -1, Reason::AofFsync);
        // Other tests run in parallel and may move the counter; with none
        // of them using AofFsync's counter it is back where it was.
        assert_eq!(counter(alerts()), before);
        assert_eq!(mask(Reason::Monitor), 0xFF << 56);
        assert_eq!(BEFORE_RUN, 0xFF_FFFF_FFFF);
    }
}
