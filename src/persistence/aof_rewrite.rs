//! BGREWRITEAOF: Redis 7.0's rewrite of the multi-part AOF on the BGSAVE
//! fork machinery (`snapshot::start_child` with `ChildKind::Aof`).
//!
//! **The cut.** The rewrite forks with every shard held, as BGSAVE does.
//! Right before fork() every shard's write stream is handed to the AOF
//! writer and the writer is told to switch files after the last batch
//! handed over (`Sink::switch_file`): what the shards executed before the
//! cut goes to the old incr file, what they execute after it to the new
//! one, and the child's image is exactly the dataset at the cut. So there is
//! no rewrite buffer and nothing to merge when the child ends: the new base
//! plus the new incr file are the dataset.
//!
//! **The files**, as `rewriteAppendOnlyFileBackground` and
//! `backgroundRewriteDoneHandler` leave them: at the fork a new incr file
//! (next seq) is created and the manifest naming it persisted; with the AOF
//! being turned on (AOF_WAIT_REWRITE) the appends go to
//! `temp-<appendfilename>.incr` instead, and the manifest is left alone. The
//! child writes `temp-rewriteaof-<pid>.aof` in `dir` (the RDB preamble with
//! the same per-shard O_DIRECT writer as BGSAVE, or commands with
//! `aof-use-rdb-preamble no`), renames it `temp-rewriteaof-bg-<pid>.aof` and
//! exits. On success the parent renames it to the manifest's next base
//! (`.base.rdb`/`.base.aof`), makes the incr files the base covers history,
//! persists the manifest (temp file, fsync, rename, directory fsync), then
//! deletes the history files. On failure the new incr file stays an incr
//! file of the manifest (Redis does the same: several failures leave
//! several incr files, and `aofRewriteLimited` slows the automatic retries).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::config::Config;
use crate::persistence::aof::{self, manifest, Manifest};
use crate::persistence::snapshot::{self, SaveError};
use crate::server::Server;
use crate::shard::hold::ShardSet;
use crate::shard::ShardState;

/// Redis's `aof_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AofState {
    Off,
    On,
    /// Turned on at run time: appends are collected (in the temp incr
    /// file) only while the first rewrite runs; ON once it succeeds.
    WaitRewrite,
}

/// The rewrite's side of the AOF (the writer's is `aof_file::Sink`).
pub struct Rewrite {
    pub state: AofState,
    /// The manifest as it is on disk (Redis's `server.aof_manifest`),
    /// read at start-up whether or not the AOF is on.
    pub manifest: Manifest,
    pub scheduled: bool,
    /// Unix ms when the running rewrite forked; -1 when none runs.
    pub start_ms: i64,
    pub last_time_sec: i64,
    pub last_status_ok: bool,
    pub rewrites: u64,
    pub consecutive_failures: u64,
    pub last_cow_size: u64,
    /// `aofRewriteLimited`'s back-off.
    limit_delay_minutes: i64,
    next_rewrite_unix: i64,
}

impl Default for Rewrite {
    fn default() -> Self {
        Rewrite {
            state: AofState::Off,
            manifest: Manifest::default(),
            scheduled: false,
            start_ms: -1,
            last_time_sec: -1,
            last_status_ok: true,
            rewrites: 0,
            consecutive_failures: 0,
            last_cow_size: 0,
            limit_delay_minutes: 0,
            next_rewrite_unix: 0,
        }
    }
}

/// What INFO persistence shows of the rewrite.
pub struct RewriteInfo {
    pub enabled: bool,
    pub in_progress: bool,
    pub scheduled: bool,
    pub last_time_sec: i64,
    pub current_time_sec: i64,
    pub last_status_ok: bool,
    pub rewrites: u64,
    pub consecutive_failures: u64,
    pub last_cow_size: u64,
}

pub fn lock(m: &Mutex<Rewrite>) -> std::sync::MutexGuard<'_, Rewrite> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn setting(config: &Config, name: &str, default: &str) -> String {
    config.others.get(name).cloned().unwrap_or_else(|| default.to_string())
}

fn appendfilename(config: &Config) -> String {
    setting(config, "appendfilename", "appendonly.aof")
}

fn aof_dir(config: &Config) -> PathBuf {
    Path::new(&config.dir).join(setting(config, "appenddirname", "appendonlydir"))
}

