//! The append-only file of a running server (Redis 7.0's multi-part AOF in
//! `appenddirname/`): loading it at start-up, creating its base and incr
//! files when there are none, and the writer that appends every shard's
//! write stream (`exec::propagate`) to the incr file.
//!
//! The writer is a thread of its own, never a shard: a shard hands over the
//! bytes its commands appended once per loop turn (`Sink::hand_over`, a
//! lock taken only with `appendonly yes`), and the writer merges the
//! shards' batches into the file honouring the cuts of held multi-shard
//! commands (see `exec::propagate`), writes them and fsyncs by
//! `appendfsync`: `everysec` about once a second, `always` after every
//! write, `no` never.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::exec::propagate::Cut;
use crate::persistence::aof::{self, DirStatus, Item, ReadOptions};
use crate::shard::ShardState;

/// A config value by name, as CONFIG GET shows it.
fn setting(config: &Config, name: &str, default: &str) -> String {
    config.others.get(name).cloned().unwrap_or_else(|| default.to_string())
}

pub fn enabled(config: &Config) -> bool {
    setting(config, "appendonly", "no") == "yes"
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// The default, so that a fresh `Sink` reads `everysec`.
    EverySec = 0,
    Always = 1,
    No = 2,
}

/// One batch a shard handed over: its first stream position, the bytes,
/// the cuts among them.
struct Batch {
    /// Hand-over order, over all shards.
    seq: u64,
    shard: usize,
    start: u64,
    bytes: Vec<u8>,
    cuts: Vec<Cut>,
}

/// Where shards hand their batches to the writer.
///
/// **Group commit (`appendfsync always`).** Every batch gets the next
/// hand-over sequence number; the writer publishes `synced`, the highest
/// number whose batch and every earlier one are written and fsynced. A
/// shard that hands over at the end of a loop turn gets back the sequence
/// number then current (`hand_over`) and sends no reply before `synced`
/// reaches it: its own writes of the turn, the writes other shards ran for
/// its clients (a shard hands a forwarded command's write over before its
/// reply leaves, and the holder of a multi-shard command hands the held
/// shards' streams over), all are then durable. One fsync covers whatever
/// every shard handed over while the previous one ran.
#[derive(Default)]
pub struct Sink {
    inbox: Mutex<Vec<Batch>>,
    wake: Condvar,
    seq: AtomicU64,
    synced: AtomicU64,
    /// `appendfsync always`: replies wait for `synced`.
    always: AtomicBool,
    /// Shutdown asked the writer for a last write and fsync...
    closing: AtomicBool,
    /// ...which it did.
    closed: AtomicBool,
    /// A writer thread runs.
    running: AtomicBool,
    /// INFO's aof_current_size (files loaded plus bytes appended) and
    /// aof_base_size.
    current_size: AtomicU64,
    base_size: AtomicU64,
    /// The last write or fsync failed (aof_last_write_status:err).
    write_failed: AtomicBool,
    /// File switches asked by a rewrite (see `aof_rewrite`), in order.
    switches: Mutex<VecDeque<Switch>>,
    /// Bytes written to the incr file appends go to now
    /// (`aof_last_incr_size`).
    pub incr_size: AtomicU64,
    /// `appendfsync` as CONFIG SET leaves it (an `Fsync` as u8).
    fsync_policy: AtomicU8,
    /// `no-appendfsync-on-rewrite yes`: no fsync while a child runs.
    pub no_fsync_on_rewrite: AtomicBool,
}

/// From the batch numbered `after_seq` on, appends go to `to` (none:
/// dropped); the file before is fsynced and closed once every batch up to
/// `after_seq` is in it. A rewrite asks for one at its fork, every shard
/// held: the hand-over sequence at that moment is the cut of all shards.
pub struct Switch {
    pub after_seq: u64,
    pub to: Option<std::fs::File>,
}

