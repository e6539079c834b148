//! The member table of a big sorted set (`types/zset_tree.rs`): an
//! open-addressing table of 4-byte slab ids with linear probing, at most 3/4
//! full, that doubles *incrementally*, as the keyspace's index does
//! (`shard/dict.rs`): the old table stays beside the new one, every insert
//! or removal moves a couple of buckets (whole clusters) across, and lookups
//! try the new table, then the old one.
//!
//! Rebuilt at once, the table of a sorted set growing past 786k members
//! rehashed every member in one ZADD (each a read of the member's bytes:
//! tens of ms, perf/RESULTS.md). The table does not own the members: the
//! caller gives `hash_of(id)`, the hash of a stored id's member.
//!
//! Buckets hold `id + 1` (0: empty), so a new table is zeroed memory the
//! allocator hands out without writing it.

use super::table_stats::TableStats;

/// One table: `id + 1` per bucket, a power of two long (or empty).
#[derive(Clone, Default)]
struct Buckets {
    slots: Vec<u32>,
    used: usize,
}

impl Buckets {
    fn with_len(n: usize) -> Buckets {
        Buckets { slots: vec![0; n], used: 0 }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The bucket holding an id for which `eq` holds, among those of `hash`.
    #[inline]
    fn find(&self, hash: u64, eq: &impl Fn(u32) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let b = self.slots[i];
            if b == 0 {
                return None;
            }
            if eq(b - 1) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn put(&mut self, hash: u64, id: u32) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = id + 1;
        self.used += 1;
    }

    /// Empties bucket `i`, moving back the entries of the run after it that
    /// would no longer be reachable (Knuth's algorithm R): no tombstones.
    fn remove(&mut self, i: usize, hash_of: &impl Fn(u32) -> u64) {
        crate::util::backward_shift_remove(&mut self.slots, i, |b| hash_of(b - 1) as usize);
        self.used -= 1;
    }
}

/// An old table being emptied into the new one.
#[derive(Clone)]
struct Migration {
    table: Buckets,
    /// Next bucket to move; the migration started at an empty bucket, so
    /// the part moved always ends at a cluster boundary.
    cursor: usize,
    /// Buckets visited; done at `table.slots.len()`.
    visited: usize,
}

/// Buckets moved per insert or removal: the old table (N buckets, at most
/// 3N/4 ids) must be emptied before the new one (2N) is 3/4 full, i.e.
/// within 3N/4 inserts; 2 a step (rounded up to a cluster's end) does it.
const MIGRATE_PER_STEP: usize = 2;

/// Where an id lies: which table, which bucket.
#[derive(Clone, Copy, Debug)]
pub struct Loc {
    old: bool,
    bucket: usize,
}

#[derive(Clone, Default)]
pub struct IdTable {
    table: Buckets,
    old: Option<Migration>,
}

impl IdTable {
    /// Ids held, in both tables.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.used + self.old.as_ref().map_or(0, |m| m.table.used)
    }

    /// DEBUG HTSTATS-KEY's figures, as Redis's dict shows a rehash: the
    /// table being emptied is the main one (0), the new one the rehashing
    /// target (1); `hash_of` gives a stored id's hash.
    pub fn stats(&self, hash_of: impl Fn(u32) -> u64) -> (TableStats, Option<TableStats>) {
        let of = |t: &Buckets| {
            let mask = t.slots.len().wrapping_sub(1);
            TableStats::from_homes(t.slots.len(), t.slots.iter().filter(|&&b| b != 0).map(|&b| hash_of(b - 1) as usize & mask))
        };
        match &self.old {
            Some(m) => (of(&m.table), Some(of(&self.table))),
            None => (of(&self.table), None),
        }
    }

    /// The id whose member satisfies `eq`, among those hashing to `hash`.
    #[inline]
    pub fn find(&self, hash: u64, eq: impl Fn(u32) -> bool) -> Option<Loc> {
        if let Some(bucket) = self.table.find(hash, &eq) {
            return Some(Loc { old: false, bucket });
        }
        let m = self.old.as_ref()?;
        m.table.find(hash, &eq).map(|bucket| Loc { old: true, bucket })
    }

    #[inline]
    pub fn id_at(&self, loc: Loc) -> u32 {
        let t = if loc.old { &self.old.as_ref().expect("a location in the old table").table } else { &self.table };
        t.slots[loc.bucket] - 1
    }

