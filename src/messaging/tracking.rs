//! Client-side caching (Redis's `tracking.c`): which clients may hold which
//! keys, and the invalidation messages they get when those keys change.
//!
//! Where the state lives, and why:
//! - The *tracking table* (key -> ids of the clients that read it) lives on
//!   each key's owner shard, filled by the shard that runs the read. A write
//!   on the owner then finds the readers without asking anyone: the table is
//!   touched by the same thread, at the same moment, as the key itself.
//! - A reader is remembered with the shard of its connection, so the owner
//!   sends one mailbox message (`TrackingMessage::Invalidate`) to that shard;
//!   the client's shard knows the client's current flags (NOLOOP, BCAST,
//!   REDIRECT) and applies them there. A redirect target on a third shard is
//!   one more hop (`Redirected`), and a target that went away answers
//!   `RedirBroken`, which becomes the `tracking-redir-broken` push.
//! - BCAST prefixes are registered on every shard (CLIENT TRACKING holds all
//!   shards), so a write needs no message to learn which prefixes match; the
//!   keys modified per prefix are batched and sent as Redis's
//!   `trackingBroadcastInvalidationMessages` sends them from `beforeSleep`:
//!   one message per prefix per loop turn. A command over several shards
//!   gathers its keys on the shard that runs it (`take_pending_bcast`,
//!   `absorb_bcast`: the holder takes the held shards' keys, a hop's parts
//!   send theirs with their answers), so that it sends one message per
//!   prefix, as Redis does, not one per shard.
//! - An empty table and prefix table cost `modified()` one branch.
//!
//! Limits: `tracking-table-max-keys` bounds the keys of all tables together
//! (`ServerTracking::keys`, one atomic): over it, shards evict keys of their
//! own tables with invalidations (Redis's `trackingLimitUsedSlots`, with its
//! growing effort), each eviction claimed with a compare-and-swap so that
//! shards evicting at once never evict more than the excess. The limit and
//! INFO's `tracking_total_keys` / `tracking_total_items` are the server's,
//! as Redis's one table: a key lives in its owner's table only, so the
//! shards' key counts add up to the distinct keys, their (key, client)
//! pairs to Redis's items. When: Redis evicts before every command and in
//! its cron while some client tracks; here each shard evicts at the end of
//! its loop turns (so right after the read that went over) and a CONFIG
//! SET of the limit evicts on every shard it holds before its reply
//! (`enforce_limit_held`), so the invalidations precede any later
//! command's reply (Redis's "Regression test for #11715"). The ids of
//! clients that went away are dropped lazily (when their keys change or are
//! evicted), as Redis does, so that bound covers them too.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// CLIENT TRACKING state bits of a client (Redis's `CLIENT_TRACKING*`).
pub mod flag {
    pub const ON: u8 = 1 << 0;
    pub const BCAST: u8 = 1 << 1;
    pub const OPTIN: u8 = 1 << 2;
    pub const OPTOUT: u8 = 1 << 3;
    pub const NOLOOP: u8 = 1 << 4;
    /// CLIENT CACHING YES/NO was given for the next command.
    pub const CACHING: u8 = 1 << 5;
    pub const BROKEN_REDIR: u8 = 1 << 6;
}

/// The pub/sub channel RESP2 redirect targets get invalidations on.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// A client's tracking settings (on its own connection's `ClientState`).
#[derive(Debug, Default, Clone)]
pub struct ClientTracking {
    pub flags: u8,
    /// Client id invalidations go to (0: this connection).
    pub redirect: u64,
    /// The shard of the redirect target's connection.
    pub redirect_shard: usize,
    /// BCAST prefixes, sorted (CLIENT TRACKINGINFO lists them so).
    pub prefixes: Vec<Vec<u8>>,
    /// Counts enablings from off: BCAST registrations carry it, so that a
    /// late `Forget` of an earlier enabling leaves a newer one alone.
    pub epoch: u32,
}

