//! INFO, with Redis 7.0's sections, field names and formatting: `# Section`
//! headers, CRLF lines, a blank line between sections. Counters are the sum of
//! every shard's `ShardStats` (INFO holds all shards, Route::All).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{flags::*, CommandSpec, CommandTable, Ctx, Route};
use crate::metrics::histogram::LatencyHistogram;
use crate::metrics::CommandStat;
use crate::protocol::Reply;

/// The Redis version ringkv reports: clients gate features on it.
pub const REDIS_VERSION: &str = "7.0.15";

pub fn commands() -> Vec<CommandSpec> {
    vec![CommandSpec::new("info", -1, LOADING | STALE, info)
        .route(Route::All)
        .group("server")
        .doc("1.0.0", "Get information and statistics about the server")
        .acl(&["slow", "dangerous"])]
}

/// Sections in output order; `true` for those `INFO` / `INFO default` shows.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("snapshot", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
];

fn info(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut wanted = [false; SECTIONS.len()];
    if args.len() == 1 {
        for (i, (_, default)) in SECTIONS.iter().enumerate() {
            wanted[i] = *default;
        }
    }
    for a in &args[1..] {
        let a = String::from_utf8_lossy(a).to_ascii_lowercase();
        match a.as_str() {
            "default" => SECTIONS.iter().enumerate().for_each(|(i, (_, d))| wanted[i] |= *d),
            // ringkv has no module sections, so "everything" is "all".
            "all" | "everything" => wanted = [true; SECTIONS.len()],
            name => {
                if let Some(i) = SECTIONS.iter().position(|(n, _)| *n == name) {
                    wanted[i] = true;
                }
            }
        }
    }
    // Grown as the text is (as Redis's sds): the memory section's
    // `used_memory` counts this buffer as it is then. Reserved at 4 KiB
    // up front it made every INFO read 4 KiB over what eviction had
    // brought used memory down to, the whole margin of the TCL unit
    // maxmemory's "used_memory < limit + 4096" (Redis's is ~2 KiB there).
    let mut out = String::new();
    for (i, (name, _)) in SECTIONS.iter().enumerate() {
        if !wanted[i] {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        section(ctx, name, &mut out);
    }
    r.verbatim(out.as_bytes());
}

/// Appends one `field:value` line.
macro_rules! field {
    ($out:expr, $name:expr, $($arg:tt)*) => {{
        let _ = write!($out, "{}:", $name);
        let _ = write!($out, $($arg)*);
        $out.push_str("\r\n");
    }};
}

fn section(ctx: &Ctx, name: &str, out: &mut String) {
    match name {
        "server" => server(ctx, out),
        "clients" => clients(ctx, out),
        "memory" => memory(ctx, out),
        "persistence" => persistence(ctx, out),
        "snapshot" => snapshot(ctx, out),
        "stats" => stats(ctx, out),
        "replication" => replication(ctx, out),
        "cpu" => cpu(out),
        "modules" => out.push_str("# Modules\r\n"),
        "commandstats" => commandstats(ctx, out),
        "errorstats" => errorstats(ctx, out),
        "latencystats" => latencystats(ctx, out),
        "cluster" => {
            out.push_str("# Cluster\r\n");
            let enabled = ctx.config().others.get("cluster-enabled").is_some_and(|v| v == "yes");
            field!(out, "cluster_enabled", "{}", enabled as u8);
        }
        "keyspace" => keyspace(ctx, out),
        _ => {}
    }
}

fn uname() -> String {
    // SAFETY: utsname is plain data filled in by the kernel.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return "Linux".into();
        }
        let s = |f: &[libc::c_char]| std::ffi::CStr::from_ptr(f.as_ptr()).to_string_lossy().into_owned();
        format!("{} {} {}", s(&u.sysname), s(&u.release), s(&u.machine))
    }
}

