//! Redis 7.0's quicklist: a list stored as a sequence of listpack nodes.
//!
//! What matters here is not only the elements but the node layout: RDB
//! type 18 (quicklist 2) and DUMP write one listpack per node, so a list
//! built by the same commands must be split into the same nodes as Redis
//! splits it, or our payloads differ from Redis's. Every decision that
//! shapes nodes follows `quicklist.c` (7.0): when a node takes one more
//! element (`_quicklistNodeAllowInsert`, an estimate: node bytes + element
//! length + 8), when two nodes merge (`_quicklistNodeAllowMerge`: their
//! bytes less 11, an old ziplist's empty size), where LINSERT goes when a node is
//! full (the neighbour's edge, a new node, or a split followed by merges
//! around the split), and that deletions (pops, LREM, LTRIM) only drop
//! emptied nodes and never merge. `tests/types2.rs` checks the layouts
//! against a real redis-server's DUMP after thousands of random commands.
//!
//! Nodes sit in a `VecDeque` rather than a linked list: pushes at both ends
//! stay O(1), and a node insert in the middle moves 24-byte handles, which
//! for a million 8 KiB-node elements is ~1000 handles. Finding an index
//! walks node counts from the nearer end, as Redis does.
//!
//! Not done: compression of inner nodes (`list-compress-depth`), plain
//! nodes for elements of 1 GiB and more (`packed_threshold`).

use std::collections::VecDeque;

use super::listpack::{Entry, Listpack, Where};

/// Node byte limits for negative fills -1..-5 (`optimization_level`).
const NODE_BYTES_BY_LEVEL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// A count-limited node never grows past this many bytes either
/// (`SIZE_SAFETY_LIMIT`), so a node of huge elements stays one element.
const COUNT_FILL_SAFETY_BYTES: usize = 8192;
/// Redis's over-estimate of what one element adds to a listpack
/// (`SIZE_ESTIMATE_OVERHEAD`).
const ENTRY_OVERHEAD_ESTIMATE_BYTES: usize = 8;
/// What a merge is assumed to save: Redis 7.0 still subtracts an empty
/// ziplist's 11 bytes (`- 11` in `_quicklistNodeAllowMerge`), not a
/// listpack's 7, so a merged node can end up to 4 bytes over its limit:
/// redis-server 7.0.15 built an 8194-byte node at fill -2 in our test.
const MERGE_SAVED_BYTES_ESTIMATE: usize = 11;
/// Largest positive fill (`FILL_MAX`, a 16-bit signed field).
pub const FILL_MAX: i32 = (1 << 15) - 1;

/// A list as a quicklist of listpack nodes with Redis's fill factor
/// (`list-max-listpack-size`): negative -1..-5 limits node bytes to
/// 4/8/16/32/64 KiB, positive limits the element count per node.
#[derive(Clone, Debug)]
pub struct Quicklist {
    nodes: VecDeque<Listpack>,
    count: usize,
    fill: i32,
}

impl Quicklist {
    /// An empty list; `fill` is clamped as `quicklistSetFill` does.
    pub fn new(fill: i32) -> Quicklist {
        Quicklist { nodes: VecDeque::new(), count: 0, fill: fill.clamp(-5, FILL_MAX) }
    }

    /// A list from listpacks read from an RDB or DUMP quicklist-2 object,
    /// one node each (`quicklistAppendListpack`); empty ones are dropped,
    /// as Redis's loader drops them.
    pub fn from_nodes(fill: i32, nodes: impl IntoIterator<Item = Listpack>) -> Quicklist {
        let mut q = Quicklist::new(fill);
        for lp in nodes {
            if !lp.is_empty() {
                q.count += lp.len();
                q.nodes.push_back(lp);
            }
        }
        q
    }

    pub fn fill(&self) -> i32 {
        self.fill
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The nodes head to tail, as RDB and DUMP write them.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &Listpack> + '_ {
        self.nodes.iter()
    }

    /// Whether a node may grow to `new_bytes` holding `new_count` elements
    /// (`quicklistNodeExceedsLimit` negated).
    fn within_limit(&self, new_bytes: usize, new_count: usize) -> bool {
        if self.fill < 0 {
            let level = ((-self.fill) as usize - 1).min(NODE_BYTES_BY_LEVEL.len() - 1);
            new_bytes <= NODE_BYTES_BY_LEVEL[level]
        } else {
            let count_limit = self.fill.max(1) as usize;
            new_bytes <= COUNT_FILL_SAFETY_BYTES && new_count <= count_limit
        }
    }

