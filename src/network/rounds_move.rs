//! COPY, LMOVE and RPOPLPUSH over two shards by a two-round hop chained
//! over the two shards (the machinery of `network::rounds`, "The chain"):
//! the source shard's answer carries the moved value (COPY: a copy of the
//! entry; LMOVE: the element) to the destination's.
//!
//! **Shape.** Only when the connection's shard owns one of the two keys (the
//! intent is then over two shards, and the coordinator does one of the
//! two looks itself); otherwise, and for COPY ... DB, an unparsable LMOVE
//! side or any other shape, the held path (`network::held`) runs it, with
//! its errors. Keys are marked and the intent queued as for RENAME.
//! - Round 1 runs here only. On the source's shard (role "s") it is the
//!   source's look as Redis does it (COPY: lookupKeyRead, its lazy expiry
//!   and hit/miss; LMOVE: lookupKeyWrite and the type check), and takes a
//!   copy of the entry, or of the element LMOVE would pop and whether that
//!   pop empties the list (the key stays marked: that element is still the
//!   one at the end in round 2). On the
//!   destination's shard ("d") it only *peeks* at the destination
//!   (exists, a list or not), with no lazy expiry: Redis looks at the
//!   destination only once the source is found, and that look's expiry
//!   must happen only then.
//! - Round 3, the other shard: its look (the destination's real one only
//!   when the source was found, as Redis), the decision from both answers
//!   (`decide`, the same function the coordinator uses), and its write at
//!   once: the destination stores the copy or pushes the element; the
//!   source pops the element (deleting an emptied list) and answers it
//!   (`Hops::chain_entry`) with whether it emptied the list.
//! - Round 2, the coordinator: the same decision, the reply, and its side:
//!   the source's pop, or the destination's real look and write.
//!
//! **Seam duties.** Each key is made known (`modified`: WATCH, tracking,
//! the dirty count once per command) on its own shard by the part that
//! changes it. Keyspace notifications come from one thread in Redis's
//! order, the destination's part's, right after its write (round 3 there,
//! or round 2 here): COPY's `new`, `copy_to`; LMOVE's `new`, the
//! destination's `lpush`/`rpush`, the source's `lpop`/`rpop` and its `del`
//! when emptied (the source's answer says whether it is). A client blocked
//! on the destination is served by that shard right after its part
//! (`run_parts`, or here after round 2, after the command's reply): its
//! pop's events and replay operations follow the move's, as in Redis
//! (`handleClientsBlockedOnKeys` after the command). With the write streams on, the command is one
//! replay unit at the hop's cut, carried by the coordinator (the command as
//! the client sent it, with the parts' expired-key DELs before it), as
//! RENAME's; a decision that writes nothing has no cut.
//!
//! **Atomicity, deadlock.** As every two-round hop (`network::rounds`): the
//! intent heads both queues from round 1 to round 2 and both keys stay
//! marked until their shard's last part, so no other client sees the
//! source popped and the destination not yet pushed (or the reverse), and
//! nothing parks for a hop.

use std::sync::OnceLock;

use super::dispatch::{recycle, Flow, CALLER_FIELDS};
use super::event_loop::EventLoop;
use super::hop::{Gather, Part, PartOps};
use super::rounds::push_slot;
use crate::commands::lookup::ListKind;
use crate::commands::{err, CommandTable, Ctx};
use crate::protocol::Reply;
use crate::shard::hold::ShardMask;
use crate::shard::slot::{key_slot, slot_shard};
use crate::shard::{Entry, Value};

/// COPY's, LMOVE's and RPOPLPUSH's ids.
fn ids() -> &'static [usize; 3] {
    static IDS: OnceLock<[usize; 3]> = OnceLock::new();
    IDS.get_or_init(|| ["copy", "lmove", "rpoplpush"].map(|name| CommandTable::get().lookup(name.as_bytes()).expect("command registered")))
}

