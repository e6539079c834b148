//! Multi-round hops: one hop intent (`network::hop`, "Hops" in
//! `shard::hold`) that sends its parts in two rounds, for the multi-shard
//! operations whose parts must agree on one decision: an EXEC with WATCH,
//! MSETNX, RENAME/RENAMENX over two shards (round 1 takes the source entry
//! out as an owned value, round 2 writes it at the destination or puts it
//! back) and SMOVE over two shards (round 1 looks at both keys, round 2
//! moves the member). WATCH over several shards runs as a one-round hop.
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
//! **Why it cannot deadlock** (the argument of `shard::hold` extended): the
//! intent with the smallest number heads every queue it is in, its own
//! coordinator's included; nothing parks for a hop, so each shard runs its
//! round-1 part at its next loop turn, the coordinator (not parked: its head
//! is this hop) gets the answers and sends round 2, which runs at once on
//! every shard (the intent still heads them), and the intent completes.
//! The coordinator must be in the intent for this: otherwise it could park
//! for a later hold at the head of its own queue while that hold waits for
//! a shard this intent heads.
//!
//! **Atomicity.** Between the rounds the intent heads each of its queues,
//! so no other hop or hold runs on those shards, and its keys stay marked,
//! so no single-shard command touches them: the check and the run are one
//! instant for every client. A watched key changed before a round-1 part
//! ran has flagged the client's `WatchCell` before that part answered
//! (same thread, then the message): the decision, after every answer, sees
//! it.
//!
//! **The connection** that sent a watched EXEC is deferred until the
//! decision (`Conn::hop_wait`): until then it is still in MULTI, and its
//! pipelined requests wait behind the EXEC. After the decision its next
//! requests run, their replies queued behind EXEC's slot, which the round-2
//! answers fill (header, then the commands' replies in queue order).
//!
//! **AOF.** Round 2 of a writing EXEC or a going MSETNX carries the cut of
//! one-round hops ("Cuts: a hop" in `exec::propagate`): one unit at one cut.
//! Round 1 writes nothing but an expired key's DEL, which waits in its
//! shard's stream for the next command there.
//!
//! **Limits.** COPY, LMOVE, RPOPLPUSH and the other two-key
//! commands, an EXEC whose queue holds a keyless, multi-shard or blocking
//! command, and everything else over several shards keep the held path
//! (`network::held`). Like every hop, these go by hops only while some other
//! shard involved is awake (`target_awake`): taking sleeping shards by a
//! hold wakes nobody. Between a watched EXEC's split and its decision its
//! connection is deferred; one that closes meanwhile aborts it (round 2
//! then only lowers the marks).

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

