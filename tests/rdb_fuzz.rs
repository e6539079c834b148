//! The RDB loader against mutated dumps (property test, proptest): it never
//! panics, and no single allocation it makes exceeds what the input can
//! justify (a lying length from the file is refused, not reserved). A
//! counting global allocator records the largest allocation while the
//! loader runs. Bounded here (a few seconds); a longer run:
//! `PROPTEST_CASES=200000 cargo test --release --test rdb_fuzz` (perf/README.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use ringkv::persistence::lzf::MAX_EXPANSION;
use ringkv::persistence::rdb::{self, Encoder};
use ringkv::shard::{Entry, Value};
use ringkv::types::intset::Intset;
use ringkv::types::listpack::{Entry as LpEntry, Listpack};
use ringkv::types::zset_tree::SortedSet;
use ringkv::types::{hash, set, Hash, Quicklist, Set, ZSet};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the loading thread's allocations count (the harness has others).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize) {
    if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counting only reads a thread-local flag and updates an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A valid dump of these pairs (compressed where LZF pays).
fn dump(pairs: &[(Vec<u8>, Vec<u8>, bool)]) -> Vec<u8> {
    let mut e = Encoder::new(true, 0);
    e.save_header();
    e.save_aux("redis-ver", b"7.0.15");
    e.save_select_db(0, pairs.len(), pairs.iter().filter(|p| p.2).count());
    for (k, v, ttl) in pairs {
        e.save_pair(k, &Entry { value: Value::from_vec(v.clone()), expire_at_ms: if *ttl { 4_000_000_000_000 } else { -1 }, access_ms: 0 });
    }
    e.buf.push(0xff);
    // A zero CRC means "saved without a checksum": a mutated file is then
    // parsed past the mutated byte instead of failing only at the end.
    e.buf.extend_from_slice(&[0; 8]);
    e.buf
}

/// Loads `data`, returning the largest single allocation made meanwhile.
fn largest_allocation_loading(data: &[u8]) -> (bool, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let ok = rdb::load(data, 0, |_, _, _| {}).is_ok();
    COUNTING.with(|c| c.set(false));
    (ok, LARGEST.load(Ordering::Relaxed))
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Overwrite(usize, Vec<u8>),
}

fn apply(mut d: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = d.len().max(1);
        match m {
            Mutation::Truncate(at) => d.truncate(at % n),
            Mutation::Flip(at, x) => {
                if !d.is_empty() {
                    let i = at % d.len();
                    d[i] ^= x | 1;
                }
            }
            Mutation::Insert(at, bytes) => {
                let i = at % n;
                d.splice(i.min(d.len())..i.min(d.len()), bytes.iter().copied());
            }
            Mutation::Overwrite(at, bytes) => {
                for (j, b) in bytes.iter().enumerate() {
                    if let Some(slot) = d.get_mut((at % n) + j) {
                        *slot = *b;
                    }
                }
            }
        }
    }
    d
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Overwrites favour the bytes that make lengths lie (0x80/0x81 prefixes,
    // 0xc3 LZF markers, 0xff runs).
    let lying = prop::collection::vec(prop::sample::select(vec![0x80u8, 0x81, 0xc3, 0xc0, 0xff, 0x7f, 0x00, 0x3f]), 1..10);
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(a, x)| Mutation::Flip(a, x)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12)).prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), lying).prop_map(|(a, b)| Mutation::Overwrite(a, b)),
    ]
}

fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>, bool)>> {
    let value = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        "[0-9]{1,12}".prop_map(String::into_bytes),
        (1usize..400, prop::sample::select(vec![b"ab".to_vec(), b"xyz".to_vec()])).prop_map(|(n, unit)| unit.repeat(n)),
    ];
    prop::collection::vec((prop::collection::vec(any::<u8>(), 1..24), value, any::<bool>()), 1..12)
}

