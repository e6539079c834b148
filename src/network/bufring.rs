//! A provided-buffer ring (IORING_REGISTER_PBUF_RING) for multishot receive.
//! The kernel picks a buffer per completion; we hand it back after parsing.
//!
//! The kernel takes the ring's entries in order and a buffer given back
//! goes in at the tail, so, left alone, each receive lands in the buffer
//! used `entries` receives before (cold in cache). `hot_first` moves the
//! buffers given back in a turn to the front of the ring before the loop's
//! `io_uring_enter`, so the next receives reuse them, and the buffers are
//! `buf_size + 64` bytes apart so their first lines fall in different
//! cache sets (perf/RESULTS.md, "The per-batch network path").

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
    /// Bytes from one buffer's start to the next's (`buf_size + STAGGER`).
    stride: usize,
    tail: u16,
    /// Buffers given back since the last `hot_first` (at the ring's back).
    recent: u16,
    /// Completions naming a buffer seen (`taken`) and buffers given back
    /// (`recycle`), both wrapping: equal when every buffer is the kernel's.
    taken_count: u32,
    recycled_count: u32,
    pub bgid: u16,
    /// The shard's input byte count when last seen, since when it has not
    /// moved, and whether the pages went back since (`release_when_idle`).
    idle_input_bytes: u64,
    idle_since_ms: i64,
    released: bool,
}

/// Input idle this long gives the buffers' pages back (`release_when_idle`).
const RELEASE_IDLE_MS: i64 = 2000;

/// Bytes between the starts of two buffers beyond `buf_size`: one cache
/// line, so buffer k's first line is k lines past a `buf_size` multiple.
const STAGGER: usize = 64;

