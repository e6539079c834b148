//! MEMORY DOCTOR, STATS, MALLOC-STATS and PURGE (Redis 7.0's object.c
//! `memoryCommand`, `getMemoryDoctorReport`, `getMemoryOverheadData`; zmalloc.c `jemalloc_purge`).
//! The doctor's conditions are Redis's, computed from ringkv's own figures
//! (INFO memory's used, peak, RSS and jemalloc's allocated/active/resident;
//! the clients' buffers of every shard; the script cache). ringkv has no
//! replica output buffers of its own to judge: that condition is never met.

use std::ffi::{c_char, c_void, CStr};

use super::super::info::{allocator_name, memory_figures, ratio};
use super::super::Ctx;
use crate::protocol::Reply;

const MB: u64 = 1024 * 1024;

/// The report's parts, in Redis's order (each with its condition).
const PEAK: &str = " * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n";
const FRAG_HEAD: &str = " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"";
const ALLOC_FRAG: &str = " * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n";
const ALLOC_RSS: &str = " * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n";
const PROC_RSS: &str = " * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n";
const CLIENT_BUF: &str = " * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n";
const MANY_SCRIPTS: &str = " * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n";

/// The figures the doctor judges.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Figures {
    used: u64,
    peak: u64,
    rss: u64,
    allocated: u64,
    active: u64,
    resident: u64,
    /// Normal clients' buffers (query and output), and their number.
    client_bytes: u64,
    clients: u64,
    scripts: u64,
}

/// Redis's `getMemoryDoctorReport` over `f`.
fn report(f: &Figures) -> String {
    if f.used < 5 * MB {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. \
                Please, leave for your mission on Earth and fill it with some data. \
                The new Sam and I will be back to our programming as soon as I finished rebooting.\n"
            .to_string();
    }
    // (ratio, bytes) over a limit, as Redis's float comparisons.
    let over = |a: u64, b: u64, limit: f64| ratio(a, b) > limit && a as i64 - b as i64 > 10 << 20;
    let mut s = String::new();
    if f.peak as f64 / f.used as f64 > 1.5 {
        s.push_str(PEAK);
    }
    if over(f.rss, f.used, 1.4) {
        s.push_str(FRAG_HEAD);
        s.push_str(&allocator_name());
        s.push_str("\".\n\n");
    }
    if over(f.active, f.allocated, 1.1) {
        s.push_str(ALLOC_FRAG);
    }
    if over(f.resident, f.active, 1.1) {
        s.push_str(ALLOC_RSS);
    }
    if over(f.rss, f.resident, 1.1) {
        s.push_str(PROC_RSS);
    }
    if f.clients > 0 && f.client_bytes / f.clients > 200 * 1024 {
        s.push_str(CLIENT_BUF);
    }
    if f.scripts > 1000 {
        s.push_str(MANY_SCRIPTS);
    }
    if s.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".to_string();
    }
    s.insert_str(0, "Sam, I detected a few issues in this Redis instance memory implants:\n\n");
    s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    s
}

pub(super) fn memory_doctor(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let m = memory_figures();
    let mut f = Figures {
        used: m.used,
        peak: m.peak,
        rss: m.rss,
        allocated: m.allocated,
        active: m.active,
        resident: m.resident,
        scripts: crate::scripting::STATS.scripts.load(std::sync::atomic::Ordering::Relaxed) as u64,
        ..Default::default()
    };
    (f.client_bytes, f.clients) = normal_clients_memory(ctx);
    r.verbatim(report(&f).as_bytes());
}

/// Normal clients' memory (`tot-mem`, Redis's `clients_normal`) over every shard, and their number.
pub fn normal_clients_memory(ctx: &Ctx) -> (u64, u64) {
    let (mut bytes, mut n) = (0u64, 0u64);
    for s in 0..ctx.shard_count {
        for info in ctx.shard(s).clients.iter().flatten() {
            bytes += info.mem.total() as u64;
            n += 1;
        }
    }
    (bytes, n)
}

