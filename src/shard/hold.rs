//! Holding shards: the one mechanism for everything that must see several
//! shards at one instant (multi-shard COPY/LMOVE, most MULTI/EXEC fallbacks, KEYS, DBSIZE,
//! INFO, CONFIG SET, FLUSHALL, and the BGSAVE/BGREWRITEAOF fork), without a
//! global lock: VLL-style intent queues (Dragonfly's "very lightweight
//! locking", per shard rather than per key).
//!
//! # The protocol
//!
//! 1. **Enqueue.** A coordinator (a shard thread, or the start-up loader, an
//!    `EXTERNAL` thread without a shard) that needs the shards of `mask`
//!    (its own shard included) locks their intent queues, each behind its
//!    own small mutex, in ascending shard order, draws a number from one
//!    global sequence while it holds all of them, pushes `(seq,
//!    coordinator)` on each, and unlocks. The intent stays queued until the
//!    operation has run or its owner withdraws it; a connection that defers
//!    keeps its place across its retries.
//! 2. **Park.** Each shard publishes the head of its own queue (`head`,
//!    and `park_for` when the head belongs to another thread). At quiescent
//!    points (between commands, never inside one) a shard whose head belongs
//!    to another coordinator publishes `parked_for = seq` (Release), wakes
//!    that coordinator and parks its thread (polling for `YIELD_WINDOW`
//!    before it sleeps on the futex); it parks for nothing else, and
//!    once the head changes it re-checks (parks for the new head, or runs).
//!    A shard asleep in its ring is not woken: the coordinator takes it as
//!    it sleeps (`held_for`), and if it wakes meanwhile its first act,
//!    `check`, parks it.
//! 3. **Run.** A coordinator runs an intent only when the intent heads its
//!    own shard's queue and every target has published `parked_for == seq`
//!    (Acquire) or is asleep with `seq` at its head: it then runs the
//!    operation over all their states on its own thread, as if single
//!    threaded. Until then it keeps serving its loop (its connection is
//!    deferred and retried) and parks for the earlier intents of others
//!    that head its own queue.
//! 4. **Release.** It removes the intent from every queue (each new head is
//!    published under that queue's mutex, Release) and unparks the targets,
//!    which re-check their heads.
//!
//! The Release/Acquire pairs of 2-4 hand a state over whole: while parked a
//! shard's thread touches nothing of its state, so there is one owner at a
//! time. A new owner that follows another without the shard running in
//! between is ordered after it through the queue mutex and `parked_for`.
//!
//! # Why the order is total and consistent
//!
//! Two intents that share a shard both lock that shard's queue while they
//! draw their numbers and push, so the one that locked it first also drew
//! the smaller number and was pushed first: every queue is sorted by
//! sequence number, and all queues agree on the relative order of any two
//! intents. Locks are always taken in ascending shard order, so enqueuers
//! never wait on each other in a cycle (and each holds them for a push).
//!
//! # Why it cannot deadlock
//!
//! Take the pending intent with the smallest number, `m`. Every intent
//! ahead of it in any queue would have a smaller number, so `m` heads every
//! queue it is in. Each target of `m` therefore is taken asleep or parks for
//! `m` at its next quiescent point: its thread never blocks anywhere else (a coordinator
//! whose intent is not ready returns to its loop; one that waits in
//! `wait_ready` does so only while its intent heads its own queue, which `m`
//! would head instead if that shard were one of its targets). `m`'s
//! coordinator is not parked (`m` heads its own queue, and a shard parks only
//! for the head of its own queue) and retries every loop turn, so it sees
//! every target parked and runs `m`, which ends in bounded time. Then the
//! next smallest is the smallest, and so on: every intent runs. This is why
//! the coordinator's own shard is in the queue too: without it, a later
//! intent of another coordinator heading this shard's queue would park the
//! thread that must run the earlier one.
//!
//! Operations over disjoint shard sets share no queue and run at once. A
//! single-shard command never takes an intent; it waits only while its shard
//! is parked for an intent at the head of that shard's queue, or (below)
//! while one of its keys is marked by a hop.
//!
//! Ordering per connection: a connection with forwarded commands still in
//! flight does not start a held command until their replies are back.
//!
//! # Hops: multi-shard commands that park nobody
//!
//! MGET, MSET, DEL, UNLINK, EXISTS, TOUCH and WATCH over several shards (and
//! an EXEC of single-shard commands) do not hold: their coordinator marks their keys'
//! hash slots (`mark`: per-slot counters, the per-key intent marks of VLL
//! at slot grain), queues a *hop* intent (`enqueue_hop`: entries with
//! coordinator `HOP`, numbered from the same sequence under the same queue
//! locks, so the one total order covers hops and holds) on the shards with
//! keys, and sends each its part (`network::hop`). A hop at the head of a
//! queue parks nobody (`park_for` stays 0): the shard runs its part itself
//! when the intent heads its queue and the part has arrived, lowers its
//! marks and takes the entry off (`hop_done`). A new head that is a hop is
//! announced by a doorbell from whoever removed the old one (`remove`).
//!
//! Atomicity: every shard runs the intents it shares with another in
//! sequence order, so a hop or hold never sees part of another. A
//! single-shard command on a marked key waits until the owner's part
//! lowers the mark (a deferred connection or a postponed forwarded request:
//! nobody blocks), so no client sees one key of a hop written and then
//! another of its keys unwritten; on unmarked keys it runs at once, however
//! many intents are queued.
//!
//! Why hops keep the protocol free of deadlock: the argument above needs
//! that no thread blocks except to park for the head of its own queue. A
//! hop's part waits only for its intent to head the queue and for its
//! message (sent right after the enqueue, never held back); nothing parks
//! for a hop, and what waits for a mark (a connection, a forwarded request)
//! waits in the loop, which goes on serving. Take again the pending intent
//! with the smallest number, `m`: it heads every queue it is in. If it is
//! a hop, each of its shards runs its part at its next loop turn after the
//! part arrives (none is parked: a shard parks only for its own head, and
//! `m` parks nobody), so `m` completes; if it is a hold, the argument above
//! applies unchanged. Marks cannot close a cycle either: a mark is lowered
//! by a part, a part depends only on earlier intents, and a command run
//! under a hold checks no mark (every hop queued before the hold has run on
//! the held shards; one queued after it cannot have been seen by the
//! commands the hold runs, which arrived before the hold queued).
//!
//! With the write streams on, a write hop's coordinator is in its intent
//! too and runs its part last, after every other part is back (it carries
//! the hop's replay unit, `exec::propagate`, "Cuts: a hop"): its intent
//! heads its queue meanwhile, holding back later intents there. That adds
//! no cycle: the other parts of `m` depend only on `m` heading their queues
//! (and on earlier intents), so they run, come back, and the carrier's part
//! then runs at its next loop turn.
//!
//! A *two-round* hop (MSETNX, RENAME, SMOVE, an EXEC with WATCH: `network::rounds`) keeps
//! its intent at the head of each of its queues between its rounds, its
//! coordinator always among them. That adds no cycle either: when it is
//! `m`, every shard runs its round-1 part, the coordinator (not parked: `m`
//! heads its own queue) sends round 2 once the answers are back, and every
//! shard runs it, `m` still heading its queue. Chained over two shards (the
//! other shard's one part sent only once the coordinator's round 1 ran), the
//! other queue waits for that part meanwhile: it depends only on `m`
//! heading the coordinator's queue, so it comes.
//!
//! # Passing: two-round hops over disjoint keys do not wait for each other
//!
//! A two-round hop holds the head of its queues across a cross-thread
//! exchange (round 1, its answer, round 2; or the chain's part and its
//! answer), so with heads alone every later hop on those shards waits a
//! whole exchange: two-round hops over the same two shards ran one at a
//! time. So a two-round hop's *first* part on a shard (`Part::round` 1, or
//! a chain's round 3), or the part of a one-round MSET, MGET, DEL, UNLINK,
//! EXISTS, TOUCH, WATCH or EXEC (an EXEC's part carries the slot list of its
//! commands' keys, as a first round's does: `exec_command_parts` in
//! `network::hop`),
//! may run before its intent heads the queue when
//! `may_pass` holds: every intent ahead of it there is a hop (never a
//! hold) of another connection (never its own: below), and none of its key
//! slots there carries a mark but its own. Its
//! last round on that shard then runs whenever it arrives
//! (`network::hop`, `Hops::passed`), and its entry leaves the queue from
//! wherever it is (`hop_done`). Only while the shard's write stream is off
//! and the hop has no cut (the AOF's replay units keep the sequence order).
//!
//! Atomicity still holds: two intents that share a key slot on a shard run
//! there in sequence order. The earlier one raised its marks before it was
//! queued, so before the later one was (the queue's mutex orders them), and
//! lowers them only when its last part there has run: until then the later
//! one sees a mark not its own and waits for its turn. A later intent that
//! shares no slot with any earlier one still pending commutes with them, so
//! every reader (a single-key command waits for marks as before; a hop or
//! a hold that reads keys of both is ordered with each by the rule above)
//! sees the same as in sequence order: all of a RENAME, SMOVE or EXEC, or
//! none. A hold is never passed (its commands check no mark), and a hold
//! behind a passer waits for it as for any intent ahead of it.
//!
//! One connection's commands stay in its order. Redis runs a connection's
//! commands one after the other, so a client that pipelines `RENAME a b`
//! then `MSET c 1 d 1` (disjoint keys, the same shards) must never have the
//! MSET applied on a shard before the RENAME. So a hop intent carries its
//! connection's client id in its queue entries (`enqueue_hop`), and a part
//! never passes an entry of its own connection: it waits until that one
//! has left the queue (its last part there ran), then may pass the others
//! again. This costs nothing where passing pays (many connections; one
//! compare per entry walked), and a connection's hops already go out in
//! its order, so its intents are numbered in it. (Readers were safe even
//! without this: a key of the earlier hop is marked until its part ran, so
//! who saw the later one's effect and then reads it waits for it; what
//! differed was the order of their effects on each shard, which keyspace
//! events, blocked clients and tracking show.) The rest of a connection's
//! order (single-key commands after a hop, events in command order) is
//! kept by its shard (`network::hop`, "Order per connection").
//!
//! No deadlock: passing only lets a part run earlier; nothing waits more
//! than before. A passer waits only for intents ahead of it (for its turn
//! on a shard where it cannot pass), never the reverse: an earlier intent
//! checks no mark of a later one (the head runs whatever is marked, and a
//! passer's own check only counts marks), so every wait still points from
//! a later intent to an earlier one, and the smallest pending intent heads
//! every queue it is in and completes as above.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::ShardState;

