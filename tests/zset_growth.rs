//! The worst single insert while a sorted set grows to 1M members, in CPU
//! time of the inserting thread (CLOCK_THREAD_CPUTIME_ID: a preemption on a
//! loaded machine does not count, which the server's SLOWLOG cannot tell
//! apart). Before the member table grew incrementally (`types/id_table.rs`)
//! one insert rehashed the whole table at each doubling.
//!
//! `cargo test --release --test zset_growth -- --ignored --nocapture`

use ringkv::types::zset_tree::SortedSet;

// The server's allocator: a big `Vec`'s growth costs what it costs there
// (glibc would move it with mremap).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
#[ignore = "a release-build measurement: cargo test --release --test zset_growth -- --ignored --nocapture"]
fn worst_insert_growing_to_1m() {
    let n = 1_000_000u64;
    let mut z = SortedSet::new();
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut worst: Vec<(u64, u64)> = Vec::new();
    let mut total = 0u64;
    for i in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let member = format!("member:{}", i);
        let score = (state >> 11) as f64 / (1u64 << 53) as f64 * 1e6;
        let t0 = thread_cpu_ns();
        z.insert(member.as_bytes(), score);
        let dt = thread_cpu_ns() - t0;
        total += dt;
        worst.push((dt, i));
        if worst.len() >= 4096 {
            worst.sort_unstable_by(|a, b| b.cmp(a));
            worst.truncate(16);
        }
    }
    worst.sort_unstable_by(|a, b| b.cmp(a));
    worst.truncate(8);
    println!("{} inserts, mean {:.0} ns (thread CPU, clock reads included)", n, total as f64 / n as f64);
    for (dt, i) in &worst {
        println!("  insert #{:>7}: {:>9.3} ms", i, *dt as f64 / 1e6);
    }
    assert_eq!(z.len(), n as usize);
}
