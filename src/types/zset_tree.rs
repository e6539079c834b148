//! The big sorted-set encoding: members ordered by (score, member bytes)
//! with O(log n) insert, delete, score update, rank, element by rank and
//! range bounds, plus member -> score lookup.
//!
//! Redis keeps a skiplist and a dict. Here it is an order-statistic B+tree
//! (as Dragonfly's `BPTree`) beside a small open-addressing table, chosen
//! by memory: per element Redis pays a skiplist node (~48 B with its
//! levels), an sds member, a dict entry (24 B) and a bucket pointer; here
//! the tree stores 12-byte (score, id) items packed in leaves of up to 64,
//! each member lives once in a slab slot (its bytes and score), and the
//! table holds 4-byte slab ids. Measured with 1M members `member:<n>`
//! and random scores (`zset_memory_and_speed_against_redis` in
//! `tests/types2.rs`, jemalloc's allocated bytes against redis-server
//! 7.0.15's `used_memory`): Redis 109.8 B/element, here 68.5 (slab slot
//! 25, member bytes 16, table 8.4, leaves ~18), 63.1 with ascending
//! scores. Insert, rank and remove each take under 1 us here in a
//! release build.
//! (Measured before the slot took the member's hash: 8 bytes more a member
//! since, see `Slot`.)
//!
//! Order is Redis's (`zslInsert`): by score with `<` (so -0 and 0 tie),
//! then by member bytes (memcmp, then length). Scores are never NaN: the
//! caller refuses NaN as Redis does.
//!
//! The tree keeps for every child of an inner node its first item and its
//! element count, so descending by key compares against cached items and
//! descending by rank sums counts; a node below a quarter full is merged
//! with or levelled against a neighbour, so the height stays logarithmic
//! whatever the insert and delete order.

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::ops::Range;

use super::id_table::{IdTable, Loc};
use crate::shard::dict::ChunkedVec;

/// Items per leaf and children per inner node. 64 x 12-byte items =
/// 768-byte leaves: a binary search touches a few cache lines, and an
/// insert moves at most 768 bytes.
const NODE_CAP: usize = 64;
/// Below this a node is merged with or levelled against a neighbour.
const NODE_MIN: usize = NODE_CAP / 4;

/// One element in the tree: its score (copied, so comparisons on score
/// never leave the leaf) and its slab id. Packed to 12 bytes (no padding
/// after the id): leaves are a third of the memory, and this took 1M
/// members from 74.2 to 68.5 B/element.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
struct Item {
    score: f64,
    id: u32,
}

#[derive(Clone, Debug)]
struct Child {
    first: Item,
    count: usize,
    node: Node,
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Vec<Item>),
    Inner(Vec<Child>),
}

impl Node {
    fn first(&self) -> Option<Item> {
        match self {
            Node::Leaf(items) => items.first().copied(),
            Node::Inner(children) => children.first().map(|c| c.first),
        }
    }

    fn count(&self) -> usize {
        match self {
            Node::Leaf(items) => items.len(),
            Node::Inner(children) => children.iter().map(|c| c.count).sum(),
        }
    }

    /// Items or children: what the fill limits count.
    fn width(&self) -> usize {
        match self {
            Node::Leaf(items) => items.len(),
            Node::Inner(children) => children.len(),
        }
    }

    fn into_child(self) -> Child {
        Child { first: self.first().expect("a non-empty node"), count: self.count(), node: self }
    }
}

/// A member's storage: its bytes once (empty in a free slot), its score
/// and its hash. With the hash here the member table's moves (growth, a
/// removal's backward shift) and a pop's own table removal read the slot,
/// never the member's bytes, and hash nothing; it costs 8 bytes a member
/// (32-byte slots). A `Key` member (length in its allocation) kept the slot
/// at 24 bytes but cost ZADD 8% more instructions (every tree comparison
/// decoded the length) and ~15-20% more CPU in perf/suite.sh: not taken.
#[derive(Clone, Debug)]
struct Slot {
    member: Box<[u8]>,
    score: f64,
    hash: u64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32, "a slab slot is 32 bytes");

/// Slab ids stay below this (the member table stores `id + 1` in 32 bits).
const EMPTY: u32 = u32::MAX;

/// Redis's ordering of (score, member).
fn order(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    if a_score < b_score {
        Ordering::Less
    } else if a_score > b_score {
        Ordering::Greater
    } else {
        a_member.cmp(b_member)
    }
}

/// One end of a score range (`ZRANGEBYSCORE`'s `(1.5`, `-inf`, `+inf`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// `ZRANGEBYSCORE min max` as Redis's `zrangespec`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: ScoreBound,
    pub max: ScoreBound,
}

impl ScoreRange {
    /// Whether `score` is at or past the minimum (`zslValueGteMin`).
    pub fn above_min(&self, score: f64) -> bool {
        if self.min.exclusive {
            score > self.min.value
        } else {
            score >= self.min.value
        }
    }

