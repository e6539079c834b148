//! The open-addressing table under big sets and hashes
//! (`types/member_index.rs`: slots of `hash32 << 32 | position + 1`) and big
//! sorted sets (`types/id_table.rs`: slots of `slab id + 1`), generic over
//! the slot: linear probing, no tombstones (a removal shifts its run back),
//! at most 3/4 full, and resized *incrementally* both ways, as Redis's dict
//! rehashes:
//!
//! - Past 3/4 full it doubles; below 1/10 full (Redis's `htNeedsResize`,
//!   `HASHTABLE_MIN_FILL` 10) it shrinks, so the memory of a set that lost
//!   most of its members comes back. Not while a fork child exists
//!   (`set_resize_allowed`, Redis's `dictDisableResize`): a new table then
//!   would be copy-on-write pages for nothing. Growth cannot wait (an
//!   open-addressing table has no room past full).
//! - A resize allocates the new table (zeroed memory the allocator hands
//!   out without writing it) and keeps the old one beside it; each insert
//!   and removal then moves a few of the old table's buckets across, whole
//!   clusters at a time, lookups try the new table then the old one, and the
//!   old table goes once empty. Done at once, doubling a 1.5M-member set's
//!   index (2M buckets into 4M) stalled its shard for tens of ms
//!   (perf/RESULTS.md "cmem21"), a 786k-member sorted set's likewise.
//!
//! The table does not know where a slot's hash comes from: operations that
//! move slots take `hash_of(slot)` (read from the slot itself for sets and
//! hashes, from the member's slab entry for sorted sets). A zero slot
//! (`Default`) is an empty bucket.
//!
//! Invariants, all kept here:
//! - Every slot is in exactly one table, reachable by probing from its home
//!   bucket (`hash & mask`) of that table.
//! - A migration moves the old table's buckets from an empty one on, and
//!   stops only after an empty bucket: the part moved always ends at a
//!   cluster's end, so no slot left behind has its probe run cross into
//!   the moved part (a removal shifts slots back within their own cluster).
//! - The old table is emptied before the new one is full: a step visits
//!   `per_step` buckets, at least `MIGRATE_PER_STEP`, and so many more for a
//!   shrink that the old table is done within a quarter of the new table's
//!   buckets in operations; a shrink's target is sized for half as many
//!   again as its members (at most half full), so that it has room for
//!   those inserts. (Redis shrinks to the next power of two of its members,
//!   a chained table that cannot be full: ~1/8 the size at the threshold;
//!   here ~1/4.)
//!   Where removals and inserts in turn still leave the migration behind at
//!   the next resize, that resize finishes it first.

use super::table_stats::TableStats;

/// What a bucket holds; `Default` (zero bits) is an empty bucket, so that
/// a new table is the allocator's zeroed memory.
pub trait Slot: Copy + PartialEq + Default {
    /// Whether a stored slot may be one of `hash`'s, from the slot alone
    /// (a probe passes the others without calling the caller's `eq`).
    fn may_match(self, hash: u64) -> bool;
}

/// A sorted set's slab id: no hash in the slot.
impl Slot for u32 {
    #[inline(always)]
    fn may_match(self, _hash: u64) -> bool {
        true
    }
}

/// A set's or hash's bucket: `hash32 << 32 | position + 1`, the hash
/// given as `hash32`.
impl Slot for u64 {
    #[inline(always)]
    fn may_match(self, hash: u64) -> bool {
        (self >> 32) as u32 == hash as u32
    }
}

/// One table: a power of two of buckets long (or none).
#[derive(Clone, Default)]
struct Buckets<S> {
    slots: Vec<S>,
    used: usize,
}

impl<S: Slot> Buckets<S> {
    fn with_len(n: usize) -> Self {
        Buckets { slots: vec![S::default(); n], used: 0 }
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The bucket whose slot satisfies `eq`, among those of `hash`: `Ok`
    /// with the bucket and the slot, or `Err` with the empty bucket ending
    /// the probe run. The table must have buckets.
    #[inline(always)]
    fn find(&self, hash: u64, eq: &mut impl FnMut(S) -> bool) -> Result<(usize, S), usize> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let s = self.slots[i];
            if s == S::default() {
                return Err(i);
            }
            if s.may_match(hash) && eq(s) {
                return Ok((i, s));
            }
            i = (i + 1) & mask;
        }
    }

    /// Puts `s` in the first empty bucket of `hash`'s run.
    #[inline]
    fn put(&mut self, hash: u64, s: S) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i] != S::default() {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
        self.used += 1;
    }

    fn stats(&self, hash_of: &impl Fn(S) -> u64) -> TableStats {
        let mask = self.mask();
        TableStats::from_homes(self.slots.len(), self.slots.iter().filter(|&&s| s != S::default()).map(|&s| hash_of(s) as usize & mask))
    }
}

