//! The loop's side of pub/sub: after every command, the messages it left
//! (`ShardState::pending_publish`, keyspace notifications) are published on
//! their channels' owners, and the deliveries queued on this shard
//! (`ShardPubSub::outgoing`) leave: this shard's connections get them
//! written into their buffers, every other destination shard one
//! `Message::Deliver` with its whole batch. Also: what a closed connection
//! leaves in the owners' tables.

use crate::messaging::held_order;
use crate::messaging::pubsub::{self, DeliveryBatch, Kind, Subscriber};
use crate::network::conn::Closing;
use crate::network::event_loop::EventLoop;
use crate::shard::hold::ShardMask;
use crate::shard::mailbox::{ConnToken, Message};

impl EventLoop {
    /// The post-command step of pub/sub, run after every command this
    /// thread runs (its own, forwarded to it, or under a hold; EXEC's queued
    /// commands are covered by EXEC's own step) and once per loop turn (the
    /// cron's active expiry). Costs three empty checks when nothing was
    /// published. The `notify` branch's keyspace events go through here.
    /// Always inlined (LLVM kept it a call in the command path): the
    /// checks only; the work is out of line.
    #[inline(always)]
    pub fn after_command_messaging(&mut self) {
        let holding = !self.holding.is_empty();
        let st = self.state();
        if holding || !st.pending_publish.is_empty() || !st.pubsub.outgoing.is_empty() {
            self.after_command_messaging_work();
        }
    }

    /// Whether the command that just ran left events to publish (on this
    /// shard, a held one, or in the hold's queue).
    pub(crate) fn events_wait(&self) -> bool {
        !self.set.get(self.id).pending_publish.is_empty()
            || (!self.holding.is_empty()
                && (held_order::pending() || self.holding.iter().any(|s| self.set.has(s) && !self.set.get(s).pending_publish.is_empty())))
    }

    #[inline(never)]
    pub(crate) fn after_command_messaging_work(&mut self) {
        // Under a hold: only when the command left events (a held command
        // with notifications off publishes nothing).
        let held =
            !self.holding.is_empty() && (held_order::pending() || self.holding.iter().any(|s| self.set.has(s) && !self.set.get(s).pending_publish.is_empty()));
        if held || !self.state().pending_publish.is_empty() {
            self.route_pending_publish();
        }
        if !self.state().pubsub.outgoing.is_empty() {
            self.flush_deliveries();
        }
    }

    /// Publishes what the command left in `pending_publish` (on this shard
    /// and on any it holds), exactly as PUBLISH would, without a reply, from
    /// the shard that emitted it (`pubsub::publish_pending`: every shard
    /// has every notification channel's subscribers and every pattern).
    fn route_pending_publish(&mut self) {
        let mut sources = self.holding;
        sources.insert(self.id);
        pubsub::publish_pending(&mut self.set, sources, &mut self.own_pushes);
        if !self.holding.is_empty() && held_order::pending() {
            // A held command's events, in its order (`held_order`).
            let mut list = held_order::take_events();
            pubsub::publish_in_order(&mut self.set, self.id, &mut list, &mut self.own_pushes);
            held_order::give_back_events(list);
        }
    }

    /// Sends this shard's queued deliveries: one message per destination
    /// shard, this shard's own connections written directly.
    pub fn flush_deliveries(&mut self) {
        let pending = ShardMask(self.state().pubsub.outgoing.pending);
        for shard in pending.iter() {
            let batch = self.state().pubsub.outgoing.take(shard);
            // Taken right before the batch leaves (see `DeliveryStamps`).
            let stamp = self.server.delivery_stamps.take(shard);
            if shard == self.id {
                self.accept_delivery(stamp, batch);
            } else {
                // A message or keyspace event tells of a write: the write
                // is numbered before anything its reader does next.
                self.hand_over_before_answer();
                self.send_to(shard, Message::Deliver { stamp, batch });
            }
        }
    }