    /// Whether `score` is at or before the maximum (`zslValueLteMax`).
    pub fn below_max(&self, score: f64) -> bool {
        if self.max.exclusive {
            score < self.max.value
        } else {
            score <= self.max.value
        }
    }
}

/// One end of a lex range: `-`, `+`, `[member` or `(member`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

impl LexBound {
    /// Parses Redis's syntax (`zslParseLexRangeItem`); None is Redis's
    /// "min or max not valid string range item".
    pub fn parse(s: &[u8]) -> Option<LexBound> {
        match s.first()? {
            b'+' if s.len() == 1 => Some(LexBound::PosInf),
            b'-' if s.len() == 1 => Some(LexBound::NegInf),
            b'[' => Some(LexBound::Inclusive(s[1..].to_vec())),
            b'(' => Some(LexBound::Exclusive(s[1..].to_vec())),
            _ => None,
        }
    }

    /// Whether `member` is at or past this bound as a minimum
    /// (`zslLexValueGteMin`).
    pub fn at_or_after(&self, member: &[u8]) -> bool {
        match self {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Inclusive(m) => member >= m.as_slice(),
            LexBound::Exclusive(m) => member > m.as_slice(),
        }
    }

    /// Whether `member` is at or before this bound as a maximum
    /// (`zslLexValueLteMax`).
    pub fn at_or_before(&self, member: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(m) => member <= m.as_slice(),
            LexBound::Exclusive(m) => member < m.as_slice(),
        }
    }
}

/// A sorted set in its big encoding: a pointer to its body, so that the
/// `ZSet` enum (and the box a `Value` holds for a small listpack sorted
/// set) stays at 32 bytes: inline, the body's five fields made every
/// listpack sorted set pay for them, 140 B/key more than Redis with 100k
/// ten-member sets (measured).
#[derive(Clone)]
pub struct SortedSet(Box<SortedSetBody>);

deref_boxed!(SortedSet, SortedSetBody);

impl SortedSet {
    pub fn new() -> SortedSet {
        SortedSet(Box::new(SortedSetBody::new()))
    }
}

/// The tree, the member slab and the member table of a `SortedSet`.
#[derive(Clone)]
pub struct SortedSetBody {
    root: Node,
    /// In chunks: growing never moves the slots already there.
    slab: ChunkedVec<Slot>,
    free_ids: Vec<u32>,
    /// Member -> slab id, grown incrementally (`types/id_table.rs`).
    table: IdTable,
    hasher: foldhash::fast::RandomState,
}

impl Default for SortedSet {
    fn default() -> SortedSet {
        SortedSet::new()
    }
}

impl std::fmt::Debug for SortedSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter().map(|(m, s)| (String::from_utf8_lossy(m), s))).finish()
    }
}

