//! `maxmemory`: the used-memory figure a command checks, and eviction
//! (Redis's evict.c) over the shards' keyspaces.
//!
//! # The figure, and its precision
//! Redis's `zmalloc_used_memory()` is one exact counter. jemalloc's exact
//! total needs an `epoch` mallctl (it merges every arena's statistics, a few
//! µs), too dear per command. `Memory::used` is instead:
//! - the allocator's `stats.allocated` (plus the index tables mapped outside
//!   it, as INFO's `used_memory`), measured by whichever thread first finds
//!   the last measurement 1 ms old (one compare-and-swap elects it), less
//!   the shard threads' published net allocations at that moment; plus
//! - every shard thread's net allocation (bytes allocated less bytes freed,
//!   jemalloc's per-thread counters: two thread-local loads; less the
//!   keyspace slots it allocated ahead of their keys, which neither part
//!   counts: `note_spare_slot_bytes`) as it last
//!   published it: once a loop turn, after a command run for another
//!   shard's client (before its reply) and at each check; the checking
//!   thread's own is read live. Each is a relaxed store to the thread's own
//!   cache line, no read-modify-write, no lock.
//!
//! So every shard's work reaches every other shard's check before the reply
//! that acknowledges it (a write forwarded to shard B is in the figure when
//! its client's shard A checks the client's next command), and a write on
//! shard A over the sum of all shards evicts or is refused as in Redis.
//! (Before memfix19 each shard saw only its own work exactly and the others'
//! as of the last measurement, up to 1 ms old.) What other threads (lazy
//! free, AOF writer) allocate or free is caught by the next measurement, and
//! what a shard thread allocated in its current turn before a measurement
//! is counted twice until the next one (over, never under). With
//! `maxmemory 0` only the per-turn store runs: a command's check is one
//! relaxed load.
//!
//! # Evicting across shards
//! The limit is not split: every shard sees the server-wide figure. As in
//! Redis, keys are evicted before a command (`network::maxmemory`): when
//! used memory is over the limit, the connection's shard evicts alone if it
//! is the only one with keys the policy may take (`perform_evictions`);
//! otherwise it holds the shards that published evictable keys and evicts
//! across them and itself (`evict_across`), victims chosen among all their
//! keys, so the evictions' invalidations, events and DELs come before the
//! command, whichever shard held the keys. (Under a write load at the limit
//! that is a hold per command over it: the price of choosing victims as
//! Redis does; under the limit the check costs what it did.) Between commands
//! nothing is evicted, except by Redis's eviction "time proc": an eviction
//! that ran out of its time budget (`maxmemory-eviction-tenacity`), or
//! CONFIG SET maxmemory, asks for one (`start_proc`), and the next loop turn
//! of some shard runs the same eviction. A shard running a command
//! forwarded to it re-measures the shared figure when it finds it over the
//! limit, so that the client's shard checks the next command against it.
//! A denyoom command is refused only when no shard has anything left to
//! evict (Redis's EVICT_FAIL).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::hold::{ShardMask, ShardSet};
use super::keyspace::xorshift;
use super::ShardState;
use crate::config::Config;

/// Redis's shared.oomerr.
pub const OOM_ERROR: &[u8] = b"OOM command not allowed when used memory > 'maxmemory'.";

/// `maxmemory-policy` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
}

impl Policy {
    pub fn parse(s: &str) -> Policy {
        match s {
            "allkeys-random" => Policy::AllKeysRandom,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            "allkeys-lru" => Policy::AllKeysLru,
            "volatile-lru" => Policy::VolatileLru,
            "allkeys-lfu" => Policy::AllKeysLfu,
            "volatile-lfu" => Policy::VolatileLfu,
            _ => Policy::NoEviction,
        }
    }
    fn from_u8(v: u8) -> Policy {
        [
            Policy::NoEviction,
            Policy::AllKeysRandom,
            Policy::VolatileRandom,
            Policy::VolatileTtl,
            Policy::AllKeysLru,
            Policy::VolatileLru,
            Policy::AllKeysLfu,
            Policy::VolatileLfu,
        ][v as usize % 8]
    }
    /// Only keys with a TTL may go.
    pub fn volatile(self) -> bool {
        matches!(self, Policy::VolatileRandom | Policy::VolatileTtl | Policy::VolatileLru | Policy::VolatileLfu)
    }
}

/// Keys eviction must not take, by (shard, key): the event loop's
/// `network::maxmemory` names those a pending two-round hop of that shard
/// marked (`HoldTable::marked`), as active expiry spares them
/// (`ShardState::active_expire_cycle`): the hop's later round must find the
/// key as its first round decided, and a DEL between the rounds would go
/// into the AOF and replication stream ahead of the hop's unit, whose
/// replay would then do something else. A spared key is evictable again
/// once the hop completed.
pub type Spare<'a> = &'a dyn Fn(usize, &[u8]) -> bool;

/// What `perform_evictions` concluded (Redis's EVICT_OK / RUNNING / FAIL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evict {
    /// Under the limit (or no limit).
    Ok,
    /// Still over, but memory is being freed (time budget spent, other
    /// shards have evictable keys, values queued for lazy freeing).
    Running,
    /// Over, and nothing can be evicted: denyoom commands are refused.
    Fail,
}

