//! SLOWLOG, LATENCY, MONITOR and DEBUG (Redis's slowlog.c, latency.c,
//! debug.c). Slowlog entries and latency samples are kept per shard; these
//! commands hold every shard and merge them.

use std::collections::{BTreeMap, BTreeSet};

use super::client::{reply_help, subcommand_syntax_error};
use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::metrics::histogram::LatencyHistogram;
use crate::metrics::latency::{doctor_report, graph, DoctorContext, EventView, LatencySample, LATENCY_TS_LEN};
use crate::metrics::slowlog::SlowLogEntry;
use crate::protocol::Reply;
use crate::shard::{digest, Value};
use crate::util::eq_ic;

const ADMIN_SUB: u32 = ADMIN | LOADING | STALE;
const ADMIN_NOSCRIPT: u32 = ADMIN | NOSCRIPT | LOADING | STALE;
const DANGEROUS: &[&str] = &["@admin", "@slow", "@dangerous"];
const SLOW: &[&str] = &["@slow"];

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("slowlog", -2, 0, container).group("server").acl(SLOW).doc("2.2.12", "A container for slow log commands"),
        CommandSpec::new("slowlog|get", -2, ADMIN_SUB, slowlog_get)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("2.2.12", "Get the slow log's entries"),
        CommandSpec::new("slowlog|len", 2, ADMIN_SUB, slowlog_len).route(Route::All).group("server").acl(DANGEROUS).doc("2.2.12", "Get the slow log's length"),
        CommandSpec::new("slowlog|reset", 2, ADMIN_SUB, slowlog_reset)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("2.2.12", "Clear all entries from the slow log"),
        CommandSpec::new("slowlog|help", 2, LOADING | STALE, slowlog_help)
            .group("server")
            .acl(SLOW)
            .doc("6.2.0", "Show helpful text about the different subcommands"),
        CommandSpec::new("latency", -2, 0, container).group("server").acl(SLOW).doc("2.8.13", "A container for latency diagnostics commands"),
        CommandSpec::new("latency|latest", 2, ADMIN_NOSCRIPT, latency_latest)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("2.8.13", "Return the latest latency samples for all events."),
        CommandSpec::new("latency|history", 3, ADMIN_NOSCRIPT, latency_history)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("2.8.13", "Return timestamp-latency samples for the event."),
        CommandSpec::new("latency|reset", -2, ADMIN_NOSCRIPT, latency_reset)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("2.8.13", "Reset latency data for one or more events."),
        CommandSpec::new("latency|doctor", 2, ADMIN_NOSCRIPT, latency_doctor)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("2.8.13", "Return a human readable latency analysis report."),
        CommandSpec::new("latency|graph", 3, ADMIN_NOSCRIPT, latency_graph)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("2.8.13", "Return a latency graph for the event."),
        CommandSpec::new("latency|histogram", -2, ADMIN_NOSCRIPT, latency_histogram)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("7.0.0", "Return the cumulative distribution of latencies of a subset of commands or all."),
        CommandSpec::new("latency|help", 2, LOADING | STALE, latency_help)
            .group("server")
            .acl(SLOW)
            .doc("2.8.13", "Show helpful text about the different subcommands."),
        CommandSpec::new("monitor", 1, ADMIN_NOSCRIPT, monitor)
            .group("server")
            .acl(DANGEROUS)
            .doc("1.0.0", "Listen for all requests received by the server in real time"),
        CommandSpec::new("debug", -2, ADMIN_NOSCRIPT, debug)
            .route(Route::All)
            .group("server")
            .acl(DANGEROUS)
            .doc("1.0.0", "A container for debugging commands"),
    ]
}

/// Never called: dispatch resolves the subcommand or rejects the call.
fn container(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.error(err::SYNTAX);
}

// ---------------------------------------------------------------- SLOWLOG

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

fn slowlog_help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    reply_help(r, SLOWLOG_HELP);
}

