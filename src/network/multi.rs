//! The dispatch path's part of transactions (Redis's `processCommand`
//! queueing, and EXEC's run over shards); what MULTI, EXEC, WATCH... do is
//! `commands::multi`.
//!
//! - A client in MULTI: EXEC, DISCARD, MULTI, WATCH, QUIT and RESET run;
//!   a command flagged no-multi is refused (and flags the transaction); any
//!   other is queued, with the shards it routes to, and answered +QUEUED.
//!   Errors found before (unknown command, arity, NOAUTH, MISCONF...) flag
//!   the transaction in `reject` (`flag_transaction`).
//! - EXEC over several shards runs by hops when its queued commands each
//!   name keys of one shard (`network::hop`; with watched keys in two
//!   rounds, `network::rounds`). Otherwise it waits for the connection's
//!   forwarded commands, then holds every
//!   shard its queued commands route to and every shard a watched key lives
//!   on (none when they are all this shard's), and runs EXEC's checks and
//!   then each queued command through `call()` on this thread, with
//!   `Ctx::in_multi`: no other client sees part of it, and its writes are
//!   propagated as one unit (`exec::propagate::exec_end`).
//! - WATCH of keys owned by other shards is a one-round hop: each shard
//!   registers its keys, with their expiry state, when the intent heads its
//!   queue (`network::rounds`); when the other shards sleep it holds them.

use std::sync::OnceLock;

use super::dispatch::{queue_reply, route_mask, take_discard, Flow};
use super::event_loop::EventLoop;
use crate::commands::{self, flags, CommandSpec, CommandTable, Ctx, ReplyMode};
use crate::exec::{call, Caller};
use crate::protocol::Reply;

/// Table ids of the commands the queueing step looks at.
struct Ids {
    multi: usize,
    exec: usize,
    discard: usize,
    watch: usize,
    quit: usize,
    reset: usize,
}

fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    IDS.get_or_init(|| {
        let t = CommandTable::get();
        let id = |name: &str| t.lookup(name.as_bytes()).expect("transaction command registered");
        Ids { multi: id("multi"), exec: id("exec"), discard: id("discard"), watch: id("watch"), quit: id("quit"), reset: id("reset") }
    })
}

/// Whether command `id` is EXEC.
pub fn is_exec(id: usize) -> bool {
    id == ids().exec
}

/// Whether command `id` writes, EXEC counting as a write when it queued one
/// (Redis's `is_write_command` in processCommand).
pub fn is_write(spec: &CommandSpec, id: usize, client: &crate::commands::ClientState) -> bool {
    spec.is_write() || (client.multi.active && id == ids().exec && client.multi.flags & flags::WRITE != 0)
}

/// Redis's `is_may_replicate_command`, what CLIENT PAUSE WRITE holds back:
/// a write, a command Redis flags MAY_REPLICATE (PFCOUNT may rewrite its
/// key, PUBLISH goes to replicas, a script may write), or an EXEC whose
/// queue has one. Asked only while clients are paused.
pub fn may_replicate(spec: &CommandSpec, id: usize, args: &[&[u8]], client: &crate::commands::ClientState) -> bool {
    command_may_replicate(spec, args, true) || (client.multi.active && id == ids().exec && client.multi.flags & (flags::WRITE | flags::MAY_REPLICATE) != 0)
}

/// Redis 7.0's CMD_MAY_REPLICATE commands (not shown by its COMMAND INFO,
/// so not in the table's flags), and the writes. As Redis's
/// `evalGetCommandFlags`/`fcallGetCommandFlags`, a script declared
/// `no-writes` (EVAL's shebang, EVALSHA's cached script's, FCALL's function
/// flags) does not count. With `look_up_functions` false (queueing in MULTI,
/// every time, not only while paused) EVALSHA and FCALL count without the
/// engine's cache looked up.
pub fn command_may_replicate(spec: &CommandSpec, args: &[&[u8]], look_up_functions: bool) -> bool {
    if spec.is_write() || spec.flags & flags::MAY_REPLICATE != 0 {
        return true;
    }
    match spec.name {
        "pfcount" | "publish" | "spublish" => true,
        "evalsha" => !look_up_functions || crate::scripting::command_flags("evalsha", flags::MAY_REPLICATE, args) & (flags::WRITE | flags::MAY_REPLICATE) != 0,
        "eval" => !args.get(1).is_some_and(|body| crate::scripting::parse_shebang(body).is_ok_and(|(f, _)| f.shebang && f.no_writes)),
        "fcall" => {
            let Some(name) = args.get(1).filter(|_| look_up_functions) else { return true };
            let no_writes = crate::scripting::function_list().iter().flat_map(|l| l.functions.iter()).any(|f| f.name.as_bytes() == *name && f.flags.no_writes);
            !no_writes
        }
        _ => false,
    }
}

