//! Blocking pops across shards (Redis's blocked.c, for lists and sorted sets).
//!
//! **Where a waiter lives.** A client blocked on keys is a `Waiter`, shared
//! (`Arc`) by the client's home shard and the owner shard of every key it
//! waits on. Each owner queues it FIFO per key (`Blocking::queues`); the
//! home keeps it on the connection and in its timeout table.
//!
//! **Exactly once.** A waiter is claimed once, by compare-and-swap of its
//! `state` from `WAITING`: by an owner that has data for it (it then pops,
//! on its own thread, and sends the reply home), or by the home (timeout,
//! CLIENT UNBLOCK, disconnect). Only the claimant acts, so an element is
//! popped for at most one waiter, and never for a waiter that timed out or
//! went away; a waiter claimed elsewhere is dropped lazily from the other
//! queues (and by the cancel messages the home sends when it resolves it).
//!
//! **A client that hung up.** The home learns of a disconnect when its
//! thread reads the EOF, which may come after the key's owner, on another
//! thread, has run a push; Redis reads the EOF and frees the client before
//! it serves anyone else. So the owner looks at the waiter's socket itself
//! (`peer_gone`, one zero-timeout poll) before it claims the waiter, and
//! claims a waiter whose peer hung up GONE instead: the element stays, or
//! goes to the next waiter, and INFO's `blocked_clients`, which leaves out
//! the same sockets (`hung_up`), never counts a client that can still be
//! served. The socket stays open (the descriptor is not reused) until the
//! waiter is claimed: the home claims it GONE before it closes a blocked
//! connection, and keeps a closed connection whose forwarded blocking
//! command has not answered yet until it does (`Conn::block_pending`).
//!
//! **When keys are served.** `ShardState::modified` marks a key with
//! waiters ready (one branch when nobody is blocked on the shard); the
//! owner's thread serves ready keys after the command that made them ready
//! (after EXEC for a transaction: after the whole command; after a hop's
//! part); a coordinator serves the keys it made ready on the shards it holds
//! before it lets them go; so a key is served before the writer's client can
//! run its next command, as in Redis. What could not be served then (a
//! BLMOVE into a shard not held) waits for the owner's next loop turn.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::shard::mailbox::ConnToken;

/// Queue entries of every shard (`Blocking::queued` summed): a
/// coordinator reads it (relaxed) to leave an EXEC whose keys someone may
/// wait on to a hold, where its ready keys are served in Redis's order.
/// Touched only when a client blocks or is resolved.
pub static QUEUED: AtomicUsize = AtomicUsize::new(0);

/// Whether any client waits on a key of any shard.
#[inline]
pub fn anyone_waits() -> bool {
    QUEUED.load(Ordering::Relaxed) > 0
}

/// The order keys became ready in, across shards (Redis's one
/// `ready_keys` list): a holder serves the keys of all its shards by it.
static READY_SEQ: AtomicU64 = AtomicU64::new(0);

pub const WAITING: u8 = 0;
/// Claimed by an owner shard, which pops for it and sends the reply.
pub const SERVED: u8 = 1;
/// Claimed by the home: timeout or CLIENT UNBLOCK .. TIMEOUT.
pub const TIMED_OUT: u8 = 2;
/// Claimed by CLIENT UNBLOCK .. ERROR.
pub const UNBLOCKED_ERROR: u8 = 3;
/// Claimed by the home: the client disconnected or was killed.
pub const GONE: u8 = 4;

/// What a blocked command does with the key that gets data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOp {
    /// BLPOP / BRPOP.
    Pop { head: bool },
    /// BLMOVE / BRPOPLPUSH: `sides` are LMOVE's two direction arguments as
    /// the client sent them while it is served at once (propagated as sent,
    /// as Redis does), Redis's `left`/`right` once it waits
    /// (`commands::blocking::pop_or_block`); None for BRPOPLPUSH
    /// (propagated as RPOPLPUSH).
    Move { dst: Vec<u8>, from_head: bool, to_head: bool, sides: Option<(Vec<u8>, Vec<u8>)> },
    /// BLMPOP.
    MPop { head: bool, count: usize },
    /// BZPOPMIN / BZPOPMAX.
    ZPop { max: bool },
    /// BZMPOP.
    ZMPop { max: bool, count: usize },
    /// XREAD / XREADGROUP BLOCK: per key (in `BlockRequest::keys` order) the
    /// ID entries must be greater than (`StreamId::MAX`: XREADGROUP's `>`),
    /// the COUNT, and the group and consumer.
    XRead { ids: Vec<crate::types::stream::StreamId>, count: usize, group: Option<(Vec<u8>, Vec<u8>)>, noack: bool },
}

