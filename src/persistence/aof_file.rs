//! The append-only file of a running server (Redis 7.0's multi-part AOF in
//! `appenddirname/`): loading it at start-up, creating its base and incr
//! files when there are none, and the writer that appends every shard's
//! write stream (`exec::propagate`) to the incr file.
//!
//! With several shards the writer is a thread of its own; with one, the
//! shard's loop drives it on the shard's own ring (`Sink::inline_turn`), so
//! that a group commit costs no thread hop. A shard hands over the
//! bytes its commands appended once per loop turn (`Sink::hand_over`, a
//! lock taken only with `appendonly yes`), and the writer merges the
//! shards' batches into the file in causal order, honouring the cuts of
//! multi-shard commands (`persistence::lanes`), writes them and fsyncs by
//! `appendfsync`: `everysec` about once a second, `always` after every
//! write, `no` never. A rewrite (`aof_rewrite`) moves the appends to a new
//! file at its cut (`Sink::switch_file`): the writer finishes the old file
//! with everything before the cut, fsyncs and closes it, then goes on in
//! the new one.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::exec::propagate::Cut;
use crate::persistence::aof::{self, DirStatus, Item, ReadOptions};
pub(crate) use crate::persistence::lanes::{merge, merged_through, Lane, Selected};
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
    /// Where its SELECTs and annotations are (`Stream::take`).
    marks: crate::exec::propagate::Marks,
}

/// The most bytes shards may have handed over that the writer has not
/// written yet. Past it every shard holds its replies (as `appendfsync
/// always` does) until the writer's writes catch up, so a slow or failing
/// disk stops the clients that write rather than growing memory without
/// bound; nothing acknowledged is dropped. 64 MiB is about a second of SETs
/// at `-P 16` on this machine (~1M/s of ~60 bytes), well above what one
/// fsync period holds at full speed. Each shard turn that finds the limit
/// passed counts in `aof_inbox_limit_hits` (INFO's `# Snapshot` section).
pub const AOF_PENDING_BYTES_LIMIT: u64 = 64 << 20;

