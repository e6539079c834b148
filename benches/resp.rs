//! RESP parsing and reply encoding: the per-request work before and after a
//! command runs. Figures are per command (or per reply).

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv::protocol::{parse_command, Args, ParseLimits, Reply};

fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse(c: &mut Criterion) {
    let limits = ParseLimits::default();
    let mut args = Args::new();
    let mut group = c.benchmark_group("parse");

    let get = resp_command(&[b"GET", b"key:000000123456"]);
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_single", |b| {
        b.iter(|| {
            let used = parse_command(black_box(&get), &mut args, &limits).unwrap().unwrap();
            black_box((used, args.len()))
        })
    });

    let value = [b'x'; 32];
    let set = resp_command(&[b"SET", b"key:000000123456", &value]);
    group.bench_function("set_single_32B", |b| {
        b.iter(|| {
            let used = parse_command(black_box(&set), &mut args, &limits).unwrap().unwrap();
            black_box((used, args.len()))
        })
    });

    // What redis-benchmark -P 16 sends: 16 SETs in one read.
    let mut pipeline = Vec::new();
    for i in 0..16 {
        let key = format!("key:{:012}", i * 7919);
        pipeline.extend_from_slice(&resp_command(&[b"SET", key.as_bytes(), &value]));
    }
    group.throughput(Throughput::Elements(16));
    group.bench_function("set_pipeline_16", |b| {
        b.iter(|| {
            let mut buf = black_box(&pipeline[..]);
            let mut commands = 0;
            while let Some(used) = parse_command(buf, &mut args, &limits).unwrap() {
                commands += args.len();
                buf = &buf[used..];
            }
            black_box(commands)
        })
    });

    let inline = b"SET key:000000123456 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n".to_vec();
    group.throughput(Throughput::Elements(1));
    group.bench_function("set_inline", |b| {
        b.iter(|| {
            let used = parse_command(black_box(&inline), &mut args, &limits).unwrap().unwrap();
            black_box((used, args.len()))
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let value = [b'v'; 32];
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for resp in [2u8, 3u8] {
        group.bench_function(format!("ok_resp{}", resp), |b| {
            b.iter(|| {
                buf.clear();
                Reply::new(&mut buf, resp).ok();
                black_box(buf.len())
            })
        });
        group.bench_function(format!("bulk_32B_resp{}", resp), |b| {
            b.iter(|| {
                buf.clear();
                Reply::new(&mut buf, resp).bulk(black_box(&value));
                black_box(buf.len())
            })
        });
        group.bench_function(format!("int_resp{}", resp), |b| {
            b.iter(|| {
                buf.clear();
                Reply::new(&mut buf, resp).int(black_box(1_234_567_890));
                black_box(buf.len())
            })
        });
        group.bench_function(format!("null_resp{}", resp), |b| {
            b.iter(|| {
                buf.clear();
                Reply::new(&mut buf, resp).null();
                black_box(buf.len())
            })
        });
        // An MGET-like reply: 10 bulk strings.
        group.bench_function(format!("array_10_bulk_resp{}", resp), |b| {
            b.iter(|| {
                buf.clear();
                let mut r = Reply::new(&mut buf, resp);
                r.array(10);
                for _ in 0..10 {
                    r.bulk(black_box(&value));
                }
                black_box(buf.len())
            })
        });
        // A map reply (HGETALL/CONFIG GET shape): %n in RESP3, a 2n array in RESP2.
        group.bench_function(format!("map_5_resp{}", resp), |b| {
            b.iter(|| {
                buf.clear();
                let mut r = Reply::new(&mut buf, resp);
                r.map(5);
                for i in 0..5 {
                    r.bulk(b"field");
                    r.bulk_int(black_box(i));
                }
                black_box(buf.len())
            })
        });
        group.bench_function(format!("double_resp{}", resp), |b| {
            b.iter(|| {
                buf.clear();
                Reply::new(&mut buf, resp).double(black_box(1.5e-7));
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = parse, encode
}
criterion_main!(benches);
