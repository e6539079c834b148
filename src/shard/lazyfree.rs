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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::dict::{Dict, DictDrain};
use super::keyspace::Value;
use crate::types::{Hash, Set, ZSet};

/// Values cheaper than this many allocations are freed at once.
pub const THRESHOLD_ELEMENTS: usize = 64;
/// Elements freed per loop turn while something is queued.
pub const STEP_ELEMENTS: usize = 4096;

/// `lazyfree-lazy-server-del` and `lazyfree-lazy-expire`, read where a
/// value is deleted as a side effect (an overwrite, an expiry) without the
/// shard's config at hand; set by `apply_config` (start-up, CONFIG SET).
static LAZY_SERVER_DEL: AtomicBool = AtomicBool::new(false);
static LAZY_EXPIRE: AtomicBool = AtomicBool::new(false);

/// Follows the config's `lazyfree-lazy-*` switches.
pub fn apply_config(config: &crate::config::Config) {
    let yes = |name: &str| config.others.get(name).is_some_and(|v| v == "yes");
    LAZY_SERVER_DEL.store(yes("lazyfree-lazy-server-del"), Ordering::Relaxed);
    LAZY_EXPIRE.store(yes("lazyfree-lazy-expire"), Ordering::Relaxed);
}

/// `lazyfree-lazy-server-del yes`: values a command deletes implicitly
/// (overwritten by SET, RENAME's destination...) are freed lazily.
#[inline]
pub fn lazy_server_del() -> bool {
    LAZY_SERVER_DEL.load(Ordering::Relaxed)
}

/// `lazyfree-lazy-expire yes`: expired keys' values are freed lazily.
#[inline]
pub fn lazy_expire() -> bool {
    LAZY_EXPIRE.load(Ordering::Relaxed)
}

/// Whether `v` is worth queueing (Redis's `freeObjAsync` test).
#[inline]
pub fn worth_queueing(v: &Value) -> bool {
    !v.is_string() && free_effort(v) > THRESHOLD_ELEMENTS
}

/// Something being freed: each `next()` frees one allocation (or gives back
/// one block of pages), a few microseconds at most.
type Draining = Box<dyn Iterator<Item = ()> + Send>;

struct Job {
    draining: Draining,
    /// What INFO counts for it: 1 for a value, the keys of a database.
    objects: usize,
}

#[derive(Default)]
pub struct LazyFree {
    queue: VecDeque<Job>,
    /// Objects queued and not yet freed (INFO's `lazyfree_pending_objects`).
    pending_objects: usize,
    /// Objects whose freeing finished (INFO's `lazyfreed_objects`).
    pub freed_objects: u64,
    /// `BURIED` as this shard last collected its graveyards.
    buried_seen: u64,
}

/// Values put in any database's graveyard (`Db::graveyard`), all shards:
/// a shard looks through its databases' graveyards only when this moved,
/// not every loop turn (16 databases, 16 cache lines). A graveyard is
/// filled by its shard's own thread or by one holding the shard, and the
/// hold's hand-back orders that thread's increment before the owner's next
/// load.
static BURIED: AtomicU64 = AtomicU64::new(0);

/// A value went into a graveyard (after the push).
#[inline]
pub fn note_buried() {
    BURIED.fetch_add(1, Ordering::Relaxed);
}

/// Allocations freeing `v` costs (Redis's `lazyfreeGetFreeEffort`): one
/// per element of a hash table, a set, a sorted set's tree; one per node
/// of a list; one for a compact encoding.
pub fn free_effort(v: &Value) -> usize {
    match v {
        Value::Hash(h) => match h {
            Hash::Table(t) => t.len(),
            Hash::Listpack(_) => 1,
        },
        Value::Set(s) => match s {
            Set::Table(t) => t.len(),
            Set::Intset(_) => 1,
        },
        Value::ZSet(z) => match z {
            ZSet::Tree(t) => t.len(),
            ZSet::Listpack(_) => 1,
        },
        Value::List(l) => l.nodes().len(),
        Value::Stream(s) => s.nodes.len() + s.groups.values().map(|g| g.pel.len() + g.consumers.len()).sum::<usize>(),
        Value::Int(_) | Value::Str { .. } => 1,
    }
}

