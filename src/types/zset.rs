//! A sorted-set value, Redis 7.0's two encodings: a listpack of member,
//! score pairs in score order while small (`listpack`, up to
//! `zset-max-listpack-entries` / `zset-max-listpack-value`), the ordered
//! tree of `zset_tree.rs` past that (`skiplist`, the word Redis answers for
//! its big encoding).

use std::cmp::Ordering;
use std::ops::Range;

use super::listpack::{Entry, Listpack, Where};
use super::zset_tree::{LexBound, ScoreRange, SortedSet};

#[derive(Clone, Debug)]
pub enum ZSet {
    Listpack(Listpack),
    Tree(SortedSet),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Listpack(Listpack::new())
    }
}

/// A listpack score entry as a double (scores are stored as integers when
/// they are integral and as text otherwise, as Redis's `zzlGetScore`).
pub fn entry_score(e: Entry<'_>) -> f64 {
    match e {
        Entry::Int(v) => v as f64,
        // The scores ringkv writes parse whole; any other text is read as
        // Redis reads it (a number prefix, else 0).
        Entry::Str(s) => std::str::from_utf8(s).ok().and_then(|t| t.parse().ok()).unwrap_or_else(|| crate::commands::zset::score::listpack_text(s)),
    }
}

impl ZSet {
    pub fn len(&self) -> usize {
        match self {
            ZSet::Listpack(lp) => lp.len() / 2,
            ZSet::Tree(t) => t.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// OBJECT ENCODING's word.
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Listpack(_) => "listpack",
            ZSet::Tree(_) => "skiplist",
        }
    }
    /// Member, score pairs, lowest score first.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (Entry<'_>, f64)> + '_> {
        match self {
            ZSet::Listpack(lp) => Box::new(lp.pairs().map(|(m, s)| (m, entry_score(s)))),
            ZSet::Tree(t) => Box::new(t.iter().map(|(m, s)| (Entry::Str(m), s))),
        }
    }
}

/// The thresholds of the small encoding (`zset-max-listpack-entries`,
/// `zset-max-listpack-value`), as the command reads them from its config.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub entries: usize,
    pub value: usize,
}

/// A score as Redis 7.0 writes it into a listpack (`zzlInsertAt`):
/// integral values within +-2^62 as integers (`double2ll`: the bound is
/// `LLONG_MAX/2` as a double; -0 too is stored as `0`, and reads back as 0),
/// else `d2string`: `inf`/`-inf`, `%.17g`. ZSCAN of a listpack shows this
/// text (123456789012345678 gives "123456789012345680").
pub fn score_text(v: f64) -> Vec<u8> {
    if v.is_nan() {
        return b"nan".to_vec();
    }
    if v.is_infinite() {
        return if v > 0.0 { b"inf".to_vec() } else { b"-inf".to_vec() };
    }
    const BOUND: f64 = (i64::MAX / 2) as f64;
    if (-BOUND..=BOUND).contains(&v) && v == (v as i64) as f64 {
        return itoa::Buffer::new().format(v as i64).as_bytes().to_vec();
    }
    crate::protocol::reply::format_g17(v).into_bytes()
}

/// Compares a stored member with `s` as Redis's `zzlCompareElements`
/// (integers as their decimal text, then memcmp and length).
fn entry_cmp(e: Entry<'_>, s: &[u8]) -> Ordering {
    match e {
        Entry::Str(m) => m.cmp(s),
        Entry::Int(v) => itoa::Buffer::new().format(v).as_bytes().cmp(s),
    }
}

/// `(member offset, score)` of `member` in a zset listpack (`zzlFind`).
fn lp_find(lp: &Listpack, member: &[u8]) -> Option<(usize, f64)> {
    let (m, s) = lp.find_field(member)?;
    Some((m, entry_score(lp.get(s))))
}

