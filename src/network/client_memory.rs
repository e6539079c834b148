//! Client eviction: `maxmemory-clients` (Redis 7.0's `evictClients`), and
//! the one figure of a client's memory every reader takes.
//!
//! What a client costs is `ClientMem::total`, CLIENT LIST's `tot-mem=`,
//! made of the parts `Conn::mem` reads (the only place they are read):
//! its query buffer's capacity (Redis's `sdsZmallocSize(querybuf)`; the
//! arguments of a command still arriving lie in it, where Redis holds them
//! parsed as `argv`), its output buffers' capacity (the reply buffer and
//! the send in flight's, Redis's `buf_usable_size`, grown by big replies
//! as Redis's reply list) and the replies waiting behind other shards',
//! what its state holds (`state_bytes`: the MULTI queue, watched keys,
//! pub/sub and sharded subscriptions, tracking prefixes: Redis's
//! `multiStateMemOverhead`, `pubsubMemOverhead` and tracking prefixes) and
//! the connection itself (`CONNECTION_BYTES`, Redis's `zmalloc_size(c)`).
//! CLIENT LIST adds, for the client running it, the arguments of that
//! command (`argv-mem=`, Redis's `argv_len_sum`). The same parts give
//! `qbuf=`, `qbuf-free=`, `omem=` (output not yet sent, the size
//! `client-output-buffer-limit` checks), INFO's `mem_clients_normal` and
//! MEMORY STATS/DOCTOR's client figures: the client registry holds a copy
//! of `Conn::mem` as last written (`ClientInfo::mem`), never a figure
//! summed another way, so none can drift from another.
//!
//! While `maxmemory-clients` is set, each shard's loop keeps that figure
//! for each of its connections (`Conn::mem_bytes`), their sum and Redis's
//! size buckets (powers of two from 32 KiB to 8 GiB, `bucket_of`) of the
//! clients that may be evicted, and publishes the sum and its highest
//! non-empty bucket in `ClientMemory` (relaxed atomics, one cache line per
//! shard, written only by that shard's thread): the server-wide total and
//! where the largest clients are is a few loads from any thread, no lock.
//! The figure is brought up to date, when it left the window of its last
//! count (`window`: 1/64 of it, and never across a bucket's boundary),
//! after each command of the client (its state, and then whatever the
//! change, when the command changed it), after each output append to it
//! from elsewhere (a PUBLISH, a tracking push, a MONITOR line: the
//! output-buffer limit's check, which goes first and whose close
//! therefore takes precedence), after each receive that grew its query
//! buffer (a big argument still arriving), when a send drains its output
//! and in the cron. Over the limit, the shard evicts from the top bucket
//! of the whole server, largest first, until under it: its own clients
//! when it holds that bucket, otherwise it asks the shard that does
//! (`ShardClients::evict_wanted` and a doorbell). `CONFIG SET
//! maxmemory-clients` (and `maxmemory`, for the percent form) evicts
//! synchronously from the client registries of every shard, which it
//! holds, so the next CLIENT LIST already misses the evicted clients.
//!
//! "Over the limit" is at or above it, as Redis's `evictClients` loop
//! (`>=`): evicting stops once the total is below the limit.
//!
//! Exempt as in Redis's `clientEvictionAllowed`: clients with CLIENT
//! NO-EVICT on, and replicas (their connections live on the replication
//! thread). Evicted clients are logged ("Evicting client: ...") and
//! counted in INFO's `evicted_clients`.
//!
//! Cost: with `maxmemory-clients 0` (the default) a command pays one test
//! of a field of its own loop (`ClientMemoryLocal::limit_bytes`) and a turn
//! one relaxed load (the configuration epoch); with a limit, a command
//! whose figure stayed in its window a few loads and compares. See
//! perf/RESULTS.md "clientevict19" and "evict20" for the instruction
//! counts with and without a limit.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::conn::{Closing, Conn};
use super::event_loop::EventLoop;
use crate::commands::ClientState;
use crate::config::Config;
use crate::shard::ClientInfo;

/// The fixed part of a client's figure: the connection's state and its
/// registry entry (Redis counts `zmalloc_size(c)`, its `client` struct).
pub const CONNECTION_BYTES: usize = std::mem::size_of::<Conn>() + std::mem::size_of::<ClientInfo>();

