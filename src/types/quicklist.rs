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
//! An element of `packed_threshold` bytes (1 GiB) or more gets a plain
//! node of its own (RDB container 1), never merged, as in Redis; the
//! tests lower the threshold on both sides (`DEBUG
//! QUICKLIST-PACKED-THRESHOLD`) to check those layouts too.
//!
//! Not done: LZF compression of inner nodes (`list-compress-depth`).

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

/// Elements of this many bytes or more go in a plain node of their own
/// (`packed_threshold`, 1 GiB by default).
pub const PACKED_THRESHOLD_BYTES_DEFAULT: usize = 1 << 30;

/// One quicklist node, as RDB type 18 writes it: container 2, a listpack
/// of elements, or container 1, one large element as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Packed(Listpack),
    Plain(Vec<u8>),
}

impl Node {
    /// Elements in the node.
    pub fn len(&self) -> usize {
        match self {
            Node::Packed(lp) => lp.len(),
            Node::Plain(_) => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The RDB container kind: 1 plain, 2 packed.
    pub fn container(&self) -> u8 {
        match self {
            Node::Packed(_) => 2,
            Node::Plain(_) => 1,
        }
    }

    /// The bytes RDB writes for the node: the listpack, or the element.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Node::Packed(lp) => lp.as_bytes(),
            Node::Plain(v) => v,
        }
    }

    fn packed(&mut self) -> &mut Listpack {
        match self {
            Node::Packed(lp) => lp,
            Node::Plain(_) => unreachable!("a listpack operation on a plain node"),
        }
    }

    /// The element at `at` (0 for a plain node).
    fn get(&self, at: usize) -> Entry<'_> {
        match self {
            Node::Packed(lp) => lp.get(lp.seek(at as i64).expect("entry in node")),
            Node::Plain(v) => Entry::Str(v),
        }
    }

    fn iter(&self) -> NodeIter<'_> {
        match self {
            Node::Packed(lp) => NodeIter::Packed(lp.iter()),
            Node::Plain(v) => NodeIter::Plain(Some(v)),
        }
    }
}

enum NodeIter<'a> {
    Packed(super::listpack::Iter<'a>),
    Plain(Option<&'a [u8]>),
}

impl<'a> Iterator for NodeIter<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        match self {
            NodeIter::Packed(it) => it.next(),
            NodeIter::Plain(v) => v.take().map(Entry::Str),
        }
    }
}

impl DoubleEndedIterator for NodeIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            NodeIter::Packed(it) => it.next_back(),
            NodeIter::Plain(v) => v.take().map(Entry::Str),
        }
    }
}

/// A list as a quicklist of listpack nodes with Redis's fill factor
/// (`list-max-listpack-size`): negative -1..-5 limits node bytes to
/// 4/8/16/32/64 KiB, positive limits the element count per node.
#[derive(Clone, Debug)]
pub struct Quicklist {
    nodes: VecDeque<Node>,
    count: usize,
    fill: i32,
    packed_threshold_bytes: usize,
}

impl Quicklist {
    /// An empty list; `fill` is clamped as `quicklistSetFill` does.
    pub fn new(fill: i32) -> Quicklist {
        Quicklist { nodes: VecDeque::new(), count: 0, fill: fill.clamp(-5, FILL_MAX), packed_threshold_bytes: PACKED_THRESHOLD_BYTES_DEFAULT }
    }

    /// `DEBUG QUICKLIST-PACKED-THRESHOLD`: elements of `bytes` or more get
    /// plain nodes from now on; 0 restores the default. Redis refuses
    /// more than 4 GiB - 1 MiB (false here).
    pub fn set_packed_threshold(&mut self, bytes: usize) -> bool {
        if bytes > (1 << 32) - (1 << 20) {
            return false;
        }
        self.packed_threshold_bytes = if bytes == 0 { PACKED_THRESHOLD_BYTES_DEFAULT } else { bytes };
        true
    }