/// Redis's float figures (`(float)a/b`), replied as doubles.
fn float_ratio(a: u64, b: u64) -> f64 {
    (a as f32 / b.max(1) as f32) as f64
}

/// MEMORY STATS (Redis's `getMemoryOverheadData`). The per-database hash
/// table overheads are ringkv's: a key's slot (`memory::SLOT_BYTES`) and a
/// TTL index entry (`shard::dict`) per key with an expiry; no replication backlog, replica
/// or AOF buffers are counted apart (INFO memory's zeros).
pub(super) fn memory_stats(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let m = memory_figures();
    let (clients, _) = normal_clients_memory(ctx);
    let lua = crate::scripting::STATS.body_bytes.load(std::sync::atomic::Ordering::Relaxed) as u64;
    let mut dbs: Vec<(usize, u64, u64, u64)> = Vec::new();
    for db in 0..ctx.config().databases {
        let (mut keys, mut expires) = (0usize, 0usize);
        for s in 0..ctx.shard_count {
            if let Some(d) = ctx.shard(s).dbs.get(db) {
                keys += d.len();
                expires += d.expires_len();
            }
        }
        if keys > 0 {
            dbs.push((db, keys as u64, (keys * super::SLOT_BYTES) as u64, (expires * TTL_ENTRY_BYTES) as u64));
        }
    }
    let total_keys: u64 = dbs.iter().map(|d| d.1).sum();
    let overhead = m.startup + clients + lua + dbs.iter().map(|d| d.2 + d.3).sum::<u64>();
    let net = if m.used > m.startup { m.used - m.startup } else { 1 };
    let dataset = m.used.saturating_sub(overhead);
    r.map(27 + dbs.len());
    for (name, v) in [
        ("peak.allocated", m.peak),
        ("total.allocated", m.used),
        ("startup.allocated", m.startup),
        ("replication.backlog", 0),
        ("clients.slaves", 0),
        ("clients.normal", clients),
        ("cluster.links", 0),
        ("aof.buffer", 0),
        ("lua.caches", lua),
        ("functions.caches", 0),
    ] {
        r.bulk(name.as_bytes());
        r.int(v as i64);
    }
    for (db, _, main, expires) in &dbs {
        r.bulk(format!("db.{db}").as_bytes());
        r.map(3);
        r.bulk(b"overhead.hashtable.main");
        r.int(*main as i64);
        r.bulk(b"overhead.hashtable.expires");
        r.int(*expires as i64);
        r.bulk(b"overhead.hashtable.slot-to-keys");
        r.int(0);
    }
    let int = |r: &mut Reply, name: &str, v: i64| {
        r.bulk(name.as_bytes());
        r.int(v);
    };
    let double = |r: &mut Reply, name: &str, v: f64| {
        r.bulk(name.as_bytes());
        r.double(v);
    };
    int(r, "overhead.total", overhead as i64);
    int(r, "keys.count", total_keys as i64);
    int(r, "keys.bytes-per-key", net.checked_div(total_keys).unwrap_or(0) as i64);
    int(r, "dataset.bytes", dataset as i64);
    double(r, "dataset.percentage", float_ratio(dataset * 100, net));
    double(r, "peak.percentage", float_ratio(m.used * 100, m.peak));
    int(r, "allocator.allocated", m.allocated as i64);
    int(r, "allocator.active", m.active as i64);
    int(r, "allocator.resident", m.resident as i64);
    double(r, "allocator-fragmentation.ratio", float_ratio(m.active, m.allocated));
    int(r, "allocator-fragmentation.bytes", m.active as i64 - m.allocated as i64);
    double(r, "allocator-rss.ratio", float_ratio(m.resident, m.active));
    int(r, "allocator-rss.bytes", m.resident as i64 - m.active as i64);
    double(r, "rss-overhead.ratio", float_ratio(m.rss, m.resident));
    int(r, "rss-overhead.bytes", m.rss as i64 - m.resident as i64);
    double(r, "fragmentation", float_ratio(m.rss, m.used));
    int(r, "fragmentation.bytes", m.rss as i64 - m.used as i64);
}