fn server(ctx: &Ctx, out: &mut String) {
    let s = ctx.server;
    let c = ctx.config();
    let now_us = crate::util::unix_us();
    let uptime = s.uptime_seconds();
    out.push_str("# Server\r\n");
    field!(out, "redis_version", "{}", REDIS_VERSION);
    field!(out, "ringkv_version", "{}", env!("CARGO_PKG_VERSION"));
    field!(out, "redis_git_sha1", "00000000");
    field!(out, "redis_git_dirty", "0");
    field!(out, "redis_build_id", "{}", build_id());
    field!(out, "redis_mode", "standalone");
    field!(out, "os", "{}", uname());
    field!(out, "arch_bits", "{}", usize::BITS);
    field!(out, "monotonic_clock", "POSIX clock_gettime");
    field!(out, "multiplexing_api", "io_uring");
    field!(out, "atomicvar_api", "c11-builtin");
    field!(out, "gcc_version", "0.0.0");
    field!(out, "process_id", "{}", s.pid);
    field!(out, "process_supervised", "no");
    field!(out, "run_id", "{}", s.run_id);
    field!(out, "tcp_port", "{}", s.tcp_port.load(Ordering::Relaxed));
    field!(out, "server_time_usec", "{}", now_us);
    field!(out, "uptime_in_seconds", "{}", uptime);
    field!(out, "uptime_in_days", "{}", uptime / 86400);
    field!(out, "hz", "{}", c.hz);
    field!(out, "configured_hz", "{}", c.hz);
    field!(out, "lru_clock", "{}", (now_us / 1_000_000) & ((1 << 24) - 1));
    field!(out, "executable", "{}", s.executable);
    field!(out, "config_file", "{}", c.config_file.as_deref().unwrap_or(""));
    field!(out, "io_threads_active", "0");
    field!(out, "shard_threads", "{}", ctx.shard_count);
}

/// A stable hex id for this build (Redis prints a hash of its build).
fn build_id() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in concat!(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")).bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:x}", h)
}

fn clients(ctx: &Ctx, out: &mut String) {
    let (mut max_in, mut max_out) = (0usize, 0usize);
    let (mut blocked, mut in_timeout_table) = (0usize, 0usize);
    let mut waiting: Vec<(i32, bool)> = Vec::new();
    for i in 0..ctx.shard_count {
        for info in ctx.shard(i).clients.iter().flatten() {
            max_in = max_in.max(info.mem.qbuf());
            max_out = max_out.max(info.mem.out_pending);
            if let Some(w) = info.blocked.as_ref().filter(|_| !info.kill_requested) {
                waiting.push((info.fd, w.deadline_ms > 0));
            } else if info.paused && !info.kill_requested {
                blocked += 1;
            }
        }
    }
    // A blocked client whose peer hung up before this ran is gone, as in
    // Redis (its home thread may not have read the EOF yet).
    let gone = crate::messaging::blocking::hung_up(waiting.iter().map(|w| w.0));
    for (&(_, timeout), gone) in waiting.iter().zip(gone) {
        if !gone {
            blocked += 1;
            in_timeout_table += timeout as usize;
        }
    }
    out.push_str("# Clients\r\n");
    field!(out, "connected_clients", "{}", ctx.server.connected_clients.load(Ordering::Relaxed));
    field!(out, "cluster_connections", "0");
    field!(out, "maxclients", "{}", ctx.server.maxclients.load(Ordering::Relaxed));
    field!(out, "client_recent_max_input_buffer", "{}", max_in);
    field!(out, "client_recent_max_output_buffer", "{}", max_out);
    field!(out, "blocked_clients", "{}", blocked);
    field!(out, "tracking_clients", "{}", ctx.server.tracking.clients.load(Ordering::Relaxed));
    field!(out, "clients_in_timeout_table", "{}", in_timeout_table);
}

