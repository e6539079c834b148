//! One client connection on its home shard: query buffer, output buffers,
//! and the queue that keeps replies in request order when some commands run
//! on other shards.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use crate::commands::ClientState;
use crate::protocol::{Args, FrameProgress};
use crate::shard::mailbox::PackedArgs;

/// Requests a connection may have out on other shards at once. Each reply
/// is computed in full by the other shard before this one sees it and can
/// check the output-buffer limit, so this bounds what a client that never
/// reads costs beyond its limit: with 1 MiB replies, 64 MiB, where without a
/// cap a pipeline of 600 GETs had 600 MiB computed and queued at once.
pub const FORWARDED_MAX: u32 = 64;
/// A throttled connection resumes once this few are still out, so that it
/// forwards a run of commands per wake-up, not one per reply.
pub const FORWARDED_RESUME: u32 = FORWARDED_MAX / 2;
/// Reply buffers kept for reuse per shard, and the largest kept: one reply of
/// a 1 MiB value must not pin 1 MiB for ever (1024 of them pinned 1 GiB).
/// A connection's send buffer as it starts (Redis's PROTO_REPLY_CHUNK_BYTES).
pub const SEND_BUFFER_BYTES: usize = 16 * 1024;
/// A send buffer grown past this is dropped once its bytes are sent
/// (`EventLoop::on_send`), unless the send before was that big too: as
/// Redis keeps only its 16 KiB static buffer and frees the reply list once
/// written. (At 64 KiB ten tracking clients still kept 640 KB of
/// invalidation pushes counted after a 40 KB eviction, and eviction went
/// on to take every key.) A connection whose sends stay big (pipelined
/// LRANGEs) keeps its buffer: dropped every time, it grew again by copying
/// (+6% instructions per LRANGE_300 request at -P 16, callgrind).
pub const SEND_BUFFER_KEEP_BYTES: usize = SEND_BUFFER_BYTES;
const POOL_BUFFERS_MAX: usize = 1024;
const POOL_BUFFER_BYTES_MAX: usize = 16 * 1024;

/// Returns a message buffer to the shard's pool, or frees it when the pool
/// is full or the buffer too large to keep.
pub fn recycle(pool: &mut Vec<PackedArgs>, p: PackedArgs) {
    if pool.len() < POOL_BUFFERS_MAX && p.data.capacity() <= POOL_BUFFER_BYTES_MAX {
        pool.push(p);
    }
}

/// A reply that is not yet (or not alone) in `out`: either waiting for
/// another shard, or a local reply queued behind one that is.
pub struct Slot {
    pub seq: u64,
    pub ready: Option<PackedArgs>,
    /// CLIENT REPLY OFF/SKIP was in force for this command.
    pub discard: bool,
    /// A single-key command sent to its key's shard (`Message::Request`),
    /// whose reply always comes back (`EventLoop::forward`).
    pub request: bool,
}