fn rdb_preamble(config: &Config) -> bool {
    setting(config, "aof-use-rdb-preamble", "yes") == "yes"
}

pub fn info(server: &Server) -> RewriteInfo {
    let in_progress = server.persistence.lock().child.as_ref().is_some_and(|c| c.kind == snapshot::ChildKind::Aof);
    let rw = lock(&server.aof_rewrite);
    RewriteInfo {
        enabled: rw.state != AofState::Off,
        in_progress,
        scheduled: rw.scheduled,
        last_time_sec: rw.last_time_sec,
        current_time_sec: if rw.start_ms >= 0 { (crate::util::unix_ms() - rw.start_ms) / 1000 } else { -1 },
        last_status_ok: rw.last_status_ok,
        rewrites: rw.rewrites,
        consecutive_failures: rw.consecutive_failures,
        last_cow_size: rw.last_cow_size,
    }
}

/// Start-up, after the dataset is loaded: the manifest as the directory
/// has it (Redis reads it whatever `appendonly` says, so that a rewrite
/// with the AOF off continues its sequence numbers), the state, and the
/// rewrite's size baseline (`aof_rewrite_base_size` = the size loaded).
/// A manifest Redis would refuse is a refusal to start here too (the last
/// of Redis's log lines is the error).
pub fn init_at_startup(server: &Server, config: &Config) -> Result<(), String> {
    let manifest = match aof::load_manifest(&aof_dir(config), &appendfilename(config)) {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => return Err(crate::persistence::aof_file::refusal(e.redis_log_lines())),
    };
    let on = crate::persistence::aof_file::enabled(config);
    let mut manifest = manifest;
    delete_history(config, &mut manifest);
    let mut rw = lock(&server.aof_rewrite);
    rw.manifest = manifest;
    rw.state = if on { AofState::On } else { AofState::Off };
    drop(rw);
    let (current, _) = server.aof.sizes();
    server.aof.set_sizes(current, current);
    apply_config(server, config);
    Ok(())
}

/// DEBUG LOADAOF's `aofLoadManifestFromDisk` + `aofDelHistoryFiles`:
/// `manifest` (as read from disk) becomes the server's, without its
/// history files; returned for the load.
pub fn reload_manifest(server: &Server, config: &Config, mut manifest: Manifest) -> Manifest {
    delete_history(config, &mut manifest);
    lock(&server.aof_rewrite).manifest = manifest.clone();
    manifest
}

/// The settings acted on at once (CONFIG SET): the writer's fsync policy
/// and no-appendfsync-on-rewrite, and aof-disable-auto-gc set back to no
/// deletes the history files kept meanwhile.
pub fn apply_config(server: &Server, config: &Config) {
    server.aof.set_fsync(crate::persistence::aof_file::fsync_policy(config));
    server.aof.no_fsync_on_rewrite.store(setting(config, "no-appendfsync-on-rewrite", "no") == "yes", Ordering::Relaxed);
    let mut rw = lock(&server.aof_rewrite);
    if !rw.manifest.history.is_empty() {
        delete_history(config, &mut rw.manifest);
    }
}

pub const IN_PROGRESS: &str = "ERR Background append only file rewriting already in progress";
pub const SCHEDULED: &str = "Background append only file rewriting scheduled";
pub const STARTED: &str = "Background append only file rewriting started";
pub const CANT_START: &str = "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.";

/// BGREWRITEAOF's answer when it must not fork now (`bgrewriteaofCommand`):
/// a rewrite runs, or another child does, or it runs inside EXEC (`in_exec`:
/// the rewrite is then scheduled for the cron, as Redis defers a fork out
/// of a transaction). None: fork now.
pub fn gate(server: &Server, in_exec: bool) -> Option<Result<&'static str, &'static str>> {
    let kind = server.persistence.lock().child.as_ref().map(|c| c.kind);
    if kind == Some(snapshot::ChildKind::Aof) {
        return Some(Err(IN_PROGRESS));
    }
    if kind.is_none() && !in_exec {
        return None;
    }
    lock(&server.aof_rewrite).scheduled = true;
    Some(Ok(SCHEDULED))
}

