//! The per-shard loop. One turn: reap completions (accepts, receives,
//! sends, doorbells), drain the mailboxes, retry deferred connections, queue
//! sends for every connection with output, ring doorbells, then one
//! `io_uring_enter` that submits everything and waits.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::bufring::BufRing;
use super::conn::{recycle, Closing, Conn, HopHold, SEND_BUFFER_BYTES, SEND_BUFFER_KEEP_BYTES};
use super::uring::{with_target, Uring};
use crate::commands::ClientState;
pub use crate::exec::Clock;
use crate::server::Server;
use crate::shard::hold::{ShardMask, ShardSet};
use crate::shard::mailbox::{ConnToken, Message, Outbox, PackedArgs};
use crate::shard::{ClientInfo, ShardState};

pub(super) const KIND_ACCEPT: u64 = 1;
pub(super) const KIND_RECV: u64 = 2;
pub(super) const KIND_SEND: u64 = 3;
const KIND_DOORBELL: u64 = 4;
const KIND_IGNORE: u64 = 5;
/// The BGSAVE child's pidfd became readable: it has exited.
const KIND_CHILD_EXIT: u64 = 6;

/// Flushes in a row that a connection waiting on `Conn::order_wait` keeps
/// its replies for the next ones: a `-P 16` batch over two shards waits
/// about four times.
const ORDER_HOLD_FLUSHES_MAX: u8 = 4;
const RECV_BUFFERS: u16 = 512;
const RECV_BUFFER_BYTES: usize = 16 * 1024;
const RING_ENTRIES: u32 = 4096;
/// The most receives a batching wait asks for (`EventLoop::wait`).
const BATCH_WAIT_MAX: u32 = 64;
/// The fewest commands a turn must have run for the batching wait
/// (`batch-wait-usec`) to follow it: the loop counts as saturated. At
/// `-P 1` a turn runs one command a ready connection, so only 64+ clients
/// sending at once reach it (never the -c 1..50 whose latency the wait
/// must not touch); a pipelining client's receive carries many (16 at
/// redis-benchmark `-P 16`: four receives reach it).
const BATCH_WAIT_COMMANDS_MIN: u64 = 64;
/// Replies queued per mailbox before the overflow queue takes over.
pub const MAILBOX_CAPACITY: usize = 4096;

#[inline]
/// A MSG_RING that wakes the shard whose ring is `fd` (its completion is
/// a doorbell, ignored once the loop turns; the sender's is skipped).
pub fn doorbell_entry(fd: RawFd) -> squeue::Entry {
    opcode::MsgRingData::new(types::Fd(fd), 0, ud(KIND_DOORBELL, 0, 0), None).build().flags(squeue::Flags::SKIP_SUCCESS).user_data(ud(KIND_IGNORE, 0, 0))
}

fn ud(kind: u64, generation: u32, index: u32) -> u64 {
    (kind << 56) | (((generation as u64) & 0xFF_FFFF) << 32) | index as u64
}
#[inline]
/// The send of what `conn.inflight` holds from `inflight_off` on.
pub(super) fn send_entry(conn: &Conn, index: u32) -> squeue::Entry {
    let ptr = conn.inflight[conn.inflight_off..].as_ptr();
    let len = (conn.inflight.len() - conn.inflight_off) as u32;
    let target = Uring::target(conn.fixed, index, conn.fd);
    with_target!(target, opcode::Send, ptr, len).flags(libc::MSG_NOSIGNAL).build().user_data(ud(KIND_SEND, conn.generation, index))
}

/// The next send of `conn`, if it has bytes to send: its pending output
/// becomes the in-flight buffer when that is empty (the AOF gates of that
/// output are then spent), and the connection is marked sending.
pub(super) fn next_send(conn: &mut Conn, index: u32) -> Option<squeue::Entry> {
    if conn.inflight.is_empty() && !conn.out.is_empty() {
        std::mem::swap(&mut conn.inflight, &mut conn.out);
        conn.inflight_off = 0;
        conn.aof_gated_len = 0;
        conn.aof_head_len = 0;
    }
    if conn.inflight_off < conn.inflight.len() {
        conn.sending = true;
        Some(send_entry(conn, index))
    } else {
        None
    }
}

pub(super) fn ud_parts(u: u64) -> (u64, u32, u32) {
    (u >> 56, ((u >> 32) & 0xFF_FFFF) as u32, u as u32)
}

pub struct EventLoop {
    pub id: usize,
    pub server: Arc<Server>,
    pub ring: IoUring,
    /// The registered ring descriptor and the connections' fixed-file table.
    pub uring: Uring,
    pub bufring: Option<BufRing>,
    /// One listening socket per bind address (SO_REUSEPORT, this shard's own).
    pub listeners: Vec<RawFd>,
    /// The shards this thread may touch: its own, and those it holds.
    pub set: ShardSet,
    /// The shards this thread holds right now (inside `with_held`).
    pub holding: ShardMask,
    pub conns: Vec<Option<Conn>>,
    pub free: Vec<u32>,
    pub generation: u32,
    pub outboxes: Vec<Option<Outbox>>,
    pub inboxes: Vec<Option<rtrb::Consumer<Message>>>,
    pub doorbells: ShardMask,
    pub deferred: Vec<u32>,
    pub dirty: Vec<u32>,
    pub pool: Vec<PackedArgs>,
    pub scratch: Vec<u8>,
    /// Commands parsed ahead of execution (see `parse_and_run`): where each
    /// starts, its length, its arguments. Reused across batches.
    pub batch: Vec<(usize, usize, crate::protocol::Args)>,
    /// The argument slices of the command `parse_and_run` runs (always
    /// empty here: reused for its allocation).
    pub arg_store: Vec<&'static [u8]>,
    pub cqes: Vec<(u64, i32, u32)>,
    /// The next completion of `cqes` that `reap` handles.
    pub reap_next: usize,
    pub next_cron_ms: i64,
    /// The AOF hand-over number replies wait for (the latest; each
    /// connection's own in `Conn::aof_gate`), and the lowest of the
    /// connections still waiting (u64::MAX: none): its write (any
    /// `appendfsync`), and under `always` its fsync.
    pub durable_mark: u64,
    pub gate_min: u64,
    /// This shard's stream fed the AOF at its last hand-over: its replies
    /// wait for the AOF's write (`network::script` reads it while a script
    /// holds the shard's state).
    pub aof_gating: bool,
    /// An inline AOF writer's entries for this ring (reused), and whether
    /// it has a timed duty (`Sink::inline_turn`).
    pub aof_sqes: Vec<squeue::Entry>,
    pub aof_tick: bool,
    /// Allocations from a fresh arena while a snapshot child runs
    /// (`persistence::cow`).
    pub snapshot_arena: crate::persistence::cow::SnapshotArena,
    /// One clock for the loop (see `Clock`).
    pub clock: Clock,
    /// The last command name looked up, exactly as sent, and its id:
    /// pipelines and benchmarks repeat one name, which then costs a compare.
    pub last_command: crate::commands::LastCommand,
    /// The ring was set up with DEFER_TASKRUN and COOP_TASKRUN.
    pub defer_taskrun: bool,
    /// The MONITOR line of the command just run (`exec::call`), reused.
    pub monitor_line: Vec<u8>,
    /// MONITOR lines for this shard's monitors, put back in stamp order
    /// (`accept_monitor_line`), and the lines due now (reused).
    pub monitor_inbound: crate::messaging::pubsub::Inbound<Vec<u8>>,
    pub monitor_due: Vec<Vec<u8>>,
    /// Intents this shard coordinates, queued and not yet run (`held`).
    pub intents: Vec<super::held::PendingIntent>,
    /// Who owns the intents `with_held` queues now.
    pub intent_owner: super::held::IntentOwner,
    /// A fork or shutdown the loop runs over every shard, retried each turn.
    pub loop_op: Option<super::held::LoopOp>,
    /// Connection slot by client id (tracking delivers invalidations by id).
    pub client_slots: std::collections::HashMap<u64, u32>,
    /// Multi-shard commands run by hops (`network::hop`).
    pub hops: super::hop::Hops,
    /// A RESP3 subscriber's own event pushes while its command's events are
    /// published (`messaging::own_pushes`).
    pub own_pushes: crate::messaging::own_pushes::OwnPushes,
    /// Completions a busy script's -BUSY service left for the loop
    /// (`network::script`), handled first by the next `reap`.
    pub busy_backlog: Vec<(u64, i32, u32)>,
    /// Messages a busy script's -BUSY service took from the inboxes and
    /// left for the loop (`network::script`), with their sender, handled
    /// first by the next `drain_mailboxes`, in order.
    pub busy_mail: Vec<(usize, Message)>,
    /// Bytes received and sent while busy, counted once the state is back.
    pub busy_input_bytes: u64,
    pub busy_output_bytes: u64,
    /// (protected-mode, a password is required) as of the last loop turn:
    /// a connection accepted while a script holds the shard states
    /// (`network::script`) is checked against these (no CONFIG SET can run
    /// meanwhile: the script holds every shard).
    pub accept_guard: (bool, bool),
    /// Whether this shard's accepts are armed: from its first turn, or
    /// during a start-up load only once clients are admitted (`admit_clients`).
    accepting: bool,
    /// Connections accepted while the shard state was lent to a script:
    /// registered in `clients` (CLIENT LIST, stats) when it is back.
    pub unregistered: Vec<(u32, ClientInfo)>,
    /// Connections refused while the state was lent (rejected_connections).
    pub refused_unregistered: u64,
    /// Client eviction's per-loop side (`network::client_memory`).
    pub client_mem: super::client_memory::ClientMemoryLocal,
    /// Receives with data this turn: a batching wait asks for as many.
    pub turn_recvs: u32,
    /// Sends queued this turn: each posts its completion inside the enter
    /// that submits it (a socket with room), which a wait then counts.
    pub turn_sends: u32,
    /// `total_commands` when the turn began: the turn's commands, the
    /// batching wait's measure of a saturated loop (see `wait`).
    pub turn_commands: u64,
}

