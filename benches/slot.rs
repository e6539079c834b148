//! Hash-slot computation (CRC16/XMODEM, Redis Cluster's keyHashSlot): run for
//! every keyed command to find the owning shard.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv::shard::slot::{crc16, key_shard, key_slot};

fn slot(c: &mut Criterion) {
    let mut group = c.benchmark_group("key_slot");
    group.throughput(Throughput::Elements(1));
    let short: &[u8] = b"key:000000123456";
    group.bench_function("key_16B", |b| b.iter(|| key_slot(black_box(short))));
    let tagged: &[u8] = b"{user1000}.following";
    group.bench_function("hashtag", |b| b.iter(|| key_slot(black_box(tagged))));
    let long = [b'k'; 64];
    group.bench_function("key_64B", |b| b.iter(|| key_slot(black_box(&long))));
    group.bench_function("key_shard_16B_4_shards", |b| b.iter(|| key_shard(black_box(short), 4)));
    group.bench_function("key_shard_16B_1_shard", |b| b.iter(|| key_shard(black_box(short), 1)));
    group.finish();

    let mut group = c.benchmark_group("crc16");
    let data = vec![0x5au8; 4096];
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("4KiB", |b| b.iter(|| crc16(black_box(&data))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = slot
}
criterion_main!(benches);
