//! Holding shards: the one mechanism for everything that must see several
//! shards at one instant (multi-shard MSET/MGET/DEL/RENAME, KEYS, DBSIZE,
//! INFO, CONFIG SET, FLUSHALL, and the BGSAVE fork).
//!
//! The protocol:
//! 1. The coordinator (a shard thread) takes the global hold lock with
//!    `try_lock`; if another coordinator has it, the command is deferred and
//!    retried on the next loop turn, and meanwhile this thread keeps serving
//!    (and can itself be held), so two coordinators never wait on each other.
//! 2. It marks each target `HOLD_REQUESTED` and rings its doorbell.
//! 3. A target notices the flag at a quiescent point (between commands, never
//!    inside one), publishes `PARKED` (Release) and parks its thread.
//! 4. Once every target is parked (Acquire), the coordinator runs the command
//!    over all their states, as if single threaded.
//! 5. It publishes `RUNNING` (Release) and unparks them, then drops the lock.
//!
//! The Release/Acquire pairs in 3-5 hand the state over whole: while held, a
//! shard's thread does not touch its state, so there is one owner at a time.
//! Ordering per connection: a connection with forwarded commands still in
//! flight does not start a held command until their replies are back.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::ShardState;

pub const RUNNING: u32 = 0;
pub const HOLD_REQUESTED: u32 = 1;
pub const PARKED: u32 = 2;

pub struct HoldSlot {
    pub state: AtomicU32,
    pub thread: OnceLock<Thread>,
    pub shard: AtomicPtr<ShardState>,
}

pub struct HoldTable {
    pub slots: Vec<HoldSlot>,
    lock: Mutex<()>,
    coordinator: AtomicUsize,
    /// Held-command statistics: how many holds were taken.
    pub holds_total: std::sync::atomic::AtomicU64,
    /// How long the last hold waited for its targets to park (microseconds).
    pub last_wait_usec: std::sync::atomic::AtomicU64,
}

/// A set of shards, at most 128.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct ShardMask(pub u128);