impl SortedSetBody {
    fn new() -> SortedSetBody {
        SortedSetBody {
            root: Node::Leaf(Vec::new()),
            slab: ChunkedVec::default(),
            free_ids: Vec::new(),
            table: IdTable::default(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.slab.len() - self.free_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    fn member(&self, id: u32) -> &[u8] {
        &self.slab[id as usize].member
    }

    fn cmp_item(&self, item: Item, score: f64, member: &[u8]) -> Ordering {
        order(item.score, self.member(item.id), score, member)
    }

    // --- member table ---------------------------------------------------

    fn hash(&self, member: &[u8]) -> u64 {
        self.hasher.hash_one(member)
    }

    /// Where `member`'s id lies in the table.
    fn find_loc(&self, member: &[u8]) -> Option<Loc> {
        let slab = &self.slab;
        self.table.find(self.hash(member), |id| *slab[id as usize].member == *member)
    }

    /// DEBUG HTSTATS-KEY's figures of the member table (`IdTable::stats`).
    pub fn table_stats(&self) -> (super::table_stats::TableStats, Option<super::table_stats::TableStats>) {
        let slab = &self.slab;
        self.table.stats(|id| slab[id as usize].hash)
    }

    fn table_insert(&mut self, id: u32) {
        let slab = &self.slab;
        self.table.insert(slab[id as usize].hash, id, |id| slab[id as usize].hash);
    }

    fn table_remove(&mut self, loc: Loc) {
        let slab = &self.slab;
        self.table.remove(loc, |id| slab[id as usize].hash);
    }

    // --- tree -----------------------------------------------------------

    /// The child of an inner node a key belongs in: the last whose first
    /// item is not after it (the first child for a key before them all).
    fn child_for(&self, children: &[Child], score: f64, member: &[u8]) -> usize {
        children.partition_point(|c| self.cmp_item(c.first, score, member) != Ordering::Greater).saturating_sub(1)
    }

    fn insert_in(&self, node: &mut Node, item: Item) -> Option<Node> {
        let member = self.member(item.id);
        match node {
            Node::Leaf(items) => {
                let at = items.partition_point(|x| self.cmp_item(*x, item.score, member) == Ordering::Less);
                if items.len() < NODE_CAP {
                    items.insert(at, item);
                    return None;
                }
                // An insert past either end of a full leaf starts a new
                // leaf and leaves this one full: ascending scores
                // (timestamps) otherwise leave every leaf half full, 85.5
                // B/element for 1M members instead of 74.5 (measured).
                if at == NODE_CAP {
                    return Some(Node::Leaf(vec![item]));
                }
                if at == 0 {
                    return Some(Node::Leaf(std::mem::replace(items, vec![item])));
                }
                // Split before inserting so a leaf's buffer never grows past
                // NODE_CAP items (inserting first would double it to 128).
                let mut right = items.split_off(NODE_CAP / 2);
                if at <= NODE_CAP / 2 {
                    items.insert(at, item);
                } else {
                    right.insert(at - NODE_CAP / 2, item);
                }
                Some(Node::Leaf(right))
            }
            Node::Inner(children) => {
                let at = self.child_for(children, item.score, member);
                let split = self.insert_in(&mut children[at].node, item);
                let c = &mut children[at];
                c.count += 1;
                c.first = c.node.first().expect("non-empty after insert");
                let right = split?.into_child();
                c.count = c.node.count();
                if children.len() < NODE_CAP {
                    children.insert(at + 1, right);
                    return None;
                }
                // As for leaves: split first, so the buffer stays at
                // NODE_CAP children instead of doubling to twice that.
                let mut half = children.split_off(NODE_CAP / 2);
                if at < NODE_CAP / 2 {
                    children.insert(at + 1, right);
                } else {
                    half.insert(at + 1 - NODE_CAP / 2, right);
                }
                Some(Node::Inner(half))
            }
        }
    }

    /// Removes the item with key (score, member), which must be present.
    fn remove_in(&self, node: &mut Node, score: f64, member: &[u8]) {
        match node {
            Node::Leaf(items) => {
                let at = items.partition_point(|x| self.cmp_item(*x, score, member) == Ordering::Less);
                debug_assert!(self.cmp_item(items[at], score, member) == Ordering::Equal);
                items.remove(at);
            }
            Node::Inner(children) => {
                let at = self.child_for(children, score, member);
                self.remove_in(&mut children[at].node, score, member);
                removed_below(children, at);
            }
        }
    }

    /// `remove_in` of the item at `rank` under `node`: the way down by the
    /// children's counts, no comparison of scores or members (ZPOPMIN).
    fn remove_rank_in(node: &mut Node, mut rank: usize) {
        match node {
            Node::Leaf(items) => {
                items.remove(rank);
            }
            Node::Inner(children) => {
                let mut at = 0;
                while rank >= children[at].count {
                    rank -= children[at].count;
                    at += 1;
                }
                Self::remove_rank_in(&mut children[at].node, rank);
                removed_below(children, at);
            }
        }
    }

    fn fix_root(&mut self) {
        if let Some(right) = match &mut self.root {
            Node::Leaf(_) => None,
            Node::Inner(children) if children.len() == 1 => Some(children.pop().expect("one child").node),
            Node::Inner(_) => None,
        } {
            self.root = right;
        }
    }

    fn tree_insert(&mut self, item: Item) {
        let mut root = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
        if let Some(right) = self.insert_in(&mut root, item) {
            root = Node::Inner(vec![root.into_child(), right.into_child()]);
        }
        self.root = root;
    }

    fn tree_remove(&mut self, score: f64, id: u32) {
        let mut root = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
        self.remove_in(&mut root, score, self.member(id));
        self.root = root;
        self.fix_root();
    }

    // --- public operations ---------------------------------------------

    /// The member's score (`ZSCORE`).
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find_loc(member).map(|l| self.slab[self.table.id_at(l) as usize].score)
    }

    /// Adds `member` or moves it to `score` (`zslInsert` / `zslUpdateScore`);
    /// returns its previous score.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        debug_assert!(!score.is_nan(), "NaN scores are refused before here");
        let hash = self.hash(member);
        let slab = &self.slab;
        if let Some(l) = self.table.find(hash, |id| *slab[id as usize].member == *member) {
            let id = self.table.id_at(l);
            let old = self.slab[id as usize].score;
            if old != score || old.to_bits() != score.to_bits() {
                self.tree_remove(old, id);
                self.slab[id as usize].score = score;
                self.tree_insert(Item { score, id });
            }
            return Some(old);
        }
        let slot = Slot { member: member.into(), score, hash };
        let id = match self.free_ids.pop() {
            Some(id) => {
                self.slab[id as usize] = slot;
                id
            }
            None => {
                assert!(self.slab.len() < EMPTY as usize, "sorted set of 2^32 - 1 members");
                self.slab.push(slot);
                (self.slab.len() - 1) as u32
            }
        };
        self.table_insert(id);
        self.tree_insert(Item { score, id });
        None
    }

    /// Removes `member` (`ZREM`); returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let l = self.find_loc(member)?;
        Some(self.remove_slot(l))
    }

    /// Removes the member at table location `l`; returns its score.
    fn remove_slot(&mut self, l: Loc) -> f64 {
        let id = self.table.id_at(l);
        let score = self.slab[id as usize].score;
        self.tree_remove(score, id);
        self.forget(l, id);
        score
    }