/// Every shard's entries, newest first, at most `slowlog-max-len` of them
/// (each shard keeps that many; together they are one log).
fn merged_slowlog<'c>(ctx: &'c Ctx) -> Vec<&'c SlowLogEntry> {
    let mut all: Vec<&'c SlowLogEntry> = (0..ctx.shard_count).flat_map(|i| ctx.shard(i).stats.slowlog.entries.iter()).collect();
    all.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
    all.truncate(ctx.config().slowlog_max_len);
    all
}

fn slowlog_get(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 3 {
        return subcommand_syntax_error(r, args);
    }
    let mut count = 10usize;
    if args.len() == 3 {
        match super::parse_i64(args[2]) {
            Some(-1) => count = usize::MAX,
            Some(n) if n >= 0 => count = n as usize,
            _ => return r.error("ERR count should be greater than or equal to -1"),
        }
    }
    let entries = merged_slowlog(ctx);
    let n = entries.len().min(count);
    r.array(n);
    for e in &entries[..n] {
        r.array(6);
        r.int(e.id as i64);
        r.int(e.time_sec);
        r.int(e.duration_usec as i64);
        r.array(e.args.len());
        for a in &e.args {
            r.bulk(a);
        }
        r.bulk(&e.peer);
        r.bulk(&e.name);
    }
}

fn slowlog_len(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.int(merged_slowlog(ctx).len() as i64);
}

fn slowlog_reset(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    for i in 0..ctx.shard_count {
        ctx.shard_mut(i).stats.slowlog.entries.clear();
    }
    r.ok();
}

// ---------------------------------------------------------------- LATENCY

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

fn latency_help(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    reply_help(r, LATENCY_HELP);
}

/// One event's samples over every shard: one sample per second (the worst
/// of the shards), oldest first, at most 160; and the all-time maximum.
struct MergedSeries {
    samples: Vec<LatencySample>,
    max_ms: u64,
}

fn merged_latency(ctx: &Ctx) -> BTreeMap<String, MergedSeries> {
    let mut by_event: BTreeMap<String, (BTreeMap<i64, u64>, u64)> = BTreeMap::new();
    for i in 0..ctx.shard_count {
        for (name, series) in &ctx.shard(i).stats.latency.events {
            let (samples, max) = by_event.entry(name.clone()).or_default();
            *max = (*max).max(series.max_ms);
            for s in &series.samples {
                let v = samples.entry(s.time_sec).or_default();
                *v = (*v).max(s.latency_ms);
            }
        }
    }
    by_event
        .into_iter()
        .map(|(name, (samples, max_ms))| {
            let mut samples: Vec<LatencySample> = samples.into_iter().map(|(time_sec, latency_ms)| LatencySample { time_sec, latency_ms }).collect();
            if samples.len() > LATENCY_TS_LEN {
                samples.drain(..samples.len() - LATENCY_TS_LEN);
            }
            (name, MergedSeries { samples, max_ms })
        })
        .collect()
}

fn latency_latest(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let events = merged_latency(ctx);
    r.array(events.len());
    for (name, series) in &events {
        let last = series.samples.last().copied().unwrap_or(LatencySample { time_sec: 0, latency_ms: 0 });
        r.array(4);
        r.bulk(name.as_bytes());
        r.int(last.time_sec);
        r.int(last.latency_ms as i64);
        r.int(series.max_ms as i64);
    }
}

fn latency_history(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let events = merged_latency(ctx);
    let name = String::from_utf8_lossy(args[2]);
    let Some(series) = events.get(name.as_ref()) else {
        return r.array(0);
    };
    r.array(series.samples.len());
    for s in &series.samples {
        r.array(2);
        r.int(s.time_sec);
        r.int(s.latency_ms as i64);
    }
}

