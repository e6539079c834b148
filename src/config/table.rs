//! The table of configuration names: every name Redis 7.0 accepts, with its
//! type, bounds, flags and default, plus ringkv's own (`shards`, `cpu-affinity`).
//!
//! Names ringkv acts on live in typed fields of `Config`; every other name is
//! validated by its type (so errors read as Redis's) and kept as normalised
//! text in `Config::others`, keyed by the primary name.

use super::{Config, LogLevel, OutputBufferLimit};

/// CONFIG SET refuses it: "can't set immutable config".
pub const IMMUTABLE: u8 = 1 << 0;
/// CONFIG SET refuses it unless `enable-protected-configs` allows the client.
pub const PROTECTED: u8 = 1 << 1;
/// Not matched by CONFIG GET globs, only by its exact name.
pub const HIDDEN: u8 = 1 << 2;
/// Takes several words (in a file: the line's words; in CONFIG SET: the value split on spaces).
pub const MULTI_ARG: u8 = 1 << 3;

/// How a value is parsed, checked and shown.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    /// Free text; `Filename`/`Dirname` must be a base name (dbfilename, appendfilename...).
    Str,
    Filename(&'static str),
    Dirname(&'static str),
    /// (name, value id): several names may share an id; GET shows the first.
    Enum(&'static [(&'static str, u8)]),
    /// A set of words from the list (shutdown-on-sigint): 7.0's multi-valued enum.
    Flags(&'static [&'static str]),
    /// Plain integer, bounds checked as signed.
    Int(i64, i64),
    /// Plain integer of an unsigned C type: bounds checked as unsigned (so -1 is huge).
    UInt(u64, u64),
    /// Memory value ("1gb", "100mb"), shown in bytes.
    Mem(u64, u64),
    /// Memory value or "N%" (maxmemory-clients).
    MemPercent(i64, i64),
    Octal(u64, u64),
    /// Parsed by its own code (save, bind, dir, client-output-buffer-limit...).
    Special,
}

#[derive(Debug)]
pub struct Def {
    pub name: &'static str,
    /// Redis's second name for it ("" for none), e.g. slaveof for replicaof.
    pub alias: &'static str,
    pub flags: u8,
    pub kind: Kind,
    pub default: &'static str,
}

const fn d(name: &'static str, alias: &'static str, flags: u8, kind: Kind, default: &'static str) -> Def {
    Def { name, alias, flags, kind, default }
}

const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;
const LONG_MAX: i64 = i64::MAX;
const UINT_MAX: u64 = u32::MAX as u64;
/// `batch-wait-usec`'s bound: a wait longer than a millisecond is a stall,
/// not a batch (a turn of the heaviest batches measured takes ~50-100 us).
pub const BATCH_WAIT_USEC_MAX: i64 = 1000;

const MAXMEMORY_POLICY: &[(&str, u8)] = &[
    ("volatile-lru", 0),
    ("volatile-lfu", 1),
    ("volatile-random", 2),
    ("volatile-ttl", 3),
    ("allkeys-lru", 4),
    ("allkeys-lfu", 5),
    ("allkeys-random", 6),
    ("noeviction", 7),
];
const SYSLOG_FACILITY: &[(&str, u8)] =
    &[("user", 0), ("local0", 1), ("local1", 2), ("local2", 3), ("local3", 4), ("local4", 5), ("local5", 6), ("local6", 7), ("local7", 8)];
const LOGLEVEL: &[(&str, u8)] = &[("debug", 0), ("verbose", 1), ("notice", 2), ("warning", 3)];
const SUPERVISED: &[(&str, u8)] = &[("upstart", 0), ("systemd", 1), ("auto", 2), ("no", 3)];
const APPENDFSYNC: &[(&str, u8)] = &[("everysec", 0), ("always", 1), ("no", 2)];
const TAKE_ASLEEP: &[(&str, u8)] = &[("auto", 0), ("yes", 1), ("no", 2)];
const CROSS_SHARD_ROUTE: &[(&str, u8)] = &[("auto", 0), ("hops", 1), ("held", 2), ("measured", 3)];
const SHARD_SCHED_BATCH: &[(&str, u8)] = &[("auto", 0), ("yes", 1), ("no", 2)];
const DISKLESS_LOAD: &[(&str, u8)] = &[("disabled", 0), ("on-empty-db", 1), ("swapdb", 2)];
const TLS_AUTH_CLIENTS: &[(&str, u8)] = &[("no", 0), ("yes", 1), ("optional", 2)];
const OOM_SCORE_ADJ: &[(&str, u8)] = &[("no", 0), ("yes", 1), ("relative", 1), ("absolute", 2)];
const ACL_PUBSUB_DEFAULT: &[(&str, u8)] = &[("allchannels", 0), ("resetchannels", 1)];
const SANITIZE_DUMP: &[(&str, u8)] = &[("no", 0), ("yes", 1), ("clients", 2)];
const PROTECTED_ACTION: &[(&str, u8)] = &[("no", 0), ("yes", 1), ("local", 2)];
const ENDPOINT_TYPE: &[(&str, u8)] = &[("ip", 0), ("hostname", 1), ("unknown-endpoint", 2)];
const PROPAGATION_ERROR: &[(&str, u8)] = &[("ignore", 0), ("panic", 1), ("panic-on-replicas", 2)];
const SHUTDOWN_FLAGS: &[&str] = &["default", "save", "nosave", "now", "force"];

use Kind::*;