/// A client's memory in the parts CLIENT LIST shows (see the module's
/// notes): what `Conn::mem` reads, and what the client registry keeps of
/// it (`ClientInfo::mem`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientMem {
    /// Query buffer bytes not run yet, and its capacity.
    pub qbuf_len: usize,
    pub qbuf_cap: usize,
    /// Of `qbuf_len`, the frame's bytes before a big argument still
    /// arriving (`argv-mem=`, as Redis holds them parsed; `qbuf=` then
    /// counts from the big argument, as Redis's).
    pub qbuf_args: usize,
    /// Output not yet handed to the kernel (`omem=`, the size
    /// `client-output-buffer-limit` checks): the reply buffer's bytes, the
    /// send in flight's rest, replies waiting behind other shards'.
    pub out_pending: usize,
    /// Output memory held: the reply buffer's and the send buffer's
    /// capacity, and the replies waiting behind other shards'.
    pub out_alloc: usize,
    /// What the client's state holds (`state_bytes`), as last counted, and
    /// of it the MULTI queue's (`multi-mem=`).
    pub state: usize,
    pub multi: usize,
}

impl ClientMem {
    /// `tot-mem=` (less the running command's arguments, which only
    /// CLIENT LIST's caller adds), the figure `maxmemory-clients` counts
    /// and INFO's `mem_clients_normal` sums.
    #[inline(always)]
    pub fn total(&self) -> usize {
        self.qbuf_cap + self.out_alloc + self.state + CONNECTION_BYTES
    }

    /// `qbuf=`.
    pub fn qbuf(&self) -> usize {
        self.qbuf_len - self.qbuf_args
    }

    /// `qbuf-free=`.
    pub fn qbuf_free(&self) -> usize {
        self.qbuf_cap - self.qbuf_len
    }
}

/// Redis's `CLIENT_MEM_USAGE_BUCKET_MIN_LOG` / `MAX_LOG`: the smallest
/// bucket holds clients up to 32 KiB, the largest every client of 8 GiB
/// and more.
const BUCKET_MIN_LOG: u32 = 15;
const BUCKET_MAX_LOG: u32 = 33;
pub const BUCKETS: usize = (BUCKET_MAX_LOG - BUCKET_MIN_LOG + 1) as usize;

/// The part of a client's figure by which it may move before it is counted
/// again: 1/64 of it (at least 512 B, a connection's figure being at least
/// its two 16 KiB output buffers). See `window`.
const SLACK_SHIFT: u32 = 6;

/// The window `[lo, hi)` around a client's counted figure `bytes` within
/// which a new figure is not counted: within the slack either way and
/// within the same power of two, so that the client's bucket (`bucket_of`,
/// a bit length) is always its exact figure's, and the shard's sum is
/// short or over by less than 1/64 of each client's figure.
///
/// Why: counting rewrites the registry entry (CLIENT LIST), the shard's
/// sum (a store other shards read) and reads every shard's sum to compare
/// with the limit; done after every command, that was ~200 instructions a
/// request (GET +15%, SET +11% with `-P 16`, perf/RESULTS.md
/// "clientevict19"), because each pipelined reply grew the output. Redis
/// recounts a client's bucket after each command too
/// (`updateClientMemUsageAndBucket`), but its figure is one field it keeps
/// as it goes. What the window leaves stale is only `omem` of CLIENT LIST
/// by less than the slack: the query buffer's fields are written as they
/// change (`report_qbuf`), a change of the client's state (MULTI, WATCH,
/// subscriptions, NO-EVICT) is counted at once (`update_client_info`
/// closes the window), and a transaction's queue at each command.
pub fn window(bytes: usize) -> (usize, usize) {
    let slack = bytes >> SLACK_SHIFT;
    let floor = 1usize << (usize::BITS - 1 - bytes.max(1).leading_zeros());
    (bytes.saturating_sub(slack).max(floor), bytes.saturating_add(slack + 1).min(floor.saturating_mul(2)))
}

/// The figure of connection `conn` is still within the window of its last
/// count: nothing to do. Except once its output drained when the last
/// count saw some pending: an idle client's `tot-mem` is then exact again
/// (the TCL unit client-eviction sums idle clients' `tot-mem` against the
/// limit to the byte: a `+OK` counted as pending was 5 bytes over).
#[inline(always)]
fn settled(conn: &Conn) -> bool {
    let m = conn.mem();
    let bytes = m.total();
    bytes >= conn.mem_lo && bytes < conn.mem_hi && (m.out_pending != 0 || conn.mem_drained)
}