impl Sink {
    /// Whether the writer thread runs (streams are handed to it).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Takes what `state`'s stream holds and passes it to the writer
    /// (called by the shard's loop when its stream is on). Returns the
    /// sequence number a reply produced so far must see `synced` reach.
    pub fn hand_over(&self, state: &mut ShardState) -> u64 {
        state.stream.flush_pending();
        if state.stream.is_empty() {
            return self.seq.load(Ordering::Acquire);
        }
        let (start, bytes, cuts) = state.stream.take();
        let seq = {
            let mut inbox = self.inbox.lock().unwrap();
            // Numbered under the lock: the inbox is in sequence order.
            let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
            inbox.push(Batch { seq, shard: state.id, start, bytes, cuts });
            seq
        };
        self.wake.notify_one();
        seq
    }

    /// SHUTDOWN and SIGTERM, every shard held: hands every stream over and
    /// waits (bounded) until the writer wrote and fsynced it all, as
    /// Redis's prepareForShutdown flushes and fsyncs the AOF.
    pub fn flush_for_shutdown(&self, shards: &mut crate::shard::hold::ShardSet) {
        if !self.running.load(Ordering::Acquire) {
            return;
        }
        for i in 0..shards.len() {
            if shards.has(i) {
                self.hand_over(shards.get_mut(i));
            }
        }
        crate::notice!("Calling fsync() on the AOF file.");
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.closed.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// INFO persistence's `aof_*` fields, from `aof_enabled` to
    /// `module_fork_last_cow_size`, then the ones Redis adds while the AOF
    /// is on. `rw`: the rewrite's fields (see `aof_rewrite::info`).
    pub fn info_fields(&self, rw: &crate::persistence::aof_rewrite::RewriteInfo) -> String {
        let mut s = format!(
            "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:{}\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
            rw.enabled as u8,
            rw.in_progress as u8,
            rw.scheduled as u8,
            rw.last_time_sec,
            rw.current_time_sec,
            if rw.last_status_ok { "ok" } else { "err" },
            rw.rewrites,
            rw.consecutive_failures,
            if self.write_failed.load(Ordering::Relaxed) { "err" } else { "ok" },
            rw.last_cow_size
        );
        if rw.enabled {
            s.push_str(&format!(
                "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:{}\r\naof_buffer_length:0\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n",
                self.current_size.load(Ordering::Relaxed),
                self.base_size.load(Ordering::Relaxed),
                rw.scheduled as u8
            ));
        }
        s
    }

    /// Sends appends handed over from now on to `to` (see `Switch`). With
    /// every shard held and their streams handed over just before, the
    /// switch lies at the same cut in every shard's stream.
    pub fn switch_file(&self, to: Option<std::fs::File>) {
        {
            let _inbox = self.inbox.lock().unwrap();
            let after_seq = self.seq.load(Ordering::Acquire);
            self.switches.lock().unwrap().push_back(Switch { after_seq, to });
        }
        self.wake.notify_one();
    }

    /// `appendfsync`, acted on from the writer's next turn.
    pub fn set_fsync(&self, policy: Fsync) {
        self.fsync_policy.store(policy as u8, Ordering::Relaxed);
        self.always.store(policy == Fsync::Always, Ordering::Relaxed);
    }

    fn fsync(&self) -> Fsync {
        match self.fsync_policy.load(Ordering::Relaxed) {
            x if x == Fsync::Always as u8 => Fsync::Always,
            x if x == Fsync::No as u8 => Fsync::No,
            _ => Fsync::EverySec,
        }
    }

    /// INFO's aof_current_size and aof_base_size after a rewrite.
    pub fn set_sizes(&self, current: u64, base: u64) {
        self.current_size.store(current, Ordering::Relaxed);
        self.base_size.store(base, Ordering::Relaxed);
    }

    /// (aof_current_size, aof_base_size)
    pub fn sizes(&self) -> (u64, u64) {
        (self.current_size.load(Ordering::Relaxed), self.base_size.load(Ordering::Relaxed))
    }

    /// Whether replies wait for the fsync (`appendfsync always`).
    #[inline]
    pub fn always(&self) -> bool {
        self.always.load(Ordering::Relaxed)
    }

    /// Whether everything up to hand-over `mark` is durable.
    #[inline]
    pub fn durable(&self, mark: u64) -> bool {
        // SeqCst with the shard's `sleeping` store and the writer's swap of
        // it: either the shard sees the new `synced` or the writer sees it
        // asleep and rings it.
        self.synced.load(Ordering::SeqCst) >= mark
    }
}

/// The bytes of one shard not yet written, from its position `written`.
#[derive(Default)]
struct Lane {
    written: u64,
    segs: VecDeque<(u64, Vec<u8>)>,
    cuts: VecDeque<Cut>,
    /// (end position, sequence number) of the batches not fully written.
    ends: VecDeque<(u64, u64)>,
}

impl Lane {
    fn available(&self) -> u64 {
        self.segs.back().map(|(s, b)| s + b.len() as u64).unwrap_or(self.written)
    }
    /// Moves bytes up to position `to` into `out`.
    fn write_to(&mut self, to: u64, out: &mut Vec<u8>) {
        while self.written < to {
            let Some((start, bytes)) = self.segs.front() else { return };
            let from = (self.written - start) as usize;
            let end = ((to - start) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..end]);
            self.written = start + end as u64;
            if end == bytes.len() {
                self.segs.pop_front();
            }
        }
    }
}

