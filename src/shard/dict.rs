//! The table behind one database: key -> entry, grown without a stall.
//!
//! Two parts, as in IndexMap, but neither grows all at once:
//!
//! - The entries live in a dense *position* order inside fixed chunks of
//!   `CHUNK` slots (`ChunkedVec`): growing allocates one more chunk and never
//!   moves an entry (but within the first chunk, and within one opened
//!   small because a whole one would go over `maxmemory`). Positions give
//!   O(1) random sampling (RANDOMKEY, active expiry) and SCAN's position
//!   cursor; removal moves the last entry into the hole (`swap_remove`), so
//!   positions stay dense.
//! - The index is an open-addressing table with linear probing whose buckets
//!   hold `hash32 << 32 | position + 1` (0: empty); the bucket of a hash is
//!   `hash32 & mask`, so an entry is moved or rehashed from its bucket alone,
//!   without touching the entry. Past 3/4 full it doubles *incrementally*, as
//!   Redis's dict does: the old table stays beside the new one and a few
//!   buckets move on every insert and a time-bounded batch on every cron
//!   tick; lookups try the new table, then the old one. As Redis's dict,
//!   it does not double while the new table would take used memory over
//!   `maxmemory` (up to a harder fill, `growth_allowed`).
//!
//! Measured before this table (IndexMap, which reallocates its entry vector
//! and rehashes its whole index at once): one insert stalled ~400 ms at 4M
//! keys. Now the most an insert does is move a few clusters of buckets.
//!
//! Tables of 2 MiB and more are mapped directly (zero pages, nothing to
//! clear up front) and marked MADV_DONTFORK: the BGSAVE child walks the
//! entries, never the index, so fork() copies no page tables for it and the
//! parent's inserts during a snapshot copy no index pages. They get 4 KiB
//! pages, not huge ones: the first touch of fresh memory costs ~1.7 us per
//! 4 KiB on this VM, so a new table in huge pages stalled each of the first
//! few dozen inserts after a doubling ~3.5 ms (measured), where 4 KiB pages
//! spread the same cost thinly.
//!
//! The positions of the entries with a TTL are kept in a second chunked
//! list (each entry knows its place in it), for active expiry and INFO.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use super::key::Key;
use super::keyspace::{Entry, Hasher};

const CHUNK_SHIFT: u32 = 12;
/// Slots per chunk: 4096 x 72 B = 72 pages exactly.
const CHUNK: usize = 1 << CHUNK_SHIFT;
/// The first chunk's initial capacity (it grows up to CHUNK).
const FIRST_CHUNK: usize = 16;
/// Past this many slots the first chunk grows by this many at a time.
const FIRST_CHUNK_STEP: usize = 256;

/// A vector in fixed chunks: pushing never moves what is already there,
/// except within the first chunk while it grows to CHUNK, or a later one
/// opened small under `maxmemory` (see `push`). (Also a big
/// sorted set's member slab, `types/zset_tree.rs`: a `Vec` of 1M slots
/// doubling moved 12 MiB in one insert, 9.8 ms measured.)
#[derive(Clone)]
pub struct ChunkedVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
    /// The chunks' capacities summed (kept where a chunk is opened, grown,
    /// shrunk or dropped: the rare paths).
    cap: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec { chunks: Vec::new(), len: 0, cap: 0 }
    }
}

impl<T> ChunkedVec<T> {
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated, used or not.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    #[cold]
    fn recount_capacity(&mut self) {
        self.cap = self.chunks.iter().map(Vec::capacity).sum();
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        Some(&self.chunks[i >> CHUNK_SHIFT][i & (CHUNK - 1)])
    }

    #[inline]
    fn at(&self, i: usize) -> &T {
        debug_assert!(i < self.len);
        &self.chunks[i >> CHUNK_SHIFT][i & (CHUNK - 1)]
    }

    #[inline]
    fn at_mut(&mut self, i: usize) -> &mut T {
        debug_assert!(i < self.len);
        &mut self.chunks[i >> CHUNK_SHIFT][i & (CHUNK - 1)]
    }

