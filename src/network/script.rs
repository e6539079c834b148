//! Scripts and the loop: the EVAL family holds every shard and runs on the
//! caller's thread, while every shard thread (the caller's included) keeps
//! answering its clients with -BUSY once the script has run longer than
//! `busy-reply-threshold` (Redis's processEventsWhileBlocked from the Lua
//! hook).
//!
//! The script runs inline, in `execute_script`, over its own set of the
//! states; the caller's loop (its own shard nulled in the loop's set, so a
//! slip panics instead of racing) is served from the Lua hook once the
//! script is busy (`scripting::run::serving_busy`, about once a
//! millisecond), through a pointer to the loop that nothing else uses
//! meanwhile. (It ran on a runner thread before: a hand-off per EVAL, two
//! context switches and a wake-up, most of an EVALSHA's cost.) Shards
//! parked for the script serve -BUSY from their park (`hold_check`).
//!
//! While busy (`scripting::run::RUN`), a shard thread touches only its
//! connections and its ring, never a shard state (its own is nulled in its
//! set for the duration, so a slip panics instead of racing): it receives
//! and sends, answers SCRIPT KILL, MULTI and DISCARD, refuses every command
//! not flagged allow-busy with -BUSY (flagging a transaction as Redis's
//! rejectCommand does; EXEC aborts with EXECABORT), and leaves the other
//! allow-busy commands (AUTH, HELLO, ...) and everything after them in the
//! connection's input until the script is over. New connections are
//! accepted (so an operator can connect and SCRIPT KILL), checked against
//! the protected-mode/password settings copied at the last loop turn and
//! entered in the client registry when the state is back
//! (`EventLoop::register_accepted`). Completions it cannot handle without
//! the state (closes) are kept for the next loop turn (`busy_backlog`). Errors replied while busy are not counted in
//! errorstats.
//!
//! What a shard had read before it parked is served the same way, as Redis
//! answers every command that arrives while a script is busy: a shard
//! never parks in the middle of a connection's input (`run_commands`
//! defers the rest when a hold heads its queue), so the input of deferred
//! connections is run here like new input; a command forwarded to it
//! (`Message::Request`, none of which may run while busy) is answered
//! -BUSY, and the replies of other shards reach their connections; other
//! messages (and what follows them from the same shard) wait in order in
//! `busy_mail`. Replies queued before the park are sent too, unless they
//! may wait for the AOF (appendfsync always): then after the script.
//!
//! A script run by EXEC (EVAL inside MULTI) runs inline on the EXEC's
//! thread: the other shards serve -BUSY, the EXEC's own shard does not.

use super::conn::{recycle, Closing};
use super::dispatch::{queue_reply, reply_mode_after_command, take_discard, unknown_command_error, Flow};
use super::event_loop::EventLoop;
use crate::commands::{flags, CommandTable, Ctx};
use crate::exec::{call, Caller, Clock};
use crate::protocol::{parse_frame, Args, FrameProgress, ParseLimits, Reply};
use crate::scripting::run::RUN;
use crate::shard::hold::{ShardMask, ShardSet};
use crate::shard::mailbox::{ConnToken, Message, PackedArgs};

impl EventLoop {
    /// Parks while another coordinator holds this shard (`HoldTable::check`),
    /// serving -BUSY meanwhile when the holder is a busy script.
    #[inline(always)]
    pub fn hold_check(&mut self) -> bool {
        self.server.hold.must_park(self.id) && self.hold_park()
    }

    /// `hold_check`'s park (out of line: the check runs after every command).
    #[inline(never)]
    fn hold_park(&mut self) -> bool {
        // A client that an output append put over `maxmemory-clients` (a
        // reply or push drained just now: the drain checks for a hold after
        // each message) goes before the holder looks, as at the end of a
        // command or turn: a CLIENT LIST holding this shard saw it over the
        // limit (the TCL unit client-eviction's "client evicted due to
        // output buf" at 2-3 shards, 2 runs in 8).
        if self.client_mem.evict_pending {
            self.evict_clients();
        }
        let server = self.server.clone();
        server.hold.park_serving(self.id, &mut || {
            if !RUN.is_busy() {
                return false;
            }
            self.serve_busy(None);
            true
        });
        // What the holder left ready here (a BLMOVE into a shard it did not
        // hold) is served before this shard runs anything else.
        self.clock.tick();
        self.serve_ready();
        true
    }

