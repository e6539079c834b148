//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH (Redis 7.0's
//! multi.c), and the per-client state they keep.
//!
//! Queueing is the dispatch path's (`network::multi`): a command of a client
//! in MULTI is checked as any command (unknown, arity, NOAUTH, no-multi
//! flag: the error is replied and the transaction flagged, Redis's
//! `flagTransaction`), then kept, as owned arguments, in `MultiState` and
//! answered `+QUEUED`. EXEC runs on the client's shard holding every shard
//! its queued commands and watched keys live on; the handlers here decide
//! (abort, or go), the loop then runs each queued command through `call()`.
//!
//! WATCH registers the key on its owning shard (`shard::watch`); the handler
//! runs with that shard owned or held. Over several shards by hops the
//! other shards' parts register their keys, answering nobody, and the
//! handler, which finds every key among the client's watched keys already,
//! only replies (`network::rounds`, "WATCH: one message"); sent with its
//! MULTI ... EXEC in one write, the other shards' keys are folded into the
//! EXEC, listed and registered nowhere ("WATCH folded into EXEC" there).

use std::sync::Arc;

use super::{flags::*, CommandSpec, Ctx};
use crate::protocol::Reply;
use crate::shard::hold::{ShardMask, ShardSet};
use crate::shard::mailbox::PackedArgs;
use crate::shard::slot::key_shard;
use crate::shard::watch::{key_is_expired, WatchCell, Watcher};

const TRANSACTION: &[&str] = &["@fast", "@transaction"];

pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

pub fn commands() -> Vec<CommandSpec> {
    let session = NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY;
    vec![
        CommandSpec::new("multi", 1, session, multi).group("transactions").acl(TRANSACTION).doc("1.2.0", "Mark the start of a transaction block"),
        CommandSpec::new("exec", 1, NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG, exec)
            .group("transactions")
            .acl(&["@slow", "@transaction"])
            .doc("1.2.0", "Execute all commands issued after MULTI"),
        CommandSpec::new("discard", 1, session, discard).group("transactions").acl(TRANSACTION).doc("2.0.0", "Discard all commands issued after MULTI"),
        // Keys as COMMAND INFO shows them; routing is the loop's (it holds
        // the keys' shards and runs WATCH on the client's thread).
        CommandSpec::new("watch", -2, session, watch)
            .keys(1, -1, 1)
            .route(super::Route::Local)
            .group("transactions")
            .acl(TRANSACTION)
            .doc("2.2.0", "Watch the given keys to determine execution of the MULTI/EXEC block"),
        CommandSpec::new("unwatch", 1, session, unwatch).group("transactions").acl(TRANSACTION).doc("2.2.0", "Forget about all watched keys"),
    ]
}

/// One queued command: its table id and its arguments.
#[derive(Default)]
pub struct Queued {
    pub id: usize,
    pub args: PackedArgs,
}

/// A client's MULTI state (Redis's `CLIENT_MULTI`, `CLIENT_DIRTY_EXEC`
/// and `mstate`). The queue's buffers are kept between transactions.
#[derive(Default)]
pub struct MultiState {
    pub active: bool,
    /// An error while queueing: EXEC answers EXECABORT.
    pub dirty_exec: bool,
    /// EXEC passed its checks: the loop runs the queue now.
    pub go: bool,
    queue: Vec<Queued>,
    count: usize,
    /// The union of the queued commands' flags (`mstate.cmd_flags`).
    pub flags: u32,
    /// The union of their inverted flags (`mstate.cmd_inv_flags`).
    pub inv_flags: u32,
    /// The shards the queued commands run on.
    pub shards: ShardMask,
}

impl std::fmt::Debug for MultiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiState").field("active", &self.active).field("count", &self.count).finish()
    }
}

/// Queued buffers bigger than this are freed when a transaction ends
/// (a huge transaction does not pin its memory to the connection).
const KEEP_BYTES_MAX: usize = 64 * 1024;
/// Queue slots kept between transactions.
const KEEP_COMMANDS_MAX: usize = 64;

