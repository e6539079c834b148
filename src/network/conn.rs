//! One client connection on its home shard: query buffer, output buffers,
//! and the queue that keeps replies in request order when some commands run
//! on other shards.

use std::collections::VecDeque;
use std::os::fd::RawFd;

use crate::commands::ClientState;
use crate::protocol::{Args, FrameProgress};
use crate::shard::mailbox::PackedArgs;

/// A reply that is not yet (or not alone) in `out`: either waiting for
/// another shard, or a local reply queued behind one that is.
pub struct Slot {
    pub seq: u64,
    pub ready: Option<PackedArgs>,
    /// CLIENT REPLY OFF/SKIP was in force for this command.
    pub discard: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Closing {
    No,
    /// Close once everything queued has been sent (QUIT, protocol errors).
    AfterWrite,
    /// Closed; waiting for the kernel to finish with our buffers.
    Closed,
}

pub struct Conn {
    pub fd: RawFd,
    pub generation: u32,
    pub client: ClientState,
    /// Unparsed input (only used when a command spans receive buffers, or
    /// while the connection is deferred).
    pub qbuf: Vec<u8>,
    /// How far the parser got into the incomplete request at the front of
    /// `qbuf`, and the arguments it found so far: the next receive goes on
    /// from there instead of parsing the request again from its first byte.
    pub frame: FrameProgress,
    pub frame_args: Args,
    /// Replies ready to send, not yet handed to the kernel.
    pub out: Vec<u8>,
    /// Bytes handed to the kernel by the send in flight (kept alive until it completes).
    pub inflight: Vec<u8>,
    pub inflight_off: usize,
    pub sending: bool,
    pub recv_armed: bool,
    pub slots: VecDeque<Slot>,
    pub next_seq: u64,
    pub closing: Closing,
    /// Waiting to run a command that needs the hold lock or in-flight replies.
    pub deferred: bool,
    /// Deferred because of CLIENT PAUSE: retried once the pause is over.
    pub paused: bool,
    /// In the list of connections with output to flush this turn.
    pub dirty: bool,
    /// When the output buffer first exceeded the soft limit (0 = not over).
    pub soft_limit_since_ms: i64,
}

impl Conn {
    pub fn new(fd: RawFd, generation: u32, client: ClientState) -> Conn {
        Conn {
            fd,
            generation,
            client,
            qbuf: Vec::new(),
            frame: FrameProgress::default(),
            frame_args: Args::new(),
            out: Vec::with_capacity(16 * 1024),
            inflight: Vec::with_capacity(16 * 1024),
            inflight_off: 0,
            sending: false,
            recv_armed: false,
            slots: VecDeque::new(),
            next_seq: 0,
            closing: Closing::No,
            deferred: false,
            paused: false,
            dirty: false,
            soft_limit_since_ms: 0,
        }
    }

    /// Bytes waiting to be sent (the output-buffer size Redis limits).
    pub fn pending_output_bytes(&self) -> usize {
        self.out.len() + (self.inflight.len() - self.inflight_off) + self.slots.iter().map(|s| s.ready.as_ref().map_or(0, |p| p.data.len())).sum::<usize>()
    }

    /// Moves ready slots at the front into `out`; returns emptied buffers to `pool`.
    pub fn drain_slots(&mut self, pool: &mut Vec<PackedArgs>) {
        while let Some(front) = self.slots.front() {
            if front.ready.is_none() {
                break;
            }
            let slot = self.slots.pop_front().unwrap();
            let p = slot.ready.unwrap();
            if !slot.discard {
                self.out.extend_from_slice(&p.data);
            }
            if pool.len() < 1024 {
                pool.push(p);
            }
        }
    }
}