fn copy_id() -> usize {
    ids()[0]
}

fn rpoplpush_id() -> usize {
    ids()[2]
}

/// Whether command `id` is one this module moves by hops (COPY, LMOVE,
/// RPOPLPUSH).
pub fn moves(id: usize) -> bool {
    ids().contains(&id)
}

// What a look found (the answers' bits; their sum is the decision's input).
/// The source exists (COPY), or is a list (LMOVE).
const SRC: i64 = 1;
/// The source is not a list (LMOVE).
const SRC_WRONG: i64 = 2;
/// The destination exists (a list, for LMOVE).
const DST: i64 = 4;
/// The destination is not a list (LMOVE).
const DST_WRONG: i64 = 8;
/// The source's pop emptied (and deleted) it (LMOVE, round 3 at the source).
const EMPTIED: i64 = 16;

// The command's options, one byte in each part.
const FROM_HEAD: u8 = 1;
const TO_HEAD: u8 = 2;
const REPLACE: u8 = 4;

/// The options of a hop-able COPY, LMOVE or RPOPLPUSH; None for any other
/// shape (COPY ... DB, a bad side, a syntax error: the held path answers).
fn move_options(id: usize, args: &[&[u8]]) -> Option<u8> {
    if id == copy_id() {
        match args.len() {
            3 => Some(0),
            4 if args[3].eq_ignore_ascii_case(b"replace") => Some(REPLACE),
            _ => None,
        }
    } else if id == rpoplpush_id() {
        (args.len() == 3).then_some(TO_HEAD)
    } else {
        if args.len() != 5 {
            return None;
        }
        let (from, to) = (crate::commands::list::parse_side(args[3])?, crate::commands::list::parse_side(args[4])?);
        Some(if from { FROM_HEAD } else { 0 } | if to { TO_HEAD } else { 0 })
    }
}

#[derive(PartialEq, Eq)]
enum Verdict {
    /// COPY 0, LMOVE a null.
    Nothing,
    WrongType,
    Go,
}

/// The decision from both looks' bits (`sum`), in Redis's order of checks
/// (`copyCommand`, `lmoveGenericCommand`).
fn decide(copy: bool, options: u8, sum: i64) -> Verdict {
    if sum & SRC_WRONG != 0 {
        Verdict::WrongType
    } else if sum & SRC == 0 {
        Verdict::Nothing
    } else if copy {
        if sum & DST != 0 && options & REPLACE == 0 {
            Verdict::Nothing
        } else {
            Verdict::Go
        }
    } else if sum & DST_WRONG != 0 {
        Verdict::WrongType
    } else {
        Verdict::Go
    }
}

/// A list element on its way between the shards, as an entry.
fn element(v: Vec<u8>) -> Entry {
    Entry { value: Value::Str { bytes: v, raw: false }, expire_at_ms: -1, access_ms: 0 }
}

/// LMOVE's look at a key by lookupKeyWrite and the type check, as bits
/// `found` / `wrong`.
fn list_look(ctx: &mut Ctx, key: &[u8], found: i64, wrong: i64) -> i64 {
    match ctx.lookup_write::<ListKind>(key) {
        Err(_) => wrong,
        Ok(Some(_)) => found,
        Ok(None) => 0,
    }
}

impl EventLoop {
    /// Whether command `id` over the keys' shards `mask` may go by this
    /// module's hop (the shapes of its arguments aside).
    pub(super) fn move_may_hop(&self, id: usize, mask: ShardMask) -> bool {
        mask.count() == 2 && mask.contains(self.id) && moves(id)
    }