/// Redis's bytesToHuman.
pub fn bytes_to_human(n: u64) -> String {
    let d = n as f64;
    const K: f64 = 1024.0;
    if n < 1024 {
        format!("{}B", n)
    } else if d < K * K {
        format!("{:.2}K", d / K)
    } else if d < K * K * K {
        format!("{:.2}M", d / (K * K))
    } else if d < K * K * K * K {
        format!("{:.2}G", d / (K * K * K))
    } else if d < K * K * K * K * K {
        format!("{:.2}T", d / (K * K * K * K))
    } else {
        format!("{:.2}P", d / (K * K * K * K * K))
    }
}

static USED_MEMORY_PEAK: AtomicU64 = AtomicU64::new(0);
static USED_MEMORY_STARTUP: AtomicU64 = AtomicU64::new(0);

/// Redis's `used_memory` (also the RDB's `used-mem`): the allocator's
/// allocated bytes plus the big index tables mapped outside it (dict.rs).
pub fn used_memory_bytes(allocated: u64) -> u64 {
    allocated + crate::shard::dict::mapped_index_bytes()
}

/// jemalloc's (allocated, active, resident) after refreshing its statistics.
fn jemalloc_stats() -> (u64, u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    let allocated = stats::allocated::read().unwrap_or(0) as u64;
    let active = stats::active::read().unwrap_or(0) as u64;
    let resident = stats::resident::read().unwrap_or(0) as u64;
    (allocated, active, resident)
}

fn process_rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

fn total_system_memory() -> u64 {
    // SAFETY: sysinfo fills a plain struct.
    unsafe {
        let mut si: libc::sysinfo = std::mem::zeroed();
        if libc::sysinfo(&mut si) == 0 {
            si.totalram as u64 * si.mem_unit as u64
        } else {
            0
        }
    }
}

/// The memory figures INFO memory and MEMORY DOCTOR report (Redis's
/// `cron_malloc_stats` and used/peak memory), the peak brought up to date.
pub struct MemoryFigures {
    pub used: u64,
    pub peak: u64,
    pub startup: u64,
    pub rss: u64,
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
}

pub fn memory_figures() -> MemoryFigures {
    let (allocated, active, resident) = jemalloc_stats();
    let used = used_memory_bytes(crate::shard::memory::in_use(allocated));
    let rss = process_rss();
    let peak = USED_MEMORY_PEAK.fetch_max(used, Ordering::Relaxed).max(used);
    let _ = USED_MEMORY_STARTUP.compare_exchange(0, used, Ordering::Relaxed, Ordering::Relaxed);
    let startup = USED_MEMORY_STARTUP.load(Ordering::Relaxed).min(used);
    MemoryFigures { used, peak, startup, rss, allocated, active, resident }
}

/// INFO's `mem_allocator` (Redis's ZMALLOC_LIB), e.g. `jemalloc-5.3.0`.
pub fn allocator_name() -> String {
    let version = tikv_jemalloc_ctl::version::read().unwrap_or("5.3.0");
    format!("jemalloc-{}", version.split('-').next().unwrap_or("5.3.0"))
}

pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn memory(ctx: &Ctx, out: &mut String) {
    let c = ctx.config();
    let MemoryFigures { used, peak, startup, rss, allocated, active, resident } = memory_figures();
    // Overhead: what a server with no keys would use (the start-up footprint).
    let overhead = startup;
    let dataset = used.saturating_sub(overhead);
    let maxmemory: u64 = c.others.get("maxmemory").and_then(|v| v.parse().ok()).unwrap_or(0);
    let policy = c.others.get("maxmemory-policy").cloned().unwrap_or_else(|| "noeviction".into());
    let total_mem = total_system_memory();
    out.push_str("# Memory\r\n");
    field!(out, "used_memory", "{}", used);
    field!(out, "used_memory_human", "{}", bytes_to_human(used));
    field!(out, "used_memory_rss", "{}", rss);
    field!(out, "used_memory_rss_human", "{}", bytes_to_human(rss));
    field!(out, "used_memory_peak", "{}", peak);
    field!(out, "used_memory_peak_human", "{}", bytes_to_human(peak));
    field!(out, "used_memory_peak_perc", "{:.2}%", ratio(used, peak) * 100.0);
    field!(out, "used_memory_overhead", "{}", overhead);
    field!(out, "used_memory_startup", "{}", startup);
    field!(out, "used_memory_dataset", "{}", dataset);
    field!(out, "used_memory_dataset_perc", "{:.2}%", ratio(dataset, used.saturating_sub(startup).max(1)) * 100.0);
    field!(out, "allocator_allocated", "{}", allocated);
    field!(out, "allocator_active", "{}", active);
    field!(out, "allocator_resident", "{}", resident);
    field!(out, "total_system_memory", "{}", total_mem);
    field!(out, "total_system_memory_human", "{}", bytes_to_human(total_mem));
    let stats = &crate::scripting::STATS;
    let lua = stats.lua_bytes.load(std::sync::atomic::Ordering::Relaxed) as u64;
    let scripts_eval = stats.body_bytes.load(std::sync::atomic::Ordering::Relaxed) as u64;
    field!(out, "used_memory_lua", "{}", lua);
    field!(out, "used_memory_vm_eval", "{}", lua);
    field!(out, "used_memory_lua_human", "{}", bytes_to_human(lua));
    field!(out, "used_memory_scripts_eval", "{}", scripts_eval);
    field!(out, "number_of_cached_scripts", "{}", stats.scripts.load(std::sync::atomic::Ordering::Relaxed));
    field!(out, "number_of_functions", "0");
    field!(out, "number_of_libraries", "0");
    field!(out, "used_memory_vm_functions", "0");
    field!(out, "used_memory_vm_total", "{}", lua);
    field!(out, "used_memory_vm_total_human", "{}", bytes_to_human(lua));
    field!(out, "used_memory_functions", "0");
    field!(out, "used_memory_scripts", "{}", scripts_eval);
    field!(out, "used_memory_scripts_human", "{}", bytes_to_human(scripts_eval));
    field!(out, "maxmemory", "{}", maxmemory);
    field!(out, "maxmemory_human", "{}", bytes_to_human(maxmemory));
    field!(out, "maxmemory_policy", "{}", policy);
    field!(out, "allocator_frag_ratio", "{:.2}", ratio(active, allocated));
    field!(out, "allocator_frag_bytes", "{}", active as i64 - allocated as i64);
    field!(out, "allocator_rss_ratio", "{:.2}", ratio(resident, active));
    field!(out, "allocator_rss_bytes", "{}", resident as i64 - active as i64);
    field!(out, "rss_overhead_ratio", "{:.2}", ratio(rss, resident));
    field!(out, "rss_overhead_bytes", "{}", rss as i64 - resident as i64);
    field!(out, "mem_fragmentation_ratio", "{:.2}", ratio(rss, used));
    field!(out, "mem_fragmentation_bytes", "{}", rss as i64 - used as i64);
    field!(out, "mem_not_counted_for_evict", "0");
    field!(out, "mem_replication_backlog", "0");
    field!(out, "mem_total_replication_buffers", "0");
    field!(out, "mem_clients_slaves", "0");
    field!(out, "mem_clients_normal", "{}", super::memory::doctor::normal_clients_memory(ctx).0);
    field!(out, "mem_cluster_links", "0");
    field!(out, "mem_aof_buffer", "0");
    field!(out, "mem_allocator", "{}", allocator_name());
    field!(out, "active_defrag_running", "0");
    let pending: usize = (0..ctx.shard_count).map(|i| ctx.shard(i).lazyfree.pending_objects()).sum();
    let freed: u64 = (0..ctx.shard_count).map(|i| ctx.shard(i).lazyfree.freed_objects).sum();
    field!(out, "lazyfree_pending_objects", "{}", pending);
    field!(out, "lazyfreed_objects", "{}", freed);
}

