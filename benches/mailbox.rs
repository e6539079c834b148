//! Cross-shard mailboxes (`ringkv::shard::mailbox::mesh`, rtrb SPSC rings):
//! a request from shard 0 executed "remotely" by shard 1 and the reply coming
//! back, the way a keyed command for a key owned by another shard travels.
//! Both threads spin (no doorbell): this is the queue's own cost, the lower
//! bound under the io_uring MSG_RING doorbell measured in the server.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv::shard::mailbox::{mesh, ConnToken, Message, PackedArgs};

const CAPACITY: usize = 4096;

/// Shard 1's side: answers every request with a reply carrying the same
/// argument buffer back (as the server does, so nothing is allocated per trip).
fn spawn_echo(mut outbox: ringkv::shard::mailbox::Outbox, mut inbox: rtrb::Consumer<Message>, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        pin_to_core(1);
        let mut spins = 0;
        while !stop.load(Ordering::Relaxed) {
            match inbox.pop() {
                Ok(Message::Request { conn, seq, args, .. }) => {
                    outbox.send(Message::Reply { conn, seq, args });
                    outbox.flush_overflow();
                }
                Ok(_) => {}
                Err(_) => backoff(&mut spins),
            }
        }
    })
}

/// Pins the calling thread to `core` when the machine has more than one core,
/// so the two spinning threads do not share one (figures would then measure
/// the scheduler, not the queue).
fn pin_to_core(core: usize) {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return;
    }
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) affects only this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Busy-waits, but lets the scheduler run something else after a long wait:
/// on a quiet machine a round trip never gets there; on a busy one it keeps a
/// descheduled peer from costing a whole time slice per message.
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if spins.is_multiple_of(4096) {
        thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

fn request(seq: u64, args: PackedArgs) -> Message {
    Message::Request { from: 0, conn: ConnToken { index: 7, generation: 1 }, seq, db: 0, fd: -1, resp: 2, cmd: 1, client: 0, track: false, args }
}

fn mailbox(c: &mut Criterion) {
    let mut shards = mesh(2, CAPACITY).into_iter();
    let (mut out0, mut in0) = shards.next().unwrap();
    let (mut out1, mut in1) = shards.next().unwrap();
    let mut to_1 = out0[1].take().unwrap();
    let mut from_1 = in0[1].take().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    pin_to_core(0);
    let echo = spawn_echo(out1[0].take().unwrap(), in1[0].take().unwrap(), stop.clone());

    // Argument buffers circulate: packed once, reused for every trip.
    let mut spare: Vec<PackedArgs> = (0..64)
        .map(|_| {
            let mut a = PackedArgs::default();
            a.pack([&b"GET"[..], b"key:000000123456"].into_iter());
            a
        })
        .collect();

    let mut group = c.benchmark_group("mailbox");
    group.throughput(Throughput::Elements(1));
    // One message in flight: the latency of a hop there and back.
    group.bench_function("round_trip_1", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for seq in 0..iters {
                to_1.send(request(seq, spare.pop().unwrap()));
                let mut spins = 0;
                loop {
                    match from_1.pop() {
                        Ok(Message::Reply { seq: s, args, .. }) => {
                            debug_assert_eq!(s, seq);
                            spare.push(args);
                            break;
                        }
                        Ok(_) => unreachable!(),
                        Err(_) => backoff(&mut spins),
                    }
                }
            }
            start.elapsed()
        })
    });
    // 32 in flight, as when one loop turn forwards a pipeline: throughput per message.
    const BATCH: u64 = 32;
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("round_trip_batch_32", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for seq in 0..BATCH {
                    to_1.send(request(seq, spare.pop().unwrap()));
                }
                let mut got = 0;
                let mut spins = 0;
                while got < BATCH {
                    match from_1.pop() {
                        Ok(Message::Reply { args, .. }) => {
                            spare.push(args);
                            got += 1;
                        }
                        Ok(_) => unreachable!(),
                        Err(_) => backoff(&mut spins),
                    }
                }
            }
            start.elapsed()
        })
    });
    group.finish();

    stop.store(true, Ordering::Relaxed);
    echo.join().unwrap();
    black_box(spare.len());
}

/// Packing a command's arguments into a reused buffer (done for every forwarded command).
fn pack(c: &mut Criterion) {
    let mut args = PackedArgs::default();
    let value = [b'x'; 32];
    c.bench_function("packed_args/pack_set_32B", |b| {
        b.iter(|| {
            args.pack([&b"SET"[..], b"key:000000123456", black_box(&value)].into_iter());
            black_box(args.data.len())
        })
    });
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = mailbox, pack
}
criterion_main!(benches);