impl ClientTracking {
    #[inline]
    pub fn on(&self) -> bool {
        self.flags & flag::ON != 0
    }
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    /// Whether a read-only command run now has its keys remembered (Redis's
    /// `trackingRememberKeys` gates: tracking on, not BCAST, OPTIN with
    /// CACHING YES or OPTOUT without CACHING NO).
    #[inline]
    pub fn remembers_reads(&self) -> bool {
        let f = self.flags;
        if f & flag::ON == 0 || f & flag::BCAST != 0 {
            return false;
        }
        let caching = f & flag::CACHING != 0;
        !(f & flag::OPTIN != 0 && !caching || f & flag::OPTOUT != 0 && caching)
    }
    /// After a command of this client ran or was forwarded: CLIENT CACHING's
    /// flag lasts one command, except through CLIENT subcommands (Redis's
    /// `resetClient` keeps it while the command was `clientCommand`).
    #[inline]
    pub fn command_done(&mut self, name: &str) {
        if self.flags & flag::CACHING != 0 && !name.starts_with("client|") {
            self.flags &= !flag::CACHING;
        }
    }
}

/// Server-wide counters (INFO, and the table limit across shards).
#[derive(Default)]
pub struct ServerTracking {
    /// Clients with tracking on (INFO `tracking_clients`); also gates the
    /// mailbox drain before receives (see `network`'s loop).
    pub clients: AtomicUsize,
    /// Keys in every shard's tracking table (INFO `tracking_total_keys`).
    pub keys: AtomicUsize,
    /// Client ids in every shard's tracking table (`tracking_total_items`).
    pub items: AtomicUsize,
}

impl ServerTracking {
    /// Claims one eviction while the tables hold more than `max` keys.
    fn claim_eviction(&self, max: usize) -> bool {
        let mut n = self.keys.load(Ordering::Relaxed);
        while n > max {
            match self.keys.compare_exchange_weak(n, n - 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }
}

/// Whether CLIENT LIST's flag `letter` (t, R or B) is set in `flags`.
pub fn has_list_flag(flags: u8, letter: char) -> bool {
    let bit = match letter {
        't' => flag::ON,
        'R' => flag::BROKEN_REDIR,
        'B' => flag::BCAST,
        _ => return false,
    };
    flags & bit != 0
}

/// CLIENT LIST's `redir=`: the redirect while tracking is on, else -1.
pub fn list_redir(flags: u8, redirect: u64) -> i64 {
    if flags & flag::ON != 0 {
        redirect as i64
    } else {
        -1
    }
}

/// A client that read a key: its id and the shard of its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    pub id: u64,
    pub shard: usize,
}

/// A BCAST client registered for a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BcastClient {
    pub id: u64,
    pub shard: usize,
    pub noloop: bool,
    pub epoch: u32,
}

/// One prefix of the prefix table (Redis's `bcastState`).
#[derive(Default, Debug)]
struct Bcast {
    clients: Vec<BcastClient>,
    /// Keys modified since the last broadcast, with their last modifier
    /// (0: none, as expiry), sorted as Redis's radix tree lists them.
    keys: BTreeMap<Vec<u8>, u64>,
}

/// Keys modified under BCAST prefixes and not broadcast yet, per prefix,
/// with their last modifier (moved to the shard that broadcasts them).
pub type PendingBcast = Vec<(Vec<u8>, BTreeMap<Vec<u8>, u64>)>;

/// What shards tell each other about tracking (`Message::Tracking`).
#[derive(Debug)]
pub enum TrackingMessage {
    /// To a reader's shard: `key` it read changed (`modifier` ran the write;
    /// 0 for evictions and expiry seen by no client).
    Invalidate { client: u64, modifier: u64, key: Vec<u8> },
    /// To a BCAST client's shard: the keys of one prefix, encoded as a RESP
    /// array, for the registration of `epoch`.
    Bcast { client: u64, epoch: u32, keys: Vec<u8> },
    /// To every shard: a FLUSHDB/FLUSHALL ran; each tracking client of the
    /// shard gets the null "everything" invalidation.
    Flush,
    /// To a redirect target's shard: `value` (a RESP array or null) for
    /// `target`, on behalf of `client` of shard `from`.
    Redirected { target: u64, client: u64, from: usize, value: Vec<u8> },
    /// Back to a tracking client's shard: its redirect target is gone.
    RedirBroken { client: u64, target: u64 },
    /// To every shard: drop the BCAST registrations of `client`'s enabling
    /// `epoch` (and older).
    Forget { client: u64, epoch: u32 },
}

