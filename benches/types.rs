//! The aggregate types' per-request work in redis-benchmark's default test
//! set (issue 12): what LPUSH/RPUSH/LPOP/RPOP, LRANGE_600, HSET and
//! ZPOPMIN do to their one key, without the network around it. Figures are
//! per command (LRANGE: per reply).
//!
//! Measured in CPU time of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`),
//! not wall time: on the shared 2-core machine a busy neighbour stretches
//! wall time several-fold, but not the CPU time a loop takes. Where a change
//! replaced a slower way, the old way is kept here beside the new one
//! ("_old"), so one run shows both.
//!
//!   cargo bench --bench types

mod common;

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv::protocol::reply::format_double;
use ringkv::protocol::Reply;
use ringkv::types::hash::{Hash, Limits as HashLimits};
use ringkv::types::listpack::{Entry, Listpack};
use ringkv::types::zset::{AddFlags, Limits as ZLimits, ZSet};
use ringkv::types::{Quicklist, Set};

/// redis-benchmark's list value (`-d 3`: "xxx").
const VALUE: &[u8] = b"xxx";

/// CPU time of the calling thread, in ns.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // every Linux kernel since 2.6.12 knows.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNs
    }
}

/// Figures in CPU ns, throughputs in elements per CPU second.
struct CpuNs;

impl ValueFormatter for CpuNs {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "cpu-ns"
    }
    fn scale_throughputs(&self, _typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match *throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => n as f64,
            _ => 1.0,
        };
        for v in values.iter_mut() {
            *v = n * 1e9 / *v;
        }
        "elem/cpu-s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "cpu-ns"
    }
}

fn reply_entry(r: &mut Reply, e: Entry<'_>) {
    r.entry(e);
}

/// `Reply::bulk` as it was: length line, then the data and CRLF, three
/// capacity checks.
fn bulk_old(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'$');
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(s.len() as i64).as_bytes());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(s);
    buf.extend_from_slice(b"\r\n");
}

/// A list of `n` elements built by RPUSH at the default fill (-2: 8 KiB nodes).
fn list_of(n: usize) -> Quicklist {
    let mut q = Quicklist::new(-2);
    for _ in 0..n {
        q.push_tail(VALUE);
    }
    q
}

fn lists(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("list");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(1 << 16);
    let mut q = list_of(10_000);
    // One push and one pop, the pop's reply written as LPOP writes it.
    g.bench_function("rpush_then_lpop", |b| {
        b.iter(|| {
            buf.clear();
            q.push_tail(black_box(VALUE));
            let mut r = Reply::new(&mut buf, 2);
            q.pop_with(true, |e| r.entry(e));
            black_box(buf.len())
        })
    });
    g.bench_function("rpush_then_lpop_old", |b| {
        b.iter(|| {
            buf.clear();
            q.push_tail(black_box(VALUE));
            let v = q.pop_head().unwrap();
            Reply::new(&mut buf, 2).bulk(&v);
            black_box(buf.len())
        })
    });
    let mut q = list_of(10_000);
    g.bench_function("lpush_then_rpop", |b| {
        b.iter(|| {
            buf.clear();
            q.push_head(black_box(VALUE));
            let mut r = Reply::new(&mut buf, 2);
            q.pop_with(false, |e| r.entry(e));
            black_box(buf.len())
        })
    });
    // A node's worth of elements read as LRANGE reads them, the iterator
    // (one header decode per entry) against get + next (two).
    let mut lp = Listpack::new();
    for _ in 0..600 {
        lp.append(Entry::Str(VALUE));
    }
    g.throughput(Throughput::Elements(600));
    g.bench_function("listpack_iter_600", |b| b.iter(|| black_box(&lp).iter().fold(0usize, |n, e| n + matches!(e, Entry::Str(_)) as usize)));
    g.bench_function("listpack_iter_600_old", |b| {
        b.iter(|| {
            let lp = black_box(&lp);
            let mut n = 0usize;
            let mut at = lp.first();
            while let Some(off) = at {
                n += matches!(lp.get(off), Entry::Str(_)) as usize;
                at = lp.next(off);
            }
            n
        })
    });
    g.bench_function("bulk_600", |b| {
        b.iter(|| {
            buf.clear();
            let mut r = Reply::new(&mut buf, 2);
            for _ in 0..600 {
                r.bulk(black_box(VALUE));
            }
            black_box(buf.len())
        })
    });
    g.bench_function("bulk_600_old", |b| {
        b.iter(|| {
            buf.clear();
            for _ in 0..600 {
                bulk_old(&mut buf, black_box(VALUE));
            }
            black_box(buf.len())
        })
    });
    g.throughput(Throughput::Elements(1));
    let q = list_of(10_000);
    let mut buf = Vec::new();
    for n in [100usize, 600] {
        g.bench_function(format!("lrange_{}_reply", n), |b| {
            b.iter(|| {
                buf.clear();
                let mut r = Reply::new(&mut buf, 2);
                r.array(n);
                let mut left = n;
                q.visit(0, |e| {
                    reply_entry(&mut r, e);
                    left -= 1;
                    left > 0
                });
                black_box(buf.len())
            })
        });
    }
    g.finish();
}

