//! Cross-shard messages: one SPSC queue per ordered pair of shards (rtrb),
//! plus a local overflow queue so a sender never blocks on a full ring.

use std::collections::VecDeque;

/// Identifies a connection on its home shard: slab index and generation, so a
/// reply for a connection that closed meanwhile is dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnToken {
    pub index: u32,
    pub generation: u32,
}

/// A command packed for another shard: arguments back to back in `data`,
/// `ends[i]` the end offset of argument i.
#[derive(Default, Debug)]
pub struct PackedArgs {
    pub data: Vec<u8>,
    pub ends: Vec<u32>,
}

impl PackedArgs {
    pub fn pack<'a>(&mut self, args: impl Iterator<Item = &'a [u8]>) {
        self.data.clear();
        self.ends.clear();
        for a in args {
            self.data.extend_from_slice(a);
            self.ends.push(self.data.len() as u32);
        }
    }
    /// Appends one argument.
    pub fn push(&mut self, a: &[u8]) {
        self.data.extend_from_slice(a);
        self.ends.push(self.data.len() as u32);
    }
    pub fn slices<'a>(&'a self, out: &mut Vec<&'a [u8]>) {
        out.clear();
        let mut start = 0usize;
        for &e in &self.ends {
            out.push(&self.data[start..e as usize]);
            start = e as usize;
        }
    }
}

pub enum Message {
    /// Execute a command for a connection of the sending shard.
    /// `client` is the id of the client it runs for (NOLOOP), `track`
    /// whether its keys are remembered for that client's tracking, `fd`
    /// the connection's socket (a blocked client's owner polls it before
    /// serving it: `messaging::blocking`, "A client that hung up").
    Request { from: usize, conn: ConnToken, seq: u64, db: u32, fd: i32, resp: u8, cmd: u16, client: u64, track: bool, args: PackedArgs },
    /// The encoded reply to a `Request`, in `args.data` (the request's own
    /// buffers come back, so forwarding allocates nothing in steady state).
    Reply { conn: ConnToken, seq: u64, args: PackedArgs },
    /// A MONITOR line for every monitoring client of the receiving shard;
    /// `stamp` orders it among every line sent to that shard
    /// (`Server::monitor_stamps`).
    MonitorLine { stamp: u64, line: Vec<u8> },
    /// Pub/sub messages for connections of the receiving shard, from the
    /// owner of their channels (`messaging::pubsub`).
    /// `stamp` orders it among every batch sent to that shard (see
    /// `messaging::pubsub::DeliveryStamps`).
    Deliver { stamp: u64, batch: crate::messaging::pubsub::DeliveryBatch },
    /// A closed connection's subscriptions, to drop from the receiving
    /// shard's tables.
    PubSubDrop { subscriber: crate::messaging::pubsub::Subscriber, kind: crate::messaging::pubsub::Kind, names: Vec<Vec<u8>> },
    /// Owner to home: the forwarded blocking command found no data and its
    /// client is now queued as `waiter` (this answers the `Request`).
    Blocked { waiter: std::sync::Arc<crate::messaging::blocking::Waiter> },
    /// Owner to home: the blocked client's reply, popped for it.
    Served { waiter: std::sync::Arc<crate::messaging::blocking::Waiter>, args: PackedArgs },
    /// Home to owner: the waiter is resolved (timeout, unblock, gone,
    /// served elsewhere); drop it from the queues of the owner's keys.
    BlockCancel { waiter: std::sync::Arc<crate::messaging::blocking::Waiter> },
    /// Client tracking: invalidations and registrations (`messaging::tracking`).
    Tracking(crate::messaging::tracking::TrackingMessage),
    /// Coordinator to owner: the receiving shard's part of a multi-shard
    /// command, run when hop intent `part.seq` heads its queue (`network::hop`).
    HopPart(crate::network::hop::Part),
    /// Owner to coordinator: the reply to that part, in `args.data`, and
    /// how long it ran; with a cut, what it left for the unit.
    HopDone { seq: u64, usec: u64, args: PackedArgs, ops: Option<Box<crate::network::hop::PartOps>> },
}

/// Requests one shard may have outstanding at another (sent, reply not yet
/// back) before connections that would forward more wait (`Flow::Defer`).
/// Replies answer requests, so this bounds both directions of a pair of
/// mailboxes, ring and overflow queue together: without it a client
/// pipelining into a busy shard grew the overflow queue without limit.
pub const REQUESTS_OUTSTANDING_MAX: usize = 8192;
/// The same bound in argument bytes (one request always goes, however large).
pub const REQUEST_BYTES_OUTSTANDING_MAX: usize = 64 << 20;
/// MONITOR lines queued toward one shard (from every shard, ring and
/// overflow; `Server::monitor_lines_queued`) before the commands that would
/// feed more wait: a monitor on a busy shard slows the server as in Redis,
/// where one thread writes every line, instead of growing a queue.
pub const MONITOR_BACKLOG_MAX: usize = 16384;

