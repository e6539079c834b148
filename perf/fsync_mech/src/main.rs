//! CPU (user + system, every thread of the process: io-wq workers and the
//! helper thread included), context switches and wall time per group commit
//! (append BYTES, then make them durable), by the way the commit is carried
//! out; run it pinned to one core (`taskset -c 0`), as the servers are:
//!
//! - inline: write(2) + fdatasync(2) in the caller (redis-server's way);
//! - uring-link: IORING_OP_WRITE + linked IORING_OP_FSYNC (DATASYNC) on a
//!   DEFER_TASKRUN ring (ringkv before), waited for at once;
//! - uring-dsync: one IORING_OP_WRITE with RWF_DSYNC (ringkv now);
//! - uring-sync-only: write(2) in the caller, IORING_OP_FSYNC on the ring;
//! - thread-futex: a plain thread doing write + fdatasync, woken and waited
//!   for through futexes;
//! - uring-link-async: uring-link with IOSQE_ASYNC on the write.
//!
//! BUSY_US spins that long between the submission and the wait (a shard
//! executing commands meanwhile); its CPU is subtracted, roughly (it is timed
//! by the wall clock). Two rounds of every mode, taking turns.
use io_uring::{opcode, squeue, types, IoUring};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn rusage() -> (f64, f64, i64, i64) {
    // SAFETY: rusage is plain data; getrusage fills the struct it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
    (t(r.ru_utime), t(r.ru_stime), r.ru_nvcsw, r.ru_nivcsw)
}

fn ring() -> IoUring {
    IoUring::builder().setup_single_issuer().setup_defer_taskrun().setup_coop_taskrun().build(64).unwrap()
}