    pub fn push(&mut self, v: T) {
        let c = self.len >> CHUNK_SHIFT;
        if c == self.chunks.len() {
            // The first chunk starts small and grows up to CHUNK (a small
            // database does not cost a whole chunk: maxmemory tests in
            // Redis's suite leave 100 KB of headroom); later ones are whole,
            // unless a whole one (288 KB of entry slots) would take used
            // memory over `maxmemory`: Redis then refuses to expand a dict
            // (`dictExpandAllowed`), its entries being allocated one by one;
            // here an entry must have a slot, so the chunk starts small too.
            let whole = c > 0 && !super::memory::over_after_alloc(CHUNK * std::mem::size_of::<T>());
            self.chunks.push(Vec::with_capacity(if whole { CHUNK } else { FIRST_CHUNK }));
            self.recount_capacity();
        }
        let chunk = &mut self.chunks[c];
        if chunk.len() == chunk.capacity() {
            // Only a chunk below CHUNK (the first, or one opened under
            // maxmemory): it moves while it grows, doubling to
            // FIRST_CHUNK_STEP slots, then by that many (a step of used
            // memory stays small: 18 KB of slots, under maxmemory). A later
            // chunk becomes whole at once when that fits under maxmemory.
            let cap = chunk.capacity();
            let next = if c > 0 && !super::memory::over_after_alloc((CHUNK - cap) * std::mem::size_of::<T>()) {
                CHUNK
            } else if cap < FIRST_CHUNK_STEP {
                cap * 2
            } else {
                cap + FIRST_CHUNK_STEP
            };
            chunk.reserve_exact(next.min(CHUNK) - chunk.len());
            self.recount_capacity();
        }
        let chunk = &mut self.chunks[c];
        // Otherwise within the chunk's capacity: the chunk never reallocates.
        debug_assert!(chunk.len() < CHUNK);
        chunk.push(v);
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let v = self.chunks[self.len >> CHUNK_SHIFT].pop();
        // Keep one empty chunk as a spare, so pushes and pops around a chunk
        // boundary do not allocate and free in turn.
        let needed = self.len.div_ceil(CHUNK);
        let chunks = self.chunks.len();
        if self.chunks.len() > needed + 1 {
            self.chunks.truncate(needed + 1);
        }
        // Far below a chunk boundary the spare goes, and a first chunk a
        // quarter full gives half back (its memory counts against
        // maxmemory; eviction must be able to lower it).
        if self.len * 4 < CHUNK && self.chunks.len() > 1 {
            self.chunks.truncate(1);
        }
        let mut shrunk = chunks != self.chunks.len();
        if let [only] = &mut self.chunks[..] {
            if only.capacity() > FIRST_CHUNK_STEP && only.len() * 4 < only.capacity() {
                only.shrink_to((only.len() * 2).max(FIRST_CHUNK_STEP));
                shrunk = true;
            }
        }
        if shrunk {
            self.recount_capacity();
        }
        v
    }

    /// Removes element `i`, moving the last one into its place.
    pub fn swap_remove(&mut self, i: usize) -> T {
        let last = self.pop().expect("swap_remove on an empty ChunkedVec");
        if i == self.len {
            return last;
        }
        std::mem::replace(self.at_mut(i), last)
    }

    /// The chunks in position order, each a slice of consecutive elements.
    pub fn chunks(&self) -> impl DoubleEndedIterator<Item = &[T]> {
        self.chunks.iter().map(|c| &c[..]).filter(|c| !c.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The elements by value, in order.
    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.chunks.into_iter().flatten()
    }
}

impl<T> std::ops::Index<usize> for ChunkedVec<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        assert!(i < self.len, "index {} of a ChunkedVec of {}", i, self.len);
        self.at(i)
    }
}

impl<T> std::ops::IndexMut<usize> for ChunkedVec<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        assert!(i < self.len, "index {} of a ChunkedVec of {}", i, self.len);
        self.at_mut(i)
    }
}

/// One entry of the store: key, entry, the index hash and the entry's place
/// in the TTL list.
pub struct Slot {
    key: Key,
    entry: Entry,
    hash32: u32,
    ttl_index: u32,
}

/// `ttl_index` of an entry without a TTL.
const NO_TTL: u32 = u32::MAX;

impl Slot {
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.key
    }
    #[inline]
    pub fn entry(&self) -> &Entry {
        &self.entry
    }
}

/// Bytes of index tables mapped outside the allocator (for INFO memory).
static MAPPED_INDEX_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes of index tables the allocator's statistics do not see.
pub fn mapped_index_bytes() -> u64 {
    MAPPED_INDEX_BYTES.load(Ordering::Relaxed)
}

/// Tables at least this big are mapped directly (see the module comment).
const MAP_BYTES_MIN: usize = 2 << 20;

/// One open-addressing index table (see the module comment).
struct Table {
    ptr: *mut u64,
    /// A power of two, or 0 for no table at all (an empty database).
    buckets: usize,
    used: usize,
}

// SAFETY: the table owns its memory; a shard's tables move between threads
// only with the whole shard state (hold.rs), never shared.
unsafe impl Send for Table {}

impl Table {
    const fn none() -> Table {
        Table { ptr: std::ptr::null_mut(), buckets: 0, used: 0 }
    }

