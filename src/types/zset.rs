//! A sorted-set value, Redis 7.0's two encodings: a listpack of member,
//! score pairs in score order while small (`listpack`, up to
//! `zset-max-listpack-entries` / `zset-max-listpack-value`), the ordered
//! tree of `zset_tree.rs` past that (`skiplist`, the word Redis answers for
//! its big encoding).

use super::listpack::{Entry, Listpack};
use super::zset_tree::SortedSet;

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
        Entry::Str(s) => std::str::from_utf8(s).ok().and_then(|t| t.parse().ok()).unwrap_or(0.0),
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