impl MultiState {
    pub fn count(&self) -> usize {
        self.count
    }
    /// Bytes the queued commands hold (CLIENT LIST's `tot-mem`, client eviction).
    pub fn queued_bytes(&self) -> usize {
        self.queue[..self.count].iter().map(|q| q.args.data.capacity() + q.args.ends.capacity() * std::mem::size_of::<u32>()).sum()
    }
    /// CLIENT LIST's `multi=`: the queued count, -1 outside MULTI.
    pub fn info(&self) -> Option<u32> {
        self.active.then_some(self.count as u32)
    }
    pub fn queue(&mut self, id: usize, flags: u32, shards: ShardMask, args: &[&[u8]]) {
        if self.queue.len() == self.count {
            self.queue.push(Queued::default());
        }
        let q = &mut self.queue[self.count];
        q.id = id;
        q.args.pack(args.iter().copied());
        self.count += 1;
        self.flags |= flags;
        self.inv_flags |= !flags;
        self.shards.0 |= shards.0;
    }
    /// The queued commands, taken out to run (give them back with `restore`).
    pub fn take(&mut self) -> (Vec<Queued>, usize) {
        (std::mem::take(&mut self.queue), self.count)
    }
    pub fn restore(&mut self, queue: Vec<Queued>) {
        self.queue = queue;
    }
    /// Leaves MULTI (Redis's `discardTransaction` without the unwatch).
    pub fn reset(&mut self) {
        self.active = false;
        self.dirty_exec = false;
        self.go = false;
        self.count = 0;
        self.flags = 0;
        self.inv_flags = 0;
        self.shards = ShardMask::default();
        self.queue.truncate(KEEP_COMMANDS_MAX);
        for q in &mut self.queue {
            if q.args.data.capacity() > KEEP_BYTES_MAX {
                q.args = PackedArgs::default();
            }
        }
    }
}

/// A key this client watches.
#[derive(Debug)]
pub struct WatchedKey {
    pub db: usize,
    pub key: Box<[u8]>,
    pub shard: usize,
}

/// A client's watched keys; the cell is shared with their shards.
#[derive(Debug, Default)]
pub struct WatchState {
    pub cell: Option<Arc<WatchCell>>,
    pub keys: Vec<WatchedKey>,
}

impl WatchState {
    /// Redis's `CLIENT_DIRTY_CAS`.
    pub fn dirty(&self) -> bool {
        self.cell.as_ref().is_some_and(|c| c.dirty())
    }
    /// The shards holding watched keys.
    pub fn shards(&self) -> ShardMask {
        let mut m = ShardMask::default();
        for k in &self.keys {
            m.insert(k.shard);
        }
        m
    }
    /// Forgets every watched key and the dirty flag (Redis's
    /// `unwatchAllKeys` plus clearing `CLIENT_DIRTY_CAS`): registrations on
    /// shards in `shards` are removed, the others go stale (see `shard::watch`).
    pub fn unwatch_all(&mut self, shards: &mut ShardSet) {
        let Some(cell) = &self.cell else { return };
        for k in self.keys.drain(..) {
            if shards.has(k.shard) {
                shards.get_mut(k.shard).watched.unregister(k.db, &k.key, cell);
            } else {
                crate::shard::watch::abandoned(k.shard);
            }
        }
        cell.renew();
        if self.keys.capacity() > KEEP_COMMANDS_MAX {
            self.keys = Vec::new();
        }
    }
}

/// Leaves MULTI and unwatches (Redis's `discardTransaction`), for the
/// client of `ctx`.
pub fn discard_transaction(ctx: &mut Ctx) {
    if let Some(c) = ctx.client.as_deref_mut() {
        c.multi.reset();
        c.watch.unwatch_all(ctx.shards);
        c.info_dirty = true;
    }
}