/// How often a parked shard thread looks whether it should serve its
/// clients (a busy script's -BUSY) besides being woken by a head change.
const PARKED_POLL: Duration = Duration::from_millis(10);

/// How long a shard thread that parked for a hold, and a coordinator that
/// waits for its targets to park, poll for the other side (yielding the
/// core between looks) before they sleep on the futex. A held command runs
/// for a few microseconds, so a target that polls this long sees its
/// release without a futex wait and wake-up, and a coordinator sees its
/// targets park without one; and where the two threads share a core (the
/// cross-shard benchmark's server on one core) the yield hands the core to
/// the other side at once, where a futex wait would switch twice. The
/// profile of the held path before (`perf/RESULTS.md`, "The held path:
/// yield windows ..."): futex waits and the task switches around them were
/// ~20% of the server's CPU over two shards on one core, ~2 us a request.
const YIELD_WINDOW: Duration = Duration::from_micros(20);

/// The most key slots a hop part may name and still pass the intents ahead
/// of it (`HoldTable::may_pass`): the check is quadratic in them.
pub const PASS_SLOTS_MAX: usize = 32;
/// The most intents a hop part may pass (more ahead: it waits for its
/// turn), which bounds the queue walk.
pub const PASS_AHEAD_MAX: usize = 64;

