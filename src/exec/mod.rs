//! The execution seam: `call()`, Redis's `call()`, the one place a command
//! runs. Every path goes through it — a command of a local client, one
//! forwarded from another shard, a held multi-shard command (and later EXEC,
//! AOF loading, replication and scripts) — so that what follows a command
//! (statistics, latency, slowlog, MONITOR) is done once, in one order, on the
//! shard that ran it, whoever asked. The network loop parses, routes and
//! moves bytes; it does not know what a command does nor what it leaves.

pub mod clock;
pub mod gates;
pub mod propagate;
pub mod redact;

pub use clock::Clock;

use std::io::Write;
use std::sync::atomic::Ordering;

use crate::commands::{flags, CommandSpec, CommandTable, Ctx, Record};
use crate::messaging::blocking::PendingSlowlog;
use crate::protocol::reply::ErrorKind;
use crate::protocol::Reply;
use crate::shard::ShardState;

/// The client a command runs for, as the slowlog and MONITOR show it, when
/// it is not at hand in `Ctx::client` (a command forwarded from another
/// shard carries these in its request).
#[derive(Clone, Copy, Default)]
pub struct Caller<'a> {
    /// `ip:port`, as CLIENT LIST's `addr=`.
    pub addr: &'a [u8],
    pub name: &'a [u8],
    /// The client's id (NOLOOP compares it with a tracking client's).
    pub client_id: u64,
    /// Remember the keys of a read-only command for the client's tracking,
    /// whose connection is on shard `shard`.
    pub track: bool,
    pub shard: usize,
}

impl Caller<'static> {
    /// No remote caller: the command's client is `Ctx::client`.
    pub const LOCAL: Caller<'static> = Caller { addr: b"", name: b"", client_id: 0, track: false, shard: 0 };
}

/// Runs command `id` (its handler writing to `r`), then, in execution order:
/// commandstats, errorstats, the latency histograms inside/outside snapshots,
/// the slowlog, the latency monitor and MONITOR. The MONITOR line, when some
/// client monitors and the command is shown, is written to `monitor_line`
/// (left empty otherwise): delivering it to the monitoring connections is
/// the network loop's job. `remote` names the client when `ctx.client` is
/// None. Last, when a consumer is on, what the command propagates is
/// appended to the write streams (`propagate`).
pub fn call(ctx: &mut Ctx, clock: &mut Clock, id: usize, args: &[&[u8]], r: &mut Reply, remote: &Caller, monitor_line: &mut Vec<u8>) {
    call_inline(ctx, clock, &CommandTable::get().specs[id], id, args, r, remote, monitor_line)
}