/// LATENCY RESET [event ...]: replies how many events (of all shards) were reset.
fn latency_reset(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut reset: BTreeSet<String> = BTreeSet::new();
    for i in 0..ctx.shard_count {
        let events = &mut ctx.shard_mut(i).stats.latency.events;
        if args.len() == 2 {
            reset.extend(events.drain().map(|(k, _)| k));
        } else {
            for a in &args[2..] {
                let name = String::from_utf8_lossy(a);
                if events.remove(name.as_ref()).is_some() {
                    reset.insert(name.into_owned());
                }
            }
        }
    }
    r.int(reset.len() as i64);
}

/// LATENCY DOCTOR: Redis's report over every shard's events, with its
/// advice for the events seen and the server's settings.
fn latency_doctor(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let events = merged_latency(ctx);
    let config = ctx.config();
    let views: Vec<EventView> = events.iter().map(|(name, s)| EventView { name, samples: &s.samples, max_ms: s.max_ms }).collect();
    let c = DoctorContext {
        threshold_ms: config.latency_monitor_threshold_ms,
        slowlog_log_slower_than_usec: config.slowlog_log_slower_than_usec,
        fork_rate_gb_per_sec: crate::persistence::snapshot::fork_rate_gb_per_sec(ctx.server),
        hz: config.hz,
        appendfsync_always: config.others.get("appendfsync").is_some_and(|v| v == "always"),
        anon_huge_pages_bytes: anon_huge_pages_bytes(),
        now_sec: crate::util::unix_ms() / 1000,
    };
    r.verbatim(doctor_report(&views, &c).as_bytes());
}

/// The process's AnonHugePages (smaps_rollup), as Redis's
/// `THPGetAnonHugePagesSize` reads them for LATENCY DOCTOR's THP advice.
fn anon_huge_pages_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("AnonHugePages:")).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()).map_or(0, |kb| kb * 1024)
}

/// LATENCY GRAPH event: an ASCII graph of the event's samples.
fn latency_graph(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let events = merged_latency(ctx);
    let name = String::from_utf8_lossy(args[2]);
    let Some(series) = events.get(name.as_ref()) else {
        r.error(&format!("ERR No samples available for event '{}'", name));
        return;
    };
    r.verbatim(graph(&name, &series.samples, series.max_ms, crate::util::unix_ms() / 1000).as_bytes());
}

/// LATENCY HISTOGRAM [command ...]: per command (a container brings its
/// subcommands; unknown names are skipped) that has run since the last
/// CONFIG RESETSTAT, its calls and cumulative latency distribution, every
/// shard's histogram merged.
fn latency_histogram(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let table = super::CommandTable::get();
    let mut ids: Vec<usize> = Vec::new();
    if args.len() == 2 {
        ids.extend(0..table.specs.len());
    } else {
        for name in &args[2..] {
            let id = match name.iter().position(|&b| b == b'|') {
                Some(bar) => std::str::from_utf8(&name[..bar])
                    .ok()
                    .and_then(|c| table.lookup(c.as_bytes()).map(|id| (table.specs[id].name, id)))
                    .and_then(|(c, _)| table.lookup_sub(c, &name[bar + 1..])),
                None => table.lookup(name),
            };
            let Some(id) = id else { continue };
            ids.push(id);
            if table.is_container(id) {
                ids.extend(table.subcommands_of(table.specs[id].name));
            }
        }
    }
    let mut merged: Vec<(usize, LatencyHistogram)> = Vec::new();
    for id in ids {
        let mut h: Option<LatencyHistogram> = None;
        for i in 0..ctx.shard_count {
            if let Some(Some(s)) = ctx.shard(i).stats.command_latency.get(id) {
                h.get_or_insert_with(Default::default).merge(s);
            }
        }
        if let Some(h) = h.filter(|h| h.total > 0) {
            merged.push((id, h));
        }
    }
    r.map(merged.len());
    for (id, h) in &merged {
        r.bulk(table.specs[*id].name.as_bytes());
        r.map(2);
        r.bulk(b"calls");
        r.int(h.total as i64);
        r.bulk(b"histogram_usec");
        let buckets = h.cumulative_usec();
        r.map(buckets.len());
        for (usec, count) in buckets {
            r.int(usec as i64);
            r.int(count as i64);
        }
    }
}

