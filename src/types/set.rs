//! A set value, Redis 7.0's two encodings: an intset while every member is
//! an integer and there are at most `set-max-intset-entries` of them
//! (`intset`: sorted, so SMEMBERS answers in Redis's order), a hash set
//! otherwise (`hashtable`).
//!
//! The hash set is `types/indexed.rs`'s table of members: a dense vector
//! beside an open-addressing index of positions (O(1) random members for
//! SPOP/SRANDMEMBER, a position cursor for SSCAN that keeps Redis's
//! guarantee, addresses to prefetch).

use super::indexed::Indexed;
use super::intset::Intset;
use super::listpack::Entry;
use super::member_index::Found;
use crate::shard::key::Key;
use crate::shard::keyspace::canonical_int;

pub use super::indexed::Hasher;

/// The `hashtable` encoding (`types/indexed.rs`) of members.
pub type Table = Indexed<Key>;

impl Indexed<Key> {
    /// Adds `member` unless present (one hash, one probe; the member is
    /// copied only when new); true when new.
    #[inline]
    pub fn add(&mut self, member: &[u8]) -> bool {
        let h = self.hash(member);
        match self.find(member, h) {
            Found::At { .. } => false,
            Found::Absent(at) => {
                self.push_new(h, at, Key::new(member));
                true
            }
        }
    }

    /// `add` of an owned member.
    pub fn insert(&mut self, member: Key) -> bool {
        self.insert_entry(member)
    }

    /// The member at position `i`.
    #[inline]
    pub fn get_index(&self, i: usize) -> Option<&Key> {
        self.at(i)
    }

    /// The members in position order.
    pub fn iter(&self) -> std::slice::Iter<'_, Key> {
        self.entries().iter()
    }
}

impl<'a> IntoIterator for &'a Table {
    type Item = &'a Key;
    type IntoIter = std::slice::Iter<'a, Key>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl FromIterator<Key> for Table {
    fn from_iter<I: IntoIterator<Item = Key>>(iter: I) -> Table {
        let iter = iter.into_iter();
        let mut t = Table::with_capacity_and_hasher(iter.size_hint().0, Hasher::default());
        for m in iter {
            t.insert(m);
        }
        t
    }
}

#[derive(Clone, Debug)]
pub enum Set {
    Intset(Intset),
    Table(Table),
}

impl Default for Set {
    fn default() -> Self {
        Set::Intset(Intset::new())
    }
}

impl Set {
    pub fn len(&self) -> usize {
        match self {
            Set::Intset(s) => s.len(),
            Set::Table(t) => t.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// OBJECT ENCODING's word.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Intset(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }
    /// The members in the encoding's order (ascending for an intset).
    pub fn iter(&self) -> Box<dyn Iterator<Item = Entry<'_>> + '_> {
        match self {
            Set::Intset(s) => Box::new(s.iter().map(Entry::Int)),
            Set::Table(t) => Box::new(t.iter().map(|m| Entry::Str(m))),
        }
    }

    /// Whether `member` is in the set (`setTypeIsMember`): an intset holds
    /// only canonical decimal integers (Redis's `string2ll`).
    #[inline]
    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Intset(s) => canonical_int(member).is_some_and(|v| s.contains(v)),
            Set::Table(t) => t.contains(member),
        }
    }

    /// `contains` for a member of another set, without formatting an
    /// integer to test it against another intset.
    #[inline]
    pub fn contains_entry(&self, member: Entry<'_>) -> bool {
        match (self, member) {
            (Set::Intset(s), Entry::Int(v)) => s.contains(v),
            (_, Entry::Str(m)) => self.contains(m),
            (Set::Table(t), Entry::Int(v)) => t.contains(itoa::Buffer::new().format(v).as_bytes()),
        }
    }

    /// Adds `member` (`setTypeAdd`); returns whether it was new. An intset
    /// becomes a hash set, for good, when `member` is not an integer or it
    /// grows past `max_intset_entries` (`set-max-intset-entries`), as in
    /// Redis 7.0.
    #[inline]
    pub fn add(&mut self, member: &[u8], max_intset_entries: usize) -> bool {
        if matches!(self, Set::Intset(_)) {
            if let Some(v) = canonical_int(member) {
                return self.add_int(v, max_intset_entries);
            }
            self.convert_to_table();
        }
        match self {
            // A member already there is found without copying it first
            // (SADD of a present member, most of redis-benchmark's SADD).
            Set::Table(t) => t.add(member),
            Set::Intset(_) => unreachable!("converted above"),
        }
    }