/// Appends `slot` to a round-1 part's slot list.
fn push_slot(list: &mut Vec<u8>, slot: u16) {
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

    /// WATCH naming keys of other shards, by a one-round hop: each shard
    /// registers its keys (with their expiry state right then) when the
    /// intent heads its queue. None: the held path runs it.
    pub(super) fn try_watch_hop(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Option<Flow> {
        if !self.holding.is_empty() {
            return None;
        }
        let n = self.server.shard_count;
        let mut mask = ShardMask::default();
        for &k in &args[1..] {
            mask.insert(slot_shard(key_slot(k), n));
        }
        if !self.target_awake(mask) {
            return None;
        }
        let bytes: usize = args.iter().map(|a| a.len()).sum();
        if let Some(flow) = self.hop_may_start(index, mask, bytes) {
            return Some(flow);
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        let cell = conn.client.watch.cell.get_or_insert_with(Default::default).clone();
        let epoch = cell.epoch().to_le_bytes();
        self.hops.start_parts(n, mask, &[args[0], &epoch]);
        let db = conn.client.db;
        let hold = &self.server.hold;
        for &key in &args[1..] {
            if conn.client.watch.keys.iter().any(|k| k.db == db && &k.key[..] == key) {
                continue;
            }
            let slot = key_slot(key);
            let t = slot_shard(slot, n);
            hold.mark(slot);
            self.hops.building[t].push(key);
            conn.client.watch.keys.push(WatchedKey { db, key: key.into(), shard: t });
        }
        conn.client.info_dirty = true;
        let (resp, client) = (conn.client.resp, conn.client.id);
        let mut op = self.hop_op_recording(index, args);
        op.key_shards.clear();
        let seq = self.queue_hop(index, op, mask, id, Gather::Ok, 0, 0);
        self.send_round(mask, seq, db, resp, id, client, false, 0, 0, Some(&cell));
        Some(self.finish_command(index, now))
    }

    /// A WATCH part: registers its keys for the client's cell (unless the
    /// client has unwatched since: a new epoch), lowers their marks.
    pub(super) fn run_watch_part(&mut self, mut part: super::hop::Part) {
        let me = self.id;
        let now = self.clock.now_ms();
        let start = self.clock.last;
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(&mut self.hops.slices));
        part.args.slices(&mut slices);
        let epoch = u64::from_le_bytes(slices[1].try_into().unwrap_or_default());
        let cell = part.cut.as_ref().and_then(|c| c.cell.clone()).filter(|c| c.epoch() == epoch);
        let db = part.db as usize;
        let st = self.set.get_mut(me);
        for &key in &slices[2..] {
            self.server.hold.unmark(key_slot(key));
            if let Some(cell) = &cell {
                let expired = key_is_expired(&st.dbs[db], key, now);
                st.watched.register(db, key, Watcher { cell: cell.clone(), epoch, expired });
            }
        }
        self.hops.slices = recycle(slices);
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
        if mask.count() < 2 || !self.target_awake(mask) || !self.may_send_parts(mask, bytes) {
            return None;
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        let writes = conn.client.multi.flags & crate::commands::flags::WRITE != 0;
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
        self.send_round(mask, seq, db, resp, exec_id(), client, track, 0, 1, cell.as_ref());
        Some(Flow::Stop)
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
                let mut ctx = Ctx::new(&mut self.set, &self.server, me, part.db as usize, part.resp, now, None);
                let bits = crate::commands::set::smove_probe(&mut ctx, key, member);
                found = if role == b"s" { bits } else { bits << 3 };
            }
        } else if is_rename(part.cmd as usize) {
            // A role ("s" source, "d" destination) and its key, if any here.
            if let [_, role, key] = slices[..] {
                let db = part.db as usize;
                let mut ctx = Ctx::new(&mut self.set, &self.server, me, db, part.resp, now, None);
                if matches!(ctx.lookup_write::<crate::commands::lookup::AnyKind>(key), Ok(Some(_))) {
                    if role == b"s" {
                        // Taken out whole (value, TTL, access time): round 2
                        // puts it at the destination, or back.
                        taken = ctx.db(key).remove(key);
                        found = 1;
                    } else {
                        found = 2;
                    }
                }
            }
        } else if exec {
            if let Some(cell) = part.cut.as_ref().and_then(|c| c.cell.clone()) {
                let epoch = cell.epoch();
                let st = self.set.get_mut(me);
                for pair in slices[at + 1..].chunks_exact(2) {
                    let db = u32::from_le_bytes(pair[0].try_into().unwrap_or_default()) as usize;
                    let key = pair[1];
                    // Redis's `isWatchedKeyExpired`.
                    let expired_at_watch = st.watched.find(db, key, &cell, epoch).is_none_or(|w| w.expired);
                    if !expired_at_watch && key_is_expired(&st.dbs[db], key, now) {
                        found = 1;
                    }
                    st.watched.unregister(db, key, &cell);
                }
            }
        } else {
            // Redis's `msetnxCommand`: a key that exists ends the look.
            let db = part.db as usize;
            let mut ctx = Ctx::new(&mut self.set, &self.server, me, db, part.resp, now, None);
            for &key in &slices[at + 1..] {
                ctx.expire_if_needed(key);
                if ctx.shards.get(me).dbs[db].map.get(key).is_some() {
                    found = 1;
                    break;
                }
            }
        }
        self.hops.slices = recycle(slices);
        part.args.data.clear();
        part.args.ends.clear();
        Reply::new(&mut part.args.data, part.resp).int(found);
        let usec = self.clock.usec_since(start);
        if part.from as usize != me {
            self.hand_over_before_answer();
        }
        self.after_command_messaging();
        let ops = taken.map(|e| Box::new(super::hop::PartOps { entry: Some(e), ..Default::default() }));
        if part.from as usize == me {
            self.hop_part_done(part.seq, usec, me, part.args, ops);
        } else {
            self.send_to(part.from as usize, Message::HopDone { seq: part.seq, usec, args: part.args, ops });
        }
    }

    /// Every round-1 answer of the op at `i` is back: the decision, and round 2.
    pub(super) fn next_round(&mut self, i: usize) {
        let cmd = self.hops.ops[i].cmd;
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
        let alive = self.conn_of(token).is_some_and(|c| c.closing != Closing::Closed);
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
                crate::exec::call(&mut ctx, &mut self.clock, op.cmd, &[&name[..]], &mut r, crate::exec::Caller::default(), &mut op.monitor);
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
        (op.round, op.pending, op.cut) = (2, mask.count(), cut);
        self.hops.ops[i] = op;
        self.send_round(mask, seq, db, resp, exec_id(), client, track, cut, 2, None);
        // Its next requests run now (their replies queue behind EXEC's).
        if alive && self.conn_of(token).is_some() && self.finish_command(index, now) == Flow::Continue {
            self.run_deferred(index);
        }
    }

    /// Begins a writing two-round hop of connection `index` over `mask`
    /// naming `keys`: Err(Some(flow)) when the connection must wait first,
    /// Err(None) when it does not go by hops (the held path); otherwise its
    /// cut and its intent's shards (this one joins), the keys marked and
    /// each shard's round-1 part begun with the slots it keeps.
    fn begin_write_rounds<'k>(
        &mut self,
        index: u32,
        args: &[&[u8]],
        mask: ShardMask,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
    ) -> Result<(u64, ShardMask), Option<Flow>> {
        if !self.holding.is_empty() || !self.target_awake(mask) {
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
        let conn = self.conns[index as usize].as_ref().unwrap();
        let (db, resp, client) = (conn.client.db, conn.client.resp, conn.client.id);
        let track = conn.client.tracking.remembers_reads();
        let mut op = self.hop_op_recording(index, args);
        op.key_shards.clear();
        let seq = self.queue_hop(index, op, mask, id, Gather::Sum, cut, 1);
        self.send_round(mask, seq, db, resp, id, client, track, 0, 1, None);
        Some(Flow::Continue)
    }

    /// MSETNX's decision: every key absent, each shard sets its keys (the
    /// reply 1); otherwise nothing (0).
    fn msetnx_round_two(&mut self, i: usize) {
        let n = self.server.shard_count;
        let mut op = std::mem::take(&mut self.hops.ops[i]);
        let go = op.sum == 0;
        let (seq, mask, db, resp, token) = (op.seq, op.mask, op.db, op.resp, op.token);
        let cut = if go { op.cut } else { 0 };
        (op.round, op.pending, op.cut, op.sum) = (2, mask.count(), cut, go as i64);
        self.hops.start_parts(n, mask, &[b"mset".as_slice()]);
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
        self.hops.ops[i] = op;
        let (client, track) = self.conn_of(token).map_or((0, false), |c| (c.client.id, c.client.tracking.remembers_reads()));
        self.send_round(mask, seq, db, resp, mset_id(), client, track, cut, 2, None);
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
        let conn = self.conns[index as usize].as_ref().unwrap();
        let (db, resp, client) = (conn.client.db, conn.client.resp, conn.client.id);
        let mut op = self.hop_op_recording(index, args);
        op.key_shards.clear();
        op.ops.clear();
        let seq = self.queue_hop(index, op, mask, id, Gather::Decided, cut, 1);
        self.send_round(mask, seq, db, resp, id, client, false, 0, 1, None);
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
        let entry = op.ops.iter_mut().find_map(|(_, p)| p.entry.take());
        op.ops.clear();
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
            let go = match entry {
                None => {
                    r.error(crate::commands::err::NO_SUCH_KEY);
                    false
                }
                Some(e) if nx && dst_exists => {
                    r.int(0);
                    let b = &mut self.hops.building[src_shard];
                    b.push(b"p");
                    b.push(src);
                    self.hops.entry_for = Some((src_shard, e));
                    false
                }
                Some(e) => {
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
                    self.hops.entry_for = Some((dst_shard, e));
                    true
                }
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
    /// `hops.building` as command `cmd`, with the hop's cut when it `go`es.
    fn send_last_round(&mut self, i: usize, mut op: super::hop::HopOp, go: bool, cmd: usize) {
        let (seq, mask, db, resp, token) = (op.seq, op.mask, op.db, op.resp, op.token);
        let cut = if go { op.cut } else { 0 };
        (op.round, op.pending, op.cut) = (2, mask.count(), cut);
        self.hops.ops[i] = op;
        let client = self.conn_of(token).map_or(0, |c| c.client.id);
        self.send_round(mask, seq, db, resp, cmd, client, false, cut, 2, None);
    }
}