fn persistence(ctx: &Ctx, out: &mut String) {
    // Every shard is held: the exact dirty counters, not the published ones.
    let dirty: u64 = (0..ctx.shard_count).map(|i| ctx.shard(i).dirty).sum();
    out.push_str("# Persistence\r\n");
    out.push_str(&crate::persistence::snapshot::info_persistence(ctx.server, dirty));
}

/// ringkv's own section: the fork, pause and copy-on-write histograms and
/// command latency inside vs outside snapshot windows.
fn snapshot(ctx: &Ctx, out: &mut String) {
    out.push_str("# Snapshot\r\n");
    out.push_str(&crate::persistence::snapshot::info_snapshot(ctx.server));
    let shards: Vec<&crate::shard::ShardState> = (0..ctx.shard_count).map(|i| ctx.shard(i)).collect();
    out.push_str(&crate::persistence::snapshot::info_command_latency(&shards));
}

fn stats(ctx: &Ctx, out: &mut String) {
    let mut sum = crate::metrics::ShardStats::default();
    for i in 0..ctx.shard_count {
        let s = &ctx.shard(i).stats;
        sum.total_connections += s.total_connections;
        sum.total_commands += s.total_commands;
        sum.net_input_bytes += s.net_input_bytes;
        sum.net_output_bytes += s.net_output_bytes;
        sum.rejected_connections += s.rejected_connections;
        sum.expired_keys += s.expired_keys;
        sum.keyspace_hits += s.keyspace_hits;
        sum.keyspace_misses += s.keyspace_misses;
        sum.total_error_replies += s.total_error_replies;
        sum.client_query_buffer_limit_disconnections += s.client_query_buffer_limit_disconnections;
        sum.client_output_buffer_limit_disconnections += s.client_output_buffer_limit_disconnections;
        sum.mailbox_backoffs += s.mailbox_backoffs;
        sum.batch_waits += s.batch_waits;
        sum.stream_held_runs += s.stream_held_runs;
        sum.stream_held_commands += s.stream_held_commands;
        sum.asleep_held_runs += s.asleep_held_runs;
        sum.asleep_held_commands += s.asleep_held_commands;
    }
    out.push_str("# Stats\r\n");
    field!(out, "total_connections_received", "{}", sum.total_connections);
    field!(out, "total_commands_processed", "{}", sum.total_commands);
    field!(out, "instantaneous_ops_per_sec", "0");
    field!(out, "total_net_input_bytes", "{}", sum.net_input_bytes);
    field!(out, "total_net_output_bytes", "{}", sum.net_output_bytes);
    field!(out, "total_net_repl_input_bytes", "0");
    field!(out, "total_net_repl_output_bytes", "0");
    field!(out, "instantaneous_input_kbps", "0.00");
    field!(out, "instantaneous_output_kbps", "0.00");
    field!(out, "instantaneous_input_repl_kbps", "0.00");
    field!(out, "instantaneous_output_repl_kbps", "0.00");
    field!(out, "rejected_connections", "{}", sum.rejected_connections);
    field!(out, "sync_full", "0");
    field!(out, "sync_partial_ok", "0");
    field!(out, "sync_partial_err", "0");
    field!(out, "expired_keys", "{}", sum.expired_keys);
    field!(out, "expired_stale_perc", "0.00");
    field!(out, "expired_time_cap_reached_count", "0");
    let expire_cycle_usec: u64 = (0..ctx.shard_count).map(|i| ctx.shard(i).stats.expire_cycle_usec).sum();
    field!(out, "expire_cycle_cpu_milliseconds", "{}", expire_cycle_usec / 1000);
    let evicted: u64 = (0..ctx.shard_count).map(|i| ctx.shard(i).eviction.evicted_keys).sum();
    field!(out, "evicted_keys", "{}", evicted);
    field!(out, "evicted_clients", "{}", ctx.server.client_memory.evicted_clients.load(std::sync::atomic::Ordering::Relaxed));
    let (current_over, total_over) = ctx.server.memory.exceeded_ms();
    field!(out, "total_eviction_exceeded_time", "{}", total_over);
    field!(out, "current_eviction_exceeded_time", "{}", current_over);
    field!(out, "keyspace_hits", "{}", sum.keyspace_hits);
    field!(out, "keyspace_misses", "{}", sum.keyspace_misses);
    let owned = |f: fn(&crate::messaging::pubsub::ShardPubSub) -> usize| (0..ctx.shard_count).map(|i| f(&ctx.shard(i).pubsub)).sum::<usize>();
    // A notification channel is on every shard (`messaging::pubsub`): once.
    let notification_channels = ctx.shard(ctx.home).pubsub.notification_channels;
    field!(out, "pubsub_channels", "{}", owned(|p| p.channels.len() - p.notification_channels) + notification_channels);
    // Every shard has the whole pattern table.
    field!(out, "pubsub_patterns", "{}", ctx.shard(ctx.home).pubsub.patterns.len());
    field!(out, "pubsubshard_channels", "{}", owned(|p| p.shard_channels.len()));
    let (latest_fork_usec, total_forks) = crate::persistence::snapshot::info_stats_fork(ctx.server);
    field!(out, "latest_fork_usec", "{}", latest_fork_usec);
    field!(out, "total_forks", "{}", total_forks);
    field!(out, "migrate_cached_sockets", "{}", super::migrate::cached_sockets());
    field!(out, "slave_expires_tracked_keys", "0");
    field!(out, "active_defrag_hits", "0");
    field!(out, "active_defrag_misses", "0");
    field!(out, "active_defrag_key_hits", "0");
    field!(out, "active_defrag_key_misses", "0");
    field!(out, "total_active_defrag_time", "0");
    field!(out, "current_active_defrag_time", "0");
    field!(out, "tracking_total_keys", "{}", ctx.server.tracking.keys.load(Ordering::Relaxed));
    field!(out, "tracking_total_items", "{}", ctx.server.tracking.items.load(Ordering::Relaxed));
    field!(out, "tracking_total_prefixes", "{}", ctx.shard(ctx.home).tracking.prefix_count());
    field!(out, "unexpected_error_replies", "0");
    field!(out, "total_error_replies", "{}", sum.total_error_replies);
    field!(out, "dump_payload_sanitizations", "0");
    field!(out, "total_reads_processed", "0");
    field!(out, "total_writes_processed", "0");
    field!(out, "io_threaded_reads_processed", "0");
    field!(out, "io_threaded_writes_processed", "0");
    // Redis 7.2's fields (7.0 counts these disconnections nowhere).
    field!(out, "client_query_buffer_limit_disconnections", "{}", sum.client_query_buffer_limit_disconnections);
    field!(out, "client_output_buffer_limit_disconnections", "{}", sum.client_output_buffer_limit_disconnections);
    field!(out, "reply_buffer_shrinks", "0");
    field!(out, "reply_buffer_expands", "0");
    // ringkv's own: forwarding that waited on a full mailbox between shards.
    field!(out, "mailbox_backoffs", "{}", sum.mailbox_backoffs);
    // ringkv's own: loop waits that asked for a batch (`batch-wait-usec`).
    field!(out, "batch_waits", "{}", sum.batch_waits);
    // ringkv's own: a streaming connection's runs over shards taken held
    // (`network::dispatch`, "Streaming over shards"), and their commands.
    field!(out, "stream_held_runs", "{}", sum.stream_held_runs);
    field!(out, "stream_held_commands", "{}", sum.stream_held_commands);
    // ringkv's own: single-shard commands of other shards run here with
    // those shards taken asleep (`network::dispatch`, "Taken asleep").
    field!(out, "asleep_held_runs", "{}", sum.asleep_held_runs);
    field!(out, "asleep_held_commands", "{}", sum.asleep_held_commands);
}