impl EventLoop {
    /// The transaction step before routing: Some(flow) when it handled the
    /// command (queued it, refused it, ran EXEC or a WATCH over other
    /// shards), None when the command runs the ordinary way.
    /// Always inlined (LLVM kept it a call in the command path): outside
    /// MULTI it checks one flag (and, with several shards, the id of WATCH).
    #[inline(always)]
    pub(super) fn transaction_step(&mut self, index: u32, id: usize, spec: &CommandSpec, args: &[&[u8]], now: i64) -> Option<Flow> {
        let conn = self.conns[index as usize].as_ref()?;
        if conn.watch_fold {
            self.fold_step(index, id);
        }
        let active = self.conns[index as usize].as_ref()?.client.multi.active;
        if !active {
            if self.server.shard_count > 1 && id == ids().watch {
                return self.watch_over_shards(index, id, args, now);
            }
            return None;
        }
        self.in_transaction(index, id, spec, args, now)
    }

    /// A WATCH is folded into the EXEC to come (`Conn::watch_fold`,
    /// `network::rounds`): MULTI, WATCH, a command queued in MULTI and
    /// EXEC keep the fold; anything else (which may look at or change a
    /// watched key, or end the transaction) ends it first.
    #[inline(never)]
    fn fold_step(&mut self, index: u32, id: usize) {
        let ids = ids();
        let active = self.conns[index as usize].as_ref().is_some_and(|c| c.client.multi.active);
        let keeps = if active { ![ids.discard, ids.multi, ids.watch, ids.quit, ids.reset].contains(&id) } else { id == ids.multi || id == ids.watch };
        if !keeps {
            self.unfold_watch(index);
        }
    }

