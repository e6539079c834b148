//! A hash value: a listpack of field, value pairs while small (Redis 7.0's
//! `listpack` encoding, in its byte layout: HGETALL order, the RDB object
//! and the DUMP payload come with it), a hash table past
//! `hash-max-listpack-entries` / `hash-max-listpack-value` (`hashtable`).
//!
//! The table is `types/indexed.rs`'s: `Pair`s in dense positions beside an
//! index of positions, so HRANDFIELD samples in O(1) and HSCAN walks a
//! position cursor from high to low, which keeps Redis's guarantee (a field
//! present for the whole scan is returned at least once): a removal moves
//! only the last, already visited, entry into the hole, and growth appends
//! behind the cursor. The index gives addresses to prefetch
//! (`Table::prefetch`, a pipelined batch's HSETs and HGETs).

use super::indexed::Indexed;
use super::listpack::{Entry, Listpack};
use super::member_index::Found;
use super::pair::Pair;

pub use super::indexed::Hasher;

/// The `hashtable` encoding (`types/indexed.rs`) of `Pair`s: field and
/// value in one allocation, found by field.
pub type Table = Indexed<Pair>;

impl Indexed<Pair> {
    #[inline]
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.position(field).map(|p| self.entries()[p].value())
    }
    #[inline]
    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.contains(field)
    }
    /// The pair at position `i`.
    #[inline]
    pub fn get_index(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.at(i).map(|p| (p.field(), p.value()))
    }
    /// The pairs in position order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + ExactSizeIterator {
        self.entries().iter().map(|p| (p.field(), p.value()))
    }
    /// Sets `field` to `value`, in place when present (its position kept);
    /// true when the field is new. One hash and one probe either way: an
    /// absent field's probe ends at the bucket it goes in.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        let h = self.hash(field);
        match self.find(field, h) {
            Found::At { pos, .. } => {
                // A value of the old value's length (redis-benchmark's HSET)
                // is overwritten in place: no new pair and no free.
                let p = self.at_mut(pos);
                if !p.overwrite_value(value) {
                    *p = Pair::new(field, value);
                }
                false
            }
            Found::Absent(at) => {
                self.push_new(h, at, Pair::new(field, value));
                true
            }
        }
    }
}

#[derive(Clone, Debug)]
pub enum Hash {
    Listpack(Listpack),
    Table(Table),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Listpack(Listpack::new())
    }
}

impl Hash {
    pub fn len(&self) -> usize {
        match self {
            Hash::Listpack(lp) => lp.len() / 2,
            Hash::Table(t) => t.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// OBJECT ENCODING's word.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Listpack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }
    /// The field, value pairs in the encoding's order (a listpack's is
    /// insertion order, as Redis's).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (Entry<'_>, Entry<'_>)> + '_> {
        match self {
            Hash::Listpack(lp) => Box::new(lp.pairs()),
            Hash::Table(t) => Box::new(t.iter().map(|(f, v)| (Entry::Str(f), Entry::Str(v)))),
        }
    }
}

/// `hash-max-listpack-entries` and `hash-max-listpack-value`, the points
/// where a listpack becomes a table (never back, as in Redis).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub entries_max: usize,
    pub value_bytes_max: usize,
}

/// Where HSCAN goes on: the field, value pairs of one call and the next
/// cursor (0: done).
pub struct ScanPage<'a> {
    pub pairs: Vec<(Entry<'a>, Entry<'a>)>,
    pub cursor: u64,
}

