//! What a BGSAVE child spends its time on: encoding key/value pairs into RDB
//! (with and without LZF), the CRC-64/Jones checksum, and LZF itself. Redis
//! 7.0's child was measured CPU-bound on exactly these (DESIGN.md), so these
//! are the numbers that bound snapshot time.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv::persistence::lzf;
use ringkv::persistence::rdb::Encoder;
use ringkv::shard::{Entry, Value};

/// `key:%012d` keys with values of `value_bytes`: `abcdefgh` repeated
/// (compressible), pseudo-random hex digits (as perf/bgsave.sh fills them;
/// LZF finds short matches and saves nothing), or pseudo-random printable
/// bytes (no matches).
#[derive(Clone, Copy, PartialEq)]
enum Values {
    Compressible,
    Hex,
    Random,
}

fn dataset(n: usize, value_bytes: usize, kind: Values) -> Vec<(Vec<u8>, Entry)> {
    let mut seed = 0x2545F4914F6CDD1Du64;
    (0..n)
        .map(|i| {
            let value: Vec<u8> = (0..value_bytes)
                .map(|j| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    match kind {
                        Values::Compressible => b"abcdefgh"[j % 8],
                        Values::Hex => b"0123456789abcdef"[(seed % 16) as usize],
                        Values::Random => b'!' + (seed % 90) as u8,
                    }
                })
                .collect();
            (format!("key:{:012}", i).into_bytes(), Entry { value: Value::from_vec(value), expire_at_ms: -1, access_ms: 0 })
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    for (name, value_bytes, kind) in [
        ("64B_random", 64, Values::Random),
        ("64B_hex", 64, Values::Hex),
        ("1KiB_random", 1024, Values::Random),
        ("1KiB_hex", 1024, Values::Hex),
        ("1KiB_compressible", 1024, Values::Compressible),
    ] {
        let data = dataset(10_000, value_bytes, kind);
        let raw_bytes: usize = data.iter().map(|(k, _)| k.len() + value_bytes).sum();
        let mut group = c.benchmark_group(format!("rdb_encode_{}", name));
        group.throughput(Throughput::Bytes(raw_bytes as u64));
        for compress in [false, true] {
            let mut enc = Encoder::new(compress, raw_bytes * 2);
            group.bench_function(if compress { "lzf" } else { "plain" }, |b| {
                b.iter(|| {
                    enc.buf.clear();
                    for (k, e) in &data {
                        enc.save_pair(k, e);
                    }
                    black_box(enc.buf.len())
                })
            });
        }
        group.finish();
    }
}

fn crc64(c: &mut Criterion) {
    let data = vec![0x5au8; 1 << 20];
    let mut group = c.benchmark_group("crc64_jones");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("1MiB", |b| b.iter(|| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, black_box(&data))));
    group.finish();
}

fn lzf_codec(c: &mut Criterion) {
    let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog; ".iter().cycle().take(4096).copied().collect();
    let mut comp = lzf::Compressor::default();
    let mut out = vec![0u8; text.len()];
    let n = comp.compress(&text, &mut out);
    let compressed = out[..n].to_vec();
    let mut group = c.benchmark_group("lzf_4KiB_text");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("compress", |b| b.iter(|| comp.compress(black_box(&text), &mut out)));
    group.bench_function("decompress", |b| b.iter(|| lzf::decompress(black_box(&compressed), text.len()).unwrap()));
    group.finish();
    // Small values: where a compressor that clears its table per call loses.
    let small: Vec<u8> = b"value-000123-abcabcabcabc".to_vec();
    let mut small_out = vec![0u8; small.len()];
    let mut group = c.benchmark_group("lzf_25B");
    group.throughput(Throughput::Elements(1));
    group.bench_function("compress", |b| b.iter(|| comp.compress(black_box(&small), &mut small_out)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = encode, crc64, lzf_codec
}
criterion_main!(benches);