    fn with_buckets(buckets: usize) -> Table {
        assert!(buckets.is_power_of_two() && buckets <= 1 << 32, "index table of {} buckets", buckets);
        let bytes = buckets * 8;
        let ptr = if bytes >= MAP_BYTES_MIN {
            // SAFETY: a fresh private anonymous mapping (zero-filled on first
            // touch); the advice calls only tune it.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align(bytes, 4096).expect("layout"));
                }
                libc::madvise(p, bytes, libc::MADV_DONTFORK);
                p as *mut u64
            }
        } else {
            let layout = std::alloc::Layout::array::<u64>(buckets).expect("layout");
            // SAFETY: a non-zero-sized layout.
            let p = unsafe { std::alloc::alloc_zeroed(layout) } as *mut u64;
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            p
        };
        if bytes >= MAP_BYTES_MIN {
            MAPPED_INDEX_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        Table { ptr, buckets, used: 0 }
    }

    #[inline]
    fn slots(&self) -> &[u64] {
        if self.buckets == 0 {
            return &[];
        }
        // SAFETY: `ptr` points at `buckets` initialised u64s owned by us.
        unsafe { std::slice::from_raw_parts(self.ptr, self.buckets) }
    }

    #[inline]
    fn slots_mut(&mut self) -> &mut [u64] {
        if self.buckets == 0 {
            return &mut [];
        }
        // SAFETY: as in `slots`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.buckets) }
    }

    /// The bucket whose position satisfies `eq`, among those of `hash32`.
    /// Always inlined, and so is a `KeyAt` test (a closure comparing the key,
    /// used for both tables, stayed a call of ~40 instructions per lookup).
    #[inline(always)]
    fn find(&self, hash32: u32, mut eq: impl PositionTest) -> Option<usize> {
        let slots = self.slots();
        if slots.is_empty() {
            return None;
        }
        let mask = self.buckets - 1;
        let mut i = hash32 as usize & mask;
        loop {
            let b = slots[i];
            if b == 0 {
                return None;
            }
            if (b >> 32) as u32 == hash32 && eq.test(position(b)) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The bucket that holds exactly `hash32` and `pos`.
    fn find_position(&self, hash32: u32, pos: usize) -> Option<usize> {
        self.find(hash32, |p| p == pos)
    }

    /// Puts a bucket value into the first free bucket of its probe sequence.
    #[inline]
    fn insert(&mut self, bucket: u64) {
        debug_assert!(self.used < self.buckets);
        let mask = self.buckets - 1;
        let slots = self.slots_mut();
        let mut i = (bucket >> 32) as usize & mask;
        while slots[i] != 0 {
            i = (i + 1) & mask;
        }
        slots[i] = bucket;
        self.used += 1;
    }

    /// Empties bucket `i`, shifting the rest of its cluster back so that
    /// every entry stays reachable from its home bucket (no tombstones).
    fn remove_bucket(&mut self, mut i: usize) {
        let mask = self.buckets - 1;
        let slots = self.slots_mut();
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let b = slots[j];
            if b == 0 {
                break;
            }
            let home = (b >> 32) as usize & mask;
            // The entry at j may fill the hole at i when its home is not in
            // the cyclic range (i, j].
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(i) & mask) {
                slots[i] = b;
                i = j;
            }
        }
        slots[i] = 0;
        self.used -= 1;
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if self.buckets == 0 {
            return;
        }
        let bytes = self.buckets * 8;
        if bytes >= MAP_BYTES_MIN {
            // SAFETY: the mapping made in `with_buckets`, unmapped once.
            unsafe { libc::munmap(self.ptr as *mut libc::c_void, bytes) };
            MAPPED_INDEX_BYTES.fetch_sub(bytes as u64, Ordering::Relaxed);
        } else {
            // SAFETY: allocated in `with_buckets` with this layout.
            unsafe { std::alloc::dealloc(self.ptr as *mut u8, std::alloc::Layout::array::<u64>(self.buckets).expect("layout")) };
        }
    }
}

/// What `Table::find` asks of a bucket's position: a closure, or `KeyAt`.
trait PositionTest {
    fn test(&mut self, pos: usize) -> bool;
}

impl<F: FnMut(usize) -> bool> PositionTest for F {
    #[inline(always)]
    fn test(&mut self, pos: usize) -> bool {
        self(pos)
    }
}

/// The entry at the position holds `key`.
#[derive(Clone, Copy)]
struct KeyAt<'a> {
    slots: &'a ChunkedVec<Slot>,
    key: &'a [u8],
}

impl PositionTest for KeyAt<'_> {
    #[inline(always)]
    fn test(&mut self, pos: usize) -> bool {
        super::key::bytes_eq(&self.slots.at(pos).key, self.key)
    }
}

#[inline]
pub(crate) fn position(bucket: u64) -> usize {
    (bucket as u32 - 1) as usize
}

#[inline]
pub(crate) fn bucket_of(hash32: u32, pos: usize) -> u64 {
    (hash32 as u64) << 32 | (pos as u64 + 1)
}

/// A whole table being freed in slices (FLUSHALL / FLUSHDB ASYNC, see
/// `shard/lazyfree.rs`): each `next()` gives back one 256 KiB block of an
/// index table's pages (`None`), then hands out the entries one by one
/// (`Some`, the key already freed), a chunk of slots at a time.
pub struct DictDrain {
    tables: Vec<Table>,
    /// Buckets of `tables.last()` already given back, from its end.
    released: usize,
    chunks: std::vec::IntoIter<Vec<Slot>>,
    slots: std::vec::IntoIter<Slot>,
}