fn hashes(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Elements(1));
    let limits = HashLimits { entries_max: 128, value_bytes_max: 64 };
    let mut h = Hash::default();
    let fields: Vec<Vec<u8>> = (0..100_000).map(|i| format!("element:{:06}", i).into_bytes()).collect();
    for f in &fields {
        h.set(f, VALUE, limits);
    }
    let mut i = 0usize;
    g.bench_function("hset_existing_field_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % fields.len();
            black_box(h.set(&fields[i], black_box(VALUE), limits))
        })
    });
    g.finish();
}

fn sets(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("set");
    g.throughput(Throughput::Elements(1));
    let mut s = Set::default();
    let members: Vec<Vec<u8>> = (0..100_000).map(|i| format!("element:{:06}", i).into_bytes()).collect();
    for m in &members {
        s.add(m, 512);
    }
    let mut i = 0usize;
    g.bench_function("sadd_present_member_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % members.len();
            black_box(s.add(&members[i], 512))
        })
    });
    g.finish();
}

fn zsets(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("zset");
    g.throughput(Throughput::Elements(1));
    let limits = ZLimits { entries: 128, value: 64 };
    let mut z = ZSet::default();
    for i in 0..100_000u32 {
        z.add(format!("element:{:06}", i).as_bytes(), f64::from(i), AddFlags::default(), limits);
    }
    let mut buf = Vec::new();
    // ZPOPMIN's reply from the lowest element, then the element goes; it
    // is added back (at the top) so the set keeps its size.
    let mut next = 100_000u32;
    g.bench_function("zpopmin_then_zadd_100k", |b| {
        b.iter(|| {
            buf.clear();
            let mut r = Reply::new(&mut buf, 2);
            r.array(2);
            z.pop_with(false, |m, s| {
                r.entry(m);
                r.double(s);
            });
            next += 1;
            z.add(format!("element:{:06}", next % 1_000_000).as_bytes(), f64::from(next), AddFlags::default(), limits);
            black_box(buf.len())
        })
    });
    // As ZPOPMIN did it: the lowest through a boxed range iterator, copied,
    // removed by member, the score formatted into a String.
    g.bench_function("zpopmin_then_zadd_100k_old", |b| {
        b.iter(|| {
            buf.clear();
            let mut r = Reply::new(&mut buf, 2);
            let (m, s) = z.range(0..1, false).map(|(m, s)| (m.to_vec(), s)).next().unwrap();
            z.remove(&m);
            r.array(2);
            r.bulk(&m);
            r.bulk(format_double(s).as_bytes());
            next += 1;
            z.add(format!("element:{:06}", next % 1_000_000).as_bytes(), f64::from(next), AddFlags::default(), limits);
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config().with_measurement(ThreadCpu);
    targets = lists, hashes, sets, zsets
}
criterion_main!(benches);
