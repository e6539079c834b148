//! The master side of Redis replication (Redis's replication.c), so that a
//! real redis-server or Valkey replica follows ringkv.
//!
//! **One stream.** Replication consumes the shards' write streams
//! (`exec::propagate`), the same ones the AOF consumes: every hand-over of
//! a shard's stream (`Sink::hand_over`) gives replication its batch too
//! (`Master::push_batch`). The feeder thread (`feeder`) merges the batches
//! honouring the cuts of multi-shard commands exactly as the AOF writer
//! does, so per-key order is execution order, a multi-shard command or a
//! MULTI/EXEC is one unit at its cut, and SELECT goes out when the db
//! changes (the per-batch SELECTs of the merged bytes are dropped when
//! they select the db already selected). The result is the replication
//! stream: it feeds the backlog (`repl-backlog-size`), advances
//! `master_repl_offset`, and goes to every online replica.
//!
//! **Full sync.** SYNC and PSYNC detach the connection from its shard's
//! loop (`network::replica`): the feeder owns the socket from then on. A
//! replica that cannot continue from the backlog waits for a BGSAVE: the
//! next fork of an RDB child (`snapshot::start_child`, every shard held)
//! turns the streams on if they were not, hands every stream over, and
//! queues `Item::Forked` right behind those batches, so the offset the
//! feeder reaches at that item is exactly the snapshot's cut: the
//! replica gets `+FULLRESYNC <replid> <offset>`, then the RDB file
//! (disk-based, `repl-diskless-sync no` semantics) once the child is done,
//! then the stream from that offset (buffered meanwhile).
//!
//! **Items in order.** Batches and events share one queue numbered under
//! its lock, so an event queued while every shard is held lies at one cut
//! of all the streams.
//!
//! # What a user sees (the README points here)
//!
//! ringkv is a master that a real redis-server (or Valkey) replica follows:
//! `redis-server --replicaof <ringkv-host> <ringkv-port>` gets a full sync, then the live
//! command stream, and ends with the same `DEBUG DIGEST` (tests/replication.rs runs a mixed
//! workload over 3 shards against a real redis-server 7.0 replica). The stream is the shards'
//! write streams (`src/exec/propagate.rs`, the ones the AOF consumes) merged by a replication
//! thread (`src/replication/`) in an order consistent with execution: causal order across
//! shards (a write whose reply a client saw comes before every write that client sent after it,
//! whatever the shards: `src/persistence/lanes.rs`, the AOF's incr file is merged the same way;
//! tests/repl_order.rs), a multi-shard command or MULTI/EXEC as one unit at its cut (a hop's
//! parts run at different instants: the window this leaves is described in `lanes.rs`), `SELECT`
//! only when the db changes,
//! PUBLISH/SPUBLISH to replicas only (as Redis 7.0), `PING` every `repl-ping-replica-period`,
//! `REPLCONF GETACK *` for WAIT. PSYNC continues from the backlog (`repl-backlog-size`) with
//! `+CONTINUE <replid>` when the id (or the previous id, up to `second_repl_offset`) and offset
//! allow, otherwise `+FULLRESYNC <replid> <offset>`: the next RDB fork (the cron starts one;
//! `Starting BGSAVE for SYNC with target: disk` in the log) is taken at a cut of every stream, the
//! dump file (`dbfilename`, as Redis's disk-based sync) is sent, then the stream buffered since
//! the cut. SYNC (no PSYNC) gets the same without the `+FULLRESYNC` line. INFO replication
//! (`role`, `connected_slaves`, `slaveN:ip=,port=,state=,offset=,lag=`, `master_replid`,
//! `master_replid2`, `master_repl_offset`, `second_repl_offset`, `repl_backlog_*`), ROLE, WAIT
//! (counted by `REPLCONF ACK`) and `min-replicas-to-write`/`min-replicas-max-lag` (`-NOREPLICAS`,
//! `EXECABORT` at EXEC) are Redis's. A replica past `client-output-buffer-limit replica`'s hard
//! limit, or silent for `repl-timeout` once online, is dropped.
//!
//! `REPLICAOF host port` demotes: `role:slave`, writes refused with `-READONLY`
//! (`replica-read-only`), and with `replica-serve-stale-data no` every command without the
//! `stale` flag gets `-MASTERDOWN` (EXEC too when one it queued lacks it); a transaction that
//! demotes the server is not propagated. `REPLICAOF NO ONE` is a master again with a new
//! replication id. Not yet: the replica side (connecting to the master, loading its RDB and
//! applying its stream: `master_link_status` stays `down`); diskless sync; replicas in CLIENT
//! LIST; PUBLISH inside MULTI goes out before the transaction's unit rather than inside its
//! MULTI/EXEC; WAIT waits for the offset of everything written before it (Redis: the client's
//! own last write), re-checked each loop turn (ACKs ring the shards).

