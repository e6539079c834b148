//! The network loop's side of blocking pops (see `messaging::blocking`):
//! blocking a connection, serving ready keys on their owner, delivering the
//! reply on the client's home shard, timeouts, CLIENT UNBLOCK, disconnects.
//!
//! **BLMOVE across shards.** When the destination of a served BLMOVE /
//! BRPOPLPUSH belongs to another shard, the owner of the source holds that
//! shard (`EventLoop::with_held`) for the pop and the push: no other
//! client sees the element in neither list or in both, and the move
//! propagates as one unit (a cut, as every held command). When another
//! coordinator holds shards at that moment, the key stays ready and is
//! served on a later loop turn.
//!
//! **Order across connections.** Waiters on a key are served in the order
//! their commands ran on the key's owner. A blocking command of a client on
//! another shard reaches the owner one mailbox hop later than a command
//! sent a few microseconds after it by a client of the owner's own shard,
//! so back-to-back commands of different connections may run in the other
//! order (as with any two connections of a multi-threaded server); a client
//! that needs an order waits for the first to block (INFO blocked_clients).
//! Even the reads differ: each shard's thread takes its connections' data
//! when the kernel runs it, so under load a command sent first may be read
//! a millisecond after one sent later to another shard's connection. This
//! is what unit/type/list's "BRPOPLPUSH with multiple blocked clients"
//! sometimes meets with `--shards 3` (never with `--shards 1`): it sends
//! two BRPOPLPUSH and a push on three connections without waiting; when the
//! second BRPOPLPUSH reaches the key's owner first it takes the element,
//! and the first (whose destination is a string) blocks for good instead
//! of failing with WRONGTYPE. Ordering such commands would need the
//! kernel's receive timestamps and a wait before every serve; not done.
//!
//! **Moves out of a hold.** A coordinator holding the source's shard (an
//! EXEC, SWAPDB, a script) but not the destination's cannot serve the move
//! inside its hold (a hold does not grow). Once it has let go it takes a
//! second hold of both shards and serves it there, before its client's
//! reply leaves (`served_after_hold`); only when that hold cannot be had
//! at once (another coordinator is ahead) is the key left to its owner,
//! rung awake.
//!
//! **Timeouts.** Each home shard keeps its blocked connections' deadlines
//! in a sorted set (`Blocking::timeouts`), checked every loop turn; the
//! loop's wait ends at the earliest deadline, so a timeout fires within a
//! millisecond or so of it (the loop's clock and wait are in ms), with no
//! timer per client.

use std::sync::Arc;

use super::conn::Closing;
use super::event_loop::EventLoop;
use crate::commands::Ctx;
use crate::messaging::blocking::{BlockRequest, Waiter, GONE, SERVED, TIMED_OUT, UNBLOCKED_ERROR};
use crate::protocol::Reply;
use crate::shard::hold::ShardMask;
use crate::shard::mailbox::{ConnToken, Message, PackedArgs};
use crate::shard::slot::key_shard;

impl EventLoop {
    /// After a command ran on this thread for connection `index`: when its
    /// handler asked to block, blocks the connection. Returns whether it did.
    #[inline]
    pub(super) fn block_if_requested(&mut self, index: u32) -> bool {
        if self.state().blocking.request.is_none() {
            return false;
        }
        let Some(req) = self.state().blocking.request.take() else {
            return false;
        };
        let token = self.token(index);
        let conn = self.conns[index as usize].as_ref().unwrap();
        let w = Waiter::new(self.id, token, conn.fd, None, conn.client.db, conn.client.resp, req);
        self.enqueue_waiter(&w);
        self.set_blocked(index, w);
        true
    }

    /// After a forwarded command ran here: when it blocked, queues its
    /// client (of shard `from`) and returns the waiter to send back.
    pub(super) fn block_remote(&mut self, from: usize, conn: ConnToken, fd: i32, seq: u64, db: usize, resp: u8) -> Option<Arc<Waiter>> {
        let req: BlockRequest = self.state().blocking.request.take()?;
        let w = Waiter::new(from, conn, fd, Some(seq), db, resp, req);
        self.enqueue_waiter(&w);
        Some(w)
    }