// ---------------------------------------------------------------- MONITOR

/// MONITOR: from now on the connection receives a line per command of
/// every client (fed by the dispatcher); a second MONITOR is ignored.
fn monitor(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    // Inside EXEC the client expects one reply per command (Redis's
    // CLIENT_DENY_BLOCKING).
    if ctx.in_multi {
        return r.error("ERR MONITOR isn't allowed for DENY BLOCKING client");
    }
    let Some(c) = ctx.client.as_mut() else {
        return r.error("ERR MONITOR needs a connection");
    };
    if c.monitor {
        return;
    }
    c.monitor = true;
    c.info_dirty = true;
    crate::exec::gates::add_usize(&ctx.server.monitors, 1, crate::exec::gates::Reason::Monitor);
    r.ok();
}

// ---------------------------------------------------------------- DEBUG

const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "AOF-FLUSH-SLEEP <microsec>",
    "    Server will sleep before flushing the AOF, this is used for testing.",
    "ASSERT",
    "    Crash by assertion failed.",
    "CHANGE-REPL-ID",
    "    Change the replication IDs of the instance.",
    "    Dangerous: should be used only for testing the replication subsystem.",
    "CONFIG-REWRITE-FORCE-ALL",
    "    Like CONFIG REWRITE but writes all configuration options, including",
    "    keywords not listed in original configuration file or default values.",
    "CRASH-AND-RECOVER [<milliseconds>]",
    "    Hard crash and restart after a <milliseconds> delay (default 0).",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LEAK <string>",
    "    Create a memory leak of the input string.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "HTSTATS <dbid>",
    "    Return hash table statistics of the specified Redis database.",
    "HTSTATS-KEY <key>",
    "    Like HTSTATS but for the hash table stored at <key>'s value.",
    "LOADAOF",
    "    Flush the AOF buffers on disk and reload the AOF in memory.",
    "REPLICATE <string>",
    "    Replicates the provided string to replicas, allowing data divergence.",
    "MALLCTL <key> [<val>]",
    "    Get or set a malloc tuning integer.",
    "MALLCTL-STR <key> [<val>]",
    "    Get or set a malloc tuning string.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "DROP-CLUSTER-PACKET-FILTER <packet-type>",
    "    Drop all packets that match the filtered type. Set to -1 allow all packets.",
    "OOM",
    "    Crash the server simulating an out-of-memory error.",
    "PANIC",
    "    Crash the server simulating a panic.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cluster slots are not respected so keys not belonging to the",
    "    current node can be created in cluster mode.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: conflicting keys will be loaded from RDB.",
    "    * NOFLUSH: the existing database will not be removed before load, but",
    "      conflicting keys will generate an exception and kill the server.",
    "    * NOSAVE: the database will be loaded from an existing RDB file.",
    "    Examples:",
    "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
    "      the database.",
    "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
    "      existing RDB file.",
    "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing RDB",
    "      file to the database.",
    "RESTART [<milliseconds>]",
    "    Graceful restart: save config, db, restart after a <milliseconds> delay (default 0).",
    "SDSLEN <key>",
    "    Show low level SDS string info representing `key` and value.",
    "SEGFAULT",
    "    Crash the server with sigsegv.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "QUICKLIST-PACKED-THRESHOLD <size>",
    "    Sets the threshold for elements to be inserted as plain vs packed nodes",
    "    Default value is 1GB, allows values up to 4GB. Setting to 0 restores to default.",
    "SET-SKIP-CHECKSUM-VALIDATION <0|1>",
    "    Enables or disables checksum checks for RDB files and RESTORE's payload.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "STRINGMATCH-TEST",
    "    Run a fuzz tester against the stringmatchlen() function.",
    "STRUCTSIZE",
    "    Return the size of different Redis core C structures.",
    "LISTPACK <key>",
    "    Show low level info about the listpack encoding of <key>.",
    "QUICKLIST <key> [<0|1>]",
    "    Show low level info about the quicklist encoding of <key>.",
    "    The optional argument (0 by default) sets the level of detail",
    "CLIENT-EVICTION",
    "    Show low level client eviction pools info (maxmemory-clients).",
    "PAUSE-CRON <0|1>",
    "    Stop periodic cron job processing.",
    "REPLYBUFFER PEAK-RESET-TIME <NEVER||RESET|time>",
    "    Sets the time (in milliseconds) to wait between client reply buffer peak resets.",
    "    In case NEVER is provided the last observed peak will never be reset",
    "    In case RESET is provided the peak reset time will be restored to the default value",
    "REPLYBUFFER RESIZING <0|1>",
    "    Enable or disable the reply buffer resize cron job",
    "CLUSTERLINK KILL <to|from|all> <node-id>",
    "    Kills the link based on the direction to/from (both) with the provided node.",
    "HELP",
    "    Prints this help.",
];