/// An old table being emptied into the new one.
#[derive(Clone)]
struct Migration<S> {
    table: Buckets<S>,
    /// Next bucket to move (see the module doc's invariants).
    cursor: usize,
    /// Buckets visited; done at `table.slots.len()`.
    visited: usize,
    /// Buckets visited per insert or removal.
    per_step: usize,
}

/// Buckets moved per insert or removal while doubling: the old table (N
/// buckets, at most 3N/4 slots) must be emptied before the new one (2N) is
/// 3/4 full, i.e. within 3N/4 inserts; 2 a step (rounded up to a cluster's
/// end) does it in N/2.
pub const MIGRATE_PER_STEP: usize = 2;

/// Redis's `HASHTABLE_MIN_FILL`: below this percentage full, a table shrinks.
pub const MIN_FILL_PERCENT: usize = 10;

/// The smallest table.
const MIN_BUCKETS: usize = 8;

/// Whether a table may start a resize that can wait (a shrink): not while
/// a fork child shares the parent's pages. Redis's `dict_can_resize`, one
/// flag for the process, as there.
static RESIZE_AVOIDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Allows or avoids shrinks (a snapshot child started or ended).
pub fn set_resize_allowed(allowed: bool) {
    RESIZE_AVOIDED.store(!allowed, std::sync::atomic::Ordering::Relaxed);
}

fn resize_allowed() -> bool {
    !RESIZE_AVOIDED.load(std::sync::atomic::Ordering::Relaxed)
}

/// A bucket of either table: its index, the top bit set for the one being
/// emptied (one word, so that `Found` stays small on the lookup path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket(usize);

const OLD_BIT: usize = 1 << (usize::BITS - 1);

impl Bucket {
    #[inline(always)]
    fn old(self) -> bool {
        self.0 & OLD_BIT != 0
    }

    #[inline(always)]
    fn i(self) -> usize {
        self.0 & !OLD_BIT
    }
}

/// What `find` found: the bucket and its slot, or the empty bucket of the
/// (new) table the slot would go in (`Absent(None)`: no table yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found<S> {
    At { bucket: Bucket, slot: S },
    Absent(Option<usize>),
}

/// The table, and the one being emptied into it while it resizes.
#[derive(Clone, Default)]
pub struct OpenTable<S> {
    table: Buckets<S>,
    old: Option<Box<Migration<S>>>,
    /// Slots held, in both tables (the test of `full`, on every insert).
    len: usize,
}

impl<S: Slot> OpenTable<S> {
    /// Room for `n` slots without growing.
    pub fn with_capacity(n: usize) -> Self {
        if n == 0 {
            return Self::default();
        }
        OpenTable { table: Buckets::with_len(Self::buckets_for(n)), old: None, len: 0 }
    }

    /// The table size for `n` slots at most 3/4 full.
    fn buckets_for(n: usize) -> usize {
        (n * 4 / 3 + 1).next_power_of_two().max(MIN_BUCKETS)
    }

