//! A held command's keyspace events and tracking invalidations in execution
//! order.
//!
//! Outside a hold each shard's thread runs its own commands, and what they
//! emit queues on the key's shard (`ShardState::pending_publish`,
//! `ShardTracking::outgoing`), one command at a time: per shard, execution
//! order. Under a hold (`EventLoop::with_held`) one command writes keys of
//! several shards, and those per-shard queues would lose the order between
//! them: an LMOVE's `rpush dst` on one shard and `lpop src` on the other
//! would be published shard by shard, so a subscriber could read the pop
//! before the push (Redis: push, pop, del).
//!
//! So while this thread holds shards, every event and invalidation any
//! state emits goes to this thread's one queue here instead, in the order
//! the command emits them; the loop publishes the queue (`delivery`,
//! `tracking_loop`) before the held shards are let go, from the holding
//! shard's tables, which have every notification channel's subscribers
//! and every pattern (`messaging::pubsub`, "Notification channels"): one
//! list, one order, whichever shards own the channels. The thread-local is
//! touched only where an event is emitted (notifications on) or a tracked
//! key is invalidated, and by `with_held`'s begin and end: nothing on a
//! single-shard command's path.

use std::cell::RefCell;

use crate::messaging::tracking::Outgoing;

struct Held {
    active: bool,
    events: Vec<(Vec<u8>, Vec<u8>)>,
    invalidations: Vec<Outgoing>,
}

thread_local! {
    static HELD: RefCell<Held> = const { RefCell::new(Held { active: false, events: Vec::new(), invalidations: Vec::new() }) };
}

/// This thread starts running over held shards (`with_held`).
pub fn begin() {
    HELD.with(|h| h.borrow_mut().active = true);
}

/// The hold ends; its queues were published (`pending` is false).
pub fn end() {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        debug_assert!(h.events.is_empty() && h.invalidations.is_empty(), "a hold's events left unpublished");
        h.active = false;
    });
}

/// Whether events or invalidations wait in the hold's queues.
pub fn pending() -> bool {
    HELD.with(|h| {
        let h = h.borrow();
        !h.events.is_empty() || !h.invalidations.is_empty()
    })
}

/// Runs `f` on the hold's event queue while a hold runs on this thread, or
/// on `own` (the emitting state's queue) otherwise.
#[inline]
pub fn events_into(own: &mut Vec<(Vec<u8>, Vec<u8>)>, f: impl FnOnce(&mut Vec<(Vec<u8>, Vec<u8>)>)) {
    queue_into(own, |h| &mut h.events, f);
}

/// `events_into` for tracking invalidations.
#[inline]
pub fn invalidations_into(own: &mut Vec<Outgoing>, f: impl FnOnce(&mut Vec<Outgoing>)) {
    queue_into(own, |h| &mut h.invalidations, f);
}

#[inline]
fn queue_into<T>(own: &mut Vec<T>, queue: impl FnOnce(&mut Held) -> &mut Vec<T>, f: impl FnOnce(&mut Vec<T>)) {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if h.active {
            f(queue(&mut h));
        } else {
            f(own);
        }
    })
}

/// The hold's queued events, taken (give the emptied list back with
/// `give_back_events`: its allocation serves the next hold).
pub fn take_events() -> Vec<(Vec<u8>, Vec<u8>)> {
    HELD.with(|h| std::mem::take(&mut h.borrow_mut().events))
}

/// Returns the list `take_events` gave, emptied.
pub fn give_back_events(mut list: Vec<(Vec<u8>, Vec<u8>)>) {
    list.clear();
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if h.events.is_empty() && list.capacity() <= crate::messaging::pubsub::PENDING_KEEP_ENTRIES {
            h.events = list;
        }
    })
}

/// The hold's queued invalidations, taken (see `take_events`).
pub fn take_invalidations() -> Vec<Outgoing> {
    HELD.with(|h| std::mem::take(&mut h.borrow_mut().invalidations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_collects_in_emission_order_and_only_while_active() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        events_into(&mut a, |v| v.push((b"c1".to_vec(), b"m1".to_vec())));
        assert_eq!(a.len(), 1);
        begin();
        events_into(&mut b, |v| v.push((b"c2".to_vec(), b"m2".to_vec())));
        events_into(&mut a, |v| v.push((b"c3".to_vec(), b"m3".to_vec())));
        assert!(pending() && a.len() == 1 && b.is_empty());
        let got = take_events();
        assert_eq!(got, vec![(b"c2".to_vec(), b"m2".to_vec()), (b"c3".to_vec(), b"m3".to_vec())]);
        assert!(!pending());
        give_back_events(got);
        end();
        events_into(&mut b, |v| v.push((b"c4".to_vec(), b"m4".to_vec())));
        assert_eq!(b.len(), 1);
    }
}