/// Every configuration name, in Redis 7.0's table order (then ringkv's own).
pub const DEFS: &[Def] = &[
    // Bool configs
    d("rdbchecksum", "", IMMUTABLE, Bool, "yes"),
    d("daemonize", "", IMMUTABLE, Bool, "no"),
    d("io-threads-do-reads", "", IMMUTABLE, Bool, "no"),
    d("always-show-logo", "", IMMUTABLE, Bool, "no"),
    d("protected-mode", "", 0, Bool, "yes"),
    d("rdbcompression", "", 0, Bool, "yes"),
    d("rdb-del-sync-files", "", 0, Bool, "no"),
    d("activerehashing", "", 0, Bool, "yes"),
    d("stop-writes-on-bgsave-error", "", 0, Bool, "yes"),
    d("set-proc-title", "", IMMUTABLE, Bool, "yes"),
    d("dynamic-hz", "", 0, Bool, "yes"),
    d("lazyfree-lazy-eviction", "", 0, Bool, "no"),
    d("lazyfree-lazy-expire", "", 0, Bool, "no"),
    d("lazyfree-lazy-server-del", "", 0, Bool, "no"),
    d("lazyfree-lazy-user-del", "", 0, Bool, "no"),
    d("lazyfree-lazy-user-flush", "", 0, Bool, "no"),
    d("repl-disable-tcp-nodelay", "", 0, Bool, "no"),
    d("repl-diskless-sync", "", 0, Bool, "yes"),
    d("aof-rewrite-incremental-fsync", "", 0, Bool, "yes"),
    d("no-appendfsync-on-rewrite", "", 0, Bool, "no"),
    d("cluster-require-full-coverage", "", 0, Bool, "yes"),
    d("rdb-save-incremental-fsync", "", 0, Bool, "yes"),
    d("aof-load-truncated", "", 0, Bool, "yes"),
    d("aof-use-rdb-preamble", "", 0, Bool, "yes"),
    d("aof-timestamp-enabled", "", 0, Bool, "no"),
    d("cluster-replica-no-failover", "cluster-slave-no-failover", 0, Bool, "no"),
    d("replica-lazy-flush", "slave-lazy-flush", 0, Bool, "no"),
    d("replica-serve-stale-data", "slave-serve-stale-data", 0, Bool, "yes"),
    d("replica-read-only", "slave-read-only", 0, Bool, "yes"),
    d("replica-ignore-maxmemory", "slave-ignore-maxmemory", 0, Bool, "yes"),
    d("jemalloc-bg-thread", "", 0, Bool, "yes"),
    d("activedefrag", "", 0, Bool, "no"),
    d("syslog-enabled", "", IMMUTABLE, Bool, "no"),
    d("cluster-enabled", "", IMMUTABLE, Bool, "no"),
    d("appendonly", "", 0, Bool, "no"),
    d("cluster-allow-reads-when-down", "", 0, Bool, "no"),
    d("cluster-allow-pubsubshard-when-down", "", 0, Bool, "yes"),
    d("crash-log-enabled", "", 0, Bool, "yes"),
    d("crash-memcheck-enabled", "", 0, Bool, "yes"),
    d("use-exit-on-panic", "", HIDDEN, Bool, "no"),
    // ringkv's default differs: huge pages are what keep BGSAVE's fork short (README).
    d("disable-thp", "", IMMUTABLE, Bool, "no"),
    d("cluster-allow-replica-migration", "", 0, Bool, "yes"),
    d("replica-announced", "", 0, Bool, "yes"),
    d("latency-tracking", "", 0, Bool, "yes"),
    d("aof-disable-auto-gc", "", 0, Bool, "no"),
    d("replica-ignore-disk-write-errors", "", 0, Bool, "no"),
    // String configs
    d("aclfile", "", IMMUTABLE, Str, ""),
    d("unixsocket", "", IMMUTABLE, Str, ""),
    d("pidfile", "", IMMUTABLE, Str, ""),
    d("replica-announce-ip", "slave-announce-ip", 0, Str, ""),
    d("masteruser", "", 0, Str, ""),
    d("cluster-announce-ip", "", 0, Str, ""),
    d("cluster-config-file", "", IMMUTABLE, Str, "nodes.conf"),
    d("cluster-announce-hostname", "", 0, Str, ""),
    d("syslog-ident", "", IMMUTABLE, Str, "redis"),
    d("dbfilename", "", PROTECTED, Filename("dbfilename"), "dump.rdb"),
    d("appendfilename", "", IMMUTABLE, Filename("appendfilename"), "appendonly.aof"),
    d("appenddirname", "", IMMUTABLE, Dirname("appenddirname"), "appendonlydir"),
    d("server_cpulist", "", IMMUTABLE, Str, ""),
    d("bio_cpulist", "", IMMUTABLE, Str, ""),
    d("aof_rewrite_cpulist", "", IMMUTABLE, Str, ""),
    d("bgsave_cpulist", "", IMMUTABLE, Str, ""),
    d("ignore-warnings", "", 0, Str, ""),
    d("proc-title-template", "", 0, Str, "{title} {listen-addr} {server-mode}"),
    d("bind-source-addr", "", 0, Str, ""),
    d("logfile", "", IMMUTABLE, Str, ""),
    d("masterauth", "", 0, Str, ""),
    d("requirepass", "", 0, Str, ""),
    // Enum configs
    d("supervised", "", IMMUTABLE, Enum(SUPERVISED), "no"),
    d("syslog-facility", "", IMMUTABLE, Enum(SYSLOG_FACILITY), "local0"),
    d("repl-diskless-load", "", 0, Enum(DISKLESS_LOAD), "disabled"),
    d("loglevel", "", 0, Enum(LOGLEVEL), "notice"),
    d("maxmemory-policy", "", 0, Enum(MAXMEMORY_POLICY), "noeviction"),
    d("appendfsync", "", 0, Enum(APPENDFSYNC), "everysec"),
    d("oom-score-adj", "", 0, Enum(OOM_SCORE_ADJ), "no"),
    d("acl-pubsub-default", "", 0, Enum(ACL_PUBSUB_DEFAULT), "resetchannels"),
    d("sanitize-dump-payload", "", 0, Enum(SANITIZE_DUMP), "no"),
    d("enable-protected-configs", "", IMMUTABLE, Enum(PROTECTED_ACTION), "no"),
    d("enable-debug-command", "", IMMUTABLE, Enum(PROTECTED_ACTION), "no"),
    d("enable-module-command", "", IMMUTABLE, Enum(PROTECTED_ACTION), "no"),
    d("cluster-preferred-endpoint-type", "", 0, Enum(ENDPOINT_TYPE), "ip"),
    d("propagation-error-behavior", "", 0, Enum(PROPAGATION_ERROR), "ignore"),
    d("shutdown-on-sigint", "", MULTI_ARG, Flags(SHUTDOWN_FLAGS), "default"),
    d("shutdown-on-sigterm", "", MULTI_ARG, Flags(SHUTDOWN_FLAGS), "default"),
    // Integer configs
    d("databases", "", IMMUTABLE, Int(1, INT_MAX), "16"),
    d("port", "", 0, Int(0, 65535), "6379"),
    d("io-threads", "", IMMUTABLE, Int(1, 128), "1"),
    d("auto-aof-rewrite-percentage", "", 0, Int(0, INT_MAX), "100"),
    d("cluster-replica-validity-factor", "cluster-slave-validity-factor", 0, Int(0, INT_MAX), "10"),
    d("list-max-listpack-size", "list-max-ziplist-size", 0, Int(INT_MIN, INT_MAX), "-2"),
    d("tcp-keepalive", "", 0, Int(0, INT_MAX), "300"),
    d("cluster-migration-barrier", "", 0, Int(0, INT_MAX), "1"),
    d("active-defrag-cycle-min", "", 0, Int(1, 99), "1"),
    d("active-defrag-cycle-max", "", 0, Int(1, 99), "25"),
    d("active-defrag-threshold-lower", "", 0, Int(0, 1000), "10"),
    d("active-defrag-threshold-upper", "", 0, Int(0, 1000), "100"),
    d("lfu-log-factor", "", 0, Int(0, INT_MAX), "10"),
    d("lfu-decay-time", "", 0, Int(0, INT_MAX), "1"),
    d("replica-priority", "slave-priority", 0, Int(0, INT_MAX), "100"),
    d("repl-diskless-sync-delay", "", 0, Int(0, INT_MAX), "5"),
    d("maxmemory-samples", "", 0, Int(1, INT_MAX), "5"),
    d("maxmemory-eviction-tenacity", "", 0, Int(0, 100), "10"),
    d("timeout", "", 0, Int(0, INT_MAX), "0"),
    d("replica-announce-port", "slave-announce-port", 0, Int(0, 65535), "0"),
    d("tcp-backlog", "", IMMUTABLE, Int(0, INT_MAX), "511"),
    d("cluster-port", "", IMMUTABLE, Int(0, 65535), "0"),
    d("cluster-announce-bus-port", "", 0, Int(0, 65535), "0"),
    d("cluster-announce-port", "", 0, Int(0, 65535), "0"),
    d("cluster-announce-tls-port", "", 0, Int(0, 65535), "0"),
    d("repl-timeout", "", 0, Int(1, INT_MAX), "60"),
    d("repl-ping-replica-period", "repl-ping-slave-period", 0, Int(1, INT_MAX), "10"),
    d("list-compress-depth", "", 0, Int(0, INT_MAX), "0"),
    d("rdb-key-save-delay", "", HIDDEN, Int(INT_MIN, INT_MAX), "0"),
    d("key-load-delay", "", HIDDEN, Int(INT_MIN, INT_MAX), "0"),
    // ringkv's own, for tests (`network::hop`): microseconds a hop part
    // received from another shard waits before it runs.
    d("hop-part-delay", "", HIDDEN, Int(0, INT_MAX), "0"),
    // ringkv's own (`network::route`): which path commands over several
    // shards take (`auto`; `hops` or `held` force one, for tests and benchmarks).
    d("cross-shard-route", "", HIDDEN, Enum(CROSS_SHARD_ROUTE), "auto"),
    // ringkv's own (`network::dispatch`, "Order across shards"): `no`
    // lets one connection's pipelined single-key commands for different
    // shards run side by side (replies still in order), as before order20.
    d("cross-shard-pipeline-order", "", HIDDEN, Bool, "yes"),
    // ringkv's own (`network::dispatch`, "Taken asleep"): whether a
    // connection's single-shard commands for other shards that sleep run
    // here under a hold instead of being forwarded; `auto`: when shard
    // threads share a core.
    d("cross-shard-take-asleep", "", HIDDEN, Enum(TAKE_ASLEEP), "no"),
    // ringkv's own (`network::event_loop`, `EventLoop::wait`): how long a
    // saturated loop may wait for its next batch of requests (0: never).
    d("batch-wait-usec", "", HIDDEN, Int(0, BATCH_WAIT_USEC_MAX), "0"),
    d("active-expire-effort", "", 0, Int(1, 10), "1"),
    d("hz", "", 0, Int(0, INT_MAX), "10"),
    d("min-replicas-to-write", "min-slaves-to-write", 0, Int(0, INT_MAX), "0"),
    d("min-replicas-max-lag", "min-slaves-max-lag", 0, Int(0, INT_MAX), "10"),
    d("watchdog-period", "", HIDDEN, Int(0, INT_MAX), "0"),
    d("shutdown-timeout", "", 0, Int(0, INT_MAX), "10"),
    d("repl-diskless-sync-max-replicas", "", 0, Int(0, INT_MAX), "0"),
    // Unsigned int configs
    d("maxclients", "", 0, UInt(1, UINT_MAX), "10000"),
    d("unixsocketperm", "", IMMUTABLE, Octal(0, 0o777), "0"),
    d("socket-mark-id", "", IMMUTABLE, UInt(0, UINT_MAX), "0"),
    // Unsigned long configs (bounds checked as signed by Redis)
    d("active-defrag-max-scan-fields", "", 0, Int(1, LONG_MAX), "1000"),
    d("slowlog-max-len", "", 0, Int(0, LONG_MAX), "128"),
    d("acllog-max-len", "", 0, Int(0, LONG_MAX), "128"),
    // Long long configs
    d("busy-reply-threshold", "lua-time-limit", 0, Int(0, LONG_MAX), "5000"),
    d("cluster-node-timeout", "", 0, Int(0, LONG_MAX), "15000"),
    d("slowlog-log-slower-than", "", 0, Int(-1, LONG_MAX), "10000"),
    d("latency-monitor-threshold", "", 0, Int(0, LONG_MAX), "0"),
    d("proto-max-bulk-len", "", 0, Mem(1024 * 1024, LONG_MAX as u64), "536870912"),
    d("stream-node-max-entries", "", 0, Int(0, LONG_MAX), "100"),
    d("repl-backlog-size", "", 0, Mem(1, LONG_MAX as u64), "1048576"),
    // Unsigned long long configs
    d("maxmemory", "", 0, Mem(0, u64::MAX), "0"),
    d("cluster-link-sendbuf-limit", "", 0, Mem(0, u64::MAX), "0"),
    // size_t configs
    d("hash-max-listpack-entries", "hash-max-ziplist-entries", 0, UInt(0, LONG_MAX as u64), "512"),
    d("set-max-intset-entries", "", 0, UInt(0, LONG_MAX as u64), "512"),
    d("zset-max-listpack-entries", "zset-max-ziplist-entries", 0, UInt(0, LONG_MAX as u64), "128"),
    d("active-defrag-ignore-bytes", "", 0, Mem(1, LONG_MAX as u64), "104857600"),
    d("hash-max-listpack-value", "hash-max-ziplist-value", 0, Mem(0, LONG_MAX as u64), "64"),
    d("stream-node-max-bytes", "", 0, Mem(0, LONG_MAX as u64), "4096"),
    d("zset-max-listpack-value", "zset-max-ziplist-value", 0, Mem(0, LONG_MAX as u64), "64"),
    d("hll-sparse-max-bytes", "", 0, Mem(0, LONG_MAX as u64), "3000"),
    d("tracking-table-max-keys", "", 0, UInt(0, LONG_MAX as u64), "1000000"),
    d("client-query-buffer-limit", "", 0, Mem(1024 * 1024, LONG_MAX as u64), "1073741824"),
    d("maxmemory-clients", "", 0, MemPercent(-100, LONG_MAX), "0"),
    // Other numeric configs
    d("repl-backlog-ttl", "", 0, Int(0, LONG_MAX), "3600"),
    d("auto-aof-rewrite-min-size", "", 0, Mem(0, LONG_MAX as u64), "67108864"),
    d("loading-process-events-interval-bytes", "", HIDDEN, Int(1024, INT_MAX), "2097152"),
    // TLS (Debian's redis-server is built with TLS, so these are accepted there)
    d("tls-port", "", 0, Int(0, 65535), "0"),
    d("tls-session-cache-size", "", 0, Int(0, INT_MAX), "20480"),
    d("tls-session-cache-timeout", "", 0, Int(0, INT_MAX), "300"),
    d("tls-cluster", "", 0, Bool, "no"),
    d("tls-replication", "", 0, Bool, "no"),
    d("tls-auth-clients", "", 0, Enum(TLS_AUTH_CLIENTS), "yes"),
    d("tls-prefer-server-ciphers", "", 0, Bool, "no"),
    d("tls-session-caching", "", 0, Bool, "yes"),
    d("tls-cert-file", "", 0, Str, ""),
    d("tls-key-file", "", 0, Str, ""),
    d("tls-key-file-pass", "", 0, Str, ""),
    d("tls-client-cert-file", "", 0, Str, ""),
    d("tls-client-key-file", "", 0, Str, ""),
    d("tls-client-key-file-pass", "", 0, Str, ""),
    d("tls-dh-params-file", "", 0, Str, ""),
    d("tls-ca-cert-file", "", 0, Str, ""),
    d("tls-ca-cert-dir", "", 0, Str, ""),
    d("tls-protocols", "", 0, Str, ""),
    d("tls-ciphers", "", 0, Str, ""),
    d("tls-ciphersuites", "", 0, Str, ""),
    // Special configs
    d("dir", "", PROTECTED, Special, ""),
    d("save", "", MULTI_ARG, Special, "3600 1 300 100 60 10000"),
    d("client-output-buffer-limit", "", MULTI_ARG, Special, "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
    d("oom-score-adj-values", "", MULTI_ARG, Special, "0 200 800"),
    d("notify-keyspace-events", "", 0, Special, ""),
    d("bind", "", MULTI_ARG, Special, "127.0.0.1"),
    d("replicaof", "slaveof", IMMUTABLE | MULTI_ARG, Special, ""),
    d("latency-tracking-info-percentiles", "", MULTI_ARG, Special, "50 99 99.9"),
    // ringkv's own: the shard threads are started once, so both are fixed at
    // start; hidden from CONFIG GET patterns (asked by name they answer), so
    // a tool that sets back every config CONFIG GET * lists works as on Redis.
    d("shards", "", IMMUTABLE | HIDDEN, Int(0, 128), "0"),
    d("cpu-affinity", "", IMMUTABLE | HIDDEN, Bool, "no"),
    // ringkv's own (`shard_sched_batch` in lib.rs): whether the shard
    // threads run under SCHED_BATCH; `auto`: when two of them must share a core.
    d("shard-sched-batch", "", IMMUTABLE | HIDDEN, Enum(SHARD_SCHED_BATCH), "auto"),
];

/// The names ringkv acts on; every other name in `DEFS` is accepted and stored only.
pub const ACTED_ON: &[&str] = &[
    "port",
    "bind",
    "dir",
    "dbfilename",
    "save",
    "requirepass",
    "protected-mode",
    "maxclients",
    "timeout",
    "databases",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "client-output-buffer-limit",
    "latency-monitor-threshold",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "tracking-table-max-keys",
    "loglevel",
    "logfile",
    "hz",
    "rdbcompression",
    "activerehashing",
    "latency-tracking",
    "rdbchecksum",
    "stop-writes-on-bgsave-error",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "list-max-listpack-size",
    "list-compress-depth",
    "hll-sparse-max-bytes",
    "stream-node-max-bytes",
    "stream-node-max-entries",
    "shards",
    "cpu-affinity",
    "notify-keyspace-events",
    "batch-wait-usec",
];

fn is_acted_on(name: &str) -> bool {
    ACTED_ON.contains(&name)
}

/// Finds a config by name or alias, case-insensitively. Returns the def and
/// the name it was found under (the alias when the alias was given), as Redis
/// registers aliases as configs of their own.
pub fn lookup(name: &str) -> Option<(&'static Def, &'static str)> {
    DEFS.iter().find_map(|def| {
        if def.name.eq_ignore_ascii_case(name) {
            Some((def, def.name))
        } else if !def.alias.is_empty() && def.alias.eq_ignore_ascii_case(name) {
            Some((def, def.alias))
        } else {
            None
        }
    })
}

/// Stores the default text of every stored-only name.
pub fn install_defaults(c: &mut Config) {
    for def in DEFS {
        if !is_acted_on(def.name) {
            c.others.insert(def.name.to_string(), def.default.to_string());
        }
    }
}

/// Redis's memtoull: digits with an optional unit b, k, kb, m, mb, g, gb (any case).
/// "" is 0, as in Redis.
pub fn parse_memory(v: &str) -> Result<u64, String> {
    const ERR: &str = "argument must be a memory value";
    let digits_end = v.bytes().position(|c| !c.is_ascii_digit() && c != b'-').unwrap_or(v.len());
    let (num, unit) = v.split_at(digits_end);
    let mul: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(ERR.into()),
    };
    if num.is_empty() {
        return Ok(0);
    }
    let n: u64 = num.parse().map_err(|_| ERR.to_string())?;
    Ok(n.wrapping_mul(mul))
}

