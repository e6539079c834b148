//! The replication thread: merges the shards' batches into the
//! replication stream, keeps the backlog, owns the replicas' sockets
//! (non-blocking, one poll() over them and an eventfd), sends each replica
//! its full sync then the stream, reads their REPLCONF ACKs and pings them
//! every `repl-ping-replica-period`. Never a shard: a slow replica costs
//! the shards nothing but the memory of its output buffer, bounded by
//! `client-output-buffer-limit replica` (hard limit: the replica is
//! dropped, as Redis does).

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{replica_name, Attach, Item, Master, ReplicaInfo};
use crate::persistence::aof::append::append_command;
use crate::persistence::aof_file::{merge, merged_through, Lane};
use crate::server::Server;

/// Bytes of the RDB file read per refill of a replica's output.
const RDB_CHUNK_BYTES: usize = 256 * 1024;
/// The poll timeout when idle: pings, timeouts and ACK publication run at
/// least this often.
const IDLE_POLL_MS: i32 = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Waiting for an RDB child to fork for it.
    WaitBgsaveStart,
    /// The child runs; the stream since its cut is buffered in `pending`.
    WaitBgsaveEnd,
    /// The RDB goes out, then `pending`.
    SendBulk,
    Online,
}

struct Replica {
    fd: OwnedFd,
    client_id: u64,
    addr: String,
    laddr: String,
    ip: String,
    port: u16,
    /// SYNC (not PSYNC): no +FULLRESYNC line.
    legacy: bool,
    state: State,
    out: Vec<u8>,
    out_off: usize,
    pending: Vec<u8>,
    rdb: Option<std::fs::File>,
    input: Vec<u8>,
    ack_offset: u64,
    ack_ms: i64,
    /// Unix ms of the last byte received (repl-timeout).
    last_io_ms: i64,
    created_ms: i64,
    closed: bool,
}

impl Replica {
    fn state_name(&self) -> &'static str {
        match self.state {
            State::WaitBgsaveStart | State::WaitBgsaveEnd => "wait_bgsave",
            State::SendBulk => "send_bulk",
            State::Online => "online",
        }
    }
    fn name(&self) -> String {
        replica_name(&self.addr, self.port)
    }
    fn queued(&self) -> usize {
        self.out.len() - self.out_off + self.pending.len()
    }
}

/// The backlog: the last `capacity` bytes of the stream.
struct Backlog {
    bytes: VecDeque<u8>,
    capacity: usize,
}

impl Backlog {
    fn append(&mut self, data: &[u8]) {
        self.bytes.extend(data);
        if self.bytes.len() > self.capacity {
            let excess = self.bytes.len() - self.capacity;
            self.bytes.drain(..excess);
        }
    }
}

struct Feeder {
    m: Arc<Master>,
    server: Arc<Server>,
    lanes: Vec<Lane>,
    received: u64,
    merged: Vec<u8>,
    stream: Vec<u8>,
    /// The db the replication stream selected last (None: a SELECT goes
    /// before the next command, as after Redis resets `slaveseldb`).
    selected: Option<Vec<u8>>,
    backlog: Backlog,
    offset: u64,
    replicas: Vec<Replica>,
    last_ping: Instant,
    /// For doorbells to shards with connections in WAIT.
    ring: Option<io_uring::IoUring>,
    acks_changed: bool,
}

pub fn run(m: Arc<Master>, server: Arc<Server>) {
    crate::log::set_role('M');
    let shards = m.shard_count();
    let capacity = m.backlog_size.load(Ordering::Relaxed) as usize;
    let mut f = Feeder {
        m,
        server,
        lanes: (0..shards).map(|_| Lane::default()).collect(),
        received: 0,
        merged: Vec::new(),
        stream: Vec::new(),
        selected: None,
        backlog: Backlog { bytes: VecDeque::new(), capacity },
        offset: 0,
        replicas: Vec::new(),
        last_ping: Instant::now(),
        ring: io_uring::IoUring::new(8).ok(),
        acks_changed: false,
    };
    loop {
        f.turn();
    }
}