    /// A list from the nodes of an RDB or DUMP quicklist-2 object
    /// (`quicklistAppendListpack` / `quicklistAppendPlainNode`); empty
    /// listpacks are dropped, as Redis's loader drops them.
    pub fn from_nodes(fill: i32, nodes: impl IntoIterator<Item = Node>) -> Quicklist {
        let mut q = Quicklist::new(fill);
        for node in nodes {
            if !node.is_empty() {
                q.count += node.len();
                q.nodes.push_back(node);
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
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &Node> + '_ {
        self.nodes.iter()
    }

    fn is_large(&self, len: usize) -> bool {
        len >= self.packed_threshold_bytes
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
        let Some(Node::Packed(lp)) = node.and_then(|i| self.nodes.get(i)) else { return false };
        !self.is_large(len) && self.within_limit(lp.total_bytes() + len + ENTRY_OVERHEAD_ESTIMATE_BYTES, lp.len() + 1)
    }

    /// `_quicklistNodeAllowMerge` for the nodes at `a` and `b`.
    fn allow_merge(&self, a: usize, b: usize) -> bool {
        let (Some(Node::Packed(x)), Some(Node::Packed(y))) = (self.nodes.get(a), self.nodes.get(b)) else {
            return false;
        };
        self.within_limit(x.total_bytes() + y.total_bytes() - MERGE_SAVED_BYTES_ESTIMATE, x.len() + y.len())
    }

    /// Gives back a node's spare buffer once it stops growing. A listpack
    /// grows by doubling from 7 bytes, so a full 8 KiB node sits in a
    /// 14 KiB buffer: 1M `member:<n>` elements took 22.5 B each before
    /// this and 15.1 after, redis-server 15.1 (it reallocs every entry
    /// to size). Done when a push opens a new node beside a full one and
    /// after a split or merge: the copy is one node's bytes, once.
    fn compact(node: &mut Node) {
        if let Node::Packed(lp) = node {
            let mut buf = std::mem::take(lp).into_bytes();
            buf.shrink_to_fit();
            *lp = Listpack::from_bytes(buf).expect("a listpack built here is valid");
        }
    }

    /// A new node holding `v`: plain when it is large.
    fn single(&self, v: &[u8]) -> Node {
        if self.is_large(v.len()) {
            return Node::Plain(v.to_vec());
        }
        let mut lp = Listpack::new();
        lp.append(Entry::Str(v));
        Node::Packed(lp)
    }

    /// LPUSH one element (`quicklistPushHead`).
    pub fn push_head(&mut self, v: &[u8]) {
        if self.allow_insert(Some(0), v.len()) {
            self.nodes[0].packed().prepend(Entry::Str(v));
        } else {
            if let Some(full) = self.nodes.front_mut() {
                Self::compact(full);
            }
            self.nodes.push_front(self.single(v));
        }
        self.count += 1;
    }

    /// RPUSH one element (`quicklistPushTail`).
    pub fn push_tail(&mut self, v: &[u8]) {
        let last = self.nodes.len().checked_sub(1);
        if self.allow_insert(last, v.len()) {
            self.nodes.back_mut().expect("tail node").packed().append(Entry::Str(v));
        } else {
            if let Some(full) = self.nodes.back_mut() {
                Self::compact(full);
            }
            self.nodes.push_back(self.single(v));
        }
        self.count += 1;
    }

    /// Deletes element `at` of node `node`, dropping the node if it
    /// empties (`quicklistDelIndex`; never merges).
    fn delete_in_node(&mut self, node: usize, at: usize) {
        let gone = match &mut self.nodes[node] {
            Node::Plain(_) => true,
            Node::Packed(lp) => {
                lp.delete(lp.seek(at as i64).expect("entry in node"));
                lp.is_empty()
            }
        };
        if gone {
            self.nodes.remove(node);
        }
        self.count -= 1;
    }

    /// LPOP one element.
    pub fn pop_head(&mut self) -> Option<Vec<u8>> {
        let v = self.nodes.front()?.get(0).to_vec();
        self.delete_in_node(0, 0);
        Some(v)
    }

    /// RPOP one element.
    pub fn pop_tail(&mut self) -> Option<Vec<u8>> {
        let last = self.nodes.back()?;
        let at = last.len() - 1;
        let v = last.get(at).to_vec();
        self.delete_in_node(self.nodes.len() - 1, at);
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
            for (i, node) in self.nodes.iter().enumerate() {
                let n = node.len();
                if pos < before + n {
                    return (i, pos - before);
                }
                before += n;
            }
        } else {
            let mut after = self.count;
            for (i, node) in self.nodes.iter().enumerate().rev() {
                after -= node.len();
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
        Some(self.nodes[node].get(at))
    }

    /// LSET: replaces the element at `index` (`quicklistReplaceEntry`):
    /// in place inside a listpack (Redis 7.0 does not re-check the node's
    /// size) or a plain node when sizes allow, else by inserting after it
    /// and deleting it. False when out of range.
    pub fn set(&mut self, index: i64, v: &[u8]) -> bool {
        let Some(pos) = self.resolve(index) else { return false };
        let (node, at) = self.locate(pos);
        let large = self.is_large(v.len());
        match &mut self.nodes[node] {
            Node::Packed(lp) if !large => {
                let off = lp.seek(at as i64).expect("entry in node");
                lp.replace(off, Entry::Str(v));
            }
            Node::Plain(old) if large => *old = v.to_vec(),
            Node::Plain(_) => {
                self.insert(pos, Where::After, v);
                let gone = self.nodes.remove(node).expect("the plain node");
                self.count -= gone.len();
            }
            Node::Packed(lp) => {
                let was = lp.len();
                self.insert(pos, Where::After, v);
                // The node now ends at the replaced element (a split, or
                // it was the last): drop that last element.
                if was == 1 {
                    self.nodes.remove(node);
                    self.count -= 1;
                } else {
                    let n = self.nodes[node].len();
                    self.delete_in_node(node, n - 1);
                }
            }
        }
        true
    }

    /// Position from the head of the first element equal to `pivot`
    /// (LINSERT's search).
    pub fn position(&self, pivot: &[u8]) -> Option<usize> {
        self.iter().position(|e| e.eq_bytes(pivot))
    }

    /// LINSERT: inserts `v` before or after the element at position `pos`
    /// from the head (`_quicklistInsert`).
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
        let plain = matches!(self.nodes[node], Node::Plain(_));
        self.count += 1;
        if self.is_large(v.len()) {
            let new = Node::Plain(v.to_vec());
            if plain || at_tail || at_head {
                self.nodes.insert(if after { node + 1 } else { node }, new);
            } else {
                // Split and put the large element between the halves;
                // nothing merges.
                let half = self.split(node, offset, after);
                if after {
                    self.nodes.insert(node + 1, new);
                    self.nodes.insert(node + 2, half);
                } else {
                    self.nodes.insert(node, new);
                    self.nodes.insert(node, half);
                }
            }
        } else if !full {
            let lp = self.nodes[node].packed();
            let off = lp.seek(offset as i64).expect("entry in node");
            lp.insert(off, at, Entry::Str(v));
        } else if at_tail && avail_next {
            self.nodes[node + 1].packed().prepend(Entry::Str(v));
        } else if at_head && avail_prev {
            self.nodes[node - 1].packed().append(Entry::Str(v));
        } else if at_tail || at_head {
            let new = self.single(v);
            self.nodes.insert(if after { node + 1 } else { node }, new);
        } else {
            // Split at the pivot: the new node takes the side the element
            // goes to, then the nodes around the split may merge.
            let mut half = self.split(node, offset, after);
            if after {
                half.packed().prepend(Entry::Str(v));
                self.nodes.insert(node + 1, half);
                self.merge_around(node);
            } else {
                half.packed().append(Entry::Str(v));
                self.nodes.insert(node, half);
                self.merge_around(node + 1);
            }
        }
    }

    /// `_quicklistSplitNode` of a packed node: with `after`, the node
    /// keeps [0, offset] and the returned node holds the rest; without,
    /// the returned one holds [0, offset) and the node keeps the rest.
    fn split(&mut self, node: usize, offset: usize, after: bool) -> Node {
        let lp = self.nodes[node].packed();
        let mut new_lp = lp.clone();
        if after {
            lp.delete_range(offset as i64 + 1, usize::MAX);
            new_lp.delete_range(0, offset + 1);
        } else {
            lp.delete_range(0, offset);
            new_lp.delete_range(offset as i64, usize::MAX);
        }
        Self::compact(&mut self.nodes[node]);
        let mut half = Node::Packed(new_lp);
        Self::compact(&mut half);
        half
    }

    /// Appends node `a + 1` to node `a` and drops it (`lpMerge` keeps the
    /// bytes in order whichever buffer it reuses).
    fn merge_pair(&mut self, a: usize) {
        let Some(Node::Packed(b)) = self.nodes.remove(a + 1) else { unreachable!("merge of a plain node") };
        let lp = self.nodes[a].packed();
        for e in b.iter() {
            lp.append(e);
        }
        Self::compact(&mut self.nodes[a]);
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
            let lp = match &mut self.nodes[i] {
                Node::Plain(p) => {
                    if p.as_slice() == v {
                        p.clear();
                        removed += 1;
                    }
                    continue;
                }
                Node::Packed(lp) => lp,
            };
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
        // A matched plain node was cleared above; a plain node of an
        // empty element never is a large one, so clearing marks it.
        self.nodes.retain(|n| match n {
            Node::Packed(lp) => !lp.is_empty(),
            Node::Plain(p) => !p.is_empty(),
        });
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
                self.nodes[i].packed().delete_range(skip as i64, here);
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
        self.nodes.iter().flat_map(Node::iter)
    }
}

/// Freeing in slices (`shard/lazyfree.rs`, UNLINK of a big list).
impl Quicklist {
    /// The nodes head to tail, each freed when dropped.
    pub fn into_nodes(self) -> impl Iterator<Item = Node> {
        self.nodes.into_iter()
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
        assert!(q.nodes().all(|n| !n.is_empty()));
        assert!(q.nodes().all(node_ok));
    }

    fn node_ok(n: &Node) -> bool {
        match n {
            Node::Packed(lp) => super::super::listpack::validate(lp.as_bytes(), true).is_ok(),
            Node::Plain(v) => v.len() >= 1000,
        }
    }

    fn run(fill: i32, plain_from: Option<usize>, ops: Vec<Op>) {
        let mut q = Quicklist::new(fill);
        if let Some(bytes) = plain_from {
            assert!(q.set_packed_threshold(bytes));
        }
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
                            plain_from in prop_oneof![Just(None), Just(Some(1000))],
                            ops in proptest::collection::vec(op(), 0..200)) {
            run(fill, plain_from, ops);
        }
    }

    #[test]
    fn fill_is_clamped_and_small_nodes_split() {
        assert_eq!(Quicklist::new(-9).fill(), -5);
        assert!(!Quicklist::new(-2).set_packed_threshold(1 << 32));
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
