//! What the loop asks of io_uring beyond the `io-uring` crate's defaults, to
//! keep the kernel's per-request work down to the TCP work (issue 14,
//! perf/RESULTS.md "Kernel work per unpipelined request"):
//!
//! - the ring's own descriptor registered (`IORING_REGISTER_RING_FDS`), so
//!   that an `io_uring_enter` looks the ring up in the task's table instead of
//!   an `fget`/`fput` of the ring file per call (the crate keeps that index in
//!   a `Submitter` that lives for one call only, so the enter is made here);
//! - a fixed-file table (`IORING_REGISTER_FILES`, sparse), one slot per
//!   connection index, so a receive or send takes the socket from the ring's
//!   table instead of an `fget`/`fput` of the descriptor per operation. The
//!   ordinary descriptor stays open too: `getpeername`, `setsockopt`,
//!   `shutdown` and CLIENT LIST's `fd=` use it.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{types, IoUring};

const IORING_ENTER_GETEVENTS: u32 = 1 << 0;
const IORING_ENTER_EXT_ARG: u32 = 1 << 3;
const IORING_ENTER_REGISTERED_RING: u32 = 1 << 4;
const IORING_REGISTER_RING_FDS: u32 = 20;

/// Fixed-file slots per shard (connection indexes at or past it use their
/// plain descriptor), bounded by the descriptor limit as the kernel demands.
const FIXED_FILES_MAX: u32 = 1 << 16;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// `struct io_uring_getevents_arg`.
#[repr(C)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

pub struct Uring {
    ring_fd: RawFd,
    /// The registered index of the ring's descriptor, when registered.
    registered: Option<u32>,
    /// Slots in the fixed-file table (0: none registered).
    pub fixed_files: u32,
    /// The kernel takes `min_wait_usec` in a wait (6.12+; an older one
    /// refuses the field with EINVAL, probed once at start).
    pub min_wait: bool,
}

impl Uring {
    pub fn new(ring: &IoUring) -> Uring {
        let ring_fd = ring.as_raw_fd();
        let mut up = RsrcUpdate { offset: u32::MAX, resv: 0, data: ring_fd as u64 };
        // SAFETY: registers one `io_uring_rsrc_update` that lives across the
        // call; the kernel writes the chosen index into `offset`.
        let r = unsafe { libc::syscall(libc::SYS_io_uring_register, ring_fd, IORING_REGISTER_RING_FDS, &mut up as *mut RsrcUpdate, 1) };
        let registered = (r == 1).then_some(up.offset);
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes the struct it is given.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        let want = (limit.rlim_cur.min(FIXED_FILES_MAX as u64) as u32).max(1);
        let fixed_files = match ring.submitter().register_files_sparse(want) {
            Ok(()) => want,
            Err(e) => {
                crate::warning!("io_uring fixed files unavailable ({}); connections use plain descriptors", e);
                0
            }
        };
        let mut uring = Uring { ring_fd, registered, fixed_files, min_wait: false };
        uring.min_wait = uring.probe_min_wait();
        uring
    }

