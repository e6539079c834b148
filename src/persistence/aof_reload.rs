//! DEBUG LOADAOF (Redis 7.0's `debug.c`): flush the AOF, empty the
//! dataset, read the manifest back from disk (deleting its history files)
//! and load the AOF's files into the shards as at start-up. Every shard is
//! held by the caller (DEBUG runs over all of them), so nothing else runs
//! meanwhile: Redis answers other clients `-LOADING` while it loads, here
//! they wait for the reply instead.
//!
//! As in Redis, a manifest that cannot be read, an AOF that cannot be
//! loaded, or no AOF at all (the AOF never turned on in this directory)
//! ends the process with status 1: Redis's `loadAppendOnlyFiles` returns
//! `AOF_NOT_EXIST`/`AOF_FAILED` and `debugCommand` calls `exit(1)`. The
//! loaded commands are not propagated (Redis loads with `server.loading`
//! set, which stops propagation), nor is DEBUG LOADAOF itself (Redis sets
//! `server.dirty = 0`: the changes since the last save read 0 after it).

use std::path::Path;

use crate::commands::Ctx;
use crate::persistence::aof::{self, DirStatus};

/// A config value by name, as CONFIG GET shows it.
fn setting(ctx: &Ctx, name: &str, default: &str) -> String {
    ctx.config().others.get(name).cloned().unwrap_or_else(|| default.to_string())
}

/// Redis's `emptyData(-1, EMPTYDB_NO_FLAGS, NULL)` over the held shards:
/// every database and the function libraries; watched keys that existed
/// are touched. (DEBUG RELOAD empties the same way.)
pub fn empty_data(ctx: &mut Ctx) {
    crate::scripting::function_flush();
    let now = ctx.now_ms;
    for i in 0..ctx.shard_count {
        let s = ctx.shard_mut(i);
        for db in 0..s.dbs.len() {
            s.touch_watched_db(db, None, now);
            s.dbs[db].clear();
        }
    }
}

/// Logs Redis's lines for a failed load and exits as `debugCommand` does.
fn fail(lines: Vec<String>) -> ! {
    for l in lines {
        crate::warning!("{}", l);
    }
    std::process::exit(1);
}

/// DEBUG LOADAOF. Replies +OK, or does not return (see the module's doc).
pub fn debug_loadaof(ctx: &mut Ctx, r: &mut crate::protocol::Reply) {
    let server = ctx.server;
    // flushAppendOnlyFile(1): what the shards executed is in the incr file.
    server.aof.flush_now(ctx.shards);
    empty_data(ctx);
    let config = ctx.config().clone();
    let appendfilename = setting(ctx, "appendfilename", "appendonly.aof");
    let dir = Path::new(&config.dir).join(setting(ctx, "appenddirname", "appendonlydir"));
    // aofLoadManifestFromDisk + aofDelHistoryFiles.
    let manifest = match aof::load_manifest(&dir, &appendfilename) {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => fail(e.redis_log_lines()),
    };
    let manifest = crate::persistence::aof_rewrite::reload_manifest(server, &config, manifest);
    // Nothing the replay runs goes to the AOF or the replicas.
    let consumers: Vec<(bool, bool)> = (0..ctx.shard_count)
        .map(|i| {
            let s = &mut ctx.shard_mut(i).stream;
            let was = (s.feeds_aof(), s.feeds_repl());
            s.set_on(false);
            s.set_repl(false);
            was
        })
        .collect();
    crate::exec::gates::store_bool(&server.loading, true, std::sync::atomic::Ordering::Relaxed, crate::exec::gates::Reason::Loading);
    let status = crate::persistence::aof_file::replay_dir(ctx.shards, &dir, &manifest, &config, server, &appendfilename);
    crate::exec::gates::store_bool(&server.loading, false, std::sync::atomic::Ordering::Relaxed, crate::exec::gates::Reason::Loading);
    for (i, (aof_on, repl_on)) in consumers.into_iter().enumerate() {
        let s = &mut ctx.shard_mut(i).stream;
        s.set_on(aof_on);
        s.set_repl(repl_on);
    }
    match status {
        Err(e) => fail(e.redis_log_lines()),
        Ok(DirStatus::NotExist) => fail(Vec::new()),
        Ok(DirStatus::Empty) => {}
        Ok(DirStatus::Loaded(load)) => {
            for l in &load.log_lines {
                crate::notice!("{}", l);
            }
            server.aof.set_sizes(load.total_size, load.base_size);
        }
    }
    let dirty: u64 = (0..ctx.shard_count).map(|i| ctx.shard(i).dirty).sum();
    server.persistence.lock().dirty_at_last_save = dirty;
    ctx.propagate = crate::exec::propagate::Propagate::Many(Vec::new());
    crate::notice!("Append Only File loaded by DEBUG LOADAOF");
    r.ok();
}
