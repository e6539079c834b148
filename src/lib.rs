//! ringkv: a Redis-compatible, thread-per-core, io_uring key-value server.
//!
//! Where things live:
//! - `protocol/`  RESP parsing and reply encoding
//! - `network/`   the per-shard io_uring loop, connections, dispatch
//! - `shard/`     keyspace, hash slots, cross-shard mailboxes, holding shards
//! - `exec/`      `call()`: where every command runs, and what follows it
//! - `messaging/` pub/sub across shards (owner tables, batched delivery)
//! - `commands/`  the command table and handlers, one file per family
//! - `config/`    redis.conf parsing and the CONFIG table
//! - `messaging/` keyspace notifications
//! - `metrics/`   statistics, slowlog, latency monitor
//! - `persistence/` RDB format, O_DIRECT writer, snapshots, AOF files (`aof/`)
//! - `types/`     collection encodings: listpack, intset (Redis's byte layouts),
//!   quicklist, sorted set
//! - `server.rs`  state shared by all shard threads; `log.rs` Redis-style log
//!   lines; `signal.rs` SIGTERM/SIGINT

pub mod acl;
pub mod commands;
pub mod config;
pub mod exec;
pub mod log;
pub mod messaging;
pub mod metrics;
pub mod network;
pub mod persistence;
pub mod protocol;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod shard;
pub mod signal;
pub mod types;
pub mod util;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use config::Config;
use server::Server;
use shard::ShardState;

/// Starts the shard threads and blocks until the server shuts down.
/// A shard thread's stack: scripts run on it, and the Lua libraries they
/// call recurse as deep as their nesting limits allow (mapped, touched
/// only as deep as a script goes).
const SHARD_STACK_BYTES: usize = 32 << 20;