    /// `add` of an integer member.
    pub fn add_int(&mut self, v: i64, max_intset_entries: usize) -> bool {
        match self {
            Set::Intset(s) => {
                if !s.add(v) {
                    return false;
                }
                if s.len() > max_intset_entries {
                    self.convert_to_table();
                }
                true
            }
            Set::Table(t) => t.add(itoa::Buffer::new().format(v).as_bytes()),
        }
    }

    /// `add` of a member of another set.
    #[inline]
    pub fn add_entry(&mut self, member: Entry<'_>, max_intset_entries: usize) -> bool {
        match member {
            Entry::Int(v) => self.add_int(v, max_intset_entries),
            Entry::Str(m) => self.add(m, max_intset_entries),
        }
    }

    /// Removes `member` (`setTypeRemove`); returns whether it was there. A
    /// hash set moves its last member into the hole (see the module doc:
    /// SSCAN's cursor relies on it). The encoding never goes back.
    #[inline]
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Intset(s) => canonical_int(member).is_some_and(|v| s.remove(v)),
            Set::Table(t) => t.swap_remove(member),
        }
    }

    /// `remove` of a member of another set.
    pub fn remove_entry(&mut self, member: Entry<'_>) -> bool {
        match (&mut *self, member) {
            (Set::Intset(s), Entry::Int(v)) => s.remove(v),
            (_, Entry::Str(m)) => self.remove(m),
            (Set::Table(t), Entry::Int(v)) => t.swap_remove(itoa::Buffer::new().format(v).as_bytes()),
        }
    }

    /// The member at position `i` (`0..len()`): ascending order in an
    /// intset, insertion order (less removals) in a hash set. Random
    /// members are positions drawn uniformly.
    #[inline]
    pub fn get(&self, i: usize) -> Option<Entry<'_>> {
        match self {
            Set::Intset(s) => s.get(i).map(Entry::Int),
            Set::Table(t) => t.get_index(i).map(|m| Entry::Str(m)),
        }
    }

    /// Removes and returns the member at position `i` (SPOP).
    pub fn take_at(&mut self, i: usize) -> Option<Member> {
        match self {
            Set::Intset(s) => {
                let v = s.get(i)?;
                s.remove(v);
                Some(Member::Int(v))
            }
            Set::Table(t) => t.swap_remove_index(i).map(Member::Str),
        }
    }

    /// True once per resize (growth or shrink) of a hash set's index, after the write that
    /// started it (`Indexed::take_rehash_start`).
    #[inline]
    pub fn take_rehash_start(&mut self) -> bool {
        match self {
            Set::Table(t) => t.take_rehash_start(),
            Set::Intset(_) => false,
        }
    }

    /// An intset becomes a hash set of the same members (`setTypeConvert`,
    /// sized for them up front as Redis's `dictExpand`).
    pub fn convert_to_table(&mut self) {
        if let Set::Intset(s) = self {
            let mut t = Table::with_capacity_and_hasher(s.len(), Hasher::default());
            let mut b = itoa::Buffer::new();
            for v in s.iter() {
                t.add(b.format(v).as_bytes());
            }
            *self = Set::Table(t);
        }
    }
}

/// A member taken out of a set. A string member is the table's own `Key`,
/// moved out: SPOP replies from it and drops it (a copy into a `Box<[u8]>`
/// was a malloc, a memcpy and a free a pop, ~60 instructions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    Int(i64),
    Str(Key),
}

