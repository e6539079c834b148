//! SAVE, BGSAVE [SCHEDULE|CANCEL], LASTSAVE (Redis's rdb.c commands; CANCEL
//! as Valkey 8.1) and BGREWRITEAOF (aof.c).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::persistence::{aof_rewrite, snapshot};
use crate::protocol::Reply;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, save)
            .route(Route::All)
            .group("server")
            .doc("1.0.0", "Synchronously save the dataset to disk"),
        CommandSpec::new("bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, bgsave)
            .route(Route::All)
            .group("server")
            .doc("1.0.0", "Asynchronously save the dataset to disk"),
        CommandSpec::new("bgrewriteaof", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, bgrewriteaof)
            .route(Route::All)
            .group("server")
            .doc("1.0.0", "Asynchronously rewrite the append-only file"),
        CommandSpec::new("lastsave", 1, LOADING | STALE | FAST, lastsave)
            .group("server")
            .doc("1.0.0", "Get the UNIX time stamp of the last successful save to disk"),
    ]
}

fn save(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let config = ctx.config().clone();
    match snapshot::save_foreground(ctx.server, ctx.shards, &config) {
        Ok(()) => r.ok(),
        Err(e) => r.error(&e),
    }
}

fn bgsave(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut schedule = false;
    if args.len() > 1 {
        if args.len() == 2 && eq_ic(args[1], "schedule") {
            schedule = true;
        } else if args.len() == 2 && eq_ic(args[1], "cancel") {
            match snapshot::cancel(ctx.server) {
                Ok(msg) => r.simple(msg),
                Err(e) => r.error(e),
            }
            return;
        } else {
            r.error(err::SYNTAX);
            return;
        }
    }
    let gate = snapshot::bgsave_gate(&ctx.server.persistence, schedule, ctx.in_multi);
    fork_or_answer(ctx, r, gate, snapshot::ChildKind::Rdb, "Background saving started");
}

fn bgrewriteaof(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let gate = aof_rewrite::gate(ctx.server, ctx.in_multi);
    fork_or_answer(ctx, r, gate, snapshot::ChildKind::Aof, aof_rewrite::STARTED);
}

/// BGSAVE and BGREWRITEAOF alike: the gate's answer when it has one (a
/// child runs: an error, or the command scheduled), else the fork, with
/// every shard held.
fn fork_or_answer(ctx: &mut Ctx, r: &mut Reply, gate: Option<Result<&str, &str>>, kind: snapshot::ChildKind, started: &str) {
    if let Some(answer) = gate {
        match answer {
            Ok(status) => r.simple(status),
            Err(e) => r.error(e),
        }
        return;
    }
    let config = ctx.config().clone();
    let barrier = Duration::from_micros(ctx.server.hold.last_wait_usec.load(Ordering::Relaxed));
    match snapshot::start_child(ctx.server, ctx.shards, &config, barrier, kind) {
        Ok(_) => r.simple(started),
        Err(e) => r.error(&e),
    }
}

fn lastsave(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    r.int(ctx.server.persistence.lock().last_save_unix);
}