    /// An EVAL-family command outside MULTI: every shard held, run on the
    /// runner thread.
    pub(super) fn script_command(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Flow {
        let mut targets = ShardMask::all(self.server.shard_count);
        targets.remove(self.id);
        self.run_held(index, targets, |lp| lp.execute_script(index, id, args, now))
    }

    fn execute_script(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Flow {
        let conn = self.conns[index as usize].as_mut().unwrap();
        let mode_before = conn.client.reply_mode;
        let (db, resp) = (conn.client.db, conn.client.resp);
        // The client is the script's until it is over: out of the table,
        // which the -BUSY service may grow (an accept) meanwhile.
        let mut client = std::mem::take(&mut conn.client);
        // The script's own set of the states: this thread's `set` has its
        // own shard nulled meanwhile, so that the -BUSY service (which
        // reaches the loop, never a state) cannot touch it.
        let mut set = ShardSet::new(self.server.shard_count);
        for (i, &p) in self.set.raw_ptrs().iter().enumerate() {
            // SAFETY: the same pointers as `self.set`: this thread's own
            // state and the shards it holds, all untouched by anything else
            // until the script is over (the loop's `set` has its own entry
            // nulled below, the held shards stay parked).
            unsafe { set.set(i, p) };
        }
        let own = set.raw_ptrs()[self.id];
        // SAFETY: null is always allowed (restored after the script).
        unsafe { self.set.set(self.id, std::ptr::null_mut()) };
        let server = self.server.clone();
        let mut monitor_line = std::mem::take(&mut self.monitor_line);
        let mut reply = Vec::new();
        let home = self.id;
        let lp: *mut EventLoop = self;
        let serve = move || {
            // SAFETY: called by the Lua hook of this script, on this thread,
            // while `execute_script` does not use `self` (the script runs on
            // the locals above): the only live access to the loop. The
            // service skips the calling connection and reaches no shard
            // state (its own entry is null in the loop's set).
            unsafe { (*lp).serve_busy(Some(index)) }
        };
        crate::scripting::run::serving_busy(&serve, || {
            let mut clock = Clock::new();
            let mut r = Reply::new(&mut reply, resp);
            let mut ctx = Ctx::new(&mut set, &server, home, db, resp, now, Some(&mut client));
            call(&mut ctx, &mut clock, id, args, &mut r, &Caller::LOCAL, &mut monitor_line);
        });
        // SAFETY: this thread's own state, which the script is done with.
        unsafe { self.set.set(self.id, own) };
        self.monitor_line = monitor_line;
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.client = client;
        let discard = reply_mode_after_command(&mut conn.client, mode_before);
        self.scratch.clear();
        self.scratch.extend_from_slice(&reply);
        let reply_start = conn.slots.is_empty().then_some(conn.out.len());
        queue_reply(conn, &mut self.scratch, &mut self.pool, discard);
        self.feed_monitors(now);
        // The script's events to its own client (`own_pushes`): all before
        // its reply, as Redis publishes them while the script runs.
        if self.own_pushes_start(index, id) {
            self.after_command_messaging();
            self.own_pushes_place(index, reply_start);
        } else {
            self.after_command_messaging();
        }
        self.tracking_after_command(false);
        if let Some(c) = self.conns[index as usize].as_mut() {
            c.client.tracking.command_done(CommandTable::get().specs[id].name);
        }
        self.finish_command(index, now)
    }

    /// One pass of -BUSY service (see the module doc); `skip`: the
    /// connection whose script runs.
    pub(super) fn serve_busy(&mut self, skip: Option<u32>) {
        let own = self.set.raw_ptrs()[self.id];
        // SAFETY: null is always allowed (restored below).
        unsafe { self.set.set(self.id, std::ptr::null_mut()) };
        // With DEFER_TASKRUN completions are posted only by an enter that
        // gets events: a zero timeout runs the deferred work, never waits.
        let no_wait = io_uring::types::Timespec::new();
        let _ = self.ring.submitter().submit_with_args(1, &io_uring::types::SubmitArgs::new().timespec(&no_wait));
        // First what `reap` took and has not handled yet (a script run by
        // one of its completions runs here), then the ring's new ones.
        let mut cqes: Vec<(u64, i32, u32)> = self.cqes.drain(self.reap_next.min(self.cqes.len())..).collect();
        cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        let mut touched: Vec<u32> = Vec::new();
        let mut stashed: Vec<u32> = Vec::new();
        for (u, res, cflags) in cqes {
            let (kind, generation, index) = super::event_loop::ud_parts(u);
            let alive = matches!(self.conns.get(index as usize), Some(Some(c)) if c.generation == generation && c.closing == Closing::No);
            let servable = alive && Some(index) != skip && !stashed.contains(&index);
            if kind == super::event_loop::KIND_RECV && res > 0 && servable {
                self.busy_receive(index, res as usize, cflags);
                if !touched.contains(&index) {
                    touched.push(index);
                }
            } else if kind == super::event_loop::KIND_SEND && res >= 0 && alive {
                let conn = self.conns[index as usize].as_mut().unwrap();
                conn.sending = false;
                conn.inflight_off += res as usize;
                if conn.inflight_off >= conn.inflight.len() {
                    conn.inflight.clear();
                    conn.inflight_off = 0;
                }
                self.busy_output_bytes += res as u64;
                if !touched.contains(&index) {
                    touched.push(index);
                }
            } else if kind == super::event_loop::KIND_RECV && res == -libc::ENOBUFS && servable {
                // The multishot receive ended for want of buffers: again.
                let conn = self.conns[index as usize].as_mut().unwrap();
                conn.recv_armed = false;
                self.arm_recv(index);
            } else if kind == super::event_loop::KIND_ACCEPT {
                // Accepted now (as Redis's processEventsWhileBlocked does),
                // so that a new connection can send SCRIPT KILL.
                self.on_accept(index, res, cflags);
            } else {
                if kind == super::event_loop::KIND_RECV {
                    stashed.push(index);
                }
                self.busy_backlog.push((u, res, cflags));
            }
        }
        // What was read before the park is answered as what arrives now:
        // forwarded commands in the inboxes, and the input of deferred
        // connections (`run_commands` defers, never parks, mid-input).
        self.busy_mailboxes(skip, &mut touched);
        // Every deferred connection, listed or not (`retry_deferred` may be
        // running the list: the script can be one of its commands).
        for index in 0..self.conns.len() as u32 {
            let pending = matches!(&self.conns[index as usize], Some(c) if c.deferred && c.closing == Closing::No && !c.qbuf.is_empty());
            if pending && Some(index) != skip && !touched.contains(&index) {
                touched.push(index);
            }
        }
        // Replies queued before the park go out, unless they may have to
        // wait for the AOF (its write, or its fsync under appendfsync
        // always): then after the script.
        if !self.output_gated() {
            for k in 0..self.dirty.len() {
                let index = self.dirty[k];
                if !touched.contains(&index) {
                    touched.push(index);
                }
            }
        }
        for index in touched {
            if Some(index) != skip {
                self.busy_process(index);
            }
            self.busy_send(index);
        }
        self.ring_doorbells();
        let _ = self.ring.submit();
        // SAFETY: restores what was there: this thread's own state, or null
        // while the runner has it.
        unsafe { self.set.set(self.id, own) };
    }

    /// Whether replies may have to wait for the AOF (`gate_outputs`).
    fn output_gated(&self) -> bool {
        self.aof_gating || self.server.aof.always() || self.server.aof.over_limit()
    }

    /// The inboxes while busy: a forwarded command is answered -BUSY (none
    /// is allowed while busy: they all name keys), a reply fills its
    /// connection's slot; anything else is left for the loop
    /// (`busy_mail`), and so is all that follows it from the same shard,
    /// in order. `touched`: the connections that got output.
    fn busy_mailboxes(&mut self, skip: Option<u32>, touched: &mut Vec<u32>) {
        let gated = self.output_gated();
        for from in 0..self.inboxes.len() {
            let mut stashing = self.busy_mail.iter().any(|(f, _)| *f == from);
            while let Some(msg) = self.inboxes[from].as_mut().and_then(|c| c.pop().ok()) {
                match msg {
                    Message::Request { from: origin, conn, seq, mut args, .. } => {
                        args.data.clear();
                        args.ends.clear();
                        args.data.push(b'-');
                        args.data.extend_from_slice(RUN.busy_error().as_bytes());
                        args.data.extend_from_slice(b"\r\n");
                        self.send_to(origin, Message::Reply { conn, seq, args });
                    }
                    // A closed connection's client may leave CLIENT LIST
                    // with this reply: that waits for the state.
                    Message::Reply { conn, seq, args } if !stashing && Some(conn.index) != skip && !self.waits_reply_after_close(conn) => {
                        if let Some(o) = self.outboxes[from].as_mut() {
                            o.reply_received();
                        }
                        if let Some(index) = self.busy_deliver(conn, seq, args) {
                            if !gated && !touched.contains(&index) {
                                touched.push(index);
                            }
                        }
                    }
                    other => {
                        stashing = true;
                        self.busy_mail.push((from, other));
                    }
                }
            }
        }
        for o in self.outboxes.iter_mut().flatten() {
            o.flush_overflow();
        }
    }

    /// A reply computed elsewhere, while busy: as `deliver_reply`, without
    /// what needs the state (the output limit's check; resuming the
    /// connection, which `retry_deferred` does after the script, its input
    /// meanwhile served by `busy_process`). The connection, if alive.
    fn busy_deliver(&mut self, token: ConnToken, seq: u64, args: PackedArgs) -> Option<u32> {
        let index = token.index;
        let alive = matches!(self.conns.get(index as usize), Some(Some(c)) if c.generation == token.generation && c.closing != Closing::Closed);
        if !alive {
            recycle(&mut self.pool, args);
            self.block_answered_after_close(token, Some(seq));
            return None;
        }
        let c = self.conns[index as usize].as_mut().unwrap();
        c.fill_slot(seq, args);
        c.drain_slots(&mut self.pool);
        c.block_pending &= !c.slots.is_empty();
        if c.resumes_on_reply() {
            c.throttled = false;
            c.order_wait = false;
            if !self.deferred.contains(&index) {
                self.deferred.push(index);
            }
        }
        self.mark_dirty(index);
        Some(index)
    }

    /// A receive completed while busy: its bytes join the query buffer.
    fn busy_receive(&mut self, index: u32, len: usize, cflags: u32) {
        let more = io_uring::cqueue::more(cflags);
        let bid = io_uring::cqueue::buffer_select(cflags);
        match (bid, self.bufring.as_mut()) {
            (Some(b), Some(br)) => {
                // SAFETY: valid until recycled right after the copy.
                let data = unsafe { br.data(b, len) };
                self.conns[index as usize].as_mut().unwrap().qbuf.extend_from_slice(data);
                br.recycle(b);
            }
            _ => {
                let conn = self.conns[index as usize].as_mut().unwrap();
                // SAFETY: the kernel wrote `len` bytes into the spare capacity.
                unsafe { conn.qbuf.set_len(conn.qbuf.len() + len) };
            }
        }
        self.busy_input_bytes += len as u64;
        let conn = self.conns[index as usize].as_mut().unwrap();
        if !more || self.bufring.is_none() {
            conn.recv_armed = false;
            self.arm_recv(index);
        }
    }

    /// Runs what may run of a connection's input while busy; the rest
    /// waits in its query buffer for the loop (the connection is deferred).
    fn busy_process(&mut self, index: u32) {
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.compact_qbuf();
        // Its order depends on replies from other shards, or it waits for
        // something else: its input waits too.
        // (A connection deferred for any other reason — its input read
        // before the park, a hold not granted yet — is answered: its
        // commands arrived while the script runs.)
        let waits = conn.paused
            || conn.mark_wait
            || !conn.slots.is_empty()
            || conn.blocked.is_some()
            || conn.block_pending
            || conn.client.monitor
            || conn.client.in_pubsub_mode();
        let mut consumed = 0;
        if !waits {
            let limits = ParseLimits { bulk_bytes_max: i64::MAX, unauthenticated: !conn.client.authenticated };
            let mut progress = FrameProgress::default();
            let mut parsed = Args::new();
            loop {
                let conn = self.conns[index as usize].as_mut().unwrap();
                let n = match parse_frame(&conn.qbuf[consumed..], &mut parsed, &limits, &mut progress) {
                    Ok(Some(n)) => n,
                    _ => break,
                };
                let mut slices = Vec::new();
                parsed.slices(&conn.qbuf[consumed..], &mut slices);
                let owned: Vec<Vec<u8>> = slices.iter().map(|s| s.to_vec()).collect();
                let argv: Vec<&[u8]> = owned.iter().map(|a| &a[..]).collect();
                if !argv.is_empty() && !self.busy_command(index, &argv) {
                    break;
                }
                consumed += n;
                progress = FrameProgress::default();
            }
        }
        if consumed > 0 {
            // A multi-shard command that waited for its hold was answered:
            // its intent goes (it would park the shards after the script).
            self.withdraw_intent_of(index);
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.qbuf.drain(..consumed);
        // Parsed again from its start by the loop.
        conn.frame = FrameProgress::default();
        conn.parsed_ahead.clear();
        if !conn.qbuf.is_empty() && !conn.deferred {
            conn.deferred = true;
            self.deferred.push(index);
        }
    }

    /// One command while busy: false when it must wait for the script's end.
    fn busy_command(&mut self, index: u32, args: &[&[u8]]) -> bool {
        let table = CommandTable::get();
        let Some(mut id) = table.lookup(args[0]) else {
            self.busy_reply_error(index, None, &unknown_command_error(args));
            return true;
        };
        if table.is_container(id) && args.len() >= 2 {
            match table.lookup_sub(table.specs[id].name, args[1]) {
                Some(sub) => id = sub,
                None => {
                    let mut msg = b"ERR unknown subcommand '".to_vec();
                    msg.extend_from_slice(crate::util::printf_str(args[1], 128));
                    msg.extend_from_slice(format!("'. Try {} HELP.", table.specs[id].name.to_ascii_uppercase()).as_bytes());
                    self.busy_reply_error(index, None, &msg);
                    return true;
                }
            }
        }
        let spec = &table.specs[id];
        let argc = args.len() as i32;
        if (spec.arity > 0 && argc != spec.arity) || argc < -spec.arity {
            self.busy_reply_error(index, Some(id), crate::commands::arity_error(spec.name).as_bytes());
            return true;
        }
        let conn = self.conns[index as usize].as_mut().unwrap();
        if !conn.client.authenticated && spec.flags & flags::NO_AUTH == 0 && self.server.acl.auth_required() {
            self.busy_reply_error(index, Some(id), b"NOAUTH Authentication required.");
            return true;
        }
        if spec.flags & flags::ALLOW_BUSY == 0 {
            self.busy_reply_error(index, Some(id), RUN.busy_error().as_bytes());
            return true;
        }
        let client = &mut conn.client;
        let outcome: Result<(), &[u8]> = match spec.name {
            "script|kill" | "function|kill" => RUN.request_kill(spec.name == "script|kill").map_err(|e| e.as_bytes()),
            // A busy EVAL script: Redis's slowevalerr; a function: its stats.
            "function|stats" if RUN.is_eval.load(std::sync::atomic::Ordering::Relaxed) => Err(crate::scripting::run::BUSY_EVAL.as_bytes()),
            "function|stats" => {
                let conn = self.conns[index as usize].as_mut().unwrap();
                let mut r = Reply::new(&mut self.scratch, conn.client.resp);
                crate::scripting::function_stats(&mut r);
                let discard = take_discard(&mut conn.client);
                queue_reply(conn, &mut self.scratch, &mut self.pool, discard);
                return true;
            }
            "multi" if client.multi.active => Err(b"ERR MULTI calls can not be nested"),
            "multi" => {
                client.multi.active = true;
                client.info_dirty = true;
                Ok(())
            }
            "discard" if !client.multi.active => Err(b"ERR DISCARD without MULTI"),
            "discard" => {
                client.multi.reset();
                client.watch.unwatch_all(&mut ShardSet::new(self.server.shard_count));
                client.info_dirty = true;
                Ok(())
            }
            "shutdown" if args[1..].iter().any(|a| a.eq_ignore_ascii_case(b"nosave")) => {
                crate::warning!("User requested shutdown during a busy script (SHUTDOWN NOSAVE): exiting now.");
                std::process::exit(0);
            }
            _ => return false,
        };
        match outcome {
            Ok(()) => {
                let conn = self.conns[index as usize].as_mut().unwrap();
                let mut r = Reply::new(&mut self.scratch, conn.client.resp);
                r.ok();
                let discard = take_discard(&mut conn.client);
                queue_reply(conn, &mut self.scratch, &mut self.pool, discard);
            }
            Err(msg) => self.busy_reply_error(index, Some(id), msg),
        }
        true
    }

    /// An error reply while busy, with Redis's rejectCommand effect on a
    /// transaction (flag it; EXEC aborts it). Watched keys go stale.
    fn busy_reply_error(&mut self, index: u32, id: Option<usize>, msg: &[u8]) {
        let conn = self.conns[index as usize].as_mut().unwrap();
        let is_exec = id.is_some_and(|i| CommandTable::get().specs[i].name == "exec");
        let mut text = msg.to_vec();
        if is_exec {
            conn.client.multi.reset();
            conn.client.watch.unwatch_all(&mut ShardSet::new(self.server.shard_count));
            conn.client.info_dirty = true;
            text = b"EXECABORT Transaction discarded because of: ".to_vec();
            text.extend_from_slice(msg.strip_prefix(b"ERR ").unwrap_or(msg));
        } else if conn.client.multi.active {
            conn.client.multi.dirty_exec = true;
        }
        let mut r = Reply::new(&mut self.scratch, conn.client.resp);
        r.error_bytes(&text);
        let discard = take_discard(&mut conn.client);
        queue_reply(conn, &mut self.scratch, &mut self.pool, discard);
    }

    /// Sends what a connection has ready, as `flush_sends` (without its
    /// closing paths, which need the state: they run after the script).
    fn busy_send(&mut self, index: u32) {
        let Some(conn) = self.conns[index as usize].as_mut() else { return };
        if conn.closing != Closing::No || conn.sending {
            return;
        }
        if let Some(e) = super::event_loop::next_send(conn, index) {
            self.push_sqe(e);
        }
    }

    /// What a busy period counted, added to this shard's stats once it is
    /// reachable again.
    pub(super) fn settle_busy_counts(&mut self) {
        if self.busy_input_bytes | self.busy_output_bytes == 0 {
            return;
        }
        let (i, o) = (std::mem::take(&mut self.busy_input_bytes), std::mem::take(&mut self.busy_output_bytes));
        let st = self.state();
        st.stats.net_input_bytes += i;
        st.stats.net_output_bytes += o;
    }
}