pub fn run(config: Config) -> Result<(), String> {
    let shards = if config.shards == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { config.shards };
    if shards > 128 {
        return Err("shards must be at most 128".into());
    }
    let thp_disabled = config.others.get("disable-thp").is_some_and(|v| v == "yes");
    if thp_disabled && !disable_thp() {
        warning!("Failed to disable THP for this process: {}", std::io::Error::last_os_error());
    }
    util::apply_jemalloc_bg_thread(&config);
    shard::lazyfree::apply_config(&config);
    let server = Arc::new(Server::new(shards, config.maxclients, config.port));
    server.memory.apply_config(&config);
    server.client_memory.apply_config(&config);
    server.repl.apply_config(&config);
    acl::load_at_startup(&server.acl, &config)?;
    if let Some((host, port)) = config.others.get("replicaof").and_then(|v| v.split_once(' ')) {
        server.repl.start_as_replica(host, port.trim().parse().unwrap_or(0));
    }
    let _ = config::oom_score_adj::apply(&config, config::oom_score_adj::ProcessClass::of_server(server.repl.is_replica()));
    // One listener per shard and bind address, all with SO_REUSEPORT.
    let mut addrs = vec![];
    for b in &config.bind {
        let b = b.trim_start_matches('-');
        let ip: IpAddr = if b == "*" {
            "0.0.0.0".parse().unwrap()
        } else if b == "::*" {
            "::".parse().unwrap()
        } else {
            b.parse().map_err(|_| format!("Invalid bind address '{}'", b))?
        };
        addrs.push(SocketAddr::new(ip, config.port));
    }
    // SO_REUSEPORT would let this process share a port another server already
    // listens on (the kernel would split connections between the two). A plain
    // bind first makes a busy port fail the way Redis reports it.
    for a in &addrs {
        // A server killed a moment ago (kill -9) may still hold the port for
        // a few milliseconds: the kernel tears its rings down in a worker,
        // after the process is gone, and an accept armed on a ring keeps the
        // listening socket open until then. Wait that out, briefly.
        let t = std::time::Instant::now();
        let mut free = network::listener::check_free(a);
        while free.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::EADDRINUSE)) && t.elapsed() < std::time::Duration::from_secs(1) {
            std::thread::sleep(std::time::Duration::from_millis(10));
            free = network::listener::check_free(a);
        }
        if let Err(e) = free {
            let reason = e.to_string();
            let reason = reason.split(" (os error").next().unwrap_or(&reason);
            return Err(format!("Warning: Could not create server TCP listening socket {}: bind: {}", a, reason));
        }
    }
    let mut listeners: Vec<Vec<i32>> = vec![];
    for _ in 0..shards {
        let mut v = vec![];
        for a in &addrs {
            let fd = network::listener::listen(a, 511).map_err(|e| format!("Warning: Could not create server TCP listening socket {}: {}", a, e))?;
            v.push(fd);
        }
        listeners.push(v);
    }
    // The shards start empty; while the dataset loads (below, on this
    // thread) they admit clients only once the load has run one progress
    // step (`EventLoop::admit_clients`), then commands without the LOADING
    // flag are answered -LOADING, as Redis does.
    let aof_on = persistence::aof_file::enabled(&config);
    // Without an AOF or a dump there is nothing to load and no loading phase.
    let has_data = aof_on || std::path::Path::new(&persistence::snapshot::rdb_path(&config)).exists();
    exec::gates::store_bool(&server.loading, has_data, std::sync::atomic::Ordering::SeqCst, exec::gates::Reason::Loading);
    signal::set_loading(has_data);
    server.loading_start_time.store(util::unix_ms() / 1000, std::sync::atomic::Ordering::Relaxed);
    if let Some(step) = config.others.get("loading-process-events-interval-bytes").and_then(|v| v.parse().ok()) {
        persistence::rdb::LOAD_PROGRESS.interval.store(step, std::sync::atomic::Ordering::Relaxed);
    }
    if !aof_on {
        let total = persistence::snapshot::rdb_size(&config);
        server.loading_total_bytes.store(total, std::sync::atomic::Ordering::Relaxed);
        persistence::rdb::LOAD_PROGRESS.admit_if_long(total);
        // Idle until CONFIG SET appendonly yes gives it a file.
        persistence::aof_file::spawn_idle_writer(&server, &config).map_err(|e| e.to_string())?;
    }
    let mut states: Vec<Option<Box<ShardState>>> = (0..shards)
        .map(|id| {
            let mut state = Box::new(ShardState::new(id, shards, config.clone()));
            state.tracking.counters = server.tracking.clone();
            Some(state)
        })
        .collect();
    let mesh = shard::mailbox::mesh(shards, network::event_loop::MAILBOX_CAPACITY);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    server.shards_share_cores.store(shards > cores, std::sync::atomic::Ordering::Relaxed);
    let sched_batch = shard_sched_batch(config.others.get("shard-sched-batch").map_or("auto", |v| v.as_str()), shards, cores);
    let mut handles = vec![];
    for (id, ((outboxes, inboxes), fds)) in mesh.into_iter().zip(listeners).enumerate() {
        let server = server.clone();
        let pin = config.cpu_affinity;
        let state_addr = Box::into_raw(states[id].take().unwrap()) as usize;
        let h = std::thread::Builder::new()
            .name(format!("ringkv-shard-{}", id))
            .stack_size(SHARD_STACK_BYTES)
            .spawn(move || {
                if pin {
                    pin_to_core(id % cores);
                }
                if sched_batch {
                    set_sched_batch(id);
                }
                let state = state_addr as *mut ShardState;
                server.hold.register(id, state);
                shard::memory::bound_growth_by(server.clone(), id);
                // The allocator's statistics read once before anything is
                // measured: on a fresh server, used memory grew by ~24 KB for
                // good right after the first full INFO (pipelined 4096 SETs
                // from a second connection, then INFO, CONFIG SET maxmemory
                // +10 KB, two SETs: 800 keys evicted; none with this read).
                // A 12 KB growth after a connection's first INFO remains
                // (the TCL unit maxmemory's "Don't rehash ...", perf/RESULTS.md).
                shard::memory::measure_now();
                // SAFETY: `state` was leaked from its Box for this thread
                // alone; other threads reach it only through the hold table,
                // while this thread is parked.
                let mut lp = match unsafe { network::event_loop::EventLoop::new(id, server, state, fds, outboxes, inboxes) } {
                    Ok(lp) => lp,
                    Err(e) => {
                        warning!("Failed creating the io_uring of shard {}: {}. Is io_uring enabled (kernel.io_uring_disabled)?", id, e);
                        std::process::exit(1);
                    }
                };
                let (first, last) = shard::slot::shard_slot_range(id, shards);
                let core = if pin { format!("pinned to core {}", id % cores) } else { "not pinned".to_string() };
                notice!("Shard {} on thread ringkv-shard-{} ({}), slots {}-{}, ring features: {}", id, id, core, first, last, lp.features());
                lp.run();
            })
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    system_warnings(thp_disabled);
    notice!("Server initialized");
    // From here a SIGTERM/SIGINT shuts down as Redis does (see `signal`);
    // while loading, shard 0's cron exits without saving (the shards hold
    // only part of the dataset), after Redis's "during loading" line.
    signal::install().map_err(|e| format!("Can't install the signal handlers: {}", e))?;
    if has_data {
        load_while_serving(&server, &config, shards, aof_on)?;
    } else {
        persistence::aof_rewrite::init_at_startup(&server, &config)?;
    }
    // "Ready" once every shard has armed its accepts (clients that connect
    // earlier wait in the listen backlog, they are not refused).
    let t = std::time::Instant::now();
    while server.shards_ready.load(std::sync::atomic::Ordering::Acquire) < shards && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    notice!(
        "ringkv {} with {} shard thread(s){}, listening on {} port {}",
        env!("CARGO_PKG_VERSION"),
        shards,
        if config.cpu_affinity { " pinned to cores 0..".to_string() + &(shards - 1).to_string() } else { String::new() },
        config.bind.join(" "),
        config.port
    );
    notice!("Ready to accept connections tcp");
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// Loads the dataset (the AOF with `appendonly yes`, the RDB otherwise)
/// into states of this thread's own, then holds every shard (they park at a
/// quiescent point, as for a multi-shard command) and moves the loaded
/// databases into them, turns the AOF on, and clears `loading`. The shards
/// never see a half-loaded keyspace: until the hand-over their databases are
/// empty and only LOADING-flagged commands run.
fn load_while_serving(server: &Arc<Server>, config: &Config, shards: usize, aof_on: bool) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    let mut loaded: Vec<Box<ShardState>> = (0..shards).map(|id| Box::new(ShardState::new(id, shards, config.clone()))).collect();
    let opened = if aof_on {
        Some(persistence::aof_file::load_at_startup(&mut loaded, config, server)?)
    } else {
        persistence::snapshot::load_at_startup(&mut loaded, config, &server.persistence)?;
        None
    };
    // The shards wake for their cron (at least every second) and park; no
    // doorbell is needed from this thread, which has no ring.
    let guard = server.hold.hold_external(shard::hold::ShardMask::all(shards), &server.sleeping);
    for (i, l) in loaded.iter_mut().enumerate() {
        // SAFETY: the guard is held: every shard has parked for its intent
        // (Acquire in `HoldTable::ready`) and its thread touches nothing until the
        // guard is dropped below; this is the only reference made to it.
        let st = unsafe { &mut *server.hold.shard_ptr(i) };
        std::mem::swap(&mut st.dbs, &mut l.dbs);
        // With the AOF, the stream was turned on at the end of the load.
        std::mem::swap(&mut st.stream, &mut l.stream);
        st.dirty += l.dirty;
    }
    let result = (|| {
        if let Some(opened) = opened {
            persistence::aof_file::spawn_writer(server.clone(), opened).map_err(|e| e.to_string())?;
        }
        persistence::aof_rewrite::init_at_startup(server, config)
    })();
    exec::gates::store_bool(&server.loading, false, Ordering::SeqCst, exec::gates::Reason::Loading);
    signal::set_loading(false);
    drop(guard);
    result
}