/// A message a shard's tracking leaves for its loop to send (or deliver, if
/// `to` is the loop's own shard).
#[derive(Debug)]
pub struct Outgoing {
    pub to: usize,
    pub msg: TrackingMessage,
}

thread_local! {
    /// The client whose command runs on this thread now (Redis's
    /// `server.current_client`), set by `exec::call`: writes on any shard
    /// this thread holds read it for NOLOOP.
    static CURRENT_CLIENT: Cell<u64> = const { Cell::new(0) };
}

/// Sets the client running commands on this thread (0: none).
#[inline]
pub fn set_current_client(id: u64) {
    CURRENT_CLIENT.with(|c| c.set(id));
}

#[inline]
pub fn current_client() -> u64 {
    CURRENT_CLIENT.with(|c| c.get())
}

/// A shard's tracking state: its keys' readers, the prefix table, and the
/// messages waiting for the loop.
#[derive(Default)]
pub struct ShardTracking {
    table: HashMap<Vec<u8>, Vec<Reader>>,
    prefixes: BTreeMap<Vec<u8>, Bcast>,
    /// Some prefix has keys to broadcast.
    bcast_pending: bool,
    pub outgoing: Vec<Outgoing>,
    /// Consecutive limit checks that ended still over the limit (Redis's
    /// `timeout_counter`): the effort grows with it.
    evict_rounds: u32,
    /// The server's counters (shared by every shard's tracking).
    pub counters: Arc<ServerTracking>,
}

