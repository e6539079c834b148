//! Small helpers shared by every module: clocks.

use std::time::{SystemTime, UNIX_EPOCH};

#[inline]
pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[inline]
pub fn unix_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// What C's `printf("%.Ns")` prints of a Redis argument (an sds, which may
/// hold any byte): the bytes before the first NUL, at most `max` of them.
/// Error texts that quote a client's argument are built this way in Redis,
/// so they keep its raw bytes (no UTF-8 replacement) and stop at a NUL.
#[inline]
pub fn printf_str(arg: &[u8], max: usize) -> &[u8] {
    let end = memchr::memchr(0, arg).unwrap_or(arg.len()).min(max);
    &arg[..end]
}

/// Case-insensitive ASCII comparison of a command argument with a keyword.
#[inline]
pub fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Parses a Redis cpu list (`bgsave_cpulist` and friends): comma-separated
/// `N`, `A-B` or `A-B:STRIDE`. None when malformed.
pub fn parse_cpulist(list: &str) -> Option<Vec<usize>> {
    let mut cpus = vec![];
    for part in list.split(',') {
        let (range, stride) = match part.split_once(':') {
            Some((r, s)) => (r, s.parse::<usize>().ok().filter(|&s| s > 0)?),
            None => (part, 1),
        };
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let a = range.parse::<usize>().ok()?;
                (a, a)
            }
        };
        if a > b || b >= libc::CPU_SETSIZE as usize {
            return None;
        }
        cpus.extend((a..=b).step_by(stride));
    }
    Some(cpus)
}

/// Pins the calling thread (and the threads it starts later) to `cpus`.
pub fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) affects this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// getrusage(2) for `who` (RUSAGE_SELF, _CHILDREN, _THREAD): (user, system) microseconds.
pub fn rusage_usec(who: libc::c_int) -> (u64, u64) {
    // SAFETY: getrusage fills a plain struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime), us(ru.ru_stime))
}

/// Asks the CPU to bring the cache line at `p` in (a hint: never faults,
/// whatever the address).
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Redis's `sdscatrepr`: `s` double-quoted with C escapes (`\\ \" \n \r
/// \t \a \b`), printable ASCII as is, `\xHH` for every other byte. MONITOR
/// lines and the AOF manifest quote with it.
pub fn cat_repr(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            c => out.extend_from_slice(&[b'\\', b'x', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]),
        }
    }
    out.push(b'"');
}

/// `jemalloc-bg-thread` (Redis's `set_jemalloc_bg_thread`): jemalloc's
/// background thread returns freed pages to the kernel as they decay. Without
/// it the purge happens only inside allocation calls, so a server that went
/// idle after a burst of growth (a collection's tables reallocated, a big
/// value freed) kept those pages resident: a 500k-member set read 71 MB of RSS
/// growth for 30 MB allocated. No effect where jemalloc is not the allocator.
pub fn apply_jemalloc_bg_thread(config: &crate::config::Config) {
    let on = config.others.get("jemalloc-bg-thread").is_none_or(|v| v == "yes");
    let _ = tikv_jemalloc_ctl::background_thread::write(on);
}

/// Gives the pages of every arena's free memory back to the kernel now
/// (jemalloc's `arena.<MALLCTL_ARENAS_ALL>.purge`). The BGSAVE child calls it
/// first: the pages it inherited from the server's free lists are of no use
/// to it, and while it maps them, each one the server purges or reuses
/// afterwards (its background thread decays the free pages over
/// `dirty_decay_ms`) stays in the child as a private copy, counted in the
/// child's copy-on-write. False where the call failed.
pub fn purge_allocator() -> bool {
    // MALLCTL_ARENAS_ALL in jemalloc 5.
    const NAME: &std::ffi::CStr = c"arena.4096.purge";
    // SAFETY: a NUL-terminated control name; `purge` reads and writes
    // nothing, so every pointer is null and the length 0, as it requires.
    unsafe { tikv_jemalloc_sys::mallctl(NAME.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0) == 0 }
}

/// Fills `out` from the kernel's random source (`getRandomBytes`, for ACL
/// GENPASS); falls back to a time-seeded xorshift only if it is unreadable.
pub fn random_bytes(out: &mut [u8]) {
    use std::io::Read;
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(out)).is_ok() {
        return;
    }
    let mut seed = unix_us() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for b in out.iter_mut() {
        *b = crate::shard::keyspace::xorshift(&mut seed) as u8;
    }
}

/// Empties bucket `i` of an open-addressing table with linear probing
/// (power-of-two length, `T::default()` = empty), moving back the entries
/// of the run after it that would no longer be reachable from their home
/// bucket (Knuth's algorithm R: no tombstones). `home(b)` is the hash of
/// entry `b` (masked here). The caller counts the entry gone.
#[inline]
pub fn backward_shift_remove<T: Copy + Default + PartialEq>(slots: &mut [T], mut i: usize, home: impl Fn(T) -> usize) {
    let mask = slots.len() - 1;
    let empty = T::default();
    let mut j = i;
    loop {
        j = (j + 1) & mask;
        let b = slots[j];
        if b == empty {
            break;
        }
        // Move it back to `i` unless its home lies cyclically in (i, j].
        if (j.wrapping_sub(home(b)) & mask) >= (j.wrapping_sub(i) & mask) {
            slots[i] = b;
            i = j;
        }
    }
    slots[i] = empty;
}

#[cfg(test)]
mod cpulist_tests {
    use super::parse_cpulist;

    #[test]
    fn parses_redis_cpu_lists() {
        assert_eq!(parse_cpulist("1,10-11"), Some(vec![1, 10, 11]));
        assert_eq!(parse_cpulist("0-7:2"), Some(vec![0, 2, 4, 6]));
        assert_eq!(parse_cpulist("3"), Some(vec![3]));
        assert_eq!(parse_cpulist(""), None);
        assert_eq!(parse_cpulist("2-1"), None);
        assert_eq!(parse_cpulist("0-3:0"), None);
        assert_eq!(parse_cpulist("a"), None);
    }
}
