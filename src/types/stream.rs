//! The stream type in Redis 7.0's layout: entries packed into listpack
//! nodes, each keyed by its master ID (Redis's rax of listpacks, here an
//! ordered map), with Redis's exact node encoding so that a node is the
//! RDB object and the DUMP payload as is.
//!
//! A node starts with the master entry:
//! `count | deleted | num-fields | field_1 .. field_N | 0`, then each entry
//! is `flags | ms-diff | seq-diff | values..` when its fields are the
//! master's (`SAMEFIELDS`), or `flags | ms-diff | seq-diff | num-fields |
//! field, value, .. ` otherwise, followed by `lp-count`, the number of
//! listpack elements of the entry (so it can be walked back). A deleted
//! entry keeps its place with the `DELETED` flag; a node whose live count
//! drops to zero goes.
//!
//! Consumer groups (`stream_cg`) hang off the stream.

use std::collections::BTreeMap;

use super::listpack::{Entry as Item, Listpack};
pub use super::stream_cg::{Consumer, Group, Nack};

/// An entry ID: milliseconds and a sequence, ordered as a 128-bit number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (`streamIncrID`); None past the last possible one.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                return None;
            }
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (`streamDecrID`); None before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                return None;
            }
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    /// `ms-seq`, as replies show it.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        self.write(&mut v);
        v
    }

    pub fn write(self, out: &mut Vec<u8>) {
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(self.ms).as_bytes());
        out.push(b'-');
        out.extend_from_slice(b.format(self.seq).as_bytes());
    }

    /// The 128-bit big-endian form (`streamEncodeID`): rax keys, RDB.
    pub fn encode(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<StreamId> {
        if b.len() != 16 {
            return None;
        }
        Some(StreamId::new(u64::from_be_bytes(b[..8].try_into().ok()?), u64::from_be_bytes(b[8..].try_into().ok()?)))
    }
}

pub const FLAG_DELETED: i64 = 1;
pub const FLAG_SAMEFIELDS: i64 = 2;

/// A node may not grow past this (`STREAM_LISTPACK_MAX_SIZE`).
pub const NODE_MAX_SIZE: usize = 1 << 30;

/// The node limits (`stream-node-max-bytes`, `stream-node-max-entries`).
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    pub max_bytes: usize,
    pub max_entries: i64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits { max_bytes: 4096, max_entries: 100 }
    }
}

/// A stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    /// Listpack nodes by master ID.
    pub nodes: BTreeMap<StreamId, Listpack>,
    /// Live entries.
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_entry_id: StreamId,
    pub entries_added: u64,
    /// Consumer groups by name.
    pub groups: BTreeMap<Vec<u8>, Group>,
}

/// Why an append failed (XADD's two errors).
#[derive(Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The ID is not greater than the top item (`EDOM`).
    IdTooSmall,
    /// The elements exceed a listpack's size (`ERANGE`).
    TooLarge,
}

fn int_of(e: Item<'_>) -> i64 {
    match e {
        Item::Int(v) => v,
        Item::Str(s) => super::listpack::string_to_int(s).unwrap_or(0),
    }
}

/// One entry read from a node: where it lies and what it holds.
pub struct RawEntry<'a> {
    pub id: StreamId,
    pub flags: i64,
    /// Offset of the flags element.
    pub off: usize,
    /// Fields and values.
    pub pairs: Vec<(Item<'a>, Item<'a>)>,
}

/// Walks a node's entries in order (deleted ones included).
pub struct NodeEntries<'a> {
    lp: &'a Listpack,
    master: StreamId,
    fields: Vec<Item<'a>>,
    pos: Option<usize>,
}

impl<'a> NodeEntries<'a> {
    pub fn new(master: StreamId, lp: &'a Listpack) -> NodeEntries<'a> {
        let mut p = lp.first();
        let mut step = || {
            let cur = p?;
            p = lp.next(cur);
            Some(lp.get(cur))
        };
        let _count = step();
        let _deleted = step();
        let n = step().map(int_of).unwrap_or(0).max(0) as usize;
        let mut fields = Vec::with_capacity(n);
        for _ in 0..n {
            if let Some(f) = step() {
                fields.push(f);
            }
        }
        let _terminator = step();
        NodeEntries { lp, master, fields, pos: p }
    }

    /// The master entry's fields.
    pub fn master_fields(&self) -> &[Item<'a>] {
        &self.fields
    }
}

impl<'a> Iterator for NodeEntries<'a> {
    type Item = RawEntry<'a>;