/// Redis's string2ll: optional '-', no '+', no leading zeros, no spaces.
fn string2ll(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let digits = if b[0] == b'-' { &b[1..] } else { b };
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn yes_no(v: &str) -> Result<bool, String> {
    if v.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err("argument must be 'yes' or 'no'".into())
    }
}

fn yn(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn range_error_signed(lo: i64, hi: i64) -> String {
    format!("argument must be between {} and {} inclusive", lo, hi)
}

/// Parses and checks one value of a typed (non-special) config; returns the
/// text CONFIG GET will show.
fn normalise(def: &Def, args: &[&str]) -> Result<String, String> {
    let v = args.first().copied().unwrap_or("");
    match def.kind {
        Bool => yes_no(v).map(yn),
        Str => Ok(v.to_string()),
        Filename(what) => {
            if what == "appendfilename" && v.is_empty() {
                return Err("appendfilename can't be empty".into());
            }
            if v.contains('/') {
                return Err(format!("{} can't be a path, just a filename", what));
            }
            Ok(v.to_string())
        }
        Dirname(what) => {
            if v.is_empty() {
                return Err(format!("{} can't be empty", what));
            }
            if v.contains('/') {
                return Err(format!("{} can't be a path, just a dirname", what));
            }
            Ok(v.to_string())
        }
        Enum(values) => match values.iter().find(|(n, _)| n.eq_ignore_ascii_case(v)) {
            Some((_, id)) => Ok(values.iter().find(|(_, i)| i == id).unwrap().0.to_string()),
            None => {
                let names: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
                Err(format!("argument(s) must be one of the following: {}", names.join(", ")))
            }
        },
        Flags(values) => {
            // No flag at all (a bare `--shutdown-on-sigint` on the command
            // line) is an error, as in Redis: "default" must be named.
            if args.is_empty() {
                return Err(format!("argument(s) must be one of the following: {}", values.join(", ")));
            }
            let mut set = vec![false; values.len()];
            for w in args {
                match values.iter().position(|n| n.eq_ignore_ascii_case(w)) {
                    Some(i) => set[i] = true,
                    None => return Err(format!("argument(s) must be one of the following: {}", values.join(", "))),
                }
            }
            // The first name is the empty set; show the others in table order.
            let shown: Vec<&str> = values.iter().zip(&set).skip(1).filter(|(_, s)| **s).map(|(n, _)| *n).collect();
            Ok(if shown.is_empty() { values[0].to_string() } else { shown.join(" ") })
        }
        Int(lo, hi) => {
            let n = string2ll(v).ok_or("argument couldn't be parsed into an integer")?;
            if n < lo || n > hi {
                return Err(range_error_signed(lo, hi));
            }
            Ok(n.to_string())
        }
        UInt(lo, hi) => {
            let n = string2ll(v).ok_or("argument couldn't be parsed into an integer")? as u64;
            if n < lo || n > hi {
                return Err(format!("argument must be between {} and {} inclusive", lo, hi));
            }
            Ok(n.to_string())
        }
        Mem(lo, hi) => {
            let n = parse_memory(v)?;
            // Signed C types (long long, off_t) are checked as signed in Redis.
            let signed = hi <= i64::MAX as u64;
            if signed {
                let s = n as i64;
                if s < lo as i64 || s > hi as i64 {
                    return Err(range_error_signed(lo as i64, hi as i64));
                }
            } else if n < lo || n > hi {
                return Err(format!("argument must be between {} and {} inclusive", lo, hi));
            }
            Ok(n.to_string())
        }
        MemPercent(lo, hi) => {
            if let Ok(n) = parse_memory(v) {
                if n as i64 > hi || (n as i64) < 0 {
                    return Err(range_error_signed(lo, hi));
                }
                return Ok(n.to_string());
            }
            if let Some(p) = v.strip_suffix('%').filter(|p| !p.is_empty()).and_then(string2ll).filter(|p| *p >= 0) {
                if -p < lo {
                    return Err(format!("percentage argument must be less or equal to {}", -lo));
                }
                return Ok(format!("{}%", p));
            }
            Err("argument must be a memory or percent value".into())
        }
        Octal(lo, hi) => {
            let n = u64::from_str_radix(v, 8).map_err(|_| "argument couldn't be parsed as an octal number".to_string())?;
            if n < lo || n > hi {
                return Err(format!("argument must be between {:o} and {:o} inclusive", lo, hi));
            }
            Ok(format!("{:o}", n))
        }
        Special => unreachable!("special configs are parsed by their own code"),
    }
}

fn parse_save(args: &[&str]) -> Result<Vec<(u64, u64)>, String> {
    let args: &[&str] = if args.len() == 1 && args[0].is_empty() { &[] } else { args };
    const ERR: &str = "Invalid save parameters";
    if !args.len().is_multiple_of(2) {
        return Err(ERR.into());
    }
    let mut points = vec![];
    for pair in args.chunks(2) {
        let seconds = strtoll_full(pair[0]).filter(|s| *s >= 1).ok_or(ERR)?;
        let changes = strtoll_full(pair[1]).filter(|c| *c >= 0).ok_or(ERR)?;
        points.push((seconds as u64, changes as u64));
    }
    Ok(points)
}

/// C's strtoll with the whole string consumed ("" is 0, as strtoll leaves it).
fn strtoll_full(v: &str) -> Option<i64> {
    let t = v.trim_start();
    if t.is_empty() {
        return if v.is_empty() { Some(0) } else { None };
    }
    t.parse::<i64>().ok()
}

fn parse_output_limits(c: &mut Config, args: &[&str]) -> Result<(), String> {
    if !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut parsed = vec![];
    for w in args.chunks(4) {
        let class = w[0].to_ascii_lowercase();
        if !matches!(class.as_str(), "normal" | "replica" | "slave" | "pubsub") {
            return Err("Invalid client class specified in buffer limit configuration.".into());
        }
        let bad = || "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string();
        let hard = parse_memory(w[1]).map_err(|_| bad())?;
        let soft = parse_memory(w[2]).map_err(|_| bad())?;
        let seconds = strtoll_full(w[3]).filter(|s| *s >= 0).ok_or_else(bad)?;
        parsed.push((class, OutputBufferLimit { hard_bytes: hard, soft_bytes: soft, soft_seconds: seconds as u64 }));
    }
    for (class, limit) in parsed {
        match class.as_str() {
            "normal" => c.client_output_buffer_limit_normal = limit,
            "pubsub" => c.client_output_buffer_limit_pubsub = limit,
            _ => c.client_output_buffer_limit_replica = limit,
        }
    }
    Ok(())
}

fn format_percentile(p: f64) -> String {
    // Redis prints "%f" then trims trailing zeros and the dot.
    let s = format!("{:.6}", p);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn set_special(c: &mut Config, name: &str, args: &[&str], reading_file: bool) -> Result<(), String> {
    match name {
        "dir" => {
            if args.len() != 1 {
                return Err("wrong number of arguments".into());
            }
            let path = std::path::Path::new(args[0]);
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err("Not a directory".into()),
                Err(e) => return Err(strerror(&e)),
            }
            // Kept absolute so that later changes of the process's cwd don't move it.
            c.dir = std::fs::canonicalize(path).map(|p| p.display().to_string()).unwrap_or_else(|_| args[0].to_string());
        }
        "save" => {
            let points = parse_save(args)?;
            // In a file the first `save` line replaces the defaults and later ones add to it;
            // `save ""` (no points) empties the list wherever it comes, as in Redis
            // (`--save ""` after a file's `save 900 1` leaves none).
            if reading_file && c.save_seen_in_file && !points.is_empty() {
                c.save.extend(points);
            } else {
                c.save = points;
            }
            if reading_file {
                c.save_seen_in_file = true;
            }
        }
        "client-output-buffer-limit" => parse_output_limits(c, args)?,
        "oom-score-adj-values" => {
            if args.len() != 3 {
                return Err("wrong number of arguments".into());
            }
            let mut vals = vec![];
            for a in args {
                match strtoll_full(a) {
                    Some(v) if (-2000..=2000).contains(&v) => vals.push(v.to_string()),
                    _ => return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into()),
                }
            }
            c.others.insert(name.into(), vals.join(" "));
        }
        "notify-keyspace-events" => {
            if args.len() != 1 {
                return Err("wrong number of arguments".into());
            }
            use crate::messaging::notify;
            c.notify_keyspace_events = notify::parse(args[0].as_bytes()).ok_or_else(|| notify::INVALID_CLASS.to_string())?;
        }
        "bind" => {
            if args.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            let args: &[&str] = if args.len() == 1 && args[0].is_empty() { &[] } else { args };
            c.bind = args.iter().map(|s| s.to_string()).collect();
        }
        "replicaof" => {
            if args.len() != 2 {
                return Err("wrong number of arguments".into());
            }
            if args[0].eq_ignore_ascii_case("no") && args[1].eq_ignore_ascii_case("one") {
                c.others.insert(name.into(), String::new());
                return Ok(());
            }
            match strtoll_full(args[1]) {
                Some(p) if (0..=65535).contains(&p) => {
                    c.others.insert(name.into(), format!("{} {}", args[0], p));
                }
                _ => return Err("Invalid master port".into()),
            }
        }
        "latency-tracking-info-percentiles" => {
            let args: &[&str] = if args.len() == 1 && args[0].is_empty() { &[] } else { args };
            let mut out = vec![];
            for a in args {
                let p: f64 = a.parse().map_err(|_| "Invalid latency-tracking-info-percentiles parameters".to_string())?;
                if !(0.0..=100.0).contains(&p) {
                    return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into());
                }
                out.push(format_percentile(p));
            }
            c.others.insert(name.into(), out.join(" "));
        }
        _ => unreachable!("unknown special config {}", name),
    }
    Ok(())
}

