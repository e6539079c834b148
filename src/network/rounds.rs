//! Multi-round hops: one hop intent (`network::hop`, "Hops" in
//! `shard::hold`) that sends its parts in two rounds, for the multi-shard
//! operations whose parts must agree on one decision: an EXEC with WATCH,
//! MSETNX, RENAME/RENAMENX over two shards (round 1 takes the source entry
//! out as an owned value, round 2 writes it at the destination or puts it
//! back) and SMOVE over two shards (round 1 looks at both keys, round 2
//! moves the member). WATCH over several shards runs as a one-round hop
//! that answers nobody (below).
//!
//! **WATCH: one message.** A WATCH naming keys of other shards marks their
//! slots, queues a hop intent over their shards, sends each its part and
//! replies `+OK` at once, from this thread (`try_watch_hop`); each part
//! registers its keys when the intent heads its queue, lowers the marks and
//! leaves the queue without an answer (`run_watch_part`). Why that is still
//! Redis's WATCH: the instant the slots are marked is the WATCH's instant.
//! From then until the part has registered a key, whatever changes the key
//! either was ordered before the WATCH and is seen by nobody before it
//! runs, or runs after the registration and flags the client:
//! - a single-shard command on a marked key waits for the part
//!   (`request_or_postpone`, `wait_for_marks`; this connection's own
//!   forwarded writes also travel behind the part in the same mailbox), and
//!   active expiry spares marked keys;
//! - a hop or hold queued after the intent (the client's own EXEC among
//!   them) is behind it on each of its shards;
//! - a hop queued before it marked its own keys before it was queued, so
//!   none of its keys can be read unchanged after the WATCH: it is
//!   linearized before the WATCH, and the registration, after it, sees its
//!   write as the key's state at WATCH;
//! - a hold queued before it marks nothing: a client could read another
//!   key of that hold unchanged after the `+OK`, which puts the hold after
//!   the WATCH, and its write to the watched key must flag the client. So
//!   when a hold is ahead of the intent on one of its shards
//!   (`HoldTable::holds_ahead`, looked at once the intent is queued) the
//!   parts answer as before and the reply waits for them.
//!
//! A key's expiry state (Redis's `watchedKey.expired`) is judged at the
//! time WATCH ran, carried in the part. A client that unwatches, EXECs or
//! closes before a part runs has a new epoch by then, and the part
//! registers nothing. Before, every part answered and the reply waited: a
//! message back and a wake-up of this thread per WATCH, the one round trip
//! the watched transaction (`WATCH k1 k2` + MULTI/SET/SET/EXEC over two
//! shards) had beyond a plain EXEC's (see perf/RESULTS.md, "watch17").
//!
//! **WATCH folded into EXEC.** A client that sends `WATCH k1 k2`, `MULTI`,
//! its commands and `EXEC` in one write (what a pipelining client does,
//! and perf/cross_load.py's `watch`) has Redis run them back to back:
//! Redis reads the batch and runs it with no other client in between, so
//! such an EXEC fails only when the client itself touched a watched key,
//! or a key expired in those microseconds. Here the first WATCH of other
//! shards' keys while the client watches nothing (`try_watch_hop`) sends
//! no part: it lists those keys, registered nowhere, marks nothing, and
//! sets `Conn::watch_fold` (this shard's keys are registered by the
//! handler, which replies `+OK`). MULTI, more WATCHes and queued commands
//! keep the fold. At EXEC the one-round EXEC of a plain transaction runs
//! (`try_exec_hop`): the folded keys leave the list, EXEC's handler checks
//! and unwatches this shard's, and the parts go; an EXEC whose commands
//! are all this shard's, or that takes the held path, holds no shard for
//! the folded keys and drops them once it runs (`end_fold_at_exec`). Anything else ends the
//! fold before it runs (`unfold_watch`, from `fold_step`), and so does the
//! end of the read (`parse_and_run`) or a held WATCH or EXEC (which then
//! register or look at the keys themselves): the folded keys then get the
//! parts `try_watch_hop` would have sent, now.
//!
//! Why that is still Redis's WATCH: the client learns when WATCH ran only
//! from its `+OK`, which has not left when the fold ends (replies leave at
//! the end of the loop turn, `flush_sends`, after the read has run), so
//! WATCH may be placed at any instant before that. Folded into an EXEC, it
//! is placed just before the EXEC's intent in the order of intents, and
//! the `+OK` leaves only with EXEC's reply (the fold starts only with no
//! reply of the connection pending, and its EXEC's hop makes the whole
//! output wait for its answer, `Conn::hop_hold`): a hop or hold
//! queued before the EXEC's intent runs before both, one queued after it
//! after both, a single-shard command on a key of its commands waits for
//! their marks, one on a watched key alone that runs before the part there
//! came before the `+OK` left, so before the WATCH too, and the client ran
//! nothing but MULTI and queueing in between; so nothing can change a
//! watched key between the two and the transaction goes, as in Redis
//! (this shard's keys are still checked: the client's own write to one of
//! them in between, or an eviction, flags it). Unfolded at a later instant, the parts are sent then, and
//! the WATCH is placed there, with the argument above for its keys (a
//! hold queued ahead of the intent then makes the parts answer, and the
//! connection's output, `+OK` included, waits for them). The client's own
//! commands between WATCH and EXEC run after the parts: a write to a
//! watched key flags it as before, and a multi-shard command is not run
//! under a hold while the fold is on (`hold_run_may`), which would queue
//! before the parts.
//!
//! What it saves, per `WATCH k1 k2` + MULTI/SET/SET/EXEC over two shards:
//! WATCH's intent and part (a message, a queue entry on both shards, two
//! marks, a registration and its removal there) and the watched EXEC's
//! chain (round 1 here, then round 3 there, with the decision taken
//! there too): the transaction costs a plain two-shard EXEC, one part and
//! its answer (perf/RESULTS.md, "watch19").
//!
//! **Shape.** The coordinator (the connection's shard) always joins the
//! intent, marks every key's hash slot (the queued commands' keys and the
//! watched keys; MSETNX's keys), queues one hop intent over its shard and
//! theirs, and sends every shard of it its round-1 part. A round-1 part
//! (`Part::round` 1) runs when the intent heads its shard's queue, checks
//! (EXEC: its watched keys, Redis's `isWatchedKeyExpired`, and drops their
//! registrations; MSETNX: whether one of its keys exists; RENAME: takes the
//! source out, or looks at the destination), keeps the
//! intent at the head of its queue and its keys' marks raised (`Hops::kept`)
//! and answers what it found. When every answer is back the coordinator
//! decides (EXEC: dirty or not, its own shard's watched keys checked by
//! EXEC's handler right then; MSETNX: all absent or not) and sends every
//! shard its round-2 part: the commands (or the MSET of its keys) when it
//! goes, nothing when it aborts. A round-2 part runs as a one-round part
//! does, then lowers what round 1 kept and takes the intent off its queue.
//! So a command on another key never waits, and one on a marked key waits
//! for the whole operation.
//!
//! **The chain.** A write hop over two shards (MSETNX, RENAME/RENAMENX,
//! SMOVE whose keys live on this shard and one other, the common case)
//! spends two messages, not four: round 1 runs here only; with its answer
//! the other shard gets one part (`Part::round` 3: its keys, this shard's
//! answer, a RENAME source's entry), which looks as its round 1 would,
//! decides as the coordinator would from both answers (the decisions are
//! sums of the answers' bits), runs its round 2 at once, lowers its marks,
//! leaves the queue and answers what it found (and an entry it took out or
//! gives back); the coordinator then decides the same, replies, and runs
//! its own round 2. Each round is a message to a shard that may have gone
//! to sleep meanwhile and a wake-up (a doorbell, two context switches on a
//! shared core): this halves them, to a one-round hop's (MSET's). It stays
//! atomic as a one-round hop is: the other shard's keys show the write
//! from its part on, while this shard's keys are still marked until its
//! own round 2, so whoever saw the one and reads the other waits for it.
//! Over three shards or more every two-round hop keeps both rounds.
//!
//! **A watched EXEC on the chain.** Over two shards an EXEC with WATCH
//! chains too (before: four messages, now two, as one-round EXEC's): its
//! other shard's part (`HopOp::chain_part`) is built when EXEC runs (that
//! shard's kept slots, watched keys and share of the queued commands) and
//! sent once round 1 here has looked at this shard's watched keys (Redis's
//! `isWatchedKeyExpired`) and dropped their registrations. The other shard
//! looks at its own watched keys and drops theirs, then decides as EXEC's
//! handler will decide here: it goes when neither look found an expired
//! key and the client's `WatchCell` is clean. It runs its commands (as
//! round 2's part would: `run_exec_part`, the hop's cut with them) or none,
//! and answers their replies and what it found. Here the decision is then
//! EXEC's handler's, as without the chain (a key found expired flags the
//! cell first), and it cannot differ: the cell is flagged only through a
//! registration of a watched key, and by the time the other shard looked
//! at the cell every registration of this transaction was gone (this
//! shard's at round 1, its own just before), so a clean cell stays clean;
//! a flagged one stays flagged (only UNWATCH, EXEC or DISCARD renew it, and
//! the client waits in MULTI, `Conn::hop_wait`). Its commands here run as
//! round 2's part; the reply takes each shard's replies in queue order.
//!
//! **Why it cannot deadlock** (the argument of `shard::hold` extended): the
//! intent with the smallest number heads every queue it is in, its own
//! coordinator's included; nothing parks for a hop, so each shard runs its
//! round-1 part at its next loop turn, the coordinator (not parked: its head
//! is this hop) gets the answers and sends round 2, which runs at once on
//! every shard (the intent still heads them), and the intent completes. A
//! chain is the same with round 1's other part held back until this
//! shard's answer: the other shard's round-3 part runs when it arrives (the
//! intent heads its queue, and nothing parks for a hop), then this one's
//! round 2 at once.
//! The coordinator must be in the intent for this: otherwise it could park
//! for a later hold at the head of its own queue while that hold waits for
//! a shard this intent heads.
//!
//! **Passing.** A round-1 part, or a chain's round-3 part, whose key slots
//! no other pending intent has marked and which has only hops ahead of it
//! runs without waiting for its intent to head its queue, and its last
//! round there follows whenever it arrives (`HoldTable::may_pass`,
//! "Passing" in `shard::hold`, which has why it stays atomic and free of
//! deadlock): two-round hops over disjoint keys of the same two shards no
//! longer run one exchange at a time. Only while the write streams are off.
//!
//! **Atomicity.** Between the rounds the intent is ahead of every later one
//! sharing one of its key slots (it heads its queues, or it passed only
//! intents over other slots), and its keys stay marked,
//! so no single-shard command touches them: the check and the run are one
//! instant for every client. A watched key changed before a round-1 part
//! ran has flagged the client's `WatchCell` before that part answered
//! (same thread, then the message): the decision, after every answer, sees
//! it.
//!
//! **The connection** that sent a watched EXEC is deferred until the
//! decision (`Conn::hop_wait`): until then it is still in MULTI, and its
//! pipelined requests wait behind the EXEC. Its output waits too
//! (`EventLoop::flush_sends`): the replies before EXEC's (`+OK` of a WATCH
//! answered at once, MULTI's, the `+QUEUED`s) leave with it, in one send. After the decision its next
//! requests run, their replies queued behind EXEC's slot, which the round-2
//! answers fill (header, then the commands' replies in queue order). One
//! that closes meanwhile keeps its slot, its transaction and its watches
//! (`EventLoop::close`) until the decision, which runs the EXEC as Redis
//! does one it read before it saw the peer close: decided and applied, the
//! reply dropped.
//!
//! **AOF.** Round 2 of a writing EXEC or a going MSETNX carries the cut of
//! one-round hops ("Cuts: a hop" in `exec::propagate`): one unit at one cut.
//! Round 1 writes nothing but an expired key's DEL, which waits in its
//! shard's stream for the next command there.
//!
//! **COPY, LMOVE, RPOPLPUSH** chain the same way, with their own parts
//! (`network::rounds_move`), when this shard owns one of their two keys.
//!
//! **Limits.** Those three over two other shards (or COPY ... DB), the
//! STORE forms and the other multi-key commands, an EXEC whose queue holds
//! a keyless, multi-shard or blocking command, and everything else over
//! several shards keep the held path (`network::held`). Which path the
//! two-round ones take is `network::route`'s choice (`rounds_by_hops`):
//! hops while a shard they name is awake, the held path while all sleep.

