//! Which path a command over several shards takes: hops (`network::hop`,
//! `network::rounds`, `network::rounds_move`: each shard runs its part in
//! its own loop) or the held path (`network::held`: this thread takes the
//! other shards and runs the command over their states).
//!
//! **What each costs.** The held path wakes nobody when the other shards
//! sleep in their rings (`HoldTable::held_for` takes them asleep); an awake
//! one parks at its next quiescent point (it polls its head for
//! `YIELD_WINDOW`, yielding the core, before a futex wait; this thread
//! spins, yields or parks meanwhile: the wait `with_held` reports).
//! A hop wakes every shard it names for its part and this one for the
//! answers. One-round hops (MGET, MSET, DEL, EXISTS, TOUCH, WATCH, a plain
//! EXEC) cost about a forwarded request; they go by hops whenever another
//! shard involved is awake (`target_awake`): they then wake nobody extra.
//!
//! **Two-round hops** (MSETNX, RENAME[NX], SMOVE, COPY, LMOVE, RPOPLPUSH,
//! the watched EXEC) send two parts and keep marks between the rounds;
//! over two shards they chain (`network::rounds`, "The chain": one part
//! out, one answer back, as a one-round hop) and pass intents over other
//! keys ("Passing" in `shard::hold`). They follow the one-round rule too
//! (`rounds_by_hops` is `target_awake`): by hops while a shard they name is
//! awake, held while every one sleeps (taken asleep, nobody woken). Counted
//! under perf/crossshard.sh's 25-connection load (perf/RESULTS.md,
//! "moves19"): the same server CPU per request as the held path within the
//! noise, with 15-40% fewer context switches (COPY, LMOVE, RPOPLPUSH,
//! RENAME; SMOVE's equal) and 20-55% fewer sched_yield calls (a hold parks
//! an awake shard: both threads poll through `YIELD_WINDOW`), and a hop
//! stops no other client of either shard. With one connection the other
//! shard sleeps between requests and the held path takes it asleep
//! (counted: the same 1.0 context switch and wake-up per request on either
//! route).
//!
//! Before moves19 they took the held path unless its parking had been slow
//! lately, from the quiet re-take after the fifth merge (two-round hops
//! 15-26 us of server CPU per request against 13 us held, before the chain
//! and passing): that rule stays as `cross-shard-route measured` (the mean
//! wait of this thread's recent holds per target shard, `note_hold_wait`,
//! over `SLOW_PARK_NS` sends them by hops, with one held probe in every
//! `PROBE_EVERY`).
//!
//! Single-shard commands for another shard are forwarded (a message and
//! its reply), or, with `cross-shard-take-asleep` (`auto`: when shard
//! threads share a core), run here with that shard taken asleep
//! (`network::dispatch`, "Taken asleep").
//!
//! **`cross-shard-route`** (hidden config; `auto` by default): `hops` sends
//! every command that can go by hops by hops, `held` none (tests check both
//! paths with it; benchmarks compare them), `measured` the rule above.

use super::event_loop::EventLoop;
use crate::shard::hold::ShardMask;

/// Mean hold wait (ns) over which the held path counts as slow to park.
/// The held path saved ~10 us per request over the two-round hops in the
/// quiet measure: a park that costs more than that loses the gain.
const SLOW_PARK_NS: u32 = 10_000;

/// While a target parks slowly: one two-round command in this many still
/// takes the held path, so that the measure follows the target's load.
const PROBE_EVERY: u32 = 32;

/// The forced route (`cross-shard-route`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Forced {
    #[default]
    Auto,
    Hops,
    Held,
    /// The two-round hops by the held path unless parking has been slow
    /// lately (`Route::slow`): the default before moves19.
    Measured,
}

/// A loop's routing state.
#[derive(Default)]
pub struct Route {
    forced: Forced,
    /// `cross-shard-pipeline-order no` (`EventLoop::pipeline_order_strict`).
    pipeline_relaxed: bool,
    /// `cross-shard-take-asleep` resolved (`EventLoop::take_asleep`).
    take_asleep: bool,
    /// When `forced` and `pipeline_relaxed` were last read from the config (ms).
    read_ms: i64,
    /// Per target shard: an exponential mean of this thread's hold waits
    /// on it (ns; weight 1/4 for the newest).
    wait_ns: Vec<u32>,
    /// Two-round commands sent by hops since the last held probe.
    since_probe: u32,
}

impl Route {
    fn slow(&self, mask: ShardMask, me: usize) -> bool {
        mask.iter().any(|t| t != me && self.wait_ns.get(t).is_some_and(|&w| w > SLOW_PARK_NS))
    }
}

