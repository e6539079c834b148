//! The `hashtable` encoding of a big set (`types/set.rs`, entries are
//! `Key`s) and of a big hash (`types/hash.rs`, entries are `Pair`s: field
//! and value in one allocation, found by field): a dense vector of entries
//! (positions `0..len`) beside an open-addressing index of positions
//! (`types/member_index.rs`).
//!
//! - O(1) random entries (SPOP, SRANDMEMBER, HRANDFIELD) by position.
//! - A position cursor for SSCAN/HSCAN that keeps Redis's guarantee across
//!   growth, shrink and removal: a removal moves only the last entry into
//!   the hole (already visited by a cursor walking from high to low),
//!   growth appends behind the cursor, and the index's resizes (both ways)
//!   and the entries' reallocations move no entry to another position.
//! - Addresses to prefetch (`prefetch`), which `IndexSet` (the table before
//!   this one) could not give, and one probe for an insert: `find` ends, for
//!   an absent entry, at the empty bucket it goes in.

use std::hash::BuildHasher;

use super::member_index::{Bucket, Found, Index};

pub type Hasher = foldhash::fast::RandomState;

/// What the table holds: an owned entry found by the bytes it is named by
/// (a set's member, a hash's field).
pub trait Member {
    /// The bytes the entry is hashed and found by.
    fn name(&self) -> &[u8];
    /// The allocation's address, for a prefetch (reads nothing).
    fn raw_ptr(&self) -> *const u8;
}

impl Member for crate::shard::key::Key {
    #[inline]
    fn name(&self) -> &[u8] {
        self.as_bytes()
    }
    #[inline]
    fn raw_ptr(&self) -> *const u8 {
        crate::shard::key::Key::raw_ptr(self)
    }
}

impl Member for super::pair::Pair {
    #[inline]
    fn name(&self) -> &[u8] {
        self.field()
    }
    #[inline]
    fn raw_ptr(&self) -> *const u8 {
        super::pair::Pair::raw_ptr(self)
    }
}

/// The table behind one pointer, so that a `Set` or `Hash` holding one is
/// the size of a small encoding's `Vec` (24 bytes) and sits in `Value`.
#[derive(Clone)]
pub struct Indexed<T>(Box<Body<T>>);

#[derive(Clone)]
struct Body<T> {
    index: Index,
    entries: Vec<T>,
    hasher: Hasher,
    /// The index's resize in progress was reported (`take_rehash_start`).
    noted: bool,
}

impl<T> Default for Body<T> {
    fn default() -> Self {
        Body { index: Index::default(), entries: Vec::new(), hasher: Hasher::default(), noted: false }
    }
}

impl<T> Default for Indexed<T> {
    fn default() -> Self {
        Indexed(Box::default())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Indexed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.entries.iter()).finish()
    }
}

/// Entry slots a table keeps however few it holds (no shrink below).
const ENTRIES_KEPT: usize = 64;

/// Most entries a batch's `prefetch` asks for.
const PREFETCH_MAX: usize = 16;

impl<T: Member> Indexed<T> {
    pub fn with_capacity_and_hasher(n: usize, hasher: Hasher) -> Self {
        Indexed(Box::new(Body { index: Index::with_capacity(n), entries: Vec::with_capacity(n), hasher, noted: false }))
    }

    /// DEBUG HTSTATS-KEY's figures of the index: its table and, while it
    /// resizes, the rehashing target.
    pub fn table_stats(&self) -> (super::table_stats::TableStats, Option<super::table_stats::TableStats>) {
        self.0.index.stats()
    }

    /// Whether the index is resizing (`types/open_table.rs`).
    pub fn is_rehashing(&self) -> bool {
        self.0.index.is_migrating()
    }

    /// True once per resize of the index (growth or shrink), after the
    /// write that started it: the caller registers the key
    /// (`Db::note_rehashing_value`) so that the cron finishes the resize
    /// when writes stop (`rehash_until`), and the old table does not stay
    /// allocated beside the new one.
    #[inline]
    pub fn take_rehash_start(&mut self) -> bool {
        let b = &mut *self.0;
        let migrating = b.index.is_migrating();
        if migrating == b.noted {
            return false;
        }
        b.noted = migrating;
        migrating
    }

    /// Moves the index's resize along until `deadline`; returns whether
    /// some is left.
    pub fn rehash_until(&mut self, deadline: std::time::Instant) -> bool {
        let b = &mut *self.0;
        while b.index.migrate(1024) {
            if std::time::Instant::now() >= deadline {
                return true;
            }
        }
        b.noted = false;
        false
    }

    pub fn len(&self) -> usize {
        self.0.entries.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    /// Entry slots allocated.
    pub fn capacity(&self) -> usize {
        self.0.entries.capacity()
    }

    /// Bytes of the index and the entry vector (MEMORY USAGE).
    pub fn table_bytes(&self) -> usize {
        self.0.index.bytes() + self.0.entries.capacity() * std::mem::size_of::<T>()
    }

    #[inline]
    pub(super) fn hash(&self, name: &[u8]) -> u32 {
        (self.0.hasher.hash_one(name) >> 32) as u32
    }

    /// The bucket and position of the entry named `name` (hash `hash32`),
    /// or the empty bucket it would go in.
    #[inline]
    pub(super) fn find(&self, name: &[u8], hash32: u32) -> Found {
        let entries = &self.0.entries;
        self.0.index.find(hash32, |p| crate::shard::key::bytes_eq(entries[p].name(), name))
    }

    /// The position of the entry named `name`.
    #[inline]
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        match self.find(name, self.hash(name)) {
            Found::At { pos, .. } => Some(pos),
            Found::Absent(_) => None,
        }
    }