use std::sync::OnceLock;

use super::conn::Closing;
use super::dispatch::{recycle, Flow};
use super::event_loop::EventLoop;
use super::hop::{exec_id, Gather};
use crate::commands::multi::WatchedKey;
use crate::commands::{key_positions, CommandTable, Ctx};
use crate::protocol::Reply;
use crate::shard::hold::ShardMask;
use crate::shard::mailbox::Message;
use crate::shard::slot::{key_slot, slot_shard};
use crate::shard::watch::{key_is_expired, Watcher};

fn id_of(cell: &'static OnceLock<usize>, name: &str) -> usize {
    *cell.get_or_init(|| CommandTable::get().lookup(name.as_bytes()).expect("command registered"))
}

pub fn watch_id() -> usize {
    static ID: OnceLock<usize> = OnceLock::new();
    id_of(&ID, "watch")
}

pub fn msetnx_id() -> usize {
    static ID: OnceLock<usize> = OnceLock::new();
    id_of(&ID, "msetnx")
}

fn rename_id() -> usize {
    static ID: OnceLock<usize> = OnceLock::new();
    id_of(&ID, "rename")
}

fn renamenx_id() -> usize {
    static ID: OnceLock<usize> = OnceLock::new();
    id_of(&ID, "renamenx")
}

/// Whether command `id` is RENAME or RENAMENX.
pub fn is_rename(id: usize) -> bool {
    id == rename_id() || id == renamenx_id()
}

fn smove_id() -> usize {
    static ID: OnceLock<usize> = OnceLock::new();
    id_of(&ID, "smove")
}

/// Whether command `id` moves something between two keys by a two-round
/// hop (RENAME, RENAMENX, SMOVE).
pub fn is_move(id: usize) -> bool {
    is_rename(id) || id == smove_id()
}

fn mset_id() -> usize {
    static ID: OnceLock<usize> = OnceLock::new();
    id_of(&ID, "mset")
}

/// A WATCH part's second argument: the client's epoch, the time WATCH
/// ran (ms), whether the part answers.
const WATCH_STAMP_LEN: usize = 17;

/// A WATCH part's stamp: the epoch it registers under, the time WATCH ran
/// (its keys' expiry is judged at that time, as a local WATCH judges it)
/// and whether the part answers (the last byte, set once the intent is
/// queued: `EventLoop::watch_parts_answer`).
fn watch_stamp(cell: &crate::shard::watch::WatchCell, now: i64) -> [u8; WATCH_STAMP_LEN] {
    let mut stamp = [0u8; WATCH_STAMP_LEN];
    stamp[..8].copy_from_slice(&cell.epoch().to_le_bytes());
    stamp[8..16].copy_from_slice(&now.to_le_bytes());
    stamp
}

/// Appends `slot` to a round-1 part's slot list.
pub(super) fn push_slot(list: &mut Vec<u8>, slot: u16) {
    list.extend_from_slice(&slot.to_le_bytes());
}

impl EventLoop {
    /// Lowers the marks round 1 of intent `seq` kept on this shard.
    pub(super) fn unmark_kept(&mut self, seq: u64) {
        if self.hops.kept.is_empty() {
            return;
        }
        let hold = &self.server.hold;
        self.hops.kept.retain(|&(s, slot)| {
            if s == seq {
                hold.unmark(slot);
            }
            s != seq
        });
    }

