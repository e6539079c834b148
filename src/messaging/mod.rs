//! Messaging between clients: keyspace notifications (and, on other
//! branches, pub/sub, blocking pops and client tracking).

pub mod notify;

#[cfg(test)]
#[rustfmt::skip]
mod notify_cases;
#[cfg(test)]
mod notify_tests;
