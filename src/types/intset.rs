//! Redis 7.0's intset, byte for byte: a u32 encoding (2, 4 or 8, the
//! bytes per element), a u32 length, then the elements sorted ascending,
//! unique, each in that many little-endian bytes. One width for all: the
//! set upgrades to the width of the widest value ever added and never
//! narrows again on removal, as Redis does.

/// Bytes of the header: encoding (u32) and length (u32).
pub const HEADER_BYTES: usize = 8;

/// An owned intset.
#[derive(Clone, PartialEq, Eq)]
pub struct Intset {
    buf: Vec<u8>,
}

impl std::fmt::Debug for Intset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for Intset {
    fn default() -> Self {
        Intset::new()
    }
}

/// The narrowest width that holds `v` (`_intsetValueEncoding`).
pub fn width_for(v: i64) -> usize {
    if i64::from(i16::MIN) <= v && v <= i64::from(i16::MAX) {
        2
    } else if i64::from(i32::MIN) <= v && v <= i64::from(i32::MAX) {
        4
    } else {
        8
    }
}

fn read(buf: &[u8], width: usize, i: usize) -> i64 {
    let at = HEADER_BYTES + i * width;
    let b = &buf[at..at + width];
    match width {
        2 => i64::from(i16::from_le_bytes([b[0], b[1]])),
        4 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

fn header(bytes: &[u8]) -> (u32, u32) {
    let w = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let n = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    (w, n)
}

/// Redis's `intsetValidateIntegrity`: a readable header, an encoding of
/// 2, 4 or 8, a length that accounts for exactly the bytes there are,
/// not empty; with `deep`, strictly ascending (sorted and unique).
pub fn validate(bytes: &[u8], deep: bool) -> Result<(), String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("intset of {} bytes is shorter than its header", bytes.len()));
    }
    let (width, count) = header(bytes);
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("intset encoding {} is not 2, 4 or 8", width));
    }
    if HEADER_BYTES as u64 + u64::from(count) * u64::from(width) != bytes.len() as u64 {
        return Err(format!("intset of {} elements of {} bytes in {} bytes", count, width, bytes.len()));
    }
    // An empty set is no key: Redis refuses it too.
    if count == 0 {
        return Err("empty intset".into());
    }
    if deep {
        let w = width as usize;
        for i in 1..count as usize {
            if read(bytes, w, i) <= read(bytes, w, i - 1) {
                return Err(format!("intset not strictly ascending at element {}", i));
            }
        }
    }
    Ok(())
}