    /// The per-shard slot lists of a round-1 part, cleared for `mask`.
    fn clear_slot_lists(&mut self, mask: ShardMask) {
        let n = self.server.shard_count;
        if self.hops.slot_lists.len() < n {
            self.hops.slot_lists.resize_with(n, Vec::new);
        }
        for t in mask.iter() {
            self.hops.slot_lists[t].clear();
        }
    }

    /// The WATCH parts being built for `mask` answer (their stamp's last
    /// byte, `watch_stamp`): a hold is queued ahead of their intent.
    fn watch_parts_answer(&mut self, mask: ShardMask) {
        for t in mask.iter() {
            let b = &mut self.hops.building[t];
            let end = b.ends[1] as usize;
            b.data[end - 1] = 1;
        }
    }

    /// WATCH naming keys of other shards, by a one-round hop: each shard
    /// registers its keys when the intent heads its queue. Unless a hold is
    /// ahead of the intent, its parts answer nobody and the client has its
    /// `+OK` now, from this thread, as a local WATCH's ("WATCH: one
    /// message" in the module doc). None: the held path runs it.
    pub(super) fn try_watch_hop(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Option<Flow> {
        if !self.holding.is_empty() {
            return None;
        }
        if !self.watch_by_hops() {
            return None;
        }
        // The shards of the keys not watched yet: a part goes only where it
        // registers something, so the parts in flight, which answer nobody
        // and count against no mailbox bound, are at most one per key the
        // client watches (its `WatchState` holds them all anyway).
        let n = self.server.shard_count;
        let conn = self.conns[index as usize].as_ref().unwrap();
        let db = conn.client.db;
        let mut mask = ShardMask::default();
        for &key in &args[1..] {
            if !conn.client.watch.keys.iter().any(|k| k.db == db && &k.key[..] == key) {
                mask.insert(slot_shard(key_slot(key), n));
            }
        }
        if mask.is_empty() {
            return Some(self.execute_here(index, id, args, now));
        }
        let bytes: usize = args.iter().map(|a| a.len()).sum();
        if let Some(flow) = self.hop_may_start(index, mask, bytes) {
            return Some(flow);
        }
        let me = self.id;
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.watch_fold || (conn.slots.is_empty() && conn.client.watch.keys.is_empty()) {
            // Folded into the EXEC that may follow in this read ("WATCH
            // folded into EXEC" in the module doc): the other shards' keys
            // are listed, registered nowhere; the handler registers this
            // shard's and replies.
            conn.watch_fold = true;
            for &key in &args[1..] {
                let t = slot_shard(key_slot(key), n);
                if t != me && !conn.client.watch.keys.iter().any(|k| k.db == db && &k.key[..] == key) {
                    conn.client.watch.keys.push(WatchedKey { db, key: key.into(), shard: t });
                }
            }
            return Some(self.execute_here(index, id, args, now));
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        let cell = conn.client.watch.cell.get_or_insert_with(Default::default).clone();
        self.hops.start_parts(n, mask, &[args[0], &watch_stamp(&cell, now)]);
        let hold = &self.server.hold;
        for &key in &args[1..] {
            if conn.client.watch.keys.iter().any(|k| k.db == db && &k.key[..] == key) {
                continue;
            }
            let slot = key_slot(key);
            let t = slot_shard(slot, n);
            // Marked before the intent is queued and its parts sent: from
            // here until its part has registered it, nothing changes the
            // key unseen (see the module doc).
            hold.mark(slot);
            self.hops.building[t].push(key);
            conn.client.watch.keys.push(WatchedKey { db, key: key.into(), shard: t });
        }
        conn.client.info_dirty = true;
        let (resp, client) = (conn.client.resp, conn.client.id);
        let seq = self.server.hold.enqueue_hop(mask, client);
        let answered = self.server.hold.holds_ahead(mask, seq);
        if !answered {
            self.hops.unanswered = true;
            self.send_round(mask, seq, db, resp, id, client, false, 0, 0, Some(&cell));
            self.hops.unanswered = false;
            // Its reply, stats, slowlog and MONITOR line as a local WATCH's:
            // the handler finds every key among the client's watched keys.
            return Some(self.execute_here(index, id, args, now));
        }
        self.watch_parts_answer(mask);
        let mut op = self.hop_op_recording(index, args);
        op.key_shards.clear();
        self.track_hop(index, op, seq, mask, id, Gather::Ok, 0, 0);
        self.send_round(mask, seq, db, resp, id, client, false, 0, 0, Some(&cell));
        Some(self.finish_command(index, now))
    }

    /// Ends connection `index`'s WATCH fold (`Conn::watch_fold`): its keys
    /// of other shards, registered nowhere yet, get their parts now, as
    /// `try_watch_hop` sends them, which makes now the instant of those
    /// WATCHes (their `+OK` has not left: see the module doc). Called
    /// before a command other than MULTI, a queued one, WATCH or EXEC, and
    /// when the connection stops reading (its input ran out or waits).
    #[inline(never)]
    pub(super) fn unfold_watch(&mut self, index: u32) {
        let (me, n) = (self.id, self.server.shard_count);
        let Some(conn) = self.conns[index as usize].as_mut() else { return };
        conn.watch_fold = false;
        let mut mask = ShardMask::default();
        for k in &conn.client.watch.keys {
            if k.shard != me {
                mask.insert(k.shard);
            }
        }
        if mask.is_empty() {
            return;
        }
        if conn.closing != Closing::No {
            // Registered nowhere: nothing to undo elsewhere.
            conn.client.watch.keys.retain(|k| k.shard == me);
            return;
        }
        debug_assert!(self.holding.is_empty(), "a WATCH fold ends under a hold (`hold_run_may`)");
        let now = self.clock.now_ms();
        let cell = conn.client.watch.cell.get_or_insert_with(Default::default).clone();
        let (resp, client) = (conn.client.resp, conn.client.id);
        self.hops.start_parts(n, mask, &[b"watch".as_slice(), &watch_stamp(&cell, now)]);
        let hold = &self.server.hold;
        let mut db = conn.client.db;
        for k in conn.client.watch.keys.iter().filter(|k| k.shard != me) {
            // Every folded key is of one db: a SELECT ends the fold first.
            db = k.db;
            hold.mark(key_slot(&k.key));
            self.hops.building[k.shard].push(&k.key);
        }
        let seq = self.server.hold.enqueue_hop(mask, client);
        if !self.server.hold.holds_ahead(mask, seq) {
            self.hops.unanswered = true;
            self.send_round(mask, seq, db, resp, watch_id(), client, false, 0, 0, Some(&cell));
            self.hops.unanswered = false;
            return;
        }
        // A hold is ahead: the parts answer, and the `+OK` already written
        // waits for them (the connection's whole output does, as behind any
        // hop). The hop's own reply is empty (an EXEC gather of no command):
        // WATCH was answered and recorded when it ran.
        self.watch_parts_answer(mask);
        let mut op = self.hop_op_recording(index, &[]);
        op.args.data.clear();
        op.args.ends.clear();
        op.monitor.clear();
        op.key_shards.clear();
        self.track_hop(index, op, seq, mask, watch_id(), Gather::Exec, 0, 0);
        self.conns[index as usize].as_mut().unwrap().hop_hold = super::conn::HopHold::Waiting;
        self.send_round(mask, seq, db, resp, watch_id(), client, false, 0, 0, Some(&cell));
    }

    /// Connection `index`'s EXEC runs now, with its WATCH folded into it
    /// (`Conn::watch_fold`): the folded keys, registered nowhere, leave the
    /// list; EXEC's handler checks and unwatches this shard's.
    pub(super) fn end_fold_at_exec(&mut self, index: u32) {
        let me = self.id;
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.watch_fold {
            conn.watch_fold = false;
            conn.client.watch.keys.retain(|k| k.shard == me);
        }
    }

    /// A WATCH part: registers its keys for the client's cell (unless the
    /// client has unwatched since: a new epoch), their expiry judged at the
    /// time WATCH ran, lowers their marks and takes the intent off this
    /// shard's queue; answers only when the client's reply waits for it
    /// (a hold was ahead: `try_watch_hop`).
    pub(super) fn run_watch_part(&mut self, mut part: super::hop::Part) {
        let me = self.id;
        let start = self.clock.last;
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        let stamp: [u8; WATCH_STAMP_LEN] = slices[1].try_into().unwrap_or([0; WATCH_STAMP_LEN]);
        let epoch = u64::from_le_bytes(stamp[..8].try_into().unwrap_or_default());
        let watched_ms = i64::from_le_bytes(stamp[8..16].try_into().unwrap_or_default());
        let cell = part.cut.as_ref().and_then(|c| c.cell.clone()).filter(|c| c.epoch() == epoch);
        let db = part.db as usize;
        let st = self.set.get_mut(me);
        for &key in &slices[2..] {
            self.server.hold.unmark(key_slot(key));
            if let Some(cell) = &cell {
                let expired = key_is_expired(&st.dbs[db], key, watched_ms);
                st.watched.register(db, key, Watcher { cell: cell.clone(), epoch, expired });
            }
        }
        self.hops.slices = recycle(slices);
        if stamp[16] == 0 {
            self.server.hold.hop_done(me, part.seq);
            super::conn::recycle(&mut self.pool, part.args);
            return;
        }
        part.args.data.clear();
        part.args.ends.clear();
        Reply::new(&mut part.args.data, part.resp).ok();
        let usec = self.clock.usec_since(start);
        self.answer_part(part, usec);
    }

    /// EXEC of a transaction that watches keys, over several shards, by a
    /// two-round hop (see the module doc). None when it does not qualify.
    pub(super) fn try_exec_rounds(&mut self, index: u32, name: &[u8]) -> Option<Flow> {
        let (me, n) = (self.id, self.server.shard_count);
        let (cmd_mask, bytes) = self.exec_queue_mask(index)?;
        let conn = self.conns[index as usize].as_mut().unwrap();
        let mut mask = cmd_mask;
        mask.0 |= conn.client.watch.shards().0;
        mask.insert(me);
        if mask.count() < 2 || !self.watch_by_hops() || !self.may_send_parts(mask, bytes) {
            return None;
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        let writes = conn.client.multi.flags & crate::commands::flags::WRITE != 0;
        if writes && self.events_need_hold() {
            return None;
        }
        let (cut, mask) = self.hop_cut(mask, writes);
        self.clear_slot_lists(mask);
        // Every key's slot is marked now; each shard's round-1 part keeps
        // its own until its round-2 part has run.
        let table = CommandTable::get();
        let hold = &self.server.hold;
        let conn = self.conns[index as usize].as_mut().unwrap();
        let (queue, count) = conn.client.multi.take();
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        for q in &queue[..count] {
            q.args.slices(&mut slices);
            for i in key_positions(&table.specs[q.id].keys, &slices) {
                let slot = key_slot(slices[i]);
                hold.mark(slot);
                push_slot(&mut self.hops.slot_lists[slot_shard(slot, n)], slot);
            }
        }
        self.hops.slices = recycle(slices);
        conn.client.multi.restore(queue);
        for k in &conn.client.watch.keys {
            let slot = key_slot(&k.key);
            hold.mark(slot);
            push_slot(&mut self.hops.slot_lists[k.shard], slot);
        }
        self.hops.start_parts(n, mask, &[conn.client.addr.as_bytes(), &conn.client.name]);
        for t in mask.iter() {
            let (b, l) = (&mut self.hops.building[t], &self.hops.slot_lists[t]);
            b.push(l);
        }
        for k in &conn.client.watch.keys {
            let b = &mut self.hops.building[k.shard];
            b.push(&(k.db as u32).to_le_bytes());
            b.push(&k.key);
        }
        let cell = conn.client.watch.cell.clone();
        let (db, resp, client) = (conn.client.db, conn.client.resp, conn.client.id);
        let track = conn.client.tracking.remembers_reads();
        // EXEC as the client spelled it, for its MONITOR line at the decision.
        let mut op = self.hop_op_recording(index, &[]);
        op.args.data.clear();
        op.args.ends.clear();
        op.args.push(name);
        op.monitor.clear();
        op.key_shards.clear();
        let seq = self.queue_hop(index, op, mask, exec_id(), Gather::Exec, cut, 1);
        // Nothing more of its input runs before the decision (it is still in MULTI).
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.deferred = true;
        conn.hop_wait = true;
        if mask.count() == 2 {
            self.stash_exec_chain(index, seq, mask);
        }
        self.send_round(mask, seq, db, resp, exec_id(), client, track, 0, 1, cell.as_ref());
        self.hops.skip = ShardMask::default();
        Some(Flow::Stop)
    }

    /// A watched EXEC over two shards goes by the chain: round 1 runs here
    /// only, and the other shard's one part (round 3), built now from its
    /// round-1 part and its share of the queued commands, waits in the op
    /// (`HopOp::chain_part`: caller fields, its slots, this shard's answer
    /// to come, the number of its watched keys, those keys, then its
    /// commands as `exec_command_parts` builds them).
    fn stash_exec_chain(&mut self, index: u32, seq: u64, mask: ShardMask) {
        let me = self.id;
        let (Some(t), Some(i)) = (mask.iter().find(|&t| t != me), self.hops.ops.iter().position(|o| o.seq == seq)) else {
            return;
        };
        let mut op = std::mem::take(&mut self.hops.ops[i]);
        let own = std::mem::take(&mut self.hops.building[me]);
        let look = std::mem::take(&mut self.hops.building[t]);
        // Each shard's commands (this shard's are built again at the decision).
        self.exec_command_parts(index, mask, &mut op.key_shards, false);
        let part = &mut op.chain_part;
        part.data.clear();
        part.ends.clear();
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        look.slices(&mut slices);
        let at = super::dispatch::CALLER_FIELDS + 1;
        for a in &slices[..at] {
            part.push(a);
        }
        part.push(&0i64.to_le_bytes());
        part.push(&(((slices.len() - at) / 2) as u32).to_le_bytes());
        for a in &slices[at..] {
            part.push(a);
        }
        self.hops.building[t].slices(&mut slices);
        for a in &slices[super::dispatch::CALLER_FIELDS..] {
            part.push(a);
        }
        self.hops.slices = recycle(slices);
        let commands = std::mem::replace(&mut self.hops.building[t], look);
        super::conn::recycle(&mut self.pool, commands);
        self.hops.building[me] = own;
        (op.chain, op.pending) = (Some(t), 1);
        self.hops.ops[i] = op;
        self.hops.skip = ShardMask::single(t);
    }

    /// A chained watched EXEC's look here is back: the other shard gets its
    /// part (`stash_exec_chain`) with this answer (1 when the client is
    /// gone: nothing runs), which looks at its watched keys, decides as
    /// EXEC's handler will here (`run_exec_round_three`), runs its commands
    /// or not, and answers their replies and what it found.
    fn chain_exec(&mut self, i: usize, mut op: super::hop::HopOp, t: usize) {
        let (me, n) = (self.id, self.server.shard_count);
        let conn = self.conn_of(op.token).filter(|c| c.hop_wait);
        let sum = if conn.is_some() { op.sum } else { 1 };
        let cell = conn.and_then(|c| c.client.watch.cell.clone());
        self.hops.start_parts(n, ShardMask::single(t), &[]);
        let b = &mut self.hops.building[t];
        std::mem::swap(b, &mut op.chain_part);
        let at = super::dispatch::CALLER_FIELDS + 1;
        let (from, to) = (b.ends[at - 1] as usize, b.ends[at] as usize);
        b.data[from..to].copy_from_slice(&sum.to_le_bytes());
        let (seq, mask, db, resp, cut, token) = (op.seq, op.mask, op.db, op.resp, op.cut, op.token);
        (op.round, op.pending) = (3, 1);
        self.hops.ops[i] = op;
        let (client, track) = self.client_of(token);
        self.hops.skip = ShardMask::single(me);
        self.send_round(mask, seq, db, resp, exec_id(), client, track, cut, 3, cell.as_ref());
        self.hops.skip = ShardMask::default();
    }

    /// A chained watched EXEC's part here (see `chain_exec`): it keeps its
    /// slots' marks, checks and drops its watched keys (round 1's look),
    /// decides as EXEC's handler does on the coordinator (its answer and
    /// this shard's found nothing, and the client's cell is clean: every
    /// watched key's registration is gone by now, so nothing can dirty it
    /// before the handler runs there), then runs its commands as round 2's
    /// part (none when it aborts).
    fn run_exec_round_three(&mut self, part: super::hop::Part) {
        let now = self.clock.now_ms();
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        let at = super::dispatch::CALLER_FIELDS;
        for s in slices[at].chunks_exact(2) {
            self.hops.kept.push((part.seq, u16::from_le_bytes([s[0], s[1]])));
        }
        let theirs = i64::from_le_bytes(slices[at + 1].try_into().unwrap_or_default());
        let pairs = 2 * u32::from_le_bytes(slices[at + 2].try_into().unwrap_or_default()) as usize;
        let (keys, commands) = slices[at + 3..].split_at(pairs);
        let cell = part.cut.as_ref().and_then(|c| c.cell.clone());
        let found = self.exec_watch_look(cell.as_ref(), now, keys);
        let go = theirs + found == 0 && !cell.as_ref().is_some_and(|c| c.dirty());
        let mut next = self.pool.pop().unwrap_or_default();
        next.data.clear();
        next.ends.clear();
        for a in &slices[..at] {
            next.push(a);
        }
        if go {
            for a in commands {
                next.push(a);
            }
        }
        self.hops.slices = recycle(slices);
        self.run_chained_round_two(part, next, go, found);
    }

    /// Redis's `isWatchedKeyExpired` over the (db, key) pairs watched here
    /// by `cell`, whose registrations go: 1 when one of them expired since
    /// it was watched.
    fn exec_watch_look(&mut self, cell: Option<&std::sync::Arc<crate::shard::watch::WatchCell>>, now: i64, pairs: &[&[u8]]) -> i64 {
        let Some(cell) = cell else { return 0 };
        let epoch = cell.epoch();
        let st = self.set.get_mut(self.id);
        let mut found = 0;
        for pair in pairs.chunks_exact(2) {
            let db = u32::from_le_bytes(pair[0].try_into().unwrap_or_default()) as usize;
            let key = pair[1];
            let expired_at_watch = st.watched.find(db, key, cell, epoch).is_none_or(|w| w.expired);
            if !expired_at_watch && key_is_expired(&st.dbs[db], key, now) {
                found = 1;
            }
            st.watched.unregister(db, key, cell);
        }
        found
    }

    /// A round-1 part (see the module doc): its check, its kept marks, its
    /// answer; the intent stays at the head of this shard's queue.
    pub(super) fn run_round_one(&mut self, mut part: super::hop::Part) {
        let me = self.id;
        let now = self.clock.now_ms();
        let start = self.clock.last;
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        let exec = part.cmd as usize == exec_id();
        // EXEC: caller fields, slots, then (db, key) per watched key here.
        // MSETNX: slots, then its keys here.
        let at = if exec { super::dispatch::CALLER_FIELDS } else { 0 };
        for s in slices[at].chunks_exact(2) {
            self.hops.kept.push((part.seq, u16::from_le_bytes([s[0], s[1]])));
        }
        let mut found = 0i64;
        let mut taken = None;
        if part.cmd as usize == smove_id() {
            // A role ("s" source, "d" destination), its key and the member.
            if let [_, role, key, member] = slices[..] {
                found = self.smove_look(&part, now, role, key, member);
            }
        } else if is_rename(part.cmd as usize) {
            // A role ("s" source, "d" destination) and its key, if any here.
            if let [_, role, key] = slices[..] {
                (found, taken) = self.rename_look(&part, now, role, key);
            }
        } else if exec {
            let cell = part.cut.as_ref().and_then(|c| c.cell.clone());
            found = self.exec_watch_look(cell.as_ref(), now, &slices[at + 1..]);
        } else {
            found = self.msetnx_look(&part, now, slices[at + 1..].iter().copied()) as i64;
        }
        self.hops.slices = recycle(slices);
        part.args.data.clear();
        part.args.ends.clear();
        Reply::new(&mut part.args.data, part.resp).int(found);
        let usec = self.clock.usec_since(start);
        if part.from as usize != me {
            self.hand_over_before_answer();
        }
        let captured = self.capture_part_messages();
        self.after_command_messaging();
        let mut ops = taken.map(|e| Box::new(super::hop::PartOps { entry: Some(e), ..Default::default() }));
        if captured.is_some() {
            ops.get_or_insert_with(Default::default).captured = captured;
        }
        if part.from as usize == me {
            self.hop_part_done(part.seq, usec, me, part.args, ops);
        } else {
            self.send_to(part.from as usize, Message::HopDone { seq: part.seq, usec, args: part.args, ops });
        }
    }

    /// MSETNX's look at its keys here (Redis's `msetnxCommand`: a key that
    /// exists ends the look): whether one exists.
    fn msetnx_look<'k>(&mut self, part: &super::hop::Part, now: i64, keys: impl Iterator<Item = &'k [u8]>) -> bool {
        let (me, db) = (self.id, part.db as usize);
        let mut ctx = Ctx::new(&mut self.set, &self.server, me, db, part.resp, now, None);
        for key in keys {
            ctx.expire_if_needed(key);
            if ctx.shards.get(me).dbs[db].map.get(key).is_some() {
                return true;
            }
        }
        false
    }

    /// RENAME's look at its key here: the source ("s") taken out whole
    /// (value, TTL, access time: round 2 puts it at the destination, or
    /// back) and 1; the destination ("d") 2 when it exists; else 0.
    fn rename_look(&mut self, part: &super::hop::Part, now: i64, role: &[u8], key: &[u8]) -> (i64, Option<crate::shard::keyspace::Entry>) {
        let mut ctx = Ctx::new(&mut self.set, &self.server, self.id, part.db as usize, part.resp, now, None);
        if !matches!(ctx.lookup_write::<crate::commands::lookup::AnyKind>(key), Ok(Some(_))) {
            return (0, None);
        }
        if role == b"s" {
            (1, ctx.db(key).remove(key))
        } else {
            (2, None)
        }
    }

    /// SMOVE's look at its key here: `smove_probe`'s bits, shifted past the
    /// source's for the destination ("d").
    fn smove_look(&mut self, part: &super::hop::Part, now: i64, role: &[u8], key: &[u8], member: &[u8]) -> i64 {
        let mut ctx = Ctx::new(&mut self.set, &self.server, self.id, part.db as usize, part.resp, now, None);
        let bits = crate::commands::set::smove_probe(&mut ctx, key, member);
        if role == b"s" {
            bits
        } else {
            bits << 3
        }
    }

    /// Sends round 1 of the write hop `seq` just queued over `mask`: to
    /// every shard, or, over two shards, to this one only (the chain).
    #[allow(clippy::too_many_arguments)]
    fn send_first_round(&mut self, mask: ShardMask, seq: u64, db: usize, resp: u8, id: usize, client: u64, track: bool) {
        let me = self.id;
        if mask.count() == 2 {
            if let (Some(t), Some(op)) = (mask.iter().find(|&t| t != me), self.hops.ops.iter_mut().find(|o| o.seq == seq)) {
                (op.chain, op.pending) = (Some(t), 1);
                self.hops.skip = ShardMask::single(t);
            }
        }
        self.send_round(mask, seq, db, resp, id, client, track, 0, 1, None);
        self.hops.skip = ShardMask::default();
    }

    /// Every round-1 answer of the op at `i` is back: the decision, and round 2.
    pub(super) fn next_round(&mut self, i: usize) {
        let cmd = self.hops.ops[i].cmd;
        if super::rounds_move::moves(cmd) {
            return self.move_next_round(i);
        }
        if self.hops.ops[i].round == 1 && self.hops.ops[i].chain.is_some() {
            return self.chain_round(i);
        }
        if cmd == exec_id() {
            self.exec_round_two(i);
        } else if is_move(cmd) {
            self.rename_round_two(i);
        } else {
            self.msetnx_round_two(i);
        }
    }

    fn exec_round_two(&mut self, i: usize) {
        let (me, n) = (self.id, self.server.shard_count);
        let now = self.clock.now_ms();
        let mut op = std::mem::take(&mut self.hops.ops[i]);
        let (token, seq, mask, db, resp) = (op.token, op.seq, op.mask, op.db, op.resp);
        let index = token.index;
        // A connection closed since keeps its slot for this (`close`).
        let alive = self.conn_of(token).is_some_and(|c| c.hop_wait);
        if alive {
            // Its output waited for this (`flush_sends`).
            self.mark_dirty(index);
        }
        let (mut go, mut client, mut track) = (false, 0, false);
        let mut name = *b"exec";
        if op.args.data.len() == name.len() {
            name.copy_from_slice(&op.args.data);
        }
        op.args.data.clear();
        op.args.ends.clear();
        op.monitor.clear();
        op.key_shards.clear();
        if alive {
            let conn = self.conns[index as usize].as_mut().unwrap();
            conn.hop_wait = false;
            if let Some(cell) = conn.client.watch.cell.as_ref().filter(|_| op.sum != 0) {
                // A watched key of another shard expired since WATCH.
                cell.flag();
            }
            // Round 1 dropped the registrations on the other shards; this
            // shard's keys are checked by EXEC's handler, now.
            conn.client.watch.keys.retain(|k| k.shard == me);
            (client, track) = (conn.client.id, conn.client.tracking.remembers_reads());
            {
                let mut r = Reply::new(&mut op.args.data, resp);
                let mut ctx = Ctx::new(&mut self.set, &self.server, me, conn.client.db, resp, now, Some(&mut conn.client));
                crate::exec::call(&mut ctx, &mut self.clock, op.cmd, &[&name[..]], &mut r, &crate::exec::Caller::LOCAL, &mut op.monitor);
            }
            go = conn.client.multi.go;
            if go {
                self.exec_command_parts(index, mask, &mut op.key_shards, false);
            } else {
                let conn = self.conns[index as usize].as_ref().unwrap();
                self.hops.start_parts(n, mask, &[conn.client.addr.as_bytes(), &conn.client.name]);
            }
            self.conns[index as usize].as_mut().unwrap().client.multi.reset();
        } else {
            self.hops.start_parts(n, mask, &[b"".as_slice(), b""]);
        }
        let cut = if go { op.cut } else { 0 };
        // A chain's other shard ran its commands (or aborted as this did).
        let skip = op.chain.filter(|_| op.round == 3).map_or(ShardMask::default(), ShardMask::single);
        debug_assert!(go || skip.is_empty() || op.replies_empty(), "a chained EXEC aborted here after its other part ran");
        (op.round, op.pending, op.cut) = (2, mask.count() - skip.count(), cut);
        self.hops.ops[i] = op;
        self.hops.skip = skip;
        self.send_round(mask, seq, db, resp, exec_id(), client, track, cut, 2, None);
        self.hops.skip = ShardMask::default();
        let closed = self.conn_of(token).is_some_and(|c| c.closing == Closing::Closed);
        if alive && closed {
            // Run as Redis runs an EXEC it read before the peer closed (its
            // reply is dropped); what `close` left, done now.
            let conn = self.conns[index as usize].as_mut().unwrap();
            conn.client.watch.unwatch_all(&mut self.set);
            self.maybe_release(index);
        } else if alive && self.conn_of(token).is_some() && self.finish_command(index, now) == Flow::Continue {
            // Its next requests run now (their replies queue behind EXEC's).
            self.run_deferred(index);
        }
    }

    /// Begins a writing two-round hop of connection `index` over `mask`
    /// naming `keys`: Err(Some(flow)) when the connection must wait first,
    /// Err(None) when it does not go by hops (the held path); otherwise its
    /// cut and its intent's shards (this one joins), the keys marked and
    /// each shard's round-1 part begun with the slots it keeps.
    pub(super) fn begin_write_rounds<'k>(
        &mut self,
        index: u32,
        args: &[&[u8]],
        mask: ShardMask,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
    ) -> Result<(u64, ShardMask), Option<Flow>> {
        if !self.holding.is_empty() || !self.rounds_by_hops(mask, true) {
            return Err(None);
        }
        let bytes: usize = args.iter().map(|a| a.len()).sum();
        if let Some(flow) = self.hop_may_start(index, mask, bytes) {
            return Err(Some(flow));
        }
        let (me, n) = (self.id, self.server.shard_count);
        let (cut, mut mask) = self.hop_cut(mask, true);
        mask.insert(me);
        self.clear_slot_lists(mask);
        let hold = &self.server.hold;
        for key in keys {
            let slot = key_slot(key);
            hold.mark(slot);
            push_slot(&mut self.hops.slot_lists[slot_shard(slot, n)], slot);
        }
        self.hops.start_parts(n, mask, &[]);
        for t in mask.iter() {
            let (b, l) = (&mut self.hops.building[t], &self.hops.slot_lists[t]);
            b.push(l);
        }
        Ok((cut, mask))
    }

    /// MSETNX over several shards by a two-round hop (see the module doc).
    /// None: the held path runs it.
    pub(super) fn try_msetnx_hop(&mut self, index: u32, id: usize, args: &[&[u8]], mask: ShardMask) -> Option<Flow> {
        if args.len().is_multiple_of(2) {
            return None;
        }
        let (cut, mask) = match self.begin_write_rounds(index, args, mask, args[1..].iter().step_by(2).copied()) {
            Ok(go) => go,
            Err(flow) => return flow,
        };
        let n = self.server.shard_count;
        for kv in args[1..].chunks(2) {
            self.hops.building[slot_shard(key_slot(kv[0]), n)].push(kv[0]);
        }
        let track = self.conns[index as usize].as_ref().unwrap().client.tracking.remembers_reads();
        self.queue_first_round(index, id, args, mask, Gather::Sum, cut, track);
        Some(Flow::Continue)
    }

    /// Queues the write-rounds hop of connection `index` (command `id`, its
    /// first round's parts in `hops.building`) and sends round 1. A recycled
    /// op's `ops` are empty already (cleared when it completed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_first_round(&mut self, index: u32, id: usize, args: &[&[u8]], mask: ShardMask, gather: Gather, cut: u64, track: bool) {
        let conn = self.conns[index as usize].as_ref().unwrap();
        let (db, resp, client) = (conn.client.db, conn.client.resp, conn.client.id);
        let mut op = self.hop_op_recording(index, args);
        op.key_shards.clear();
        let seq = self.queue_hop(index, op, mask, id, gather, cut, 1);
        self.send_first_round(mask, seq, db, resp, id, client, track);
    }

