//! Hops: a multi-shard MGET, MSET, DEL, UNLINK, EXISTS or TOUCH (and an
//! EXEC of single-shard commands) without parking a shard (VLL's second half; `shard::hold` has the protocol and
//! why it cannot deadlock, "Hops").
//!
//! The connection's shard, the coordinator, splits the command by shard
//! (each part is the command with that shard's keys, in their order),
//! marks every key's hash slot (`HoldTable::mark`), queues one hop intent on
//! every shard with a part (`HoldTable::enqueue_hop`: one number of the
//! global sequence, so hops and holds are in one total order on every
//! shard), and sends each other shard its part in one message
//! (`Message::HopPart`; doorbells are rung once per loop turn). Each shard
//! runs its part on its own thread, over its own state, when the intent
//! heads its queue (`run_parts`), lowers its keys' marks, and answers
//! (`Message::HopDone`). The coordinator assembles the reply (OK, the sum of
//! the parts' counts, or MGET's values in key order) into the connection's
//! reply slot when the last part is back, and records the command once
//! (commandstats, slowlog, MONITOR) with the parts' summed time.
//!
//! **EXEC.** A transaction whose queued commands each name keys of one
//! shard (no keyless or multi-shard command, no blocking one) and that
//! watches nothing runs the same way (`try_exec_hop`): EXEC itself runs
//! on the coordinator (its checks, its `*N` header, its commandstats call),
//! each shard's part carries that shard's commands in queue order and runs
//! each through `call()` (their stats, slowlog and MONITOR lines on that
//! shard, as forwarded commands'), and the reply is the header, then the
//! commands' replies in queue order. With WATCH the check and the run must
//! be one instant on every shard: such an EXEC runs in two rounds of one
//! intent (`network::rounds`), as do MSETNX and a two-shard RENAME or SMOVE; WATCH
//! itself is a one-round hop there whose parts answer nobody (the client
//! has `+OK` when they leave: "WATCH: one message" there).
//!
//! **Atomicity.** Two multi-shard operations run in the order of their
//! numbers on every shard they share, so no hop or hold sees part of
//! another. A single-shard command (local, or forwarded to the key's shard)
//! runs at once unless one of its keys is marked; then it waits for the part
//! that lowers the mark (`wait_for_marks`, `postpone`): a client that saw one
//! key of an MSET written cannot then read another of its keys unwritten. A
//! command under a hold checks no mark: every hop queued before the hold has
//! run on the held shards, and one queued after it cannot have been seen by
//! the commands the hold runs (they arrived before it queued).
//!
//! **Order per connection.** A hop starts only when the connection's single-
//! key forwarded commands are back (one of them still queued behind a mark
//! on its shard would otherwise run after the part that follows it); hops
//! after hops need no wait (their numbers order them, and a part never
//! passes an intent of its own connection: "Passing" in `shard::hold`). A
//! forwarded request that waits for a mark keeps the requests from its
//! shard behind it, in order; the parts are never postponed (their intents
//! order them). A single-key command after a hop still in flight runs at
//! once on an unmarked key (a reader of the hop's keys waits for their
//! marks, so no one sees the later effect without the earlier), except
//! while keyspace events are on: then it waits for the hop to complete
//! (`dispatch`), as its events must follow the hop's, published only then.
//! A connection's hops complete in its order (`finish_hop`), and a hop's
//! events are published (`messaging::hop_publish`) before its reply
//! leaves, as Redis publishes a command's events before its reply: so one
//! connection's events reach every subscriber in command order, and so do
//! those of whatever a client does after reading a reply.
//!
//! **AOF.** While the write streams are on (AOF, replication) a write hop
//! (MSET, DEL, UNLINK, an EXEC with a write) is one replay unit at one cut
//! of the shards' streams (`exec::propagate`, "Cuts: a hop", has the
//! argument): the coordinator joins the intent as its *carrier* (with an
//! empty part when it has no key), every other part records the cut at its
//! stream's position when it runs and answers with what it left
//! (`PartOps`), and the carrier's part runs last (`carrier_waits`), once
//! they are all back, and appends the whole unit at its own cut
//! (`part_cut`). MGET, EXISTS and TOUCH need no cut: a part's expired-key
//! DELs go to its own stream. A part that finds its stream turned on
//! meanwhile (a hop split before a CONFIG SET appendonly yes that ran
//! first) propagates its part in its own stream: per-key order holds, the
//! one unit does not.
//!
//! **`hop-part-delay`** (hidden config, microseconds, 0 by default; for
//! tests, like Redis's `key-load-delay`): a part received from another
//! shard waits that long before it runs (the shard serves everything else
//! meanwhile), and multi-shard hop commands go by hops even to sleeping
//! shards. It makes "a hop is pending" a state a test can hold.
//!
//! **Limits.** The two-key commands but RENAME, SMOVE, COPY, LMOVE and
//! RPOPLPUSH (`network::rounds_move`; those three only from a shard that
//! owns one of their keys), the STORE forms, multi-shard reads of aggregates, EXEC with a multi-shard,
//! keyless or blocking command, and scripts keep the held path
//! (`network::held`).
//!
//! **Events.** A part's keyspace events and tracking invalidations go back
//! with its answer; the coordinator publishes the whole command's in its
//! execution order when the last part is back (`messaging::hop_order`),
//! except while a client blocks (then each part publishes its own; so with
//! keyspace events on, a multi-shard write takes the held path meanwhile:
//! `events_need_hold`).

use std::collections::VecDeque;
use std::sync::OnceLock;

use super::conn::{HopHold, FORWARDED_MAX};
use super::dispatch::{recycle, take_discard, Flow};
use super::event_loop::EventLoop;
use crate::commands::{flags, key_positions, CommandSpec, CommandTable, Ctx};
use crate::exec::propagate;
use crate::protocol::Reply;
use crate::shard::hold::ShardMask;
use crate::shard::mailbox::{ConnToken, Message, PackedArgs};
use crate::shard::slot::{key_slot, slot_shard};

/// One shard's part of a hop intent: the command with that shard's keys.
pub struct Part {
    /// The hop intent.
    pub seq: u64,
    /// The coordinating shard.
    pub from: u32,
    /// Which round of its intent (`network::rounds`): 0 the only one; 1 the
    /// first of two (it checks, keeps the intent and its marks); 2 the last
    /// of two (it runs, then lowers what round 1 kept); 3 both rounds at
    /// once, deciding with the coordinator's own round-1 answer ("The
    /// chain" in `network::rounds`).
    pub round: u8,
    pub db: u32,
    pub resp: u8,
    pub cmd: u16,
    /// The client it runs for (tracking's NOLOOP), and whether its keys are
    /// remembered for that client's tracking.
    pub client: u64,
    pub track: bool,
    pub args: PackedArgs,
    /// The hop's cut in the write streams (none without; see "AOF" in the
    /// module doc); the coordinator `from` carries its unit. Boxed: a
    /// message is as large as its largest kind, and this one is rare.
    pub cut: Option<Box<PartCut>>,
}

/// A part's cut: its id (0: none) and the hop's shards; and the WATCH
/// state a WATCH or a watched EXEC's first round needs (`network::rounds`).
pub struct PartCut {
    pub id: u64,
    pub shards: ShardMask,
    pub cell: Option<std::sync::Arc<crate::shard::watch::WatchCell>>,
    /// A RENAME's source entry on its way to the destination (or back).
    pub entry: Option<crate::shard::keyspace::Entry>,
}

impl Part {
    /// Its cut in the write streams, if it has one.
    pub fn cut(&self) -> Option<&PartCut> {
        self.cut.as_deref().filter(|c| c.id != 0)
    }
}

/// What a part of a hop with a cut leaves for the carrier's unit.
#[derive(Default)]
pub struct PartOps {
    /// Its replay operations in the order they ran: expired-key DELs and,
    /// for an EXEC part, what its commands propagated.
    pub ops: propagate::Ops,
    /// EXEC: how many of `ops` each of its commands left, in its order.
    pub per_cmd: Vec<u32>,
    /// MSET, DEL, UNLINK: whether it changed something.
    pub dirty: bool,
    /// A RENAME's first round: the source entry it took out.
    pub entry: Option<crate::shard::keyspace::Entry>,
    /// Its keyspace events and invalidations, for the coordinator to
    /// publish in the command's order (`messaging::hop_order`).
    pub captured: Option<Box<crate::messaging::hop_order::Captured>>,
    /// The keys its shard had for BCAST prefixes: the coordinator
    /// broadcasts them with its own, one message per prefix for the command
    /// (`messaging::tracking`).
    pub bcast: crate::messaging::tracking::PendingBcast,
}

