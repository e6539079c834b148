//! The member table of a big sorted set (`types/zset_tree.rs`): the
//! open-addressing table of `types/open_table.rs` (which grows and shrinks
//! incrementally, and where its invariants are) over 4-byte slab ids,
//! stored as `id + 1` (0: empty).
//!
//! Rebuilt at once, the table of a sorted set growing past 786k members
//! rehashed every member in one ZADD (each a read of the member's bytes:
//! tens of ms, perf/RESULTS.md). The table does not own the members: the
//! caller gives `hash_of(id)`, the hash of a stored id's member (kept in
//! its slab entry, so a move reads no member bytes).

use super::open_table::{Bucket, Found, OpenTable};
use super::table_stats::TableStats;

/// Where an id lies: its bucket, and the id.
#[derive(Clone, Copy, Debug)]
pub struct Loc {
    bucket: Bucket,
    id: u32,
}

#[derive(Clone, Default)]
pub struct IdTable(OpenTable<u32>);

impl IdTable {
    /// DEBUG HTSTATS-KEY's figures (`OpenTable::stats`); `hash_of` gives a
    /// stored id's hash.
    pub fn stats(&self, hash_of: impl Fn(u32) -> u64) -> (TableStats, Option<TableStats>) {
        self.0.stats(|s| hash_of(s - 1))
    }

    /// The id whose member satisfies `eq`, among those hashing to `hash`.
    #[inline]
    pub fn find(&self, hash: u64, eq: impl Fn(u32) -> bool) -> Option<Loc> {
        match self.0.find(hash, |s| eq(s - 1)) {
            Found::At { bucket, slot } => Some(Loc { bucket, id: slot - 1 }),
            Found::Absent(_) => None,
        }
    }

    #[inline]
    pub fn id_at(&self, loc: Loc) -> u32 {
        loc.id
    }

    /// Asks for the home bucket of `hash` (in both tables while resizing).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        self.0.prefetch_home(hash);
    }

    /// Adds `id` (absent; its member hashes to `hash`), growing as needed.
    pub fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        self.0.put(hash, id + 1, |s| hash_of(s - 1));
    }

    /// Removes the id at `loc` (from `find`), shrinking the table when it
    /// is left sparse.
    pub fn remove(&mut self, loc: Loc, hash_of: impl Fn(u32) -> u64) {
        self.0.remove(loc.bucket, |s| hash_of(s - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::hash::BuildHasher;

    /// Random inserts and removals through several doublings and shrinks,
    /// ids reused as the slab reuses them, hashes from a side table as
    /// the slab's: against a HashMap.
    #[test]
    fn matches_a_map_through_growth_and_shrink() {
        let hasher = foldhash::fast::RandomState::default();
        let mut members: Vec<Option<u64>> = Vec::new();
        let mut free: Vec<u32> = Vec::new();
        let mut t = IdTable::default();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut seed = 0x9E3779B97F4A7C15u64;
        for step in 0..400_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let key = seed % 50_000;
            let h = hasher.hash_one(key);
            let found = t.find(h, |id| members[id as usize] == Some(key));
            assert_eq!(found.map(|l| t.id_at(l)), model.get(&key).copied());
            let remove = if step < 200_000 { seed.is_multiple_of(3) } else { !seed.is_multiple_of(10) };
            if remove {
                if let Some(loc) = found {
                    let id = t.id_at(loc);
                    t.remove(loc, |id| hasher.hash_one(members[id as usize].expect("a live id")));
                    members[id as usize] = None;
                    free.push(id);
                    model.remove(&key);
                }
            } else if found.is_none() {
                let id = free.pop().unwrap_or_else(|| {
                    members.push(None);
                    members.len() as u32 - 1
                });
                members[id as usize] = Some(key);
                t.insert(h, id, |id| hasher.hash_one(members[id as usize].expect("a live id")));
                model.insert(key, id);
            }
            assert_eq!(t.0.len(), model.len());
        }
        for (key, id) in &model {
            let loc = t.find(hasher.hash_one(*key), |i| members[i as usize] == Some(*key)).expect("present");
            assert_eq!(t.id_at(loc), *id);
        }
    }
}