/// CLIENT LIST's `omem=` of a client held to an output-buffer limit (a
/// subscriber, or a `normal` class with limits) is written to the registry
/// whenever the figure the limit checks moved from what it shows by 1 KiB
/// or 1/64 of it, whichever is more (`EventLoop::output_over_limit`, and
/// the send that drains it, `EventLoop::note_sent_omem`): what a user
/// reads just before the limit closes the client is within that of the
/// limit. Every write, one per pushed message, would touch the registry's
/// line for each message to a fast subscriber (its output moves from 0 to
/// a message and back); other clients' `omem=` is the cron's (10 Hz).
const OMEM_SLACK_MIN_BYTES: usize = 1024;

#[inline(always)]
pub(super) fn omem_moved(reported: usize, pending: usize) -> bool {
    pending.abs_diff(reported) >= OMEM_SLACK_MIN_BYTES.max(reported >> SLACK_SHIFT)
}

/// The bucket of a client of `bytes` (Redis's `getMemUsageBucket`): the
/// bit length of its size, clamped to the buckets' range.
pub fn bucket_of(bytes: usize) -> usize {
    let bits = usize::BITS - bytes.leading_zeros();
    (bits.clamp(BUCKET_MIN_LOG, BUCKET_MAX_LOG) - BUCKET_MIN_LOG) as usize
}

/// Bytes a client's state holds besides its buffers: the MULTI queue,
/// watched keys, subscriptions of the three kinds and tracking prefixes,
/// each entry with the bookkeeping that keeps it (Redis counts the same
/// parts in `getClientMemoryUsage`, with its own structures' sizes).
pub fn state_bytes(c: &ClientState) -> usize {
    // An entry of a set or list: the key's bytes, its `Vec` and the
    // table's slot for it (hash and index).
    const ENTRY_BYTES: usize = std::mem::size_of::<Vec<u8>>() + 16;
    let mut n = c.multi.queued_bytes();
    n += c.watch.keys.iter().map(|k| k.key.len() + std::mem::size_of::<crate::commands::multi::WatchedKey>()).sum::<usize>();
    let p = &c.pubsub;
    for set in [&p.channels, &p.patterns, &p.shard_channels] {
        n += set.iter().map(|s| s.len() + ENTRY_BYTES).sum::<usize>();
    }
    n += c.tracking.prefixes.iter().map(|s| s.len() + ENTRY_BYTES).sum::<usize>();
    n
}

/// `maxmemory-clients` in bytes: the value, or its percent of `maxmemory`
/// (Redis's `applyClientMaxMemoryUsage`); 0 when off.
pub fn limit_from_config(c: &Config) -> usize {
    let Some(v) = c.others.get("maxmemory-clients") else {
        return 0;
    };
    match v.strip_suffix('%') {
        Some(p) => {
            let maxmemory: u128 = c.others.get("maxmemory").and_then(|m| m.parse().ok()).unwrap_or(0);
            let p: u128 = p.parse().unwrap_or(0);
            (maxmemory * p / 100).min(usize::MAX as u128) as usize
        }
        None => v.parse().unwrap_or(0),
    }
}

/// One shard's published figures (written by its thread only).
#[repr(align(64))]
#[derive(Default)]
pub struct ShardClients {
    /// The sum of its clients' figures, as last brought up to date.
    bytes: AtomicUsize,
    /// Its highest non-empty bucket of evictable clients, plus one (0: none).
    top_bucket: AtomicUsize,
    /// Another shard found the server over the limit while this shard
    /// held the top bucket: evict at the next loop turn.
    evict_wanted: AtomicBool,
    /// Clients of this shard `evict_held` marked killed that its loop has
    /// not closed yet: their figures are still in `bytes`.
    victims_unclosed: AtomicUsize,
}

/// The server-wide side of client eviction (see the module's notes).
pub struct ClientMemory {
    limit_bytes: AtomicUsize,
    /// Moves whenever the limit does: each loop then takes the new limit
    /// and recounts its clients (nothing is counted while it is off).
    epoch: AtomicU64,
    shards: Vec<ShardClients>,
    /// INFO's `evicted_clients`.
    pub evicted_clients: AtomicU64,
}

