//! The dispatch path's part of `maxmemory` (Redis's processCommand check):
//! evict on this shard first, then refuse a command that would use more
//! memory with `-OOM` when nothing more can be evicted.

use std::sync::OnceLock;

use super::dispatch::Flow;
use super::event_loop::EventLoop;
use crate::commands::{flags, CommandSpec, CommandTable};
use crate::shard::memory::{perform_evictions, Evict, OOM_ERROR};

/// Table ids of EXEC, DISCARD, QUIT and RESET.
fn ids() -> &'static [usize; 4] {
    static IDS: OnceLock<[usize; 4]> = OnceLock::new();
    IDS.get_or_init(|| ["exec", "discard", "quit", "reset"].map(|n| CommandTable::get().lookup(n.as_bytes()).expect("registered")))
}

impl EventLoop {
    /// Called only with a limit set. Some(flow) when the command was refused.
    ///
    /// As Redis 7.0: refused are the commands flagged denyoom, EXEC whose
    /// queue holds one, and, in MULTI, every command but EXEC, DISCARD,
    /// QUIT and RESET (queueing takes memory); a refusal in MULTI flags the
    /// transaction, a refused EXEC aborts it (`reject`).
    #[cold]
    pub(super) fn maxmemory_step(&mut self, index: u32, id: usize, spec: &CommandSpec, now: i64) -> Option<Flow> {
        let server = self.server.clone();
        let [exec, discard, quit, reset] = *ids();
        let client = &self.conns[index as usize].as_ref()?.client;
        let is_exec = id == exec;
        let mut reject = spec.flags & flags::DENYOOM != 0 || (is_exec && client.multi.active && client.multi.flags & flags::DENYOOM != 0);
        if client.multi.active && !is_exec && ![discard, quit, reset].contains(&id) {
            reject = true;
        }
        let outcome = perform_evictions(&server.memory, self.state(), now, true);
        if outcome == Evict::Fail && reject {
            return Some(self.reject(index, Some(id), OOM_ERROR));
        }
        None
    }

    /// Once per loop turn with a limit set: this shard sheds its share
    /// (not while the dataset loads: Redis evicts only for commands).
    #[cold]
    pub(super) fn maxmemory_turn(&mut self, now: i64) {
        let server = self.server.clone();
        if server.loading.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        perform_evictions(&server.memory, self.state(), now, false);
    }
}