impl PartOps {
    /// Whether it carries something for the AOF unit or the rounds.
    fn for_unit(&self) -> bool {
        !self.ops.is_empty() || !self.per_cmd.is_empty() || self.dirty || self.entry.is_some()
    }
}

/// How the parts' replies make the command's reply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Gather {
    /// `+OK` (MSET).
    Ok,
    /// The sum of the parts' integers (DEL, UNLINK, EXISTS, TOUCH).
    Sum,
    /// One value per key in the command's order (MGET).
    Values,
    /// EXEC: its header, then each queued command's reply in queue order.
    Exec,
    /// The reply its coordinator decided between rounds (`HopOp::verdict`).
    Decided,
}

/// The hop commands' ids and how each gathers.
fn gathers() -> &'static [(usize, Gather)] {
    static IDS: OnceLock<Vec<(usize, Gather)>> = OnceLock::new();
    IDS.get_or_init(|| {
        let t = CommandTable::get();
        [("mset", Gather::Ok), ("mget", Gather::Values), ("del", Gather::Sum), ("unlink", Gather::Sum), ("exists", Gather::Sum), ("touch", Gather::Sum)]
            .iter()
            .filter_map(|&(name, g)| t.lookup(name.as_bytes()).map(|id| (id, g)))
            .collect()
    })
}

fn gather_of(id: usize) -> Option<Gather> {
    gathers().iter().find(|e| e.0 == id).map(|e| e.1)
}

pub(super) fn exec_id() -> usize {
    static ID: OnceLock<usize> = OnceLock::new();
    *ID.get_or_init(|| CommandTable::get().lookup(b"exec").expect("exec registered"))
}

/// A hop this shard coordinates, until its last part is back.
#[derive(Default)]
pub struct HopOp {
    pub(super) seq: u64,
    pub(super) token: ConnToken,
    /// The connection's reply slot.
    pub(super) slot: u64,
    pub(super) cmd: usize,
    pub(super) gather: Option<Gather>,
    /// Parts not answered yet.
    pub(super) pending: u32,
    pub(super) sum: i64,
    /// The round in flight (`Part::round`) and the intent's shards.
    pub(super) round: u8,
    pub(super) mask: ShardMask,
    /// `Gather::Decided`'s reply, and whether it is an error.
    pub(super) verdict: Vec<u8>,
    pub(super) failed: Option<crate::protocol::reply::ErrorKind>,
    pub(super) usec: u64,
    pub(super) db: usize,
    pub(super) resp: u8,
    /// The shard of each key, in the command's order (MGET's reassembly).
    pub(super) key_shards: Vec<u8>,
    /// The parts' replies by shard (MGET).
    replies: Vec<(usize, PackedArgs)>,
    /// The client's address and name, then the whole command: what it is
    /// recorded with (slowlog, MONITOR) when it completes. EXEC: its reply's
    /// header (EXEC itself was recorded when it ran).
    pub(super) args: PackedArgs,
    /// EXEC's MONITOR line, fed after its commands'.
    pub(super) monitor: Vec<u8>,
    /// The hop's cut (0: none), and what its parts left for the unit, by shard.
    pub(super) cut: u64,
    pub(super) ops: Vec<(usize, Box<PartOps>)>,
    /// A two-shard two-round hop's other shard, which runs both its rounds
    /// in one part ("The chain" in `network::rounds`).
    pub(super) chain: Option<usize>,
    /// A chained watched EXEC's part for that shard, built when the EXEC
    /// ran (its round-1 look and its commands; `network::rounds`).
    pub(super) chain_part: PackedArgs,
    /// What its parts left to publish, by shard, in arrival order
    /// (`messaging::hop_order`).
    pub(super) captured: Vec<(usize, Box<crate::messaging::hop_order::Captured>)>,
    /// Every part is back, but an earlier hop of its connection is still
    /// in flight: it completes after that one (`finish_hop`).
    pub(super) done: bool,
    /// Its parts' keys for BCAST prefixes, broadcast from here when it
    /// completes: one message per prefix for the command, as Redis.
    pub(super) bcast: crate::messaging::tracking::PendingBcast,
}

impl HopOp {
    /// Whether no part answered with a reply yet (a chained EXEC whose
    /// other shard aborted).
    pub(super) fn replies_empty(&self) -> bool {
        self.replies.iter().all(|(_, p)| p.ends.is_empty())
    }
}

/// The loop's hop state.
#[derive(Default)]
pub struct Hops {
    /// Which path two-round commands take (`network::route`).
    pub(super) route: super::route::Route,
    /// Hops coordinated here, in flight.
    pub(super) ops: Vec<HopOp>,
    /// Finished ones, their buffers kept for the next.
    pub(super) free: Vec<HopOp>,
    /// Parts received (or this shard's own) waiting for their intent to
    /// head this shard's queue.
    parts: Vec<Part>,
    /// Two-round hops whose first part ran here before their intent headed
    /// this shard's queue ("Passing" in `shard::hold`): their last round
    /// runs whenever it arrives.
    passed: Vec<u64>,
    /// Per shard, the part being built (reused buffers).
    pub(super) building: Vec<PackedArgs>,
    /// The hash slots a first round (`Part::round` 1) marked here, by
    /// intent: its last round lowers them (`network::rounds`).
    pub(super) kept: Vec<(u64, u16)>,
    /// Per shard, the slots of the round-1 part being built (reused).
    pub(super) slot_lists: Vec<Vec<u8>>,
    /// An entry the next `send_round` gives the part of that shard.
    pub(super) entry_for: Option<(usize, crate::shard::keyspace::Entry)>,
    /// The shards the next `send_round` sends no part (a chain's: `network::rounds`).
    pub(super) skip: ShardMask,
    /// The next `send_round`'s parts answer nobody (a WATCH's: `network::rounds`):
    /// they go as plain messages, not as requests counted outstanding
    /// until their answer.
    pub(super) unanswered: bool,
    /// A round-3 part's own round-1 answer and the entry it hands back,
    /// for its answer (`answer_part`).
    pub(super) chain_found: Option<i64>,
    pub(super) chain_entry: Option<crate::shard::keyspace::Entry>,
    /// A round-3 part's events of its round-1 look, for its answer; an EXEC
    /// part's command boundaries (`messaging::hop_order`).
    pub(super) chain_captured: Option<Box<crate::messaging::hop_order::Captured>>,
    pub(super) cmd_ends: crate::messaging::hop_order::CmdEnds,
    /// Requests forwarded by other shards that wait for a mark, in arrival
    /// order, and the shards they came from (later requests from those
    /// shards queue behind them).
    postponed: VecDeque<(usize, Message)>,
    postponed_from: ShardMask,
    /// Connections deferred on a marked key (`Conn::mark_wait`).
    mark_waiters: Vec<u32>,
    /// The operations of the part that just ran (a hop with a cut), for
    /// its answer.
    part_ops: Option<Box<PartOps>>,
    /// `hop-part-delay` (µs) and when it was last read (ms); the parts it
    /// holds back, (seq, due time in ms).
    delay_us: i64,
    delay_read_ms: i64,
    due: Vec<(u64, i64)>,
    /// Reused storage: argument slices, MGET's read positions.
    pub(super) slices: Vec<&'static [u8]>,
    at: Vec<usize>,
    /// While a completed hop's events and invalidations are published
    /// (`publish_hop_of`): its connection, its reply slot, and how many of
    /// its own invalidations went behind that slot so far. Its tracking
    /// client's invalidations of its own writes go right behind its reply,
    /// ahead of later replies (`EventLoop::tracking_push`), as Redis 7.0
    /// sends a writer's own invalidations after its reply and before its
    /// next one. Queued at the back, they came after the reply of a
    /// pipelined read of the key that ran once the hop's local part let
    /// the key go (tests/hop_hold.rs).
    pub(crate) own_slot: Option<(crate::shard::mailbox::ConnToken, u64, usize)>,
}

impl Hops {
    /// Whether the part of hop `seq` may run at `now` (`hop-part-delay`).
    fn is_due(&self, seq: u64, now: i64) -> bool {
        !self.due.iter().any(|d| d.0 == seq && d.1 > now)
    }

