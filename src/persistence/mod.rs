//! Persistence: the RDB format, the O_DIRECT writer, and snapshots (SAVE in
//! the foreground, BGSAVE in a forked child), plus loading at start-up.
//!
//! The behaviour a user sees (the README points here; the design of each part
//! is in its own file).
//!
//! # RDB snapshots and their metrics
//!
//! `BGSAVE` holds every shard (between commands), forks, and resumes; the child writes
//! `temp-<pid>.rdb` (RDB version 10, loadable by Redis 7.0+ and Valkey: AUX fields, one section
//! per shard, LZF strings, CRC-64/Jones), fsyncs, renames over `dbfilename` and fsyncs the
//! directory. Each section ends with an AUX field `ringkv-pad` (zeros) so that the next one
//! starts at a 4 KiB offset and the serialised chunks go to the disk from where they lie;
//! loaders skip unknown AUX fields. LZF differs from Redis in two ways that only make some
//! strings be stored raw where Redis would store them compressed (never a wrong file): a
//! string whose first 256 bytes saved under 1/32 is given up, and after 64 strings in a row
//! that did not compress, strings up to 4 KiB are tried one in 16 until one compresses.
//! Save points, `stop-writes-on-bgsave-error` (`-MISCONF`), `rdbcompression`,
//! `rdbchecksum`, SHUTDOWN/FLUSHALL/DEBUG RELOAD behave as in Redis; the log lines are Redis's.
//! At start-up the dump (RDB versions 1-12) is loaded; a corrupt or truncated file
//! refuses to start with Redis's log lines (and the offset). A disk error during a save (a full
//! disk: `No space left on device`) fails that save with Redis's log line, removes the temp file
//! and sets `rdb_last_bgsave_status:err` (then `-MISCONF` for writes and PING, as Redis, while
//! `stop-writes-on-bgsave-error yes`). The BGSAVE child closes every descriptor it inherits
//! (listening and client sockets, the shards' rings), so a parent killed with -9 mid-save can be
//! restarted on the same port at once.
//!
//! `INFO persistence` and `INFO stats` carry Redis's fields (`rdb_*`, `current_cow_*`,
//! `latest_fork_usec`, `total_forks`, ...). `INFO snapshot` (ringkv's own section) gives
//! p50/p99/p999/max and counts of the fork() time, the whole pause, the barrier wait, the
//! copy-on-write bytes per snapshot, and command latency inside vs outside snapshot windows;
//! `DEBUG SNAPSHOT-STATS` returns those histograms in full (`name -> [[value, count], ...]`).
//! `CONFIG RESETSTAT` resets them. The `fork` event is in `LATENCY LATEST/HISTORY` when above
//! `latency-monitor-threshold`.
//!
//! # The append-only file
//!
//! With `appendonly yes` at start, ringkv loads `appenddirname/` as Redis 7.0 does (manifest,
//! base `.rdb`/`.aof`, incr files; a pre-7.0 `appendonly.aof` is upgraded as Redis upgrades it)
//! or creates base, incr and manifest with Redis's names; every write then goes, in its replay
//! form by Redis 7.0's rules (SET ... PXAT, PEXPIREAT, DEL for expired keys, multi-shard
//! commands as one unit), from each shard's write stream (`src/exec/propagate.rs`) to a writer
//! thread (`src/persistence/aof_file.rs`) that never blocks a shard: it waits in an io_uring of
//! its own (shards ring it with MSG_RING when they hand bytes over) and appends with
//! IORING_OP_WRITE, then IORING_OP_FSYNC (DATASYNC): linked to the write under
//! `appendfsync always` (a reply leaves only once its write is fsynced; one fsync covers every
//! write any shard handed over while the previous one ran), about once a second under
//! `everysec` (a write waits up to 2 s for a pending fsync, then goes ahead and counts
//! `aof_delayed_fsync`, as Redis), never under `no`. Under `everysec` and `no` a reply leaves
//! once the write of what it acknowledges completed (page cache), as Redis writes its AOF
//! buffer before it sends replies; as Redis, the replies of a write postponed behind a
//! pending fsync, or of a write that failed, go without it. With `--shards 1` there is no writer
//! thread: the shard's loop drives the writer on its own ring (the write and its linked fsync
//! submitted at the end of the loop turn, the fsync's completion returned to the shard). Under
//! `always` each connection's output waits for the hand-over number of the last loop turn that
//! added to it, so every group commit releases its own replies while later ones are still in
//! flight (up to 4 fsyncs overlap). SHUTDOWN and SIGTERM fsync it. With
//! `aof-timestamp-enabled yes` each shard's stream writes `#TS:<unix seconds>` before a command
//! when the second changed, and the merge keeps one annotation per second, as Redis writes
//! them.
//!
//! Write errors as Redis 7.0: a failed or short append is logged ("Error writing to the AOF
//! file: ...", "Short write while writing to the AOF file: ...", at most every 30 s), the short
//! part is cut off with ftruncate, the bytes are kept and retried each second;
//! `aof_last_write_status:err` and writes (and PING) get `-MISCONF Errors writing to the AOF
//! file: <strerror>` until a write succeeds ("AOF write error looks solved, Redis can write
//! again."). A full disk (ENOSPC) thus recovers when space returns. One deviation: under
//! `always` Redis exits on a write or fsync error (its replies are already buffered); ringkv has
//! not sent them, so it keeps the writers' replies until their bytes are durable and answers the
//! other connections.
//!
//! Back-pressure: at most `AOF_PENDING_BYTES_LIMIT` (64 MiB) handed over and not yet written;
//! past it every shard holds its replies until the writer catches up (clients stop, nothing is
//! dropped), counted in `aof_inbox_limit_hits` (INFO's `# Snapshot` section).
//!
//! `redis-check-aof` accepts the directory and redis-server loads it with the same data; ringkv
//! loads redis-server's. INFO persistence has the `aof_*` fields. At start-up the dataset (the
//! AOF with `appendonly yes`, the RDB otherwise) loads while the server already listens, as in
//! Redis 7.0: commands without the `loading` flag are answered `-LOADING Redis is loading the
//! dataset in memory`, INFO persistence shows `loading:1` and the `loading_*` fields, and the
//! hidden `key-load-delay` (microseconds per key, or per AOF command) slows the load for tests.
//! The data is loaded off the shards and handed to them at once when complete (they are held, as
//! for a multi-shard command), so no command sees half a dataset. SHUTDOWN while loading saves
//! nothing; SIGTERM then ends the process at once. `loading_loaded_bytes` advances with the RDB
//! part only (not with an AOF's commands).
//! `appendfsync` and `no-appendfsync-on-rewrite` set by CONFIG SET reach the writer at its next
//! turn.
//!
//! BGREWRITEAOF (`src/persistence/aof_rewrite.rs`) is Redis 7.0's rewrite on BGSAVE's fork
//! machinery: at the fork, every shard held, each shard's write stream is handed to the writer,
//! which switches to a new incr file (next seq, manifest persisted) exactly at that cut: it
//! finishes the old file with everything handed over before the cut (the write and fsyncs in
//! flight, then an fsync whatever the policy), closes it and appends to the new one, so the
//! child's image plus the new incr file are the dataset (no rewrite buffer). The child writes the
//! new base with the same per-shard O_DIRECT writer as BGSAVE (`.base.rdb`, RDB preamble with
//! `aof-base` 1) or, with `aof-use-rdb-preamble no`, as commands (`.base.aof`: SET,
//! RPUSH/SADD/ZADD/HMSET of up to 64 elements, PEXPIREAT;
//! fsynced every 4 MB with `aof-rewrite-incremental-fsync yes`); on success the parent renames it
//! into the directory, makes the incr files it covers history, writes the manifest (temp file,
//! fsync, rename, directory fsync) and deletes the history files, with Redis's log lines. A failed
//! rewrite leaves its incr file in the manifest, `aof_last_bgrewrite_status:err`, as Redis 7.0
//! does. The interplay with BGSAVE is Redis's, reply for reply (tests/aof_rewrite.rs runs the same
//! sequence against redis-server): `Another child process is active (AOF?)` for BGSAVE during a
//! rewrite, `BGSAVE SCHEDULE` runs the save when the rewrite ends (`BGSAVE CANCEL` drops it),
//! BGREWRITEAOF during a BGSAVE is `scheduled`, a second one `already in progress`. BGREWRITEAOF
//! with `appendonly no` writes a base and a manifest naming only it. `CONFIG SET appendonly yes`
//! starts a rewrite (AOF_WAIT_REWRITE: `aof_enabled:1`, appends collected in
//! `temp-appendonly.aof.incr`, renamed into the manifest when the rewrite succeeds, dropped and
//! the rewrite retried when it fails); `appendonly no` fsyncs and closes the file (what a failing
//! disk still refuses is dropped, as Redis drops its buffer) and kills a running rewrite; with
//! `appendonly no` the writer thread idles without a file. The cron starts scheduled rewrites
//! and automatic ones (`auto-aof-rewrite-percentage` over `aof_base_size`, above `auto-aof-rewrite-min-size`, with
//! Redis's back-off after 3 failures); `no-appendfsync-on-rewrite yes` holds fsyncs while any
//! child runs. INFO has the rewrite fields (`aof_rewrite_in_progress`, `aof_rewrite_scheduled`,
//! `aof_last_rewrite_time_sec`, `aof_current_rewrite_time_sec`, `aof_last_bgrewrite_status`,
//! `aof_rewrites`, `aof_last_cow_size`, `current_save_keys_*` and `current_cow_*` during it), and
//! `INFO snapshot`'s fork/pause/copy-on-write histograms count rewrites too.
//! Not yet: the manifest is written and the history files deleted on the shard that reaps the
//! child (a few small fsyncs), not on a background thread as Redis's bio does.

pub mod aof;
pub mod aof_file;
pub mod aof_reload;
pub mod aof_rewrite;
pub mod cow;
pub mod lanes;
pub mod lzf;
pub mod payload;
pub mod rdb;
pub mod rdb_load;
pub mod snapshot;
pub mod writer;

pub use snapshot::{Persistence, SaveStatus};
