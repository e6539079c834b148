//! A shard: one thread's slice of the keyspace (16 databases by default),
//! its statistics and its clients. Nothing here is touched by another thread
//! except while the shard is *held* (see `hold.rs`): then it is parked at a
//! quiescent point and its state is lent, whole, to the holding thread.

pub mod dict;
pub mod digest;
pub mod hold;
pub mod key;
pub mod keyspace;
pub mod lazyfree;
pub mod lfu;
pub mod mailbox;
pub mod memory;
pub mod slot;
pub mod watch;

use crate::config::Config;
use crate::metrics::ShardStats;
pub use keyspace::{Db, Entry, Probe, Stored, Value};

/// Per-connection facts that other shards may read while holding this one
/// (CLIENT LIST / KILL / INFO clients). The network loop keeps it current.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub name: Vec<u8>,
    pub db: usize,
    pub resp: u8,
    pub created_ms: i64,
    pub last_interaction_ms: i64,
    /// Command-table id of the last command; `NO_COMMAND` before the first.
    pub last_cmd: u16,
    /// The connection's memory (`qbuf=`, `qbuf-free=`, `omem=`,
    /// `tot-mem=`, ...) as its loop last wrote it from `Conn::mem`
    /// (`network::client_memory`).
    pub mem: crate::network::client_memory::ClientMem,
    pub flags: String,
    pub kill_requested: bool,
    pub no_evict: bool,
    pub is_monitor: bool,
    /// READONLY in force (CLIENT LIST flag `r`).
    pub readonly: bool,
    /// In MULTI: the commands queued (CLIENT LIST `multi=`, flag `x`).
    pub multi: Option<u32>,
    /// The client's WATCH cell, once it watched (flag `d` when dirty).
    pub watch: Option<std::sync::Arc<watch::WatchCell>>,
    /// Subscriptions: channels, patterns, shard channels (CLIENT LIST
    /// `sub=`, `psub=`, `ssub=`; any makes flag `P`).
    pub subscriptions: [usize; 3],
    /// The connection's token on this shard: with the shard id, the address
    /// `messaging::pubsub::ShardPubSub::queue_to` delivers to.
    pub token: mailbox::ConnToken,
    /// Blocked in a blocking command (CLIENT LIST flag `b`, INFO
    /// blocked_clients, CLIENT UNBLOCK).
    pub blocked: Option<std::sync::Arc<crate::messaging::blocking::Waiter>>,
    /// Held back by CLIENT PAUSE (counted as blocked, flag `b`).
    pub paused: bool,
    /// CLIENT TRACKING bits (`messaging::tracking::flag`: flags `t R B`).
    pub tracking_flags: u8,
    /// The tracking redirect (CLIENT LIST's `redir=`, -1 while tracking is off).
    pub redir: u64,
    /// The ACL user's name (CLIENT LIST's `user=`; empty: `default`).
    pub user: Vec<u8>,
}

impl ClientInfo {
    /// `last_cmd` of a client that has not run a command yet (CLIENT LIST `cmd=NULL`).
    pub const NO_COMMAND: u16 = u16::MAX;
}

pub struct ShardState {
    pub id: usize,
    pub shard_count: usize,
    pub dbs: Vec<Db>,
    pub stats: ShardStats,
    /// This shard's copy of the configuration; CONFIG SET updates every copy
    /// while holding all shards, so reading it needs no synchronisation.
    pub config: Config,
    pub rng: u64,
    /// Clients connected to this shard, indexed by the loop's connection slot.
    pub clients: Vec<Option<ClientInfo>>,
    /// Active expiry enabled (DEBUG SET-ACTIVE-EXPIRE).
    pub active_expire_enabled: bool,
    /// Writes since start-up (the dirty counter; saves remember its value).
    pub dirty: u64,
    /// Command latency inside vs outside snapshot windows.
    pub snapshot_latency: crate::persistence::snapshot::SnapshotLatency,
    /// The replay form of this shard's writes (`exec::propagate`).
    pub stream: crate::exec::propagate::Stream,
    /// Big values being freed in slices between commands (UNLINK).
    pub lazyfree: lazyfree::LazyFree,
    /// (channel, message) pairs a command leaves to be published when it
    /// has run (keyspace notifications, `messaging::notify`), delivered as
    /// `PUBLISH channel message` would, without a reply.
    pub pending_publish: Vec<(Vec<u8>, Vec<u8>)>,
    /// WATCHed keys of this shard and who watches them (`watch.rs`).
    pub watched: watch::WatchTable,
    /// Pub/sub: the channels this shard owns, every pattern, and the
    /// deliveries its commands queued (`messaging::pubsub`).
    pub pubsub: crate::messaging::pubsub::ShardPubSub,
    /// Clients blocked on this shard's keys, and this shard's blocked
    /// connections' timeouts (`messaging::blocking`).
    pub blocking: crate::messaging::blocking::Blocking,
    /// Client tracking: this shard's keys' readers, the BCAST prefixes.
    pub tracking: crate::messaging::tracking::ShardTracking,
    /// maxmemory eviction: the candidate pool, `evicted_keys` (`memory.rs`).
    pub eviction: memory::Eviction,
}