impl Iterator for DictDrain {
    type Item = Option<Entry>;
    fn next(&mut self) -> Option<Option<Entry>> {
        while let Some(t) = self.tables.last_mut() {
            if t.buckets * 8 < MAP_BYTES_MIN || self.released >= t.buckets {
                // Small (the allocator's), or every page already given back:
                // what is left to free is cheap.
                self.tables.pop();
                self.released = 0;
                continue;
            }
            let end = t.buckets - self.released;
            let start = end.saturating_sub(RELEASE_BUCKETS);
            // SAFETY: the range lies inside the table's mapping; nothing reads
            // the table again (it is being dropped).
            unsafe { libc::madvise(t.ptr.add(start) as *mut libc::c_void, (end - start) * 8, libc::MADV_DONTNEED) };
            self.released += end - start;
            return Some(None);
        }
        loop {
            if let Some(slot) = self.slots.next() {
                return Some(Some(slot.entry));
            }
            self.slots = self.chunks.next()?.into_iter();
        }
    }
}

impl Dict {
    /// The table taken apart for freeing in slices (`DictDrain`).
    pub fn into_drain(mut self) -> DictDrain {
        let mut tables = vec![std::mem::take(&mut self.index)];
        tables.extend(self.old.take().map(|m| m.table));
        let chunks = std::mem::take(&mut self.slots.chunks);
        // Its spare slots are freed with the rest (`Drop`, here).
        DictDrain { tables, released: 0, chunks: chunks.into_iter(), slots: Vec::new().into_iter() }
    }
}

/// An old table being emptied into the new one.
struct Migration {
    table: Table,
    /// The bucket the migration started at.
    start: usize,
    /// Next bucket to move.
    cursor: usize,
    /// Buckets visited so far; done at `table.buckets`.
    visited: usize,
}

impl Migration {
    /// Gives back the pages of the `RELEASE_BUCKETS` block that ends at the
    /// cursor, all moved already (MADV_DONTNEED leaves zero pages: empty
    /// buckets, as the migration left them). Freeing the pages a block at a
    /// time keeps the final unmap of a big table from stalling one insert
    /// (measured: 3.3 ms to unmap 32 MiB at once). The block holding `start`
    /// is still partly unmoved at this point and is left to the unmap.
    fn release_block_before_cursor(&mut self) {
        if self.table.buckets * 8 < MAP_BYTES_MIN {
            return;
        }
        let block_start = if self.cursor == 0 { self.table.buckets - RELEASE_BUCKETS } else { self.cursor - RELEASE_BUCKETS };
        if self.start / RELEASE_BUCKETS == block_start / RELEASE_BUCKETS {
            return;
        }
        debug_assert!(self.table.slots()[block_start..block_start + RELEASE_BUCKETS].iter().all(|&b| b == 0));
        // SAFETY: the range lies inside our mapping and holds only empty
        // buckets; MADV_DONTNEED on private anonymous memory reads back zeros.
        unsafe {
            libc::madvise(self.table.ptr.add(block_start) as *mut libc::c_void, RELEASE_BUCKETS * 8, libc::MADV_DONTNEED);
        }
    }
}

/// Buckets per block of a migrated table given back at once (256 KiB).
const RELEASE_BUCKETS: usize = 32 * 1024;

/// Buckets moved from the old table per insert: the old table must be empty
/// before the new one (twice its size) is 3/4 full, i.e. within 3/4 of the
/// old size in inserts; 2 per insert (more, rounded up to cluster ends) is
/// enough, and the cron moves more.
const MIGRATE_PER_INSERT: usize = 2;

/// An index table grows (doubles) past this fill: linear probing stays
/// short (~2.5 buckets per hit, ~8.5 per miss at 3/4).
#[inline]
fn over_fill(entries: usize, buckets: usize) -> bool {
    entries * 4 > buckets * 3
}

/// Past its fill limit, an index table still refuses to double while the
/// new table would take used memory over `maxmemory` (Redis's
/// `dictExpandAllowed`: Redis keeps a dict at up to 1.618 entries per
/// bucket rather than evict for its expand), up to this harder fill of
/// 7/8, past which it doubles regardless: linear probing has no chains to
/// absorb more (~4.5 buckets per hit, ~32 per miss at 7/8).
#[cold]
#[inline(never)]
fn growth_allowed(entries: usize, buckets: usize) -> bool {
    entries * 8 > buckets * 7 || !super::memory::over_after_alloc(buckets * 2 * std::mem::size_of::<u64>())
}

/// The database table: see the module comment.
#[derive(Default)]
pub struct Dict {
    slots: ChunkedVec<Slot>,
    index: Table,
    old: Option<Migration>,
    /// Positions of the entries with a TTL.
    ttl: ChunkedVec<u32>,
    hasher: Hasher,
    /// Slots allocated in `slots` that hold no entry, as last noted in
    /// used memory's reckoning (`note_spare`).
    spare_noted: usize,
}

/// What one entry's slot takes (72 B: key, entry, hash, TTL index).
const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

impl Drop for Dict {
    fn drop(&mut self) {
        super::memory::note_spare_slot_bytes(-((self.spare_noted * SLOT_BYTES) as i64));
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::none()
    }
}

impl Dict {
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Entries with a TTL.
    #[inline]
    pub fn ttl_len(&self) -> usize {
        self.ttl.len()
    }