impl ShardMask {
    pub fn single(i: usize) -> ShardMask {
        ShardMask(1u128 << i)
    }
    pub fn all(n: usize) -> ShardMask {
        if n >= 128 {
            ShardMask(u128::MAX)
        } else {
            ShardMask((1u128 << n) - 1)
        }
    }
    pub fn insert(&mut self, i: usize) {
        self.0 |= 1u128 << i;
    }
    pub fn contains(&self, i: usize) -> bool {
        self.0 & (1u128 << i) != 0
    }
    pub fn count(&self) -> u32 {
        self.0.count_ones()
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// The only member, if there is exactly one.
    pub fn only(&self) -> Option<usize> {
        if self.0.count_ones() == 1 {
            Some(self.0.trailing_zeros() as usize)
        } else {
            None
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = usize> {
        let bits = self.0;
        (0..128).filter(move |i| bits & (1u128 << i) != 0)
    }
}

/// The states a command may touch: raw pointers indexed by shard id; a
/// pointer is non-null only for shards the executing thread owns or holds.
pub struct ShardSet {
    ptrs: Vec<*mut ShardState>,
}

impl ShardSet {
    pub fn new(n: usize) -> ShardSet {
        ShardSet { ptrs: vec![std::ptr::null_mut(); n] }
    }
    /// Makes shard `i` reachable through the set (null: unreachable).
    ///
    /// # Safety
    /// A non-null `p` must point to a live `ShardState` that nothing but
    /// this set touches until it is replaced by null: this thread's own shard,
    /// or a shard parked by the hold protocol and not yet released.
    pub unsafe fn set(&mut self, i: usize, p: *mut ShardState) {
        self.ptrs[i] = p;
    }
    pub fn len(&self) -> usize {
        self.ptrs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ptrs.is_empty()
    }
    pub fn has(&self, i: usize) -> bool {
        !self.ptrs[i].is_null()
    }
    /// The state of shard `i`. Panics if this command does not own or hold it:
    /// that would be a routing bug, never something to paper over.
    #[inline]
    pub fn get(&self, i: usize) -> &ShardState {
        let p = self.ptrs[i];
        assert!(!p.is_null(), "shard {i} touched without being owned or held");
        // SAFETY: a non-null pointer is this thread's own shard or a shard
        // parked by the hold protocol until we release it (then nothing on
        // its thread touches it); every reference to it is derived from this
        // set, and `&self` here excludes the `&mut self` of the accessors
        // below for as long as the returned borrow lives.
        unsafe { &*p }
    }
    /// Shard `i`, mutably (see `get`).
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> &mut ShardState {
        let p = self.ptrs[i];
        assert!(!p.is_null(), "shard {i} touched without being owned or held");
        // SAFETY: as in `get`; `&mut self` makes this the only reference
        // derived from the set while the returned borrow lives.
        unsafe { &mut *p }
    }
    /// The shard owning `key`, mutably.
    #[inline]
    pub fn of(&mut self, key: &[u8]) -> &mut ShardState {
        let i = super::slot::key_shard(key, self.ptrs.len());
        self.get_mut(i)
    }
    /// Shards `a` and `b` at once: one `&mut` when they are the same shard,
    /// two when they differ, never two to one shard.
    pub fn pair_mut(&mut self, a: usize, b: usize) -> Pair<'_, ShardState> {
        if a == b {
            return Pair::One(self.get_mut(a));
        }
        let (pa, pb) = (self.ptrs[a], self.ptrs[b]);
        assert!(!pa.is_null() && !pb.is_null(), "shards {a} and {b} touched without being owned or held");
        // SAFETY: as in `get`, and `a != b`: the two states are distinct
        // objects, so the two `&mut` do not alias.
        unsafe { Pair::Two(&mut *pa, &mut *pb) }
    }
    /// The raw pointers of every shard in the set, for the fork child, which
    /// reads them after the fork, in its own copy of the address space.
    pub fn raw_ptrs(&mut self) -> &[*mut ShardState] {
        &self.ptrs
    }
}

/// One or two distinct objects borrowed mutably at once (two shards, two
/// databases): `One` when both names denote the same object.
pub enum Pair<'a, T> {
    One(&'a mut T),
    Two(&'a mut T, &'a mut T),
}

impl<'a, T> Pair<'a, T> {
    /// Elements `a` and `b` of `items`, in that order (`One` when `a == b`).
    pub fn of_slice(items: &'a mut [T], a: usize, b: usize) -> Pair<'a, T> {
        if a == b {
            return Pair::One(&mut items[a]);
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let (left, right) = items.split_at_mut(hi);
        let (low, high) = (&mut left[lo], &mut right[0]);
        if a < b {
            Pair::Two(low, high)
        } else {
            Pair::Two(high, low)
        }
    }
}

impl HoldTable {
    pub fn new(n: usize) -> HoldTable {
        HoldTable {
            slots: (0..n).map(|_| HoldSlot { state: AtomicU32::new(RUNNING), thread: OnceLock::new(), shard: AtomicPtr::new(std::ptr::null_mut()) }).collect(),
            lock: Mutex::new(()),
            coordinator: AtomicUsize::new(usize::MAX),
            holds_total: Default::default(),
            last_wait_usec: Default::default(),
        }
    }

    /// Registers the calling thread as shard `i`'s thread, with its state.
    pub fn register(&self, i: usize, state: *mut ShardState) {
        let _ = self.slots[i].thread.set(std::thread::current());
        self.slots[i].shard.store(state, Ordering::Release);
    }

    /// Called by shard `me` at quiescent points: parks while held.
    #[inline]
    pub fn check(&self, me: usize) -> bool {
        if self.slots[me].state.load(Ordering::Acquire) == HOLD_REQUESTED {
            self.park(me);
            return true;
        }
        false
    }

    #[cold]
    fn park(&self, me: usize) {
        let slot = &self.slots[me];
        // A coordinator may release us and a new one (or the same) request us
        // again before this thread has even woken: every HOLD_REQUESTED seen
        // here is acknowledged again, or the new coordinator would wait for
        // a PARKED that never comes.
        loop {
            match slot.state.load(Ordering::Acquire) {
                RUNNING => return,
                HOLD_REQUESTED => {
                    slot.state.store(PARKED, Ordering::Release);
                    let coord = self.coordinator.load(Ordering::Acquire);
                    if let Some(t) = self.slots.get(coord).and_then(|s| s.thread.get()) {
                        t.unpark();
                    }
                }
                _ => std::thread::park(),
            }
        }
    }

    /// Tries to become the coordinator and hold `targets` (never `me`).
    /// `ring` is called for each target to wake it if it sleeps in its ring.
    pub fn try_hold(&self, me: usize, targets: ShardMask, mut ring: impl FnMut(usize)) -> Option<HoldGuard<'_>> {
        let guard = match self.lock.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::WouldBlock) => return None,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        self.coordinator.store(me, Ordering::Release);
        for t in targets.iter() {
            debug_assert_ne!(t, me);
            self.slots[t].state.store(HOLD_REQUESTED, Ordering::Release);
            ring(t);
        }
        let start = Instant::now();
        for t in targets.iter() {
            let mut spins = 0u32;
            while self.slots[t].state.load(Ordering::Acquire) != PARKED {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::park_timeout(Duration::from_micros(200));
                }
            }
        }
        self.holds_total.fetch_add(1, Ordering::Relaxed);
        self.last_wait_usec.store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        Some(HoldGuard { table: self, targets, _lock: guard, wait: start.elapsed() })
    }

    /// Pointer to shard `i`'s state (valid only while it is held or owned).
    pub fn shard_ptr(&self, i: usize) -> *mut ShardState {
        self.slots[i].shard.load(Ordering::Acquire)
    }
}

pub struct HoldGuard<'a> {
    table: &'a HoldTable,
    targets: ShardMask,
    _lock: MutexGuard<'a, ()>,
    /// How long the targets took to park.
    pub wait: Duration,
}

