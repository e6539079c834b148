//! Server commands (DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, SHUTDOWN,
//! LOLWUT), as Redis's db.c / server.c. INFO, CONFIG and COMMAND have their
//! own files.

use super::{err, flags::*, CommandSpec, Ctx, Route};
use crate::protocol::Reply;
use crate::util::eq_ic;

const KEYSPACE_WRITE: &[&str] = &["@keyspace", "@write", "@slow", "@dangerous"];

pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("dbsize", 1, READONLY | FAST, dbsize)
            .route(Route::All)
            .group("server")
            .acl(&["@keyspace", "@read", "@fast"])
            .doc("1.0.0", "Return the number of keys in the selected database"),
        CommandSpec::new("flushdb", -1, WRITE, flushdb)
            .route(Route::All)
            .group("server")
            .acl(KEYSPACE_WRITE)
            .doc("1.0.0", "Remove all keys from the current database"),
        CommandSpec::new("flushall", -1, WRITE, flushall)
            .route(Route::All)
            .group("server")
            .acl(KEYSPACE_WRITE)
            .doc("1.0.0", "Remove all keys from all databases"),
        CommandSpec::new("swapdb", 3, WRITE | FAST, swapdb)
            .route(Route::All)
            .group("server")
            .acl(&["@keyspace", "@write", "@fast", "@dangerous"])
            .doc("4.0.0", "Swaps two Redis databases"),
        CommandSpec::new("time", 1, LOADING | STALE | FAST, time).group("server").acl(&["@fast"]).doc("2.6.0", "Return the current server time"),
        CommandSpec::new("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, shutdown)
            .route(Route::All)
            .group("server")
            .acl(&["@admin", "@slow", "@dangerous"])
            .doc("1.0.0", "Synchronously save the dataset to disk and then shut down the server"),
        CommandSpec::new("lolwut", -1, READONLY | FAST, lolwut)
            .group("server")
            .acl(&["@read", "@fast"])
            .doc("5.0.0", "Display some computer art and the Redis version"),
    ]
}

fn dbsize(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let n: usize = (0..ctx.shard_count).map(|i| ctx.shard(i).dbs[ctx.db].len()).sum();
    r.int(n as i64);
}

/// The optional ASYNC|SYNC argument of FLUSHDB/FLUSHALL (Redis's
/// `getFlushCommandFlags`): Some(true) to free the databases in slices
/// (ASYNC, or no argument under `lazyfree-lazy-user-flush yes`), Some(false)
/// at once, None for a syntax error.
fn flush_async(ctx: &Ctx, args: &[&[u8]]) -> Option<bool> {
    match args.len() {
        1 => Some(ctx.config().others.get("lazyfree-lazy-user-flush").is_some_and(|v| v == "yes")),
        2 if eq_ic(args[1], "async") => Some(true),
        2 if eq_ic(args[1], "sync") => Some(false),
        _ => None,
    }
}

/// Empties database `dbi` of a shard: at once, or handed to the shard's
/// lazy free (`emptyDbAsync`) to be freed between commands.
fn empty_db(s: &mut crate::shard::ShardState, dbi: usize, lazy: bool) {
    let keys = s.dbs[dbi].len() as u64;
    if lazy && keys > 0 {
        let dict = std::mem::take(&mut s.dbs[dbi].map);
        s.lazyfree.free_db(dict);
    } else {
        s.dbs[dbi].clear();
    }
    s.modified_all(dbi, keys);
}

fn flushdb(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(lazy) = flush_async(ctx, args) else {
        r.error(err::SYNTAX);
        return;
    };
    let (dbi, now) = (ctx.db, ctx.now_ms);
    for i in 0..ctx.shard_count {
        let s = ctx.shard_mut(i);
        s.touch_watched_db(dbi, None, now);
        empty_db(s, dbi, lazy);
        s.flushed();
    }
    // Propagated even when the database was empty (Redis's forceCommandPropagation).
    ctx.propagate = crate::exec::propagate::Propagate::Force;
    r.ok();
}