/// The parent's part at the cut, every shard held, right before fork():
/// the AOF directory, then (AOF on) the new incr file and the writer's
/// switch to it. Redis's `rewriteAppendOnlyFileBackground` up to the fork;
/// false when it failed (logged).
pub fn before_fork(server: &Server, shards: &mut ShardSet, config: &Config) -> bool {
    let dir = aof_dir(config);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        crate::warning!("Can't open or create append-only dir {}: {}", dir.display(), strerror(&e));
        return false;
    }
    let name = appendfilename(config);
    let mut rw = lock(&server.aof_rewrite);
    let state = rw.state;
    if state == AofState::Off {
        return true;
    }
    // The cut: everything the shards executed so far goes to the file
    // appends go to now; what follows, to the new one.
    for i in 0..shards.len() {
        let s = shards.get_mut(i);
        if !s.stream.is_on() {
            s.stream.set_on(true);
        }
        server.aof.hand_over(s);
    }
    let (new_name, new_manifest) = if state == AofState::WaitRewrite {
        (manifest::temp_incr_name(&name), None)
    } else {
        let mut m = rw.manifest.clone();
        let n = String::from_utf8_lossy(&m.new_incr(&name).name).into_owned();
        (n, Some(m))
    };
    let file = match std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(dir.join(&new_name)) {
        Ok(f) => f,
        Err(e) => {
            crate::warning!("Can't open the append-only file {}: {}", new_name, strerror(&e));
            rw.last_status_ok = false;
            return false;
        }
    };
    if let Some(m) = new_manifest {
        if let Err(e) = aof::persist_manifest(&dir, &name, &m) {
            crate::warning!("{}", e.log_line);
            let _ = std::fs::remove_file(dir.join(&new_name));
            rw.last_status_ok = false;
            return false;
        }
        rw.manifest = m;
    }
    crate::notice!("Creating AOF incr file {} on background rewrite", new_name);
    server.aof.switch_file(Some(file));
    true
}

/// The parent after a successful fork.
pub fn forked(server: &Server, pid: i32) {
    let mut rw = lock(&server.aof_rewrite);
    rw.rewrites += 1;
    rw.scheduled = false;
    rw.start_ms = crate::util::unix_ms();
    crate::notice!("Background append only file rewriting started by pid {}", pid);
}

/// fork() failed.
pub fn fork_failed(server: &Server, e: &std::io::Error) {
    let mut rw = lock(&server.aof_rewrite);
    rw.rewrites += 1;
    rw.last_status_ok = false;
    crate::warning!("Can't rewrite append only file in background: fork: {}", strerror(e));
}