    fn next(&mut self) -> Option<RawEntry<'a>> {
        let lp = self.lp;
        let off = self.pos?;
        let mut p = Some(off);
        let mut step = || {
            let cur = p?;
            p = lp.next(cur);
            Some(lp.get(cur))
        };
        let flags = int_of(step()?);
        let ms = int_of(step()?) as u64;
        let seq = int_of(step()?) as u64;
        let id = StreamId::new(self.master.ms.wrapping_add(ms), self.master.seq.wrapping_add(seq));
        let pairs = if flags & FLAG_SAMEFIELDS != 0 {
            let mut v = Vec::with_capacity(self.fields.len());
            for f in &self.fields {
                v.push((*f, step()?));
            }
            v
        } else {
            let n = int_of(step()?).max(0) as usize;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let f = step()?;
                v.push((f, step()?));
            }
            v
        };
        let _lp_count = step();
        self.pos = p;
        Some(RawEntry { id, flags, off, pairs })
    }
}

/// The master entry's counters of a node: live and deleted entries.
pub fn node_counts(lp: &Listpack) -> (i64, i64) {
    let Some(p) = lp.first() else { return (0, 0) };
    let count = int_of(lp.get(p));
    let deleted = lp.next(p).map(|q| int_of(lp.get(q))).unwrap_or(0);
    (count, deleted)
}

fn set_node_counts(lp: &mut Listpack, count: i64, deleted: i64) {
    let p = lp.first().expect("a node has a master entry");
    lp.replace(p, Item::Int(count));
    let q = lp.next(p).expect("a node has a master entry");
    lp.replace(q, Item::Int(deleted));
}

