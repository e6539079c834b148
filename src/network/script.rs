//! Scripts and the loop: the EVAL family holds every shard and runs on the
//! script runner thread, while every shard thread (the caller's included)
//! keeps answering its clients with -BUSY once the script has run longer
//! than `busy-reply-threshold` (Redis's processEventsWhileBlocked from the
//! Lua hook).
//!
//! Why a runner thread: the caller's thread must serve its other
//! connections while the script runs, and it cannot do so from inside the
//! Lua hook (the script's command context borrows the loop). So it hands
//! the whole `call()` of the EVAL — the shard states it owns and holds, and
//! the calling client — to the runner, makes its own shard unreachable from
//! itself, and serves -BUSY until the runner hands everything back. Shards
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
//! A script run by EXEC (EVAL inside MULTI) runs inline on the EXEC's
//! thread: the other shards serve -BUSY, the EXEC's own shard does not.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::conn::Closing;
use super::dispatch::{queue_reply, reply_mode_after_command, take_discard, unknown_command_error, Flow};
use super::event_loop::EventLoop;
use crate::commands::{flags, ClientState, CommandTable, Ctx};
use crate::exec::{call, Caller, Clock};
use crate::protocol::{parse_frame, Args, FrameProgress, ParseLimits, Reply};
use crate::scripting::run::RUN;
use crate::server::Server;
use crate::shard::hold::{ShardMask, ShardSet};
use crate::shard::ShardState;

/// One EVAL handed to the runner thread, and handed back.
struct Job {
    /// Every shard's state, owned or held by the caller's thread.
    states: Vec<*mut ShardState>,
    server: Arc<Server>,
    home: usize,
    db: usize,
    resp: u8,
    now: i64,
    client: *mut ClientState,
    id: usize,
    args: Vec<Vec<u8>>,
    reply: Vec<u8>,
    monitor_line: Vec<u8>,
    back: mpsc::Sender<Box<Job>>,
    caller: std::thread::Thread,
}

// SAFETY: the pointers are to the shard states and the client of the
// caller's thread, which owns or holds them all and does not touch them
// from the moment it sends the job until it receives it back (its own
// shard is nulled in its set meanwhile; it skips the calling connection
// and never grows its connection table while it waits). The channel's
// send/receive order the runner's accesses between the caller's.
unsafe impl Send for Job {}

fn runner() -> &'static Mutex<mpsc::Sender<Box<Job>>> {
    static RUNNER: OnceLock<Mutex<mpsc::Sender<Box<Job>>>> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Box<Job>>();
        std::thread::Builder::new()
            .name("script-runner".into())
            .spawn(move || {
                while let Ok(mut job) = rx.recv() {
                    run_job(&mut job);
                    let (back, caller) = (job.back.clone(), job.caller.clone());
                    let _ = back.send(job);
                    caller.unpark();
                }
            })
            .expect("the script runner thread starts");
        Mutex::new(tx)
    })
}

fn run_job(job: &mut Job) {
    let mut set = ShardSet::new(job.states.len());
    for (i, &p) in job.states.iter().enumerate() {
        // SAFETY: see `Job`: these states are this thread's until the job
        // is sent back.
        unsafe { set.set(i, p) };
    }
    // SAFETY: as the states: the caller's thread leaves its client alone
    // until the job is back.
    let client = unsafe { &mut *job.client };
    let args: Vec<&[u8]> = job.args.iter().map(|a| &a[..]).collect();
    let mut clock = Clock::new();
    let mut r = Reply::new(&mut job.reply, job.resp);
    let mut ctx = Ctx::new(&mut set, &job.server, job.home, job.db, job.resp, job.now, Some(client));
    call(&mut ctx, &mut clock, job.id, &args, &mut r, Caller::default(), &mut job.monitor_line);
}

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
        let server = self.server.clone();
        server.hold.park_serving(self.id, &mut || {
            if !RUN.is_busy() {
                return false;
            }
            self.serve_busy(None);
            true
        });
        true
    }

    /// An EVAL-family command outside MULTI: every shard held, run on the
    /// runner thread.
    pub(super) fn script_command(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Flow {
        let mut targets = ShardMask::all(self.server.shard_count);
        targets.0 &= !(1u128 << self.id);
        self.run_held(index, targets, |lp| lp.execute_script(index, id, args, now))
    }

    fn execute_script(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Flow {
        let conn = self.conns[index as usize].as_mut().unwrap();
        let mode_before = conn.client.reply_mode;
        let (db, resp) = (conn.client.db, conn.client.resp);
        let client: *mut ClientState = &mut conn.client;
        let states: Vec<*mut ShardState> = self.set.raw_ptrs().to_vec();
        // SAFETY: null is always allowed: this thread cannot reach its own
        // shard until the runner is done with it.
        unsafe { self.set.set(self.id, std::ptr::null_mut()) };
        let (back, done) = mpsc::channel();
        let job = Box::new(Job {
            states,
            server: self.server.clone(),
            home: self.id,
            db,
            resp,
            now,
            client,
            id,
            args: args.iter().map(|a| a.to_vec()).collect(),
            reply: Vec::new(),
            monitor_line: std::mem::take(&mut self.monitor_line),
            back,
            caller: std::thread::current(),
        });
        runner().lock().unwrap_or_else(|p| p.into_inner()).send(job).expect("the script runner thread runs");
        let mut spins = 0u32;
        let mut job = loop {
            match done.try_recv() {
                Ok(job) => break job,
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => panic!("the script runner thread died"),
            }
            if RUN.is_busy() {
                self.serve_busy(Some(index));
            }
            // A short script is back within microseconds: spin a little
            // before sleeping (the runner unparks this thread when done).
            if spins < 200 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::park_timeout(Duration::from_millis(1));
            }
        };
        // SAFETY: the runner handed the states back (`Job`); this is this
        // thread's own state again.
        unsafe { self.set.set(self.id, job.states[self.id]) };
        self.monitor_line = std::mem::take(&mut job.monitor_line);
        let conn = self.conns[index as usize].as_mut().unwrap();
        let discard = reply_mode_after_command(&mut conn.client, mode_before);
        self.scratch.clear();
        self.scratch.extend_from_slice(&job.reply);
        queue_reply(conn, &mut self.scratch, &mut self.pool, discard);
        self.feed_monitors(now);
        self.after_command_messaging();
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
        let cqes: Vec<(u64, i32, u32)> = self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
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
        for index in touched {
            if Some(index) != skip {
                self.busy_process(index);
            }
            self.busy_send(index);
        }
        let _ = self.ring.submit();
        // SAFETY: restores what was there: this thread's own state, or null
        // while the runner has it.
        unsafe { self.set.set(self.id, own) };
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
        // Its order depends on replies from other shards, or it waits for
        // something else: its input waits too.
        let waits =
            conn.deferred || !conn.slots.is_empty() || conn.blocked.is_some() || conn.block_pending || conn.client.monitor || conn.client.in_pubsub_mode();
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
        let conn = self.conns[index as usize].as_mut().unwrap();
        conn.qbuf.drain(..consumed);
        // Parsed again from its start by the loop.
        conn.frame = FrameProgress::default();
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
        if !conn.client.authenticated && spec.flags & flags::NO_AUTH == 0 {
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
