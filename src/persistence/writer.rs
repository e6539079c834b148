//! Sequential file output through io_uring with O_DIRECT: aligned buffers
//! written at aligned offsets, a few in flight, the file preallocated ahead
//! (extending writes on ext4 gain nothing from depth, preallocation does),
//! the tail padded to the block size then truncated to the exact length,
//! fsync. Where O_DIRECT is refused (EINVAL: tmpfs, some FUSE) it falls back
//! to buffered writes through the same ring.
//!
//! Two ways in: `write` copies bytes into the writer's own aligned buffers;
//! `write_chunk` takes a filled buffer (made by `chunk_buffer`, whose bytes
//! from `start` on begin at an aligned address) and, when it starts at an
//! aligned file offset and is a whole number of blocks (the snapshot's
//! serialisers cut their chunks that way), writes it from where it lies, so
//! a dump's bytes are copied once (into the chunk) instead of twice. Chunks
//! come back through `take_done` once the disk has them.
//!
//! The CRC-64 of everything written through `write` and `write_chunk` is
//! kept on the way.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types, IoUring};

pub const CHUNK_BYTES: usize = 1 << 20;
/// O_DIRECT's alignment for addresses, lengths and offsets (the page size
/// covers every logical block size in use).
pub const ALIGN: usize = 4096;
/// Writes in flight.
const DEPTH: usize = 4;
const PREALLOCATE_BYTES: u64 = 64 << 20;
/// Tag bit marking a write from a caller's chunk (see `submit`).
const OWNED: u64 = 1 << 63;

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

/// One write in flight: its memory, length, file offset, and whose buffer.
struct Op {
    ptr: *const u8,
    len: usize,
    offset: u64,
    tag: u64,
}

pub struct DirectWriter {
    fd: RawFd,
    pub direct: bool,
    ring: IoUring,
    bufs: Vec<AlignedBuf>,
    busy: [bool; DEPTH],
    cur: usize,
    fill: usize,
    /// Callers' chunks being written, with the writes still pending on each.
    owned: Vec<Option<(Vec<u8>, usize)>>,
    /// Chunks the disk has, for `take_done`.
    done: Vec<Vec<u8>>,
    /// The writes in flight, by the `user_data` of their submission.
    ops: Vec<Option<Op>>,
    free_ops: Vec<usize>,
    in_flight: usize,
    file_offset: u64,
    preallocated_to: u64,
    /// Logical bytes written (the file's final length).
    pub total: u64,
    /// Chunks written in place / copied (for the debug log).
    pub chunks_in_place: u64,
    pub chunks_copied: u64,
    crc: crc_fast::Digest,
}

/// A buffer for `write_chunk` with room for `capacity` bytes of data:
/// returns it with filler bytes up to `start`, the first aligned address in
/// it (no allocator promises that alignment for a `Vec<u8>`).
pub fn chunk_buffer(capacity: usize) -> (Vec<u8>, usize) {
    let mut v = Vec::with_capacity(capacity + ALIGN);
    let start = reset_chunk(&mut v);
    (v, start)
}