    #[inline]
    pub fn contains(&self, name: &[u8]) -> bool {
        self.position(name).is_some()
    }

    /// The entry at position `i`.
    #[inline]
    pub fn at(&self, i: usize) -> Option<&T> {
        self.0.entries.get(i)
    }

    /// The entry at position `i`, to change in a way that keeps its name.
    #[inline]
    pub(super) fn at_mut(&mut self, i: usize) -> &mut T {
        &mut self.0.entries[i]
    }

    /// The entries in position order.
    #[inline]
    pub fn entries(&self) -> &[T] {
        &self.0.entries
    }

    /// Appends an entry known absent (hash `h`), `at` its empty bucket from
    /// `find` (no insert since).
    ///
    /// Entries grow by a quarter at a time: left to a `Vec`'s doubling, a
    /// 1M-entry table would hold up to 2M slots (an `IndexSet` sized them to
    /// its index's capacity: 79 bytes a set member against redis-server's
    /// 56, 124 a hash field against its 75, `perf/RESULTS.md`); 25% steps,
    /// still amortised O(1), leave 1.0-1.25 slots an entry.
    #[inline]
    pub(super) fn push_new(&mut self, h: u32, at: Option<usize>, entry: T) {
        let b = &mut *self.0;
        if b.entries.len() == b.entries.capacity() {
            let more = (b.entries.len() / 4).max(4);
            b.entries.reserve_exact(more);
        }
        let pos = b.entries.len();
        b.entries.push(entry);
        match at {
            Some(at) if !b.index.full() => b.index.put_at(at, h, pos),
            _ => b.index.put(h, pos),
        }
    }

    /// Adds an owned entry unless one of its name is there; true when new.
    pub fn insert_entry(&mut self, entry: T) -> bool {
        let h = self.hash(entry.name());
        match self.find(entry.name(), h) {
            Found::At { .. } => false,
            Found::Absent(at) => {
                self.push_new(h, at, entry);
                true
            }
        }
    }

    /// Room for `n` more entries.
    pub fn reserve(&mut self, n: usize) {
        let b = &mut *self.0;
        b.entries.reserve_exact(n);
        b.index.grow(b.entries.len() + n);
    }

    /// Removes the entry named `name`; true when it was there. The last
    /// entry moves into its position.
    #[inline]
    pub fn swap_remove(&mut self, name: &[u8]) -> bool {
        match self.find(name, self.hash(name)) {
            Found::At { bucket, pos } => {
                self.remove_at(bucket, pos);
                true
            }
            Found::Absent(_) => false,
        }
    }

    /// Removes and returns the entry at position `i` (the last moves in).
    pub fn swap_remove_index(&mut self, i: usize) -> Option<T> {
        let h = self.hash(self.0.entries.get(i)?.name());
        let bucket = self.0.index.bucket_of_position(h, i);
        Some(self.remove_at(bucket, i))
    }

    fn remove_at(&mut self, bucket: Bucket, pos: usize) -> T {
        self.0.index.remove_bucket(bucket);
        let last = self.0.entries.len() - 1;
        if pos != last {
            let h = self.hash(self.0.entries[last].name());
            let b = self.0.index.bucket_of_position(h, last);
            self.0.index.repoint(b, h, pos);
        }
        let m = self.0.entries.swap_remove(pos);
        let b = &mut *self.0;
        if b.entries.is_empty() {
            // Nothing left: give the index and entries back.
            let hasher = std::mem::take(&mut b.hasher);
            *b = Body { hasher, ..Body::default() };
        } else if b.entries.capacity() > ENTRIES_KEPT && b.entries.len() * 4 < b.entries.capacity() {
            // Below a quarter used the entries give their memory back (the
            // index by its own rule, below a tenth), down to a quarter over
            // what is left: a copy of those, paid for by the removals that
            // got there (3/4 of the slots, and 1/5 to the next shrink).
            let len = b.entries.len();
            b.entries.shrink_to(len + len / 4);
        }
        m
    }

    /// Asks for the memory the lookups of `names` will touch, in stages,
    /// each a pass over them: their home buckets, then the entries those
    /// name, then the entries' bytes. The misses of a stage overlap; a
    /// pipelined batch of SADDs (HSETs, HGETs) then finds its lines in the
    /// cache (see `network/prefetch.rs`). A hint only: nothing is changed.
    pub fn prefetch(&self, names: &[&[u8]]) {
        let names = &names[..names.len().min(PREFETCH_MAX)];
        let mut hashes = [0u32; PREFETCH_MAX];
        for (h, m) in hashes.iter_mut().zip(names) {
            *h = self.hash(m);
            self.0.index.prefetch_home(*h);
        }
        let mut found = [usize::MAX; PREFETCH_MAX];
        for (f, &h) in found.iter_mut().zip(&hashes[..names.len()]) {
            if let Some(pos) = self.0.index.first_match(h) {
                crate::util::prefetch(&self.0.entries[pos] as *const T as *const u8);
                *f = pos;
            }
        }
        for &pos in found[..names.len()].iter().filter(|&&p| p != usize::MAX) {
            crate::util::prefetch(self.0.entries[pos].raw_ptr());
        }
    }
}

impl<T> IntoIterator for Indexed<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    /// The entries by value (lazy free drops them one by one).
    fn into_iter(self) -> Self::IntoIter {
        self.0.entries.into_iter()
    }
}