/// What a key's entry in the TTL index costs (its slot's position; the
/// deadline is in the slot, counted in `SLOT_BYTES`).
const TTL_ENTRY_BYTES: usize = std::mem::size_of::<u32>();

/// jemalloc's `malloc_stats_print` writer: appends to the String.
extern "C" fn append(out: *mut c_void, text: *const c_char) {
    // SAFETY: `out` is the `&mut String` memory_malloc_stats passed, alive
    // for the call; jemalloc passes a NUL-terminated string.
    let (out, text) = unsafe { (&mut *(out as *mut String), CStr::from_ptr(text)) };
    out.push_str(&text.to_string_lossy());
}

pub(super) fn memory_malloc_stats(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let mut out = String::new();
    // SAFETY: the writer gets `out`, which outlives the call; no options.
    unsafe { tikv_jemalloc_sys::malloc_stats_print(Some(append), &mut out as *mut String as *mut c_void, std::ptr::null()) };
    r.verbatim(out.as_bytes());
}

/// Redis's `jemalloc_purge`: every arena's dirty pages back to the system.
fn purge() -> bool {
    let Ok(arenas) = tikv_jemalloc_ctl::arenas::narenas::read() else { return false };
    let name = format!("arena.{arenas}.purge\0");
    // SAFETY: a NUL-terminated mallctl name; purge takes and gives nothing.
    let rc = unsafe { tikv_jemalloc_sys::mallctl(name.as_ptr() as *const c_char, std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0) };
    rc == 0
}

pub(super) fn memory_purge(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    if purge() {
        r.simple("OK");
    } else {
        r.error("ERR Error purging dirty pages");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Figures {
        Figures {
            used: 100 * MB,
            peak: 100 * MB,
            rss: 110 * MB,
            allocated: 100 * MB,
            active: 102 * MB,
            resident: 105 * MB,
            client_bytes: 40_000,
            clients: 2,
            scripts: 3,
        }
    }

    #[test]
    fn empty_and_healthy() {
        let empty = Figures { used: 4 * MB, peak: 90 * MB, ..healthy() };
        assert!(report(&empty).starts_with("Hi Sam, this instance is empty"));
        assert_eq!(report(&healthy()), "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n");
    }

    #[test]
    fn each_condition_reported_in_order() {
        let f =
            Figures { peak: 151 * MB, rss: 200 * MB, active: 120 * MB, resident: 140 * MB, client_bytes: 500 * 1024, clients: 2, scripts: 1001, ..healthy() };
        let s = report(&f);
        assert!(s.starts_with("Sam, I detected a few issues in this Redis instance memory implants:\n\n * Peak memory:"), "{s}");
        assert!(s.ends_with("I'm here to keep you safe, Sam. I want to help you.\n"), "{s}");
        let order = [
            " * Peak memory",
            " * High total RSS",
            " * High allocator fragmentation",
            " * High allocator RSS",
            " * High process RSS",
            " * Big client",
            " * Many scripts",
        ];
        let at: Vec<usize> = order.iter().map(|p| s.find(p).unwrap_or_else(|| panic!("{p} missing: {s}"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{s}");
        assert!(s.contains(&format!("Note: The currently used allocator is \"{}\".\n\n", allocator_name())));
        // A ratio over its limit by fewer than 10 MB is no issue.
        let small = Figures { used: 6 * MB, peak: 6 * MB, allocated: 6 * MB, active: 8 * MB, resident: 9 * MB, rss: 12 * MB, ..healthy() };
        assert!(report(&small).starts_with("Hi Sam, I can't find"), "{}", report(&small));
    }
}