fn replication(ctx: &Ctx, out: &mut String) {
    let m = &ctx.server.repl;
    let backlog = ctx.config().others.get("repl-backlog-size").cloned().unwrap_or_else(|| "1048576".into());
    let ids = m.ids();
    let offset = m.offset();
    let replicas = m.replicas();
    let now_secs = crate::util::unix_ms() / 1000;
    out.push_str("# Replication\r\n");
    if let Some(link) = m.link() {
        field!(out, "role", "slave");
        field!(out, "master_host", "{}", link.host);
        field!(out, "master_port", "{}", link.port);
        // ringkv does not connect to its master yet: the link stays down.
        field!(out, "master_link_status", "down");
        field!(out, "master_last_io_seconds_ago", "-1");
        field!(out, "master_sync_in_progress", "0");
        field!(out, "slave_read_repl_offset", "{}", offset);
        field!(out, "slave_repl_offset", "{}", offset);
        field!(out, "master_link_down_since_seconds", "{}", if link.down_since > 0 { now_secs - link.down_since } else { -1 });
        field!(out, "slave_priority", "{}", ctx.config().others.get("replica-priority").map_or("100", |v| v.as_str()));
        field!(out, "slave_read_only", "{}", ctx.config().others.get("replica-read-only").is_none_or(|v| v == "yes") as u8);
        field!(out, "replica_announced", "{}", ctx.config().others.get("replica-announced").is_none_or(|v| v == "yes") as u8);
    } else {
        field!(out, "role", "master");
    }
    field!(out, "connected_slaves", "{}", replicas.len());
    for (i, r) in replicas.iter().enumerate() {
        let lag = now_secs - r.ack_ms / 1000;
        out.push_str(&format!("slave{}:ip={},port={},state={},offset={},lag={}\r\n", i, r.ip, r.port, r.state, r.ack_offset, lag));
    }
    let (active, histlen) = m.backlog();
    field!(out, "master_failover_state", "no-failover");
    field!(out, "master_replid", "{}", ids.replid);
    field!(out, "master_replid2", "{}", ids.replid2);
    field!(out, "master_repl_offset", "{}", offset);
    field!(out, "second_repl_offset", "{}", ids.second_offset);
    field!(out, "repl_backlog_active", "{}", active as u8);
    field!(out, "repl_backlog_size", "{}", backlog);
    field!(out, "repl_backlog_first_byte_offset", "{}", if active { offset + 1 - histlen } else { 0 });
    field!(out, "repl_backlog_histlen", "{}", histlen);
}

