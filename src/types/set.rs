//! A set value, Redis 7.0's two encodings: an intset while every member is
//! an integer and there are at most `set-max-intset-entries` of them
//! (`intset`: sorted, so SMEMBERS answers in Redis's order), a hash set
//! otherwise (`hashtable`).
//!
//! The hash set is an `IndexSet` for the same reasons as a hash's table
//! (`types/hash.rs`): O(1) random members for SPOP/SRANDMEMBER, and a
//! position cursor for SSCAN that keeps Redis's guarantee across growth.

use super::intset::Intset;
use super::listpack::Entry;

pub type Hasher = foldhash::fast::RandomState;
pub type Table = indexmap::IndexSet<Box<[u8]>, Hasher>;

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
}