/// The type of value a blocked op waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    List,
    ZSet,
    Stream,
}

impl BlockOp {
    /// Whether the op waits for a list (else a sorted set or a stream).
    pub fn wants_list(&self) -> bool {
        self.kind() == WaitKind::List
    }

    /// The name of the command that blocked (its command-stats entry).
    pub fn command_name(&self) -> &'static [u8] {
        match self {
            BlockOp::Pop { head: true } => b"blpop",
            BlockOp::Pop { head: false } => b"brpop",
            BlockOp::Move { sides: None, .. } => b"brpoplpush",
            BlockOp::Move { .. } => b"blmove",
            BlockOp::MPop { .. } => b"blmpop",
            BlockOp::ZPop { max: false } => b"bzpopmin",
            BlockOp::ZPop { max: true } => b"bzpopmax",
            BlockOp::ZMPop { .. } => b"bzmpop",
            BlockOp::XRead { group: Some(_), .. } => b"xreadgroup",
            BlockOp::XRead { .. } => b"xread",
        }
    }

    /// XREADGROUP: failed when its key stops being a stream.
    pub fn reads_group(&self) -> bool {
        matches!(self, BlockOp::XRead { group: Some(_), .. })
    }

    pub fn kind(&self) -> WaitKind {
        match self {
            BlockOp::Pop { .. } | BlockOp::Move { .. } | BlockOp::MPop { .. } => WaitKind::List,
            BlockOp::ZPop { .. } | BlockOp::ZMPop { .. } => WaitKind::ZSet,
            BlockOp::XRead { .. } => WaitKind::Stream,
        }
    }
}

/// Left by a handler that found nothing to pop and may block
/// (`Blocking::request`): the network loop, which knows the client, makes
/// the `Waiter` and registers it before anything else runs.
#[derive(Debug)]
pub struct BlockRequest {
    pub keys: Vec<Vec<u8>>,
    pub op: BlockOp,
    /// Unix ms; 0: no timeout.
    pub deadline_ms: i64,
    /// The slowlog entry the command would have made, left by `exec::call`
    /// for when the client is served (None until then).
    pub slowlog: Option<Box<PendingSlowlog>>,
}

/// A blocked command's slowlog entry, made when it is served, as Redis 7.0
/// does (`call` skips a command that blocked; `updateStatsOnUnblock` logs
/// it): the command as shown (redacted), who sent it, and the time it ran
/// before it blocked. A client that times out or is unblocked is not logged.
#[derive(Debug)]
pub struct PendingSlowlog {
    pub args: Vec<Vec<u8>>,
    pub addr: Vec<u8>,
    pub name: Vec<u8>,
    pub usec: u64,
}

#[derive(Debug)]
pub struct Waiter {
    pub state: AtomicU8,
    /// The shard of the blocked connection.
    pub home: usize,
    pub conn: ConnToken,
    /// The connection's socket, open until the waiter is claimed (module
    /// doc, "A client that hung up"): its owner polls it before serving.
    pub fd: i32,
    /// The reply slot of a command forwarded to the owner (None: run on
    /// the home's thread, the reply goes straight to the output).
    pub seq: Option<u64>,
    pub db: usize,
    pub resp: u8,
    pub keys: Vec<Vec<u8>>,
    pub op: BlockOp,
    pub deadline_ms: i64,
    /// Logged when the waiter is served (`PendingSlowlog`).
    pub slowlog: Option<Box<PendingSlowlog>>,
}

impl Waiter {
    pub fn new(home: usize, conn: ConnToken, fd: i32, seq: Option<u64>, db: usize, resp: u8, req: BlockRequest) -> Arc<Waiter> {
        Arc::new(Waiter {
            state: AtomicU8::new(WAITING),
            home,
            conn,
            fd,
            seq,
            db,
            resp,
            keys: req.keys,
            op: req.op,
            deadline_ms: req.deadline_ms,
            slowlog: req.slowlog,
        })
    }

    /// Claims the waiter for `to`; false when someone else claimed it first.
    pub fn claim(&self, to: u8) -> bool {
        self.state.compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }
}

