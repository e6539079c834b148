//! Replication commands (Redis's replication.c): SYNC, PSYNC, REPLCONF,
//! ROLE, REPLICAOF/SLAVEOF, WAIT. The machinery is in `replication`; the
//! loop detaches a connection after SYNC/PSYNC and retries a WAIT
//! (`network::replica`).

use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::protocol::Reply;
use crate::replication::WaitState;
use crate::util::eq_ic;

const ADMIN_ACL: &[&str] = &["@admin", "@slow", "@dangerous"];

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("sync", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, sync)
            .group("server")
            .acl(ADMIN_ACL)
            .doc("1.0.0", "Internal command used for replication"),
        CommandSpec::new("psync", -3, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, psync)
            .group("server")
            .acl(ADMIN_ACL)
            .doc("2.8.0", "Internal command used for replication"),
        CommandSpec::new("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, replconf)
            .group("server")
            .acl(ADMIN_ACL)
            .doc("3.0.0", "An internal command for configuring the replication stream"),
        CommandSpec::new("role", 1, NOSCRIPT | LOADING | STALE | FAST, role)
            .group("server")
            .acl(&["@admin", "@fast", "@dangerous"])
            .doc("2.8.12", "Return the role of the instance in the context of replication"),
        CommandSpec::new("replicaof", 3, ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING, replicaof)
            .route(Route::All)
            .group("server")
            .acl(ADMIN_ACL)
            .doc("5.0.0", "Make the server a replica of another instance, or promote it as master."),
        CommandSpec::new("slaveof", 3, ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING, replicaof)
            .route(Route::All)
            .group("server")
            .acl(ADMIN_ACL)
            .doc("1.0.0", "Make the server a replica of another instance, or promote it as master."),
        CommandSpec::new("wait", 3, NOSCRIPT, wait)
            .group("generic")
            .acl(&["@slow", "@connection"])
            .doc("3.0.0", "Wait for the synchronous replication of all the write commands sent in the context of the current connection"),
    ]
}

/// SYNC and PSYNC's common checks (Redis's syncCommand).
fn sync_allowed(ctx: &mut Ctx, r: &mut Reply) -> bool {
    if ctx.server.repl.is_replica() {
        r.error("NOMASTERLINK Can't SYNC while not connected with my master");
        return false;
    }
    true
}

fn sync(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    if !sync_allowed(ctx, r) {
        return;
    }
    if let Some(c) = ctx.client.as_deref_mut() {
        c.repl.sync = Some(None);
    }
}

fn psync(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if !sync_allowed(ctx, r) {
        return;
    }
    let Some(offset) = super::parse_i64(args[2]) else {
        return r.error(err::NOT_INTEGER);
    };
    if let Some(c) = ctx.client.as_deref_mut() {
        c.repl.sync = Some(Some((args[1].to_vec(), offset)));
    }
}

fn replconf(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len().is_multiple_of(2) {
        return r.error(err::SYNTAX);
    }
    let Some(c) = ctx.client.as_deref_mut() else { return r.ok() };
    for pair in args[1..].chunks(2) {
        let (opt, value) = (pair[0], pair[1]);
        if eq_ic(opt, "listening-port") {
            match super::parse_i64(value) {
                Some(p) => c.repl.listening_port = p.clamp(0, 65535) as u16,
                None => return r.error(err::NOT_INTEGER),
            }
        } else if eq_ic(opt, "ip-address") {
            // NET_HOST_STR_LEN
            if value.len() >= 256 {
                return r.error(&format!("ERR REPLCONF ip-address provided by replica instance is too long: {} bytes", value.len()));
            }
            c.repl.announced_ip = Some(String::from_utf8_lossy(value).into_owned());
        } else if eq_ic(opt, "capa") {
            if eq_ic(value, "psync2") {
                c.repl.psync2 = true;
            }
        } else if eq_ic(opt, "ack") || eq_ic(opt, "getack") {
            // From a replica these arrive on the replication thread's
            // socket; from a plain client, as in Redis, no reply.
            return;
        } else if eq_ic(opt, "rdb-only") || eq_ic(opt, "rdb-filter-only") {
            // Accepted, no effect: the full sync sends the whole dataset.
        } else {
            r.error_parts(&[b"ERR Unrecognized REPLCONF option: ", opt]);
            return;
        }
    }
    r.ok();
}

