//! DEBUG LOADAOF (Redis 7.0's `debug.c`): flush the AOF, empty the
//! dataset, read the manifest back from disk (deleting its history files)
//! and load the AOF's files as at start-up, answering other clients
//! `-LOADING` meanwhile (Redis's `loadAppendOnlyFiles` runs with
//! `server.loading` set and serves the other clients between commands,
//! `processEventsWhileBlocked`).
//!
//! **Three steps.** (1) The command, every shard held (DEBUG runs over all
//! of them): flush the AOF (`flushAppendOnlyFile(1)`), empty the data
//! (`emptyData`), read the manifest, and set `Server::loading` with INFO's
//! `loading_*` start figures (`startLoading`). It writes no reply: the
//! client's state takes a `Job` and the command asks the loop to defer the
//! connection, as WAIT does (`ClientRepl::wait_pending`). (2) The loop,
//! right after the command (`network::replica`), starts a loader thread
//! with the job (it has the server's `Arc`): the AOF is replayed into states
//! of its own, off any hold, as start-up does (`lib.rs`
//! `load_while_serving`), while the shards serve their clients (only the
//! commands flagged `loading` run, the others are answered `-LOADING`;
//! INFO shows `loading:1`), then it holds every shard (`hold_external`),
//! moves the loaded databases in and clears `loading`. (3) The deferred
//! connection, retried once `loading` is clear (`EventLoop::retry_deferred`
//! leaves it until then), runs DEBUG LOADAOF again, which finds its client
//! waiting and answers `+OK`. The commands it pipelined after it run after
//! that reply, on the loaded data.
//!
//! Inside MULTI (no deferral there: EXEC runs its commands at once), or
//! without a client, the load runs inline in the hold as before: the other
//! clients wait for it instead of being answered `-LOADING`.
//!
//! As in Redis, a manifest that cannot be read, an AOF that cannot be
//! loaded, or no AOF at all (the AOF never turned on in this directory)
//! ends the process with status 1: Redis's `loadAppendOnlyFiles` returns
//! `AOF_NOT_EXIST`/`AOF_FAILED` and `debugCommand` calls `exit(1)`. The
//! loaded commands are not propagated (Redis loads with `server.loading`
//! set, which stops propagation: here they run in the loader's own states,
//! whose streams are off), nor is DEBUG LOADAOF itself (Redis sets
//! `server.dirty = 0`: the changes since the last save read 0 after it).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::commands::Ctx;
use crate::config::Config;
use crate::exec::gates::{self, Reason};
use crate::persistence::aof::{self, DirStatus, Manifest};
use crate::server::Server;
use crate::shard::ShardState;

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

/// What the loader thread loads (step 2 of the module's doc).
pub struct Job {
    config: Config,
    dir: PathBuf,
    manifest: Manifest,
    appendfilename: String,
}

/// A client's part in a DEBUG LOADAOF (`ClientState::loadaof`).
#[derive(Default)]
pub enum Waiting {
    #[default]
    No,
    /// The command ran: the loop starts the loader with this job.
    Start(Box<Job>),
    /// The loader runs; the reply waits for `Server::loading` to clear.
    Loading,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiting::No => "No",
            Waiting::Start(_) => "Start",
            Waiting::Loading => "Loading",
        })
    }
}