/// A shard's blocking state: as the owner of keys (queues, ready keys) and
/// as the home of connections (timeouts, unblocked clients).
#[derive(Default, Debug)]
pub struct Blocking {
    /// Waiters per database and key, first come first.
    queues: Vec<HashMap<Vec<u8>, VecDeque<Arc<Waiter>>>>,
    /// Entries in `queues` (the one check `modified` makes).
    queued: usize,
    /// Keys with waiters changed since they were last served, in order:
    /// (db, key, the order across shards it became ready in).
    pub ready: Vec<(usize, Vec<u8>, u64)>,
    /// Set by a blocking command's handler that blocks; taken by the loop.
    pub request: Option<BlockRequest>,
    /// Home side: connections (index, generation) whose waiter another
    /// thread claimed (CLIENT UNBLOCK); the loop replies to them.
    pub unblocked: Vec<ConnToken>,
    /// Home side: (deadline, connection index, generation) of blocked
    /// connections with a timeout; stale entries are skipped when due.
    pub timeouts: BTreeSet<(i64, u32, u32)>,
    /// Set while this shard's thread serves ready keys: a BLMOVE served
    /// into a shard held for it leaves that shard's keys to its owner, so
    /// the key being served finishes its waiters first (Redis's order).
    pub serving: bool,
    /// Set inside a hold on the holder's shard: the shards of ready keys it
    /// could not serve (a BLMOVE's destination it does not hold) and those
    /// destinations'; the holder serves them once it has let go
    /// (`network::blocking`, "Moves out of a hold").
    pub unreached: crate::shard::hold::ShardMask,
    /// While the holder serves `unreached` (no second try from its hold).
    pub serving_unreached: bool,
    /// Home side: replies to forwarded blocking commands served before
    /// their `Message::Blocked` reached this shard (a holder of the owner
    /// serves from this very thread, or another shard's `Served` overtakes
    /// the owner's `Blocked`: two mailboxes, no order between them). Given
    /// to the client when its `Blocked` arrives.
    pub early: Vec<(Arc<Waiter>, crate::shard::mailbox::PackedArgs)>,
}

impl Blocking {
    /// Whether anyone waits on a key of this shard.
    #[inline]
    pub fn has_waiters(&self) -> bool {
        self.queued > 0
    }