/// Merges the lanes' bytes into `out` as far as the cuts allow.
fn merge(lanes: &mut [Lane], out: &mut Vec<u8>) {
    loop {
        for lane in lanes.iter_mut() {
            let limit = lane.cuts.front().map_or(u64::MAX, |c| c.at).min(lane.available());
            lane.write_to(limit, out);
        }
        // The oldest cut every one of whose shards has reached it.
        let ready = lanes
            .iter()
            .filter_map(|l| l.cuts.front().filter(|c| l.written == c.at))
            .filter(|c| {
                (0..lanes.len()).filter(|&s| c.shards.contains(s)).all(|s| lanes[s].cuts.front().is_some_and(|f| f.id == c.id && lanes[s].written == f.at))
            })
            .min_by_key(|c| c.id)
            .cloned();
        let Some(cut) = ready else { return };
        let carrier = &mut lanes[cut.carrier];
        let end = carrier.cuts.front().map_or(cut.at, |c| c.end);
        carrier.write_to(end, out);
        for (s, lane) in lanes.iter_mut().enumerate() {
            if cut.shards.contains(s) {
                lane.cuts.pop_front();
            }
        }
    }
}

/// What start-up leaves for the writer.
pub struct Opened {
    dir: PathBuf,
    file: std::fs::File,
    fsync: Fsync,
    /// Sizes as Redis counts them at start: of the files loaded (base and
    /// incr), and of the base.
    current_size: u64,
    base_size: u64,
}

pub fn fsync_policy(config: &Config) -> Fsync {
    match setting(config, "appendfsync", "everysec").as_str() {
        "always" => Fsync::Always,
        "no" => Fsync::No,
        _ => Fsync::EverySec,
    }
}