impl Waiting {
    /// The job to start, if the command just asked for one (the client
    /// waits for the load from now on).
    pub fn take_job(&mut self) -> Option<Box<Job>> {
        match std::mem::take(self) {
            Waiting::Start(job) => {
                *self = Waiting::Loading;
                Some(job)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// Whether the client's DEBUG LOADAOF waits for the loader.
    pub fn waits(&self) -> bool {
        !matches!(self, Waiting::No)
    }
}

/// INFO's `loading_total_bytes` of an AOF: the sizes of the files the
/// manifest names, as Redis's `getBaseAndIncrAppendOnlyFilesSize`.
pub fn manifest_bytes(dir: &Path, manifest: &Manifest) -> u64 {
    manifest
        .base
        .iter()
        .chain(manifest.incr.iter())
        .filter_map(|f| std::fs::metadata(dir.join(String::from_utf8_lossy(&f.name).as_ref())).ok())
        .map(|m| m.len())
        .sum()
}

/// DEBUG LOADAOF. Replies +OK, defers the connection (see the module's
/// doc), or does not return.
pub fn debug_loadaof(ctx: &mut Ctx, r: &mut crate::protocol::Reply) {
    let server = ctx.server;
    let loading = server.loading.load(Ordering::Relaxed);
    let in_multi = ctx.in_multi;
    match ctx.client.as_deref_mut() {
        // Step 3: the load is over (the loader cleared `loading`).
        // (Its first run counted it: `Record::Resumed`.)
        Some(c) if c.loadaof.waits() && !loading => {
            c.loadaof = Waiting::No;
            ctx.propagate = crate::exec::propagate::Propagate::Many(Vec::new());
            ctx.record = crate::commands::Record::Resumed;
            return r.ok();
        }
        // Retried early (the loop leaves it deferred until the end).
        Some(c) if c.loadaof.waits() => {
            c.repl.wait_pending = true;
            ctx.record = crate::commands::Record::Resumed;
            return;
        }
        // Start-up loading, or another client's DEBUG LOADAOF: the shards
        // hold an empty keyspace until the loaded one replaces it.
        _ if loading => return r.error(crate::commands::err::LOADING),
        _ => {}
    }
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
    // The changes since the last save read 0 after it.
    ctx.propagate = crate::exec::propagate::Propagate::Many(Vec::new());
    let job = Job { config, dir, manifest, appendfilename };
    match ctx.client.as_deref_mut() {
        Some(c) if !in_multi => {
            // startLoading: from here the shards answer -LOADING.
            start_loading(server, &job);
            c.loadaof = Waiting::Start(Box::new(job));
            c.repl.wait_pending = true;
        }
        _ => {
            load_inline(ctx, &job);
            r.ok();
        }
    }
}

/// Redis's `startLoading`: `loading` and INFO's start figures.
fn start_loading(server: &Server, job: &Job) {
    server.loading_start_time.store(crate::util::unix_ms() / 1000, Ordering::Relaxed);
    server.loading_total_bytes.store(manifest_bytes(&job.dir, &job.manifest), Ordering::Relaxed);
    crate::persistence::rdb::LOAD_PROGRESS.loaded_bytes.store(0, Ordering::Relaxed);
    crate::persistence::rdb::LOAD_PROGRESS.rdb_used_mem.store(0, Ordering::Relaxed);
    gates::store_bool(&server.loading, true, Ordering::SeqCst, Reason::Loading);
    crate::signal::set_loading(true);
}

/// Redis's `stopLoading`.
fn stop_loading(server: &Server) {
    gates::store_bool(&server.loading, false, Ordering::SeqCst, Reason::Loading);
    crate::signal::set_loading(false);
}

/// What a load ended with: logged, the AOF's sizes noted, or the exit.
fn loaded(server: &Server, status: Result<DirStatus, aof::AofReadError>) {
    match status {
        Err(e) => fail(e.redis_log_lines()),
        Ok(DirStatus::NotExist) => fail(Vec::new()),
        Ok(DirStatus::Empty) => {}
        Ok(DirStatus::Loaded(load)) => {
            server.aof.set_sizes(load.total_size, load.base_size);
        }
    }
}

/// The load in the caller's hold (inside MULTI): the shards' own states
/// are loaded, their streams off meanwhile.
fn load_inline(ctx: &mut Ctx, job: &Job) {
    let server = ctx.server;
    let consumers: Vec<(bool, bool)> = (0..ctx.shard_count)
        .map(|i| {
            let s = &mut ctx.shard_mut(i).stream;
            let was = (s.feeds_aof(), s.feeds_repl());
            s.set_on(false);
            s.set_repl(false);
            was
        })
        .collect();
    gates::store_bool(&server.loading, true, Ordering::Relaxed, Reason::Loading);
    let status = crate::persistence::aof_file::replay_dir(ctx.shards, &job.dir, &job.manifest, &job.config, server, &job.appendfilename);
    gates::store_bool(&server.loading, false, Ordering::Relaxed, Reason::Loading);
    for (i, (aof_on, repl_on)) in consumers.into_iter().enumerate() {
        let s = &mut ctx.shard_mut(i).stream;
        s.set_on(aof_on);
        s.set_repl(repl_on);
    }
    loaded(server, status);
    let dirty: u64 = (0..ctx.shard_count).map(|i| ctx.shard(i).dirty).sum();
    server.persistence.lock().dirty_at_last_save = dirty;
    crate::notice!("Append Only File loaded by DEBUG LOADAOF");
}

/// Step 2: starts the loader thread (called by the loop with the job the
/// command left in its client). A thread that cannot start ends the
/// process, as a failed load does.
pub fn spawn(job: Box<Job>, server: &Arc<Server>) {
    let server = server.clone();
    if let Err(e) = std::thread::Builder::new().name("ringkv-loadaof".into()).spawn(move || load_off_hold(&server, *job)) {
        fail(vec![format!("Can't start the DEBUG LOADAOF loader thread: {}", e)]);
    }
}

/// The loader thread: replays the AOF into states of its own while the
/// shards serve (-LOADING), then holds them all to move the data in.
fn load_off_hold(server: &Arc<Server>, job: Job) {
    let shards = server.shard_count;
    let mut states: Vec<Box<ShardState>> = (0..shards).map(|id| Box::new(ShardState::new(id, shards, job.config.clone()))).collect();
    // The replay notifies nobody (no client subscribed to these states).
    for s in states.iter_mut() {
        s.config.notify_keyspace_events = 0;
    }
    let mut set = crate::shard::hold::ShardSet::new(shards);
    for (i, s) in states.iter_mut().enumerate() {
        // SAFETY: the states are this thread's own, alive (boxed, not
        // moved) for as long as the set, which lives only for the replay.
        unsafe { set.set(i, &mut **s as *mut ShardState) };
    }
    let status = crate::persistence::aof_file::replay_dir(&mut set, &job.dir, &job.manifest, &job.config, server, &job.appendfilename);
    drop(set);
    loaded(server, status);
    // The shards wake at least every 10 ms while loading and park.
    let guard = server.hold.hold_external(crate::shard::hold::ShardMask::all(shards), &server.sleeping);
    let mut dirty = 0;
    for (i, l) in states.iter_mut().enumerate() {
        // SAFETY: the guard is held: every shard has parked for its intent
        // (Acquire in `HoldTable::ready`) and its thread touches nothing
        // until the guard is dropped below; this is the only reference
        // made to it.
        let st = unsafe { &mut *server.hold.shard_ptr(i) };
        std::mem::swap(&mut st.dbs, &mut l.dbs);
        dirty += st.dirty;
    }
    server.persistence.lock().dirty_at_last_save = dirty;
    crate::notice!("Append Only File loaded by DEBUG LOADAOF");
    stop_loading(server);
    drop(guard);
}