impl ClientMemory {
    pub fn new(shard_count: usize) -> ClientMemory {
        ClientMemory {
            limit_bytes: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            shards: (0..shard_count).map(|_| ShardClients::default()).collect(),
            evicted_clients: AtomicU64::new(0),
        }
    }

    /// Takes `maxmemory-clients` (and `maxmemory`) from `c`; returns the
    /// limit when it changed.
    pub fn apply_config(&self, c: &Config) -> Option<usize> {
        let limit = limit_from_config(c);
        if self.limit_bytes.swap(limit, Ordering::Relaxed) == limit {
            return None;
        }
        self.epoch.fetch_add(1, Ordering::Release);
        Some(limit)
    }

    pub fn limit(&self) -> usize {
        self.limit_bytes.load(Ordering::Relaxed)
    }

    /// The sum over every shard's clients.
    pub fn total_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.bytes.load(Ordering::Relaxed)).sum()
    }

    /// Whether clients CONFIG SET evicted still count in some shard's sum
    /// (their loops close them at their next turn). Until then the total
    /// overstates what is left by their figures, and a loop that evicted
    /// on it took the clients CONFIG SET had spared: the TCL unit
    /// client-eviction's "decrease maxmemory-clients causes client
    /// eviction" found none of its ten left at 2 shards (1 run in 8).
    fn victims_unclosed(&self) -> bool {
        self.shards.iter().any(|s| s.victims_unclosed.load(Ordering::Acquire) != 0)
    }

    /// The shard holding the highest non-empty bucket (`prefer` on a tie)
    /// and that bucket plus one; 0 when no client may be evicted.
    fn top(&self, prefer: usize) -> (usize, usize) {
        let mut best = (prefer, self.shards[prefer].top_bucket.load(Ordering::Relaxed));
        for (s, sh) in self.shards.iter().enumerate() {
            let t = sh.top_bucket.load(Ordering::Relaxed);
            if t > best.1 {
                best = (s, t);
            }
        }
        best
    }
}

/// A loop's own side: the limit it works with, the counts of its
/// evictable clients per bucket, its sum.
#[derive(Default)]
pub struct ClientMemoryLocal {
    /// `ClientMemory::limit` as of `epoch` (0: nothing is counted).
    pub limit_bytes: usize,
    epoch: u64,
    buckets: [u32; BUCKETS],
    bytes: usize,
    /// An output append or a receive put the server over the limit: evict
    /// when the command (or the turn) is done.
    pub evict_pending: bool,
}

impl ClientMemoryLocal {
    fn top(&self) -> usize {
        self.buckets.iter().rposition(|&n| n > 0).map_or(0, |b| b + 1)
    }
}

impl ClientInfo {
    /// CLIENT LIST's `tot-mem=` for a client whose command has
    /// `argv_bytes` of arguments (0 for every other client).
    pub fn memory_bytes(&self, argv_bytes: usize) -> usize {
        self.mem.total() + argv_bytes
    }
}

/// The log line of an evicted client (Redis's, at its `notice` level).
fn log_evicted(line: &str) {
    crate::notice!("Evicting client: {}", line);
}

/// `CONFIG SET maxmemory-clients` (or `maxmemory`) while every shard is
/// held: evicts, largest first, until the registries' total is below the
/// new limit (Redis's `evictClients` called by `applyClientMaxMemoryUsage`).
/// The victims are marked killed (CLIENT LIST misses them from now on) and
/// closed by their loops at their next turn. Returns how many.
pub fn evict_held(ctx: &mut crate::commands::Ctx, limit: usize) -> usize {
    if limit == 0 {
        return 0;
    }
    let mut total = 0usize;
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for s in 0..ctx.shard_count {
        for (i, slot) in ctx.shard(s).clients.iter().enumerate() {
            let Some(info) = slot.as_ref() else {
                continue;
            };
            if info.kill_requested {
                continue;
            }
            let bytes = info.mem.total();
            total += bytes;
            if !info.no_evict {
                candidates.push((bytes, s, i));
            }
        }
    }
    if total < limit {
        return 0;
    }
    // Largest first: the top bucket first as Redis, and within it the largest.
    candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    let mut evicted = 0;
    let now_ms = ctx.now_ms;
    for (bytes, s, i) in candidates {
        if total < limit {
            break;
        }
        let mut line = String::new();
        let info = ctx.shard_mut(s).clients[i].as_mut().unwrap();
        crate::commands::client::client_line(info, now_ms, 0, &mut line);
        info.kill_requested = true;
        if let Some(w) = &info.blocked {
            w.claim(crate::messaging::blocking::GONE);
        }
        ctx.server.client_memory.shards[s].victims_unclosed.fetch_add(1, Ordering::AcqRel);
        log_evicted(line.trim_end());
        total -= bytes;
        evicted += 1;
    }
    // Counted out now, as CLIENT KILL's victims; their loops close them.
    ctx.server.connected_clients.fetch_sub(evicted, Ordering::AcqRel);
    ctx.server.client_memory.evicted_clients.fetch_add(evicted as u64, Ordering::Relaxed);
    // Their loops close them at their next turn, before any eviction of
    // their own (which would still count them).
    ctx.server.client_memory.epoch.fetch_add(1, Ordering::Release);
    evicted
}