fn flushall(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(lazy) = flush_async(ctx, args) else {
        r.error(err::SYNTAX);
        return;
    };
    let now = ctx.now_ms;
    for i in 0..ctx.shard_count {
        let s = ctx.shard_mut(i);
        for dbi in 0..s.dbs.len() {
            s.touch_watched_db(dbi, None, now);
            empty_db(s, dbi, lazy);
        }
        s.flushed();
    }
    // As Redis 7.0: a running RDB child is killed, and with save points the
    // (now empty) dataset is saved at once.
    crate::persistence::snapshot::kill_child(ctx.server, &ctx.config().dir, "Background saving terminated by FLUSHALL");
    if !ctx.config().save.is_empty() {
        let config = ctx.config().clone();
        let _ = crate::persistence::snapshot::save_foreground(ctx.server, ctx.shards, &config);
    }
    // Propagated even when every database was empty (forceCommandPropagation).
    ctx.propagate = crate::exec::propagate::Propagate::Force;
    r.ok();
}

/// SWAPDB a b: every shard swaps its two databases while all are held, so
/// no client sees one shard swapped and another not.
fn swapdb(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let databases = ctx.config().databases as i64;
    let Some(a) = super::parse_i64(args[1]).filter(|n| i32::try_from(*n).is_ok()) else {
        return r.error("ERR invalid first DB index");
    };
    let Some(b) = super::parse_i64(args[2]).filter(|n| i32::try_from(*n).is_ok()) else {
        return r.error("ERR invalid second DB index");
    };
    if a < 0 || a >= databases || b < 0 || b >= databases {
        return r.error(err::DB_INDEX);
    }
    if a != b {
        let (a, b, home, now) = (a as usize, b as usize, ctx.home, ctx.now_ms);
        for i in 0..ctx.shard_count {
            let s = ctx.shard_mut(i);
            // Both sides judged before either changes (Redis's
            // touchAllWatchedKeysInDb(db1, db2) and (db2, db1)).
            s.touch_watched_db(a, Some(b), now);
            s.touch_watched_db(b, Some(a), now);
            s.dbs.swap(a, b);
            // One write for the command, counted once (on the shard running it).
            s.modified_all(a, (i == home) as u64);
            s.modified_all(b, 0);
        }
    } else {
        // Nothing moves, but it counts as a write, so it is propagated
        // (Redis's swapdbCommand: `server.dirty++` whatever the indexes).
        let home = ctx.home;
        ctx.shard_mut(home).dirty += 1;
    }
    r.ok();
}

fn time(_ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let us = crate::util::unix_us();
    r.array(2);
    r.bulk_int(us / 1_000_000);
    r.bulk_int(us % 1_000_000);
}

/// SHUTDOWN's options, also what `shutdown-on-sigterm` / `-sigint` set.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ShutdownFlags {
    pub save: bool,
    pub nosave: bool,
    /// Do not wait for replicas (ringkv has none to wait for).
    pub now: bool,
    /// Exit even when the final save fails.
    pub force: bool,
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT].
fn shutdown(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut flags = ShutdownFlags::default();
    let mut abort = false;
    for a in &args[1..] {
        if eq_ic(a, "nosave") {
            flags.nosave = true;
        } else if eq_ic(a, "save") {
            flags.save = true;
        } else if eq_ic(a, "now") {
            flags.now = true;
        } else if eq_ic(a, "force") {
            flags.force = true;
        } else if eq_ic(a, "abort") {
            abort = true;
        } else {
            return r.error(err::SYNTAX);
        }
    }
    if (abort && args.len() > 2) || (flags.nosave && flags.save) {
        return r.error(err::SYNTAX);
    }
    if abort {
        // Redis's abortShutdown: a signal's request not yet taken up (the
        // cron acts on it, DEBUG PAUSE-CRON holds it) is dropped; ringkv
        // has no shutdown in progress to cancel otherwise (it waits for no
        // replica).
        if crate::signal::shutdown_requested().is_none() {
            return r.error("ERR No shutdown in progress.");
        }
        crate::signal::cancel_shutdown();
        crate::warning!("Shutdown manually aborted.");
        return r.ok();
    }
    let config = ctx.config().clone();
    if !prepare_for_shutdown(ctx.server, ctx.shards, &config, flags) {
        return r.error("ERR Errors trying to SHUTDOWN. Check logs.");
    }
    std::process::exit(0);
}

