//! The growth tests' timing (`tests/table_growth.rs`, `tests/zset_growth.rs`):
//! the worst single operation in CPU time of the calling thread
//! (CLOCK_THREAD_CPUTIME_ID: a preemption on a loaded machine does not
//! count, which the server's SLOWLOG cannot tell apart).

pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `op(i)` for `0..n`, each timed, prints the mean and the 8 slowest
/// (`what`: the operation's name); returns the slowest in ns.
pub fn worst_of(what: &str, n: u64, mut op: impl FnMut(u64)) -> u64 {
    let mut worst: Vec<(u64, u64)> = Vec::new();
    let (mut total, mut over_1ms) = (0u64, 0u32);
    for i in 0..n {
        let t0 = thread_cpu_ns();
        op(i);
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
    println!("{}: {} operations, mean {:.0} ns (thread CPU, clock reads included), {} over 1 ms", what, n, total as f64 / n as f64, over_1ms);
    for (dt, i) in &worst {
        println!("  #{:>7}: {:>9.3} ms", i, *dt as f64 / 1e6);
    }
    worst.first().map_or(0, |w| w.0)
}