/// A connection's output and the hops it starts (exec18): the replies
/// before a hop's (a plain EXEC's `+OK`, `+QUEUED`s, any reply pipelined
/// ahead) leave with the hop's, in one send, and nothing waits past the
/// answer of the hop in flight when it was written. (Two flags before,
/// `out_waits_hop` and `hop_answered`, never both set.)
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HopHold {
    /// Sent at the end of the turn, as any connection's.
    Free,
    /// Waits for the answer of the hop in flight
    /// (`EventLoop::start_hop_slot`); only pushes and replies queued
    /// before the hop started are in `out` (later ones are in `slots`,
    /// behind the hop's).
    Waiting,
    /// A hop answered since the last flush: what it released leaves at the
    /// end of this turn even if the connection starts another hop
    /// meanwhile (a deep pipeline of hops would otherwise never send).
    Answered,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Closing {
    No,
    /// Close once everything queued has been sent (QUIT, protocol errors).
    AfterWrite,
    /// Closed; waiting for the kernel to finish with our buffers.
    Closed,
}

pub struct Conn {
    pub fd: RawFd,
    /// The socket is also in the ring's fixed-file table at the connection's
    /// index (`network::uring`): receives and sends name that slot.
    pub fixed: bool,
    pub generation: u32,
    pub client: ClientState,
    /// Unparsed input (only used when a command spans receive buffers, or
    /// while the connection is deferred).
    pub qbuf: Vec<u8>,
    /// Bytes at the front of `qbuf` that already ran. A connection that
    /// stops mid-buffer (a shard switch its order forbids, a hold not yet
    /// granted) resumes from here: moving the rest to the front at every stop
    /// made a client streaming faster than its commands ran quadratic (13 ms
    /// a stop with hundreds of MB queued). The run part is dropped once it is
    /// at least half of the buffer, so each byte moves at most once more.
    pub qbuf_head: usize,
    /// The most input held at once since the last cron (Redis's
    /// `querybuf_peak`): the cron trims `qbuf`'s capacity down towards it.
    pub qbuf_peak: usize,
    /// `qbuf`'s (length, capacity) as last written to the client registry.
    pub qbuf_reported: (usize, usize),
    /// The (unix second, command id) last written to the client registry's
    /// `last_interaction_ms` / `last_cmd` (`EventLoop::note_interaction`).
    pub interaction_reported: (i64, u16),
    /// How far the parser got into the incomplete request at the front of
    /// `qbuf`, and the arguments it found so far: the next receive goes on
    /// from there instead of parsing the request again from its first byte.
    pub frame: FrameProgress,
    pub frame_args: Args,
    /// Requests parsed ahead and not run when a command deferred
    /// (`ParsedAhead`): the resumed parse starts from them.
    pub parsed_ahead: ParsedAhead,
    /// Replies ready to send, not yet handed to the kernel.
    pub out: Vec<u8>,
    /// Bytes handed to the kernel by the send in flight (kept alive until it completes).
    pub inflight: Vec<u8>,
    pub inflight_off: usize,
    /// The last send completed was over `SEND_BUFFER_KEEP_BYTES`: a grown
    /// buffer is kept while sends stay that big (`EventLoop::on_send`).
    pub big_sends: bool,
    pub sending: bool,
    pub recv_armed: bool,
    pub slots: VecDeque<Slot>,
    pub next_seq: u64,
    pub closing: Closing,
    /// Waiting to run a command whose hold is not granted yet, or for in-flight replies.
    pub deferred: bool,
    /// Deferred because of CLIENT PAUSE: retried once the pause is over.
    pub paused: bool,
    /// In the list of connections with output to flush this turn.
    pub dirty: bool,
    /// Ran a write whose reply waits for the AOF's fsync (`appendfsync
    /// always`); cleared when its output is flushed.
    pub wrote: bool,
    /// `appendfsync always`: the AOF hand-over number `out` waits for, set
    /// at the end of each loop turn that added to it (`aof_gated_len`: its
    /// length then). See `EventLoop::gate_outputs`.
    pub aof_gate: u64,
    pub aof_gated_len: usize,
    /// The front `aof_head_len` bytes of `out` (0: none) wait for an
    /// earlier hand-over number, `aof_head_gate`, whose commit was already
    /// under way when more output came: they leave with that commit while
    /// the rest waits for its own (a client that streams writes without
    /// pausing gets its replies as each commit ends).
    pub aof_head_gate: u64,
    pub aof_head_len: usize,
    /// The unix second in which the output buffer reached the soft limit
    /// (0 = not over); whole seconds, as Redis's `obuf_soft_limit_reached_time`.
    pub soft_limit_since_s: i64,
    /// CLIENT LIST's `omem=` as last written to the client registry
    /// (`client_memory::omem_moved`, `EventLoop::report_omem`).
    pub omem_reported: usize,
    /// Bytes of the ready replies in `slots` (kept so that the output-limit
    /// check after every command costs no walk over the slots).
    pub slot_bytes: usize,
    /// Requests sent to other shards whose replies have not come back.
    pub forwarded: u32,
    /// Deferred because `forwarded` reached `FORWARDED_MAX`: the replies
    /// coming back resume it (it is not retried every loop turn).
    pub throttled: bool,
    /// The shard of the last request forwarded, and whether the requests
    /// still out went to more than that one (`publish_may_go`).
    pub forward_target: u32,
    pub forward_mixed: bool,
    /// A single-key command out on another shard may have an effect others
    /// see (it is not `readonly`): set when it leaves, cleared when no
    /// single-key command is out (`order_may_go`).
    pub forward_wrote: bool,
    /// Deferred by `order_may_go`: the replies coming back resume it once
    /// no single-key command is out (not retried every loop turn).
    pub order_wait: bool,
    /// Flushes in a row its replies were kept back while `order_wait`
    /// (`EventLoop::flush_sends`).
    pub order_held: u8,
    /// The peer has finished sending (EOF): no more receives; what it sent
    /// still runs and its replies are sent, then the connection closes.
    pub eof: bool,
    /// Blocked in a blocking command: reads no further commands until the
    /// waiter is resolved (`network::blocking`).
    pub blocked: Option<std::sync::Arc<crate::messaging::blocking::Waiter>>,
    /// A blocking command was forwarded to its key's shard: whether it
    /// blocks is not known yet (its reply or `Message::Blocked` tells).
    /// Kept when the connection closes meanwhile: the slot, and the socket
    /// a waiter made for it polls, stay until that answer comes
    /// (`EventLoop::block_answered_after_close`).
    pub block_pending: bool,
    /// The reply slot (`seq`) of that forwarded blocking command.
    pub block_seq: u64,
    /// Closed with single-key commands still out on other shards (their
    /// reply slots' `seq`s, a blocking one aside): the client stays in
    /// CLIENT LIST and `connected_clients` until their replies are back
    /// (`EventLoop::reply_after_close`). In Redis a client that has left
    /// CLIENT LIST has no command left to take effect (TCL
    /// integration/aof-multi-part waits for its write load's client to
    /// leave, then compares DEBUG DIGEST before and after DEBUG LOADAOF: a
    /// last SET that ran after the first digest made them differ).
    pub out_at_close: Vec<u64>,
    /// Multi-shard commands run by hops (`network::hop`) among `forwarded`.
    pub hops: u32,
    /// Deferred until a key it needs loses its hop mark (`network::hop`):
    /// woken by the shard's parts, not retried every loop turn.
    pub mark_wait: bool,
    /// Deferred until its two-round hop has decided (a watched EXEC:
    /// `network::rounds`), not retried every loop turn.
    pub hop_wait: bool,
    /// How its output stands with the hops it started (`HopHold`).
    pub hop_hold: HopHold,
    /// WATCH of other shards' keys folded into the EXEC that follows it in
    /// the same read (`network::rounds`, "WATCH folded into EXEC"): every
    /// key of another shard among the client's watched keys is registered
    /// nowhere yet, and only MULTI, queued commands and WATCH ran since.
    pub watch_fold: bool,
    /// Handed to the replication thread (SYNC/PSYNC): closing it cancels
    /// the receive instead of shutting the socket down.
    pub detached: bool,
    /// Client eviction (`network::client_memory`, only while
    /// `maxmemory-clients` is set): the figure counted in the shard's sum,
    /// its bucket plus one (0: not evictable or not counted), and the part
    /// its state holds as last recomputed (after each command that changed
    /// it while a limit is set, by the cron otherwise).
    pub mem_bytes: usize,
    pub mem_bucket: u8,
    pub mem_state_bytes: usize,
    /// Of `mem_state_bytes`, the MULTI queue's (CLIENT LIST's `multi-mem=`).
    pub mem_multi_bytes: usize,
    /// The figure's window `[mem_lo, mem_hi)` as last counted: a figure
    /// inside it is not counted again (`client_memory::window`); (0, 0):
    /// count at the next check.
    pub mem_lo: usize,
    pub mem_hi: usize,
    /// The last count found no output pending (CLIENT LIST's `omem=0`).
    pub mem_drained: bool,
}

/// The complete requests at the front of a deferred connection's unread
/// input that its parse-ahead batch had parsed (`network::dispatch`,
/// `parse_and_run`): start (from the unread input's first byte), length and
/// arguments of each, and where the parse stopped. A connection that waits
/// under the order rule ("Order across shards" in `network::dispatch`)
/// defers in the middle of its batch, about four times per `-P 16` pipeline
/// of SETs over two shards; parsing (and hashing, and prefetching) the rest
/// of the batch again at each resume was a third of the rule's added CPU
/// (perf/RESULTS.md, "order21"). Valid while the unread input keeps its
/// bytes: it only grows at the back, or loses what ran at the front
/// (`qbuf_head` moves, offsets here are from it); whoever consumes the
/// input another way (a busy script's service) clears it. The entries keep
/// their allocations (`len` counts those in use), swapped with the loop's
/// batch, so that a wait allocates nothing.
#[derive(Default)]
pub struct ParsedAhead {
    pub cmds: Vec<(usize, usize, Args)>,
    pub len: usize,
    /// Bytes of the unread input the parse went through (the end of the
    /// last entry, or of requests parsed with no arguments).
    pub end: usize,
}

impl ParsedAhead {
    /// Forgets them: the input is parsed again from its first unread byte.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
        self.end = 0;
    }
}

