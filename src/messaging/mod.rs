//! Messaging between connections: pub/sub (`pubsub`, delivered by
//! `delivery`), keyspace notifications (`notify`, published through
//! `ShardState::pending_publish`), blocking pops (`blocking`), client-side caching
//! invalidations (`tracking`).

pub mod blocking;
pub mod delivery;
pub mod notify;
pub mod pubsub;
pub mod tracking;
pub mod tracking_loop;

#[cfg(test)]
#[rustfmt::skip]
mod notify_cases;
#[cfg(test)]
mod notify_tests;

/// A thread's list of what a hold emits, in order (`notify`'s events,
/// `tracking`'s invalidations): None outside a hold (`network::held`).
pub type HeldList<T> = std::cell::RefCell<Option<Vec<T>>>;

/// Starts (`on`) or ends collecting into `list`; returns whether it was on.
pub fn collect_held<T>(list: &HeldList<T>, on: bool) -> bool {
    let mut h = list.borrow_mut();
    let was = h.is_some();
    match (on, was) {
        (true, false) => *h = Some(Vec::new()),
        (false, true) => *h = None,
        _ => {}
    }
    was
}

/// Moves what `list` collected so far to the end of `out`.
pub fn take_held<T>(list: &HeldList<T>, out: &mut Vec<T>) {
    if let Some(l) = list.borrow_mut().as_mut() {
        out.append(l);
    }
}