/// Start-up with `appendonly yes`: loads the directory's files into
/// `states` (Redis's `loadAppendOnlyFiles`, with its log lines), creates a
/// base and an incr file when there are none, opens the incr file for
/// appends, persists the manifest, and turns every shard's stream on.
pub fn load_at_startup(states: &mut [Box<ShardState>], config: &Config, server: &crate::server::Server) -> Result<Opened, String> {
    let appendfilename = setting(config, "appendfilename", "appendonly.aof");
    let dir = Path::new(&config.dir).join(setting(config, "appenddirname", "appendonlydir"));
    let manifest = aof::load_manifest(&dir, &appendfilename).map_err(|e| e.to_string())?;
    let mut manifest = manifest.unwrap_or_default();
    let appenddirname = setting(config, "appenddirname", "appendonlydir");
    if aof::needs_upgrade(Path::new(&config.dir), &appenddirname, &appendfilename, &manifest) {
        // A pre-7.0 appendonly.aof becomes the base of a new directory.
        let (upgraded, line) = aof::upgrade_old_style(Path::new(&config.dir), &appenddirname, &appendfilename).map_err(|e| e.to_string())?;
        crate::notice!("{}", line);
        manifest = upgraded;
    }
    let start = Instant::now();
    let opts = ReadOptions {
        load_truncated: setting(config, "aof-load-truncated", "yes") == "yes",
        databases: config.databases,
        now_ms: crate::util::unix_ms(),
        appendfilename: appendfilename.clone(),
    };
    let ptrs: Vec<*mut ShardState> = states.iter_mut().map(|b| &mut **b as *mut ShardState).collect();
    let mut set = crate::shard::hold::ShardSet::new(ptrs.len());
    for (i, p) in ptrs.iter().enumerate() {
        // SAFETY: start-up owns every state (no shard thread runs yet) and
        // the set lives only for this load.
        unsafe { set.set(i, *p) };
    }
    let mut clock = crate::exec::Clock::new();
    let table = crate::commands::CommandTable::get();
    let status = aof::load_dir(&dir, &manifest, &opts, |item| {
        let mut run = |c: aof::Command| -> Result<(), String> {
            let Some(id) = table.lookup(c.argv[0]) else {
                return Err(aof::reader::unknown_command_line(c.argv[0], "append only file"));
            };
            let mut out = Vec::new();
            let mut r = crate::protocol::Reply::new(&mut out, 2);
            let mut ctx = crate::commands::Ctx::new(&mut set, server, 0, c.db, 2, crate::util::unix_ms(), None);
            crate::exec::call(&mut ctx, &mut clock, id, &c.argv, &mut r, Default::default(), &mut Vec::new());
            Ok(())
        };
        match item {
            Item::Key { db, key, entry } => {
                let s = crate::shard::slot::key_shard(&key, ptrs.len());
                set.get_mut(s).dbs[db].insert_entry(key.into_boxed_slice(), entry);
                Ok(())
            }
            Item::Command(c) => run(c),
            Item::Transaction(cs) => cs.into_iter().try_for_each(run),
        }
    });
    let (mut current_size, mut base_size) = (0, 0);
    match status {
        Err(e) => {
            let mut lines = e.redis_log_lines();
            let last = lines.pop().unwrap_or_default();
            for l in lines {
                crate::warning!("{}", l);
            }
            return Err(last);
        }
        Ok(DirStatus::Loaded(load)) => {
            current_size = load.total_size;
            base_size = load.base_size;
            for l in &load.log_lines {
                crate::notice!("{}", l);
            }
            crate::notice!("DB loaded from append only file: {:.3} seconds", start.elapsed().as_secs_f64());
        }
        Ok(DirStatus::NotExist | DirStatus::Empty) => {}
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("Can't open or create append-only dir {}: {}", dir.display(), e))?;
    if manifest.base.is_none() && manifest.incr.is_empty() {
        let preamble = setting(config, "aof-use-rdb-preamble", "yes") == "yes";
        let name = String::from_utf8_lossy(&manifest.new_base(&appendfilename, preamble).name).into_owned();
        let path = dir.join(&name);
        if preamble {
            crate::persistence::snapshot::write_dump(&ptrs, config, &path.to_string_lossy(), true, |_, _| {}).map_err(|e| format!("{e:?}"))?;
        } else {
            // Nothing was loaded (no AOF): the base of an empty dataset.
            std::fs::File::create(&path).map_err(|e| e.to_string())?;
        }
        crate::notice!("Creating AOF base file {} on server start", name);
    }
    let new_incr = manifest.incr.is_empty();
    let incr = String::from_utf8_lossy(&manifest.last_incr_or_new(&appendfilename).name).into_owned();
    let file =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join(&incr)).map_err(|e| format!("Can't open the append-only file {}: {}", incr, e))?;
    crate::notice!("{} AOF incr file {} on server start", if new_incr { "Creating" } else { "Opening" }, incr);
    aof::persist_manifest(&dir, &appendfilename, &manifest).map_err(|e| format!("{e:?}"))?;
    for s in states.iter_mut() {
        s.stream.set_on(true);
    }
    Ok(Opened { dir, file, fsync: fsync_policy(config), current_size, base_size })
}

/// Runs the writer until the process ends: merges what shards hand over
/// into the incr file and fsyncs by policy.
pub fn spawn_writer(server: std::sync::Arc<crate::server::Server>, opened: Opened) -> std::io::Result<()> {
    let Opened { dir: _dir, file, fsync, current_size, base_size } = opened;
    start_writer(server, Some(file), fsync, current_size, base_size)
}

