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
//! **Compression** (`list-compress-depth`), as Redis's quicklist does it:
//! the `depth` nodes at each end stay plain, every node between them is
//! LZF-compressed when it has at least 48 bytes and compression saves at
//! least 8 (`MIN_COMPRESS_BYTES`, `MIN_COMPRESS_IMPROVE`); one that does
//! not stays plain and is tried again when it is touched, as in Redis.
//! Every change opens (decompresses) the nodes it touches and closes them
//! again before it returns (`settle`), checking the nodes that moved
//! across a zone's edge. Reads through `&self` (`iter`, `get`,
//! `Node::as_bytes`, which the RDB writer and DEBUG DIGEST use) decompress
//! a node into a cache kept beside its compressed bytes until the next
//! change touches that node (`drop_caches` frees them all); the commands'
//! own reads (`visit`, `visit_rev`, `get_owned`) decompress into a
//! temporary instead. The compressor is `persistence::lzf`'s, whose output
//! is a valid LZF stream but not byte for byte liblzf's: a compressed node
//! is therefore saved (RDB, DUMP) as its plain listpack (`as_bytes`), which
//! is also what Redis's loader accepts for a node of either kind. Plain
//! (container 1) nodes are never compressed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::OnceLock;

use crate::persistence::lzf;

use super::listpack::{Entry, Listpack, Where};

/// Whether a node of a list of `fill` may grow to `new_bytes` holding
/// `new_count` elements (`quicklistNodeExceedsLimit` negated).
#[inline(always)]
fn fill_allows(fill: i16, new_bytes: usize, new_count: usize) -> bool {
    if fill < 0 {
        let level = ((-(fill as i32)) as usize - 1).min(NODE_BYTES_BY_LEVEL.len() - 1);
        new_bytes <= NODE_BYTES_BY_LEVEL[level]
    } else {
        let count_limit = fill.max(1) as usize;
        new_bytes <= COUNT_FILL_SAFETY_BYTES && new_count <= count_limit
    }
}

/// Node byte limits for negative fills -1..-5 (`optimization_level`).
const NODE_BYTES_BY_LEVEL: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// A count-limited node never grows past this many bytes either
/// (`SIZE_SAFETY_LIMIT`), so a node of huge elements stays one element.
const COUNT_FILL_SAFETY_BYTES: usize = 8192;
/// The most a new edge node's buffer is given at once (`Quicklist::edge_node`):
/// the default fill's node (-2, 8 KiB). Nodes of the larger fills grow from
/// there by size class.
const EDGE_NODE_BYTES_MAX: usize = 8192;
/// A list gets such an edge node only from this many nodes (64 KiB at the
/// default fill): one growing by pushes. Its spare bytes are then at most
/// 1/8 of the list's per growing end, where from two nodes on a list of
/// one full node and a few elements took 16.7 KiB instead of 8.9
/// (`used_memory` over 1000 lists of 1700 `xxx`).
const EDGE_NODE_EAGER_MIN_NODES: usize = 8;
/// Redis's over-estimate of what one element adds to a listpack
/// (`SIZE_ESTIMATE_OVERHEAD`).
const ENTRY_OVERHEAD_ESTIMATE_BYTES: usize = 8;
/// What a merge is assumed to save: Redis 7.0 still subtracts an empty
/// ziplist's 11 bytes (`- 11` in `_quicklistNodeAllowMerge`), not a
/// listpack's 7, so a merged node can end up to 4 bytes over its limit:
/// redis-server 7.0.15 built an 8194-byte node at fill -2 in our test.
const MERGE_SAVED_BYTES_ESTIMATE: usize = 11;
/// Nodes smaller than this are never compressed (`MIN_COMPRESS_BYTES`).
const COMPRESS_BYTES_MIN: usize = 48;
/// A compressed node must be at least this much smaller than its listpack
/// (`MIN_COMPRESS_IMPROVE`), or it stays plain.
const COMPRESS_SAVED_BYTES_MIN: usize = 8;

/// Largest positive fill (`FILL_MAX`, a 16-bit signed field).
pub const FILL_MAX: i32 = (1 << 15) - 1;

/// Elements of this many bytes or more go in a plain node of their own
/// (`packed_threshold`, 1 GiB by default).
pub const PACKED_THRESHOLD_BYTES_DEFAULT: usize = 1 << 30;

