//! Typed key lookups, Redis's `lookupKeyRead` / `lookupKeyWrite` plus
//! `checkType`: one function per intent, so that no handler repeats (or
//! forgets) lazy expiry, the keyspace hit/miss counters, the type test or the
//! access-time rule.
//!
//! Access time: a lookup writes `access_ms` (OBJECT IDLETIME) only while no
//! fork child exists, as Redis's `lookupKey` does under
//! `hasActiveChildProcess()`. During a BGSAVE every write to an entry copies
//! its page in the parent, so a read-only load that touched each key would
//! copy the whole dataset once more.

use std::sync::atomic::Ordering;

use super::Ctx;
use crate::messaging::notify;
use crate::shard::{Db, Entry, Probe, Value};

/// The value was of another type than the command works on: the handler
/// replies `err::WRONGTYPE`.
#[derive(Debug, PartialEq, Eq)]
pub struct WrongType;

/// A type a lookup may require (Redis's `checkType`).
pub trait Kind {
    fn holds(v: &Value) -> bool;
}

/// Any value (TYPE, EXISTS, TTL, RENAME, ...).
pub enum AnyKind {}

impl Kind for AnyKind {
    fn holds(_: &Value) -> bool {
        true
    }
}

/// A string, whatever its encoding.
pub enum StringKind {}

impl Kind for StringKind {
    /// Exhaustive on purpose: a new value type must decide here.
    #[inline]
    fn holds(v: &Value) -> bool {
        match v {
            Value::Int(_) | Value::Str { .. } => true,
            Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_) | Value::Stream(_) => false,
        }
    }
}

macro_rules! aggregate_kind {
    ($(#[$doc:meta])* $name:ident, $variant:ident) => {
        $(#[$doc])*
        pub enum $name {}

        impl Kind for $name {
            #[inline]
            fn holds(v: &Value) -> bool {
                matches!(v, Value::$variant(_))
            }
        }
    };
}

aggregate_kind!(
    /// A hash.
    HashKind,
    Hash
);
aggregate_kind!(
    /// A list.
    ListKind,
    List
);
aggregate_kind!(
    /// A set.
    SetKind,
    Set
);
aggregate_kind!(
    /// A sorted set.
    ZSetKind,
    ZSet
);

aggregate_kind!(
    /// A stream.
    StreamKind,
    Stream
);

/// What a lookup does besides finding the key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// Counts a hit or miss, writes the access time.
    Read,
    /// Counts a hit or miss, leaves the access time (Redis's LOOKUP_NOTOUCH:
    /// TYPE, TTL, EXISTS).
    ReadNoTouch,
    /// As `ReadNoTouch`, and a miss is not notified (Redis's
    /// LOOKUP_NOTOUCH | LOOKUP_NONOTIFY: OBJECT, MEMORY USAGE).
    ReadNoNotify,
    /// Neither counts nor is counted (Redis's lookupKeyWrite), writes the access time.
    Write,
}

/// `key`'s live entry in `db` (lazy expiry on the way, `touch` writing the
/// access time), for a handler that holds two databases at once (COPY). An
/// expired key sets `expired`: the caller then tells the shard
/// (`ShardState::expired`) once it no longer borrows the databases.
#[inline]
pub fn probe_entry<'d>(db: &'d mut Db, key: &[u8], now_ms: i64, touch: bool, expired: &mut bool) -> Option<&'d mut Entry> {
    match db.probe(key, now_ms) {
        Probe::Live(pos) => Some(db.entry_at(pos, now_ms, touch)),
        Probe::Missing => None,
        Probe::Expired => {
            *expired = true;
            None
        }
    }
}

/// The result of a typed lookup: the live entry, None when the key does not
/// exist (or just expired), `Err(WrongType)` for a value of another type.
pub type Lookup<'c> = Result<Option<&'c mut Entry>, WrongType>;