    /// MSETNX's decision: every key absent, each shard sets its keys (the
    /// reply 1); otherwise nothing (0).
    fn msetnx_round_two(&mut self, i: usize) {
        let n = self.server.shard_count;
        let mut op = std::mem::take(&mut self.hops.ops[i]);
        let go = op.sum == 0;
        op.sum = go as i64;
        self.hops.start_parts(n, op.mask, &[b"mset".as_slice()]);
        if go {
            let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
            op.args.slices(&mut slices);
            // Past the caller fields and the command's name.
            for kv in slices[super::dispatch::CALLER_FIELDS + 1..].chunks(2) {
                let b = &mut self.hops.building[slot_shard(key_slot(kv[0]), n)];
                b.push(kv[0]);
                b.push(kv[1]);
            }
            self.hops.slices = recycle(slices);
        }
        self.send_last_round(i, op, go, mset_id());
    }

    /// RENAME or RENAMENX whose two keys live on two shards, by a two-round
    /// hop: round 1 takes the source entry out on its shard (its key is
    /// marked: nobody sees it missing) and looks at the destination on its
    /// own; round 2 writes the destination and makes the source's removal
    /// known, or puts the entry back (RENAMENX over an existing key), or
    /// does nothing (no source: `-ERR no such key`). None: the held path.
    pub(super) fn try_rename_hop(&mut self, index: u32, id: usize, args: &[&[u8]], mask: ShardMask) -> Option<Flow> {
        if args.len() != if is_rename(id) { 3 } else { 4 } || mask.count() != 2 {
            return None;
        }
        let (cut, mask) = match self.begin_write_rounds(index, args, mask, args[1..3].iter().copied()) {
            Ok(go) => go,
            Err(flow) => return flow,
        };
        let n = self.server.shard_count;
        for (role, key) in [(b"s", args[1]), (b"d", args[2])] {
            let b = &mut self.hops.building[slot_shard(key_slot(key), n)];
            b.push(role);
            b.push(key);
            // SMOVE's member.
            for m in &args[3..] {
                b.push(m);
            }
        }
        self.queue_first_round(index, id, args, mask, Gather::Decided, cut, false);
        Some(Flow::Continue)
    }