fn rusage(who: libc::c_int) -> (String, String) {
    let (user, sys) = crate::util::rusage_usec(who);
    let f = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    (f(sys), f(user))
}

fn cpu(out: &mut String) {
    let (sys, user) = rusage(libc::RUSAGE_SELF);
    let (csys, cuser) = rusage(libc::RUSAGE_CHILDREN);
    let (tsys, tuser) = rusage(libc::RUSAGE_THREAD);
    out.push_str("# CPU\r\n");
    field!(out, "used_cpu_sys", "{}", sys);
    field!(out, "used_cpu_user", "{}", user);
    field!(out, "used_cpu_sys_children", "{}", csys);
    field!(out, "used_cpu_user_children", "{}", cuser);
    field!(out, "used_cpu_sys_main_thread", "{}", tsys);
    field!(out, "used_cpu_user_main_thread", "{}", tuser);
}

/// Per-command counters summed over the shards, indexed by command id.
fn merged_command_stats(ctx: &Ctx) -> Vec<CommandStat> {
    let n = CommandTable::get().specs.len();
    let mut v = vec![CommandStat::default(); n];
    for i in 0..ctx.shard_count {
        for (id, s) in ctx.shard(i).stats.commands.iter().enumerate().take(n) {
            v[id].calls += s.calls;
            v[id].usec += s.usec;
            v[id].rejected_calls += s.rejected_calls;
            v[id].failed_calls += s.failed_calls;
        }
    }
    v
}

