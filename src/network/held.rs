//! The event loop's side of holding shards (`shard::hold`): the intents this
//! shard's thread has queued as a coordinator, who owns each (a connection,
//! or the loop itself for the fork and shutdown it starts), and
//! `with_held`, the one call through which a command runs over several
//! shards' states.
//!
//! # The `with_held` contract
//!
//! `with_held(targets, f)` (targets: other shards, never this one) returns
//! `Some(f(..))` when `f` ran with every target parked and reachable through
//! `self.set`, or `None` when the operation cannot run yet. On `None` the
//! intent stays queued, keeping its place in the global order, for its owner
//! (`intent_owner`: the connection whose input is being run; `Loop`
//! otherwise, or whatever `as_owner` names): the owner must call again on
//! the next loop turn (a deferred
//! connection is retried every turn), with the same targets or a subset of
//! them. An intent its owner did not ask for again during a loop turn is
//! withdrawn at the end of that turn (`sweep_intents`), as is a closed
//! connection's at once: otherwise the shards it heads would stay parked
//! for an operation nobody runs. `f` gets how long the intent waited from
//! its enqueue until every target had parked. A call nested inside `f` runs
//! its closure at once when its targets are held already, and is `None`
//! otherwise.

use std::time::{Duration, Instant};

use super::event_loop::EventLoop;
use crate::persistence::snapshot::ChildKind;
use crate::shard::hold::ShardMask;

/// How long a coordinator whose intent heads its own queue waits, at most,
/// for its targets to park before it returns to its loop (and retries).
const WAIT_BUDGET: Duration = Duration::from_millis(2);

/// Who asked for an intent: the connection whose input is running (slab
/// index and generation), the loop itself (`LoopOp`s), or another caller
/// that runs outside a connection's input and names itself (`Tag`, through
/// `as_owner`), so that two such callers never share one intent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum IntentOwner {
    #[default]
    Loop,
    Conn(u32, u32),
    Tag(u64),
}

/// An intent this shard coordinates, queued and not yet run.
pub struct PendingIntent {
    pub owner: IntentOwner,
    pub seq: u64,
    /// The other shards it holds (this shard is queued too).
    pub targets: ShardMask,
    pub since: Instant,
    /// Asked for again since the last sweep.
    pub requested: bool,
}

/// `try_held_once`'s intents' owner.
const ONCE_OWNER: IntentOwner = IntentOwner::Tag(u64::from_be_bytes(*b"heldonce"));

/// Something the loop itself runs over every shard, retried every loop turn
/// until it has run (its intent keeps its place meanwhile).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LoopOp {
    /// A scheduled or save-point BGSAVE, or an automatic AOF rewrite.
    Child(ChildKind),
    /// SIGTERM/SIGINT: SHUTDOWN's path.
    Shutdown(i32),
}

impl EventLoop {
    /// See the module doc.
    pub fn with_held<R>(&mut self, targets: ShardMask, f: impl FnOnce(&mut Self, Duration) -> R) -> Option<R> {
        debug_assert!(!targets.contains(self.id), "a coordinator does not hold its own shard");
        if !self.holding.is_empty() {
            return targets.is_subset(self.holding).then(|| f(self, Duration::ZERO));
        }
        if targets.is_empty() {
            return Some(f(self, Duration::ZERO));
        }
        let me = self.id;
        // (`self.server` each time, not a clone: the `Arc`'s count is one
        // cache line for every shard thread, and this runs per held command.)
        let owner = self.intent_owner;
        let idx = match self.intents.iter().position(|p| p.owner == owner) {
            Some(i) if targets.is_subset(self.intents[i].targets) => i,
            found => {
                // A first call, or a wider one (more of a pipelined hold run
                // arrived): the old intent goes, a new one queues.
                if let Some(i) = found {
                    self.withdraw_at(i);
                }
                let mut mask = targets;
                mask.insert(me);
                // No doorbells: a target asleep in its ring is taken asleep
                // (`HoldTable::held_for`); a running one parks at its next
                // quiescent point.
                let seq = self.server.hold.enqueue(me, mask);
                self.intents.push(PendingIntent { owner, seq, targets, since: Instant::now(), requested: true });
                self.intents.len() - 1
            }
        };
        self.intents[idx].requested = true;
        let (seq, held) = (self.intents[idx].seq, self.intents[idx].targets);
        if !self.server.hold.wait_ready(me, seq, held, &self.server.sleeping, WAIT_BUDGET) {
            return None;
        }
        let wait = self.intents.swap_remove(idx).since.elapsed();
        self.server.hold.count_hold(wait);
        self.note_hold_wait(held, wait);
        for t in held.iter() {
            // SAFETY: every target has published `parked_for == seq`
            // (Acquire in `ready`) and its thread touches nothing of its
            // state until the intent is removed below, after the pointer is
            // taken out again.
            unsafe { self.set.set(t, self.server.hold.shard_ptr(t)) };
        }
        self.holding = held;
        crate::messaging::held_order::begin();
        let result = f(self, wait);
        // Keys `f` gave data to on the held shards are served before they
        // are let go (`network::blocking`).
        self.serve_held_ready();
        if crate::messaging::held_order::pending() {
            // Events and invalidations still queued in the hold's order
            // (those of the serving above, or of an `f` that publishes
            // nothing itself) leave while every shard is reachable.
            self.after_command_messaging_work();
            self.tracking_after_command(false);
        }
        crate::messaging::held_order::end();
        // Held shards left with ready keys (`network::blocking`, "Moves
        // out of a hold"): one check of an empty list per shard.
        let mut left_ready = ShardMask::default();
        for t in held.iter() {
            if !self.set.get(t).blocking.ready.is_empty() {
                left_ready.insert(t);
            }
        }
        self.holding = ShardMask::default();
        for t in held.iter() {
            // SAFETY: null is always allowed: the shard becomes unreachable.
            unsafe { self.set.set(t, std::ptr::null_mut()) };
        }
        let mut mask = held;
        mask.insert(me);
        self.remove_intent(seq, mask);
        if !left_ready.is_empty() || !self.state().blocking.unreached.is_empty() {
            self.served_after_hold(left_ready);
        }
        Some(result)
    }

