//! The index of a big set's member table (`types/set.rs`) and of a big
//! hash's (`types/hash.rs`): open addressing with linear probing over
//! buckets that hold `hash32 << 32 | position + 1` (0: empty), the layout of
//! the keyspace's index (`shard/dict.rs`), at most 3/4 full. The members
//! themselves lie in the caller's dense entry vector (`types/indexed.rs`);
//! a bucket names a position.
//!
//! Two things `IndexSet` (the table before this one) could not give:
//!
//! - Addresses to prefetch. A lookup walks three dependent cache lines
//!   (bucket, entry, member bytes); a pipelined batch of SADDs asks for them
//!   in stages (`home`, `first_match`), each a pass over the batch, so the
//!   misses of the batch overlap instead of queueing one after the other.
//! - One probe for an insert: `find` ends, for an absent member, at the
//!   empty bucket the member goes into.
//!
//! The bucket carries the hash, so growth rehashes without touching an
//! entry, and a probe passes other members' buckets without reading them.
//!
//! Growth is incremental, as Redis's dict rehashes and as the sorted set's
//! table (`types/id_table.rs`) and the keyspace's index do: past 3/4 a
//! table twice the size is allocated (zeroed memory the allocator hands out
//! without writing it) and the old one stays beside it; each insert and
//! removal then moves a couple of the old table's buckets (whole clusters)
//! across, lookups try the new table then the old one, and the old table
//! goes once empty. Done at once, the doubling of a 1.5M-member set's
//! index (2M buckets into 4M) stalled its shard for tens of ms
//! (perf/RESULTS.md "cmem21"). DEBUG HTSTATS-KEY shows the two tables as
//! Redis shows a dict being rehashed.

/// One table: buckets, a power of two long (or none).
#[derive(Clone, Default)]
struct Buckets {
    slots: Vec<u64>,
    used: usize,
}

impl Buckets {
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The bucket whose position satisfies `eq` among those of `hash32`:
    /// `Ok` with the bucket and its value, or `Err` with the empty bucket
    /// ending the probe run.
    #[inline(always)]
    fn find(&self, hash32: u32, eq: &mut impl FnMut(usize) -> bool) -> Result<(usize, u64), usize> {
        let mask = self.mask();
        let mut i = hash32 as usize & mask;
        loop {
            let b = self.slots[i];
            if b == 0 {
                return Err(i);
            }
            if (b >> 32) as u32 == hash32 && eq(position(b)) {
                return Ok((i, b));
            }
            i = (i + 1) & mask;
        }
    }

    /// Puts bucket value `b` in the first empty bucket of its run.
    #[inline]
    fn put(&mut self, b: u64) {
        let mask = self.mask();
        let mut i = (b >> 32) as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = b;
        self.used += 1;
    }

    fn stats(&self) -> super::table_stats::TableStats {
        let mask = self.mask();
        super::table_stats::TableStats::from_homes(self.slots.len(), self.slots.iter().filter(|&&b| b != 0).map(|&b| (b >> 32) as usize & mask))
    }
}

/// An old table being emptied into the new one.
#[derive(Clone)]
struct Migration {
    table: Buckets,
    /// Next bucket to move; the migration started at an empty bucket and
    /// each step ends after one, so the part moved ends at a cluster's end
    /// and no member left behind has its probe run cross into it (removals
    /// shift members back within their own cluster only).
    cursor: usize,
    /// Buckets visited; done at `table.slots.len()`.
    visited: usize,
}

/// Buckets moved per insert or removal: the old table (N buckets, at most
/// 3N/4 members) must be emptied before the new one (2N) is 3/4 full, i.e.
/// within 3N/4 inserts; 2 a step (rounded up to a cluster's end) does it in
/// N/2.
const MIGRATE_PER_STEP: usize = 2;

/// The index: the table, and the one being emptied into it while growing.
#[derive(Clone, Default)]
pub struct Index {
    table: Buckets,
    old: Option<Box<Migration>>,
    /// Members held, in both tables (the test of `full`, on every insert).
    len: usize,
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

/// What `find` found: the bucket and position of the member, or the empty
/// bucket of the (new) table it would go in (`Absent(None)`: no table yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    At { bucket: Bucket, pos: usize },
    Absent(Option<usize>),
}