/// `call`, always inlined: for the network loop's own commands
/// (`execute_here`), the path of every pipelined request, where the call's
/// argument passing, prologue and the caller's reloads after it were ~30
/// instructions a command. Everything else calls `call`. `spec` is command
/// `id`'s, which the caller has at hand (looking it up again was ~10
/// instructions a command).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn call_inline(
    ctx: &mut Ctx,
    clock: &mut Clock,
    spec: &CommandSpec,
    id: usize,
    args: &[&[u8]],
    r: &mut Reply,
    remote: &Caller,
    monitor_line: &mut Vec<u8>,
) {
    debug_assert!(std::ptr::eq(spec, &CommandTable::get().specs[id]), "call_inline given another command's spec");
    let start = clock.last;
    // One load when nothing consumes the stream (`appendonly no`).
    let propagating = ctx.shards.get(ctx.home).stream.is_on();
    let dirty_before = if propagating { dirty_of_held(ctx) } else { 0 };
    let (client_id, track, client_shard) = match ctx.client.as_deref() {
        // Only a read-only command's keys are remembered (below): the
        // client's tracking flags are not read for the others.
        Some(c) => (c.id, spec.flags & flags::READONLY != 0 && c.tracking.remembers_reads(), ctx.home),
        None => (remote.client_id, remote.track, remote.shard),
    };
    crate::messaging::tracking::set_current_client(client_id);
    (spec.handler)(ctx, args, r);
    // A read-only script's keys are remembered by the reads it runs
    // (scripting), not by its own READONLY flag.
    if track && spec.flags & flags::READONLY != 0 && spec.flags & flags::RUNS_SCRIPT == 0 {
        crate::messaging::tracking::remember_keys(ctx, spec, args, client_id, client_shard);
    }
    crate::messaging::tracking::set_current_client(0);
    let usec = clock.usec_since(start);
    // Read after the handler: CLIENT SETNAME and SELECT show their effect on
    // their own slowlog entry and MONITOR line, as in Redis (which reads
    // `c->name` and `c->db` after `c->cmd->proc(c)`); looked up only where
    // used (a blocked command, a slowlog entry, a MONITOR line): read for
    // every command they were ~10 instructions.
    let client = ctx.client.as_deref();
    let who = move || match client {
        Some(c) => (c.addr.as_bytes(), &c.name[..]),
        None => (remote.addr, remote.name),
    };
    let record = std::mem::take(&mut ctx.record);
    if record == Record::Resumed {
        // Recorded by its first run.
        monitor_line.clear();
        if propagating {
            propagate::after_command(ctx, args, dirty_before);
        }
        return;
    }
    let in_snapshot = ctx.server.persistence.snapshot_active.load(Ordering::Relaxed);
    // An error counted where it arose (a script's) counts as failed only.
    let counted_error = r.error_prefix.filter(|_| !r.error_stats_counted);
    if r.error_prefix.is_some() && counted_error.is_none() {
        ctx.shards.get_mut(ctx.home).stats.record_failed(id);
    }
    let home = ctx.shards.get_mut(ctx.home);
    if let Some(req) = home.blocking.request.as_mut() {
        // It blocked: its slowlog entry waits for the client to be served.
        let (addr, name) = who();
        let mut hidden = Vec::new();
        let args = redact::shown(spec.name, args, &mut hidden).iter().map(|a| a.to_vec()).collect();
        req.slowlog = Some(Box::new(PendingSlowlog { args, addr: addr.to_vec(), name: name.to_vec(), usec }));
    }
    record_command(home, spec, in_snapshot, id, args, usec, counted_error, who, record == Record::All);
    monitor_line.clear();
    if ctx.server.monitors.load(Ordering::Relaxed) > 0 {
        if spec.flags & (flags::ADMIN | flags::SKIP_MONITOR) == 0 {
            let (addr, _) = who();
            let db = client.map_or(ctx.db, |c| c.db);
            let mut hidden = Vec::new();
            format_monitor_line(monitor_line, crate::util::unix_us() as u64, db, addr, redact::shown(spec.name, args, &mut hidden));
        }
        // A script's commands (and the EVAL before them, which is
        // skip-monitor): written by the handler, fed with this line.
        if !ctx.nested_monitor.is_empty() {
            monitor_line.extend_from_slice(&ctx.nested_monitor);
            ctx.nested_monitor.clear();
        }
    }
    if propagating {
        propagate::after_command(ctx, args, dirty_before);
    }
}

/// What `call` records after a command, for a multi-shard command whose
/// parts ran on their own shards (`network::hop`): recorded once, on the
/// coordinating shard, when the last part is back, with the parts' summed
/// time (commandstats, slowlog, latency); the MONITOR line, when some
/// client monitors, is left in `monitor_line`.
#[allow(clippy::too_many_arguments)]
pub fn record_parted(
    st: &mut ShardState,
    server: &crate::server::Server,
    id: usize,
    args: &[&[u8]],
    usec: u64,
    db: usize,
    addr: &[u8],
    name: &[u8],
    failed: Option<ErrorKind>,
    monitor_line: &mut Vec<u8>,
) {
    let in_snapshot = server.persistence.snapshot_active.load(Ordering::Relaxed);
    let spec = &CommandTable::get().specs[id];
    record_command(st, spec, in_snapshot, id, args, usec, failed, || (addr, name), true);
    monitor_line.clear();
    if server.monitors.load(Ordering::Relaxed) > 0 && spec.flags & (flags::ADMIN | flags::SKIP_MONITOR) == 0 {
        format_monitor_line(monitor_line, crate::util::unix_us() as u64, db, addr, args);
    }
}

/// The dirty counters of the shards this command owns or holds, summed.
fn dirty_of_held(ctx: &Ctx) -> u64 {
    (0..ctx.shard_count).filter(|&i| ctx.shards.has(i)).map(|i| ctx.shards.get(i).dirty).sum()
}

