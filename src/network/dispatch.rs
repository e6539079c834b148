//! From parsed request to reply: lookup, arity, authentication, routing to
//! the owning shard (in place, by message, or held), statistics, slowlog,
//! reply order. Everything that is the same for every command is here, once.
//!
//! **Order across shards.** One connection's commands take effect in its
//! order, as Redis runs them: *a single-shard command starts only when every
//! earlier single-key command of its connection that is not `readonly` has
//! run, and one that is not `readonly` only when every earlier one has run;
//! commands for the shard the earlier ones went to follow them without a
//! wait* (`Conn::order_may_go`). The mailbox to one shard is FIFO, so a run
//! of commands for one shard travels as before; at a switch of shard the
//! rule forbids (a write here after a SET still out on another shard), the
//! rest of the batch stays in the query buffer until the replies are back
//! ("has run": the reply leaves after the command and its events), and the
//! reply that empties the connection's forwarded count resumes it
//! (`Conn::order_wait`, not retried every turn); the replies already in
//! wait for the rest of the batch's, in one send (`EventLoop::flush_sends`,
//! up to a send buffer and four waits), and the requests its batch had
//! parsed past the waiting one stay parsed (`conn::ParsedAhead`: parsing,
//! hashing and prefetching them again at every resume was about half of
//! what the rule added to those). Without the rule a
//! subscriber or a BLPOP consumer could be told "ready" (`LPUSH` on one
//! shard) and then miss `data` (`SET` still in another shard's mailbox):
//! tests/pipeline_order.rs. Reads after reads still run side by side (only
//! a concurrent writer on two keys could tell, as between two connections).
//! Hops are not counted: their keys stay marked until their parts have run
//! (`network::hop`, "Order per connection"). Cost: a `-P 16` pipeline of
//! SETs over two shards waits about once per four commands: +30% server
//! CPU per request with 50 clients, measured quietly (+62-68% before its
//! replies were held for one send: a send and a client wake-up per wait;
//! about +7-15% on a loaded machine once the parse is kept, perf/RESULTS.md
//! "order21": what is left is mostly the two shard threads' extra wake-ups),
//! 3.25x for one connection at `-P 100`; reads and `-P 1` unchanged
//! (perf/RESULTS.md, "Pipelined order across shards" and the quiet take
//! after it). A client that streams without pacing resumes from an offset
//! into its query buffer (`Conn::qbuf_head`): moving the rest to the front
//! at every wait was ~13 ms a wait with hundreds of MB queued. Hidden
//! config `cross-shard-pipeline-order no` turns the rule off.
//!
//! **Streaming over shards.** A connection that sends more than a parsed
//! batch at once (`redis-cli --pipe`, a bulk loader, a deep pipeline) would
//! wait at about every other command of a random-key stream, a mailbox
//! round trip and the other shard's wake-up each time: one such connection
//! got 200k replies/s over two shards and 109k over three, where one shard
//! gave 2.86M and redis-server 930k (perf/RESULTS.md). Its batch's run of
//! single-shard data commands with a write among them (`stream_run`: reads
//! alone wait for nothing) instead runs here under a hold
//! of the other shards it names (`network::held`), when every one of them
//! is asleep in its ring: a sleeping shard is taken as it sleeps, without a
//! doorbell or a wake-up (`shard::hold`), so the hold costs a few locked
//! queue pushes per batch, and a busy shard is never parked for a stream
//! (the batch then goes the plain way above). Everything of the run then
//! runs on this thread in the connection's order: the rule holds with no
//! wait, and the replies go straight to the output. A batch that is all of
//! the input (`-P 16` from many clients) never takes this path.
//!
//! **Taken asleep.** Where shard threads share a core (more shards than
//! cores: `cross-shard-take-asleep auto`, hidden config, `yes`/`no` force
//! it; **off by default**: with it on, tests/repl_order.rs finds a client's
//! write in the replication stream before an earlier write of that client
//! on another shard — the held run's propagation cut is still to fix) nothing runs side by side anyway, and a forward is all cost: the
//! other shard's wake-up, a switch to it, its reply, a switch back (with
//! 50 clients at `-P 1` each burst of requests went A, B, A, B: two shards
//! 0.20-0.25 context switches per request against 0.03-0.05 with one,
//! `finish_task_switch` the largest extra, perf/RESULTS.md "xset22"). So
//! there every batch takes the streaming path's run: its single-shard data
//! commands, reads alone too, run here under a hold of the other shards
//! they name when every one of them is asleep in its ring (taken as it
//! sleeps: no doorbell, no wake-up, no message; one that has woken parks
//! at its first check until the hold ends), and go the plain way
//! otherwise. The hold is `try_held_once`'s: the per-shard intent queues'
//! small mutexes, uncontended here (one core), a few hundred nanoseconds
//! against the microseconds of the forward. The run keeps the order rule
//! (`hold_run_may`: nothing of the connection's still out) and runs each
//! command as a local one (`run_commands`: CLIENT REPLY, MONITOR, WATCH,
//! events and tracking as on the held path). With a core per shard it stays
//! off: a sleeping shard taken would park when its own client wakes it.

use super::conn::{Closing, Slot, FORWARDED_MAX};
use super::event_loop::EventLoop;
use crate::commands::{self, flags, key_mask, CommandSpec, CommandTable, Ctx, ReplyMode, Route};
use crate::exec::{call, Caller};
use crate::protocol::{parse_frame, Args, FrameProgress, ParseLimits, Reply};
use crate::shard::hold::ShardMask;
use crate::shard::mailbox::{Message, PackedArgs};
use crate::util::printf_str;

/// Fields in front of a forwarded command's arguments: the client's address and name.
pub(super) const CALLER_FIELDS: usize = 2;

/// Commands parsed ahead of execution, whose keys are prefetched together.
const PARSE_AHEAD: usize = super::prefetch::PREFETCH_BATCH;

/// What the connection's parse loop does next.
#[derive(PartialEq, Eq, Debug)]
pub enum Flow {
    Continue,
    /// Stop here; the command is retried later with the same bytes.
    Defer,
    /// Stop reading; the connection closes after its replies are sent.
    Stop,
}

/// The shards a command runs on (`Local`: this one; `Keys`: its keys' shards,
/// this one when it names none; `All`: every shard).
#[inline(always)]
pub(super) fn route_mask(spec: &CommandSpec, args: &[&[u8]], shards: usize, me: usize) -> ShardMask {
    // One shard: every route but a custom one is this shard (inlined).
    if shards == 1 && !matches!(spec.route, Route::Custom(_)) {
        return ShardMask::single(me);
    }
    route_mask_of(spec, args, shards, me)
}

fn route_mask_of(spec: &CommandSpec, args: &[&[u8]], shards: usize, me: usize) -> ShardMask {
    match spec.route {
        Route::Local => ShardMask::single(me),
        Route::Keys => {
            let m = key_mask(spec, args, shards);
            if m.is_empty() {
                ShardMask::single(me)
            } else {
                m
            }
        }
        Route::All => ShardMask::all(shards),
        Route::Custom(f) => f(args, shards),
        // Computed by `dispatch`, which has the client.
        Route::Client(_) => ShardMask::single(me),
    }
}