impl Feeder {
    fn turn(&mut self) {
        self.poll();
        let items: Vec<Item> = std::mem::take(&mut *self.m.inbox.lock().unwrap()).into();
        for item in items {
            match item {
                Item::Batch { seq, shard, start, bytes, cuts, inserts } => {
                    self.received = seq;
                    self.lanes[shard].ingest(seq, start, bytes, cuts, inserts, Vec::new());
                }
                Item::Attach(att) => {
                    self.flush_stream();
                    self.attach(*att);
                }
                Item::Forked => {
                    self.flush_stream();
                    self.forked();
                }
                Item::RdbDone(dump) => {
                    self.flush_stream();
                    self.rdb_done(dump);
                }
            }
        }
        self.flush_stream();
        let now_ms = crate::util::unix_ms();
        if self.m.getack.swap(false, Ordering::Relaxed) && self.replicas.iter().any(|r| r.state == State::Online) {
            self.feed_command(&[b"REPLCONF", b"GETACK", b"*"]);
        }
        let period = Duration::from_secs(self.m.ping_period_secs.load(Ordering::Relaxed));
        if self.last_ping.elapsed() >= period {
            self.last_ping = Instant::now();
            if !self.replicas.is_empty() {
                self.feed_command(&[b"PING"]);
            }
        }
        // Replicas waiting for their RDB get a newline now and then, as
        // Redis keeps them from timing out.
        for r in self.replicas.iter_mut() {
            let waiting = r.state == State::WaitBgsaveStart || r.state == State::WaitBgsaveEnd;
            if waiting && now_ms - r.last_io_ms > 1000 && r.out.len() == r.out_off {
                r.out.push(b'\n');
                r.last_io_ms = now_ms;
            }
        }
        let limit = self.m.replica_hard_limit.load(Ordering::Relaxed) as usize;
        let timeout_ms = self.m.timeout_secs.load(Ordering::Relaxed) as i64 * 1000;
        for r in self.replicas.iter_mut() {
            write_out(r);
            if !r.closed && r.queued() > limit {
                crate::warning!("Client id={} addr={} flags=S scheduled to be closed ASAP for overcoming of output buffer limits.", r.client_id, r.addr);
                r.closed = true;
            }
            // As Redis, a pre-PSYNC replica (SYNC) that never ACKs is not timed out.
            if !r.closed && !r.legacy && r.state == State::Online && now_ms - r.ack_ms.max(r.last_io_ms) > timeout_ms {
                crate::warning!("Disconnecting timedout replica (streaming sync): {}", r.name());
                r.closed = true;
            }
        }
        let before = self.replicas.len();
        self.replicas.retain(|r| {
            if r.closed {
                crate::notice!("Connection with replica {} lost.", r.name());
            }
            !r.closed
        });
        if self.replicas.len() != before {
            self.acks_changed = true;
            if self.replicas.is_empty() {
                self.m.no_replicas_since.store(now_ms / 1000, Ordering::Relaxed);
            }
        }
        self.publish(now_ms);
    }