    /// Writes batch `stamp` and those held behind it, in stamp order.
    fn accept_delivery(&mut self, stamp: u64, batch: DeliveryBatch) {
        let inbound = &mut self.state().pubsub.inbound;
        if stamp == inbound.next && inbound.early.is_empty() {
            inbound.next += 1;
            self.deliver(&batch);
            let id = self.id;
            self.state().pubsub.outgoing.give_back(id, batch);
            return;
        }
        let mut due = Vec::new();
        self.state().pubsub.inbound.accept(stamp, batch, &mut due);
        for b in &due {
            self.deliver(b);
        }
    }

    /// Writes a batch's messages into the connections it names (those still
    /// open and subscribed; a token of a closed connection matches nothing).
    /// A connection with replies still out on other shards gets the message
    /// queued behind them. Each is held to its output-buffer limit.
    fn deliver(&mut self, batch: &DeliveryBatch) {
        let now = self.clock.now_ms();
        // A finished hop publishing its events (`Hops::own_slot`): those for
        // its own connection go ahead of its reply, as Redis writes a
        // command's events while it runs.
        let own = self.hops.own_slot.map(|(t, seq, _)| (t, seq));
        for (bytes, tokens, any_client) in batch.iter() {
            for t in tokens {
                let Some(Some(c)) = self.conns.get_mut(t.index as usize) else {
                    continue;
                };
                if c.generation != t.generation || c.closing != Closing::No || !(any_client || c.client.pubsub.any()) {
                    continue;
                }
                if c.slots.is_empty() {
                    pubsub::append_for(&mut c.out, bytes, c.client.resp);
                } else {
                    let mut p = self.pool.pop().unwrap_or_default();
                    p.data.clear();
                    p.ends.clear();
                    pubsub::append_for(&mut p.data, bytes, c.client.resp);
                    match own {
                        Some((o, seq)) if o.index == t.index && o.generation == t.generation => c.insert_ready_slot_before(seq, p),
                        // A blocked client gets the message before the
                        // reply its command still waits for, as Redis
                        // writes it at once (the push that wakes it
                        // notifies before the pop is served).
                        _ => match c.blocked.as_ref().and_then(|w| w.seq) {
                            Some(seq) => c.insert_ready_slot_before(seq, p),
                            None => c.push_ready_slot(p, false),
                        },
                    }
                }
                self.mark_dirty(t.index);
                self.check_output_limit(t.index, now);
            }
        }
    }

    /// A message from another shard for pub/sub (`Message::Deliver`,
    /// `PubSubDrop`).
    pub fn on_pubsub_message(&mut self, msg: Message) {
        match msg {
            Message::Deliver { stamp, batch } => self.accept_delivery(stamp, batch),
            Message::PubSubDrop { subscriber, kind, names } => {
                let ps = &mut self.state().pubsub;
                for n in &names {
                    ps.remove(kind, n, subscriber);
                }
            }
            _ => unreachable!("not a pub/sub message"),
        }
    }

    /// Drops the subscriptions of connection `index`, which is closing,
    /// from every owner's tables: directly where this thread has the owner,
    /// by `Message::PubSubDrop` elsewhere.
    pub fn drop_subscriptions(&mut self, index: u32, token: ConnToken) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        if !conn.client.pubsub.any() {
            return;
        }
        let subs = std::mem::take(&mut conn.client.pubsub);
        conn.client.pubsub.token = subs.token;
        let me = Subscriber { shard: self.id as u32, token };
        let shards = self.server.shard_count;
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            let mut per_shard: Vec<Vec<Vec<u8>>> = vec![Vec::new(); shards];
            for name in subs.set(kind) {
                pubsub::table_shards(kind, name, shards).iter().for_each(|s| per_shard[s].push(name.clone()));
            }
            for (s, names) in per_shard.into_iter().enumerate() {
                if names.is_empty() {
                    continue;
                }
                if self.set.has(s) {
                    let ps = &mut self.set.get_mut(s).pubsub;
                    for n in &names {
                        ps.remove(kind, n, me);
                    }
                } else {
                    self.send_to(s, Message::PubSubDrop { subscriber: me, kind, names });
                }
            }
        }
    }
}