impl HoldGuard<'_> {
    pub fn targets(&self) -> ShardMask {
        self.targets
    }
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        for t in self.targets.iter() {
            let slot = &self.table.slots[t];
            slot.state.store(RUNNING, Ordering::Release);
            if let Some(th) = slot.thread.get() {
                th.unpark();
            }
        }
        self.table.coordinator.store(usize::MAX, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_of_slice_keeps_the_order_and_never_aliases() {
        let mut v = [10, 20, 30, 40];
        match Pair::of_slice(&mut v, 3, 1) {
            Pair::Two(a, b) => {
                assert_eq!((*a, *b), (40, 20));
                *a += 1;
                *b += 2;
            }
            Pair::One(_) => panic!("distinct indexes gave one"),
        }
        match Pair::of_slice(&mut v, 0, 2) {
            Pair::Two(a, b) => assert_eq!((*a, *b), (10, 30)),
            Pair::One(_) => panic!("distinct indexes gave one"),
        }
        match Pair::of_slice(&mut v, 2, 2) {
            Pair::One(a) => assert_eq!(*a, 30),
            Pair::Two(..) => panic!("one index gave two"),
        }
        assert_eq!(v, [10, 22, 30, 41]);
    }

    #[test]
    fn shard_set_pairs_distinct_shards_and_refuses_missing_ones() {
        let mut states: Vec<ShardState> = (0..3).map(|i| ShardState::new(i, 3, crate::config::Config::default())).collect();
        let mut set = ShardSet::new(3);
        for (i, st) in states.iter_mut().enumerate().take(2) {
            // SAFETY: `states` outlives `set` in this test and is reached only through it.
            unsafe { set.set(i, st) };
        }
        match set.pair_mut(1, 0) {
            Pair::Two(a, b) => {
                assert_eq!((a.id, b.id), (1, 0));
                a.dirty = 7;
            }
            Pair::One(_) => panic!("distinct shards gave one"),
        }
        assert!(matches!(set.pair_mut(1, 1), Pair::One(s) if s.id == 1 && s.dirty == 7));
        assert!(!set.has(2));
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            set.pair_mut(0, 2);
        }))
        .is_err());
    }
}