/// Drops the first `*head` bytes of a query buffer (input that already ran,
/// `Conn::qbuf_head`), so that the unread input starts it.
pub fn drop_run_input(qbuf: &mut Vec<u8>, head: &mut usize) {
    if *head > 0 {
        qbuf.drain(..*head);
        *head = 0;
    }
}

impl Conn {
    pub fn new(fd: RawFd, generation: u32, client: ClientState) -> Conn {
        Conn {
            fd,
            fixed: false,
            generation,
            client,
            qbuf: Vec::new(),
            qbuf_peak: 0,
            qbuf_reported: (0, 0),
            qbuf_head: 0,
            interaction_reported: (i64::MIN, 0),
            frame: FrameProgress::default(),
            frame_args: Args::new(),
            parsed_ahead: ParsedAhead::default(),
            out: Vec::with_capacity(16 * 1024),
            inflight: Vec::with_capacity(SEND_BUFFER_BYTES),
            inflight_off: 0,
            big_sends: false,
            sending: false,
            recv_armed: false,
            slots: VecDeque::new(),
            next_seq: 0,
            closing: Closing::No,
            deferred: false,
            paused: false,
            dirty: false,
            wrote: false,
            aof_gate: 0,
            aof_gated_len: 0,
            aof_head_gate: 0,
            aof_head_len: 0,
            soft_limit_since_s: 0,
            omem_reported: 0,
            slot_bytes: 0,
            forwarded: 0,
            throttled: false,
            forward_target: 0,
            forward_mixed: false,
            forward_wrote: false,
            order_wait: false,
            order_held: 0,
            eof: false,
            blocked: None,
            block_pending: false,
            block_seq: 0,
            out_at_close: Vec::new(),
            hops: 0,
            mark_wait: false,
            hop_wait: false,
            hop_hold: HopHold::Free,
            watch_fold: false,
            detached: false,
            mem_bytes: 0,
            mem_bucket: 0,
            mem_state_bytes: 0,
            mem_multi_bytes: 0,
            mem_lo: 0,
            mem_hi: 0,
            mem_drained: false,
        }
    }