    /// The table and slab side of removing member `id` at table location
    /// `l`, once it has left the tree.
    fn forget(&mut self, l: Loc, id: u32) {
        self.table_remove(l);
        // A freed slot is marked by a NaN score (scores never are NaN), so
        // that `scan` can skip it without searching `free_ids`.
        self.slab[id as usize] = Slot { member: Box::default(), score: f64::NAN, hash: 0 };
        self.free_ids.push(id);
        if self.is_empty() {
            // Nothing left to keep: give the slab and table back.
            *self = SortedSetBody { hasher: self.hasher.clone(), ..SortedSetBody::new() };
        }
    }

    /// Removes the element at `rank` after `f` saw it in place (ZPOPMIN,
    /// ZPOPMAX: the reply is written from the stored member, which is
    /// neither copied nor looked up by its bytes' order again). None when
    /// `rank` is past the end.
    pub fn remove_rank_with<R>(&mut self, rank: usize, f: impl FnOnce(&[u8], f64) -> R) -> Option<R> {
        if rank >= self.len() {
            return None;
        }
        let rank0 = rank;
        let mut rank = rank;
        let mut node = &self.root;
        let item = loop {
            match node {
                Node::Leaf(items) => break items[rank],
                Node::Inner(children) => {
                    let mut at = 0;
                    while rank >= children[at].count {
                        rank -= children[at].count;
                        at += 1;
                    }
                    node = &children[at].node;
                }
            }
        };
        let out = f(self.member(item.id), item.score);
        // Its table bucket by the stored hash and the id: no bytes hashed
        // or compared.
        let slot = self.table.find(self.slab[item.id as usize].hash, |id| id == item.id).expect("a member in the tree is in the table");
        // Out of the tree by its rank, then out of the table.
        let mut root = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
        Self::remove_rank_in(&mut root, rank0);
        self.root = root;
        self.fix_root();
        self.forget(slot, item.id);
        Some(out)
    }

    /// After a pop from one end (`max`: the highest), asks for what the
    /// next pop from that end reads: the next element's member bytes and
    /// table bucket (its slot was asked for by the pop before), and the slot
    /// of the one after it. A pipelined run of ZPOPMIN then finds each
    /// element's lines in the cache instead of missing on them one after the
    /// other. A hint only.
    pub fn prefetch_end(&self, max: bool) {
        let mut node = &self.root;
        let items = loop {
            match node {
                Node::Leaf(items) => break items,
                Node::Inner(children) => match if max { children.last() } else { children.first() } {
                    Some(c) => node = &c.node,
                    None => return,
                },
            }
        };
        let (next, after) = match (max, items.len()) {
            (_, 0) => return,
            (false, _) => (items[0], items.get(1)),
            (true, n) => (items[n - 1], n.checked_sub(2).map(|i| &items[i])),
        };
        let slot = &self.slab[next.id as usize];
        crate::util::prefetch(slot.member.as_ptr());
        self.table.prefetch(slot.hash);
        if let Some(a) = after {
            crate::util::prefetch(&self.slab[a.id as usize] as *const Slot as *const u8);
        }
    }