    /// Waits for the eventfd or a replica's socket, at most IDLE_POLL_MS.
    fn poll(&mut self) {
        let mut fds = Vec::with_capacity(self.replicas.len() + 1);
        fds.push(libc::pollfd { fd: self.m.wake.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        for r in &self.replicas {
            let mut events = libc::POLLIN;
            if r.out_off < r.out.len() || r.rdb.is_some() {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd { fd: r.fd.as_raw_fd(), events, revents: 0 });
        }
        // Announce the sleep, then look at the inbox once more (a pusher
        // that saw no sleep did not ring).
        self.m.sleeping.store(true, Ordering::SeqCst);
        let timeout = if self.m.inbox.lock().unwrap().is_empty() { IDLE_POLL_MS } else { 0 };
        // SAFETY: `fds` is a valid array of pollfd for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        self.m.sleeping.store(false, Ordering::SeqCst);
        if n <= 0 {
            return;
        }
        if fds[0].revents != 0 {
            let mut buf = [0u8; 8];
            // SAFETY: an 8-byte read into a stack buffer from our eventfd.
            unsafe { libc::read(self.m.wake.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, 8) };
        }
        let now_ms = crate::util::unix_ms();
        for (i, pfd) in fds.iter().enumerate().skip(1) {
            if pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                let acked = read_in(&mut self.replicas[i - 1], now_ms);
                self.acks_changed |= acked;
            }
        }
    }

    /// Merges what the cuts allow into the replication stream and sends it.
    fn flush_stream(&mut self) {
        self.merged.clear();
        // (No SELECT is left out there: `filter_selects` does it, with
        // the stream's own resets.)
        merge(&mut self.lanes, &mut self.merged, &mut Default::default());
        let through = merged_through(&mut self.lanes, self.received);
        if !self.merged.is_empty() {
            let mut out = std::mem::take(&mut self.stream);
            out.clear();
            filter_selects(&self.merged, &mut self.selected, &mut out);
            self.emit(&out);
            self.stream = out;
        }
        self.m.merged_seq.store(through, Ordering::Release);
        self.m.offset.store(self.offset, Ordering::Release);
    }

    /// Appends stream bytes: backlog, offset, replicas.
    fn emit(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let capacity = self.m.backlog_size.load(Ordering::Relaxed) as usize;
        self.backlog.capacity = capacity;
        self.backlog.append(bytes);
        self.offset += bytes.len() as u64;
        for r in self.replicas.iter_mut() {
            match r.state {
                State::WaitBgsaveStart => {}
                State::WaitBgsaveEnd | State::SendBulk => r.pending.extend_from_slice(bytes),
                State::Online => r.out.extend_from_slice(bytes),
            }
        }
        self.m.offset.store(self.offset, Ordering::Release);
        self.m.backlog_active.store(true, Ordering::Relaxed);
    }

    /// A command of the feeder's own (PING, REPLCONF GETACK) into the stream.
    fn feed_command(&mut self, argv: &[&[u8]]) {
        let mut bytes = Vec::new();
        append_command(&mut bytes, argv);
        self.emit(&bytes);
    }

    fn attach(&mut self, att: Attach) {
        let now_ms = crate::util::unix_ms();
        let ip = att.announced_ip.clone().unwrap_or_else(|| att.addr.rsplit_once(':').map_or(att.addr.clone(), |(ip, _)| ip.to_string()));
        let mut r = Replica {
            fd: att.fd,
            client_id: att.client_id,
            addr: att.addr,
            laddr: att.laddr,
            ip,
            port: att.listening_port,
            legacy: att.psync.is_none(),
            state: State::WaitBgsaveStart,
            out: Vec::new(),
            out_off: 0,
            pending: Vec::new(),
            rdb: None,
            input: Vec::new(),
            ack_offset: 0,
            ack_ms: now_ms,
            last_io_ms: now_ms,
            created_ms: att.created_ms,
            closed: false,
        };
        let name = r.name();
        if let Some((replid, offset)) = &att.psync {
            if let Some(from) = self.continue_from(replid, *offset) {
                let ids = self.m.ids();
                let line = if att.psync2 { format!("+CONTINUE {}\r\n", ids.replid) } else { "+CONTINUE\r\n".to_string() };
                r.out.extend_from_slice(line.as_bytes());
                let skip = self.backlog.bytes.len() - (self.offset - from) as usize;
                r.out.extend(self.backlog.bytes.range(skip..));
                r.state = State::Online;
                crate::notice!(
                    "Partial resynchronization request from {} accepted. Sending {} bytes of backlog starting from offset {}.",
                    name,
                    self.offset - from,
                    from + 1
                );
                self.replicas.push(r);
                return;
            }
            crate::notice!("Full resync requested by replica {}", name);
        }
        // A child already forked for other replicas: this one takes the
        // same snapshot and the stream buffered since its cut (Redis's
        // "Waiting for end of BGSAVE for SYNC").
        if let Some(other) = self.replicas.iter().find(|o| o.state == State::WaitBgsaveEnd) {
            r.pending = other.pending.clone();
            r.state = State::WaitBgsaveEnd;
            let start = self.offset - r.pending.len() as u64;
            if !r.legacy {
                r.out.extend_from_slice(format!("+FULLRESYNC {} {}\r\n", self.m.ids().replid, start).as_bytes());
            }
            crate::notice!("Waiting for end of BGSAVE for SYNC");
        } else {
            self.m.want_bgsave();
        }
        self.replicas.push(r);
    }

    /// The offset after which a PSYNC for `replid` at `offset` (the next
    /// byte it wants) continues from the backlog, if it can.
    fn continue_from(&self, replid: &[u8], offset: i64) -> Option<u64> {
        let ids = self.m.ids();
        let ours = replid == ids.replid.as_bytes();
        let old = replid == ids.replid2.as_bytes() && offset <= ids.second_offset;
        if !(ours || old) || !self.m.backlog_active.load(Ordering::Relaxed) || offset < 1 {
            return None;
        }
        let first = self.offset + 1 - self.backlog.bytes.len() as u64;
        let offset = offset as u64;
        (offset >= first && offset <= self.offset + 1).then(|| offset - 1)
    }

    /// The RDB child forked at this point of the stream.
    fn forked(&mut self) {
        let replid = self.m.ids().replid;
        // The stream after the snapshot starts with a SELECT.
        self.selected = None;
        for r in self.replicas.iter_mut().filter(|r| r.state == State::WaitBgsaveStart) {
            r.state = State::WaitBgsaveEnd;
            r.pending.clear();
            if !r.legacy {
                r.out.extend_from_slice(format!("+FULLRESYNC {} {}\r\n", replid, self.offset).as_bytes());
            }
        }
    }

    fn rdb_done(&mut self, dump: Option<std::fs::File>) {
        let Some(file) = dump else {
            for r in self.replicas.iter_mut().filter(|r| r.state == State::WaitBgsaveEnd) {
                crate::warning!("SYNC failed. BGSAVE child returned an error");
                r.closed = true;
            }
            return;
        };
        crate::notice!("Background RDB transfer terminated with success");
        for r in self.replicas.iter_mut().filter(|r| r.state == State::WaitBgsaveEnd) {
            let Ok(f) = file.try_clone() else {
                r.closed = true;
                continue;
            };
            let len = f.metadata().map_or(0, |m| m.len());
            // Each replica reads the file through its own descriptor:
            // positions are per open file description, so reopen by /proc.
            let own = std::fs::File::open(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap_or(f);
            r.out.extend_from_slice(format!("${}\r\n", len).as_bytes());
            r.rdb = Some(own);
            r.state = State::SendBulk;
            crate::notice!("Synchronization with replica {} succeeded", r.name());
        }
        // Pending waiters that arrived after the fork need a new child.
        if self.replicas.iter().any(|r| r.state == State::WaitBgsaveStart) {
            self.m.want_bgsave();
        }
    }

    /// Publishes the replicas for INFO, ROLE and WAIT; counts the good
    /// ones; rings the shards when ACKs moved and someone WAITs.
    fn publish(&mut self, now_ms: i64) {
        let max_lag_ms = self.m.min_replicas_max_lag.load(Ordering::Relaxed) as i64 * 1000;
        let good = self.replicas.iter().filter(|r| r.state == State::Online && now_ms - r.ack_ms <= max_lag_ms).count();
        let good_before = self.m.good_replicas.swap(good, Ordering::Relaxed);
        if good != good_before {
            self.m.update_gate();
        }
        let infos: Vec<ReplicaInfo> = self
            .replicas
            .iter()
            .map(|r| ReplicaInfo {
                client_id: r.client_id,
                addr: r.addr.clone(),
                laddr: r.laddr.clone(),
                ip: r.ip.clone(),
                port: r.port,
                state: r.state_name(),
                ack_offset: r.ack_offset,
                ack_ms: r.ack_ms,
                created_ms: r.created_ms,
            })
            .collect();
        *self.m.replicas.lock().unwrap() = infos;
        self.m.backlog_histlen.store(self.backlog.bytes.len() as u64, Ordering::Relaxed);
        if std::mem::take(&mut self.acks_changed) && self.m.waiters.load(Ordering::Relaxed) > 0 {
            self.ring_shards();
        }
    }

    fn ring_shards(&mut self) {
        let Some(ring) = self.ring.as_mut() else { return };
        for fd in self.server.ring_fds.iter().map(|f| f.load(Ordering::Acquire)).filter(|&fd| fd >= 0) {
            // SAFETY: the entry carries no pointer; it only names a shard's ring.
            let _ = unsafe { ring.submission().push(&crate::network::event_loop::doorbell_entry(fd)) };
        }
        let _ = ring.submit_and_wait(0);
        while ring.completion().next().is_some() {}
    }
}

/// Writes what `r` has queued (refilling from its RDB file) until the
/// socket would block.
fn write_out(r: &mut Replica) {
    while !r.closed {
        if r.out_off == r.out.len() {
            r.out.clear();
            r.out_off = 0;
            if let Some(file) = r.rdb.as_mut() {
                let mut chunk = vec![0u8; RDB_CHUNK_BYTES];
                match file.read(&mut chunk) {
                    Ok(0) => {
                        r.rdb = None;
                        r.out.append(&mut r.pending);
                        r.state = State::Online;
                        r.ack_ms = crate::util::unix_ms();
                    }
                    Ok(n) => r.out.extend_from_slice(&chunk[..n]),
                    Err(e) => {
                        crate::warning!("Read error sending DB to replica: {}", e);
                        r.closed = true;
                    }
                }
                continue;
            }
            return;
        }
        let rest = &r.out[r.out_off..];
        // SAFETY: a write from a live buffer to the replica's socket.
        let n = unsafe { libc::send(r.fd.as_raw_fd(), rest.as_ptr() as *const libc::c_void, rest.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock {
                crate::verbose!("Error writing to replica {}: {}", r.name(), e);
                r.closed = true;
            }
            return;
        }
        r.out_off += n as usize;
    }
}

/// Reads what replica `r` sent; returns whether an ACK moved.
fn read_in(r: &mut Replica, now_ms: i64) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: a read into a stack buffer from the replica's socket.
        let n = unsafe { libc::recv(r.fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), libc::MSG_DONTWAIT) };
        if n == 0 {
            r.closed = true;
            break;
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock {
                r.closed = true;
            }
            break;
        }
        r.input.extend_from_slice(&buf[..n as usize]);
        r.last_io_ms = now_ms;
        if r.input.len() > 1 << 20 {
            // Nothing a replica says is this long.
            r.closed = true;
            break;
        }
    }
    let mut acked = false;
    let mut pos = 0;
    while let Some((end, args)) = parse_command(&r.input[pos..]) {
        pos += end;
        if args.len() >= 3 && crate::util::eq_ic(args[0], "replconf") && crate::util::eq_ic(args[1], "ack") {
            if let Some(off) = std::str::from_utf8(args[2]).ok().and_then(|s| s.parse::<u64>().ok()) {
                if off > r.ack_offset {
                    r.ack_offset = off;
                }
                r.ack_ms = now_ms;
                acked = true;
            }
        }
    }
    r.input.drain(..pos);
    acked
}