    /// `_quicklistNodeAllowInsert` for an element of `len` bytes (its
    /// string length, even when it will be stored as an integer).
    fn allow_insert(&self, node: Option<usize>, len: usize) -> bool {
        let Some(lp) = node.and_then(|i| self.nodes.get(i)) else { return false };
        self.within_limit(lp.total_bytes() + len + ENTRY_OVERHEAD_ESTIMATE_BYTES, lp.len() + 1)
    }

    /// `_quicklistNodeAllowMerge` for the nodes at `a` and `b`.
    fn allow_merge(&self, a: usize, b: usize) -> bool {
        let (Some(x), Some(y)) = (self.nodes.get(a), self.nodes.get(b)) else { return false };
        self.within_limit(x.total_bytes() + y.total_bytes() - MERGE_SAVED_BYTES_ESTIMATE, x.len() + y.len())
    }

    /// Gives back a node's spare buffer once it stops growing. A listpack
    /// grows by doubling from 7 bytes, so a full 8 KiB node sits in a
    /// 14 KiB buffer: 1M `member:<n>` elements took 22.5 B each before
    /// this and 15.1 after, redis-server 15.1 (it reallocs every entry
    /// to size). Done when a push opens a new node beside a full one and
    /// after a split or merge: the copy is one node's bytes, once.
    fn compact(lp: &mut Listpack) {
        let mut buf = std::mem::take(lp).into_bytes();
        buf.shrink_to_fit();
        *lp = Listpack::from_bytes(buf).expect("a listpack built here is valid");
    }

    fn single(v: &[u8]) -> Listpack {
        let mut lp = Listpack::new();
        lp.append(Entry::Str(v));
        lp
    }

    /// LPUSH one element (`quicklistPushHead`).
    pub fn push_head(&mut self, v: &[u8]) {
        if self.allow_insert(Some(0), v.len()) {
            self.nodes[0].prepend(Entry::Str(v));
        } else {
            if let Some(full) = self.nodes.front_mut() {
                Self::compact(full);
            }
            self.nodes.push_front(Self::single(v));
        }
        self.count += 1;
    }

    /// RPUSH one element (`quicklistPushTail`).
    pub fn push_tail(&mut self, v: &[u8]) {
        let last = self.nodes.len().checked_sub(1);
        if self.allow_insert(last, v.len()) {
            self.nodes.back_mut().expect("tail node").append(Entry::Str(v));
        } else {
            if let Some(full) = self.nodes.back_mut() {
                Self::compact(full);
            }
            self.nodes.push_back(Self::single(v));
        }
        self.count += 1;
    }

    /// Deletes the entry at byte offset `off` of node `node`, dropping the
    /// node if it empties (`quicklistDelIndex`; never merges).
    fn delete_in_node(&mut self, node: usize, off: usize) {
        let lp = &mut self.nodes[node];
        lp.delete(off);
        if lp.is_empty() {
            self.nodes.remove(node);
        }
        self.count -= 1;
    }

    /// LPOP one element.
    pub fn pop_head(&mut self) -> Option<Vec<u8>> {
        let lp = self.nodes.front()?;
        let off = lp.first().expect("quicklist nodes are never empty");
        let v = lp.get(off).to_vec();
        self.delete_in_node(0, off);
        Some(v)
    }

    /// RPOP one element.
    pub fn pop_tail(&mut self) -> Option<Vec<u8>> {
        let lp = self.nodes.back()?;
        let off = lp.last().expect("quicklist nodes are never empty");
        let v = lp.get(off).to_vec();
        self.delete_in_node(self.nodes.len() - 1, off);
        Some(v)
    }

    /// A list index (negative from the tail) as a position from the head.
    fn resolve(&self, index: i64) -> Option<usize> {
        let i = if index < 0 { self.count as i64 + index } else { index };
        (0..self.count as i64).contains(&i).then_some(i as usize)
    }

    /// Node and index inside it of the element at position `pos` (in
    /// range), walking from the nearer end.
    fn locate(&self, pos: usize) -> (usize, usize) {
        if pos < self.count / 2 {
            let mut before = 0;
            for (i, lp) in self.nodes.iter().enumerate() {
                let n = lp.len();
                if pos < before + n {
                    return (i, pos - before);
                }
                before += n;
            }
        } else {
            let mut after = self.count;
            for (i, lp) in self.nodes.iter().enumerate().rev() {
                let n = lp.len();
                after -= n;
                if pos >= after {
                    return (i, pos - after);
                }
            }
        }
        unreachable!("position {} out of a list of {}", pos, self.count)
    }