    /// RENAME's decision (see `try_rename_hop`): its reply, and round 2.
    fn rename_round_two(&mut self, i: usize) {
        let n = self.server.shard_count;
        let mut op = std::mem::take(&mut self.hops.ops[i]);
        if op.cmd == smove_id() {
            self.hops.ops[i] = op;
            return self.smove_round_two(i);
        }
        // The source entry (this shard's, or one a round-3 part took out or
        // gives back); what a round-3 part wrote stays for the unit.
        let entry = op.ops.iter_mut().find_map(|(_, p)| p.entry.take());
        op.ops.retain(|(_, p)| p.dirty || !p.ops.is_empty());
        let (src_exists, dst_exists, nx) = (op.sum & 1 != 0, op.sum & 2 != 0, op.cmd == renamenx_id());
        let (mask, resp) = (op.mask, op.resp);
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        op.args.slices(&mut slices);
        let (src, dst) = (slices[super::dispatch::CALLER_FIELDS + 1], slices[super::dispatch::CALLER_FIELDS + 2]);
        let (src_shard, dst_shard) = (slot_shard(key_slot(src), n), slot_shard(key_slot(dst), n));
        self.hops.start_parts(n, mask, &[]);
        op.verdict.clear();
        let go = {
            let mut r = Reply::new(&mut op.verdict, resp);
            // (Over a chain the other shard has done its part of this, and
            // holds no entry or has given it back.)
            let go = if !src_exists {
                r.error(crate::commands::err::NO_SUCH_KEY);
                false
            } else if nx && dst_exists {
                r.int(0);
                if let Some(e) = entry {
                    let b = &mut self.hops.building[src_shard];
                    b.push(b"p");
                    b.push(src);
                    self.hops.entry_for = Some((src_shard, e));
                }
                false
            } else {
                if nx {
                    r.int(1);
                } else {
                    r.ok();
                }
                self.hops.building[src_shard].push(b"f");
                self.hops.building[src_shard].push(src);
                let b = &mut self.hops.building[dst_shard];
                b.push(b"w");
                b.push(src);
                b.push(dst);
                self.hops.entry_for = entry.map(|e| (dst_shard, e));
                true
            };
            op.failed = r.error_prefix;
            go
        };
        debug_assert!(src_exists || !go);
        self.hops.slices = recycle(slices);
        self.send_last_round(i, op, go, rename_id());
        self.hops.entry_for = None;
    }

