//! Messaging between clients: client-side caching invalidations (tracking).

pub mod tracking;
pub mod tracking_loop;
