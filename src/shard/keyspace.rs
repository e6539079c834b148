//! One database of one shard: key -> value with optional expiry.
//!
//! Stored in a `Dict` (entries in dense positions plus a hash index that
//! grows incrementally, see dict.rs), so RANDOMKEY and active-expiry
//! sampling are O(1) and SCAN can use a plain position cursor: SCAN walks
//! positions from high to low, and a removal only moves the last (already
//! visited) entry downwards, so every key present for the whole scan is
//! returned at least once.

use super::dict::Dict;

pub type Hasher = foldhash::fast::RandomState;

use super::key::Key;
use super::lazyfree;
use super::lfu;
use crate::types::{Hash, Quicklist, Set, ZSet};

/// A stored value. Strings that are canonical 64-bit integers are kept as
/// integers, like Redis's `int` encoding. A `Value` is 32 bytes whatever it
/// holds: hashes, sets and sorted sets are 24-byte enums (a compact blob's
/// `Vec`, or a pointer to the big encoding) kept inline, which saves the
/// 32-byte box every small one paid before (Redis's robj is 16 bytes); a
/// list's `Quicklist` (48 bytes) stays boxed.
#[derive(Clone, Debug)]
pub enum Value {
    Int(i64),
    /// `raw` marks a string that was modified in place (APPEND, SETRANGE):
    /// Redis reports those as `raw` whatever their length.
    Str {
        bytes: Vec<u8>,
        raw: bool,
    },
    Hash(Hash),
    List(Box<Quicklist>),
    Set(Set),
    ZSet(ZSet),
    Stream(Box<crate::types::Stream>),
}

impl PartialEq for Value {
    /// Strings compare by value; aggregates by identity of content is not
    /// needed anywhere, so they compare by their elements in encoding order.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Str { bytes: a, raw: ra }, Value::Str { bytes: b, raw: rb }) => a == b && ra == rb,
            (Value::Hash(a), Value::Hash(b)) => a.iter().eq(b.iter()),
            (Value::List(a), Value::List(b)) => a.iter().eq(b.iter()),
            (Value::Set(a), Value::Set(b)) => a.iter().eq(b.iter()),
            (Value::ZSet(a), Value::ZSet(b)) => a.iter().eq(b.iter()),
            (Value::Stream(a), Value::Stream(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    pub fn from_bytes(b: &[u8]) -> Value {
        if let Some(n) = canonical_int(b) {
            return Value::Int(n);
        }
        Value::Str { bytes: b.to_vec(), raw: false }
    }
    pub fn from_vec(b: Vec<u8>) -> Value {
        if let Some(n) = canonical_int(&b) {
            return Value::Int(n);
        }
        Value::Str { bytes: b, raw: false }
    }
    /// TYPE's word.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::Str { .. } => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }
    pub fn is_string(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Str { .. })
    }
    /// The bytes of a string value; integers are formatted into `scratch`.
    /// Empty for an aggregate: callers look the key up as a string first
    /// (`StringKind`), so that never reaches here.
    pub fn as_bytes<'a>(&'a self, scratch: &'a mut itoa::Buffer) -> &'a [u8] {
        match self {
            Value::Int(n) => scratch.format(*n).as_bytes(),
            Value::Str { bytes, .. } => bytes,
            Value::Hash(_) | Value::List(_) | Value::Set(_) | Value::ZSet(_) | Value::Stream(_) => {
                debug_assert!(false, "as_bytes of a {}", self.type_name());
                &[]
            }
        }
    }
    pub fn to_vec(&self) -> Vec<u8> {
        let mut b = itoa::Buffer::new();
        self.as_bytes(&mut b).to_vec()
    }
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Str { bytes, raw } => {
                if !raw && bytes.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::Hash(h) => h.encoding(),
            Value::List(_) => "quicklist",
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }
}

/// Redis's `string2ll` acceptance for the `int` encoding: no leading zeros,
/// no '+', no spaces, fits in i64, at most 20 characters.
pub fn canonical_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b.len() == 1 && b[0] == b'0' {
        return Some(0);
    }
    let (neg, d) = if b[0] == b'-' { (true, &b[1..]) } else { (false, b) };
    if d.is_empty() || d[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        if v > i64::MAX as u64 {
            return None;
        }
        Some(v as i64)
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in unix milliseconds; -1 for none. Changed only
    /// through `Db` (`set_expire`, `set`, `insert_entry`), which keeps the
    /// table's TTL list in step.
    pub expire_at_ms: i64,
    /// Last access in unix milliseconds (OBJECT IDLETIME).
    pub access_ms: i64,
}

/// What `Db::probe` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A live key, at this position of the table.
    Live(usize),
    Missing,
    /// The key had expired and has just been deleted.
    Expired,
}