/// The warnings Redis prints about the kernel's memory settings, which
/// matter for BGSAVE's fork (overcommit) and copy-on-write cost (THP).
fn system_warnings(thp_disabled: bool) {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/vm/overcommit_memory") {
        if v.trim() != "1" {
            warning!("WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail under low memory condition. Being disabled, it can can also cause failures without low memory condition, see https://github.com/jemalloc/jemalloc/issues/1328. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the command 'sysctl vm.overcommit_memory=1' for this to take effect.");
        }
    }
    // Redis disables THP for itself (`disable-thp yes`) and warns when the
    // kernel forces it, fearing a 2 MiB copy per copy-on-write fault. Kernels
    // since 5.8 split the huge page and copy 4 KiB instead, so ringkv keeps
    // its data in huge pages (shorter fork) unless told otherwise.
    if let Ok(v) = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled") {
        let used = if thp_disabled {
            "not used (disable-thp yes)"
        } else if v.contains("[never]") {
            "not available"
        } else {
            "used for the keyspace"
        };
        notice!("Transparent huge pages: {}; {}", v.trim(), used);
        if !thp_disabled && v.contains("[never]") {
            warning!("WARNING Transparent Huge Pages are set to 'never' in your kernel: BGSAVE's fork pause grows with the page tables of 4 KiB pages. To use them run the command 'echo madvise > /sys/kernel/mm/transparent_hugepage/enabled' as root.");
        }
    }
}