impl EventLoop {
    /// The hidden cross-shard settings, `cross-shard-route` and
    /// `cross-shard-pipeline-order`, read from the config at most every 100 ms.
    fn read_route_config(&mut self) {
        let now = self.clock.now_ms();
        if now - self.hops.route.read_ms >= 100 {
            self.hops.route.read_ms = now;
            let others = &self.set.get(self.id).config.others;
            self.hops.route.forced = match others.get("cross-shard-route").map(|v| v.as_str()) {
                Some("hops") => Forced::Hops,
                Some("held") => Forced::Held,
                Some("measured") => Forced::Measured,
                _ => Forced::Auto,
            };
            self.hops.route.pipeline_relaxed = others.get("cross-shard-pipeline-order").is_some_and(|v| v == "no");
            self.hops.route.take_asleep = match others.get("cross-shard-take-asleep").map(|v| v.as_str()) {
                Some("yes") => true,
                Some("no") => false,
                _ => self.server.shards_share_cores.load(std::sync::atomic::Ordering::Relaxed),
            };
        }
    }

    /// `cross-shard-route`.
    pub(super) fn forced_route(&mut self) -> Forced {
        self.read_route_config();
        self.hops.route.forced
    }

    /// `cross-shard-pipeline-order` (hidden config, `yes` by default: the
    /// rule in `network::dispatch`'s module doc; `no`: pipelined single-key
    /// commands for different shards run side by side, their replies still
    /// in order), asked only when the rule would hold a command back.
    #[inline(never)]
    pub(super) fn pipeline_order_strict(&mut self) -> bool {
        self.read_route_config();
        !self.hops.route.pipeline_relaxed
    }

    /// `cross-shard-take-asleep` (hidden config; `auto`: when shard threads
    /// share a core): whether a batch's single-shard commands for other
    /// shards asleep in their rings run here with those shards taken
    /// asleep (`network::dispatch`, "Taken asleep") instead of being forwarded.
    pub(super) fn take_asleep(&mut self) -> bool {
        self.read_route_config();
        self.hops.route.take_asleep
    }

    /// Whether a two-round hop over `mask` goes by hops (see the module
    /// doc). `commit`: the command goes now (a probe is counted); a look
    /// ahead (`hops_command`) passes false.
    pub(super) fn rounds_by_hops(&mut self, mask: ShardMask, commit: bool) -> bool {
        match self.forced_route() {
            Forced::Hops => return true,
            Forced::Held => return false,
            Forced::Auto => return self.target_awake(mask),
            Forced::Measured => {}
        }
        if !self.target_awake(mask) {
            return false;
        }
        if self.part_delay_us() > 0 {
            // A test's hops must be hops.
            return true;
        }
        if !self.hops.route.slow(mask, self.id) {
            return false;
        }
        if commit {
            let r = &mut self.hops.route;
            r.since_probe += 1;
            if r.since_probe >= PROBE_EVERY {
                r.since_probe = 0;
                return false;
            }
        }
        true
    }

    /// WATCH over several shards and the watched EXEC: by hops unless the
    /// held path is forced, asleep target or not. The quiet measure
    /// (perf/RESULTS.md, "Quiet re-take after the sixth merge" and the
    /// section after it: WATCH k1 k2 + MULTI/SET/SET/EXEC, 25 connections)
    /// put the pair at 48.6 us of server CPU per transaction over two
    /// shards held (2.9 context switches) against 11.9 by hops (0.13),
    /// while the other two-key commands are cheaper held (9 us). By hops
    /// WATCH's parts now answer nobody (`network::rounds`, "WATCH: one
    /// message"), which makes the pair cheaper still (perf/RESULTS.md,
    /// "watch17").
    pub(super) fn watch_by_hops(&mut self) -> bool {
        self.forced_route() != Forced::Held
    }

    /// A hold over `targets` waited `wait` for them to park (`with_held`).
    pub(super) fn note_hold_wait(&mut self, targets: ShardMask, wait: std::time::Duration) {
        let n = self.server.shard_count;
        let r = &mut self.hops.route;
        if r.wait_ns.len() < n {
            r.wait_ns.resize(n, 0);
        }
        let w = u32::try_from(wait.as_nanos()).unwrap_or(u32::MAX);
        for t in targets.iter() {
            let m = &mut r.wait_ns[t];
            *m = (*m - *m / 4).saturating_add(w / 4);
        }
    }
}