    /// Slots held, in both tables.
    #[inline]
    pub fn len(&self) -> usize {
        debug_assert_eq!(self.len, self.table.used + self.old.as_ref().map_or(0, |m| m.table.used));
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a resize is being carried out.
    #[inline]
    pub fn is_migrating(&self) -> bool {
        self.old.is_some()
    }

    /// Buckets of the table slots go into (the new one while resizing).
    pub fn buckets(&self) -> usize {
        self.table.slots.len()
    }

    /// Bytes of buckets, both tables' (MEMORY USAGE).
    pub fn bytes(&self) -> usize {
        (self.table.slots.len() + self.old.as_ref().map_or(0, |m| m.table.slots.len())) * std::mem::size_of::<S>()
    }

    /// DEBUG HTSTATS-KEY's figures, each slot counted at its home bucket,
    /// as Redis's dict shows a rehash: the table being emptied is the main
    /// one, the new one the rehashing target.
    pub fn stats(&self, hash_of: impl Fn(S) -> u64) -> (TableStats, Option<TableStats>) {
        match &self.old {
            Some(m) => (m.table.stats(&hash_of), Some(self.table.stats(&hash_of))),
            None => (self.table.stats(&hash_of), None),
        }
    }

    /// The bucket whose slot satisfies `eq` among those of `hash`, or the
    /// empty bucket of the new table that ends its probe run there.
    #[inline(always)]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(S) -> bool) -> Found<S> {
        if self.table.slots.is_empty() {
            return Found::Absent(None);
        }
        let at = match self.table.find(hash, &mut eq) {
            Ok((i, slot)) => return Found::At { bucket: Bucket(i), slot },
            Err(at) => at,
        };
        if let Some(m) = &self.old {
            if let Ok((i, slot)) = m.table.find(hash, &mut eq) {
                return Found::At { bucket: Bucket(i | OLD_BIT), slot };
            }
        }
        Found::Absent(Some(at))
    }

    fn buckets_of(&mut self, bucket: Bucket) -> &mut Buckets<S> {
        if bucket.old() {
            &mut self.old.as_mut().expect("a bucket of the old table").table
        } else {
            &mut self.table
        }
    }

    /// Replaces the slot at `bucket` by one of the same hash (a set's
    /// entry moved to another position).
    #[inline]
    pub fn replace(&mut self, bucket: Bucket, slot: S) {
        let i = bucket.i();
        self.buckets_of(bucket).slots[i] = slot;
    }

    /// Whether one more slot needs a bigger table first.
    #[inline]
    pub fn full(&self) -> bool {
        (self.len + 1) * 4 > self.table.slots.len() * 3
    }

    /// Puts a new slot in the empty bucket `at` that `find` gave, which
    /// must still be right: no change since, and not `full`.
    #[inline]
    pub fn put_at(&mut self, at: usize, slot: S, hash_of: impl Fn(S) -> u64) {
        debug_assert!(self.table.slots[at] == S::default() && !self.full());
        self.table.slots[at] = slot;
        self.table.used += 1;
        self.len += 1;
        if self.old.is_some() {
            self.migrate_step(&hash_of);
        }
    }

    /// Puts a new slot (of `hash`) in the first empty bucket of its run,
    /// starting a doubling first when the table is 3/4 full.
    #[inline]
    pub fn put(&mut self, hash: u64, slot: S, hash_of: impl Fn(S) -> u64) {
        if self.full() {
            self.resize(Self::buckets_for(self.len + 1).max(self.table.slots.len() * 2), &hash_of);
        }
        self.table.put(hash, slot);
        self.len += 1;
        if self.old.is_some() {
            self.migrate_step(&hash_of);
        }
    }

    /// Empties `bucket`, shifting the rest of its run back so that every
    /// slot stays reachable from its home bucket; starts a shrink when the
    /// table is left below `MIN_FILL_PERCENT` full.
    pub fn remove(&mut self, bucket: Bucket, hash_of: impl Fn(S) -> u64) {
        let t = self.buckets_of(bucket);
        crate::util::backward_shift_remove(&mut t.slots, bucket.i(), |s| hash_of(s) as usize);
        t.used -= 1;
        self.len -= 1;
        if self.old.is_some() {
            self.migrate_step(&hash_of);
        } else if self.sparse() && resize_allowed() {
            self.resize(Self::buckets_for(self.len + self.len / 2), &hash_of);
        }
    }

    /// Below `MIN_FILL_PERCENT` full, and bigger than the smallest table.
    #[inline]
    fn sparse(&self) -> bool {
        let n = self.table.slots.len();
        n > MIN_BUCKETS && self.len * 100 < n * MIN_FILL_PERCENT
    }

