//! The coordinator's side of `messaging::hop_order`: a finished hop's
//! events and invalidations published in the command's order.

use crate::messaging::hop_order::{self, Captured};
use crate::messaging::pubsub;
use crate::network::event_loop::EventLoop;

impl EventLoop {
    /// Publishes what a hop's parts left (`batches`, by shard in arrival
    /// order) in the command's order (`hop_order::order`): its keys `keys`
    /// in their order, or an EXEC's commands by `exec` (each one's shard).
    /// Invalidations go from this one thread (FIFO to each tracking
    /// client's shard, and on from there to a REDIRECT target); events are
    /// published from this shard's tables, which have every notification
    /// channel's subscribers and every pattern (`pubsub`, "Notification
    /// channels"), and their deliveries leave now, stamped before the
    /// hop's reply leaves and before any later command's, as in Redis,
    /// where a command's events are published before its reply.
    pub(crate) fn publish_hop(&mut self, batches: Vec<(usize, Box<Captured>)>, keys: &[&[u8]], exec: Option<&[u8]>) {
        let (mut events, mut invalidations) = (Vec::new(), Vec::new());
        hop_order::order(batches, keys, exec, &mut events, &mut invalidations);
        if !invalidations.is_empty() {
            self.send_invalidations(invalidations);
        }
        if events.is_empty() {
            return;
        }
        let me = self.id;
        pubsub::publish_in_order(&mut self.set, me, &mut events, &mut self.own_pushes);
        if !self.state().pubsub.outgoing.is_empty() {
            self.flush_deliveries();
        }
    }
}
