//! What every shard thread shares: the hold table, doorbells, counters that
//! must be global (client ids, connected clients), and start-up facts.
//! Nothing here is locked on the request path; the hold table's small
//! per-shard queue locks are taken only by commands that span shards.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::persistence::Persistence;
use crate::shard::hold::HoldTable;
use std::sync::Arc;

pub struct Server {
    pub shard_count: usize,
    /// ACL users and log (`crate::acl`).
    pub acl: crate::acl::Acl,
    pub hold: HoldTable,
    /// Ring fd of each shard, the target of MSG_RING doorbells.
    pub ring_fds: Vec<AtomicI32>,
    /// Set by a shard right before it waits in its ring (see `network::event_loop`).
    pub sleeping: Vec<AtomicBool>,
    /// More shards than cores the process may run on: two shard threads
    /// share a core (`lib.rs`; `cross-shard-take-asleep auto`).
    pub shards_share_cores: AtomicBool,
    pub next_client_id: AtomicU64,
    pub connected_clients: AtomicUsize,
    /// Maximum clients, mirrored from the config so accept needs no hold.
    pub maxclients: AtomicUsize,
    pub monitors: AtomicUsize,
    /// Client tracking's server-wide counters (`messaging::tracking`).
    pub tracking: Arc<crate::messaging::tracking::ServerTracking>,
    /// MONITOR lines sent to each shard's mailboxes and not yet delivered
    /// there, from every shard: a command that would feed more waits while
    /// one shard is `MONITOR_BACKLOG_MAX` behind (lines now leave the shard
    /// that ran the command, so no single sender's queues show the backlog).
    pub monitor_lines_queued: Vec<AtomicUsize>,
    /// MONITOR line stamps, one counter per destination shard: a monitor
    /// reads lines in the order the commands ran, across shards, as pub/sub
    /// batches are ordered (`EventLoop::feed_monitor_line`).
    pub monitor_stamps: crate::messaging::pubsub::DeliveryStamps,
    /// Pub/sub delivery stamps, one counter per destination shard
    /// (`messaging::pubsub::DeliveryStamps`).
    pub delivery_stamps: crate::messaging::pubsub::DeliveryStamps,
    pub start_ms: i64,
    pub run_id: String,
    pub executable: String,
    pub pid: u32,
    pub tcp_port: AtomicUsize,
    pub persistence: Persistence,
    /// CLIENT PAUSE: unix ms when the pause ends (0: none) and its type.
    pub pause_end_ms: AtomicI64,
    pub pause_type: AtomicU8,
    /// Shards whose listening sockets have their accepts armed.
    pub shards_ready: AtomicUsize,
    /// Where shards hand their write streams to the AOF writer.
    pub aof: crate::persistence::aof_file::Sink,
    /// The AOF's state, manifest and rewrite bookkeeping (taken rarely:
    /// BGREWRITEAOF, CONFIG SET, the cron, INFO).
    pub aof_rewrite: std::sync::Mutex<crate::persistence::aof_rewrite::Rewrite>,
    /// Start-up loading of the dataset (Redis's `server.loading`): while set,
    /// commands without the LOADING flag are answered `-LOADING` (one relaxed
    /// load per command). Cleared once the loaded data is in the shards.
    pub loading: AtomicBool,
    /// Unix seconds when loading began, and the size of what is loaded
    /// (INFO's `loading_start_time`, `loading_total_bytes`).
    pub loading_start_time: AtomicI64,
    pub loading_total_bytes: AtomicU64,
    /// DEBUG PAUSE-CRON (Redis's `server.pause_cron`): the shards' cron
    /// does no work while set (read once per cron).
    pub pause_cron: AtomicBool,
    /// maxmemory: the limit and policy mirrored from the config, the
    /// used-memory figure (`shard::memory`).
    pub memory: crate::shard::memory::Memory,
    /// The master side of replication (`replication`).
    pub repl: Arc<crate::replication::Master>,
    /// Client eviction (`maxmemory-clients`): the limit, each shard's
    /// clients' total and top bucket (`network::client_memory`).
    pub client_memory: crate::network::client_memory::ClientMemory,
}

/// CLIENT PAUSE types, ordered as Redis's (a stronger pause wins).
pub const PAUSE_WRITE: u8 = 1;
pub const PAUSE_ALL: u8 = 2;