impl EventLoop {
    /// # Safety
    /// `state` must point to this shard's live state, used by no thread but
    /// the one that runs the loop, except through the hold protocol.
    pub unsafe fn new(
        id: usize,
        server: Arc<Server>,
        state: *mut ShardState,
        listeners: Vec<RawFd>,
        outboxes: Vec<Option<Outbox>>,
        inboxes: Vec<Option<rtrb::Consumer<Message>>>,
    ) -> std::io::Result<EventLoop> {
        let (ring, defer_taskrun) = build_ring()?;
        let uring = Uring::new(&ring);
        let bufring = match BufRing::new(&ring.submitter(), RECV_BUFFERS, RECV_BUFFER_BYTES, 0) {
            Ok(b) => Some(b),
            Err(e) => {
                crate::warning!("Provided-buffer rings unavailable ({}); falling back to single-shot receive", e);
                None
            }
        };
        let n = server.shard_count;
        let mut set = ShardSet::new(n);
        // SAFETY: `state` is this shard's own state (the caller's promise),
        // owned by this thread for the life of the loop; another thread
        // touches it only while this one is parked in `hold.check`.
        unsafe { set.set(id, state) };
        Ok(EventLoop {
            id,
            server,
            ring,
            uring,
            bufring,
            listeners,
            set,
            holding: ShardMask::default(),
            conns: Vec::new(),
            free: Vec::new(),
            generation: 1,
            outboxes,
            inboxes,
            doorbells: ShardMask::default(),
            deferred: Vec::new(),
            dirty: Vec::new(),
            pool: Vec::new(),
            scratch: Vec::with_capacity(64 * 1024),
            batch: Vec::new(),
            arg_store: Vec::with_capacity(8),
            cqes: Vec::with_capacity(1024),
            reap_next: 0,
            next_cron_ms: 0,
            durable_mark: 0,
            aof_gating: false,
            gate_min: u64::MAX,
            aof_sqes: Vec::new(),
            aof_tick: false,
            snapshot_arena: Default::default(),
            clock: Clock::new(),
            last_command: crate::commands::LastCommand::default(),
            defer_taskrun,
            monitor_line: Vec::new(),
            monitor_inbound: Default::default(),
            monitor_due: Vec::new(),
            intents: Vec::new(),
            intent_owner: Default::default(),
            loop_op: None,
            client_slots: Default::default(),
            hops: Default::default(),
            own_pushes: Default::default(),
            busy_backlog: Vec::new(),
            busy_mail: Vec::new(),
            busy_input_bytes: 0,
            busy_output_bytes: 0,
            accept_guard: (false, false),
            accepting: false,
            unregistered: Vec::new(),
            refused_unregistered: 0,
            client_mem: Default::default(),
            turn_recvs: 0,
            turn_sends: 0,
            turn_commands: 0,
        })
    }

    /// This shard's state (always inlined: LLVM kept it a call on the
    /// command path, where it is read several times per request).
    #[inline(always)]
    pub fn state(&mut self) -> &mut ShardState {
        self.set.get_mut(self.id)
    }

    /// Queues one SQE (inlined: one per request at -P 1, the reply's send;
    /// a full submission queue, the rare case, is out of line).
    #[inline]
    pub fn push_sqe(&mut self, e: squeue::Entry) {
        // SAFETY: every buffer an SQE points to outlives its completion
        // (connection buffers are kept until their ops complete).
        if unsafe { self.ring.submission().push(&e) }.is_err() {
            self.push_sqe_full(e);
        }
    }

    /// The submission queue is full: submit what it holds, then queue `e`.
    #[cold]
    #[inline(never)]
    fn push_sqe_full(&mut self, e: squeue::Entry) {
        loop {
            let _ = self.uring.enter(&mut self.ring, 0, None);
            // SAFETY: as in `push_sqe`.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
        }
    }

    /// Which ring features this shard got (for the start-up log line).
    pub fn features(&self) -> String {
        let p = self.ring.params();
        let mut f = vec!["multishot-accept"];
        if self.bufring.is_some() {
            f.push("multishot-recv");
            f.push("buffer-ring");
        }
        if p.is_setup_single_issuer() {
            f.push("SINGLE_ISSUER");
        }
        if self.defer_taskrun {
            f.push("DEFER_TASKRUN");
            f.push("COOP_TASKRUN");
        }
        if p.is_setup_sqpoll() {
            f.push("SQPOLL");
        }
        if self.uring.fixed_files > 0 {
            f.push("fixed-files");
        }
        if self.uring.registered_ring() {
            f.push("registered-ring");
        }
        f.push("MSG_RING-doorbells");
        f.join(",")
    }

    /// Reads the clock once per turn (CLOCK_MONOTONIC itself: the anchor
    /// of the turn's TSC readings, `exec::clock`); commands then read it once each.
    fn turn_start(&mut self) {
        self.clock.turn();
        self.snapshot_arena.follow(self.server.persistence.snapshot_active.load(Ordering::Relaxed));
    }

    /// Whether clients are served yet. A start-up load keeps them waiting
    /// in the listen backlog (connected, not accepted) unless it is long
    /// (`LoadProgress::admitting`: at least one progress step of bytes, or
    /// has run one step), so a small dataset is loaded before any client is
    /// served and a big one answers `-LOADING` while it loads. Redis reads
    /// its clients only between steps of the load (every 1024 AOF commands,
    /// every `loading-process-events-interval-bytes` of an RDB, and at each
    /// file's first command), so a small load ends before a client that
    /// connected after the first milliseconds is read (measured with 7.0.15:
    /// a 3000-command AOF, the client connected 42 ms after the start, +PONG
    /// as its first reply; a million commands, -LOADING). Without this, a
    /// client of a freshly started ringkv (Redis's TCL harness connects once
    /// the port listens) got -LOADING for the whole hand-over of even an
    /// empty dataset (tests/loading.rs `small_load_admits_clients_after_it`).
    fn admit_clients(&self) -> bool {
        !self.server.loading.load(Ordering::Acquire) || crate::persistence::rdb::LOAD_PROGRESS.admitting.load(Ordering::Acquire)
    }