/// Marks the entry whose flags are at `off` deleted.
fn mark_deleted(lp: &mut Listpack, off: usize, flags: i64) {
    lp.replace(off, Item::Int(flags | FLAG_DELETED));
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Appends an entry (`streamAppendItem`): `id` explicit, or with
    /// `seq_given` false the sequence chosen for its milliseconds, or
    /// None for an ID from `now_ms`.
    pub fn append(&mut self, fv: &[&[u8]], id: Option<(StreamId, bool)>, now_ms: u64, limits: NodeLimits) -> Result<StreamId, AppendError> {
        let id = match id {
            Some((id, true)) => id,
            Some((id, false)) => {
                if self.last_id.ms == id.ms {
                    // 7.0.15 replies "too large" to an exhausted sequence.
                    if self.last_id.seq == u64::MAX {
                        return Err(AppendError::TooLarge);
                    }
                    StreamId::new(id.ms, self.last_id.seq + 1)
                } else {
                    id
                }
            }
            None => {
                if now_ms > self.last_id.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    self.last_id.incr().unwrap_or(StreamId::MIN)
                }
            }
        };
        if id <= self.last_id {
            return Err(AppendError::IdTooSmall);
        }
        let total: usize = fv.iter().map(|s| s.len()).sum();
        if total > NODE_MAX_SIZE {
            return Err(AppendError::TooLarge);
        }
        let numfields = fv.len() / 2;
        let max_bytes = if limits.max_bytes == 0 || limits.max_bytes > NODE_MAX_SIZE { NODE_MAX_SIZE } else { limits.max_bytes };
        let mut tail = self.nodes.last_entry();
        if let Some(node) = &mut tail {
            let lp = node.get();
            let full = if lp.total_bytes() + total >= max_bytes {
                true
            } else if limits.max_entries != 0 {
                let (c, d) = node_counts(lp);
                c + d >= limits.max_entries
            } else {
                false
            };
            if full {
                node.get_mut().shrink_to_fit();
                tail = None;
            }
        }
        let mut flags = 0;
        let (master, lp) = match tail {
            Some(node) => {
                let master = *node.key();
                let lp = node.into_mut();
                let (count, deleted) = node_counts(lp);
                set_node_counts(lp, count + 1, deleted);
                let same = {
                    let e = NodeEntries::new(master, lp);
                    e.master_fields().len() == numfields && e.master_fields().iter().zip(fv.iter().step_by(2)).all(|(m, f)| m.eq_bytes(f))
                };
                if same {
                    flags |= FLAG_SAMEFIELDS;
                }
                (master, lp)
            }
            None => {
                let mut lp = Listpack::new();
                lp.append(Item::Int(1));
                lp.append(Item::Int(0));
                lp.append(Item::Int(numfields as i64));
                for f in fv.iter().step_by(2) {
                    lp.append(Item::Str(f));
                }
                lp.append(Item::Int(0));
                flags |= FLAG_SAMEFIELDS;
                (id, self.nodes.entry(id).or_insert(lp))
            }
        };
        lp.append(Item::Int(flags));
        lp.append(Item::Int(id.ms.wrapping_sub(master.ms) as i64));
        lp.append(Item::Int(id.seq.wrapping_sub(master.seq) as i64));
        if flags & FLAG_SAMEFIELDS == 0 {
            lp.append(Item::Int(numfields as i64));
        }
        for pair in fv.chunks(2) {
            if flags & FLAG_SAMEFIELDS == 0 {
                lp.append(Item::Str(pair[0]));
            }
            lp.append(Item::Str(pair[1]));
        }
        let mut lp_count = numfields + 3;
        if flags & FLAG_SAMEFIELDS == 0 {
            lp_count += numfields + 1;
        }
        lp.append(Item::Int(lp_count as i64));
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    /// Calls `f` with each live entry in `[start, end]`, from the end when
    /// `rev`, until it returns false.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, mut f: impl FnMut(StreamId, &[(Item<'_>, Item<'_>)]) -> bool) {
        if start > end {
            return;
        }
        if !rev {
            let from = self.nodes.range(..=start).next_back().map(|(k, _)| *k).unwrap_or(StreamId::MIN);
            for (master, lp) in self.nodes.range(from..) {
                if *master > end {
                    return;
                }
                for e in NodeEntries::new(*master, lp) {
                    if e.id > end {
                        return;
                    }
                    if e.flags & FLAG_DELETED != 0 || e.id < start {
                        continue;
                    }
                    if !f(e.id, &e.pairs) {
                        return;
                    }
                }
            }
        } else {
            for (master, lp) in self.nodes.range(..=end).rev() {
                let entries: Vec<RawEntry<'_>> = NodeEntries::new(*master, lp).collect();
                for e in entries.iter().rev() {
                    if e.id < start {
                        return;
                    }
                    if e.flags & FLAG_DELETED != 0 || e.id > end {
                        continue;
                    }
                    if !f(e.id, &e.pairs) {
                        return;
                    }
                }
            }
        }
    }

    /// The first or last live entry's ID (`streamGetEdgeID` skipping
    /// tombstones); None when empty.
    pub fn edge_id(&self, first: bool) -> Option<StreamId> {
        let mut found = None;
        self.range(StreamId::MIN, StreamId::MAX, !first, |id, _| {
            found = Some(id);
            false
        });
        found
    }

    /// The first entry's ID, deleted ones included (`streamGetEdgeID`
    /// without skipping tombstones); `StreamId::MAX` when there is none.
    pub fn first_raw_id(&self) -> StreamId {
        self.nodes.iter().next().and_then(|(m, lp)| NodeEntries::new(*m, lp).next()).map_or(StreamId::MAX, |e| e.id)
    }

    /// Whether a live entry `id` exists.
    pub fn contains(&self, id: StreamId) -> bool {
        let mut found = false;
        self.range(id, id, false, |_, _| {
            found = true;
            false
        });
        found
    }

    /// Deletes entry `id` (`streamDeleteItem`); whether it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, lp)) = self.nodes.range_mut(..=id).next_back() else { return false };
        let hit = NodeEntries::new(master, lp).find(|e| e.id == id).filter(|e| e.flags & FLAG_DELETED == 0).map(|e| (e.off, e.flags));
        let Some((off, flags)) = hit else { return false };
        mark_deleted(lp, off, flags);
        let (count, deleted) = node_counts(lp);
        if count <= 1 {
            self.nodes.remove(&master);
        } else {
            set_node_counts(lp, count - 1, deleted + 1);
        }
        self.length -= 1;
        true
    }

    /// Trims from the head (`streamTrim`): to `maxlen` entries, or the
    /// entries below `minid`; `approx` removes whole nodes only, `limit`
    /// (0: none) bounds the entries removed. Returns how many went.
    pub fn trim(&mut self, strategy: Trim, approx: bool, limit: i64) -> i64 {
        let mut deleted: i64 = 0;
        loop {
            if let Trim::MaxLen(maxlen) = strategy {
                if self.length <= maxlen {
                    break;
                }
            }
            let Some(mut node) = self.nodes.first_entry() else { break };
            let master = *node.key();
            let (entries, marked) = node_counts(node.get());
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let remove = match strategy {
                Trim::MaxLen(maxlen) => self.length - entries as u64 >= maxlen,
                Trim::MinId(min) => {
                    let last = NodeEntries::new(master, node.get()).last().map(|e| e.id).unwrap_or(master);
                    last < min
                }
            };
            if remove {
                node.remove();
                self.length -= entries as u64;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let lp = node.get_mut();
            let mut marks = Vec::new();
            let mut length = self.length;
            for e in NodeEntries::new(master, lp) {
                let stop = match strategy {
                    Trim::MaxLen(maxlen) => length <= maxlen,
                    Trim::MinId(min) => e.id >= min,
                };
                if stop {
                    break;
                }
                if e.flags & FLAG_DELETED == 0 {
                    marks.push((e.off, e.flags));
                    length -= 1;
                }
            }
            // Back to front: a replaced flags element keeps its size (0..3
            // are all small integers), but walk safely all the same.
            for &(off, flags) in marks.iter().rev() {
                mark_deleted(lp, off, flags);
            }
            let n = marks.len() as i64;
            set_node_counts(lp, entries - n, marked + n);
            self.length -= n as u64;
            deleted += n;
            break;
        }
        self.first_id = if self.length == 0 { StreamId::MIN } else { self.edge_id(true).unwrap_or(StreamId::MAX) };
        deleted
    }

    /// The logical read counter of `id` when it is known without a scan
    /// (`streamEstimateDistanceFromFirstEverEntry`); -1 when unknown.
    pub fn estimate_entries_read(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        }
        if id > self.last_id {
            return -1;
        }
        if self.max_deleted_entry_id == StreamId::MIN || self.max_deleted_entry_id < self.first_id {
            if id < self.first_id {
                return (self.entries_added - self.length) as i64;
            }
            if id == self.first_id {
                return (self.entries_added - self.length + 1) as i64;
            }
        }
        -1
    }

    /// Whether `id` lies in the range of deleted entries (a tombstone at or
    /// after it), `streamRangeHasTombstones` from `id` to the end.
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_entry_id == StreamId::MIN {
            return false;
        }
        let start = if start < self.first_id { self.first_id } else { start };
        self.max_deleted_entry_id >= start
    }

    /// Bytes of the nodes' listpacks.
    pub fn node_bytes(&self) -> usize {
        self.nodes.values().map(|lp| lp.total_bytes()).sum()
    }
}