    /// Whether a PUBLISH whose channel shard `target` owns may run now
    /// (`me`: this connection's shard). Redis runs one client's publishes in
    /// order; here two owners would run them in parallel, and a subscriber of
    /// both channels could see the second first. So a PUBLISH waits while
    /// requests of this connection are out on another shard than its own
    /// target: FIFO to one owner keeps a pipeline to one channel at speed.
    pub fn publish_may_go(&self, target: usize, me: usize) -> bool {
        self.forwarded == 0 || (target != me && !self.forward_mixed && self.forward_target as usize == target)
    }

    /// Whether a single-shard command for shard `target` may start now
    /// (`me`: this connection's shard; `read`: the command is `readonly`).
    /// The rule ("Order across shards" in `network::dispatch`): a command
    /// starts only when every earlier single-key command of its connection
    /// that may have an effect others see has run, and one with such an
    /// effect only when every earlier one has run; FIFO to one shard keeps
    /// a run for the same shard in order without a wait. Hops are not
    /// counted: their keys' marks order what follows them.
    #[inline(always)]
    pub fn order_may_go(&self, target: usize, me: usize, read: bool) -> bool {
        self.forwarded == self.hops || (target != me && !self.forward_mixed && self.forward_target as usize == target) || (read && !self.forward_wrote)
    }