/// The child's work: the new base into `temp-rewriteaof-<pid>.aof`, then
/// renamed `temp-rewriteaof-bg-<pid>.aof` for the parent (both in `dir`).
pub fn child_write(states: &[*mut ShardState], config: &Config, pid: u32, progress: impl FnMut(u64, u64)) -> Result<(), String> {
    let tmp = format!("{}/{}", config.dir, manifest::temp_foreground_rewrite_name(pid));
    let done = format!("{}/{}", config.dir, manifest::temp_rewrite_base_name(pid));
    let written = if rdb_preamble(config) {
        snapshot::write_dump(states, config, &tmp, true, progress).map(|_| ())
    } else {
        write_commands(states, config, &tmp, progress)
    };
    let result = written.map_err(|e| match e {
        SaveError::Open(e) => format!("Opening the temp file for AOF rewrite in rewriteAppendOnlyFile(): {}", strerror(&e)),
        SaveError::Write(_, e) | SaveError::Rename(e) => format!("Write error writing append only file on disk: {}", strerror(&e)),
    });
    let result =
        result.and_then(|_| std::fs::rename(&tmp, &done).map_err(|e| format!("Error moving temp append only file on the final destination: {}", strerror(&e))));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `fsync` every this many bytes of a command-form base with
/// `aof-rewrite-incremental-fsync yes` (Redis's REDIS_AUTOSYNC_BYTES), so
/// the kernel never holds a whole base of dirty pages to flush at the end.
/// (The RDB preamble goes through O_DIRECT: no dirty pages at all.)
const AUTOSYNC_BYTES: u64 = 4 << 20;

/// Redis's AOF_REWRITE_ITEMS_PER_CMD: elements per RPUSH/SADD/ZADD/HMSET
/// of a command-form base.
const ITEMS_PER_CMD: usize = 64;

/// One key's value as the commands that rebuild it (`rewriteAppendOnlyFileRio`'s
/// per-type functions): SET, or RPUSH/SADD/ZADD/HMSET of at most
/// `ITEMS_PER_CMD` elements each, integers as decimal text, scores as `%.17g`.
fn append_value(buf: &mut Vec<u8>, key: &[u8], value: &crate::shard::Value) {
    use crate::shard::Value;
    fn chunked(buf: &mut Vec<u8>, cmd: &[u8], key: &[u8], items: impl Iterator<Item = Vec<Vec<u8>>>) {
        let mut argv: Vec<Vec<u8>> = Vec::new();
        let mut n = 0;
        for item in items {
            if n == 0 {
                argv.clear();
                argv.push(cmd.to_vec());
                argv.push(key.to_vec());
            }
            argv.extend(item);
            n += 1;
            if n == ITEMS_PER_CMD {
                aof::append_command(buf, &argv);
                n = 0;
            }
        }
        if n > 0 {
            aof::append_command(buf, &argv);
        }
    }
    match value {
        Value::Int(i) => {
            let mut n = itoa::Buffer::new();
            aof::append_command(buf, &[&b"SET"[..], key, n.format(*i).as_bytes()]);
        }
        Value::Str { bytes, .. } => aof::append_command(buf, &[&b"SET"[..], key, bytes]),
        Value::List(l) => chunked(buf, b"RPUSH", key, l.iter().map(|e| vec![e.to_vec()])),
        Value::Set(st) => chunked(buf, b"SADD", key, st.iter().map(|e| vec![e.to_vec()])),
        Value::ZSet(z) => chunked(buf, b"ZADD", key, z.iter().map(|(m, score)| vec![crate::protocol::reply::format_double(score).into_bytes(), m.to_vec()])),
        Value::Hash(h) => chunked(buf, b"HMSET", key, h.iter().map(|(f, v)| vec![f.to_vec(), v.to_vec()])),
        Value::Stream(st) => crate::types::stream_persist::rewrite_commands(buf, key, st),
    }
}

/// A base without the RDB preamble (`rewriteAppendOnlyFileRio`): per shard
/// and non-empty db a SELECT, then SET and PEXPIREAT per key.
fn write_commands(states: &[*mut ShardState], config: &Config, path: &str, mut progress: impl FnMut(u64, u64)) -> Result<(), SaveError> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(SaveError::Open)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let incremental = setting(config, "aof-rewrite-incremental-fsync", "yes") == "yes";
    let key_delay_usec: u64 = config.others.get("rdb-key-save-delay").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0).max(0) as u64;
    let now = crate::util::unix_ms();
    let mut buf = Vec::with_capacity(64 * 1024);
    if setting(config, "aof-timestamp-enabled", "no") == "yes" {
        aof::timestamp_annotation(&mut buf, now / 1000);
    }
    // Redis's rewriteFunctions: every library as a FUNCTION LOAD, first.
    for code in crate::scripting::library_codes() {
        aof::append_command(&mut buf, &[&b"FUNCTION"[..], b"LOAD", &code]);
    }
    let (mut keys, mut bytes, mut synced_at) = (0u64, 0u64, 0u64);
    let mut itoa = itoa::Buffer::new();
    let werr = |e| SaveError::Write("rewriteAppendOnlyFileRio", e);
    for &p in states {
        // SAFETY: the child's copy of every shard, frozen at the fork; only read.
        let state = unsafe { &*p };
        for (dbi, db) in state.dbs.iter().enumerate() {
            if db.map.is_empty() {
                continue;
            }
            aof::append_command(&mut buf, &[&b"SELECT"[..], itoa.format(dbi).as_bytes()]);
            for slots in db.map.chunks() {
                for slot in slots {
                    let e = slot.entry();
                    if e.expire_at_ms >= 0 && e.expire_at_ms <= now {
                        continue;
                    }
                    append_value(&mut buf, slot.key(), &e.value);
                    if e.expire_at_ms >= 0 {
                        aof::append_command(&mut buf, &[&b"PEXPIREAT"[..], slot.key(), itoa.format(e.expire_at_ms).as_bytes()]);
                    }
                    keys += 1;
                    if key_delay_usec > 0 {
                        std::thread::sleep(std::time::Duration::from_micros(key_delay_usec));
                    }
                    if buf.len() >= 32 * 1024 {
                        out.write_all(&buf).map_err(werr)?;
                        bytes += buf.len() as u64;
                        buf.clear();
                        progress(keys, bytes);
                        if incremental && bytes - synced_at >= AUTOSYNC_BYTES {
                            out.flush().map_err(werr)?;
                            out.get_ref().sync_data().map_err(werr)?;
                            synced_at = bytes;
                        }
                    }
                }
            }
        }
    }
    out.write_all(&buf).map_err(werr)?;
    bytes += buf.len() as u64;
    progress(keys, bytes);
    out.flush().map_err(|e| SaveError::Write("fflush", e))?;
    out.get_ref().sync_all().map_err(|e| SaveError::Write("fsync", e))?;
    Ok(())
}