    /// COPY, LMOVE or RPOPLPUSH over this shard and one other by a chained
    /// two-round hop (see the module doc). None: the held path runs it.
    pub(super) fn try_move_hop(&mut self, index: u32, id: usize, args: &[&[u8]], mask: ShardMask) -> Option<Flow> {
        if !self.move_may_hop(id, mask) {
            return None;
        }
        let options = move_options(id, args)?;
        let (cut, mask) = match self.begin_write_rounds(index, args, mask, args[1..3].iter().copied()) {
            Ok(go) => go,
            Err(flow) => return flow,
        };
        let (me, n) = (self.id, self.server.shard_count);
        let src_here = slot_shard(key_slot(args[1]), n) == me;
        let (role, key, other) = if src_here { (b"s", args[1], args[2]) } else { (b"d", args[2], args[1]) };
        let b = &mut self.hops.building[me];
        b.push(&0i64.to_le_bytes());
        b.push(role);
        b.push(key);
        b.push(other);
        b.push(&[options]);
        self.queue_first_round(index, id, args, mask, Gather::Decided, cut, false);
        Some(Flow::Continue)
    }

    /// Every answer of a round is back (`next_round`): after round 1 the
    /// other shard's part (round 3, with the source's copy when it was
    /// taken here); after round 3 the decision, the reply and this shard's
    /// round 2.
    pub(super) fn move_next_round(&mut self, i: usize) {
        let (me, n) = (self.id, self.server.shard_count);
        let mut op = std::mem::take(&mut self.hops.ops[i]);
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        op.args.slices(&mut slices);
        let args = &slices[CALLER_FIELDS..];
        let (copy, options) = (op.cmd == copy_id(), move_options(op.cmd, args).unwrap_or(0));
        let (src, dst) = (args[1], args[2]);
        let src_here = slot_shard(key_slot(src), n) == me;
        // The entry a part brought (round 1 here, or round 3 there); what a
        // round-3 part left for the unit stays.
        let entry = op.ops.iter_mut().find_map(|(_, p)| p.entry.take());
        op.ops.retain(|(_, p)| p.dirty || !p.ops.is_empty());
        let resp = op.resp;
        let mut scratch = itoa::Buffer::new();
        if op.round == 1 {
            let Some(t) = op.chain else {
                self.hops.slices = recycle(slices);
                self.hops.ops[i] = op;
                return;
            };
            if self.hops.slot_lists.len() < n {
                self.hops.slot_lists.resize_with(n, Vec::new);
            }
            let list = &mut self.hops.slot_lists[t];
            list.clear();
            for key in [src, dst] {
                let slot = key_slot(key);
                if slot_shard(slot, n) == t {
                    push_slot(list, slot);
                }
            }
            self.hops.start_parts(n, ShardMask::single(t), &[]);
            let (role, key, other) = if src_here { (b"d", dst, src) } else { (b"s", src, dst) };
            let b = &mut self.hops.building[t];
            b.push(&self.hops.slot_lists[t]);
            b.push(&op.sum.to_le_bytes());
            b.push(role);
            b.push(key);
            b.push(other);
            b.push(&[options]);
            if let Some(e) = entry {
                if !copy {
                    // LMOVE's reply, should it go.
                    op.verdict.clear();
                    Reply::new(&mut op.verdict, resp).bulk(e.value.as_bytes(&mut scratch));
                }
                self.hops.entry_for = Some((t, e));
            }
            self.hops.slices = recycle(slices);
            return self.send_chain_round(i, op);
        }
        let verdict = decide(copy, options, op.sum);
        let go = verdict == Verdict::Go;
        // LMOVE from here wrote its reply with the element already.
        if !(go && !copy && src_here) {
            op.verdict.clear();
            let mut r = Reply::new(&mut op.verdict, resp);
            match (verdict, copy) {
                (Verdict::Go, true) => r.int(1),
                (Verdict::Go, false) => r.bulk(entry.as_ref().map_or(&[][..], |e| e.value.as_bytes(&mut scratch))),
                (Verdict::Nothing, true) => r.int(0),
                (Verdict::Nothing, false) => r.null(),
                (Verdict::WrongType, _) => r.error(err::WRONGTYPE),
            }
            op.failed = r.error_prefix;
        } else {
            op.failed = None;
        }
        self.hops.start_parts(n, op.mask, &[]);
        let (role, key, other) = if src_here { (b"s", src, dst) } else { (b"d", dst, src) };
        let b = &mut self.hops.building[me];
        b.push(b"");
        b.push(&op.sum.to_le_bytes());
        b.push(role);
        b.push(key);
        b.push(other);
        b.push(&[options]);
        if go && !src_here {
            self.hops.entry_for = entry.map(|e| (me, e));
        }
        self.hops.slices = recycle(slices);
        let cmd = op.cmd;
        self.send_last_round(i, op, go, cmd);
        self.hops.entry_for = None;
    }