impl ShardTracking {
    /// Nothing tracked here: `modified()` has nothing to do.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.table.is_empty() && self.prefixes.is_empty()
    }

    /// Keys in this shard's table.
    pub fn keys(&self) -> usize {
        self.table.len()
    }

    /// Prefixes registered here (every shard has the same ones).
    pub fn prefix_count(&self) -> usize {
        self.prefixes.len()
    }

    /// Messages or broadcasts are waiting for the loop.
    #[inline]
    pub fn has_work(&self) -> bool {
        !self.outgoing.is_empty() || self.bcast_pending
    }

    /// Remembers that `reader` may cache `key` (Redis's trackingRememberKeys).
    pub fn remember(&mut self, key: &[u8], reader: Reader) {
        let counters = &*self.counters;
        let readers = match self.table.get_mut(key) {
            Some(r) => r,
            None => {
                counters.keys.fetch_add(1, Ordering::Relaxed);
                self.table.entry(key.to_vec()).or_default()
            }
        };
        if !readers.iter().any(|r| r.id == reader.id) {
            readers.push(reader);
            counters.items.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `key` changed (Redis's trackingInvalidateKey): its readers are sent
    /// an invalidation and forgotten; with `bcast`, the key is queued for
    /// the matching prefixes with `bcast_modifier` as its last writer.
    pub fn invalidate(&mut self, key: &[u8], modifier: u64, bcast_modifier: Option<u64>) {
        let counters = &*self.counters;
        if let Some(m) = bcast_modifier {
            for (prefix, bs) in self.prefixes.iter_mut() {
                if key.starts_with(prefix) {
                    bs.keys.insert(key.to_vec(), m);
                    self.bcast_pending = true;
                }
            }
        }
        let Some(readers) = self.table.remove(key) else {
            return;
        };
        counters.items.fetch_sub(readers.len(), Ordering::Relaxed);
        counters.keys.fetch_sub(1, Ordering::Relaxed);
        // Under a hold, in the command's order over its shards (`held_order`).
        crate::messaging::held_order::invalidations_into(&mut self.outgoing, |out| push_invalidations(out, key, readers, modifier));
    }

    /// FLUSHDB/FLUSHALL: the table is emptied (Redis reclaims it whole) and
    /// this shard's tracking clients are told, after the command's reply.
    pub fn flushed(&mut self, me: usize) {
        let counters = &*self.counters;
        let items: usize = self.table.values().map(|r| r.len()).sum();
        counters.items.fetch_sub(items, Ordering::Relaxed);
        counters.keys.fetch_sub(self.table.len(), Ordering::Relaxed);
        self.table = HashMap::new();
        self.outgoing.push(Outgoing { to: me, msg: TrackingMessage::Flush });
    }

    /// Registers a BCAST client for `prefix` (or refreshes its flags).
    pub fn register_prefix(&mut self, prefix: &[u8], client: BcastClient) {
        let bs = self.prefixes.entry(prefix.to_vec()).or_default();
        match bs.clients.iter_mut().find(|c| c.id == client.id) {
            Some(c) => *c = client,
            None => bs.clients.push(client),
        }
    }

    /// Drops `client`'s registrations of enabling `epoch` or older; a prefix
    /// left without clients leaves the table (Redis's disableTracking).
    pub fn forget(&mut self, client: u64, epoch: u32) {
        self.prefixes.retain(|_, bs| {
            bs.clients.retain(|c| c.id != client || c.epoch > epoch);
            !bs.clients.is_empty()
        });
    }

    /// Keys wait for a broadcast here.
    #[inline]
    pub fn bcast_pending(&self) -> bool {
        self.bcast_pending
    }

    /// Takes the keys waiting for a broadcast here (see the module: another
    /// shard broadcasts them with its own).
    pub fn take_pending_bcast(&mut self) -> PendingBcast {
        if !self.bcast_pending {
            return Vec::new();
        }
        self.bcast_pending = false;
        self.prefixes.iter_mut().filter(|(_, bs)| !bs.keys.is_empty()).map(|(p, bs)| (p.clone(), std::mem::take(&mut bs.keys))).collect()
    }

    /// Queues keys another shard took (`take_pending_bcast`) for this
    /// shard's next broadcast, the last modifier of a key winning. Returns
    /// those of prefixes not registered here (every shard registers the
    /// same ones; a prefix missing here is being forgotten, its client
    /// turning tracking off).
    pub fn absorb_bcast(&mut self, pending: PendingBcast) -> PendingBcast {
        let mut left = Vec::new();
        for (prefix, mut keys) in pending {
            match self.prefixes.get_mut(&prefix) {
                Some(bs) => {
                    bs.keys.append(&mut keys);
                    self.bcast_pending = true;
                }
                None => left.push((prefix, keys)),
            }
        }
        left
    }

    /// Redis's trackingBroadcastInvalidationMessages: for each prefix with
    /// modified keys, one array of them to every registered client (without
    /// the keys it wrote itself, for a NOLOOP client; nothing if none is left).
    pub fn broadcast(&mut self) {
        if !self.bcast_pending {
            return;
        }
        self.bcast_pending = false;
        for bs in self.prefixes.values_mut() {
            if bs.keys.is_empty() {
                continue;
            }
            let keys = std::mem::take(&mut bs.keys);
            let all = encode_keys(keys.keys().map(|k| &k[..]), keys.len());
            for c in &bs.clients {
                let msg = if c.noloop {
                    let n = keys.values().filter(|&&m| m != c.id).count();
                    if n == 0 {
                        continue;
                    }
                    encode_keys(keys.iter().filter(|(_, &m)| m != c.id).map(|(k, _)| &k[..]), n)
                } else {
                    all.clone()
                };
                self.outgoing.push(Outgoing { to: c.shard, msg: TrackingMessage::Bcast { client: c.id, epoch: c.epoch, keys: msg } });
            }
        }
    }

    /// Redis's trackingLimitUsedSlots: while the tables of all shards hold
    /// more than `tracking-table-max-keys`, evict keys of this one (with
    /// invalidations, as if they changed), up to 100 per round times the
    /// rounds that ended still over the limit.
    pub fn enforce_limit(&mut self, max: usize) {
        let counters = &*self.counters;
        if max == 0 || self.table.is_empty() {
            return;
        }
        if counters.keys.load(Ordering::Relaxed) <= max {
            self.evict_rounds = 0;
            return;
        }
        let effort = 100 * (self.evict_rounds as usize + 1);
        for _ in 0..effort {
            let Some(key) = self.table.keys().next().cloned() else {
                break;
            };
            if !counters.claim_eviction(max) {
                self.evict_rounds = 0;
                return;
            }
            // The claim took the key off the global count already.
            let readers = self.table.remove(&key).unwrap_or_default();
            counters.items.fetch_sub(readers.len(), Ordering::Relaxed);
            push_invalidations(&mut self.outgoing, &key, readers, 0);
        }
        if counters.keys.load(Ordering::Relaxed) > max {
            self.evict_rounds += 1;
        } else {
            self.evict_rounds = 0;
        }
    }
}

fn push_invalidations(outgoing: &mut Vec<Outgoing>, key: &[u8], readers: Vec<Reader>, modifier: u64) {
    for r in readers {
        outgoing.push(Outgoing { to: r.shard, msg: TrackingMessage::Invalidate { client: r.id, modifier, key: key.to_vec() } });
    }
}

/// `tracking-table-max-keys` set to `max` by a command holding every shard
/// (CONFIG SET): each shard's table evicts its share of the excess now, as
/// its loop turn would (`ShardTracking::enforce_limit`), its invalidations
/// sent by the command's own post-command step, before its reply. As
/// Redis, only while some client tracks (`server.tracking_clients`).
pub fn enforce_limit_held(ctx: &mut crate::commands::Ctx, max: u64) {
    if ctx.server.tracking.clients.load(Ordering::Relaxed) == 0 {
        return;
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    for s in 0..ctx.shard_count {
        ctx.shard_mut(s).tracking.enforce_limit(max);
    }
}

/// After a read-only command of a tracking client (`exec::call`): its keys
/// are remembered on their owner shards (held or this one), except for
/// pub/sub commands (shard channels are not keys to cache).
pub fn remember_keys(ctx: &mut crate::commands::Ctx, spec: &crate::commands::CommandSpec, args: &[&[u8]], client: u64, shard: usize) {
    if spec.flags & crate::commands::flags::PUBSUB != 0 {
        return;
    }
    for i in crate::commands::key_positions(&spec.keys, args) {
        remember_key(ctx, args[i], Reader { id: client, shard });
    }
}

/// `reader` read `key`: remembered in the table of the key's owner shard,
/// which the running command holds (or is).
pub fn remember_key(ctx: &mut crate::commands::Ctx, key: &[u8], reader: Reader) {
    // Routing gives the command every shard its keys live on; a key
    // outside them would be a routing bug, not worth a panic here.
    let owner = crate::shard::slot::key_shard(key, ctx.shard_count);
    debug_assert!(ctx.shards.has(owner), "a read of a key whose shard the command does not hold");
    if ctx.shards.has(owner) {
        ctx.shards.get_mut(owner).tracking.remember(key, reader);
    }
}

/// `*N\r\n` and each key as a bulk string.
pub fn encode_keys<'a>(keys: impl Iterator<Item = &'a [u8]>, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + n * 16);
    out.extend_from_slice(format!("*{}\r\n", n).as_bytes());
    for k in keys {
        push_bulk(&mut out, k);
    }
    out
}

fn push_bulk(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

/// The null "all keys" value, in the protocol of the tracking client.
pub fn null_value(resp: u8) -> &'static [u8] {
    if resp >= 3 {
        b"_\r\n"
    } else {
        b"$-1\r\n"
    }
}

/// An invalidation as its receiver gets it: a RESP3 push, or for a RESP2
/// redirect target in pub/sub mode a message on `__redis__:invalidate`.
/// None: the receiver cannot be told (RESP2, not subscribed).
pub fn frame_for(resp: u8, redirected_pubsub: bool, value: &[u8], out: &mut Vec<u8>) -> bool {
    if resp >= 3 {
        out.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else if redirected_pubsub {
        out.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n");
        push_bulk(out, CHANNEL);
    } else {
        return false;
    }
    out.extend_from_slice(value);
    true
}

/// The push that tells a RESP3 client its redirect target is gone.
pub fn redir_broken_push(target: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{}\r\n", target).as_bytes());
}

/// Redis's checkPrefixCollisionsOrReply: the error for the first given
/// prefix that overlaps an existing one or a later given one, and whether
/// tracking is enabled all the same. Redis 7.0 returns the index of the
/// prefix for an overlap between given ones, which its caller takes for
/// success unless it is 0: then the error is followed by the enabling and
/// its +OK. Kept, byte for byte.
pub fn prefix_collision(existing: &[Vec<u8>], given: &[&[u8]]) -> Option<(Vec<u8>, bool)> {
    let overlaps = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    let msg = |p: &[u8], other: &[u8], what: &str| {
        let mut m = b"ERR Prefix '".to_vec();
        m.extend_from_slice(crate::util::printf_str(p, usize::MAX));
        m.extend_from_slice(format!("' overlaps with {} '", what).as_bytes());
        m.extend_from_slice(crate::util::printf_str(other, usize::MAX));
        m.extend_from_slice(b"'. Prefixes for a single client must not overlap.");
        m
    };
    for (i, p) in given.iter().enumerate() {
        if let Some(e) = existing.iter().find(|e| overlaps(e, p)) {
            return Some((msg(p, e, "an existing prefix"), false));
        }
        if let Some(q) = given[i + 1..].iter().find(|q| overlaps(p, q)) {
            return Some((msg(p, q, "another provided prefix"), i > 0));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(id: u64, shard: usize) -> Reader {
        Reader { id, shard }
    }

    #[test]
    fn remember_then_invalidate_sends_one_message_per_reader_and_forgets() {
        let mut t = ShardTracking::default();
        let c = t.counters.clone();
        assert!(t.is_idle());
        t.remember(b"k", reader(7, 1));
        t.remember(b"k", reader(7, 1));
        t.remember(b"k", reader(9, 2));
        assert_eq!((c.keys.load(Ordering::Relaxed), c.items.load(Ordering::Relaxed)), (1, 2));
        t.invalidate(b"other", 5, None);
        assert!(t.outgoing.is_empty());
        t.invalidate(b"k", 5, None);
        assert_eq!(t.outgoing.len(), 2);
        assert!(matches!(&t.outgoing[0], Outgoing { to: 1, msg: TrackingMessage::Invalidate { client: 7, modifier: 5, key } } if key == b"k"));
        assert_eq!((c.keys.load(Ordering::Relaxed), c.items.load(Ordering::Relaxed)), (0, 0));
        assert!(t.is_idle());
    }

    /// Keys another shard queued join this shard's batch: one message per
    /// prefix; a prefix not registered here comes back.
    #[test]
    fn pending_keys_of_another_shard_join_one_broadcast() {
        let client = BcastClient { id: 1, shard: 0, noloop: false, epoch: 1 };
        let (mut here, mut there) = (ShardTracking::default(), ShardTracking::default());
        here.register_prefix(b"a:", client);
        there.register_prefix(b"a:", client);
        there.register_prefix(b"z:", client);
        here.invalidate(b"a:1", 5, Some(5));
        there.invalidate(b"a:2", 5, Some(5));
        there.invalidate(b"z:9", 5, Some(5));
        let left = here.absorb_bcast(there.take_pending_bcast());
        assert!(!there.bcast_pending() && there.take_pending_bcast().is_empty());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, b"z:".to_vec());
        here.broadcast();
        assert_eq!(here.outgoing.len(), 1);
        match &here.outgoing[0].msg {
            TrackingMessage::Bcast { client: 1, keys, .. } => assert_eq!(keys, b"*2\r\n$3\r\na:1\r\n$3\r\na:2\r\n"),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn broadcast_batches_per_prefix_and_honours_noloop() {
        let mut t = ShardTracking::default();
        t.register_prefix(b"a:", BcastClient { id: 1, shard: 0, noloop: false, epoch: 1 });
        t.register_prefix(b"a:", BcastClient { id: 2, shard: 1, noloop: true, epoch: 1 });
        t.invalidate(b"a:2", 2, Some(2));
        t.invalidate(b"a:1", 3, Some(3));
        t.invalidate(b"b:1", 3, Some(3));
        assert!(t.has_work());
        t.broadcast();
        assert_eq!(t.outgoing.len(), 2);
        match &t.outgoing[0].msg {
            TrackingMessage::Bcast { client: 1, keys, .. } => assert_eq!(keys, b"*2\r\n$3\r\na:1\r\n$3\r\na:2\r\n"),
            m => panic!("{m:?}"),
        }
        match &t.outgoing[1].msg {
            TrackingMessage::Bcast { client: 2, keys, .. } => assert_eq!(keys, b"*1\r\n$3\r\na:1\r\n"),
            m => panic!("{m:?}"),
        }
        // Only its own write: a NOLOOP client gets nothing.
        t.outgoing.clear();
        t.invalidate(b"a:3", 2, Some(2));
        t.broadcast();
        assert_eq!(t.outgoing.len(), 1);
        t.forget(1, 1);
        t.forget(2, 0);
        assert_eq!(t.prefix_count(), 1, "a forget of an older enabling keeps the newer registration");
        t.forget(2, 1);
        assert_eq!(t.prefix_count(), 0);
    }

    #[test]
    fn limit_evicts_exactly_the_excess_across_shards() {
        let c = Arc::new(ServerTracking::default());
        let mut a = ShardTracking { counters: c.clone(), ..Default::default() };
        let mut b = ShardTracking { counters: c.clone(), ..Default::default() };
        for i in 0..5u8 {
            a.remember(&[b'a', i], reader(1, 0));
            b.remember(&[b'b', i], reader(1, 0));
        }
        a.enforce_limit(3);
        b.enforce_limit(3);
        assert_eq!(c.keys.load(Ordering::Relaxed), 3);
        assert_eq!(a.outgoing.len() + b.outgoing.len(), 7);
        assert_eq!(a.keys() + b.keys(), 3);
        assert_eq!(c.items.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn prefix_collisions_as_redis() {
        let e = |existing: &[&[u8]], given: &[&[u8]]| {
            let ex: Vec<Vec<u8>> = existing.iter().map(|p| p.to_vec()).collect();
            prefix_collision(&ex, given).map(|(m, _)| String::from_utf8(m).unwrap())
        };
        assert_eq!(
            e(&[], &[b"a", b"ab"]).unwrap(),
            "ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must not overlap."
        );
        assert_eq!(e(&[b""], &[b"x"]).unwrap(), "ERR Prefix 'x' overlaps with an existing prefix ''. Prefixes for a single client must not overlap.");
        assert!(e(&[b"foo"], &[b"bar"]).is_none());
        assert_eq!(prefix_collision(&[], &[b"a", b"b", b"bc"]).map(|(_, enable)| enable), Some(true));
        assert_eq!(prefix_collision(&[], &[b"b", b"bc"]).map(|(_, enable)| enable), Some(false));
    }

    #[test]
    fn caching_rules() {
        let mut t = ClientTracking { flags: flag::ON, ..Default::default() };
        assert!(t.remembers_reads());
        t.flags |= flag::OPTIN;
        assert!(!t.remembers_reads());
        t.flags |= flag::CACHING;
        assert!(t.remembers_reads());
        t.flags = flag::ON | flag::OPTOUT | flag::CACHING;
        assert!(!t.remembers_reads());
        t.flags = flag::ON | flag::BCAST;
        assert!(!t.remembers_reads());
    }
}