impl Hash {
    /// True once per resize (growth or shrink) of a hash table's index, after the write
    /// that started it (`Indexed::take_rehash_start`).
    #[inline]
    pub fn take_rehash_start(&mut self) -> bool {
        match self {
            Hash::Table(t) => t.take_rehash_start(),
            Hash::Listpack(_) => false,
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<Entry<'_>> {
        match self {
            Hash::Listpack(lp) => lp.find_field(field).map(|(_, v)| lp.get(v)),
            Hash::Table(t) => t.get(field).map(Entry::Str),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(lp) => lp.find_field(field).is_some(),
            Hash::Table(t) => t.contains_key(field),
        }
    }

    /// Redis's `hashTypeTryConversion` before a write of `args` (fields and
    /// values): a listpack becomes a table when one of them is longer than
    /// `hash-max-listpack-value` or when together they would take it past
    /// the listpack's 1 GiB limit. The count is checked after the writes
    /// (`set`), so repeated fields do not convert.
    pub fn convert_for(&mut self, args: &[&[u8]], limits: Limits) {
        let Hash::Listpack(lp) = self else { return };
        let mut sum = 0usize;
        for a in args {
            if a.len() > limits.value_bytes_max {
                return self.convert();
            }
            sum += a.len();
        }
        if !lp.safe_to_add(sum) {
            self.convert();
        }
    }

    /// Redis's `hashTypeConvert` to `hashtable`, pairs taken in listpack order.
    pub fn convert(&mut self) {
        if let Hash::Listpack(lp) = self {
            let mut t = Table::with_capacity_and_hasher(lp.len() / 2, Hasher::default());
            for (f, v) in lp.pairs() {
                t.insert(&f.to_vec(), &v.to_vec());
            }
            *self = Hash::Table(t);
        }
    }

    /// Redis's `hashTypeSet`: sets `field` to `value`; true when the field
    /// is new. A listpack past `hash-max-listpack-entries`, or given a field
    /// or value past `hash-max-listpack-value`, becomes a table.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        if matches!(self, Hash::Listpack(_)) && (field.len() > limits.value_bytes_max || value.len() > limits.value_bytes_max) {
            self.convert();
        }
        match self {
            Hash::Listpack(lp) => {
                let new = match lp.find_field(field) {
                    Some((_, v)) => {
                        lp.replace(v, Entry::Str(value));
                        false
                    }
                    None => {
                        lp.append(Entry::Str(field));
                        lp.append(Entry::Str(value));
                        true
                    }
                };
                if lp.len() / 2 > limits.entries_max {
                    self.convert();
                }
                new
            }
            Hash::Table(t) => t.insert(field, value),
        }
    }

    /// Removes `field`; true when it was there. A table's removal moves the
    /// last entry into the hole (see the module: HSCAN relies on it).
    pub fn delete(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Listpack(lp) => match lp.find_field(field) {
                Some((f, _)) => {
                    lp.delete_at(f, 2);
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.swap_remove(field),
        }
    }

    /// The pair at `index` (0..len) in encoding order: O(1) for a table,
    /// a walk for a listpack.
    pub fn pair_at(&self, index: usize) -> Option<(Entry<'_>, Entry<'_>)> {
        match self {
            Hash::Listpack(lp) => {
                let f = lp.seek(i64::try_from(index.checked_mul(2)?).ok()?)?;
                Some((lp.get(f), lp.get(lp.next(f)?)))
            }
            Hash::Table(t) => t.get_index(index).map(|(f, v)| (Entry::Str(f), Entry::Str(v))),
        }
    }

    /// One HSCAN step from `cursor` over about `count` entries. A listpack
    /// is returned whole with cursor 0, as Redis does. A table is walked by
    /// position from high to low: the cursor is the number of positions
    /// left to visit (0 on the first call: all of them), so a field present
    /// for the whole scan is returned at least once whatever is added (it
    /// lands behind the cursor) or removed (only an already visited entry
    /// moves down) in between.
    pub fn scan(&self, cursor: u64, count: usize) -> ScanPage<'_> {
        match self {
            Hash::Listpack(lp) => ScanPage { pairs: lp.pairs().collect(), cursor: 0 },
            Hash::Table(t) => {
                let mut left = if cursor == 0 { t.len() } else { usize::try_from(cursor).unwrap_or(usize::MAX).min(t.len()) };
                let stop = left.saturating_sub(count.max(1));
                let mut pairs = Vec::with_capacity(left - stop);
                while left > stop {
                    left -= 1;
                    let (f, v) = t.get_index(left).expect("position below len");
                    pairs.push((Entry::Str(f), Entry::Str(v)));
                }
                ScanPage { pairs, cursor: left as u64 }
            }
        }
    }

    /// Gives a listpack's spare capacity back after a command's writes:
    /// Redis reallocates a listpack to its exact size on every change, and
    /// a `Vec` grown by doubling would otherwise keep up to half again.
    pub fn shrink_to_fit(&mut self) {
        if let Hash::Listpack(lp) = self {
            lp.shrink_to_fit();
        }
    }

    /// Bytes of `field`'s value as a string (HSTRLEN): an integer counts
    /// its decimal digits.
    pub fn value_len(&self, field: &[u8]) -> usize {
        match self.get(field) {
            Some(Entry::Str(s)) => s.len(),
            Some(Entry::Int(v)) => itoa::Buffer::new().format(v).len(),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { entries_max: 4, value_bytes_max: 8 };

    #[test]
    fn listpack_until_the_entry_count_passes_the_limit() {
        let mut h = Hash::default();
        for i in 0..4 {
            assert!(h.set(format!("f{i}").as_bytes(), b"v", LIMITS));
        }
        assert_eq!(h.encoding(), "listpack");
        // Rewriting an existing field adds nothing.
        assert!(!h.set(b"f0", b"w", LIMITS));
        assert_eq!(h.encoding(), "listpack");
        assert!(h.set(b"f4", b"v", LIMITS));
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(b"f0"), Some(Entry::Str(b"w")));
        // Never back to a listpack.
        assert!(h.delete(b"f4") && h.delete(b"f3"));
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn a_long_field_or_value_converts() {
        let mut h = Hash::default();
        h.set(b"f", b"12345678", LIMITS);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f", b"123456789", LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::default();
        h.set(b"f", b"v", LIMITS);
        h.convert_for(&[b"123456789", b"v"], LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::default();
        h.convert_for(&[b"12345678", b"v"], LIMITS);
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn conversion_keeps_listpack_order_and_integers_read_as_text() {
        let mut h = Hash::default();
        for (f, v) in [("b", "1"), ("a", "x"), ("c", "-12")] {
            h.set(f.as_bytes(), v.as_bytes(), LIMITS);
        }
        assert_eq!(h.value_len(b"c"), 3);
        let before: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        h.convert();
        let after: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(before, after);
        assert_eq!(h.value_len(b"c"), 3);
        assert_eq!(h.pair_at(1).map(|(f, _)| f.to_vec()), Some(b"a".to_vec()));
    }

    #[test]
    fn big_table_behaves_like_a_map() {
        let (mut model, mut t) = (std::collections::BTreeMap::new(), Table::default());
        for i in 0..6000u32 {
            let f = format!("field:{:010}", i * 7 % 5003);
            // Values of varying length: some overwritten in place, some not.
            let v = "x".repeat((i % 3) as usize + 1);
            assert_eq!(t.insert(f.as_bytes(), v.as_bytes()), model.insert(f.clone(), v.clone()).is_none());
            assert_eq!(t.get(f.as_bytes()), Some(v.as_bytes()));
        }
        let probe: Vec<Vec<u8>> = (0..20).map(|i| format!("field:{:010}", i * 13).into_bytes()).collect();
        t.prefetch(&probe.iter().map(|m| &m[..]).collect::<Vec<_>>());
        for i in (0..5003u32).step_by(3) {
            let f = format!("field:{:010}", i);
            assert_eq!(t.swap_remove(f.as_bytes()), model.remove(&f).is_some());
            assert!(!t.contains_key(f.as_bytes()));
        }
        assert_eq!(t.len(), model.len());
        for (f, v) in &model {
            assert_eq!(t.get(f.as_bytes()), Some(v.as_bytes()));
        }
        let mut got: Vec<(Vec<u8>, Vec<u8>)> = t.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        got.sort();
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(f, v)| (f.clone().into_bytes(), v.clone().into_bytes())).collect();
        want.sort();
        assert_eq!(got, want);
        for i in [0, t.len() / 2, t.len() - 1] {
            let (f, v) = t.get_index(i).expect("in range");
            assert_eq!(model.get(std::str::from_utf8(f).unwrap()).map(|v| v.as_bytes()), Some(v));
        }
        assert_eq!(t.get_index(t.len()), None);
        while let Some(p) = t.swap_remove_index(0) {
            assert!(model.remove(std::str::from_utf8(p.field()).unwrap()).is_some());
        }
        assert!(model.is_empty() && t.is_empty() && t.table_bytes() == 0);
        assert!(t.insert(b"again", b"v") && t.get(b"again") == Some(&b"v"[..]));
    }

    #[test]
    fn table_scan_returns_every_stable_field_across_growth_and_removal() {
        let mut h = Hash::default();
        let big = Limits { entries_max: 0, value_bytes_max: 64 };
        for i in 0..100 {
            h.set(format!("f{i}").as_bytes(), b"v", big);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let page = h.scan(cursor, 7);
            seen.extend(page.pairs.iter().map(|(f, _)| f.to_vec()));
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
            // Churn: remove a field that is not stable, add new ones.
            round += 1;
            h.delete(format!("f{}", 90 + round % 10).as_bytes());
            h.set(format!("new{round}").as_bytes(), b"v", big);
        }
        for i in 0..90 {
            assert!(seen.contains(format!("f{i}").as_bytes()), "f{i} missed");
        }
    }
}