pub mod feeder;

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::exec::propagate::Cut;
use crate::shard::hold::ShardSet;

/// Write gate bits (`Master::gate`): one relaxed load per command when 0.
pub const GATE_NOREPLICAS: u8 = 1;
pub const GATE_READONLY: u8 = 2;
pub const GATE_STALE: u8 = 4;

pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
pub const READONLY: &str = "READONLY You can't write against a read only replica.";
pub const MASTERDOWN: &str = "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";

/// A connection that asked for SYNC or PSYNC, handed to the feeder.
pub struct Attach {
    pub fd: OwnedFd,
    pub client_id: u64,
    /// `ip:port` of the connection, and ours.
    pub addr: String,
    pub laddr: String,
    /// REPLCONF listening-port (0: none given).
    pub listening_port: u16,
    /// REPLCONF ip-address, if given.
    pub announced_ip: Option<String>,
    /// REPLCONF capa psync2: +CONTINUE carries the replication id.
    pub psync2: bool,
    /// PSYNC's replication id and offset; None for SYNC (no +FULLRESYNC line).
    pub psync: Option<(Vec<u8>, i64)>,
    pub created_ms: i64,
}

/// One entry of the feeder's queue.
pub enum Item {
    /// A shard's stream bytes from position `start` (see `Sink::hand_over`).
    Batch {
        seq: u64,
        shard: usize,
        start: u64,
        bytes: Vec<u8>,
        cuts: Vec<Cut>,
        inserts: Vec<(u64, Vec<u8>)>,
    },
    Attach(Box<Attach>),
    /// An RDB child forked for replication at this point of the streams.
    Forked,
    /// That child finished: the dump to send, or None when it failed.
    RdbDone(Option<std::fs::File>),
}

/// A replica as INFO, ROLE and WAIT see it (published by the feeder).
#[derive(Clone, Debug)]
pub struct ReplicaInfo {
    pub client_id: u64,
    pub addr: String,
    pub laddr: String,
    pub ip: String,
    pub port: u16,
    /// wait_bgsave, send_bulk or online.
    pub state: &'static str,
    pub ack_offset: u64,
    /// Unix ms of the last REPLCONF ACK (or of going online).
    pub ack_ms: i64,
    pub created_ms: i64,
}

/// The replication ids (Redis's replid, replid2, second_replid_offset).
#[derive(Clone, Debug)]
pub struct Ids {
    pub replid: String,
    pub replid2: String,
    pub second_offset: i64,
}

/// REPLICAOF's target while this server is a replica.
#[derive(Clone, Debug)]
pub struct MasterLink {
    pub host: String,
    pub port: u16,
    /// Unix seconds since the link is down.
    pub down_since: i64,
}