const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// Redis's `enable-debug-command` gate (yes, no, local). While the config
/// table does not know the name, DEBUG is allowed.
fn debug_allowed(ctx: &Ctx) -> bool {
    match ctx.config().others.get("enable-debug-command").map(|s| s.to_ascii_lowercase()) {
        None => true,
        Some(v) if v == "yes" => true,
        Some(v) if v == "local" => ctx.client.as_ref().is_some_and(|c| c.addr.starts_with("127.0.0.1:") || c.addr.starts_with("[::1]:")),
        Some(_) => false,
    }
}

fn debug(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if !debug_allowed(ctx) {
        return r.error(DEBUG_NOT_ALLOWED);
    }
    let sub = args[1];
    let argc = args.len();
    // DEBUG runs during start-up loading (Redis flags it `loading`), but the
    // shards hold an empty keyspace until the loaded one replaces it: RELOAD
    // would save that over the file being loaded, POPULATE would be lost,
    // LOADAOF would load the AOF a second time (`aof_reload` refuses it,
    // but answers its own client when the load it started is over).
    if ctx.server.loading.load(std::sync::atomic::Ordering::Relaxed) && (eq_ic(sub, "reload") || eq_ic(sub, "populate")) {
        return r.error(super::err::LOADING);
    }
    if eq_ic(sub, "help") && argc == 2 {
        reply_help(r, DEBUG_HELP);
    } else if eq_ic(sub, "populate") && (3..=5).contains(&argc) {
        debug_populate(ctx, args, r);
    } else if eq_ic(sub, "object") && argc == 3 {
        debug_object(ctx, args[2], r);
    } else if eq_ic(sub, "sleep") && argc == 3 {
        // Every shard is held: like Redis, the whole server stops.
        let secs = String::from_utf8_lossy(args[2]).trim().parse::<f64>().unwrap_or(0.0);
        if secs > 0.0 && secs.is_finite() {
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
        }
        r.ok();
    } else if eq_ic(sub, "set-active-expire") && argc == 3 {
        let on = atoi(args[2]) != 0;
        for i in 0..ctx.shard_count {
            ctx.shard_mut(i).active_expire_enabled = on;
        }
        r.ok();
    } else if eq_ic(sub, "quicklist-packed-threshold") && argc == 3 {
        let bytes = std::str::from_utf8(args[2]).ok().and_then(|v| crate::config::table::parse_memory(v).ok());
        match bytes {
            Some(b) if crate::types::quicklist::set_packed_threshold_for_new_lists(b as usize) => r.ok(),
            _ => r.error("ERR argument must be a memory value bigger than 1 and smaller than 4gb"),
        }
    } else if eq_ic(sub, "config-rewrite-force-all") && argc == 2 {
        match super::config::rewrite_force_all(ctx.config()) {
            Ok(()) => r.ok(),
            Err(e) => r.error(&format!("ERR CONFIG-REWRITE-FORCE-ALL failed: {}", e)),
        }
    } else if eq_ic(sub, "htstats-key") && argc == 3 {
        debug_htstats_key(ctx, args[2], r);
    } else if eq_ic(sub, "log") && argc == 3 {
        crate::warning!("DEBUG LOG: {}", String::from_utf8_lossy(args[2]));
        r.ok();
    } else if eq_ic(sub, "set-skip-checksum-validation") && argc == 3 {
        crate::persistence::payload::SKIP_CHECKSUM_VALIDATION.store(atoi(args[2]) != 0, std::sync::atomic::Ordering::Relaxed);
        r.ok();
    } else if eq_ic(sub, "error") && argc == 3 {
        r.error_bytes(args[2]);
    } else if eq_ic(sub, "digest") && argc == 2 {
        debug_digest(ctx, r);
    } else if eq_ic(sub, "digest-value") {
        debug_digest_value(ctx, &args[2..], r);
    } else if eq_ic(sub, "reload") {
        debug_reload(ctx, &args[2..], r);
    } else if eq_ic(sub, "aof-flush-sleep") && argc == 3 {
        let us = atoi(args[2]).max(0) as u64;
        ctx.server.aof.flush_sleep_us.store(us, std::sync::atomic::Ordering::Relaxed);
        r.ok();
    } else if eq_ic(sub, "pause-cron") && argc == 3 {
        ctx.server.pause_cron.store(atoi(args[2]) != 0, std::sync::atomic::Ordering::Relaxed);
        r.ok();
    } else if eq_ic(sub, "replybuffer") && argc == 4 {
        // Redis resizes each client's 16 KiB reply buffer from its peak in
        // the cron; ringkv's output buffers are not resized by a cron (a
        // grown send buffer goes once sent: `EventLoop::on_send`) and count
        // a fixed 2 x 16 KiB in `tot-mem` (`network::client_memory`), so
        // there is nothing for these settings to change: the syntax is
        // Redis's, so that its tests that switch resizing off run.
        if eq_ic(args[2], "peak-reset-time") {
            if !eq_ic(args[3], "never") && !eq_ic(args[3], "reset") && super::parse_i64(args[3]).is_none() {
                return r.error(super::err::NOT_INTEGER);
            }
        } else if !eq_ic(args[2], "resizing") {
            return subcommand_syntax_error(r, args);
        }
        r.ok();
    } else if eq_ic(sub, "loadaof") {
        crate::persistence::aof_reload::debug_loadaof(ctx, r);
    } else if eq_ic(sub, "snapshot-stats") && argc == 2 {
        debug_snapshot_stats(ctx, r);
    } else {
        subcommand_syntax_error(r, args);
    }
}