fn futex_wait(a: &AtomicU32, v: u32) {
    // SAFETY: futex(2) on a live AtomicU32 (a u32 in memory), no timeout.
    unsafe { libc::syscall(libc::SYS_futex, a as *const AtomicU32, libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, v, std::ptr::null::<libc::timespec>()) };
}
fn futex_wake(a: &AtomicU32) {
    // SAFETY: futex(2) wake on a live AtomicU32.
    unsafe { libc::syscall(libc::SYS_futex, a as *const AtomicU32, libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
}

/// Busy work between submit and completion (the shard executing commands).
fn spin(us: u64) -> u64 {
    let t = Instant::now();
    let mut x = 0u64;
    while t.elapsed().as_micros() < us as u128 {
        for i in 0..100 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    x
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let n: usize = args[2].parse().unwrap();
    let bytes: usize = args[3].parse().unwrap();
    let busy: u64 = args.get(4).map_or(0, |s| s.parse().unwrap());
    let modes = ["inline", "uring-link", "uring-dsync", "uring-sync-only", "thread-futex", "uring-link-async"];
    let payload = vec![b'x'; bytes];
    println!("busy={}us per commit between submit and reap (0: wait at once)", busy);
    println!("{:<18} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}", "mode", "cpu us", "user us", "sys us", "csw", "wall p50", "wall p99");
    for round in 0..2 {
        for mode in modes {
            let path = format!("{}/mech-{}-{}", dir, std::process::id(), mode);
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
            let fd = f.as_raw_fd();
            let mut r = ring();
            // thread for thread-futex
            let word = Arc::new(AtomicU32::new(0));
            let done = Arc::new(AtomicU32::new(0));
            let th = if mode == "thread-futex" {
                let (w, d) = (word.clone(), done.clone());
                let p = payload.clone();
                Some(std::thread::spawn(move || {
                    let mut seen = 0u32;
                    loop {
                        let v = w.load(Ordering::Acquire);
                        if v == seen {
                            futex_wait(&w, v);
                            continue;
                        }
                        seen = v;
                        if v == u32::MAX {
                            return;
                        }
                        // SAFETY: write/fdatasync on the file's descriptor, which
                        // outlives this thread (joined before the file is dropped).
                        unsafe { libc::write(fd, p.as_ptr() as *const _, p.len()) };
                        // SAFETY: as above.
                        unsafe { libc::fdatasync(fd) };
                        d.store(v, Ordering::Release);
                        futex_wake(&d);
                    }
                }))
            } else {
                None
            };
            let mut lat = Vec::with_capacity(n);
            let r0 = rusage();
            for i in 0..n {
                let t = Instant::now();
                match mode {
                    "inline" => {
                        // SAFETY: write/fdatasync on the open file's descriptor.
                        unsafe { libc::write(fd, payload.as_ptr() as *const _, payload.len()) };
                        // SAFETY: as above.
                        unsafe { libc::fdatasync(fd) };
                        if busy > 0 {
                            spin(busy);
                        }
                    }
                    "uring-link" | "uring-link-async" | "uring-dsync" | "uring-sync-only" => {
                        // SAFETY: the entries point at `payload`, alive until the
                        // completions are reaped below; write(2) on the open file.
                        unsafe {
                            let mut sq = r.submission();
                            match mode {
                                "uring-dsync" => {
                                    sq.push(
                                        &opcode::Write::new(types::Fd(fd), payload.as_ptr(), bytes as u32)
                                            .offset(u64::MAX)
                                            .rw_flags(libc::RWF_DSYNC)
                                            .build()
                                            .user_data(1),
                                    )
                                    .unwrap();
                                }
                                "uring-sync-only" => {
                                    drop(sq);
                                    libc::write(fd, payload.as_ptr() as *const _, payload.len());
                                    sq = r.submission();
                                    sq.push(&opcode::Fsync::new(types::Fd(fd)).flags(types::FsyncFlags::DATASYNC).build().user_data(1)).unwrap();
                                }
                                _ => {
                                    let mut fl = squeue::Flags::IO_LINK;
                                    if mode == "uring-link-async" {
                                        fl |= squeue::Flags::ASYNC;
                                    }
                                    sq.push(&opcode::Write::new(types::Fd(fd), payload.as_ptr(), bytes as u32).offset(u64::MAX).build().flags(fl).user_data(2))
                                        .unwrap();
                                    sq.push(&opcode::Fsync::new(types::Fd(fd)).flags(types::FsyncFlags::DATASYNC).build().user_data(1)).unwrap();
                                }
                            }
                        }
                        r.submit().unwrap();
                        if busy > 0 {
                            spin(busy);
                        }
                        loop {
                            let mut got = false;
                            r.submit_and_wait(1).unwrap();
                            for c in r.completion() {
                                if c.user_data() == 1 {
                                    got = true;
                                    assert!(c.result() >= 0, "res {}", c.result());
                                }
                            }
                            if got {
                                break;
                            }
                        }
                    }
                    "thread-futex" => {
                        let v = (i + 1) as u32;
                        word.store(v, Ordering::Release);
                        futex_wake(&word);
                        if busy > 0 {
                            spin(busy);
                        }
                        while done.load(Ordering::Acquire) != v {
                            futex_wait(&done, done.load(Ordering::Acquire));
                        }
                    }
                    _ => unreachable!(),
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
            let r1 = rusage();
            if let Some(th) = th {
                word.store(u32::MAX, Ordering::Release);
                futex_wake(&word);
                th.join().unwrap();
            }
            let _ = std::fs::remove_file(&path);
            lat.sort();
            let nn = n as f64;
            let busy_cpu = busy as f64; // the spin's CPU is the caller's: subtract
            println!(
                "{:<18} {:>9.1} {:>9.1} {:>9.1} {:>8.2} {:>8} {:>8}  (round {})",
                mode,
                (r1.0 - r0.0 + r1.1 - r0.1) / nn - busy_cpu,
                (r1.0 - r0.0) / nn,
                (r1.1 - r0.1) / nn,
                ((r1.2 - r0.2) + (r1.3 - r0.3)) as f64 / nn,
                lat[n / 2],
                lat[n * 99 / 100],
                round
            );
        }
    }
}