/// Redis's prepareForShutdown + finishShutdown, for SHUTDOWN and for
/// SIGTERM/SIGINT alike; every shard must be held (`shards`). Kills a
/// running RDB child first (and removes its temp file), so it can never
/// rename an older snapshot over the final one; then saves when save
/// points are configured (and not NOSAVE) or SAVE is given. True: the
/// caller exits. False: the final save failed without FORCE (logged); the
/// server serves on.
pub fn prepare_for_shutdown(
    server: &crate::server::Server,
    shards: &mut crate::shard::hold::ShardSet,
    config: &crate::config::Config,
    mut flags: ShutdownFlags,
) -> bool {
    // As Redis's shutdownCommand: while the dataset loads nothing is saved
    // (the shards hold only part of it).
    if server.loading.load(std::sync::atomic::Ordering::Relaxed) {
        flags.save = false;
        flags.nosave = true;
    }
    crate::warning!("User requested shutdown...");
    crate::persistence::snapshot::kill_child(server, &config.dir, "There is a child saving an .rdb. Killing it!");
    if !crate::persistence::aof_rewrite::before_shutdown(server, config, flags.force) {
        return false;
    }
    if crate::persistence::aof_rewrite::lock(&server.aof_rewrite).state != crate::persistence::aof_rewrite::AofState::Off {
        server.aof.flush_for_shutdown(shards);
    }
    if (!config.save.is_empty() && !flags.nosave) || flags.save {
        crate::notice!("Saving the final RDB snapshot before exiting.");
        if crate::persistence::snapshot::save_foreground(server, shards, config).is_err() {
            if flags.force {
                crate::warning!("Error trying to save the DB. Exit anyway.");
            } else {
                crate::warning!("Error trying to save the DB, can't exit.");
                crate::warning!("Errors trying to shut down the server. Check the logs for more information.");
                return false;
            }
        }
    }
    crate::warning!("Redis is now ready to exit, bye bye...");
    true
}

/// LOLWUT [VERSION v]: version 5 and 6 draw (simplified) art; every other
/// version prints only the version line, as Redis 7.0 does.
fn lolwut(_ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut version = 7;
    if args.len() >= 3 && eq_ic(args[1], "version") {
        match super::parse_i64(args[2]) {
            Some(v) => version = v,
            None => return r.error(err::NOT_INTEGER),
        }
    }
    let tail = format!("Redis ver. {}\n", super::connection::REDIS_VERSION);
    let text = match version {
        5 => format!("{}\nGeorg Nees - schotter, plotter on paper, 1968. {}", schotter(), tail),
        6 => {
            format!("{}\nDedicated to the 8 bit game developers of past and present.\nOriginal 8 bit image from Plaguemon by hikikomori. {}", plaguemon(), tail)
        }
        _ => tail,
    };
    r.verbatim(text.as_bytes());
}

/// A small rendering of Georg Nees' "Schotter": squares that tilt more and
/// more towards the bottom, drawn with Braille-less ASCII.
fn schotter() -> String {
    let mut out = String::new();
    for row in 0..8 {
        for col in 0..16 {
            let disorder = (row * 7 + col * 13) % (row + 1);
            out.push(if disorder == 0 {
                '#'
            } else if disorder % 2 == 0 {
                '/'
            } else {
                '\\'
            });
        }
        out.push('\n');
    }
    out
}

fn plaguemon() -> String {
    let mut out = String::new();
    for row in 0..6 {
        for col in 0..12 {
            out.push(if (row + col) % 3 == 0 { '#' } else { ' ' });
        }
        out.push('\n');
    }
    out
}