    fn arm_accepts(&mut self) {
        for i in 0..self.listeners.len() {
            let e = opcode::AcceptMulti::new(types::Fd(self.listeners[i])).build().user_data(ud(KIND_ACCEPT, 0, i as u32));
            self.push_sqe(e);
        }
        let _ = self.ring.submit();
        self.accepting = true;
        self.server.shards_ready.fetch_add(1, Ordering::Release);
    }

    pub fn run(&mut self) {
        self.server.ring_fds[self.id].store(self.ring.as_raw_fd(), Ordering::Release);
        loop {
            if self.hold_check() {
                // Time parked is nobody's command time.
                self.clock.tick();
            }
            // Checked each turn until armed; a loading shard's turns come at
            // least every 10 ms (`wait`).
            if !self.accepting && self.admit_clients() {
                self.arm_accepts();
            }
            self.register_accepted();
            self.turn_start();
            if self.server.tracking.clients.load(Ordering::Relaxed) > 0 {
                // Invalidations sent before the commands just received must
                // be written before their replies (see `messaging::tracking_loop`).
                self.drain_mailboxes();
            }
            self.reap();
            self.drain_mailboxes();
            self.run_parts();
            self.retry_deferred();
            self.run_parts();
            self.run_loop_op();
            self.sweep_intents();
            self.blocking_turn();
            self.watch_child_exit();
            self.state().collect_graveyards();
            if self.state().lazyfree.has_pending() {
                self.state().lazyfree.step(crate::shard::lazyfree::STEP_ELEMENTS);
            }
            let now = self.clock.now_ms();
            // Every turn, limit or none: a limit set later starts from
            // nets at most a turn old (`shard::memory::Memory::publish_net`).
            self.server.memory.publish_net(self.id);
            if self.server.memory.limit() != 0 {
                self.maxmemory_turn(now);
            }
            if now >= self.next_cron_ms {
                self.cron(now);
                let hz = self.state().config.hz.max(1) as i64;
                self.next_cron_ms = now + 1000 / hz;
            }
            self.tracking_turn();
            let mut gate = None;
            if self.state().stream.is_on() {
                let server = self.server.clone();
                let mark = server.aof.hand_over(self.state());
                // Replies wait for the write of what they acknowledge, as
                // Redis writes its AOF buffer in beforeSleep before it
                // sends replies (flushAppendOnlyFile, then
                // handleClientsWithPendingWrites): a client that read a
                // reply finds the command in the file (page cache). Under
                // `always` they wait for its fsync; past the writer's limit
                // (`over_limit`, counted here) the hand-over waits too with
                // only replication consuming the stream.
                let over = server.aof.over_limit();
                self.aof_gating = self.state().stream.feeds_aof();
                if self.aof_gating || server.aof.always() || over {
                    self.durable_mark = self.durable_mark.max(mark);
                    gate = Some(mark);
                }
                if let Some(fd) = server.aof.writer_needs_doorbell() {
                    self.push_sqe(doorbell_entry(fd));
                }
            }
            if self.server.aof.inline_due() {
                // One shard: this loop is the AOF writer (its write and
                // fsync go on this ring, their completions come back here).
                // Idle with nothing handed over, it has no turn.
                let mut sqes = std::mem::take(&mut self.aof_sqes);
                self.aof_tick = self.server.aof.inline_turn(&mut sqes);
                for e in sqes.drain(..) {
                    self.push_sqe(e);
                }
                self.aof_sqes = sqes;
            }
            // Messages left outside this shard's own commands (active expiry's
            // notifications in the cron; deliveries a coordinator that held
            // this shard queued on it): published and sent before this
            // turn's output.
            self.after_command_messaging();
            // Client eviction once this turn's output is all appended (the
            // cron's counts, tracking's and the deliveries' pushes above
            // included): a client they put over `maxmemory-clients` is gone
            // before the turn ends, so no CLIENT LIST holding this shard
            // next sees it over the limit (the TCL unit client-eviction's
            // "tracking redirection" at 3 shards did).
            self.client_memory_turn();
            if let Some(mark) = gate {
                self.gate_outputs(mark);
            }
            // No reply leaves before the writes it acknowledges are
            // written (fsynced under appendfsync always): the sends wait,
            // the shard does not.
            if self.server.aof.durable(self.durable_mark) {
                self.flush_sends(None);
            } else {
                self.flush_sends(Some(self.server.aof.synced()));
            }
            self.ring_doorbells();
            if self.hold_check() {
                // Time parked is nobody's command time.
                self.clock.tick();
            }
            self.wait();
        }
    }

    fn wait(&mut self) {
        // Connections held by CLIENT PAUSE do not keep the loop spinning: the
        // wait below ends with the pause (or at cron, for CLIENT UNPAUSE).
        let conns = &self.conns;
        let busy = self.deferred.iter().any(|&i| conns[i as usize].as_ref().is_some_and(|c| !c.paused && !c.mark_wait && !c.hop_wait && !c.order_wait))
            || self.outboxes.iter().flatten().any(|o| !o.overflow.is_empty())
            || self.loop_op.is_some()
            || self.state().lazyfree.has_pending()
            || !self.state().blocking.unblocked.is_empty()
            || !self.state().blocking.ready.is_empty()
            || self.hop_part_ready();
        if busy {
            let _ = self.uring.enter(&mut self.ring, 0, None);
            if !self.deferred.is_empty() {
                std::thread::yield_now();
            }
            return;
        }
        // Announce sleep, then re-check for work that raced in (see Server::needs_doorbell).
        self.server.sleeping[self.id].store(true, Ordering::SeqCst);
        // What a busy script's service left (`network::script`) too.
        let has_mail = self.inboxes.iter().flatten().any(|c| !c.is_empty()) || !self.busy_mail.is_empty() || !self.busy_backlog.is_empty();
        let held = self.server.hold.must_park(self.id);
        // Replies waiting for the AOF's fsync: the writer rings a sleeping
        // shard when it publishes a new `synced`; one that came before the
        // sleep was announced is seen here.
        let durable_now = self.gate_min != u64::MAX && self.server.aof.durable(self.gate_min) && !self.dirty.is_empty();
        if has_mail || held || durable_now || !self.ring.completion().is_empty() {
            self.server.sleeping[self.id].store(false, Ordering::SeqCst);
            let _ = self.uring.enter(&mut self.ring, 0, None);
            return;
        }
        // The turn's clock (read at its start and after each command): the
        // cron, pause and blocking deadlines are all in its terms, and a
        // sleeping turn then reads the clock once, not twice.
        let now = self.clock.now_ms();
        let until = match self.server.pause_until(now) {
            Some(end) if !self.deferred.is_empty() => end.min(self.next_cron_ms),
            _ => self.next_cron_ms,
        };
        // A blocked client's timeout ends the wait (`network::blocking`):
        // the millisecond after its deadline, when it is past.
        let until = self.state().blocking.next_deadline().map_or(until, |d| until.min(d + 1));
        let mut wait_ms = (until - now).clamp(1, 1000) as u64;
        if self.aof_tick {
            wait_ms = wait_ms.min(crate::persistence::aof_file::INLINE_TICK.as_millis() as u64);
        }
        if !self.server.aof.durable(self.durable_mark) || self.server.loading.load(Ordering::Relaxed) || !self.accepting {
            // The writer's doorbell ends the wait; this bounds a lost one.
            // While the dataset loads, the loader (a thread without a ring,
            // so without doorbells) waits for this shard to park, and
            // clients wait for `admit_clients`.
            wait_ms = wait_ms.min(10);
        }
        let ts = types::Timespec::from(Duration::from_millis(wait_ms));
        let batch = std::mem::take(&mut self.turn_recvs);
        let sends = std::mem::take(&mut self.turn_sends);
        // The batching wait (`batch-wait-usec`, perf/RESULTS.md "sat21"),
        // only after a saturated turn: one that ran at least
        // BATCH_WAIT_COMMANDS_MIN commands from two or more receives.
        // After any turn of two receives (batch20) it cost 30 us of p50
        // and 7-10% of the requests/s of 8 unpipelined clients, whose next
        // requests come one by one; at -P 1 a turn only runs 64 commands
        // with 64 connections ready. The k connections that sent this turn
        // will send again once they read their replies, so the wait asks
        // for k receives beyond the completions of this turn's own sends
        // (a send to a socket with room completes inside this enter and
        // would end a plain wait at once); a receive is lazy task work, so
        // the kernel wakes the loop at the k-th, or once `batch-wait-usec`
        // has passed with any completion queued (a short send's, a
        // doorbell's: each waits at most that long), or at the timeout if
        // none. One wake-up and one turn then serve about k batches. Where
        // the kernel lacks `min_wait_usec` (before 6.12), or without
        // DEFER_TASKRUN, the config is accepted and not acted on.
        // Not done: asking for one completion beyond the sends after every
        // turn that sent (no send-only turn before a sleep): at -P 1 under
        // load the next receive often comes after `batch-wait-usec`, and
        // the wait then ends at its timer with only the sends queued: more
        // sleeps, not fewer turns (enters 0.237 -> 0.274 a GET).
        let commands = self.state().stats.total_commands.saturating_sub(self.turn_commands);
        let wait_us = self.state().config.batch_wait_usec;
        if wait_us > 0 && batch >= 2 && commands >= BATCH_WAIT_COMMANDS_MIN && self.uring.min_wait && self.defer_taskrun {
            self.state().stats.batch_waits += 1;
            let _ = self.uring.enter_min(&mut self.ring, sends + batch.min(BATCH_WAIT_MAX), Some(&ts), wait_us);
        } else {
            let _ = self.uring.enter(&mut self.ring, 1, Some(&ts));
        }
        self.server.sleeping[self.id].store(false, Ordering::SeqCst);
    }