    /// Starts the part of each shard of `mask` with the arguments `first`.
    pub(super) fn start_parts(&mut self, shards: usize, mask: ShardMask, first: &[&[u8]]) {
        if self.building.len() < shards {
            self.building.resize_with(shards, PackedArgs::default);
        }
        for t in mask.iter() {
            let b = &mut self.building[t];
            b.data.clear();
            b.ends.clear();
            for a in first {
                b.push(a);
            }
        }
    }
}

/// The most parts waiting on a shard for which it looks whether one may
/// pass the intents ahead of it (`part_may_run`: each look loads its
/// slots' marks; a longer backlog waits for its turns).
const PASS_BACKLOG_MAX: usize = 64;

/// A part's arguments in order.
fn part_args(part: &Part) -> impl Iterator<Item = &[u8]> + Clone {
    let (data, ends) = (&part.args.data, &part.args.ends);
    (0..ends.len()).map(move |i| &data[if i == 0 { 0 } else { ends[i - 1] as usize }..ends[i] as usize])
}

/// The key slots a two-round hop's first part, or a one-round EXEC's part,
/// names on its shard (its slot list: the first argument, after an EXEC's
/// caller fields; see `network::rounds`, `exec_command_parts`), as
/// `HoldTable::may_pass` reads them.
fn part_slots(part: &Part) -> Option<&[u8]> {
    let at = if part.cmd as usize == exec_id() { super::dispatch::CALLER_FIELDS } else { 0 };
    let ends = &part.args.ends;
    let start = if at == 0 { 0 } else { *ends.get(at - 1)? as usize };
    part.args.data.get(start..*ends.get(at)? as usize)
}

/// The bytes of element `i`'s reply at the front of `buf` (a bulk string,
/// a RESP2 null bulk or a RESP3 null), as MGET writes them.
fn element_len(buf: &[u8]) -> usize {
    let line = memchr::memchr(b'\n', buf).map_or(buf.len(), |p| p + 1);
    if buf.first() == Some(&b'$') {
        let n: i64 = std::str::from_utf8(&buf[1..line.saturating_sub(2)]).ok().and_then(|s| s.parse().ok()).unwrap_or(-1);
        if n >= 0 {
            return line + n as usize + 2;
        }
    }
    line
}