/// `disable-thp yes`: no transparent huge pages for this process, whatever
/// jemalloc asks for (as redis-server does by default).
fn disable_thp() -> bool {
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

/// Whether the shard threads run under SCHED_BATCH: `shard-sched-batch`
/// (hidden, immutable) `yes` or `no`, or by default (`auto`) when there are
/// more shards than cores this process may run on (its affinity mask, as
/// `available_parallelism` reads it), so that two shard threads share a core.
///
/// Why: a cross-shard request wakes the other shard (its doorbell, a
/// MSG_RING submitted with the sender's own wait, `EventLoop::wait`), and a
/// woken SCHED_OTHER thread preempts the running one when it slept longer:
/// on a shared core the sender lost the CPU inside its turn, before it
/// reached its sleep, and came back only to go to sleep, one involuntary
/// switch per wake-up and a turn with fewer requests. A SCHED_BATCH thread
/// is not a wake-up preemptor (the kernel's `check_preempt_wakeup_fair`:
/// batch tasks wait for the tick or the running thread's sleep), so the
/// sender finishes its turn first and both shards batch more per turn.
/// Measured (perf/RESULTS.md "speed13"): `--shards 2` on one core,
/// redis-benchmark SET -c 50 -P 1 (half the requests forwarded): 12.4-13.1
/// -> 10.2 us of server CPU per request (one shard: 9.2), involuntary
/// switches 0.12-0.15 -> 0.07 per request, io_uring_enter 0.79-0.93 -> 0.66-0.70.
/// With a core per shard it changes nothing between the shards and would
/// only let other processes on the cores delay a woken shard: off.
fn shard_sched_batch(setting: &str, shards: usize, cores: usize) -> bool {
    match setting {
        "yes" => true,
        "no" => false,
        _ => shards > cores,
    }
}

/// Puts the calling thread under SCHED_BATCH (see `shard_sched_batch`).
fn set_sched_batch(id: usize) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a plain struct that
    // outlives the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        warning!("Failed to run shard {} under SCHED_BATCH: {}", id, std::io::Error::last_os_error());
    }
}

fn pin_to_core(core: usize) {
    if let Err(e) = util::set_affinity(&[core]) {
        warning!("Failed to pin to core {}: {}", core, e);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shard_sched_batch_when_shards_share_cores() {
        use super::shard_sched_batch as batch;
        assert!(batch("auto", 2, 1), "two shards on one core");
        assert!(!batch("auto", 2, 2), "a core each");
        assert!(!batch("auto", 1, 1), "one shard");
        assert!(batch("auto", 5, 4));
        assert!(batch("yes", 1, 16));
        assert!(!batch("no", 8, 1));
    }
}
