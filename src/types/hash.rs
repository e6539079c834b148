//! A hash value: a listpack of field, value pairs while small (Redis 7.0's
//! `listpack` encoding, in its byte layout: HGETALL order, the RDB object
//! and the DUMP payload come with it), a hash table past
//! `hash-max-listpack-entries` / `hash-max-listpack-value` (`hashtable`).
//!
//! The table is an `IndexMap`: entries in dense positions, so HRANDFIELD
//! samples in O(1) and HSCAN walks a position cursor from high to low, which
//! keeps Redis's guarantee (a field present for the whole scan is returned
//! at least once): a removal moves only the last, already visited, entry
//! into the hole, and growth appends behind the cursor.

use super::listpack::{Entry, Listpack};

pub type Hasher = foldhash::fast::RandomState;
pub type Table = indexmap::IndexMap<Box<[u8]>, Box<[u8]>, Hasher>;

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
