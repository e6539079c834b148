//! The state of the script running now, shared by every thread: a script
//! holds every shard while it runs, so there is at most one (Redis's
//! `scriptRunCtx`, reduced to what other threads must see). The Lua hook
//! reads it every `HOOK_INSTRUCTIONS` instructions; the shards that serve
//! `-BUSY` while a script runs long (`network::script`) read and set it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

/// A -BUSY service (`serving_busy`), its lifetime erased.
type Service = *const (dyn Fn() + 'static);

thread_local! {
    /// The -BUSY service of the script running on this thread
    /// (`serving_busy`), and the last millisecond it ran.
    static SERVICE: Cell<(Option<Service>, i64)> = const { Cell::new((None, 0)) };
}

/// Runs `f` (a script, on this thread) with `serve` as its -BUSY service:
/// once the script is busy, the hook calls `serve` about once a
/// millisecond (Redis's processEventsWhileBlocked from the Lua hook).
pub fn serving_busy<R>(serve: &dyn Fn(), f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SERVICE.with(|s| s.set((None, 0)));
        }
    }
    // SAFETY: only the lifetime is erased: the pointer is taken out again
    // (by `Reset`, on return or unwind) before `serve` goes out of scope,
    // and used only on this thread meanwhile (`serve_now`).
    let erased: Service = unsafe { std::mem::transmute::<*const (dyn Fn() + '_), Service>(serve) };
    SERVICE.with(|s| s.set((Some(erased), 0)));
    let _reset = Reset;
    f()
}

/// The hook's turn of the -BUSY service, at most once a millisecond.
fn serve_now() {
    let Some((service, last)) = SERVICE.with(|s| s.get().0.map(|f| (f, s.get().1))) else {
        return;
    };
    let now = crate::util::unix_ms();
    if now == last {
        return;
    }
    SERVICE.with(|s| s.set((Some(service), now)));
    // SAFETY: set by `serving_busy`, whose `serve` is alive until it
    // returns, on this thread (see there).
    unsafe { (*service)() };
}

/// Redis's `shared.slowevalerr`: what a busy EVAL-family script makes
/// other commands (and FUNCTION KILL) answer.
pub const BUSY_EVAL: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// Redis's `shared.slowscripterr`: the same for a busy function (and
/// SCRIPT KILL).
pub const BUSY_FUNCTION: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// Lua instructions between two calls of the hook (Redis: 100000). Smaller,
/// so that SCRIPT KILL stops a tight loop within a millisecond or so; the
/// hook is a few loads.
pub const HOOK_INSTRUCTIONS: u32 = 10_000;

/// Redis's LOAD_TIMEOUT_MS: the longest a FUNCTION LOAD may run its code.
pub const LOAD_TIMEOUT_MS: i64 = 500;

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
    /// It is an EVAL-family script, not a function (FCALL).
    pub is_eval: AtomicBool,
    /// A function's name and the command that runs it (FUNCTION STATS
    /// while it is busy); taken only when an FCALL starts and by FUNCTION
    /// STATS.
    pub function: Mutex<Option<(String, Vec<Vec<u8>>)>>,
    /// While a library's code loads: when it times out (unix ms); else 0.
    pub load_deadline_ms: AtomicI64,
}

pub static RUN: ScriptRun = ScriptRun {
    running: AtomicBool::new(false),
    started_ms: AtomicI64::new(0),
    threshold_ms: AtomicI64::new(0),
    busy: AtomicBool::new(false),
    kill: AtomicBool::new(false),
    wrote: AtomicBool::new(false),
    is_eval: AtomicBool::new(true),
    function: Mutex::new(None),
    load_deadline_ms: AtomicI64::new(0),
};

impl ScriptRun {
    /// A script starts; `function`: an FCALL's function name and argv.
    pub fn start(&self, threshold_ms: i64, function: Option<(String, Vec<Vec<u8>>)>) {
        self.is_eval.store(function.is_none(), Ordering::Relaxed);
        if function.is_some() {
            *self.function.lock().unwrap_or_else(|p| p.into_inner()) = function;
        }
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

    /// What a command refused while busy answers (-BUSY naming the kill
    /// command that fits the running script).
    pub fn busy_error(&self) -> &'static str {
        if self.is_eval.load(Ordering::Relaxed) {
            BUSY_EVAL
        } else {
            BUSY_FUNCTION
        }
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL while busy: the reply Redis
    /// gives (scriptKill): each kills only its own kind.
    pub fn request_kill(&self, eval: bool) -> Result<(), &'static str> {
        if !self.busy.load(Ordering::Acquire) {
            return Err("NOTBUSY No scripts in execution right now.");
        }
        if self.wrote.load(Ordering::Acquire) {
            return Err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.");
        }
        match (eval, self.is_eval.load(Ordering::Relaxed)) {
            (true, false) => return Err(BUSY_FUNCTION),
            (false, true) => return Err(BUSY_EVAL),
            _ => {}
        }
        self.kill.store(true, Ordering::Release);
        Ok(())
    }

    /// The running function's name, command and duration in ms (FUNCTION
    /// STATS), if a function runs.
    pub fn running_function(&self) -> Option<(String, Vec<Vec<u8>>, i64)> {
        if !self.running.load(Ordering::Acquire) || self.is_eval.load(Ordering::Relaxed) {
            return None;
        }
        let f = self.function.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        Some((f.0, f.1, crate::util::unix_ms() - self.started_ms.load(Ordering::Relaxed)))
    }

    /// The hook's check: Err once killed (again at every call, so a script
    /// that catches the error with pcall is stopped at the next check).
    pub fn hook(&self) -> mlua::Result<mlua::VmState> {
        let deadline = self.load_deadline_ms.load(Ordering::Relaxed);
        if deadline != 0 {
            if crate::util::unix_ms() > deadline {
                return Err(mlua::Error::runtime("FUNCTION LOAD timeout"));
            }
            return Ok(mlua::VmState::Continue);
        }
        if !self.running.load(Ordering::Relaxed) {
            return Ok(mlua::VmState::Continue);
        }
        if self.busy.load(Ordering::Relaxed) {
            // Other clients of this thread (SCRIPT KILL among them).
            serve_now();
        }
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
