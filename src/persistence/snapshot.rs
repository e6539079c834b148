//! Snapshots. BGSAVE runs with every shard held (parked between commands),
//! so one thread forks a child that sees a consistent point-in-time image;
//! then every shard resumes. The child serialises one section per shard in
//! parallel threads, writes the file through `DirectWriter`, reports progress
//! and copy-on-write over a pipe, and exits with `_exit`. The parent reads
//! the pipe and reaps the child with WNOHANG from shard 0's cron, and at once
//! when the child exits: a shard's ring polls the child's pidfd (see
//! `Persistence::exit_watch`). No shard ever blocks on it.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::rdb::{self, Encoder};
use super::writer::{chunk_buffer, rename_durably, reset_chunk, DirectWriter, ALIGN};
use crate::config::Config;
use crate::shard::hold::ShardSet;
use crate::shard::ShardState;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChildKind {
    Rdb,
    /// BGREWRITEAOF (see `aof_rewrite`).
    Aof,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SaveStatus {
    Ok,
    Err,
}

pub struct Child {
    pub pid: i32,
    pub kind: ChildKind,
    pub start_ms: i64,
    pub pipe: RawFd,
    pub keys_total: u64,
    pub keys_done: u64,
    pub bytes_done: u64,
    pub cow_current: u64,
    pub cow_peak: u64,
    pub cow_sum: u64,
    pub cow_samples: u64,
    pub cow_updated_ms: i64,
    pub cancelled: bool,
    /// Forked for replicas waiting for a full sync (`replication`): they
    /// get the dump when it is done.
    pub for_replication: bool,
    /// The dirty counter when the child forked (becomes the saved baseline on success).
    pub dirty_at_fork: u64,
    partial: Vec<u8>,
    /// A pidfd of the child (readable once it has exited), or -1.
    pub pidfd: RawFd,
}

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptors once; a poll armed on the pidfd
        // keeps its own reference to the file.
        unsafe {
            libc::close(self.pipe);
            if self.pidfd >= 0 {
                libc::close(self.pidfd);
            }
        }
    }
}

/// A pidfd for our child `pid` (Linux 5.3+), or -1.
fn pidfd_open(pid: i32) -> RawFd {
    // SAFETY: pidfd_open takes plain integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        -1
    } else {
        fd as RawFd
    }
}

/// Everything INFO persistence / stats report, and the histograms.
pub struct PersistState {
    pub child: Option<Child>,
    pub scheduled: bool,
    pub last_save_unix: i64,
    pub last_bgsave_status: SaveStatus,
    pub last_bgsave_time_sec: i64,
    pub last_bgsave_try_ms: i64,
    pub rdb_saves: u64,
    pub last_cow_bytes: u64,
    pub dirty_at_last_save: u64,
    pub latest_fork_usec: u64,
    /// GB of used memory forked per second at the last fork (Redis's
    /// `stat_fork_rate`, which LATENCY DOCTOR grades).
    pub fork_rate_gb_per_sec: f64,
    pub total_forks: u64,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    pub fork_usec: Histogram<u64>,
    pub pause_usec: Histogram<u64>,
    pub barrier_usec: Histogram<u64>,
    pub cow_bytes: Histogram<u64>,
}

pub struct Persistence {
    pub state: Mutex<PersistState>,
    /// Writes refused with MISCONF (stop-writes-on-bgsave-error after a failed save).
    pub writes_blocked: AtomicBool,
    /// A snapshot child is running (shards record command latency apart
    /// meanwhile). Set through `set_snapshot_active`.
    pub snapshot_active: AtomicBool,
    /// Each shard's dirty counter, published by its cron.
    pub dirty: Vec<AtomicU64>,
    /// The pidfd of a child just forked, for the first shard loop that sees
    /// it to poll on its ring (then -1): the child is reaped as it exits,
    /// not up to a cron period (100 ms at hz 10) later.
    pub exit_watch: AtomicI32,
}

const MSG_PROGRESS: u64 = 1;
const MSG_DONE: u64 = 2;
const MSG_FAILED: u64 = 3;

fn histogram(high: u64) -> Histogram<u64> {
    Histogram::new_with_bounds(1, high, 3).expect("histogram bounds")
}

impl Persistence {
    /// A snapshot (or AOF rewrite) child started or ended: besides the flag,
    /// the member tables of sets, hashes and sorted sets start no shrink
    /// meanwhile (`types::open_table`, Redis's `updateDictResizePolicy`).
    pub fn set_snapshot_active(&self, on: bool) {
        self.snapshot_active.store(on, Ordering::Relaxed);
        crate::types::open_table::set_resize_allowed(!on);
    }