/// The writer thread, appending to `file` (none: until a rewrite's switch).
fn start_writer(
    server: std::sync::Arc<crate::server::Server>,
    file: Option<std::fs::File>,
    fsync: Fsync,
    current_size: u64,
    base_size: u64,
) -> std::io::Result<()> {
    // Set before the thread runs: start-up reads them right after.
    server.aof.current_size.store(current_size, Ordering::Relaxed);
    server.aof.base_size.store(base_size, Ordering::Relaxed);
    server.aof.set_fsync(fsync);
    server.aof.running.store(true, Ordering::Release);
    std::thread::Builder::new().name("ringkv-aof".into()).spawn(move || {
        let mut file = file;
        // A ring of the writer's own, only to ring the shards' doorbells.
        let mut ring = io_uring::IoUring::new(64).ok();
        let mut received = 0u64;
        let mut lanes: Vec<Lane> = (0..server.shard_count).map(|_| Lane::default()).collect();
        let mut out = Vec::new();
        let mut last_fsync = Instant::now();
        let mut unsynced = false;
        loop {
            // Read before the inbox is taken: when set, every last batch
            // (handed over before it was set) is in what is taken below.
            let closing = server.aof.closing.load(Ordering::Acquire);
            let (batches, switches) = {
                let mut inbox = server.aof.inbox.lock().unwrap();
                if inbox.is_empty() && !closing && server.aof.switches.lock().unwrap().is_empty() {
                    inbox = server.aof.wake.wait_timeout(inbox, Duration::from_millis(100)).unwrap().0;
                }
                // Under the inbox lock: a switch's batches are all in this
                // take or an earlier one.
                (std::mem::take(&mut *inbox), std::mem::take(&mut *server.aof.switches.lock().unwrap()))
            };
            let fsync = server.aof.fsync();
            let mut batches = batches.into_iter().peekable();
            for switch in switches {
                while let Some(b) = batches.next_if(|b| b.seq <= switch.after_seq) {
                    received = b.seq;
                    ingest(&mut lanes, b);
                }
                // Every shard's bytes before the cut are here: all of them
                // go to the file before the switch.
                merge(&mut lanes, &mut out);
                write_out(&server.aof, file.as_mut(), &mut out, &mut unsynced);
                if let Some(old) = file.take() {
                    if let Err(e) = old.sync_data() {
                        crate::warning!("Can't persist the AOF: fsync: {}", e);
                    }
                }
                file = switch.to;
                unsynced = false;
                server.aof.incr_size.store(0, Ordering::Relaxed);
            }
            for b in batches {
                received = b.seq;
                ingest(&mut lanes, b);
            }
            merge(&mut lanes, &mut out);
            write_out(&server.aof, file.as_mut(), &mut out, &mut unsynced);
            if closing {
                // The held shards hand over nothing more.
                if let Some(Err(e)) = file.as_ref().map(|f| f.sync_data()) {
                    crate::warning!("Can't persist the AOF: fsync: {}", e);
                }
                server.aof.closed.store(true, Ordering::Release);
                return;
            }
            // no-appendfsync-on-rewrite: no fsync while a child writes.
            let held_back = server.aof.no_fsync_on_rewrite.load(Ordering::Relaxed) && server.persistence.snapshot_active.load(Ordering::Relaxed);
            let fsync = if held_back { Fsync::No } else { fsync };
            let due = match fsync {
                Fsync::Always => true,
                Fsync::EverySec => last_fsync.elapsed() >= Duration::from_secs(1),
                Fsync::No => false,
            };
            if unsynced && due {
                if let Some(Err(e)) = file.as_ref().map(|f| f.sync_data()) {
                    crate::warning!("Can't persist the AOF: fsync: {}", e);
                    continue;
                }
                last_fsync = Instant::now();
                unsynced = false;
            }
            // Every batch numbered below the first one not fully written is
            // durable (or, for `everysec`/`no`, as durable as it will be).
            if !unsynced || fsync != Fsync::Always {
                let mut first_open = u64::MAX;
                for lane in lanes.iter_mut() {
                    while lane.ends.front().is_some_and(|&(end, _)| end <= lane.written) {
                        lane.ends.pop_front();
                    }
                    if let Some(&(_, seq)) = lane.ends.front() {
                        first_open = first_open.min(seq);
                    }
                }
                let synced = if first_open == u64::MAX { received } else { first_open - 1 };
                if server.aof.synced.swap(synced, Ordering::SeqCst) != synced && fsync == Fsync::Always {
                    // Wake the shards asleep with replies waiting for this.
                    let mut rung = false;
                    for t in 0..server.shard_count {
                        let fd = server.ring_fds[t].load(Ordering::Acquire);
                        if fd >= 0 && server.needs_doorbell(t) {
                            if let Some(ring) = ring.as_mut() {
                                // SAFETY: the entry carries no pointer; it
                                // only names the target ring's fd.
                                let _ = unsafe { ring.submission().push(&crate::network::event_loop::doorbell_entry(fd)) };
                                rung = true;
                            }
                        }
                    }
                    if rung {
                        if let Some(ring) = ring.as_mut() {
                            let _ = ring.submit();
                            // Completions of the doorbells are skipped on
                            // success; drop any failure's.
                            ring.completion().for_each(drop);
                        }
                    }
                }
            }
        }
    })?;
    Ok(())
}