    /// Whether a reply that came back resumes this deferred connection:
    /// none out (the first command may go whatever it waited for), enough
    /// back for a throttled one, or no single-key command out for one that
    /// waits on `order_may_go`.
    #[inline(always)]
    pub fn resumes_on_reply(&self) -> bool {
        self.deferred && (self.slots.is_empty() || self.throttled && self.forwarded <= FORWARDED_RESUME || self.order_wait && self.forwarded == self.hops)
    }

    /// Records a request forwarded to shard `target` (before `forwarded`
    /// counts it).
    pub fn note_forward(&mut self, target: usize) {
        if self.forwarded == 0 {
            self.forward_target = target as u32;
            self.forward_mixed = false;
        } else if self.forward_target as usize != target {
            self.forward_mixed = true;
        }
    }

    /// Bytes waiting to be sent (the output-buffer size Redis limits).
    #[inline(always)]
    pub fn pending_output_bytes(&self) -> usize {
        self.out.len() + (self.inflight.len() - self.inflight_off) + self.slot_bytes
    }

    /// The client's memory, in the parts CLIENT LIST shows: the one place
    /// they are read (`network::client_memory`). Inlined, a caller that
    /// needs one part (`total`, `out_pending`) computes only that.
    #[inline(always)]
    pub fn mem(&self) -> super::client_memory::ClientMem {
        let (len, cap) = (self.qbuf_unread(), self.qbuf.capacity());
        super::client_memory::ClientMem {
            qbuf_len: len,
            qbuf_cap: cap,
            qbuf_args: self.frame.big_bulk_start().filter(|&s| s <= len).unwrap_or(0),
            out_pending: self.pending_output_bytes(),
            out_alloc: self.out.capacity() + self.inflight.capacity() + self.slot_bytes,
            state: self.mem_state_bytes,
            multi: self.mem_multi_bytes,
        }
    }

    /// Queues a reply that must wait behind the replies still out.
    /// Queues `p` as a ready reply right behind slot `seq`'s and the
    /// `behind` ones queued there before it (at the back when that slot is
    /// gone). A hop's own pushes (`Hops::own_slot`).
    pub fn insert_ready_slot_after(&mut self, seq: u64, behind: usize, p: PackedArgs) {
        let Some(at) = self.slots.iter().position(|s| s.seq == seq) else {
            return self.push_ready_slot(p, false);
        };
        let new = self.next_seq;
        self.next_seq += 1;
        self.slot_bytes += p.data.len();
        let at = (at + 1 + behind).min(self.slots.len());
        self.slots.insert(at, Slot { seq: new, ready: Some(p), discard: false, request: false });
    }

