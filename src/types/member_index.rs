//! The index of a big set's member table (`types/set.rs`) and of a big
//! hash's (`types/hash.rs`): the open-addressing table of
//! `types/open_table.rs` (which grows and shrinks incrementally, and where
//! its invariants are) over buckets that hold `hash32 << 32 | position + 1`
//! (0: empty), the layout of the keyspace's index (`shard/dict.rs`). The
//! members themselves lie in the caller's dense entry vector
//! (`types/indexed.rs`); a bucket names a position.
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
//! The bucket carries the hash, so a resize moves buckets without touching
//! an entry, and a probe passes other members' buckets without reading
//! them. DEBUG HTSTATS-KEY shows a resize's two tables as Redis shows a
//! dict being rehashed.

pub use super::open_table::Bucket;
use super::open_table::{self, OpenTable};

// The keyspace index's bucket encoding.
use crate::shard::dict::{bucket_of, position};

/// A bucket's hash: its top half (`hash32`).
#[inline(always)]
fn hash_of(b: u64) -> u64 {
    b >> 32
}

/// The index: buckets of `hash32 << 32 | position + 1`.
#[derive(Clone, Default)]
pub struct Index(OpenTable<u64>);

/// What `find` found: the bucket and position of the member, or the empty
/// bucket of the (new) table it would go in (`Absent(None)`: no table yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    At { bucket: Bucket, pos: usize },
    Absent(Option<usize>),
}

impl Index {
    /// Room for `n` members without growing.
    pub fn with_capacity(n: usize) -> Index {
        Index(OpenTable::with_capacity(n))
    }

    /// Whether a resize is being carried out.
    pub fn is_migrating(&self) -> bool {
        self.0.is_migrating()
    }

    /// DEBUG HTSTATS-KEY's figures (`OpenTable::stats`).
    pub fn stats(&self) -> (super::table_stats::TableStats, Option<super::table_stats::TableStats>) {
        self.0.stats(hash_of)
    }