    /// Queues `w` on the owner of each of its keys (this shard or one held).
    fn enqueue_waiter(&mut self, w: &Arc<Waiter>) {
        let n = self.server.shard_count;
        for key in &w.keys {
            let s = key_shard(key, n);
            if self.set.has(s) {
                self.set.get_mut(s).blocking.enqueue(w.db, key, w.clone());
            }
        }
    }

    /// Marks connection `index` blocked on `w`: no more commands are read
    /// (its input stays queued) until `w` is resolved.
    fn set_blocked(&mut self, index: u32, w: Arc<Waiter>) {
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.deferred = true;
        conn.block_pending = false;
        conn.blocked = Some(w.clone());
        let generation = conn.generation;
        let st = self.state();
        if w.deadline_ms > 0 {
            st.blocking.timeouts.insert((w.deadline_ms, index, generation));
        }
        if let Some(info) = st.clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            if info.kill_requested {
                // CLIENT KILL marked it while its blocking command was out
                // on the key's owner: gone as it would have been had it
                // blocked first (`client::kill_where`); its shard's cron
                // closes it.
                w.claim(GONE);
            }
            info.blocked = Some(w);
        }
    }

    /// `Message::Blocked`: the forwarded blocking command blocked.
    pub(super) fn on_blocked(&mut self, from: usize, w: Arc<Waiter>) {
        if let Some(o) = self.outboxes[from].as_mut() {
            o.reply_received();
        }
        let index = w.conn.index;
        let alive = self
            .conns
            .get(index as usize)
            .and_then(|c| c.as_ref())
            .is_some_and(|c| c.generation == w.conn.generation && c.closing != Closing::Closed && c.block_pending);
        let early = self.state().blocking.early.iter().position(|(e, _)| Arc::ptr_eq(e, &w));
        let early = early.map(|i| self.state().blocking.early.swap_remove(i).1);
        if alive {
            self.set_blocked(index, w.clone());
            if let Some(reply) = early {
                self.finish_blocked(&w, reply);
            }
        } else if let Some(reply) = early {
            super::conn::recycle(&mut self.pool, reply);
        } else if w.claim(GONE) || w.state() == GONE {
            // The client went away meanwhile: nothing is popped for it (its
            // owner may have found it gone first, `serve_one`).
            self.send_to(from, Message::BlockCancel { waiter: w.clone() });
        }
        if !alive {
            // Claimed first: the socket closes only after (module doc of
            // `messaging::blocking`, "A client that hung up").
            self.block_answered_after_close(w.conn, w.seq);
        }
    }

    /// A connection closed while its forwarded blocking command was out
    /// (`Conn::block_pending`) was kept, its socket open, so that the
    /// descriptor a waiter made for it names no other connection (module
    /// doc of `messaging::blocking`, "A client that hung up"); the command
    /// has answered (`seq`: its reply slot; blocked or replied), so it goes.
    pub(super) fn block_answered_after_close(&mut self, token: ConnToken, seq: Option<u64>) {
        let Some(c) = self.conns.get_mut(token.index as usize).and_then(|c| c.as_mut()) else { return };
        if c.generation != token.generation || c.closing != Closing::Closed || !c.block_pending || seq != Some(c.block_seq) {
            return;
        }
        c.block_pending = false;
        self.maybe_release(token.index);
    }

    /// `Message::Served`: the reply popped for a blocked connection of this shard.
    pub(super) fn on_served(&mut self, w: Arc<Waiter>, args: PackedArgs) {
        self.finish_blocked(&w, args);
    }

    /// `Message::BlockCancel`: forgets a resolved waiter's queue entries.
    pub(super) fn on_block_cancel(&mut self, w: Arc<Waiter>) {
        let (id, n) = (self.id, self.server.shard_count);
        self.state().blocking.cancel(&w, id, n);
    }

    /// Gives the blocked connection of `w` (on this shard) its reply and
    /// lets it read commands again; the owners forget `w`.
    fn finish_blocked(&mut self, w: &Arc<Waiter>, reply: PackedArgs) {
        let index = w.conn.index;
        let Some(conn) = self.conns.get_mut(index as usize).and_then(|c| c.as_mut()) else {
            super::conn::recycle(&mut self.pool, reply);
            return;
        };
        if conn.generation != w.conn.generation || conn.closing == Closing::Closed || !conn.blocked.as_ref().is_some_and(|b| Arc::ptr_eq(b, w)) {
            if conn.generation == w.conn.generation && conn.closing != Closing::Closed && conn.block_pending && conn.blocked.is_none() && w.seq.is_some() {
                // Served before its `Message::Blocked` arrived: kept for it
                // (`Blocking::early`), not dropped with the popped element.
                self.state().blocking.early.push((w.clone(), reply));
                return;
            }
            super::conn::recycle(&mut self.pool, reply);
            return;
        }
        conn.blocked = None;
        match w.seq {
            Some(seq) => {
                conn.fill_slot(seq, reply);
                conn.drain_slots(&mut self.pool);
            }
            None => {
                conn.out.extend_from_slice(&reply.data);
                super::conn::recycle(&mut self.pool, reply);
            }
        }
        if let Some(info) = self.state().clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.blocked = None;
        }
        self.cancel_elsewhere(w);
        self.mark_dirty(index);
        if self.check_output_limit(index, crate::util::unix_ms()) {
            return;
        }
        // Resumed by the loop's deferred list (not here: this may run
        // while a destination shard is held for a BLMOVE).
        if !self.deferred.contains(&index) {
            self.deferred.push(index);
        }
    }

    /// Tells the owners of `w`'s keys to forget it (this shard's own queues
    /// directly). A waiter served by the one shard of all its keys was
    /// dropped there already.
    fn cancel_elsewhere(&mut self, w: &Arc<Waiter>) {
        let n = self.server.shard_count;
        let mut shards = ShardMask::default();
        for key in &w.keys {
            shards.insert(key_shard(key, n));
        }
        if w.state() == SERVED && shards.count() == 1 {
            return;
        }
        for s in shards.iter() {
            if s == self.id {
                let id = self.id;
                self.state().blocking.cancel(w, id, n);
            } else {
                self.send_to(s, Message::BlockCancel { waiter: w.clone() });
            }
        }
    }

    /// A blocked connection closes (disconnect, CLIENT KILL, output limit):
    /// its waiter is claimed so that nothing is popped for it.
    pub(super) fn unblock_on_close(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else { return };
        // A forwarded blocking command still out keeps `block_pending` (and
        // the socket) until it answers (`block_answered_after_close`).
        let Some(w) = conn.blocked.take() else { return };
        // GONE already: CLIENT KILL claimed it when it marked the client.
        if w.claim(GONE) || w.state() == GONE {
            self.cancel_elsewhere(&w);
        }
    }

    /// A reply made here in `resp` for a blocked client (null array or error).
    fn make_reply(&mut self, resp: u8, error: Option<&str>) -> PackedArgs {
        let mut p = self.pool.pop().unwrap_or_default();
        p.data.clear();
        p.ends.clear();
        let mut r = Reply::new(&mut p.data, resp);
        match error {
            Some(e) => r.error(e),
            None => r.null_array(),
        }
        p
    }

    /// Once per loop turn: clients unblocked by CLIENT UNBLOCK, timeouts,
    /// keys made ready while this shard was held. Branches on empty
    /// collections when nobody blocks.
    pub(super) fn blocking_turn(&mut self) {
        if !self.state().blocking.unblocked.is_empty() {
            let list = std::mem::take(&mut self.state().blocking.unblocked);
            for token in list {
                let Some(w) = self.conn_of(token).and_then(|c| c.blocked.clone()) else {
                    continue;
                };
                let reply = match w.state() {
                    TIMED_OUT => self.make_reply(w.resp, None),
                    UNBLOCKED_ERROR => {
                        self.state().stats.record_error("UNBLOCKED");
                        self.make_reply(w.resp, Some("UNBLOCKED client unblocked via CLIENT UNBLOCK"))
                    }
                    _ => continue,
                };
                // This list is CLIENT UNBLOCK's alone: redis-server 7.0.15
                // counts the blocked command as failed either way (checked
                // with the binary: BLPOP unblocked TIMEOUT or ERROR shows
                // failed_calls=1; one that times out by itself, 0).
                if let Some(id) = crate::commands::CommandTable::get().lookup(w.op.command_name()) {
                    self.state().stats.record_failed(id);
                }
                self.finish_blocked(&w, reply);
            }
        }
        if let Some(first) = self.state().blocking.next_deadline() {
            let now = self.clock.now_ms();
            if first < now {
                self.expire_blocked(now);
            }
        }
        self.serve_ready();
    }

    /// Replies to the blocked connections whose deadline is past: before
    /// `now`, as Redis's `timeout < now`. The clock is in whole
    /// milliseconds (truncated) and the deadline counts from the turn's
    /// clock, so at `deadline == now` up to a millisecond of the timeout
    /// may be left: a BLPOP of 0.2 s answered after 199.4 ms measured by
    /// its client (seen in audit21's runs), where Redis is never early.
    fn expire_blocked(&mut self, now: i64) {
        while let Some(&(deadline, index, generation)) = self.state().blocking.timeouts.first() {
            if deadline >= now {
                break;
            }
            self.state().blocking.timeouts.pop_first();
            let Some(w) = self.conns.get(index as usize).and_then(|c| c.as_ref()).filter(|c| c.generation == generation).and_then(|c| c.blocked.clone()) else {
                continue;
            };
            // Claimed by an owner meanwhile: its reply is on the way.
            if w.deadline_ms == deadline && w.claim(TIMED_OUT) {
                let reply = self.make_reply(w.resp, None);
                self.finish_blocked(&w, reply);
            }
        }
    }

    /// Serves the keys of this shard that got data for their waiters, in
    /// the order they became ready; a served BLMOVE may make more ready.
    /// Not inside a hold (the held shards serve their own when released).
    /// Inlined: after every command, the check of an empty list.
    #[inline(always)]
    pub(super) fn serve_ready(&mut self) {
        if !self.state().blocking.ready.is_empty() && self.holding.is_empty() {
            self.serve_ready_keys();
        }
    }

    #[inline(never)]
    fn serve_ready_keys(&mut self) {
        self.serve_ready_of(ShardMask::single(self.id));
    }

    /// Inside a hold, before it is let go: serves the keys the holder made
    /// ready on the shards it holds and its own (a push, an EXEC, SWAPDB,
    /// MOVE), in the order they became ready, as Redis serves them before
    /// the writer's reply. Left to the owners' loop turns, a key would wait
    /// until its owner runs again, and the holder's client, answered
    /// meanwhile, could run its next command first (a SWAPDB taking the
    /// pushed list away from the waiters, a second push served in the
    /// first's place), and keys of different shards would be served in any
    /// order. A move into a shard not held stays ready for its owner.
    pub(super) fn serve_held_ready(&mut self) {
        if self.state().blocking.serving {
            return;
        }
        let mut shards = self.holding;
        shards.insert(self.id);
        if shards.iter().any(|s| !self.set.get(s).blocking.ready.is_empty()) {
            self.serve_ready_of(shards);
        }
    }

    /// Serves the ready keys of `shards` (this one, or held ones), the
    /// earliest ready first; a served BLMOVE may make more ready.
    fn serve_ready_of(&mut self, shards: ShardMask) {
        let was = std::mem::replace(&mut self.state().blocking.serving, true);
        let mut postponed = Vec::new();
        loop {
            let mut first: Option<(u64, usize, usize)> = None;
            for s in shards.iter() {
                for (i, e) in self.set.get(s).blocking.ready.iter().enumerate() {
                    if first.is_none_or(|f| e.2 < f.0) {
                        first = Some((e.2, s, i));
                    }
                }
            }
            let Some((_, s, i)) = first else { break };
            let (db, key, seq) = self.set.get_mut(s).blocking.ready.remove(i);
            if !self.serve_key(s, db, &key) {
                postponed.push((s, db, key, seq));
            }
        }
        for (s, db, key, seq) in postponed {
            let ready = &mut self.set.get_mut(s).blocking.ready;
            if !ready.iter().any(|(d, k, _)| *d == db && *k == key) {
                ready.push((db, key, seq));
            }
        }
        self.state().blocking.serving = was;
    }

    /// Serves the waiters of `key` (of shard `s`: this one, or one held)
    /// first come first while it has data for them. False: a BLMOVE's
    /// destination shard could not be held now.
    fn serve_key(&mut self, s: usize, db: usize, key: &[u8]) -> bool {
        let n = self.server.shard_count;
        loop {
            let now = self.clock.now_ms();
            let st = self.set.get_mut(s);
            st.blocking.prune(db, key);
            // Redis looks the key up with lazy expiry (`lookupKeyReadWithFlags`
            // in `handleClientsBlockedOnKeys`): a key that expired before it
            // could serve (SWAPDB, or EXEC's push then PEXPIRE and a sleep)
            // is deleted as an expiry, its DEL propagated now, the waiters
            // left blocked. Under a write pause the dataset stays as it is.
            let server = &self.server;
            let expired = st
                .dbs
                .get_mut(db)
                .is_some_and(|d| matches!(d.probe_read(key, now, || server.pause_until(now).is_some()), crate::shard::keyspace::Probe::Expired));
            if expired {
                st.expired(db, key);
                st.stream.flush_pending();
            }
            use crate::messaging::blocking::WaitKind;
            let value = st.dbs.get_mut(db).and_then(|d| d.lookup(key, now, false)).map(|e| &e.value);
            let kind = match value {
                Some(crate::shard::Value::List(_)) => Some(WaitKind::List),
                Some(crate::shard::Value::ZSet(_)) => Some(WaitKind::ZSet),
                Some(crate::shard::Value::Stream(_)) => Some(WaitKind::Stream),
                _ => None,
            };
            let stream = match value {
                Some(crate::shard::Value::Stream(x)) => Some(&**x),
                _ => None,
            };
            let Some(q) = st.blocking.queue(db, key) else { return true };
            // Waiters for another type stay (Redis serves by type); a
            // stream serves the readers it has entries for, and a key that
            // is no longer a stream fails its group readers.
            let serves = |w: &Arc<Waiter>| match (kind, stream) {
                (Some(WaitKind::Stream), Some(x)) => w.op.kind() == WaitKind::Stream && crate::commands::stream::can_serve(x, key, &w.keys, &w.op),
                (_, _) if w.op.kind() == WaitKind::Stream => w.op.reads_group(),
                (k, _) => k == Some(w.op.kind()),
            };
            let Some(pos) = q.iter().position(serves) else { return true };
            let w = q[pos].clone();
            let dst = match &w.op {
                crate::messaging::blocking::BlockOp::Move { dst, .. } => key_shard(dst, n),
                _ => s,
            };
            // Both shards at hand: the key's and the move's destination's.
            let reachable = dst == s || dst == self.id || self.holding.contains(dst);
            // A key of this shard under a pending hop (`network::hop`) is
            // served once the hop's part here has lowered its mark: the
            // hop's clients see it whole (a watched EXEC's round 1 checks
            // a watched destination before a BLMOVE fills it).
            if reachable && self.key_or_move_dst_marked(s, key, &w) {
                return false;
            }
            if reachable {
                self.serve_one(s, db, key, pos, &w);
            } else if !self.holding.is_empty() {
                // Served by the holder once it has let go ("Moves out of a hold").
                let unreached = &mut self.state().blocking.unreached;
                unreached.insert(s);
                unreached.insert(dst);
                return false;
            } else if self.with_held(ShardMask::single(dst), |lp, _| lp.serve_one(s, db, key, pos, &w)).is_none() {
                return false;
            }
        }
    }

    /// A hold over `held` was let go. Keys it filled whose BLMOVE's
    /// destination it did not hold (`unreached`) are served now, under a
    /// second hold of their shards and the destinations', before the
    /// holder's client gets its reply, as Redis serves them before it
    /// replies to the writer ("Moves out of a hold" in the module doc).
    /// A shard left with ready keys (those, when the second hold cannot be
    /// had at once; a destination's own keys, left by a move served with
    /// `serving` set) gets a doorbell: it may sleep, taken asleep for the
    /// hold, and nothing else would wake it to serve them.
    #[cold]
    pub(super) fn served_after_hold(&mut self, left_ready: ShardMask) {
        let mut unreached = std::mem::take(&mut self.state().blocking.unreached);
        let mut targets = unreached;
        targets.remove(self.id);
        if !targets.is_empty() && !self.state().blocking.serving_unreached {
            self.state().blocking.serving_unreached = true;
            if self.try_held_once(targets, |_, _| ()).is_some() {
                unreached = ShardMask::default();
            }
            self.state().blocking.serving_unreached = false;
        }
        let ring = ShardMask(left_ready.0 | unreached.0);
        self.doorbells.0 |= ring.0 & !(1u128 << self.id);
    }

    /// Whether `key`, or the destination of the move `w` waits for, is
    /// marked by a pending hop (one load while none is pending here).
    fn key_or_move_dst_marked(&self, s: usize, key: &[u8], w: &Waiter) -> bool {
        let hold = &self.server.hold;
        hold.hops_pending(s)
            && (hold.marked(crate::shard::slot::key_slot(key))
                || matches!(&w.op, crate::messaging::blocking::BlockOp::Move { dst, .. } if hold.marked(crate::shard::slot::key_slot(dst))))
    }

    /// Claims `w` (at `pos` in the queue of `key`, of shard `s`) and, when
    /// it won, pops for it and sends it the reply. A waiter whose client
    /// hung up is claimed GONE instead (its home may not have read the EOF
    /// yet): nothing is popped for it, and the key's next waiter is served.
    fn serve_one(&mut self, s: usize, db: usize, key: &[u8], pos: usize, w: &Arc<Waiter>) {
        let (id, n) = (self.id, self.server.shard_count);
        self.set.get_mut(s).blocking.remove_at(db, key, pos);
        if crate::messaging::blocking::peer_gone(w.fd) {
            // The home cancels it elsewhere when it reads the EOF.
            if w.claim(GONE) {
                self.set.get_mut(s).blocking.cancel(w, s, n);
            }
            return;
        }
        if !w.claim(SERVED) {
            return;
        }
        self.set.get_mut(s).blocking.cancel(w, s, n);
        let now = self.clock.now_ms();
        let started = w.slowlog.is_some().then(std::time::Instant::now);
        let mut p = self.pool.pop().unwrap_or_default();
        p.data.clear();
        p.ends.clear();
        {
            let mut r = Reply::new(&mut p.data, w.resp);
            let mut ctx = Ctx::new(&mut self.set, &self.server, id, w.db, w.resp, now, None);
            let propagating = ctx.propagating();
            let dirty_before: u64 = if propagating { (0..n).filter(|&i| ctx.shards.has(i)).map(|i| ctx.shards.get(i).dirty).sum() } else { 0 };
            match &w.op {
                crate::messaging::blocking::BlockOp::XRead { .. } => crate::commands::stream::serve_blocked(&mut ctx, key, &w.keys, &w.op, &mut r),
                op => crate::commands::blocking::serve(&mut ctx, key, op, &mut r),
            }
            if propagating {
                crate::exec::propagate::after_command(&mut ctx, &[], dirty_before);
            }
            // An error served to a blocked client counts in errorstats
            // (XREADGROUP's NOGROUP / UNBLOCKED), as Redis's addReplyError.
            if let Some(kind) = r.error_prefix {
                let stats = &mut ctx.home().stats;
                stats.record_error(kind.as_str());
                if let Some(id) = crate::commands::CommandTable::get().lookup(w.op.command_name()) {
                    stats.record_failed(id);
                }
            }
        }
        if let (Some(pending), Some(started)) = (&w.slowlog, started) {
            crate::exec::log_served(self.state(), pending, started.elapsed().as_micros() as u64);
        }
        if w.resp >= 3 && self.events_wait() {
            // The served client's own events (a BLMOVE's push before its
            // reply, the pop after) go around its reply, as Redis serves
            // it (`messaging::own_pushes`); the client may not be
            // subscribed at all (then nothing is taken out).
            let caller = crate::messaging::pubsub::Subscriber { shard: w.home as u32, token: w.conn };
            self.own_pushes.start(caller, w.resp, std::str::from_utf8(w.op.command_name()).unwrap_or_default());
            self.after_command_messaging_work();
            self.own_pushes.stop();
            self.own_pushes.place(&mut p.data, 0);
        }
        if w.home == id {
            self.finish_blocked(w, p);
        } else {
            self.hand_over_before_answer();
            self.send_to(w.home, Message::Served { waiter: w.clone(), args: p });
        }
    }
}

/// CLIENT UNBLOCK's work on the shard holding the client's registry entry:
/// claims the client's waiter for `error` (else a timeout) and leaves it to
/// the client's loop to reply. Returns whether the client was blocked.
pub fn unblock_client(st: &mut crate::shard::ShardState, client_id: u64, error: bool) -> Option<bool> {
    let info = st.clients.iter().flatten().find(|i| i.id == client_id)?;
    let Some(w) = info.blocked.clone() else { return Some(false) };
    if !w.claim(if error { UNBLOCKED_ERROR } else { TIMED_OUT }) {
        return Some(false);
    }
    st.blocking.unblocked.push(w.conn);
    Some(true)
}
