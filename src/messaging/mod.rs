//! Messaging between connections: pub/sub (`pubsub`). Keyspace
//! notifications, client tracking and blocking commands hang on the same
//! machinery (`ShardState::pending_publish`, `pubsub::deliver_*`).

pub mod delivery;
pub mod pubsub;