/// What `Db::set` did to the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The key was not there: added (the `new` event).
    Added,
    /// A live key's value was replaced.
    Replaced,
    /// The key had expired: it counts as expired, then added.
    ReplacedExpired,
}

#[derive(Default)]
pub struct Db {
    pub map: Dict,
    /// Big values deleted as a side effect (an expiry under
    /// `lazyfree-lazy-expire`, an overwrite under `lazyfree-lazy-server-del`),
    /// for the shard to free in slices (`ShardState::collect_graveyards`).
    pub graveyard: Vec<Value>,
    /// An AOF is being replayed into this db (`ShardState::set_loading`): no
    /// key is expired, by any lookup, overwrite or sample, as Redis's
    /// `keyIsExpired` answers 0 while loading. Read only for a key whose
    /// TTL has passed.
    pub loading: bool,
    /// Keys whose set or hash table started resizing its index
    /// (`types/open_table.rs`): the cron finishes those resizes when
    /// writes stop (`rehash_values_for`). A key renamed, deleted or
    /// replaced meanwhile is dropped from the list when its turn comes.
    pub rehashing_values: Vec<Box<[u8]>>,
}

impl Db {
    pub fn new() -> Db {
        Db::default()
    }

    /// Whether a TTL of `expire_at_ms` has ended at `now_ms` (-1: none).
    #[inline]
    fn ended(&self, expire_at_ms: i64, now_ms: i64) -> bool {
        expire_at_ms >= 0 && expire_at_ms <= now_ms && !self.loading
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Keys that carry a TTL (`expires=` in INFO keyspace).
    pub fn expires_len(&self) -> usize {
        self.map.ttl_len()
    }

    /// Removes the entry at `pos` if it is expired at `now_ms`; returns true
    /// if it was (the last entry has moved into `pos` then).
    /// The test is inlined into every lookup; the removal is not (it was a
    /// call per lookup, ~40 instructions, for keys that mostly have no TTL).
    /// A database without any TTL (the TTL list is kept in step with
    /// every `expire_at_ms`: `Dict::set_expire_at`) reads no entry: an
    /// LPUSH's or GET's key then costs no chunk lookup here.
    #[inline]
    pub fn remove_if_expired(&mut self, pos: usize, now_ms: i64) -> bool {
        if self.map.ttl_len() == 0 {
            return false;
        }
        let e = self.map.entry_ref(pos);
        if self.ended(e.expire_at_ms, now_ms) {
            self.remove_expired(pos);
            return true;
        }
        false
    }

    #[cold]
    #[inline(never)]
    fn remove_expired(&mut self, pos: usize) {
        let (_, e) = self.map.remove_at(pos);
        self.bury(e.value, lazyfree::lazy_expire());
    }

    /// Frees a value deleted as a side effect: now, or later in slices when
    /// `lazy` and it is big (Redis's `freeObjAsync` test).
    #[inline]
    fn bury(&mut self, v: Value, lazy: bool) {
        if lazy && lazyfree::worth_queueing(&v) {
            self.graveyard.push(v);
            lazyfree::note_buried();
        }
    }

    /// The position of a live key; an expired one is deleted on the way.
    #[inline]
    fn find_live(&mut self, key: &[u8], now_ms: i64) -> Option<usize> {
        let pos = self.map.find(key)?;
        (!self.remove_if_expired(pos, now_ms)).then_some(pos)
    }

    /// Where `key` is, deleting it on the way when it has expired (lazy
    /// expiry): a position, not a borrow, so that the caller can account for
    /// an expired key on the shard before it borrows the entry (`entry_at`).
    /// Always inlined (into the write lookup): a call was ~15 of its ~68
    /// instructions an LPUSH.
    #[inline(always)]
    pub fn probe(&mut self, key: &[u8], now_ms: i64) -> Probe {
        match self.map.find(key) {
            None => Probe::Missing,
            Some(pos) if self.remove_if_expired(pos, now_ms) => Probe::Expired,
            Some(pos) => Probe::Live(pos),
        }
    }

    /// `probe` for a read (Redis's `lookupKeyRead`): an expired key is
    /// reported missing, and deleted unless `keep()` says the dataset must
    /// stay as it is (CLIENT PAUSE WRITE or ALL in force, Redis 7.0's
    /// `expireIfNeeded` under `checkClientPauseTimeoutAndReturnIfPaused`):
    /// then it stays in the table, logically absent, until a write, SCAN
    /// after the pause, or active expiry removes it. `keep` is asked only
    /// for an expired key.
    #[inline]
    pub fn probe_read(&mut self, key: &[u8], now_ms: i64, keep: impl FnOnce() -> bool) -> Probe {
        match self.map.find(key) {
            None => Probe::Missing,
            Some(pos) if self.is_expired_at(pos, now_ms) => {
                if keep() {
                    Probe::Missing
                } else {
                    self.remove_expired(pos);
                    Probe::Expired
                }
            }
            Some(pos) => Probe::Live(pos),
        }
    }

    /// Whether the entry at `pos` has expired at `now_ms` (it may still be
    /// in the table: see `probe_read`).
    #[inline]
    pub fn is_expired_at(&self, pos: usize, now_ms: i64) -> bool {
        if self.map.ttl_len() == 0 {
            return false;
        }
        let e = self.map.entry_ref(pos);
        self.ended(e.expire_at_ms, now_ms)
    }

    /// The entry at a position `probe` returned (no change in between);
    /// `touch` writes its access time.
    #[inline]
    pub fn entry_at(&mut self, pos: usize, now_ms: i64, touch: bool) -> &mut Entry {
        let e = self.map.entry_at_mut(pos);
        if touch {
            e.access_ms = lfu::touched(e.access_ms, now_ms);
        }
        e
    }

    /// Removes `key` if it is expired at `now_ms`; returns true if it was.
    #[inline]
    pub fn expire_if_needed(&mut self, key: &[u8], now_ms: i64) -> bool {
        if self.map.ttl_len() == 0 {
            return false;
        }
        self.map.find(key).is_some_and(|pos| self.remove_if_expired(pos, now_ms))
    }

    /// Looks up a live key (expired keys are deleted on the way), touching its access time.
    #[inline]
    pub fn get(&mut self, key: &[u8], now_ms: i64) -> Option<&mut Entry> {
        self.lookup(key, now_ms, true)
    }

    /// Looks up a live key (expired keys are deleted on the way); `touch`
    /// writes its access time (see `commands::lookup` for when not to).
    #[inline]
    pub fn lookup(&mut self, key: &[u8], now_ms: i64, touch: bool) -> Option<&mut Entry> {
        let pos = self.find_live(key, now_ms)?;
        let e = self.map.entry_at_mut(pos);
        if touch {
            e.access_ms = lfu::touched(e.access_ms, now_ms);
        }
        Some(e)
    }

    /// Looks up without touching access time (OBJECT IDLETIME, TYPE in Redis
    /// does touch; this is for internal reads like DUMP/INFO).
    pub fn peek(&mut self, key: &[u8], now_ms: i64) -> Option<&Entry> {
        let pos = self.find_live(key, now_ms)?;
        Some(self.map.at(pos).1)
    }

    pub fn contains(&mut self, key: &[u8], now_ms: i64) -> bool {
        self.find_live(key, now_ms).is_some()
    }

    /// Sets a value. `keep_ttl` keeps an existing expiry; otherwise it is
    /// cleared. Says whether the key was added, replaced, or replaced after
    /// it had expired (lazy expiry, which the caller accounts for, see
    /// `ShardState::stored`): the new value then starts without the old TTL,
    /// whatever `keep_ttl` says.
    pub fn set(&mut self, key: &[u8], value: Value, now_ms: i64, keep_ttl: bool) -> Stored {
        let hash = self.map.hash(key);
        match self.map.find_hashed(key, hash) {
            Some(pos) => self.overwrite(pos, value, now_ms, keep_ttl),
            None => self.add_hashed(hash, key, value, now_ms),
        }
    }

    /// `set(key, Value::from_bytes(bytes), now_ms, false)` (SET without
    /// options, MSET), without an allocation where the key holds a string
    /// without a TTL whose allocation is exactly `bytes.len()` long and
    /// `bytes` is not an integer: the new bytes are copied over the old ones
    /// (no malloc of the new value, no free of the old). The result is the
    /// value a fresh `Value::from_bytes` makes, down to its capacity (MEMORY
    /// USAGE reads it). `in_place` false (a fork child shares the pages:
    /// writing the old value's would copy its page, where a fresh allocation
    /// goes to the snapshot arena, `persistence/cow.rs`) always allocates.
    #[inline(always)]
    pub fn set_bytes(&mut self, key: &[u8], bytes: &[u8], now_ms: i64, in_place: bool) -> Stored {
        let hash = self.map.hash(key);
        let Some(pos) = self.map.find_hashed(key, hash) else {
            return self.add_hashed(hash, key, Value::from_bytes(bytes), now_ms);
        };
        let e = self.map.entry_at_mut(pos);
        if in_place && e.expire_at_ms < 0 {
            if let Value::Str { bytes: old, raw } = &mut e.value {
                if old.capacity() == bytes.len() && canonical_int(bytes).is_none() {
                    old.clear();
                    old.extend_from_slice(bytes);
                    *raw = false;
                    // Under LFU an overwrite keeps the counter (Redis's dbOverwrite).
                    if !lfu::on() {
                        e.access_ms = now_ms;
                    }
                    return Stored::Replaced;
                }
            }
        }
        self.overwrite(pos, Value::from_bytes(bytes), now_ms, false)
    }

    /// Adds `key` (not in the table, `hash` its hash) with `value`.
    #[inline(never)]
    fn add_hashed(&mut self, hash: u32, key: &[u8], value: Value, now_ms: i64) -> Stored {
        self.map.insert_new_hashed(hash, key.into(), Entry { value, expire_at_ms: -1, access_ms: lfu::fresh(now_ms) });
        Stored::Added
    }

    /// The rest of `set` for the key at `pos`: its value replaced by
    /// `value`, the access time, the TTL.
    fn overwrite(&mut self, pos: usize, value: Value, now_ms: i64, keep_ttl: bool) -> Stored {
        let expired = self.ended(self.map.at(pos).1.expire_at_ms, now_ms);
        let e = self.map.entry_at_mut(pos);
        let old = std::mem::replace(&mut e.value, value);
        // Under LFU an overwrite keeps the counter (Redis's dbOverwrite).
        if !lfu::on() {
            e.access_ms = now_ms;
        }
        if (expired || !keep_ttl) && e.expire_at_ms >= 0 {
            self.map.set_expire_at(pos, -1);
        }
        if !old.is_string() {
            let lazy = if expired { lazyfree::lazy_expire() } else { lazyfree::lazy_server_del() };
            self.bury(old, lazy);
        }
        if expired {
            Stored::ReplacedExpired
        } else {
            Stored::Replaced
        }
    }

    /// Inserts a full entry (used by RENAME/MOVE/COPY/RESTORE and the loader).
    pub fn insert_entry(&mut self, key: Box<[u8]>, entry: Entry) {
        self.insert_key(Key::new(&key), entry);
    }

    /// `insert_entry` of a key already in the table's form (no copy).
    pub fn insert_key(&mut self, key: Key, entry: Entry) {
        if let Some(old) = self.map.insert(key, entry) {
            self.bury(old.value, lazyfree::lazy_server_del());
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.map.remove(key).map(|(_, e)| e)
    }

    /// Deletes `key` as a side effect of a command (RENAME's or COPY's
    /// destination, RESTORE REPLACE, a *STORE with an empty result: Redis's
    /// `dbDelete`): a big value is freed in slices under
    /// `lazyfree-lazy-server-del yes`. Returns whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some((_, e)) => {
                self.bury(e.value, lazyfree::lazy_server_del());
                true
            }
            None => false,
        }
    }

    /// Removes and returns both key and entry.
    pub fn remove_full(&mut self, key: &[u8]) -> Option<(Box<[u8]>, Entry)> {
        self.map.remove(key).map(|(k, e)| (k.into_boxed(), e))
    }

    /// `remove_full` with the key in the table's form (no copy).
    pub fn remove_key(&mut self, key: &[u8]) -> Option<(Key, Entry)> {
        self.map.remove(key)
    }

    /// Sets the absolute expiry of an existing key (`ms < 0` removes it).
    pub fn set_expire(&mut self, key: &[u8], ms: i64) {
        if let Some(pos) = self.map.find(key) {
            self.map.set_expire_at(pos, ms);
        }
    }

    pub fn clear(&mut self) {
        self.map = Dict::default();
    }

    /// One pass of Redis-like active expiry: sample up to `samples` keys
    /// with a TTL, delete the expired ones. Returns (sampled, expired).
    /// `on_expired` sees each key deleted, before it goes; an expired key
    /// for which `spare` says yes stays (a pending hop's key: see
    /// `ShardState::active_expire_cycle`). With `slowest_delete_usec`, each
    /// deletion is timed and the slowest kept there (the latency monitor's
    /// `expire-del`).
    pub fn active_expire_sample(
        &mut self,
        samples: usize,
        now_ms: i64,
        rng: &mut u64,
        mut slowest_delete_usec: Option<&mut u64>,
        spare: &impl Fn(&[u8]) -> bool,
        mut on_expired: impl FnMut(&[u8]),
    ) -> (usize, usize) {
        let mut expired = 0;
        let mut sampled = 0;
        for _ in 0..samples {
            let n = self.map.ttl_len();
            if n == 0 {
                break;
            }
            sampled += 1;
            let pos = self.map.ttl_position((xorshift(rng) % n as u64) as usize);
            let e = self.map.at(pos);
            if self.ended(e.1.expire_at_ms, now_ms) {
                if spare(e.0) {
                    continue;
                }
                on_expired(e.0);
            }
            let start = slowest_delete_usec.is_some().then(std::time::Instant::now);
            if self.remove_if_expired(pos, now_ms) {
                expired += 1;
                if let (Some(start), Some(slowest)) = (start, slowest_delete_usec.as_deref_mut()) {
                    *slowest = (*slowest).max(start.elapsed().as_micros() as u64);
                }
            }
        }
        (sampled, expired)
    }

    /// A random live key, or None. Expired keys met on the way are deleted
    /// and pushed onto `expired` (the caller accounts for them,
    /// `ShardState::expired`); with `keep` (clients paused, see
    /// `probe_read`) they are skipped and stay.
    pub fn random_key(&mut self, now_ms: i64, rng: &mut u64, expired: &mut Vec<Box<[u8]>>, keep: bool) -> Option<Box<[u8]>> {
        // As Redis: retry a bounded number of times when we hit expired keys.
        for _ in 0..100 {
            let n = self.map.len();
            if n == 0 {
                return None;
            }
            let pos = (xorshift(rng) % n as u64) as usize;
            if keep && self.is_expired_at(pos, now_ms) {
                continue;
            }
            if let Some(key) = self.take_if_expired(pos, now_ms) {
                expired.push(key);
                continue;
            }
            return Some(self.map.at(pos).0.into());
        }
        None
    }

    /// Removes the entry at `pos` if it is expired at `now_ms`, returning
    /// its key (the last entry has moved into `pos` then).
    pub fn take_if_expired(&mut self, pos: usize, now_ms: i64) -> Option<Box<[u8]>> {
        let e = self.map.at(pos).1;
        if self.ended(e.expire_at_ms, now_ms) {
            let (key, e) = self.map.remove_at(pos);
            self.bury(e.value, lazyfree::lazy_expire());
            return Some(key.into_boxed());
        }
        None
    }

    /// The cron's share of an index doubling in progress (Redis's
    /// activerehashing). Returns true while one is left.
    pub fn migrate_for(&mut self, budget: std::time::Duration) -> bool {
        self.map.migrate_for(budget)
    }

    /// Key `key`'s set or hash table started resizing its index: the cron
    /// finishes it if writes do not (`rehash_values_for`).
    #[cold]
    pub fn note_rehashing_value(&mut self, key: &[u8]) {
        self.rehashing_values.push(key.into());
    }

    /// The cron's share of the resizes of set and hash tables
    /// (`note_rehashing_value`), within `budget`. Redis's activerehashing
    /// moves only the keyspace's dicts, a set's dict only on its own
    /// operations; here a table left mid-resize would hold its old index
    /// (a third of its index memory, or most of it after a shrink) until
    /// its next writes. Returns true
    /// while one is left.
    pub fn rehash_values_for(&mut self, budget: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + budget;
        while let Some(key) = self.rehashing_values.last() {
            let left = match self.map.find(key) {
                Some(pos) => match &mut self.map.entry_at_mut(pos).value {
                    Value::Set(crate::types::Set::Table(t)) => t.rehash_until(deadline),
                    Value::Hash(crate::types::Hash::Table(t)) => t.rehash_until(deadline),
                    _ => false,
                },
                None => false,
            };
            if left {
                return true;
            }
            self.rehashing_values.pop();
        }
        false
    }
}