impl EventLoop {
    /// After an output append to connection `index` (the output-buffer
    /// limit checked first) or a receive into its query buffer: its figure
    /// brought up to date; over the limit, eviction waits for the end of
    /// the command or turn (`evict_pending`), where closing any client is
    /// safe. Inlined up to the test of the limit.
    #[inline(always)]
    pub fn client_memory_note(&mut self, index: u32) {
        if self.client_mem.limit_bytes != 0 && !self.conns[index as usize].as_ref().is_some_and(settled) {
            self.note_client_memory(index);
        }
    }

    #[inline(never)]
    fn note_client_memory(&mut self, index: u32) {
        self.account_client(index, false);
    }

    /// After a command of connection `index` (and the output-buffer limit):
    /// its figure brought up to date, then eviction if the server is over
    /// the limit. Returns whether `index` itself was evicted.
    #[inline(always)]
    pub fn client_memory_after_command(&mut self, index: u32) -> bool {
        if self.client_mem.limit_bytes == 0 {
            return false;
        }
        self.client_memory_check(index)
    }

    #[inline(never)]
    fn client_memory_check(&mut self, index: u32) -> bool {
        // A transaction's queue grows without a change CLIENT LIST shows
        // otherwise (`update_client_info` recounts the rest).
        let Some(conn) = self.conns[index as usize].as_ref() else {
            return true;
        };
        let queueing = conn.client.multi.active;
        // Most commands leave the figure within its window (a pipelined
        // reply or two more in the output): nothing moved, nothing to
        // evict that the last count did not find.
        if !queueing && !self.client_mem.evict_pending && settled(conn) {
            return false;
        }
        self.account_client(index, queueing);
        if self.client_mem.evict_pending || self.server.client_memory.total_bytes() >= self.client_mem.limit_bytes {
            self.evict_clients();
        }
        self.conns[index as usize].as_ref().is_none_or(|c| c.closing == Closing::Closed)
    }

    /// After a receive grew connection `index`'s query buffer: its figure
    /// brought up to date and, over the limit, eviction at once (no command
    /// runs here). Returns whether `index` itself was evicted.
    #[inline(always)]
    pub fn client_memory_after_receive(&mut self, index: u32) -> bool {
        if self.client_mem.limit_bytes == 0 {
            return false;
        }
        self.client_memory_check(index)
    }

    /// The cron's visit of connection `index`: counted afresh, its state's
    /// part too (CLIENT LIST's `tot-mem` follows the state even while
    /// `maxmemory-clients` is off: then only the registry is written).
    pub(super) fn client_memory_cron(&mut self, index: u32) {
        if self.client_mem.limit_bytes != 0 {
            self.account_client(index, true);
            return;
        }
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        conn.mem_state_bytes = state_bytes(&conn.client);
        conn.mem_multi_bytes = conn.client.multi.queued_bytes();
        self.write_client_mem(index);
    }