impl Intset {
    /// An empty intset (`intsetNew`): 16-bit encoding, no elements.
    pub fn new() -> Intset {
        let mut buf = Vec::with_capacity(HEADER_BYTES);
        buf.extend_from_slice(&2u32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        Intset { buf }
    }

    /// Takes a foreign blob after the deep check.
    pub fn from_bytes(buf: Vec<u8>) -> Result<Intset, String> {
        validate(&buf, true)?;
        Ok(Intset { buf })
    }

    /// The blob, as Redis stores it in RDB and DUMP.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes per element: 2, 4 or 8.
    pub fn width(&self) -> usize {
        header(&self.buf).0 as usize
    }

    pub fn len(&self) -> usize {
        header(&self.buf).1 as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total bytes (`intsetBlobLen`).
    pub fn total_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The element at `i` in ascending order (`intsetGet`).
    pub fn get(&self, i: usize) -> Option<i64> {
        (i < self.len()).then(|| read(&self.buf, self.width(), i))
    }

    /// Binary search (`intsetSearch`): Ok(position) if present, else
    /// Err(where it would go).
    pub fn search(&self, v: i64) -> Result<usize, usize> {
        let width = self.width();
        // A value wider than the encoding is beyond every element.
        if width_for(v) > width {
            return Err(if v < 0 { 0 } else { self.len() });
        }
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match read(&self.buf, width, mid).cmp(&v) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// `intsetFind`.
    pub fn contains(&self, v: i64) -> bool {
        self.search(v).is_ok()
    }

    fn set_len(&mut self, n: usize) {
        let n = u32::try_from(n).expect("intset over 4G elements");
        self.buf[4..8].copy_from_slice(&n.to_le_bytes());
    }

    fn write(&mut self, width: usize, i: usize, v: i64) {
        let at = HEADER_BYTES + i * width;
        self.buf[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
    }

    /// Re-encodes every element at `width` (`intsetUpgradeAndAdd`'s first
    /// half), from the end so nothing is overwritten before it is read.
    fn upgrade(&mut self, width: usize) {
        let old = self.width();
        let n = self.len();
        let more = HEADER_BYTES + n * width - self.buf.len();
        super::reserve_blob(&mut self.buf, more);
        self.buf.resize(HEADER_BYTES + n * width, 0);
        for i in (0..n).rev() {
            let v = read(&self.buf, old, i);
            self.write(width, i, v);
        }
        self.buf[0..4].copy_from_slice(&(width as u32).to_le_bytes());
    }

    /// Adds `v` (`intsetAdd`), widening the encoding if `v` needs it.
    /// Returns false if it was already there.
    pub fn add(&mut self, v: i64) -> bool {
        if width_for(v) > self.width() {
            self.upgrade(width_for(v));
        }
        let Err(pos) = self.search(v) else { return false };
        let width = self.width();
        let n = self.len();
        let at = HEADER_BYTES + pos * width;
        // Grown to the allocator's size class (Redis's intsetResize reallocs
        // exactly, into the same class): a doubling `Vec` cost 100k
        // ten-element int sets 16 bytes each.
        super::reserve_blob(&mut self.buf, width);
        self.buf.splice(at..at, std::iter::repeat_n(0, width));
        self.write(width, pos, v);
        self.set_len(n + 1);
        true
    }

    /// Removes `v` (`intsetRemove`); the encoding stays. Returns whether
    /// it was there.
    pub fn remove(&mut self, v: i64) -> bool {
        let Ok(pos) = self.search(v) else { return false };
        let width = self.width();
        let at = HEADER_BYTES + pos * width;
        self.buf.drain(at..at + width);
        super::shrink_blob(&mut self.buf);
        self.set_len(self.len() - 1);
        true
    }

    /// Smallest and largest elements.
    pub fn min(&self) -> Option<i64> {
        self.get(0)
    }

    pub fn max(&self) -> Option<i64> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Ascending iteration.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = i64> + ExactSizeIterator + '_ {
        let width = self.width();
        (0..self.len()).map(move |i| read(&self.buf, width, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_and_upgrades() {
        let mut s = Intset::new();
        assert_eq!(s.as_bytes(), &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(s.add(5) && s.add(-3) && !s.add(5));
        assert_eq!(s.as_bytes(), &[2, 0, 0, 0, 2, 0, 0, 0, 0xFD, 0xFF, 5, 0]);
        assert!(s.add(32768));
        assert_eq!(s.width(), 4);
        assert!(s.add(i64::from(i32::MIN) - 1));
        assert_eq!(s.width(), 8);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![i64::from(i32::MIN) - 1, -3, 5, 32768]);
        assert!(s.remove(i64::from(i32::MIN) - 1) && !s.remove(7));
        // Never narrows again.
        assert_eq!(s.width(), 8);
        assert_eq!(s.total_bytes(), 8 + 3 * 8);
        assert_eq!((s.min(), s.max(), s.get(1), s.get(3)), (Some(-3), Some(32768), Some(5), None));
        validate(s.as_bytes(), true).unwrap();
    }

    #[test]
    fn width_edges() {
        for (v, w) in [
            (i64::from(i16::MAX), 2),
            (i64::from(i16::MIN), 2),
            (i64::from(i16::MAX) + 1, 4),
            (i64::from(i16::MIN) - 1, 4),
            (i64::from(i32::MAX), 4),
            (i64::from(i32::MIN), 4),
            (i64::from(i32::MAX) + 1, 8),
            (i64::from(i32::MIN) - 1, 8),
            (i64::MAX, 8),
            (i64::MIN, 8),
        ] {
            let mut s = Intset::new();
            s.add(0);
            s.add(v);
            assert_eq!(s.width(), w, "{}", v);
            assert!(s.contains(v) && s.contains(0));
            assert_eq!(s.iter().collect::<Vec<_>>(), if v < 0 { vec![v, 0] } else { vec![0, v] });
        }
    }

    #[test]
    fn corrupt_blobs_are_refused() {
        let mut s = Intset::new();
        for v in [1, 2, 3] {
            s.add(v);
        }
        let good = s.into_bytes();
        for f in [
            (|b: &mut Vec<u8>| b[0] = 3) as fn(&mut Vec<u8>),
            |b| b[4] = 4,
            |b| b.truncate(13),
            |b| b.truncate(7),
            |b| b[10] = 3, // duplicate
            |b| b[12] = 0, // out of order
            |b| *b = vec![2, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let mut b = good.clone();
            f(&mut b);
            assert!(Intset::from_bytes(b).is_err());
        }
        let mut b = good.clone();
        b[12] = 0;
        assert!(validate(&b, false).is_ok());
    }

    proptest! {
        #[test]
        fn behaves_like_a_sorted_set(ops in proptest::collection::vec((any::<bool>(), prop_oneof![any::<i64>(), -40000i64..40000, -100i64..100]), 0..60)) {
            let mut s = Intset::new();
            let mut model = std::collections::BTreeSet::new();
            for (add, v) in ops {
                if add {
                    prop_assert_eq!(s.add(v), model.insert(v));
                } else {
                    prop_assert_eq!(s.remove(v), model.remove(&v));
                }
                if !s.is_empty() {
                    validate(s.as_bytes(), true).map_err(TestCaseError::fail)?;
                }
            }
            prop_assert_eq!(s.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(s.len(), model.len());
            for v in &model { prop_assert!(s.contains(*v)); }
        }

        #[test]
        fn corruption_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(s) = Intset::from_bytes(bytes.clone()) {
                prop_assert!(s.iter().count() * s.width() + HEADER_BYTES == bytes.len());
            }
        }
    }
}