/// The server-wide part: the configured limit and policy (mirrored from the
/// config so a command reads them without a hold), the measurement, and
/// each shard's evictable-key counts.
pub struct Memory {
    limit: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    tenacity: AtomicU32,
    lazy: AtomicBool,
    /// The last measurement less the shard threads' published nets then
    /// (`remeasure`): used memory is this plus every shard's published net.
    base: AtomicI64,
    measured_us: AtomicU64,
    /// Per shard thread: its `thread_net` as it last published it
    /// (`publish_net`), each on its own cache line.
    nets: Box<[Net]>,
    /// Per shard: (keys, keys with a TTL), published when it evicts.
    keys: Vec<(AtomicU64, AtomicU64)>,
    /// Since when (unix µs) used memory is over the limit, 0 when it is not,
    /// and the total of the finished spells (INFO's
    /// `current_eviction_exceeded_time`, `total_eviction_exceeded_time`).
    over_since_us: AtomicU64,
    over_total_us: AtomicU64,
    /// Redis's `isEvictionProcRunning`: an eviction stopped by its time
    /// budget (or CONFIG SET maxmemory) wants to go on between commands.
    proc_running: AtomicBool,
}

/// One shard thread's published net allocation (own cache line: the
/// others read it on every check while it writes it once a loop turn),
/// and of it the spare slots' part (`note_spare_slot_bytes`, its `SPARE`).
#[repr(align(128))]
struct Net(AtomicI64, AtomicI64);

thread_local! {
    /// The shard whose `Net` this thread publishes (usize::MAX: none).
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    static COUNTERS: Option<(tikv_jemalloc_ctl::thread::ThreadLocal<u64>, tikv_jemalloc_ctl::thread::ThreadLocal<u64>)> =
        match (tikv_jemalloc_ctl::thread::allocatedp::read(), tikv_jemalloc_ctl::thread::deallocatedp::read()) {
            (Ok(a), Ok(d)) => Some((a, d)),
            _ => None,
        };
    /// Bytes of keyspace slots this thread allocated ahead less those it
    /// filled or freed (`note_spare_slot_bytes`), since it started.
    static SPARE: Cell<i64> = const { Cell::new(0) };
}

/// `SPARE` of the threads that run no shard (the lazy-free thread dropping
/// a flushed table, a loader): rare, so one shared counter.
static DETACHED_SPARE: AtomicI64 = AtomicI64::new(0);

/// The keyspace's slots allocated ahead of their entries grew by `delta`
/// bytes (`shard::dict`, `Dict::note_spare`). Used memory leaves them out,
/// as Redis's counts a `dictEntry` only once its key exists: each thread's
/// net allocation (`thread_net`) is less its own such bytes, and the
/// allocator's figure (`in_use`) less all threads' as last published.
/// What this excludes is at most the last chunk of slots of each database
/// (288 KB), the spare one kept behind it and a first chunk shrunk to no
/// less than twice its entries. Inline: a thread-local add per insert or
/// removal of a key.
#[inline]
pub fn note_spare_slot_bytes(delta: i64) {
    if SHARD.with(Cell::get) != usize::MAX {
        SPARE.with(|s| s.set(s.get() + delta));
    } else {
        DETACHED_SPARE.fetch_add(delta, Ordering::Relaxed);
    }
}

/// All threads' spare slot bytes: this thread's own live, every other
/// shard thread's as last published, the others'.
fn spare_slot_bytes() -> i64 {
    let me = SHARD.with(Cell::get);
    let own = SPARE.with(Cell::get);
    let mut n = DETACHED_SPARE.load(Ordering::Relaxed) + own;
    GROWTH_BOUND.with(|b| {
        if let Some(server) = b.borrow().as_ref() {
            n += server.memory.nets.iter().enumerate().filter(|&(s, _)| s != me).map(|(_, net)| net.1.load(Ordering::Relaxed)).sum::<i64>();
        }
    });
    n
}

thread_local! {
    /// The server whose `maxmemory` bounds this thread's table growth
    /// (`over_after_alloc`): set by each shard thread at its start. A
    /// thread without one (tests, tools) grows its tables unbounded.
    static GROWTH_BOUND: std::cell::RefCell<Option<std::sync::Arc<crate::server::Server>>> = const { std::cell::RefCell::new(None) };
}

/// This thread runs shard `shard` of `server`: its table growth answers to
/// the server's `maxmemory`, and it publishes its net allocation for the
/// used-memory figure (`Memory::used`).
pub fn bound_growth_by(server: std::sync::Arc<crate::server::Server>, shard: usize) {
    SHARD.with(|s| s.set(shard));
    server.memory.publish_net(shard);
    GROWTH_BOUND.with(|b| *b.borrow_mut() = Some(server));
}

/// Redis's `overMaxmemoryAfterAlloc`: with a limit set, would allocating
/// `more` bytes now take used memory (as this thread sees it, `Memory::used`)
/// over it? Asked only before a table grows by a big step (`shard::dict`):
/// a thread-local load and, with a limit, the figure.
pub fn over_after_alloc(more: usize) -> bool {
    GROWTH_BOUND.with(|b| {
        b.borrow().as_ref().is_some_and(|s| {
            let limit = s.memory.limit();
            limit != 0 && s.memory.used().saturating_add(more as u64) > limit
        })
    })
}