/// The text of an io::Error as C's strerror gives it ("No such file or directory").
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Sets config `def` from its words. `reading_file` is true while loading the
/// config file or the command line (the `save` lines accumulate there).
pub fn set(c: &mut Config, def: &Def, args: &[&str], reading_file: bool) -> Result<(), String> {
    if let Special = def.kind {
        return set_special(c, def.name, args, reading_file);
    }
    let v = normalise(def, args)?;
    let name = def.name;
    if !is_acted_on(name) {
        c.others.insert(name.to_string(), v);
        return Ok(());
    }
    // Typed fields: `v` is already validated and normalised.
    let num = || v.parse::<i64>().unwrap_or(0);
    match name {
        "port" => c.port = num() as u16,
        "dbfilename" => c.dbfilename = v,
        "requirepass" => c.requirepass = if v.is_empty() { None } else { Some(v.into_bytes()) },
        "maxclients" => c.maxclients = v.parse().unwrap_or(10000),
        "timeout" => c.timeout_seconds = num() as u64,
        "databases" => c.databases = num() as usize,
        "proto-max-bulk-len" => c.proto_max_bulk_len = num(),
        "client-query-buffer-limit" => c.client_query_buffer_limit = v.parse().unwrap_or(0),
        "latency-monitor-threshold" => c.latency_monitor_threshold_ms = num() as u64,
        "slowlog-log-slower-than" => c.slowlog_log_slower_than_usec = num(),
        "slowlog-max-len" => c.slowlog_max_len = num() as usize,
        "tracking-table-max-keys" => c.tracking_table_max_keys = v.parse().unwrap_or(0),
        "hash-max-listpack-entries" => c.encodings.hash_max_listpack_entries = num() as usize,
        "hash-max-listpack-value" => c.encodings.hash_max_listpack_value = num() as usize,
        "set-max-intset-entries" => c.encodings.set_max_intset_entries = num() as usize,
        "zset-max-listpack-entries" => c.encodings.zset_max_listpack_entries = num() as usize,
        "zset-max-listpack-value" => c.encodings.zset_max_listpack_value = num() as usize,
        "list-max-listpack-size" => c.encodings.list_max_listpack_size = num() as i32,
        "list-compress-depth" => c.encodings.list_compress_depth = num() as usize,
        "hll-sparse-max-bytes" => c.encodings.hll_sparse_max_bytes = num() as usize,
        "stream-node-max-bytes" => c.encodings.stream_node_max_bytes = v.parse().unwrap_or(4096),
        "stream-node-max-entries" => c.encodings.stream_node_max_entries = num(),
        "loglevel" => {
            c.loglevel = match v.as_str() {
                "debug" => LogLevel::Debug,
                "verbose" => LogLevel::Verbose,
                "warning" => LogLevel::Warning,
                _ => LogLevel::Notice,
            }
        }
        "logfile" => c.logfile = v,
        // Redis accepts any hz and caps it to 1..=500.
        "hz" => c.hz = num().clamp(1, 500) as u64,
        "rdbcompression" => c.rdbcompression = v == "yes",
        "protected-mode" => c.protected_mode = v == "yes",
        "activerehashing" => c.activerehashing = v == "yes",
        "latency-tracking" => c.latency_tracking = v == "yes",
        "rdbchecksum" => c.rdbchecksum = v == "yes",
        "stop-writes-on-bgsave-error" => c.stop_writes_on_bgsave_error = v == "yes",
        "shards" => c.shards = num() as usize,
        "cpu-affinity" => c.cpu_affinity = v == "yes",
        "batch-wait-usec" => c.batch_wait_usec = num() as u32,
        _ => unreachable!("acted-on config {} without a field", name),
    }
    Ok(())
}