// The keyspace index's bucket encoding.
use crate::shard::dict::{bucket_of, position};

impl Index {
    /// Room for `n` members without growing.
    pub fn with_capacity(n: usize) -> Index {
        if n == 0 {
            return Index::default();
        }
        Index { table: Buckets { slots: vec![0; Self::buckets_for(n)], used: 0 }, old: None, len: 0 }
    }

    fn buckets_for(n: usize) -> usize {
        (n * 4 / 3 + 1).next_power_of_two().max(8)
    }

    /// Members held, in both tables.
    fn used(&self) -> usize {
        debug_assert_eq!(self.len, self.table.used + self.old.as_ref().map_or(0, |m| m.table.used));
        self.len
    }

    /// Whether a doubling is being carried out.
    pub fn is_migrating(&self) -> bool {
        self.old.is_some()
    }

    /// DEBUG HTSTATS-KEY's figures, each member counted at its home bucket,
    /// as Redis's dict shows a rehash: the table being emptied is the main
    /// one, the new one the rehashing target.
    pub fn stats(&self) -> (super::table_stats::TableStats, Option<super::table_stats::TableStats>) {
        match &self.old {
            Some(m) => (m.table.stats(), Some(self.table.stats())),
            None => (self.table.stats(), None),
        }
    }

    /// Bytes of buckets, both tables' (MEMORY USAGE).
    pub fn bytes(&self) -> usize {
        (self.table.slots.len() + self.old.as_ref().map_or(0, |m| m.table.slots.len())) * 8
    }

    /// The bucket whose position satisfies `eq` among those of `hash32`, or
    /// the empty bucket of the new table that ends its probe run there.
    #[inline(always)]
    pub fn find(&self, hash32: u32, mut eq: impl FnMut(usize) -> bool) -> Found {
        if self.table.slots.is_empty() {
            return Found::Absent(None);
        }
        let at = match self.table.find(hash32, &mut eq) {
            Ok((i, b)) => return Found::At { bucket: Bucket(i), pos: position(b) },
            Err(at) => at,
        };
        if let Some(m) = &self.old {
            if let Ok((i, b)) = m.table.find(hash32, &mut eq) {
                return Found::At { bucket: Bucket(i | OLD_BIT), pos: position(b) };
            }
        }
        Found::Absent(Some(at))
    }

    /// The bucket holding exactly `hash32` and `pos` (which must be there).
    #[inline]
    pub fn bucket_of_position(&self, hash32: u32, pos: usize) -> Bucket {
        match self.find(hash32, |p| p == pos) {
            Found::At { bucket, .. } => bucket,
            Found::Absent(_) => unreachable!("position {pos} is not in the index"),
        }
    }

    fn slots_mut(&mut self, bucket: Bucket) -> &mut Buckets {
        if bucket.old() {
            &mut self.old.as_mut().expect("a bucket of the old table").table
        } else {
            &mut self.table
        }
    }

    /// Points bucket `bucket` at position `pos` (the entry moved there).
    #[inline]
    pub fn repoint(&mut self, bucket: Bucket, pos: usize) {
        let t = self.slots_mut(bucket);
        let b = t.slots[bucket.i()];
        t.slots[bucket.i()] = bucket_of((b >> 32) as u32, pos);
    }

    /// Whether one more member needs a bigger table first.
    #[inline]
    pub fn full(&self) -> bool {
        (self.used() + 1) * 4 > self.table.slots.len() * 3
    }

    /// Puts a new member (`hash32`, at `pos`) in the empty bucket `at` that
    /// `find` gave, which must still be right: no change since.
    #[inline]
    pub fn put_at(&mut self, at: usize, hash32: u32, pos: usize) {
        debug_assert!(self.table.slots[at] == 0 && !self.full());
        self.table.slots[at] = bucket_of(hash32, pos);
        self.table.used += 1;
        self.len += 1;
        if self.old.is_some() {
            self.migrate(MIGRATE_PER_STEP);
        }
    }

    /// Puts a new member in the first empty bucket of its run, starting a
    /// doubling first when the table is 3/4 full.
    pub fn put(&mut self, hash32: u32, pos: usize) {
        if self.full() {
            self.start_doubling();
        }
        self.table.put(bucket_of(hash32, pos));
        self.len += 1;
        if self.old.is_some() {
            self.migrate(MIGRATE_PER_STEP);
        }
    }

