//! Cross-shard messages: one SPSC queue per ordered pair of shards (rtrb),
//! plus a local overflow queue so a sender never blocks on a full ring.

use std::collections::VecDeque;

/// Identifies a connection on its home shard: slab index and generation, so a
/// reply for a connection that closed meanwhile is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    Request { from: usize, conn: ConnToken, seq: u64, db: u8, resp: u8, cmd: u16, args: PackedArgs },
    /// The encoded reply to a `Request`, in `args.data` (the request's own
    /// buffers come back, so forwarding allocates nothing in steady state).
    Reply { conn: ConnToken, seq: u64, args: PackedArgs },
    /// A MONITOR line for every monitoring client of the receiving shard.
    MonitorLine { line: Vec<u8> },
}

pub struct Outbox {
    pub producer: rtrb::Producer<Message>,
    pub overflow: VecDeque<Message>,
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
            out[from].0[to] = Some(Outbox { producer: p, overflow: VecDeque::new() });
            out[to].1[from] = Some(c);
        }
    }
    out
}