    pub fn new(shards: usize) -> Persistence {
        Persistence {
            state: Mutex::new(PersistState {
                child: None,
                scheduled: false,
                last_save_unix: crate::util::unix_ms() / 1000,
                last_bgsave_status: SaveStatus::Ok,
                last_bgsave_time_sec: -1,
                last_bgsave_try_ms: 0,
                rdb_saves: 0,
                last_cow_bytes: 0,
                dirty_at_last_save: 0,
                latest_fork_usec: 0,
                fork_rate_gb_per_sec: 0.0,
                total_forks: 0,
                last_load_keys_loaded: 0,
                last_load_keys_expired: 0,
                fork_usec: histogram(60_000_000),
                pause_usec: histogram(60_000_000),
                barrier_usec: histogram(60_000_000),
                cow_bytes: histogram(1 << 44),
            }),
            writes_blocked: AtomicBool::new(false),
            snapshot_active: AtomicBool::new(false),
            dirty: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            exit_watch: AtomicI32::new(-1),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, PersistState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the running child if it is of `kind` (to kill and reap it).
    pub fn take_child_of(&self, kind: ChildKind) -> Option<Child> {
        let mut st = self.lock();
        if st.child.as_ref().is_some_and(|c| c.kind == kind) {
            st.child.take()
        } else {
            None
        }
    }

    pub fn dirty_total(&self) -> u64 {
        self.dirty.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }

    /// Recomputes the MISCONF gate from the config and the last status.
    pub fn update_write_gate(&self, config: &Config) {
        let st = self.lock();
        let blocked = config.stop_writes_on_bgsave_error && !config.save.is_empty() && st.last_bgsave_status == SaveStatus::Err;
        crate::exec::gates::store_bool(&self.writes_blocked, blocked, Ordering::Relaxed, crate::exec::gates::Reason::Misconf);
    }

    pub fn reset_stats(&self) {
        let mut st = self.lock();
        st.fork_usec.reset();
        st.pause_usec.reset();
        st.barrier_usec.reset();
        st.cow_bytes.reset();
    }
}

pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

pub fn rdb_path(config: &Config) -> String {
    format!("{}/{}", config.dir, config.dbfilename)
}

/// Why a save failed, at which step, for Redis's log line (rdbSave).
#[derive(Debug)]
pub enum SaveError {
    /// The temp file could not be created.
    Open(std::io::Error),
    /// Writing failed at a step named as Redis names it (`rdbSaveRio`
    /// while serialising, `fflush` writing out the tail, `fsync`).
    Write(&'static str, std::io::Error),
    /// The rename over the dump failed.
    Rename(std::io::Error),
}

/// An OS error as strerror(3) words it, without Rust's " (os error N)".
fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

impl SaveError {
    /// Redis 7.0's log line for this failure; `pid` names the temp file.
    pub fn log_line(&self, config: &Config, pid: u32) -> String {
        match self {
            SaveError::Open(e) => format!("Failed opening the temp RDB file temp-{}.rdb (in server root dir {}) for saving: {}", pid, config.dir, strerror(e)),
            SaveError::Write(op, e) => format!("Write error saving DB on disk({}): {}", op, strerror(e)),
            SaveError::Rename(e) => format!(
                "Error moving temp DB file temp-{}.rdb on the final destination {} (in server root dir {}): {}",
                pid,
                config.dbfilename,
                config.dir,
                strerror(e)
            ),
        }
    }
}

/// Serialises every shard into `path` (temp file) and renames it over the
/// dump. Runs in the BGSAVE child, or in the foreground for SAVE with every
/// shard held. `progress` is called from the writing thread. `aof_base`:
/// the file is an AOF base (its `aof-base` aux field is 1, as Redis's
/// rewrite writes it).
pub fn write_dump(states: &[*mut ShardState], config: &Config, path: &str, aof_base: bool, progress: impl FnMut(u64, u64)) -> Result<u64, SaveError> {
    let started = Instant::now();
    let mut out = DirectWriter::create(path).map_err(SaveError::Open)?;
    serialize(&mut out, states, config, aof_base, progress).map_err(|e| SaveError::Write("rdbSaveRio", e))?;
    let serialized = started.elapsed();
    let total = out.flush().map_err(|e| SaveError::Write("fflush", e))?;
    out.sync().map_err(|e| SaveError::Write("fsync", e))?;
    let cpu = crate::util::rusage_usec(libc::RUSAGE_SELF);
    log_any(
        crate::config::LogLevel::Debug,
        &format!(
            "RDB written: {} bytes ({} chunks written in place, {} copied), serialised and submitted in {} ms, flushed and synced in {} ms, CPU user {} ms system {} ms",
            total,
            out.chunks_in_place,
            out.chunks_copied,
            serialized.as_millis(),
            (started.elapsed() - serialized).as_millis(),
            cpu.0 / 1000,
            cpu.1 / 1000
        ),
    );
    Ok(total)
}

/// `write_dump`'s body: the whole image into `out`, not yet flushed.
fn serialize(out: &mut DirectWriter, states: &[*mut ShardState], config: &Config, aof_base: bool, mut progress: impl FnMut(u64, u64)) -> std::io::Result<u64> {
    if !out.direct {
        log_any(crate::config::LogLevel::Notice, "O_DIRECT refused by the file system; writing the RDB file with buffered I/O");
    }
    let mut head = Encoder::new(false, 0);
    let head_start;
    (head.buf, head_start) = chunk_buffer(2 * ALIGN);
    head.save_header();
    head.save_aux("redis-ver", b"7.0.15");
    head.save_aux("redis-bits", b"64");
    head.save_aux("ctime", (crate::util::unix_ms() / 1000).to_string().as_bytes());
    let allocated = tikv_jemalloc_ctl::epoch::advance().ok().and_then(|_| tikv_jemalloc_ctl::stats::allocated::read().ok()).unwrap_or(0);
    let used = crate::commands::info::used_memory_bytes(crate::shard::memory::in_use(allocated as u64));
    head.save_aux("used-mem", used.to_string().as_bytes());
    head.save_aux("aof-base", if aof_base { b"1" } else { b"0" });
    head.save_aux("ringkv-shards", states.len().to_string().as_bytes());
    // The function libraries go before the keys, as Redis's rdbSaveRio
    // writes them (and loads them first).
    let mut functions = Encoder::new(config.rdbcompression, 0);
    functions.save_functions(&crate::scripting::library_codes());
    head.buf.extend_from_slice(&functions.buf);
    // Every section starts at an aligned offset, its chunks aligned in
    // length: the writer sends them to the disk without copying them. An
    // image without keys has no section to gain from it and is written
    // unpadded, as Redis writes it (~90 bytes, not 4 KiB): a fresh AOF
    // base's size is what `auto-aof-rewrite-min-size` and the growth
    // percentage measure against (aof_rewrite.rs, `cron_wants_rewrite`).
    // SAFETY: every shard is parked (held) or frozen in the child while
    // the image is written; this only reads their databases' lengths.
    let any_keys = states.iter().any(|&p| unsafe { &*p }.dbs.iter().any(|db| !db.map.is_empty()));
    if any_keys {
        head.save_pad(ALIGN, head_start);
    }
    out.write_chunk(std::mem::take(&mut head.buf), head_start)?;

    let compress = config.rdbcompression;
    let release_serialized = IN_CHILD.load(Ordering::Relaxed);
    // Redis's test knob: microseconds slept per key while saving, so tests
    // can catch a save in flight (kill it, cancel it) on any machine.
    let key_delay_usec: u64 = config.others.get("rdb-key-save-delay").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0).max(0) as u64;
    let keys_done = AtomicU64::new(0);
    let result: std::io::Result<()> = std::thread::scope(|scope| {
        let mut receivers = vec![];
        for &p in states {
            // A few chunks ahead of the writer is enough to keep the disk
            // busy; written chunks come back to be filled again, since fresh
            // memory costs a page fault and a page clear (measured: ~25% of
            // the child's time with 16 fresh 1 MiB chunks per shard).
            // A chunk is a buffer and where its bytes start (see `chunk_buffer`).
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(CHUNKS_AHEAD);
            // At most CHUNK_POOL buffers a section: the serialiser waits for
            // one to come back rather than allocate more (they are the
            // child's own copy-on-write). The way back holds them all, so a
            // buffer the writer returns is dropped only when the serialiser
            // has a full channel of them waiting.
            let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNK_POOL);
            receivers.push((rx, back_tx));
            let p = p as usize;
            let keys_done = &keys_done;
            scope.spawn(move || {
                // SAFETY: every shard is parked (held) or frozen in the child
                // for the whole scope; this thread only reads it.
                let state = unsafe { &*(p as *const ShardState) };
                let mut enc = Encoder::new(compress, 0);
                let start0;
                (enc.buf, start0) = chunk_buffer(SECTION_CHUNK + 64 * 1024);
                // Where the current chunk's bytes start, and whether the
                // writer went away.
                let start = std::cell::Cell::new(start0);
                let failed = std::cell::Cell::new(false);
                let allocated = std::cell::Cell::new(1);
                // Cuts a full chunk off: a whole number of blocks goes; the
                // rest (less than one) starts the next chunk. Called between
                // keys, and between the elements of a big collection (so the
                // child never holds a whole one: `Encoder::save_pair_with`).
                let mut cut = |buf: &mut Vec<u8>| -> usize {
                    if failed.get() {
                        return usize::MAX;
                    }
                    let back = match back_rx.try_recv() {
                        Ok(v) => Some(v),
                        Err(_) if allocated.get() < CHUNK_POOL => None,
                        // Every buffer is queued or on its way to the disk:
                        // the writer sends one back once the disk has it.
                        Err(_) => match back_rx.recv() {
                            Ok(v) => Some(v),
                            Err(_) => {
                                failed.set(true);
                                return usize::MAX;
                            }
                        },
                    };
                    let (mut next, next_start) = match back {
                        Some(mut v) => {
                            let s = reset_chunk(&mut v);
                            (v, s)
                        }
                        None => {
                            allocated.set(allocated.get() + 1);
                            chunk_buffer(SECTION_CHUNK + 64 * 1024)
                        }
                    };
                    let at = start.get() + (buf.len() - start.get()) / ALIGN * ALIGN;
                    next.extend_from_slice(&buf[at..]);
                    buf.truncate(at);
                    let chunk = (std::mem::replace(buf, next), start.get());
                    start.set(next_start);
                    if tx.send(chunk).is_err() {
                        failed.set(true);
                        return usize::MAX;
                    }
                    next_start + SECTION_CHUNK
                };
                enc.flush_at = start0 + SECTION_CHUNK;
                for (dbi, db) in state.dbs.iter().enumerate() {
                    if db.map.is_empty() {
                        continue;
                    }
                    enc.save_select_db(dbi, db.len(), db.expires_len());
                    let mut n = 0u64;
                    // The newest chunks first: the keys added last are the
                    // likeliest to be written while the child runs (a cache's
                    // working set, a load's keys), and once a chunk is
                    // serialised the child gives its pages back
                    // (`release_slots`), so the server's writes to them from
                    // then on copy nothing. In position order the child
                    // reached them last, after the server had rewritten
                    // every page of them (perf/RESULTS.md, branch cow2).
                    for slots in db.map.chunks().rev() {
                        for (i, slot) in slots.iter().enumerate() {
                            // Keys and values live where the allocator put them (values
                            // rewritten since their insert anywhere): ask for those a few
                            // entries ahead now, so the walk does not wait on each miss.
                            if let Some(ahead) = slots.get(i + PREFETCH_AHEAD) {
                                crate::util::prefetch(ahead.key().as_ptr());
                                if let crate::shard::Value::Str { bytes, .. } = &ahead.entry().value {
                                    crate::util::prefetch(bytes.as_ptr());
                                }
                            }
                            // Keys whose TTL has passed are written too, as
                            // Redis's rdbSaveRio does: a loading master counts
                            // and drops them (`rdb_last_load_keys_expired`), a
                            // replica or an AOF preamble keeps them.
                            let e = slot.entry();
                            enc.save_pair_with(slot.key(), e, &mut cut);
                            n += 1;
                            if key_delay_usec > 0 {
                                std::thread::sleep(Duration::from_micros(key_delay_usec));
                            }
                            if enc.buf.len() >= enc.flush_at {
                                keys_done.fetch_add(n, Ordering::Relaxed);
                                n = 0;
                                enc.flush_at = cut(&mut enc.buf);
                            }
                            if failed.get() {
                                return;
                            }
                        }
                        if release_serialized {
                            release_slots(slots);
                        }
                    }
                    keys_done.fetch_add(n, Ordering::Relaxed);
                }
                let start = start.get();
                if enc.buf.len() > start {
                    enc.save_pad(ALIGN, start);
                    let _ = tx.send((std::mem::take(&mut enc.buf), start));
                }
            });
        }
        // The sections go out in shard order, one sequential file.
        for (rx, back_tx) in receivers {
            let give_back = |out: &mut DirectWriter| {
                while let Some(done) = out.take_done() {
                    let _ = back_tx.try_send(done);
                }
            };
            loop {
                let (chunk, start) = match rx.try_recv() {
                    Ok(c) => c,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                    // Nothing to write yet: the serialiser may be waiting
                    // for a buffer the disk still has (see CHUNK_POOL).
                    Err(std::sync::mpsc::TryRecvError::Empty) if out.in_flight() > 0 => {
                        out.wait_one()?;
                        give_back(out);
                        continue;
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => match rx.recv() {
                        Ok(c) => c,
                        Err(_) => break,
                    },
                };
                out.write_chunk(chunk, start)?;
                // Chunks the disk already has go back at once.
                out.reap_ready()?;
                progress(keys_done.load(Ordering::Relaxed), out.total);
                give_back(out);
            }
        }
        Ok(())
    });
    result?;
    out.write(&[rdb::OPCODE_EOF])?;
    let crc = if config.rdbchecksum { out.crc() } else { 0 };
    out.write_raw(&crc.to_le_bytes())?;
    Ok(out.total)
}

/// Chunks a shard's serialising thread may run ahead of the writer.
const CHUNKS_AHEAD: usize = 3;

/// Bytes of a section's chunk (one O_DIRECT write). Every chunk buffer the
/// child fills is private memory counted in its copy-on-write: 1 MiB
/// chunks, as many as the writer had not sent back yet (8-12 a shard), were
/// 8.3 MiB of the mixed dataset's 20 MiB. 128 KiB writes, a few in flight,
/// still keep the disk busy.
const SECTION_CHUNK: usize = 128 * 1024;

/// Chunk buffers a section may have: one filling, the rest queued for the
/// writer or on the disk (~0.7 MiB a shard at most).
const CHUNK_POOL: usize = CHUNKS_AHEAD + 2;

/// Set in the forked child only: there, memory already serialised may be
/// given back (see `release_entries`); in SAVE it must not.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// In the BGSAVE child, gives back the pages of a chunk of the entry store
/// that has been serialised (MADV_DONTNEED). The parent's later writes to
/// those pages then find them unshared and copy nothing: less copy-on-write.
/// Only whole pages inside the chunk's entries are released; the child never
/// reads those entries again.
fn release_slots(slots: &[crate::shard::dict::Slot]) {
    const PAGE: usize = 4096;
    let range = slots.as_ptr_range();
    let lo = (range.start as usize).div_ceil(PAGE) * PAGE;
    let hi = range.end as usize / PAGE * PAGE;
    if hi > lo {
        // SAFETY: [lo, hi) lies inside the chunk's allocation, holds only
        // entries this thread has finished with, and is never read again in the
        // child; MADV_DONTNEED on private anonymous memory only drops our copy.
        unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
    }
}

/// Entries ahead of the one being serialised whose key and value are prefetched.
const PREFETCH_AHEAD: usize = 8;

/// Log lines from a forked child: the sink's mutex might be in any state
/// there, so it is only tried, never waited for.
fn log_any(level: crate::config::LogLevel, msg: &str) {
    crate::log::log_try(level, msg);
}

/// Reads Private_Dirty (bytes) of this process: what fork's copy-on-write
/// has duplicated so far, seen from the child.
pub fn private_dirty_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let mut total = 0u64;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Private_Dirty:") {
            total += rest.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0) * 1024;
        }
    }
    total
}

