//! A provided-buffer ring (IORING_REGISTER_PBUF_RING) for multishot receive.
//! The kernel picks a buffer per completion; we hand it back after parsing.

use std::io;

/// `struct io_uring_buf`: addr, len, bid, resv. The ring's tail overlays the
/// `resv` field of entry 0 (byte offset 14).
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

pub struct BufRing {
    ring: *mut RingEntry,
    ring_bytes: usize,
    bufs: *mut u8,
    bufs_bytes: usize,
    entries: u16,
    pub buf_size: usize,
    tail: u16,
    pub bgid: u16,
    /// The shard's input byte count when last seen, since when it has not
    /// moved, and whether the pages went back since (`release_when_idle`).
    idle_input_bytes: u64,
    idle_since_ms: i64,
    released: bool,
}

/// Input idle this long gives the buffers' pages back (`release_when_idle`).
const RELEASE_IDLE_MS: i64 = 2000;

fn mmap_anon(bytes: usize) -> io::Result<*mut u8> {
    // SAFETY: anonymous private mapping; checked for MAP_FAILED.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // Not inherited by a BGSAVE child: copying these pages at fork would
    // only lengthen the pause (DESIGN: fork hygiene).
    // SAFETY: p..p+bytes is the mapping we just created.
    unsafe { libc::madvise(p, bytes, libc::MADV_DONTFORK) };
    Ok(p as *mut u8)
}

impl BufRing {
    pub fn new(submitter: &io_uring::Submitter<'_>, entries: u16, buf_size: usize, bgid: u16) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let ring_bytes = entries as usize * std::mem::size_of::<RingEntry>();
        let ring = mmap_anon(ring_bytes.max(4096))? as *mut RingEntry;
        let bufs_bytes = entries as usize * buf_size;
        let bufs = mmap_anon(bufs_bytes)?;
        let mut br = BufRing {
            ring,
            ring_bytes: ring_bytes.max(4096),
            bufs,
            bufs_bytes,
            entries,
            buf_size,
            tail: 0,
            bgid,
            idle_input_bytes: 0,
            idle_since_ms: 0,
            released: true,
        };
        // SAFETY: the ring memory stays mapped until `Drop`, after the ring is gone.
        unsafe { submitter.register_buf_ring_with_flags(ring as u64, entries, bgid, 0)? };
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    fn push(&mut self, bid: u16) {
        let idx = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: idx < entries; we write addr/len/bid but never `resv`,
        // which for entry 0 is the shared tail.
        unsafe {
            let e = self.ring.add(idx);
            std::ptr::addr_of_mut!((*e).addr).write(self.bufs.add(bid as usize * self.buf_size) as u64);
            std::ptr::addr_of_mut!((*e).len).write(self.buf_size as u32);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&mut self) {
        // SAFETY: the tail is the u16 at byte 14 of the ring; the kernel reads
        // it with acquire semantics, so a release store publishes the entries.
        unsafe {
            let tail = (self.ring as *mut u8).add(14) as *const std::sync::atomic::AtomicU16;
            (*tail).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }

    /// The bytes the kernel put in buffer `bid`.
    /// # Safety
    /// Valid until `recycle(bid)`.
    pub unsafe fn data<'a>(&self, bid: u16, len: usize) -> &'a [u8] {
        assert!((bid as usize) < self.entries as usize && len <= self.buf_size);
        // SAFETY: buffer `bid` lies inside the mapping (`entries` buffers of
        // `buf_size` bytes, checked above) and the kernel has finished writing
        // its `len` bytes; the caller stops using the slice before recycling it.
        std::slice::from_raw_parts(self.bufs.add(bid as usize * self.buf_size), len)
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Called from the cron with the shard's input byte count: once no
    /// input has arrived for `RELEASE_IDLE_MS`, gives every buffer's pages
    /// back to the kernel (MADV_DONTNEED; the next receive into a buffer
    /// faults in a zero page), as Redis shrinks an idle client's query
    /// buffer. The kernel takes buffers in ring order, so one burst of input
    /// (a `redis-cli --pipe` load) leaves all of them resident: 8 MiB a
    /// shard that an idle server kept for good (measured, perf/RESULTS.md).
    ///
    /// `quiescent` is the caller's word that the kernel cannot write into a
    /// buffer before the next `io_uring_enter` and that no completion naming
    /// a buffer waits unreaped: every buffer is then the kernel's, empty.
    pub fn release_when_idle(&mut self, input_bytes: u64, now_ms: i64, quiescent: bool) {
        if input_bytes != self.idle_input_bytes {
            self.idle_input_bytes = input_bytes;
            self.idle_since_ms = now_ms;
            self.released = false;
            return;
        }
        if self.released || !quiescent || now_ms - self.idle_since_ms < RELEASE_IDLE_MS {
            return;
        }
        // SAFETY: the range is our mapping (`new`); no slice of it is alive
        // (every buffer is recycled before `on_recv` returns) and, by the
        // caller's promise, the kernel writes none of it concurrently: the
        // pages read back as zeros, which is what an unused buffer holds.
        unsafe { libc::madvise(self.bufs as *mut libc::c_void, self.bufs_bytes, libc::MADV_DONTNEED) };
        self.released = true;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe {
            libc::munmap(self.ring as *mut libc::c_void, self.ring_bytes);
            libc::munmap(self.bufs as *mut libc::c_void, self.bufs_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BufRing;

    /// Pages of the buffers resident in memory (mincore).
    fn resident_pages(br: &BufRing) -> usize {
        let pages = br.bufs_bytes.div_ceil(4096);
        let mut vec = vec![0u8; pages];
        // SAFETY: the range is the buffers' mapping; `vec` has a byte a page.
        let rc = unsafe { libc::mincore(br.bufs as *mut libc::c_void, br.bufs_bytes, vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    fn idle_buffers_go_back_to_the_kernel() {
        let ring = match io_uring::IoUring::new(8) {
            Ok(r) => r,
            Err(_) => return, // no io_uring here: nothing to test
        };
        let Ok(mut br) = BufRing::new(&ring.submitter(), 8, 4096, 7) else { return };
        // As a burst of input would: every buffer written.
        // SAFETY: within the buffers' mapping; nothing else uses them.
        unsafe { std::ptr::write_bytes(br.bufs, 0xAB, br.bufs_bytes) };
        assert_eq!(resident_pages(&br), 8);
        br.release_when_idle(100, 0, true);
        br.release_when_idle(100, 1000, true);
        assert_eq!(resident_pages(&br), 8, "input seen 1 s ago: kept");
        br.release_when_idle(100, 2500, false);
        assert_eq!(resident_pages(&br), 8, "not quiescent: kept");
        br.release_when_idle(100, 2500, true);
        assert_eq!(resident_pages(&br), 0, "idle for 2.5 s: given back");
        // SAFETY: buffer 3 lies in the mapping; the kernel holds no data in it.
        assert!(unsafe { br.data(3, 4096) }.iter().all(|&b| b == 0));
        // New input: kept again until the next idle spell.
        // SAFETY: the first buffer, in the mapping, used by nothing else.
        unsafe { std::ptr::write_bytes(br.bufs, 0xCD, 4096) };
        br.release_when_idle(200, 3000, true);
        br.release_when_idle(200, 4000, true);
        // The page written and the one read above (the zero page).
        assert_eq!(resident_pages(&br), 2);
        br.release_when_idle(200, 5000, true);
        assert_eq!(resident_pages(&br), 0);
    }
}