    /// 0-based rank from the lowest (`ZRANK`).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let mut rank = 0;
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(items) => {
                    return Some(rank + items.partition_point(|x| self.cmp_item(*x, score, member) == Ordering::Less));
                }
                Node::Inner(children) => {
                    let at = self.child_for(children, score, member);
                    rank += children[..at].iter().map(|c| c.count).sum::<usize>();
                    node = &children[at].node;
                }
            }
        }
    }

    /// 0-based rank from the highest (`ZREVRANK`).
    pub fn rev_rank(&self, member: &[u8]) -> Option<usize> {
        self.rank(member).map(|r| self.len() - 1 - r)
    }

    /// The element at `rank` from the lowest (`zslGetElementByRank`).
    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        (rank < self.len()).then(|| self.cursor(rank).get(self))
    }

    /// Number of elements before the first for which `before` is false,
    /// `before` being true then false along the order.
    fn partition_rank(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut rank = 0;
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(items) => return rank + items.partition_point(|x| before(x.score, self.member(x.id))),
                Node::Inner(children) => {
                    let n = children.partition_point(|c| before(c.first.score, self.member(c.first.id)));
                    if n == 0 {
                        return rank;
                    }
                    rank += children[..n - 1].iter().map(|c| c.count).sum::<usize>();
                    node = &children[n - 1].node;
                }
            }
        }
    }

    /// Ranks of the elements inside `range` (`zslFirstInRange` ..
    /// `zslLastInRange`); empty when nothing is.
    pub fn score_range(&self, range: &ScoreRange) -> Range<usize> {
        let start = self.partition_rank(|s, _| !range.above_min(s));
        let end = self.partition_rank(|s, _| range.below_max(s));
        start..end.max(start)
    }

    /// Ranks of the elements between the lex bounds (`zslFirstInLexRange`
    /// .. `zslLastInLexRange`). Meaningful, as in Redis, when all scores
    /// are equal.
    pub fn lex_range(&self, min: &LexBound, max: &LexBound) -> Range<usize> {
        let start = self.partition_rank(|_, m| !min.at_or_after(m));
        let end = self.partition_rank(|_, m| max.at_or_before(m));
        start..end.max(start)
    }

    /// Removes the elements at ranks `ranks` (`ZREMRANGEBYRANK`, and the
    /// score and lex variants through `score_range` / `lex_range`).
    /// Returns how many went.
    pub fn remove_ranks(&mut self, ranks: Range<usize>) -> usize {
        let ranks = ranks.start.min(self.len())..ranks.end.min(self.len());
        let doomed: Vec<Vec<u8>> = self.range(ranks).map(|(m, _)| m.to_vec()).collect();
        for m in &doomed {
            self.remove(m);
        }
        doomed.len()
    }

    /// One ZSCAN step: visits the member slots from `cursor` upwards,
    /// calling `found` for each live one, until `count` were found (or ten
    /// times that many slots were looked at, as Redis bounds a scan step);
    /// returns the next cursor, 0 when the slab is done.
    ///
    /// A member keeps its slab slot for as long as it is in the set (a
    /// score change moves only its tree item), freed slots are reused and
    /// the slab only grows at its end, so a cursor over slots returns every
    /// member present for the whole scan at least once, whatever is added
    /// or removed between calls: Redis's guarantee. A rank cursor would not
    /// (an insert before it shifts the ranks after it).
    pub fn scan(&self, cursor: u64, count: usize, mut found: impl FnMut(&[u8], f64)) -> u64 {
        let mut at = usize::try_from(cursor).unwrap_or(usize::MAX);
        let mut seen = 0;
        let mut looked = 0;
        let looked_max = count.saturating_mul(10).max(1);
        while at < self.slab.len() && seen < count && looked < looked_max {
            let slot = &self.slab[at];
            if !slot.score.is_nan() {
                found(&slot.member, slot.score);
                seen += 1;
            }
            looked += 1;
            at += 1;
        }
        if at >= self.slab.len() {
            0
        } else {
            at as u64
        }
    }

    /// All elements, lowest first.
    pub fn iter(&self) -> Iter<'_> {
        self.range(0..self.len())
    }

    /// The elements at ranks `ranks` (clamped), lowest first; `.rev()`
    /// walks from the highest, for the REV forms.
    pub fn range(&self, ranks: Range<usize>) -> Iter<'_> {
        let end = ranks.end.min(self.len());
        let start = ranks.start.min(end);
        if start == end {
            return Iter { set: self, front: None, back: None, left: 0 };
        }
        Iter { set: self, front: Some(self.cursor(start)), back: Some(self.cursor(end - 1)), left: end - start }
    }

    /// A cursor on the element at `rank` (in range).
    fn cursor(&self, mut rank: usize) -> Cursor<'_> {
        let mut path = Vec::new();
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(items) => return Cursor { path, leaf: items, pos: rank },
                Node::Inner(children) => {
                    let mut at = 0;
                    while rank >= children[at].count {
                        rank -= children[at].count;
                        at += 1;
                    }
                    path.push((children.as_slice(), at));
                    node = &children[at].node;
                }
            }
        }
    }
}

/// Rebalances children `left` and `left + 1` of an inner node: one node
/// when they fit in one, else two of even width.
/// After an item under `children[at]` was removed: its count, and a merge
/// with a sibling when it fell under `NODE_MIN`, else its first item.
fn removed_below(children: &mut Vec<Child>, at: usize) {
    let c = &mut children[at];
    c.count -= 1;
    if c.node.width() < NODE_MIN && children.len() > 1 {
        let left = if at > 0 { at - 1 } else { at };
        rebalance(children, left);
    } else if let Some(first) = children[at].node.first() {
        children[at].first = first;
    }
}

fn rebalance(children: &mut Vec<Child>, left: usize) {
    let b = children.remove(left + 1).node;
    let a = std::mem::replace(&mut children[left].node, Node::Leaf(Vec::new()));
    let joined = match (a, b) {
        (Node::Leaf(mut x), Node::Leaf(y)) => {
            x.extend(y);
            Node::Leaf(x)
        }
        (Node::Inner(mut x), Node::Inner(y)) => {
            x.extend(y);
            Node::Inner(x)
        }
        _ => unreachable!("siblings are at the same depth"),
    };
    let mut joined = joined;
    let right = if joined.width() > NODE_CAP {
        Some(match &mut joined {
            Node::Leaf(x) => Node::Leaf(x.split_off(x.len() / 2)),
            Node::Inner(x) => Node::Inner(x.split_off(x.len() / 2)),
        })
    } else {
        None
    };
    children[left] = joined.into_child();
    if let Some(right) = right {
        children.insert(left + 1, right.into_child());
    }
}