/// The parent, once the rewrite child is reaped (`backgroundRewriteDoneHandler`).
/// `status` is waitpid's; `cow_bytes` the child's peak copy-on-write.
pub fn done(server: &Server, config: &Config, pid: i32, status: i32, cow_bytes: u64) {
    let mut rw = lock(&server.aof_rewrite);
    rw.last_cow_size = cow_bytes;
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        crate::notice!("Background AOF rewrite terminated with success");
        if switch_to_new_base(server, config, &mut rw, pid) {
            rw.last_status_ok = true;
            rw.consecutive_failures = 0;
            crate::notice!("Background AOF rewrite finished successfully");
            if rw.state == AofState::WaitRewrite {
                rw.state = AofState::On;
            }
        } else {
            rw.last_status_ok = false;
            rw.consecutive_failures += 1;
        }
    } else if libc::WIFEXITED(status) {
        rw.last_status_ok = false;
        rw.consecutive_failures += 1;
        crate::warning!("Background AOF rewrite terminated with error");
    } else {
        let sig = if libc::WIFSIGNALED(status) { libc::WTERMSIG(status) } else { 0 };
        // SIGUSR1 is how a rewrite is killed on purpose: not an error.
        if sig != libc::SIGUSR1 {
            rw.last_status_ok = false;
            rw.consecutive_failures += 1;
        }
        crate::warning!("Background AOF rewrite terminated by signal {}", sig);
    }
    remove_temp_files(config, pid);
    if rw.state == AofState::WaitRewrite {
        // Still waiting: what was collected is dropped, the next rewrite
        // (scheduled now) starts over from a new cut.
        server.aof.switch_file(None);
        let temp = manifest::temp_incr_name(&appendfilename(config));
        crate::notice!("Removing the temp incr aof file {} in the background", temp);
        let _ = std::fs::remove_file(aof_dir(config).join(&temp));
        rw.scheduled = true;
    }
    rw.last_time_sec = if rw.start_ms >= 0 { (crate::util::unix_ms() - rw.start_ms) / 1000 } else { -1 };
    rw.start_ms = -1;
}

/// The success path's file work; false when it failed (logged).
fn switch_to_new_base(server: &Server, config: &Config, rw: &mut Rewrite, pid: i32) -> bool {
    let dir = aof_dir(config);
    let name = appendfilename(config);
    let tmp_name = manifest::temp_rewrite_base_name(pid as u32);
    let tmp = Path::new(&config.dir).join(&tmp_name);
    let mut m = rw.manifest.clone();
    let base = String::from_utf8_lossy(&m.new_base(&name, rdb_preamble(config)).name).into_owned();
    if let Err(e) = std::fs::rename(&tmp, dir.join(&base)) {
        crate::warning!("Error trying to rename the temporary AOF file {} into {}: {}", tmp_name, base, strerror(&e));
        return false;
    }
    crate::notice!("Successfully renamed the temporary AOF base file {} into {}", tmp_name, base);
    let mut new_incr = None;
    if rw.state == AofState::WaitRewrite {
        let temp = manifest::temp_incr_name(&name);
        let incr = String::from_utf8_lossy(&m.new_incr(&name).name).into_owned();
        if let Err(e) = std::fs::rename(dir.join(&temp), dir.join(&incr)) {
            crate::warning!("Error trying to rename the temporary AOF incr file {} into {}: {}", temp, incr, strerror(&e));
            let _ = std::fs::remove_file(dir.join(&base));
            return false;
        }
        crate::notice!("Successfully renamed the temporary AOF incr file {} into {}", temp, incr);
        new_incr = Some(incr);
    }
    m.mark_rewritten_incrs_as_history(rw.state != AofState::Off);
    if let Err(e) = aof::persist_manifest(&dir, &name, &m) {
        crate::warning!("{}", e.log_line);
        let _ = std::fs::remove_file(dir.join(&base));
        if let Some(incr) = new_incr {
            let _ = std::fs::remove_file(dir.join(incr));
        }
        return false;
    }
    if rw.state != AofState::Off {
        let base_size = std::fs::metadata(dir.join(&base)).map(|md| md.len()).unwrap_or(0);
        let current = base_size + server.aof.incr_size.load(Ordering::Relaxed);
        server.aof.set_sizes(current, current);
    }
    delete_history(config, &mut m);
    rw.manifest = m;
    true
}

