//! The dispatch path's part of `maxmemory` (Redis's processCommand check):
//! evict before the command runs, on this shard first, then on the shards
//! that hold the evictable keys, and refuse a command that would use more
//! memory with `-OOM` when nothing more can be evicted.
//!
//! # Evicting on other shards before a command
//! Redis evicts synchronously in `processCommand`, so what an eviction
//! causes (the evicted keys' tracking invalidations, `evicted` keyspace
//! events, their DEL in the AOF, WATCH touches) happens before the command
//! runs and reaches its client before the reply. When used memory is over
//! the limit and other shards have keys the policy may take
//! (`Memory::evictable`, published by each shard every loop turn and after
//! each write forwarded to it), those shards are held through `with_held`
//! (the VLL intents: its deadlock freedom is `shard::hold`'s) and
//! `memory::evict_across` evicts over them and this one, choosing victims
//! across them as Redis across databases; then the
//! held shards' invalidations and notifications are sent and their DELs
//! handed to the AOF, before the command is routed. A client on this shard
//! gets its invalidations first (a push written now, or queued behind the
//! replies of its earlier forwarded commands, as Redis orders them). When
//! the hold cannot be had at once the command waits (`Flow::Defer`, its
//! intent keeping its place) and the check runs again. Inside a hold run
//! (a pipelined multi-shard run) shards outside the run are not taken: the
//! loop turns shed the excess then.
//!
//! The cost stays on the cold path: without a limit the check is one relaxed
//! load; under the limit it is `Memory::used` (thread-local counters); the
//! hold is taken only while over the limit with evictable keys elsewhere.

use std::sync::OnceLock;

use super::dispatch::Flow;
use super::event_loop::EventLoop;
use super::held::IntentOwner;
use crate::commands::{flags, CommandSpec, CommandTable};
use crate::server::Server;
use crate::shard::hold::ShardMask;
use crate::shard::memory::{evict_across, perform_evictions, Evict, OOM_ERROR};

/// Table ids of EXEC, DISCARD, QUIT and RESET.
fn ids() -> &'static [usize; 4] {
    static IDS: OnceLock<[usize; 4]> = OnceLock::new();
    IDS.get_or_init(|| ["exec", "discard", "quit", "reset"].map(|n| CommandTable::get().lookup(n.as_bytes()).expect("registered")))
}

impl EventLoop {
    /// Called only with a limit set. Some(flow) when the command was refused
    /// or waits for the shards it must evict on.
    ///
    /// As Redis 7.0: refused are the commands flagged denyoom, EXEC whose
    /// queue holds one, and, in MULTI, every command but EXEC, DISCARD,
    /// QUIT and RESET (queueing takes memory); a refusal in MULTI flags the
    /// transaction, a refused EXEC aborts it (`reject`).
    #[cold]
    pub(super) fn maxmemory_step(&mut self, index: u32, id: usize, spec: &CommandSpec, now: i64) -> Option<Flow> {
        let [exec, discard, quit, reset] = *ids();
        let client = &self.conns[index as usize].as_ref()?.client;
        let is_exec = id == exec;
        let mut reject = spec.flags & flags::DENYOOM != 0 || (is_exec && client.multi.active && client.multi.flags & flags::DENYOOM != 0);
        if client.multi.active && !is_exec && ![discard, quit, reset].contains(&id) {
            reject = true;
        }
        let Some(outcome) = self.evict_now(now) else {
            self.conns[index as usize].as_mut()?.deferred = true;
            return Some(Flow::Defer);
        };
        if outcome == Evict::Fail && reject {
            return Some(self.reject(index, Some(id), OOM_ERROR));
        }
        None
    }