/// Redis's reply for an unknown command: the name and the first arguments
/// as its `%.128s` / `%.*s` print them (raw bytes, each cut at a NUL byte),
/// the arguments until their list reaches 128 bytes.
pub fn unknown_command_error(args: &[&[u8]]) -> Vec<u8> {
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(printf_str(args[0], 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    let list_start = msg.len();
    for a in &args[1..] {
        let listed = msg.len() - list_start;
        if listed >= 128 {
            break;
        }
        msg.push(b'\'');
        msg.extend_from_slice(printf_str(a, 128 - listed));
        msg.extend_from_slice(b"' ");
    }
    msg
}

impl EventLoop {
    /// Parses and runs the commands of connection `index`. `fresh` is newly
    /// received data (parsed in place when the query buffer is empty).
    pub fn process_input(&mut self, index: u32, fresh: Option<&[u8]>) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        if conn.closing != Closing::No {
            return;
        }
        let query_limit = self.state().config.client_query_buffer_limit as usize;
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.qbuf_peak = conn.qbuf_peak.max(conn.qbuf_unread() + fresh.map_or(0, <[u8]>::len));
        // While the buffer is out of the connection, its head is too: the
        // commands that run may read the connection's (empty) query buffer.
        let mut head = std::mem::take(&mut conn.qbuf_head);
        let mut qbuf = std::mem::take(&mut conn.qbuf);
        let parse_fresh = match fresh {
            Some(data) if qbuf.is_empty() && !conn.deferred => Some(data),
            Some(data) => {
                qbuf.extend_from_slice(data);
                None
            }
            None => None,
        };
        if conn.deferred {
            let conn = self.conns[index as usize].as_mut().unwrap();
            conn.qbuf = qbuf;
            conn.qbuf_head = head;
            return;
        }
        conn.client.input_free = if parse_fresh.is_some() { 0 } else { qbuf.capacity() - qbuf.len() };
        let mut leftover_from_fresh: &[u8] = &[];
        // One call site, so that `parse_and_run` is inlined here.
        let consumed = self.parse_and_run(index, parse_fresh.unwrap_or(&qbuf[head..]));
        match parse_fresh {
            Some(data) => leftover_from_fresh = &data[consumed..],
            None => {
                head += consumed;
                // Everything ran, or at least half: the rest moves to the
                // front (each byte at most once more); else it stays put.
                if head >= qbuf.len() - head {
                    super::conn::drop_run_input(&mut qbuf, &mut head);
                }
            }
        }
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        // A big bulk still arriving is received into a buffer reserved once
        // at the frame's final size (Redis's PROTO_MBULK_BIG_ARG): growing by
        // doubling copies what has arrived at every doubling (about the
        // bulk's size again, in total) and can hold up to twice the size.
        // Not past the query-buffer limit: such a client is closed anyway.
        let big_frame_bytes = conn.frame.big_bulk_frame_bytes().filter(|&n| n <= query_limit);
        if let Some(n) = big_frame_bytes {
            super::conn::drop_run_input(&mut qbuf, &mut head);
            if n > qbuf.capacity() {
                qbuf.reserve_exact(n - qbuf.len());
            }
        }
        if !leftover_from_fresh.is_empty() && conn.closing == Closing::No {
            qbuf.extend_from_slice(leftover_from_fresh);
        }
        if qbuf.len() - head > query_limit && conn.closing == Closing::No {
            crate::warning!("Closing client that reached max query buffer length: id={} addr={} qbuf={}", conn.client.id, conn.client.addr, qbuf.len() - head);
            self.state().stats.client_query_buffer_limit_disconnections += 1;
            self.close(index);
            return;
        }
        // A buffer grown for a big request keeps its capacity until the
        // cron trims it to the recent peak (`resize_query_buffer`), as Redis's
        // clientsCronResizeQueryBuffer: the next big request often follows.
        conn.qbuf = qbuf;
        conn.qbuf_head = head;
        // `report_qbuf` and, below, `mark_dirty` with the connection at
        // hand: each looked it up again (~10 instructions a receive).
        let qbuf_now = (conn.qbuf_unread(), conn.qbuf.capacity());
        if qbuf_now != conn.qbuf_reported {
            conn.qbuf_reported = qbuf_now;
            self.write_qbuf_info(index);
        }
        // A big argument still arriving counts against maxmemory-clients
        // before its command is complete.
        if self.client_memory_after_receive(index) {
            return;
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.deferred {
            self.deferred.push(index);
        }
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(index);
        }
    }

    /// CLIENT PAUSE held this connection back (or let it go): INFO's
    /// `blocked_clients` and CLIENT LIST's `b` flag count it, as Redis's
    /// BLOCKED_POSTPONE.
    pub fn set_paused_info(&mut self, index: u32, paused: bool) {
        if let Some(info) = self.set.get_mut(self.id).clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.paused = paused;
        }
    }

    /// Writes the query buffer's length and spare capacity to the client
    /// registry (CLIENT LIST's `qbuf=`/`qbuf-free=`) when they changed: no
    /// write while commands are parsed in place from receive buffers.
    /// The test is inline (a call per receive was ~19 instructions at -P 1,
    /// where the query buffer stays empty); the write is not.
    #[inline(always)]
    pub fn report_qbuf(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        let now = (conn.qbuf_unread(), conn.qbuf.capacity());
        if now != conn.qbuf_reported {
            conn.qbuf_reported = now;
            self.write_qbuf_info(index);
        }
    }

    /// The client registry's `last_interaction_ms` and `last_cmd` (CLIENT
    /// LIST's `idle=` and `cmd=`, the `timeout` and the query buffer's idle
    /// trim), written only when the unix second or the command changed.
    /// Every reader works in whole seconds, as Redis keeps `lastinteraction`
    /// (`server.unixtime`), so the entry holds the second's start: `idle=`
    /// is Redis's `unixtime - lastinteraction` exactly. Testing the
    /// connection's own copy (a line the command reads anyway) spares every
    /// other command the registry entry's cache line, which nothing else on
    /// the command path touches (a third of `dispatch`'s sampled time at -P 1).
    #[inline(always)]
    fn note_interaction(&mut self, index: u32, now: i64, id: usize) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        let seen = (now.div_euclid(1000), id as u16);
        if conn.interaction_reported != seen {
            conn.interaction_reported = seen;
            self.write_interaction(index, seen);
        }
    }

    #[inline(never)]
    fn write_interaction(&mut self, index: u32, (second, cmd): (i64, u16)) {
        if let Some(info) = self.state().clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.last_interaction_ms = second * 1000;
            info.last_cmd = cmd;
        }
    }

    #[inline(never)]
    fn write_qbuf_info(&mut self, index: u32) {
        self.write_client_mem(index);
    }

    /// Redis's `clientsCronResizeQueryBuffer`, run by the cron for every
    /// connection: when more than 4 KiB of the query buffer is spare, an
    /// idle connection (over 2 s) gives back all of it, a busy one whose
    /// buffer is over 32 KiB and more than twice its recent peak is cut to
    /// that peak (not below what it holds nor below a big argument still
    /// arriving). The peak then restarts from what the buffer holds.
    pub fn resize_query_buffer(&mut self, index: u32, idle_ms: i64) {
        const SPARE_BYTES_MIN: usize = 4 * 1024;
        const RESIZE_THRESHOLD_BYTES: usize = 32 * 1024;
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        conn.compact_qbuf();
        let (len, capacity) = (conn.qbuf.len(), conn.qbuf.capacity());
        let big_bulk = conn.frame.big_bulk_frame_bytes().unwrap_or(0);
        if capacity - len > SPARE_BYTES_MIN {
            if idle_ms > 2000 {
                conn.qbuf.shrink_to_fit();
            } else if capacity > RESIZE_THRESHOLD_BYTES && capacity / 2 > conn.qbuf_peak {
                conn.qbuf.shrink_to(len.max(conn.qbuf_peak).max(big_bulk));
            }
        }
        conn.qbuf_peak = len.max(big_bulk);
        self.report_qbuf(index);
    }

    /// Runs every complete command at the front of `buf`; returns bytes consumed.
    ///
    /// Commands are parsed `PARSE_AHEAD` at a time before any of them runs,
    /// so that the keys of a pipelined batch are looked up in passes
    /// (`prefetch_keys`) before execution; each command then runs exactly
    /// as if parsed on its own, in order.
    ///
    /// `buf` starts with the request the connection's `frame` describes (if
    /// any): parsing goes on from where the last receive left it. An
    /// incomplete request at the end is recorded there again when everything
    /// before it ran, so `buf` from that request on becomes the query buffer.
    ///
    /// Inlined into `process_input`, its one caller: the call was ~20
    /// instructions of every receive at -P 1 (perf/RESULTS.md "user22").
    #[inline(always)]
    fn parse_and_run(&mut self, index: u32, buf: &[u8]) -> usize {
        let password_set = self.server.acl.auth_required();
        let mut limits = ParseLimits { bulk_bytes_max: self.state().config.proto_max_bulk_len, unauthenticated: false };
        let mut batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            batch.push((0, 0, Args::new()));
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        // The intents its multi-shard commands queue belong to this connection.
        let owner_before = std::mem::replace(&mut self.intent_owner, super::held::IntentOwner::Conn(index, conn.generation));
        // (Copied out only when a request is half-parsed: the common case
        // starts a fresh frame without moving the connection's.)
        let mut frame = if conn.frame.in_progress() { std::mem::take(&mut conn.frame) } else { FrameProgress::default() };
        if frame.in_progress() {
            conn.parsed_ahead.clear();
            std::mem::swap(&mut batch[0].2, &mut conn.frame_args);
        }
        // What the batch that deferred had parsed and not run: not parsed,
        // hashed and prefetched again (`conn::ParsedAhead`).
        let mut restored = conn.parsed_ahead.len;
        let mut restored_end = conn.parsed_ahead.end;
        if restored_end > buf.len() {
            debug_assert!(false, "parsed-ahead requests past the unread input");
            (restored, restored_end) = (0, 0);
        }
        while batch.len() < restored {
            batch.push((0, 0, Args::new()));
        }
        for (b, c) in batch.iter_mut().zip(conn.parsed_ahead.cmds.iter_mut()).take(restored) {
            std::mem::swap(b, c);
        }
        conn.parsed_ahead.clear();
        // Where the request left incomplete starts, and its slot in `batch`.
        let mut incomplete = None;
        // Reuses one allocation for the argument slices across commands
        // and calls (one per received request at -P 1).
        let mut store: Vec<&'static [u8]> = std::mem::take(&mut self.arg_store);
        let mut pos = 0;
        // With forwarded commands still out, the first command may have to
        // wait for them (a multi-shard one defers) and is retried every loop
        // turn: parse it alone, not 15 more each time.
        let mut ahead = if conn.slots.is_empty() { PARSE_AHEAD } else { 1 }.max(restored);
        // The batch's parsed requests (`batch[..parsed]`), and where parsing stopped.
        let mut parsed;
        let mut scan;
        'batches: loop {
            // Before authentication Redis holds each request to small limits
            // (10 arguments of 16 KiB), judged when it is parsed. Parsing one
            // command at a time then keeps a request that follows an AUTH in
            // the same read from being judged before the AUTH has run.
            limits.unauthenticated = password_set && self.conns[index as usize].as_ref().is_some_and(|c| !c.client.authenticated);
            if limits.unauthenticated {
                ahead = 1;
                if restored > 1 {
                    (restored, restored_end) = (0, 0);
                }
            }
            parsed = restored;
            scan = pos + restored_end;
            let fresh_from = restored;
            (restored, restored_end) = (0, 0);
            let mut error = None;
            while parsed < ahead {
                // Nothing left: what parsing it would say (incomplete, the
                // frame as it is), without the call (at -P 1 every receive
                // ends with its one request).
                if scan == buf.len() {
                    incomplete = Some((scan, parsed));
                    break;
                }
                if batch.len() == parsed {
                    batch.push((0, 0, Args::new()));
                }
                let (start, len, args) = &mut batch[parsed];
                match parse_frame(&buf[scan..], args, &limits, &mut frame) {
                    Ok(Some(n)) => {
                        (*start, *len) = (scan, n);
                        scan += n;
                        parsed += 1;
                    }
                    Ok(None) => {
                        incomplete = Some((scan, parsed));
                        break;
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            if parsed > fresh_from + 1 {
                self.prefetch_keys(index, buf, &batch[fresh_from..parsed]);
            }
            // More input than this batch: the connection streams
            // ("Streaming over shards" in the module doc). Or its shards
            // share a core ("Taken asleep").
            // Neither under a maxmemory limit: run held here, writes for a
            // held shard over the limit answered -OOM where, forwarded,
            // their own shard evicts first (tests/maxmemory.rs at --shards 3
            // on 2 cores, where "taken asleep" is on).
            let streaming = scan < buf.len();
            let unlimited = crate::exec::gates::alerts() & crate::exec::gates::mask(crate::exec::gates::Reason::Maxmemory) == 0;
            let asleep = unlimited && self.server.shard_count > 1 && self.take_asleep();
            let mut stream = unlimited && (streaming || asleep);
            let mut i = 0;
            while i < parsed {
                if stream && self.hold_run_may(index) {
                    if let Some((targets, len)) = self.stream_run(buf, &batch[i..parsed], &mut store, asleep) {
                        let run = &batch[i..i + len];
                        let ran = self.try_held_once(targets, |lp, _| {
                            let stats = &mut lp.state().stats;
                            if streaming {
                                stats.stream_held_runs += 1;
                                stats.stream_held_commands += len as u64;
                            } else {
                                stats.asleep_held_runs += 1;
                                stats.asleep_held_commands += len as u64;
                            }
                            // The held shards' keys were not prefetched
                            // with this shard's (their tables were out of
                            // reach): their lookups stalled on memory.
                            for t in targets.iter() {
                                lp.prefetch_keys_of(t, index, buf, run);
                            }
                            lp.run_commands(index, buf, run, &mut store, &mut pos)
                        });
                        match ran {
                            Some(Flow::Continue) => {
                                i += len;
                                continue;
                            }
                            Some(_) => break 'batches,
                            // Its shards woke meanwhile, or an earlier
                            // intent heads this shard's queue: the plain
                            // path for the rest of the batch.
                            None => stream = false,
                        }
                    } else {
                        stream = false;
                    }
                }
                // A command on several shards holds them, and the key-routed
                // commands after it in the batch run under the same hold: one
                // park of the other shards for the run, not one per command.
                if let Some((targets, len)) = self.hold_run_may(index).then(|| self.hold_run(buf, &batch[i..parsed], &mut store)).flatten() {
                    let run = &batch[i..i + len];
                    let ran = self.with_held(targets, |lp, _| lp.run_commands(index, buf, run, &mut store, &mut pos));
                    match ran {
                        Some(Flow::Continue) => {
                            i += len;
                            continue;
                        }
                        Some(_) => break 'batches,
                        // Not granted yet: the plain path below defers (the
                        // intent stays queued for the retry).
                        None => {}
                    }
                }
                // With one shard no command is held (`hold_run_may`), and
                // without a password none ends the authentication: the rest
                // of the batch runs in one call, not one call per command.
                let run = if self.server.shard_count == 1 && !password_set { parsed - i } else { 1 };
                match self.run_commands_inline(index, buf, &batch[i..i + run], &mut store, &mut pos) {
                    Flow::Continue => i += run,
                    _ => break 'batches,
                }
                // A command that ended the authentication (RESET) puts what
                // follows it under the unauthenticated limits: parse it again.
                if password_set && !limits.unauthenticated && self.conns[index as usize].as_ref().is_some_and(|c| !c.client.authenticated) {
                    (incomplete, frame) = (None, FrameProgress::default());
                    continue 'batches;
                }
            }
            if let Some(e) = error {
                self.state().stats.record_error("ERR");
                let conn = self.conns[index as usize].as_mut().unwrap();
                let mut r = Reply::new(&mut self.scratch, 2);
                r.error_parts(&[b"ERR Protocol error: ", e.0]);
                queue_reply(conn, &mut self.scratch, &mut self.pool, false);
                conn.closing = Closing::AfterWrite;
                crate::verbose!("Protocol error ({}) from client: id={} addr={}", String::from_utf8_lossy(e.0), conn.client.id, conn.client.addr);
                pos = buf.len();
                break;
            }
            if parsed < ahead {
                break;
            }
            ahead = PARSE_AHEAD;
        }
        // Requests parsed and not run (the connection deferred or waits for
        // a block's answer): kept for the resumed parse, from `pos`, the
        // first one's start (commands run in order, from the front).
        if let Some(k) = (pos < buf.len()).then(|| batch[..parsed].iter().position(|e| e.0 >= pos)).flatten() {
            if let Some(conn) = self.conns[index as usize].as_mut().filter(|c| c.closing == Closing::No) {
                debug_assert_eq!(batch[k].0, pos, "an unrun request after a gap");
                let ahead = &mut conn.parsed_ahead;
                let n = parsed - k;
                while ahead.cmds.len() < n {
                    ahead.cmds.push((0, 0, Args::new()));
                }
                for (c, b) in ahead.cmds.iter_mut().zip(batch[k..parsed].iter_mut()) {
                    std::mem::swap(c, b);
                    c.0 -= pos;
                }
                ahead.len = n;
                ahead.end = scan - pos;
            }
        }
        // (The frame's progress first: a request that ended the buffer
        // leaves none, and the connection is not looked up again.)
        if let (Some((start, slot)), true) = (incomplete, frame.in_progress()) {
            // Kept only when the query buffer will start at that request: a
            // command before it that deferred or closed the connection means
            // it is parsed again from its start, or never.
            if let Some(conn) = self.conns[index as usize].as_mut().filter(|c| start == pos && c.closing == Closing::No) {
                conn.frame = frame;
                std::mem::swap(&mut batch[slot].2, &mut conn.frame_args);
            }
        }
        if self.conns[index as usize].as_ref().is_some_and(|c| c.watch_fold) {
            // The read is done (or waits): a WATCH folded into an EXEC that
            // did not come gets its parts before anything is sent.
            self.unfold_watch(index);
        }
        self.batch = batch;
        store.clear();
        // As `Args::clear`: one command of 100k arguments leaves 1.6 MB of
        // slices behind (the TCL unit lazyfree's UNLINK test found them in
        // used_memory after the set was freed); the next commands need a few.
        if store.capacity() > ARG_STORE_KEEP {
            store = Vec::with_capacity(8);
        }
        self.arg_store = store;
        self.intent_owner = owner_before;
        pos
    }

    /// Runs `cmds` in order, moving `pos` past each one that ran; stops at
    /// the first that defers (not run) or stops the connection (run).
    #[inline(never)]
    fn run_commands(&mut self, index: u32, buf: &[u8], cmds: &[(usize, usize, Args)], store: &mut Vec<&'static [u8]>, pos: &mut usize) -> Flow {
        self.run_commands_inline(index, buf, cmds, store, pos)
    }

    /// `run_commands`, inlined into the batch's plain path (every request
    /// of an unpipelined client goes through it): the call, with the
    /// caller's reloads after it, was ~25 instructions a receive at -P 1.
    #[inline(always)]
    fn run_commands_inline(&mut self, index: u32, buf: &[u8], cmds: &[(usize, usize, Args)], store: &mut Vec<&'static [u8]>, pos: &mut usize) -> Flow {
        // One argument vector for the run, refilled per command.
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(store));
        let flow = self.run_commands_in(index, buf, cmds, &mut slices, pos);
        slices.clear();
        *store = recycle(slices);
        flow
    }

    #[inline(always)]
    fn run_commands_in<'b>(&mut self, index: u32, buf: &'b [u8], cmds: &'b [(usize, usize, Args)], slices: &mut Vec<&'b [u8]>, pos: &mut usize) -> Flow {
        // What CLIENT LIST shows as the query buffer while these run: the
        // same for the whole run, so set once (its readers are commands of
        // the run, on this thread).
        if let Some(conn) = self.conns[index as usize].as_mut() {
            conn.client.input_len = buf.len();
        }
        for (start, n, args) in cmds {
            if args.is_empty() {
                *pos = start + n;
                continue;
            }
            if self.server.hold.must_park(self.id) {
                // Another coordinator's hold heads this shard's queue: the
                // rest of the input waits in the query buffer (deferred)
                // and the shard parks at its next quiescent point, with no
                // connection half-run, so that a busy script's -BUSY
                // service (`network::script`) reaches every command already
                // read, as Redis answers every command that arrives.
                self.conns[index as usize].as_mut().unwrap().deferred = true;
                return Flow::Defer;
            }
            args.slices(&buf[*start..], slices);
            let flow = self.dispatch(index, slices);
            if flow == Flow::Defer {
                return flow;
            }
            *pos = start + n;
            // Closed by the command (output-buffer limit): as Redis with a
            // client closed ASAP, nothing more of its input runs.
            if flow == Flow::Stop || self.conns[index as usize].as_ref().is_some_and(|c| c.closing == Closing::Closed) {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Whether `hold_run` may find a run for connection `index`: several
    /// shards, no hold already, no forwarded command of the connection
    /// still out. Inlined, so that with one shard `hold_run` is not called.
    #[inline(always)]
    fn hold_run_may(&self, index: u32) -> bool {
        // In MULTI commands are queued, not run: nothing to hold.
        self.server.shard_count > 1
            && self.holding.is_empty()
            && self.conns[index as usize].as_ref().is_some_and(|c| c.slots.is_empty() && !c.client.multi.active && !c.watch_fold)
    }

    /// When `cmds[0]` needs several shards (and `hold_run_may`), the shards
    /// to hold for it and the key-routed commands right after it, and how
    /// many commands that run covers. None: run `cmds[0]` the plain way.
    fn hold_run(&mut self, buf: &[u8], cmds: &[(usize, usize, Args)], store: &mut Vec<&'static [u8]>) -> Option<(ShardMask, usize)> {
        let mut union = ShardMask::default();
        let mut len = 0;
        for (start, _, args) in cmds {
            if args.is_empty() {
                break;
            }
            let mut slices: Vec<&[u8]> = recycle(std::mem::take(store));
            args.slices(&buf[*start..], &mut slices);
            let mut mask = self.key_route(&slices, len == 0);
            // A first command that runs by hops is not held (`dispatch` sends its parts).
            if let Some(m) = mask.filter(|m| len == 0 && m.count() > 1) {
                if self.last_command.lookup(CommandTable::get(), slices[0]).is_some_and(|id| self.hops_command(id, m)) {
                    mask = None;
                }
            }
            slices.clear();
            *store = recycle(slices);
            match mask {
                Some(m) if len > 0 || m.count() > 1 => union.0 |= m.0,
                _ => break,
            }
            len += 1;
        }
        union.remove(self.id);
        (len > 0 && !union.is_empty()).then_some((union, len))
    }

    /// A streaming connection's run ("Streaming over shards" in the module
    /// doc): the single-shard data commands at the front of `cmds` (`write`
    /// or `readonly`, keys routed, not blocking, pub/sub, a script or admin),
    /// when some of them belong to other shards, one of them writes, and
    /// every one of those shards is asleep in its ring (taken as it sleeps,
    /// `shard::hold`: no wake-up, and a busy shard is never parked for it).
    /// A run of reads only waits for nothing the plain way (reads pass
    /// reads), and two shards then run a stream's reads side by side: held,
    /// `-P 64` GETs from 50 clients lost a quarter of their requests/s for
    /// the same CPU. `reads`: a run of reads goes held too (shards sharing
    /// a core run nothing side by side: "Taken asleep" in the module doc).
    /// The other shards and the run's length; None: run `cmds` the plain way.
    fn stream_run(&mut self, buf: &[u8], cmds: &[(usize, usize, Args)], store: &mut Vec<&'static [u8]>, reads: bool) -> Option<(ShardMask, usize)> {
        let (shards, me) = (self.server.shard_count, self.id);
        let mut others = ShardMask::default();
        let (mut len, mut writes) = (0, false);
        let mut slices: Vec<&[u8]> = recycle(std::mem::take(store));
        for (start, _, args) in cmds {
            if args.is_empty() {
                break;
            }
            args.slices(&buf[*start..], &mut slices);
            let Some(spec) = self.checked_spec(&slices, false) else { break };
            let data =
                spec.flags & (flags::WRITE | flags::READONLY) != 0 && spec.flags & (flags::BLOCKING | flags::PUBSUB | flags::RUNS_SCRIPT | flags::ADMIN) == 0;
            if !data || !matches!(spec.route, Route::Keys) {
                break;
            }
            let Some(t) = route_mask(spec, &slices, shards, me).only() else { break };
            if t != me {
                others.insert(t);
            }
            writes |= spec.flags & flags::READONLY == 0;
            len += 1;
        }
        slices.clear();
        *store = recycle(slices);
        let sleeping = &self.server.sleeping;
        (len > 0 && (writes || reads) && !others.is_empty() && others.iter().all(|t| sleeping[t].load(std::sync::atomic::Ordering::SeqCst)))
            .then_some((others, len))
    }

    /// The spec of the command `args` names when its argument count is
    /// valid (a container's subcommand with `subcommands`; without, a
    /// container is None), the check both `key_route` and `stream_run`
    /// make before they route; the execution makes its own with Redis's
    /// error replies.
    #[inline]
    fn checked_spec(&mut self, args: &[&[u8]], subcommands: bool) -> Option<&'static CommandSpec> {
        let table = CommandTable::get();
        let mut id = self.last_command.lookup(table, args[0])?;
        if table.is_container(id) {
            if !subcommands {
                return None;
            }
            id = table.lookup_sub(table.specs[id].name, args.get(1)?)?;
        }
        let spec = &table.specs[id];
        let argc = args.len() as i32;
        ((spec.arity <= 0 || argc == spec.arity) && argc >= -spec.arity).then_some(spec)
    }

    /// The shards of a key-routed command with a valid argument count; None
    /// for anything else (unknown, wrong arity, keyless or every-shard
    /// commands), which ends a hold run. With `several_keys_only`, also None
    /// for a command naming at most one key (most commands: no key is hashed
    /// twice on their way, dispatch routes them).
    fn key_route(&mut self, args: &[&[u8]], several_keys_only: bool) -> Option<ShardMask> {
        let spec = self.checked_spec(args, true)?;
        if !matches!(spec.route, Route::Keys | Route::Custom(_)) {
            return None;
        }
        if several_keys_only && matches!(spec.route, Route::Keys) && commands::key_positions(&spec.keys, args).nth(1).is_none() {
            return None;
        }
        Some(route_mask(spec, args, self.server.shard_count, self.id))
    }

    /// Asks for the memory the batch's keys will touch, in three passes
    /// (index bucket; entry; key and value bytes), so that the cache misses
    /// of up to `PARSE_AHEAD` lookups overlap instead of stalling the shard
    /// once per command (GET -P 16 over 1M keys spent about half the shard's
    /// time in lookups, waiting on memory). The first argument is taken as
    /// the key: for commands without one it is a wasted hint, nothing more.
    fn prefetch_keys(&mut self, index: u32, buf: &[u8], batch: &[(usize, usize, Args)]) {
        self.prefetch_keys_of(self.id, index, buf, batch);
    }

    /// `prefetch_keys` for the keys of shard `id`: this one, or one this
    /// thread holds (a streaming run, `stream_run`).
    fn prefetch_keys_of(&mut self, id: usize, index: u32, buf: &[u8], batch: &[(usize, usize, Args)]) {
        let Some(conn) = self.conns[index as usize].as_ref() else {
            return;
        };
        let db = conn.client.db;
        let shards = self.server.shard_count;
        let dbs = &self.set.get_mut(id).dbs;
        let Some(dict) = dbs.get(db).map(|d| &d.map) else {
            return;
        };
        let mut hashed = [(0usize, 0u32); PARSE_AHEAD];
        let mut n = 0;
        let mut last: Option<&[u8]> = None;
        for (start, _, args) in batch {
            if args.len() < 2 {
                continue;
            }
            let key = args.get(&buf[*start..], 1);
            // The key of the command before (a pipeline on one list, set
            // or hash): its lines are asked for already. Not hashed and
            // probed again (~100-150 instructions a command). Length and
            // last byte first: distinct keys (`key:<n>`) rarely get to
            // the full compare, which is `bytes_eq`'s word loads, not a
            // `memcmp` call (~20 instructions a command on one list).
            if last.is_some_and(|l| l.len() == key.len() && l.last() == key.last() && crate::shard::key::bytes_eq(l, key)) {
                continue;
            }
            last = Some(key);
            if shards > 1 && crate::shard::slot::key_shard(key, shards) != id {
                continue;
            }
            let h = dict.hash(key);
            dict.prefetch_bucket(h);
            hashed[n] = (db, h);
            n += 1;
        }
        super::prefetch::prefetch_entries(dbs, &hashed[..n]);
        super::prefetch::warm_batch_members(&dbs[db], buf, batch, |k| shards == 1 || crate::shard::slot::key_shard(k, shards) == id);
    }

    /// Runs one command for connection `index`. Inlined into the batch's
    /// loop (`run_commands_in`, its one caller): a call per command was
    /// ~20 instructions of prologue, epilogue and argument moves.
    #[inline(always)]
    pub fn dispatch(&mut self, index: u32, args: &[&[u8]]) -> Flow {
        let table = CommandTable::get();
        let now = self.clock.now_ms();
        let mut id = match self.last_command.lookup(table, args[0]) {
            Some(id) => id,
            None => return self.reject(index, None, &unknown_command_error(args)),
        };
        let mut spec = &table.specs[id];
        if spec.container && args.len() >= 2 {
            match table.lookup_sub(spec.name, args[1]) {
                Some(sub) => {
                    id = sub;
                    spec = &table.specs[id];
                }
                None => {
                    let mut msg = b"ERR unknown subcommand '".to_vec();
                    msg.extend_from_slice(printf_str(args[1], 128));
                    msg.extend_from_slice(format!("'. Try {} HELP.", spec.name.to_ascii_uppercase()).as_bytes());
                    return self.reject(index, None, &msg);
                }
            }
        }
        let argc = args.len() as i32;
        if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
            return self.reject(index, Some(id), commands::arity_error(spec.name).as_bytes());
        }
        // The common case in one test: no gated state in force (`alerts`),
        // and a connection in its ordinary state (authenticated, its ACL
        // user current and unrestricted, outside MULTI and RESP2 subscribed
        // mode, no WATCH folded, nothing forwarded still out). Then every
        // gate below lets the command through and only the write mark and
        // the interaction note are left: one look at the connection where
        // the gates took one each (~10 lookups of `conns[index]`, ~70
        // instructions a command at -P 16).
        let alerts = crate::exec::gates::alerts();
        let conn = self.conns[index as usize].as_mut().unwrap();
        let c = &conn.client;
        let plain = alerts == 0
            && c.authenticated
            && c.acl.unrestricted
            && c.acl.generation == self.server.acl.generation()
            && !c.multi.active
            && !conn.watch_fold
            && conn.slots.is_empty()
            && !(c.resp == 2 && c.in_pubsub_mode());
        // CLIENT CACHING's one-command flag, when not set before the command:
        // only CLIENT CACHING sets it, and `command_done` keeps it for that
        // one. Nothing for `command_done` to do then (one more look at the
        // connection spared).
        let caching = !plain || c.tracking.has(crate::messaging::tracking::flag::CACHING);
        if plain {
            if spec.is_write() {
                conn.wrote = true;
            }
            let seen = (now.div_euclid(1000), id as u16);
            if conn.interaction_reported != seen {
                conn.interaction_reported = seen;
                self.write_interaction(index, seen);
            }
            // (Outside MULTI only WATCH over several shards takes this step.)
            if self.server.shard_count > 1 {
                if let Some(flow) = self.transaction_step(index, id, spec, args, now) {
                    return flow;
                }
            }
            if spec.flags & flags::RUNS_SCRIPT != 0 {
                return self.script_command(index, id, args, now);
            }
        } else {
            let conn = self.conns[index as usize].as_mut().unwrap();
            if !conn.client.authenticated && spec.flags & flags::NO_AUTH == 0 && self.server.acl.auth_required() {
                return self.reject(index, Some(id), b"NOAUTH Authentication required.");
            }
            // ACL: one relaxed load while no user changed, no check for a user
            // who may run everything (`network::acl`).
            if conn.client.acl.generation != self.server.acl.generation() {
                if let Some(flow) = self.acl_refresh(index) {
                    return flow;
                }
            }
            let conn = self.conns[index as usize].as_mut().unwrap();
            if !conn.client.acl.unrestricted {
                if let Some(flow) = self.acl_check(index, id, args) {
                    return flow;
                }
            }
            // The gates of Redis's processCommand for unusual states (MISCONF,
            // AOF errors, replication, loading; pause, maxmemory and MONITOR
            // below): one load while none is in force (`exec::gates`).
            if alerts & crate::exec::gates::BEFORE_RUN != 0 {
                if let Some(flow) = self.gates_before_run(index, id, spec, args) {
                    return flow;
                }
            } else if let Some(flow) = self.subscribed_mode_gate(index, id, spec) {
                return flow;
            }
            if spec.is_write() {
                self.conns[index as usize].as_mut().unwrap().wrote = true;
            }
            if alerts & crate::exec::gates::mask(crate::exec::gates::Reason::Pause) != 0 && self.server.pause_until(now).is_some() {
                let conn = self.conns[index as usize].as_ref().unwrap();
                if self.server.pause_blocks(now, super::multi::may_replicate(spec, id, args, &conn.client)) {
                    // CLIENT PAUSE: this connection waits (its input stays
                    // queued), counted in blocked_clients as Redis's postponed clients.
                    let conn = self.conns[index as usize].as_mut().unwrap();
                    conn.deferred = true;
                    conn.paused = true;
                    self.set_paused_info(index, true);
                    return Flow::Defer;
                }
            }
            self.note_interaction(index, now, id);
            if alerts & crate::exec::gates::mask(crate::exec::gates::Reason::Maxmemory) != 0 && self.server.memory.limit() != 0 {
                if let Some(flow) = self.maxmemory_step(index, id, spec, now) {
                    return flow;
                }
            }
            if let Some(flow) = self.transaction_step(index, id, spec, args, now) {
                return flow;
            }
            if spec.flags & flags::RUNS_SCRIPT != 0 {
                return self.script_command(index, id, args, now);
            }
            let feed_monitors = alerts & crate::exec::gates::mask(crate::exec::gates::Reason::Monitor) != 0
                && self.server.monitors.load(std::sync::atomic::Ordering::Relaxed) > 0
                && spec.flags & (flags::ADMIN | flags::SKIP_MONITOR) == 0;
            if feed_monitors
                && self.server.monitor_lines_queued.iter().any(|n| n.load(std::sync::atomic::Ordering::Relaxed) >= crate::shard::mailbox::MONITOR_BACKLOG_MAX)
            {
                // A monitor's shard is behind on the lines already sent: wait.
                return self.mailbox_back_off(index);
            }
            if spec.flags & flags::BLOCKING != 0 && !self.conns[index as usize].as_ref().unwrap().slots.is_empty() {
                // A command that may block runs once the replies before it are
                // in: its own reply then comes straight after them.
                self.conns[index as usize].as_mut().unwrap().deferred = true;
                return Flow::Defer;
            }
        }
        let shards = self.server.shard_count;
        if shards == 1 {
            // One shard: every route names this one, and nothing is held,
            // forwarded or marked by a hop (those need two shards), so the
            // mask, the hold and the publish-order tests below have one
            // answer (~35 instructions a command at -P 16 skipped).
            let flow = self.execute_here_inline(index, id, spec, args, now);
            return if caching { self.command_done(index, spec, flow) } else { flow };
        }
        let mut mask = route_mask(spec, args, shards, self.id);
        if let Route::Client(f) = spec.route {
            mask = f(&self.conns[index as usize].as_ref().unwrap().client, args, shards);
            mask.insert(self.id);
        }
        // Inside a hold run (`hold_run`) every shard the command needs may be
        // this thread's already: it runs here, in order.
        let covered = !self.holding.is_empty()
            && mask.0 & !(self.holding.0 | 1u128 << self.id) == 0
            && self.conns[index as usize].as_ref().is_some_and(|c| c.slots.is_empty());
        // PUBLISH and SPUBLISH (one owner each): in this connection's order.
        if spec.flags & flags::PUBSUB != 0 && matches!(spec.route, Route::Custom(_)) {
            let conn = self.conns[index as usize].as_mut().unwrap();
            if let Some(t) = mask.only().filter(|&t| !conn.publish_may_go(t, self.id)) {
                debug_assert!(conn.forwarded > 0, "a publish to {t} waits for nothing");
                conn.deferred = true;
                return Flow::Defer;
            }
        }
        if let Some(t) = mask.only().filter(|_| !covered) {
            // Order across shards (module doc): after a single-key command
            // of this connection still out on another shard, the ones the
            // rule holds back wait for its reply.
            let conn = self.conns[index as usize].as_ref().unwrap();
            if !conn.order_may_go(t, self.id, spec.flags & flags::READONLY != 0) && self.pipeline_order_strict() {
                let conn = self.conns[index as usize].as_mut().unwrap();
                conn.deferred = true;
                conn.order_wait = true;
                return Flow::Defer;
            }
        }
        if mask.only().is_some() && !covered && spec.flags & flags::READONLY == 0 && self.conns[index as usize].as_ref().unwrap().hops != 0 {
            // After a hop of this connection still in flight, while
            // keyspace events are on: its events are published when its
            // last part is back (`messaging::hop_order`), and this
            // command's must follow them ("Order per connection" in
            // `network::hop`). One load while the connection has no hop out.
            if self.state().config.notify_keyspace_events != 0 {
                self.conns[index as usize].as_mut().unwrap().deferred = true;
                return Flow::Defer;
            }
        }
        let flow = match mask.only() {
            // A key under a pending hop intent waits for its part (`network::hop`).
            Some(s) if s == self.id && self.keys_marked(spec, args) => return self.wait_for_marks(index),
            Some(s) if s == self.id => self.execute_here(index, id, args, now),
            _ if covered => self.execute_here(index, id, args, now),
            Some(s) if matches!(spec.route, Route::Keys | Route::Custom(_)) => {
                let flow = self.forward(index, id, s, args);
                if flow == Flow::Continue && spec.flags & flags::BLOCKING != 0 {
                    // Nothing more is read until its owner says whether
                    // it blocked (`Message::Blocked`) or replied.
                    let conn = self.conns[index as usize].as_mut().unwrap();
                    conn.block_pending = true;
                    conn.block_seq = conn.next_seq - 1;
                    conn.deferred = true;
                    return Flow::Stop;
                }
                flow
            }
            // Several shards: the hop commands send each shard its part.
            _ => match self.try_hop(index, id, args, mask) {
                Some(flow) => flow,
                None => {
                    // The others: the connection's earlier forwarded commands
                    // must finish first, then we hold the others.
                    let conn = self.conns[index as usize].as_mut().unwrap();
                    if !conn.slots.is_empty() {
                        conn.deferred = true;
                        return Flow::Defer;
                    }
                    let mut targets = mask;
                    targets.remove(self.id);
                    self.execute_held(index, id, args, now, targets)
                }
            },
        };
        self.command_done(index, spec, flow)
    }

    /// A command ran or was sent on (not deferred): CLIENT CACHING's flag
    /// lasts one command (`ClientTracking::command_done`).
    #[inline(always)]
    fn command_done(&mut self, index: u32, spec: &CommandSpec, flow: Flow) -> Flow {
        if flow != Flow::Defer {
            if let Some(c) = self.conns[index as usize].as_mut() {
                c.client.tracking.command_done(spec.name);
            }
        }
        flow
    }

    /// The first gates of Redis's processCommand, in its order, while some
    /// unusual state is in force (`exec::gates::BEFORE_RUN`): MISCONF
    /// (BGSAVE, then AOF errors), the replication write gates, RESP2
    /// subscribed mode, MASTERDOWN, loading. Some(flow): refused.
    #[inline(never)]
    fn gates_before_run(&mut self, index: u32, id: usize, spec: &CommandSpec, args: &[&[u8]]) -> Option<Flow> {
        let conn = self.conns[index as usize].as_mut().unwrap();
        let mut is_write = super::multi::is_write(spec, id, &conn.client);
        let writes_blocked = self.server.persistence.writes_blocked.load(std::sync::atomic::Ordering::Relaxed);
        let aof_error = self.server.aof.write_error();
        // Replication's gates (NOREPLICAS, READONLY; MASTERDOWN below).
        let repl_gate = self.server.repl.gate();
        // A closed gate judges a script by the flags it declares.
        let mut cmd_flags = spec.flags;
        if spec.flags & flags::RUNS_SCRIPT != 0 && (writes_blocked || aof_error.is_some() || repl_gate != 0) {
            cmd_flags = crate::scripting::command_flags(spec.name, spec.flags, args);
            is_write |= cmd_flags & flags::WRITE != 0;
        }
        // As Redis's processCommand, PING is refused too: a health check must
        // see that the server cannot persist.
        if writes_blocked && (is_write || spec.name == "ping") {
            return Some(self.reject(index, Some(id), crate::persistence::snapshot::MISCONF.as_bytes()));
        }
        if let Some(errno) = aof_error.filter(|_| is_write || spec.name == "ping") {
            let msg = format!("MISCONF Errors writing to the AOF file: {}", crate::persistence::aof_file::strerror(errno));
            return Some(self.reject(index, Some(id), msg.as_bytes()));
        }
        if repl_gate != 0 {
            if let Some(msg) = crate::replication::Master::refuse_write(repl_gate, is_write) {
                return Some(self.reject(index, Some(id), msg.as_bytes()));
            }
        }
        if let Some(flow) = self.subscribed_mode_gate(index, id, spec) {
            return Some(flow);
        }
        if repl_gate != 0 {
            let multi = &self.conns[index as usize].as_ref().unwrap().client.multi;
            let deny_stale = cmd_flags & flags::STALE == 0 || (multi.active && super::multi::is_exec(id) && multi.inv_flags & flags::STALE != 0);
            if let Some(msg) = crate::replication::Master::refuse_stale(repl_gate, deny_stale) {
                return Some(self.reject(index, Some(id), msg.as_bytes()));
            }
        }
        // Start-up loading (Redis's processCommand): only the commands
        // flagged `loading` run until the dataset is in the shards.
        if self.server.loading.load(std::sync::atomic::Ordering::Relaxed) && spec.flags & flags::LOADING == 0 {
            return Some(self.reject(index, Some(id), commands::err::LOADING.as_bytes()));
        }
        None
    }

    /// RESP2 subscribed mode (Redis's processCommand): a short list of
    /// commands only. One branch for a client that never subscribed.
    #[inline(always)]
    fn subscribed_mode_gate(&mut self, index: u32, id: usize, spec: &CommandSpec) -> Option<Flow> {
        let client = &self.conns[index as usize].as_ref().unwrap().client;
        if client.resp == 2 && client.in_pubsub_mode() && !commands::pubsub::allowed_in_subscribed_mode(spec.name) {
            return Some(self.reject(index, Some(id), commands::pubsub::subscribed_mode_error(spec.name).as_bytes()));
        }
        None
    }

    /// Replies with the error `msg` (raw bytes: it may quote the client's
    /// arguments) instead of running the command.
    pub(super) fn reject(&mut self, index: u32, id: Option<usize>, msg: &[u8]) -> Flow {
        let abort = self.flag_transaction(index, id, msg);
        let msg = abort.as_deref().unwrap_or(msg);
        let conn = self.conns[index as usize].as_mut().unwrap();
        let mut r = Reply::new(&mut self.scratch, conn.client.resp);
        r.error_bytes(msg);
        let kind = r.error_prefix.unwrap();
        let st = self.set.get_mut(self.id);
        st.stats.record_error(kind.as_str());
        st.stats.record_rejected(id);
        let discard = take_discard(&mut conn.client);
        queue_reply(conn, &mut self.scratch, &mut self.pool, discard);
        // Errors fill the buffer of a client that never reads as well.
        if self.check_output_limit(index, self.clock.now_ms()) {
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn execute_held(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64, targets: ShardMask) -> Flow {
        match self.with_held(targets, |lp, _| lp.execute_here(index, id, args, now)) {
            Some(flow) => flow,
            None => {
                self.conns[index as usize].as_mut().unwrap().deferred = true;
                Flow::Defer
            }
        }
    }

    /// Runs a command on this thread over the shards it owns or holds.
    #[inline(never)]
    pub(super) fn execute_here(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Flow {
        self.execute_here_inline(index, id, &CommandTable::get().specs[id], args, now)
    }

    /// `execute_here`, inlined where one shard runs every command
    /// (`dispatch`'s first exit): a call per command was ~25 instructions
    /// of prologue, epilogue and reloads at -P 1.
    #[inline(always)]
    fn execute_here_inline(&mut self, index: u32, id: usize, spec: &CommandSpec, args: &[&[u8]], now: i64) -> Flow {
        let conn = self.conns[index as usize].as_mut().unwrap();
        // Decided after the handler: CLIENT REPLY and RESET change the mode
        // for their own reply too (Redis checks the flags when replying).
        let mode_before = conn.client.reply_mode;
        let direct = conn.slots.is_empty();
        let resp = conn.client.resp;
        let db = conn.client.db;
        let out: &mut Vec<u8> = if direct { &mut conn.out } else { &mut self.scratch };
        let mark = out.len();
        let mut r = Reply::new(out, resp);
        {
            // Dropped only when it owns memory (`Ctx::owns_memory`): the drop
            // glue was an out-of-line call a command (~25 instructions) that
            // nearly always found nothing to free.
            let mut ctx = std::mem::ManuallyDrop::new(Ctx::new(&mut self.set, &self.server, self.id, db, resp, now, Some(&mut conn.client)));
            crate::exec::call_inline(&mut ctx, &mut self.clock, spec, id, args, &mut r, &Caller::LOCAL, &mut self.monitor_line);
            if ctx.owns_memory() {
                drop(std::mem::ManuallyDrop::into_inner(ctx));
            }
        }
        let mut discard = reply_mode_after_command(&mut conn.client, mode_before);
        // (Un)subscribe confirmations are pushes: CLIENT REPLY OFF/SKIP
        // does not silence them (Redis 7.0.15's CLIENT_PUSHING).
        if discard && commands::pubsub::is_subscription_command(spec.name) {
            discard = false;
        }
        if direct && discard {
            let pushes = crate::messaging::pubsub::leading_pushes_len(&conn.out[mark..]);
            conn.out.truncate(mark + pushes);
        }
        if !direct {
            queue_reply(conn, &mut self.scratch, &mut self.pool, discard);
        }
        // Nothing left to do after the command, in one test: every step
        // below (and `finish_command`'s) finds nothing and lets it go on.
        // Each looked up the shard or the connection for its own check
        // (~40 instructions a command at -P 16).
        let c = &conn.client;
        let client_quiet = !c.info_dirty && !c.repl.wait_pending && c.repl.sync.is_none() && !c.close_after_reply && !c.in_pubsub_mode();
        let st = self.set.get(self.id);
        let normal = &st.config.client_output_buffer_limit_normal;
        if client_quiet
            && self.monitor_line.is_empty()
            && self.holding.is_empty()
            && st.pending_publish.is_empty()
            && st.pubsub.outgoing.is_empty()
            && !st.tracking.has_work()
            && st.blocking.request.is_none()
            && st.blocking.ready.is_empty()
            && normal.hard_bytes == 0
            && normal.soft_bytes == 0
            && self.client_mem.limit_bytes == 0
        {
            return Flow::Continue;
        }
        self.feed_monitors(now);
        if self.own_pushes_start(index, id) {
            self.after_command_messaging();
            self.own_pushes_place(index, direct.then_some(mark));
        } else {
            self.after_command_messaging();
        }
        self.tracking_after_command(false);
        if self.block_if_requested(index) {
            return Flow::Stop;
        }
        self.finish_command(index, now)
    }

    /// Whether the command `id` connection `index` ran may have events of
    /// its own to place (`messaging::own_pushes`): the client is a RESP3
    /// subscriber and events wait. Collecting starts if so.
    pub(super) fn own_pushes_start(&mut self, index: u32, id: usize) -> bool {
        let c = &self.conns[index as usize].as_ref().unwrap().client;
        if c.resp < 3 || !c.pubsub.any() {
            return false;
        }
        let caller = crate::messaging::pubsub::Subscriber { shard: self.id as u32, token: c.pubsub.token };
        let resp = c.resp;
        self.own_pushes.start(caller, resp, CommandTable::get().specs[id].name);
        true
    }

    /// Puts the pushes `own_pushes_start` collected around the command's
    /// reply: at `reply_start..` of the connection's output, or around the
    /// reply slot it queued last (None).
    pub(super) fn own_pushes_place(&mut self, index: u32, reply_start: Option<usize>) {
        self.own_pushes.stop();
        if self.own_pushes.is_empty() {
            return;
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        match reply_start {
            Some(at) => self.own_pushes.place(&mut conn.out, at),
            None => conn.place_in_last_slot(&mut self.own_pushes),
        }
        self.mark_dirty(index);
        self.check_output_limit(index, crate::util::unix_ms());
    }

    /// After a command ran for connection `index` on this thread: the
    /// client registry catches up with the client's state, then
    /// close-after-reply and the output-buffer limit.
    /// Inlined (after every command), with the registry's update out of line.
    #[inline(always)]
    pub(super) fn finish_command(&mut self, index: u32, now: i64) -> Flow {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return Flow::Stop;
        };
        if conn.client.info_dirty {
            self.update_client_info(index);
        }
        if let Some(flow) = self.replication_step(index) {
            return flow;
        }
        // Keys this command gave data to are served before its client's
        // next command (Redis's handleClientsBlockedOnKeys after a call).
        self.serve_ready();
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return Flow::Stop;
        };
        if conn.client.close_after_reply {
            conn.closing = Closing::AfterWrite;
            return Flow::Stop;
        }
        // `check_output_limit` with the connection at hand: a client of the
        // `normal` class without limits (the default) is done.
        let normal = &self.set.get(self.id).config.client_output_buffer_limit_normal;
        let limited = normal.hard_bytes != 0 || normal.soft_bytes != 0 || conn.client.in_pubsub_mode();
        if limited && self.enforce_output_limit(index, now, false) {
            return Flow::Stop;
        }
        // Then maxmemory-clients: a client the output-buffer limit closed
        // is not evicted too (Redis gives that limit precedence).
        if self.client_memory_after_command(index) {
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// The client registry (CLIENT LIST, INFO) catches up with a client
    /// whose shown state a command changed (`ClientState::info_dirty`).
    #[inline(never)]
    fn update_client_info(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return;
        };
        conn.client.info_dirty = false;
        let (name, db, resp, no_evict, monitor, readonly) =
            (conn.client.name.clone(), conn.client.db, conn.client.resp, conn.client.no_evict, conn.client.monitor, conn.client.readonly);
        let (multi, watch) = (conn.client.multi.info(), conn.client.watch.cell.clone());
        let p = &conn.client.pubsub;
        let subscriptions = [p.channels.len(), p.patterns.len(), p.shard_channels.len()];
        let (tracking_flags, redir) = (conn.client.tracking.flags, conn.client.tracking.redirect);
        let user = conn.client.acl.user_name().to_vec();
        if let Some(info) = self.state().clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.tracking_flags = tracking_flags;
            info.redir = redir;
            info.name = name;
            info.db = db;
            info.resp = resp;
            info.no_evict = no_evict;
            info.is_monitor = monitor;
            info.readonly = readonly;
            info.multi = multi;
            info.watch = watch;
            info.subscriptions = subscriptions;
            info.user = user;
        }
        // What the command changed in the client's state, counted for
        // maxmemory-clients (a walk over it: only while that is set).
        if self.client_mem.limit_bytes != 0 {
            let conn = self.conns[index as usize].as_mut().unwrap();
            conn.mem_state_bytes = super::client_memory::state_bytes(&conn.client);
            conn.mem_multi_bytes = conn.client.multi.queued_bytes();
            // Counted at the check that follows, whatever the change's
            // size: CLIENT LIST shows it, and NO-EVICT moves the bucket.
            conn.mem_hi = 0;
        }
    }

    /// Defers connection `index` because a mailbox to another shard is at
    /// its bound (retried next loop turn), counted in `mailbox_backoffs`.
    pub(super) fn mailbox_back_off(&mut self, index: u32) -> Flow {
        self.state().stats.mailbox_backoffs += 1;
        self.conns[index as usize].as_mut().unwrap().deferred = true;
        Flow::Defer
    }

    /// Sends a command to the shard that owns its keys; its reply slot keeps
    /// the connection's replies in request order.
    /// Two bounds gate it: the connection's own (`FORWARDED_MAX` out at
    /// once) and the mailbox's to the target (`Outbox::may_send_request`);
    /// at either the connection waits for replies to come back.
    fn forward(&mut self, index: u32, id: usize, target: usize, args: &[&[u8]]) -> Flow {
        let conn = self.conns[index as usize].as_mut().unwrap();
        if conn.forwarded >= FORWARDED_MAX {
            // Enough replies are being computed for this client already:
            // the rest of its input waits for them (resumed by their return).
            conn.deferred = true;
            conn.throttled = true;
            return Flow::Defer;
        }
        let bytes = args.iter().map(|a| a.len()).sum();
        if !self.outboxes[target].as_ref().is_some_and(|o| o.may_send_request(bytes)) {
            // The target has as much of ours outstanding as the mailbox allows.
            return self.mailbox_back_off(index);
        }
        let token = self.token(index);
        let mut packed = self.pool.pop().unwrap_or_default();
        let conn = self.conns[index as usize].as_mut().unwrap();
        // The client's address and name travel in front of the arguments
        // (`CALLER_FIELDS`), in the pooled buffer: the shard that runs the
        // command writes its slowlog entry and MONITOR line with them,
        // without an allocation per forwarded command.
        let caller = [conn.client.addr.as_bytes(), &conn.client.name[..]];
        packed.pack(caller.into_iter().chain(args.iter().copied()));
        let discard = take_discard(&mut conn.client);
        let seq = conn.next_seq;
        conn.next_seq += 1;
        conn.note_forward(target);
        conn.forward_wrote |= CommandTable::get().specs[id].flags & flags::READONLY == 0;
        conn.forwarded += 1;
        conn.slots.push_back(Slot { seq, ready: None, discard, request: true });
        // `databases` is at most INT_MAX: a u32 holds every index.
        let msg = Message::Request {
            from: self.id,
            conn: token,
            seq,
            db: conn.client.db as u32,
            fd: conn.fd,
            resp: conn.client.resp,
            cmd: id as u16,
            client: conn.client.id,
            track: conn.client.tracking.remembers_reads(),
            args: packed,
        };
        if let Some(o) = self.outboxes[target].as_mut() {
            o.send_request(msg, bytes);
            self.doorbells.insert(target);
        }
        Flow::Continue
    }

    /// Before an answer for another shard's client leaves (a forwarded
    /// command's reply, a hop part's, a blocked client's pop): this
    /// shard's write stream is handed over, numbered before the answer. The
    /// client's shard then waits for these writes' fsync (appendfsync
    /// always), and whatever the client writes after the reply is numbered
    /// after them: the merge's key order is causal (`persistence::lanes`).
    pub(crate) fn hand_over_before_answer(&mut self) {
        if self.state().stream.is_on() {
            let server = self.server.clone();
            server.aof.hand_over(self.state());
        }
    }

    /// Runs a command sent by another shard; the reply replaces the arguments in `packed`.
    /// `client` (of shard `from`) is the client it runs for; `track`: its
    /// keys are remembered for that client's tracking.
    #[allow(clippy::too_many_arguments)]
    pub fn execute_remote(&mut self, id: usize, db: usize, resp: u8, client: u64, track: bool, from: usize, packed: &mut PackedArgs) {
        let now = self.clock.now_ms();
        self.scratch.clear();
        let mut r = Reply::new(&mut self.scratch, resp);
        let mut slices: Vec<&[u8]> = Vec::with_capacity(packed.ends.len());
        packed.slices(&mut slices);
        let (caller, args) = slices.split_at(CALLER_FIELDS);
        let limited = self.server.memory.limit() != 0;
        {
            let mut ctx = Ctx::new(&mut self.set, &self.server, self.id, db, resp, now, None);
            ctx.client_elsewhere = true;
            let caller = Caller { addr: caller[0], name: caller[1], client_id: client, track, shard: from };
            call(&mut ctx, &mut self.clock, id, args, &mut r, &caller, &mut self.monitor_line);
        }
        if limited {
            self.maxmemory_after_remote(id);
        }
        self.hand_over_before_answer();
        drop(slices);
        packed.data.clear();
        packed.data.extend_from_slice(&self.scratch);
        packed.ends.clear();
        self.scratch.clear();
        self.feed_monitors(now);
        // Before the reply goes back: a publisher subscribed to its channel
        // sees the messages queued before its own in order; the client's
        // own event pushes go back around its reply (`own_pushes`).
        let caller = self.state().pubsub.remote_caller;
        match caller {
            Some(caller) if resp >= 3 && !self.state().pending_publish.is_empty() => {
                self.own_pushes.start(caller, resp, CommandTable::get().specs[id].name);
                self.after_command_messaging();
                self.own_pushes.stop();
                self.own_pushes.place(&mut packed.data, 0);
            }
            _ => self.after_command_messaging(),
        }
        // Before the reply leaves: an invalidation for the client that
        // wrote reaches its shard first and is queued behind the reply.
        self.tracking_after_command(true);
    }

    /// Redis's output-buffer limit check (`checkClientOutputBufferLimits`),
    /// after every reply added to connection `index`: over the hard limit,
    /// or over the soft limit for longer than its seconds, the connection is
    /// closed, its buffers freed, one warning logged and the disconnection
    /// counted. Returns whether it closed the connection. `from_cron`: the
    /// periodic check of idle clients, whose line says "closed" as Redis's
    /// synchronous close does, where a reply's says "scheduled to be closed
    /// ASAP".
    #[inline(always)]
    pub fn check_output_limit(&mut self, index: u32, now: i64) -> bool {
        // Inlined: a client of the `normal` class without limits (the
        // default) returns at once, as `enforce_output_limit` would.
        let normal = &self.state().config.client_output_buffer_limit_normal;
        let unlimited = normal.hard_bytes == 0 && normal.soft_bytes == 0 && self.conns[index as usize].as_ref().is_some_and(|c| !c.client.in_pubsub_mode());
        if !unlimited && self.enforce_output_limit(index, now, false) {
            return true;
        }
        // Output appended to a client counts against maxmemory-clients
        // (the output-buffer limit, checked first, takes precedence).
        self.client_memory_note(index);
        false
    }

    /// Inlined up to the limit's check: after every command, and with the
    /// default `normal` limits (none) that is all it does. (`#[inline]`
    /// alone left it a call.)
    #[inline(always)]
    pub fn enforce_output_limit(&mut self, index: u32, now: i64, from_cron: bool) -> bool {
        let Some(pubsub) = self.conns[index as usize].as_ref().map(|c| c.client.in_pubsub_mode()) else {
            return false;
        };
        // Redis's client classes: a subscribed client is held to the
        // `pubsub` limits, every other to `normal`.
        let config = &self.state().config;
        let limit = if pubsub { config.client_output_buffer_limit_pubsub } else { config.client_output_buffer_limit_normal };
        if limit.hard_bytes == 0 && limit.soft_bytes == 0 {
            return false;
        }
        self.output_over_limit(index, now, from_cron, limit)
    }

    #[inline(never)]
    fn output_over_limit(&mut self, index: u32, now: i64, from_cron: bool, limit: crate::config::OutputBufferLimit) -> bool {
        let Some(conn) = self.conns[index as usize].as_mut() else {
            return false;
        };
        // Closed already: one line and one count per client.
        if conn.closing == Closing::Closed {
            return false;
        }
        let pending = conn.mem().out_pending;
        // CLIENT LIST's `omem=` follows the figure this limit checks (Redis
        // shows the one it checks): left to the cron, it lagged 100 ms of
        // pushes behind, and a subscriber seen at 51 KB was then closed at
        // the 100 KB limit (TCL unit obuf-limits).
        if super::client_memory::omem_moved(conn.omem_reported, pending) {
            conn.omem_reported = pending;
            if let Some(info) = self.set.get_mut(self.id).clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
                info.mem.out_pending = pending;
            }
        }
        let size = pending as u64;
        let hard = limit.hard_bytes > 0 && size >= limit.hard_bytes;
        // The soft limit's time in whole seconds, as Redis's
        // `server.unixtime - obuf_soft_limit_reached_time > soft_seconds`:
        // a client stays over it for more than its seconds (up to one
        // more) before it is closed, never less.
        let now_s = now.div_euclid(1000);
        let soft = if limit.soft_bytes > 0 && size >= limit.soft_bytes {
            if conn.soft_limit_since_s == 0 {
                conn.soft_limit_since_s = now_s;
                false
            } else {
                now_s - conn.soft_limit_since_s > limit.soft_seconds as i64
            }
        } else {
            conn.soft_limit_since_s = 0;
            false
        };
        if !hard && !soft {
            return false;
        }
        let client = self.client_info_line(index, now);
        if from_cron {
            crate::warning!("Client {} closed for overcoming of output buffer limits.", client);
        } else {
            crate::warning!("Client {} scheduled to be closed ASAP for overcoming of output buffer limits.", client);
        }
        self.state().stats.client_output_buffer_limit_disconnections += 1;
        self.close_by_server(index);
        true
    }

    /// The connection as CLIENT LIST shows it (without the newline), for log lines.
    pub(super) fn client_info_line(&mut self, index: u32, now: i64) -> String {
        self.write_client_mem(index);
        let mut line = String::new();
        if let Some(info) = self.set.get_mut(self.id).clients.get(index as usize).and_then(|i| i.as_ref()) {
            commands::client::client_line(info, now, 0, &mut line);
        }
        line.truncate(line.trim_end().len());
        line
    }

    /// Appends a MONITOR line to this shard's monitoring clients; a monitor
    /// that does not read is closed at its output-buffer limit, as in Redis.
    pub fn feed_local_monitors(&mut self, line: &[u8], now_ms: i64) {
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_mut() {
                if c.client.monitor && c.closing == Closing::No {
                    c.out.extend_from_slice(line);
                    self.mark_dirty(i as u32);
                    self.check_output_limit(i as u32, now_ms);
                }
            }
        }
    }

    /// Delivers the MONITOR line `call()` left for the command just run (if
    /// any) to every monitoring client: this shard's directly, the others'
    /// through their shard's mailbox, so that each line leaves the shard
    /// that ran the command, after it ran. Each copy is stamped for its
    /// destination (`Server::monitor_stamps`) before the command's reply
    /// leaves, so a line of the client's next command, run on another
    /// shard, has a later stamp and is shown after it (unit/introspection's
    /// "MONITOR supports redacting command arguments" at 3 shards: a hop's
    /// MIGRATE line came after the caller's next AUTH, run at home).
    /// Inlined: after every command, the check of an empty line.
    #[inline(always)]
    pub(super) fn feed_monitors(&mut self, now_ms: i64) {
        if !self.monitor_line.is_empty() {
            self.feed_monitor_line(now_ms);
        }
    }

    #[inline(never)]
    fn feed_monitor_line(&mut self, now_ms: i64) {
        let line = std::mem::take(&mut self.monitor_line);
        for s in 0..self.server.shard_count {
            let stamp = self.server.monitor_stamps.take(s);
            if s == self.id {
                self.accept_monitor_line(stamp, line.clone(), now_ms);
            } else {
                self.server.monitor_lines_queued[s].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.send_to(s, Message::MonitorLine { stamp, line: line.clone() });
            }
        }
        self.monitor_line = line;
        self.monitor_line.clear();
    }

    /// Feeds line `stamp` to this shard's monitors once every line stamped
    /// before it has been fed; a line that comes early waits (one mailbox
    /// hop at most: its predecessors' stamps were taken before it), as
    /// pub/sub's delivery batches do (`pubsub::Inbound`).
    pub(super) fn accept_monitor_line(&mut self, stamp: u64, line: Vec<u8>, now_ms: i64) {
        let mut due = std::mem::take(&mut self.monitor_due);
        self.monitor_inbound.accept(stamp, line, &mut due);
        for l in due.drain(..) {
            self.feed_local_monitors(&l, now_ms);
        }
        self.monitor_due = due;
    }
}