pub struct Master {
    shard_count: usize,
    /// Every shard's stream feeds replication (from the first fork for a
    /// replica on; never turned off, as Redis keeps its backlog).
    streams_on: AtomicBool,
    inbox: Mutex<VecDeque<Item>>,
    /// Hand-over numbers of batches, given under the inbox lock.
    seq: AtomicU64,
    /// The feeder waits in poll() on this eventfd; pushers ring it when it
    /// announced its sleep.
    wake: OwnedFd,
    sleeping: AtomicBool,
    started: AtomicBool,
    /// Published by the feeder: master_repl_offset, the batches merged
    /// into it, the backlog's extent.
    offset: AtomicU64,
    merged_seq: AtomicU64,
    backlog_histlen: AtomicU64,
    backlog_active: AtomicBool,
    replicas: Mutex<Vec<ReplicaInfo>>,
    /// Online replicas whose last ACK is within min-replicas-max-lag.
    good_replicas: AtomicUsize,
    /// A replica waits for a BGSAVE to start (the cron forks one).
    bgsave_wanted: AtomicBool,
    /// WAIT asked the replicas for an ACK (REPLCONF GETACK *).
    getack: AtomicBool,
    /// Connections in WAIT: the feeder rings the shards when ACKs arrive.
    pub waiters: AtomicUsize,
    ids: Mutex<Ids>,
    /// Config mirrored for the feeder and the write gate.
    pub ping_period_secs: AtomicU64,
    pub backlog_size: AtomicU64,
    pub timeout_secs: AtomicU64,
    pub replica_hard_limit: AtomicU64,
    min_replicas_to_write: AtomicUsize,
    min_replicas_max_lag: AtomicU64,
    read_only: AtomicBool,
    serve_stale: AtomicBool,
    link: Mutex<Option<MasterLink>>,
    /// GATE_* bits: what writes (and stale reads) are refused for.
    gate: AtomicU8,
    /// Unix seconds of the last time a replica was connected (INFO).
    pub no_replicas_since: AtomicI64,
}

fn random_id() -> String {
    let mut seed = crate::util::unix_us() as u64 ^ ((std::process::id() as u64) << 17) ^ 0x9e37_79b9_7f4a_7c15;
    (0..40)
        .map(|_| {
            let v = crate::shard::keyspace::xorshift(&mut seed) % 16;
            std::char::from_digit(v as u32, 16).unwrap()
        })
        .collect()
}