    /// LINDEX: the element at `index`, negative from the tail.
    pub fn get(&self, index: i64) -> Option<Entry<'_>> {
        let (node, at) = self.locate(self.resolve(index)?);
        let lp = &self.nodes[node];
        Some(lp.get(lp.seek(at as i64).expect("entry in node")))
    }

    /// LSET: replaces the element at `index` in place
    /// (`quicklistReplaceAtIndex`; Redis 7.0 does not re-check the node's
    /// size). False when out of range.
    pub fn set(&mut self, index: i64, v: &[u8]) -> bool {
        let Some(pos) = self.resolve(index) else { return false };
        let (node, at) = self.locate(pos);
        let lp = &mut self.nodes[node];
        let off = lp.seek(at as i64).expect("entry in node");
        lp.replace(off, Entry::Str(v));
        true
    }

    /// Position from the head of the first element equal to `pivot`
    /// (LINSERT's search).
    pub fn position(&self, pivot: &[u8]) -> Option<usize> {
        self.iter().position(|e| e.eq_bytes(pivot))
    }

    /// LINSERT: inserts `v` before or after the element at position `pos`
    /// from the head (`_quicklistInsert`, packed nodes).
    pub fn insert(&mut self, pos: usize, at: Where, v: &[u8]) {
        assert!(pos < self.count, "insert pivot {} out of a list of {}", pos, self.count);
        let (node, offset) = self.locate(pos);
        let after = at == Where::After;
        let node_len = self.nodes[node].len();
        let full = !self.allow_insert(Some(node), v.len());
        let at_tail = after && offset == node_len - 1;
        let at_head = !after && offset == 0;
        let avail_next = at_tail && self.allow_insert(Some(node + 1), v.len());
        let avail_prev = at_head && node > 0 && self.allow_insert(Some(node - 1), v.len());
        self.count += 1;
        if !full {
            let lp = &mut self.nodes[node];
            let off = lp.seek(offset as i64).expect("entry in node");
            lp.insert(off, at, Entry::Str(v));
        } else if at_tail && avail_next {
            self.nodes[node + 1].prepend(Entry::Str(v));
        } else if at_head && avail_prev {
            self.nodes[node - 1].append(Entry::Str(v));
        } else if at_tail || at_head {
            self.nodes.insert(if after { node + 1 } else { node }, Self::single(v));
        } else {
            // Split at the pivot: the new node takes the side the element
            // goes to, then the nodes around the split may merge.
            let mut new_node = self.split(node, offset, after);
            if after {
                new_node.prepend(Entry::Str(v));
                self.nodes.insert(node + 1, new_node);
                self.merge_around(node);
            } else {
                new_node.append(Entry::Str(v));
                self.nodes.insert(node, new_node);
                self.merge_around(node + 1);
            }
        }
    }

    /// `_quicklistSplitNode`: with `after`, node keeps [0, offset] and the
    /// returned listpack holds the rest; without, the returned one holds
    /// [0, offset) and the node keeps the rest.
    fn split(&mut self, node: usize, offset: usize, after: bool) -> Listpack {
        let lp = &mut self.nodes[node];
        let mut new_lp = lp.clone();
        if after {
            lp.delete_range(offset as i64 + 1, usize::MAX);
            new_lp.delete_range(0, offset + 1);
        } else {
            lp.delete_range(0, offset);
            new_lp.delete_range(offset as i64, usize::MAX);
        }
        Self::compact(lp);
        Self::compact(&mut new_lp);
        new_lp
    }

    /// Appends node `a + 1` to node `a` and drops it (`lpMerge` keeps the
    /// bytes in order whichever buffer it reuses).
    fn merge_pair(&mut self, a: usize) {
        let b = self.nodes.remove(a + 1).expect("merge partner");
        let lp = &mut self.nodes[a];
        for e in b.iter() {
            lp.append(e);
        }
        Self::compact(lp);
    }

    /// `_quicklistMergeNodes` around `center`: (prev-prev, prev),
    /// (next, next-next), (prev, center), then (center, next).
    fn merge_around(&mut self, center: usize) {
        let mut center = center;
        if center >= 2 && self.allow_merge(center - 2, center - 1) {
            self.merge_pair(center - 2);
            center -= 1;
        }
        if self.allow_merge(center + 1, center + 2) {
            self.merge_pair(center + 1);
        }
        let target = if center >= 1 && self.allow_merge(center - 1, center) {
            self.merge_pair(center - 1);
            center - 1
        } else {
            center
        };
        if self.allow_merge(target, target + 1) {
            self.merge_pair(target);
        }
    }

    /// LREM: deletes up to `count` elements equal to `v` (all for 0),
    /// from the tail when `count` is negative. Returns how many went.
    pub fn remove(&mut self, v: &[u8], count: i64) -> usize {
        let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
        let mut removed = 0;
        let from_tail = count < 0;
        let order: Vec<usize> = if from_tail { (0..self.nodes.len()).rev().collect() } else { (0..self.nodes.len()).collect() };
        for i in order {
            if removed == limit {
                break;
            }
            let lp = &mut self.nodes[i];
            if from_tail {
                let mut cur = lp.last();
                while let Some(off) = cur {
                    if removed == limit {
                        break;
                    }
                    let prev = lp.prev(off);
                    if lp.get(off).eq_bytes(v) {
                        lp.delete(off);
                        removed += 1;
                    }
                    cur = prev;
                }
            } else {
                let mut cur = lp.first();
                while let Some(off) = cur {
                    if removed == limit {
                        break;
                    }
                    cur = if lp.get(off).eq_bytes(v) {
                        removed += 1;
                        lp.delete(off)
                    } else {
                        lp.next(off)
                    };
                }
            }
        }
        self.nodes.retain(|lp| !lp.is_empty());
        self.count -= removed;
        removed
    }

    /// Deletes `num` elements from `start` (negative from the tail)
    /// (`quicklistDelRange`): emptied nodes go, nothing merges. Returns
    /// how many went.
    pub fn delete_range(&mut self, start: i64, num: usize) -> usize {
        let Some(start) = self.resolve(start) else { return 0 };
        let num = num.min(self.count - start);
        let mut skip = start;
        let mut left = num;
        let mut i = 0;
        while left > 0 {
            let n = self.nodes[i].len();
            if skip >= n {
                skip -= n;
                i += 1;
                continue;
            }
            let here = left.min(n - skip);
            if here == n {
                self.nodes.remove(i);
            } else {
                self.nodes[i].delete_range(skip as i64, here);
                i += 1;
            }
            left -= here;
            skip = 0;
        }
        self.count -= num;
        num
    }

    /// LTRIM: keeps the elements from `start` to `stop` inclusive
    /// (negative from the tail), as `ltrimCommand` computes the ends.
    pub fn trim(&mut self, start: i64, stop: i64) {
        let len = self.count as i64;
        let start = if start < 0 { (len + start).max(0) } else { start };
        let stop = if stop < 0 { len + stop } else { stop };
        let (ltrim, rtrim) = if start > stop || start >= len {
            (len, 0)
        } else {
            let stop = stop.min(len - 1);
            (start, len - stop - 1)
        };
        self.delete_range(0, ltrim as usize);
        if rtrim > 0 {
            self.delete_range(-rtrim, rtrim as usize);
        }
    }

    /// The elements head to tail; `.rev()` walks from the tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Entry<'_>> + '_ {
        self.nodes.iter().flat_map(|lp| lp.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
        Insert(usize, bool, Vec<u8>),
        Set(i64, Vec<u8>),
        Remove(usize, i64),
        DeleteRange(i64, usize),
        Trim(i64, i64),
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u32..20).prop_map(|n| n.to_string().into_bytes()),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            proptest::collection::vec(b'a'..=b'c', 0..8),
            (1usize..1500).prop_map(|n| vec![b'z'; n]),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), value()).prop_map(|(h, v)| Op::Push(h, v)),
            1 => any::<bool>().prop_map(Op::Pop),
            3 => (any::<usize>(), any::<bool>(), value()).prop_map(|(p, a, v)| Op::Insert(p, a, v)),
            1 => (-30i64..30, value()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (any::<usize>(), -2i64..3).prop_map(|(p, c)| Op::Remove(p, c)),
            1 => (-30i64..30, 0usize..10).prop_map(|(s, n)| Op::DeleteRange(s, n)),
            1 => (-5i64..5, -5i64..5).prop_map(|(a, b)| Op::Trim(a, b)),
        ]
    }

    /// Every node non-empty, within what Redis would let it reach, and
    /// the cached count right.
    fn check_shape(q: &Quicklist) {
        assert_eq!(q.len(), q.nodes().map(|lp| lp.len()).sum::<usize>());
        assert!(q.nodes().all(|lp| !lp.is_empty()));
        assert!(q.nodes.iter().all(listpack_ok));
    }

    fn listpack_ok(lp: &Listpack) -> bool {
        super::super::listpack::validate(lp.as_bytes(), true).is_ok()
    }

    fn run(fill: i32, ops: Vec<Op>) {
        let mut q = Quicklist::new(fill);
        let mut model: Vec<Vec<u8>> = vec![];
        for op in ops {
            match op {
                Op::Push(true, v) => {
                    q.push_head(&v);
                    model.insert(0, v);
                }
                Op::Push(false, v) => {
                    q.push_tail(&v);
                    model.push(v);
                }
                Op::Pop(true) => assert_eq!(q.pop_head(), (!model.is_empty()).then(|| model.remove(0))),
                Op::Pop(false) => assert_eq!(q.pop_tail(), model.pop()),
                Op::Insert(p, after, v) => {
                    if model.is_empty() {
                        continue;
                    }
                    let p = p % model.len();
                    q.insert(p, if after { Where::After } else { Where::Before }, &v);
                    model.insert(p + usize::from(after), v);
                }
                Op::Set(i, v) => {
                    let n = model.len() as i64;
                    let pos = if i < 0 { n + i } else { i };
                    assert_eq!(q.set(i, &v), (0..n).contains(&pos));
                    if (0..n).contains(&pos) {
                        model[pos as usize] = v;
                    }
                }
                Op::Remove(p, count) => {
                    if model.is_empty() {
                        continue;
                    }
                    let v = model[p % model.len()].clone();
                    let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                    let mut hits: Vec<usize> = (0..model.len()).filter(|&i| model[i] == v).collect();
                    if count < 0 {
                        hits.reverse();
                    }
                    hits.truncate(limit);
                    hits.sort_unstable();
                    for &i in hits.iter().rev() {
                        model.remove(i);
                    }
                    assert_eq!(q.remove(&v, count), hits.len());
                }
                Op::DeleteRange(s, num) => {
                    let n = model.len() as i64;
                    let start = if s < 0 { n + s } else { s };
                    let want = if (0..n).contains(&start) { num.min((n - start) as usize) } else { 0 };
                    if want > 0 {
                        model.drain(start as usize..start as usize + want);
                    }
                    assert_eq!(q.delete_range(s, num), want);
                }
                Op::Trim(a, b) => {
                    let n = model.len() as i64;
                    let a2 = if a < 0 { (n + a).max(0) } else { a };
                    let b2 = if b < 0 { n + b } else { b }.min(n - 1);
                    model = if a2 > b2 || a2 >= n { vec![] } else { model[a2 as usize..=b2 as usize].to_vec() };
                    q.trim(a, b);
                }
            }
            check_shape(&q);
            let got: Vec<Vec<u8>> = q.iter().map(|e| e.to_vec()).collect();
            assert_eq!(got, model);
        }
        let back: Vec<Vec<u8>> = q.iter().rev().map(|e| e.to_vec()).collect();
        assert!(back.iter().eq(model.iter().rev()));
        for (i, v) in model.iter().enumerate() {
            assert_eq!(q.get(i as i64).unwrap().to_vec(), *v);
            assert_eq!(q.get(i as i64 - model.len() as i64).unwrap().to_vec(), *v);
        }
        assert!(q.get(model.len() as i64).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn behaves_as_a_vec(fill in prop_oneof![Just(-2), Just(-1), Just(1), Just(3), Just(0)],
                            ops in proptest::collection::vec(op(), 0..200)) {
            run(fill, ops);
        }
    }

    #[test]
    fn fill_is_clamped_and_small_nodes_split() {
        assert_eq!(Quicklist::new(-9).fill(), -5);
        let mut q = Quicklist::new(2);
        for i in 0..5 {
            q.push_tail(i.to_string().as_bytes());
        }
        let counts: Vec<usize> = q.nodes().map(|lp| lp.len()).collect();
        assert_eq!(counts, [2, 2, 1]);
        // Inside a full node: split at the pivot, then merges around it.
        q.insert(0, Where::After, b"x");
        let counts: Vec<usize> = q.nodes().map(|lp| lp.len()).collect();
        assert_eq!(counts, [1, 2, 2, 1]);
    }
}