/// One batch into its shard's lane.
fn ingest(lanes: &mut [Lane], b: Batch) {
    let lane = &mut lanes[b.shard];
    lane.ends.push_back((b.start + b.bytes.len() as u64, b.seq));
    if lane.segs.is_empty() && lane.written < b.start {
        lane.written = b.start;
    }
    if !b.bytes.is_empty() {
        lane.segs.push_back((b.start, b.bytes));
    }
    lane.cuts.extend(b.cuts);
}

/// Writes `out` to the incr file (or drops it when appends go nowhere:
/// AOF turned on and its first rewrite failed), then empties it.
fn write_out(sink: &Sink, file: Option<&mut std::fs::File>, out: &mut Vec<u8>, unsynced: &mut bool) {
    if out.is_empty() {
        return;
    }
    if let Some(file) = file {
        match file.write_all(out) {
            Ok(()) => {
                sink.current_size.fetch_add(out.len() as u64, Ordering::Relaxed);
                sink.incr_size.fetch_add(out.len() as u64, Ordering::Relaxed);
                sink.write_failed.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                crate::warning!("Error writing to the AOF file: {}", e);
                sink.write_failed.store(true, Ordering::Relaxed);
            }
        }
        *unsynced = true;
    }
    out.clear();
}

/// Starts the writer with no file (`appendonly no` at start): CONFIG SET
/// appendonly yes later gives it one through the rewrite's switch.
pub fn spawn_idle_writer(server: &std::sync::Arc<crate::server::Server>, config: &Config) -> std::io::Result<()> {
    start_writer(server.clone(), None, fsync_policy(config), 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::hold::ShardMask;

    fn lane(bytes: &[u8], cuts: Vec<Cut>) -> Lane {
        Lane { segs: VecDeque::from([(0, bytes.to_vec())]), cuts: cuts.into(), ..Default::default() }
    }

    /// Shard 0 carries a unit `U` at its cut 5; shard 1 has its cut at 3:
    /// shard 1's bytes after its cut wait for the unit, shard 0's bytes
    /// before it go first.
    #[test]
    fn merge_waits_at_cuts_and_writes_the_unit_once() {
        let mut both = ShardMask::default();
        both.insert(0);
        both.insert(1);
        let c = |at, end| Cut { id: 7, at, shards: both, carrier: 0, end };
        let mut lanes = vec![lane(b"aaaaaUUbb", vec![c(5, 7)]), lane(b"xxxyy", vec![c(3, 3)])];
        let mut out = Vec::new();
        merge(&mut lanes, &mut out);
        assert_eq!(out, b"aaaaaxxxUUbbyy");
        // A cut whose other shard has not handed its bytes over yet waits.
        let mut lanes = vec![lane(b"aUb", vec![c(1, 2)]), Lane::default()];
        let mut out = Vec::new();
        merge(&mut lanes, &mut out);
        assert_eq!(out, b"a");
        lanes[1].segs.push_back((0, b"x".to_vec()));
        lanes[1].cuts.push_back(c(1, 1));
        merge(&mut lanes, &mut out);
        assert_eq!(out, b"axUb");
    }
}