    /// A table twice the size (at least 8 buckets) takes the new members;
    /// the old one is emptied into it step by step.
    #[cold]
    fn start_doubling(&mut self) {
        if self.old.is_some() {
            // The migration fell behind (removals and inserts in turn at
            // the limit): finish it first.
            self.migrate(usize::MAX);
        }
        let size = Self::buckets_for(self.used() + 1).max(self.table.slots.len() * 2);
        let old = std::mem::replace(&mut self.table, Buckets { slots: vec![0; size], used: 0 });
        if old.used == 0 {
            return;
        }
        let cursor = old.slots.iter().position(|&b| b == 0).expect("a table below 3/4 has an empty bucket");
        self.old = Some(Box::new(Migration { table: old, cursor, visited: 0 }));
    }

    /// Room for `members` at once (a bulk load sized up front): any
    /// doubling finished, then every bucket moved into a table of that
    /// size by its own hash (no entry is read).
    pub fn grow(&mut self, members: usize) {
        self.migrate(usize::MAX);
        let size = Self::buckets_for(members).max(self.table.slots.len());
        if size == self.table.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.table, Buckets { slots: vec![0; size], used: 0 });
        for b in old.slots.into_iter().filter(|&b| b != 0) {
            self.table.put(b);
        }
    }

    /// Moves at least `min` buckets (whole clusters) of the old table into
    /// the new one; drops the old table once it is empty. Returns whether
    /// a migration is left.
    pub fn migrate(&mut self, min: usize) -> bool {
        let Some(m) = self.old.as_mut() else { return false };
        let mask = m.table.mask();
        let mut moved = 0;
        loop {
            if m.visited == m.table.slots.len() || m.table.used == 0 {
                self.old = None;
                return false;
            }
            let b = m.table.slots[m.cursor];
            if b != 0 {
                self.table.put(b);
                m.table.slots[m.cursor] = 0;
                m.table.used -= 1;
            }
            m.cursor = (m.cursor + 1) & mask;
            m.visited += 1;
            moved += 1;
            // Stop only after an empty bucket: a cluster's end.
            if moved >= min && b == 0 {
                return true;
            }
        }
    }

    /// Empties bucket `bucket`, shifting the rest of its run back so that
    /// every member stays reachable from its home bucket (no tombstones).
    pub fn remove_bucket(&mut self, bucket: Bucket) {
        let t = self.slots_mut(bucket);
        crate::util::backward_shift_remove(&mut t.slots, bucket.i(), |b| (b >> 32) as usize);
        t.used -= 1;
        self.len -= 1;
        if self.old.is_some() {
            self.migrate(MIGRATE_PER_STEP);
        }
    }

    /// Prefetch stage 1: the home bucket of `hash32` (in both tables while
    /// growing).
    #[inline]
    pub fn prefetch_home(&self, hash32: u32) {
        if let Some(b) = self.table.slots.get(hash32 as usize & self.table.mask()) {
            crate::util::prefetch(b as *const u64 as *const u8);
        }
        if let Some(m) = &self.old {
            crate::util::prefetch(&m.table.slots[hash32 as usize & m.table.mask()] as *const u64 as *const u8);
        }
    }

    /// Prefetch stage 2: the position of the first bucket carrying `hash32`
    /// (most likely the member's own), its bucket asked for in stage 1.
    #[inline]
    pub fn first_match(&self, hash32: u32) -> Option<usize> {
        match self.find(hash32, |_| true) {
            Found::At { pos, .. } => Some(pos),
            Found::Absent(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_removes_and_grows() {
        let mut ix = Index::default();
        assert_eq!(ix.find(7, |_| true), Found::Absent(None));
        // Colliding hashes (same home) and distinct ones.
        let hashes: Vec<u32> = (0..200u32).map(|i| if i % 3 == 0 { 5 } else { i.wrapping_mul(0x9e37_79b9) }).collect();
        for (pos, &h) in hashes.iter().enumerate() {
            ix.put(h, pos);
        }
        for (pos, &h) in hashes.iter().enumerate() {
            assert!(matches!(ix.find(h, |p| p == pos), Found::At { pos: p, .. } if p == pos));
        }
        // Remove every other one; the rest stay reachable.
        for (pos, &h) in hashes.iter().enumerate().filter(|(p, _)| p % 2 == 0) {
            let b = ix.bucket_of_position(h, pos);
            ix.remove_bucket(b);
        }
        for (pos, &h) in hashes.iter().enumerate() {
            let found = matches!(ix.find(h, |p| p == pos), Found::At { .. });
            assert_eq!(found, pos % 2 == 1, "position {pos}");
        }
        assert_eq!(ix.used(), 100);
        // An absent member's empty bucket is where it goes.
        if let Found::Absent(Some(at)) = ix.find(12345, |_| false) {
            ix.put_at(at, 12345, 999);
        } else {
            panic!("absent member not found as absent");
        }
        assert!(matches!(ix.find(12345, |p| p == 999), Found::At { pos: 999, .. }));
        assert!(ix.used() * 4 <= ix.table.slots.len() * 3);
    }

    /// The longest run of occupied buckets (cyclic).
    fn longest_cluster(b: &[u64]) -> usize {
        let (mut longest, mut run) = (0, 0);
        for i in 0..2 * b.len() {
            run = if b[i % b.len()] != 0 { run + 1 } else { 0 };
            longest = longest.max(run.min(b.len()));
        }
        longest
    }

    /// Random inserts, removals (with the last position moved into the
    /// hole, as `Indexed` does) and repoints through several doublings,
    /// against a map: every member found at its position, in whichever
    /// table; no step moves more than a couple of clusters; the old table
    /// goes once emptied.
    #[test]
    fn grows_incrementally_and_matches_a_map() {
        use std::collections::HashMap;
        let mut ix = Index::default();
        // Position -> member; member -> position.
        let mut entries: Vec<u64> = Vec::new();
        let mut model: HashMap<u64, usize> = HashMap::new();
        let hash = |m: u64| (m.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32 | 1;
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let (mut doublings, mut cluster_max) = (0, 0);
        for step in 0..300_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Mostly inserts early, balanced later.
            let member = seed % 120_000;
            let remove = seed % 5 < if step < 150_000 { 1 } else { 2 };
            let h = hash(member);
            let found = ix.find(h, |p| entries[p] == member);
            match (found, model.get(&member)) {
                (Found::At { pos, .. }, Some(&want)) => assert_eq!(pos, want),
                (Found::Absent(_), None) => {}
                (f, m) => panic!("member {member}: index {f:?}, model {m:?}"),
            }
            if remove {
                if let Found::At { bucket, pos } = found {
                    ix.remove_bucket(bucket);
                    let last = entries.len() - 1;
                    if pos != last {
                        let moved = entries[last];
                        let b = ix.bucket_of_position(hash(moved), last);
                        ix.repoint(b, pos);
                        model.insert(moved, pos);
                    }
                    entries.swap_remove(pos);
                    model.remove(&member);
                }
            } else if let Found::Absent(at) = found {
                let before = ix.old.as_ref().map(|m| (m.table.slots.len(), m.visited));
                let pos = entries.len();
                entries.push(member);
                match at {
                    Some(at) if !ix.full() => ix.put_at(at, h, pos),
                    _ => ix.put(h, pos),
                }
                model.insert(member, pos);
                match (before, ix.old.as_ref()) {
                    (Some((n, visited)), Some(m)) if m.table.slots.len() == n => {
                        let moved = m.visited - visited;
                        assert!(moved <= MIGRATE_PER_STEP + cluster_max + 1, "one insert moved {moved} buckets (longest cluster {cluster_max})");
                    }
                    (_, Some(m)) => {
                        doublings += 1;
                        cluster_max = longest_cluster(&m.table.slots);
                    }
                    _ => {}
                }
            }
            assert_eq!(ix.used(), model.len());
        }
        assert!(doublings >= 5, "{doublings} doublings");
        for (&member, &pos) in &model {
            assert!(matches!(ix.find(hash(member), |p| entries[p] == member), Found::At { pos: p, .. } if p == pos));
        }
        // Finished: one table, stats of one table.
        while ix.migrate(MIGRATE_PER_STEP) {}
        assert!(ix.old.is_none() && ix.stats().1.is_none());
    }
}