/// This thread's bytes allocated less bytes freed, since it started, less
/// the slots it allocated ahead of their keys (`note_spare_slot_bytes`).
#[inline]
pub fn thread_net() -> i64 {
    COUNTERS.with(|c| c.map_or(0, |(a, d)| a.get().wrapping_sub(d.get()) as i64)) - SPARE.with(Cell::get)
}

/// The allocator's exact figure (an `epoch` refresh), as INFO's `used_memory`.
pub fn measure_now() -> u64 {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64;
    crate::commands::info::used_memory_bytes(in_use(allocated))
}

/// What the server itself holds of jemalloc's `stats.allocated` (read after
/// an `epoch` refresh): less what sits in the threads' caches. jemalloc
/// counts a freed region as allocated until its thread cache flushes it,
/// and a cache fill as allocated before anything uses it, so the raw figure
/// moved by 40-60 KB at a time on an idle 3-shard server (and by up to
/// 100 KB over four small commands, more than tests/maxmemory.rs's margin).
/// Redis's own counter (`zmalloc_used_memory`) and jemalloc's per-thread
/// counters behind `Memory::used` count only what the program allocated.
/// Nor are the keyspace's slots allocated ahead of their keys counted
/// (`note_spare_slot_bytes`).
pub fn in_use(allocated: u64) -> u64 {
    // MALLCTL_ARENAS_ALL (4096): the merged statistics of every arena.
    // SAFETY: a NUL-terminated name of a read-only size_t statistic.
    let cached = unsafe { tikv_jemalloc_ctl::raw::read::<usize>(b"stats.arenas.4096.tcache_bytes\0") }.unwrap_or(0) as u64;
    allocated.saturating_sub(cached).saturating_sub(spare_slot_bytes().max(0) as u64)
}

impl Memory {
    pub fn new(shards: usize) -> Memory {
        Memory {
            limit: AtomicU64::new(0),
            policy: AtomicU8::new(0),
            samples: AtomicU32::new(5),
            tenacity: AtomicU32::new(10),
            lazy: AtomicBool::new(false),
            base: AtomicI64::new(0),
            measured_us: AtomicU64::new(0),
            nets: (0..shards).map(|_| Net(AtomicI64::new(0), AtomicI64::new(0))).collect(),
            keys: (0..shards).map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect(),
            over_since_us: AtomicU64::new(0),
            over_total_us: AtomicU64::new(0),
            proc_running: AtomicBool::new(false),
        }
    }

    /// Mirrors the maxmemory settings of `c` (start-up, CONFIG SET).
    pub fn apply_config(&self, c: &Config) {
        let get = |k: &str| c.others.get(k).map(String::as_str).unwrap_or("");
        crate::exec::gates::store_u64(&self.limit, get("maxmemory").parse().unwrap_or(0), Ordering::Relaxed, crate::exec::gates::Reason::Maxmemory);
        self.policy.store(Policy::parse(get("maxmemory-policy")) as u8, Ordering::Relaxed);
        self.samples.store(get("maxmemory-samples").parse().unwrap_or(5), Ordering::Relaxed);
        self.tenacity.store(get("maxmemory-eviction-tenacity").parse().unwrap_or(10), Ordering::Relaxed);
        self.lazy.store(get("lazyfree-lazy-eviction") == "yes", Ordering::Relaxed);
        super::lfu::apply_config(get("maxmemory-policy"), get("lfu-log-factor"), get("lfu-decay-time"));
        // A new limit is checked against a fresh figure.
        self.measured_us.store(0, Ordering::Relaxed);
    }