pub fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn canonical_ints() {
        assert_eq!(canonical_int(b"0"), Some(0));
        assert_eq!(canonical_int(b"-1"), Some(-1));
        assert_eq!(canonical_int(b"01"), None);
        assert_eq!(canonical_int(b"-0"), None);
        assert_eq!(canonical_int(b"+1"), None);
        assert_eq!(canonical_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(canonical_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(canonical_int(b"9223372036854775808"), None);
    }
    #[test]
    fn expiry_bookkeeping() {
        let mut db = Db::new();
        db.set(b"a", Value::from_bytes(b"1"), 0, false);
        db.set_expire(b"a", 10);
        assert_eq!(db.expires_len(), 1);
        assert!(db.get(b"a", 5).is_some());
        assert!(db.get(b"a", 10).is_none());
        assert_eq!(db.expires_len(), 0);
        assert_eq!(db.len(), 0);
    }

    fn str_ptr(db: &mut Db, key: &[u8]) -> *const u8 {
        match &db.peek(key, 0).expect("present").value {
            Value::Str { bytes, .. } => bytes.as_ptr(),
            other => panic!("not a raw string: {:?}", other.type_name()),
        }
    }

    /// `set_bytes` leaves what `set(Value::from_bytes)` leaves, whichever
    /// way it takes: the value, its capacity (MEMORY USAGE), `raw`, the TTL,
    /// the outcome; and it writes in place exactly when it says it does.
    #[test]
    fn set_bytes_is_set_of_from_bytes() {
        let mut db = Db::new();
        assert_eq!(db.set_bytes(b"k", b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, true), Stored::Added);
        let before = str_ptr(&mut db, b"k");
        // Same length, not an integer: in place.
        assert_eq!(db.set_bytes(b"k", b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 2, true), Stored::Replaced);
        assert_eq!(str_ptr(&mut db, b"k"), before, "written in place");
        let e = db.peek(b"k", 2).unwrap();
        assert_eq!(e.value, Value::from_bytes(b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));
        assert_eq!((e.access_ms, e.expire_at_ms), (2, -1));
        // A modified (raw) string of exactly the new length: in place, not raw after.
        db.set(b"r", Value::Str { bytes: b"abcdef".to_vec(), raw: true }, 0, false);
        db.set_bytes(b"r", b"ghijkl", 0, true);
        assert_eq!(db.peek(b"r", 0).unwrap().value, Value::from_bytes(b"ghijkl"));
        assert_eq!(db.peek(b"r", 0).unwrap().value.encoding(), "embstr");
        // Other lengths, integers, other types, keys with a TTL, and with
        // `in_place` off: a fresh value, the same result as `set`.
        // (key, old value, new bytes, the old value's TTL, in_place)
        type Case<'a> = (&'a [u8], Value, &'a [u8], Option<i64>, bool);
        let cases: [Case; 7] = [
            (b"s1", Value::from_bytes(b"abcd"), b"ab", None, true),
            (b"s2", Value::from_bytes(b"ab"), b"abcd", None, true),
            (b"s3", Value::from_bytes(b"abcde"), b"12345", None, true),
            (b"s4", Value::Int(7), b"x", None, true),
            (b"s5", Value::from_bytes(b"ttl"), b"xyz", Some(1000), true),
            (b"s6", Value::from_bytes(b"old"), b"new", None, false),
            (b"s7", Value::from_bytes(b"gone"), b"back", Some(5), true),
        ];
        let mut reference = Db::new();
        for (key, old, new, ttl, in_place) in cases {
            for d in [&mut db, &mut reference] {
                d.set(key, old.clone(), 0, false);
                if let Some(t) = ttl {
                    d.set_expire(key, t);
                }
            }
            let got = db.set_bytes(key, new, 10, in_place);
            let want = reference.set(key, Value::from_bytes(new), 10, false);
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(key));
            let (a, b) = (db.peek(key, 10).unwrap(), reference.peek(key, 10).unwrap());
            assert_eq!((&a.value, a.expire_at_ms, a.access_ms), (&b.value, b.expire_at_ms, b.access_ms));
            if let (Value::Str { bytes: x, .. }, Value::Str { bytes: y, .. }) = (&a.value, &b.value) {
                assert_eq!(x.capacity(), y.capacity(), "{:?}", String::from_utf8_lossy(key));
            }
        }
        assert_eq!(db.expires_len(), 0);
    }
}