/// The coordinator id of a thread that owns no shard (the start-up loader).
pub const EXTERNAL: usize = usize::MAX;
/// The coordinator id of a hop intent's entries (see the module doc, "Hops"):
/// each shard runs its own part of it; nobody parks for it.
pub const HOP: usize = usize::MAX - 1;

pub struct HoldSlot {
    pub thread: OnceLock<Thread>,
    pub shard: AtomicPtr<ShardState>,
    /// The intents involving this shard, `(seq, coordinator, client)`, in
    /// sequence order; `client` is a hop's connection (its client id, see
    /// "Passing"), 0 for a hold.
    queue: Mutex<VecDeque<(u64, usize, u64)>>,
    /// The number of the intent heading `queue` (0: empty). Written under `queue`.
    head: AtomicU64,
    /// `head` when its coordinator is another thread, which this shard must
    /// park for; 0 otherwise. Written under `queue`. The one load per
    /// quiescent point on the hot path (`check`).
    park_for: AtomicU64,
    /// The intent this shard's thread is parked for (0: running).
    parked_for: AtomicU64,
    /// Hop entries in `queue` whose part has not run yet: while 0 (the
    /// common case, one load) no key of this shard is marked and the
    /// single-shard paths check nothing.
    hops: AtomicU32,
}