fn role(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let m = &ctx.server.repl;
    if let Some(link) = m.link() {
        r.array(5);
        r.bulk(b"slave");
        r.bulk(link.host.as_bytes());
        r.int(link.port as i64);
        // ringkv does not connect to its master yet: always "connect".
        r.bulk(b"connect");
        r.int(-1);
        return;
    }
    let online: Vec<_> = m.replicas().into_iter().filter(|x| x.state == "online").collect();
    r.array(3);
    r.bulk(b"master");
    r.int(m.offset() as i64);
    r.array(online.len());
    for x in online {
        r.array(3);
        r.bulk(x.ip.as_bytes());
        r.bulk(x.port.to_string().as_bytes());
        r.bulk(x.ack_offset.to_string().as_bytes());
    }
}

fn replicaof(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let server = ctx.server;
    let who = ctx.client.as_deref().map(|c| format!("id={} addr={}", c.id, c.addr)).unwrap_or_default();
    if eq_ic(args[1], "no") && eq_ic(args[2], "one") {
        if server.repl.is_replica() {
            server.repl.become_master(server, ctx.shards);
            let _ = crate::config::oom_score_adj::apply(ctx.config(), crate::config::oom_score_adj::ProcessClass::Master);
            crate::notice!("MASTER MODE enabled (user request from '{}')", who);
        }
        return r.ok();
    }
    let port = match super::parse_i64(args[2]) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => return r.error("ERR Invalid master port"),
    };
    let host = String::from_utf8_lossy(args[1]).into_owned();
    if let Some(link) = server.repl.link() {
        if link.host.eq_ignore_ascii_case(&host) && link.port == port {
            crate::notice!("REPLICAOF would result into synchronization with the master we are already connected with. No operation performed.");
            return r.simple("OK Already connected to specified master");
        }
    }
    server.repl.become_replica(server, ctx.shards, host.clone(), port);
    let _ = crate::config::oom_score_adj::apply(ctx.config(), crate::config::oom_score_adj::ProcessClass::Replica);
    crate::notice!("Connecting to MASTER {}:{}", host, port);
    crate::notice!("REPLICAOF {}:{} enabled (user request from '{}')", host, port, who);
    r.ok();
}

/// WAIT numreplicas timeout: the number of replicas whose ACK covers
/// this connection's writes. The target is the replication offset once
/// everything handed over up to the call is merged (at least the
/// client's last write, as Redis's `c->woff`). Until enough replicas
/// acknowledged it, or the timeout, the loop defers the connection and
/// runs WAIT again (its state kept in the client).
fn wait(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let server = ctx.server;
    let m = &server.repl;
    if m.is_replica() {
        return r.error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
    }
    let Some(numreplicas) = super::parse_i64(args[1]) else {
        return r.error(err::NOT_INTEGER);
    };
    let timeout = match super::parse_i64(args[2]) {
        None => return r.error("ERR timeout is not an integer or out of range"),
        Some(t) if t < 0 => return r.error("ERR timeout is negative"),
        Some(t) => t,
    };
    let now = ctx.now_ms;
    let in_multi = ctx.in_multi;
    let home = ctx.home;
    let first = ctx.client.as_deref().is_some_and(|c| c.repl.wait.is_none());
    // A run after the first only looks again (counted once: `Record`).
    if ctx.client.as_deref().is_some_and(|c| c.repl.wait.is_some()) {
        ctx.record = super::Record::Resumed;
    }
    if first {
        let st = ctx.shards.get_mut(home);
        if st.stream.feeds_repl() {
            server.aof.hand_over(st);
        }
    }
    let Some(c) = ctx.client.as_deref_mut() else { return r.int(0) };
    let mut state = c.repl.wait.unwrap_or(WaitState {
        numreplicas: numreplicas.max(0) as usize,
        deadline_ms: if timeout > 0 { now + timeout } else { 0 },
        seq: m.last_seq(),
        target: None,
    });
    if state.target.is_none() && m.merged(state.seq) {
        state.target = Some(m.offset());
    }
    let acked = state.target.map_or(0, |t| m.acked(t));
    let timed_out = state.deadline_ms > 0 && now >= state.deadline_ms;
    if acked >= state.numreplicas || in_multi || timed_out {
        if c.repl.wait.take().is_some() {
            m.waiters.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        return r.int(acked as i64);
    }
    if first {
        m.waiters.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m.request_ack();
    }
    c.repl.wait = Some(state);
    c.repl.wait_pending = true;
    if first {
        ctx.record = super::Record::Blocked;
    }
}
