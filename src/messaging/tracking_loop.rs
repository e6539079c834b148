//! The network loop's side of client tracking: sending what the shards'
//! tracking left (`ShardTracking::outgoing`), and delivering invalidations to
//! the connections of this shard, applying the tracking client's flags here,
//! where its connection lives (NOLOOP, BCAST epoch, REDIRECT).
//!
//! Order: a command's invalidations are sent when it has run, before its
//! reply leaves the shard that ran it (`execute_remote` sends the reply
//! after `tracking_after_command`). An invalidation for a connection with
//! forwarded commands still out is queued behind their replies, so the
//! client that wrote a key it tracks reads the reply first, then the push,
//! as in Redis 7.0. When some client tracks, the loop also drains its
//! mailboxes before its receives, so a push sent before a client's next
//! command arrived is written before that command's reply.

use std::sync::atomic::Ordering;

use super::tracking::{encode_keys, flag, frame_for, null_value, redir_broken_push, Outgoing, TrackingMessage};
use crate::network::conn::Closing;
use crate::network::event_loop::EventLoop;
use crate::shard::mailbox::Message;

impl EventLoop {
    /// After a command: sends what this shard's tracking, and that of every
    /// shard held, left. The keys of held shards for BCAST prefixes join
    /// this shard's batch (one message per prefix for the command, as
    /// Redis), which goes now with `reply_leaves_now` (a command forwarded
    /// here, whose reply is sent right after): a writer's reply must not
    /// overtake the invalidations of its write. Otherwise this shard's
    /// batch waits for the turn's end (`tracking_turn`), where the replies
    /// leave.
    #[inline(always)]
    pub fn tracking_after_command(&mut self, reply_leaves_now: bool) {
        // No tracking work (every command of a client that never tracked):
        // the check only, inlined into the command path.
        if self.holding.is_empty() && !self.state().tracking.has_work() {
            return;
        }
        self.tracking_after_command_work(reply_leaves_now);
    }

    #[inline(never)]
    fn tracking_after_command_work(&mut self, reply_leaves_now: bool) {
        if self.holding.is_empty() {
            let st = self.state();
            if !st.tracking.has_work() {
                return;
            }
            if reply_leaves_now {
                st.tracking.broadcast();
            }
            if st.tracking.outgoing.is_empty() {
                return;
            }
        } else {
            // A held command of nobody tracking: the checks only (profiled:
            // it ran the broadcasts of every held shard each time).
            let mut shards = self.holding;
            shards.insert(self.id);
            if !crate::messaging::held_order::pending() && shards.iter().all(|s| !self.set.has(s) || !self.set.get(s).tracking.has_work()) {
                return;
            }
            for s in self.holding.iter() {
                if s == self.id || !self.set.has(s) {
                    continue;
                }
                let pending = self.set.get_mut(s).tracking.take_pending_bcast();
                if pending.is_empty() {
                    continue;
                }
                let left = self.state().tracking.absorb_bcast(pending);
                if !left.is_empty() {
                    // (Prefixes this shard forgot already: from there, as before.)
                    let held = &mut self.set.get_mut(s).tracking;
                    held.absorb_bcast(left);
                    held.broadcast();
                }
            }
            if reply_leaves_now {
                self.state().tracking.broadcast();
            }
        }
        self.tracking_send_outgoing();
    }

    fn tracking_send_outgoing(&mut self) {
        let mut shards = self.holding;
        shards.insert(self.id);
        for s in shards.iter() {
            if !self.set.has(s) || self.set.get(s).tracking.outgoing.is_empty() {
                continue;
            }
            let outgoing = std::mem::take(&mut self.set.get_mut(s).tracking.outgoing);
            self.send_invalidations(outgoing);
        }
        if !self.holding.is_empty() && crate::messaging::held_order::pending() {
            // A held command's invalidations, in its order (`held_order`).
            let list = crate::messaging::held_order::take_invalidations();
            self.send_invalidations(list);
        }
    }