/// The server-wide threshold `DEBUG QUICKLIST-PACKED-THRESHOLD` sets (a
/// global in Redis's quicklist.c too): every list created afterwards, on
/// any shard, starts with it (`Quicklist::new`). A list keeps the value it
/// was created with, so the push path reads its own field, not this.
static PACKED_THRESHOLD_BYTES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(PACKED_THRESHOLD_BYTES_DEFAULT as u32);

/// Redis's refusal bound for the threshold (`quicklistSetPackedThreshold`):
/// 4 GiB - 1 MiB.
const PACKED_THRESHOLD_BYTES_MAX: usize = (1 << 32) - (1 << 20);

/// `DEBUG QUICKLIST-PACKED-THRESHOLD <size>`: lists created from now on put
/// elements of `bytes` or more in plain nodes; 0 restores the default.
/// False (nothing changed) over `PACKED_THRESHOLD_BYTES_MAX`.
pub fn set_packed_threshold_for_new_lists(bytes: usize) -> bool {
    if bytes > PACKED_THRESHOLD_BYTES_MAX {
        return false;
    }
    let bytes = if bytes == 0 { PACKED_THRESHOLD_BYTES_DEFAULT } else { bytes };
    PACKED_THRESHOLD_BYTES.store(bytes as u32, std::sync::atomic::Ordering::Relaxed);
    true
}

/// One quicklist node, as RDB type 18 writes it: container 2, a listpack
/// of elements, or container 1, one large element as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Packed(Listpack),
    Plain(Vec<u8>),
    /// A packed node, LZF-compressed (an inner node of a list with
    /// `list-compress-depth` > 0). RDB container 2.
    Lzf(Box<LzfNode>),
}

/// A compressed listpack and what is known of it without decompressing.
#[derive(Clone, Debug)]
pub struct LzfNode {
    lzf: Box<[u8]>,
    listpack_bytes: usize,
    count: usize,
    /// The listpack, once a read through `&self` needed it.
    cache: OnceLock<Listpack>,
}

impl PartialEq for LzfNode {
    fn eq(&self, other: &LzfNode) -> bool {
        self.lzf == other.lzf && self.listpack_bytes == other.listpack_bytes
    }
}

impl Eq for LzfNode {}

impl LzfNode {
    /// `lp` compressed when that is worth it (`__quicklistCompressNode`).
    fn compress(lp: &Listpack) -> Option<LzfNode> {
        let bytes = lp.as_bytes();
        if bytes.len() < COMPRESS_BYTES_MIN {
            return None;
        }
        thread_local! {
            static COMPRESSOR: RefCell<(lzf::Compressor, Vec<u8>)> = RefCell::new(Default::default());
        }
        COMPRESSOR.with(|c| {
            let (compressor, out) = &mut *c.borrow_mut();
            // Room for a result that saves enough, no more: the
            // compressor gives up (0) when it would not fit.
            out.resize(bytes.len() - COMPRESS_SAVED_BYTES_MIN - 1, 0);
            let n = compressor.compress(bytes, out);
            (n > 0).then(|| LzfNode { lzf: out[..n].into(), listpack_bytes: bytes.len(), count: lp.len(), cache: OnceLock::new() })
        })
    }

    fn decompress(&self) -> Listpack {
        let bytes = lzf::decompress(&self.lzf, self.listpack_bytes).expect("a node compressed here decompresses");
        Listpack::from_bytes(bytes).expect("a node compressed here is a valid listpack")
    }

    /// The listpack, decompressed into the cache on first use.
    fn open(&self) -> &Listpack {
        self.cache.get_or_init(|| self.decompress())
    }

    /// The compressed bytes and the listpack's size, for a writer that
    /// saves the node as an LZF string.
    pub fn lzf(&self) -> (&[u8], usize) {
        (&self.lzf, self.listpack_bytes)
    }
}

impl Node {
    /// Elements in the node.
    pub fn len(&self) -> usize {
        match self {
            Node::Packed(lp) => lp.len(),
            Node::Plain(_) => 1,
            Node::Lzf(z) => z.count,
        }
    }

    /// Whether the node is held compressed.
    pub fn is_compressed(&self) -> bool {
        matches!(self, Node::Lzf(_))
    }

