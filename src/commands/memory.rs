//! MEMORY USAGE (Redis 7.0's object.c `memoryCommand`): the bytes a key
//! and its value take, the aggregates estimated from a sample of their
//! elements as Redis's `objectComputeSize` does (SAMPLES, default 5, 0 for
//! all). The figures are ringkv's own allocation sizes: comparable with
//! Redis's, not equal.

use super::string::cstr;
use super::{err, flags::*, CommandSpec, Ctx, Route};

#[path = "memory_doctor.rs"]
pub(crate) mod doctor;
use crate::protocol::Reply;
use crate::shard::Value;
use crate::types::{Hash, Set, ZSet};
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("memory", -2, 0, memory_help).acl(&["@slow"]).doc("4.0.0", "A container for memory diagnostics commands"),
        CommandSpec::new("memory|usage", -3, READONLY, memory_usage).keys(2, 2, 1).acl(&["@read", "@slow"]).doc("4.0.0", "Estimate the memory usage of a key"),
        CommandSpec::new("memory|help", 2, LOADING | STALE, memory_help).acl(&["@slow"]).doc("4.0.0", "Show helpful text about the different subcommands"),
        // DOCTOR reads every shard's clients (their buffers).
        CommandSpec::new("memory|doctor", 2, 0, doctor::memory_doctor).route(Route::All).acl(&["@slow"]).doc("4.0.0", "Outputs memory problems report"),
        CommandSpec::new("memory|malloc-stats", 2, 0, doctor::memory_malloc_stats).acl(&["@slow"]).doc("4.0.0", "Show allocator internal stats"),
        CommandSpec::new("memory|stats", 2, 0, doctor::memory_stats).route(Route::All).acl(&["@slow"]).doc("4.0.0", "Show memory usage details"),
        CommandSpec::new("memory|purge", 2, 0, doctor::memory_purge).acl(&["@slow"]).doc("4.0.0", "Ask the allocator to release memory"),
    ]
}

fn memory_help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    const HELP: &[&str] = &[
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return memory problems reports.",
        "MALLOC-STATS",
        "    Return internal statistics report from the memory allocator.",
        "PURGE",
        "    Attempt to purge dirty pages for reclamation by the allocator.",
        "STATS",
        "    Return information about the memory usage of the server.",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
        "HELP",
        "    Prints this help.",
    ];
    super::client::reply_help(r, HELP);
}

/// Elements sampled by default (Redis's `OBJ_COMPUTE_SIZE_DEF_SAMPLES`).
const DEFAULT_SAMPLES: usize = 5;
/// What a boxed byte string costs besides its bytes (pointer and length).
const BOX_BYTES: usize = 16;
/// A dict slot: key box, `Entry` (value, expiry, access time).
pub(super) const SLOT_BYTES: usize = 56;

fn memory_usage(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut samples = DEFAULT_SAMPLES;
    let mut j = 3;
    while j < args.len() {
        if eq_ic(cstr(args[j]), "samples") && j + 1 < args.len() {
            let Some(n) = super::parse_i64(args[j + 1]) else {
                return r.error(err::NOT_INTEGER);
            };
            if n < 0 {
                return r.error(err::SYNTAX);
            }
            samples = if n == 0 { usize::MAX } else { n as usize };
            j += 2;
        } else {
            return r.error(err::SYNTAX);
        }
    }
    let key = args[2];
    // Redis 7.0's memoryCommand finds the key in the dictionary itself: no
    // expiry (an expired key not yet deleted is measured and stays), no
    // keyspace hit or miss counted.
    match ctx.db(key).map.get(key) {
        Some(e) => r.int((value_bytes(&e.value, samples) + key.len() + SLOT_BYTES) as i64),
        None => r.null(),
    }
}

/// The average of `f` over the first `samples` items, times `len`.
fn estimate<T>(items: impl Iterator<Item = T>, len: usize, samples: usize, f: impl Fn(T) -> usize) -> usize {
    let (mut n, mut sum) = (0usize, 0usize);
    for it in items.take(samples) {
        sum += f(it);
        n += 1;
    }
    sum.checked_div(n).map_or(0, |average| average * len)
}

/// A value's bytes (`objectComputeSize`).
pub fn value_bytes(v: &Value, samples: usize) -> usize {
    match v {
        Value::Int(_) => 0,
        Value::Str { bytes, .. } => bytes.capacity(),
        Value::Hash(h) => match h {
            Hash::Listpack(lp) => lp.total_bytes(),
            // The pairs (two varints and the bytes), then the entry vector
            // and the index.
            Hash::Table(t) => estimate(t.iter(), t.len(), samples, |(f, v)| f.len() + v.len() + 2) + t.table_bytes(),
        },
        Value::Set(s) => match s {
            Set::Intset(is) => is.total_bytes(),
            // The members (a varint and the bytes), then the entry vector
            // and the index.
            Set::Table(t) => estimate(t.iter(), t.len(), samples, |m| m.len() + 1) + t.table_bytes(),
        },
        Value::ZSet(z) => match z {
            ZSet::Listpack(lp) => lp.total_bytes(),
            // Member, score, slab and table slots, tree item.
            ZSet::Tree(t) => estimate(t.iter(), t.len(), samples, |(m, _)| m.len() + BOX_BYTES + 8 + 4 + 12),
        },
        Value::List(q) => {
            let nodes = q.nodes().len();
            // A node's listpack and its handle in the deque.
            estimate(q.nodes(), nodes, samples, |n| n.as_bytes().len() + 32) + 48
        }
        Value::Stream(s) => crate::types::stream_persist::memory_usage(s, samples),
    }
}