impl Server {
    pub fn new(shard_count: usize, maxclients: usize, port: u16) -> Server {
        let mut seed = crate::util::unix_us() as u64 ^ ((std::process::id() as u64) << 32);
        let run_id: String = (0..40)
            .map(|_| {
                let v = crate::shard::keyspace::xorshift(&mut seed) % 16;
                std::char::from_digit(v as u32, 16).unwrap()
            })
            .collect();
        let repl = Arc::new(crate::replication::Master::new(shard_count));
        let aof: crate::persistence::aof_file::Sink = Default::default();
        let _ = aof.repl_tap.set(repl.clone());
        Server {
            acl: Default::default(),
            repl,
            shard_count,
            hold: HoldTable::new(shard_count),
            ring_fds: (0..shard_count).map(|_| AtomicI32::new(-1)).collect(),
            sleeping: (0..shard_count).map(|_| AtomicBool::new(false)).collect(),
            shards_share_cores: AtomicBool::new(false),
            next_client_id: AtomicU64::new(1),
            connected_clients: AtomicUsize::new(0),
            maxclients: AtomicUsize::new(maxclients),
            monitors: AtomicUsize::new(0),
            tracking: Default::default(),
            monitor_lines_queued: (0..shard_count).map(|_| AtomicUsize::new(0)).collect(),
            delivery_stamps: crate::messaging::pubsub::DeliveryStamps::new(shard_count),
            monitor_stamps: crate::messaging::pubsub::DeliveryStamps::new(shard_count),
            start_ms: crate::util::unix_ms(),
            run_id,
            executable: std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            pid: std::process::id(),
            tcp_port: AtomicUsize::new(port as usize),
            persistence: Persistence::new(shard_count),
            pause_end_ms: AtomicI64::new(0),
            pause_type: AtomicU8::new(0),
            shards_ready: AtomicUsize::new(0),
            aof,
            aof_rewrite: Default::default(),
            loading: AtomicBool::new(false),
            loading_start_time: AtomicI64::new(0),
            loading_total_bytes: AtomicU64::new(0),
            pause_cron: AtomicBool::new(false),
            memory: crate::shard::memory::Memory::new(shard_count),
            client_memory: crate::network::client_memory::ClientMemory::new(shard_count),
        }
    }

    pub fn uptime_seconds(&self) -> i64 {
        (crate::util::unix_ms() - self.start_ms) / 1000
    }

    /// CLIENT PAUSE: as Redis's pauseClients, the later end and the
    /// stronger type win over a pause already in force.
    pub fn pause(&self, end_ms: i64, kind: u8, now_ms: i64) {
        let current_end = self.pause_end_ms.load(Ordering::SeqCst);
        let current_kind = if current_end > now_ms { self.pause_type.load(Ordering::SeqCst) } else { 0 };
        self.pause_type.store(kind.max(current_kind), Ordering::SeqCst);
        crate::exec::gates::store_i64(
            &self.pause_end_ms,
            end_ms.max(if current_kind > 0 { current_end } else { 0 }),
            Ordering::SeqCst,
            crate::exec::gates::Reason::Pause,
        );
    }

    pub fn unpause(&self) {
        crate::exec::gates::store_i64(&self.pause_end_ms, 0, Ordering::SeqCst, crate::exec::gates::Reason::Pause);
        self.pause_type.store(0, Ordering::SeqCst);
    }

    /// The end of the pause in force at `now_ms`, if any.
    #[inline]
    pub fn pause_until(&self, now_ms: i64) -> Option<i64> {
        let end = self.pause_end_ms.load(Ordering::Relaxed);
        (end > now_ms).then_some(end)
    }

    /// Whether a command (a write or not) must wait for the pause to end.
    #[inline]
    pub fn pause_blocks(&self, now_ms: i64, is_write: bool) -> bool {
        self.pause_until(now_ms).is_some() && (is_write || self.pause_type.load(Ordering::Relaxed) == PAUSE_ALL)
    }

    /// Wakes shard `target` if it is waiting in its ring. `submit_doorbell`
    /// is given the target's ring fd and queues a MSG_RING.
    #[inline]
    pub fn needs_doorbell(&self, target: usize) -> bool {
        self.sleeping[target].swap(false, Ordering::SeqCst)
    }
}