    pub(crate) fn send_invalidations(&mut self, list: Vec<Outgoing>) {
        for Outgoing { to, msg } in list {
            if to == self.id {
                self.on_tracking_message(msg);
            } else {
                self.send_to(to, Message::Tracking(msg));
            }
        }
    }

    /// Broadcasts the keys this shard queued for BCAST prefixes, now (a hop's
    /// part is about to run here: see `network::hop`). One check when none.
    #[inline]
    pub(crate) fn tracking_flush_bcast(&mut self) {
        if self.state().tracking.bcast_pending() {
            self.state().tracking.broadcast();
            self.tracking_send_outgoing();
        }
    }

    /// Once per loop turn, before replies are sent: the BCAST batches of the
    /// turn (Redis's `beforeSleep`), and the table limit.
    pub fn tracking_turn(&mut self) {
        let st = self.state();
        if st.tracking.is_idle() && !st.tracking.has_work() {
            return;
        }
        st.tracking.broadcast();
        // As Redis's `if (server.tracking_clients) trackingLimitUsedSlots()`:
        // a table nobody tracks any more keeps its keys (dropped lazily).
        if self.server.tracking.clients.load(Ordering::Relaxed) > 0 {
            let st = self.state();
            let max = usize::try_from(st.config.tracking_table_max_keys).unwrap_or(usize::MAX);
            st.tracking.enforce_limit(max);
        }
        self.tracking_send_outgoing();
    }

    /// Connection `index` is closing: its tracking ends (Redis's
    /// `disableTracking` in `freeClient`); the tables drop its id lazily.
    pub fn tracking_closed(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        let id = conn.client.id;
        self.client_slots.remove(&id);
        let t = std::mem::take(&mut conn.client.tracking);
        if !t.on() {
            return;
        }
        self.server.tracking.clients.fetch_sub(1, Ordering::Relaxed);
        if t.has(flag::BCAST) {
            for s in 0..self.server.shard_count {
                let msg = TrackingMessage::Forget { client: id, epoch: t.epoch };
                if s == self.id {
                    self.on_tracking_message(msg);
                } else {
                    self.send_to(s, Message::Tracking(msg));
                }
            }
        }
    }

    /// The slot of the live connection of client `id` on this shard.
    fn tracking_conn(&self, id: u64) -> Option<u32> {
        let &index = self.client_slots.get(&id)?;
        let conn = self.conns.get(index as usize)?.as_ref()?;
        // Closing, or killed (CLIENT KILL marks it; the cron closes it):
        // gone for tracking, as Redis frees such a client at once.
        let killed = self.set.get(self.id).clients.get(index as usize).and_then(|i| i.as_ref()).is_none_or(|i| i.kill_requested);
        (conn.client.id == id && conn.closing == Closing::No && !killed).then_some(index)
    }

    pub fn on_tracking_message(&mut self, msg: TrackingMessage) {
        match msg {
            TrackingMessage::Invalidate { client, modifier, key } => {
                let Some(index) = self.tracking_conn(client) else { return };
                let t = &self.conns[index as usize].as_ref().unwrap().client.tracking;
                // Keys read before a switch to BCAST are not reported (Redis).
                if !t.on() || t.has(flag::BCAST) || t.has(flag::NOLOOP) && modifier == client {
                    return;
                }
                self.tracking_notify(index, &encode_keys(std::iter::once(&key[..]), 1));
            }
            TrackingMessage::Bcast { client, epoch, keys } => {
                let Some(index) = self.tracking_conn(client) else { return };
                let t = &self.conns[index as usize].as_ref().unwrap().client.tracking;
                if t.on() && t.has(flag::BCAST) && t.epoch == epoch {
                    self.tracking_notify(index, &keys);
                }
            }
            TrackingMessage::Flush => {
                for index in 0..self.conns.len() as u32 {
                    let Some(c) = self.conns[index as usize].as_ref() else { continue };
                    if c.client.tracking.on() && c.closing != Closing::Closed {
                        let value = null_value(c.client.resp);
                        self.tracking_notify(index, value);
                    }
                }
            }
            TrackingMessage::Redirected { target, client, from, value } => self.deliver_redirected(target, client, from, &value),
            TrackingMessage::RedirBroken { client, target } => {
                if let Some(index) = self.tracking_conn(client) {
                    self.redirect_broken(index, target);
                }
            }
            TrackingMessage::Forget { client, epoch } => self.state().tracking.forget(client, epoch),
        }
    }