impl Member {
    pub fn as_entry(&self) -> Entry<'_> {
        match self {
            Member::Int(v) => Entry::Int(*v),
            Member::Str(s) => Entry::Str(s.as_bytes()),
        }
    }
    /// The member as a client sees it.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_entry().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn converts_at_redis_points() {
        let mut s = Set::default();
        for i in 0..4 {
            assert!(s.add(i.to_string().as_bytes(), 4));
        }
        assert_eq!(s.encoding(), "intset");
        assert!(!s.add(b"3", 4));
        assert!(s.add(b"4", 4));
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 5);
        assert!(s.contains(b"4") && s.contains(b"0") && !s.contains(b"04"));
        let mut s = Set::default();
        s.add(b"1", 512);
        // Not canonical: a string member.
        assert!(s.add(b"01", 512));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"1") && s.contains(b"01"));
        // Never back, even when only integers are left.
        assert!(s.remove(b"01"));
        assert_eq!(s.encoding(), "hashtable");
        let mut s = Set::default();
        assert!(s.add(b"1", 0));
        assert_eq!(s.encoding(), "hashtable");
        let mut s = Set::default();
        assert!(s.add(b"12345678901234567890", 512));
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn entries_cross_encodings() {
        let mut a = Set::default();
        a.add(b"7", 512);
        let mut b = Set::default();
        b.add(b"x", 512);
        b.add(b"7", 512);
        assert!(b.contains_entry(Entry::Int(7)) && a.contains_entry(Entry::Str(b"7")) && !a.contains_entry(Entry::Str(b"x")));
        assert!(b.remove_entry(Entry::Int(7)) && !b.remove_entry(Entry::Int(7)));
        assert_eq!(a.take_at(0), Some(Member::Int(7)));
        assert_eq!(b.take_at(0), Some(Member::Str(Key::new(b"x"))));
        assert!(a.is_empty() && b.is_empty());
    }

    #[test]
    fn big_table_removes_by_member_and_position() {
        let mut t = Table::default();
        let mut model = std::collections::HashSet::new();
        for i in 0..5000u32 {
            let m = format!("element:{:012}", i * 7 % 5003);
            assert_eq!(t.add(m.as_bytes()), model.insert(m.clone()));
            assert!(!t.add(m.as_bytes()));
        }
        let probe: Vec<Vec<u8>> = (0..20).map(|i| format!("element:{:012}", i * 13).into_bytes()).collect();
        t.prefetch(&probe.iter().map(|m| &m[..]).collect::<Vec<_>>());
        for i in (0..5000u32).step_by(3) {
            let m = format!("element:{:012}", i);
            assert_eq!(t.swap_remove(m.as_bytes()), model.remove(&m));
        }
        let mut i = 0;
        while t.len() > 100 {
            let m = t.swap_remove_index(i % t.len()).expect("in range");
            assert!(model.remove(std::str::from_utf8(&m).unwrap()));
            i += 7;
        }
        assert_eq!(t.len(), model.len());
        for m in &model {
            assert!(t.contains(m.as_bytes()));
        }
        let mut got: Vec<&[u8]> = t.iter().map(|m| &m[..]).collect();
        got.sort();
        let mut want: Vec<&[u8]> = model.iter().map(|m| m.as_bytes()).collect();
        want.sort();
        assert_eq!(got, want);
        while let Some(m) = t.swap_remove_index(0) {
            assert!(model.remove(std::str::from_utf8(&m).unwrap()));
        }
        assert!(model.is_empty() && t.is_empty() && t.table_bytes() == 0);
        assert!(t.add(b"again") && t.contains(b"again"));
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((0u8..3, prop_oneof![(-20i64..20).prop_map(|v| v.to_string()), "[a-c]{1,2}"]), 0..80), max in 0usize..10) {
            let mut s = Set::default();
            let mut model = std::collections::BTreeSet::new();
            let mut was_table = false;
            for (op, m) in ops {
                match op {
                    0 | 1 => prop_assert_eq!(s.add(m.as_bytes(), max), model.insert(m.clone())),
                    _ => prop_assert_eq!(s.remove(m.as_bytes()), model.remove(&m)),
                }
                // Redis's rule: hashtable once anything non-integer or too many.
                let must_be_table = was_table || model.len() > max || model.iter().any(|m| canonical_int(m.as_bytes()).is_none());
                prop_assert_eq!(s.encoding() == "hashtable", must_be_table);
                was_table = must_be_table;
                prop_assert_eq!(s.len(), model.len());
            }
            let mut got: Vec<Vec<u8>> = (0..s.len()).map(|i| s.get(i).unwrap().to_vec()).collect();
            got.sort();
            let want: Vec<Vec<u8>> = model.iter().map(|m| m.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