    /// Redis's `performEvictions` as this shard runs it: over its own keys
    /// alone, or over every shard with evictable keys (held), then what the
    /// evictions caused is sent.
    /// None: the other shards could not be held yet (call again next turn).
    fn evict_now(&mut self, now: i64) -> Option<Evict> {
        let server = self.server.clone();
        // While clients are paused the dataset stays as it is: no eviction,
        // and nothing refused for memory (Redis's isSafeToPerformEvictions,
        // a "fake EVICT_OK"); the limit is enforced again after the pause.
        if server.pause_until(now).is_some() {
            return Some(Evict::Ok);
        }
        let evicted_before = self.state().eviction.evicted_keys;
        let mut outcome = Some(perform_evictions(&server.memory, self.state(), now, &hop_spare(&server)));
        if outcome == Some(Evict::Running) && server.shard_count > 1 {
            outcome = self.evict_on_others(now);
        }
        if self.state().eviction.evicted_keys != evicted_before {
            self.after_eviction();
        }
        outcome
    }

    /// Memory is over and other shards have keys the policy may evict:
    /// evicts over them and this one, held (`memory::evict_across`).
    /// None: the hold is not had yet (the command waits).
    fn evict_on_others(&mut self, now: i64) -> Option<Evict> {
        let server = self.server.clone();
        let mem = &server.memory;
        let volatile = mem.policy().volatile();
        let mut targets = ShardMask::default();
        for s in (0..server.shard_count).filter(|&s| s != self.id) {
            if mem.evictable(s, volatile) > 0 {
                targets.insert(s);
            }
        }
        if targets.is_empty() || !self.holding.is_empty() && !targets.is_subset(self.holding) {
            return Some(Evict::Running);
        }
        self.with_held(targets, |lp, _| {
            let mut shards = targets;
            shards.insert(lp.id);
            let outcome = evict_across(mem, &mut lp.set, shards, now, &hop_spare(&server));
            lp.after_eviction();
            if lp.server.aof.is_running() {
                for s in targets.iter() {
                    lp.server.aof.hand_over(lp.set.get_mut(s));
                }
            }
            outcome
        })
    }

    /// What evictions on this shard and the held ones caused, sent before
    /// the command runs: keyspace events, tracking invalidations (this
    /// shard's BCAST batch waits for the turn's end, as Redis's beforeSleep;
    /// the held shards' go now, before they are released).
    fn after_eviction(&mut self) {
        self.after_command_messaging();
        self.tracking_after_command(false);
    }

    /// With a limit set, after a command forwarded here ran: the client's
    /// shard may check the client's next command right after the reply, so
    /// this thread's net allocation is published, a write's evictable keys
    /// too, and a denyoom command's memory is measured when it went over
    /// the limit (`refresh_if_over`).
    #[cold]
    pub(super) fn maxmemory_after_remote(&mut self, id: usize) {
        let spec = &CommandTable::get().specs[id];
        let server = self.server.clone();
        server.memory.publish_net(self.id);
        if spec.is_write() {
            server.memory.publish(self.id, self.state());
            if spec.flags & flags::DENYOOM != 0 {
                server.memory.refresh_if_over();
            }
        }
    }

    /// Once per loop turn with a limit set: this shard's evictable keys are
    /// published (for `evict_on_others`), and Redis's eviction time proc
    /// runs when
    /// some eviction asked for it (`Memory::start_proc`); not while the
    /// dataset loads.
    #[cold]
    pub(super) fn maxmemory_turn(&mut self, now: i64) {
        let server = self.server.clone();
        server.memory.publish(self.id, self.state());
        if server.loading.load(std::sync::atomic::Ordering::Relaxed) || !server.memory.take_proc() {
            return;
        }
        if self.as_owner(EVICTION_OWNER, |lp| lp.evict_now(now)).is_none() {
            // Not held yet: the intent keeps its place for the next turn.
            server.memory.start_proc();
        }
    }
}

/// The keys eviction spares (`memory::Spare`): those a pending two-round
/// hop of their shard marked. One load per victim when no hop is pending.
fn hop_spare(server: &Server) -> impl Fn(usize, &[u8]) -> bool + '_ {
    move |shard, key| server.hold.hops_pending(shard) && server.hold.marked(crate::shard::slot::key_slot(key))
}

/// The owner of the time proc's intents (`with_held`).
const EVICTION_OWNER: IntentOwner = IntentOwner::Tag(u64::from_be_bytes(*b"evictprc"));
