//! The keyspace as the command handlers use it (`ringkv::shard::keyspace::Db`):
//! GET / SET / INCR hot loops, lookup and insert at 1M keys, and the worst
//! single insert while growing to 4M keys (a printed line, not a criterion
//! figure: a hash table that grows all at once stalls one insert for the whole
//! rehash, which is what a client sees as a latency spike; the dict grows
//! incrementally to avoid it). The benches use the system allocator, not the
//! server's jemalloc.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringkv::shard::keyspace::{Db, Value};

const NOW_MS: i64 = 1_700_000_000_000;

fn key(i: u64) -> Vec<u8> {
    format!("key:{:012}", i).into_bytes()
}

/// A Db with `n` keys `key:%012d` -> 32-byte values, and the keys in a
/// scrambled order so lookups do not walk memory sequentially.
fn filled(n: u64) -> (Db, Vec<Vec<u8>>) {
    let mut db = Db::new();
    let value = vec![b'v'; 32];
    for i in 0..n {
        db.set(&key(i), Value::from_bytes(&value), NOW_MS, false);
    }
    // Multiplying by an odd constant modulo a power of two is a permutation;
    // take the indexes below n from it.
    let mask = n.next_power_of_two() - 1;
    let keys = (0..=mask).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask).filter(|&i| i < n).take(1 << 16).map(key).collect();
    (db, keys)
}

fn hot(c: &mut Criterion) {
    let (mut db, keys) = filled(100_000);
    let value = vec![b'w'; 32];
    let mut group = c.benchmark_group("db_100k");
    group.throughput(Throughput::Elements(1));

    let mut i = 0usize;
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 1) & (keys.len() - 1);
            let mut scratch = itoa::Buffer::new();
            let len = db.get(black_box(&keys[i]), NOW_MS).map(|e| e.value.as_bytes(&mut scratch).len());
            black_box(len)
        })
    });
    group.bench_function("get_miss", |b| b.iter(|| black_box(db.get(black_box(b"missing:key"), NOW_MS).is_some())));
    group.bench_function("set_overwrite_32B", |b| {
        b.iter(|| {
            i = (i + 1) & (keys.len() - 1);
            db.set(black_box(&keys[i]), Value::from_bytes(&value), NOW_MS, false);
        })
    });
    // INCR as the handler does it: look the entry up, add in place when it is
    // an integer, else parse the string.
    db.set(b"counter", Value::Int(0), NOW_MS, false);
    group.bench_function("incr_in_place", |b| {
        b.iter(|| {
            let e = db.get(black_box(b"counter"), NOW_MS).unwrap();
            match &mut e.value {
                Value::Int(n) => *n += 1,
                v => {
                    let mut scratch = itoa::Buffer::new();
                    let n = ringkv::shard::keyspace::canonical_int(v.as_bytes(&mut scratch)).unwrap_or(0);
                    *v = Value::Int(n + 1);
                }
            }
        })
    });
    group.bench_function("set_then_del", |b| {
        b.iter(|| {
            db.set(black_box(b"transient:key"), Value::from_bytes(&value), NOW_MS, false);
            black_box(db.remove(b"transient:key").is_some())
        })
    });
    group.finish();
}

fn at_one_million(c: &mut Criterion) {
    let (mut db, keys) = filled(1_000_000);
    let value = vec![b'w'; 32];
    let mut group = c.benchmark_group("db_1m");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("lookup_random", |b| {
        b.iter(|| {
            i = (i + 1) & (keys.len() - 1);
            black_box(db.map.get(black_box(&keys[i][..])).is_some())
        })
    });
    // Insert a new key and remove it again, so the table stays at 1M entries
    // and no iteration pays for a resize.
    let mut n = 10_000_000u64;
    group.bench_function("insert_remove_new_key", |b| {
        b.iter(|| {
            n += 1;
            let k = key(n);
            db.set(&k, Value::from_bytes(&value), NOW_MS, false);
            black_box(db.remove(&k).is_some())
        })
    });
    group.finish();

    // Growing from empty, per key (includes every resize on the way).
    let mut group = c.benchmark_group("db_grow");
    group.throughput(Throughput::Elements(1_000_000));
    group.sample_size(10);
    let all: Vec<Vec<u8>> = (0..1_000_000).map(key).collect();
    group.bench_function("insert_1m_from_empty", |b| {
        b.iter_batched(
            Db::new,
            |mut db| {
                for k in &all {
                    db.set(k, Value::Int(1), NOW_MS, false);
                }
                db
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Times every insert while growing a Db to 4M keys and prints the slowest
/// ones. Skipped under `cargo test --benches` / `--test` (criterion's quick mode).
fn worst_insert(_c: &mut Criterion) {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    const KEYS: u64 = 4_000_000;
    let mut db = Db::new();
    let value = vec![b'v'; 32];
    let mut worst = (Duration::ZERO, 0u64);
    let mut over_1ms = 0u64;
    let mut latencies_ns: Vec<u32> = Vec::with_capacity(KEYS as usize);
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let start = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        let t = Instant::now();
        db.set(k, Value::from_bytes(&value), NOW_MS, false);
        let d = t.elapsed();
        latencies_ns.push(d.as_nanos().min(u32::MAX as u128) as u32);
        if d > worst.0 {
            worst = (d, i as u64);
        }
        if d > Duration::from_millis(1) {
            over_1ms += 1;
        }
    }
    let total = start.elapsed();
    latencies_ns.sort_unstable();
    let p = |q: f64| latencies_ns[((latencies_ns.len() - 1) as f64 * q) as usize];
    println!(
        "db_grow/worst_insert_to_4m: worst single insert {:.3} ms (at key #{}), {} inserts over 1 ms, \
         p50 {} ns, p99.9 {} ns, p99.99 {} ns, {:.0} ns/insert average",
        worst.0.as_secs_f64() * 1e3,
        worst.1,
        over_1ms,
        p(0.5),
        p(0.999),
        p(0.9999),
        total.as_nanos() as f64 / KEYS as f64
    );
    black_box(db.len());
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = hot, at_one_million, worst_insert
}
criterion_main!(benches);
