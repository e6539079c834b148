//! The dispatch path's part of `maxmemory` (Redis's processCommand check):
//! evict on this shard first, then refuse a command that would use more
//! memory with `-OOM` when nothing more can be evicted.

use super::dispatch::Flow;
use super::event_loop::EventLoop;
use crate::commands::{flags, CommandSpec, CommandTable};
use crate::shard::memory::{perform_evictions, Evict, OOM_ERROR};

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
        let id_of = |name: &str| CommandTable::get().lookup(name.as_bytes());
        let client = &self.conns[index as usize].as_ref()?.client;
        let is_exec = Some(id) == id_of("exec");
        let mut reject = spec.flags & flags::DENYOOM != 0 || (is_exec && client.multi.active && client.multi.flags & flags::DENYOOM != 0);
        if client.multi.active && !is_exec && ![id_of("discard"), id_of("quit"), id_of("reset")].contains(&Some(id)) {
            reject = true;
        }
        let outcome = perform_evictions(&server.memory, self.state(), now, true);
        if outcome == Evict::Fail && reject {
            return Some(self.reject(index, Some(id), OOM_ERROR));
        }
        None
    }

    /// Once per loop turn with a limit set: this shard sheds its share.
    #[cold]
    pub(super) fn maxmemory_turn(&mut self, now: i64) {
        let server = self.server.clone();
        perform_evictions(&server.memory, self.state(), now, false);
    }
}