    /// The limit in bytes; 0: none. The one load a command pays without one.
    #[inline]
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.policy.load(Ordering::Relaxed))
    }

    /// Used memory as this thread sees it (see the module's notes): the
    /// last measurement, plus what every shard thread allocated less freed
    /// since (its published net; this thread's own, live).
    pub fn used(&self) -> u64 {
        let me = SHARD.with(Cell::get);
        let net = thread_net();
        if let Some(n) = self.nets.get(me) {
            n.0.store(net, Ordering::Relaxed);
            n.1.store(SPARE.with(Cell::get), Ordering::Relaxed);
        }
        let now = crate::util::unix_us() as u64;
        let last = self.measured_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000 && self.measured_us.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.remeasure();
        }
        let mut used = self.base.load(Ordering::Acquire);
        for (s, n) in self.nets.iter().enumerate() {
            used += if s == me { net } else { n.0.load(Ordering::Relaxed) };
        }
        used.max(0) as u64
    }

    /// Shard `shard`'s thread publishes its net allocation: once a loop
    /// turn (whether or not a limit is set, so that the nets a measurement
    /// starts from are never older than a turn), after a command run for
    /// another shard's client (before its reply), and at each of its own
    /// checks (`used`). A relaxed store to its own cache line.
    #[inline]
    pub fn publish_net(&self, shard: usize) {
        if let Some(n) = self.nets.get(shard) {
            n.0.store(thread_net(), Ordering::Relaxed);
            n.1.store(SPARE.with(Cell::get), Ordering::Relaxed);
        }
    }

    /// The allocator's exact figure, taken as the new base: the published
    /// nets are read first, then the figure. What a shard thread allocated
    /// in between, or earlier in its current turn and not yet published,
    /// is in both until the next measurement (≤1 ms): counted over, never
    /// under.
    fn remeasure(&self) {
        let me = SHARD.with(Cell::get);
        self.publish_net(me);
        let published: i64 = self.nets.iter().map(|n| n.0.load(Ordering::Relaxed)).sum();
        self.base.store(measure_now() as i64 - published, Ordering::Release);
    }

    /// Redis's `evictionTimeLimitUs`: the eviction budget per call, from
    /// `maxmemory-eviction-tenacity` (None: unlimited, at 100).
    fn time_limit_us(&self) -> Option<u64> {
        let t = self.tenacity.load(Ordering::Relaxed);
        if t <= 10 {
            Some(50 * t as u64)
        } else if t < 100 {
            Some((500.0 * 1.15f64.powi(t as i32 - 10)) as u64)
        } else {
            None
        }
    }

    /// Redis's `updateMaxmemory`: a limit below what is used now is logged,
    /// and with a limit the eviction time proc starts.
    pub fn warn_if_below_usage(&self) {
        let limit = self.limit();
        if limit != 0 {
            self.start_proc();
        }
        let used = measure_now();
        if limit != 0 && limit < used {
            crate::warning!(
                "WARNING: the new maxmemory value set via CONFIG SET ({}) is smaller than the current memory usage ({}). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy.",
                limit,
                used
            );
        }
    }

    /// Over the limit (true) or not, now: the exceeded-time spells.
    fn note_over(&self, over: bool) {
        let since = self.over_since_us.load(Ordering::Relaxed);
        if over && since == 0 {
            let _ = self.over_since_us.compare_exchange(0, crate::util::unix_us() as u64, Ordering::Relaxed, Ordering::Relaxed);
        } else if !over && since != 0 && self.over_since_us.compare_exchange(since, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.over_total_us.fetch_add((crate::util::unix_us() as u64).saturating_sub(since), Ordering::Relaxed);
        }
    }

    /// (current, total) milliseconds over the limit, as INFO stats shows them.
    pub fn exceeded_ms(&self) -> (u64, u64) {
        let since = self.over_since_us.load(Ordering::Relaxed);
        let current = if since == 0 { 0 } else { (crate::util::unix_us() as u64).saturating_sub(since) };
        (current / 1000, (self.over_total_us.load(Ordering::Relaxed) + current) / 1000)
    }

    /// CONFIG RESETSTAT.
    pub fn reset_stats(&self) {
        self.over_total_us.store(0, Ordering::Relaxed);
        self.over_since_us.store(0, Ordering::Relaxed);
    }

    /// Publishes shard `st`'s evictable-key counts.
    pub fn publish(&self, shard: usize, st: &ShardState) {
        let (keys, ttl) = st.dbs.iter().fold((0, 0), |(k, t), db| (k + db.len() as u64, t + db.expires_len() as u64));
        self.keys[shard].0.store(keys, Ordering::Relaxed);
        self.keys[shard].1.store(ttl, Ordering::Relaxed);
    }

    /// Redis's `startEvictionTimeProc`: some shard's loop turn evicts (as
    /// before a command) until memory is under the limit or nothing is left.
    pub fn start_proc(&self) {
        self.proc_running.store(true, Ordering::Relaxed);
    }

    /// The loop turn that finds the time proc wanted runs it (one turn of
    /// one shard at a time: it is taken).
    #[inline]
    pub fn take_proc(&self) -> bool {
        self.proc_running.load(Ordering::Relaxed) && self.proc_running.swap(false, Ordering::Relaxed)
    }

    /// Shard `shard`'s evictable keys, as last published.
    pub fn evictable(&self, shard: usize, volatile: bool) -> u64 {
        let (k, t) = &self.keys[shard];
        if volatile { t } else { k }.load(Ordering::Relaxed)
    }

    /// After a command that may use more memory ran on a shard for a client
    /// of another (its net published by `used`): when the figure is over
    /// the limit, it is measured again now, so that the client's shard,
    /// which may check the client's next command right after the reply,
    /// evicts from an exact figure (what threads other than the shards'
    /// allocated or freed since the last measurement included). Called with
    /// a limit set only.
    pub fn refresh_if_over(&self) {
        let limit = self.limit();
        if limit == 0 || self.used() <= limit {
            return;
        }
        self.measured_us.store(crate::util::unix_us() as u64, Ordering::Relaxed);
        self.remeasure();
    }

    /// Evictable keys of every shard, as last published.
    fn evictable_total(&self, volatile: bool) -> u64 {
        self.keys.iter().map(|(k, t)| if volatile { t } else { k }.load(Ordering::Relaxed)).sum()
    }
}

/// Redis's EVPOOL_SIZE.
const POOL_SIZE: usize = 16;

/// A shard's eviction state: Redis's eviction pool (the best candidates
/// sampled so far, kept across calls) and `evicted_keys`.
#[derive(Default)]
pub struct Eviction {
    /// (score: higher goes first, db, key).
    pool: Vec<(u64, usize, Box<[u8]>)>,
    pub evicted_keys: u64,
    next_db: usize,
}