fn write_msg(fd: RawFd, kind: u64, a: u64, b: u64, c: u64) {
    let mut buf = [0u8; 32];
    buf[0..8].copy_from_slice(&kind.to_le_bytes());
    buf[8..16].copy_from_slice(&a.to_le_bytes());
    buf[16..24].copy_from_slice(&b.to_le_bytes());
    buf[24..32].copy_from_slice(&c.to_le_bytes());
    // SAFETY: a 32-byte write (atomic on a pipe) from a stack buffer.
    unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, 32) };
}

/// Closes every descriptor the child inherited except `keep` (Redis's
/// closeChildUnusedResourceAfterFork): the listening and client sockets,
/// the shards' rings, eventfds and pidfds. A child that kept a listener
/// would hold the port after the parent died (kill -9 during a long save):
/// a restart then failed with "Address already in use" and connections to
/// the port waited on a socket nobody accepts from.
fn close_inherited_fds(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().filter(|&&fd| fd >= 0).map(|&fd| fd as u32).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = 0u32;
    for &k in keep.iter().chain(std::iter::once(&u32::MAX)) {
        if k > from {
            close_range(from, k - 1);
        }
        from = k.saturating_add(1);
    }
}

/// close_range(2) (Linux 5.9+); on older kernels each open descriptor
/// listed in /proc/self/fd.
fn close_range(first: u32, last: u32) {
    // SAFETY: close_range takes plain integers; it only closes descriptors.
    if unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } == 0 {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let open: Vec<u32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    for fd in open.into_iter().filter(|fd| (first..=last).contains(fd)) {
        // SAFETY: closing a descriptor this child does not use (the
        // directory's own descriptor is already closed by then, or fails harmlessly).
        unsafe { libc::close(fd as i32) };
    }
}