    /// Asks for the home bucket of `hash` (in both tables while migrating).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        for t in [Some(&self.table), self.old.as_ref().map(|m| &m.table)].into_iter().flatten() {
            if let Some(b) = t.slots.get(hash as usize & t.slots.len().wrapping_sub(1)) {
                crate::util::prefetch(b as *const u32 as *const u8);
            }
        }
    }

    /// Adds `id` (absent; its member hashes to `hash`), growing as needed.
    pub fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        self.reserve_one(&hash_of);
        self.table.put(hash, id);
        self.migrate(MIGRATE_PER_STEP, &hash_of);
    }

    /// Removes the id at `loc` (from `find`).
    pub fn remove(&mut self, loc: Loc, hash_of: impl Fn(u32) -> u64) {
        if loc.old {
            self.old.as_mut().expect("a location in the old table").table.remove(loc.bucket, &hash_of);
        } else {
            self.table.remove(loc.bucket, &hash_of);
        }
        self.migrate(MIGRATE_PER_STEP, &hash_of);
    }

    /// Room for one more id: past 3/4 the table starts doubling.
    fn reserve_one(&mut self, hash_of: &impl Fn(u32) -> u64) {
        let ids = self.table.used + self.old.as_ref().map_or(0, |m| m.table.used) + 1;
        if !self.table.slots.is_empty() && ids * 4 <= self.table.slots.len() * 3 {
            return;
        }
        if self.old.is_some() {
            // The migration fell behind (removals and inserts in turn at the
            // limit): finish it first.
            self.migrate(usize::MAX, hash_of);
        }
        let mut size = (self.table.slots.len() * 2).max(8);
        while ids * 4 > size * 3 {
            size *= 2;
        }
        let old = std::mem::replace(&mut self.table, Buckets::with_len(size));
        if old.used == 0 {
            return;
        }
        let start = old.slots.iter().position(|&b| b == 0).expect("a table below 3/4 has an empty bucket");
        self.old = Some(Migration { table: old, cursor: start, visited: 0 });
    }

    /// Moves at least `min` buckets (whole clusters) of the old table into
    /// the new one; drops the old table once it is empty.
    fn migrate(&mut self, min: usize, hash_of: &impl Fn(u32) -> u64) {
        let Some(m) = self.old.as_mut() else { return };
        let mask = m.table.mask();
        let mut moved = 0;
        loop {
            if m.visited == m.table.slots.len() || m.table.used == 0 {
                self.old = None;
                return;
            }
            let b = m.table.slots[m.cursor];
            if b != 0 {
                self.table.put(hash_of(b - 1), b - 1);
                m.table.slots[m.cursor] = 0;
                m.table.used -= 1;
            }
            m.cursor = (m.cursor + 1) & mask;
            m.visited += 1;
            moved += 1;
            // Stop only after an empty bucket: a cluster boundary.
            if moved >= min && b == 0 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    /// The longest run of occupied buckets (cyclic).
    fn longest_cluster(b: &[u32]) -> usize {
        let (mut longest, mut run) = (0, 0);
        for i in 0..2 * b.len() {
            run = if b[i % b.len()] != 0 { run + 1 } else { 0 };
            longest = longest.max(run.min(b.len()));
        }
        longest
    }

    /// Random inserts and removals through several doublings, against a
    /// HashMap; no step moves more than a couple of clusters.
    #[test]
    fn matches_a_map_and_grows_in_steps() {
        let hasher = foldhash::fast::RandomState::default();
        let mut members: Vec<Option<u64>> = Vec::new();
        let mut t = IdTable::default();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut saw_migration = false;
        let mut cluster_max = 0;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let key = seed % 50_000;
            let h = hasher.hash_one(key);
            let hash_of = |id: u32| hasher.hash_one(members[id as usize].expect("a live id"));
            let found = t.find(h, |id| members[id as usize] == Some(key));
            assert_eq!(found.map(|l| t.id_at(l)), model.get(&key).copied());
            if seed.is_multiple_of(3) {
                if let Some(loc) = found {
                    let id = t.id_at(loc);
                    t.remove(loc, hash_of);
                    members[id as usize] = None;
                    model.remove(&key);
                }
            } else if found.is_none() {
                let id = members.len() as u32;
                members.push(Some(key));
                let hash_of = |id: u32| hasher.hash_one(members[id as usize].expect("a live id"));
                let visited = t.old.as_ref().map(|m| (m.table.slots.len(), m.visited));
                t.insert(h, id, hash_of);
                match (visited, t.old.as_ref()) {
                    (Some((n, before)), Some(m)) if m.table.slots.len() == n => {
                        // A step moves its buckets plus the rest of a cluster.
                        let moved = m.visited - before;
                        assert!(moved <= MIGRATE_PER_STEP + cluster_max + 1, "one insert moved {} buckets (longest cluster {})", moved, cluster_max);
                    }
                    (_, Some(m)) => cluster_max = longest_cluster(&m.table.slots),
                    _ => {}
                }
                model.insert(key, id);
            }
            saw_migration |= t.old.is_some();
            assert_eq!(t.len(), model.len());
        }
        assert!(saw_migration);
        for (key, id) in &model {
            let loc = t.find(hasher.hash_one(*key), |i| members[i as usize] == Some(*key)).expect("present");
            assert_eq!(t.id_at(loc), *id);
        }
    }
}