/// One eviction run (Redis's `performEvictions` loop): its settings, read
/// once, and its progress.
struct Run {
    limit: u64,
    tofree: i64,
    policy: Policy,
    volatile: bool,
    lazy: bool,
    samples: usize,
    time_limit: Option<u64>,
    start: std::time::Instant,
    /// Bytes the deletions themselves released (Redis's `mem_freed`): each
    /// victim's removal and free, measured on this thread around it (every
    /// key is freed here, its shard's own or held). What the eviction
    /// queues besides (its keyspace events, the DEL for the AOF and
    /// replicas, WATCH touches) is left out, as Redis measures only around
    /// `dbSyncDelete`: counted, the `evicted` notifications of
    /// `notify-keyspace-events KEA` (two channel strings per key, more than
    /// a small key frees) made the run's net figure fall with every victim,
    /// so it took every key and still answered -OOM (the TCL unit
    /// maxmemory's "is the memory limit honoured?").
    freed: i64,
    evicted: u64,
}

impl Run {
    /// Err(outcome) when nothing is to be evicted: under the limit (Ok), or
    /// over it with `noeviction` (Fail). The caller published its counts.
    fn begin(mem: &Memory, limit: u64) -> Result<Run, Evict> {
        let used = mem.used();
        mem.note_over(used > limit);
        if used <= limit {
            return Err(Evict::Ok);
        }
        let policy = mem.policy();
        if policy == Policy::NoEviction {
            return Err(Evict::Fail);
        }
        Ok(Run {
            limit,
            tofree: (used - limit) as i64,
            policy,
            volatile: policy.volatile(),
            lazy: mem.lazy.load(Ordering::Relaxed),
            samples: mem.samples.load(Ordering::Relaxed).max(1) as usize,
            time_limit: mem.time_limit_us(),
            start: std::time::Instant::now(),
            freed: 0,
            evicted: 0,
        })
    }

    /// The excess is freed (by the deletions, as this thread's counters saw them).
    fn freed_enough(&self) -> bool {
        self.freed >= self.tofree
    }

    /// One more key evicted, its deletion having released `freed` bytes;
    /// true: stop now (under the limit, or out of time: the time proc then
    /// goes on), checked every 16 keys as Redis.
    fn counted(&mut self, mem: &Memory, freed: i64) -> bool {
        self.freed += freed;
        self.evicted += 1;
        if !self.evicted.is_multiple_of(16) {
            return false;
        }
        if mem.used() <= self.limit {
            return true;
        }
        if self.time_limit.is_some_and(|t| self.start.elapsed().as_micros() as u64 > t) {
            mem.start_proc();
            return true;
        }
        false
    }

    /// The outcome once the loop ended (counts published again).
    fn outcome(&self, mem: &Memory, pending_free: bool) -> Evict {
        if mem.used() <= self.limit {
            Evict::Ok
        } else if mem.evictable_total(self.volatile) > 0 || (self.lazy && pending_free) {
            Evict::Running
        } else {
            Evict::Fail
        }
    }
}

/// Redis's `performEvictions` over shard `st` (this thread's own), when it
/// is the only shard with keys the policy may evict: evicts them until the
/// excess is freed, the time budget is spent (then the eviction "time proc"
/// is started, `Memory::start_proc`), or none is left. When other shards
/// have evictable keys it evicts nothing and answers `Running`: the caller
/// then evicts across them and this one (`evict_across`), so that victims
/// are chosen among all keys as Redis chooses them (evicting this shard's
/// first would take its hot keys while colder ones live elsewhere).
pub fn perform_evictions(mem: &Memory, st: &mut ShardState, now_ms: i64, spare: Spare<'_>) -> Evict {
    let limit = mem.limit();
    if limit == 0 {
        return Evict::Ok;
    }
    // Kept current while a limit is set (a shard that sleeps has not
    // changed; CONFIG SET publishes every shard's).
    mem.publish(st.id, st);
    let mut run = match Run::begin(mem, limit) {
        Ok(run) => run,
        Err(outcome) => return outcome,
    };
    let mine = mem.evictable(st.id, run.volatile);
    if mem.evictable_total(run.volatile) > mine {
        return Evict::Running;
    }
    while mine > run.evicted && !run.freed_enough() {
        let Some(freed) = evict_one(st, run.policy, run.samples, now_ms, run.lazy, spare) else {
            break;
        };
        if run.counted(mem, freed) {
            break;
        }
    }
    mem.publish(st.id, st);
    add_latency_sample(st, "eviction-cycle", run.start);
    run.outcome(mem, st.lazyfree.has_pending())
}

/// A latency monitor event of `st` (at or over `latency-monitor-threshold`)
/// for the time since `start`.
fn add_latency_sample(st: &mut ShardState, event: &str, start: std::time::Instant) {
    let threshold_ms = st.config.latency_monitor_threshold_ms;
    let ms = start.elapsed().as_millis() as u64;
    if threshold_ms > 0 && ms >= threshold_ms {
        st.stats.latency.add_sample(event, ms, crate::util::unix_ms() / 1000);
    }
}