/// Sets a config by name from words (`ringkv`'s own API; the file and the
/// command line go through `Config::load_text`).
pub fn apply(c: &mut Config, name: &str, values: &[&str], from_file: bool) -> Result<(), String> {
    let (def, _) = lookup(name).ok_or_else(|| "Bad directive or wrong number of arguments".to_string())?;
    if def.flags & MULTI_ARG == 0 && values.len() != 1 {
        return Err("wrong number of arguments".into());
    }
    set(c, def, values, from_file)
}

fn fmt_limit(class: &str, l: &OutputBufferLimit) -> String {
    format!("{} {} {} {}", class, l.hard_bytes, l.soft_bytes, l.soft_seconds)
}

/// The value of `def` as CONFIG GET shows it.
pub fn get(c: &Config, def: &Def) -> String {
    match def.name {
        "port" => c.port.to_string(),
        "bind" => c.bind.join(" "),
        "dir" => std::fs::canonicalize(&c.dir).map(|p| p.display().to_string()).unwrap_or_else(|_| c.dir.clone()),
        "dbfilename" => c.dbfilename.clone(),
        "save" => c.save.iter().map(|(s, n)| format!("{} {}", s, n)).collect::<Vec<_>>().join(" "),
        "requirepass" => c.requirepass.as_ref().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default(),
        "maxclients" => c.maxclients.to_string(),
        "timeout" => c.timeout_seconds.to_string(),
        "databases" => c.databases.to_string(),
        "proto-max-bulk-len" => c.proto_max_bulk_len.to_string(),
        "client-query-buffer-limit" => c.client_query_buffer_limit.to_string(),
        "client-output-buffer-limit" => format!(
            "{} {} {}",
            fmt_limit("normal", &c.client_output_buffer_limit_normal),
            fmt_limit("slave", &c.client_output_buffer_limit_replica),
            fmt_limit("pubsub", &c.client_output_buffer_limit_pubsub)
        ),
        "latency-monitor-threshold" => c.latency_monitor_threshold_ms.to_string(),
        "slowlog-log-slower-than" => c.slowlog_log_slower_than_usec.to_string(),
        "slowlog-max-len" => c.slowlog_max_len.to_string(),
        "tracking-table-max-keys" => c.tracking_table_max_keys.to_string(),
        "hash-max-listpack-entries" => c.encodings.hash_max_listpack_entries.to_string(),
        "hash-max-listpack-value" => c.encodings.hash_max_listpack_value.to_string(),
        "set-max-intset-entries" => c.encodings.set_max_intset_entries.to_string(),
        "zset-max-listpack-entries" => c.encodings.zset_max_listpack_entries.to_string(),
        "zset-max-listpack-value" => c.encodings.zset_max_listpack_value.to_string(),
        "list-max-listpack-size" => c.encodings.list_max_listpack_size.to_string(),
        "list-compress-depth" => c.encodings.list_compress_depth.to_string(),
        "hll-sparse-max-bytes" => c.encodings.hll_sparse_max_bytes.to_string(),
        "stream-node-max-bytes" => c.encodings.stream_node_max_bytes.to_string(),
        "stream-node-max-entries" => c.encodings.stream_node_max_entries.to_string(),
        "loglevel" => match c.loglevel {
            LogLevel::Debug => "debug",
            LogLevel::Verbose => "verbose",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Nothing => "nothing",
        }
        .into(),
        "logfile" => c.logfile.clone(),
        "hz" => c.hz.to_string(),
        "rdbcompression" => yn(c.rdbcompression),
        "protected-mode" => yn(c.protected_mode),
        "activerehashing" => yn(c.activerehashing),
        "latency-tracking" => yn(c.latency_tracking),
        "rdbchecksum" => yn(c.rdbchecksum),
        "stop-writes-on-bgsave-error" => yn(c.stop_writes_on_bgsave_error),
        "shards" => c.shards.to_string(),
        "cpu-affinity" => yn(c.cpu_affinity),
        "batch-wait-usec" => c.batch_wait_usec.to_string(),
        "notify-keyspace-events" => crate::messaging::notify::format(c.notify_keyspace_events),
        other => c.others.get(other).cloned().unwrap_or_else(|| def.default.to_string()),
    }
}

