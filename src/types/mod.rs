//! The compact encodings of small collections, in Redis 7.0's exact byte
//! layouts: a listpack (hashes, sorted sets and list nodes) and an intset
//! (sets of integers). Keeping Redis's bytes means the in-memory form is
//! the RDB object and the DUMP payload as is, and element order is
//! Redis's without any effort.
//!
//! The values of the aggregate types are built from them: `Hash`, `Set`,
//! `ZSet` (each an enum over its encodings) and lists as a `Quicklist`.
//! The command families (`commands/`) work on these types.

/// `Deref` and `DerefMut` of a newtype over a `Box` (`$outer(Box<$inner>)`):
/// the big encodings sit behind one pointer so that the enums they are in
/// stay small, and are used through the box.
macro_rules! deref_boxed {
    ($outer:ty, $inner:ty) => {
        impl std::ops::Deref for $outer {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }

        impl std::ops::DerefMut for $outer {
            fn deref_mut(&mut self) -> &mut $inner {
                &mut self.0
            }
        }
    };
}

/// The jemalloc size class a request of `n` bytes is served from (8, then
/// multiples of 16 up to 128, then four classes per doubling). A compact
/// blob grown to its class at once holds exactly the memory the allocator
/// gives it anyway (Redis's listpacks and intsets, realloc'd to their exact
/// size, occupy the same class), and the inserts that follow within the
/// class neither reallocate nor copy.
pub fn alloc_class(n: usize) -> usize {
    if n <= 8 {
        return 8;
    }
    if n <= 128 {
        return (n + 15) & !15;
    }
    let lg = usize::BITS - (n - 1).leading_zeros();
    let step = 1usize << (lg - 3);
    (n + step - 1) & !(step - 1)
}

/// Room for `more` bytes in a compact blob, grown to the allocator's size
/// class of the new length (`alloc_class`) rather than doubled.
#[inline]
pub fn reserve_blob(buf: &mut Vec<u8>, more: usize) {
    let need = buf.len() + more;
    if need > buf.capacity() {
        buf.reserve_exact(alloc_class(need) - buf.len());
    }
}

/// Gives back a compact blob's capacity beyond its size class.
#[inline]
pub fn shrink_blob(buf: &mut Vec<u8>) {
    let class = alloc_class(buf.len());
    if buf.capacity() > class {
        buf.shrink_to(class);
    }
}

pub mod geohash;
pub mod hash;
pub mod hll;
pub mod id_table;
pub mod indexed;
pub mod intset;
pub mod listpack;
pub mod member_index;
pub mod open_table;
pub mod pair;
pub mod quicklist;
pub mod set;
pub mod stream;
pub mod stream_cg;
pub mod stream_persist;
pub mod table_stats;
pub mod zset;
pub mod zset_tree;

pub use hash::Hash;
pub use quicklist::Quicklist;
pub use set::Set;
pub use stream::Stream;
pub use zset::ZSet;

#[cfg(test)]
mod alloc_class_tests {
    use super::{alloc_class, reserve_blob, shrink_blob};

    #[test]
    fn jemalloc_size_classes() {
        // Two runs of consecutive classes (jemalloc 5, 16-byte quantum).
        let runs: [&[usize]; 2] =
            [&[8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768], &[8192, 10240, 12288, 14336, 16384, 20480]];
        for classes in runs {
            for (i, &c) in classes.iter().enumerate() {
                assert_eq!(alloc_class(c), c, "a class is its own class");
                if i > 0 {
                    assert_eq!(alloc_class(classes[i - 1] + 1), c, "just above {}", classes[i - 1]);
                }
            }
        }
        assert_eq!(alloc_class(0), 8);
        assert_eq!(alloc_class(1), 8);
        assert_eq!(alloc_class(200), 224);
    }

    #[test]
    fn blobs_grow_and_shrink_to_their_class() {
        let mut b = Vec::with_capacity(7);
        b.extend_from_slice(&[0; 7]);
        reserve_blob(&mut b, 10);
        assert_eq!(b.capacity(), 32);
        b.extend_from_slice(&[0; 10]);
        let cap = b.capacity();
        reserve_blob(&mut b, 15);
        assert_eq!(b.capacity(), cap, "within the class: no realloc");
        b.extend_from_slice(&[0; 200]);
        b.truncate(20);
        shrink_blob(&mut b);
        assert_eq!(b.capacity(), 32);
    }
}