/// Redis's `performEvictions` over several shards at once: `shards`, every
/// one reachable through `set` (the calling thread's own and those it holds).
/// The connection's shard calls it before a command when used memory is over
/// the limit and other shards have evictable keys (`network::maxmemory`):
/// the victims are then chosen across the shards as Redis chooses them
/// across databases (a random shard weighted by its evictable keys for the
/// random policies; for the others each shard's pool is refilled and the
/// best candidate of all pools goes), until the excess is freed, the time
/// budget is spent, or nothing evictable is left.
pub fn evict_across(mem: &Memory, set: &mut ShardSet, shards: ShardMask, now_ms: i64, spare: Spare<'_>) -> Evict {
    let limit = mem.limit();
    if limit == 0 {
        return Evict::Ok;
    }
    for s in shards.iter() {
        mem.publish(s, set.get(s));
    }
    let mut run = match Run::begin(mem, limit) {
        Ok(run) => run,
        Err(outcome) => return outcome,
    };
    let mut misses = 0;
    while !run.freed_enough() {
        let Some(s) = victim_shard(set, shards, run.policy, run.samples, now_ms) else {
            break;
        };
        let st = set.get_mut(s);
        // The pools were refilled by `victim_shard`: only the pick is left.
        let victim = match run.policy {
            Policy::AllKeysRandom | Policy::VolatileRandom => random_victim(st, run.volatile, spare),
            _ => pool_pick(st, run.volatile, spare),
        };
        let Some(freed) = victim.and_then(|(db, key)| delete_victim(st, db, &key, run.lazy)) else {
            // Every candidate of that pool had gone (or is spared): refill
            // and retry, a few times at most.
            misses += 1;
            if misses > 16 {
                break;
            }
            continue;
        };
        if run.counted(mem, freed) {
            break;
        }
    }
    let mut pending_free = false;
    for s in shards.iter() {
        let st = set.get(s);
        mem.publish(s, st);
        pending_free |= st.lazyfree.has_pending();
    }
    // Recorded on the run's lowest shard (LATENCY merges every shard's events).
    if let Some(first) = shards.iter().next() {
        add_latency_sample(set.get_mut(first), "eviction-cycle", run.start);
    }
    run.outcome(mem, pending_free)
}

/// The shard of `shards` the next victim comes from (None: no evictable key
/// in any). Random policies: a shard drawn with a weight of its evictable
/// keys. Pool policies: every shard's pool is refilled, and the shard whose
/// pool holds the best candidate is chosen (its `evict_one` then takes it).
fn victim_shard(set: &mut ShardSet, shards: ShardMask, policy: Policy, samples: usize, now_ms: i64) -> Option<usize> {
    let volatile = policy.volatile();
    let count = |st: &ShardState| st.dbs.iter().map(|db| if volatile { db.expires_len() } else { db.len() } as u64).sum::<u64>();
    if matches!(policy, Policy::AllKeysRandom | Policy::VolatileRandom) {
        let total: u64 = shards.iter().map(|s| count(set.get(s))).sum();
        if total == 0 {
            return None;
        }
        let first = shards.iter().next()?;
        let mut pick = xorshift(&mut set.get_mut(first).rng) % total;
        for s in shards.iter() {
            let n = count(set.get(s));
            if pick < n {
                return Some(s);
            }
            pick -= n;
        }
        return None;
    }
    let mut best: Option<(u64, usize)> = None;
    for s in shards.iter() {
        let st = set.get_mut(s);
        if count(st) == 0 {
            continue;
        }
        pool_populate(st, policy, samples, now_ms);
        if let Some(top) = st.eviction.pool.iter().map(|(score, _, _)| *score).max() {
            if best.is_none_or(|(b, _)| top > b) {
                best = Some((top, s));
            }
        }
    }
    best.map(|(_, s)| s)
}

/// Picks and deletes one key by `policy`: the bytes its deletion released
/// (`delete_victim`), None when none may go. A key `spare` names is not taken.
fn evict_one(st: &mut ShardState, policy: Policy, samples: usize, now_ms: i64, lazy: bool, spare: Spare<'_>) -> Option<i64> {
    let volatile = policy.volatile();
    let victim = match policy {
        Policy::AllKeysRandom | Policy::VolatileRandom => random_victim(st, volatile, spare),
        _ => {
            pool_populate(st, policy, samples, now_ms);
            pool_pick(st, volatile, spare)
        }
    };
    victim.and_then(|(db, key)| delete_victim(st, db, &key, lazy))
}

/// Deletes evicted `key` of database `db`: the bytes the removal and free
/// released on this thread (with `lazy`, the value's share goes to the
/// lazy-free thread and is not in it, as in Redis), its slot's 72 B
/// included (`note_spare_slot_bytes`); None: it was gone.
fn delete_victim(st: &mut ShardState, db: usize, key: &[u8], lazy: bool) -> Option<i64> {
    let threshold_ms = st.config.latency_monitor_threshold_ms;
    let start = (threshold_ms > 0).then(std::time::Instant::now);
    let net_before = thread_net();
    let entry = st.dbs[db].remove(key)?;
    if lazy {
        st.lazyfree.free(entry.value);
    } else {
        drop(entry);
    }
    let freed = net_before - thread_net();
    // Redis's `eviction-del` latency event: the deletion (and free) of one victim.
    if let Some(start) = start {
        add_latency_sample(st, "eviction-del", start);
    }
    // Redis's deletion of an evicted key: propagated as DEL, WATCH touched,
    // `evicted` notified, counted; not a write for the dirty counter.
    st.stream.expired_now(db, key);
    st.also_modified(db, key);
    st.notify(db, crate::messaging::notify::EVICTED, "evicted", key);
    st.eviction.evicted_keys += 1;
    Some(freed)
}