    /// A RENAME's round-2 part: puts the source entry back ("p"), makes
    /// the source's removal known ("f"), or writes the destination and
    /// notifies as Redis's RENAME does ("w": `new`, `rename_from`,
    /// `rename_to`, from this one thread, in that order); then lowers the
    /// marks round 1 kept.
    pub(super) fn run_rename_part(&mut self, mut part: super::hop::Part) {
        let me = self.id;
        let now = self.clock.now_ms();
        let start = self.clock.last;
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        let entry = part.cut.as_mut().and_then(|c| c.entry.take());
        let db = part.db as usize;
        let cut = part.cut().is_some() && self.state().stream.is_on();
        let mut ctx = Ctx::new(&mut self.set, &self.server, me, db, part.resp, now, None);
        let dirty_before = ctx.shards.get(me).dirty;
        crate::messaging::tracking::set_current_client(part.client);
        match (slices.first().copied(), entry) {
            (Some(b"p"), Some(e)) => ctx.db(slices[1]).insert_entry(slices[1].into(), e),
            (Some(b"f"), _) => ctx.also_modified(db, slices[1]),
            (Some(b"r"), _) => crate::commands::set::smove_from(&mut ctx, slices[1], slices[2]),
            (Some(b"a"), _) => crate::commands::set::smove_to(&mut ctx, slices[1], slices[2]),
            (Some(b"w"), Some(e)) => {
                let (src, dst) = (slices[1], slices[2]);
                ctx.db(dst).delete(dst);
                ctx.db(dst).insert_entry(dst.into(), e);
                ctx.modified(db, dst);
                ctx.notify_new(dst);
                let st = ctx.shards.get_mut(me);
                st.notify(db, crate::messaging::notify::GENERIC, "rename_from", src);
                st.notify(db, crate::messaging::notify::GENERIC, "rename_to", dst);
            }
            _ => {}
        }
        crate::messaging::tracking::set_current_client(0);
        let ops = cut.then(|| {
            let dirty = ctx.shards.get(me).dirty != dirty_before;
            Box::new(super::hop::PartOps { ops: crate::exec::propagate::take_pending_ops(&mut ctx.shards.get_mut(me).stream), dirty, ..Default::default() })
        });
        self.hops.slices = recycle(slices);
        self.unmark_kept(part.seq);
        part.args.data.clear();
        part.args.ends.clear();
        let usec = self.clock.usec_since(start);
        if let Some(ops) = ops {
            self.part_cut(&part, ops);
        }
        self.answer_part(part, usec);
    }