    /// Writes connection `index`'s figure (`Conn::mem`) to its registry
    /// entry: CLIENT LIST, INFO and CONFIG SET's eviction read it there.
    pub(super) fn write_client_mem(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        let mem = conn.mem();
        conn.omem_reported = mem.out_pending;
        if let Some(info) = self.set.get_mut(self.id).clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.mem = mem;
        }
    }

    /// A send of connection `index` ended: CLIENT LIST's `omem=`, when the
    /// output-limit check last wrote it (`omem_moved`), follows the drain.
    #[inline(always)]
    pub(super) fn note_sent_omem(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        if conn.omem_reported != 0 && omem_moved(conn.omem_reported, conn.pending_output_bytes()) {
            self.write_client_mem(index);
        }
    }

    /// Once per loop turn: a new limit taken (all clients recounted), an
    /// eviction pending here or asked for by another shard done.
    #[inline(always)]
    pub fn client_memory_turn(&mut self) {
        let epoch = self.server.client_memory.epoch.load(Ordering::Acquire);
        if epoch != self.client_mem.epoch {
            self.recount_clients(epoch);
        }
        if self.client_mem.limit_bytes != 0 && (self.client_mem.evict_pending || self.server.client_memory.shards[self.id].evict_wanted.load(Ordering::Relaxed))
        {
            self.evict_clients();
        }
    }

    /// A new limit: clients CONFIG SET evicted are closed, every other
    /// one counted afresh (or forgotten, when the limit is now 0).
    #[inline(never)]
    fn recount_clients(&mut self, epoch: u64) {
        self.client_mem.epoch = epoch;
        self.client_mem.limit_bytes = self.server.client_memory.limit();
        for index in 0..self.conns.len() as u32 {
            let Some(conn) = self.conns[index as usize].as_ref() else {
                continue;
            };
            if conn.closing == Closing::Closed {
                continue;
            }
            let killed = self.state().clients.get(index as usize).and_then(|i| i.as_ref()).is_some_and(|i| i.kill_requested);
            if killed {
                self.close(index);
                self.maybe_release(index);
                continue;
            }
            if self.client_mem.limit_bytes == 0 {
                self.forget_client_memory(index);
            } else {
                self.account_client(index, true);
            }
        }
        // Every victim of this shard is closed (and out of its sum).
        self.server.client_memory.shards[self.id].victims_unclosed.store(0, Ordering::Release);
    }

    /// Connection `index`'s figure recomputed (its state's part too when
    /// `state`), written to the registry
    /// (CLIENT LIST's `tot-mem`) and moved in the shard's sum and buckets.
    pub(super) fn account_client(&mut self, index: u32, state: bool) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        if conn.closing == Closing::Closed {
            return;
        }
        if state {
            conn.mem_state_bytes = state_bytes(&conn.client);
            conn.mem_multi_bytes = conn.client.multi.queued_bytes();
        }
        let mem = conn.mem();
        let bytes = mem.total();
        // Replicas are never evicted (their connections leave this loop).
        let evictable = !conn.client.no_evict && !conn.detached && conn.client.repl.sync.is_none();
        let bucket = if evictable { bucket_of(bytes) + 1 } else { 0 };
        let (old_bytes, old_bucket) = (conn.mem_bytes, conn.mem_bucket as usize);
        conn.mem_bytes = bytes;
        conn.mem_bucket = bucket as u8;
        (conn.mem_lo, conn.mem_hi) = window(bytes);
        conn.mem_drained = mem.out_pending == 0;
        conn.qbuf_reported = (mem.qbuf_len, mem.qbuf_cap);
        conn.omem_reported = mem.out_pending;
        if let Some(info) = self.set.get_mut(self.id).clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.mem = mem;
        }
        self.move_client_memory(old_bytes, old_bucket, bytes, bucket);
        // Over the limit: evicted at the end of the command or turn. Every
        // count asks, the cron's too: the checks that follow find the
        // figure within its window and would not ask again.
        if self.server.client_memory.total_bytes() >= self.client_mem.limit_bytes {
            self.client_mem.evict_pending = true;
        }
    }

    /// A closed connection (or a limit turned off) leaves the sum and buckets.
    pub(super) fn forget_client_memory(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        (conn.mem_lo, conn.mem_hi) = (0, 0);
        let (old_bytes, old_bucket) = (conn.mem_bytes, conn.mem_bucket as usize);
        if old_bytes == 0 && old_bucket == 0 {
            return;
        }
        conn.mem_bytes = 0;
        conn.mem_bucket = 0;
        self.move_client_memory(old_bytes, old_bucket, 0, 0);
    }

    fn move_client_memory(&mut self, old_bytes: usize, old_bucket: usize, bytes: usize, bucket: usize) {
        let local = &mut self.client_mem;
        local.bytes = local.bytes + bytes - old_bytes;
        let shared = &self.server.client_memory.shards[self.id];
        shared.bytes.store(local.bytes, Ordering::Relaxed);
        if old_bucket != bucket {
            if old_bucket != 0 {
                local.buckets[old_bucket - 1] -= 1;
            }
            if bucket != 0 {
                local.buckets[bucket - 1] += 1;
            }
            shared.top_bucket.store(local.top(), Ordering::Relaxed);
        }
    }

    /// Redis's `evictClients`: while the server's clients are over the
    /// limit, the largest client of the top bucket goes, if it is here;
    /// if another shard holds the top bucket, that shard is asked to go on.
    #[inline(never)]
    pub(super) fn evict_clients(&mut self) {
        self.client_mem.evict_pending = false;
        let server = self.server.clone();
        let cm = &server.client_memory;
        cm.shards[self.id].evict_wanted.store(false, Ordering::Relaxed);
        // A CONFIG SET since this turn began: its limit and its victims first.
        let epoch = cm.epoch.load(Ordering::Acquire);
        if epoch != self.client_mem.epoch {
            self.recount_clients(epoch);
        }
        // CONFIG SET's victims elsewhere not closed yet: the total still
        // counts them (see `victims_unclosed`). The cron's count asks again.
        if cm.victims_unclosed() {
            return;
        }
        let now = self.clock.now_ms();
        loop {
            let limit = self.client_mem.limit_bytes;
            if limit == 0 || cm.total_bytes() < limit {
                return;
            }
            let (shard, top) = cm.top(self.id);
            if top == 0 {
                return;
            }
            if shard != self.id {
                cm.shards[shard].evict_wanted.store(true, Ordering::Relaxed);
                self.doorbells.insert(shard);
                return;
            }
            let victim = self
                .conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().filter(|c| c.closing != Closing::Closed && c.mem_bucket as usize == top).map(|c| (c.mem_bytes, i)))
                .max();
            let Some((_, victim)) = victim else {
                return;
            };
            let line = self.client_info_line(victim as u32, now);
            log_evicted(&line);
            cm.evicted_clients.fetch_add(1, Ordering::Relaxed);
            self.close_by_server(victim as u32);
            self.maybe_release(victim as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two_from_32k_to_8g() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(32 * 1024 - 1), 0);
        assert_eq!(bucket_of(32 * 1024), 1);
        assert_eq!(bucket_of(64 * 1024 - 1), 1);
        assert_eq!(bucket_of(64 * 1024), 2);
        assert_eq!(bucket_of(1 << 32), BUCKETS - 1);
        assert_eq!(bucket_of(usize::MAX), BUCKETS - 1);
    }

    #[test]
    fn window_keeps_the_bucket_and_the_slack() {
        // A fresh connection: its two 16 KiB output buffers and itself.
        let fresh = 2 * 16 * 1024 + CONNECTION_BYTES;
        for bytes in [fresh, 40_000, 65_535, 65_536, 1 << 20, (1 << 20) + 5000, usize::MAX / 2] {
            let (lo, hi) = window(bytes);
            assert!(lo <= bytes && bytes < hi, "{bytes}: [{lo}, {hi})");
            assert_eq!(bucket_of(lo), bucket_of(bytes), "{bytes}");
            assert_eq!(bucket_of(hi - 1), bucket_of(bytes), "{bytes}");
            assert!(bytes - lo <= bytes / 64 && hi - 1 - bytes <= bytes / 64, "{bytes}: [{lo}, {hi})");
        }
        // Within a power of two: the next byte is another bucket's.
        assert_eq!(window(65_535).1, 65_536);
        assert_eq!(window(65_536).0, 65_536);
        // Room for a pipeline's replies at the smallest figure.
        let (lo, hi) = window(fresh);
        assert!(fresh - lo >= 512 && hi - fresh >= 513, "[{lo}, {hi})");
    }

    #[test]
    fn limit_in_bytes_or_percent_of_maxmemory() {
        let mut c = Config::default();
        c.others.insert("maxmemory-clients".into(), "3000000".into());
        assert_eq!(limit_from_config(&c), 3_000_000);
        c.others.insert("maxmemory-clients".into(), "7%".into());
        c.others.insert("maxmemory".into(), (6 * 1024 * 1024).to_string());
        assert_eq!(limit_from_config(&c), 6 * 1024 * 1024 * 7 / 100);
        c.others.insert("maxmemory".into(), "0".into());
        assert_eq!(limit_from_config(&c), 0);
    }
}