pub struct HoldTable {
    pub slots: Vec<HoldSlot>,
    /// The global sequence (drawn only while the queues involved are locked).
    next_seq: AtomicU64,
    /// Held-command statistics: how many holds ran.
    pub holds_total: AtomicU64,
    /// How long the last hold waited from its enqueue until its targets were
    /// parked (microseconds): the fork barrier's wait when it was a fork.
    pub last_wait_usec: AtomicU64,
    /// Per hash slot: the keys of pending hop intents in that slot (the
    /// per-key intent marks, by slot: a slot belongs to one shard, so each
    /// counter is raised by enqueuers and lowered by its shard's thread).
    marks: Box<[AtomicU32]>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    pub fn remove(&mut self, i: usize) {
        self.0 &= !(1u128 << i);
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
    #[inline]
    pub fn only(&self) -> Option<usize> {
        // One bit set (no popcount: a u128 count_ones is a software
        // popcount on the baseline x86-64 target, ~16 instructions).
        if self.0 != 0 && self.0 & (self.0 - 1) == 0 {
            Some(self.0.trailing_zeros() as usize)
        } else {
            None
        }
    }
    /// The members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(i)
        })
    }
    /// Whether every member of `self` is in `other`.
    pub fn is_subset(&self, other: ShardMask) -> bool {
        self.0 & !other.0 == 0
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
    /// Always inlined (as `get_mut`): in the network loop's inlined command
    /// path LLVM made it a call (~9 instructions a request at -P 1).
    #[inline(always)]
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
    #[inline(always)]
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
            slots: (0..n)
                .map(|_| HoldSlot {
                    thread: OnceLock::new(),
                    shard: AtomicPtr::new(std::ptr::null_mut()),
                    queue: Mutex::new(VecDeque::new()),
                    head: AtomicU64::new(0),
                    park_for: AtomicU64::new(0),
                    parked_for: AtomicU64::new(0),
                    hops: AtomicU32::new(0),
                })
                .collect(),
            next_seq: AtomicU64::new(1),
            holds_total: Default::default(),
            last_wait_usec: Default::default(),
            marks: (0..super::slot::SLOT_COUNT).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Registers the calling thread as shard `i`'s thread, with its state.
    pub fn register(&self, i: usize, state: *mut ShardState) {
        let _ = self.slots[i].thread.set(std::thread::current());
        self.slots[i].shard.store(state, Ordering::Release);
    }

    /// Called by shard `me` at quiescent points: parks while the head of its
    /// queue belongs to another coordinator. Returns whether it parked.
    #[inline]
    pub fn check(&self, me: usize) -> bool {
        // SeqCst (a plain load on x86): a shard waking from its ring reads
        // here the head a coordinator saw when it found it asleep (`ready`).
        if self.slots[me].park_for.load(Ordering::SeqCst) != 0 {
            self.park(me);
            return true;
        }
        false
    }

    /// Whether shard `me` must park (its queue's head is another's intent).
    #[inline]
    pub fn must_park(&self, me: usize) -> bool {
        self.slots[me].park_for.load(Ordering::SeqCst) != 0
    }

    #[cold]
    fn park(&self, me: usize) {
        self.park_with(me, None);
    }

    /// `check` for a shard thread that may serve its clients while parked:
    /// parked, it calls `serve` about every millisecond while `serve`
    /// returns true (it served: a busy script holds the shard, see
    /// `network::script`), and re-checks its head at least every
    /// `PARKED_POLL` otherwise. `serve` must not touch the shard's state.
    #[cold]
    pub fn park_serving(&self, me: usize, serve: &mut dyn FnMut() -> bool) {
        self.park_with(me, Some(serve));
    }

    fn park_with(&self, me: usize, mut serve: Option<&mut dyn FnMut() -> bool>) {
        let slot = &self.slots[me];
        // While parked for a new head: when the yield window began.
        let mut polling_since = None;
        loop {
            let h = slot.park_for.load(Ordering::Acquire);
            if h == 0 {
                slot.parked_for.store(0, Ordering::Release);
                return;
            }
            if slot.parked_for.load(Ordering::Relaxed) != h {
                // Everything this thread did to its state happens before the
                // coordinator's Acquire load of this value.
                slot.parked_for.store(h, Ordering::Release);
                let coord = lock(&slot.queue).front().filter(|e| e.0 == h).map(|e| e.1);
                if let Some(t) = coord.and_then(|c| self.slots.get(c)).and_then(|s| s.thread.get()) {
                    t.unpark();
                }
                polling_since = Some(Instant::now());
            }
            // The yield window (`YIELD_WINDOW`): a short hold ends before
            // this thread would have slept; the coordinator's `unpark` then
            // finds nobody on the futex and makes no system call.
            if let Some(since) = polling_since {
                if since.elapsed() < YIELD_WINDOW {
                    std::thread::yield_now();
                    continue;
                }
                polling_since = None;
            }
            match serve.as_mut() {
                // Woken by whoever changes the head (or spuriously: re-checked).
                None => std::thread::park(),
                Some(serve) => {
                    let wait = if serve() { Duration::from_millis(1) } else { PARKED_POLL };
                    std::thread::park_timeout(wait);
                }
            }
        }
    }

    /// Publishes the head of shard `i`'s queue (called with the queue locked).
    fn publish_head(&self, i: usize, q: &VecDeque<(u64, usize, u64)>) {
        let slot = &self.slots[i];
        let (head, park_for) = match q.front() {
            None => (0, 0),
            Some(&(seq, coord, _)) => (seq, if coord == i || coord == HOP { 0 } else { seq }),
        };
        // SeqCst: paired with the shard's `sleeping` announcement and its
        // re-check of `park_for` before it sleeps in its ring.
        slot.head.store(head, Ordering::SeqCst);
        slot.park_for.store(park_for, Ordering::SeqCst);
    }

    /// Enqueues an intent of `coord` (a shard id, or `EXTERNAL`) on every
    /// shard of `mask`, which must include `coord`'s own shard; returns its
    /// number. No allocation beyond a queue's amortized growth.
    pub fn enqueue(&self, coord: usize, mask: ShardMask) -> u64 {
        debug_assert!(coord == EXTERNAL || mask.contains(coord), "a coordinator queues on its own shard too");
        self.enqueue_from(mask.0, coord, 0)
    }

    /// Locks the lowest shard of `bits`, recurses for the rest (so the locks
    /// are taken in ascending order and all held when the number is drawn),
    /// then pushes on the way back, before any of them is released.
    fn enqueue_from(&self, bits: u128, coord: usize, client: u64) -> u64 {
        if bits == 0 {
            return self.next_seq.fetch_add(1, Ordering::Relaxed);
        }
        let i = bits.trailing_zeros() as usize;
        let mut q = lock(&self.slots[i].queue);
        let seq = self.enqueue_from(bits & (bits - 1), coord, client);
        debug_assert!(q.back().is_none_or(|e| e.0 < seq), "queues are sorted by sequence");
        q.push_back((seq, coord, client));
        if coord == HOP {
            self.slots[i].hops.fetch_add(1, Ordering::SeqCst);
        }
        if q.len() == 1 {
            self.publish_head(i, &q);
        }
        seq
    }

    /// Whether intent `seq` of coordinator `me` may run now: it heads `me`'s
    /// own queue and every shard of `targets` (never `me`) is held for it
    /// (`held_for`). `sleeping`: the shards' "asleep in the ring" flags
    /// (`Server::sleeping`; empty: none is ever taken asleep).
    pub fn ready(&self, me: usize, seq: u64, targets: ShardMask, sleeping: &[AtomicBool]) -> bool {
        (me == EXTERNAL || self.slots[me].head.load(Ordering::Acquire) == seq) && targets.iter().all(|t| self.held_for(t, seq, sleeping))
    }

    /// Whether shard `t` is held for intent `seq`: parked for it, or asleep
    /// in its ring while `seq` heads its queue. A sleeping shard is taken as
    /// it sleeps, without a doorbell or a wake-up: it announced the sleep
    /// (`sleeping`, SeqCst store, after its last touch of its state) and,
    /// when it wakes, the first thing it does is `check`, which reads
    /// `park_for` (SeqCst). This thread read `park_for == seq` and then the
    /// flag still set (SeqCst loads, before the shard's store that clears
    /// it), so that `check` reads `seq`, or what the coordinator stores when
    /// it removes `seq` after the operation: the shard parks until then. The
    /// flag's Release/Acquire also hands over what the shard wrote before it.
    fn held_for(&self, t: usize, seq: u64, sleeping: &[AtomicBool]) -> bool {
        let slot = &self.slots[t];
        slot.parked_for.load(Ordering::Acquire) == seq
            || (slot.park_for.load(Ordering::SeqCst) == seq && sleeping.get(t).is_some_and(|s| s.load(Ordering::SeqCst)))
    }

    /// Whether intent `seq` heads `me`'s own queue.
    pub fn heads_own_queue(&self, me: usize, seq: u64) -> bool {
        me == EXTERNAL || self.slots[me].head.load(Ordering::Acquire) == seq
    }

    /// Waits up to `budget` for `ready`. Only while `seq` heads `me`'s own
    /// queue: then no earlier intent involves `me`, so whatever the targets
    /// wait for completes without this thread (see the module doc).
    pub fn wait_ready(&self, me: usize, seq: u64, targets: ShardMask, sleeping: &[AtomicBool], budget: Duration) -> bool {
        if !self.heads_own_queue(me, seq) {
            return false;
        }
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if self.ready(me, seq, targets, sleeping) {
                return true;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                let spent = start.elapsed();
                if spent >= budget {
                    return false;
                }
                if spent < YIELD_WINDOW {
                    // A target on this core runs to its quiescent point
                    // (`YIELD_WINDOW`); one on another core parks meanwhile.
                    std::thread::yield_now();
                } else {
                    // A target that parks for us unparks this thread.
                    std::thread::park_timeout((budget - spent).min(Duration::from_micros(200)));
                }
            }
        }
    }

    /// Removes intent `seq` from every queue of `mask` (it has run, or its
    /// owner withdraws it) and wakes the shards whose head changed. Returns
    /// the shards whose new head is a hop or their own intent: they run it
    /// themselves, so one asleep in its ring needs a doorbell to see it (a
    /// new head that parks its shard needs none: asleep, it is taken asleep).
    pub fn remove(&self, seq: u64, mask: ShardMask) -> ShardMask {
        let mut ring = ShardMask::default();
        for i in mask.iter() {
            let slot = &self.slots[i];
            let changed = {
                let mut q = lock(&slot.queue);
                let Some(pos) = q.iter().position(|e| e.0 == seq) else {
                    continue;
                };
                q.remove(pos);
                if pos == 0 {
                    self.publish_head(i, &q);
                }
                pos == 0
            };
            if changed {
                if slot.park_for.load(Ordering::Relaxed) == 0 && slot.head.load(Ordering::Relaxed) != 0 {
                    ring.insert(i);
                }
                if let Some(t) = slot.thread.get() {
                    t.unpark();
                }
            }
        }
        ring
    }

    /// Enqueues a hop intent on every shard of `mask` (see the module doc,
    /// "Hops") for connection `client` (its client id, never 0); returns
    /// its number. The caller has marked its keys first (`mark`), and sends
    /// each shard its part after this returns.
    pub fn enqueue_hop(&self, mask: ShardMask, client: u64) -> u64 {
        debug_assert!(client != 0, "a hop belongs to a connection");
        self.enqueue_from(mask.0, HOP, client)
    }

    /// Whether a hold (an intent that is not a hop) is ahead of intent
    /// `seq` in the queue of a shard of `mask`: a hold marks no key, so
    /// while one is ahead a key of that shard may change before `seq`'s
    /// part runs there without anyone seeing a mark (a WATCH that answers
    /// before its parts have run needs none ahead: `network::rounds`).
    pub fn holds_ahead(&self, mask: ShardMask, seq: u64) -> bool {
        mask.iter().any(|i| lock(&self.slots[i].queue).iter().take_while(|e| e.0 < seq).any(|e| e.1 != HOP))
    }

    /// The number of the intent heading shard `me`'s queue (0: none).
    #[inline]
    pub fn head(&self, me: usize) -> u64 {
        self.slots[me].head.load(Ordering::SeqCst)
    }

    /// Whether shard `me` has hop parts not yet run (keys of it may be marked).
    #[inline]
    pub fn hops_pending(&self, me: usize) -> bool {
        self.slots[me].hops.load(Ordering::SeqCst) != 0
    }

    /// Shard `me` ran its part of hop intent `seq` (which headed its queue):
    /// the entry goes, the next head is published.
    pub fn hop_done(&self, me: usize, seq: u64) {
        let slot = &self.slots[me];
        let mut q = lock(&slot.queue);
        if let Some(pos) = q.iter().position(|e| e.0 == seq) {
            q.remove(pos);
            slot.hops.fetch_sub(1, Ordering::SeqCst);
            if pos == 0 {
                self.publish_head(me, &q);
            }
        }
    }

    /// Whether hop intent `seq` may run its part on shard `me` before its
    /// turn (see the module doc, "Passing"): every intent ahead of it in
    /// `me`'s queue is a hop of another connection than `client` (its own),
    /// and no hash slot of `slots` (its keys on `me`, one per mark it
    /// raised, a slot as often as it marked it) is marked by another
    /// intent. At most `PASS_SLOTS_MAX` slots and `PASS_AHEAD_MAX` intents
    /// ahead (more: it waits for its turn).
    pub fn may_pass(&self, me: usize, seq: u64, client: u64, slots: impl Iterator<Item = u16> + Clone) -> bool {
        if slots.clone().nth(PASS_SLOTS_MAX).is_some() {
            return false;
        }
        // The marks first (no lock; the common refusal when intents share
        // keys): an earlier intent's marks were raised before it was queued,
        // so before this one was, which this thread has seen.
        let own = slots.clone().all(|s| {
            let own = slots.clone().filter(|&t| t == s).count();
            self.marks[s as usize].load(Ordering::SeqCst) as usize == own
        });
        if !own {
            return false;
        }
        let q = lock(&self.slots[me].queue);
        for &(s, coord, c) in q.iter().take(PASS_AHEAD_MAX + 1) {
            if s == seq {
                return true;
            }
            // A hold, or an earlier command of the same connection: its turn.
            if coord != HOP || c == client {
                return false;
            }
        }
        false
    }

    /// Marks a key of a pending hop intent (by its hash slot).
    #[inline]
    pub fn mark(&self, slot: u16) {
        self.marks[slot as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// Lowers a mark set by `mark` (the owning shard ran its part).
    #[inline]
    pub fn unmark(&self, slot: u16) {
        self.marks[slot as usize].fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether a key of `slot` is under a pending hop intent.
    #[inline]
    pub fn marked(&self, slot: u16) -> bool {
        self.marks[slot as usize].load(Ordering::SeqCst) != 0
    }

    /// Pointer to shard `i`'s state (valid only while it is held or owned).
    pub fn shard_ptr(&self, i: usize) -> *mut ShardState {
        self.slots[i].shard.load(Ordering::Acquire)
    }

    /// Records a hold that ran after waiting `wait` for its targets.
    pub fn count_hold(&self, wait: Duration) {
        self.holds_total.fetch_add(1, Ordering::Relaxed);
        self.last_wait_usec.store(wait.as_micros() as u64, Ordering::Relaxed);
    }

    /// Holds every shard of `targets` from a thread that owns none (the
    /// start-up loader): queues an `EXTERNAL` intent and waits, polling,
    /// until they are all held for it (parked at their next quiescent point,
    /// or taken asleep, `held_for`). Released when the guard drops.
    pub fn hold_external(&self, targets: ShardMask, sleeping: &[AtomicBool]) -> HoldGuard<'_> {
        let start = Instant::now();
        let seq = self.enqueue(EXTERNAL, targets);
        while !self.ready(EXTERNAL, seq, targets, sleeping) {
            std::thread::sleep(Duration::from_micros(500));
        }
        self.count_hold(start.elapsed());
        HoldGuard { table: self, seq, targets }
    }
}

/// An `EXTERNAL` hold (see `hold_external`): the targets stay parked until it drops.
pub struct HoldGuard<'a> {
    table: &'a HoldTable,
    seq: u64,
    targets: ShardMask,
}