/// DEBUG DIGEST: the signature of every database of every shard (see
/// shard/digest.rs), a status reply of 40 hex digits.
fn debug_digest(ctx: &mut Ctx, r: &mut Reply) {
    let shards: Vec<&[crate::shard::Db]> = (0..ctx.shard_count).map(|i| ctx.shard(i).dbs.as_slice()).collect();
    r.simple(&digest::dataset_digest(&shards).to_hex());
}

/// DEBUG DIGEST-VALUE key ...: one status per key, of the value alone;
/// zeros for a missing key. Like Redis, a key whose TTL has passed but that
/// is still stored is digested, not expired: a debug command does not
/// change the data it reports on.
fn debug_digest_value(ctx: &mut Ctx, keys: &[&[u8]], r: &mut Reply) {
    r.array(keys.len());
    for key in keys {
        r.simple(&digest::value_digest(ctx.db(key).map.get(key)).to_hex());
    }
}

/// DEBUG RELOAD [NOSAVE] [NOFLUSH] [MERGE]: save (unless NOSAVE), empty
/// every database (unless NOFLUSH), load the dump back into the held shards.
fn debug_reload(ctx: &mut Ctx, opts: &[&[u8]], r: &mut Reply) {
    let (mut save, mut flush, mut merge) = (true, true, false);
    for o in opts {
        if eq_ic(o, "nosave") {
            save = false;
        } else if eq_ic(o, "noflush") {
            flush = false;
        } else if eq_ic(o, "merge") {
            // Keys in the dump replace existing ones: that is ringkv's only
            // merge rule; libraries of the dump replace loaded ones.
            merge = true;
        } else {
            return r.error("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.");
        }
    }
    let config = ctx.config().clone();
    if save {
        if let Err(e) = crate::persistence::snapshot::save_foreground(ctx.server, ctx.shards, &config) {
            return r.error(&e);
        }
    }
    if flush {
        crate::persistence::aof_reload::empty_data(ctx);
    }
    let states: Vec<*mut crate::shard::ShardState> = ctx.shards.raw_ptrs().to_vec();
    match crate::persistence::snapshot::load_into(&states, &config, &ctx.server.persistence, merge) {
        Ok(_) => {
            crate::notice!("DB reloaded by DEBUG RELOAD");
            r.ok();
        }
        Err(e) => {
            crate::warning!("{}", e);
            r.error("ERR Error trying to load the RDB dump, check server logs.");
        }
    }
}