    /// Redis's `sendTrackingMessage`: `value` (an array of keys or a null)
    /// for tracking client `index`, to its redirect target or to itself.
    fn tracking_notify(&mut self, index: u32, value: &[u8]) {
        let c = &self.conns[index as usize].as_ref().unwrap().client;
        let (id, resp, redirect, redirect_shard) = (c.id, c.resp, c.tracking.redirect, c.tracking.redirect_shard);
        if redirect == 0 {
            let mut out = Vec::new();
            if frame_for(resp, false, value, &mut out) {
                self.tracking_push(index, &out);
            }
        } else if redirect_shard == self.id {
            self.deliver_redirected(redirect, id, self.id, value);
        } else {
            let msg = TrackingMessage::Redirected { target: redirect, client: id, from: self.id, value: value.to_vec() };
            self.send_to(redirect_shard, Message::Tracking(msg));
        }
    }

    fn deliver_redirected(&mut self, target: u64, client: u64, from: usize, value: &[u8]) {
        match self.tracking_conn(target) {
            Some(t) => {
                let c = &self.conns[t as usize].as_ref().unwrap().client;
                let mut out = Vec::new();
                if frame_for(c.resp, c.in_pubsub_mode(), value, &mut out) {
                    self.tracking_push(t, &out);
                }
            }
            None if from == self.id => {
                if let Some(index) = self.tracking_conn(client) {
                    self.redirect_broken(index, target);
                }
            }
            None => self.send_to(from, Message::Tracking(TrackingMessage::RedirBroken { client, target })),
        }
    }

    /// The redirect target of tracking client `index` is gone: flag `R`, and
    /// a `tracking-redir-broken` push for a RESP3 client (each time).
    fn redirect_broken(&mut self, index: u32, target: u64) {
        let c = &mut self.conns[index as usize].as_mut().unwrap().client;
        if !c.tracking.on() || c.tracking.redirect != target {
            return;
        }
        c.tracking.flags |= flag::BROKEN_REDIR;
        let (flags, resp) = (c.tracking.flags, c.resp);
        if let Some(info) = self.state().clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.tracking_flags = flags;
        }
        if resp >= 3 {
            let mut out = Vec::new();
            redir_broken_push(target, &mut out);
            self.tracking_push(index, &out);
        }
    }

    /// Appends a push to connection `index`, behind the replies it still
    /// waits for; CLIENT REPLY OFF does not hold pushes back (Redis).
    fn tracking_push(&mut self, index: u32, bytes: &[u8]) {
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.slots.is_empty() {
            conn.out.extend_from_slice(bytes);
        } else {
            let mut p = self.pool.pop().unwrap_or_default();
            p.data.clear();
            p.ends.clear();
            p.data.extend_from_slice(bytes);
            let generation = conn.generation;
            match &mut self.hops.own_slot {
                // The invalidation of a hop's own write, published as the
                // hop completes: behind its reply, ahead of later ones.
                Some((t, seq, behind)) if t.index == index && t.generation == generation => {
                    conn.insert_ready_slot_after(*seq, *behind, p);
                    *behind += 1;
                }
                _ => conn.push_ready_slot(p, false),
            }
        }
        self.mark_dirty(index);
        let now = self.clock.now_ms();
        self.check_output_limit(index, now);
    }
}
