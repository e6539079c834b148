//! The state of the script running now, shared by every thread: a script
//! holds every shard while it runs, so there is at most one (Redis's
//! `scriptRunCtx`, reduced to what other threads must see). The Lua hook
//! reads it every `HOOK_INSTRUCTIONS` instructions; the shards that serve
//! `-BUSY` while a script runs long (`network::script`) read and set it.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Lua instructions between two calls of the hook (Redis: 100000). Smaller,
/// so that SCRIPT KILL stops a tight loop within a millisecond or so; the
/// hook is a few loads.
pub const HOOK_INSTRUCTIONS: u32 = 10_000;

/// Redis's error text for a script stopped by SCRIPT KILL.
pub const KILLED: &str = "Script killed by user with SCRIPT KILL...";

pub struct ScriptRun {
    /// A script runs now.
    pub running: AtomicBool,
    /// When it started (unix ms).
    pub started_ms: AtomicI64,
    /// `busy-reply-threshold` (lua-time-limit) as read when it started; 0: never busy.
    pub threshold_ms: AtomicI64,
    /// Past the threshold: other clients get -BUSY, SCRIPT KILL works.
    pub busy: AtomicBool,
    /// SCRIPT KILL asked it to stop.
    pub kill: AtomicBool,
    /// It has run a write command: it cannot be killed (-UNKILLABLE).
    pub wrote: AtomicBool,
}

pub static RUN: ScriptRun = ScriptRun {
    running: AtomicBool::new(false),
    started_ms: AtomicI64::new(0),
    threshold_ms: AtomicI64::new(0),
    busy: AtomicBool::new(false),
    kill: AtomicBool::new(false),
    wrote: AtomicBool::new(false),
};

impl ScriptRun {
    pub fn start(&self, threshold_ms: i64) {
        self.started_ms.store(crate::util::unix_ms(), Ordering::Relaxed);
        self.threshold_ms.store(threshold_ms, Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    pub fn end(&self) {
        self.running.store(false, Ordering::Release);
        self.busy.store(false, Ordering::Release);
        self.kill.store(false, Ordering::Relaxed);
    }

    /// Whether other clients get -BUSY now (one relaxed load).
    #[inline]
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// SCRIPT KILL while busy: the reply Redis gives.
    pub fn request_kill(&self) -> Result<(), &'static str> {
        if !self.busy.load(Ordering::Acquire) {
            return Err("NOTBUSY No scripts in execution right now.");
        }
        if self.wrote.load(Ordering::Acquire) {
            return Err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
        }
        self.kill.store(true, Ordering::Release);
        Ok(())
    }

    /// The hook's check: Err once killed (again at every call, so a script
    /// that catches the error with pcall is stopped at the next check).
    pub fn hook(&self) -> mlua::Result<mlua::VmState> {
        if self.kill.load(Ordering::Acquire) {
            return Err(mlua::Error::runtime(KILLED));
        }
        if !self.busy.load(Ordering::Relaxed) {
            let threshold = self.threshold_ms.load(Ordering::Relaxed);
            let elapsed = crate::util::unix_ms() - self.started_ms.load(Ordering::Relaxed);
            if threshold > 0 && elapsed >= threshold {
                crate::warning!(
                    "Slow script detected: still in execution after {} milliseconds. You can try killing the script using the SCRIPT KILL command.",
                    elapsed
                );
                self.busy.store(true, Ordering::Release);
            }
        }
        Ok(mlua::VmState::Continue)
    }
}