/// DEBUG SNAPSHOT-STATS: ringkv's snapshot histograms in full, a map of
/// name -> [[value, count], ...] (value: the bucket's highest equivalent).
fn debug_snapshot_stats(ctx: &mut Ctx, r: &mut Reply) {
    let shards: Vec<&crate::shard::ShardState> = (0..ctx.shard_count).map(|i| ctx.shard(i)).collect();
    let all = crate::persistence::snapshot::full_histograms(ctx.server, &shards);
    r.map(all.len());
    for (name, buckets) in all {
        r.bulk(name.as_bytes());
        r.array(buckets.len());
        for (v, n) in buckets {
            r.array(2);
            r.int(v as i64);
            r.int(n as i64);
        }
    }
}

/// C's `atoi`: optional blanks and sign, then leading digits; 0 if none.
fn atoi(s: &[u8]) -> i64 {
    let s = std::str::from_utf8(s).unwrap_or("").trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for c in digits.bytes().take_while(u8::is_ascii_digit) {
        v = v.wrapping_mul(10).wrapping_add((c - b'0') as i64);
    }
    if neg {
        -v
    } else {
        v
    }
}

/// DEBUG POPULATE count [prefix] [size]: `prefix:N` -> `value:N` (padded
/// with zero bytes or cut to `size`), skipping keys that exist; each key
/// goes to its owning shard.
fn debug_populate(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
    let Some(count) = super::parse_i64(args[2]).filter(|n| *n >= 0) else {
        return r.error(NOT_POSITIVE);
    };
    let prefix: &[u8] = if args.len() >= 4 { args[3] } else { b"key" };
    let mut size = 0usize;
    if args.len() == 5 {
        match super::parse_i64(args[4]) {
            Some(n) if n >= 0 => size = n as usize,
            _ => return r.error(NOT_POSITIVE),
        }
    }
    let mut key = Vec::with_capacity(prefix.len() + 21);
    let mut num = itoa::Buffer::new();
    for j in 0..count {
        let digits = num.format(j).as_bytes();
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        key.extend_from_slice(digits);
        let now = ctx.now_ms;
        // Redis's lookupKeyWrite: an expired key is deleted (and notified).
        if matches!(ctx.lookup_write::<super::lookup::AnyKind>(&key), Ok(Some(_))) {
            continue;
        }
        let mut value = Vec::with_capacity(size.max(6 + digits.len()));
        value.extend_from_slice(b"value:");
        value.extend_from_slice(digits);
        if size > 0 {
            value.resize(size, 0);
        }
        ctx.db(&key).set(&key, Value::from_vec(value), now, false);
        ctx.notify_new(&key);
    }
    r.ok();
}

/// Bytes of an RDB length prefix.
fn rdb_len_bytes(len: usize) -> usize {
    match len {
        0..64 => 1,
        64..16384 => 2,
        _ if len as u64 <= u32::MAX as u64 => 5,
        _ => 9,
    }
}