/// Redis's AOF_WRITE_LOG_ERROR_RATE: write error lines at most every 30 s.
const WRITE_ERROR_LOG_SECS: u64 = 30;

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
/// every shard handed over while the previous one ran. Under `everysec`
/// and `no`, `synced` is published when the bytes are written (or their
/// write is postponed behind an `everysec` fsync, as Redis then sends the
/// replies unwritten), and replies wait for that: Redis writes its AOF
/// buffer before it sends replies, so a client that read a reply finds its
/// command in the file (page cache).
#[derive(Default)]
pub struct Sink {
    inbox: Mutex<Vec<Batch>>,
    /// Batches in the inbox (read without the lock to decide whether the
    /// writer needs its doorbell).
    inbox_batches: AtomicU64,
    seq: AtomicU64,
    synced: AtomicU64,
    /// The hand-over number up to which everything is written (or
    /// dropped with no file): `synced` but for writes postponed behind an
    /// `everysec` fsync, whose replies go before them (see `start_io`).
    written: AtomicU64,
    /// The highest hand-over number a commit under way covers (under
    /// `always` the fsync started; otherwise the write): output gated at
    /// or below it goes out when that commit ends, not the next one (see
    /// `EventLoop::gate_outputs`).
    started: AtomicU64,
    /// `appendfsync always`: replies wait for `synced`.
    always: AtomicBool,
    /// Shutdown asked the writer for a last write and fsync...
    closing: AtomicBool,
    /// ...which it did.
    closed: AtomicBool,
    /// A writer thread runs.
    running: AtomicBool,
    /// The writer's ring (-1 before it runs), and whether the writer waits
    /// in it: a shard that handed something over then rings it (MSG_RING),
    /// as shards ring each other (see `Server::needs_doorbell`).
    writer_fd: AtomicI32,
    writer_sleeping: AtomicBool,
    /// INFO's aof_current_size (files loaded plus bytes appended) and
    /// aof_base_size.
    current_size: AtomicU64,
    base_size: AtomicU64,
    /// The errno of the last failed write (0 after a write succeeds) and of
    /// the last failed fsync (0 after one succeeds): Redis's
    /// aof_last_write_status and aof_bio_fsync_status. Either one set turns
    /// aof_last_write_status to err and refuses writes with MISCONF.
    write_errno: AtomicI32,
    fsync_errno: AtomicI32,
    /// Bytes handed over and not yet written (see `AOF_PENDING_BYTES_LIMIT`).
    pending_bytes: AtomicU64,
    /// Shard turns that found `pending_bytes` past the limit.
    inbox_limit_hits: AtomicU64,
    /// aof_buffer_length: bytes merged and waiting for the write.
    buffer_length: AtomicU64,
    /// aof_pending_bio_fsync: an `everysec` fsync in flight.
    pending_fsync: AtomicBool,
    /// aof_delayed_fsync: writes that went ahead of an fsync pending for
    /// two seconds.
    delayed_fsync: AtomicU64,
    /// File switches asked by a rewrite (see `aof_rewrite`), in order.
    switches: Mutex<VecDeque<Switch>>,
    /// Bytes written to the incr file appends go to now
    /// (`aof_last_incr_size`).
    pub incr_size: AtomicU64,
    /// `appendfsync` as CONFIG SET leaves it (an `Fsync` as u8).
    fsync_policy: AtomicU8,
    /// `no-appendfsync-on-rewrite yes`: no fsync while a child runs.
    pub no_fsync_on_rewrite: AtomicBool,
    /// DEBUG AOF-FLUSH-SLEEP: microseconds the writer sleeps before each
    /// write (0: none).
    pub flush_sleep_us: AtomicU64,
    /// A one-shard server's writer, driven by the shard's own loop on its
    /// own ring (`inline_turn`, `inline_completion`) instead of a thread:
    /// no thread hop between the commands and their write and fsync.
    inline: Mutex<Option<Box<Writer>>>,
    inline_on: AtomicBool,
    /// The inline writer had nothing to do after its last turn (see
    /// `Writer::idle`) and no completion of its came since: its next turn
    /// waits for something handed over (`inline_due`).
    inline_idle: AtomicBool,
    /// Replication, the streams' other consumer: a hand-over gives it the
    /// same batch (see `replication::Master::push_batch`).
    pub repl_tap: std::sync::OnceLock<std::sync::Arc<crate::replication::Master>>,
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
        let inserts = state.stream.take_inserts();
        // (Replication leaves out SELECTs of its own: `feeder`.)
        let (start, bytes, cuts, marks) = state.stream.take();
        if state.stream.feeds_repl() {
            if let Some(repl) = self.repl_tap.get() {
                // A copy only when the AOF takes the bytes too.
                if state.stream.feeds_aof() {
                    repl.push_batch(state.id, start, bytes.clone(), cuts.clone(), inserts);
                } else {
                    repl.push_batch(state.id, start, bytes, cuts, inserts);
                    return self.seq.load(Ordering::Acquire);
                }
            }
        }
        if !state.stream.feeds_aof() {
            return self.seq.load(Ordering::Acquire);
        }
        self.pending_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let mut inbox = self.inbox.lock().unwrap();
        // Numbered under the lock: the inbox is in sequence order.
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        inbox.push(Batch { seq, shard: state.id, start, bytes, cuts, marks });
        self.inbox_batches.fetch_add(1, Ordering::SeqCst);
        seq
    }

    /// The writer's ring fd when it waits with batches in its inbox: the
    /// caller then queues a doorbell (MSG_RING) to it on its own ring.
    #[inline]
    pub fn writer_needs_doorbell(&self) -> Option<i32> {
        if self.inbox_batches.load(Ordering::SeqCst) > 0 && self.writer_sleeping.swap(false, Ordering::SeqCst) {
            Some(self.writer_fd.load(Ordering::Acquire))
        } else {
            None
        }
    }

    /// Past `AOF_PENDING_BYTES_LIMIT`: the caller holds its replies until
    /// what it handed over is written (counted once per call).
    #[inline]
    pub fn over_limit(&self) -> bool {
        let over = self.pending_bytes.load(Ordering::Relaxed) > AOF_PENDING_BYTES_LIMIT;
        if over {
            self.inbox_limit_hits.fetch_add(1, Ordering::Relaxed);
        }
        over
    }

    /// The errno writes are refused for (MISCONF), if the last write or
    /// fsync of the AOF failed (Redis's writeCommandsDeniedByDiskError).
    #[inline]
    pub fn write_error(&self) -> Option<i32> {
        let w = self.write_errno.load(Ordering::Relaxed);
        if w != 0 {
            return Some(w);
        }
        let f = self.fsync_errno.load(Ordering::Relaxed);
        (f != 0).then_some(f)
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
        if let Some(w) = self.inline.lock().unwrap().as_mut() {
            // The shard running this is the writer's: done here, blocking.
            w.finish_inline();
            return;
        }
        self.closing.store(true, Ordering::SeqCst);
        self.ring_writer();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.closed.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// DEBUG LOADAOF, every shard held (Redis's `flushAppendOnlyFile(1)`
    /// before it reloads): hands every stream over and returns once the
    /// writer has written it all to the incr file (bounded wait, as
    /// `flush_for_shutdown`). An inline writer's shard is this thread, which
    /// cannot wait in its ring: the rest is written here, blocking
    /// (`Writer::write_now`).
    pub fn flush_now(&self, shards: &mut crate::shard::hold::ShardSet) {
        if !self.running.load(Ordering::Acquire) {
            return;
        }
        let mut mark = self.seq.load(Ordering::Acquire);
        for i in 0..shards.len() {
            if shards.has(i) {
                mark = mark.max(self.hand_over(shards.get_mut(i)));
            }
        }
        if let Some(w) = self.inline.lock().unwrap().as_mut() {
            w.write_now();
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        // (`synced` may pass a write postponed behind an fsync: `written`.)
        while self.written.load(Ordering::SeqCst) < mark && Instant::now() < deadline {
            self.ring_writer();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Rings the writer's doorbell (MSG_RING) when it sleeps in its ring,
    /// from a thread with no ring of its own (SHUTDOWN, a rewrite's
    /// `switch_file`): the writer then sees `closing` or the switch.
    fn ring_writer(&self) {
        if self.writer_sleeping.swap(false, Ordering::SeqCst) {
            // A ring of this call's own, for one doorbell.
            if let Ok(mut ring) = io_uring::IoUring::new(2) {
                let fd = self.writer_fd.load(Ordering::Acquire);
                // SAFETY: the entry carries no pointer; it only names the
                // writer ring's fd.
                if unsafe { ring.submission().push(&crate::network::event_loop::doorbell_entry(fd)) }.is_ok() {
                    let _ = ring.submit_and_wait(0);
                }
            }
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
            if self.write_error().is_some() { "err" } else { "ok" },
            rw.last_cow_size
        );
        if rw.enabled {
            s.push_str(&format!(
                "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:{}\r\naof_buffer_length:{}\r\naof_pending_bio_fsync:{}\r\naof_delayed_fsync:{}\r\n",
                self.current_size.load(Ordering::Relaxed),
                self.base_size.load(Ordering::Relaxed),
                rw.scheduled as u8,
                self.buffer_length.load(Ordering::Relaxed),
                self.pending_fsync.load(Ordering::Relaxed) as u8,
                self.delayed_fsync.load(Ordering::Relaxed),
            ));
        }
        s
    }

    /// ringkv's own AOF line for INFO's `# Snapshot` section (Redis has
    /// none): how often shards held replies for the writer's limit.
    pub fn info_limit_fields(&self) -> String {
        format!("aof_inbox_limit_hits:{}\r\n", self.inbox_limit_hits.load(Ordering::Relaxed))
    }

    /// Sends appends handed over from now on to `to` (see `Switch`). With
    /// every shard held and their streams handed over just before, the
    /// switch lies at the same cut in every shard's stream.
    pub fn switch_file(&self, to: Option<std::fs::File>) {
        {
            let _inbox = self.inbox.lock().unwrap();
            let after_seq = self.seq.load(Ordering::Acquire);
            self.switches.lock().unwrap().push_back(Switch { after_seq, to });
            // Counted as an inbox item: the writer does not go to sleep
            // with it pending (see `Writer::wait`) and takes it with the
            // inbox.
            self.inbox_batches.fetch_add(1, Ordering::SeqCst);
        }
        self.ring_writer();
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

    /// Whether the writer runs in the (only) shard's loop (see `inline`).
    #[inline]
    pub fn inline_on(&self) -> bool {
        self.inline_on.load(Ordering::Relaxed)
    }

    /// The shard's turn of an inline writer, after its hand-over: takes
    /// what was handed over and starts its write (and fsync) by queueing
    /// the entries into `sqes` for the shard's ring. True while the
    /// writer has a timed duty (an `everysec` fsync due, a retry): the
    /// shard then sleeps at most `INLINE_TICK`.
    pub fn inline_turn(&self, sqes: &mut Vec<io_uring::squeue::Entry>) -> bool {
        let mut guard = self.inline.lock().unwrap();
        let Some(w) = guard.as_mut() else { return false };
        w.step(Instant::now());
        sqes.append(&mut w.sqes);
        self.inline_idle.store(w.idle(), Ordering::Relaxed);
        w.retry_at.is_some() || (w.fsync == Fsync::EverySec && w.unsynced.is_some())
    }

    /// Whether the shard's loop must give the inline writer its turn: it
    /// runs here, and has work in hand or something was handed over (a
    /// batch or a switch: both count in `inbox_batches`). An idle writer
    /// with an empty inbox has nothing to step (`appendonly no`: every loop
    /// turn), so its turn - three locks, a clock read and an atomic
    /// `fetch_max` - is skipped.
    #[inline]
    pub fn inline_due(&self) -> bool {
        self.inline_on() && (!self.inline_idle.load(Ordering::Relaxed) || self.inbox_batches.load(Ordering::SeqCst) > 0)
    }

    /// A completion of the inline writer's on the shard's ring (see
    /// `is_writer_completion`); doorbells it queues go into `sqes`.
    pub fn inline_completion(&self, user_data: u64, res: i32, sqes: &mut Vec<io_uring::squeue::Entry>) {
        let mut guard = self.inline.lock().unwrap();
        let Some(w) = guard.as_mut() else { return };
        w.on_completion(user_data, res, Instant::now());
        sqes.append(&mut w.sqes);
        self.inline_idle.store(false, Ordering::Relaxed);
    }

    /// The hand-over number up to which everything is durable.
    #[inline]
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    /// The hand-over number the writes started so far cover (see
    /// `started`).
    #[inline]
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
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

/// `strerror(errno)` as Redis prints it.
pub fn strerror(errno: i32) -> String {
    crate::persistence::aof::manifest::strerror(&std::io::Error::from_raw_os_error(errno))
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

/// A refusal to start in Redis's words: every line but the last logged as
/// a warning, the last returned (the caller logs it as the fatal line).
pub fn refusal(mut lines: Vec<String>) -> String {
    let last = lines.pop().unwrap_or_default();
    for l in lines {
        crate::warning!("{}", l);
    }
    last
}

/// Start-up with `appendonly yes`: loads the directory's files into
/// `states` (Redis's `loadAppendOnlyFiles`, with its log lines), creates a
/// base and an incr file when there are none, opens the incr file for
/// appends, persists the manifest, and turns every shard's stream on.
pub fn load_at_startup(states: &mut [Box<ShardState>], config: &Config, server: &crate::server::Server) -> Result<Opened, String> {
    let appendfilename = setting(config, "appendfilename", "appendonly.aof");
    let dir = Path::new(&config.dir).join(setting(config, "appenddirname", "appendonlydir"));
    // Redis's report of a bad manifest (the banner, the line, the reason).
    let manifest =
        aof::load_manifest(&dir, &appendfilename).map_err(|e| refusal(e.redis_log_lines().iter().map(|l| l.trim_end_matches('\n').to_string()).collect()))?;
    let mut manifest = manifest.unwrap_or_default();
    let appenddirname = setting(config, "appenddirname", "appendonlydir");
    if aof::needs_upgrade(Path::new(&config.dir), &appenddirname, &appendfilename, &manifest) {
        // A pre-7.0 appendonly.aof becomes the base of a new directory.
        let (upgraded, line) = aof::upgrade_old_style(Path::new(&config.dir), &appenddirname, &appendfilename).map_err(|e| e.to_string())?;
        crate::notice!("{}", line);
        manifest = upgraded;
    }
    // INFO's loading_total_bytes: all the files loaded, as Redis counts them.
    let total = crate::persistence::aof_reload::manifest_bytes(&dir, &manifest);
    server.loading_total_bytes.store(total, std::sync::atomic::Ordering::Relaxed);
    crate::persistence::rdb::LOAD_PROGRESS.admit_if_long(total);
    let start = Instant::now();
    // The replay notifies nobody: these states are the loader's own (only
    // their databases reach the shards), no client can have subscribed to
    // them, and a large AOF would fill `pending_publish` for nothing.
    for s in states.iter_mut() {
        s.config.notify_keyspace_events = 0;
    }
    let ptrs: Vec<*mut ShardState> = states.iter_mut().map(|b| &mut **b as *mut ShardState).collect();
    let mut set = crate::shard::hold::ShardSet::new(ptrs.len());
    for (i, p) in ptrs.iter().enumerate() {
        // SAFETY: start-up owns every state (no shard thread runs yet) and
        // the set lives only for this load.
        unsafe { set.set(i, *p) };
    }
    let status = replay_dir(&mut set, &dir, &manifest, config, server, &appendfilename);
    let (mut current_size, mut base_size) = (0, 0);
    match status {
        Err(e) => return Err(refusal(e.redis_log_lines())),
        Ok(DirStatus::Loaded(load)) => {
            current_size = load.total_size;
            base_size = load.base_size;
            crate::notice!("DB loaded from append only file: {:.3} seconds", start.elapsed().as_secs_f64());
        }
        Ok(DirStatus::NotExist | DirStatus::Empty) => {}
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("Can't open or create append-only dir {}: {}", dir.display(), e))?;
    if manifest.base.is_none() && manifest.incr.is_empty() {
        let preamble = setting(config, "aof-use-rdb-preamble", "yes") == "yes";
        let name = String::from_utf8_lossy(&manifest.new_base(&appendfilename, preamble).name).into_owned();
        let path = dir.join(&name);
        // A base that cannot be written (a full disk) refuses the start
        // with the lines of Redis's `rewriteAppendOnlyFile`.
        use crate::persistence::snapshot::SaveError;
        let strerror = crate::persistence::aof::manifest::strerror;
        let open_error = |e: &std::io::Error| format!("Opening the temp file for AOF rewrite in rewriteAppendOnlyFile(): {}", strerror(e));
        let write_error = |e: &std::io::Error| format!("Write error writing append only file on disk: {}", strerror(e));
        if preamble {
            crate::persistence::snapshot::write_dump(&ptrs, config, &path.to_string_lossy(), true, |_, _| {}).map_err(|e| match &e {
                SaveError::Open(e) => open_error(e),
                SaveError::Write(_, e) | SaveError::Rename(e) => write_error(e),
            })?;
        } else {
            // Nothing was loaded (no AOF): the base of an empty dataset.
            std::fs::File::create(&path).map_err(|e| open_error(&e))?;
        }
        crate::notice!("Creating AOF base file {} on server start", name);
    }
    let new_incr = manifest.incr.is_empty();
    let incr = String::from_utf8_lossy(&manifest.last_incr_or_new(&appendfilename).name).into_owned();
    let file = open_incr(&dir.join(&incr)).map_err(|e| format!("Can't open the append-only file {}: {}", incr, e))?;
    crate::notice!("{} AOF incr file {} on server start", if new_incr { "Creating" } else { "Opening" }, incr);
    aof::persist_manifest(&dir, &appendfilename, &manifest).map_err(|e| e.log_line)?;
    let timestamps = setting(config, "aof-timestamp-enabled", "no") == "yes";
    for s in states.iter_mut() {
        s.stream.set_on(true);
        s.stream.set_timestamps(timestamps);
    }
    Ok(Opened { dir, file, fsync: fsync_policy(config), current_size, base_size })
}

/// Replays the files of `manifest` in `dir` into the shards of `set` (all
/// of them reachable): keys of an RDB base go straight to their owning
/// shard, commands run through `exec::call` as Redis's fake AOF client
/// runs them. What the commands propagate is the caller's concern (the
/// streams are off at start-up; DEBUG LOADAOF turns them off meanwhile).
pub(crate) fn replay_dir(
    set: &mut crate::shard::hold::ShardSet,
    dir: &Path,
    manifest: &aof::Manifest,
    config: &Config,
    server: &crate::server::Server,
    appendfilename: &str,
) -> Result<DirStatus, aof::AofReadError> {
    let opts = ReadOptions {
        load_truncated: setting(config, "aof-load-truncated", "yes") == "yes",
        databases: config.databases,
        now_ms: crate::util::unix_ms(),
        appendfilename: appendfilename.to_string(),
        encodings: config.encodings,
    };
    let shards = set.len();
    for i in 0..shards {
        set.get_mut(i).set_loading(true);
    }
    let mut clock = crate::exec::Clock::new();
    let table = crate::commands::CommandTable::get();
    let delay = crate::persistence::snapshot::key_load_delay(config);
    let status = aof::load_dir(dir, manifest, &opts, |item| {
        let mut run = |c: aof::Command| -> Result<(), aof::Refusal> {
            let Some(mut id) = table.lookup(c.argv[0]) else {
                return Err(aof::Refusal::UnknownCommand(c.argv[0].to_vec()));
            };
            // A container's subcommand (FUNCTION LOAD of an AOF base).
            if table.is_container(id) && c.argv.len() >= 2 {
                if let Some(sub) = table.lookup_sub(table.specs[id].name, c.argv[1]) {
                    id = sub;
                }
            }
            // Redis's loader waits `key-load-delay` after each command too.
            crate::persistence::snapshot::debug_delay(delay);
            let mut out = Vec::new();
            let mut r = crate::protocol::Reply::new(&mut out, 2);
            let mut ctx = crate::commands::Ctx::new(set, server, 0, c.db, 2, crate::util::unix_ms(), None);
            crate::exec::call(&mut ctx, &mut clock, id, &c.argv, &mut r, &crate::exec::Caller::LOCAL, &mut Vec::new());
            Ok(())
        };
        match item {
            Item::Key { db, key, entry } => {
                crate::persistence::snapshot::debug_delay(delay);
                let s = crate::shard::slot::key_shard(&key, shards);
                set.get_mut(s).dbs[db].insert_key(crate::shard::key::Key::new(&key), entry);
                Ok(())
            }
            Item::Library(code) => Ok(crate::persistence::snapshot::load_libraries(&[code], false)?),
            Item::Command(c) => run(c),
            Item::Transaction(cs) => cs.into_iter().try_for_each(run),
        }
    });
    for i in 0..shards {
        set.get_mut(i).set_loading(false);
    }
    status
}

/// user_data of the writer's own operations, tagged in the top byte apart
/// from a shard's kinds (`network::event_loop`): on an inline writer's
/// shard ring they share one space. Anything else on the writer's own
/// ring is a doorbell.
const UD_WRITE: u64 = 0x40 << 56;
const UD_FSYNC: u64 = 0x41;

/// Whether a completion on a shard's ring is its inline writer's.
#[inline]
pub fn is_writer_completion(user_data: u64) -> bool {
    user_data == UD_WRITE || user_data >> 56 == UD_FSYNC
}

/// The longest an inline writer's shard sleeps while the writer has a
/// timed duty (`Sink::inline_turn`).
pub const INLINE_TICK: Duration = Duration::from_millis(100);

/// Redis waits this long for a pending `everysec` fsync before writing
/// anyway (and counting aof_delayed_fsync).
const FSYNC_DELAY_MAX: Duration = Duration::from_secs(2);

/// `always`: while the one fsync in flight runs, a batch that grows past
/// this many bytes is written (no fsync, not linked) instead of waiting in
/// `buf`: the page cache takes it, and the fsync that starts when the one
/// in flight ends covers it (see `Writer::fsyncs`). Below it the batch waits
/// and goes out with its fsync in one linked pair.
const EARLY_WRITE_BYTES: usize = 256 << 10;

/// user_data of an fsync: the tag in the top byte, the hand-over number it
/// makes durable below.
fn fsync_user_data(covers: u64) -> u64 {
    (UD_FSYNC << 56) | (covers & ((1 << 56) - 1))
}

/// A write on the ring: its bytes (kept alive until the completion), the
/// hand-over number it makes written.
struct WriteFlight {
    bytes: Vec<u8>,
    covers: u64,
    /// Written with RWF_DSYNC: its completion makes `covers` durable.
    ///
    /// Under `always` a group commit is one IORING_OP_WRITE with RWF_DSYNC
    /// (the write and the fdatasync of its range, in one io-wq work item),
    /// not a write and a linked IORING_OP_FSYNC. On a shard's ring (which
    /// runs with DEFER_TASKRUN) the link cost a round trip through the
    /// shard: the write's completion went back to it as task work, and only
    /// when the shard next entered the kernel was the fsync issued and
    /// handed to io-wq a second time (two io-wq work items and worker
    /// wake-ups per commit, the fsync's start delayed by whatever the shard
    /// was executing). The range-limited sync covers everything only while
    /// nothing written before is unsynced (`Writer::unsynced` none), which
    /// is when it is used; otherwise a write and a linked fdatasync of the
    /// whole file. (Every kernel with io_uring knows RWF_DSYNC, 4.7+, and
    /// every file system takes it: a buffered write then syncs through the
    /// file's own fsync.)
    durable: bool,
}

/// The writer thread's state (see `spawn_writer`).
struct Writer {
    server: std::sync::Arc<crate::server::Server>,
    /// The writer thread's own ring; none for an inline writer (its
    /// entries go to the shard's ring).
    ring: Option<io_uring::IoUring>,
    /// Entries queued for the ring by the last step.
    sqes: Vec<io_uring::squeue::Entry>,
    /// The incr file appends go to. None with the AOF off, or turned on
    /// and its first rewrite failed: appends are dropped until a rewrite's
    /// switch gives it one (see `Switch`).
    file: Option<std::fs::File>,
    /// This turn's policy: `appendfsync` as CONFIG SET leaves it
    /// (`Sink::fsync`), `no` while a child runs under
    /// `no-appendfsync-on-rewrite yes` (see `Writer::policy`).
    fsync: Fsync,
    /// The incr file's size as far as it is known good (Redis's
    /// aof_last_incr_size): where a short write is truncated back to.
    offset: u64,
    lanes: Vec<Lane>,
    /// The db the incr file (with `buf` after it) has selected last and
    /// the second it annotated last, for the merge to leave out a SELECT of
    /// the same db or an annotation of the same second (see `lanes`);
    /// unknown at the start of a file, as Redis's `aof_selected_db = -1`.
    selected_db: Selected,
    received: u64,
    /// Switches taken from the inbox and not done yet, in order; the
    /// batches taken after the first one's cut wait in `held` until it is
    /// done (see `Writer::try_switch`).
    switches: VecDeque<Switch>,
    held: VecDeque<Batch>,
    /// Merged bytes waiting for the write (Redis's aof_buf), and the
    /// hand-over number they complete.
    buf: Vec<u8>,
    buf_covers: u64,
    write: Option<WriteFlight>,
    /// The fsyncs on the ring: the hand-over number each makes durable,
    /// and when it started. At most one per file, under every policy
    /// (group commit, `appendfsync always`): while it runs the shards go on
    /// reading and executing (their replies held), and what they hand over
    /// meanwhile collects in `buf`; when it completes, the next write and
    /// its linked fsync start at once (the shard's turn right after the
    /// completion, or the writer thread's next step) and cover all of it.
    /// Overlapping fsyncs (up to 4, before) each covered only what had come
    /// since the previous one started: ~7 writes per fsync at -c 50 where
    /// redis-server, blocking in fdatasync, gets ~30. A batch past
    /// `EARLY_WRITE_BYTES` is written while the fsync runs, unlinked.
    /// A commit written with RWF_DSYNC (`WriteFlight::durable`) is in
    /// `write`, not here: it is as much the one commit in flight, since no
    /// write starts while another is on the ring.
    fsyncs: Vec<(u64, Instant)>,
    /// Written and not fsynced: up to which hand-over number.
    unsynced: Option<u64>,
    last_fsync: Instant,
    /// When a write first waited for a pending `everysec` fsync.
    postponed: Option<Instant>,
    /// After a failed write or fsync, no new try before this.
    retry_at: Option<Instant>,
    last_error_log: Option<Instant>,
}

/// The size of `file` (0 for none): where the writer's writes go next.
/// Opens (creating) an incr file for the writer. Not O_APPEND: every
/// write names its offset (`Writer::offset`), and a write still in flight
/// is written again at the same place by `write_now` and `finish_inline`;
/// with O_APPEND Linux ignores the offset of pwrite and of io_uring's
/// write, and those bytes were appended a second time (a DEBUG LOADAOF or
/// a shutdown racing a write duplicated commands in the file).
fn open_incr(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).write(true).truncate(false).open(path)
}

fn file_len(file: Option<&std::fs::File>) -> u64 {
    file.and_then(|f| f.metadata().ok()).map_or(0, |m| m.len())
}

impl Writer {
    /// Takes the inbox (batches and switches) and merges into `buf` what
    /// the cuts and the first pending switch allow.
    fn take_inbox(&mut self) {
        let (batches, switches) = {
            let mut inbox = self.server.aof.inbox.lock().unwrap();
            self.server.aof.inbox_batches.store(0, Ordering::SeqCst);
            // Under the inbox lock: a switch's batches are all in this
            // take or an earlier one.
            (std::mem::take(&mut *inbox), std::mem::take(&mut *self.server.aof.switches.lock().unwrap()))
        };
        self.switches.extend(switches);
        self.held.extend(batches);
        self.ingest_held();
    }

    /// Moves the held batches up to the first pending switch's cut (all of
    /// them when none is pending) into the lanes, and merges.
    fn ingest_held(&mut self) {
        let cut = self.switches.front().map_or(u64::MAX, |s| s.after_seq);
        let mut any = false;
        while self.held.front().is_some_and(|b| b.seq <= cut) {
            let Some(b) = self.held.pop_front() else { break };
            any = true;
            self.received = b.seq;
            self.lanes[b.shard].ingest(b.seq, b.start, b.bytes, b.cuts, Vec::new(), b.marks);
        }
        if !any {
            return;
        }
        merge(&mut self.lanes, &mut self.buf, &mut self.selected_db);
        // What the merge left out will not be written: it is no longer
        // pending (`flush_now` waits for none, `over_limit` counts it).
        let left_out = std::mem::take(&mut self.selected_db.left_out);
        if left_out > 0 {
            self.server.aof.pending_bytes.fetch_sub(left_out, Ordering::Relaxed);
        }
        // Every batch numbered below the first one not fully merged is in
        // `buf` or written before it.
        self.buf_covers = merged_through(&mut self.lanes, self.received);
        self.server.aof.buffer_length.store(self.buf.len() as u64, Ordering::Relaxed);
    }

    /// The fsync policy of this turn: `appendfsync` (CONFIG SET acts at
    /// once), but no fsync while a child runs under
    /// `no-appendfsync-on-rewrite yes` (Redis: any child process).
    fn policy(&self) -> Fsync {
        let aof = &self.server.aof;
        if aof.no_fsync_on_rewrite.load(Ordering::Relaxed) && self.server.persistence.snapshot_active.load(Ordering::Relaxed) {
            Fsync::No
        } else {
            aof.fsync()
        }
    }

    /// Drops `buf` (appends that go nowhere) and publishes it as done, so
    /// that no reply waits for it.
    fn drop_buf(&mut self) {
        // The file lacks what `buf` selected and annotated.
        self.selected_db.forget();
        if !self.buf.is_empty() {
            self.server.aof.pending_bytes.fetch_sub(self.buf.len() as u64, Ordering::Relaxed);
            self.buf.clear();
            self.server.aof.buffer_length.store(0, Ordering::Relaxed);
        }
        let covers = self.buf_covers;
        self.publish(covers);
    }

    /// Does the first pending switch once nothing is in flight and
    /// everything before its cut is written and fsynced to the file before
    /// it (`start_io` fsyncs whatever the policy while a switch waits, as
    /// Redis fsyncs the old incr file when it closes it). That file is
    /// closed and appends go to the switch's (from its length); the
    /// batches held for the cut are merged. With the AOF being turned off
    /// (a switch to none) while the old file fails, what it could not take
    /// is dropped, as Redis's stopAppendOnly drops its buffer. True when
    /// it switched.
    fn try_switch(&mut self) -> bool {
        let Some(next) = self.switches.front() else { return false };
        if self.write.is_some() || !self.fsyncs.is_empty() {
            return false;
        }
        let aof = &self.server.aof;
        if self.file.is_some() && (!self.buf.is_empty() || self.unsynced.is_some()) {
            if next.to.is_some() || aof.write_error().is_none() {
                return false;
            }
            crate::warning!("The AOF is turned off with a write or fsync of it failing: the last writes are not in it.");
        }
        let Some(switch) = self.switches.pop_front() else { return false };
        // Nothing is left before the cut but what goes nowhere.
        self.drop_buf();
        // Set only when given up above: the failing file is gone.
        let aof = &self.server.aof;
        crate::exec::gates::store_i32(&aof.write_errno, 0, Ordering::Relaxed, crate::exec::gates::Reason::AofWrite);
        crate::exec::gates::store_i32(&aof.fsync_errno, 0, Ordering::Relaxed, crate::exec::gates::Reason::AofFsync);
        self.file = switch.to;
        // A new incr file starts with a SELECT (and its first second's
        // annotation).
        self.selected_db.forget();
        self.offset = file_len(self.file.as_ref());
        self.server.aof.incr_size.store(self.offset, Ordering::Relaxed);
        self.unsynced = None;
        self.postponed = None;
        self.retry_at = None;
        self.last_fsync = Instant::now();
        self.ingest_held();
        true
    }

    /// Queues an entry for the ring (see `submit_own`, `Sink::inline_turn`).
    /// A write's buffer lives in `self.write` until its completion is
    /// handled (the writer itself lives until the process ends).
    fn push(&mut self, e: io_uring::squeue::Entry) {
        self.sqes.push(e);
    }

    /// The writer thread: moves the queued entries into its ring and
    /// submits them.
    fn submit_own(&mut self) {
        let Some(ring) = self.ring.as_mut() else { return };
        for e in self.sqes.drain(..) {
            // SAFETY: see `push`: a write's buffer outlives its completion;
            // fsyncs and doorbells carry no pointer.
            while unsafe { ring.submission().push(&e) }.is_err() {
                let _ = ring.submit();
            }
        }
        let _ = ring.submit();
    }

    /// One step: takes the inbox, does the switches due, and starts what
    /// the policy asks.
    /// Nothing to step: nothing held, merged, in flight, unsynced or to
    /// retry. Only a hand-over (a batch or a switch) gives it work again.
    fn idle(&self) -> bool {
        self.held.is_empty()
            && self.switches.is_empty()
            && self.buf.is_empty()
            && self.write.is_none()
            && self.fsyncs.is_empty()
            && self.unsynced.is_none()
            && self.postponed.is_none()
            && self.retry_at.is_none()
    }

    fn step(&mut self, now: Instant) {
        self.take_inbox();
        while self.try_switch() {}
        self.fsync = self.policy();
        self.start_io(now);
    }

    /// Starts a write of `buf` (with a linked fsync under `always`), or an
    /// `everysec` fsync (any policy's while a switch waits for it), when
    /// nothing stops it. With no file, `buf` is dropped.
    fn start_io(&mut self, now: Instant) {
        use io_uring::{opcode, squeue, types};
        let Some(file) = self.file.as_ref() else {
            self.drop_buf();
            return;
        };
        if self.retry_at.is_some_and(|t| now < t) {
            return;
        }
        let fd = types::Fd(std::os::fd::AsRawFd::as_raw_fd(file));
        if self.write.is_none() && !self.buf.is_empty() {
            let mut go = true;
            // Under `always` with the fsync in flight: a large batch is
            // written now, unlinked; its fsync starts after this one.
            let mut early = false;
            if self.fsync == Fsync::Always {
                go = self.fsyncs.is_empty() || self.buf.len() >= EARLY_WRITE_BYTES;
                early = !self.fsyncs.is_empty();
            } else if !self.fsyncs.is_empty() {
                // As Redis: under everysec a write waits up to two seconds
                // for a pending fsync, then goes ahead and is counted.
                let since = *self.postponed.get_or_insert(now);
                go = now.duration_since(since) >= FSYNC_DELAY_MAX;
                // Redis sends the replies of a postponed write (its
                // beforeSleep goes on to handleClientsWithPendingWrites):
                // so do the shards, which wait for the write otherwise,
                // unless past the limit, where they wait for the disk.
                if !go && self.server.aof.pending_bytes.load(Ordering::Relaxed) <= AOF_PENDING_BYTES_LIMIT {
                    let covers = self.buf_covers;
                    self.release(covers);
                }
                if go {
                    self.server.aof.delayed_fsync.fetch_add(1, Ordering::Relaxed);
                    crate::notice!("Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis.");
                }
            }
            if go {
                // DEBUG AOF-FLUSH-SLEEP: Redis's flushAppendOnlyFile sleeps
                // before it writes a non-empty buffer (tests only).
                let sleep_us = self.server.aof.flush_sleep_us.load(Ordering::Relaxed);
                if sleep_us > 0 {
                    std::thread::sleep(Duration::from_micros(sleep_us));
                }
                self.postponed = None;
                let bytes = std::mem::take(&mut self.buf);
                self.server.aof.buffer_length.store(0, Ordering::Relaxed);
                // `always` with everything before durable: one write with
                // RWF_DSYNC (see `WriteFlight::durable`), else a write and
                // a linked fdatasync of the whole file.
                let durable = self.fsync == Fsync::Always && !early && self.unsynced.is_none();
                let linked_fsync = self.fsync == Fsync::Always && !early && !durable;
                if !early {
                    // An early write is not in the fsync in flight.
                    self.server.aof.started.fetch_max(self.buf_covers, Ordering::SeqCst);
                }
                if self.ring.is_some() && self.fsync != Fsync::Always {
                    // The writer thread's plain write (everysec, no): a
                    // pwrite here, not an IORING_OP_WRITE. A buffered ext4
                    // write cannot complete without blocking, so the ring
                    // punts it to an io-wq worker and the writer sleeps
                    // until that worker's completion: two more thread
                    // switches per write, while the shards' replies wait
                    // for it (aofts18's gate). Nothing else is on the ring
                    // meanwhile (one write at a time; an everysec fsync
                    // holds the write back, above), and no shard waits on
                    // this thread but for the write itself. `always` keeps
                    // the ring: its write carries RWF_DSYNC or a linked
                    // fsync. (perf/RESULTS.md, "aofshards19".)
                    // (A write starts only with a file.)
                    let written = self.file.as_ref().map_or(Ok(0), |f| std::os::unix::fs::FileExt::write_at(f, &bytes, self.offset));
                    let res = match written {
                        Ok(n) => n as i32,
                        Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
                    };
                    self.write = Some(WriteFlight { bytes, covers: self.buf_covers, durable });
                    self.on_write(res, now);
                    // On to the fsync, if one is due, as Redis's
                    // flushAppendOnlyFile after its write: returning here,
                    // a writer that found `buf` full at every step (a
                    // steady load) never got to it (0-5 fsyncs in 7-10 s
                    // runs of perf/aof.sh -P 1).
                } else {
                    let mut e = opcode::Write::new(fd, bytes.as_ptr(), bytes.len() as u32)
                        .offset(self.offset)
                        .rw_flags(if durable { libc::RWF_DSYNC } else { 0 })
                        .build()
                        .user_data(UD_WRITE);
                    if linked_fsync {
                        e = e.flags(squeue::Flags::IO_LINK);
                    }
                    self.write = Some(WriteFlight { bytes, covers: self.buf_covers, durable });
                    self.push(e);
                    if linked_fsync {
                        self.fsyncs.push((self.buf_covers, now));
                        let f = opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(fsync_user_data(self.buf_covers));
                        self.push(f);
                    }
                    return;
                }
            }
        }
        if self.write.is_none() && self.fsyncs.is_empty() {
            if let Some(covers) = self.unsynced {
                let due = !self.switches.is_empty()
                    || match self.fsync {
                        Fsync::Always => true,
                        Fsync::EverySec => now.duration_since(self.last_fsync) >= Duration::from_secs(1),
                        Fsync::No => false,
                    };
                if due {
                    self.server.aof.started.fetch_max(covers, Ordering::SeqCst);
                    self.fsyncs.push((covers, now));
                    self.server.aof.pending_fsync.store(self.fsync == Fsync::EverySec, Ordering::Relaxed);
                    let f = opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(fsync_user_data(covers));
                    self.push(f);
                }
            }
        }
        if self.write.is_none() && self.fsyncs.is_empty() && self.unsynced.is_none() && self.buf.is_empty() {
            // Batches that merged to nothing (a hop's cut with an empty
            // unit): everything they cover is as durable as what came
            // before them, which is all synced.
            let covers = self.buf_covers;
            self.publish(covers);
        }
    }

    fn log_error(&mut self, now: Instant, line: String) {
        if self.last_error_log.is_none_or(|t| now.duration_since(t).as_secs() > WRITE_ERROR_LOG_SECS) {
            self.last_error_log = Some(now);
            crate::warning!("{}", line);
        }
    }

    /// A write completed with `res` (bytes written or -errno).
    fn on_write(&mut self, res: i32, now: Instant) {
        let Some(mut w) = self.write.take() else { return };
        let server = self.server.clone();
        let aof = &server.aof;
        let expected = w.bytes.len();
        if res >= 0 && res as usize == expected {
            self.offset += expected as u64;
            aof.current_size.fetch_add(expected as u64, Ordering::Relaxed);
            aof.incr_size.fetch_add(expected as u64, Ordering::Relaxed);
            aof.pending_bytes.fetch_sub(expected as u64, Ordering::Relaxed);
            let was = aof.write_errno.swap(0, Ordering::Relaxed);
            crate::exec::gates::note(crate::exec::gates::Reason::AofWrite, was != 0, false);
            if was != 0 {
                crate::warning!("AOF write error looks solved, Redis can write again.");
            }
            self.retry_at = None;
            if w.durable {
                crate::exec::gates::store_i32(&aof.fsync_errno, 0, Ordering::Relaxed, crate::exec::gates::Reason::AofFsync);
                self.last_fsync = now;
                self.publish(w.covers);
                return;
            }
            self.unsynced = Some(w.covers);
            if self.fsync != Fsync::Always {
                self.publish(w.covers);
            }
            return;
        }
        let errno = if res < 0 {
            self.log_error(now, format!("Error writing to the AOF file: {}", strerror(-res)));
            -res
        } else {
            let n = res as usize;
            self.log_error(now, format!("Short write while writing to the AOF file: (nwritten={}, expected={})", n, expected));
            // As Redis: cut the partial write off, so the file ends at a
            // whole command; when that fails keep it and write the rest.
            // (A write is only in flight with a file.)
            let cut = self.file.as_ref().map_or(Ok(()), |f| f.set_len(self.offset));
            if let Err(e) = cut {
                self.log_error(
                    now,
                    format!(
                        "Could not remove short write from the append-only file.  Redis may refuse to load the AOF the next time it starts.  ftruncate: {}",
                        crate::persistence::aof::manifest::strerror(&e)
                    ),
                );
                self.offset += n as u64;
                aof.current_size.fetch_add(n as u64, Ordering::Relaxed);
                aof.incr_size.fetch_add(n as u64, Ordering::Relaxed);
                aof.pending_bytes.fetch_sub(n as u64, Ordering::Relaxed);
                w.bytes.drain(..n);
            }
            libc::ENOSPC
        };
        crate::exec::gates::store_i32(&aof.write_errno, errno, Ordering::Relaxed, crate::exec::gates::Reason::AofWrite);
        // The bytes go back in front of what came since, for the next try.
        w.bytes.extend_from_slice(&self.buf);
        self.buf = w.bytes;
        aof.buffer_length.store(self.buf.len() as u64, Ordering::Relaxed);
        self.retry_at = Some(now + Duration::from_secs(1));
        // As Redis under everysec and no (the bytes stay in its aof_buf,
        // its replies go, later writes get MISCONF): the replies waiting
        // for this write go, unless past the limit; under `always` they
        // wait for the retry's fsync.
        if self.fsync != Fsync::Always && aof.pending_bytes.load(Ordering::Relaxed) <= AOF_PENDING_BYTES_LIMIT {
            let covers = self.buf_covers;
            self.release(covers);
        }
    }

    /// An fsync completed with `res` (0 or -errno).
    fn on_fsync(&mut self, user_data: u64, res: i32, now: Instant) {
        let covers = user_data & ((1 << 56) - 1);
        let Some(i) = self.fsyncs.iter().position(|&(c, _)| c == covers) else { return };
        self.fsyncs.swap_remove(i);
        let server = self.server.clone();
        let aof = &server.aof;
        aof.pending_fsync.store(false, Ordering::Relaxed);
        if res == -libc::ECANCELED {
            // The linked write failed or was short: it is retried, and its
            // fsync with it.
            return;
        }
        if res < 0 {
            // Redis exits here under `always`; ringkv has not sent the
            // replies yet, so it keeps them, refuses writes (MISCONF) and
            // tries again each second, as Redis's bio does for `everysec`.
            crate::exec::gates::store_i32(&aof.fsync_errno, -res, Ordering::Relaxed, crate::exec::gates::Reason::AofFsync);
            self.log_error(now, format!("Fail to fsync the AOF file: {}", strerror(-res)));
            self.retry_at = Some(now + Duration::from_secs(1));
            if self.unsynced.is_none() {
                self.unsynced = Some(covers);
            }
            return;
        }
        crate::exec::gates::store_i32(&aof.fsync_errno, 0, Ordering::Relaxed, crate::exec::gates::Reason::AofFsync);
        self.last_fsync = now;
        // What was written after the fsync started may not be in it.
        if self.unsynced.is_some_and(|u| u <= covers) {
            self.unsynced = None;
        }
        // Whatever the policy now (CONFIG SET may have changed it while
        // the fsync ran): what it covers is durable, so replies waiting
        // for it may go.
        self.publish(covers);
    }

    /// Publishes `synced` and rings the shards asleep with replies waiting.
    fn publish(&mut self, covers: u64) {
        self.server.aof.written.fetch_max(covers, Ordering::SeqCst);
        self.release(covers);
    }

    /// Lets the replies gated at or below `covers` go (see `Sink`), ringing
    /// the shards that sleep.
    fn release(&mut self, covers: u64) {
        let server = &self.server;
        server.aof.started.fetch_max(covers, Ordering::SeqCst);
        if server.aof.synced.fetch_max(covers, Ordering::SeqCst) >= covers {
            return;
        }
        for t in 0..server.shard_count {
            let fd = server.ring_fds[t].load(Ordering::Acquire);
            if fd >= 0 && server.needs_doorbell(t) {
                self.sqes.push(crate::network::event_loop::doorbell_entry(fd));
            }
        }
    }

    /// Writes `buf` to the file at `offset` and fsyncs it, blocking (none:
    /// `buf` dropped). For `finish` only.
    fn write_and_sync_blocking(&mut self) {
        use std::os::unix::fs::FileExt;
        if let Some(file) = self.file.as_ref() {
            if !self.buf.is_empty() {
                // At `offset`: a switched-to file is not opened for appends.
                match file.write_all_at(&self.buf, self.offset) {
                    Ok(()) => {
                        let n = self.buf.len() as u64;
                        self.offset += n;
                        self.server.aof.current_size.fetch_add(n, Ordering::Relaxed);
                        self.server.aof.incr_size.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => crate::warning!("Error writing to the AOF file: {}", crate::persistence::aof::manifest::strerror(&e)),
                }
            }
            if let Err(e) = file.sync_data() {
                crate::warning!("Can't persist the AOF: fsync: {}", crate::persistence::aof::manifest::strerror(&e));
            }
        }
        self.buf.clear();
    }

    /// `Sink::flush_now` of an inline writer, on its shard's thread: what
    /// the inbox holds is merged and written at once, blocking, and
    /// fsynced. With no write on the ring that is the writer's own write
    /// (`buf` emptied, the offset moved on, published). With one on the
    /// ring, its bytes and `buf` are written ahead at its offset and `buf`
    /// is kept: the ring's copy and the next write put the same bytes at
    /// the same place again, so the file holds everything now and later.
    fn write_now(&mut self) {
        use std::os::unix::fs::FileExt;
        self.take_inbox();
        if self.file.is_none() {
            return self.drop_buf();
        }
        if self.write.is_none() {
            let (n, covers) = (self.buf.len() as u64, self.buf_covers);
            self.write_and_sync_blocking();
            self.server.aof.pending_bytes.fetch_sub(n, Ordering::Relaxed);
            self.server.aof.buffer_length.store(0, Ordering::Relaxed);
            self.unsynced = None;
            self.publish(covers);
            return;
        }
        let mut ahead = self.write.as_ref().map(|w| w.bytes.clone()).unwrap_or_default();
        ahead.extend_from_slice(&self.buf);
        if let Some(file) = self.file.as_ref() {
            if let Err(e) = file.write_all_at(&ahead, self.offset).and_then(|_| file.sync_data()) {
                crate::warning!("Error writing to the AOF file: {}", crate::persistence::aof::manifest::strerror(&e));
            }
        }
    }

    /// Shutdown: every shard is held and handed its stream over; what is
    /// left is written and fsynced here, blocking (nothing waits on it but
    /// the shutdown), switches still pending done in order.
    fn finish(&mut self) {
        while self.write.is_some() || !self.fsyncs.is_empty() {
            self.submit_own();
            if let Some(ring) = self.ring.as_mut() {
                let _ = ring.submit_and_wait(1);
            }
            self.reap(Instant::now());
        }
        self.finish_rest();
    }

    /// Shutdown of an inline writer, on its shard's thread (which cannot
    /// wait in its ring here): a write still in flight goes back in front
    /// of `buf` and is written again at its offset, blocking (the same
    /// bytes at the same place, whenever the ring's copy lands), then the
    /// rest as `finish`.
    fn finish_inline(&mut self) {
        if let Some(mut w) = self.write.take() {
            w.bytes.extend_from_slice(&self.buf);
            self.buf = w.bytes;
        }
        self.finish_rest();
    }

    fn finish_rest(&mut self) {
        self.take_inbox();
        while let Some(switch) = self.switches.pop_front() {
            self.write_and_sync_blocking();
            self.file = switch.to;
            self.offset = file_len(self.file.as_ref());
            self.server.aof.incr_size.store(self.offset, Ordering::Relaxed);
            self.ingest_held();
        }
        self.write_and_sync_blocking();
        self.server.aof.closed.store(true, Ordering::Release);
    }

    fn reap(&mut self, now: Instant) {
        let Some(ring) = self.ring.as_mut() else { return };
        let done: Vec<(u64, i32)> = ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (ud, res) in done {
            self.on_completion(ud, res, now);
        }
        self.submit_own();
    }

    fn on_completion(&mut self, ud: u64, res: i32, now: Instant) {
        match ud {
            UD_WRITE => self.on_write(res, now),
            ud if ud >> 56 == UD_FSYNC => self.on_fsync(ud, res, now),
            // Doorbells: they only end the wait.
            _ => {}
        }
    }

    /// Waits for a completion or a doorbell, at most `limit`.
    fn wait(&mut self, limit: Duration) {
        let aof = &self.server.aof;
        let idle = self.write.is_none() && self.fsyncs.is_empty();
        if idle {
            // Announce sleep, then look again (see `Sink::writer_needs_doorbell`;
            // a switch counts in `inbox_batches` too).
            aof.writer_sleeping.store(true, Ordering::SeqCst);
            if aof.inbox_batches.load(Ordering::SeqCst) > 0 || aof.closing.load(Ordering::SeqCst) {
                aof.writer_sleeping.store(false, Ordering::SeqCst);
                return;
            }
        }
        let ts = io_uring::types::Timespec::from(limit);
        let args = io_uring::types::SubmitArgs::new().timespec(&ts);
        if let Some(ring) = self.ring.as_mut() {
            let _ = ring.submitter().submit_with_args(1, &args);
        }
        aof.writer_sleeping.store(false, Ordering::SeqCst);
    }
}

/// Runs the writer until the process ends: merges what shards hand over
/// into the incr file and fsyncs by policy, on a ring of its own (one
/// shard: on the shard's ring, driven by its loop, see `Sink::inline_turn`)
/// (IORING_OP_WRITE; under `always` with RWF_DSYNC, or followed by a linked
/// IORING_OP_FSYNC with DATASYNC, see `WriteFlight::durable`; the thread's
/// writes under `everysec` and `no` are a plain pwrite, see `start_io`,
/// their fsyncs on the ring). One write
/// is in flight at a time; whatever shards hand over meanwhile waits in
/// `buf` and goes out in the next one, so under `always` one fsync covers
/// everything that arrived while the previous one ran (group commit). The thread sleeps in its ring: the completions
/// and the doorbells (shards that handed something over, a rewrite's
/// `Sink::switch_file`, shutdown) all end the wait.
pub fn spawn_writer(server: std::sync::Arc<crate::server::Server>, opened: Opened) -> std::io::Result<()> {
    let Opened { dir: _dir, file, fsync, current_size, base_size } = opened;
    start_writer(server, Some(file), fsync, current_size, base_size)
}

/// The writer thread, appending to `file` (none: appends dropped until a
/// rewrite's switch gives it one).
fn start_writer(
    server: std::sync::Arc<crate::server::Server>,
    file: Option<std::fs::File>,
    fsync: Fsync,
    current_size: u64,
    base_size: u64,
) -> std::io::Result<()> {
    // One shard: the shard's loop drives the writer on its own ring.
    let inline = server.shard_count == 1;
    let ring = if inline { None } else { Some(io_uring::IoUring::new(64)?) };
    let offset = file_len(file.as_ref());
    // Set before the thread runs: start-up reads them right after.
    server.aof.current_size.store(current_size, Ordering::Relaxed);
    server.aof.base_size.store(base_size, Ordering::Relaxed);
    server.aof.incr_size.store(offset, Ordering::Relaxed);
    server.aof.set_fsync(fsync);
    if let Some(ring) = ring.as_ref() {
        server.aof.writer_fd.store(std::os::fd::AsRawFd::as_raw_fd(ring), Ordering::Release);
    }
    let lanes = (0..server.shard_count).map(|_| Lane::default()).collect();
    let mut w = Box::new(Writer {
        server: server.clone(),
        ring,
        sqes: Vec::new(),
        file,
        fsync,
        offset,
        lanes,
        selected_db: Selected::default(),
        received: 0,
        switches: VecDeque::new(),
        held: VecDeque::new(),
        buf: Vec::new(),
        buf_covers: 0,
        write: None,
        fsyncs: Vec::new(),
        unsynced: None,
        last_fsync: Instant::now(),
        postponed: None,
        retry_at: None,
        last_error_log: None,
    });
    if inline {
        *server.aof.inline.lock().unwrap() = Some(w);
        server.aof.inline_on.store(true, Ordering::Release);
        server.aof.running.store(true, Ordering::Release);
        return Ok(());
    }
    server.aof.running.store(true, Ordering::Release);
    std::thread::Builder::new().name("ringkv-aof".into()).spawn(move || loop {
        if w.server.aof.closing.load(Ordering::SeqCst) {
            w.finish();
            return;
        }
        let now = Instant::now();
        w.step(now);
        w.submit_own();
        let limit = match w.retry_at {
            Some(t) => t.saturating_duration_since(now).max(Duration::from_millis(1)),
            None if w.fsync == Fsync::EverySec && w.unsynced.is_some() => Duration::from_millis(100),
            None => Duration::from_millis(500),
        };
        w.wait(limit);
        w.reap(Instant::now());
    })?;
    Ok(())
}

/// Starts the writer with no file (`appendonly no` at start): CONFIG SET
/// appendonly yes later gives it one through the rewrite's switch.
pub fn spawn_idle_writer(server: &std::sync::Arc<crate::server::Server>, config: &Config) -> std::io::Result<()> {
    start_writer(server.clone(), None, fsync_policy(config), 0, 0)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    /// The same bytes written again at their offset (a write in flight and
    /// its blocking copy) leave one copy, and an existing file keeps what
    /// it holds: the writer's offsets are the file's.
    #[test]
    fn an_incr_file_takes_writes_at_their_offset() {
        let dir = std::env::temp_dir().join(format!("ringkv-open-incr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("appendonly.aof.1.incr.aof");
        std::fs::write(&path, b"*1\r\n$4\r\nPING\r\n").unwrap();
        let f = super::open_incr(&path).unwrap();
        let at = super::file_len(Some(&f));
        assert_eq!(at, 14);
        let cmd = b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n";
        f.write_all_at(cmd, at).unwrap();
        f.write_all_at(cmd, at).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len() as u64, at + cmd.len() as u64);
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }
}