    /// Queues `w` on `key` of database `db`.
    pub fn enqueue(&mut self, db: usize, key: &[u8], w: Arc<Waiter>) {
        if self.queues.len() <= db {
            self.queues.resize_with(db + 1, HashMap::new);
        }
        let q = self.queues[db].entry(key.to_vec()).or_default();
        // A waiter on the same key twice (BLPOP k k 0) is queued once.
        if !q.iter().any(|x| Arc::ptr_eq(x, &w)) {
            q.push_back(w);
            self.queued += 1;
            QUEUED.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Marks `key` ready when someone waits on it.
    #[inline]
    pub fn signal(&mut self, db: usize, key: &[u8]) {
        if self.queues.get(db).is_some_and(|m| m.contains_key(key)) && !self.ready.iter().any(|(d, k, _)| *d == db && k == key) {
            self.ready.push((db, key.to_vec(), READY_SEQ.fetch_add(1, Ordering::Relaxed)));
        }
    }

    fn uncount(&mut self, n: usize) {
        self.queued -= n;
        if n > 0 {
            QUEUED.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Marks every waited-on key of `db` ready (SWAPDB, FLUSHDB).
    pub fn signal_db(&mut self, db: usize) {
        let keys: Vec<Vec<u8>> = self.queues.get(db).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for k in keys {
            self.signal(db, &k);
        }
    }

    /// The waiters on `key`, oldest first.
    pub fn queue(&self, db: usize, key: &[u8]) -> Option<&VecDeque<Arc<Waiter>>> {
        self.queues.get(db)?.get(key)
    }

    /// Removes the entry at `i` of `key`'s queue (and the queue when empty).
    pub fn remove_at(&mut self, db: usize, key: &[u8], i: usize) {
        let Some(q) = self.queues.get_mut(db).and_then(|m| m.get_mut(key)) else { return };
        if q.remove(i).is_some() {
            self.queued -= 1;
            QUEUED.fetch_sub(1, Ordering::Relaxed);
        }
        if q.is_empty() {
            self.queues[db].remove(key);
        }
    }

    /// Drops the entries of waiters no longer waiting from `key`'s queue.
    pub fn prune(&mut self, db: usize, key: &[u8]) {
        let Some(q) = self.queues.get_mut(db).and_then(|m| m.get_mut(key)) else { return };
        let before = q.len();
        q.retain(|w| w.is_waiting());
        let (gone, empty) = (before - q.len(), q.is_empty());
        self.uncount(gone);
        if empty {
            self.queues[db].remove(key);
        }
    }

    /// Removes `w` from the queues of its keys held here.
    pub fn cancel(&mut self, w: &Arc<Waiter>, shard: usize, shards: usize) {
        for key in &w.keys {
            if crate::shard::slot::key_shard(key, shards) != shard {
                continue;
            }
            let Some(q) = self.queues.get_mut(w.db).and_then(|m| m.get_mut(&key[..])) else { continue };
            let before = q.len();
            q.retain(|x| !Arc::ptr_eq(x, w) && x.is_waiting());
            let (gone, empty) = (before - q.len(), q.is_empty());
            self.uncount(gone);
            if empty {
                self.queues[w.db].remove(&key[..]);
            }
        }
    }

    /// The earliest deadline in the timeout table.
    #[inline]
    pub fn next_deadline(&self) -> Option<i64> {
        self.timeouts.first().map(|t| t.0)
    }
}

/// Whether the peer of each socket of `fds` has hung up (or the socket
/// failed): one `poll` for them all, none when there are none. A blocked
/// client's home thread reads its EOF when the kernel runs it, so a client
/// that closed just before a command was sent on another connection may
/// still be listed as blocked when that command runs (unit/type/list's
/// "client unblock tests" waited for a blocked client, found the one the
/// test before had just closed, and unblocked its own client before it
/// blocked: a hang); INFO leaves such clients out, as Redis, which reads
/// the EOF first, would have freed them.
pub fn hung_up(fds: impl Iterator<Item = i32>) -> Vec<bool> {
    let mut polled: Vec<libc::pollfd> = fds.map(|fd| libc::pollfd { fd, events: libc::POLLRDHUP, revents: 0 }).collect();
    if polled.is_empty() {
        return Vec::new();
    }
    // SAFETY: poll with a zero timeout over a live array of `polled.len()`
    // entries; a negative or closed descriptor only sets its revents.
    let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, 0) };
    if n <= 0 {
        return vec![false; polled.len()];
    }
    polled.iter().map(|p| p.revents & GONE_EVENTS != 0).collect()
}

/// What `poll` reports for a socket whose peer hung up (or that failed, or
/// that the server shut down: CLIENT KILL, output limits).
const GONE_EVENTS: i16 = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;

/// Whether the peer of socket `fd` has hung up, as `hung_up` tells it for
/// INFO: asked by a key's owner before it serves a waiter (module doc, "A
/// client that hung up"). One zero-timeout poll, no allocation.
#[inline]
pub fn peer_gone(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLRDHUP, revents: 0 };
    // SAFETY: poll with a zero timeout over one live entry; a negative or
    // closed descriptor only sets its revents.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & GONE_EVENTS != 0
}

/// Redis 7.0.15's `getTimeoutFromObjectOrReply` in seconds: a `long
/// double` (`strtold`, as `string2ld`), times 1000 in extended precision,
/// rounded up (`ceill`) to `long long` (out of range: LLONG_MIN on x86-64,
/// so "negative"); then a deadline `now_ms` later, 0 for none.
pub fn parse_timeout(arg: &[u8], now_ms: i64) -> Result<i64, &'static str> {
    use crate::commands::string::float80::F80;
    const NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
    const NEGATIVE: &str = "ERR timeout is negative";
    let ms = match F80::parse(arg).ok_or(NOT_FLOAT)? {
        F80::Nan => return Err(NOT_FLOAT),
        F80::Inf { .. } => return Err(NEGATIVE),
        F80::Finite { neg, mant, exp } => {
            let (whole, fraction) = times_1000(mant, exp as i64).ok_or(NEGATIVE)?;
            if neg {
                // ceill of a negative value: toward zero (-0.4 is 0).
                if whole != 0 {
                    return Err(NEGATIVE);
                }
                0
            } else if fraction {
                whole.checked_add(1).ok_or(NEGATIVE)?
            } else {
                whole
            }
        }
    };
    if ms == 0 {
        return Ok(0);
    }
    Ok(now_ms.saturating_add(ms))
}