    /// `with_held` once, under an intent of its own: on `None` the intent is
    /// withdrawn at once (nobody asks for it again).
    pub fn try_held_once<R>(&mut self, targets: ShardMask, f: impl FnOnce(&mut Self, Duration) -> R) -> Option<R> {
        let r = self.as_owner(ONCE_OWNER, |lp| lp.with_held(targets, f));
        if r.is_none() {
            if let Some(i) = self.intents.iter().position(|p| p.owner == ONCE_OWNER) {
                self.withdraw_at(i);
            }
        }
        r
    }

    /// Removes intent `seq` from the queues of `mask`. Shards whose new head
    /// is another's intent need no doorbell: asleep, they are taken asleep;
    /// those whose new head is a hop (or their own intent) run it
    /// themselves, and get one (`HoldTable::remove`).
    fn remove_intent(&mut self, seq: u64, mask: ShardMask) {
        let ring = self.server.hold.remove(seq, mask);
        self.doorbells.0 |= ring.0 & !(1u128 << self.id);
    }

    fn withdraw_at(&mut self, i: usize) {
        let p = self.intents.swap_remove(i);
        let mut mask = p.targets;
        mask.insert(self.id);
        self.remove_intent(p.seq, mask);
    }

    /// Connection `index` closed: its queued intent (if any) is withdrawn.
    pub fn withdraw_intent_of(&mut self, index: u32) {
        if let Some(i) = self.intents.iter().position(|p| matches!(p.owner, IntentOwner::Conn(c, _) if c == index)) {
            self.withdraw_at(i);
        }
    }

    /// End of a loop turn: intents not asked for again this turn are
    /// withdrawn (see the module doc).
    pub fn sweep_intents(&mut self) {
        let mut i = 0;
        while i < self.intents.len() {
            if self.intents[i].requested {
                self.intents[i].requested = false;
                i += 1;
            } else {
                self.withdraw_at(i);
            }
        }
    }

    /// Runs `f` with the intents it asks for (`with_held`) owned by `owner`.
    pub fn as_owner<R>(&mut self, owner: IntentOwner, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = std::mem::replace(&mut self.intent_owner, owner);
        let r = f(self);
        self.intent_owner = before;
        r
    }

    /// Tries the pending `LoopOp` (once per loop turn until it has run).
    pub fn run_loop_op(&mut self) {
        let Some(op) = self.loop_op else {
            return;
        };
        let mut others = ShardMask::all(self.server.shard_count);
        others.remove(self.id);
        let ran = self.as_owner(IntentOwner::Loop, |lp| match op {
            LoopOp::Child(kind) => lp
                .with_held(others, |lp, barrier| {
                    let config = lp.state().config.clone();
                    let started = crate::persistence::snapshot::start_child(&lp.server, &mut lp.set, &config, barrier, kind).is_ok();
                    if started && kind == ChildKind::Rdb {
                        lp.server.persistence.lock().scheduled = false;
                    }
                })
                .is_some(),
            LoopOp::Shutdown(sig) => lp
                .with_held(others, |lp, _| {
                    let config = lp.state().config.clone();
                    let flags = crate::signal::configured_flags(&config, sig);
                    if crate::commands::server::prepare_for_shutdown(&lp.server, &mut lp.set, &config, flags) {
                        std::process::exit(0);
                    }
                    crate::signal::cancel_shutdown();
                })
                .is_some(),
        });
        if ran {
            self.loop_op = None;
        }
    }
}
