//! The compact encodings of small collections, in Redis 7.0's exact byte
//! layouts: a listpack (hashes, sorted sets and list nodes) and an intset
//! (sets of integers). Keeping Redis's bytes means the in-memory form is
//! the RDB object and the DUMP payload as is, and element order is
//! Redis's without any effort.
//!
//! The values of the aggregate types are built from them: `Hash`, `Set`,
//! `ZSet` (each an enum over its encodings) and lists as a `Quicklist`.
//! The command families (`commands/`) work on these types.

/// `Deref` and `DerefMut` of a newtype over a `Box` (`$outer(Box<$inner>)`):
/// the big encodings sit behind one pointer so that the enums they are in
/// stay small, and are used through the box.
macro_rules! deref_boxed {
    ($outer:ty, $inner:ty) => {
        impl std::ops::Deref for $outer {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }

        impl std::ops::DerefMut for $outer {
            fn deref_mut(&mut self) -> &mut $inner {
                &mut self.0
            }
        }
    };
}

pub mod hash;
pub mod intset;
pub mod listpack;
pub mod quicklist;
pub mod set;
pub mod zset;
pub mod zset_tree;

pub use hash::Hash;
pub use quicklist::Quicklist;
pub use set::Set;
pub use zset::ZSet;