/// A position in the tree: the inner nodes above (children, index taken)
/// and the leaf.
#[derive(Clone)]
struct Cursor<'a> {
    path: Vec<(&'a [Child], usize)>,
    leaf: &'a [Item],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn get(&self, set: &'a SortedSetBody) -> (&'a [u8], f64) {
        let item = self.leaf[self.pos];
        (set.member(item.id), item.score)
    }

    fn descend(&mut self, mut node: &'a Node, last: bool) {
        loop {
            match node {
                Node::Leaf(items) => {
                    self.leaf = items;
                    self.pos = if last { items.len() - 1 } else { 0 };
                    return;
                }
                Node::Inner(children) => {
                    let at = if last { children.len() - 1 } else { 0 };
                    self.path.push((children.as_slice(), at));
                    node = &children[at].node;
                }
            }
        }
    }

    /// Moves to the next element; the caller knows there is one.
    fn forward(&mut self) {
        if self.pos + 1 < self.leaf.len() {
            self.pos += 1;
            return;
        }
        while let Some((children, at)) = self.path.pop() {
            if at + 1 < children.len() {
                self.path.push((children, at + 1));
                self.descend(&children[at + 1].node, false);
                return;
            }
        }
        unreachable!("cursor moved past the last element");
    }

    /// Moves to the previous element; the caller knows there is one.
    fn backward(&mut self) {
        if self.pos > 0 {
            self.pos -= 1;
            return;
        }
        while let Some((children, at)) = self.path.pop() {
            if at > 0 {
                self.path.push((children, at - 1));
                self.descend(&children[at - 1].node, true);
                return;
            }
        }
        unreachable!("cursor moved before the first element");
    }
}

/// Elements of a rank range, both ways: O(log n) to start, O(1) amortized
/// per step.
pub struct Iter<'a> {
    set: &'a SortedSetBody,
    front: Option<Cursor<'a>>,
    back: Option<Cursor<'a>>,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let c = self.front.as_mut()?;
        let v = c.get(self.set);
        self.left -= 1;
        if self.left > 0 {
            c.forward();
        }
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let c = self.back.as_mut()?;
        let v = c.get(self.set);
        self.left -= 1;
        if self.left > 0 {
            c.backward();
        }
        Some(v)
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Freeing in slices (`shard/lazyfree.rs`, UNLINK of a big sorted set).
impl SortedSet {
    /// One allocation freed per `next()`: the tree's nodes (a leaf, or an
    /// inner node's child array once its children are set aside), then the
    /// members. The member table and the slab are single allocations, freed
    /// at the start and the end.
    pub fn into_drain(self) -> impl Iterator<Item = ()> + Send {
        let SortedSetBody { root, slab, free_ids, table, .. } = *self.0;
        drop((free_ids, table));
        NodeDrain { stack: vec![root] }.chain(slab.into_values().map(drop))
    }
}

/// Frees a tree node by node (`SortedSet::into_drain`).
struct NodeDrain {
    stack: Vec<Node>,
}

