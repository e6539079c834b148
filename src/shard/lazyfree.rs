//! Freeing large values in slices (Redis's lazyfree, without a thread).
//!
//! Dropping a big collection in one go stalls the shard for as long as the
//! allocator takes to free each element: measured here, DEL of a 1M-member
//! hash held the shard ~50 ms (perf/RESULTS.md). UNLINK, and DEL under
//! `lazyfree-lazy-user-del yes`, hand the value to this queue instead; the
//! shard's loop frees `STEP_ELEMENTS` elements per turn (a few tens of
//! microseconds), between commands, until none is left. Redis gives the
//! value to a background thread; here the shard that owns the memory frees
//! it, so no allocation moves between threads and no lock is taken.
//!
//! Only values whose freeing costs more than `THRESHOLD_ELEMENTS`
//! allocations are queued (Redis's `LAZYFREE_THRESHOLD`, 64); the rest are
//! dropped at once, as Redis frees small values synchronously.

use std::collections::VecDeque;

use super::keyspace::Value;
use crate::types::{Hash, Set, ZSet};

/// Values cheaper than this many allocations are freed at once.
pub const THRESHOLD_ELEMENTS: usize = 64;
/// Elements freed per loop turn while something is queued.
pub const STEP_ELEMENTS: usize = 4096;

/// A value being freed: each `next()` frees one element.
type Draining = Box<dyn Iterator<Item = ()> + Send>;

#[derive(Default)]
pub struct LazyFree {
    queue: VecDeque<Draining>,
    /// Values queued and not yet freed (INFO's `lazyfree_pending_objects`).
    pending_objects: usize,
    /// Values whose freeing finished (INFO's `lazyfreed_objects`).
    pub freed_objects: u64,
}

/// Allocations freeing `v` costs (Redis's `lazyfreeGetFreeEffort`): one
/// per element of a hash table, a set, a sorted set's tree; one per node
/// of a list; one for a compact encoding.
pub fn free_effort(v: &Value) -> usize {
    match v {
        Value::Hash(h) => match &**h {
            Hash::Table(t) => t.len(),
            Hash::Listpack(_) => 1,
        },
        Value::Set(s) => match &**s {
            Set::Table(t) => t.len(),
            Set::Intset(_) => 1,
        },
        Value::ZSet(z) => match &**z {
            ZSet::Tree(t) => t.len(),
            ZSet::Listpack(_) => 1,
        },
        Value::List(l) => l.nodes().len(),
        Value::Int(_) | Value::Str { .. } => 1,
    }
}

impl LazyFree {
    /// Frees `v`: now when it is cheap, else in slices from the loop.
    pub fn free(&mut self, v: Value) {
        if free_effort(&v) <= THRESHOLD_ELEMENTS {
            return;
        }
        // The compact encodings are one allocation: never queued (their
        // effort is 1), dropped here by returning.
        let draining: Draining = match v {
            Value::Hash(h) => match *h {
                Hash::Table(t) => Box::new(t.into_iter().map(drop)),
                Hash::Listpack(_) => return,
            },
            Value::Set(s) => match *s {
                Set::Table(t) => Box::new(t.into_iter().map(drop)),
                Set::Intset(_) => return,
            },
            Value::ZSet(z) => match *z {
                ZSet::Tree(t) => Box::new(t.into_members().map(drop)),
                ZSet::Listpack(_) => return,
            },
            Value::List(l) => Box::new(l.into_nodes().map(drop)),
            Value::Int(_) | Value::Str { .. } => return,
        };
        self.queue.push_back(draining);
        self.pending_objects += 1;
    }

    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    pub fn pending_objects(&self) -> usize {
        self.pending_objects
    }

    /// Frees up to `budget` elements of the queued values, oldest first.
    /// Returns how many it freed.
    pub fn step(&mut self, budget: usize) -> usize {
        let mut freed = 0;
        while freed < budget {
            let Some(front) = self.queue.front_mut() else { break };
            let before = freed;
            for () in front.by_ref().take(budget - freed) {
                freed += 1;
            }
            if freed - before < budget - before {
                // Exhausted before the budget: that value is gone.
                self.queue.pop_front();
                self.pending_objects -= 1;
                self.freed_objects += 1;
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{hash, zset_tree::SortedSet, Quicklist};

    #[test]
    fn big_values_are_freed_in_slices_small_ones_at_once() {
        let mut lf = LazyFree::default();
        lf.free(Value::from_bytes(b"small"));
        assert!(!lf.has_pending());
        let mut t = hash::Table::default();
        for i in 0..10_000u32 {
            t.insert(i.to_string().into_bytes().into(), b"v".to_vec().into());
        }
        lf.free(Value::Hash(Box::new(Hash::Table(t))));
        let mut z = SortedSet::new();
        for i in 0..1000 {
            z.insert(i.to_string().as_bytes(), i as f64);
        }
        lf.free(Value::ZSet(Box::new(ZSet::Tree(z))));
        let mut q = Quicklist::new(1);
        for i in 0..200 {
            q.push_tail(i.to_string().as_bytes());
        }
        lf.free(Value::List(Box::new(q)));
        assert_eq!(lf.pending_objects(), 3);
        assert_eq!(lf.step(4000), 4000);
        assert_eq!(lf.pending_objects(), 3);
        let mut turns = 1;
        while lf.has_pending() {
            lf.step(4000);
            turns += 1;
        }
        assert_eq!(turns, 3, "10000 + 1000 + 200 elements at 4000 a turn");
        assert_eq!((lf.pending_objects(), lf.freed_objects), (0, 3));
    }

    fn million(kind: &str) -> Value {
        match kind {
            "hash" => {
                let mut t = hash::Table::default();
                for i in 0..1_000_000u32 {
                    t.insert(format!("field:{}", i).into_bytes().into(), i.to_string().into_bytes().into());
                }
                Value::Hash(Box::new(Hash::Table(t)))
            }
            "set" => Value::Set(Box::new(Set::Table((0..1_000_000u32).map(|i| format!("m:{}", i).into_bytes().into()).collect()))),
            _ => {
                let mut z = SortedSet::new();
                for i in 0..1_000_000u32 {
                    z.insert(format!("member:{}", i).as_bytes(), i as f64);
                }
                Value::ZSet(Box::new(ZSet::Tree(z)))
            }
        }
    }

    /// The stall a 1M-element value causes freed at once (DEL) and the
    /// longest slice freeing it lazily (UNLINK): `cargo test --release
    /// --lib lazyfree -- --ignored --nocapture` (perf/RESULTS.md).
    #[test]
    #[ignore]
    fn stall_of_a_million_elements() {
        use std::time::Instant;
        for kind in ["hash", "set", "zset"] {
            let v = million(kind);
            let t = Instant::now();
            drop(v);
            let at_once = t.elapsed();
            let mut lf = LazyFree::default();
            let v = million(kind);
            let t = Instant::now();
            lf.free(v);
            let handover = t.elapsed();
            let mut slices = vec![];
            while lf.has_pending() {
                let t = Instant::now();
                lf.step(STEP_ELEMENTS);
                slices.push(t.elapsed());
            }
            let (first, last) = (slices[0], *slices.last().unwrap());
            slices.sort();
            println!(
                "{}: DEL {:?}; UNLINK hand-over {:?}, {} slices: first {:?}, last {:?}, median {:?}, p99 {:?}, longest {:?}",
                kind,
                at_once,
                handover,
                slices.len(),
                first,
                last,
                slices[slices.len() / 2],
                slices[slices.len() * 99 / 100],
                slices[slices.len() - 1]
            );
        }
    }
}