/// The size of a string value in an RDB file, as Redis's
/// `rdbSavedObjectLen`: small integers take 2, 3 or 5 bytes, other strings
/// a length prefix and their bytes. (LZF compression of strings over 20
/// bytes is not counted.)
fn serialized_len(v: &Value) -> usize {
    let bytes = match v {
        Value::Int(n) if i8::try_from(*n).is_ok() => return 2,
        Value::Int(n) if i16::try_from(*n).is_ok() => return 3,
        Value::Int(n) if i32::try_from(*n).is_ok() => return 5,
        Value::Int(n) => itoa::Buffer::new().format(*n).len(),
        Value::Str { bytes, .. } => bytes.len(),
        aggregate => {
            // Without LZF, as Redis's rdbSavedObjectLen (which compresses
            // nothing either when it only measures).
            let mut enc = crate::persistence::rdb::Encoder::new(false, 0);
            enc.save_value(aggregate);
            return enc.buf.len();
        }
    };
    rdb_len_bytes(bytes) + bytes
}

/// DEBUG HTSTATS-KEY: the member table of a big set, hash or sorted set in
/// Redis's dict terms (`types::table_stats`); a small encoding has none.
fn debug_htstats_key(ctx: &mut Ctx, key: &[u8], r: &mut Reply) {
    let Ok(Some(e)) = ctx.lookup_read_no_notify::<super::lookup::AnyKind>(key) else {
        return r.error(err::NO_SUCH_KEY);
    };
    let (main, target) = match &e.value {
        Value::Set(crate::types::set::Set::Table(t)) => t.table_stats(),
        Value::Hash(crate::types::hash::Hash::Table(t)) => t.table_stats(),
        Value::ZSet(crate::types::zset::ZSet::Tree(z)) => z.table_stats(),
        _ => return r.error("ERR The value stored at the specified key is not represented using an hash table"),
    };
    let mut text = String::new();
    main.write(0, &mut text);
    if let Some(t) = target {
        t.write(1, &mut text);
    }
    r.verbatim(text.as_bytes());
}

fn debug_object(ctx: &mut Ctx, key: &[u8], r: &mut Reply) {
    let now = ctx.now_ms;
    // Redis's debugCommand finds the key in the dictionary itself: an
    // expired key not yet deleted is shown, and stays.
    let Some(e) = ctx.db(key).map.get(key) else {
        return r.error(err::NO_SUCH_KEY);
    };
    // Redis's LRU clock: seconds, 24 bits.
    let lru = (e.access_ms / 1000) & ((1 << 24) - 1);
    let idle = (now - e.access_ms).max(0) / 1000;
    let mut line = format!(
        "Value at:{:p} refcount:1 encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
        e as *const _,
        e.value.encoding(),
        serialized_len(&e.value),
        lru,
        idle
    );
    if let Value::List(q) = &e.value {
        // Redis's quicklist fields (no node is compressed: list-compress-depth
        // is not acted on yet, so the uncompressed size is the nodes' bytes).
        let nodes = q.nodes().len();
        let bytes: usize = q.nodes().map(|n| n.as_bytes().len()).sum();
        let avg = if nodes > 0 { q.len() as f64 / nodes as f64 } else { 0.0 };
        line.push_str(&format!(" ql_nodes:{} ql_avg_node:{:.2} ql_listpack_max:{} ql_compressed:0 ql_uncompressed_size:{}", nodes, avg, q.fill(), bytes));
    }
    r.simple(&line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_atoi() {
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b" -12abc"), -12);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b""), 0);
    }

    #[test]
    fn rdb_sizes() {
        assert_eq!(serialized_len(&Value::from_bytes(b"1")), 2);
        assert_eq!(serialized_len(&Value::from_bytes(b"12345")), 3);
        assert_eq!(serialized_len(&Value::from_bytes(b"value:1")), 8);
        assert_eq!(serialized_len(&Value::from_bytes(b"12345678901")), 12);
        assert_eq!(serialized_len(&Value::from_bytes(&[b'x'; 100])), 102);
    }
}