pub struct Outbox {
    pub producer: rtrb::Producer<Message>,
    pub overflow: VecDeque<Message>,
    /// Argument bytes of each request sent through this outbox whose reply
    /// has not come back, oldest first: the receiver answers in the order it
    /// pops, so replies come back in this order.
    outstanding: VecDeque<usize>,
    outstanding_bytes: usize,
}

impl Outbox {
    /// Queues `msg`; returns true when the message went to the shared ring
    /// (the receiver may need a doorbell).
    pub fn send(&mut self, msg: Message) {
        if self.overflow.is_empty() {
            if let Err(rtrb::PushError::Full(m)) = self.producer.push(msg) {
                self.overflow.push_back(m);
            }
        } else {
            self.overflow.push_back(msg);
        }
    }
    /// Whether a request of `bytes` argument bytes may be sent now.
    pub fn may_send_request(&self, bytes: usize) -> bool {
        self.outstanding.is_empty() || (self.outstanding.len() < REQUESTS_OUTSTANDING_MAX && self.outstanding_bytes + bytes <= REQUEST_BYTES_OUTSTANDING_MAX)
    }
    /// Queues a request (`Message::Request`) and counts it outstanding.
    pub fn send_request(&mut self, msg: Message, bytes: usize) {
        self.outstanding.push_back(bytes);
        self.outstanding_bytes += bytes;
        self.send(msg);
    }
    /// A reply came back from the receiving shard: its oldest request is answered.
    pub fn reply_received(&mut self) {
        if let Some(b) = self.outstanding.pop_front() {
            self.outstanding_bytes -= b;
        }
    }
    /// Requests sent and not yet answered.
    pub fn requests_outstanding(&self) -> usize {
        self.outstanding.len()
    }
    /// Moves what fits from the overflow into the ring.
    pub fn flush_overflow(&mut self) {
        while let Some(m) = self.overflow.pop_front() {
            if let Err(rtrb::PushError::Full(m)) = self.producer.push(m) {
                self.overflow.push_front(m);
                break;
            }
        }
    }
}

/// Builds the N x N mesh; returns per shard (outboxes to every shard, inboxes from every shard).
#[allow(clippy::type_complexity)]
pub fn mesh(n: usize, capacity: usize) -> Vec<(Vec<Option<Outbox>>, Vec<Option<rtrb::Consumer<Message>>>)> {
    let mut out: Vec<(Vec<Option<Outbox>>, Vec<Option<rtrb::Consumer<Message>>>)> =
        (0..n).map(|_| ((0..n).map(|_| None).collect(), (0..n).map(|_| None).collect())).collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (p, c) = rtrb::RingBuffer::new(capacity);
            out[from].0[to] = Some(Outbox { producer: p, overflow: VecDeque::new(), outstanding: VecDeque::new(), outstanding_bytes: 0 });
            out[to].1[from] = Some(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: usize) -> Message {
        let mut args = PackedArgs::default();
        args.data.resize(bytes, b'x');
        Message::Request { from: 0, conn: ConnToken { index: 0, generation: 0 }, seq: 0, db: 0, fd: -1, resp: 2, cmd: 0, client: 0, track: false, args }
    }

    #[test]
    fn outstanding_requests_are_bounded_in_count_and_bytes() {
        let mut m = mesh(2, 4);
        let mut out = m[0].0[1].take().unwrap();
        for _ in 0..REQUESTS_OUTSTANDING_MAX {
            assert!(out.may_send_request(1));
            out.send_request(request(1), 1);
        }
        assert!(!out.may_send_request(1), "the count bound holds");
        // Ring full (4), the rest in the overflow queue: bounded with the count.
        assert_eq!(out.overflow.len(), REQUESTS_OUTSTANDING_MAX - 4);
        out.reply_received();
        assert!(out.may_send_request(1));
        for _ in 1..REQUESTS_OUTSTANDING_MAX {
            out.reply_received();
        }
        assert_eq!(out.requests_outstanding(), 0);
        // One request always goes, however large; then the byte bound holds.
        assert!(out.may_send_request(REQUEST_BYTES_OUTSTANDING_MAX * 2));
        out.send_request(request(16), REQUEST_BYTES_OUTSTANDING_MAX * 2);
        assert!(!out.may_send_request(1));
        out.reply_received();
        out.send_request(request(16), REQUEST_BYTES_OUTSTANDING_MAX - 10);
        assert!(out.may_send_request(10));
        assert!(!out.may_send_request(11));
    }
}