/// allkeys-random / volatile-random: a random key of the next database
/// (round robin, as Redis's `next_db`) that has one. A drawn key `spare`
/// names gives its place to the next one (a pending hop marks few keys).
fn random_victim(st: &mut ShardState, volatile: bool, spare: Spare<'_>) -> Option<(usize, Box<[u8]>)> {
    let n = st.dbs.len();
    for _ in 0..n {
        let db = st.eviction.next_db % n;
        st.eviction.next_db += 1;
        let map = &st.dbs[db].map;
        let len = if volatile { map.ttl_len() } else { map.len() };
        if len == 0 {
            continue;
        }
        let i = (xorshift(&mut st.rng) % len as u64) as usize;
        let found = (0..len).map(|j| (i + j) % len).find_map(|i| {
            let key = map.at(if volatile { map.ttl_position(i) } else { i }).0;
            (!spare(st.id, key)).then(|| key.into())
        });
        if let Some(key) = found {
            return Some((db, key));
        }
    }
    None
}

/// The score of an entry under `policy`: higher is a better victim.
fn score(policy: Policy, e: &super::Entry, now_ms: i64) -> u64 {
    match policy {
        // Sooner expiry first.
        Policy::VolatileTtl => u64::MAX - e.expire_at_ms.max(0) as u64,
        // The less used first (Redis's 255 - LFUDecrAndReturn).
        Policy::AllKeysLfu | Policy::VolatileLfu => 255 - super::lfu::counter(e.access_ms, now_ms) as u64,
        // Idle time.
        _ => (now_ms - e.access_ms).max(0) as u64,
    }
}

/// Redis's `evictionPoolPopulate`: `samples` keys of every database of `st`
/// enter its pool when they beat its worst candidate.
fn pool_populate(st: &mut ShardState, policy: Policy, samples: usize, now_ms: i64) {
    let volatile = policy.volatile();
    let mut rng = st.rng;
    for (dbi, db) in st.dbs.iter().enumerate() {
        let map = &db.map;
        let len = if volatile { map.ttl_len() } else { map.len() };
        if len == 0 {
            continue;
        }
        // A database no bigger than the sample is taken whole (Redis's
        // dictGetSomeKeys returns distinct keys).
        for n in 0..samples.min(len) {
            let i = if len <= samples { n } else { (xorshift(&mut rng) % len as u64) as usize };
            let pos = if volatile { map.ttl_position(i) } else { i };
            let (key, e) = map.at(pos);
            let s = score(policy, e, now_ms);
            let pool = &mut st.eviction.pool;
            if pool.iter().any(|(_, d, k)| *d == dbi && &k[..] == key) {
                continue;
            }
            if pool.len() < POOL_SIZE {
                pool.push((s, dbi, key.into()));
            } else if let Some(worst) = pool.iter_mut().min_by_key(|(sc, _, _)| *sc).filter(|(sc, _, _)| *sc < s) {
                *worst = (s, dbi, key.into());
            }
        }
    }
    st.rng = rng;
}