impl ShardState {
    pub fn new(id: usize, shard_count: usize, config: Config) -> ShardState {
        let databases = config.databases;
        ShardState {
            id,
            shard_count,
            dbs: (0..databases).map(|_| Db::new()).collect(),
            stats: ShardStats::default(),
            config,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) * 0x1000_0001),
            clients: Default::default(),
            active_expire_enabled: true,
            dirty: 0,
            snapshot_latency: Default::default(),
            stream: Default::default(),
            lazyfree: Default::default(),
            pending_publish: Vec::new(),
            watched: Default::default(),
            pubsub: Default::default(),
            blocking: Default::default(),
            tracking: Default::default(),
            eviction: Default::default(),
        }
    }

    /// Hands the big values the databases deleted as a side effect
    /// (`Db::graveyard`) to the slice-by-slice freeing.
    #[inline]
    pub fn collect_graveyards(&mut self) {
        if !self.lazyfree.graveyards_changed() {
            return;
        }
        for db in &mut self.dbs {
            for v in db.graveyard.drain(..) {
                self.lazyfree.free(v);
            }
        }
    }

    /// `key` of database `db` changed: the one path through which a
    /// command's change to a key is made known, counted as one write for the
    /// dirty counter (Redis's `signalModifiedKey` plus `server.dirty++`).
    /// WATCH, keyspace notifications and client tracking hang here.
    #[inline]
    pub fn modified(&mut self, db: usize, key: &[u8]) {
        self.signal_modified(db, key);
        self.dirty += 1;
    }

    /// A second key changed by the same write (the source of RENAME and
    /// MOVE): made known like `modified`, not counted again (Redis counts
    /// one write for a RENAME).
    pub fn also_modified(&mut self, db: usize, key: &[u8]) {
        self.signal_modified(db, key);
    }

    /// `key` of database `db` was found expired and deleted by a lookup
    /// (lazy expiry): made known like `modified`, counted in `expired_keys`
    /// as Redis's `deleteExpiredKeyAndPropagate` does, not a write for the
    /// dirty counter, and notified (`expired`).
    pub fn expired(&mut self, db: usize, key: &[u8]) {
        // Redis deletes it for no client: BCAST's NOLOOP does not hide it.
        self.signal_change(db, key, true);
        self.stream.expired(db, key);
        self.stats.expired_keys += 1;
        self.notify(db, crate::messaging::notify::EXPIRED, "expired", key);
    }

    /// Every key of database `db` changed at once (FLUSHDB, FLUSHALL,
    /// SWAPDB), counted as `writes` for the dirty counter.
    pub fn modified_all(&mut self, db: usize, writes: u64) {
        debug_assert!(db < self.dbs.len());
        if self.blocking.has_waiters() {
            self.blocking.signal_db(db);
        }
        self.dirty += writes;
    }

    #[inline]
    fn signal_modified(&mut self, db: usize, key: &[u8]) {
        self.signal_change(db, key, false);
    }

    /// `by_nobody`: no client changed the key (expiry), so BCAST's NOLOOP
    /// does not hide it. Nobody blocked, watching or tracking on this shard:
    /// three tests inline, no call (the call was ~27 instructions a write).
    #[inline(always)]
    fn signal_change(&mut self, db: usize, key: &[u8], by_nobody: bool) {
        debug_assert!(db < self.dbs.len());
        debug_assert_eq!(slot::key_shard(key, self.shard_count), self.id, "a key changed on a shard that does not own it");
        if self.blocking.has_waiters() || !self.watched.is_empty() || !self.tracking.is_idle() {
            self.signal_listeners(db, key, by_nobody);
        }
    }

    #[inline(never)]
    fn signal_listeners(&mut self, db: usize, key: &[u8], by_nobody: bool) {
        // A key someone waits on (Redis's signalKeyAsReady): one branch
        // while nobody is blocked on this shard.
        if self.blocking.has_waiters() {
            self.blocking.signal(db, key);
        }
        if !self.watched.is_empty() {
            let exists = self.dbs[db].map.find(key).is_some();
            self.watched.touch(db, key, exists);
        }
        if !self.tracking.is_idle() {
            let current = crate::messaging::tracking::current_client();
            self.tracking.invalidate(key, current, Some(if by_nobody { 0 } else { current }));
        }
    }

    /// Database `db` is about to be emptied (FLUSHDB, FLUSHALL: `with`
    /// None) or to take database `with`'s keys (SWAPDB): its watched keys
    /// are touched by Redis 7.0's rules (`watch::WatchTable::touch_all`).
    pub fn touch_watched_db(&mut self, db: usize, with: Option<usize>, now_ms: i64) {
        if !self.watched.is_empty() {
            self.watched.touch_all(db, &self.dbs[db], with.map(|w| &self.dbs[w]), now_ms);
        }
    }

    /// FLUSHDB / FLUSHALL ran over this shard: tracking clients are told
    /// every key changed (once per command, however many databases).
    pub fn flushed(&mut self) {
        self.tracking.flushed(self.id);
    }

    /// One active-expiry cycle (Redis's "slow" cycle, simplified): for each
    /// database sample 20 TTL keys, repeat while more than 10% were expired,
    /// bounded in time.
    /// Redis's `activerehashing`: up to 1 ms per cron tick moving an index
    /// doubling along, for the first database that has one in progress
    /// (inserts move it too; this finishes it when inserts stop).
    pub fn rehash_cycle(&mut self) {
        if !self.config.activerehashing {
            return;
        }
        if let Some(db) = self.dbs.iter_mut().find(|db| db.map.is_migrating()) {
            db.migrate_for(std::time::Duration::from_millis(1));
        } else if let Some(db) = self.dbs.iter_mut().find(|db| !db.rehashing_values.is_empty()) {
            db.rehash_values_for(std::time::Duration::from_millis(1));
        }
    }

    /// Starts or ends an AOF replay into this shard (start-up, DEBUG
    /// LOADAOF): no lookup, overwrite or expiry sample of its dbs expires a
    /// key meanwhile (`Db::loading`), as Redis's `keyIsExpired` answers 0
    /// while loading: a key expires after the load, not in the middle of
    /// the commands that built it. (EXPIRE with a past time keeps the key
    /// while `Server::loading` is set: `keys::expire_generic`.)
    pub fn set_loading(&mut self, on: bool) {
        for db in &mut self.dbs {
            db.loading = on;
        }
    }

    /// The AOF loader runs commands on this shard now (`set_loading`).
    pub fn is_loading(&self) -> bool {
        self.dbs.first().is_some_and(|db| db.loading)
    }

    /// Redis's active expire cycle over this shard's dbs, within
    /// `budget_usec`. Expired keys for which `spare` says yes stay: the
    /// event loop spares the keys a pending hop marked (`HoldTable::marked`),
    /// whose decision was taken with the key live and whose later round
    /// must find it as decided; deleting one between the rounds would put
    /// its DEL in the stream ahead of the hop's unit (a replay then moves
    /// nothing). A spared key expires at a later cycle or lookup.
    pub fn active_expire_cycle(&mut self, now_ms: i64, budget_usec: u64, spare: impl Fn(&[u8]) -> bool) {
        if !self.active_expire_enabled {
            return;
        }
        let start = std::time::Instant::now();
        let mut rng = self.rng;
        let (stream, pending) = (&mut self.stream, &mut self.pending_publish);
        let notify_flags = self.config.notify_keyspace_events;
        let watched = &mut self.watched;
        let tracking = &mut self.tracking;
        let threshold_ms = self.config.latency_monitor_threshold_ms;
        let mut slowest_delete_usec = 0u64;
        for (dbi, db) in self.dbs.iter_mut().enumerate() {
            loop {
                let timed = (threshold_ms > 0).then_some(&mut slowest_delete_usec);
                let (sampled, expired) = db.active_expire_sample(20, now_ms, &mut rng, timed, &spare, |key| {
                    stream.expired_now(dbi, key);
                    crate::messaging::notify::emit(pending, notify_flags, dbi, crate::messaging::notify::EXPIRED, "expired", key);
                    if !watched.is_empty() {
                        watched.touch(dbi, key, false);
                    }
                    if !tracking.is_idle() {
                        tracking.invalidate(key, 0, Some(0));
                    }
                });
                self.stats.expired_keys += expired as u64;
                if threshold_ms > 0 && slowest_delete_usec / 1000 >= threshold_ms {
                    // Redis's `expire-del`: the deletion of one expired key.
                    self.stats.latency.add_sample("expire-del", slowest_delete_usec / 1000, crate::util::unix_ms() / 1000);
                    slowest_delete_usec = 0;
                }
                if sampled == 0 || expired * 10 <= sampled {
                    break;
                }
                if start.elapsed().as_micros() as u64 > budget_usec {
                    self.rng = rng;
                    self.expire_cycle_done(start);
                    return;
                }
            }
        }
        self.rng = rng;
        self.expire_cycle_done(start);
    }

    /// After an active expiry cycle: its time in `expire_cycle_cpu_milliseconds`
    /// and, at or over `latency-monitor-threshold`, an `expire-cycle` latency
    /// event (a cycle that deleted a big value synchronously, as Redis's).
    fn expire_cycle_done(&mut self, start: std::time::Instant) {
        let usec = start.elapsed().as_micros() as u64;
        self.stats.expire_cycle_usec += usec;
        let threshold = self.config.latency_monitor_threshold_ms;
        if threshold > 0 && usec / 1000 >= threshold {
            self.stats.latency.add_sample("expire-cycle", usec / 1000, crate::util::unix_ms() / 1000);
        }
    }
}
