//! A field and its value in one allocation, behind one pointer: the entry of
//! a big hash (`types/hash.rs`).
//!
//! Redis's `hashtable` hash pays a dictEntry (24 bytes, a 32-byte class) and
//! two sds; an `IndexMap<Box<[u8]>, Box<[u8]>>` paid a 40-byte entry and two
//! allocations (94 bytes a field against Redis's 75 for a 500k-field hash,
//! perf/RESULTS.md). A `Pair` is 8 bytes in the set's 16-byte entry and one
//! allocation: a varint field length, the field, a varint value length, the
//! value (as `shard/key.rs` keeps a key).
//!
//! A `Pair` *is* its field as far as hashing and equality go (`Hash`, `Eq`
//! and `Borrow<[u8]>` see the field only), so an `IndexSet<Pair>` is a map
//! searched by `&[u8]`.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

use crate::shard::key::{read_varint, varint_len, write_varint};

pub struct Pair(NonNull<u8>);

// SAFETY: a Pair owns its allocation and gives out only shared references to
// it, like `Box<[u8]>`.
unsafe impl Send for Pair {}
// SAFETY: as above.
unsafe impl Sync for Pair {}

impl Pair {
    pub fn new(field: &[u8], value: &[u8]) -> Pair {
        let (fh, vh) = (varint_len(field.len()), varint_len(value.len()));
        let size = fh + field.len() + vh + value.len();
        let layout = Layout::from_size_align(size, 1).expect("pair layout");
        // SAFETY: the size is at least 2 (the two varints).
        let p = unsafe { alloc(layout) };
        let Some(p) = NonNull::new(p) else { handle_alloc_error(layout) };
        // SAFETY: the four parts fill exactly the `size` bytes just allocated.
        unsafe {
            let mut at = write_varint(p.as_ptr(), field.len());
            std::ptr::copy_nonoverlapping(field.as_ptr(), p.as_ptr().add(at), field.len());
            at += field.len();
            at += write_varint(p.as_ptr().add(at), value.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), p.as_ptr().add(at), value.len());
        }
        Pair(p)
    }

    /// (offset of the field, its length, offset of the value, its length).
    #[inline]
    fn parts(&self) -> (usize, usize, usize, usize) {
        let p = self.0.as_ptr();
        // SAFETY: `new` wrote a varint, the field, a varint and the value.
        let (fh, flen) = unsafe { read_varint(p) };
        // SAFETY: as above: the second varint follows the field.
        let (vh, vlen) = unsafe { read_varint(p.add(fh + flen)) };
        (fh, flen, fh + flen + vh, vlen)
    }

    #[inline]
    pub fn field(&self) -> &[u8] {
        let p = self.0.as_ptr();
        // SAFETY: `new` wrote the field's varint first.
        let (fh, flen) = unsafe { read_varint(p) };
        // SAFETY: the field's `flen` bytes follow its varint, owned by self.
        unsafe { std::slice::from_raw_parts(p.add(fh), flen) }
    }

    #[inline]
    pub fn value(&self) -> &[u8] {
        let (_, _, at, len) = self.parts();
        // SAFETY: the value's bytes lie at the offset `parts` read, owned by
        // self.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(at), len) }
    }

    /// Overwrites the value with `value` when it has the value's length
    /// (HSET of a present field with a same-length value: no new allocation,
    /// no free); false, nothing changed, otherwise. The field, and with it
    /// the pair's hash and equality, stay as they were.
    #[inline]
    pub fn overwrite_value(&mut self, value: &[u8]) -> bool {
        let (_, _, at, len) = self.parts();
        if len != value.len() {
            return false;
        }
        // SAFETY: the value's `len` bytes lie at `at` in the allocation self
        // owns, and `&mut self` means nobody else reads them now.
        unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), self.0.as_ptr().add(at), len) };
        true
    }

    /// The allocation's address, for a prefetch: unlike `field()` it reads
    /// nothing (the field's length varint would be a load).
    #[inline]
    pub fn raw_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// The bytes allocated (MEMORY USAGE).
    pub fn alloc_bytes(&self) -> usize {
        let (_, _, at, len) = self.parts();
        at + len
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let size = self.alloc_bytes();
        // SAFETY: allocated in `new` with exactly this layout.
        unsafe { dealloc(self.0.as_ptr(), Layout::from_size_align_unchecked(size, 1)) }
    }
}

impl Clone for Pair {
    fn clone(&self) -> Pair {
        Pair::new(self.field(), self.value())
    }
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}={:?}", String::from_utf8_lossy(self.field()), String::from_utf8_lossy(self.value()))
    }
}

/// By field (see the module).
impl PartialEq for Pair {
    fn eq(&self, other: &Pair) -> bool {
        self.field() == other.field()
    }
}

impl Eq for Pair {}

/// By field, as `[u8]` hashes (see the module).
impl std::hash::Hash for Pair {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.field().hash(state)
    }
}

impl std::borrow::Borrow<[u8]> for Pair {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.field()
    }
}

#[cfg(test)]
mod tests {
    use super::Pair;

    #[test]
    fn round_trips_every_length_class() {
        let lens = [0usize, 1, 15, 127, 128, 300, 16384, 70_000];
        for &fl in &lens {
            for &vl in &lens {
                let f: Vec<u8> = (0..fl).map(|i| (i * 7 + fl) as u8).collect();
                let v: Vec<u8> = (0..vl).map(|i| (i * 11 + vl) as u8).collect();
                let p = Pair::new(&f, &v);
                assert_eq!((p.field(), p.value()), (&f[..], &v[..]), "{} {}", fl, vl);
                let c = p.clone();
                assert_eq!((c.field(), c.value()), (&f[..], &v[..]));
            }
        }
        assert_eq!(std::mem::size_of::<Pair>(), 8);
        assert_eq!(std::mem::size_of::<Option<Pair>>(), 8);
    }

    #[test]
    fn a_set_of_pairs_is_a_map_by_field() {
        let mut s: indexmap::IndexSet<Pair, foldhash::fast::RandomState> = Default::default();
        assert!(s.insert(Pair::new(b"f", b"1")));
        assert!(!s.insert(Pair::new(b"f", b"2")), "same field");
        assert_eq!(s.get(&b"f"[..]).map(|p| p.value()), Some(&b"1"[..]));
        let (i, old) = s.replace_full(Pair::new(b"f", b"3"));
        assert_eq!((i, old.map(|p| p.value().to_vec())), (0, Some(b"1".to_vec())));
        assert_eq!(s.get(&b"f"[..]).map(|p| p.value()), Some(&b"3"[..]));
        assert!(s.swap_remove(&b"f"[..]) && s.is_empty());
    }

    #[test]
    fn overwrite_value_only_at_the_same_length() {
        let mut p = Pair::new(b"field", b"abc");
        assert!(p.overwrite_value(b"xyz"));
        assert_eq!((p.field(), p.value()), (&b"field"[..], &b"xyz"[..]));
        assert!(!p.overwrite_value(b"wxyz"));
        assert!(!p.overwrite_value(b""));
        assert_eq!((p.field(), p.value()), (&b"field"[..], &b"xyz"[..]));
        let long: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let mut q = Pair::new(&long, &long);
        let other: Vec<u8> = long.iter().rev().copied().collect();
        assert!(q.overwrite_value(&other));
        assert_eq!((q.field(), q.value()), (&long[..], &other[..]));
    }
}