/// The best candidate of `st`'s pool that still exists (a candidate deleted,
/// or its TTL removed, since it was sampled is dropped; so is one `spare`
/// names, sampled again later).
fn pool_pick(st: &mut ShardState, volatile: bool, spare: Spare<'_>) -> Option<(usize, Box<[u8]>)> {
    while !st.eviction.pool.is_empty() {
        let best = (0..st.eviction.pool.len()).max_by_key(|&i| st.eviction.pool[i].0).unwrap();
        let (_, db, key) = st.eviction.pool.swap_remove(best);
        let ok = st.dbs[db].map.get(&key).is_some_and(|e| !volatile || e.expire_at_ms >= 0) && !spare(st.id, &key);
        if ok {
            return Some((db, key));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::keyspace::Value;

    fn shard() -> ShardState {
        ShardState::new(0, 1, Config::default())
    }

    /// Spares nothing.
    const NONE: Spare<'static> = &|_, _| false;

    #[test]
    fn spared_keys_are_not_evicted() {
        for policy in [Policy::AllKeysRandom, Policy::VolatileRandom, Policy::AllKeysLru, Policy::VolatileTtl, Policy::AllKeysLfu] {
            let mut st = shard();
            for k in [&b"hop"[..], b"other"] {
                st.dbs[0].set(k, Value::from_bytes(b"v"), 1000, false);
                st.dbs[0].set_expire(k, 10_000_000);
            }
            let spare: Spare<'_> = &|shard, key| shard == 0 && key == b"hop";
            assert!(evict_one(&mut st, policy, 5, 2000, false, spare).is_some(), "{policy:?}");
            assert!(evict_one(&mut st, policy, 5, 2000, false, spare).is_none(), "{policy:?}");
            assert!(st.dbs[0].map.get(b"hop").is_some(), "{policy:?}");
            assert!(st.dbs[0].map.get(b"other").is_none(), "{policy:?}");
            // Once the hop is done the key may go.
            assert!(evict_one(&mut st, policy, 5, 2000, false, NONE).is_some(), "{policy:?}");
            assert!(st.dbs[0].is_empty());
        }
    }

    #[test]
    fn tenacity_limits_as_redis() {
        let m = Memory::new(1);
        let mut c = Config::default();
        for (t, us) in [(0, Some(0)), (10, Some(500)), (11, Some(575)), (100, None)] {
            c.others.insert("maxmemory-eviction-tenacity".into(), t.to_string());
            m.apply_config(&c);
            assert_eq!(m.time_limit_us(), us);
        }
    }

    #[test]
    fn volatile_policies_never_take_keys_without_ttl() {
        for policy in [Policy::VolatileRandom, Policy::VolatileTtl, Policy::VolatileLru, Policy::VolatileLfu] {
            let mut st = shard();
            for i in 0..50 {
                st.dbs[0].set(format!("k{i}").as_bytes(), Value::from_bytes(b"v"), 1000, false);
            }
            st.dbs[0].set(b"t", Value::from_bytes(b"v"), 1000, false);
            st.dbs[0].set_expire(b"t", 10_000_000);
            assert!(evict_one(&mut st, policy, 5, 2000, false, NONE).is_some());
            assert!(evict_one(&mut st, policy, 5, 2000, false, NONE).is_none(), "{policy:?}");
            assert_eq!(st.dbs[0].len(), 50);
            assert!(st.dbs[0].map.get(b"t").is_none());
            assert_eq!(st.eviction.evicted_keys, 1);
        }
    }

    #[test]
    fn evicted_key_is_notified_and_propagated() {
        let mut st = shard();
        st.config.notify_keyspace_events = crate::messaging::notify::parse(b"Ee").unwrap();
        st.dbs[0].set(b"k", Value::from_bytes(b"v"), 1000, false);
        assert!(evict_one(&mut st, Policy::AllKeysRandom, 5, 2000, false, NONE).is_some());
        assert_eq!(st.pending_publish, vec![(b"__keyevent@0__:evicted".to_vec(), b"k".to_vec())]);
        assert!(st.dbs[0].is_empty());
    }

    #[test]
    fn lru_prefers_idle_keys_and_ttl_the_soonest() {
        let mut st = shard();
        for i in 0..10 {
            st.dbs[0].set(format!("k{i}").as_bytes(), Value::from_bytes(b"v"), 1000 + i, false);
            st.dbs[0].set_expire(format!("k{i}").as_bytes(), 100_000 - i);
        }
        pool_populate(&mut st, Policy::AllKeysLru, 10, 5000);
        assert_eq!(pool_pick(&mut st, false, NONE).unwrap().1.as_ref(), b"k0");
        st.eviction.pool.clear();
        pool_populate(&mut st, Policy::VolatileTtl, 10, 5000);
        assert_eq!(pool_pick(&mut st, true, NONE).unwrap().1.as_ref(), b"k9");
    }

    #[test]
    fn victims_are_chosen_across_shards() {
        let mut a = ShardState::new(0, 2, Config::default());
        let mut b = ShardState::new(1, 2, Config::default());
        for i in 0..20 {
            a.dbs[0].set(format!("a{i}").as_bytes(), Value::from_bytes(b"v"), 5000, false);
            b.dbs[0].set(format!("b{i}").as_bytes(), Value::from_bytes(b"v"), 5000 + i, false);
        }
        // The idlest key of both lives on shard 1.
        b.dbs[0].set(b"cold", Value::from_bytes(b"v"), 10, false);
        let mut set = ShardSet::new(2);
        // SAFETY: both states outlive `set`'s use below and nothing else
        // touches them meanwhile.
        unsafe {
            set.set(0, &mut a);
            set.set(1, &mut b);
        }
        let mask = ShardMask::all(2);
        assert_eq!(victim_shard(&mut set, mask, Policy::AllKeysLru, 30, 9000), Some(1));
        assert_eq!(pool_pick(set.get_mut(1), false, NONE).unwrap().1.as_ref(), b"cold");
        // Random: weighted by evictable keys, never a shard without any.
        for db in set.get_mut(1).dbs.iter_mut() {
            *db = crate::shard::keyspace::Db::new();
        }
        for _ in 0..50 {
            assert_eq!(victim_shard(&mut set, mask, Policy::AllKeysRandom, 5, 9000), Some(0));
        }
        assert_eq!(victim_shard(&mut set, mask, Policy::VolatileRandom, 5, 9000), None);
    }

    /// What a check costs: `cargo test --release --lib memory::tests::check_cost
    /// -- --ignored --nocapture` (perf/RESULTS.md).
    #[test]
    #[ignore]
    fn check_cost() {
        let m = Memory::new(1);
        let n = 2_000_000u32;
        let t = std::time::Instant::now();
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(m.limit());
        }
        let off = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        for _ in 0..n {
            sum = sum.wrapping_add(m.used());
        }
        let on = t.elapsed().as_nanos() as f64 / n as f64;
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            sum = sum.wrapping_add(measure_now());
        }
        let epoch = t.elapsed().as_nanos() as f64 / 1000.0;
        println!("check: maxmemory 0 {off:.1} ns, with a limit {on:.1} ns; epoch refresh {epoch:.0} ns ({sum})");
    }
}