/// Empties a chunk buffer for reuse; returns its new `start`.
pub fn reset_chunk(v: &mut Vec<u8>) -> usize {
    v.clear();
    let start = (ALIGN - v.as_ptr() as usize % ALIGN) % ALIGN;
    v.resize(start, 0);
    start
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
        let ring = IoUring::new(2 * DEPTH as u32)?;
        Ok(DirectWriter {
            fd,
            direct,
            ring,
            bufs: (0..DEPTH).map(|_| AlignedBuf::new()).collect(),
            busy: [false; DEPTH],
            cur: 0,
            fill: 0,
            owned: Vec::new(),
            done: Vec::new(),
            ops: Vec::new(),
            free_ops: Vec::new(),
            in_flight: 0,
            file_offset: 0,
            preallocated_to: 0,
            total: 0,
            chunks_in_place: 0,
            chunks_copied: 0,
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis),
        })
    }

    /// Appends bytes covered by the checksum, copying them.
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

    /// Appends `chunk[start..]`, covered by the checksum: written from where
    /// it lies when the alignment allows, else copied. Either way the chunk
    /// comes back through `take_done`.
    pub fn write_chunk(&mut self, chunk: Vec<u8>, start: usize) -> io::Result<()> {
        if self.fill > 0 && (!self.direct || self.fill.is_multiple_of(ALIGN)) {
            // What `write` left is a whole number of blocks: out with it, so
            // the chunk starts at an aligned offset.
            self.submit_current(self.fill)?;
        }
        let data = &chunk[start..];
        let aligned = !self.direct || ((data.as_ptr() as usize).is_multiple_of(ALIGN) && data.len().is_multiple_of(ALIGN));
        if self.fill > 0 || !aligned || data.is_empty() {
            self.write(data)?;
            self.chunks_copied += 1;
            self.done.push(chunk);
            return Ok(());
        }
        self.crc.update(data);
        let (ptr, len) = (data.as_ptr(), data.len());
        self.total += len as u64;
        self.chunks_in_place += 1;
        let slot = match self.owned.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None => {
                self.owned.push(None);
                self.owned.len() - 1
            }
        };
        self.owned[slot] = Some((chunk, len.div_ceil(CHUNK_BYTES)));
        let mut off = 0;
        while off < len {
            let n = (len - off).min(CHUNK_BYTES);
            // SAFETY: inside the chunk, which stays in `owned` (a Vec's heap
            // memory does not move with it) until its every write completed.
            let p = unsafe { ptr.add(off) };
            self.submit(p, n, OWNED | (slot as u64) << 32 | n as u64)?;
            off += n;
        }
        Ok(())
    }

    /// Takes the completions already there, without waiting, so that the
    /// chunks the disk has are in `take_done` as soon as possible.
    pub fn reap_ready(&mut self) -> io::Result<()> {
        if self.in_flight > 0 && !self.ring.completion().is_empty() {
            self.reap(0)?;
        }
        Ok(())
    }

    /// Writes submitted and not completed yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Waits for at least one write in flight to complete.
    pub fn wait_one(&mut self) -> io::Result<()> {
        if self.in_flight > 0 {
            self.reap(1)?;
        }
        Ok(())
    }

    /// A chunk the disk has (or that was copied), to be filled again.
    pub fn take_done(&mut self) -> Option<Vec<u8>> {
        self.done.pop()
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

    /// Writes the first `len` bytes of the current buffer and moves on to
    /// the next one, once the disk is done with it.
    fn submit_current(&mut self, len: usize) -> io::Result<()> {
        let cur = self.cur;
        // Marked before: `submit` may reap this very write.
        self.busy[cur] = true;
        self.submit(self.bufs[cur].ptr, len, (cur as u64) << 32 | len as u64)?;
        self.cur = (cur + 1) % DEPTH;
        self.fill = 0;
        while self.busy[self.cur] {
            self.reap(1)?;
        }
        Ok(())
    }

    /// Queues one write; `tag` says whose buffer it is (a slot of `bufs`,
    /// or `OWNED` and a slot of `owned`, in the high half), kept in `ops`
    /// with where the write goes, so that a short write can be finished.
    fn submit(&mut self, ptr: *const u8, len: usize, tag: u64) -> io::Result<()> {
        if self.direct {
            debug_assert_eq!(len % ALIGN, 0, "O_DIRECT length must be block aligned");
            debug_assert_eq!(self.file_offset % ALIGN as u64, 0, "O_DIRECT offset must be block aligned");
        }
        if self.file_offset + len as u64 > self.preallocated_to {
            let want = self.file_offset + len as u64 + PREALLOCATE_BYTES;
            // SAFETY: fallocate on our descriptor; failure only loses the speed-up.
            if unsafe { libc::fallocate(self.fd, 0, self.preallocated_to as i64, (want - self.preallocated_to) as i64) } == 0 {
                self.preallocated_to = want;
            } else {
                self.preallocated_to = u64::MAX;
            }
        }
        let op = Op { ptr, len, offset: self.file_offset, tag };
        let slot = match self.free_ops.pop() {
            Some(i) => {
                self.ops[i] = Some(op);
                i
            }
            None => {
                self.ops.push(Some(op));
                self.ops.len() - 1
            }
        };
        let e = opcode::Write::new(types::Fd(self.fd), ptr, len as u32).offset(self.file_offset).build().user_data(slot as u64);
        // SAFETY: the memory stays allocated and untouched until the completion is reaped.
        if unsafe { self.ring.submission().push(&e) }.is_err() {
            self.ops[slot] = None;
            self.free_ops.push(slot);
            return Err(io::Error::other("submission queue full"));
        }
        // Counted before submit(2): should it fail, the entry is still in
        // the queue and will go with the next submission.
        self.in_flight += 1;
        self.file_offset += len as u64;
        self.ring.submit()?;
        while self.in_flight >= DEPTH {
            self.reap(1)?;
        }
        Ok(())
    }

    /// Takes every completion the ring has (at least `want`). Each one is
    /// accounted for before an error is returned: a save that fails must
    /// still know that nothing of its is in flight, or `Drop` would wait for
    /// completions that were already taken (a full disk left BGSAVE children
    /// waiting in io_cqring_wait forever).
    fn reap(&mut self, want: usize) -> io::Result<()> {
        self.ring.submit_and_wait(want)?;
        let done: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        let mut first_error = None;
        for (ud, res) in done {
            self.in_flight -= 1;
            let op = self.ops[ud as usize].take().expect("completion of an unknown write");
            self.free_ops.push(ud as usize);
            let outcome = if res < 0 {
                Err(io::Error::from_raw_os_error(-res))
            } else if (res as usize) < op.len {
                // A short write (the disk filled up under it, a signal): the
                // rest goes again, synchronously, so that a full disk is
                // reported with its own errno, ENOSPC, as Redis's write() does.
                // SAFETY: the rest lies inside the buffer of this write,
                // which stays allocated until this function returns.
                self.write_rest(unsafe { op.ptr.add(res as usize) }, op.len - res as usize, op.offset + res as u64)
            } else {
                Ok(())
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
            let idx = ((op.tag & !OWNED) >> 32) as usize;
            if op.tag & OWNED == 0 {
                self.busy[idx] = false;
            } else if let Some((_, pending)) = self.owned[idx].as_mut() {
                *pending -= 1;
                if *pending == 0 {
                    let (chunk, _) = self.owned[idx].take().unwrap();
                    self.done.push(chunk);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// pwrite(2) until `len` bytes at `ptr` are at `offset`, or an error.
    fn write_rest(&self, mut ptr: *const u8, mut len: usize, mut offset: u64) -> io::Result<()> {
        while len > 0 {
            // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
            let n = unsafe { libc::pwrite(self.fd, ptr as *const libc::c_void, len, offset as i64) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
            }
            // SAFETY: n <= len, still inside the same buffer.
            ptr = unsafe { ptr.add(n as usize) };
            len -= n as usize;
            offset += n as u64;
        }
        Ok(())
    }

    /// Writes the tail, waits for everything, truncates to the exact length
    /// (the write-out a buffered writer's fflush does), then fsyncs.
    pub fn finish(mut self) -> io::Result<u64> {
        let total = self.flush()?;
        self.sync()?;
        Ok(total)
    }

    /// Writes the tail, waits for everything, truncates to the exact length.
    pub fn flush(&mut self) -> io::Result<u64> {
        if self.fill > 0 {
            let len = if self.direct { self.fill.div_ceil(ALIGN) * ALIGN } else { self.fill };
            let fill = self.fill;
            self.bufs[self.cur].slice_mut()[fill..len].fill(0);
            self.submit_current(len)?;
        }
        while self.in_flight > 0 {
            self.reap(1)?;
        }
        // SAFETY: a plain syscall on our descriptor.
        if unsafe { libc::ftruncate(self.fd, self.total as i64) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.total)
    }

    /// fsync(2) of the file.
    pub fn sync(&mut self) -> io::Result<()> {
        // SAFETY: a plain syscall on our descriptor.
        if unsafe { libc::fsync(self.fd) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        // Writes still in flight (an error ended the save) point into our
        // buffers: wait for them before the memory goes.
        while self.in_flight > 0 {
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            let n = self.ring.completion().count();
            self.in_flight = self.in_flight.saturating_sub(n);
        }
        // SAFETY: closing our descriptor once.
        unsafe { libc::close(self.fd) };
    }
}

/// rename(2) then fsync of the directory, so the new dump survives a crash.
///
/// Returns the dump it replaced, still open: its blocks are freed when the
/// caller drops it, after the save is reported. Dropped here, the unlink
/// would free them inside the directory fsync, which on a file system
/// mounted with `discard` waits for the device to trim them (measured here:
/// 130-175 ms for a 1 GB dump, a fifth of the whole save).
pub fn rename_durably(from: &str, to: &str, dir: &str) -> io::Result<Option<std::fs::File>> {
    let previous = std::fs::File::open(to).ok();
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
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every write to /dev/full fails with ENOSPC. Three writes fail and
    /// have completed before the writer looks (the sleep), so one reap takes
    /// three errors: the save must end with ENOSPC, and dropping the writer
    /// must not wait for completions already taken (it did, forever).
    #[test]
    fn a_failing_disk_ends_the_save_with_its_errno_and_never_hangs() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut w = DirectWriter::create("/dev/full").unwrap();
            // Three whole buffers: three writes in flight, fewer than DEPTH,
            // so none is reaped yet.
            let result = w.write(&vec![1u8; 3 * CHUNK_BYTES]);
            std::thread::sleep(std::time::Duration::from_millis(200));
            let result = result.and_then(|_| w.finish().map(|_| ()));
            let _ = tx.send(result.map_err(|e| (e.raw_os_error(), e.to_string())));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the writer hung after a write error");
        let (errno, text) = got.expect_err("writes to /dev/full succeeded");
        assert_eq!(errno, Some(libc::ENOSPC), "{text}");
        assert!(text.contains("No space left on device"), "{text}");
    }

    #[test]
    fn chunks_written_in_place_or_copied_make_one_file() {
        let dir = std::env::temp_dir().join(format!("ringkv-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.bin");
        let mut w = DirectWriter::create(path.to_str().unwrap()).unwrap();
        let mut expect = Vec::new();
        w.write(&[7u8; ALIGN]).unwrap();
        expect.extend_from_slice(&[7u8; ALIGN]);
        let mut spare: Vec<Vec<u8>> = Vec::new();
        for i in 0..40u32 {
            let (mut c, start) = match spare.pop() {
                Some(mut c) => {
                    let start = reset_chunk(&mut c);
                    (c, start)
                }
                None => chunk_buffer(CHUNK_BYTES),
            };
            // Mostly whole chunks; a short one now and then (a section's end)
            // followed by a block-sized one (the padding that realigns).
            let len = match i % 7 {
                5 => 1000 + i as usize,
                6 => ALIGN - (1000 + i as usize - 1) % ALIGN,
                _ => CHUNK_BYTES,
            };
            c.extend((0..len).map(|j| (j as u32 ^ i) as u8));
            expect.extend_from_slice(&c[start..]);
            w.write_chunk(c, start).unwrap();
            while let Some(d) = w.take_done() {
                spare.push(d);
            }
        }
        w.write(b"tail").unwrap();
        expect.extend_from_slice(b"tail");
        let crc = w.crc();
        assert!(w.chunks_in_place > 0, "no chunk was written in place");
        assert_eq!(w.finish().unwrap(), expect.len() as u64);
        let got = std::fs::read(&path).unwrap();
        assert!(got == expect, "file differs from what was written");
        assert_eq!(crc, crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, &expect));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