/// `IORING_CQE_F_BUFFER`: the completion names a buffer.
const CQE_F_BUFFER: u32 = 1;

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
        let stride = buf_size + STAGGER;
        let bufs_bytes = entries as usize * stride;
        let bufs = mmap_anon(bufs_bytes)?;
        let mut br = BufRing {
            ring,
            ring_bytes: ring_bytes.max(4096),
            bufs,
            bufs_bytes,
            entries,
            buf_size,
            stride,
            tail: 0,
            recent: 0,
            taken_count: 0,
            recycled_count: 0,
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
            std::ptr::addr_of_mut!((*e).addr).write(self.buf_addr(bid) as u64);
            std::ptr::addr_of_mut!((*e).len).write(self.buf_size as u32);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Where buffer `bid` starts (`bid < entries`).
    #[inline]
    fn buf_addr(&self, bid: u16) -> *mut u8 {
        // SAFETY: for bid < entries the offset lies inside the mapping of
        // `entries * stride` bytes, `stride >= buf_size` bytes before its end or more.
        unsafe { self.bufs.add(bid as usize * self.stride) }
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
        std::slice::from_raw_parts(self.buf_addr(bid), len)
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
        self.recent = self.recent.saturating_add(1);
        self.recycled_count = self.recycled_count.wrapping_add(1);
    }

    /// Counts the completions just read from the completion queue that
    /// name a buffer (each one the kernel took from the ring; each is
    /// given back by exactly one `recycle`). Every read of the ring's
    /// completions passes them here, once.
    #[inline]
    pub fn taken(&mut self, cqes: &[(u64, i32, u32)]) {
        let n = cqes.iter().filter(|c| c.2 & CQE_F_BUFFER != 0).count();
        self.taken_count = self.taken_count.wrapping_add(n as u32);
    }

    /// Moves the buffers given back since the last call to the front of
    /// the ring, the last one given back first, so that the next receives
    /// land in memory still warm from the last ones.
    ///
    /// Only when the ring is full: every buffer the kernel took has been
    /// reported (`quiescent`: the caller's word that no completion waits
    /// unread and the kernel takes buffers only inside this thread's
    /// `io_uring_enter`, i.e. DEFER_TASKRUN) and given back (`taken` ==
    /// `recycle`s). The kernel's head is then `tail - entries`, every slot
    /// holds a buffer that is the kernel's, none is read by it before the
    /// next enter, and any permutation of the slots is the same set of
    /// buffers. Otherwise nothing moves (the count carries over: the
    /// buffers stay at the back, where `recycle` put them).
    pub fn hot_first(&mut self, quiescent: bool) {
        if self.recent == 0 || !quiescent || self.taken_count != self.recycled_count {
            return;
        }
        let n = self.recent.min(self.entries / 2);
        self.recent = 0;
        let mask = self.entries - 1;
        for j in 0..n {
            // The j-th newest (back) and the j-th to be taken (front):
            // disjoint slots, as n <= entries / 2.
            let back = (self.tail.wrapping_sub(1 + j) & mask) as usize;
            let front = (self.tail.wrapping_add(j) & mask) as usize;
            // SAFETY: both indexes are below `entries`; the ring is full and
            // the kernel reads no slot until the next enter (see above); we
            // swap addr/len/bid, never `resv` (entry 0's is the shared tail).
            unsafe {
                let (a, b) = (self.ring.add(back), self.ring.add(front));
                let (aa, al, ab) = ((*a).addr, (*a).len, (*a).bid);
                std::ptr::addr_of_mut!((*a).addr).write((*b).addr);
                std::ptr::addr_of_mut!((*a).len).write((*b).len);
                std::ptr::addr_of_mut!((*a).bid).write((*b).bid);
                std::ptr::addr_of_mut!((*b).addr).write(aa);
                std::ptr::addr_of_mut!((*b).len).write(al);
                std::ptr::addr_of_mut!((*b).bid).write(ab);
            }
        }
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

    /// One multishot receive on a socket pair, served by `br` (group 1):
    /// writes `msg` to the peer, waits for the completion and returns its
    /// buffer id (after checking the bytes), counted as `taken`.
    fn receive_one(ring: &mut io_uring::IoUring, br: &mut BufRing, peer: i32, msg: &[u8]) -> u16 {
        // SAFETY: writes from a live slice to a socket this test owns.
        assert_eq!(unsafe { libc::write(peer, msg.as_ptr() as *const libc::c_void, msg.len()) }, msg.len() as isize);
        ring.submit_and_wait(1).unwrap();
        let cqes: Vec<(u64, i32, u32)> = ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
        assert_eq!(cqes.len(), 1, "{cqes:?}");
        br.taken(&cqes);
        let (_, res, flags) = cqes[0];
        assert!(io_uring::cqueue::more(flags), "the multishot receive goes on");
        let bid = io_uring::cqueue::buffer_select(flags).expect("a buffer");
        // SAFETY: the completion's buffer, not yet given back.
        assert_eq!(unsafe { br.data(bid, res as usize) }, msg);
        bid
    }

    #[test]
    fn receives_reuse_the_buffer_given_back_last() {
        // DEFER_TASKRUN: the kernel takes buffers only inside our enters.
        let Ok(mut ring) = io_uring::IoUring::builder().setup_single_issuer().setup_defer_taskrun().build(8) else { return };
        let Ok(mut br) = BufRing::new(&ring.submitter(), 8, 4096, 1) else { return };
        let mut fds = [0i32; 2];
        // SAFETY: socketpair writes two descriptors into `fds`.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }, 0);
        let recv = io_uring::opcode::RecvMulti::new(io_uring::types::Fd(fds[0]), 1).build().user_data(42);
        // SAFETY: the descriptor and the buffer ring outlive the operation.
        unsafe { ring.submission().push(&recv).unwrap() };
        // Each receive given back before the next, as the loop does: always
        // the same (warm) buffer, where ring order would take 0, 1, 2, ...
        let first = receive_one(&mut ring, &mut br, fds[1], b"*1\r\n$4\r\nPING\r\n");
        for i in 0..20 {
            br.recycle(first);
            br.hot_first(true);
            assert_eq!(receive_one(&mut ring, &mut br, fds[1], format!("request {i}").as_bytes()), first);
        }
        // A buffer taken and not given back (a completion still being
        // handled): nothing moves, and the receive after takes the next one
        // in ring order, never the buffer still held.
        let held = first;
        br.hot_first(true);
        let second = receive_one(&mut ring, &mut br, fds[1], b"second");
        assert_ne!(second, held);
        br.recycle(second);
        br.hot_first(true);
        let third = receive_one(&mut ring, &mut br, fds[1], b"third");
        assert_ne!(third, held, "the held buffer is not in the ring");
        assert_ne!(third, second, "unbalanced counts: the ring order stands");
        // Both given back: the last one goes first again.
        br.recycle(held);
        br.recycle(third);
        br.hot_first(true);
        assert_eq!(receive_one(&mut ring, &mut br, fds[1], b"fourth"), third);
        // Not quiescent (a completion unread, say): nothing moves.
        br.recycle(third);
        br.hot_first(false);
        let fifth = receive_one(&mut ring, &mut br, fds[1], b"fifth");
        assert_ne!(fifth, third);
        // Distinct buffers, one cache line apart beyond their size.
        assert_eq!(br.buf_addr(1) as usize - br.buf_addr(0) as usize, 4096 + super::STAGGER);
        // SAFETY: closing the descriptors this test opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
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
        let all = br.bufs_bytes.div_ceil(4096);
        assert_eq!(resident_pages(&br), all);
        br.release_when_idle(100, 0, true);
        br.release_when_idle(100, 1000, true);
        assert_eq!(resident_pages(&br), all, "input seen 1 s ago: kept");
        br.release_when_idle(100, 2500, false);
        assert_eq!(resident_pages(&br), all, "not quiescent: kept");
        br.release_when_idle(100, 2500, true);
        assert_eq!(resident_pages(&br), 0, "idle for 2.5 s: given back");
        // SAFETY: buffer 3 lies in the mapping; the kernel holds no data in it.
        assert!(unsafe { br.data(3, 64) }.iter().all(|&b| b == 0));
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