    /// The position of the `i`th entry with a TTL (`i < ttl_len()`).
    #[inline]
    pub fn ttl_position(&self, i: usize) -> usize {
        *self.ttl.at(i) as usize
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u32 {
        (self.hasher.hash_one(key) >> 32) as u32
    }

    /// The position of `key`, whose hash is `hash32`.
    #[inline]
    pub fn find_hashed(&self, key: &[u8], hash32: u32) -> Option<usize> {
        let eq = KeyAt { slots: &self.slots, key };
        if let Some(b) = self.index.find(hash32, eq) {
            return Some(position(self.index.slots()[b]));
        }
        let old = &self.old.as_ref()?.table;
        old.find(hash32, eq).map(|b| position(old.slots()[b]))
    }

    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.find_hashed(key, self.hash(key))
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.find(key).map(|p| &self.slots.at(p).entry)
    }

    /// Key and entry at a position (`pos < len()`).
    #[inline]
    pub fn at(&self, pos: usize) -> (&[u8], &Entry) {
        let s = self.slots.at(pos);
        (&s.key, &s.entry)
    }

    /// The entry at `pos` alone: `at` also builds the key's slice (a
    /// varint walk of its header) that the expiry test does not read, and
    /// LLVM kept that loop.
    #[inline]
    pub fn entry_ref(&self, pos: usize) -> &Entry {
        &self.slots.at(pos).entry
    }

    #[inline]
    pub fn entry_at_mut(&mut self, pos: usize) -> &mut Entry {
        &mut self.slots.at_mut(pos).entry
    }