    /// A table of `size` buckets takes the new slots; the current one is
    /// emptied into it step by step.
    #[cold]
    fn resize(&mut self, size: usize, hash_of: &impl Fn(S) -> u64) {
        if self.old.is_some() {
            // The migration fell behind (removals and inserts in turn at
            // the limit): finish it first.
            self.migrate(usize::MAX, hash_of);
        }
        let old = std::mem::replace(&mut self.table, Buckets::with_len(size));
        if old.used == 0 {
            return;
        }
        let cursor = old.slots.iter().position(|&s| s == S::default()).expect("a table below 3/4 has an empty bucket");
        let per_step = MIGRATE_PER_STEP.max(4 * old.slots.len() / size);
        self.old = Some(Box::new(Migration { table: old, cursor, visited: 0, per_step }));
    }

    /// Room for `n` slots at once (a bulk load sized up front): any resize
    /// finished, then every slot moved into a table of that size.
    pub fn grow(&mut self, n: usize, hash_of: impl Fn(S) -> u64) {
        self.migrate(usize::MAX, &hash_of);
        let size = Self::buckets_for(n).max(self.table.slots.len());
        if size == self.table.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.table, Buckets::with_len(size));
        for s in old.slots.into_iter().filter(|&s| s != S::default()) {
            self.table.put(hash_of(s), s);
        }
    }

    #[inline]
    fn migrate_step(&mut self, hash_of: &impl Fn(S) -> u64) {
        let per_step = self.old.as_ref().map_or(0, |m| m.per_step);
        self.migrate(per_step, hash_of);
    }

    /// Moves at least `min` buckets (whole clusters) of the old table into
    /// the new one; drops the old table once it is empty. Returns whether
    /// a migration is left.
    pub fn migrate(&mut self, min: usize, hash_of: &impl Fn(S) -> u64) -> bool {
        let Some(m) = self.old.as_mut() else { return false };
        let mask = m.table.mask();
        let mut moved = 0;
        loop {
            if m.visited == m.table.slots.len() || m.table.used == 0 {
                self.old = None;
                return false;
            }
            let s = m.table.slots[m.cursor];
            if s != S::default() {
                self.table.put(hash_of(s), s);
                m.table.slots[m.cursor] = S::default();
                m.table.used -= 1;
            }
            m.cursor = (m.cursor + 1) & mask;
            m.visited += 1;
            moved += 1;
            // Stop only after an empty bucket: a cluster's end.
            if moved >= min && s == S::default() {
                return true;
            }
        }
    }

    /// Asks for the home bucket of `hash` (in both tables while resizing).
    #[inline]
    pub fn prefetch_home(&self, hash: u64) {
        if let Some(b) = self.table.slots.get(hash as usize & self.table.mask()) {
            crate::util::prefetch(b as *const S as *const u8);
        }
        if let Some(m) = &self.old {
            crate::util::prefetch(&m.table.slots[hash as usize & m.table.mask()] as *const S as *const u8);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The longest run of occupied buckets (cyclic).
    fn longest_cluster<S: Slot>(b: &[S]) -> usize {
        let (mut longest, mut run) = (0, 0);
        for i in 0..2 * b.len() {
            run = if b[i % b.len()] != S::default() { run + 1 } else { 0 };
            longest = longest.max(run.min(b.len()));
        }
        longest
    }

    /// The tests that count shrinks or turn them off (one flag for the
    /// process, tests on other threads).
    pub(crate) static RESIZE_FLAG: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn hash(k: u64) -> u64 {
        k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k >> 29)
    }

    /// Slots are `key + 1` (u32), their hash computed from the key, as a
    /// sorted set's ids.
    fn hash_of(s: u32) -> u64 {
        hash(u64::from(s - 1))
    }

    /// Random inserts and removals through growth to ~120k slots, then
    /// removals only down to ~2k, against a map, with every kind of insert (`put_at`
    /// after `find`, `put`): every key found, in whichever table; no step
    /// moves more than its share plus a cluster; the table shrinks as it
    /// empties and the old table goes once emptied.
    #[test]
    fn grows_and_shrinks_incrementally_and_matches_a_map() {
        let _flag = RESIZE_FLAG.lock().unwrap_or_else(|e| e.into_inner());
        let mut t: OpenTable<u32> = OpenTable::default();
        let mut model: HashMap<u32, ()> = HashMap::new();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let (mut grows, mut shrinks, mut cluster_max) = (0, 0, 0);
        let mut peak_buckets = 0;
        let phases: [(usize, u64); 2] = [(300_000, 1), (600_000, 5)];
        for (steps, remove_in_5) in phases {
            for _ in 0..steps {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let key = (seed % 150_000) as u32;
                let remove = seed % 5 < remove_in_5;
                let h = hash(u64::from(key));
                let found = t.find(h, |s| s == key + 1);
                assert_eq!(matches!(found, Found::At { .. }), model.contains_key(&key), "key {key}");
                let before = t.old.as_ref().map(|m| (m.table.slots.len(), m.visited, m.per_step));
                let buckets = t.buckets();
                match found {
                    Found::At { bucket, slot } if remove => {
                        assert_eq!(slot, key + 1);
                        t.remove(bucket, hash_of);
                        model.remove(&key);
                    }
                    Found::Absent(at) if !remove => {
                        match at {
                            Some(at) if !t.full() => t.put_at(at, key + 1, hash_of),
                            _ => t.put(h, key + 1, hash_of),
                        }
                        model.insert(key, ());
                    }
                    _ => continue,
                }
                match (before, t.old.as_ref()) {
                    (Some((n, visited, per_step)), Some(m)) if m.table.slots.len() == n => {
                        let moved = m.visited - visited;
                        assert!(moved <= per_step + cluster_max + 1, "one step moved {moved} buckets (longest cluster {cluster_max})");
                    }
                    (_, Some(m)) => {
                        if t.buckets() > buckets {
                            grows += 1;
                        } else {
                            shrinks += 1;
                        }
                        cluster_max = longest_cluster(&m.table.slots);
                    }
                    _ => {}
                }
                peak_buckets = peak_buckets.max(t.buckets());
                assert_eq!(t.len(), model.len());
                assert!(t.len() * 4 <= t.buckets() * 3);
            }
        }
        assert!(grows >= 5 && shrinks >= 2, "{grows} doublings, {shrinks} shrinks");
        for &key in model.keys() {
            assert!(matches!(t.find(hash(u64::from(key)), |s| s == key + 1), Found::At { .. }));
        }
        while t.migrate(MIGRATE_PER_STEP, &hash_of) {}
        assert!(t.old.is_none() && t.stats(hash_of).1.is_none());
        assert!(t.buckets() * 8 <= peak_buckets, "{} buckets left of {peak_buckets} for {} slots", t.buckets(), t.len());
    }

    /// Emptied one by one, a big table shrinks step by step to the smallest
    /// and never holds two big tables at once for long: Redis's fill rule.
    #[test]
    fn shrinks_below_a_tenth_full_not_while_avoided() {
        let _flag = RESIZE_FLAG.lock().unwrap_or_else(|e| e.into_inner());
        let mut t: OpenTable<u32> = OpenTable::default();
        for k in 0..10_000u32 {
            t.put(hash(u64::from(k)), k + 1, hash_of);
        }
        while t.migrate(usize::MAX, &hash_of) {}
        assert_eq!(t.buckets(), 16384);
        let remove = |t: &mut OpenTable<u32>, k: u32| match t.find(hash(u64::from(k)), |s| s == k + 1) {
            Found::At { bucket, .. } => t.remove(bucket, hash_of),
            Found::Absent(_) => panic!("{k} absent"),
        };
        // 1639 left: 10.003% of 16384, no shrink; one more and it starts.
        for k in 0..10_000 - 1639 {
            remove(&mut t, k);
        }
        assert!(!t.is_migrating() && t.buckets() == 16384);
        remove(&mut t, 10_000 - 1639);
        assert!(t.is_migrating());
        // Sized for half as many again: 2457 * 4/3 -> 4096 buckets.
        assert_eq!(t.buckets(), 4096);
        let mut k = 10_000 - 1638;
        while t.is_migrating() {
            remove(&mut t, k);
            k += 1;
        }
        // Done within a quarter of the new table's buckets in operations.
        assert!(k - (10_000 - 1638) <= 4096 / 4, "{} removals", k - (10_000 - 1638));
        // While a fork child exists no shrink starts.
        set_resize_allowed(false);
        while t.len() > 10 {
            remove(&mut t, k);
            k += 1;
        }
        assert!(!t.is_migrating() && t.buckets() == 4096);
        set_resize_allowed(true);
        remove(&mut t, k);
        assert!(t.is_migrating() && t.buckets() == 32);
        while t.migrate(1, &hash_of) {}
        assert_eq!(t.len(), 9);
        assert_eq!(t.bytes(), 32 * 4);
    }
}