/// What the child does first so that its copy-on-write (its private pages,
/// `rdb_last_cow_size`) holds little more than what the server rewrites:
/// - no transparent huge pages for what it faults in from now on: the
///   server's memory is `thp:always` (fork copies fewer page tables), so the
///   child's first touch of a fresh 2 MiB range of an arena took a whole huge
///   page for a chunk buffer (4.3 of the 5.4 MiB an idle save of the mixed
///   dataset reported);
/// - the allocator's free pages, inherited from the server, are given back
///   (`purge_allocator`): while the child maps them, each one the server
///   then purges or reuses stays in the child as a private copy (7 MiB of
///   the mixed dataset's 20 MiB under a SET load).
fn lean_child_memory() {
    let start = Instant::now();
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments.
    let thp_off = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0;
    let purged = crate::util::purge_allocator();
    log_any(
        crate::config::LogLevel::Debug,
        &format!("Child memory: huge pages off {}, allocator free pages dropped {} ({} us)", thp_off, purged, start.elapsed().as_micros()),
    );
}

/// The child's whole life after fork(): never returns.
fn child_main(states: Vec<*mut ShardState>, config: &Config, pipe: RawFd, kind: ChildKind) -> ! {
    // The OOM killer takes a child before the server (`oom-score-adj-values`).
    let _ = crate::config::oom_score_adj::apply(config, crate::config::oom_score_adj::ProcessClass::BackgroundChild);
    close_inherited_fds(&[0, 1, 2, pipe, crate::log::raw_fd()]);
    crate::signal::reset_in_child();
    crate::log::set_role('C');
    IN_CHILD.store(true, Ordering::Relaxed);
    lean_child_memory();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // Redis's bgsave_cpulist: where the child (and the threads it starts) runs.
    if let Some(list) = config.others.get("bgsave_cpulist").filter(|l| !l.is_empty()) {
        match crate::util::parse_cpulist(list) {
            Some(cpus) => {
                if let Err(e) = crate::util::set_affinity(&cpus) {
                    log_any(crate::config::LogLevel::Warning, &format!("Failed to set the child's cpu affinity to {}: {}", list, e));
                }
            }
            None => log_any(crate::config::LogLevel::Warning, &format!("Invalid bgsave_cpulist '{}', keeping the server's affinity", list)),
        }
    }
    let tmp = format!("{}/temp-{}.rdb", config.dir, pid);
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    let mut sample_cost = Duration::from_micros(100);
    let mut cow = 0u64;
    let progress = |keys, bytes| {
        // Keep smaps reading under ~1% of the child's time.
        if last_sample.elapsed() >= (sample_cost * 100).max(Duration::from_millis(100)) {
            let t = Instant::now();
            cow = private_dirty_bytes();
            sample_cost = t.elapsed();
            last_sample = Instant::now();
        }
        write_msg(pipe, MSG_PROGRESS, keys, bytes, cow);
    };
    if kind == ChildKind::Aof {
        let code = match super::aof_rewrite::child_write(&states, config, pid as u32, progress) {
            Ok(()) => {
                log_any(
                    crate::config::LogLevel::Notice,
                    &format!("Successfully created the temporary AOF base file {}", super::aof::manifest::temp_rewrite_base_name(pid as u32)),
                );
                write_msg(pipe, MSG_DONE, 0, 0, private_dirty_bytes());
                0
            }
            Err(line) => {
                log_any(crate::config::LogLevel::Warning, &line);
                write_msg(pipe, MSG_FAILED, 0, 0, 0);
                1
            }
        };
        // SAFETY: leave without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) }
    }
    let result = write_dump(&states, config, &tmp, false, progress);
    let code = match result.and_then(|_| rename_durably(&tmp, &rdb_path(config), &config.dir).map_err(SaveError::Rename)) {
        Ok(previous) => {
            log_any(crate::config::LogLevel::Notice, "DB saved on disk");
            let cow = private_dirty_bytes();
            write_msg(pipe, MSG_DONE, 0, 0, cow);
            // The old dump's blocks are freed now, after the parent heard.
            drop(previous);
            0
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            log_any(crate::config::LogLevel::Warning, &e.log_line(config, pid as u32));
            write_msg(pipe, MSG_FAILED, 0, 0, 0);
            1
        }
    };
    // SAFETY: leave without running the parent's atexit handlers or destructors.
    unsafe { libc::_exit(code) }
}

/// Every shard's state (all owned or held) and the sum of their dirty
/// counters: what a save serialises and the baseline it records.
fn held_states(shards: &mut ShardSet) -> (Vec<*mut ShardState>, u64) {
    let states: Vec<*mut ShardState> = shards.raw_ptrs().to_vec();
    assert!(states.iter().all(|p| !p.is_null()), "a save needs every shard owned or held");
    let dirty = (0..shards.len()).map(|i| shards.get(i).dirty).sum();
    (states, dirty)
}

/// Forks a child of `kind` (BGSAVE or BGREWRITEAOF) at a cut of every shard:
/// must be called with every shard owned or held (`shards` has a pointer
/// for each). `barrier` is how long the hold took to park them. Errors are
/// the command's error reply.
pub fn start_child(server: &crate::server::Server, shards: &mut ShardSet, config: &Config, barrier: Duration, kind: ChildKind) -> Result<i32, String> {
    let p = &server.persistence;
    if p.lock().child.is_some() {
        // Without SCHEDULE the gate only answers errors (a child is running).
        if let Some(Err(e)) = bgsave_gate(p, false, false) {
            return Err(e.into());
        }
    }
    if kind == ChildKind::Aof && !super::aof_rewrite::before_fork(server, shards, config) {
        return Err(super::aof_rewrite::CANT_START.into());
    }
    // Replicas waiting for a full sync: the streams are handed over now,
    // so that the snapshot's cut is a point of the replication stream.
    let for_replication = kind == ChildKind::Rdb && server.repl.before_fork(server, shards);
    let (states, dirty_now) = held_states(shards);
    // SAFETY: every pointer is a shard owned or held by this thread for the
    // whole call (see `held_states`); this only reads their sizes.
    let keys_total: u64 = states.iter().map(|&s| unsafe { (*s).dbs.iter().map(|d| d.len() as u64).sum::<u64>() }).sum();
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("ERR Can't create pipe for the child: {}", std::io::Error::last_os_error()));
    }
    let fork_start = Instant::now();
    // SAFETY: every other shard thread is parked at a quiescent point; the
    // child only reads memory, uses its own ring and threads, and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: closing the read end in the child.
        unsafe { libc::close(fds[0]) };
        child_main(states, config, fds[1], kind);
    }
    let fork_usec = fork_start.elapsed().as_micros() as u64;
    // SAFETY: the write end belongs to the child now.
    unsafe { libc::close(fds[1]) };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: closing our read end.
        unsafe { libc::close(fds[0]) };
        if for_replication {
            server.repl.forked(false);
        }
        if kind == ChildKind::Aof {
            super::aof_rewrite::fork_failed(server, &e);
            return Err(super::aof_rewrite::CANT_START.into());
        }
        let mut st = p.lock();
        st.last_bgsave_status = SaveStatus::Err;
        drop(st);
        p.update_write_gate(config);
        crate::warning!("Can't save in background: fork: {}", e);
        return Err("ERR".into());
    }
    // SAFETY: non-blocking reads from the cron.
    unsafe { libc::fcntl(fds[0], libc::F_SETFL, libc::O_NONBLOCK) };
    let now = crate::util::unix_ms();
    let mut st = p.lock();
    st.latest_fork_usec = fork_usec;
    st.fork_rate_gb_per_sec = crate::shard::memory::measure_now() as f64 * 1_000_000.0 / fork_usec.max(1) as f64 / (1u64 << 30) as f64;
    st.total_forks += 1;
    if kind == ChildKind::Rdb {
        st.last_bgsave_try_ms = now;
    }
    let _ = st.fork_usec.record(fork_usec.max(1));
    let barrier_usec = barrier.as_micros() as u64;
    let _ = st.barrier_usec.record(barrier_usec.max(1));
    let _ = st.pause_usec.record((barrier_usec + fork_usec).max(1));
    st.child = Some(Child {
        pid,
        kind,
        start_ms: now,
        pipe: fds[0],
        keys_total,
        keys_done: 0,
        bytes_done: 0,
        cow_current: 0,
        cow_peak: 0,
        cow_sum: 0,
        cow_samples: 0,
        cow_updated_ms: now,
        cancelled: false,
        for_replication,
        dirty_at_fork: dirty_now,
        partial: Vec::new(),
        pidfd: pidfd_open(pid),
    });
    p.exit_watch.store(st.child.as_ref().map_or(-1, |c| c.pidfd), Ordering::Release);
    drop(st);
    if for_replication {
        server.repl.forked(true);
    }
    p.set_snapshot_active(true);
    let threshold = config.latency_monitor_threshold_ms;
    if threshold > 0 && fork_usec / 1000 >= threshold {
        // The `fork` event of LATENCY LATEST/HISTORY, kept on the forking shard.
        let home = shards.get_mut(0);
        home.stats.latency.add_sample("fork", fork_usec / 1000, now / 1000);
    }
    if kind == ChildKind::Aof {
        super::aof_rewrite::forked(server, pid);
    } else {
        crate::notice!("Background saving started by pid {}", pid);
    }
    Ok(pid)
}