fn commandstats(ctx: &Ctx, out: &mut String) {
    let table = CommandTable::get();
    out.push_str("# Commandstats\r\n");
    for (id, s) in merged_command_stats(ctx).iter().enumerate() {
        if s.calls == 0 && s.failed_calls == 0 && s.rejected_calls == 0 {
            continue;
        }
        let per_call = if s.calls == 0 { 0.0 } else { s.usec as f64 / s.calls as f64 };
        let _ = write!(
            out,
            "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
            table.specs[id].name, s.calls, s.usec, per_call, s.rejected_calls, s.failed_calls
        );
    }
}

fn errorstats(ctx: &Ctx, out: &mut String) {
    let mut merged: std::collections::BTreeMap<&str, u64> = Default::default();
    for i in 0..ctx.shard_count {
        for (k, n) in &ctx.shard(i).stats.errors {
            *merged.entry(k.as_str()).or_default() += n;
        }
    }
    out.push_str("# Errorstats\r\n");
    for (k, n) in merged {
        let _ = write!(out, "errorstat_{}:count={}\r\n", k, n);
    }
}

fn latencystats(ctx: &Ctx, out: &mut String) {
    out.push_str("# Latencystats\r\n");
    let c = ctx.config();
    if !c.latency_tracking {
        return;
    }
    let percentiles: Vec<(String, f64)> = c
        .others
        .get("latency-tracking-info-percentiles")
        .map(|s| s.split(' ').filter(|p| !p.is_empty()).filter_map(|p| Some((p.to_string(), p.parse().ok()?))).collect())
        .unwrap_or_default();
    let table = CommandTable::get();
    for id in 0..table.specs.len() {
        let mut merged: Option<LatencyHistogram> = None;
        for i in 0..ctx.shard_count {
            if let Some(Some(h)) = ctx.shard(i).stats.command_latency.get(id) {
                merged.get_or_insert_with(Default::default).merge(h);
            }
        }
        let Some(h) = merged.filter(|h| h.total > 0) else {
            continue;
        };
        let _ = write!(out, "latency_percentiles_usec_{}:", table.specs[id].name);
        for (j, (label, p)) in percentiles.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "p{}={:.3}", label, h.value_at_percentile_ns(*p) as f64 / 1000.0);
        }
        out.push_str("\r\n");
    }
}

fn keyspace(ctx: &Ctx, out: &mut String) {
    out.push_str("# Keyspace\r\n");
    let databases = ctx.config().databases;
    let now = ctx.now_ms;
    for db in 0..databases {
        let (mut keys, mut expires) = (0usize, 0usize);
        // avg_ttl from a sample of each shard's TTL keys, as Redis estimates it by sampling.
        let (mut ttl_sum, mut ttl_n) = (0i64, 0i64);
        for i in 0..ctx.shard_count {
            let Some(d) = ctx.shard(i).dbs.get(db) else {
                continue;
            };
            keys += d.len();
            expires += d.expires_len();
            let step = (d.expires_len() / 16).max(1);
            for i in (0..d.expires_len()).step_by(step).take(16) {
                let e = d.map.at(d.map.ttl_position(i)).1;
                if e.expire_at_ms > now {
                    ttl_sum += e.expire_at_ms - now;
                    ttl_n += 1;
                }
            }
        }
        if keys == 0 {
            continue;
        }
        let avg_ttl = if ttl_n > 0 { ttl_sum / ttl_n } else { 0 };
        let _ = write!(out, "db{}:keys={},expires={},avg_ttl={}\r\n", db, keys, expires, avg_ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn human_bytes() {
        assert_eq!(bytes_to_human(0), "0B");
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1039680), "1015.31K");
        assert_eq!(bytes_to_human(12439552), "11.86M");
        assert_eq!(bytes_to_human(25276502016), "23.54G");
    }
}