/// CONFIG GET for one pattern, appended to `out` (skipping names already there,
/// compared case-insensitively as Redis's reply dict does). Exact names find
/// hidden configs and are echoed as given; globs match every visible name and alias.
pub fn get_matching_into(c: &Config, pattern: &str, out: &mut Vec<(String, String)>) {
    let seen = |out: &Vec<(String, String)>, n: &str| out.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !pattern.contains(['[', '*', '?']) {
        if seen(out, pattern) {
            return;
        }
        if let Some((def, _)) = lookup(pattern) {
            out.push((pattern.to_string(), get(c, def)));
        }
        return;
    }
    for def in DEFS {
        if def.flags & HIDDEN != 0 {
            continue;
        }
        for name in [def.name, def.alias] {
            if name.is_empty() || seen(out, name) {
                continue;
            }
            if super::glob_match(pattern.as_bytes(), name.as_bytes(), true) {
                out.push((name.to_string(), get(c, def)));
            }
        }
    }
}

pub fn get_matching(c: &Config, pattern: &[u8]) -> Vec<(String, String)> {
    let mut out = vec![];
    get_matching_into(c, &String::from_utf8_lossy(pattern), &mut out);
    out
}

/// Every (name, value) pair as `CONFIG GET *` shows it.
pub fn all_pairs(c: &Config) -> Vec<(String, String)> {
    get_matching(c, b"*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_def_has_a_valid_default() {
        let c = Config::default();
        for def in DEFS {
            if matches!(def.kind, Special) {
                continue;
            }
            let v = normalise(def, &[def.default]).unwrap_or_else(|e| panic!("{}: {}", def.name, e));
            assert_eq!(v, def.default, "{}", def.name);
            assert_eq!(get(&c, def), def.default, "{}", def.name);
        }
        let names: std::collections::HashSet<&str> = DEFS.iter().flat_map(|d| [d.name, d.alias]).filter(|n| !n.is_empty()).collect();
        assert_eq!(names.len(), DEFS.iter().map(|d| 1 + (!d.alias.is_empty()) as usize).sum::<usize>());
        for n in ACTED_ON {
            assert!(lookup(n).is_some(), "{}", n);
        }
    }

    #[test]
    fn errors_read_as_redis() {
        let mut c = Config::default();
        let e = |c: &mut Config, n: &str, v: &str| {
            let (def, _) = lookup(n).unwrap();
            let args: Vec<&str> = if def.flags & MULTI_ARG != 0 { v.split(' ').collect() } else { vec![v] };
            set(c, def, &args, false).unwrap_err()
        };
        assert_eq!(e(&mut c, "maxmemory-policy", "foo"), "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction");
        assert_eq!(e(&mut c, "hz", "abc"), "argument couldn't be parsed into an integer");
        assert_eq!(e(&mut c, "tcp-keepalive", "+5"), "argument couldn't be parsed into an integer");
        assert_eq!(e(&mut c, "maxmemory", "-1"), "argument must be a memory value");
        assert_eq!(e(&mut c, "maxmemory-clients", "abc"), "argument must be a memory or percent value");
        assert_eq!(e(&mut c, "port", "70000"), "argument must be between 0 and 65535 inclusive");
        assert_eq!(e(&mut c, "maxclients", "0"), "argument must be between 1 and 4294967295 inclusive");
        assert_eq!(e(&mut c, "slowlog-max-len", "-1"), "argument must be between 0 and 9223372036854775807 inclusive");
        assert_eq!(e(&mut c, "slave-read-only", "x"), "argument must be 'yes' or 'no'");
        assert_eq!(e(&mut c, "save", "100 1  200 2"), "Invalid save parameters");
        assert_eq!(e(&mut c, "save", "0 1"), "Invalid save parameters");
        assert_eq!(e(&mut c, "client-output-buffer-limit", "normal 1 2"), "Wrong number of arguments in buffer limit configuration.");
        assert_eq!(e(&mut c, "client-output-buffer-limit", "master 0 0 0"), "Invalid client class specified in buffer limit configuration.");
        assert_eq!(e(&mut c, "client-output-buffer-limit", "normal x 0 0"), "Error in hard, soft or soft_seconds setting in buffer limit configuration.");
        assert_eq!(e(&mut c, "shutdown-on-sigint", "foo"), "argument(s) must be one of the following: default, save, nosave, now, force");
    }

    #[test]
    fn values_are_normalised() {
        let mut c = Config::default();
        let s = |c: &mut Config, n: &str, v: &str| {
            let (def, _) = lookup(n).unwrap();
            let args: Vec<&str> = if def.flags & MULTI_ARG != 0 { v.split(' ').collect() } else { vec![v] };
            set(c, def, &args, false).unwrap();
            get(c, def)
        };
        assert_eq!(s(&mut c, "maxmemory", "1GB"), "1073741824");
        assert_eq!(s(&mut c, "maxmemory", ""), "0");
        assert_eq!(s(&mut c, "maxmemory-clients", "10%"), "10%");
        assert_eq!(s(&mut c, "oom-score-adj", "relative"), "yes");
        assert_eq!(s(&mut c, "hz", "1000"), "500");
        assert_eq!(s(&mut c, "notify-keyspace-events", "KEA"), "AKE");
        assert_eq!(s(&mut c, "shutdown-on-sigint", "now save"), "save now");
        assert_eq!(s(&mut c, "latency-tracking-info-percentiles", "50 99.9"), "50 99.9");
        assert_eq!(s(&mut c, "client-output-buffer-limit", "normal 1mb 2 3"), "normal 1048576 2 3 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
        assert_eq!(s(&mut c, "save", ""), "");
        assert_eq!(s(&mut c, "slave-read-only", "NO"), "no");
        assert_eq!(get(&c, lookup("replica-read-only").unwrap().0), "no");
    }

    #[test]
    fn get_patterns() {
        let c = Config::default();
        let mut out = vec![];
        get_matching_into(&c, "PORT", &mut out);
        get_matching_into(&c, "port", &mut out);
        assert_eq!(out, vec![("PORT".to_string(), "6379".to_string())]);
        assert!(get_matching(&c, b"use-exit*").is_empty());
        assert_eq!(get_matching(&c, b"use-exit-on-panic").len(), 1);
        let all = all_pairs(&c);
        assert!(all.iter().any(|(k, _)| k == "slaveof"));
        assert!(all.len() > 190);
    }
}