/// An aggregate value of `kind` (every type and encoding) holding `items`.
fn aggregate(kind: u8, items: &[Vec<u8>]) -> Value {
    // Distinct fields and members: the loader refuses duplicates.
    let unique: Vec<Vec<u8>> = items.iter().enumerate().map(|(i, it)| [format!("{}:", i).as_bytes(), it].concat()).collect();
    match kind {
        0 => {
            let mut q = Quicklist::new(if items.len().is_multiple_of(2) { -2 } else { 3 });
            for it in items {
                q.push_tail(it);
            }
            Value::List(Box::new(q))
        }
        1 | 2 => {
            let mut lp = Listpack::new();
            let mut t = hash::Table::default();
            for (f, v) in unique.iter().zip(items) {
                lp.append(LpEntry::Str(f));
                lp.append(LpEntry::Str(v));
                t.insert(f, v);
            }
            Value::Hash(if kind == 1 { Hash::Listpack(lp) } else { Hash::Table(t) })
        }
        3 => {
            let mut is = Intset::new();
            for (i, it) in items.iter().enumerate() {
                is.add(it.iter().fold(i as i64, |v, &b| v.wrapping_mul(257).wrapping_add(b as i64)));
            }
            Value::Set(Set::Intset(is))
        }
        4 => Value::Set(Set::Table(unique.into_iter().map(ringkv::shard::key::Key::from).collect::<set::Table>())),
        5 => {
            let mut lp = Listpack::new();
            for (i, m) in unique.iter().enumerate() {
                lp.append(LpEntry::Str(m));
                lp.append(LpEntry::Str(format!("{}.5", i).as_bytes()));
            }
            Value::ZSet(ZSet::Listpack(lp))
        }
        _ => {
            let mut tree = SortedSet::new();
            for (i, m) in unique.iter().enumerate() {
                tree.insert(m, i as f64 * 0.25 - 1.0);
            }
            Value::ZSet(ZSet::Tree(tree))
        }
    }
}

/// A valid dump of aggregate values, with a zero CRC (see `dump`).
fn dump_aggregates(values: &[(u8, Vec<Vec<u8>>)]) -> Vec<u8> {
    let mut e = Encoder::new(true, 0);
    e.save_header();
    e.save_select_db(0, values.len(), 0);
    for (i, (kind, items)) in values.iter().enumerate() {
        e.save_pair(format!("key:{}", i).as_bytes(), &Entry { value: aggregate(*kind, items), expire_at_ms: -1, access_ms: 0 });
    }
    e.buf.push(0xff);
    e.buf.extend_from_slice(&[0; 8]);
    e.buf
}

fn aggregates() -> impl Strategy<Value = Vec<(u8, Vec<Vec<u8>>)>> {
    let item =
        prop_oneof![prop::collection::vec(any::<u8>(), 0..20), "-?[0-9]{1,19}".prop_map(String::into_bytes), (1usize..100).prop_map(|n| b"ab".repeat(n)),];
    prop::collection::vec((0u8..7, prop::collection::vec(item, 1..20)), 1..6)
}

/// Redis's own old-encoding files (tests/assets): ziplists, zipmaps,
/// quicklists of ziplists, intsets, with their CRC zeroed.
fn asset_files() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/assets");
    ["encodings", "hash-ziplist", "hash-zipmap", "list-quicklist", "zset-ziplist"]
        .iter()
        .map(|n| {
            let mut b = std::fs::read(dir.join(format!("{}.rdb", n))).unwrap();
            // Files of RDB version 5 and later end with a CRC: zero it.
            let v: u32 = std::str::from_utf8(&b[5..9]).unwrap().parse().unwrap();
            if v >= 5 {
                let n = b.len();
                b[n - 8..].fill(0);
            }
            b
        })
        .collect()
}

/// `valid` loads; mutated by `muts` it loads or fails without a panic and
/// without an allocation beyond what its bytes can expand to (LZF's bound)
/// plus a small constant.
fn check_mutated(valid: Vec<u8>, muts: &[Mutation]) -> Result<(), TestCaseError> {
    let (ok, _) = largest_allocation_loading(&valid);
    prop_assert!(ok, "the unmutated dump must load");
    let data = apply(valid, muts);
    let (_, largest) = largest_allocation_loading(&data);
    let bound = data.len() * MAX_EXPANSION + 4096;
    prop_assert!(largest <= bound, "largest allocation {} > bound {} for {} input bytes", largest, bound, data.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The same for the aggregate types: their blobs (listpacks, intsets,
    /// quicklist nodes) and counts mutated, and Redis's old-encoding files.
    #[test]
    fn mutated_aggregates_never_panic_or_over_allocate(values in aggregates(), asset in 0usize..6, muts in prop::collection::vec(mutation(), 1..4)) {
        let valid = if asset < 5 { asset_files().swap_remove(asset) } else { dump_aggregates(&values) };
        check_mutated(valid, &muts)?;
    }

    /// No panic, and no allocation beyond what the input's bytes can expand
    /// to (LZF's bound) plus a small constant.
    #[test]
    fn mutated_dumps_never_panic_or_over_allocate(pairs in pairs(), muts in prop::collection::vec(mutation(), 1..4)) {
        let valid = dump(&pairs);
        check_mutated(valid, &muts)?;
    }
}