impl Ctx<'_> {
    /// Whether a lookup may write access times now: not while a fork child
    /// shares the parent's pages.
    #[inline]
    pub fn may_touch(&self) -> bool {
        !self.server.persistence.snapshot_active.load(Ordering::Relaxed)
    }

    /// The reads' lookup (and MOVE's write), a call as before: inlined into
    /// GET's reply it cost GET ~20 instructions more (its `probe_read` then
    /// stayed out of line).
    #[inline]
    fn lookup<K: Kind>(&mut self, db: usize, key: &[u8], intent: Intent) -> Lookup<'_> {
        self.lookup_inlined::<K>(db, key, intent)
    }

    /// The lookup itself. Inlined as it stands into `lookup_write`, so
    /// that a write handler (LPUSH, LPOP, SADD, SPOP, ...) matches on the
    /// probe's outcome directly: as a call it was ~90 of an LPUSH's
    /// instructions, ~20 of them the call's own, and the entry was taken
    /// in a closure LLVM kept out of line (perf/RESULTS.md "types20").
    #[inline(always)]
    fn lookup_inlined<K: Kind>(&mut self, db: usize, key: &[u8], intent: Intent) -> Lookup<'_> {
        let now = self.now_ms;
        let touch = matches!(intent, Intent::Read | Intent::Write) && self.may_touch();
        let server = self.server;
        let shard = self.shards.of(key);
        // By position, so that no borrow of the database is alive when an
        // expired key or a miss is reported to its shard. A read leaves an
        // expired key in place while clients are paused (`Db::probe_read`);
        // a write deletes it whatever the pause (Redis 7.0 kept it there
        // too and then failed an assertion in `dbAdd`; later versions
        // delete it, as here: the write must not see the old value, nor
        // may a replica or the AOF).
        // (While an AOF is replayed no key expires: `Db::loading`.)
        let probe =
            if intent == Intent::Write { shard.dbs[db].probe(key, now) } else { shard.dbs[db].probe_read(key, now, || server.pause_until(now).is_some()) };
        let found = match probe {
            Probe::Live(pos) => Some(pos),
            Probe::Missing => None,
            Probe::Expired => {
                shard.expired(db, key);
                None
            }
        };
        if intent != Intent::Write {
            // A key of the wrong type is a hit, as in Redis (counted before checkType).
            if found.is_some() {
                shard.stats.keyspace_hits += 1;
            } else {
                shard.stats.keyspace_misses += 1;
                if intent != Intent::ReadNoNotify {
                    shard.notify(db, notify::KEY_MISS, "keymiss", key);
                }
            }
        }
        let Some(pos) = found else { return Ok(None) };
        let e = shard.dbs[db].entry_at(pos, now, touch);
        if K::holds(&e.value) {
            Ok(Some(e))
        } else {
            Err(WrongType)
        }
    }

    /// A key read by the command (GET, STRLEN, MGET, TOUCH, ...).
    #[inline]
    pub fn lookup_read<K: Kind>(&mut self, key: &[u8]) -> Lookup<'_> {
        self.lookup::<K>(self.db, key, Intent::Read)
    }

    /// A key inspected without counting as an access (TYPE, TTL, EXISTS, OBJECT).
    #[inline]
    pub fn lookup_read_no_touch<K: Kind>(&mut self, key: &[u8]) -> Lookup<'_> {
        self.lookup::<K>(self.db, key, Intent::ReadNoTouch)
    }

    /// As `lookup_read_no_touch`, and a miss is not notified (OBJECT, MEMORY USAGE).
    #[inline]
    pub fn lookup_read_no_notify<K: Kind>(&mut self, key: &[u8]) -> Lookup<'_> {
        self.lookup::<K>(self.db, key, Intent::ReadNoNotify)
    }

    /// Deletes `key` of the client's db if it has expired (DEL, UNLINK, as
    /// Redis's `expireIfNeeded`), counted as an expiry. Returns whether it had.
    pub fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        let (db, now) = (self.db, self.now_ms);
        let shard = self.shards.of(key);
        let expired = shard.dbs[db].expire_if_needed(key, now);
        if expired {
            shard.expired(db, key);
        }
        expired
    }

    /// A key the command is about to change (INCR, APPEND, SET NX, EXPIRE, ...).
    #[inline]
    pub fn lookup_write<K: Kind>(&mut self, key: &[u8]) -> Lookup<'_> {
        self.lookup_inlined::<K>(self.db, key, Intent::Write)
    }

    /// `lookup_write`, and when the key does not exist (or just expired) a
    /// new entry holding `make()` is added first (notified `new`, as Redis's
    /// `dbAdd`): the entry and whether it was created. One probe of the key
    /// when it exists (the handlers' common case); a second lookup only
    /// after an insert.
    pub fn lookup_write_or_create<K: Kind>(&mut self, key: &[u8], make: impl FnOnce() -> Value) -> Result<(&mut Entry, bool), WrongType> {
        let (db, now) = (self.db, self.now_ms);
        let touch = self.may_touch();
        let shard = self.shards.of(key);
        match shard.dbs[db].probe(key, now) {
            Probe::Live(pos) => {
                let e = shard.dbs[db].entry_at(pos, now, touch);
                return if K::holds(&e.value) { Ok((e, false)) } else { Err(WrongType) };
            }
            Probe::Expired => shard.expired(db, key),
            Probe::Missing => {}
        }
        let entry = Entry { value: make(), expire_at_ms: -1, access_ms: crate::shard::lfu::fresh(now) };
        shard.dbs[db].insert_entry(key.into(), entry);
        shard.notify_new(db, key);
        Ok((shard.dbs[db].lookup(key, now, false).expect("the key just added"), true))
    }

    /// `lookup_write` in database `db` rather than the client's (MOVE).
    #[inline]
    pub fn lookup_write_in<K: Kind>(&mut self, db: usize, key: &[u8]) -> Lookup<'_> {
        self.lookup::<K>(db, key, Intent::Write)
    }
}