impl HoldGuard<'_> {
    pub fn targets(&self) -> ShardMask {
        self.targets
    }
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        self.table.remove(self.seq, self.targets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table whose slots are registered to no thread (tests drive the
    /// protocol from their own threads).
    fn table(n: usize) -> HoldTable {
        HoldTable::new(n)
    }

    fn mask(shards: &[usize]) -> ShardMask {
        let mut m = ShardMask::default();
        for &s in shards {
            m.insert(s);
        }
        m
    }

    #[test]
    fn shard_mask_iterates_in_ascending_order() {
        let m = mask(&[127, 0, 5, 64]);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 5, 64, 127]);
        assert!(mask(&[0, 5]).is_subset(m));
        assert!(!mask(&[1]).is_subset(m));
        assert_eq!(ShardMask::all(128).iter().count(), 128);
    }

    #[test]
    fn queues_are_ordered_by_sequence_and_heads_are_published() {
        let t = table(3);
        let a = t.enqueue(0, mask(&[0, 1]));
        let b = t.enqueue(2, mask(&[1, 2]));
        let c = t.enqueue(1, mask(&[0, 1, 2]));
        assert!(a < b && b < c);
        // Shard 0: a (its own) heads: no park. Shard 1: a (shard 0's): park.
        // Shard 2: b (its own).
        assert!(!t.must_park(0) && t.must_park(1) && !t.must_park(2));
        assert!(t.heads_own_queue(0, a) && t.heads_own_queue(2, b) && !t.heads_own_queue(1, c));
        // a is not ready until shard 1 has parked for it; b never before a.
        assert!(!t.ready(0, a, mask(&[1]), &[]));
        // Shard 1 asleep in its ring is taken as it is.
        let asleep: Vec<AtomicBool> = (0..3).map(|i| AtomicBool::new(i == 1)).collect();
        assert!(t.ready(0, a, mask(&[1]), &asleep));
        assert!(!t.ready(2, b, mask(&[1]), &asleep), "b does not head shard 1's queue");
        t.slots[1].parked_for.store(a, Ordering::Release);
        assert!(t.ready(0, a, mask(&[1]), &[]));
        assert!(!t.ready(2, b, mask(&[1]), &[]));
        // Withdrawing c from the middle changes no head.
        assert_eq!(t.remove(c, mask(&[0, 1, 2])), ShardMask::default());
        assert!(t.must_park(1));
        // a done: shard 1's head is b (shard 2's), shard 0's queue is empty.
        assert_eq!(t.remove(a, mask(&[0, 1])), ShardMask::default(), "shard 1 parks for b: no doorbell");
        assert!(!t.must_park(0) && t.must_park(1));
        assert_eq!(t.slots[0].head.load(Ordering::Relaxed), 0);
        assert_eq!(t.slots[1].head.load(Ordering::Relaxed), b);
        t.remove(b, mask(&[1, 2]));
        assert!((0..3).all(|i| !t.must_park(i) && lock(&t.slots[i].queue).is_empty()));
    }

    #[test]
    fn holds_ahead_sees_only_holds_queued_earlier_on_its_shards() {
        let t = table(3);
        let h = t.enqueue_hop(mask(&[0, 1]), 1);
        let w = t.enqueue_hop(mask(&[0, 1]), 2);
        assert!(!t.holds_ahead(mask(&[0, 1]), w), "only a hop ahead");
        let a = t.enqueue(2, mask(&[1, 2]));
        assert!(!t.holds_ahead(mask(&[0, 1]), w), "a hold queued later is behind");
        let x = t.enqueue_hop(mask(&[0, 2]), 3);
        assert!(t.holds_ahead(mask(&[2]), x) && !t.holds_ahead(mask(&[0]), x));
        t.hop_done(0, h);
        t.hop_done(1, h);
        assert!(t.holds_ahead(mask(&[0, 2]), x), "the hold still heads shard 2");
        let _ = a;
    }

    /// Hop intents park nobody, are taken off by each shard for itself, and
    /// share the one order with holds; their marks count per slot.
    #[test]
    fn hops_park_nobody_and_keep_the_order_with_holds() {
        let t = table(3);
        let h = t.enqueue_hop(mask(&[0, 1]), 1);
        let a = t.enqueue(2, mask(&[1, 2]));
        assert!(!t.must_park(0) && !t.must_park(1) && !t.must_park(2), "a hop at the head parks nobody");
        assert!(t.hops_pending(0) && t.hops_pending(1) && !t.hops_pending(2));
        assert_eq!((t.head(0), t.head(1), t.head(2)), (h, h, a));
        // a waits behind h on shard 1 until shard 1 ran its part.
        assert!(!t.ready(2, a, mask(&[1]), &[]));
        t.hop_done(0, h);
        assert!(t.hops_pending(1) && !t.hops_pending(0) && t.head(0) == 0);
        t.hop_done(1, h);
        assert!(t.must_park(1) && t.head(1) == a, "shard 1 now parks for a");
        // A hop behind a hold: removing the hold rings the shard it heads.
        let h2 = t.enqueue_hop(mask(&[1]), 1);
        assert_eq!(t.remove(a, mask(&[1, 2])), mask(&[1]), "shard 1 runs h2 itself: a doorbell");
        assert!(!t.must_park(1) && t.head(1) == h2);
        t.hop_done(1, h2);
        assert!((0..3).all(|i| t.head(i) == 0 && !t.hops_pending(i)));
        t.mark(7);
        t.mark(7);
        t.unmark(7);
        assert!(t.marked(7) && !t.marked(8));
        t.unmark(7);
        assert!(!t.marked(7));
    }

    /// A hop passes the intents ahead of it only when they are all hops of
    /// other connections and none of them marked a slot of its own (each
    /// counted as often as it marked it); a hold ahead is never passed, nor
    /// an earlier hop of its own connection; its entry then leaves the
    /// queue from the middle without changing the head.
    #[test]
    fn a_hop_passes_only_other_connections_hops_over_other_slots() {
        let t = table(2);
        let slots = |s: &'static [u16]| s.iter().copied();
        t.mark(5);
        let a = t.enqueue_hop(mask(&[0, 1]), 1);
        t.mark(6);
        t.mark(6);
        let b = t.enqueue_hop(mask(&[0, 1]), 2);
        assert!(t.may_pass(0, a, 1, slots(&[5])), "the head passes nothing and may run");
        assert!(t.may_pass(0, b, 2, slots(&[6, 6])), "b's slot is its own: it passes a");
        assert!(!t.may_pass(0, b, 2, slots(&[6])), "b marked 6 twice: one more mark is another's");
        t.mark(5);
        let d = t.enqueue_hop(mask(&[0]), 3);
        assert!(!t.may_pass(0, d, 3, slots(&[5])), "slot 5 is a's too: d waits for its turn");
        assert!(!t.may_pass(0, 1 << 40, 3, slots(&[])), "an intent not queued here");
        t.hop_done(0, b);
        assert_eq!(t.head(0), a, "b left from the middle");
        t.unmark(5);
        t.hop_done(0, d);
        // The same connection's next hop over other keys waits for a:
        // one connection's commands apply in its order on every shard.
        t.mark(11);
        let e = t.enqueue_hop(mask(&[0]), 1);
        assert!(!t.may_pass(0, e, 1, slots(&[11])), "e follows a, its connection's earlier hop");
        t.unmark(11);
        t.hop_done(0, e);
        let h = t.enqueue(1, mask(&[0, 1]));
        t.mark(9);
        let c = t.enqueue_hop(mask(&[0, 1]), 4);
        assert!(!t.may_pass(0, c, 4, slots(&[9])), "a hold ahead is never passed");
        t.hop_done(0, a);
        t.hop_done(1, a);
        t.hop_done(1, b);
        assert_eq!(t.head(1), h);
        t.remove(h, mask(&[0, 1]));
        assert!(t.may_pass(0, c, 4, slots(&[9])));
    }

    /// Many coordinators (one thread per shard, as the event loops) run
    /// operations over random overlapping shard sets through the real
    /// protocol: every operation completes within the time bound (no
    /// deadlock), no two operations ever touch one shard at once, and every
    /// shard served the operations involving it in increasing sequence
    /// order, so the order is one total order on every shard. A third of the
    /// operations are hops, whose parts each shard runs itself.
    #[test]
    fn random_overlapping_coordinators_all_complete_in_one_total_order() {
        use std::sync::atomic::{AtomicBool, AtomicU32};
        use std::sync::Arc;
        const SHARDS: usize = 6;
        const OPS: usize = 1000;
        struct Shared {
            table: HoldTable,
            /// Per shard: who touches it now (detects two owners at once), and
            /// the sequence numbers of the operations it took part in.
            owner: Vec<AtomicU32>,
            log: Vec<Mutex<Vec<u64>>>,
            done: Vec<AtomicBool>,
            /// Per shard: the hop parts delivered to it (their intents).
            parts: Vec<Mutex<Vec<u64>>>,
        }
        let shared = Arc::new(Shared {
            table: table(SHARDS),
            owner: (0..SHARDS).map(|_| AtomicU32::new(u32::MAX)).collect(),
            log: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            done: (0..SHARDS).map(|_| AtomicBool::new(false)).collect(),
            parts: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let handles: Vec<_> = (0..SHARDS)
            .map(|me| {
                let sh = shared.clone();
                std::thread::spawn(move || {
                    sh.table.register(me, std::ptr::null_mut());
                    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ (me as u64 + 1).wrapping_mul(0x9E37_79B9);
                    let mut next = || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng
                    };
                    let mut completed = 0;
                    let mut pending: Option<(u64, ShardMask)> = None;
                    let mut own_work = 0u64;
                    while completed < OPS || !sh.done.iter().all(|d| d.load(Ordering::Acquire)) || !lock(&sh.parts[me]).is_empty() {
                        assert!(Instant::now() < deadline, "shard {me}: no progress (deadlock?) after {completed} operations");
                        // A quiescent point of the loop.
                        sh.table.check(me);
                        // Some single-shard work on its own state.
                        assert_eq!(sh.owner[me].swap(me as u32, Ordering::AcqRel), u32::MAX, "shard {me} touched while lent");
                        own_work += 1;
                        sh.owner[me].store(u32::MAX, Ordering::Release);
                        // Hop parts whose intents head this queue, run here.
                        loop {
                            let head = sh.table.head(me);
                            let mut parts = lock(&sh.parts[me]);
                            let Some(i) = parts.iter().position(|&p| p == head) else {
                                break;
                            };
                            parts.swap_remove(i);
                            drop(parts);
                            assert_eq!(sh.owner[me].swap(me as u32, Ordering::AcqRel), u32::MAX, "shard {me} ran a part while lent");
                            lock(&sh.log[me]).push(head);
                            sh.owner[me].store(u32::MAX, Ordering::Release);
                            sh.table.hop_done(me, head);
                        }
                        if completed == OPS {
                            sh.done[me].store(true, Ordering::Release);
                            std::thread::yield_now();
                            continue;
                        }
                        if pending.is_none() && next() % 3 == 0 {
                            // A hop over 1-3 shards, this one or not: queued,
                            // its parts delivered, nothing waited for.
                            let mut m = ShardMask::default();
                            let width = 1 + next() % 3;
                            while m.count() < width as u32 {
                                m.insert((next() % SHARDS as u64) as usize);
                            }
                            let seq = sh.table.enqueue_hop(m, 1 + me as u64);
                            for t in m.iter() {
                                lock(&sh.parts[t]).push(seq);
                            }
                            completed += 1;
                            continue;
                        }
                        let (seq, targets) = *pending.get_or_insert_with(|| {
                            let mut m = ShardMask::default();
                            let width = 1 + next() % 3;
                            while m.count() < width as u32 {
                                let t = (next() % SHARDS as u64) as usize;
                                if t != me {
                                    m.insert(t);
                                }
                            }
                            let mut all = m;
                            all.insert(me);
                            (sh.table.enqueue(me, all), m)
                        });
                        if !sh.table.wait_ready(me, seq, targets, &[], Duration::from_micros(50 + next() % 200)) {
                            std::thread::yield_now();
                            continue;
                        }
                        let mut all = targets;
                        all.insert(me);
                        for s in all.iter() {
                            assert_eq!(sh.owner[s].swap(me as u32, Ordering::AcqRel), u32::MAX, "shard {s} had two owners");
                        }
                        for s in all.iter() {
                            lock(&sh.log[s]).push(seq);
                        }
                        if next() % 4 == 0 {
                            std::thread::yield_now();
                        }
                        for s in all.iter() {
                            assert_eq!(sh.owner[s].swap(u32::MAX, Ordering::AcqRel), me as u32);
                        }
                        sh.table.remove(seq, all);
                        pending = None;
                        completed += 1;
                    }
                    own_work
                })
            })
            .collect();
        // Joined with a time bound: a deadlocked coordinator may be parked
        // for good, and must fail the test rather than hang it.
        let (tx, rx) = std::sync::mpsc::channel();
        for h in handles {
            let tx = tx.clone();
            std::thread::spawn(move || tx.send(h.join()));
        }
        for _ in 0..SHARDS {
            let left = deadline.saturating_duration_since(Instant::now());
            let joined = rx.recv_timeout(left).expect("coordinators still running at the deadline: deadlock");
            assert!(joined.expect("a coordinator failed") > 0);
        }
        let mut total = 0;
        for s in 0..SHARDS {
            let log = lock(&shared.log[s]);
            assert!(log.windows(2).all(|w| w[0] < w[1]), "shard {s} served intents out of sequence order");
            total += log.len();
            assert!(lock(&shared.table.slots[s].queue).is_empty());
        }
        assert!(total >= SHARDS * OPS);
        assert!((0..SHARDS).all(|s| !shared.table.hops_pending(s)));
    }

    /// A shard asleep in its ring is held without being woken, and when it
    /// wakes during the operation its first `check` parks it until the
    /// intent is removed: it never runs alongside the coordinator.
    #[test]
    fn a_sleeping_shard_is_taken_asleep_and_parks_when_it_wakes() {
        use std::sync::atomic::AtomicU32;
        use std::sync::Arc;
        let t = Arc::new(table(2));
        let sleeping: Arc<Vec<AtomicBool>> = Arc::new((0..2).map(|_| AtomicBool::new(false)).collect());
        let state = Arc::new(AtomicU32::new(0));
        let (t2, sl2, st2) = (t.clone(), sleeping.clone(), state.clone());
        let shard = std::thread::spawn(move || {
            t2.register(1, std::ptr::null_mut());
            // The event loop's order: announce, sleep, clear, check, run.
            sl2[1].store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            sl2[1].store(false, Ordering::SeqCst);
            let parked = t2.check(1);
            // Running again: the coordinator is done with the state.
            (parked, st2.load(Ordering::Acquire))
        });
        while !sleeping[1].load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let seq = t.enqueue(0, mask(&[0, 1]));
        assert!(t.wait_ready(0, seq, mask(&[1]), &sleeping, Duration::from_millis(50)), "an asleep shard is held at once");
        // The operation outlasts the shard's sleep: it wakes meanwhile.
        state.store(1, Ordering::Release);
        std::thread::sleep(Duration::from_millis(250));
        state.store(2, Ordering::Release);
        t.remove(seq, mask(&[0, 1]));
        let (parked, seen) = shard.join().unwrap();
        assert!(parked, "the shard woke during the operation and parked");
        assert_eq!(seen, 2, "the shard ran only after the operation");
    }

    /// An `EXTERNAL` hold waits for every shard to park, and they run again
    /// when it drops.
    #[test]
    fn an_external_hold_parks_every_shard_until_dropped() {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        use std::sync::Arc;
        let t = Arc::new(table(2));
        let stop = Arc::new(AtomicBool::new(false));
        let turns = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let hs: Vec<_> = (0..2)
            .map(|me| {
                let (t, stop, turns) = (t.clone(), stop.clone(), turns.clone());
                std::thread::spawn(move || {
                    t.register(me, std::ptr::null_mut());
                    while !stop.load(Ordering::Acquire) {
                        t.check(me);
                        turns[me].fetch_add(1, Ordering::Release);
                        std::thread::sleep(Duration::from_micros(100));
                    }
                })
            })
            .collect();
        let g = t.hold_external(ShardMask::all(2), &[]);
        let before = [turns[0].load(Ordering::Acquire), turns[1].load(Ordering::Acquire)];
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(before, [turns[0].load(Ordering::Acquire), turns[1].load(Ordering::Acquire)], "a held shard ran");
        drop(g);
        stop.store(true, Ordering::Release);
        for h in hs {
            h.join().unwrap();
        }
        assert!(turns[0].load(Ordering::Acquire) > before[0] && turns[1].load(Ordering::Acquire) > before[1]);
    }

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