    /// Queues `p` as a ready reply right ahead of slot `seq` (at the back
    /// when that slot is gone): a hop's events to its own connection, which
    /// Redis writes while the command runs, before its reply
    /// (`Hops::own_slot`, `EventLoop::deliver`).
    pub fn insert_ready_slot_before(&mut self, seq: u64, p: PackedArgs) {
        let Some(at) = self.slots.iter().position(|s| s.seq == seq) else {
            return self.push_ready_slot(p, false);
        };
        let new = self.next_seq;
        self.next_seq += 1;
        self.slot_bytes += p.data.len();
        self.slots.insert(at, Slot { seq: new, ready: Some(p), discard: false, request: false });
    }

    /// Puts a command's own event pushes around its reply, the last slot
    /// queued (`messaging::own_pushes`); in a slot of their own when the
    /// reply left already.
    pub fn place_in_last_slot(&mut self, own: &mut crate::messaging::own_pushes::OwnPushes) {
        match self.slots.back_mut().and_then(|s| s.ready.as_mut()) {
            Some(p) => {
                let before = p.data.len();
                own.place(&mut p.data, 0);
                self.slot_bytes += p.data.len() - before;
            }
            None => {
                let mut p = PackedArgs::default();
                own.place(&mut p.data, 0);
                self.push_ready_slot(p, false);
            }
        }
    }

    pub fn push_ready_slot(&mut self, p: PackedArgs, discard: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.slot_bytes += p.data.len();
        self.slots.push_back(Slot { seq, ready: Some(p), discard, request: false });
    }

    /// Fills the slot of request `seq` with its reply from another shard.
    pub fn fill_slot(&mut self, seq: u64, p: PackedArgs) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.seq == seq && s.ready.is_none()) {
            self.forwarded -= 1;
            if self.forwarded == self.hops {
                self.forward_wrote = false;
            }
            self.slot_bytes += p.data.len();
            slot.ready = Some(p);
        }
    }

    /// Input received and not yet run (CLIENT LIST's `qbuf=`).
    #[inline]
    pub fn qbuf_unread(&self) -> usize {
        self.qbuf.len() - self.qbuf_head
    }

    /// Drops the part of `qbuf` that already ran, so that the unread input
    /// starts the buffer (for code that parses it from the front).
    pub fn compact_qbuf(&mut self) {
        drop_run_input(&mut self.qbuf, &mut self.qbuf_head);
    }

    /// Frees what a closed connection holds that no kernel operation uses:
    /// queued replies and unparsed input (the send in flight keeps its buffer).
    pub fn free_buffers(&mut self, pool: &mut Vec<PackedArgs>) {
        self.out = Vec::new();
        self.aof_gated_len = 0;
        self.aof_head_len = 0;
        self.qbuf = Vec::new();
        self.qbuf_head = 0;
        self.parsed_ahead = ParsedAhead::default();
        for s in self.slots.drain(..) {
            if let Some(p) = s.ready {
                recycle(pool, p);
            }
        }
        self.slot_bytes = 0;
        self.forwarded = 0;
        self.forward_wrote = false;
        self.hops = 0;
        self.hop_hold = HopHold::Free;
    }

    /// Moves ready slots at the front into `out`; returns emptied buffers to `pool`.
    pub fn drain_slots(&mut self, pool: &mut Vec<PackedArgs>) {
        while let Some(front) = self.slots.front() {
            if front.ready.is_none() {
                break;
            }
            let slot = self.slots.pop_front().unwrap();
            let p = slot.ready.unwrap();
            self.slot_bytes -= p.data.len();
            // A dropped reply (CLIENT REPLY OFF/SKIP) keeps its pushes (a
            // PUBLISH's messages to its own publisher, its own events).
            if slot.discard {
                let (lead, trail) = crate::messaging::own_pushes::kept_when_discarded(&p.data);
                self.out.extend_from_slice(&p.data[..lead]);
                self.out.extend_from_slice(&p.data[trail..]);
            } else {
                self.out.extend_from_slice(&p.data);
            }
            recycle(pool, p);
        }
    }
}