/// The integer of a `:n\r\n` reply (0 for anything else).
pub(super) fn integer_of(buf: &[u8]) -> i64 {
    let end = memchr::memchr(b'\r', buf).unwrap_or(buf.len());
    buf.get(1..end).and_then(|d| std::str::from_utf8(d).ok()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl EventLoop {
    /// Runs a multi-shard command by hops when it is one of the hop
    /// commands and may (see the module doc); None: the held path runs it.
    /// `mask`: its keys' shards (several).
    pub(super) fn try_hop(&mut self, index: u32, id: usize, args: &[&[u8]], mask: ShardMask) -> Option<Flow> {
        if CommandTable::get().specs[id].flags & flags::WRITE != 0 && self.events_need_hold() {
            return None;
        }
        if id == super::rounds::msetnx_id() {
            return self.try_msetnx_hop(index, id, args, mask);
        }
        if super::rounds::is_move(id) {
            return self.try_rename_hop(index, id, args, mask);
        }
        if super::rounds_move::moves(id) {
            return self.try_move_hop(index, id, args, mask);
        }
        let gather = gather_of(id)?;
        if !self.holding.is_empty() || (gather == Gather::Ok && args.len().is_multiple_of(2)) || !self.target_awake(mask) {
            return None;
        }
        let bytes: usize = args.iter().map(|a| a.len()).sum();
        if let Some(flow) = self.hop_may_start(index, mask, bytes) {
            return Some(flow);
        }
        let n = self.server.shard_count;
        // A write while the streams are on: one unit at a cut, carried by
        // this shard (a part here, empty when it has no key).
        let (cut, mask) = self.hop_cut(mask, CommandTable::get().specs[id].flags & flags::WRITE != 0);
        let mut op = self.hop_op_recording(index, args);
        let hold = &self.server.hold;
        op.key_shards.clear();
        self.hops.start_parts(n, mask, &[args[0]]);
        let step = if gather == Gather::Ok { 2 } else { 1 };
        for group in args[1..].chunks(step) {
            let slot = key_slot(group[0]);
            let t = slot_shard(slot, n);
            // Marked before the intent is queued and its parts sent: a
            // command that sees a part's effect sees the marks.
            hold.mark(slot);
            op.key_shards.push(t as u8);
            for a in group {
                self.hops.building[t].push(a);
            }
        }
        let conn = self.conns[index as usize].as_ref().unwrap();
        let (db, resp, client) = (conn.client.db, conn.client.resp, conn.client.id);
        let track = conn.client.tracking.remembers_reads();
        let seq = self.queue_hop(index, op, mask, id, gather, cut, 0);
        self.send_parts(mask, seq, db, resp, id, client, track, cut);
        Some(Flow::Continue)
    }

    /// Whether a multi-shard write takes the held path for its events'
    /// order: while a client blocks (`blocking::anyone_waits`) a hop's
    /// parts publish their events from their own shards (a client a part
    /// serves publishes its pop at once, after the write that fed it:
    /// `messaging::hop_order`, "Cost"), so one command's events, and one
    /// connection's commands', would reach a subscriber shard by shard.
    /// Under a hold they are one list in execution order, the pops of the
    /// clients it serves after it (`messaging::held_order`). Only while
    /// keyspace events are on: one load of the blocked count otherwise.
    pub(super) fn events_need_hold(&self) -> bool {
        crate::messaging::blocking::anyone_waits() && self.set.get(self.id).config.notify_keyspace_events != 0
    }

    /// The cut of a hop over `mask` (0: none) and the shards of its intent:
    /// a write (`write`) while this shard's stream is on gets a cut, and
    /// this shard, its carrier, joins it.
    pub(super) fn hop_cut(&self, mut mask: ShardMask, write: bool) -> (u64, ShardMask) {
        if !write || !self.set.get(self.id).stream.is_on() {
            return (0, mask);
        }
        mask.insert(self.id);
        (propagate::next_cut_id(), mask)
    }

    /// Whether parts of about `bytes` may go to every other shard of `mask`
    /// now (the mailboxes' bounds, as for a forwarded command).
    pub(super) fn may_send_parts(&self, mask: ShardMask, bytes: usize) -> bool {
        mask.iter().all(|t| t == self.id || self.outboxes[t].as_ref().is_some_and(|o| o.may_send_request(bytes)))
    }

    /// The connection's reply slot for a hop over `mask` (counted among its
    /// forwarded commands, and as a hop); returns the slot's number.
    pub(super) fn start_hop_slot(&mut self, index: u32, mask: ShardMask) -> u64 {
        let conn = self.conns[index as usize].as_mut().unwrap();
        let discard = take_discard(&mut conn.client);
        let slot = conn.next_seq;
        conn.next_seq += 1;
        conn.note_forward(mask.iter().next().unwrap_or(self.id));
        conn.forward_mixed = true;
        conn.forwarded += 1;
        conn.hops += 1;
        if conn.hop_hold == HopHold::Free {
            conn.hop_hold = HopHold::Waiting;
        }
        conn.slots.push_back(super::conn::Slot { seq: slot, ready: None, discard, request: false });
        slot
    }

    /// Whether connection `index` may start a hop over `mask` with parts of
    /// about `bytes` now; Some(flow) when it must wait first (its
    /// single-key forwarded commands come back first; too many out:
    /// throttled; a mailbox full: backed off).
    pub(super) fn hop_may_start(&mut self, index: u32, mask: ShardMask, bytes: usize) -> Option<Flow> {
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.forwarded != conn.hops {
            conn.deferred = true;
            return Some(Flow::Defer);
        }
        if conn.forwarded >= FORWARDED_MAX {
            conn.deferred = true;
            conn.throttled = true;
            return Some(Flow::Defer);
        }
        if !self.may_send_parts(mask, bytes) {
            return Some(self.mailbox_back_off(index));
        }
        None
    }

    /// A free op whose `args` are connection `index`'s address and name,
    /// then `args` (what it is recorded with when it completes).
    pub(super) fn hop_op_recording(&mut self, index: u32, args: &[&[u8]]) -> HopOp {
        let mut op = self.hops.free.pop().unwrap_or_default();
        let conn = self.conns[index as usize].as_ref().unwrap();
        op.args.data.clear();
        op.args.ends.clear();
        op.args.push(conn.client.addr.as_bytes());
        op.args.push(&conn.client.name);
        for a in args {
            op.args.push(a);
        }
        op
    }

    /// Queues hop `op` (command `cmd`, gathering by `gather`, round `round`)
    /// over `mask` for connection `index` (its reply slot) and keeps it in
    /// flight; returns its intent's number. Its keys are marked already.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_hop(&mut self, index: u32, op: HopOp, mask: ShardMask, cmd: usize, gather: Gather, cut: u64, round: u8) -> u64 {
        let client = self.conns[index as usize].as_ref().unwrap().client.id;
        let seq = self.server.hold.enqueue_hop(mask, client);
        self.track_hop(index, op, seq, mask, cmd, gather, cut, round);
        seq
    }

    /// `queue_hop` for intent `seq`, queued already.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn track_hop(&mut self, index: u32, mut op: HopOp, seq: u64, mask: ShardMask, cmd: usize, gather: Gather, cut: u64, round: u8) {
        let slot = self.start_hop_slot(index, mask);
        let token = self.token(index);
        let conn = self.conns[index as usize].as_ref().unwrap();
        let (db, resp) = (conn.client.db, conn.client.resp);
        (op.seq, op.token, op.slot, op.cmd, op.gather) = (seq, token, slot, cmd, Some(gather));
        (op.pending, op.sum, op.usec, op.db, op.resp, op.cut) = (mask.count(), 0, 0, db, resp, cut);
        (op.round, op.mask, op.chain) = (round, mask, None);
        self.hops.ops.push(op);
    }

    /// Sends each shard of `mask` its part (built in `hops.building`) of hop
    /// `seq`, and runs this shard's own at once when nothing is ahead of it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_parts(&mut self, mask: ShardMask, seq: u64, db: usize, resp: u8, id: usize, client: u64, track: bool, cut: u64) {
        self.send_round(mask, seq, db, resp, id, client, track, cut, 0, None);
    }

    /// `send_parts` for round `round` of a multi-round intent, with the
    /// client's WATCH cell when its parts need it (`network::rounds`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_round(
        &mut self,
        mask: ShardMask,
        seq: u64,
        db: usize,
        resp: u8,
        id: usize,
        client: u64,
        track: bool,
        cut: u64,
        round: u8,
        cell: Option<&std::sync::Arc<crate::shard::watch::WatchCell>>,
    ) {
        let me = self.id;
        let mut own = None;
        for t in mask.iter() {
            if self.hops.skip.contains(t) {
                continue;
            }
            let entry = match self.hops.entry_for.take() {
                Some((s, e)) if s == t => Some(e),
                other => {
                    self.hops.entry_for = other;
                    None
                }
            };
            let mut packed = self.pool.pop().unwrap_or_default();
            std::mem::swap(&mut packed, &mut self.hops.building[t]);
            let part = Part {
                seq,
                from: me as u32,
                round,
                db: db as u32,
                resp,
                cmd: id as u16,
                client,
                track,
                args: packed,
                cut: (cut != 0 || cell.is_some() || entry.is_some()).then(|| Box::new(PartCut { id: cut, shards: mask, cell: cell.cloned(), entry })),
            };
            if t == me {
                own = Some(part);
            } else if let Some(o) = self.outboxes[t].as_mut() {
                let bytes = part.args.data.len();
                if self.hops.unanswered {
                    o.send(Message::HopPart(part));
                } else {
                    o.send_request(Message::HopPart(part), bytes);
                }
                self.doorbells.insert(t);
            }
        }
        if let Some(part) = own {
            // This shard's part, at once when nothing is ahead of it (the
            // other parts are on their way meanwhile).
            let head = self.server.hold.head(me);
            if self.part_may_run(&part, head) {
                let last = part.round == 2;
                self.take_turn(&part, head);
                self.run_part(part);
                if last {
                    // A last round's marks were raised long before: requests
                    // and connections may wait for them.
                    self.marks_lowered();
                }
            } else {
                self.hops.parts.push(part);
            }
        }
    }

    /// Whether hop command `id` over `mask` would run by hops (a hold run
    /// does not start with one: it goes to `dispatch`).
    pub(super) fn hops_command(&mut self, id: usize, mask: ShardMask) -> bool {
        if id == super::rounds::msetnx_id() || super::rounds::is_move(id) || self.move_may_hop(id, mask) {
            // Two rounds: routed by their measured cost (`network::route`).
            return self.rounds_by_hops(mask, false);
        }
        gather_of(id).is_some() && self.target_awake(mask)
    }

    /// Whether some other shard of `mask` is awake. When every one sleeps in
    /// its ring the held path takes them as they sleep (`HoldTable::held_for`):
    /// no thread is woken at all, where a hop would wake each for its part
    /// and the coordinator again for the answers; an awake shard picks a
    /// part up in its loop, where a hold would park it (a futex wait and two
    /// wake-ups). So a command goes by hops only when it would wake nobody
    /// extra (or while `hop-part-delay` is set: a test's hops must be hops).
    /// (A shard may fall asleep or wake between this look and the run:
    /// either path is correct, only its cost differs.)
    /// `cross-shard-route` forces one answer (`network::route`).
    pub(super) fn target_awake(&mut self, mask: ShardMask) -> bool {
        match self.forced_route() {
            super::route::Forced::Hops => return true,
            super::route::Forced::Held => return false,
            super::route::Forced::Auto | super::route::Forced::Measured => {}
        }
        self.part_delay_us() > 0 || mask.iter().any(|t| t != self.id && !self.server.sleeping[t].load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Whether a key of this command is marked by a pending hop (checked
    /// only while some hop part of this shard is pending: one load otherwise).
    /// Always inlined (LLVM kept it a call in the command path).
    #[inline(always)]
    pub(super) fn keys_marked(&self, spec: &CommandSpec, args: &[&[u8]]) -> bool {
        self.holding.is_empty() && self.server.hold.hops_pending(self.id) && self.keys_marked_now(spec, args)
    }

    #[inline(never)]
    fn keys_marked_now(&self, spec: &CommandSpec, args: &[&[u8]]) -> bool {
        key_positions(&spec.keys, args).any(|i| self.server.hold.marked(key_slot(args[i])))
    }

    /// Whether a key of a command queued by connection `index` (in MULTI)
    /// is marked by a pending hop.
    pub(super) fn queued_keys_marked(&mut self, index: u32) -> bool {
        if !self.server.hold.hops_pending(self.id) || !self.holding.is_empty() {
            return false;
        }
        let table = CommandTable::get();
        let conn = self.conns[index as usize].as_mut().unwrap();
        let (queue, count) = conn.client.multi.take();
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        let mut marked = false;
        for q in &queue[..count] {
            q.args.slices(&mut slices);
            if self.keys_marked(&table.specs[q.id], &slices) {
                marked = true;
                break;
            }
        }
        self.hops.slices = recycle(slices);
        self.conns[index as usize].as_mut().unwrap().client.multi.restore(queue);
        marked
    }

    /// Defers connection `index` until this shard's parts lower the marks
    /// of its command's keys (woken by `run_parts`, not retried every turn).
    pub(super) fn wait_for_marks(&mut self, index: u32) -> Flow {
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.deferred = true;
        conn.mark_wait = true;
        self.hops.mark_waiters.push(index);
        Flow::Defer
    }

    /// A message `Request` from shard `from`: run now, or postponed behind a
    /// mark (and behind the postponed requests of its shard).
    pub(super) fn request_or_postpone(&mut self, from: usize, msg: Message) {
        if self.request_waits(from, &msg) {
            self.hops.postponed_from.insert(from);
            self.hops.postponed.push_back((from, msg));
        } else {
            self.run_request(msg);
        }
    }

    fn request_waits(&mut self, from: usize, msg: &Message) -> bool {
        if self.hops.postponed_from.contains(from) {
            return true;
        }
        let Message::Request { cmd, args, .. } = msg else {
            return false;
        };
        if !self.server.hold.hops_pending(self.id) {
            return false;
        }
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        args.slices(&mut slices);
        let spec = &CommandTable::get().specs[*cmd as usize];
        let marked = self.keys_marked(spec, &slices[super::dispatch::CALLER_FIELDS..]);
        self.hops.slices = recycle(slices);
        marked
    }

    /// Runs the postponed requests whose keys are no longer marked, in
    /// order per shard.
    fn retry_postponed(&mut self) {
        if self.hops.postponed.is_empty() {
            return;
        }
        let list = std::mem::take(&mut self.hops.postponed);
        self.hops.postponed_from = ShardMask::default();
        for (from, msg) in list {
            if self.request_waits(from, &msg) {
                self.hops.postponed_from.insert(from);
                self.hops.postponed.push_back((from, msg));
            } else {
                self.run_request(msg);
            }
        }
    }

    /// A part from another shard's coordinator.
    pub(super) fn on_hop_part(&mut self, part: Part) {
        let delay = self.part_delay_us();
        if delay > 0 {
            let due = self.clock.now_ms() + (delay + 999) / 1000;
            self.hops.due.push((part.seq, due));
        }
        self.hops.parts.push(part);
        self.run_parts();
    }

    /// `hop-part-delay` (microseconds; 0 but in tests), read from the config
    /// at most every 100 ms.
    pub(super) fn part_delay_us(&mut self) -> i64 {
        let now = self.clock.now_ms();
        if now - self.hops.delay_read_ms >= 100 {
            self.hops.delay_read_ms = now;
            self.hops.delay_us = self.state().config.others.get("hop-part-delay").and_then(|v| v.parse().ok()).unwrap_or(0);
        }
        self.hops.delay_us
    }

    /// Whether a waiting part's intent heads this shard's queue (the loop
    /// must not sleep).
    pub(super) fn hop_part_ready(&self) -> bool {
        !self.hops.parts.is_empty() && {
            let head = self.server.hold.head(self.id);
            self.hops.parts.iter().any(|p| self.part_may_run(p, head) && !self.hops.due.iter().any(|d| d.0 == p.seq))
        }
    }

    /// Whether `part` may run now (`head`: this shard's queue's head): its
    /// intent heads the queue (a carrier's part once the others are back),
    /// or it passes the intents ahead ("Passing" in `shard::hold`): a
    /// two-round hop's first part here (round 1, or a chain's round 3) or a
    /// one-round part (MSET, MGET, DEL, UNLINK, EXISTS, TOUCH, WATCH, EXEC) whose
    /// key slots no other intent has marked, with every intent ahead a hop,
    /// no cut and this shard's write stream off; or the last round of one
    /// whose first part passed.
    fn part_may_run(&self, part: &Part, head: u64) -> bool {
        if part.seq == head {
            return !self.carrier_waits(part);
        }
        if part.round == 2 {
            return self.hops.passed.contains(&part.seq);
        }
        // A long backlog of parts is past passing's use (the shard is
        // saturated and the heads pipeline): its check stays off the path.
        if self.hops.parts.len() > PASS_BACKLOG_MAX || part.cut().is_some() || self.set.get(self.id).stream.is_on() {
            return false;
        }
        let (hold, cmd) = (&self.server.hold, part.cmd as usize);
        match part.round {
            // A first round's slot list, and a one-round EXEC's (its keys
            // are inside its commands: `exec_command_parts` lists their slots).
            _ if part.round != 0 || cmd == exec_id() => {
                part_slots(part).is_some_and(|l| hold.may_pass(self.id, part.seq, part.client, l.chunks_exact(2).map(|s| u16::from_le_bytes([s[0], s[1]]))))
            }
            // A one-round part names its keys: WATCH's after the epoch,
            // MSET's with their values, the other gathers' alone.
            _ if cmd == super::rounds::watch_id() => hold.may_pass(self.id, part.seq, part.client, part_args(part).skip(2).map(key_slot)),
            _ => match gather_of(cmd) {
                Some(Gather::Ok) => hold.may_pass(self.id, part.seq, part.client, part_args(part).skip(1).step_by(2).map(key_slot)),
                Some(Gather::Sum | Gather::Values) => hold.may_pass(self.id, part.seq, part.client, part_args(part).skip(1).map(key_slot)),
                _ => false,
            },
        }
    }

    /// `part` runs now (`part_may_run` said so): a first round that passed
    /// is remembered until its last round here, which forgets it.
    fn take_turn(&mut self, part: &Part, head: u64) {
        if part.round == 1 && part.seq != head {
            self.hops.passed.push(part.seq);
        } else if part.round == 2 && !self.hops.passed.is_empty() {
            self.hops.passed.retain(|&s| s != part.seq);
        }
    }

    /// Whether `part` is the carrier's of a hop with a cut whose other
    /// parts are not all back yet (it runs last: its unit needs theirs).
    fn carrier_waits(&self, part: &Part) -> bool {
        part.cut().is_some() && part.from as usize == self.id && self.hops.ops.iter().any(|o| o.seq == part.seq && o.pending > 1)
    }

    /// Runs the waiting parts whose intents head this shard's queue, in
    /// queue order; then what waited for their marks.
    pub(super) fn run_parts(&mut self) {
        let mut ran = false;
        while !self.hops.parts.is_empty() {
            let head = self.server.hold.head(self.id);
            let now = self.clock.now_ms();
            let Some(i) = self.hops.parts.iter().position(|p| self.part_may_run(p, head) && self.hops.is_due(p.seq, now)) else {
                break;
            };
            let part = self.hops.parts.swap_remove(i);
            self.take_turn(&part, head);
            if !self.hops.due.is_empty() {
                self.hops.due.retain(|d| d.0 != part.seq);
            }
            self.run_part(part);
            ran = true;
        }
        if ran {
            self.marks_lowered();
            // Keys a part filled are served before this shard parks or runs
            // anything else (`network::blocking`).
            self.serve_ready();
        }
    }

    /// A part ran here and lowered marks: what waited for them runs now.
    fn marks_lowered(&mut self) {
        self.retry_postponed();
        let waiters = std::mem::take(&mut self.hops.mark_waiters);
        for index in waiters {
            if let Some(c) = self.conns[index as usize].as_mut().filter(|c| c.mark_wait) {
                c.mark_wait = false;
                self.run_deferred(index);
            }
        }
    }

    /// Runs `part` (its intent heads this shard's queue), lowers its marks,
    /// takes the intent off the queue and answers the coordinator.
    pub(super) fn run_part(&mut self, mut part: Part) {
        // Keys this shard queued for BCAST before the part go now: the
        // part's own go to the coordinator (`answer_part`), and theirs
        // must not wait for the hop.
        self.tracking_flush_bcast();
        if super::rounds_move::moves(part.cmd as usize) {
            return self.run_move_part(part);
        }
        if part.round == 1 {
            return self.run_round_one(part);
        }
        if part.round == 3 {
            return self.run_round_three(part);
        }
        if part.cmd as usize == exec_id() {
            return self.run_exec_part(part);
        }
        if part.cmd as usize == super::rounds::watch_id() {
            return self.run_watch_part(part);
        }
        if super::rounds::is_move(part.cmd as usize) {
            return self.run_rename_part(part);
        }
        let me = self.id;
        let spec = &CommandTable::get().specs[part.cmd as usize];
        let now = self.clock.now_ms();
        let start = self.clock.last;
        self.scratch.clear();
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        let cut = part.cut().is_some() && self.state().stream.is_on();
        let mut ops = None;
        // The carrier's part may have no key (it only carries the unit).
        if slices.len() > 1 {
            let mut r = Reply::new(&mut self.scratch, part.resp);
            let mut ctx = Ctx::new(&mut self.set, &self.server, me, part.db as usize, part.resp, now, None);
            let propagating = ctx.shards.get(me).stream.is_on();
            let dirty_before = ctx.shards.get(me).dirty;
            crate::messaging::tracking::set_current_client(part.client);
            (spec.handler)(&mut ctx, &slices, &mut r);
            if part.track && spec.flags & flags::READONLY != 0 {
                crate::messaging::tracking::remember_keys(&mut ctx, spec, &slices, part.client, part.from as usize);
            }
            crate::messaging::tracking::set_current_client(0);
            if cut {
                let dirty = ctx.shards.get(me).dirty != dirty_before;
                let stream = &mut ctx.shards.get_mut(me).stream;
                ops = Some(Box::new(PartOps { ops: propagate::take_pending_ops(stream), dirty, ..Default::default() }));
            } else if propagating {
                propagate::after_command(&mut ctx, &slices, dirty_before);
            }
        } else if cut {
            ops = Some(Box::default());
        }
        let usec = self.clock.usec_since(start);
        let step = if spec.name == "mset" { 2 } else { 1 };
        if part.round == 0 {
            for k in slices[1..].iter().step_by(step) {
                self.server.hold.unmark(key_slot(k));
            }
        } else {
            self.unmark_kept(part.seq);
        }
        self.hops.slices = recycle(slices);
        part.args.data.clear();
        part.args.ends.clear();
        part.args.data.extend_from_slice(&self.scratch);
        self.scratch.clear();
        if let Some(ops) = ops {
            self.part_cut(&part, ops);
        }
        self.answer_part(part, usec);
    }

    /// A part of a hop with a cut ran (`ops`: what it left): a non-carrier
    /// part records its cut and sends its operations with its answer; the
    /// carrier's, which runs last, records its cut with the hop's whole
    /// unit at it (see "AOF" in the module doc).
    pub(super) fn part_cut(&mut self, part: &Part, ops: Box<PartOps>) {
        let me = self.id;
        let Some(c) = part.cut() else { return };
        let (id, shards) = (c.id, c.shards);
        if part.from as usize != me {
            propagate::hop_cut(&mut self.state().stream, id, shards, part.from as usize);
            self.hops.part_ops = Some(ops);
            return;
        }
        let Some(i) = self.hops.ops.iter().position(|o| o.seq == part.seq) else {
            return;
        };
        let op = &mut self.hops.ops[i];
        op.ops.push((me, ops));
        let mut unit: propagate::Ops = Vec::new();
        if op.gather == Some(Gather::Exec) {
            // Each command's operations, in the queue's order.
            let mut at: Vec<(usize, usize, usize)> = op.ops.iter().map(|(s, _)| (*s, 0, 0)).collect();
            for &s in &op.key_shards {
                let Some(j) = at.iter().position(|a| a.0 == s as usize) else {
                    continue;
                };
                let p = &mut op.ops[j].1;
                let (cmd, from) = (at[j].1, at[j].2);
                let count = p.per_cmd.get(cmd).copied().unwrap_or(0) as usize;
                unit.extend(p.ops[from..from + count].iter_mut().map(std::mem::take));
                at[j] = (s as usize, cmd + 1, from + count);
            }
        } else {
            let mut dirty = false;
            for (_, p) in &mut op.ops {
                unit.append(&mut p.ops);
                dirty |= p.dirty;
            }
            if dirty {
                // The command as the client sent it (past its caller fields).
                let mut all = Vec::new();
                op.args.slices(&mut all);
                let whole: Vec<Vec<u8>> = all[super::dispatch::CALLER_FIELDS..].iter().map(|a| a.to_vec()).collect();
                unit.push((op.db, whole));
            }
        }
        op.ops.clear();
        propagate::hop_unit(&mut self.state().stream, id, shards, me, &unit);
    }

    /// After a part ran (its reply in `part.args`, its marks lowered): the
    /// intent leaves this shard's queue and the coordinator gets the reply.
    pub(super) fn answer_part(&mut self, mut part: Part, usec: u64) {
        let me = self.id;
        self.server.hold.hop_done(me, part.seq);
        if part.from as usize != me {
            // What it read may be a write not handed over yet.
            self.hand_over_before_answer();
        }
        // Its events and invalidations go with its answer, to be published
        // in the command's order (`messaging::hop_order`).
        let captured = self.capture_part_messages();
        // Its keys for BCAST prefixes too (those queued before it ran went
        // then: `run_part`).
        let bcast = self.state().tracking.take_pending_bcast();
        // Before the answer leaves, as a forwarded command's (`execute_remote`).
        self.after_command_messaging();
        self.tracking_after_command(true);
        let mut ops = self.hops.part_ops.take();
        if captured.is_some() {
            ops.get_or_insert_with(Default::default).captured = captured;
        }
        if !bcast.is_empty() {
            ops.get_or_insert_with(Default::default).bcast = bcast;
        }
        if let Some(found) = self.hops.chain_found.take() {
            // A round-3 part: its round-1 answer after its reply.
            part.args.ends.push(part.args.data.len() as u32);
            Reply::new(&mut part.args.data, part.resp).int(found);
            if let Some(e) = self.hops.chain_entry.take() {
                ops.get_or_insert_with(Default::default).entry = Some(e);
            }
        }
        if part.from as usize == me {
            // (Its own part: only what it left to publish.)
            self.hop_part_done(part.seq, usec, me, part.args, ops);
        } else {
            self.send_to(part.from as usize, Message::HopDone { seq: part.seq, usec, args: part.args, ops });
        }
    }

    /// What the part that just ran here left to publish (its events and
    /// invalidations, a chain's round-1 look's before them, an EXEC part's
    /// command boundaries), for the coordinator (`messaging::hop_order`);
    /// None when nothing, or while a client blocks (published from here).
    pub(super) fn capture_part_messages(&mut self) -> Option<Box<crate::messaging::hop_order::Captured>> {
        let chain = self.hops.chain_captured.take();
        let st = self.set.get_mut(self.id);
        if chain.is_none() && (st.pending_publish.is_empty() && st.tracking.outgoing.is_empty() || !crate::messaging::hop_order::capturing()) {
            self.hops.cmd_ends.0.clear();
            return None;
        }
        let prior = chain.as_ref().map_or((0, 0), |c| (c.events.len() as u32, c.invalidations.len() as u32));
        let mut captured = crate::messaging::hop_order::capture(st, chain);
        let ends = &mut self.hops.cmd_ends.0;
        if let Some(c) = captured.as_mut() {
            c.cmd_ends.extend(ends.iter().map(|&(e, i)| (e + prior.0, i + prior.1)));
        }
        ends.clear();
        captured
    }

    /// EXEC of a transaction whose commands each name keys of one shard,
    /// without WATCH, over several shards: each shard runs its commands, in
    /// queue order, as one part (`run_exec_part`); None when it does not
    /// qualify (the held path runs it). See the module doc.
    pub(super) fn try_exec_hop(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Option<Flow> {
        if !self.holding.is_empty() {
            return None;
        }
        let me = self.id;
        let conn = self.conns[index as usize].as_mut().unwrap();
        let c = &conn.client;
        if c.multi.dirty_exec || c.watch.dirty() || conn.forwarded != conn.hops || conn.forwarded >= FORWARDED_MAX {
            return None;
        }
        // A WATCH folded into this EXEC (`network::rounds`) watches nothing
        // the one-round EXEC must check on other shards.
        if !c.watch.keys.is_empty() && !conn.watch_fold {
            return self.try_exec_rounds(index, args[0]);
        }
        let (mask, bytes) = self.exec_queue_mask(index)?;
        // Held when someone blocks: the holder serves the keys it fills
        // in Redis's order (`network::blocking`).
        let go = mask.count() >= 2 && !crate::messaging::blocking::anyone_waits() && self.target_awake(mask) && self.may_send_parts(mask, bytes);
        if !go {
            return None;
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.watch_fold {
            // WATCH's `+OK` leaves with EXEC's reply, after every part ran
            // (the first hop of the connection since the fold began).
            conn.hop_hold = HopHold::Waiting;
            self.end_fold_at_exec(index);
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        let writes = conn.client.multi.flags & flags::WRITE != 0;
        let (cut, mask) = self.hop_cut(mask, writes);
        let conn = self.conns[index as usize].as_mut().unwrap();
        // EXEC itself (its checks, its header `*N`, its commandstats call).
        let (db, resp, client) = (conn.client.db, conn.client.resp, conn.client.id);
        let track = conn.client.tracking.remembers_reads();
        let mut op = self.hops.free.pop().unwrap_or_default();
        op.args.data.clear();
        op.args.ends.clear();
        {
            let mut r = Reply::new(&mut op.args.data, resp);
            let mut ctx = Ctx::new(&mut self.set, &self.server, me, db, resp, now, Some(&mut conn.client));
            crate::exec::call(&mut ctx, &mut self.clock, id, args, &mut r, &crate::exec::Caller::LOCAL, &mut op.monitor);
        }
        self.exec_command_parts(index, mask, &mut op.key_shards, true);
        self.conns[index as usize].as_mut().unwrap().client.multi.reset();
        let seq = self.queue_hop(index, op, mask, id, Gather::Exec, cut, 0);
        self.send_parts(mask, seq, db, resp, exec_id(), client, track, cut);
        Some(self.finish_command(index, now))
    }

    /// Builds, in `hops.building`, each shard of `mask`'s EXEC part from
    /// connection `index`'s queued commands (its caller fields, then per
    /// command its id, argument count and arguments), the shard of each
    /// command in queue order in `key_shards`; with `mark` (a one-round
    /// EXEC), marks their keys and puts each part's slot list (one per mark,
    /// as a round-1 part's) after its caller fields: the part may pass the
    /// intents ahead of it (`part_may_run`) and lowers its marks by it.
    pub(super) fn exec_command_parts(&mut self, index: u32, mask: ShardMask, key_shards: &mut Vec<u8>, mark: bool) {
        let (me, n) = (self.id, self.server.shard_count);
        let table = CommandTable::get();
        let conn = self.conns[index as usize].as_mut().unwrap();
        let (queue, count) = conn.client.multi.take();
        self.hops.start_parts(n, mask, &[conn.client.addr.as_bytes(), &conn.client.name]);
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        key_shards.clear();
        if mark {
            // First the keys: their marks, each part's slot list, each
            // command's shard.
            if self.hops.slot_lists.len() < n {
                self.hops.slot_lists.resize_with(n, Vec::new);
            }
            for t in mask.iter() {
                self.hops.slot_lists[t].clear();
            }
            let hold = &self.server.hold;
            for q in &queue[..count] {
                q.args.slices(&mut slices);
                let mut t = me;
                for i in key_positions(&table.specs[q.id].keys, &slices) {
                    let slot = key_slot(slices[i]);
                    t = slot_shard(slot, n);
                    hold.mark(slot);
                    super::rounds::push_slot(&mut self.hops.slot_lists[t], slot);
                }
                key_shards.push(t as u8);
            }
            for t in mask.iter() {
                let (b, l) = (&mut self.hops.building[t], &self.hops.slot_lists[t]);
                b.push(l);
            }
        }
        for (k, q) in queue[..count].iter().enumerate() {
            q.args.slices(&mut slices);
            let t = if mark {
                key_shards[k] as usize
            } else {
                let t = key_positions(&table.specs[q.id].keys, &slices).last().map_or(me, |i| slot_shard(key_slot(slices[i]), n));
                key_shards.push(t as u8);
                t
            };
            let b = &mut self.hops.building[t];
            b.push(&(q.id as u32).to_le_bytes());
            b.push(&(slices.len() as u32).to_le_bytes());
            for a in &slices {
                b.push(a);
            }
        }
        self.hops.slices = recycle(slices);
        self.conns[index as usize].as_mut().unwrap().client.multi.restore(queue);
    }

    /// The shards of connection `index`'s queued commands and their bytes,
    /// when each names keys of one shard and none blocks (the queue may run
    /// by hops); None otherwise.
    pub(super) fn exec_queue_mask(&mut self, index: u32) -> Option<(ShardMask, usize)> {
        let (me, n) = (self.id, self.server.shard_count);
        let table = CommandTable::get();
        let conn = self.conns[index as usize].as_mut().unwrap();
        let (queue, count) = conn.client.multi.take();
        // A queued command the ACL now denies (rules changed since it was
        // queued) leaves the queue to the held path, which replies its error.
        let user = if conn.client.acl.unrestricted { None } else { conn.client.acl.user.clone() };
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        let mut mask = ShardMask::default();
        let mut qualifies = true;
        for q in &queue[..count] {
            q.args.slices(&mut slices);
            let spec = &table.specs[q.id];
            let m = super::dispatch::route_mask(spec, &slices, n, me);
            if user.as_ref().is_some_and(|u| u.check(q.id, &slices).is_err())
                || !matches!(spec.route, crate::commands::Route::Keys)
                || spec.flags & flags::BLOCKING != 0
                || m.count() != 1
                || key_positions(&spec.keys, &slices).next().is_none()
            {
                qualifies = false;
                break;
            }
            mask.0 |= m.0;
        }
        let bytes: usize = queue[..count].iter().map(|q| q.args.data.len()).sum();
        self.hops.slices = recycle(slices);
        self.conns[index as usize].as_mut().unwrap().client.multi.restore(queue);
        qualifies.then_some((mask, bytes))
    }

    /// Runs an EXEC part: each command of it through `call()` (as a
    /// forwarded command: commandstats, slowlog, MONITOR on this shard), its
    /// reply appended and ended in `part.args`.
    fn run_exec_part(&mut self, mut part: Part) {
        let me = self.id;
        let now = self.clock.now_ms();
        let start = self.clock.last;
        let mut replies = self.pool.pop().unwrap_or_default();
        replies.data.clear();
        replies.ends.clear();
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        let caller = crate::exec::Caller { addr: slices[0], name: slices[1], client_id: part.client, track: part.track, shard: part.from as usize };
        let propagating = self.state().stream.is_on();
        let cut = part.cut().is_some() && propagating;
        let mut per_cmd = Vec::new();
        self.hops.cmd_ends.0.clear();
        self.hops.cmd_ends.note(self.set.get(me));
        // A one-round part: its slot list after the caller fields.
        let mut i = super::dispatch::CALLER_FIELDS + usize::from(part.round == 0);
        while i + 1 < slices.len() {
            let id = u32::from_le_bytes(slices[i].try_into().unwrap_or_default()) as usize;
            let argc = u32::from_le_bytes(slices[i + 1].try_into().unwrap_or_default()) as usize;
            let args = &slices[i + 2..i + 2 + argc];
            {
                let mut r = Reply::new(&mut replies.data, part.resp);
                let mut ctx = Ctx::new(&mut self.set, &self.server, me, part.db as usize, part.resp, now, None);
                ctx.in_multi = true;
                let before = propagate::exec_ops_count(&ctx.shards.get(me).stream);
                crate::exec::call(&mut ctx, &mut self.clock, id, args, &mut r, &caller, &mut self.monitor_line);
                if cut {
                    per_cmd.push((propagate::exec_ops_count(&ctx.shards.get(me).stream) - before) as u32);
                }
            }
            replies.ends.push(replies.data.len() as u32);
            self.hops.cmd_ends.note(self.set.get(me));
            self.feed_monitors(now);
            i += 2 + argc;
        }
        if part.round == 0 {
            let hold = &self.server.hold;
            for s in slices[super::dispatch::CALLER_FIELDS].chunks_exact(2) {
                hold.unmark(u16::from_le_bytes([s[0], s[1]]));
            }
        } else {
            self.unmark_kept(part.seq);
        }
        let ops = if cut {
            let ops = propagate::take_exec_ops(&mut self.state().stream);
            Some(Box::new(PartOps { ops, per_cmd, ..Default::default() }))
        } else {
            if propagating {
                let mut ctx = Ctx::new(&mut self.set, &self.server, me, part.db as usize, part.resp, now, None);
                propagate::exec_end(&mut ctx);
            }
            None
        };
        self.hops.slices = recycle(slices);
        let usec = self.clock.usec_since(start);
        std::mem::swap(&mut part.args, &mut replies);
        super::conn::recycle(&mut self.pool, replies);
        if let Some(ops) = ops {
            self.part_cut(&part, ops);
        }
        self.answer_part(part, usec);
    }

    /// A part of hop `seq` answered from shard `from` (its reply in `args`).
    pub(super) fn hop_part_done(&mut self, seq: u64, usec: u64, from: usize, args: PackedArgs, mut ops: Option<Box<PartOps>>) {
        if from != self.id {
            if let Some(o) = self.outboxes[from].as_mut() {
                o.reply_received();
            }
        }
        let bcast = ops.as_deref_mut().map(|o| std::mem::take(&mut o.bcast)).unwrap_or_default();
        let Some(i) = self.hops.ops.iter().position(|o| o.seq == seq) else {
            // (Those of prefixes forgotten here already are dropped: their
            // client turns tracking off.)
            let _ = self.state().tracking.absorb_bcast(bcast);
            super::conn::recycle(&mut self.pool, args);
            if let Some(c) = ops.and_then(|mut o| o.captured.take()) {
                self.publish_hop(vec![(from, c)], &[], None);
            }
            return;
        };
        let op = &mut self.hops.ops[i];
        op.bcast.extend(bcast);
        op.usec += usec;
        op.pending -= 1;
        if let Some(mut ops) = ops {
            if let Some(c) = ops.captured.take() {
                op.captured.push((from, c));
            }
            if ops.for_unit() {
                op.ops.push((from, ops));
            }
        }
        if op.round != 2 && op.round != 0 {
            // A first round's answer: what its check found (`network::rounds`);
            // a round-3 part's follows its reply.
            let at = if op.round == 3 { args.ends.last().copied().unwrap_or(0) as usize } else { 0 };
            op.sum += integer_of(&args.data[at..]);
            if op.round == 3 && op.gather == Some(Gather::Exec) {
                // A chained EXEC's part ran its commands: their replies
                // (all before its round-1 answer), for the gather.
                let mut args = args;
                args.ends.pop();
                args.data.truncate(at);
                op.replies.push((from, args));
            } else {
                super::conn::recycle(&mut self.pool, args);
            }
            if op.pending == 0 {
                self.next_round(i);
            }
            return;
        }
        match op.gather {
            Some(Gather::Values | Gather::Exec) => op.replies.push((from, args)),
            Some(Gather::Sum) => {
                op.sum += integer_of(&args.data);
                super::conn::recycle(&mut self.pool, args);
            }
            _ => super::conn::recycle(&mut self.pool, args),
        }
        if op.pending == 0 {
            self.finish_hop(i);
        } else if op.cut != 0 && op.pending == 1 {
            // Only the carrier's part is left: it may run now.
            self.run_parts();
        }
    }

    /// Every part of `ops[i]` is back: it completes now, unless an earlier
    /// hop of its connection is still in flight; then it waits for that one, and a
    /// connection's hops complete in its order, so their events and
    /// invalidations are published in command order (Redis runs one
    /// connection's commands one after the other). Its reply would wait
    /// for the earlier one's anyway (the slots), so nothing waits longer.
    /// One look at the connection's hop count when it has no other.
    fn finish_hop(&mut self, i: usize) {
        let token = self.hops.ops[i].token;
        if self.conn_of(token).is_some_and(|c| c.hops <= 1) {
            let op = self.hops.ops.swap_remove(i);
            return self.complete_hop(op);
        }
        self.hops.ops[i].done = true;
        self.complete_in_order(token);
    }

    /// Completes connection `token`'s finished hops (`HopOp::done`) in its
    /// order, up to the first one still in flight.
    fn complete_in_order(&mut self, token: ConnToken) {
        loop {
            // (A taken op, `seq` 0, is not one: it is put back before it runs on.)
            let mine = self.hops.ops.iter().enumerate().filter(|(_, o)| o.seq != 0 && o.token == token);
            let Some((j, o)) = mine.min_by_key(|(_, o)| o.slot) else { break };
            if !o.done {
                break;
            }
            let mut op = self.hops.ops.swap_remove(j);
            op.done = false;
            self.complete_hop(op);
        }
    }

    /// Every part is back: the reply, the command's record, the slot.
    fn complete_hop(&mut self, mut op: HopOp) {
        let mut out = self.pool.pop().unwrap_or_default();
        out.data.clear();
        out.ends.clear();
        {
            let mut r = Reply::new(&mut out.data, op.resp);
            match op.gather {
                Some(Gather::Ok) => r.ok(),
                Some(Gather::Sum) => r.int(op.sum),
                Some(Gather::Decided) => r.raw(&op.verdict),
                Some(Gather::Exec) => {
                    r.raw(&op.args.data);
                    // Each part's replies, one per command (`ends`), taken
                    // in the queue's order.
                    let at = &mut self.hops.at;
                    at.clear();
                    at.resize(op.replies.len(), 0);
                    for &s in &op.key_shards {
                        let Some(j) = op.replies.iter().position(|(f, _)| *f == s as usize) else {
                            continue;
                        };
                        let p = &op.replies[j].1;
                        let start = if at[j] == 0 { 0 } else { p.ends[at[j] - 1] as usize };
                        r.raw(&p.data[start..p.ends[at[j]] as usize]);
                        at[j] += 1;
                    }
                }
                _ => {
                    r.array(op.key_shards.len());
                    // Past each part's array header.
                    let at = &mut self.hops.at;
                    at.clear();
                    at.extend(op.replies.iter().map(|(_, p)| memchr::memchr(b'\n', &p.data).map_or(0, |x| x + 1)));
                    for &s in &op.key_shards {
                        let Some(j) = op.replies.iter().position(|(f, _)| *f == s as usize) else {
                            continue;
                        };
                        let data = &op.replies[j].1.data;
                        let len = element_len(&data[at[j]..]);
                        r.raw(&data[at[j]..at[j] + len]);
                        at[j] += len;
                    }
                }
            }
        }
        for (_, p) in op.replies.drain(..) {
            super::conn::recycle(&mut self.pool, p);
        }
        op.ops.clear();
        if op.gather == Some(Gather::Exec) {
            // EXEC's commandstats time includes its commands' (as in `run_exec`).
            if let Some(stat) = self.set.get_mut(self.id).stats.commands.get_mut(op.cmd) {
                stat.usec += op.usec;
            }
            std::mem::swap(&mut self.monitor_line, &mut op.monitor);
            op.monitor.clear();
        } else {
            let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
            op.args.slices(&mut slices);
            let (caller, args) = slices.split_at(super::dispatch::CALLER_FIELDS);
            let mut line = std::mem::take(&mut self.monitor_line);
            let failed = op.failed.take();
            crate::exec::record_parted(self.set.get_mut(self.id), &self.server, op.cmd, args, op.usec, op.db, caller[0], caller[1], failed, &mut line);
            self.monitor_line = line;
            self.hops.slices = recycle(slices);
        }
        let now = self.clock.now_ms();
        self.feed_monitors(now);
        if !op.captured.is_empty() {
            // Published (stamped) before the reply leaves, as in Redis.
            self.publish_hop_of(&mut op);
        }
        self.deliver_hop(op, out);
    }

    /// A completed hop's reply `out` fills its slot; the op is free again.
    fn deliver_hop(&mut self, mut op: HopOp, out: PackedArgs) {
        if !op.bcast.is_empty() {
            // Broadcast with this shard's batch (`tracking_turn`), before
            // the reply leaves; those of prefixes forgotten here already
            // are dropped (their client turns tracking off).
            let _ = self.state().tracking.absorb_bcast(std::mem::take(&mut op.bcast));
        }
        let token = op.token;
        let alive = self.conn_of(token).is_some();
        if alive {
            let c = self.conns[token.index as usize].as_mut().unwrap();
            c.hops = c.hops.saturating_sub(1);
            c.hop_hold = HopHold::Answered;
            self.deliver_reply(token, op.slot, out);
        } else {
            super::conn::recycle(&mut self.pool, out);
        }
        self.hops.free.push(op);
    }

    /// Publishes what `op`'s parts left, in the command's order
    /// (`messaging::hop_order`): an EXEC's by its queue, any other
    /// command's by its keys (LMOVE's and RPOPLPUSH's destination first:
    /// Redis pushes, then pops).
    fn publish_hop_of(&mut self, op: &mut HopOp) {
        self.hops.own_slot = Some((op.token, op.slot, 0));
        self.publish_hop_events(op);
        self.hops.own_slot = None;
    }

    fn publish_hop_events(&mut self, op: &mut HopOp) {
        let batches = std::mem::take(&mut op.captured);
        if op.cmd == exec_id() {
            return self.publish_hop(batches, &[], Some(&op.key_shards[..]));
        }
        let mut slices: Vec<&[u8]> = Vec::new();
        op.args.slices(&mut slices);
        let args = &slices[super::dispatch::CALLER_FIELDS.min(slices.len())..];
        let spec = &CommandTable::get().specs[op.cmd];
        let mut keys: Vec<&[u8]> = key_positions(&spec.keys, args).filter_map(|i| args.get(i).copied()).collect();
        if spec.name == "lmove" || spec.name == "rpoplpush" {
            keys.reverse();
        }
        self.publish_hop(batches, &keys, None)
    }
}

#[cfg(test)]
mod tests {
    /// A part is no larger than a forwarded request, so hops do not grow
    /// every mailbox message (the cut rides in a box).
    #[test]
    fn a_part_does_not_grow_the_message() {
        use crate::shard::mailbox::Message;
        assert!(std::mem::size_of::<super::Part>() <= 88, "{}", std::mem::size_of::<super::Part>());
        assert!(std::mem::size_of::<Message>() <= 96, "{}", std::mem::size_of::<Message>());
    }
}