/// One command at the front of `buf`: a RESP array of bulk strings, or an
/// inline line. Returns the bytes it spans and its arguments.
pub fn parse_command(buf: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    let line_end = |from: usize| memchr::memchr(b'\n', &buf[from..]).map(|i| from + i);
    if buf.first() != Some(&b'*') {
        let end = line_end(0)?;
        let line = &buf[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return Some((end + 1, line.split(|&c| c == b' ').filter(|a| !a.is_empty()).collect()));
    }
    let end = line_end(0)?;
    let n: usize = std::str::from_utf8(&buf[1..end]).ok()?.trim_end().parse().ok()?;
    let mut pos = end + 1;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        if buf.get(pos) != Some(&b'$') {
            return None;
        }
        let end = line_end(pos)?;
        let len: usize = std::str::from_utf8(&buf[pos + 1..end]).ok()?.trim_end().parse().ok()?;
        let start = end + 1;
        if buf.len() < start + len + 2 {
            return None;
        }
        args.push(&buf[start..start + len]);
        pos = start + len + 2;
    }
    Some((pos, args))
}

/// Copies the merged stream to `out` without the SELECTs of a db already
/// selected and without `#TS:` annotations (the AOF's alone).
fn filter_selects(merged: &[u8], selected: &mut Option<Vec<u8>>, out: &mut Vec<u8>) {
    let mut pos = 0;
    while pos < merged.len() {
        if merged[pos] == b'#' {
            pos = memchr::memchr(b'\n', &merged[pos..]).map_or(merged.len(), |i| pos + i + 1);
            continue;
        }
        let Some((len, args)) = parse_command(&merged[pos..]) else {
            out.extend_from_slice(&merged[pos..]);
            return;
        };
        let cmd = &merged[pos..pos + len];
        pos += len;
        if args.len() == 2 && crate::util::eq_ic(args[0], "select") {
            if selected.as_deref() == Some(args[1]) {
                continue;
            }
            *selected = Some(args[1].to_vec());
        }
        out.extend_from_slice(cmd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::aof::append::commands_bytes as resp;

    #[test]
    fn selects_only_when_the_db_changes() {
        let merged = resp(&[&["SELECT", "9"], &["set", "a", "1"], &["SELECT", "9"], &["set", "b", "2"], &["SELECT", "1"], &["del", "a"]]);
        let mut with_ts = b"#TS:1700000000\r\n".to_vec();
        with_ts.extend_from_slice(&merged);
        let mut selected = None;
        let mut out = Vec::new();
        filter_selects(&with_ts, &mut selected, &mut out);
        assert_eq!(out, resp(&[&["SELECT", "9"], &["set", "a", "1"], &["set", "b", "2"], &["SELECT", "1"], &["del", "a"]]));
        let mut out = Vec::new();
        filter_selects(&resp(&[&["SELECT", "1"], &["incr", "x"]]), &mut selected, &mut out);
        assert_eq!(out, resp(&[&["incr", "x"]]));
    }

    /// A replication-only insert goes out at its stream position: after
    /// the bytes before it, before those after it, and the command after
    /// it selects its db again.
    #[test]
    fn inserts_go_at_their_position() {
        let mut stream = crate::exec::propagate::Stream::default();
        stream.set_repl(true);
        stream.feed(9, &["set", "a", "1"]);
        stream.repl_insert(3, &["publish", "ch", "m"]);
        stream.feed(9, &["set", "b", "2"]);
        let inserts = stream.take_inserts();
        let (start, bytes, cuts, _) = stream.take();
        let mut lanes = vec![Lane::default()];
        lanes[0].ingest(1, start, bytes, cuts, inserts, Vec::new());
        let mut merged = Vec::new();
        merge(&mut lanes, &mut merged, &mut Default::default());
        let mut out = Vec::new();
        filter_selects(&merged, &mut None, &mut out);
        let want = resp(&[&["SELECT", "9"], &["set", "a", "1"], &["SELECT", "3"], &["publish", "ch", "m"], &["SELECT", "9"], &["set", "b", "2"]]);
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(want).unwrap());
        assert_eq!(merged_through(&mut lanes, 1), 1);
    }

    #[test]
    fn parses_resp_and_inline_commands() {
        let buf = b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n42\r\nPING\r\n*1\r\n$4\r\nPI";
        let (n, args) = parse_command(buf).unwrap();
        assert_eq!(args, vec![&b"REPLCONF"[..], b"ACK", b"42"]);
        let (m, args) = parse_command(&buf[n..]).unwrap();
        assert_eq!(args, vec![&b"PING"[..]]);
        assert!(parse_command(&buf[n + m..]).is_none());
    }

    #[test]
    fn backlog_keeps_the_last_bytes() {
        let mut b = Backlog { bytes: VecDeque::new(), capacity: 4 };
        b.append(b"abc");
        b.append(b"def");
        assert_eq!(b.bytes.iter().copied().collect::<Vec<u8>>(), b"cdef");
    }
}