/// How to trim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &Stream) -> Vec<StreamId> {
        let mut v = vec![];
        s.range(StreamId::MIN, StreamId::MAX, false, |id, _| {
            v.push(id);
            true
        });
        v
    }

    #[test]
    fn append_range_delete_trim() {
        let mut s = Stream::new();
        let lim = NodeLimits { max_bytes: 4096, max_entries: 3 };
        for i in 1..=10u64 {
            let f: &[&[u8]] = if i % 2 == 0 { &[b"a", b"1", b"b", b"x"] } else { &[b"a", b"2"] };
            s.append(f, Some((StreamId::new(i, 0), true)), 0, lim).unwrap();
        }
        assert_eq!(s.nodes.len(), 4);
        assert_eq!(s.length, 10);
        assert_eq!(s.append(&[b"a", b"b"], Some((StreamId::new(3, 0), true)), 0, lim), Err(AppendError::IdTooSmall));
        let mut rev = vec![];
        s.range(StreamId::new(2, 0), StreamId::new(5, 0), true, |id, p| {
            rev.push((id.ms, p.len()));
            true
        });
        assert_eq!(rev, vec![(5, 1), (4, 2), (3, 1), (2, 2)]);
        assert!(s.delete(StreamId::new(4, 0)));
        assert!(!s.delete(StreamId::new(4, 0)));
        assert_eq!(s.length, 9);
        assert_eq!(s.trim(Trim::MaxLen(5), false, 0), 4);
        assert_eq!(ids(&s).iter().map(|i| i.ms).collect::<Vec<_>>(), vec![6, 7, 8, 9, 10]);
        assert_eq!(s.first_id, StreamId::new(6, 0));
        // Approximate: only the node of 5 (deleted) and 6 goes whole.
        assert_eq!(s.trim(Trim::MinId(StreamId::new(9, 0)), true, 0), 1);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(9, 0)), false, 0), 2);
        assert_eq!(s.length, 2);
    }
}