impl Master {
    pub fn new(shard_count: usize) -> Master {
        // SAFETY: eventfd takes plain integer arguments; the descriptor is
        // owned by the returned OwnedFd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let wake = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Master {
            shard_count,
            streams_on: AtomicBool::new(false),
            inbox: Mutex::new(VecDeque::new()),
            seq: AtomicU64::new(0),
            wake,
            sleeping: AtomicBool::new(false),
            started: AtomicBool::new(false),
            offset: AtomicU64::new(0),
            merged_seq: AtomicU64::new(0),
            backlog_histlen: AtomicU64::new(0),
            backlog_active: AtomicBool::new(false),
            replicas: Mutex::new(Vec::new()),
            good_replicas: AtomicUsize::new(0),
            bgsave_wanted: AtomicBool::new(false),
            getack: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            ids: Mutex::new(Ids { replid: random_id(), replid2: "0".repeat(40), second_offset: -1 }),
            ping_period_secs: AtomicU64::new(10),
            backlog_size: AtomicU64::new(1 << 20),
            timeout_secs: AtomicU64::new(60),
            replica_hard_limit: AtomicU64::new(256 << 20),
            min_replicas_to_write: AtomicUsize::new(0),
            min_replicas_max_lag: AtomicU64::new(10),
            read_only: AtomicBool::new(true),
            serve_stale: AtomicBool::new(true),
            link: Mutex::new(None),
            gate: AtomicU8::new(0),
            no_replicas_since: AtomicI64::new(crate::util::unix_ms() / 1000),
        }
    }

    /// Mirrors the replication settings (start-up and CONFIG SET).
    pub fn apply_config(&self, config: &Config) {
        let get = |name: &str, default: u64| config.others.get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(default);
        let yes = |name: &str, default: bool| config.others.get(name).map_or(default, |v| v == "yes");
        self.ping_period_secs.store(get("repl-ping-replica-period", 10).max(1), Ordering::Relaxed);
        self.backlog_size.store(get("repl-backlog-size", 1 << 20).max(16 * 1024), Ordering::Relaxed);
        self.timeout_secs.store(get("repl-timeout", 60).max(1), Ordering::Relaxed);
        self.min_replicas_to_write.store(get("min-replicas-to-write", 0) as usize, Ordering::Relaxed);
        self.min_replicas_max_lag.store(get("min-replicas-max-lag", 10), Ordering::Relaxed);
        self.read_only.store(yes("replica-read-only", true), Ordering::Relaxed);
        self.serve_stale.store(yes("replica-serve-stale-data", true), Ordering::Relaxed);
        let hard = config.client_output_buffer_limit_replica.hard_bytes;
        self.replica_hard_limit.store(if hard == 0 { u64::MAX } else { hard }, Ordering::Relaxed);
        self.update_gate();
    }

    /// Recomputes the write gate from the role, the settings and the good
    /// replicas count.
    fn update_gate(&self) {
        let mut gate = 0;
        let min = self.min_replicas_to_write.load(Ordering::Relaxed);
        let replica = self.link.lock().unwrap().is_some();
        // As Redis's checkGoodReplicasStatus: only a master refuses for it.
        if !replica && min > 0 && self.good_replicas.load(Ordering::Relaxed) < min {
            gate |= GATE_NOREPLICAS;
        }
        if replica && self.read_only.load(Ordering::Relaxed) {
            gate |= GATE_READONLY;
        }
        // The link is never up: ringkv does not replicate from a master yet.
        if replica && !self.serve_stale.load(Ordering::Relaxed) {
            gate |= GATE_STALE;
        }
        crate::exec::gates::store_u8(&self.gate, gate, Ordering::Relaxed, crate::exec::gates::Reason::Replication);
    }

    /// The write gate (0 almost always).
    #[inline]
    pub fn gate(&self) -> u8 {
        self.gate.load(Ordering::Relaxed)
    }

    /// What Redis's processCommand answers for the gate's write checks
    /// (NOREPLICAS, then READONLY), if anything.
    pub fn refuse_write(gate: u8, is_write: bool) -> Option<&'static str> {
        if !is_write {
            return None;
        }
        if gate & GATE_NOREPLICAS != 0 {
            return Some(NOREPLICAS);
        }
        (gate & GATE_READONLY != 0).then_some(READONLY)
    }

    /// MASTERDOWN for a command without the `stale` flag (EXEC: when a
    /// queued command lacks it) while the link is down and
    /// replica-serve-stale-data is no.
    pub fn refuse_stale(gate: u8, deny_stale: bool) -> Option<&'static str> {
        (gate & GATE_STALE != 0 && deny_stale).then_some(MASTERDOWN)
    }

    pub fn ids(&self) -> Ids {
        self.ids.lock().unwrap().clone()
    }

    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Acquire)
    }

    pub fn is_replica(&self) -> bool {
        self.link.lock().unwrap().is_some()
    }

    pub fn link(&self) -> Option<MasterLink> {
        self.link.lock().unwrap().clone()
    }

    pub fn replicas(&self) -> Vec<ReplicaInfo> {
        self.replicas.lock().unwrap().clone()
    }

    pub fn backlog(&self) -> (bool, u64) {
        (self.backlog_active.load(Ordering::Relaxed), self.backlog_histlen.load(Ordering::Relaxed))
    }

    /// The last hand-over number given.
    pub fn last_seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Whether every batch up to `seq` is merged into the stream.
    pub fn merged(&self, seq: u64) -> bool {
        self.merged_seq.load(Ordering::Acquire) >= seq
    }

    /// Online replicas whose ACK reached `offset`.
    pub fn acked(&self, offset: u64) -> usize {
        self.replicas.lock().unwrap().iter().filter(|r| r.state == "online" && r.ack_offset >= offset).count()
    }

    /// WAIT: ask every replica for an ACK now.
    pub fn request_ack(&self) {
        self.getack.store(true, Ordering::Relaxed);
        self.ring();
    }

    /// Takes one batch handed over by a shard.
    pub fn push_batch(&self, shard: usize, start: u64, bytes: Vec<u8>, cuts: Vec<Cut>, inserts: Vec<(u64, Vec<u8>)>) {
        let mut inbox = self.inbox.lock().unwrap();
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        inbox.push_back(Item::Batch { seq, shard, start, bytes, cuts, inserts });
        drop(inbox);
        self.ring();
    }

    fn push(&self, item: Item) {
        self.inbox.lock().unwrap().push_back(item);
        self.ring();
    }

    /// Wakes the feeder if it announced its sleep.
    fn ring(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: an 8-byte write from a stack buffer to our eventfd.
            unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr() as *const libc::c_void, 8) };
        }
    }

    /// SYNC/PSYNC: the connection now belongs to the feeder (started on
    /// the first one).
    pub fn attach(self: &Arc<Self>, server: &Arc<crate::server::Server>, att: Attach) {
        crate::notice!("Replica {} asks for synchronization", replica_name(&att.addr, att.listening_port));
        if !self.started.swap(true, Ordering::AcqRel) {
            let (m, s) = (self.clone(), server.clone());
            let spawned = std::thread::Builder::new().name("repl-feeder".into()).spawn(move || feeder::run(m, s));
            if let Err(e) = spawned {
                crate::warning!("Can't start the replication thread: {}", e);
                self.started.store(false, Ordering::Release);
                return;
            }
        }
        self.push(Item::Attach(Box::new(att)));
    }

    /// The feeder wants a BGSAVE for replicas waiting to start one.
    pub fn bgsave_wanted(&self) -> bool {
        self.bgsave_wanted.load(Ordering::Relaxed)
    }

    fn want_bgsave(&self) {
        self.bgsave_wanted.store(true, Ordering::Relaxed);
    }

    /// Right before an RDB child forks, every shard held: when replicas
    /// wait for a BGSAVE, the streams are turned on (if they were not) and
    /// handed over, so that `forked` lies at the snapshot's cut. Returns
    /// whether this child serves replication.
    pub fn before_fork(&self, server: &crate::server::Server, shards: &mut ShardSet) -> bool {
        if !self.bgsave_wanted.swap(false, Ordering::AcqRel) {
            return false;
        }
        crate::notice!("Starting BGSAVE for SYNC with target: disk");
        self.streams_on.store(true, Ordering::Release);
        for i in 0..shards.len() {
            let s = shards.get_mut(i);
            if !s.stream.feeds_repl() {
                s.stream.set_repl(true);
            }
            server.aof.hand_over(s);
        }
        true
    }

    /// After the fork of a child `before_fork` prepared (still every shard
    /// held); `ok` false when fork() failed (the replicas wait for the next).
    pub fn forked(&self, ok: bool) {
        if ok {
            self.push(Item::Forked);
        } else {
            self.want_bgsave();
        }
    }

    /// The child of `before_fork` ended; `dump` is the file it wrote.
    pub fn rdb_done(&self, dump: Option<std::fs::File>) {
        self.push(Item::RdbDone(dump));
    }

    /// REPLICAOF host port (every shard held): later writes are not
    /// replicated; what ran before goes to the replicas first.
    pub fn become_replica(&self, server: &crate::server::Server, shards: &mut ShardSet, host: String, port: u16) {
        self.hand_over_all(server, shards);
        *self.link.lock().unwrap() = Some(MasterLink { host, port, down_since: crate::util::unix_ms() / 1000 });
        self.update_gate();
    }

    /// `replicaof host port` in the configuration: a replica from the
    /// start (nothing to hand over yet).
    pub fn start_as_replica(&self, host: &str, port: u16) {
        *self.link.lock().unwrap() = Some(MasterLink { host: host.to_string(), port, down_since: crate::util::unix_ms() / 1000 });
        self.update_gate();
    }

    /// REPLICAOF NO ONE: a master again, with a new replication id (the
    /// old one is kept as replid2 up to the current offset, Redis's
    /// shiftReplicationId).
    pub fn become_master(&self, server: &crate::server::Server, shards: &mut ShardSet) {
        self.hand_over_all(server, shards);
        let was = self.link.lock().unwrap().take();
        if was.is_some() {
            let mut ids = self.ids.lock().unwrap();
            ids.replid2 = std::mem::replace(&mut ids.replid, random_id());
            ids.second_offset = self.offset() as i64 + 1;
        }
        self.update_gate();
    }

    fn hand_over_all(&self, server: &crate::server::Server, shards: &mut ShardSet) {
        for i in 0..shards.len() {
            if shards.has(i) && shards.get(i).stream.is_on() {
                server.aof.hand_over(shards.get_mut(i));
            }
        }
    }

    /// The number of shards whose streams the feeder merges.
    pub fn shard_count(&self) -> usize {
        self.shard_count
    }

    /// Whether the streams feed replication.
    pub fn streams_on(&self) -> bool {
        self.streams_on.load(Ordering::Acquire)
    }
}