/// Argument slices kept between calls of `parse_and_run` (16 bytes each).
const ARG_STORE_KEEP: usize = 4096;

/// Reuses an empty Vec's allocation for elements of another lifetime.
#[inline(always)]
pub(super) fn recycle<'a, 'b>(mut v: Vec<&'a [u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter().map(|_| -> &'b [u8] { unreachable!() }).collect()
}

/// Consumes a pending CLIENT REPLY SKIP; returns whether this reply is dropped.
pub(super) fn take_discard(client: &mut commands::ClientState) -> bool {
    match client.reply_mode {
        ReplyMode::On => false,
        ReplyMode::Off => true,
        ReplyMode::Skip => {
            client.reply_mode = ReplyMode::On;
            true
        }
        ReplyMode::SkipNext => {
            client.reply_mode = ReplyMode::Skip;
            false
        }
    }
}

/// CLIENT REPLY for a command run on the connection's thread, whose handler
/// may have changed the mode (`before` is the mode it started with). Returns
/// whether its reply is dropped, and applies Redis's end-of-command step
/// (`resetClient`): a pending SKIP is consumed, a SKIP just issued applies
/// to the next command.
pub(super) fn reply_mode_after_command(client: &mut commands::ClientState, before: ReplyMode) -> bool {
    let after = client.reply_mode;
    let discard = if after != before { after == ReplyMode::Off } else { matches!(before, ReplyMode::Off | ReplyMode::Skip) };
    client.reply_mode = match after {
        ReplyMode::Skip if before == ReplyMode::Skip => ReplyMode::On,
        ReplyMode::SkipNext => ReplyMode::Skip,
        m => m,
    };
    discard
}

/// Appends the reply in `scratch` to the connection, behind any pending slots.
pub(super) fn queue_reply(conn: &mut super::conn::Conn, scratch: &mut Vec<u8>, pool: &mut Vec<PackedArgs>, discard: bool) {
    if conn.slots.is_empty() {
        let keep = if discard { crate::messaging::pubsub::leading_pushes_len(scratch) } else { scratch.len() };
        conn.out.extend_from_slice(&scratch[..keep]);
    } else {
        let mut p = pool.pop().unwrap_or_default();
        p.data.clear();
        p.ends.clear();
        p.data.extend_from_slice(scratch);
        conn.push_ready_slot(p, discard);
    }
    scratch.clear();
}