/// SAVE: serialise in the foreground (every shard held).
pub fn save_foreground(server: &crate::server::Server, shards: &mut ShardSet, config: &Config) -> Result<(), String> {
    let p = &server.persistence;
    if p.lock().child.as_ref().is_some_and(|c| c.kind == ChildKind::Rdb) {
        return Err("ERR Background save already in progress".into());
    }
    let (states, dirty_now) = held_states(shards);
    let tmp = format!("{}/temp-{}.rdb", config.dir, std::process::id());
    crate::signal::set_foreground_temp(&tmp);
    let res = write_dump(&states, config, &tmp, false, |_, _| {}).and_then(|_| rename_durably(&tmp, &rdb_path(config), &config.dir).map_err(SaveError::Rename));
    let mut st = p.lock();
    match res {
        Ok(_previous) => {
            st.last_save_unix = crate::util::unix_ms() / 1000;
            st.dirty_at_last_save = dirty_now;
            st.last_bgsave_status = SaveStatus::Ok;
            st.rdb_saves += 1;
            drop(st);
            p.update_write_gate(config);
            crate::notice!("DB saved on disk");
            Ok(())
        }
        Err(e) => {
            // As Redis's rdbSave: a failed foreground save (SAVE, DEBUG
            // RELOAD, a shutdown's) leaves rdb_last_bgsave_status as it
            // was, so it brings no MISCONF (unit/shutdown "SHUTDOWN will
            // abort if rdb save failed on shutdown command" pings after it).
            let _ = std::fs::remove_file(&tmp);
            drop(st);
            crate::warning!("{}", e.log_line(config, std::process::id()));
            Err("ERR".into())
        }
    }
}

/// Kills a running RDB child and waits for it (SHUTDOWN, FLUSHALL), removing
/// its temp file; the save is not counted as an error.
pub fn kill_child(server: &crate::server::Server, dir: &str, why: &str) {
    let Some(child) = server.persistence.take_child_of(ChildKind::Rdb) else { return };
    crate::warning!("{}", why);
    // SAFETY: signalling and reaping our own child (its descriptors are
    // closed when `child` drops).
    unsafe {
        libc::kill(child.pid, libc::SIGUSR1);
        let mut status = 0;
        libc::waitpid(child.pid, &mut status, 0);
    }
    let _ = std::fs::remove_file(format!("{}/temp-{}.rdb", dir, child.pid));
    server.persistence.set_snapshot_active(false);
    if child.for_replication {
        server.repl.rdb_done(None);
    }
}

/// BGSAVE's answer when it must not fork now (Redis's bgsaveCommand): an RDB
/// child runs, or another kind of child does (then SCHEDULE queues one for
/// the cron), or the command runs inside EXEC (`in_exec`: Redis schedules it,
/// SCHEDULE or not, so that no fork happens in the middle of a transaction).
/// None: fork now.
pub fn bgsave_gate(p: &Persistence, schedule: bool, in_exec: bool) -> Option<Result<&'static str, &'static str>> {
    let mut st = p.lock();
    let kind = st.child.as_ref().map(|c| c.kind);
    if kind == Some(ChildKind::Rdb) {
        return Some(Err("ERR Background save already in progress"));
    }
    if kind.is_none() && !in_exec {
        return None;
    }
    Some(if schedule || in_exec {
        st.scheduled = true;
        Ok("Background saving scheduled")
    } else {
        Err("ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.")
    })
}

/// BGSAVE CANCEL.
pub fn cancel(server: &crate::server::Server) -> Result<&'static str, &'static str> {
    let mut st = server.persistence.lock();
    if let Some(c) = st.child.as_mut() {
        if c.kind == ChildKind::Rdb {
            c.cancelled = true;
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.pid, libc::SIGUSR1) };
            crate::notice!("Background saving cancelled by user request, killing pid {}", c.pid);
            return Ok("Background saving cancelled");
        }
    }
    if st.scheduled {
        st.scheduled = false;
        return Ok("Scheduled background saving cancelled");
    }
    Err("ERR Background saving is currently not in progress or scheduled")
}

/// What the cron starts now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronStart {
    Nothing,
    Bgsave,
    Rewrite,
}

/// Polls the child from a shard's cron: progress messages, then reaping.
/// With no child, says what to start, in serverCron's order: a scheduled
/// rewrite, a save point, an automatic rewrite, a scheduled BGSAVE.
pub fn cron(server: &crate::server::Server, config: &Config) -> CronStart {
    if poll_child(server, config) {
        return CronStart::Nothing;
    }
    if super::aof_rewrite::lock(&server.aof_rewrite).scheduled && super::aof_rewrite::cron_wants_rewrite(server, config) {
        return CronStart::Rewrite;
    }
    let p = &server.persistence;
    let st = p.lock();
    let now = crate::util::unix_ms();
    // Save points: "save <seconds> <changes>"; after a failed save wait 5 s
    // before trying again, as Redis's CONFIG_BGSAVE_RETRY_DELAY.
    let dirty = p.dirty_total().saturating_sub(st.dirty_at_last_save);
    let since_save = now / 1000 - st.last_save_unix;
    let retry_ok = st.last_bgsave_status == SaveStatus::Ok || now - st.last_bgsave_try_ms > 5000;
    for &(secs, changes) in &config.save {
        if dirty >= changes && since_save >= secs as i64 && retry_ok {
            crate::notice!("{} changes in {} seconds. Saving...", changes, secs);
            return CronStart::Bgsave;
        }
    }
    let scheduled = st.scheduled && retry_ok;
    drop(st);
    // A replica waits for a full sync (Redis's replicationStartPendingFork).
    if server.repl.bgsave_wanted() {
        return CronStart::Bgsave;
    }
    if super::aof_rewrite::cron_wants_rewrite(server, config) {
        return CronStart::Rewrite;
    }
    if scheduled {
        return CronStart::Bgsave;
    }
    CronStart::Nothing
}

