//! Statistics kept per shard and summed on demand (INFO, SLOWLOG, LATENCY).
//! Counters are plain integers: only the owning thread writes them, readers
//! hold the shard.

pub mod histogram;
pub mod latency;
pub mod slowlog;

use std::collections::HashMap;

#[derive(Clone, Copy, Default, Debug)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
}

#[derive(Default)]
pub struct ShardStats {
    /// Indexed by the command's id in the command table (subcommands have their own ids).
    pub commands: Vec<CommandStat>,
    /// Error replies by their first word (`ERR`, `WRONGTYPE`, ...).
    pub errors: HashMap<String, u64>,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
    pub total_commands: u64,
    pub total_connections: u64,
    pub rejected_connections: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub total_error_replies: u64,
    pub client_query_buffer_limit_disconnections: u64,
    pub client_output_buffer_limit_disconnections: u64,
    /// Commands that waited because a mailbox to another shard was at its
    /// bound (`shard::mailbox::REQUESTS_OUTSTANDING_MAX` and friends).
    pub mailbox_backoffs: u64,
    /// Loop waits that asked for a batch (`batch-wait-usec`, `EventLoop::wait`).
    pub batch_waits: u64,
    /// A streaming connection's runs of commands this shard ran with the
    /// other shards they named held (`network::dispatch`, "Streaming over
    /// shards"), and the commands in them.
    pub stream_held_runs: u64,
    pub stream_held_commands: u64,
    /// Runs of a batch's single-shard commands taken with the other
    /// shards they named asleep, not forwarded (`network::dispatch`,
    /// "Taken asleep"), and the commands in them.
    pub asleep_held_runs: u64,
    pub asleep_held_commands: u64,
    /// Command latency histogram in microseconds (log2 buckets, for INFO latencystats).
    pub slowlog: slowlog::SlowLog,
    pub latency: latency::LatencyMonitor,
    pub cpu_usec_user: u64,
    /// Time spent in active expiry cycles (INFO's `expire_cycle_cpu_milliseconds`).
    pub expire_cycle_usec: u64,
    /// Per command id, the latency histogram behind INFO latencystats
    /// (allocated on a command's first call on this shard).
    pub command_latency: Vec<Option<histogram::LatencyHistogram>>,
}

impl ShardStats {
    /// The per-command tables sized for every command id (CONFIG
    /// RESETSTAT), as a shard's first call sizes them: grown to each id on
    /// its first call instead (48 bytes an id), the first call of a high
    /// id (INFO's) took 12 KB for good after a client had read used memory
    /// (the TCL unit maxmemory takes its limit from that read). Sized when
    /// each shard thread starts instead, the tables made
    /// tests/maxmemory.rs's keyspace-events eviction at 3 shards fail every
    /// run (OOM) for a reason not found (perf/RESULTS.md, memfix19).
    pub fn new() -> ShardStats {
        let ids = crate::commands::CommandTable::get().specs.len();
        let mut stats = ShardStats::default();
        stats.commands.resize(ids, CommandStat::default());
        stats.command_latency.resize_with(ids, || None);
        stats
    }

    /// After every command: one bounds test per table and the histogram's
    /// presence test inline; the first call of a command id (tables grown,
    /// histogram allocated) out of line. `tracking` (`latency-tracking`):
    /// the histogram is allocated and updated only while it is on, as
    /// Redis's `call` does (a histogram is ~12 KB of used_memory).
    #[inline]
    pub fn record_call(&mut self, cmd: usize, usec: u64, failed: bool, tracking: bool) {
        self.total_commands += 1;
        let (Some(s), Some(h)) = (self.commands.get_mut(cmd), self.command_latency.get_mut(cmd)) else {
            return self.record_first_call(cmd, usec, failed, tracking);
        };
        s.calls += 1;
        s.usec += usec;
        s.failed_calls += failed as u64;
        if tracking {
            match h {
                Some(h) => h.record(usec),
                None => Self::first_histogram(h, usec),
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn record_first_call(&mut self, cmd: usize, usec: u64, failed: bool, tracking: bool) {
        // Sized for every id at the first call on this shard (`new`'s reason).
        let ids = crate::commands::CommandTable::get().specs.len().max(cmd + 1);
        if self.commands.len() <= cmd {
            self.commands.resize(ids, CommandStat::default());
        }
        let s = &mut self.commands[cmd];
        s.calls += 1;
        s.usec += usec;
        s.failed_calls += failed as u64;
        if self.command_latency.len() <= cmd {
            self.command_latency.resize_with(ids, || None);
        }
        if tracking {
            Self::first_histogram(&mut self.command_latency[cmd], usec);
        }
    }

    /// A command's first call with latency tracking on (on this shard).
    #[cold]
    #[inline(never)]
    fn first_histogram(h: &mut Option<histogram::LatencyHistogram>, usec: u64) {
        h.get_or_insert_with(Default::default).record(usec);
    }

    /// A blocked command of id `cmd` that was served an error (its call was
    /// counted when it blocked): Redis's failed_calls on unblock.
    pub fn record_failed(&mut self, cmd: usize) {
        if self.commands.len() <= cmd {
            self.commands.resize(cmd + 1, CommandStat::default());
        }
        self.commands[cmd].failed_calls += 1;
    }
    pub fn record_rejected(&mut self, cmd: Option<usize>) {
        if let Some(cmd) = cmd {
            if self.commands.len() <= cmd {
                self.commands.resize(cmd + 1, CommandStat::default());
            }
            self.commands[cmd].rejected_calls += 1;
        }
    }
    pub fn record_error(&mut self, kind: &str) {
        self.total_error_replies += 1;
        if let Some(n) = self.errors.get_mut(kind) {
            *n += 1;
        } else {
            self.errors.insert(kind.to_string(), 1);
        }
    }
    /// CONFIG RESETSTAT: the slowlog and the latency monitor's events stay
    /// (Redis resets them only with SLOWLOG RESET and LATENCY RESET).
    pub fn reset(&mut self) {
        let slowlog = std::mem::take(&mut self.slowlog);
        let latency = std::mem::take(&mut self.latency);
        *self = ShardStats { slowlog, latency, ..ShardStats::new() };
    }
}