    /// Bytes of buckets, both tables' (MEMORY USAGE).
    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }

    /// The bucket whose position satisfies `eq` among those of `hash32`, or
    /// the empty bucket of the new table that ends its probe run there.
    #[inline(always)]
    pub fn find(&self, hash32: u32, mut eq: impl FnMut(usize) -> bool) -> Found {
        // (`Slot::may_match` compares the bucket's hash32 first.)
        match self.0.find(u64::from(hash32), |b| eq(position(b))) {
            open_table::Found::At { bucket, slot } => Found::At { bucket, pos: position(slot) },
            open_table::Found::Absent(at) => Found::Absent(at),
        }
    }

    /// The bucket holding exactly `hash32` and `pos` (which must be there).
    #[inline]
    pub fn bucket_of_position(&self, hash32: u32, pos: usize) -> Bucket {
        match self.find(hash32, |p| p == pos) {
            Found::At { bucket, .. } => bucket,
            Found::Absent(_) => unreachable!("position {pos} is not in the index"),
        }
    }

    /// Points bucket `bucket` (of `hash32`) at position `pos` (the entry
    /// moved there).
    #[inline]
    pub fn repoint(&mut self, bucket: Bucket, hash32: u32, pos: usize) {
        self.0.replace(bucket, bucket_of(hash32, pos));
    }

    /// Whether one more member needs a bigger table first.
    #[inline]
    pub fn full(&self) -> bool {
        self.0.full()
    }

    /// Puts a new member (`hash32`, at `pos`) in the empty bucket `at` that
    /// `find` gave, which must still be right: no change since.
    #[inline]
    pub fn put_at(&mut self, at: usize, hash32: u32, pos: usize) {
        self.0.put_at(at, bucket_of(hash32, pos), hash_of);
    }

    /// Puts a new member in the first empty bucket of its run, growing
    /// first when the table is 3/4 full.
    pub fn put(&mut self, hash32: u32, pos: usize) {
        self.0.put(u64::from(hash32), bucket_of(hash32, pos), hash_of);
    }

    /// Room for `members` at once (a bulk load sized up front).
    pub fn grow(&mut self, members: usize) {
        self.0.grow(members, hash_of);
    }

    /// Moves at least `min` buckets of a resize along; returns whether
    /// some is left.
    pub fn migrate(&mut self, min: usize) -> bool {
        self.0.migrate(min, &hash_of)
    }

    /// Empties bucket `bucket` (shrinking the table when it is left
    /// sparse).
    pub fn remove_bucket(&mut self, bucket: Bucket) {
        self.0.remove(bucket, hash_of);
    }

    /// Prefetch stage 1: the home bucket of `hash32` (in both tables while
    /// resizing).
    #[inline]
    pub fn prefetch_home(&self, hash32: u32) {
        self.0.prefetch_home(u64::from(hash32));
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
        assert_eq!(ix.0.len(), 100);
        // An absent member's empty bucket is where it goes.
        if let Found::Absent(Some(at)) = ix.find(12345, |_| false) {
            ix.put_at(at, 12345, 999);
        } else {
            panic!("absent member not found as absent");
        }
        assert!(matches!(ix.find(12345, |p| p == 999), Found::At { pos: 999, .. }));
        assert!(ix.0.len() * 4 <= ix.0.buckets() * 3);
    }

    /// Random inserts, removals (with the last position moved into the
    /// hole, as `Indexed` does) and repoints through several doublings and
    /// then shrinks, against a map: every member found at its position, in
    /// whichever table. (How far one step moves a resize is
    /// `open_table`'s test.)
    #[test]
    fn repoints_across_resizes_and_matches_a_map() {
        use std::collections::HashMap;
        let _flag = super::super::open_table::tests::RESIZE_FLAG.lock().unwrap_or_else(|e| e.into_inner());
        let mut ix = Index::default();
        // Position -> member; member -> position.
        let mut entries: Vec<u64> = Vec::new();
        let mut model: HashMap<u64, usize> = HashMap::new();
        let hash = |m: u64| (m.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32 | 1;
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let (mut grows, mut shrinks, mut peak) = (0, 0, 0);
        for step in 0..800_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Mostly inserts early, then balanced, then removals only.
            let member = seed % 120_000;
            let remove = seed % 5 < [1, 2, 5, 5][step / 200_000];
            let h = hash(member);
            let found = ix.find(h, |p| entries[p] == member);
            match (found, model.get(&member)) {
                (Found::At { pos, .. }, Some(&want)) => assert_eq!(pos, want),
                (Found::Absent(_), None) => {}
                (f, m) => panic!("member {member}: index {f:?}, model {m:?}"),
            }
            let (migrating, buckets) = (ix.is_migrating(), ix.0.buckets());
            if remove {
                if let Found::At { bucket, pos } = found {
                    ix.remove_bucket(bucket);
                    let last = entries.len() - 1;
                    if pos != last {
                        let moved = entries[last];
                        let b = ix.bucket_of_position(hash(moved), last);
                        ix.repoint(b, hash(moved), pos);
                        model.insert(moved, pos);
                    }
                    entries.swap_remove(pos);
                    model.remove(&member);
                }
            } else if let Found::Absent(at) = found {
                let pos = entries.len();
                entries.push(member);
                match at {
                    Some(at) if !ix.full() => ix.put_at(at, h, pos),
                    _ => ix.put(h, pos),
                }
                model.insert(member, pos);
            }
            if ix.is_migrating() && (!migrating || ix.0.buckets() != buckets) {
                if ix.0.buckets() > buckets {
                    grows += 1;
                } else {
                    shrinks += 1;
                }
            }
            peak = peak.max(ix.0.buckets());
            assert_eq!(ix.0.len(), model.len());
        }
        assert!(grows >= 5 && shrinks >= 2, "{grows} doublings, {shrinks} shrinks");
        for (&member, &pos) in &model {
            assert!(matches!(ix.find(hash(member), |p| entries[p] == member), Found::At { pos: p, .. } if p == pos));
        }
        // Finished: one table, stats of one table, a fraction of the peak.
        while ix.migrate(2) {}
        assert!(!ix.is_migrating() && ix.stats().1.is_none());
        assert!(ix.0.buckets() * 8 <= peak, "{} buckets left of {peak}", ix.0.buckets());
    }
}