/// Reads the child's progress messages and reaps it when it has exited
/// (cron, and the ring's poll on its pidfd). Returns true when there was a
/// child (still running, or reaped by this call).
pub fn poll_child(server: &crate::server::Server, config: &Config) -> bool {
    let p = &server.persistence;
    let mut st = p.lock();
    let now = crate::util::unix_ms();
    if let Some(child) = st.child.as_mut() {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: non-blocking read into a stack buffer.
            let n = unsafe { libc::read(child.pipe, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
            if n <= 0 {
                break;
            }
            child.partial.extend_from_slice(&buf[..n as usize]);
        }
        let whole = child.partial.len() / 32 * 32;
        let msgs: Vec<u8> = child.partial.drain(..whole).collect();
        for m in msgs.chunks(32) {
            let word = |i: usize| u64::from_le_bytes(m[i * 8..i * 8 + 8].try_into().unwrap());
            if word(0) == MSG_PROGRESS || word(0) == MSG_DONE {
                if word(0) == MSG_PROGRESS {
                    child.keys_done = word(1);
                    child.bytes_done = word(2);
                }
                let cow = word(3);
                if cow > 0 && cow != child.cow_current {
                    child.cow_current = cow;
                    child.cow_peak = child.cow_peak.max(cow);
                    child.cow_sum += cow;
                    child.cow_samples += 1;
                    child.cow_updated_ms = now;
                }
            }
        }
        let mut status = 0i32;
        // SAFETY: non-blocking wait for our own child.
        let r = unsafe { libc::waitpid(child.pid, &mut status, libc::WNOHANG) };
        if r == child.pid {
            let child = st.child.take().unwrap();
            p.set_snapshot_active(false);
            let _ = st.cow_bytes.record(child.cow_peak.max(1));
            if child.cow_peak > 0 {
                crate::notice!(
                    "Fork CoW for {}: current {} MB, peak {} MB, average {} MB",
                    if child.kind == ChildKind::Aof { "AOF rewrite" } else { "RDB" },
                    child.cow_current >> 20,
                    child.cow_peak >> 20,
                    (child.cow_sum / child.cow_samples.max(1)) >> 20
                );
            }
            if child.kind == ChildKind::Aof {
                drop(st);
                super::aof_rewrite::done(server, config, child.pid, status, child.cow_peak);
                return true;
            }
            if child.for_replication {
                let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                server.repl.rdb_done(if ok { std::fs::File::open(rdb_path(config)).ok() } else { None });
            }
            let elapsed = (now - child.start_ms) / 1000;
            st.last_bgsave_time_sec = elapsed;
            st.last_cow_bytes = child.cow_peak;
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                crate::notice!("Background saving terminated with success");
                st.last_save_unix = now / 1000;
                st.dirty_at_last_save = child.dirty_at_fork;
                st.last_bgsave_status = SaveStatus::Ok;
                st.rdb_saves += 1;
            } else if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                crate::warning!("Background saving terminated by signal {}", sig);
                let _ = std::fs::remove_file(format!("{}/temp-{}.rdb", config.dir, child.pid));
                if sig != libc::SIGUSR1 {
                    st.last_bgsave_status = SaveStatus::Err;
                }
            } else {
                crate::warning!("Background saving error");
                let _ = std::fs::remove_file(format!("{}/temp-{}.rdb", config.dir, child.pid));
                st.last_bgsave_status = SaveStatus::Err;
            }
            drop(st);
            p.update_write_gate(config);
        }
        return true;
    }
    false
}

/// The lines Redis logs for the aux fields it reads from an RDB.
fn log_aux_fields(aux: &[(Vec<u8>, Vec<u8>)]) {
    for (k, v) in aux {
        let text = String::from_utf8_lossy(v);
        match k.as_slice() {
            b"redis-ver" => crate::notice!("Loading RDB produced by version {}", text),
            b"ctime" => {
                let age = (crate::util::unix_ms() / 1000 - text.parse::<i64>().unwrap_or(0)).max(0);
                crate::notice!("RDB age {} seconds", age);
            }
            b"used-mem" => crate::notice!("RDB memory usage when created {:.2} Mb", text.parse::<f64>().unwrap_or(0.0) / (1024.0 * 1024.0)),
            _ => {}
        }
    }
}

/// `key-load-delay`: microseconds to wait after each key loaded (a hidden
/// Redis setting that makes loading long, for tests).
pub fn key_load_delay(config: &Config) -> i64 {
    config.others.get("key-load-delay").and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Redis's `debugDelay`: sleeps `usec` microseconds; a negative value sleeps
/// one microsecond about once every `-usec` calls.
#[inline]
pub fn debug_delay(usec: i64) {
    if usec == 0 {
        return;
    }
    let usec = if usec < 0 {
        static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x9E37_79B9_7F4A_7C15);
        let mut x = SEED.load(std::sync::atomic::Ordering::Relaxed);
        let r = crate::shard::keyspace::xorshift(&mut x);
        SEED.store(x, std::sync::atomic::Ordering::Relaxed);
        i64::from(r.is_multiple_of(usec.unsigned_abs()))
    } else {
        usec
    };
    if usec > 0 {
        std::thread::sleep(std::time::Duration::from_micros(usec as u64));
    }
}

/// The size of what start-up loads (`dir/dbfilename`), for INFO's
/// `loading_total_bytes`.
pub fn rdb_size(config: &Config) -> u64 {
    std::fs::metadata(rdb_path(config)).map(|m| m.len()).unwrap_or(0)
}

/// Loads `dir/dbfilename` into the shard states before they start serving.
/// A missing file is an empty dataset; a bad one is a refusal to start.
pub fn load_at_startup(states: &mut [Box<ShardState>], config: &Config, p: &Persistence) -> Result<(), String> {
    let ptrs: Vec<*mut ShardState> = states.iter_mut().map(|b| &mut **b as *mut ShardState).collect();
    load_into(&ptrs, config, p, false).map(|_| ())
}