fn multi(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let Some(c) = ctx.client.as_deref_mut() else { return r.error("ERR MULTI is not allowed here") };
    if c.multi.active {
        return r.error("ERR MULTI calls can not be nested");
    }
    c.multi.active = true;
    c.info_dirty = true;
    r.ok();
}

fn discard(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    if !ctx.client.as_ref().is_some_and(|c| c.multi.active) {
        return r.error("ERR DISCARD without MULTI");
    }
    discard_transaction(ctx);
    r.ok();
}

/// EXEC's checks (Redis's `execCommand` up to running the queue): without
/// MULTI an error; after a queueing error EXECABORT; with a watched key
/// touched, or expired since WATCH, a null array. Otherwise the keys are
/// unwatched, the reply's array header is written and `go` is set: the loop
/// (which holds every shard concerned) runs the queue. Runs with every
/// watched key's shard owned or held.
fn exec(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let now = ctx.now_ms;
    let Some(c) = ctx.client.as_deref_mut() else { return r.error("ERR EXEC without MULTI") };
    if !c.multi.active {
        return r.error("ERR EXEC without MULTI");
    }
    if c.multi.dirty_exec {
        r.error(EXECABORT);
        return discard_transaction(ctx);
    }
    if c.watch.dirty() || watched_key_expired(c, ctx.shards, now) {
        r.null_array();
        return discard_transaction(ctx);
    }
    c.watch.unwatch_all(ctx.shards);
    c.multi.go = true;
    c.info_dirty = true;
    r.array(c.multi.count());
}

/// Redis's `isWatchedKeyExpired`: a watched key that was not already
/// expired at WATCH has logically expired since (deleted or not yet).
fn watched_key_expired(c: &super::ClientState, shards: &ShardSet, now_ms: i64) -> bool {
    let Some(cell) = &c.watch.cell else { return false };
    let epoch = cell.epoch();
    c.watch.keys.iter().any(|k| {
        let st = shards.get(k.shard);
        let expired_at_watch = st.watched.find(k.db, &k.key, cell, epoch).is_none_or(|w| w.expired);
        !expired_at_watch && key_is_expired(&st.dbs[k.db], &k.key, now_ms)
    })
}

/// WATCH key...: registers each key not yet watched in this db on its
/// shard (owned or held by the caller: see `network::multi`).
fn watch(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (db, now, shard_count) = (ctx.db, ctx.now_ms, ctx.shard_count);
    let Some(c) = ctx.client.as_deref_mut() else { return r.error("ERR WATCH is not allowed here") };
    if c.multi.active {
        return r.error("ERR WATCH inside MULTI is not allowed");
    }
    // No point in watching when a watched key was touched already.
    if c.watch.dirty() {
        return r.ok();
    }
    let cell = c.watch.cell.get_or_insert_with(Default::default).clone();
    let epoch = cell.epoch();
    for &key in &args[1..] {
        if c.watch.keys.iter().any(|k| k.db == db && &k.key[..] == key) {
            continue;
        }
        let shard = key_shard(key, shard_count);
        let st = ctx.shards.get_mut(shard);
        let expired = key_is_expired(&st.dbs[db], key, now);
        st.watched.register(db, key, Watcher { cell: cell.clone(), epoch, expired });
        c.watch.keys.push(WatchedKey { db, key: key.into(), shard });
    }
    c.info_dirty = true;
    r.ok();
}

fn unwatch(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    if let Some(c) = ctx.client.as_deref_mut() {
        c.watch.unwatch_all(ctx.shards);
        c.info_dirty = true;
    }
    r.ok();
}

/// The shards WATCH `args` needs besides `home`.
pub fn watch_targets(args: &[&[u8]], shard_count: usize, home: usize) -> ShardMask {
    let mut m = ShardMask::default();
    for &key in &args[1..] {
        m.insert(key_shard(key, shard_count));
    }
    m.remove(home);
    m
}