    /// SMOVE's decision (Redis's order: no source 0, a key of another type
    /// WRONGTYPE, no such member 0, else 1): round 2 takes the member out of
    /// the source ("r") and adds it to the destination ("a"), or nothing.
    fn smove_round_two(&mut self, i: usize) {
        let n = self.server.shard_count;
        let mut op = std::mem::take(&mut self.hops.ops[i]);
        let (src_bits, dst_bits) = (op.sum & 7, op.sum >> 3);
        let (mask, resp) = (op.mask, op.resp);
        self.hops.start_parts(n, mask, &[]);
        op.verdict.clear();
        let mut r = Reply::new(&mut op.verdict, resp);
        let go = if src_bits == 0 {
            r.int(0);
            false
        } else if src_bits & 2 != 0 || dst_bits & 2 != 0 {
            r.error(crate::commands::err::WRONGTYPE);
            false
        } else if src_bits & 4 == 0 {
            r.int(0);
            false
        } else {
            r.int(1);
            true
        };
        op.failed = r.error_prefix;
        if go {
            let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
            op.args.slices(&mut slices);
            let at = super::dispatch::CALLER_FIELDS + 1;
            let (src, dst, member) = (slices[at], slices[at + 1], slices[at + 2]);
            for (role, key) in [(b"r", src), (b"a", dst)] {
                let b = &mut self.hops.building[slot_shard(key_slot(key), n)];
                b.push(role);
                b.push(key);
                b.push(member);
            }
            self.hops.slices = recycle(slices);
        }
        self.send_last_round(i, op, go, smove_id());
    }

