//! Machinery shared by the connection-facing features that outlive one
//! command: blocking pops (`blocking`).

pub mod blocking;