/// Inserts a new member at its place in score order (`zzlInsert`): before
/// the first element with a higher score, or an equal score and a greater
/// member.
fn lp_insert(lp: &mut Listpack, member: &[u8], score: f64) {
    let mut at = lp.first();
    while let Some(m) = at {
        let s_off = lp.next(m).expect("a zset listpack holds pairs");
        let s = entry_score(lp.get(s_off));
        if s > score || (s == score && entry_cmp(lp.get(m), member) == Ordering::Greater) {
            break;
        }
        at = lp.next(s_off);
    }
    let text = score_text(score);
    match at {
        Some(m) => {
            let m = lp.insert(m, Where::Before, Entry::Str(member));
            lp.insert(m, Where::After, Entry::Str(&text));
        }
        None => {
            lp.append(Entry::Str(member));
            lp.append(Entry::Str(&text));
        }
    }
}

/// What `ZSet::add` did (Redis's ZADD_OUT_* flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// A new member.
    Added,
    /// An existing member moved to a new score.
    Updated,
    /// An existing member kept its score (same score, or refused by GT/LT).
    Unchanged,
    /// Nothing done (NX on an existing member, XX on a missing one, GT/LT).
    Nop,
    /// The increment made the score NaN: nothing changed.
    Nan,
}

/// ZADD's conditions (`ZADD_IN_*`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AddFlags {
    pub incr: bool,
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

/// Elements of a rank range of a listpack zset, either way.
struct LpRange<'a> {
    lp: &'a Listpack,
    at: Option<usize>,
    left: usize,
    rev: bool,
}

impl<'a> Iterator for LpRange<'a> {
    type Item = (Entry<'a>, f64);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let m = self.at?;
        let s = self.lp.next(m).expect("a zset listpack holds pairs");
        self.left -= 1;
        self.at = if self.left == 0 {
            None
        } else if self.rev {
            self.lp.prev(m).and_then(|p| self.lp.prev(p))
        } else {
            self.lp.next(s)
        };
        Some((self.lp.get(m), entry_score(self.lp.get(s))))
    }
}

impl ZSet {
    /// A sorted set built from elements in (score, member) order, in the
    /// encoding Redis gives a stored result (`zsetConvertToListpackIfNeeded`
    /// for ZUNIONSTORE and friends, the sizing of ZRANGESTORE): a listpack
    /// when it is short enough and every member fits.
    pub fn from_sorted(elements: &[(&[u8], f64)], limits: Limits) -> ZSet {
        if elements.len() <= limits.entries && elements.iter().all(|(m, _)| m.len() <= limits.value) {
            let mut lp = Listpack::new();
            for (m, s) in elements {
                lp.append(Entry::Str(m));
                lp.append(Entry::Str(&score_text(*s)));
            }
            lp.shrink_to_fit();
            return ZSet::Listpack(lp);
        }
        let mut t = SortedSet::new();
        for (m, s) in elements {
            t.insert(m, *s);
        }
        ZSet::Tree(t)
    }

    /// Gives a listpack's spare capacity back after a write (see
    /// `Listpack::shrink_to_fit`); a no-op for the tree.
    pub fn compact(&mut self) {
        if let ZSet::Listpack(lp) = self {
            lp.shrink_to_fit();
        }
    }

