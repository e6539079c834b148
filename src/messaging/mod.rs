//! Messaging between connections: pub/sub (`pubsub`, delivered by
//! `delivery`), keyspace notifications (`notify`, published through
//! `ShardState::pending_publish`), blocking pops (`blocking`), client-side caching
//! invalidations (`tracking`); a held command's events and invalidations
//! in execution order (`held_order`); a writer's own event pushes around
//! its reply (`own_pushes`).

pub mod blocking;
pub mod delivery;
pub mod held_order;
pub mod hop_order;
pub mod hop_publish;
pub mod notify;
pub mod own_pushes;
pub mod pubsub;
pub mod tracking;
pub mod tracking_loop;

#[cfg(test)]
#[rustfmt::skip]
mod notify_cases;
#[cfg(test)]
mod notify_tests;
