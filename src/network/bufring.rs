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
}

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
        let mut br = BufRing { ring, ring_bytes: ring_bytes.max(4096), bufs, bufs_bytes, entries, buf_size, tail: 0, bgid };
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