/// `mant * 2^exp * 1000` rounded to a 64-bit significand (the x87
/// multiply): its whole part and whether a fraction is left; None past
/// `i64::MAX`.
fn times_1000(mant: u64, mut exp: i64) -> Option<(i64, bool)> {
    let mut p = mant as u128 * 1000;
    if p == 0 {
        return Some((0, false));
    }
    let bits = 128 - p.leading_zeros() as i64;
    if bits > 64 {
        let shift = (bits - 64) as u32;
        let half = 1u128 << (shift - 1);
        let rem = p & ((1u128 << shift) - 1);
        p >>= shift;
        if rem > half || (rem == half && p & 1 == 1) {
            p += 1;
        }
        exp += shift as i64;
    }
    let bits = 128 - p.leading_zeros() as i64;
    if exp >= 0 {
        if bits + exp > 63 {
            return None;
        }
        Some(((p << exp) as i64, false))
    } else if -exp >= 128 {
        Some((0, true))
    } else {
        let shift = (-exp) as u32;
        let whole = p >> shift;
        if whole > i64::MAX as u128 {
            return None;
        }
        Some((whole as i64, p & ((1u128 << shift) - 1) != 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_as_redis() {
        let now = 1_000_000;
        assert_eq!(parse_timeout(b"0", now), Ok(0));
        assert_eq!(parse_timeout(b"1", now), Ok(now + 1000));
        assert_eq!(parse_timeout(b"0.01", now), Ok(now + 10));
        assert_eq!(parse_timeout(b"0.001", now), Ok(now + 1));
        assert_eq!(parse_timeout(b"1.5e3", now), Ok(now + 1_500_000));
        assert_eq!(parse_timeout(b"0x10", now), Ok(now + 16_000));
        // Rounded up: under a millisecond is one.
        assert_eq!(parse_timeout(b"0.0005", now), Ok(now + 1));
        assert_eq!(parse_timeout(b"0x0.01p-3", now), Ok(now + 1));
        assert_eq!(parse_timeout(b"1.0001", now), Ok(now + 1001));
        assert_eq!(parse_timeout(b"-0", now), Ok(0));
        // ceill toward zero: no timeout at all, as Redis 7.0.15.
        assert_eq!(parse_timeout(b"-0.0001", now), Ok(0));
        assert_eq!(parse_timeout(b"-0.001", now), Ok(0));
        assert_eq!(parse_timeout(b"-0.002", now), Err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"-1", now), Err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"inf", now), Err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"1e400", now), Err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"1e16", now), Err("ERR timeout is negative"));
        assert_eq!(parse_timeout(b"abc", now), Err("ERR timeout is not a float or out of range"));
        assert_eq!(parse_timeout(b"nan", now), Err("ERR timeout is not a float or out of range"));
        assert_eq!(parse_timeout(b" 1", now), Err("ERR timeout is not a float or out of range"));
        assert_eq!(parse_timeout(b"", now), Err("ERR timeout is not a float or out of range"));
    }

    #[test]
    fn a_socket_whose_peer_hung_up_is_told_apart() {
        use std::os::fd::AsRawFd;
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (c, d) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(b);
        assert_eq!(hung_up([a.as_raw_fd(), c.as_raw_fd(), -1].into_iter()), vec![true, false, false]);
        assert!(hung_up(std::iter::empty()).is_empty());
        assert!(peer_gone(a.as_raw_fd()) && !peer_gone(c.as_raw_fd()));
        drop(d);
        assert_eq!(hung_up([c.as_raw_fd()].into_iter()), vec![true]);
        assert!(peer_gone(c.as_raw_fd()) && !peer_gone(-1));
    }

    #[test]
    fn a_waiter_is_claimed_once() {
        let req = BlockRequest { keys: vec![b"k".to_vec()], op: BlockOp::Pop { head: true }, deadline_ms: 0, slowlog: None };
        let w = Waiter::new(0, ConnToken { index: 1, generation: 1 }, -1, None, 0, 2, req);
        assert!(w.claim(SERVED));
        assert!(!w.claim(TIMED_OUT));
        assert_eq!(w.state(), SERVED);
    }

    #[test]
    fn queues_are_fifo_and_pruned() {
        let mut b = Blocking::default();
        let mk = |i| {
            let req = BlockRequest { keys: vec![b"k".to_vec()], op: BlockOp::Pop { head: true }, deadline_ms: 0, slowlog: None };
            Waiter::new(0, ConnToken { index: i, generation: 1 }, -1, None, 0, 2, req)
        };
        let (a, c) = (mk(1), mk(2));
        b.enqueue(0, b"k", a.clone());
        b.enqueue(0, b"k", a.clone());
        b.enqueue(0, b"k", c.clone());
        assert_eq!(b.queue(0, b"k").unwrap().len(), 2);
        b.signal(0, b"k");
        b.signal(0, b"k");
        b.signal(0, b"other");
        assert_eq!(b.ready.len(), 1);
        assert_eq!((b.ready[0].0, &b.ready[0].1[..]), (0, &b"k"[..]));
        assert!(a.claim(GONE));
        b.prune(0, b"k");
        assert_eq!(b.queue(0, b"k").unwrap()[0].conn.index, 2);
        b.cancel(&c, 0, 1);
        assert!(b.queue(0, b"k").is_none());
        assert!(!b.has_waiters());
    }
}
