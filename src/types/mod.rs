//! The compact encodings of small collections, in Redis 7.0's exact byte
//! layouts: a listpack (hashes, sorted sets and list nodes) and an intset
//! (sets of integers). Keeping Redis's bytes means the in-memory form is
//! the RDB object and the DUMP payload as is, and element order is
//! Redis's without any effort.
//!
//! Both are plain libraries here: the command families use them.

pub mod intset;
pub mod listpack;
pub mod quicklist;
pub mod zset;