    #[inline(never)]
    fn in_transaction(&mut self, index: u32, id: usize, spec: &CommandSpec, args: &[&[u8]], now: i64) -> Option<Flow> {
        let ids = ids();
        if id == ids.exec {
            return Some(self.exec_transaction(index, id, args, now));
        }
        if [ids.discard, ids.multi, ids.watch, ids.quit, ids.reset].contains(&id) {
            return None;
        }
        if spec.flags & flags::NO_MULTI != 0 {
            return Some(self.reject(index, Some(id), b"ERR Command not allowed inside a transaction"));
        }
        let mut mask = route_mask(spec, args, self.server.shard_count, self.id);
        let conn = self.conns[index as usize].as_mut().unwrap();
        if let crate::commands::Route::Client(f) = spec.route {
            // (P|S)(UN)SUBSCRIBE: the owners of the channels, as `dispatch`
            // routes them (else EXEC would touch a shard it does not hold).
            mask = f(&conn.client, args, self.server.shard_count);
            mask.insert(self.id);
        }
        // An aborted transaction keeps nothing more (Redis's queueMultiCommand).
        if !conn.client.multi.dirty_exec && !conn.client.watch.dirty() {
            let queued_flags = if command_may_replicate(spec, args, false) { spec.flags | flags::MAY_REPLICATE } else { spec.flags };
            conn.client.multi.queue(id, queued_flags, mask, args);
        }
        let count = conn.client.multi.info();
        let mut r = Reply::new(&mut self.scratch, conn.client.resp);
        r.simple("QUEUED");
        let discard = take_discard(&mut conn.client);
        queue_reply(conn, &mut self.scratch, &mut self.pool, discard);
        if let Some(info) = self.state().clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.multi = count;
        }
        if self.check_output_limit(index, now) {
            return Some(Flow::Stop);
        }
        Some(Flow::Continue)
    }

    /// Redis's `flagTransaction` for a command refused before it ran: the
    /// transaction will abort. A refused EXEC, in MULTI or not, aborts it now
    /// (Redis's `execCommandAbort`): the error to reply instead is returned.
    pub(super) fn flag_transaction(&mut self, index: u32, id: Option<usize>, msg: &[u8]) -> Option<Vec<u8>> {
        let conn = self.conns[index as usize].as_mut()?;
        if id != Some(ids().exec) {
            // Redis's `flagTransaction`.
            if conn.client.multi.active {
                conn.client.multi.dirty_exec = true;
            }
            return None;
        }
        conn.client.multi.reset();
        conn.client.watch.unwatch_all(&mut self.set);
        if let Some(info) = self.state().clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.multi = None;
        }
        let mut text = b"EXECABORT Transaction discarded because of: ".to_vec();
        // Redis formats its own refusals (arity, unknown command) without
        // the "ERR " its shared errors (NOAUTH, MISCONF, LOADING) keep.
        let msg = msg.strip_prefix(b"-").unwrap_or(msg);
        text.extend_from_slice(msg.strip_prefix(b"ERR ").unwrap_or(msg));
        Some(text)
    }

    /// WATCH naming keys of other shards: runs on this thread holding them.
    #[inline(never)]
    fn watch_over_shards(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Option<Flow> {
        let conn = self.conns[index as usize].as_ref()?;
        if conn.client.watch.dirty() {
            // The handler answers without registering anything.
            return Some(self.run_held(index, Default::default(), |lp| lp.execute_here(index, id, args, now)));
        }
        let targets = crate::commands::multi::watch_targets(args, self.server.shard_count, self.id);
        if targets.is_empty() {
            return None;
        }
        // By a hop when it may (`network::rounds`), else holding them.
        if let Some(flow) = self.try_watch_hop(index, id, args, now) {
            return Some(flow);
        }
        if self.conns[index as usize].as_ref().is_some_and(|c| c.watch_fold) {
            // Held: the folded keys first get their parts (queued ahead).
            self.unfold_watch(index);
        }
        Some(self.run_held(index, targets, |lp| lp.execute_here(index, id, args, now)))
    }

    /// Runs `f` holding `targets` once the connection's forwarded commands
    /// are back (they came first); defers when they are not, or when
    /// another coordinator holds.
    pub(super) fn run_held(&mut self, index: u32, targets: crate::shard::hold::ShardMask, f: impl FnOnce(&mut Self) -> Flow) -> Flow {
        let conn = self.conns[index as usize].as_mut().unwrap();
        if !conn.slots.is_empty() {
            conn.deferred = true;
            return Flow::Defer;
        }
        if targets.is_empty() {
            return f(self);
        }
        match self.with_held(targets, |lp, _| f(lp)) {
            Some(flow) => {
                // Keys the transaction filled for blocked clients are served
                // once the held shards are let go, before the client's next
                // command (serve_ready waits while shards are held).
                self.serve_ready();
                flow
            }
            None => {
                self.conns[index as usize].as_mut().unwrap().deferred = true;
                Flow::Defer
            }
        }
    }

    fn exec_transaction(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Flow {
        let conn = self.conns[index as usize].as_mut().unwrap();
        let client = &conn.client;
        // An aborting EXEC touches no other shard (remote registrations go
        // stale); one that runs holds its commands' and watched keys' shards.
        let mut targets = crate::shard::hold::ShardMask::default();
        // A WATCH folded into this EXEC (`network::rounds`) needs no other
        // shard: its keys there leave the list once the EXEC runs.
        let fold = conn.watch_fold;
        if !client.multi.dirty_exec && !client.watch.dirty() {
            targets.0 = client.multi.shards.0 | if fold { 0 } else { client.watch.shards().0 };
        }
        targets.remove(self.id);
        if client.multi.flags & flags::WRITE != 0 {
            conn.wrote = true;
        }
        // Over several shards without WATCH: by hops when it qualifies;
        // on this shard alone: once its keys lose their hop marks.
        if !targets.is_empty() {
            if let Some(flow) = self.try_exec_hop(index, id, args, now) {
                return flow;
            }
        } else if self.queued_keys_marked(index) {
            return self.wait_for_marks(index);
        }
        self.run_held(index, targets, |lp| {
            if fold {
                lp.end_fold_at_exec(index);
            }
            lp.run_exec(index, id, args, now)
        })
    }

    /// EXEC with every shard it needs owned or held.
    fn run_exec(&mut self, index: u32, id: usize, args: &[&[u8]], now: i64) -> Flow {
        let conn = self.conns[index as usize].as_mut().unwrap();
        let mode_before = conn.client.reply_mode;
        let mark = conn.out.len();
        let (db, resp) = (conn.client.db, conn.client.resp);
        {
            let mut r = Reply::new(&mut conn.out, resp);
            let mut ctx = Ctx::new(&mut self.set, &self.server, self.id, db, resp, now, Some(&mut conn.client));
            call(&mut ctx, &mut self.clock, id, args, &mut r, &Caller::LOCAL, &mut self.monitor_line);
        }
        let header_end = conn.out.len();
        // EXEC's MONITOR line follows its commands' (Redis feeds it after
        // `execCommand` has run them).
        let exec_line = std::mem::take(&mut self.monitor_line);
        let ran = conn.client.multi.go;
        if ran {
            let queue_start = self.clock.last;
            let (queue, count) = conn.client.multi.take();
            let mut slices: Vec<&[u8]> = Vec::with_capacity(8);
            for q in &queue[..count] {
                q.args.slices(&mut slices);
                // ACL rules changed since it was queued (`network::acl`).
                if self.exec_acl_denied(index, q.id, &slices) {
                    continue;
                }
                let conn = self.conns[index as usize].as_mut().unwrap();
                let (db, resp) = (conn.client.db, conn.client.resp);
                let start = conn.out.len();
                let mut r = Reply::new(&mut conn.out, resp);
                let mut ctx = Ctx::new(&mut self.set, &self.server, self.id, db, resp, now, Some(&mut conn.client));
                ctx.in_multi = true;
                call(&mut ctx, &mut self.clock, q.id, &slices, &mut r, &Caller::LOCAL, &mut self.monitor_line);
                exec_reply_mode(conn, start, q.id);
                self.feed_monitors(now);
                // A RESP3 subscriber's own events go around this command's
                // element, as Redis writes them while EXEC runs it
                // (`messaging::own_pushes`); everyone else's after EXEC.
                if resp >= 3 && self.conns[index as usize].as_ref().is_some_and(|c| c.client.pubsub.any()) && self.events_wait() {
                    let c = &self.conns[index as usize].as_ref().unwrap().client;
                    let caller = crate::messaging::pubsub::Subscriber { shard: self.id as u32, token: c.pubsub.token };
                    self.own_pushes.start(caller, resp, CommandTable::get().specs[q.id].name);
                    self.after_command_messaging_work();
                    self.own_pushes_place(index, Some(start));
                }
            }
            drop(slices);
            if self.state().stream.is_on() {
                let mut ctx = Ctx::new(&mut self.set, &self.server, self.id, db, resp, now, None);
                crate::exec::propagate::exec_end(&mut ctx);
            }
            // EXEC's commandstats time includes its commands' (as Redis's
            // nested call()); its latency histogram keeps its own part.
            let usec = self.clock.usec_since(queue_start);
            if let Some(stat) = self.state().stats.commands.get_mut(id) {
                stat.usec += usec;
            }
            let conn = self.conns[index as usize].as_mut().unwrap();
            conn.client.multi.restore(queue);
            conn.client.multi.reset();
        }
        self.monitor_line = exec_line;
        self.feed_monitors(now);
        // Keyspace notifications of the queued commands, PUBLISHes among them.
        self.after_command_messaging();
        let conn = self.conns[index as usize].as_mut().unwrap();
        let discard = super::dispatch::reply_mode_after_command(&mut conn.client, mode_before);
        if !ran {
            if discard {
                conn.out.truncate(mark);
            }
        } else if matches!(mode_before, ReplyMode::Off | ReplyMode::Skip) {
            // The array header was written while replies were off; what a
            // CLIENT REPLY ON inside let through stays (`exec_reply_mode`).
            conn.out.drain(mark..header_end);
        }
        self.finish_command(index, now)
    }
}

/// CLIENT REPLY inside EXEC, as Redis 7.0 has it: each reply is written or
/// not by the mode at the time (Redis tests the client's flags in every
/// `addReply`), so a CLIENT REPLY OFF among the queued commands keeps the
/// array header and the replies before it and drops the rest, a broken
/// array as in Redis, and CLIENT REPLY ON lets the rest through again. A
/// SKIP issued inside applies after EXEC (`reply_mode_after_command`).
/// (Un)subscribe confirmations are pushes, never dropped (`execute_here`).
fn exec_reply_mode(conn: &mut super::conn::Conn, start: usize, id: usize) {
    if matches!(conn.client.reply_mode, ReplyMode::Off | ReplyMode::Skip) && !commands::pubsub::is_subscription_command(CommandTable::get().specs[id].name) {
        conn.out.truncate(start);
    }
}