    /// The member's score (`zsetScore`).
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Listpack(lp) => lp_find(lp, member).map(|(_, s)| s),
            ZSet::Tree(t) => t.score(member),
        }
    }

    /// Converts to the big encoding (`zsetConvert`).
    pub fn convert_to_tree(&mut self) {
        if let ZSet::Listpack(lp) = self {
            let mut t = SortedSet::new();
            for (m, s) in lp.pairs() {
                let s = entry_score(s);
                match m {
                    Entry::Str(b) => t.insert(b, s),
                    Entry::Int(v) => t.insert(itoa::Buffer::new().format(v).as_bytes(), s),
                };
            }
            *self = ZSet::Tree(t);
        }
    }

    /// Redis's `zsetAdd`: adds `member` or changes its score under
    /// `flags`, converting to the big encoding when a new member would not
    /// fit the limits. Returns what happened and the member's score after.
    pub fn add(&mut self, member: &[u8], score: f64, flags: AddFlags, limits: Limits) -> (Added, f64) {
        if score.is_nan() {
            return (Added::Nan, score);
        }
        let current = self.score(member);
        if let Some(cur) = current {
            if flags.nx {
                return (Added::Nop, cur);
            }
            let mut score = score;
            if flags.incr {
                score += cur;
                if score.is_nan() {
                    return (Added::Nan, score);
                }
            }
            if (flags.lt && score >= cur) || (flags.gt && score <= cur) {
                return (Added::Nop, cur);
            }
            if score == cur {
                return (Added::Unchanged, score);
            }
            match self {
                ZSet::Listpack(lp) => {
                    let (m, _) = lp_find(lp, member).expect("found above");
                    lp.delete_at(m, 2);
                    lp_insert(lp, member, score);
                }
                ZSet::Tree(t) => {
                    t.insert(member, score);
                }
            }
            return (Added::Updated, score);
        }
        if flags.xx {
            return (Added::Nop, score);
        }
        if let ZSet::Listpack(lp) = self {
            if lp.len() / 2 + 1 > limits.entries || member.len() > limits.value || !lp.safe_to_add(member.len()) {
                self.convert_to_tree();
            }
        }
        match self {
            ZSet::Listpack(lp) => lp_insert(lp, member, score),
            ZSet::Tree(t) => {
                t.insert(member, score);
            }
        }
        (Added::Added, score)
    }

    /// Removes `member` (`zsetDel`); returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Listpack(lp) => {
                let (m, s) = lp_find(lp, member)?;
                lp.delete_at(m, 2);
                Some(s)
            }
            ZSet::Tree(t) => t.remove(member),
        }
    }

    /// 0-based rank of `member` from the lowest (from the highest with
    /// `rev`), with its score (`zsetRank`).
    pub fn rank(&self, member: &[u8], rev: bool) -> Option<usize> {
        let r = match self {
            ZSet::Listpack(lp) => lp.pairs().position(|(m, _)| m.eq_bytes(member))?,
            ZSet::Tree(t) => t.rank(member)?,
        };
        Some(if rev { self.len() - 1 - r } else { r })
    }

    /// Ranks of the elements whose scores are inside `range`.
    pub fn score_range(&self, range: &ScoreRange) -> Range<usize> {
        match self {
            ZSet::Listpack(lp) => {
                let scores = || lp.pairs().map(|(_, s)| entry_score(s));
                let start = scores().take_while(|&s| !range.above_min(s)).count();
                let end = scores().take_while(|&s| range.below_max(s)).count();
                start..end.max(start)
            }
            ZSet::Tree(t) => t.score_range(range),
        }
    }

    /// Ranks of the elements between two lex bounds (meaningful when all
    /// scores are equal, as in Redis).
    pub fn lex_range(&self, min: &LexBound, max: &LexBound) -> Range<usize> {
        match self {
            ZSet::Listpack(lp) => {
                let mut buf = itoa::Buffer::new();
                let mut start = 0;
                let mut end = 0;
                let mut counting_start = true;
                for (m, _) in lp.pairs() {
                    let bytes: &[u8] = match m {
                        Entry::Str(b) => b,
                        Entry::Int(v) => buf.format(v).as_bytes(),
                    };
                    if counting_start && !min.at_or_after(bytes) {
                        start += 1;
                    } else {
                        counting_start = false;
                    }
                    if max.at_or_before(bytes) {
                        end += 1;
                    } else {
                        break;
                    }
                }
                start..end.max(start)
            }
            ZSet::Tree(t) => t.lex_range(min, max),
        }
    }

    /// For a listpack, the ranks a lex range selects walked the way Redis
    /// walks a listpack (`zzlIsInLexRange`, then `zzlFirstInLexRange`, or
    /// `zzlLastInLexRange` for REV; the LIMIT offset skipped without a range
    /// check; elements taken while the far bound holds, at most `limit`).
    /// With equal scores that is `lex_range` cut by the LIMIT; with mixed
    /// scores (members out of lex order) it is Redis's answer, which the
    /// rank arithmetic is not. None for the tree encoding, where Redis's
    /// answer over mixed scores depends on its skiplist's random levels.
    pub fn listpack_lex_walk(&self, min: &LexBound, max: &LexBound, rev: bool, offset: usize, limit: usize) -> Option<Range<usize>> {
        let ZSet::Listpack(lp) = self else { return None };
        let members: Vec<Entry<'_>> = lp.pairs().map(|(m, _)| m).collect();
        let n = members.len();
        let mut buf = itoa::Buffer::new();
        let mut test = |i: usize, bound: &LexBound, as_min: bool| {
            let bytes: &[u8] = match members[i] {
                Entry::Str(b) => b,
                Entry::Int(v) => buf.format(v).as_bytes(),
            };
            if as_min {
                bound.at_or_after(bytes)
            } else {
                bound.at_or_before(bytes)
            }
        };
        if n == 0 || lex_bounds_empty(min, max) || !test(n - 1, min, true) || !test(0, max, false) {
            return Some(0..0);
        }
        if !rev {
            let Some(first) = (0..n).find(|&i| test(i, min, true)) else { return Some(0..0) };
            if !test(first, max, false) {
                return Some(0..0);
            }
            let start = first.saturating_add(offset).min(n);
            let mut end = start;
            while end < n && end - start < limit && test(end, max, false) {
                end += 1;
            }
            Some(start..end)
        } else {
            let Some(last) = (0..n).rev().find(|&i| test(i, max, false)) else { return Some(0..0) };
            if !test(last, min, true) || offset > last {
                return Some(0..0);
            }
            let end = last - offset + 1;
            let mut start = end;
            while start > 0 && end - start < limit && test(start - 1, min, true) {
                start -= 1;
            }
            Some(start..end)
        }
    }

    /// The elements at ranks `ranks` (clamped), lowest first, or from the
    /// last of them down with `rev`.
    pub fn range(&self, ranks: Range<usize>, rev: bool) -> Box<dyn Iterator<Item = (Entry<'_>, f64)> + '_> {
        let end = ranks.end.min(self.len());
        let start = ranks.start.min(end);
        match self {
            ZSet::Listpack(lp) => {
                let first = if start == end {
                    None
                } else if rev {
                    lp.seek(2 * (end as i64 - 1))
                } else {
                    lp.seek(2 * start as i64)
                };
                Box::new(LpRange { lp, at: first, left: end - start, rev })
            }
            ZSet::Tree(t) => {
                let it = t.range(start..end).map(|(m, s)| (Entry::Str(m), s));
                if rev {
                    Box::new(it.rev())
                } else {
                    Box::new(it)
                }
            }
        }
    }

    /// Removes the lowest element (the highest with `max`) after `f` saw
    /// it where it lies: ZPOPMIN/ZPOPMAX's reply is written from the stored
    /// member, with no copy and no second lookup of it. None when empty.
    pub fn pop_with<R>(&mut self, max: bool, f: impl FnOnce(Entry<'_>, f64) -> R) -> Option<R> {
        match self {
            ZSet::Listpack(lp) => {
                let m = if max { lp.seek(-2) } else { lp.first() }?;
                let s = lp.next(m).expect("a score after each member");
                let out = f(lp.get(m), entry_score(lp.get(s)));
                lp.delete_at(m, 2);
                Some(out)
            }
            ZSet::Tree(t) => {
                let rank = if max { t.len().checked_sub(1)? } else { 0 };
                let out = t.remove_rank_with(rank, |m, s| f(Entry::Str(m), s));
                t.prefetch_end(max);
                out
            }
        }
    }

    /// Removes the elements at ranks `ranks` (clamped); returns how many went.
    pub fn remove_ranks(&mut self, ranks: Range<usize>) -> usize {
        let end = ranks.end.min(self.len());
        let start = ranks.start.min(end);
        match self {
            ZSet::Listpack(lp) => {
                lp.delete_range(2 * start as i64, 2 * (end - start));
                end - start
            }
            ZSet::Tree(t) => t.remove_ranks(start..end),
        }
    }
}

/// Whether `min` lies past `max`, or on it with either side exclusive
/// (`sdscmplex` in `zzlIsInLexRange`: '-' and '+' count as exclusive).
fn lex_bounds_empty(min: &LexBound, max: &LexBound) -> bool {
    fn key(b: &LexBound) -> (u8, &[u8], bool) {
        match b {
            LexBound::NegInf => (0, &[], true),
            LexBound::Inclusive(m) => (1, m, false),
            LexBound::Exclusive(m) => (1, m, true),
            LexBound::PosInf => (2, &[], true),
        }
    }
    let (a, b) = (key(min), key(max));
    match (a.0, &a.1).cmp(&(b.0, &b.1)) {
        Ordering::Greater => true,
        Ordering::Equal => a.2 || b.2,
        Ordering::Less => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zset_is_small_whatever_its_encoding() {
        // The box a Value holds for a listpack sorted set: see SortedSet.
        assert!(std::mem::size_of::<ZSet>() <= 32);
    }

    #[test]
    fn listpack_scores_are_written_as_redis_7_0_writes_them() {
        assert_eq!(score_text(-0.0), b"0");
        assert_eq!(score_text(3.0), b"3");
        assert_eq!(score_text(0.1), b"0.10000000000000001");
        assert_eq!(score_text(f64::NEG_INFINITY), b"-inf");
        assert_eq!(score_text(1e300), b"1.0000000000000001e+300");
        assert_eq!(score_text(4_503_599_627_370_496.0), b"4503599627370496");
        // double2ll's range, +-2^62 (redis-server 7.0.15's ZSCAN of a listpack)
        assert_eq!(score_text(123456789012345678.0), b"123456789012345680");
        assert_eq!(score_text(4611686018427387904.0), b"4611686018427387904");
        assert_eq!(score_text(-4611686018427387904.0), b"-4611686018427387904");
        assert_eq!(score_text(4611686018427388928.0), b"4.6116860184273889e+18");
        assert_eq!(score_text(-4611686018427388928.0), b"-4.6116860184273889e+18");
    }

    #[test]
    fn pop_with_takes_the_lowest_or_highest_in_both_encodings() {
        for limits in [Limits { entries: 128, value: 64 }, Limits { entries: 0, value: 0 }] {
            let mut z = ZSet::default();
            for (m, s) in [("c", 3.0), ("a", 1.0), ("b", 1.0), ("17", 0.5), ("d", 4.0)] {
                z.add(m.as_bytes(), s, AddFlags::default(), limits);
            }
            let mut popped = Vec::new();
            while let Some(p) = z.pop_with(popped.len() % 2 == 1, |m, s| (m.to_vec(), s)) {
                popped.push(p);
            }
            let want: Vec<(Vec<u8>, f64)> =
                [("17", 0.5), ("d", 4.0), ("a", 1.0), ("c", 3.0), ("b", 1.0)].iter().map(|(m, s)| (m.as_bytes().to_vec(), *s)).collect();
            assert_eq!(popped, want, "{}", z.encoding());
            assert!(z.is_empty() && z.score(b"a").is_none());
        }
    }

    #[test]
    fn converts_at_the_limits_and_keeps_order() {
        let limits = Limits { entries: 3, value: 4 };
        let mut z = ZSet::default();
        for (m, s) in [("c", 3.0), ("a", 1.0), ("b", 1.0)] {
            assert_eq!(z.add(m.as_bytes(), s, AddFlags::default(), limits).0, Added::Added);
        }
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(z.add(b"a", 1.0, AddFlags::default(), limits).0, Added::Unchanged);
        assert_eq!(z.add(b"a", 5.0, AddFlags { gt: true, ..AddFlags::default() }, limits), (Added::Updated, 5.0));
        assert_eq!(z.add(b"d", 0.0, AddFlags::default(), limits).0, Added::Added);
        assert_eq!(z.encoding(), "skiplist");
        let order: Vec<Vec<u8>> = z.iter().map(|(m, _)| m.to_vec()).collect();
        assert_eq!(order, [&b"d"[..], b"b", b"c", b"a"]);
        let mut long = ZSet::default();
        long.add(b"12345", 1.0, AddFlags::default(), limits);
        assert_eq!(long.encoding(), "skiplist");
    }
}
