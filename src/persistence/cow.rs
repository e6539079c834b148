//! A shard thread's allocations while a snapshot child runs.
//!
//! After fork() every page of the server is shared with the child until one
//! side writes it. The server's own writes are what the child's copy-on-write
//! mostly counts (`perf/bgsave_cow.py`): and the largest part of them, under a
//! SET load, were not the keyspace entries the commands changed but the new
//! values' allocations. jemalloc hands a thread back the region it freed last
//! (the thread cache is a stack): the old value of an overwritten key is freed,
//! the next value takes its place, and every such page, shared with the child,
//! is copied.
//!
//! So while a child exists each shard thread allocates from an arena of its
//! own (`arenas.create`, made once, kept for later snapshots) with its thread
//! cache off: new allocations land in pages the child never mapped, and frees
//! of memory from before the fork go straight back to the arena they came
//! from (jemalloc keeps small regions' free bitmaps in its slab metadata, not
//! in the freed region), where nothing allocates until the child is gone.
//! When it is, the thread returns to its arena and its cache.
//!
//! The cost, only during a snapshot: every allocation and free takes its
//! bin's (uncontended) lock instead of the thread cache's stack. What it does
//! not cover: holes in the snapshot arena itself, left by values freed since
//! an earlier snapshot, are reused as before (that arena is small next to the
//! main one), and allocations of threads other than the shards' (Lua's
//! allocator is the C library's).

use tikv_jemalloc_ctl::raw;

/// One shard thread's switch between its own arena and its snapshot arena.
#[derive(Default)]
pub struct SnapshotArena {
    /// The thread's arena outside snapshots (read when first switching).
    main: Option<u32>,
    /// The snapshot arena, created on the first snapshot.
    snap: Option<u32>,
    /// Allocations go to `snap` with the thread cache off now.
    on: bool,
    /// A control call failed once: stay out of the way from then on.
    broken: bool,
}

impl SnapshotArena {
    /// Follows the server's "a child exists" flag: one branch per loop turn
    /// when it has not changed.
    #[inline]
    pub fn follow(&mut self, child_exists: bool) {
        if child_exists != self.on {
            self.switch(child_exists);
        }
    }

    #[cold]
    fn switch(&mut self, on: bool) {
        self.on = on;
        if self.broken {
            return;
        }
        let ok = if on { self.enter() } else { self.leave() };
        if !ok {
            self.broken = true;
            crate::warning!("Could not switch the allocator arena for a snapshot child (jemalloc control call failed): allocations stay where they were");
        }
    }

    fn enter(&mut self) -> bool {
        // SAFETY: jemalloc 5's controls: `thread.arena` reads and writes an
        // unsigned, `arenas.create` reads one; no pointer outlives the call.
        let main = match self.main {
            Some(a) => a,
            None => match unsafe { raw::read::<u32>(b"thread.arena\0") } {
                Ok(a) => *self.main.insert(a),
                Err(_) => return false,
            },
        };
        let snap = match self.snap {
            Some(a) => a,
            // SAFETY: as above.
            None => match unsafe { raw::read::<u32>(b"arenas.create\0") } {
                Ok(a) => *self.snap.insert(a),
                Err(_) => return false,
            },
        };
        debug_assert_ne!(main, snap);
        // The thread cache first: it holds regions of the main arena, and
        // would hand them out again; disabling it flushes them back.
        // SAFETY: `thread.tcache.enabled` reads and writes a bool.
        unsafe { raw::write(b"thread.tcache.enabled\0", false).is_ok() && raw::write(b"thread.arena\0", snap).is_ok() }
    }

    fn leave(&mut self) -> bool {
        let Some(main) = self.main else { return false };
        // SAFETY: as in `enter`.
        unsafe { raw::write(b"thread.arena\0", main).is_ok() && raw::write(b"thread.tcache.enabled\0", true).is_ok() }
    }

    /// The arena this thread allocates from now (for tests).
    pub fn current() -> Option<u32> {
        // SAFETY: as in `enter`.
        unsafe { raw::read::<u32>(b"thread.arena\0") }.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    /// jemalloc's arena of an allocation (`arenas.lookup`).
    fn arena_of(p: *mut c_void) -> u32 {
        let mut arena = 0u32;
        let mut len = std::mem::size_of::<u32>();
        let mut ptr = p;
        // SAFETY: `arenas.lookup` reads a pointer and writes an unsigned, both
        // on this stack, with their sizes.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arenas.lookup".as_ptr(),
                &mut arena as *mut u32 as *mut c_void,
                &mut len,
                &mut ptr as *mut *mut c_void as *mut c_void,
                std::mem::size_of::<*mut c_void>(),
            )
        };
        assert_eq!(rc, 0, "arenas.lookup");
        arena
    }

    fn tcache_on() -> bool {
        // SAFETY: `thread.tcache.enabled` reads a bool.
        unsafe { raw::read::<bool>(b"thread.tcache.enabled\0") }.unwrap()
    }

    #[test]
    fn allocations_go_to_the_snapshot_arena_while_a_child_exists_and_back() {
        // A thread of its own: the test harness's threads keep their arenas.
        std::thread::spawn(|| {
            let mut a = SnapshotArena::default();
            let main = SnapshotArena::current().unwrap();
            a.follow(false);
            assert_eq!(SnapshotArena::current(), Some(main));
            a.follow(true);
            let snap = SnapshotArena::current().unwrap();
            assert_ne!(snap, main);
            assert!(!tcache_on());
            // SAFETY: jemalloc's own malloc and free, paired.
            unsafe {
                let p = tikv_jemalloc_sys::malloc(64);
                assert_eq!(arena_of(p), snap);
                a.follow(false);
                assert_eq!(SnapshotArena::current(), Some(main));
                assert!(tcache_on());
                let q = tikv_jemalloc_sys::malloc(64);
                assert_eq!(arena_of(q), main);
                // Freed from the main arena's thread: still its arena's.
                tikv_jemalloc_sys::free(p);
                tikv_jemalloc_sys::free(q);
            }
            // The next child: the same snapshot arena, not another one.
            a.follow(true);
            assert_eq!(SnapshotArena::current(), Some(snap));
            a.follow(false);
            assert_eq!(SnapshotArena::current(), Some(main));
        })
        .join()
        .unwrap();
    }
}