    /// A part of a COPY, LMOVE or RPOPLPUSH hop, any round (see the module
    /// doc): its slots, the answers so far, its role ("s" the source's
    /// shard, "d" the destination's), its key, the other key, the options.
    pub(super) fn run_move_part(&mut self, mut part: Part) {
        let me = self.id;
        let now = self.clock.now_ms();
        let start = self.clock.last;
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        let [slots, sum, role, key, other, options] = slices[..] else { unreachable!("a move part") };
        let theirs = i64::from_le_bytes(sum.try_into().unwrap_or_default());
        let options = options.first().copied().unwrap_or(0);
        let (round, source) = (part.round, role == b"s");
        if round != 2 {
            for s in slots.chunks_exact(2) {
                self.hops.kept.push((part.seq, u16::from_le_bytes([s[0], s[1]])));
            }
        }
        let copy = part.cmd as usize == copy_id();
        let (from_head, to_head) = (options & FROM_HEAD != 0, options & TO_HEAD != 0);
        let db = part.db as usize;
        let brought = part.cut.as_mut().and_then(|c| c.entry.take());
        let mut scratch = itoa::Buffer::new();
        let mut ctx = Ctx::new(&mut self.set, &self.server, me, db, part.resp, now, None);
        let dirty_before = ctx.shards.get(me).dirty;
        crate::messaging::tracking::set_current_client(part.client);
        let (mut found, mut out, mut go) = (0i64, None, false);
        match (round, source) {
            // The coordinator's look: the source's (and its copy), or a peek
            // at the destination.
            (1, true) if copy => {
                out = crate::commands::keys::copy_look(&mut ctx, key, true).1;
                found = if out.is_some() { SRC } else { 0 };
            }
            (1, true) => {
                found = list_look(&mut ctx, key, SRC, SRC_WRONG);
                if found == SRC {
                    let (v, last) = crate::commands::list::lmove_peek(&mut ctx, key, from_head);
                    found |= if last { EMPTIED } else { 0 };
                    out = Some(element(v));
                }
            }
            (1, false) => {
                let d = &ctx.shards.get(me).dbs[db];
                if !crate::shard::watch::key_is_expired(d, key, now) {
                    found = match d.map.get(key) {
                        None => 0,
                        Some(e) if copy || matches!(e.value, Value::List(_)) => DST,
                        Some(_) => DST_WRONG,
                    };
                }
            }
            // The other shard: its look, the decision, its write.
            (3, true) => {
                let taken = if copy { crate::commands::keys::copy_look(&mut ctx, key, true).1 } else { None };
                found = if copy { taken.as_ref().map_or(0, |_| SRC) } else { list_look(&mut ctx, key, SRC, SRC_WRONG) };
                go = decide(copy, options, theirs | found) == Verdict::Go;
                if go && copy {
                    out = taken;
                } else if go {
                    let (v, emptied) = crate::commands::list::lmove_pop(&mut ctx, key, from_head);
                    found |= if emptied { EMPTIED } else { 0 };
                    out = Some(element(v));
                }
            }
            (3, false) => {
                if theirs & SRC != 0 {
                    found = if copy {
                        if crate::commands::keys::copy_look(&mut ctx, key, false).0 {
                            DST
                        } else {
                            0
                        }
                    } else {
                        list_look(&mut ctx, key, DST, DST_WRONG)
                    };
                }
                go = decide(copy, options, theirs | found) == Verdict::Go;
                if let Some(e) = brought.filter(|_| go) {
                    if copy {
                        crate::commands::keys::copy_write(&mut ctx, key, db, found & DST != 0, e);
                    } else {
                        let exists = found & DST != 0;
                        crate::commands::list::lmove_push(&mut ctx, key, exists, to_head, e.value.as_bytes(&mut scratch));
                        let st = ctx.shards.get_mut(me);
                        crate::commands::list::lmove_notify(st, db, (other, key), !exists, (from_head, to_head), theirs & EMPTIED != 0);
                    }
                }
            }
            // The coordinator's round 2: `theirs` is every answer.
            (_, source) => {
                go = decide(copy, options, theirs) == Verdict::Go;
                if go && source && !copy {
                    // The element round 1 saw, as of round 1's instant (the
                    // decision's): a TTL that passed since must not expire
                    // the marked key now. (Its events went out from the
                    // destination's part.) Gone only if active expiry took
                    // it meanwhile: nothing to pop then.
                    let now = std::mem::replace(&mut ctx.now_ms, i64::MIN);
                    if ctx.db(key).map.get(key).is_some() {
                        crate::commands::list::lmove_pop(&mut ctx, key, from_head);
                    }
                    ctx.now_ms = now;
                } else if go && !source {
                    if let Some(e) = brought {
                        if copy {
                            let exists = crate::commands::keys::copy_look(&mut ctx, key, false).0;
                            crate::commands::keys::copy_write(&mut ctx, key, db, exists, e);
                        } else {
                            let exists = list_look(&mut ctx, key, DST, DST_WRONG) == DST;
                            crate::commands::list::lmove_push(&mut ctx, key, exists, to_head, e.value.as_bytes(&mut scratch));
                            let st = ctx.shards.get_mut(me);
                            crate::commands::list::lmove_notify(st, db, (other, key), !exists, (from_head, to_head), theirs & EMPTIED != 0);
                        }
                    }
                }
            }
        }
        crate::messaging::tracking::set_current_client(0);
        if !go {
            // No write: no cut either (as round 2's abort).
            if let Some(c) = part.cut.as_mut() {
                c.id = 0;
            }
        }
        let ops = (round != 1 && part.cut().is_some() && ctx.shards.get(me).stream.is_on()).then(|| {
            let dirty = ctx.shards.get(me).dirty != dirty_before;
            Box::new(PartOps { ops: crate::exec::propagate::take_pending_ops(&mut ctx.shards.get_mut(me).stream), dirty, ..Default::default() })
        });
        self.hops.slices = recycle(slices);
        part.args.data.clear();
        part.args.ends.clear();
        let usec = self.clock.usec_since(start);
        if round == 1 {
            // Its answer; the intent stays at the head of this queue, the
            // slots marked (as `run_round_one`).
            Reply::new(&mut part.args.data, part.resp).int(found);
            let captured = self.capture_part_messages();
            self.after_command_messaging();
            let mut ops = out.map(|e| Box::new(PartOps { entry: Some(e), ..Default::default() }));
            if captured.is_some() {
                ops.get_or_insert_with(Default::default).captured = captured;
            }
            return self.hop_part_done(part.seq, usec, me, part.args, ops);
        }
        self.unmark_kept(part.seq);
        if let Some(ops) = ops {
            self.part_cut(&part, ops);
        }
        if round == 3 {
            self.hops.chain_found = Some(found);
            self.hops.chain_entry = out;
        }
        self.answer_part(part, usec);
        if round == 2 {
            // A client blocked on the destination filled here (a round-3
            // part's are served by `run_parts`).
            self.serve_ready();
        }
    }
}