/// A replica's CLIENT LIST entry (flags `S`, last command PSYNC or
/// REPLCONF as Redis shows it once ACKs arrive).
pub fn client_info(r: &ReplicaInfo) -> crate::shard::ClientInfo {
    let table = crate::commands::CommandTable::get();
    let cmd = if r.state == "online" { "replconf" } else { "psync" };
    crate::shard::ClientInfo {
        id: r.client_id,
        addr: r.addr.clone(),
        laddr: r.laddr.clone(),
        fd: -1,
        created_ms: r.created_ms,
        last_interaction_ms: r.ack_ms,
        last_cmd: table.lookup(cmd.as_bytes()).map_or(crate::shard::ClientInfo::NO_COMMAND, |id| id as u16),
        flags: "S".into(),
        resp: 2,
        ..Default::default()
    }
}

/// How Redis names a replica in its log lines: `ip:port` with the
/// listening port when the replica gave one.
pub fn replica_name(addr: &str, listening_port: u16) -> String {
    let ip = addr.rsplit_once(':').map_or(addr, |(ip, _)| ip);
    if listening_port > 0 {
        format!("{}:{}", ip, listening_port)
    } else {
        addr.to_string()
    }
}

/// What a client said with REPLCONF before SYNC/PSYNC, and its requests
/// that the loop acts on after the command (`network::replica`).
#[derive(Debug, Default)]
pub struct ClientRepl {
    pub listening_port: u16,
    pub announced_ip: Option<String>,
    pub psync2: bool,
    /// SYNC or PSYNC ran: the loop detaches the connection. The PSYNC
    /// arguments, or None for SYNC.
    pub sync: Option<Option<(Vec<u8>, i64)>>,
    /// WAIT in progress.
    pub wait: Option<WaitState>,
    /// WAIT must be tried again: the loop defers the connection.
    pub wait_pending: bool,
}

/// A WAIT command waiting (see `commands::replication::wait`).
#[derive(Clone, Copy, Debug)]
pub struct WaitState {
    pub numreplicas: usize,
    /// Unix ms; 0: no timeout.
    pub deadline_ms: i64,
    /// The hand-over number its writes are covered by.
    pub seq: u64,
    /// The offset to reach, once `seq` is merged.
    pub target: Option<u64>,
}