/// `aofDelHistoryFiles`: the manifest without the history files, then the
/// files (unless aof-disable-auto-gc). After a rewrite, and at start-up
/// for what a crash between the two left.
fn delete_history(config: &Config, m: &mut Manifest) {
    if setting(config, "aof-disable-auto-gc", "no") == "yes" || m.history.is_empty() {
        return;
    }
    let dir = aof_dir(config);
    let history = m.take_history();
    for h in &history {
        crate::notice!("Removing the history file {} in the background", h.display_name());
    }
    match aof::persist_manifest(&dir, &appendfilename(config), m) {
        Ok(()) => {
            for h in &history {
                let _ = std::fs::remove_file(h.path_in(&dir));
            }
        }
        Err(e) => {
            crate::warning!("{}", e.log_line);
            m.history = history;
        }
    }
}

/// `aofRemoveTempFile`: what a rewrite child may leave in `dir`.
fn remove_temp_files(config: &Config, pid: i32) {
    let _ = std::fs::remove_file(Path::new(&config.dir).join(manifest::temp_rewrite_base_name(pid as u32)));
    let _ = std::fs::remove_file(Path::new(&config.dir).join(manifest::temp_foreground_rewrite_name(pid as u32)));
}

/// `killAppendOnlyChild`: a running rewrite is killed (SIGUSR1: not an
/// error) and reaped at once.
pub fn kill_child(server: &Server, config: &Config) {
    let Some(child) = server.persistence.take_child_of(snapshot::ChildKind::Aof) else { return };
    crate::notice!("Killing running AOF rewrite child: {}", child.pid);
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(child.pid, libc::SIGUSR1);
        let mut status = 0;
        libc::waitpid(child.pid, &mut status, 0);
    }
    remove_temp_files(config, child.pid);
    server.persistence.set_snapshot_active(false);
    lock(&server.aof_rewrite).start_ms = -1;
}

/// prepareForShutdown's part: a rewrite in progress is killed (the AOF we
/// have holds the whole dataset anyway), unless it writes the first AOF of
/// an AOF just turned on: then the shutdown is refused without FORCE.
pub fn before_shutdown(server: &Server, config: &Config, force: bool) -> bool {
    let rewriting = server.persistence.lock().child.as_ref().is_some_and(|c| c.kind == snapshot::ChildKind::Aof);
    let state = lock(&server.aof_rewrite).state;
    if state == AofState::Off || !rewriting {
        return true;
    }
    if state == AofState::WaitRewrite {
        if !force {
            crate::warning!("Writing initial AOF, can't exit.");
            return false;
        }
        crate::warning!("Writing initial AOF. Exit anyway.");
    }
    crate::warning!("There is a child rewriting the AOF. Killing it!");
    kill_child(server, config);
    true
}

/// CONFIG SET appendonly no (`stopAppendOnly`), every shard held: the
/// streams stop, the writer writes and fsyncs what it has and closes the
/// file, a rewrite in progress is killed.
pub fn stop_append_only(server: &Server, shards: &mut ShardSet, config: &Config) {
    for i in 0..shards.len() {
        let s = shards.get_mut(i);
        if s.stream.is_on() {
            server.aof.hand_over(s);
            s.stream.set_on(false);
        }
    }
    server.aof.switch_file(None);
    {
        let mut rw = lock(&server.aof_rewrite);
        rw.state = AofState::Off;
        rw.scheduled = false;
    }
    kill_child(server, config);
    let _ = std::fs::remove_file(aof_dir(config).join(manifest::temp_incr_name(&appendfilename(config))));
}