/// Loads the dump into `states` (owned, or held), routing each key to its
/// shard by hash slot, and its function libraries (`merge`: replacing a
/// loaded library of the same name, as Redis's RDBFLAGS_ALLOW_DUP).
/// Returns false when there was no file.
pub fn load_into(states: &[*mut ShardState], config: &Config, p: &Persistence, merge: bool) -> Result<bool, String> {
    let path = rdb_path(config);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("Fatal error loading the DB {}: {}. Exiting.", path, e)),
    };
    let start = Instant::now();
    let shards = states.len();
    let databases = config.databases;
    let mut bad_db = None;
    let delay = key_load_delay(config);
    let stats = rdb::load_with(&data, crate::util::unix_ms(), &config.encodings, |db, key, entry| {
        if db >= databases {
            bad_db = Some(db);
            return;
        }
        debug_delay(delay);
        let s = crate::shard::slot::key_shard(&key, shards);
        // SAFETY: the caller owns or holds every state for the whole load.
        let ptr: *mut ShardState = states[s];
        let state = unsafe { &mut *ptr };
        state.dbs[db].insert_key(crate::shard::key::Key::new(&key), entry);
    })
    .map_err(|e| {
        // Redis's lines for this failure; the last is returned (and logged
        // by the caller) as the reason the server does not start.
        let mut lines = e.redis_log_lines();
        let last = lines.pop().unwrap_or_default();
        for l in lines {
            crate::warning!("{}", l);
        }
        last
    })?;
    if let Some(db) = bad_db {
        return Err(format!(
            "FATAL: Data file was created with a Redis server configured to handle more than {} databases (found db {}). Exiting",
            databases, db
        ));
    }
    log_aux_fields(&stats.aux);
    load_libraries(&stats.functions, merge)?;
    let mut st = p.lock();
    st.last_load_keys_loaded = stats.keys_loaded;
    st.last_load_keys_expired = stats.keys_expired;
    if let Ok(meta) = std::fs::metadata(&path) {
        if let Ok(m) = meta.modified() {
            st.last_save_unix = m.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(st.last_save_unix);
        }
    }
    for key in &stats.empty_keys_logged {
        crate::warning!("rdbLoadObject skipping empty key: {}", String::from_utf8_lossy(key));
    }
    if stats.empty_keys_skipped > 0 {
        crate::warning!(
            "Done loading RDB, keys loaded: {}, keys expired: {}, empty keys skipped: {}.",
            stats.keys_loaded,
            stats.keys_expired,
            stats.empty_keys_skipped
        );
    } else {
        crate::notice!("Done loading RDB, keys loaded: {}, keys expired: {}.", stats.keys_loaded, stats.keys_expired);
    }
    crate::notice!("DB loaded from disk: {:.3} seconds", start.elapsed().as_secs_f64());
    Ok(true)
}

/// The function libraries of a loaded RDB (or AOF preamble), added to the
/// loaded ones; a library that fails is a failed load, as in Redis's
/// rdbLoadRio ("Failed loading library").
pub fn load_libraries(codes: &[Vec<u8>], merge: bool) -> Result<(), String> {
    let policy = if merge { crate::scripting::RestorePolicy::Replace } else { crate::scripting::RestorePolicy::Append };
    crate::scripting::function_restore(codes, policy).map_err(|e| {
        let e = e.strip_prefix("ERR ").unwrap_or(&e);
        crate::warning!("Failed loading library, {}", e);
        "Fatal error loading the DB, check server logs. Exiting.".to_string()
    })
}

/// `INFO persistence`, with Redis 7.0's field names.
pub fn info_persistence(server: &crate::server::Server, dirty_total: u64) -> String {
    let p = &server.persistence;
    let st = p.lock();
    let now = crate::util::unix_ms();
    // The current_* fields are of whichever child runs (BGSAVE or rewrite).
    let (cow_size, cow_peak, cow_age, fork_perc, keys_done, keys_total) = match &st.child {
        Some(c) => {
            let perc = if c.keys_total > 0 { c.keys_done as f64 * 100.0 / c.keys_total as f64 } else { 0.0 };
            (c.cow_current, c.cow_peak, (now - c.cow_updated_ms) / 1000, perc, c.keys_done, c.keys_total)
        }
        None => (0, 0, 0, 0.0, 0, 0),
    };
    let (in_progress, cur_time) = match &st.child {
        Some(c) if c.kind == ChildKind::Rdb => (1, (now - c.start_ms) / 1000),
        _ => (0, -1),
    };
    let changes = dirty_total.saturating_sub(st.dirty_at_last_save);
    let mut s = String::new();
    s.push_str(if server.loading.load(std::sync::atomic::Ordering::Relaxed) { "loading:1\r\nasync_loading:0\r\n" } else { "loading:0\r\nasync_loading:0\r\n" });
    s.push_str(&format!("current_cow_peak:{}\r\ncurrent_cow_size:{}\r\ncurrent_cow_size_age:{}\r\ncurrent_fork_perc:{:.2}\r\ncurrent_save_keys_processed:{}\r\ncurrent_save_keys_total:{}\r\n", cow_peak, cow_size, cow_age, fork_perc, keys_done, keys_total));
    s.push_str(&format!("rdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\n", changes, in_progress, st.last_save_unix));
    s.push_str(&format!(
        "rdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_cow_size:{}\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\n",
        if st.last_bgsave_status == SaveStatus::Ok { "ok" } else { "err" },
        st.last_bgsave_time_sec,
        cur_time,
        st.rdb_saves,
        st.last_cow_bytes,
        st.last_load_keys_expired,
        st.last_load_keys_loaded
    ));
    drop(st);
    s.push_str(&server.aof.info_fields(&super::aof_rewrite::info(server)));
    if server.loading.load(std::sync::atomic::Ordering::Relaxed) {
        s.push_str(&loading_fields(server));
    }
    s
}

/// INFO's `loading_*` fields while the dataset loads, computed as Redis
/// 7.0's `genRedisInfoString`.
fn loading_fields(server: &crate::server::Server) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let start = server.loading_start_time.load(Relaxed);
    let total = server.loading_total_bytes.load(Relaxed);
    let loaded = rdb::LOAD_PROGRESS.loaded_bytes.load(Relaxed);
    let (perc, remaining) = if total > 0 { (loaded as f64 / total as f64 * 100.0, total.saturating_sub(loaded)) } else { (0.0, 1) };
    let elapsed = (crate::util::unix_ms() / 1000 - start).max(0) as u64;
    let eta = if elapsed == 0 { 1 } else { elapsed * remaining / (loaded + 1) };
    format!(
        "loading_start_time:{}\r\nloading_total_bytes:{}\r\nloading_rdb_used_mem:{}\r\nloading_loaded_bytes:{}\r\nloading_loaded_perc:{:.2}\r\nloading_eta_seconds:{}\r\n",
        start,
        total,
        rdb::LOAD_PROGRESS.rdb_used_mem.load(Relaxed),
        loaded,
        perc,
        eta
    )
}

/// `# Snapshot`: ringkv's histograms (Redis has none), p50/p99/p999/max and counts.
pub fn info_snapshot(server: &crate::server::Server) -> String {
    let st = server.persistence.lock();
    let mut s = String::new();
    for (name, h) in [("fork_usec", &st.fork_usec), ("pause_usec", &st.pause_usec), ("barrier_usec", &st.barrier_usec), ("cow_bytes", &st.cow_bytes)] {
        s.push_str(&hist_line(&format!("snapshot_{}", name), h));
    }
    s.push_str(&server.aof.info_limit_fields());
    s
}

/// Command latency of one shard, split by whether a snapshot child was
/// running: what a BGSAVE costs the clients, at p99 and beyond.
pub struct SnapshotLatency {
    pub inside_usec: Histogram<u64>,
    pub outside_usec: Histogram<u64>,
    /// Commands outside snapshots that took under `SMALL_USEC` us, counted
    /// by value here (one increment per command, where the histogram's
    /// record was ~70 instructions) and added to `outside_usec` when the
    /// histograms are read (`merged_command_latency`).
    small_outside: [u64; SMALL_USEC],
}

/// Values below this are counted in `SnapshotLatency::small_outside`.
const SMALL_USEC: usize = 16;

impl Default for SnapshotLatency {
    fn default() -> Self {
        SnapshotLatency { inside_usec: histogram(60_000_000), outside_usec: histogram(60_000_000), small_outside: [0; SMALL_USEC] }
    }
}

