//! The worst single insert while a big set (`types/set.rs`) and a big hash
//! (`types/hash.rs`) grow to 2M members, in CPU time of the inserting
//! thread (CLOCK_THREAD_CPUTIME_ID: a preemption on a loaded machine does
//! not count, which the server's SLOWLOG cannot tell apart). The sorted
//! set's is `tests/zset_growth.rs`.
//!
//! `cargo test --release --test table_growth -- --ignored --nocapture`

use ringkv::types::{hash, set};

// The server's allocator: a big `Vec`'s growth costs what it costs there.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `insert(i)` for `0..n`, prints the mean and the 8 slowest.
fn worst_of(what: &str, n: u64, mut insert: impl FnMut(u64)) {
    let mut worst: Vec<(u64, u64)> = Vec::new();
    let (mut total, mut over_1ms) = (0u64, 0u32);
    for i in 0..n {
        let t0 = thread_cpu_ns();
        insert(i);
        let dt = thread_cpu_ns() - t0;
        total += dt;
        over_1ms += u32::from(dt > 1_000_000);
        worst.push((dt, i));
        if worst.len() >= 4096 {
            worst.sort_unstable_by(|a, b| b.cmp(a));
            worst.truncate(16);
        }
    }
    worst.sort_unstable_by(|a, b| b.cmp(a));
    worst.truncate(8);
    println!("{}: {} inserts, mean {:.0} ns (thread CPU, clock reads included), {} over 1 ms", what, n, total as f64 / n as f64, over_1ms);
    for (dt, i) in &worst {
        println!("  insert #{:>7}: {:>9.3} ms", i, *dt as f64 / 1e6);
    }
}

#[test]
#[ignore = "a release-build measurement: cargo test --release --test table_growth -- --ignored --nocapture"]
fn worst_set_insert_growing_to_2m() {
    let n = 2_000_000u64;
    let mut s = set::Set::default();
    let mut buf = Vec::new();
    worst_of("set", n, |i| {
        buf.clear();
        buf.extend_from_slice(format!("member:{}", i).as_bytes());
        s.add(&buf, 512);
    });
    assert_eq!(s.len(), n as usize);
}

#[test]
#[ignore = "a release-build measurement: cargo test --release --test table_growth -- --ignored --nocapture"]
fn worst_hash_insert_growing_to_2m() {
    let n = 2_000_000u64;
    let mut h = hash::Table::default();
    worst_of("hash", n, |i| {
        let (f, v) = (format!("field:{}", i), format!("value:{}", i));
        h.insert(f.as_bytes(), v.as_bytes());
    });
    assert_eq!(h.len(), n as usize);
}