/// `v` taken apart for freeing one allocation per step; None for a value of
/// one allocation or so (dropped here).
fn drain_of(v: Value) -> Option<Draining> {
    Some(match v {
        Value::Hash(h) => match h {
            Hash::Table(t) => Box::new(t.into_iter().map(drop)),
            Hash::Listpack(_) => return None,
        },
        Value::Set(s) => match s {
            Set::Table(t) => Box::new(t.into_iter().map(drop)),
            Set::Intset(_) => return None,
        },
        Value::ZSet(z) => match z {
            ZSet::Tree(t) => Box::new(t.into_drain()),
            ZSet::Listpack(_) => return None,
        },
        Value::List(l) => Box::new(l.into_nodes().map(drop)),
        Value::Stream(s) => Box::new(s.nodes.into_values().map(drop)),
        Value::Int(_) | Value::Str { .. } => return None,
    })
}

/// A database's table freed entry by entry; a big value among them is
/// itself freed element by element.
struct DbDrain {
    dict: DictDrain,
    inner: Option<Draining>,
}

impl Iterator for DbDrain {
    type Item = ();
    fn next(&mut self) -> Option<()> {
        if let Some(inner) = &mut self.inner {
            if inner.next().is_some() {
                return Some(());
            }
            self.inner = None;
        }
        if let Some(entry) = self.dict.next()?.filter(|e| worth_queueing(&e.value)) {
            self.inner = drain_of(entry.value);
        }
        Some(())
    }
}

impl LazyFree {
    /// Frees `v`: now when it is cheap, else in slices from the loop.
    pub fn free(&mut self, v: Value) {
        if free_effort(&v) <= THRESHOLD_ELEMENTS {
            return;
        }
        if let Some(draining) = drain_of(v) {
            self.queue.push_back(Job { draining, objects: 1 });
            self.pending_objects += 1;
        }
    }

    /// Frees a whole database's table in slices (`emptyDbAsync`): INFO
    /// counts its keys as pending until the last is freed.
    pub fn free_db(&mut self, dict: Dict) {
        let objects = dict.len();
        self.queue.push_back(Job { draining: Box::new(DbDrain { dict: dict.into_drain(), inner: None }), objects });
        self.pending_objects += objects;
    }

    /// Whether some graveyard was filled since the last call that said so.
    #[inline]
    pub fn graveyards_changed(&mut self) -> bool {
        let now = BURIED.load(Ordering::Relaxed);
        if now == self.buried_seen {
            return false;
        }
        self.buried_seen = now;
        true
    }

    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    pub fn pending_objects(&self) -> usize {
        self.pending_objects
    }

    /// Frees up to `budget` allocations of the queued jobs, oldest first.
    /// Returns how many it freed.
    pub fn step(&mut self, budget: usize) -> usize {
        let mut freed = 0;
        while freed < budget {
            let Some(front) = self.queue.front_mut() else { break };
            let before = freed;
            for () in front.draining.by_ref().take(budget - freed) {
                freed += 1;
            }
            if freed - before < budget - before {
                // Exhausted before the budget: that job is done.
                let objects = front.objects;
                self.queue.pop_front();
                self.pending_objects -= objects;
                self.freed_objects += objects as u64;
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
            t.insert(i.to_string().as_bytes(), b"v");
        }
        lf.free(Value::Hash(Hash::Table(t)));
        let mut z = SortedSet::new();
        for i in 0..1000 {
            z.insert(i.to_string().as_bytes(), i as f64);
        }
        lf.free(Value::ZSet(ZSet::Tree(z)));
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
                    t.insert(format!("field:{}", i).as_bytes(), i.to_string().as_bytes());
                }
                Value::Hash(Hash::Table(t))
            }
            "set" => Value::Set(Set::Table((0..1_000_000u32).map(|i| format!("m:{}", i).into_bytes().into()).collect())),
            _ => {
                let mut z = SortedSet::new();
                for i in 0..1_000_000u32 {
                    z.insert(format!("member:{}", i).as_bytes(), i as f64);
                }
                Value::ZSet(ZSet::Tree(z))
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