/// CONFIG SET appendonly yes (`startAppendOnly`), every shard held: the
/// AOF waits for a rewrite, started now or when the running child ends, or
/// (`in_exec`, inside EXEC) from the cron after the transaction.
/// Err: Redis's CONFIG SET reason.
pub fn start_append_only(server: &Server, shards: &mut ShardSet, config: &Config, in_exec: bool) -> Result<(), &'static str> {
    lock(&server.aof_rewrite).state = AofState::WaitRewrite;
    let kind = server.persistence.lock().child.as_ref().map(|c| c.kind);
    match kind {
        Some(k) if k != snapshot::ChildKind::Aof => {
            lock(&server.aof_rewrite).scheduled = true;
            crate::warning!("AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible.");
            return Ok(());
        }
        _ if in_exec => {
            lock(&server.aof_rewrite).scheduled = true;
            crate::warning!("AOF was enabled during a transaction. An AOF background was scheduled to start when possible.");
            return Ok(());
        }
        Some(_) => {
            crate::warning!("AOF was enabled but there is already an AOF rewriting in background. Stopping background AOF and starting a rewrite now.");
            kill_child(server, config);
        }
        None => {}
    }
    let barrier = std::time::Duration::from_micros(server.hold.last_wait_usec.load(Ordering::Relaxed));
    if snapshot::start_child(server, shards, config, barrier, snapshot::ChildKind::Aof).is_err() {
        lock(&server.aof_rewrite).state = AofState::Off;
        crate::warning!(
            "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error."
        );
        return Err("Unable to turn on AOF. Check server logs.");
    }
    Ok(())
}

/// serverCron's two reasons to start a rewrite with no child running: one
/// was scheduled, or the AOF grew by `auto-aof-rewrite-percentage` over its
/// size after the last rewrite and is over `auto-aof-rewrite-min-size`.
pub fn cron_wants_rewrite(server: &Server, config: &Config) -> bool {
    let mut rw = lock(&server.aof_rewrite);
    if rw.scheduled {
        return !limited(&mut rw);
    }
    let percentage: u64 = setting(config, "auto-aof-rewrite-percentage", "100").parse().unwrap_or(100);
    let min_size: u64 = setting(config, "auto-aof-rewrite-min-size", "67108864").parse().unwrap_or(64 << 20);
    let (current, base) = server.aof.sizes();
    if rw.state != AofState::On || percentage == 0 || current <= min_size {
        return false;
    }
    let growth = (current * 100 / base.max(1)) as i64 - 100;
    if growth >= percentage as i64 && !limited(&mut rw) {
        crate::notice!("Starting automatic rewriting of AOF on {}% growth", growth);
        return true;
    }
    false
}

/// `aofRewriteLimited`: after 3 failed rewrites in a row (3 incr files),
/// automatic ones wait 1, 2, 4 ... up to 60 minutes.
fn limited(rw: &mut Rewrite) -> bool {
    const THRESHOLD: usize = 3;
    const MAX_MINUTES: i64 = 60;
    let incrs = rw.manifest.incr.len();
    if incrs < THRESHOLD {
        rw.limit_delay_minutes = 0;
        rw.next_rewrite_unix = 0;
        return false;
    }
    let now = crate::util::unix_ms() / 1000;
    if now < rw.next_rewrite_unix {
        return true;
    }
    let mut limit = false;
    if rw.limit_delay_minutes == 0 {
        limit = true;
        rw.limit_delay_minutes = 1;
    } else {
        rw.limit_delay_minutes = (rw.limit_delay_minutes * 2).min(MAX_MINUTES);
    }
    rw.next_rewrite_unix = now + rw.limit_delay_minutes * 60;
    crate::warning!("Background AOF rewrite has repeatedly failed {} times and triggered the limit, will retry in {} minutes", incrs, rw.limit_delay_minutes);
    limit
}

fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}