impl Iterator for NodeDrain {
    type Item = ();
    fn next(&mut self) -> Option<()> {
        match self.stack.pop()? {
            Node::Leaf(items) => drop(items),
            Node::Inner(children) => self.stack.extend(children.into_iter().map(|c| c.node)),
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashMap};

    /// A score ordered as Redis orders it (`<`, so -0 == 0); never NaN.
    #[derive(Clone, Copy, Debug)]
    struct OrderedScore(f64);
    impl PartialEq for OrderedScore {
        fn eq(&self, o: &Self) -> bool {
            self.0 == o.0
        }
    }
    impl Eq for OrderedScore {}
    impl PartialOrd for OrderedScore {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for OrderedScore {
        fn cmp(&self, o: &Self) -> Ordering {
            self.0.partial_cmp(&o.0).expect("no NaN")
        }
    }

    #[derive(Default)]
    struct Model {
        order: BTreeSet<(OrderedScore, Vec<u8>)>,
        scores: HashMap<Vec<u8>, f64>,
    }

    impl Model {
        fn insert(&mut self, m: &[u8], s: f64) -> Option<f64> {
            let old = self.remove(m);
            self.order.insert((OrderedScore(s), m.to_vec()));
            self.scores.insert(m.to_vec(), s);
            old
        }
        fn remove(&mut self, m: &[u8]) -> Option<f64> {
            let s = self.scores.remove(m)?;
            self.order.remove(&(OrderedScore(s), m.to_vec()));
            Some(s)
        }
        fn all(&self) -> Vec<(Vec<u8>, f64)> {
            self.order.iter().map(|(_, m)| (m.clone(), self.scores[m])).collect()
        }
    }

    fn all(z: &SortedSet) -> Vec<(Vec<u8>, f64)> {
        z.iter().map(|(m, s)| (m.to_vec(), s)).collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Vec<u8>, f64),
        Remove(Vec<u8>),
        RemoveRanks(usize, usize),
        /// `remove_rank_with` (ZPOPMIN / ZPOPMAX's removal by rank).
        PopRank(usize),
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u32..300).prop_map(|n| format!("m{}", n).into_bytes()),
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0u8), Just(255u8)], 0..4),
        ]
    }

    fn score() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => (-5i32..5).prop_map(f64::from),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(-0.0),
            2 => -1e6f64..1e6,
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (member(), score()).prop_map(|(m, s)| Op::Insert(m, s)),
            3 => member().prop_map(Op::Remove),
            1 => (0usize..400, 0usize..40).prop_map(|(a, n)| Op::RemoveRanks(a, n)),
            2 => (0usize..400).prop_map(Op::PopRank),
        ]
    }

    fn score_bound() -> impl Strategy<Value = ScoreBound> {
        (score(), any::<bool>()).prop_map(|(value, exclusive)| ScoreBound { value, exclusive })
    }

    fn lex_bound() -> impl Strategy<Value = LexBound> {
        prop_oneof![Just(LexBound::NegInf), Just(LexBound::PosInf), member().prop_map(LexBound::Inclusive), member().prop_map(LexBound::Exclusive),]
    }

    /// Checks every read against the model.
    fn check(z: &SortedSet, model: &Model, probes: &[Vec<u8>], ranges: &[(ScoreRange, LexBound, LexBound)]) {
        let want = model.all();
        assert_eq!(z.len(), want.len());
        let got = all(z);
        // Same members in the same order with bit-identical scores.
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0);
            assert_eq!(g.1.to_bits(), model.scores[&w.0].to_bits());
        }
        let mut back: Vec<_> = z.iter().rev().map(|(m, s)| (m.to_vec(), s)).collect();
        back.reverse();
        assert_eq!(back, got);
        for (r, (m, s)) in got.iter().enumerate() {
            assert_eq!(z.rank(m), Some(r));
            assert_eq!(z.rev_rank(m), Some(got.len() - 1 - r));
            assert_eq!(z.get_by_rank(r), Some((m.as_slice(), *s)));
            assert_eq!(z.score(m).map(f64::to_bits), Some(s.to_bits()));
        }
        assert_eq!(z.get_by_rank(got.len()), None);
        for p in probes {
            assert_eq!(z.score(p), model.scores.get(p).copied());
            assert_eq!(z.rank(p).is_some(), model.scores.contains_key(p));
        }
        for (sr, lmin, lmax) in ranges {
            let want: Vec<usize> = (0..got.len()).filter(|&i| sr.above_min(got[i].1) && sr.below_max(got[i].1)).collect();
            let r = z.score_range(sr);
            assert_eq!(r.clone().collect::<Vec<_>>(), want, "{:?}", sr);
            let sub: Vec<_> = z.range(r.clone()).map(|(m, _)| m.to_vec()).collect();
            assert_eq!(sub, want.iter().map(|&i| got[i].0.clone()).collect::<Vec<_>>());
            let sub_rev: Vec<_> = z.range(r).rev().map(|(m, _)| m.to_vec()).collect();
            assert!(sub_rev.iter().eq(sub.iter().rev()));
            // Lex ranges as Redis defines them: meaningful with one score,
            // so check them over the members whatever their scores only
            // when all scores are equal.
            if got.windows(2).all(|w| w[0].1 == w[1].1) {
                let want: Vec<usize> = (0..got.len()).filter(|&i| lmin.at_or_after(&got[i].0) && lmax.at_or_before(&got[i].0)).collect();
                assert_eq!(z.lex_range(lmin, lmax).collect::<Vec<_>>(), want);
            }
        }
    }

    fn run(ops: Vec<Op>, probes: Vec<Vec<u8>>, ranges: Vec<(ScoreRange, LexBound, LexBound)>, check_every: usize) {
        let mut z = SortedSet::new();
        let mut model = Model::default();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Insert(m, s) => {
                    let a = z.insert(&m, s).map(f64::to_bits);
                    let b = model.insert(&m, s).map(f64::to_bits);
                    assert_eq!(a, b);
                }
                Op::Remove(m) => assert_eq!(z.remove(&m).map(f64::to_bits), model.remove(&m).map(f64::to_bits)),
                Op::RemoveRanks(a, n) => {
                    let doomed: Vec<Vec<u8>> = model.all().into_iter().skip(a).take(n).map(|(m, _)| m).collect();
                    for m in &doomed {
                        model.remove(m);
                    }
                    assert_eq!(z.remove_ranks(a..a + n), doomed.len());
                }
                Op::PopRank(r) => {
                    let want = model.all().into_iter().nth(r);
                    if let Some((m, _)) = &want {
                        model.remove(m);
                    }
                    let got = z.remove_rank_with(r, |m, s| (m.to_vec(), s));
                    assert_eq!(got.map(|(m, s)| (m, s.to_bits())), want.map(|(m, s)| (m, s.to_bits())));
                }
            }
            if i % check_every == 0 {
                check(&z, &model, &probes, &ranges);
            }
        }
        check(&z, &model, &probes, &ranges);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn behaves_as_an_ordered_set(ops in proptest::collection::vec(op(), 0..1500),
                                     probes in proptest::collection::vec(member(), 0..8),
                                     ranges in proptest::collection::vec((score_bound(), score_bound(), lex_bound(), lex_bound()), 0..6)) {
            let ranges = ranges.into_iter().map(|(min, max, a, b)| (ScoreRange { min, max }, a, b)).collect();
            run(ops, probes, ranges, 97);
        }

        #[test]
        fn lex_ranges_with_one_score(members in proptest::collection::vec(member(), 0..300),
                                     bounds in proptest::collection::vec((lex_bound(), lex_bound()), 1..8)) {
            let mut z = SortedSet::new();
            for m in &members {
                z.insert(m, 0.0);
            }
            let got = all(&z);
            for (min, max) in bounds {
                let want: Vec<usize> = (0..got.len()).filter(|&i| min.at_or_after(&got[i].0) && max.at_or_before(&got[i].0)).collect();
                prop_assert_eq!(z.lex_range(&min, &max).collect::<Vec<_>>(), want);
            }
        }
    }

    #[test]
    fn deep_trees_shrink_back() {
        // Enough members for three levels (64 x 64 < 10k), then removed in
        // an order that empties leaves in the middle and at both ends.
        let mut z = SortedSet::new();
        let mut model = Model::default();
        for i in 0..10_000u32 {
            let m = format!("k{}", i.wrapping_mul(2_654_435_761) % 10_000).into_bytes();
            let s = f64::from(i % 7);
            assert_eq!(z.insert(&m, s), model.insert(&m, s));
        }
        check(&z, &model, &[], &[]);
        for i in (0..10_000u32).filter(|i| i % 3 != 0) {
            let m = format!("k{}", i).into_bytes();
            assert_eq!(z.remove(&m), model.remove(&m));
        }
        check(&z, &model, &[], &[]);
        // Popped by rank from both ends and the middle, as ZPOPMIN/ZPOPMAX
        // do, down to a third, each level's counts kept.
        for i in 0..2_000usize {
            let all = model.all();
            let r = [0, all.len() - 1, all.len() / 2][i % 3];
            let (m, s) = all[r].clone();
            model.remove(&m);
            assert_eq!(z.remove_rank_with(r, |m, s| (m.to_vec(), s)), Some((m, s)));
        }
        check(&z, &model, &[], &[]);
        assert_eq!(z.remove_ranks(0..usize::MAX), model.scores.len());
        assert!(z.is_empty() && z.iter().next().is_none());
    }

    #[test]
    fn negative_zero_ties_with_zero_and_updates_in_place() {
        let mut z = SortedSet::new();
        z.insert(b"b", 0.0);
        z.insert(b"a", -0.0);
        z.insert(b"c", 0.0);
        assert_eq!(all(&z).iter().map(|x| x.0.clone()).collect::<Vec<_>>(), [b"a", b"b", b"c"]);
        assert_eq!(z.insert(b"a", 0.0).map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(z.score(b"a").map(f64::to_bits), Some(0.0f64.to_bits()));
        let all_zero = ScoreRange { min: ScoreBound { value: 0.0, exclusive: false }, max: ScoreBound { value: -0.0, exclusive: false } };
        assert_eq!(z.score_range(&all_zero), 0..3);
        let none = ScoreRange { min: ScoreBound { value: 0.0, exclusive: true }, max: ScoreBound { value: f64::INFINITY, exclusive: false } };
        assert_eq!(z.score_range(&none), 3..3);
    }

    #[test]
    fn scan_returns_every_member_present_throughout() {
        let mut z = SortedSet::new();
        for i in 0..1000u32 {
            z.insert(format!("m{}", i).as_bytes(), f64::from(i));
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = z.scan(cursor, 7, |m, _| {
                seen.insert(m.to_vec());
            });
            // Between calls: removals of members not kept (m1000..) and of
            // some kept ones are not allowed, so remove only new ones, add
            // new ones, and move scores of kept ones (which reorders ranks).
            step += 1;
            z.insert(format!("new{}", step).as_bytes(), -f64::from(step));
            if step.is_multiple_of(3) {
                z.remove(format!("new{}", step - 1).as_bytes());
            }
            z.insert(format!("m{}", (step * 37) % 1000).as_bytes(), -1e9 - f64::from(step));
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000u32 {
            assert!(seen.contains(format!("m{}", i).as_bytes()), "m{} missed", i);
        }
    }

    #[test]
    fn lex_bounds_parse_as_redis() {
        assert_eq!(LexBound::parse(b"-"), Some(LexBound::NegInf));
        assert_eq!(LexBound::parse(b"+"), Some(LexBound::PosInf));
        assert_eq!(LexBound::parse(b"[a"), Some(LexBound::Inclusive(b"a".to_vec())));
        assert_eq!(LexBound::parse(b"("), Some(LexBound::Exclusive(vec![])));
        assert_eq!(LexBound::parse(b"a"), None);
        assert_eq!(LexBound::parse(b"+a"), None);
        assert_eq!(LexBound::parse(b""), None);
    }
}