    /// The node's listpack or element size (Redis's `node->sz`).
    pub fn bytes_len(&self) -> usize {
        match self {
            Node::Packed(lp) => lp.total_bytes(),
            Node::Plain(v) => v.len(),
            Node::Lzf(z) => z.listpack_bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The RDB container kind: 1 plain, 2 packed.
    pub fn container(&self) -> u8 {
        match self {
            Node::Packed(_) | Node::Lzf(_) => 2,
            Node::Plain(_) => 1,
        }
    }

    /// The bytes RDB writes for the node: the listpack (decompressed for
    /// a compressed node, into its cache), or the element.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Node::Packed(lp) => lp.as_bytes(),
            Node::Plain(v) => v,
            Node::Lzf(z) => z.open().as_bytes(),
        }
    }

    fn packed(&mut self) -> &mut Listpack {
        match self {
            Node::Packed(lp) => lp,
            Node::Plain(_) => unreachable!("a listpack operation on a plain node"),
            Node::Lzf(_) => unreachable!("a listpack operation on a compressed node"),
        }
    }

    /// The element at `at` (0 for a plain node).
    fn get(&self, at: usize) -> Entry<'_> {
        match self {
            Node::Packed(lp) => lp.get(lp.seek(at as i64).expect("entry in node")),
            Node::Plain(v) => Entry::Str(v),
            Node::Lzf(z) => {
                let lp = z.open();
                lp.get(lp.seek(at as i64).expect("entry in node"))
            }
        }
    }

    fn iter(&self) -> NodeIter<'_> {
        match self {
            Node::Packed(lp) => NodeIter::Packed(lp.iter()),
            Node::Plain(v) => NodeIter::Plain(Some(v)),
            Node::Lzf(z) => NodeIter::Packed(z.open().iter()),
        }
    }

    /// Calls `f` on the node's elements (from the tail with `rev`) until
    /// it returns false; a compressed node is decompressed into a
    /// temporary, not its cache. Returns whether `f` wanted more.
    fn visit(&self, rev: bool, skip: usize, f: &mut impl FnMut(Entry<'_>) -> bool) -> bool {
        let temp;
        let node = match self {
            Node::Lzf(z) => match z.cache.get() {
                Some(lp) => lp,
                None => {
                    temp = z.decompress();
                    &temp
                }
            },
            Node::Packed(lp) => lp,
            Node::Plain(v) => return skip > 0 || f(Entry::Str(v)),
        };
        if rev {
            node.iter().rev().skip(skip).all(f)
        } else {
            node.iter().skip(skip).all(f)
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
    /// Redis's quicklist keeps these in bit fields (`fill : 16`, `compress
    /// : 16`); the narrow types keep `Quicklist` in jemalloc's 48-byte class
    /// (it was 64), which every list pays.
    fill: i16,
    compress_depth: u16,
    /// At most 4 GiB - 1 MiB (`set_packed_threshold`).
    packed_threshold_bytes: u32,
}

/// `COMPRESS_MAX`: the 16-bit field's largest value.
pub const COMPRESS_MAX: usize = u16::MAX as usize;

/// How far past a zone's edge `settle` looks for nodes that moved across
/// it: no change adds more than three nodes at once (a split around a
/// large element).
const EDGE_SLACK_NODES: usize = 3;

impl Quicklist {
    /// An empty list; `fill` is clamped as `quicklistSetFill` does.
    pub fn new(fill: i32) -> Quicklist {
        Quicklist {
            nodes: VecDeque::new(),
            count: 0,
            fill: fill.clamp(-5, FILL_MAX) as i16,
            packed_threshold_bytes: PACKED_THRESHOLD_BYTES.load(std::sync::atomic::Ordering::Relaxed),
            compress_depth: 0,
        }
    }

    /// This list's threshold (`set_packed_threshold_for_new_lists` sets
    /// the one new lists get): elements of `bytes` or more get plain nodes
    /// from now on; 0 restores the default. Redis refuses more than
    /// 4 GiB - 1 MiB (false here).
    pub fn set_packed_threshold(&mut self, bytes: usize) -> bool {
        if bytes > PACKED_THRESHOLD_BYTES_MAX {
            return false;
        }
        self.packed_threshold_bytes = if bytes == 0 { PACKED_THRESHOLD_BYTES_DEFAULT } else { bytes } as u32;
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
        q.nodes.shrink_to_fit();
        q
    }

    /// `list-compress-depth`: how many nodes at each end stay plain; 0
    /// compresses none. Compresses (or opens) every node to match at once,
    /// as a list loaded from RDB needs.
    /// Clamped to `COMPRESS_MAX`, as `quicklistSetCompressDepth` does.
    pub fn set_compress_depth(&mut self, depth: usize) {
        self.compress_depth = depth.min(COMPRESS_MAX) as u16;
        for i in 0..self.nodes.len() {
            if self.in_middle(i) {
                self.close(i);
            } else {
                self.open(i);
            }
        }
    }

    /// Frees the decompressed copies reads through `&self` left.
    pub fn drop_caches(&mut self) {
        for n in self.nodes.iter_mut() {
            if let Node::Lzf(z) = n {
                z.cache.take();
            }
        }
    }

    /// Whether node `i` lies between the plain zones at the two ends.
    fn in_middle(&self, i: usize) -> bool {
        let depth = self.compress_depth as usize;
        depth > 0 && i >= depth && i + depth < self.nodes.len()
    }

    /// Decompresses node `i` in place (before a change to it).
    /// Inlined: a list's nodes are plain but for a compressed list's middle
    /// (LPOP/RPOP open their edge node on every pop).
    #[inline(always)]
    fn open(&mut self, i: usize) {
        if let Some(Node::Lzf(_)) = self.nodes.get(i) {
            self.open_lzf(i);
        }
    }

    #[cold]
    #[inline(never)]
    fn open_lzf(&mut self, i: usize) {
        if let Some(Node::Lzf(z)) = self.nodes.get_mut(i) {
            let lp = z.cache.take().unwrap_or_else(|| z.decompress());
            self.nodes[i] = Node::Packed(lp);
        }
    }

    /// Opens the nodes in `range` (clamped to the list).
    fn open_range(&mut self, range: std::ops::Range<usize>) {
        for i in range.start..range.end.min(self.nodes.len()) {
            self.open(i);
        }
    }

    /// Compresses node `i` if that is worth it; a compressed one just
    /// drops its cache.
    fn close(&mut self, i: usize) {
        match &mut self.nodes[i] {
            Node::Lzf(z) => {
                z.cache.take();
            }
            Node::Packed(lp) => {
                if let Some(z) = LzfNode::compress(lp) {
                    self.nodes[i] = Node::Lzf(Box::new(z));
                }
            }
            Node::Plain(_) => {}
        }
    }

    /// After a change that touched the nodes in `touched` (indices after
    /// the change): the end zones plain, the touched nodes and those that
    /// crossed a zone's edge compressed when in the middle
    /// (`quicklistCompress`).
    /// Inlined down to the depth test: a list without compression (the
    /// default) pays one branch per push or pop, not a call.
    #[inline(always)]
    fn settle(&mut self, touched: std::ops::Range<usize>) {
        if self.compress_depth != 0 {
            self.settle_compressed(touched);
        }
    }

    #[inline(never)]
    fn settle_compressed(&mut self, touched: std::ops::Range<usize>) {
        let depth = self.compress_depth as usize;
        let len = self.nodes.len();
        if len <= 2 * depth {
            self.open_range(0..len);
            return;
        }
        self.open_range(0..depth);
        self.open_range(len - depth..len);
        let inner_head = depth..(depth + EDGE_SLACK_NODES).min(len - depth);
        let inner_tail = (len - depth).saturating_sub(EDGE_SLACK_NODES).max(depth)..len - depth;
        for i in touched.chain(inner_head).chain(inner_tail) {
            if self.in_middle(i) {
                self.close(i);
            }
        }
    }

    pub fn compress_depth(&self) -> usize {
        self.compress_depth as usize
    }

    pub fn fill(&self) -> i32 {
        self.fill as i32
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
        len >= self.packed_threshold_bytes as usize
    }

    /// Whether a node may grow to `new_bytes` holding `new_count` elements
    /// (`quicklistNodeExceedsLimit` negated).
    #[inline]
    fn within_limit(&self, new_bytes: usize, new_count: usize) -> bool {
        fill_allows(self.fill, new_bytes, new_count)
    }

    /// `_quicklistNodeAllowInsert` for an element of `len` bytes (its
    /// string length, even when it will be stored as an integer).
    #[inline(always)]
    fn allow_insert(&self, node: Option<usize>, len: usize) -> bool {
        let Some(Node::Packed(lp)) = node.and_then(|i| self.nodes.get(i)) else { return false };
        let (bytes, count) = lp.bytes_and_len();
        !self.is_large(len) && self.within_limit(bytes + len + ENTRY_OVERHEAD_ESTIMATE_BYTES, count + 1)
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
            // In place: no validation pass over the node's 8 KiB (from_bytes
            // re-checked every entry of a listpack built here, ~2% of an
            // LPUSH load's user time). Not when its class holds it anyway:
            // a full head node's room in front would only be moved out
            // (an 8 KiB memmove a node).
            if lp.has_spare_class() {
                lp.shrink_to_fit();
            }
        }
    }

    /// What a push that opens a new node beside `full` (the edge node the
    /// fill test just refused `v`) expects the new node to grow to: the
    /// full node's bytes, at most `EDGE_NODE_BYTES_MAX`. None when the new
    /// node is plain, its neighbour is not a packed node, or the list has
    /// fewer than `EDGE_NODE_EAGER_MIN_NODES` nodes.
    fn edge_bytes(full: &Node, small: bool, nodes: usize) -> Option<usize> {
        match full {
            Node::Packed(lp) if small && nodes >= EDGE_NODE_EAGER_MIN_NODES => Some(lp.total_bytes().min(EDGE_NODE_BYTES_MAX)),
            _ => None,
        }
    }

    /// A new edge node of a list that filled the node beside it, holding
    /// `v`: its buffer sized at once to what the full node holds
    /// (`Listpack::with_room`), room in front for LPUSH's side. A list that
    /// grew past one node is growing at that end: its pushes then fill the
    /// buffer in place, where growing by size class reallocated and copied
    /// the node ~30 times on its way to 8 KiB (memcpy's fresh cache lines,
    /// jemalloc's ralloc and tcache GC: the LPUSH-only costs of the default
    /// suite, perf/RESULTS.md "push22"). The cost is memory: until it
    /// fills, such a node holds up to `EDGE_NODE_BYTES_MAX` for few
    /// elements, at most one per end, and only in a list of
    /// `EDGE_NODE_EAGER_MIN_NODES` nodes or more.
    fn edge_node(bytes: usize, front: bool, v: &[u8]) -> Node {
        Node::Packed(Listpack::with_room(bytes, front, Entry::Str(v)))
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

    /// Room for one more node. The first few nodes are added one slot at a
    /// time: a `VecDeque` starts at 4 slots, which a list of one node (every
    /// small list) paid 96 bytes for.
    fn reserve_node(&mut self) {
        if self.nodes.len() < 4 {
            self.nodes.reserve_exact(1);
        }
    }

    /// LPUSH one element (`quicklistPushHead`).
    pub fn push_head(&mut self, v: &[u8]) {
        // As `push_tail`: the node-size test and the prepend into the head
        // node under one look at the node and at its room in front.
        let fill = self.fill;
        let small = !self.is_large(v.len());
        let pushed = small
            && match self.nodes.front_mut() {
                Some(Node::Packed(lp)) => {
                    lp.prepend_if(Entry::Str(v), |bytes, count| fill_allows(fill, bytes + v.len() + ENTRY_OVERHEAD_ESTIMATE_BYTES, count + 1))
                }
                _ => false,
            };
        if !pushed {
            let nodes = self.nodes.len();
            let edge = self.nodes.front_mut().and_then(|full| {
                let bytes = Self::edge_bytes(full, small, nodes);
                Self::compact(full);
                bytes
            });
            self.reserve_node();
            let node = match edge {
                Some(bytes) => Self::edge_node(bytes, true, v),
                None => self.single(v),
            };
            self.nodes.push_front(node);
        }
        self.count += 1;
        self.settle(0..0);
    }

    /// RPUSH one element (`quicklistPushTail`).
    pub fn push_tail(&mut self, v: &[u8]) {
        // `allow_insert` on the tail node and the append under one look at
        // the node and at its listpack's room in front.
        let fill = self.fill;
        let small = !self.is_large(v.len());
        let pushed = small
            && match self.nodes.back_mut() {
                Some(Node::Packed(lp)) => {
                    lp.append_if(Entry::Str(v), |bytes, count| fill_allows(fill, bytes + v.len() + ENTRY_OVERHEAD_ESTIMATE_BYTES, count + 1))
                }
                _ => false,
            };
        if !pushed {
            let nodes = self.nodes.len();
            let edge = self.nodes.back_mut().and_then(|full| {
                let bytes = Self::edge_bytes(full, small, nodes);
                Self::compact(full);
                bytes
            });
            self.reserve_node();
            let node = match edge {
                Some(bytes) => Self::edge_node(bytes, false, v),
                None => self.single(v),
            };
            self.nodes.push_back(node);
        }
        self.count += 1;
        self.settle(0..0);
    }

    /// Deletes element `at` of node `node`, dropping the node if it
    /// empties (`quicklistDelIndex`; never merges).
    fn delete_in_node(&mut self, node: usize, at: usize) {
        self.open(node);
        let gone = match &mut self.nodes[node] {
            Node::Plain(_) => true,
            Node::Lzf(_) => unreachable!("opened above"),
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
        self.pop_with(true, |e| e.to_vec())
    }

    /// RPOP one element.
    pub fn pop_tail(&mut self) -> Option<Vec<u8>> {
        self.pop_with(false, |e| e.to_vec())
    }

    /// Pops the head (or tail) element after `f` saw it where it lies:
    /// LPOP/RPOP write their reply from the listpack entry itself, with no
    /// copy of the element (`pop_head` made one per pop). The edge entry
    /// is found from the listpack's ends (`lpFirst`/`lpLast`), not by index.
    pub fn pop_with<R>(&mut self, head: bool, f: impl FnOnce(Entry<'_>) -> R) -> Option<R> {
        let node = self.nodes.len().checked_sub(1).map(|last| if head { 0 } else { last })?;
        self.open(node);
        let (out, gone) = match &mut self.nodes[node] {
            Node::Plain(v) => (f(Entry::Str(v)), true),
            Node::Lzf(_) => unreachable!("opened above"),
            Node::Packed(lp) => lp.pop_edge(head, f).expect("nodes are never empty"),
        };
        if gone {
            self.nodes.remove(node);
        }
        self.count -= 1;
        self.settle(0..0);
        Some(out)
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
        // The node and those a replacement by insert may merge with.
        self.open_range(node.saturating_sub(2)..node + 3);
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
            Node::Lzf(_) => unreachable!("opened above"),
        }
        self.settle(node.saturating_sub(2)..node + 4);
        true
    }

    /// Position from the head of the first element equal to `pivot`
    /// (LINSERT's search).
    pub fn position(&self, pivot: &[u8]) -> Option<usize> {
        let mut at = 0;
        let mut found = false;
        self.visit(0, |e| {
            found = e.eq_bytes(pivot);
            at += usize::from(!found);
            !found
        });
        found.then_some(at)
    }

    /// LINSERT: inserts `v` before or after the element at position `pos`
    /// from the head (`_quicklistInsert`).
    pub fn insert(&mut self, pos: usize, at: Where, v: &[u8]) {
        assert!(pos < self.count, "insert pivot {} out of a list of {}", pos, self.count);
        let (node, offset) = self.locate(pos);
        // The node, the neighbours it may spill into and those a split's
        // merges reach.
        self.open_range(node.saturating_sub(2)..node + 3);
        self.insert_opened(node, offset, at, v);
        self.settle(node.saturating_sub(2)..node + 5);
    }

    fn insert_opened(&mut self, node: usize, offset: usize, at: Where, v: &[u8]) {
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
            self.open(i);
            let lp = match &mut self.nodes[i] {
                Node::Lzf(_) => unreachable!("opened above"),
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
            // Nodes only move towards the ends as others empty: one in
            // the middle now may be closed at once (`settle` opens the
            // ones that end up in an end zone).
            if self.in_middle(i) {
                self.close(i);
            }
        }
        // A matched plain node was cleared above; a plain node of an
        // empty element never is a large one, so clearing marks it.
        self.nodes.retain(|n| match n {
            Node::Packed(lp) => !lp.is_empty(),
            Node::Plain(p) => !p.is_empty(),
            Node::Lzf(_) => true,
        });
        self.count -= removed;
        self.settle(0..0);
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
                self.open(i);
                self.nodes[i].packed().delete_range(skip as i64, here);
                if self.in_middle(i) {
                    self.close(i);
                }
                i += 1;
            }
            left -= here;
            skip = 0;
        }
        self.count -= num;
        self.settle(0..0);
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

    /// Calls `f` on the elements from position `from` towards the tail
    /// until it returns false, decompressing compressed nodes into a
    /// temporary (LRANGE, LPOS, LINSERT's search).
    pub fn visit(&self, from: usize, mut f: impl FnMut(Entry<'_>) -> bool) {
        if from >= self.count {
            return;
        }
        let (first, mut skip) = self.locate(from);
        for node in self.nodes.range(first..) {
            if !node.visit(false, skip, &mut f) {
                return;
            }
            skip = 0;
        }
    }

    /// Calls `f` on the elements from the tail towards the head until it
    /// returns false.
    pub fn visit_rev(&self, mut f: impl FnMut(Entry<'_>) -> bool) {
        for node in self.nodes.iter().rev() {
            if !node.visit(true, 0, &mut f) {
                return;
            }
        }
    }

    /// LINDEX without leaving a decompressed node behind.
    pub fn get_owned(&self, index: i64) -> Option<Vec<u8>> {
        let pos = self.resolve(index)?;
        let mut out = None;
        self.visit(pos, |e| {
            out = Some(e.to_vec());
            false
        });
        out
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
        // Compression: the end zones plain, every inner node compressed
        // unless it is plain, small or does not compress enough.
        for (i, n) in q.nodes().enumerate() {
            match n {
                Node::Lzf(_) => assert!(q.in_middle(i), "node {} of {} compressed at depth {}", i, q.nodes.len(), q.compress_depth),
                Node::Packed(lp) if q.in_middle(i) => assert!(LzfNode::compress(lp).is_none(), "inner node {} left uncompressed", i),
                _ => {}
            }
        }
    }

    fn node_ok(n: &Node) -> bool {
        match n {
            Node::Packed(lp) => super::super::listpack::validate(lp.as_bytes(), true).is_ok(),
            Node::Plain(v) => v.len() >= 1000,
            Node::Lzf(z) => super::super::listpack::validate(z.decompress().as_bytes(), true).is_ok() && z.decompress().len() == z.count,
        }
    }

    fn run(fill: i32, plain_from: Option<usize>, depth: usize, ops: Vec<Op>) {
        let mut q = Quicklist::new(fill);
        q.set_compress_depth(depth);
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
            let mut visited: Vec<Vec<u8>> = vec![];
            q.visit(0, |e| {
                visited.push(e.to_vec());
                true
            });
            assert_eq!(visited, model);
            let got: Vec<Vec<u8>> = q.iter().map(|e| e.to_vec()).collect();
            assert_eq!(got, model);
            if !model.is_empty() {
                let from = model.len() / 3;
                let mut part = vec![];
                q.visit(from, |e| {
                    part.push(e.to_vec());
                    part.len() < 5
                });
                assert_eq!(part, model[from..(from + 5).min(model.len())]);
                let mut back = vec![];
                q.visit_rev(|e| {
                    back.push(e.to_vec());
                    true
                });
                assert!(back.iter().eq(model.iter().rev()));
                assert_eq!(q.get_owned(-1).as_ref(), model.last());
            }
        }
        let back: Vec<Vec<u8>> = q.iter().rev().map(|e| e.to_vec()).collect();
        assert!(back.iter().eq(model.iter().rev()));
        for (i, v) in model.iter().enumerate() {
            assert_eq!(q.get_owned(i as i64).as_ref(), Some(v));
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
                            depth in prop_oneof![Just(0usize), Just(1), Just(2)],
                            ops in proptest::collection::vec(op(), 0..200)) {
            run(fill, plain_from, depth, ops);
        }
    }

    #[test]
    fn inner_nodes_compress_and_reopen() {
        let mut q = Quicklist::new(-2);
        q.set_compress_depth(1);
        for i in 0..20_000 {
            q.push_tail(format!("member:{}", i).as_bytes());
        }
        let n = q.nodes().len();
        assert!(n > 10);
        let compressed = q.nodes().filter(|n| n.is_compressed()).count();
        assert_eq!(compressed, n - 2);
        // RDB sees plain listpacks; the decompressed copy stays cached
        // until dropped.
        for node in q.nodes() {
            assert!(super::super::listpack::validate(node.as_bytes(), true).is_ok());
        }
        q.drop_caches();
        assert_eq!(q.get_owned(10_000).unwrap(), b"member:10000");
        // Popping to the middle opens the nodes that reach the ends.
        for _ in 0..19_000 {
            q.pop_head();
        }
        check_shape(&q);
        assert_eq!(q.get(0).unwrap().to_vec(), b"member:19000");
        // Depth 0 again opens everything.
        q.set_compress_depth(0);
        assert!(q.nodes().all(|n| !n.is_compressed()));
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
