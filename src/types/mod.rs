//! The compact encodings of small collections, in Redis 7.0's exact byte
//! layouts: a listpack (hashes, sorted sets and list nodes) and an intset
//! (sets of integers). Keeping Redis's bytes means the in-memory form is
//! the RDB object and the DUMP payload as is, and element order is
//! Redis's without any effort.
//!
//! The values of the aggregate types are built from them: `Hash`, `Set`,
//! `ZSet` (each an enum over its encodings) and lists as a `Quicklist`.
//! The command families (`commands/`) work on these types.

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
