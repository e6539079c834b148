//! The index of a big set's member table (`types/set.rs`): open addressing
//! with linear probing over buckets that hold `hash32 << 32 | position + 1`
//! (0: empty), the layout of the keyspace's index (`shard/dict.rs`), at most
//! 3/4 full. The members themselves lie in the caller's dense entry vector;
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

/// The index: buckets, a power of two long (or none).
#[derive(Clone, Default)]
pub struct Index {
    slots: Vec<u64>,
    used: usize,
}

/// What `find` found: the bucket and position of the member, or the empty
/// bucket it would go in (`Absent(None)`: no table yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    At { bucket: usize, pos: usize },
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
        Index { slots: vec![0; Self::buckets_for(n)], used: 0 }
    }

    fn buckets_for(n: usize) -> usize {
        (n * 4 / 3 + 1).next_power_of_two().max(8)
    }

    /// DEBUG HTSTATS-KEY's figures: each member counted at its home bucket.
    pub fn stats(&self) -> super::table_stats::TableStats {
        let mask = self.slots.len().wrapping_sub(1);
        super::table_stats::TableStats::from_homes(self.slots.len(), self.slots.iter().filter(|&&b| b != 0).map(|&b| (b >> 32) as usize & mask))
    }

    /// Bytes of buckets (MEMORY USAGE).
    pub fn bytes(&self) -> usize {
        self.slots.len() * 8
    }

    /// The bucket whose position satisfies `eq` among those of `hash32`, or
    /// the empty bucket that ends its probe run.
    #[inline(always)]
    pub fn find(&self, hash32: u32, mut eq: impl FnMut(usize) -> bool) -> Found {
        if self.slots.is_empty() {
            return Found::Absent(None);
        }
        let mask = self.slots.len() - 1;
        let mut i = hash32 as usize & mask;
        loop {
            let b = self.slots[i];
            if b == 0 {
                return Found::Absent(Some(i));
            }
            if (b >> 32) as u32 == hash32 && eq(position(b)) {
                return Found::At { bucket: i, pos: position(b) };
            }
            i = (i + 1) & mask;
        }
    }

    /// The bucket holding exactly `hash32` and `pos` (which must be there).
    #[inline]
    pub fn bucket_of_position(&self, hash32: u32, pos: usize) -> usize {
        match self.find(hash32, |p| p == pos) {
            Found::At { bucket, .. } => bucket,
            Found::Absent(_) => unreachable!("position {pos} is not in the index"),
        }
    }

    /// Points bucket `bucket` at position `pos` (the entry moved there).
    #[inline]
    pub fn repoint(&mut self, bucket: usize, pos: usize) {
        let b = self.slots[bucket];
        self.slots[bucket] = bucket_of((b >> 32) as u32, pos);
    }

    /// Whether one more member needs a bigger table first.
    #[inline]
    pub fn full(&self) -> bool {
        (self.used + 1) * 4 > self.slots.len() * 3
    }

    /// Puts a new member (`hash32`, at `pos`) in the empty bucket `at` that
    /// `find` gave, which must still be right: no insert or `grow` since.
    #[inline]
    pub fn put_at(&mut self, at: usize, hash32: u32, pos: usize) {
        debug_assert!(self.slots[at] == 0 && !self.full());
        self.slots[at] = bucket_of(hash32, pos);
        self.used += 1;
    }

    /// Puts a new member in the first empty bucket of its run.
    pub fn put(&mut self, hash32: u32, pos: usize) {
        if self.full() {
            self.grow(self.used + 1);
        }
        let mask = self.slots.len() - 1;
        let mut i = hash32 as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = bucket_of(hash32, pos);
        self.used += 1;
    }

    /// A table for at least `members` (doubling at least), every bucket
    /// moved by its own hash: no entry is read.
    pub fn grow(&mut self, members: usize) {
        let size = Self::buckets_for(members).max(self.slots.len() * 2);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        let mask = size - 1;
        for b in old.into_iter().filter(|&b| b != 0) {
            let mut i = (b >> 32) as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = b;
        }
    }

    /// Empties bucket `i`, shifting the rest of its run back so that every
    /// member stays reachable from its home bucket (no tombstones).
    pub fn remove_bucket(&mut self, i: usize) {
        crate::util::backward_shift_remove(&mut self.slots, i, |b| (b >> 32) as usize);
        self.used -= 1;
    }

    /// Prefetch stage 1: the home bucket of `hash32`.
    #[inline]
    pub fn prefetch_home(&self, hash32: u32) {
        if let Some(b) = self.slots.get(hash32 as usize & self.slots.len().wrapping_sub(1)) {
            crate::util::prefetch(b as *const u64 as *const u8);
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
        assert_eq!(ix.used, 100);
        // An absent member's empty bucket is where it goes.
        if let Found::Absent(Some(at)) = ix.find(12345, |_| false) {
            ix.put_at(at, 12345, 999);
        } else {
            panic!("absent member not found as absent");
        }
        assert!(matches!(ix.find(12345, |p| p == 999), Found::At { pos: 999, .. }));
        assert!(ix.used * 4 <= ix.slots.len() * 3);
    }
}
