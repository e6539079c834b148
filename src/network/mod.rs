//! The network loop: one io_uring per shard thread. Multishot accept and
//! multishot receive into a provided-buffer ring, batched sends, and one
//! `io_uring_enter` per loop turn for all connections of the shard.

pub mod acl;
pub mod blocking;
pub mod bufring;
pub mod client_memory;
pub mod conn;
pub mod dispatch;
pub mod event_loop;
pub mod held;
pub mod hop;
pub mod listener;
pub mod maxmemory;
pub mod multi;
pub mod prefetch;
pub mod replica;
pub mod rounds;
pub mod rounds_move;
pub mod route;
pub mod script;
pub mod uring;