/// The statistics a command leaves on the shard that ran it: commandstats,
/// errorstats, latency inside/outside snapshots, slowlog, latency monitor.
/// Always inlined into `call` (as a call with nine arguments it was ~25
/// instructions of argument passing and prologue a command); the rare
/// entries (slowlog, latency monitor) are calls.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn record_command<'w>(
    st: &mut ShardState,
    spec: &CommandSpec,
    in_snapshot: bool,
    id: usize,
    args: &[&[u8]],
    usec: u64,
    failed: Option<ErrorKind>,
    // The client's `ip:port` and name, for a slowlog entry.
    who: impl FnOnce() -> (&'w [u8], &'w [u8]),
    // False for a command left blocked (`Record::Blocked`): no slowlog entry
    // nor latency sample.
    unblocked: bool,
) {
    st.stats.record_call(id, usec, failed.is_some(), st.config.latency_tracking);
    st.snapshot_latency.record(usec, in_snapshot);
    if let Some(k) = failed {
        st.stats.record_error(k.as_str());
    }
    let threshold = st.config.slowlog_log_slower_than_usec;
    if threshold >= 0 && usec as i64 >= threshold && spec.flags & flags::SKIP_SLOWLOG == 0 && st.blocking.request.is_none() && unblocked {
        let (addr, name) = who();
        log_slow(st, spec, args, usec, addr, name);
    }
    let lat_threshold = st.config.latency_monitor_threshold_ms;
    if lat_threshold > 0 && usec / 1000 >= lat_threshold && unblocked {
        latency_sample(st, spec, usec);
    }
}

#[inline(never)]
fn log_slow(st: &mut ShardState, spec: &CommandSpec, args: &[&[u8]], usec: u64, addr: &[u8], name: &[u8]) {
    let max_len = st.config.slowlog_max_len;
    let mut hidden = Vec::new();
    st.stats.slowlog.push(redact::shown(spec.name, args, &mut hidden), usec, addr, name, max_len);
}

#[inline(never)]
fn latency_sample(st: &mut ShardState, spec: &CommandSpec, usec: u64) {
    let event = if spec.flags & flags::FAST != 0 { "fast-command" } else { "command" };
    st.stats.latency.add_sample(event, usec / 1000, crate::util::unix_ms() / 1000);
}

/// The slowlog entry of a blocked command, when its client is served on
/// shard `st` after `serve_usec` of work there (`PendingSlowlog`).
pub fn log_served(st: &mut ShardState, pending: &PendingSlowlog, serve_usec: u64) {
    let threshold = st.config.slowlog_log_slower_than_usec;
    let usec = pending.usec + serve_usec;
    if threshold >= 0 && usec as i64 >= threshold {
        let args: Vec<&[u8]> = pending.args.iter().map(|a| &a[..]).collect();
        st.stats.slowlog.push(&args, usec, &pending.addr, &pending.name, st.config.slowlog_max_len);
    }
}

/// Redis's MONITOR line (`replicationFeedMonitors`):
/// `+1700000000.123456 [db addr] "arg" "arg"\r\n`, arguments escaped as
/// `sdscatrepr` does.
pub fn format_monitor_line(out: &mut Vec<u8>, unix_us: u64, db: usize, addr: &[u8], args: &[&[u8]]) {
    let _ = write!(out, "+{}.{:06} [{} ", unix_us / 1_000_000, unix_us % 1_000_000, db);
    out.extend_from_slice(addr);
    out.push(b']');
    for a in args {
        out.push(b' ');
        crate::util::cat_repr(out, a);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_line_escapes_as_sdscatrepr() {
        let mut out = Vec::new();
        format_monitor_line(&mut out, 1_700_000_000_000_042, 3, b"127.0.0.1:5000", &[b"SET", b"k\"\\", b"\n\r\t\x07\x08\x01 \xff"]);
        assert_eq!(out, b"+1700000000.000042 [3 127.0.0.1:5000] \"SET\" \"k\\\"\\\\\" \"\\n\\r\\t\\a\\b\\x01 \\xff\"\r\n".to_vec());
    }
}
