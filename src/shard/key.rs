//! A key of the keyspace behind one pointer (8 bytes where `Box<[u8]>` is 16).
//!
//! The table's slot holds one per key, so the 8 bytes are paid a million times
//! per million keys; the length moves into the allocation, as Redis's sds keeps
//! its length in its header: a LEB128 varint (one byte below 128 bytes) then the
//! bytes. A key of up to 15 bytes is one 16-byte jemalloc block, like the sds of
//! a key of up to 12 bytes in Redis (3-byte header and a NUL).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

pub struct Key(NonNull<u8>);

// SAFETY: a Key owns its allocation and gives out only shared references to
// it (`Deref`), like `Box<[u8]>`.
unsafe impl Send for Key {}
// SAFETY: as above: `&Key` gives only `&[u8]`.
unsafe impl Sync for Key {}

/// Bytes of the varint for `n`.
pub(crate) fn varint_len(mut n: usize) -> usize {
    let mut l = 1;
    while n >= 0x80 {
        n >>= 7;
        l += 1;
    }
    l
}

/// Writes the varint of `n` at `p`; returns the bytes written.
///
/// # Safety
/// `p` must be valid for `varint_len(n)` bytes of writes.
pub(crate) unsafe fn write_varint(p: *mut u8, mut n: usize) -> usize {
    let mut i = 0;
    while n >= 0x80 {
        // SAFETY: the caller's promise: `i < varint_len(n)`.
        unsafe { *p.add(i) = (n as u8 & 0x7f) | 0x80 };
        n >>= 7;
        i += 1;
    }
    // SAFETY: as above, the last byte.
    unsafe { *p.add(i) = n as u8 };
    i + 1
}

/// Reads the varint at `p`: (its bytes, the value).
///
/// # Safety
/// `p` must point at a complete varint written by `write_varint`.
#[inline]
pub(crate) unsafe fn read_varint(p: *const u8) -> (usize, usize) {
    // SAFETY: the caller's promise: at least one byte.
    let b0 = unsafe { *p };
    if b0 < 0x80 {
        return (1, b0 as usize);
    }
    let (mut n, mut shift, mut i) = (0usize, 0, 0);
    loop {
        // SAFETY: the varint ends at the first byte below 0x80.
        let b = unsafe { *p.add(i) };
        n |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b < 0x80 {
            return (i, n);
        }
        shift += 7;
    }
}

impl Key {
    pub fn new(bytes: &[u8]) -> Key {
        let head = varint_len(bytes.len());
        let layout = Layout::from_size_align(head + bytes.len(), 1).expect("key layout");
        // SAFETY: the layout's size is at least 1 (the varint).
        let p = unsafe { alloc(layout) };
        let Some(p) = NonNull::new(p) else { handle_alloc_error(layout) };
        // SAFETY: `head` varint bytes then `bytes.len()` bytes fill exactly
        // the `head + len` bytes just allocated.
        unsafe {
            write_varint(p.as_ptr(), bytes.len());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.as_ptr().add(head), bytes.len());
        }
        Key(p)
    }

    /// (varint bytes, key length).
    #[inline]
    fn header(&self) -> (usize, usize) {
        // SAFETY: the allocation starts with a complete varint (`new`).
        unsafe { read_varint(self.0.as_ptr()) }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        let (head, len) = self.header();
        // SAFETY: `len` initialised bytes follow the varint, owned by self.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(head), len) }
    }

    /// The allocation's address, for a prefetch: unlike `as_ptr()` of the
    /// bytes it reads nothing (the length's varint would be a load).
    #[inline]
    pub fn raw_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    pub fn into_boxed(self) -> Box<[u8]> {
        self.as_bytes().into()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        let (head, len) = self.header();
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { dealloc(self.0.as_ptr(), Layout::from_size_align_unchecked(head + len, 1)) }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Clone for Key {
    fn clone(&self) -> Key {
        Key::new(self)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// `a == b` without a call to `memcmp` for the lengths keys mostly have:
/// 4 to 32 bytes compared as two or four overlapping words (a 16-byte key
/// such as redis-benchmark's `key:000000123456` is two loads a side). A
/// lookup that finds its key compares it once, so `memcmp`'s call (~30
/// instructions for 16 bytes) was a tenth of what a hit cost in the table.
#[inline(always)]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w32 = |s: &[u8], i: usize| u32::from_ne_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    let w64 = |s: &[u8], i: usize| u64::from_ne_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    match n {
        4..=7 => w32(a, 0) == w32(b, 0) && w32(a, n - 4) == w32(b, n - 4),
        8..=16 => w64(a, 0) == w64(b, 0) && w64(a, n - 8) == w64(b, n - 8),
        17..=32 => w64(a, 0) == w64(b, 0) && w64(a, 8) == w64(b, 8) && w64(a, n - 16) == w64(b, n - 16) && w64(a, n - 8) == w64(b, n - 8),
        _ => a == b,
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

/// Hashes as the key's bytes do, so a table of `Key`s is searched by `&[u8]`
/// (set members, `types/set.rs`).
impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Key {
        Key::new(b)
    }
}

impl From<Box<[u8]>> for Key {
    fn from(b: Box<[u8]>) -> Key {
        Key::new(&b)
    }
}

impl From<Vec<u8>> for Key {
    fn from(b: Vec<u8>) -> Key {
        Key::new(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::{bytes_eq, Key};

    /// `bytes_eq` is `==` for every length around its word classes, with
    /// one byte changed at every position, and for unequal lengths.
    #[test]
    fn bytes_eq_is_slice_equality() {
        for n in 0usize..=40 {
            let a: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            assert!(bytes_eq(&a, &a.clone()), "len {n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!bytes_eq(&a, &b) && !bytes_eq(&b, &a), "len {n}, byte {i}");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!bytes_eq(&a, &longer) && !bytes_eq(&longer, &a), "len {n} vs {}", n + 1);
        }
    }

    #[test]
    fn round_trips_every_length_class() {
        for len in [0usize, 1, 15, 127, 128, 129, 300, 16383, 16384, 70_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let k = Key::new(&bytes);
            assert_eq!(&k[..], &bytes[..], "len {}", len);
            assert_eq!(k.clone(), k);
            assert_eq!(&k.into_boxed()[..], &bytes[..]);
        }
        assert_eq!(std::mem::size_of::<Key>(), 8);
        assert_eq!(std::mem::size_of::<Option<Key>>(), 8);
    }
}
