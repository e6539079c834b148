//! Sequential file output through io_uring with O_DIRECT: 1 MiB aligned
//! buffers written at aligned offsets, a few in flight, the file
//! preallocated ahead (extending writes on ext4 gain nothing from depth,
//! preallocation does), the tail padded to the block size then truncated to
//! the exact length, fsync. Where O_DIRECT is refused (EINVAL: tmpfs, some
//! FUSE) it falls back to buffered writes through the same ring.
//!
//! The CRC-64 of everything written through `write` is kept on the way.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types, IoUring};

pub const CHUNK_BYTES: usize = 1 << 20;
const ALIGN: usize = 4096;
const DEPTH: usize = 4;
const PREALLOCATE_BYTES: u64 = 64 << 20;

struct AlignedBuf {
    ptr: *mut u8,
}

impl AlignedBuf {
    fn new() -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(CHUNK_BYTES, ALIGN).unwrap();
        // SAFETY: non-zero size layout.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null(), "out of memory allocating an O_DIRECT buffer");
        AlignedBuf { ptr }
    }
    fn slice_mut(&mut self) -> &mut [u8] {
        // SAFETY: CHUNK_BYTES bytes allocated in `new`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, CHUNK_BYTES) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(CHUNK_BYTES, ALIGN).unwrap();
        // SAFETY: allocated with this layout in `new`.
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

pub struct DirectWriter {
    fd: RawFd,
    pub direct: bool,
    ring: IoUring,
    bufs: Vec<AlignedBuf>,
    busy: [bool; DEPTH],
    cur: usize,
    fill: usize,
    file_offset: u64,
    preallocated_to: u64,
    /// Logical bytes written (the file's final length).
    pub total: u64,
    crc: crc_fast::Digest,
}

fn cpath(path: &str) -> io::Result<CString> {
    CString::new(path).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

impl DirectWriter {
    pub fn create(path: &str) -> io::Result<DirectWriter> {
        let c = cpath(path)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        // SAFETY: open(2) with a valid C string.
        let mut fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_DIRECT, 0o644) };
        let mut direct = true;
        if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            direct = false;
            // SAFETY: as above.
            fd = unsafe { libc::open(c.as_ptr(), flags, 0o644) };
        }
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let ring = IoUring::new(8)?;
        Ok(DirectWriter {
            fd,
            direct,
            ring,
            bufs: (0..DEPTH).map(|_| AlignedBuf::new()).collect(),
            busy: [false; DEPTH],
            cur: 0,
            fill: 0,
            file_offset: 0,
            preallocated_to: 0,
            total: 0,
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis),
        })
    }

    /// Appends bytes covered by the checksum.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        while !data.is_empty() {
            let room = CHUNK_BYTES - self.fill;
            let n = room.min(data.len());
            let fill = self.fill;
            self.bufs[self.cur].slice_mut()[fill..fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            self.total += n as u64;
            data = &data[n..];
            if self.fill == CHUNK_BYTES {
                self.submit_current(CHUNK_BYTES)?;
            }
        }
        Ok(())
    }

    /// The CRC-64 (Jones) of everything written so far.
    pub fn crc(&self) -> u64 {
        self.crc.finalize()
    }

    /// Appends bytes not covered by the checksum (the checksum itself).
    pub fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        let saved = self.crc;
        self.write(data)?;
        self.crc = saved;
        Ok(())
    }

    fn submit_current(&mut self, len: usize) -> io::Result<()> {
        if self.direct {
            debug_assert_eq!(len % ALIGN, 0, "O_DIRECT length must be block aligned");
            debug_assert_eq!(self.file_offset % ALIGN as u64, 0, "O_DIRECT offset must be block aligned");
        }
        if self.file_offset + len as u64 > self.preallocated_to {
            let want = self.file_offset + PREALLOCATE_BYTES;
            // SAFETY: fallocate on our descriptor; failure only loses the speed-up.
            if unsafe { libc::fallocate(self.fd, 0, self.preallocated_to as i64, (want - self.preallocated_to) as i64) } == 0 {
                self.preallocated_to = want;
            } else {
                self.preallocated_to = u64::MAX;
            }
        }
        let e = opcode::Write::new(types::Fd(self.fd), self.bufs[self.cur].ptr, len as u32)
            .offset(self.file_offset)
            .build()
            .user_data(((self.cur as u64) << 32) | len as u64);
        // SAFETY: the buffer stays allocated and untouched until its completion is reaped.
        unsafe { self.ring.submission().push(&e).map_err(|_| io::Error::other("submission queue full"))? };
        self.ring.submit()?;
        self.busy[self.cur] = true;
        self.file_offset += len as u64;
        self.cur = (self.cur + 1) % DEPTH;
        self.fill = 0;
        while self.busy[self.cur] {
            self.reap(1)?;
        }
        Ok(())
    }

    fn reap(&mut self, want: usize) -> io::Result<()> {
        self.ring.submit_and_wait(want)?;
        let done: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (ud, res) in done {
            let idx = (ud >> 32) as usize;
            let len = (ud & 0xffff_ffff) as i32;
            if res < 0 {
                return Err(io::Error::from_raw_os_error(-res));
            }
            if res != len {
                return Err(io::Error::new(io::ErrorKind::WriteZero, format!("short write: {} of {} bytes", res, len)));
            }
            self.busy[idx] = false;
        }
        Ok(())
    }

    /// Writes the tail, waits for everything, truncates to the exact length, fsyncs.
    pub fn finish(mut self) -> io::Result<u64> {
        if self.fill > 0 {
            let len = if self.direct { self.fill.div_ceil(ALIGN) * ALIGN } else { self.fill };
            let fill = self.fill;
            self.bufs[self.cur].slice_mut()[fill..len].fill(0);
            self.submit_current(len)?;
        }
        while self.busy.iter().any(|&b| b) {
            self.reap(1)?;
        }
        // SAFETY: plain syscalls on our descriptor.
        unsafe {
            if libc::ftruncate(self.fd, self.total as i64) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::fsync(self.fd) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(self.total)
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        // SAFETY: closing our descriptor once.
        unsafe { libc::close(self.fd) };
    }
}

/// rename(2) then fsync of the directory, so the new dump survives a crash.
pub fn rename_durably(from: &str, to: &str, dir: &str) -> io::Result<()> {
    std::fs::rename(from, to)?;
    let d = cpath(dir)?;
    // SAFETY: open/fsync/close of a directory descriptor.
    unsafe {
        let fd = libc::open(d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::fsync(fd);
            libc::close(fd);
        }
    }
    Ok(())
}