    /// Puts `op` back at `i` and sends the round-2 parts built in
    /// `hops.building` as command `cmd`, with the hop's cut when it `go`es;
    /// none to a chain's other shard, whose round 3 ran both rounds.
    pub(super) fn send_last_round(&mut self, i: usize, mut op: super::hop::HopOp, go: bool, cmd: usize) {
        let (seq, mask, db, resp, token) = (op.seq, op.mask, op.db, op.resp, op.token);
        let cut = if go { op.cut } else { 0 };
        let skip = op.chain.filter(|_| op.round == 3).map_or(ShardMask::default(), ShardMask::single);
        (op.round, op.pending, op.cut) = (2, mask.count() - skip.count(), cut);
        self.hops.ops[i] = op;
        let (client, track) = self.client_of(token);
        self.hops.skip = skip;
        self.send_round(mask, seq, db, resp, cmd, client, track, cut, 2, None);
        self.hops.skip = ShardMask::default();
    }

    /// The client id of connection `token` and whether its tracking
    /// remembers the keys it reads (0 and no when it is gone).
    pub(super) fn client_of(&self, token: crate::shard::mailbox::ConnToken) -> (u64, bool) {
        self.conn_of(token).map_or((0, false), |c| (c.client.id, c.client.tracking.remembers_reads()))
    }

    /// The chain's second step: this shard's round-1 answer is back (in
    /// `sum`, and a RENAME source's entry in `ops`); the other shard gets
    /// one part (`Part::round` 3) with its keys, this answer and the entry,
    /// which checks, decides as `next_round` would, runs its round 2 and
    /// answers what it found.
    fn chain_round(&mut self, i: usize) {
        let (me, n) = (self.id, self.server.shard_count);
        let mut op = std::mem::take(&mut self.hops.ops[i]);
        let Some(t) = op.chain else { return };
        if op.cmd == exec_id() {
            return self.chain_exec(i, op, t);
        }
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        op.args.slices(&mut slices);
        let args = &slices[super::dispatch::CALLER_FIELDS..];
        let keys = if op.cmd == msetnx_id() { args.len() } else { 3 };
        let step = if op.cmd == msetnx_id() { 2 } else { 1 };
        let list = &mut self.hops.slot_lists[t];
        list.clear();
        for &key in args[1..keys].iter().step_by(step) {
            let slot = key_slot(key);
            if slot_shard(slot, n) == t {
                push_slot(list, slot);
            }
        }
        self.hops.start_parts(n, ShardMask::single(t), &[]);
        let b = &mut self.hops.building[t];
        b.push(&self.hops.slot_lists[t]);
        b.push(&op.sum.to_le_bytes());
        if op.cmd == msetnx_id() {
            for kv in args[1..].chunks(2).filter(|kv| slot_shard(key_slot(kv[0]), n) == t) {
                b.push(kv[0]);
                b.push(kv[1]);
            }
        } else {
            // Its role, its key, the other key (RENAME's notifications name
            // both) and SMOVE's member.
            let src_here = slot_shard(key_slot(args[1]), n) == me;
            let (role, key, other) = if src_here { (b"d", args[2], args[1]) } else { (b"s", args[1], args[2]) };
            b.push(role);
            b.push(key);
            b.push(other);
            for m in &args[3..] {
                b.push(m);
            }
            if src_here {
                // The source entry this shard took out goes along.
                self.hops.entry_for = op.ops.iter_mut().find_map(|(_, p)| p.entry.take()).map(|e| (t, e));
                op.ops.retain(|(_, p)| p.dirty || !p.ops.is_empty());
            }
        }
        self.hops.slices = recycle(slices);
        self.send_chain_round(i, op);
    }

    /// Puts `op` back at `i` and sends its chain's other shard the part
    /// built for it (round 3) and the entry in `hops.entry_for`, if any.
    pub(super) fn send_chain_round(&mut self, i: usize, mut op: super::hop::HopOp) {
        let (seq, mask, db, resp, cmd, cut) = (op.seq, op.mask, op.db, op.resp, op.cmd, op.cut);
        (op.round, op.pending) = (3, 1);
        let token = op.token;
        self.hops.ops[i] = op;
        let (client, track) = self.client_of(token);
        self.hops.skip = ShardMask::single(self.id);
        self.send_round(mask, seq, db, resp, cmd, client, track, cut, 3, None);
        self.hops.skip = ShardMask::default();
        self.hops.entry_for = None;
    }

    /// A round-3 part (the chain): its round-1 look, the decision from it
    /// and the coordinator's answer (`next_round`'s, in the same terms), its
    /// round 2 run as that round's part would, then its answer (its reply,
    /// then what it found; a RENAME source's entry, or one it gives back).
    pub(super) fn run_round_three(&mut self, mut part: super::hop::Part) {
        if part.cmd as usize == exec_id() {
            return self.run_exec_round_three(part);
        }
        let now = self.clock.now_ms();
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        for s in slices[0].chunks_exact(2) {
            self.hops.kept.push((part.seq, u16::from_le_bytes([s[0], s[1]])));
        }
        let theirs = i64::from_le_bytes(slices[1].try_into().unwrap_or_default());
        let cmd = part.cmd as usize;
        let mut next = self.pool.pop().unwrap_or_default();
        next.data.clear();
        next.ends.clear();
        let (found, go);
        if cmd == msetnx_id() {
            found = self.msetnx_look(&part, now, slices[2..].iter().step_by(2).copied()) as i64;
            go = theirs + found == 0;
            next.push(b"mset");
            if go {
                for a in &slices[2..] {
                    next.push(a);
                }
            }
            part.cmd = mset_id() as u16;
        } else if cmd == smove_id() {
            let [_, _, role, key, _, member] = slices[..] else { unreachable!("an SMOVE part") };
            found = self.smove_look(&part, now, role, key, member);
            let sum = theirs + found;
            let (src, dst) = (sum & 7, sum >> 3);
            // `smove_round_two`'s decision.
            go = src & 4 != 0 && src & 2 == 0 && dst & 2 == 0;
            if go {
                next.push(if role == b"s" { b"r" } else { b"a" });
                next.push(key);
                next.push(member);
            }
        } else {
            let [_, _, role, key, other] = slices[..] else { unreachable!("a RENAME part") };
            // Redis looks at the destination only once the source is found
            // (a lookup may expire it).
            let (f, taken) = if role == b"d" && theirs & 1 == 0 { (0, None) } else { self.rename_look(&part, now, role, key) };
            found = f;
            let sum = theirs + found;
            // `rename_round_two`'s decision.
            go = sum & 1 != 0 && !(cmd == renamenx_id() && sum & 2 != 0);
            let brought = part.cut.as_mut().and_then(|c| c.entry.take());
            match (role, go) {
                (b"s", true) => {
                    next.push(b"f");
                    next.push(key);
                    self.hops.chain_entry = taken;
                }
                (b"s", false) => {
                    if let Some(e) = taken {
                        let mut ctx = Ctx::new(&mut self.set, &self.server, self.id, part.db as usize, part.resp, now, None);
                        ctx.db(key).insert_entry(key.into(), e);
                    }
                }
                (_, true) => {
                    next.push(b"w");
                    next.push(other);
                    next.push(key);
                    if let Some(c) = part.cut.as_mut() {
                        c.entry = brought;
                    }
                }
                (_, false) => self.hops.chain_entry = brought,
            }
        }
        self.hops.slices = recycle(slices);
        self.run_chained_round_two(part, next, go, found);
    }

    /// A round-3 part's second half: its round-2 arguments (`next`) run as
    /// round 2's part would, its round-1 answer `found` after its reply.
    fn run_chained_round_two(&mut self, mut part: super::hop::Part, mut next: crate::shard::mailbox::PackedArgs, go: bool, found: i64) {
        if !go {
            // No write: no cut either (as round 2's abort).
            if let Some(c) = part.cut.as_mut() {
                c.id = 0;
            }
        }
        std::mem::swap(&mut part.args, &mut next);
        super::conn::recycle(&mut self.pool, next);
        part.round = 2;
        self.hops.chain_found = Some(found);
        // Its look's events go with its answer, before its round 2's.
        self.hops.chain_captured = self.capture_part_messages();
        self.after_command_messaging();
        self.run_part(part);
    }
}