    /// Whether an enter with `min_wait_usec` set is accepted: one that asks
    /// for no completion returns at once on a kernel that knows the field.
    fn probe_min_wait(&self) -> bool {
        let ts = types::Timespec::new();
        let arg = GeteventsArg { sigmask: 0, sigmask_sz: 0, min_wait_usec: 1, ts: &ts as *const types::Timespec as u64 };
        let (fd, flags) = match self.registered {
            Some(i) => (i as RawFd, IORING_ENTER_REGISTERED_RING),
            None => (self.ring_fd, 0),
        };
        // SAFETY: as in `enter`, with nothing to submit and none to wait for.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                0,
                0,
                flags | IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                &arg as *const GeteventsArg as *const libc::c_void,
                std::mem::size_of::<GeteventsArg>(),
            )
        };
        r >= 0
    }

    /// The ring's descriptor is registered (enters skip its `fget`).
    pub fn registered_ring(&self) -> bool {
        self.registered.is_some()
    }

    /// Puts connection `index`'s socket in its fixed slot; false when it
    /// has none (the connection then uses its plain descriptor).
    pub fn install(&self, ring: &IoUring, index: u32, fd: RawFd) -> bool {
        index < self.fixed_files && ring.submitter().register_files_update(index, &[fd]).is_ok()
    }

    /// Empties connection `index`'s slot once no operation uses it (the
    /// table's reference would otherwise keep the socket open).
    pub fn remove(&self, ring: &IoUring, index: u32) {
        let _ = ring.submitter().register_files_update(index, &[-1]);
    }

    /// The target of an operation on a connection's socket.
    #[inline]
    pub fn target(fixed: bool, index: u32, fd: RawFd) -> Target {
        if fixed {
            Target::Fixed(types::Fixed(index))
        } else {
            Target::Fd(types::Fd(fd))
        }
    }

    /// One `io_uring_enter`: submits what is queued, runs the deferred task
    /// work, and waits for `want` completions (at most `timeout` when given).
    pub fn enter(&self, ring: &mut IoUring, want: u32, timeout: Option<&types::Timespec>) -> io::Result<usize> {
        self.enter_min(ring, want, timeout, 0)
    }

    /// `enter` that, with `min_wait_usec` > 0 (only where `min_wait`),
    /// waits for `want` completions at most that long, then returns as soon
    /// as there is one (at `timeout` if none comes).
    pub fn enter_min(&self, ring: &mut IoUring, want: u32, timeout: Option<&types::Timespec>, min_wait_usec: u32) -> io::Result<usize> {
        let to_submit = ring.submission().len() as u32;
        let (fd, mut flags) = match self.registered {
            Some(i) => (i as RawFd, IORING_ENTER_REGISTERED_RING),
            None => (self.ring_fd, 0),
        };
        // Always GETEVENTS: with DEFER_TASKRUN only an enter that carries it
        // runs the task work of the completions that arrived (a receive's
        // data), so the turn that submits also reaps, in one call.
        flags |= IORING_ENTER_GETEVENTS;
        let arg = timeout.map(|ts| GeteventsArg { sigmask: 0, sigmask_sz: 0, min_wait_usec, ts: ts as *const types::Timespec as u64 });
        let (argp, argsz) = match &arg {
            Some(a) => {
                flags |= IORING_ENTER_EXT_ARG;
                (a as *const GeteventsArg as *const libc::c_void, std::mem::size_of::<GeteventsArg>())
            }
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `fd` is this ring (or its registered index, with the flag
        // that says so); `argp` is null or an `io_uring_getevents_arg` (and
        // the timespec it points to) alive across the call; every queued SQE's
        // buffers outlive their completions (`EventLoop::push_sqe`).
        let r = unsafe { libc::syscall(libc::SYS_io_uring_enter, fd, to_submit, want, flags, argp, argsz) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }
}

/// An operation's socket: a fixed slot or a plain descriptor.
#[derive(Clone, Copy)]
pub enum Target {
    Fixed(types::Fixed),
    Fd(types::Fd),
}

/// Builds `$op::new(target, args...)` for either kind of target.
macro_rules! with_target {
    ($target:expr, $op:path, $($arg:expr),*) => {
        match $target {
            $crate::network::uring::Target::Fixed(f) => <$op>::new(f, $($arg),*),
            $crate::network::uring::Target::Fd(f) => <$op>::new(f, $($arg),*),
        }
    };
}
pub(crate) use with_target;

#[cfg(test)]
mod tests {
    use super::Uring;
    use io_uring::{opcode, types, IoUring};
    use std::time::{Duration, Instant};

    /// What the loop's batching wait relies on (`EventLoop::wait`): past
    /// `min_wait_usec` a wait returns if any completion is in the queue
    /// (the turn's sends are), and without one it waits on to its timeout.
    #[test]
    fn min_wait_ends_a_wait_that_has_a_completion() {
        let Ok(mut ring) = IoUring::builder().setup_single_issuer().setup_defer_taskrun().setup_coop_taskrun().build(8) else { return };
        let uring = Uring::new(&ring);
        if !uring.min_wait {
            return; // a kernel before 6.12: the loop never asks for it
        }
        // SAFETY: a NOP points to no memory.
        unsafe { ring.submission().push(&opcode::Nop::new().build().user_data(1)).unwrap() };
        let ts = types::Timespec::from(Duration::from_secs(5));
        let t = Instant::now();
        uring.enter_min(&mut ring, 3, Some(&ts), 20_000).unwrap();
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(15) && waited < Duration::from_secs(2), "waited {waited:?}");
        assert_eq!(ring.completion().map(|c| c.user_data()).collect::<Vec<_>>(), vec![1]);

        let ts = types::Timespec::from(Duration::from_millis(60));
        let t = Instant::now();
        let _ = uring.enter_min(&mut ring, 2, Some(&ts), 5_000);
        assert!(t.elapsed() >= Duration::from_millis(50), "no completion: the wait runs to its timeout, waited {:?}", t.elapsed());
    }
}