    /// Polls a just-forked BGSAVE child's pidfd on this ring, if no other
    /// shard has taken it (one relaxed load per loop turn otherwise).
    fn watch_child_exit(&mut self) {
        let watch = &self.server.persistence.exit_watch;
        if watch.load(Ordering::Relaxed) < 0 {
            return;
        }
        let fd = watch.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32).build().user_data(ud(KIND_CHILD_EXIT, 0, 0));
            self.push_sqe(e);
        }
    }

    fn reap(&mut self) {
        self.turn_recvs = 0;
        self.turn_sends = 0;
        self.turn_commands = self.state().stats.total_commands;
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.append(&mut self.busy_backlog);
        self.settle_busy_counts();
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        self.prefetch_received(&cqes);
        self.cqes = cqes;
        // Walked in place: a script run by one of these completions serves
        // the rest of the batch while it is busy (`serve_busy` takes them).
        self.reap_next = 0;
        while self.reap_next < self.cqes.len() {
            let (u, res, flags) = self.cqes[self.reap_next];
            self.reap_next += 1;
            let (kind, generation, index) = ud_parts(u);
            match kind {
                KIND_ACCEPT => self.on_accept(index, res, flags),
                KIND_RECV => self.on_recv(index, generation, res, flags),
                KIND_SEND => self.on_send(index, generation, res),
                KIND_CHILD_EXIT => {
                    let config = self.state().config.clone();
                    crate::persistence::snapshot::poll_child(&self.server, &config);
                }
                KIND_DOORBELL | KIND_IGNORE => {}
                _ if crate::persistence::aof_file::is_writer_completion(u) => {
                    let mut sqes = std::mem::take(&mut self.aof_sqes);
                    self.server.aof.inline_completion(u, res, &mut sqes);
                    for e in sqes.drain(..) {
                        self.push_sqe(e);
                    }
                    self.aof_sqes = sqes;
                }
                _ => {}
            }
        }
    }

    pub(super) fn on_accept(&mut self, listener: u32, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            if let Some(&fd) = self.listeners.get(listener as usize) {
                let e = opcode::AcceptMulti::new(types::Fd(fd)).build().user_data(ud(KIND_ACCEPT, 0, listener));
                self.push_sqe(e);
            }
        }
        if res < 0 {
            return;
        }
        let fd = res;
        let connected = self.server.connected_clients.fetch_add(1, Ordering::AcqRel) + 1;
        if connected > self.server.maxclients.load(Ordering::Relaxed) {
            self.refuse(fd, b"-ERR max number of clients reached\r\n");
            return;
        }
        let (peer, local) = super::listener::addresses(fd);
        let lent = self.state_lent();
        let (protected_mode, password) = if lent {
            self.accept_guard
        } else {
            let config = &self.state().config;
            (config.protected_mode, self.server.acl.auth_required())
        };
        if super::listener::protected_mode_denies(protected_mode, password, peer.as_ref()) {
            self.refuse(fd, super::listener::PROTECTED_MODE_DENIED.as_bytes());
            return;
        }
        super::listener::set_nodelay(fd);
        let now = crate::util::unix_ms();
        let id = self.server.next_client_id.fetch_add(1, Ordering::Relaxed);
        let client = ClientState {
            id,
            resp: 2,
            authenticated: !password,
            addr: super::listener::format_addr(&peer),
            laddr: super::listener::format_addr(&local),
            created_ms: now,
            ..Default::default()
        };
        let generation = self.generation & 0xFF_FFFF;
        self.generation = self.generation.wrapping_add(1);
        let info = ClientInfo {
            id,
            addr: client.addr.clone(),
            laddr: client.laddr.clone(),
            fd,
            created_ms: now,
            last_interaction_ms: now.div_euclid(1000) * 1000,
            resp: 2,
            last_cmd: ClientInfo::NO_COMMAND,
            ..Default::default()
        };
        let mut conn = Conn::new(fd, generation, client);
        let index = self.free.pop().unwrap_or(self.conns.len() as u32);
        conn.fixed = self.uring.install(&self.ring, index, fd);
        if index as usize == self.conns.len() {
            self.conns.push(Some(conn));
        } else {
            self.conns[index as usize] = Some(conn);
        }
        self.conns[index as usize].as_mut().unwrap().client.pubsub.token = ConnToken { index, generation };
        let mem = self.conns[index as usize].as_ref().unwrap().mem();
        let info = ClientInfo { token: ConnToken { index, generation }, mem, ..info };
        if lent {
            self.unregistered.push((index, info));
        } else {
            self.register(index, info);
        }
        self.client_slots.insert(id, index);
        self.arm_recv(index);
    }

    fn register(&mut self, index: u32, info: ClientInfo) {
        let st = self.state();
        if st.clients.len() <= index as usize {
            st.clients.resize(index as usize + 1, None);
        }
        st.clients[index as usize] = Some(info);
        st.stats.total_connections += 1;
    }

    /// The state is back: what was accepted (or refused) while a script had
    /// it is entered now, before any of those connections' closes run.
    fn register_accepted(&mut self) {
        // Empty but for the turns after a busy script: no allocation taken.
        for (index, info) in std::mem::take(&mut self.unregistered) {
            self.register(index, info);
        }
        let refused = std::mem::take(&mut self.refused_unregistered);
        let st = self.state();
        st.stats.rejected_connections += refused;
        self.accept_guard = (st.config.protected_mode, self.server.acl.auth_required());
    }

    /// Whether this shard's state is lent to a running script (see
    /// `network::script`): it is then null in the shard's own set.
    fn state_lent(&mut self) -> bool {
        self.set.raw_ptrs()[self.id].is_null()
    }

    /// Turns away a just-accepted connection with `reply` (written once,
    /// best effort, as Redis does), counted in `rejected_connections`.
    fn refuse(&mut self, fd: RawFd, reply: &[u8]) {
        self.server.connected_clients.fetch_sub(1, Ordering::AcqRel);
        // SAFETY: a write from a live slice to a socket we own and nobody
        // else knows of yet, then its close.
        unsafe {
            libc::write(fd, reply.as_ptr() as *const libc::c_void, reply.len());
            libc::close(fd);
        }
        if self.state_lent() {
            self.refused_unregistered += 1;
        } else {
            self.state().stats.rejected_connections += 1;
        }
    }

    pub(super) fn arm_recv(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        if conn.recv_armed || conn.closing == Closing::Closed || conn.eof {
            return;
        }
        conn.recv_armed = true;
        let u = ud(KIND_RECV, conn.generation, index);
        let target = Uring::target(conn.fixed, index, conn.fd);
        let e = match &self.bufring {
            Some(br) => with_target!(target, opcode::RecvMulti, br.bgid).build().user_data(u),
            None => {
                // Single-shot fallback: receive into the query buffer's spare capacity.
                let conn = self.conns[index as usize].as_mut().unwrap();
                conn.qbuf.reserve(RECV_BUFFER_BYTES);
                let spare = conn.qbuf.spare_capacity_mut();
                with_target!(target, opcode::Recv, spare.as_mut_ptr() as *mut u8, spare.len() as u32).build().user_data(u)
            }
        };
        self.push_sqe(e);
    }

    fn conn_alive(&self, index: u32, generation: u32) -> bool {
        matches!(self.conns.get(index as usize), Some(Some(c)) if c.generation == generation)
    }

    /// The connection `token` names, if it is still that one (not closed
    /// and its slot reused since).
    pub(super) fn conn_of(&self, token: ConnToken) -> Option<&Conn> {
        self.conns.get(token.index as usize)?.as_ref().filter(|c| c.generation == token.generation)
    }

    fn on_recv(&mut self, index: u32, generation: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        if !self.conn_alive(index, generation) {
            if let (Some(b), Some(br)) = (bid, self.bufring.as_mut()) {
                br.recycle(b);
            }
            return;
        }
        if !more || self.bufring.is_none() {
            self.conns[index as usize].as_mut().unwrap().recv_armed = false;
        }
        if res == -libc::ENOBUFS {
            self.arm_recv(index);
            return;
        }
        if res <= 0 {
            if let (Some(b), Some(br)) = (bid, self.bufring.as_mut()) {
                br.recycle(b);
            }
            if res == 0 {
                let c = self.conns[index as usize].as_mut().unwrap();
                // Closed here already (the output-buffer limit, CLIENT KILL,
                // the idle timeout): its receive ends with our shutdown.
                // Left to `flush_sends`, which skips closed connections, it
                // was never released: its descriptor and buffers (16 KiB)
                // stayed for the server's life (TCL unit obuf-limits,
                // used_memory after a client closed by the limit).
                if c.closing == Closing::Closed {
                    self.maybe_release(index);
                    return;
                }
                // The peer has finished sending (shutdown(SHUT_WR), or a
                // close): what it sent still runs, including commands that
                // wait for other shards, and its replies are sent; then
                // `flush_sends` closes. Closing here lost the replies of
                // commands that had run.
                c.eof = true;
                if c.blocked.is_some() || c.block_pending {
                    // A blocked client that hangs up is freed, as in Redis:
                    // nothing is popped for it afterwards.
                    self.close(index);
                    self.maybe_release(index);
                    return;
                }
                self.mark_dirty(index);
                return;
            }
            self.close(index);
            self.maybe_release(index);
            return;
        }
        let len = res as usize;
        self.turn_recvs += 1;
        match (bid, self.bufring.as_ref()) {
            (Some(b), Some(br)) => {
                // SAFETY: valid until recycled below; `process_input` copies what it keeps.
                let data = unsafe { br.data(b, len) };
                self.process_input(index, Some(data));
                self.bufring.as_mut().unwrap().recycle(b);
            }
            _ => {
                let conn = self.conns[index as usize].as_mut().unwrap();
                // SAFETY: the kernel wrote `len` bytes into the spare capacity.
                unsafe { conn.qbuf.set_len(conn.qbuf.len() + len) };
                self.process_input(index, None);
            }
        }
        self.state().stats.net_input_bytes += len as u64;
        // Re-armed, or released once closed: one look at the connection
        // for both (`maybe_release` looked it up again, ~6 instructions a
        // receive).
        match self.conns[index as usize].as_ref() {
            Some(c) if !c.recv_armed && c.closing == Closing::No => self.arm_recv(index),
            Some(c) if c.closing == Closing::Closed => self.maybe_release(index),
            _ => {}
        }
    }

    fn on_send(&mut self, index: u32, generation: u32, res: i32) {
        if !matches!(self.conns.get(index as usize), Some(Some(c)) if c.generation == generation) {
            return;
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.sending = false;
        if res < 0 {
            conn.inflight.clear();
            conn.inflight_off = 0;
            if conn.closing != Closing::Closed {
                self.close(index);
            }
            self.maybe_release(index);
            return;
        }
        conn.inflight_off += res as usize;
        self.state().stats.net_output_bytes += res as u64;
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.inflight_off >= conn.inflight.len() {
            let big = conn.inflight.len() > SEND_BUFFER_KEEP_BYTES;
            conn.inflight.clear();
            conn.inflight_off = 0;
            if conn.inflight.capacity() > SEND_BUFFER_KEEP_BYTES && !conn.big_sends {
                // A big reply (or a burst of pushes) after small ones is
                // sent: its buffer goes, as Redis frees its reply list once
                // written. Kept, it stayed in used_memory for the
                // connection's life (ten tracking clients' invalidation
                // bursts held 2.3 MB, and eviction then took every key: the
                // TCL unit maxmemory's "client tracking don't cause
                // eviction feedback loop").
                conn.inflight = Vec::with_capacity(SEND_BUFFER_BYTES);
            }
            conn.big_sends = big;
        }
        // `flush_sends` has something to do for it: output that came while
        // this send was out (gated by the AOF or not), the rest of a short
        // send, a close once all is sent. Not the common case of a reply
        // sent whole with nothing behind it (at -P 1, one per request: a
        // second visit of every connection per turn, for nothing).
        let closed = conn.closing == Closing::Closed;
        let omem_reported = conn.omem_reported != 0;
        if !conn.out.is_empty() || conn.inflight_off < conn.inflight.len() || conn.closing != Closing::No || conn.eof {
            self.mark_dirty(index);
        }
        // What was sent no longer counts against maxmemory-clients (which
        // may close it), nor in an output-limited client's reported omem.
        // Without that limit only a closed connection can be released: not
        // looked up again for the others (~6 instructions a send at -P 1).
        if self.client_mem.limit_bytes != 0 {
            self.client_memory_note(index);
            self.note_sent_omem(index);
            self.maybe_release(index);
        } else {
            if omem_reported {
                self.note_sent_omem(index);
            }
            if closed {
                self.maybe_release(index);
            }
        }
    }

    pub fn mark_dirty(&mut self, index: u32) {
        if let Some(Some(c)) = self.conns.get_mut(index as usize) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    /// `appendfsync always` (or past the writer's limit): the output each
    /// connection gained this turn waits for `mark`, the hand-over number
    /// of this turn's writes (its own, and those other shards ran for it
    /// before their replies came back: hand-over numbers only grow). A
    /// connection's older output waits with it, unless the commit it
    /// waits for has started (its gate is at or below `Sink::started`):
    /// then that older output becomes the buffer's head, released with
    /// its own commit (`Conn::aof_head_len`), and only the new output
    /// waits for `mark`. Output whose commit has not started yet just
    /// joins the new: the next commit covers both.
    ///
    /// Heads already durable are sent first (`send_heads`); one that cannot
    /// go yet (a send in flight) stays the head, and older output whose
    /// commit is still running then joins the new (it waits one commit
    /// more, which only a connection whose socket is slow to drain sees).
    fn gate_outputs(&mut self, mark: u64) {
        let synced = self.server.aof.synced();
        self.send_heads(synced);
        let started = self.server.aof.started();
        for &index in &self.dirty {
            if let Some(c) = self.conns[index as usize].as_mut() {
                if c.out.len() != c.aof_gated_len {
                    // A durable head (its send still in flight) takes in
                    // only older output that is durable too.
                    let durable_head = c.aof_head_len > 0 && c.aof_head_gate <= synced;
                    let tail_started = c.aof_gated_len > 0 && c.aof_gated_len <= c.out.len() && c.aof_gate <= started;
                    if tail_started && (!durable_head || c.aof_gate <= synced) {
                        c.aof_head_gate = c.aof_gate;
                        c.aof_head_len = c.aof_gated_len;
                    }
                    c.aof_gate = mark;
                    c.aof_gated_len = c.out.len();
                }
            }
        }
    }

    /// Sends what connections have ready. `synced`: some output waits for
    /// the AOF (see `gate_outputs`); only the connections whose gate that
    /// hand-over number passed go, and, while the AOF's disk fails, those
    /// that ran no write (reads, -MISCONF replies); the others stay in the
    /// list (the lowest gate among them in `gate_min`). Each group commit
    /// so releases its own replies, without waiting for later ones.
    fn flush_sends(&mut self, synced: Option<u64>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        self.gate_min = u64::MAX;
        if let Some(synced) = synced {
            let failing = self.server.aof.write_error().is_some();
            let mut min = u64::MAX;
            let conns = &self.conns;
            let mut heads = false;
            dirty.retain(|&i| {
                let Some(c) = conns[i as usize].as_ref() else { return true };
                let wait = c.aof_gate > synced && (c.wrote || !failing);
                if wait {
                    let head = c.aof_head_len > 0 && c.aof_head_len <= c.out.len();
                    heads |= !c.sending && (head && c.aof_head_gate <= synced || c.inflight_off < c.inflight.len());
                    min = min.min(if head { c.aof_head_gate.max(synced + 1).min(c.aof_gate) } else { c.aof_gate });
                    self.dirty.push(i);
                }
                !wait
            });
            self.gate_min = min;
            if heads {
                self.send_heads(synced);
            }
        }
        for &index in &dirty {
            let Some(conn) = self.conns[index as usize].as_mut() else {
                continue;
            };
            conn.dirty = false;
            // A write forwarded to another shard still has its reply (and
            // its hand-over) to come.
            if conn.forwarded == 0 {
                conn.wrote = false;
            }
            if conn.hop_hold == HopHold::Answered {
                conn.hop_hold = HopHold::Free;
            }
            if conn.closing == Closing::Closed || conn.sending {
                continue;
            }
            if conn.hop_wait || conn.hop_hold == HopHold::Waiting {
                // A watched EXEC waits for its decision (`network::rounds`),
                // its reply one cross-shard answer away: what precedes it
                // (pipelined with it, or the client would not have sent the
                // EXEC yet) goes with it, in one send, as Redis writes a
                // pipelined batch's replies at once. Sending it now cost a
                // second send, and a second wake-up of the client, per
                // `WATCH`+`MULTI`/.../`EXEC` batch once WATCH answers at once
                // (perf/RESULTS.md, "watch17"). The decision marks the
                // connection dirty again. The same for any hop
                // (`HopHold::Waiting`): a plain two-shard MULTI/SET/SET/EXEC
                // sent `+OK+QUEUED+QUEUED` in one send and EXEC's reply in a
                // second (perf/RESULTS.md, "exec18").
                continue;
            }
            if conn.order_wait && conn.out.len() < SEND_BUFFER_BYTES && conn.order_held < ORDER_HOLD_FLUSHES_MAX {
                // The rest of its batch waits for an earlier command on
                // another shard (`network::dispatch`, "Order across
                // shards"): the replies so far go with the batch's next
                // ones, in one send, as for a hop above (the reply that
                // resumes it marks it dirty again). Up to a send buffer and
                // a few waits, so that a stream of commands is answered as
                // it runs (held until 16 KiB, a client streaming SETs over
                // three shards under appendfsync always saw 537 replies in 8 s).
                conn.order_held += 1;
                continue;
            }
            conn.order_held = 0;
            if let Some(e) = next_send(conn, index) {
                self.turn_sends += 1;
                self.push_sqe(e);
            } else if (conn.closing == Closing::AfterWrite || conn.eof && !conn.deferred) && conn.slots.is_empty() {
                // Everything sent: nothing more to run or send.
                self.close(index);
                self.maybe_release(index);
            }
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Sends, for the connections whose output still waits (see
    /// `gate_outputs`), the head whose commit is durable and what an
    /// earlier send left unsent: the rest waits for its own commit. A
    /// connection with a send in flight is done when that send completes
    /// (which marks it dirty again).
    fn send_heads(&mut self, synced: u64) {
        for k in 0..self.dirty.len() {
            let index = self.dirty[k];
            let Some(conn) = self.conns[index as usize].as_mut() else { continue };
            if conn.sending || conn.closing == Closing::Closed {
                continue;
            }
            let n = conn.aof_head_len;
            if conn.inflight.is_empty() && n > 0 && n <= conn.out.len() && conn.aof_head_gate <= synced {
                conn.inflight.extend_from_slice(&conn.out[..n]);
                conn.out.drain(..n);
                conn.inflight_off = 0;
                conn.aof_head_len = 0;
                conn.aof_gated_len -= n;
            }
            if conn.inflight_off < conn.inflight.len() {
                conn.sending = true;
                let e = send_entry(conn, index);
                self.turn_sends += 1;
                self.push_sqe(e);
            }
        }
    }

    /// Closes the socket now; the slot is freed once the kernel is done with its buffers.
    pub fn close(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        if conn.closing == Closing::Closed {
            return;
        }
        self.tracking_closed(index);
        self.forget_client_memory(index);
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.closing = Closing::Closed;
        // A forwarded blocking command (pending or blocked) is not waited
        // for: a waiter of a closed connection is cancelled, no reply comes.
        let block_seq = (conn.block_pending || conn.blocked.is_some()).then_some(conn.block_seq);
        let out = conn.slots.iter().filter(|s| s.request && s.ready.is_none() && Some(s.seq) != block_seq).map(|s| s.seq);
        conn.out_at_close.extend(out);
        self.withdraw_intent_of(index);
        self.unblock_on_close(index);
        let conn = self.conns[index as usize].as_mut().unwrap();
        // As Redis's freeClient: what was not sent is dropped now, not when
        // the kernel returns the buffer of the send in flight.
        conn.free_buffers(&mut self.pool);
        if conn.client.repl.wait.take().is_some() {
            self.server.repl.waiters.fetch_sub(1, Ordering::Relaxed);
        }
        // Its watches: removed here, gone stale on other shards. A watched
        // EXEC waiting for its decision keeps them, and its transaction, until
        // it has run (`network::rounds`, "The connection").
        if !conn.hop_wait {
            conn.client.multi.reset();
            conn.client.watch.unwatch_all(&mut self.set);
        }
        let (detached, recv_armed, generation, fd) = (conn.detached, conn.recv_armed, conn.generation, conn.fd);
        if detached {
            // The socket lives on in the replication thread: only this
            // loop's receive stops.
            if recv_armed {
                let e = opcode::AsyncCancel::new(ud(KIND_RECV, generation, index)).build().user_data(ud(KIND_IGNORE, 0, 0));
                self.push_sqe(e);
            }
        } else {
            // SAFETY: shutdown makes the armed multishot receive complete; the
            // descriptor is closed once no operation refers to it.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.client.monitor {
            crate::exec::gates::add_usize(&self.server.monitors, -1, crate::exec::gates::Reason::Monitor);
        }
        let token = ConnToken { index, generation: conn.generation };
        let gone = conn.out_at_close.is_empty();
        self.drop_subscriptions(index, token);
        if gone {
            self.forget_client(index);
        }
    }

    /// A closed connection leaves CLIENT LIST and `connected_clients`.
    /// Closes connection `index` on the server's own decision (client
    /// eviction, the output-buffer limit): out of CLIENT LIST and
    /// `connected_clients` at once, as CLIENT KILL's victims
    /// (`kill_requested`), even while commands it sent still run on other
    /// shards (`out_at_close` keeps a client that the peer closed listed
    /// until they ran). Redis frees such a client at once; the TCL unit
    /// client-eviction's "client evicted due to output buf" found the
    /// evicted client still listed at 2-3 shards (3 runs in 16).
    pub fn close_by_server(&mut self, index: u32) {
        let open = self.conns[index as usize].as_ref().is_some_and(|c| c.closing != Closing::Closed);
        if let Some(info) = self.set.get_mut(self.id).clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            if open && !info.kill_requested {
                info.kill_requested = true;
                self.server.connected_clients.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.close(index);
    }

    fn forget_client(&mut self, index: u32) {
        let st = self.state();
        let slot = st.clients.get_mut(index as usize).and_then(|slot| slot.take());
        // CLIENT KILL already counted a killed client out.
        if !slot.is_some_and(|info| info.kill_requested) {
            self.server.connected_clients.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The reply to request `seq` of connection `token`, closed since it
    /// was sent: the last one out lets the client go (`Conn::out_at_close`).
    pub(super) fn reply_after_close(&mut self, token: ConnToken, seq: u64) {
        let Some(c) = self.conns.get_mut(token.index as usize).and_then(|c| c.as_mut()) else { return };
        if c.generation != token.generation || c.closing != Closing::Closed || c.out_at_close.is_empty() {
            return;
        }
        c.out_at_close.retain(|&s| s != seq);
        if c.out_at_close.is_empty() {
            self.forget_client(token.index);
            self.maybe_release(token.index);
        }
    }

    /// Whether a reply for connection `token` must wait for the shard's
    /// state (a closed connection that `reply_after_close` may let go).
    pub(super) fn waits_reply_after_close(&self, token: ConnToken) -> bool {
        self.conn_of(token).is_some_and(|c| !c.out_at_close.is_empty())
    }

    /// Frees the slot of a closed connection once the kernel is done with
    /// it. Inlined: it runs after every receive and send, and only the
    /// check is on that path.
    #[inline(always)]
    pub(super) fn maybe_release(&mut self, index: u32) {
        if let Some(Some(conn)) = self.conns.get(index as usize) {
            if conn.closing == Closing::Closed && !conn.sending && !conn.recv_armed && !conn.hop_wait && !conn.block_pending && conn.out_at_close.is_empty() {
                self.release(index);
            }
        }
    }

    #[inline(never)]
    fn release(&mut self, index: u32) {
        if let Some(conn) = self.conns[index as usize].as_ref() {
            if conn.fixed {
                self.uring.remove(&self.ring, index);
            }
            // SAFETY: no operation refers to the descriptor any more.
            unsafe { libc::close(conn.fd) };
            let conn = self.conns[index as usize].take().unwrap();
            for s in conn.slots {
                if let Some(p) = s.ready {
                    recycle(&mut self.pool, p);
                }
            }
            self.deferred.retain(|&i| i != index);
            self.free.push(index);
        }
    }

    fn drain_mailboxes(&mut self) {
        if !self.busy_mail.is_empty() {
            // Taken from the inboxes while a script was busy: before what
            // followed them (no park in between, so nothing joins them).
            for (from, msg) in std::mem::take(&mut self.busy_mail) {
                self.on_message(from, msg);
            }
        }
        for from in 0..self.inboxes.len() {
            while let Some(msg) = self.inboxes[from].as_mut().and_then(|c| c.pop().ok()) {
                self.on_message(from, msg);
                if self.hold_check() {
                    // Time parked is nobody's command time.
                    self.clock.tick();
                }
            }
        }
        for o in self.outboxes.iter_mut().flatten() {
            o.flush_overflow();
        }
    }

    fn on_message(&mut self, from_shard: usize, msg: Message) {
        match msg {
            m @ Message::Request { .. } => self.request_or_postpone(from_shard, m),
            Message::Reply { conn, seq, args } => {
                if let Some(o) = self.outboxes[from_shard].as_mut() {
                    o.reply_received();
                }
                self.deliver_reply(conn, seq, args);
            }
            Message::MonitorLine { stamp, line } => {
                self.server.monitor_lines_queued[self.id].fetch_sub(1, Ordering::Relaxed);
                let now = self.clock.now_ms();
                self.accept_monitor_line(stamp, line, now);
            }
            m @ (Message::Deliver { .. } | Message::PubSubDrop { .. }) => self.on_pubsub_message(m),
            Message::Blocked { waiter } => self.on_blocked(from_shard, waiter),
            Message::Served { waiter, args } => self.on_served(waiter, args),
            Message::BlockCancel { waiter } => self.on_block_cancel(waiter),
            Message::Tracking(m) => self.on_tracking_message(m),
            Message::HopPart(part) => self.on_hop_part(part),
            Message::HopDone { seq, usec, args, ops } => self.hop_part_done(seq, usec, from_shard, args, ops),
        }
    }

    /// Runs a command another shard forwarded (`Message::Request`).
    pub(super) fn run_request(&mut self, msg: Message) {
        let Message::Request { from, conn, seq, db, fd, resp, cmd, client, track, mut args } = msg else {
            return;
        };
        self.state().pubsub.remote_caller = Some(crate::messaging::pubsub::Subscriber { shard: from as u32, token: conn });
        self.execute_remote(cmd as usize, db as usize, resp, client, track, from, &mut args);
        self.state().pubsub.remote_caller = None;
        match self.block_remote(from, conn, fd, seq, db as usize, resp) {
            Some(waiter) => {
                recycle(&mut self.pool, args);
                self.send_to(from, Message::Blocked { waiter });
            }
            None => self.send_to(from, Message::Reply { conn, seq, args }),
        }
        self.serve_ready();
    }

    /// The reply to a request of connection `conn`'s, computed elsewhere,
    /// fills its slot (dropped when the connection closed meanwhile).
    pub(super) fn deliver_reply(&mut self, conn: ConnToken, seq: u64, args: PackedArgs) {
        let index = conn.index;
        // A closed connection's replies are dropped, not queued.
        if !self.conn_alive(index, conn.generation) || self.conns[index as usize].as_ref().is_some_and(|c| c.closing == Closing::Closed) {
            recycle(&mut self.pool, args);
            self.block_answered_after_close(conn, Some(seq));
            self.reply_after_close(conn, seq);
            return;
        }
        let c = self.conns[index as usize].as_mut().unwrap();
        c.fill_slot(seq, args);
        c.drain_slots(&mut self.pool);
        // The forwarded blocking command did not block.
        c.block_pending &= !c.slots.is_empty();
        let resume = c.resumes_on_reply();
        self.mark_dirty(index);
        // Replies computed on other shards count against the output limit too.
        if self.check_output_limit(index, crate::util::unix_ms()) {
            return;
        }
        if resume {
            self.run_deferred(index);
        }
    }

    pub fn send_to(&mut self, to: usize, msg: Message) {
        if let Some(o) = self.outboxes[to].as_mut() {
            o.send(msg);
            self.doorbells.insert(to);
        }
    }

    pub fn token(&self, index: u32) -> ConnToken {
        ConnToken { index, generation: self.conns[index as usize].as_ref().map_or(0, |c| c.generation) }
    }

    pub(super) fn ring_doorbells(&mut self) {
        if self.doorbells.is_empty() {
            return;
        }
        let targets = std::mem::take(&mut self.doorbells);
        for t in targets.iter() {
            if self.server.needs_doorbell(t) {
                self.ring_doorbell(t);
            }
        }
    }

    /// Queues a MSG_RING that posts a completion on shard `t`'s ring.
    pub fn ring_doorbell(&mut self, t: usize) {
        let fd = self.server.ring_fds[t].load(Ordering::Acquire);
        if fd < 0 {
            return;
        }
        self.push_sqe(doorbell_entry(fd));
    }

    fn retry_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let list = std::mem::take(&mut self.deferred);
        let paused = self.server.pause_until(self.clock.now_ms()).is_some();
        for index in list {
            let Some(c) = self.conns[index as usize].as_mut() else { continue };
            // Not deferred any more, or throttled: the replies it waits for resume it.
            // Blocked: resolving the block resumes it.
            if !c.deferred || c.throttled || c.order_wait || c.blocked.is_some() || c.block_pending || c.mark_wait || c.hop_wait {
                continue;
            }
            if c.paused {
                // A DEBUG LOADAOF answers once its load is over.
                if paused || c.client.loadaof.waits() && self.server.loading.load(Ordering::Relaxed) {
                    self.deferred.push(index);
                    continue;
                }
                c.paused = false;
                self.set_paused_info(index, false);
            }
            self.run_deferred(index);
        }
    }

    pub(super) fn run_deferred(&mut self, index: u32) {
        let Some(c) = self.conns[index as usize].as_mut() else {
            return;
        };
        c.deferred = false;
        c.throttled = false;
        c.order_wait = false;
        self.process_input(index, None);
        if self.conns[index as usize].as_ref().is_some_and(|c| !c.recv_armed && c.closing == Closing::No) {
            self.arm_recv(index);
        }
    }

    fn cron(&mut self, now: i64) {
        self.clock.resync();
        // DEBUG PAUSE-CRON: as Redis's serverCron, no work at all (a
        // signal's shutdown waits too).
        if self.server.pause_cron.load(Ordering::Relaxed) {
            return;
        }
        let dirty = self.state().dirty;
        self.server.persistence.dirty[self.id].store(dirty, Ordering::Relaxed);
        crate::commands::migrate::close_idle(now);
        if self.id == 0 {
            if let Some(sig) = crate::signal::shutdown_requested() {
                self.loop_op = Some(super::held::LoopOp::Shutdown(sig));
            }
            // Borrowed, not cloned (a BTreeMap of every other config name,
            // ten times a second).
            let config = &self.set.get_mut(self.id).config;
            match crate::persistence::snapshot::cron(&self.server, config) {
                crate::persistence::snapshot::CronStart::Bgsave => self.child_from_cron(crate::persistence::snapshot::ChildKind::Rdb),
                crate::persistence::snapshot::CronStart::Rewrite => self.child_from_cron(crate::persistence::snapshot::ChildKind::Aof),
                crate::persistence::snapshot::CronStart::Nothing => {}
            }
        }
        let hz = self.state().config.hz.max(1);
        let budget_usec = 250_000 / hz;
        // As Redis: no active expiry while clients are paused.
        if self.server.pause_until(now).is_none() {
            // Keys a pending hop of this shard marked stay until its part ran
            // (one load when no hop is pending).
            let server = self.server.clone();
            let pending = server.hold.hops_pending(self.id);
            self.state().active_expire_cycle(now, budget_usec, |key| pending && server.hold.marked(crate::shard::slot::key_slot(key)));
        }
        // The expiry cycle's `expired` notifications are published by the
        // loop's per-turn `after_command_messaging`.
        self.state().rehash_cycle();
        let id = self.id;
        self.state().watched.sweep_if_abandoned(id);
        self.tracking_turn();
        self.acl_cron();
        if self.state().stream.is_on() {
            // CONFIG SET aof-timestamp-enabled reaches the stream here.
            let st = self.state();
            let on = st.config.others.get("aof-timestamp-enabled").is_some_and(|v| v == "yes");
            st.stream.set_timestamps(on);
        }
        // Receives write into the buffers only inside this thread's
        // io_uring_enter under DEFER_TASKRUN (each with its completion): with
        // the completion queue empty here, none holds data.
        let quiescent = self.defer_taskrun && self.ring.completion().is_empty() && !self.ring.submission().cq_overflow();
        let input = self.state().stats.net_input_bytes;
        if let Some(br) = self.bufring.as_mut() {
            br.release_when_idle(input, now, quiescent);
        }
        let timeout_ms = self.state().config.timeout_seconds as i64 * 1000;
        for index in 0..self.conns.len() as u32 {
            let Some(conn) = self.conns[index as usize].as_mut() else {
                continue;
            };
            if conn.closing == Closing::Closed {
                continue;
            }
            let st = self.set.get_mut(self.id);
            let Some(info) = st.clients.get_mut(index as usize).and_then(|i| i.as_mut()) else {
                continue;
            };
            if info.kill_requested {
                self.close(index);
                self.maybe_release(index);
                continue;
            }
            // Whole seconds, as Redis's `unixtime - lastinteraction` (the
            // registry keeps the second's start: `note_interaction`).
            let idle_ms = now.div_euclid(1000) * 1000 - info.last_interaction_ms;
            if timeout_ms > 0 && idle_ms > timeout_ms && conn.slots.is_empty() && !conn.client.monitor && conn.blocked.is_none() {
                self.close(index);
                self.maybe_release(index);
                continue;
            }
            self.resize_query_buffer(index, idle_ms);
            self.client_memory_cron(index);
            // A client over its soft limit that gets no new reply is closed
            // here once the limit's seconds have passed.
            if self.enforce_output_limit(index, now, true) {
                self.maybe_release(index);
            }
        }
    }
}

impl EventLoop {
    /// Starts a scheduled or save-point BGSAVE, or a scheduled or automatic
    /// AOF rewrite: every shard held, then the fork (`held::run_loop_op`,
    /// retried every loop turn until the hold is granted).
    fn child_from_cron(&mut self, kind: crate::persistence::snapshot::ChildKind) {
        if self.loop_op.is_none() {
            self.loop_op = Some(super::held::LoopOp::Child(kind));
        }
    }
}

fn build_ring() -> std::io::Result<(IoUring, bool)> {
    // A transient ENOMEM/EAGAIN (the kernel could not get the ring's pages
    // at once, seen under heavy page-cache churn) is retried with backoff,
    // up to ~1 s; only a kernel that refuses the flags (EINVAL) gets the
    // ring without DEFER_TASKRUN, never a busy moment.
    let mut attempt = 0u64;
    loop {
        let full =
            IoUring::builder().setup_single_issuer().setup_defer_taskrun().setup_coop_taskrun().dontfork().setup_cqsize(RING_ENTRIES * 4).build(RING_ENTRIES);
        let e = match full {
            Ok(r) => return Ok((r, true)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                return Ok((IoUring::builder().dontfork().setup_cqsize(RING_ENTRIES * 4).build(RING_ENTRIES)?, false));
            }
            Err(e) => e,
        };
        let transient = matches!(e.raw_os_error(), Some(libc::ENOMEM) | Some(libc::EAGAIN));
        if !transient || attempt >= 8 {
            return Err(e);
        }
        attempt += 1;
        std::thread::sleep(std::time::Duration::from_millis(25 * attempt));
    }
}