impl SnapshotLatency {
    #[inline]
    pub fn record(&mut self, usec: u64, in_snapshot: bool) {
        // Recorded as at least 1 us (the histograms' lowest value).
        let usec = usec.max(1);
        if !in_snapshot && usec < SMALL_USEC as u64 {
            self.small_outside[usec as usize] += 1;
            return;
        }
        let h = if in_snapshot { &mut self.inside_usec } else { &mut self.outside_usec };
        // Values above the bound are clamped rather than dropped.
        h.saturating_record(usec);
    }

    /// Adds this shard's figures to `inside` and `outside` (the small
    /// values counted apart included).
    fn add_to(&self, inside: &mut Histogram<u64>, outside: &mut Histogram<u64>) {
        let _ = inside.add(&self.inside_usec);
        let _ = outside.add(&self.outside_usec);
        for (usec, &n) in self.small_outside.iter().enumerate() {
            if n > 0 {
                let _ = outside.record_n(usec as u64, n);
            }
        }
    }
}

/// Merges every shard's command-latency histograms (shards must be held).
pub fn merged_command_latency(shards: &[&ShardState]) -> (Histogram<u64>, Histogram<u64>) {
    let mut inside = histogram(60_000_000);
    let mut outside = histogram(60_000_000);
    for s in shards {
        s.snapshot_latency.add_to(&mut inside, &mut outside);
    }
    (inside, outside)
}

fn hist_line(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "{}:count={},p50={},p99={},p999={},max={}\r\n",
        name,
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )
}

/// `# Snapshot` lines for the command latency histograms.
pub fn info_command_latency(shards: &[&ShardState]) -> String {
    let (inside, outside) = merged_command_latency(shards);
    hist_line("snapshot_cmd_latency_inside_usec", &inside) + &hist_line("snapshot_cmd_latency_outside_usec", &outside)
}

/// DEBUG SNAPSHOT-STATS: every histogram in full, as (name, [(value, count)])
/// with the value of each recorded bucket (highest equivalent value).
pub fn full_histograms(server: &crate::server::Server, shards: &[&ShardState]) -> Vec<(String, Vec<(u64, u64)>)> {
    let st = server.persistence.lock();
    let (inside, outside) = merged_command_latency(shards);
    let mut out = vec![];
    for (name, h) in [
        ("fork_usec", &st.fork_usec),
        ("pause_usec", &st.pause_usec),
        ("barrier_usec", &st.barrier_usec),
        ("cow_bytes", &st.cow_bytes),
        ("cmd_latency_inside_snapshot_usec", &inside),
        ("cmd_latency_outside_snapshot_usec", &outside),
    ] {
        let buckets = h.iter_recorded().map(|v| (h.highest_equivalent(v.value_iterated_to()), v.count_at_value())).collect();
        out.push((name.to_string(), buckets));
    }
    out
}

/// GB forked per second at the last fork, for LATENCY DOCTOR.
pub fn fork_rate_gb_per_sec(server: &crate::server::Server) -> f64 {
    server.persistence.lock().fork_rate_gb_per_sec
}

/// `latest_fork_usec` and `total_forks` for INFO stats.
pub fn info_stats_fork(server: &crate::server::Server) -> (u64, u64) {
    let st = server.persistence.lock();
    (st.latest_fork_usec, st.total_forks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The small values counted apart read back as if each had been
    /// recorded in the histogram: same count, percentiles and max.
    #[test]
    fn small_latencies_merge_as_recorded() {
        let mut l = SnapshotLatency::default();
        let (mut direct_in, mut direct_out) = (histogram(60_000_000), histogram(60_000_000));
        for (i, usec) in [0u64, 1, 2, 3, 15, 16, 17, 40, 1000, 5, 0, 15, 99_000_000].iter().cycle().take(500).enumerate() {
            let in_snapshot = i % 7 == 0;
            l.record(*usec, in_snapshot);
            let h = if in_snapshot { &mut direct_in } else { &mut direct_out };
            h.saturating_record((*usec).max(1));
        }
        let (mut inside, mut outside) = (histogram(60_000_000), histogram(60_000_000));
        l.add_to(&mut inside, &mut outside);
        assert_eq!(hist_line("i", &inside), hist_line("i", &direct_in));
        assert_eq!(hist_line("o", &outside), hist_line("o", &direct_out));
        assert_eq!(outside.len(), direct_out.len());
    }

    /// A child of another kind (a stand-in for a rewrite, exiting without
    /// a base: the rewrite counts as failed): a real process of ours, so
    /// the cron's waitpid reaps it as it would a fork.
    fn other_child(seconds: &str) -> Child {
        let proc = std::process::Command::new("sleep").arg(seconds).spawn().expect("spawn sleep");
        let pid = proc.id() as i32;
        std::mem::forget(proc); // reaped by cron's waitpid, not by std
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 fills two descriptors; the write end is closed at once.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK), 0);
            libc::close(fds[1]);
        }
        Child {
            pid,
            kind: ChildKind::Aof,
            start_ms: crate::util::unix_ms(),
            pipe: fds[0],
            keys_total: 0,
            keys_done: 0,
            bytes_done: 0,
            cow_current: 0,
            cow_peak: 0,
            cow_sum: 0,
            cow_samples: 0,
            cow_updated_ms: 0,
            cancelled: false,
            for_replication: false,
            dirty_at_fork: 0,
            partial: vec![],
            pidfd: -1,
        }
    }

    #[test]
    fn schedule_waits_for_another_kind_of_child_then_cron_starts_it() {
        let server = crate::server::Server::new(1, 100, 0);
        let config = Config::default();
        let p = &server.persistence;
        assert_eq!(bgsave_gate(p, false, false), None, "no child: fork now");
        p.lock().child = Some(other_child("0.3"));
        assert_eq!(
            bgsave_gate(p, false, false),
            Some(Err(
                "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
            ))
        );
        assert!(!p.lock().scheduled);
        assert_eq!(bgsave_gate(p, true, false), Some(Ok("Background saving scheduled")));
        assert_eq!(cancel(&server), Ok("Scheduled background saving cancelled"));
        assert_eq!(cancel(&server), Err("ERR Background saving is currently not in progress or scheduled"));
        assert_eq!(bgsave_gate(p, true, false), Some(Ok("Background saving scheduled")));
        // While the other child runs, the cron does not start the BGSAVE.
        assert_eq!(cron(&server, &config), CronStart::Nothing);
        let t = Instant::now();
        while p.lock().child.is_some() {
            assert!(t.elapsed() < Duration::from_secs(10), "child not reaped");
            assert_eq!(cron(&server, &config), CronStart::Nothing, "no BGSAVE while the other child runs or in its reaping cron");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Reaped without RDB bookkeeping; the next cron starts the scheduled save.
        {
            let st = p.lock();
            assert_eq!((st.last_bgsave_status, st.rdb_saves, st.last_bgsave_time_sec), (SaveStatus::Ok, 0, -1));
            assert!(st.scheduled);
        }
        assert_eq!(cron(&server, &config), CronStart::Bgsave);
    }

    #[test]
    fn bgsave_during_bgsave_is_refused_even_with_schedule() {
        let p = Persistence::new(1);
        let mut child = other_child("0");
        child.kind = ChildKind::Rdb;
        p.lock().child = Some(child);
        assert_eq!(bgsave_gate(&p, false, false), Some(Err("ERR Background save already in progress")));
        assert_eq!(bgsave_gate(&p, true, false), Some(Err("ERR Background save already in progress")));
        assert!(!p.lock().scheduled);
        let pid = p.lock().child.as_ref().unwrap().pid;
        // SAFETY: reaping the `sleep 0` we started.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
}
