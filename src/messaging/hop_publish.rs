//! The coordinator's side of `messaging::hop_order`: a finished hop's
//! events and invalidations published in the command's order, and the
//! chain of owners its events travel (`Message::PublishChain`).

use crate::messaging::hop_order::{self, Captured, Event};
use crate::messaging::pubsub::{self, Kind};
use crate::network::event_loop::EventLoop;
use crate::shard::mailbox::Message;

impl EventLoop {
    /// Publishes what a hop's parts left (`batches`, by shard in arrival
    /// order) in the command's order (`hop_order::order`): its keys `keys`
    /// in their order, or an EXEC's commands by `exec` (each one's shard).
    /// `back`: the hop (`seq`) whose reply waits for its events. Returns
    /// whether they are all published (stamped) already; if not, the
    /// chain's last owner says so by `Message::ChainDone`
    /// (`EventLoop::hop_chain_done`), so the reply, and whatever the
    /// connection runs next, follows every event of the command, as in
    /// Redis, where a command's events are published before its reply.
    pub(crate) fn publish_hop(&mut self, batches: Vec<(usize, Box<Captured>)>, keys: &[&[u8]], exec: Option<&[u8]>, back: Option<u64>) -> bool {
        let (mut events, mut invalidations) = (Vec::new(), Vec::new());
        hop_order::order(batches, keys, exec, &mut events, &mut invalidations);
        if !invalidations.is_empty() {
            // From this one thread: FIFO to each tracking client's shard
            // (and on from there to a REDIRECT target).
            self.send_invalidations(invalidations);
        }
        if events.is_empty() {
            return true;
        }
        let back = back.map(|seq| (self.id as u32, seq));
        self.publish_chain(events, 0, back)
    }

    /// Publishes `list[at..]` in order while this shard owns the event's
    /// channel (to its subscribers and every pattern's: each shard has
    /// every pattern), sends the deliveries (stamped now: before any of a
    /// later event's), and hands the rest to the next event's owner.
    /// Returns whether the list ended here; a list that ends on another
    /// shard than `back`'s tells it by `Message::ChainDone`.
    pub(crate) fn publish_chain(&mut self, list: Vec<Event>, mut at: usize, back: Option<(u32, u64)>) -> bool {
        let shards = self.server.shard_count;
        let mut unused = Vec::new();
        while let Some((channel, message)) = list.get(at) {
            if pubsub::exact_shard(channel, shards, self.id) != self.id {
                break;
            }
            let ps = &mut self.state().pubsub;
            ps.publish_patterns(channel, message, None, &mut unused);
            ps.publish_exact(Kind::Channel, channel, message, None, &mut unused);
            at += 1;
        }
        if !self.state().pubsub.outgoing.is_empty() {
            self.flush_deliveries();
        }
        if let Some((channel, _)) = list.get(at) {
            let next = pubsub::owner(channel, shards);
            // A subscriber elsewhere may act on it before this turn ends.
            self.hand_over_before_answer();
            self.send_to(next, Message::PublishChain { list, at, back });
            return false;
        }
        if let Some((origin, seq)) = back.filter(|b| b.0 as usize != self.id) {
            // Stamped: a later delivery anywhere gets a later stamp.
            self.send_to(origin as usize, Message::ChainDone { seq });
        }
        true
    }
}