    /// Entries in position order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.slots.iter().map(|s| (&s.key[..], &s.entry))
    }

    /// Lookups of a pipelined batch ask for their memory in stages, each a
    /// pass over the batch, so the misses of the batch overlap (see
    /// `EventLoop::prefetch_keys`). Stage 1: the home bucket of `hash32`.
    #[inline]
    pub fn prefetch_bucket(&self, hash32: u32) {
        for t in [Some(&self.index), self.old.as_ref().map(|m| &m.table)].into_iter().flatten() {
            if t.buckets != 0 {
                // SAFETY: the index is within the table (masked).
                crate::util::prefetch(unsafe { t.ptr.add(hash32 as usize & (t.buckets - 1)) } as *const u8);
            }
        }
    }

    /// Stage 2: the entry of the first bucket carrying `hash32` (its bucket
    /// asked for in stage 1); returns its position for stage 3.
    #[inline]
    pub fn prefetch_slot(&self, hash32: u32) -> Option<usize> {
        let any = |_: usize| true;
        let pos = match self.index.find(hash32, any) {
            Some(b) => position(self.index.slots()[b]),
            None => {
                let old = &self.old.as_ref()?.table;
                position(old.slots()[old.find(hash32, any)?])
            }
        };
        let slot = self.slots.at(pos) as *const Slot as *const u8;
        crate::util::prefetch(slot);
        // SAFETY: still inside the slot (72 bytes): its last cache line.
        crate::util::prefetch(unsafe { slot.add(std::mem::size_of::<Slot>() - 1) });
        Some(pos)
    }

    /// Stage 3: the key and value bytes of the entry at `pos` (asked for in
    /// stage 2).
    #[inline]
    pub fn prefetch_key_value(&self, pos: usize) {
        let s = self.slots.at(pos);
        // The key's address only: `as_ptr()` of its bytes would load the
        // length's varint first (a real load of the line being asked for).
        crate::util::prefetch(s.key.raw_ptr());
        if let super::Value::Str { bytes, .. } = &s.entry.value {
            crate::util::prefetch(bytes.as_ptr());
        }
    }

    /// The entry store's chunks in position order (the BGSAVE walk goes
    /// from the last).
    pub fn chunks(&self) -> impl DoubleEndedIterator<Item = &[Slot]> {
        self.slots.chunks()
    }

    /// Inserts `key` (absent; its hash is `hash32`). Returns its position.
    pub fn insert_new_hashed(&mut self, hash32: u32, key: Key, entry: Entry) -> usize {
        debug_assert!(self.find_hashed(&key, hash32).is_none(), "insert_new of a present key");
        self.reserve_one();
        let pos = self.slots.len();
        assert!(pos < u32::MAX as usize - 1, "more than 2^32 keys in one database of one shard");
        let ttl_index = if entry.expire_at_ms >= 0 {
            self.ttl.push(pos as u32);
            (self.ttl.len() - 1) as u32
        } else {
            NO_TTL
        };
        self.slots.push(Slot { key, entry, hash32, ttl_index });
        self.note_spare();
        self.index.insert(bucket_of(hash32, pos));
        // The test inline: a call that finds no migration cost ~15
        // instructions per insert.
        if self.old.is_some() {
            self.migrate(MIGRATE_PER_INSERT);
        }
        pos
    }

    /// Inserts or replaces; the TTL list follows `entry.expire_at_ms`.
    /// Returns the entry replaced.
    pub fn insert(&mut self, key: Key, entry: Entry) -> Option<Entry> {
        let hash32 = self.hash(&key);
        match self.find_hashed(&key, hash32) {
            Some(pos) => {
                let ms = entry.expire_at_ms;
                let old = std::mem::replace(&mut self.slots.at_mut(pos).entry, entry);
                self.slots.at_mut(pos).entry.expire_at_ms = old.expire_at_ms;
                self.set_expire_at(pos, ms);
                Some(old)
            }
            None => {
                self.insert_new_hashed(hash32, key, entry);
                None
            }
        }
    }

    /// Sets the absolute expiry (unix ms, < 0: none) of the entry at `pos`,
    /// keeping the TTL list in step.
    pub fn set_expire_at(&mut self, pos: usize, ms: i64) {
        let s = self.slots.at_mut(pos);
        s.entry.expire_at_ms = ms;
        if ms >= 0 && s.ttl_index == NO_TTL {
            s.ttl_index = self.ttl.len() as u32;
            self.ttl.push(pos as u32);
        } else if ms < 0 && s.ttl_index != NO_TTL {
            let t = s.ttl_index as usize;
            s.ttl_index = NO_TTL;
            self.forget_ttl(t);
        }
    }

    /// Removes element `t` of the TTL list; the entry moved into its place
    /// learns its new index.
    fn forget_ttl(&mut self, t: usize) {
        self.ttl.swap_remove(t);
        if t < self.ttl.len() {
            let moved = *self.ttl.at(t) as usize;
            self.slots.at_mut(moved).ttl_index = t as u32;
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<(Key, Entry)> {
        let pos = self.find(key)?;
        Some(self.remove_at(pos))
    }

    /// Removes the entry at `pos`; the last entry moves into its place.
    pub fn remove_at(&mut self, pos: usize) -> (Key, Entry) {
        let (hash32, ttl_index) = {
            let s = self.slots.at(pos);
            (s.hash32, s.ttl_index)
        };
        self.unindex(hash32, pos);
        if ttl_index != NO_TTL {
            self.forget_ttl(ttl_index as usize);
        }
        let last = self.slots.len() - 1;
        let removed = self.slots.swap_remove(pos);
        self.note_spare();
        if pos != last {
            let (moved_hash, moved_ttl) = {
                let s = self.slots.at(pos);
                (s.hash32, s.ttl_index)
            };
            self.reindex(moved_hash, last, pos);
            if moved_ttl != NO_TTL {
                *self.ttl.at_mut(moved_ttl as usize) = pos as u32;
            }
        }
        (removed.key, removed.entry)
    }

    /// Used memory counts the slots that hold an entry, not those a chunk
    /// keeps ready for the next ones (`shard::memory::note_spare_slot_bytes`):
    /// Redis allocates a `dictEntry` per key, so its used memory grows by
    /// an entry's bytes per key and an evicted key gives them back; here a
    /// chunk is allocated ahead (the first one in steps of 18 KB) and a
    /// removed entry's slot is kept for the next. Counted as allocated, a
    /// step put used memory 7 KB over `maxmemory` at once and an evicted
    /// small key gave back 24 B of the 72 its slot holds, so eviction took
    /// every key and still answered -OOM (tests/maxmemory.rs, keyspace
    /// events at 3 shards; the TCL unit's volatile policies at 2 shards,
    /// where inserts on one shard and evictions on the other grow the
    /// first's chunk while the second's frees nothing).
    #[inline]
    fn note_spare(&mut self) {
        let spare = self.slots.capacity() - self.slots.len();
        if spare != self.spare_noted {
            super::memory::note_spare_slot_bytes((spare as i64 - self.spare_noted as i64) * SLOT_BYTES as i64);
            self.spare_noted = spare;
        }
    }

    fn unindex(&mut self, hash32: u32, pos: usize) {
        if let Some(b) = self.index.find_position(hash32, pos) {
            return self.index.remove_bucket(b);
        }
        let m = self.old.as_mut().expect("an entry's position is indexed");
        let b = m.table.find_position(hash32, pos).expect("an entry's position is indexed");
        m.table.remove_bucket(b);
    }

    fn reindex(&mut self, hash32: u32, from: usize, to: usize) {
        if let Some(b) = self.index.find_position(hash32, from) {
            self.index.slots_mut()[b] = bucket_of(hash32, to);
            return;
        }
        let m = self.old.as_mut().expect("an entry's position is indexed");
        let b = m.table.find_position(hash32, from).expect("an entry's position is indexed");
        m.table.slots_mut()[b] = bucket_of(hash32, to);
    }

    /// Makes room for one more entry: past the fill limit the index starts
    /// doubling (incrementally, see `migrate`).
    #[inline]
    fn reserve_one(&mut self) {
        let entries = self.slots.len() + 1;
        if self.index.buckets != 0 && !over_fill(entries, self.index.buckets) {
            return;
        }
        if self.index.buckets != 0 && !growth_allowed(entries, self.index.buckets) {
            return;
        }
        self.grow(entries);
    }

    /// Doubles the index (or more) for `entries`; the old table is moved
    /// into the new one incrementally (`migrate`).
    #[cold]
    #[inline(never)]
    fn grow(&mut self, entries: usize) {
        if self.old.is_some() {
            // The migration fell behind the inserts (cannot happen at the
            // pace `MIGRATE_PER_INSERT` sets; kept correct regardless).
            self.migrate(usize::MAX);
        }
        let mut buckets = (self.index.buckets * 2).max(8);
        while over_fill(entries, buckets) {
            buckets *= 2;
        }
        let old = std::mem::replace(&mut self.index, Table::with_buckets(buckets));
        if old.used == 0 {
            return;
        }
        // Start at an empty bucket, so the moved part always ends at a
        // cluster boundary and no entry left behind loses its probe path.
        let start = old.slots().iter().position(|&b| b == 0).expect("a table below its fill limit has an empty bucket");
        self.old = Some(Migration { table: old, start, cursor: start, visited: 0 });
    }

    /// Moves at least `min_buckets` buckets (whole clusters) from the old
    /// table into the new one. Returns true while a migration is left.
    pub fn migrate(&mut self, min_buckets: usize) -> bool {
        let Some(m) = self.old.as_mut() else {
            return false;
        };
        let mask = m.table.buckets - 1;
        let mut moved = 0;
        loop {
            if m.visited == m.table.buckets || m.table.used == 0 {
                self.old = None;
                return false;
            }
            let b = m.table.slots()[m.cursor];
            if b != 0 {
                self.index.insert(b);
                m.table.slots_mut()[m.cursor] = 0;
                m.table.used -= 1;
            }
            m.cursor = (m.cursor + 1) & mask;
            m.visited += 1;
            moved += 1;
            if m.cursor % RELEASE_BUCKETS == 0 {
                m.release_block_before_cursor();
            }
            // Stop only after an empty bucket: a cluster boundary.
            if moved >= min_buckets && b == 0 {
                return true;
            }
        }
    }

    /// Runs `migrate` in batches until `budget` has passed (the cron's share,
    /// as Redis's activerehashing). Returns true while a migration is left.
    pub fn migrate_for(&mut self, budget: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while self.migrate(1024) {
            if start.elapsed() >= budget {
                return true;
            }
        }
        false
    }

    /// True while an old index table is being emptied.
    pub fn is_migrating(&self) -> bool {
        self.old.is_some()
    }

    /// Index buckets, new and old.
    #[cfg(test)]
    fn index_buckets(&self) -> (usize, usize) {
        (self.index.buckets, self.old.as_ref().map_or(0, |m| m.table.buckets))
    }

    /// Checks every invariant (tests): each entry indexed once at its
    /// position, each TTL entry listed once, nothing else.
    #[cfg(test)]
    fn check(&self) {
        let indexed = self.index.used + self.old.as_ref().map_or(0, |m| m.table.used);
        assert_eq!(indexed, self.len(), "index holds every entry once");
        let counted =
            self.index.slots().iter().filter(|&&b| b != 0).count() + self.old.as_ref().map_or(0, |m| m.table.slots().iter().filter(|&&b| b != 0).count());
        assert_eq!(counted, indexed, "used counts match the tables");
        for pos in 0..self.len() {
            let s = self.slots.at(pos);
            assert_eq!(s.hash32, self.hash(&s.key));
            assert_eq!(self.find(&s.key), Some(pos), "entry {} found at its position", pos);
            if s.entry.expire_at_ms >= 0 {
                assert_eq!(*self.ttl.at(s.ttl_index as usize) as usize, pos);
            } else {
                assert_eq!(s.ttl_index, NO_TTL);
            }
        }
        assert_eq!(self.ttl.len(), self.slots.iter().filter(|s| s.ttl_index != NO_TTL).count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Value;
    use std::collections::HashMap;

    fn entry(n: i64, expire_at_ms: i64) -> Entry {
        Entry { value: Value::Int(n), expire_at_ms, access_ms: 0 }
    }

    fn rng(state: &mut u64) -> u64 {
        crate::shard::keyspace::xorshift(state)
    }

    #[test]
    fn first_chunk_grows_in_steps_and_gives_back() {
        let mut v = ChunkedVec::default();
        v.push(0u64);
        assert_eq!(v.chunks[0].capacity(), FIRST_CHUNK);
        for i in 1..3000 {
            v.push(i);
            assert!(v.chunks[0].capacity() - v.len() <= FIRST_CHUNK_STEP);
        }
        for i in 3000..CHUNK as u64 + 10 {
            v.push(i);
        }
        assert_eq!(v.chunks[0].capacity(), CHUNK);
        assert_eq!(v.chunks.len(), 2);
        while v.len() > 100 {
            v.pop();
        }
        assert_eq!(v.chunks.len(), 1);
        assert!(v.chunks[0].capacity() <= 2 * FIRST_CHUNK_STEP, "{}", v.chunks[0].capacity());
        assert_eq!((0..100).map(|i| *v.get(i).unwrap()).collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn chunked_vec_push_pop_swap_remove() {
        let mut v = ChunkedVec::default();
        for i in 0..3 * CHUNK + 5 {
            v.push(i);
        }
        assert_eq!(v.len(), 3 * CHUNK + 5);
        assert_eq!(v.chunks().count(), 4);
        assert_eq!(v.swap_remove(1), 1);
        assert_eq!(*v.get(1).unwrap(), 3 * CHUNK + 4);
        while v.len() > CHUNK {
            v.pop();
        }
        // One spare chunk kept beyond the one in use.
        assert_eq!(v.chunks.len(), 2);
        assert_eq!(v.iter().count(), CHUNK);
    }

    /// Random inserts, replaces, removes and TTL changes across several
    /// doublings, against a HashMap, with every invariant checked as it goes.
    #[test]
    fn matches_a_hashmap_through_growth() {
        let mut d = Dict::default();
        let mut model: HashMap<Vec<u8>, (i64, i64)> = HashMap::new();
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut migrations_seen = 0;
        for step in 0..60_000u64 {
            let k = format!("k{}", rng(&mut seed) % 20_000).into_bytes();
            match rng(&mut seed) % 10 {
                0..=4 => {
                    let ttl = if rng(&mut seed).is_multiple_of(3) { step as i64 } else { -1 };
                    d.insert(k.clone().into(), entry(step as i64, ttl));
                    model.insert(k, (step as i64, ttl));
                }
                5..=6 => {
                    let got = d.remove(&k).map(|(key, e)| {
                        assert_eq!(&key[..], &k[..]);
                        (
                            match e.value {
                                Value::Int(n) => n,
                                _ => unreachable!(),
                            },
                            e.expire_at_ms,
                        )
                    });
                    assert_eq!(got, model.remove(&k));
                }
                7 => {
                    if let Some(pos) = d.find(&k) {
                        let ms = if rng(&mut seed).is_multiple_of(2) { -1 } else { step as i64 };
                        d.set_expire_at(pos, ms);
                        model.get_mut(&k).unwrap().1 = ms;
                    }
                }
                _ => {
                    let got = d.get(&k).map(|e| {
                        (
                            match e.value {
                                Value::Int(n) => n,
                                _ => unreachable!(),
                            },
                            e.expire_at_ms,
                        )
                    });
                    assert_eq!(got, model.get(&k).copied());
                }
            }
            migrations_seen += d.is_migrating() as u32;
            if step % 5000 == 0 {
                d.check();
            }
        }
        d.check();
        assert!(migrations_seen > 0, "the test never saw a migration in progress");
        assert_eq!(d.len(), model.len());
        for (k, (n, ttl)) in &model {
            let e = d.get(k).unwrap();
            assert_eq!((e.value.clone(), e.expire_at_ms), (Value::Int(*n), *ttl));
        }
        // Remove everything: the index empties too.
        let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
        for k in keys {
            assert!(d.remove(&k).is_some());
        }
        d.check();
        assert_eq!(d.ttl_len(), 0);
    }

    /// The longest run of occupied buckets in `t` (cyclic).
    fn longest_cluster(t: &Table) -> usize {
        let b = t.slots();
        let mut longest = 0;
        let mut run = 0;
        for i in 0..2 * b.len() {
            if b[i % b.len()] != 0 {
                run += 1;
                longest = longest.max(run.min(b.len()));
            } else {
                run = 0;
            }
        }
        longest
    }

    /// No insert moves more than `MIGRATE_PER_INSERT` buckets plus the rest
    /// of one cluster of the old table: the table never doubles in one go
    /// (the stall this table exists to avoid). Counted in buckets visited,
    /// not timed.
    #[test]
    fn growth_is_spread_over_inserts() {
        let mut d = Dict::default();
        let mut grew_with_entries = 0;
        let mut cluster_max = 0;
        let mut worst = 0;
        for i in 0..300_000u64 {
            let visited_before = d.old.as_ref().map_or(0, |m| m.visited);
            let (buckets_before, _) = d.index_buckets();
            d.insert(format!("key:{:012}", i).into_bytes().into(), entry(i as i64, -1));
            let (buckets_after, _) = d.index_buckets();
            let Some(m) = d.old.as_ref() else { continue };
            if buckets_after != buckets_before {
                // A doubling started: its longest cluster bounds every step.
                grew_with_entries += 1;
                cluster_max = longest_cluster(&m.table);
                continue;
            }
            let moved = m.visited - visited_before;
            worst = worst.max(moved);
            assert!(moved <= MIGRATE_PER_INSERT + cluster_max + 1, "one insert moved {} buckets (longest cluster {})", moved, cluster_max);
        }
        assert!(grew_with_entries >= 10, "the index doubled {} times", grew_with_entries);
        assert!(worst < 1024, "one insert moved {} buckets", worst);
        // The cron finishes whatever is left.
        while d.migrate(1024) {}
        d.check();
    }

    #[test]
    fn big_tables_are_mapped_and_counted() {
        let t = Table::with_buckets(MAP_BYTES_MIN / 8);
        // Other tests map tables at the same time: at least this one counts.
        assert!(mapped_index_bytes() >= MAP_BYTES_MIN as u64);
        assert!(t.slots().iter().all(|&b| b == 0));
        drop(t);
    }
}
