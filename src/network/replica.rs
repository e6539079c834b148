//! Connections that become replicas (SYNC/PSYNC) and WAIT: what the loop
//! does after such a command ran (`replication`).

use std::os::fd::FromRawFd;

use super::dispatch::Flow;
use super::event_loop::EventLoop;

impl EventLoop {
    /// After a command of connection `index`: SYNC/PSYNC detach it (the
    /// replication thread owns its socket from now on); a WAIT not yet
    /// satisfied defers it (tried again next turn). None: nothing to do.
    /// Always inlined (LLVM kept it a call after every command): two checks.
    #[inline(always)]
    pub(super) fn replication_step(&mut self, index: u32) -> Option<Flow> {
        let repl = &self.conns[index as usize].as_ref()?.client.repl;
        if !repl.wait_pending && repl.sync.is_none() {
            return None;
        }
        self.replication_step_now(index)
    }

    #[inline(never)]
    fn replication_step_now(&mut self, index: u32) -> Option<Flow> {
        let conn = self.conns[index as usize].as_mut()?;
        if conn.client.repl.wait_pending {
            conn.client.repl.wait_pending = false;
            conn.deferred = true;
            conn.paused = true;
            // DEBUG LOADAOF defers the same way; its loader starts here.
            if let Some(job) = conn.client.loadaof.take_job() {
                crate::persistence::aof_reload::spawn(job, &self.server);
            }
            return Some(Flow::Defer);
        }
        let sync = conn.client.repl.sync.take()?;
        self.detach_replica(index, sync);
        Some(Flow::Stop)
    }

    fn detach_replica(&mut self, index: u32, psync: Option<(Vec<u8>, i64)>) {
        let conn = self.conns[index as usize].as_mut().unwrap();
        // SAFETY: dup of the connection's own descriptor; the new one is
        // owned by the Attach below.
        let fd = unsafe { libc::dup(conn.fd) };
        if fd < 0 {
            crate::warning!("Can't hand the replica over: dup: {}", std::io::Error::last_os_error());
            conn.client.close_after_reply = true;
            return;
        }
        // SAFETY: `fd` is ours alone.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let c = &conn.client;
        let att = crate::replication::Attach {
            fd,
            client_id: c.id,
            addr: c.addr.clone(),
            laddr: c.laddr.clone(),
            listening_port: c.repl.listening_port,
            announced_ip: c.repl.announced_ip.clone(),
            psync2: c.repl.psync2,
            psync,
            created_ms: c.created_ms,
        };
        conn.detached = true;
        let server = self.server.clone();
        server.repl.attach(&server, att);
        self.close(index);
    }
}
