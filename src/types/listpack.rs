//! Redis 7.0's listpack, byte for byte.
//!
//! Layout: a 4-byte little-endian total size, a 2-byte little-endian
//! element count (65535 meaning "too many to count here, walk the
//! entries"), the entries, and a 0xFF terminator. Each entry is an
//! encoding byte (carrying a small integer or a string length in its low
//! bits, or followed by a wider one), the string data if any, and a
//! "back-length": the size of encoding + data written in 7-bit groups
//! from the most significant, every group but the first flagged with the
//! high bit, so that it can be read from its last byte backwards. That is
//! what makes backward iteration possible without a per-entry pointer.
//!
//! A string that is a canonical decimal integer ("12", not "012", "+12"
//! or " 12") is stored as that integer in the narrowest of seven integer
//! encodings, exactly as Redis decides, so that a listpack built here
//! from the same operations is the same blob Redis builds.
//!
//! Positions are byte offsets of an entry's first byte (Redis uses
//! pointers); an offset is invalidated by any change before it.
//!
//! A `Listpack` is only ever built here or from bytes that passed the deep
//! check (`validate(bytes, true)`), so reading it never leaves the buffer;
//! every read is still bounds-checked by slice indexing, so a bug here is
//! a panic, never an out-of-bounds read.

/// Bytes of the header: total size (u32) and element count (u16).
pub const HEADER_BYTES: usize = 6;
/// The header count value meaning "unknown, walk the entries".
pub const COUNT_UNKNOWN: u16 = u16::MAX;
/// The terminator byte.
pub const EOF: u8 = 0xFF;
/// Redis refuses to grow a listpack past 1 GiB (`lpSafeToAdd`): callers
/// convert to the big encoding before.
pub const SAFETY_BYTES_MAX: usize = 1 << 30;

/// One element as stored: a string, or an integer (which Redis replies
/// as its decimal text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Entry<'_> {
    /// The element as the client sees it: integers as decimal text.
    pub fn to_vec(&self) -> Vec<u8> {
        match *self {
            Entry::Str(s) => s.to_vec(),
            Entry::Int(v) => itoa::Buffer::new().format(v).as_bytes().to_vec(),
        }
    }

    /// Whether this element equals the client string `s`, as `lpCompare`:
    /// a stored integer equals only a canonical decimal string of it.
    pub fn eq_bytes(&self, s: &[u8]) -> bool {
        match *self {
            Entry::Str(v) => v == s,
            Entry::Int(v) => string_to_int(s) == Some(v),
        }
    }
}

/// Where `insert` puts the new entry relative to the one at the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    Before,
    After,
}

/// Redis's `lpStringToInt64` (a copy of `string2ll`): the strings that
/// are stored as integers. No sign but '-', no leading zeros, no "-0", no
/// spaces, within i64.
pub fn string_to_int(s: &[u8]) -> Option<i64> {
    // 21 bytes and longer can never be an i64 ("-9223372036854775808"
    // is 20); Redis rejects them up front.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        if v > 1u64 << 63 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// Encodes `v` in the narrowest integer encoding (`lpEncodeIntegerGetType`):
/// 7-bit unsigned, 13-bit, 16, 24, 32 or 64-bit signed, little-endian.
/// Returns the bytes used in `out`.
fn encode_int(v: i64, out: &mut [u8; 9]) -> usize {
    if (0..=127).contains(&v) {
        out[0] = v as u8;
        1
    } else if (-4096..=4095).contains(&v) {
        // Two's complement in 13 bits: the top 5 in the first byte.
        let u = (v as u64) & 0x1FFF;
        out[0] = 0xC0 | (u >> 8) as u8;
        out[1] = u as u8;
        2
    } else {
        let (tag, width) = if (-32768..=32767).contains(&v) {
            (0xF1, 2)
        } else if (-8_388_608..=8_388_607).contains(&v) {
            (0xF2, 3)
        } else if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
            (0xF3, 4)
        } else {
            (0xF4, 8)
        };
        out[0] = tag;
        out[1..1 + width].copy_from_slice(&v.to_le_bytes()[..width]);
        1 + width
    }
}

/// Bytes of the back-length for an entry of `len` bytes (`lpEncodeBacklen`;
/// note Redis's edges are `< 16383`, `< 2097151`, `< 268435455`, one
/// below the largest value the width could hold).
fn backlen_size(len: u64) -> usize {
    if len <= 127 {
        1
    } else if len < 16383 {
        2
    } else if len < 2_097_151 {
        3
    } else if len < 268_435_455 {
        4
    } else {
        5
    }
}

fn encode_backlen(len: u64, out: &mut [u8; 5]) -> usize {
    let n = backlen_size(len);
    for (i, b) in out[..n].iter_mut().enumerate() {
        let shift = 7 * (n - 1 - i);
        // The first (most significant) group has no flag: it ends the
        // backward read.
        *b = ((len >> shift) & 127) as u8 | if i == 0 { 0 } else { 128 };
    }
    n
}

/// Reads a back-length whose last byte is `buf[end - 1]`, backwards, at
/// most 5 bytes (`lpDecodeBacklen`). None if it runs off the front or
/// past 5 bytes.
fn decode_backlen(buf: &[u8], end: usize) -> Option<u64> {
    let mut val = 0u64;
    let mut shift = 0;
    let mut p = end.checked_sub(1)?;
    loop {
        let b = *buf.get(p)?;
        val |= u64::from(b & 127) << shift;
        if b & 128 == 0 {
            return Some(val);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
        p = p.checked_sub(1)?;
    }
}

/// Bytes needed to read an entry's size from its first byte
/// (`lpCurrentEncodedSizeBytes`); 0 for a byte that is no encoding.
fn size_bytes(first: u8) -> usize {
    match first {
        0x00..=0xDF => 1, // 7-bit uint, 6-bit str, 13-bit int
        0xE0..=0xEF => 2, // 12-bit str
        0xF0 => 5,        // 32-bit str
        0xF1..=0xF4 => 1, // 16/24/32/64-bit int
        EOF => 1,
        _ => 0,
    }
}

/// Encoding + data bytes of the entry at `off` (`lpCurrentEncodedSizeUnsafe`);
/// None if the header is unreadable or not an encoding.
fn encoded_size(buf: &[u8], off: usize) -> Option<u64> {
    let b = |i: usize| buf.get(off + i).copied().map(u64::from);
    let first = buf.get(off).copied()?;
    Some(match first {
        0x00..=0x7F => 1,
        0x80..=0xBF => 1 + u64::from(first & 0x3F),
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 2 + ((u64::from(first & 0x0F) << 8) | b(1)?),
        0xF0 => 5 + (b(1)? | b(2)? << 8 | b(3)? << 16 | b(4)? << 24),
        0xF1 => 3,
        0xF2 => 4,
        0xF3 => 5,
        0xF4 => 9,
        EOF => 1,
        _ => return None,
    })
}

/// The entry at `off` when it is a 6-bit string (under 64 bytes, one
/// back-length byte: redis-benchmark's `xxx` and `element:<n>`), and its
/// size with the back-length; None for any other entry. LPOP/RPOP's first
/// test, before the general `decode` and `entry_size` (two calls, ~33
/// instructions a pop).
#[inline(always)]
fn short_str_at(buf: &[u8], off: usize) -> Option<(Entry<'_>, usize)> {
    let first = *buf.get(off)?;
    if first & 0xC0 != 0x80 {
        return None;
    }
    let l = usize::from(first & 0x3F);
    Some((Entry::Str(buf.get(off + 1..off + 1 + l)?), l + 2))
}

/// Size of the entry at `off` including its back-length (`lpSkip`).
fn entry_size(buf: &[u8], off: usize) -> Option<usize> {
    let n = encoded_size(buf, off)?;
    usize::try_from(n + backlen_size(n) as u64).ok()
}

/// Decodes the entry at `off`. None if it does not fit in `buf`.
fn decode(buf: &[u8], off: usize) -> Option<Entry<'_>> {
    let first = *buf.get(off)?;
    let int = |width: usize| -> Option<i64> {
        let bytes = buf.get(off + 1..off + 1 + width)?;
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(bytes);
        // Sign-extend from `width` bytes.
        let shift = 64 - 8 * width as u32;
        Some((i64::from_le_bytes(le) << shift) >> shift)
    };
    let string = |hdr: usize, len: u64| -> Option<Entry<'_>> {
        let start = off + hdr;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        Some(Entry::Str(buf.get(start..end)?))
    };
    match first {
        0x00..=0x7F => Some(Entry::Int(i64::from(first))),
        0x80..=0xBF => string(1, u64::from(first & 0x3F)),
        0xC0..=0xDF => {
            let u = (i64::from(first & 0x1F) << 8) | i64::from(*buf.get(off + 1)?);
            // 13-bit two's complement.
            Some(Entry::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }))
        }
        0xE0..=0xEF => string(2, (u64::from(first & 0x0F) << 8) | u64::from(*buf.get(off + 1)?)),
        0xF0 => {
            let l = buf.get(off + 1..off + 5)?;
            string(5, u64::from(u32::from_le_bytes([l[0], l[1], l[2], l[3]])))
        }
        0xF1 => int(2).map(Entry::Int),
        0xF2 => int(3).map(Entry::Int),
        0xF3 => int(4).map(Entry::Int),
        0xF4 => int(8).map(Entry::Int),
        _ => None,
    }
}

/// Checks one entry at `off` and returns the offset after it, or None at
/// the terminator (`lpValidateNext`): the size header and the whole entry
/// lie inside the listpack, and the back-length matches the size.
fn validate_next(buf: &[u8], off: usize) -> Result<Option<usize>, String> {
    let bytes = buf.len();
    let out_of_range = |p: usize| p < HEADER_BYTES || p > bytes - 1;
    if out_of_range(off) {
        return Err(format!("entry at {} outside the listpack", off));
    }
    if buf[off] == EOF {
        return Ok(None);
    }
    let header = size_bytes(buf[off]);
    if header == 0 {
        return Err(format!("invalid encoding byte 0x{:02x} at {}", buf[off], off));
    }
    if out_of_range(off + header) {
        return Err(format!("entry header at {} runs past the end", off));
    }
    let encoded = encoded_size(buf, off).ok_or("unreadable entry header")?;
    let backlen = backlen_size(encoded) as u64;
    let total = encoded + backlen;
    if (off as u64).saturating_add(total) > bytes as u64 - 1 {
        return Err(format!("entry at {} of {} bytes runs past the end", off, total));
    }
    let next = off + total as usize;
    if decode_backlen(buf, next) != Some(encoded) {
        return Err(format!("back-length of the entry at {} does not match its size {}", off, encoded));
    }
    Ok(Some(next))
}

/// Redis's `lpValidateIntegrity`: the header's total equals the length,
/// the last byte is the terminator; with `deep`, every entry is well
/// formed and inside, the entries end exactly at the terminator, and a
/// known count matches. `on_entry` (deep only) sees every entry and may
/// refuse it, as Redis's callback does.
pub fn validate_with(bytes: &[u8], deep: bool, mut on_entry: impl FnMut(Entry<'_>) -> Result<(), String>) -> Result<(), String> {
    if bytes.len() < HEADER_BYTES + 1 {
        return Err(format!("listpack of {} bytes is shorter than its header", bytes.len()));
    }
    let total = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if total != bytes.len() {
        return Err(format!("listpack header says {} bytes, blob has {}", total, bytes.len()));
    }
    if bytes[bytes.len() - 1] != EOF {
        return Err("listpack does not end with its terminator".into());
    }
    if !deep {
        return Ok(());
    }
    let header_count = u16::from_le_bytes([bytes[4], bytes[5]]);
    let mut count: u64 = 0;
    let mut off = HEADER_BYTES;
    while bytes[off] != EOF {
        let next = validate_next(bytes, off)?.ok_or("unexpected terminator")?;
        on_entry(decode(bytes, off).ok_or("undecodable entry")?)?;
        count += 1;
        off = next;
    }
    if off != bytes.len() - 1 {
        return Err("entries end before the last byte".into());
    }
    if header_count != COUNT_UNKNOWN && u64::from(header_count) != count {
        return Err(format!("listpack header counts {} entries, found {}", header_count, count));
    }
    Ok(())
}

/// `lpValidateIntegrity` without a per-entry check.
pub fn validate(bytes: &[u8], deep: bool) -> Result<(), String> {
    validate_with(bytes, deep, |_| Ok(()))
}

/// `lpValidateIntegrityAndDups` as the RDB loader runs it for hashes and
/// sorted sets (`pairs`) and sets: with `deep`, no two keys (every entry,
/// or every even one with `pairs`) are equal as strings, and with `pairs`
/// the count is even.
pub fn validate_unique(bytes: &[u8], deep: bool, pairs: bool) -> Result<(), String> {
    if !deep {
        return validate(bytes, false);
    }
    let mut seen = std::collections::HashSet::new();
    let mut index: u64 = 0;
    validate_with(bytes, true, |e| {
        let is_key = !pairs || index.is_multiple_of(2);
        index += 1;
        // Redis compares the string forms, so Int(1) and Str("1") clash.
        if is_key && !seen.insert(e.to_vec()) {
            return Err("duplicate key in listpack".into());
        }
        Ok(())
    })?;
    if pairs && !index.is_multiple_of(2) {
        return Err("odd number of entries in a listpack of pairs".into());
    }
    Ok(())
}

/// An owned listpack.
///
/// The bytes may lie after some room kept in front of them (`raw[..head]`),
/// so that a push at the head writes its entry into that room and moves
/// only the 6-byte header, where `lpInsert` moves the whole listpack: an
/// LPUSH of redis-benchmark's default suite moved ~4 KiB of the head node
/// per command (5.8% of the server's samples), an LPOP the same through
/// `lpDelete`. The listpack itself stays one contiguous Redis listpack
/// (`as_bytes`), written to RDB and DUMP as it lies.
///
/// `head` is not a field, so that a `Listpack` stays a `Vec`'s 24 bytes
/// (hashes and sorted sets embed it): with no room, `raw` is the listpack
/// and its first 4 bytes are its total size, i.e. `raw.len()`; with room,
/// the room is at least `HEAD_MARK_BYTES` and its first 4 bytes hold its
/// size, which is always less than `raw.len()` (a listpack has 7 bytes or
/// more). The room's other bytes are unused.
#[derive(Clone)]
pub struct Listpack {
    raw: Vec<u8>,
}

/// The smallest room kept in front: the bytes that say its size.
const HEAD_MARK_BYTES: usize = 4;

impl PartialEq for Listpack {
    fn eq(&self, other: &Listpack) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Listpack {}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for Listpack {
    fn default() -> Self {
        Listpack::new()
    }
}

impl Listpack {
    /// An empty listpack (`lpNew`): 7 bytes.
    pub fn new() -> Listpack {
        let mut raw = Vec::with_capacity(HEADER_BYTES + 1);
        raw.extend_from_slice(&((HEADER_BYTES + 1) as u32).to_le_bytes());
        raw.extend_from_slice(&0u16.to_le_bytes());
        raw.push(EOF);
        Listpack { raw }
    }

    /// A listpack of the one entry `first` in a buffer of
    /// `alloc_class(bytes)` bytes, the spare bytes as room in front
    /// (`front`, for pushes at the head) or behind it (for appends): a
    /// listpack expected to grow to about `bytes` (a quicklist's new edge
    /// node beside a full one) gets its buffer at once, and its pushes
    /// neither reallocate nor copy it (perf/RESULTS.md "push22": growing by
    /// size class, an 8 KiB node was copied ~50 KiB over ~30 reallocations
    /// on its way). The bytes are `append`'s to an empty listpack.
    pub fn with_room(bytes: usize, front: bool, first: Entry<'_>) -> Listpack {
        let mut lp = Listpack::new();
        lp.raw.reserve_exact(super::alloc_class(bytes.max(HEADER_BYTES + 1)) - lp.raw.len());
        lp.append(first);
        let len = lp.raw.len();
        let class = lp.raw.capacity();
        if front && class - len >= HEAD_MARK_BYTES {
            // The listpack to the end of the buffer: the room in front
            // takes the next pushes at the head (`prepend_short_str`).
            lp.raw.resize(class, 0);
            lp.raw.copy_within(0..len, class - len);
            lp.set_head(class - len);
        }
        lp
    }

    /// Whether `shrink_to_fit` would give memory back: the buffer is over
    /// the allocator's class of the listpack's own bytes. (Dropping room
    /// in front that the class holds anyway only moves the listpack.)
    pub fn has_spare_class(&self) -> bool {
        self.raw.capacity() > super::alloc_class(self.total_bytes())
    }

    /// Takes a foreign blob (an RDB object, a DUMP payload) after the deep
    /// check: what is never checked is never read. One pass, as Redis's
    /// `sanitize-dump-payload yes` makes. (The check's total-size test is
    /// what makes the blob read as having no room in front.)
    pub fn from_bytes(buf: Vec<u8>) -> Result<Listpack, String> {
        validate(&buf, true)?;
        Ok(Listpack { raw: buf })
    }

    /// Size of the room in front of the listpack (see the type's comment).
    #[inline]
    fn head(&self) -> usize {
        let mark = match self.raw.first_chunk::<4>() {
            Some(b) => u32::from_le_bytes(*b) as usize,
            None => unreachable!("a listpack has 7 bytes or more"),
        };
        if mark == self.raw.len() {
            0
        } else {
            mark
        }
    }

    /// The listpack's bytes.
    #[inline]
    fn buf(&self) -> &[u8] {
        &self.raw[self.head()..]
    }

    /// Records `head` as the room in front; the listpack's own header is
    /// written after it by `set_total_bytes`.
    fn set_head(&mut self, head: usize) {
        debug_assert!(head == 0 || head >= HEAD_MARK_BYTES);
        if head != 0 {
            let mark = u32::try_from(head).expect("listpack room over 4 GiB");
            self.raw[0..4].copy_from_slice(&mark.to_le_bytes());
        }
    }

    /// Drops the room in front (one move of the listpack's bytes).
    fn drop_head(&mut self) {
        let head = self.head();
        if head != 0 {
            self.raw.drain(..head);
        }
    }

    /// The blob, as Redis stores it in RDB and DUMP.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buf()
    }

    pub fn into_bytes(mut self) -> Vec<u8> {
        self.drop_head();
        self.raw
    }

    /// Total bytes, the header's first field (`lpBytes`).
    #[inline]
    pub fn total_bytes(&self) -> usize {
        self.raw.len() - self.head()
    }

    /// The count as stored in the header; 65535 means unknown.
    #[inline]
    pub fn header_count(&self) -> u16 {
        let buf = self.buf();
        u16::from_le_bytes([buf[4], buf[5]])
    }

    #[inline]
    fn set_header_count(&mut self, head: usize, n: u16) {
        self.raw[head + 4..head + 6].copy_from_slice(&n.to_le_bytes());
    }

    /// Writes the total size after the room of `head` bytes (the caller's
    /// `head`: while a change is under way `head()` cannot tell).
    #[inline]
    fn set_total_bytes(&mut self, head: usize) {
        let n = u32::try_from(self.raw.len() - head).expect("listpack over 4 GiB");
        self.raw[head..head + 4].copy_from_slice(&n.to_le_bytes());
    }

    /// Number of entries (`lpLength`, without its write-back): the header
    /// count, or a walk when it says unknown.
    #[inline]
    pub fn len(&self) -> usize {
        match self.header_count() {
            COUNT_UNKNOWN => self.iter().count(),
            n => usize::from(n),
        }
    }

    /// `(total_bytes(), len())` with one look at the room in front (a
    /// quicklist's test before every push).
    #[inline(always)]
    pub fn bytes_and_len(&self) -> (usize, usize) {
        self.bytes_and_len_at(self.head())
    }

    /// `bytes_and_len` with the room in front known.
    #[inline(always)]
    fn bytes_and_len_at(&self, head: usize) -> (usize, usize) {
        let buf = &self.raw[head..];
        match u16::from_le_bytes([buf[4], buf[5]]) {
            COUNT_UNKNOWN => (buf.len(), self.walked_len()),
            n => (buf.len(), usize::from(n)),
        }
    }

    /// `append` when `allow(total_bytes(), len())` says the listpack may
    /// take it; returns whether it did. One look at the room in front for
    /// the test and the append (RPUSH's path: the quicklist's node-size
    /// test, then the push into the tail node).
    #[inline(always)]
    pub fn append_if(&mut self, e: Entry<'_>, allow: impl FnOnce(usize, usize) -> bool) -> bool {
        let head = self.head();
        let (bytes, len) = self.bytes_and_len_at(head);
        if !allow(bytes, len) {
            return false;
        }
        if let Entry::Str(s) = e {
            if self.append_short_str(head, s) {
                return true;
            }
        }
        self.insert_at(head, bytes - 1, e);
        true
    }

    /// The append of a string of under 64 bytes that is not an integer
    /// (redis-benchmark's `element:<n>`): a 6-bit string entry (encoding
    /// byte, data, one back-length byte) written over the terminator,
    /// without `write_entry`'s general moves; false (nothing done) for any
    /// other entry, or when the buffer must grow with room in front.
    #[inline(always)]
    fn append_short_str(&mut self, head: usize, s: &[u8]) -> bool {
        let l = s.len();
        if l >= 64 || string_to_int(s).is_some() {
            return false;
        }
        // Encoding byte + data: at most 64, so the back-length is one byte.
        let n = l + 2;
        let old = self.raw.len();
        if head != 0 && old + n > self.raw.capacity() {
            return false;
        }
        if self.raw.capacity() - old < n {
            super::reserve_blob(&mut self.raw, n);
        }
        self.raw[old - 1] = 0x80 | l as u8;
        self.raw.extend_from_slice(s);
        self.raw.push(l as u8 + 1);
        self.raw.push(EOF);
        // Total and count in one 6-byte store (`set_total_bytes` and
        // `count_add` were two calls, 30 instructions an RPUSH).
        let header = &mut self.raw[head..head + HEADER_BYTES];
        let count = u16::from_le_bytes([header[4], header[5]]);
        let total = u32::try_from(old + n - head).expect("listpack over 4 GiB");
        header[..4].copy_from_slice(&total.to_le_bytes());
        if count != COUNT_UNKNOWN {
            header[4..].copy_from_slice(&(count + 1).to_le_bytes());
        }
        true
    }

    /// `prepend` when `allow(total_bytes(), len())` says the listpack may
    /// take it; returns whether it did. LPUSH's path, as `append_if` is
    /// RPUSH's: the quicklist's node-size test and the push into the head
    /// node under one look at the room in front (it was `allow_insert`'s
    /// look, then `prepend`'s through `write_entry`: 271 instructions an
    /// LPUSH of redis-benchmark's `xxx` in the two, perf/RESULTS.md "lists19").
    #[inline(always)]
    pub fn prepend_if(&mut self, e: Entry<'_>, allow: impl FnOnce(usize, usize) -> bool) -> bool {
        let head = self.head();
        let (bytes, len) = self.bytes_and_len_at(head);
        if !allow(bytes, len) {
            return false;
        }
        if let Entry::Str(s) = e {
            if self.prepend_short_str(head, s) {
                return true;
            }
        }
        self.insert_at(head, HEADER_BYTES, e);
        true
    }

    /// The prepend of a string of under 64 bytes that is not an integer
    /// into the room in front, when the room holds it as `grow_at_head`
    /// would take it from there (the header moves down by the entry's
    /// size, the entry is written behind it): the bytes `write_entry`
    /// writes, without its general moves. False (nothing done) for any
    /// other entry, an empty listpack, or too little room.
    #[inline(always)]
    fn prepend_short_str(&mut self, head: usize, s: &[u8]) -> bool {
        let l = s.len();
        // Encoding byte + data: at most 64, so the back-length is one byte.
        let n = l + 2;
        if l >= 64 || !(head == n || head >= n + HEAD_MARK_BYTES) || self.raw[head + HEADER_BYTES] == EOF {
            return false;
        }
        // Only a string that starts with a digit or '-' may be an integer
        // (the call was 23 instructions an `xxx`).
        if matches!(s.first(), Some(b'0'..=b'9' | b'-')) && string_to_int(s).is_some() {
            return false;
        }
        // The header as it will read: total size, and the count one up (an
        // unknown count stays unknown, a known one may become 65535, i.e.
        // unknown, as `count_add`), written in one piece where it moves to.
        let new_head = head - n;
        let mut header: [u8; HEADER_BYTES] = self.raw[head..head + HEADER_BYTES].try_into().expect("listpack header");
        let total = u32::try_from(self.raw.len() - new_head).expect("listpack over 4 GiB");
        let count = u16::from_le_bytes([header[4], header[5]]);
        header[..4].copy_from_slice(&total.to_le_bytes());
        if count != COUNT_UNKNOWN {
            header[4..].copy_from_slice(&(count + 1).to_le_bytes());
        }
        // The room's mark (`set_head`; none when no room is left: the
        // header's total, written next at 0, then says so).
        if new_head != 0 {
            self.raw[..4].copy_from_slice(&(new_head as u32).to_le_bytes());
        }
        self.raw[new_head..new_head + HEADER_BYTES].copy_from_slice(&header);
        let entry = &mut self.raw[new_head + HEADER_BYTES..new_head + HEADER_BYTES + n];
        entry[0] = 0x80 | l as u8;
        entry[1..1 + l].copy_from_slice(s);
        entry[1 + l] = l as u8 + 1;
        true
    }

    /// The count of a listpack whose header does not know it.
    #[cold]
    #[inline(never)]
    fn walked_len(&self) -> usize {
        self.iter().count()
    }

    /// Deletes the first (or last) entry after `f` saw it where it lies;
    /// returns what `f` returned and whether the listpack is now empty.
    /// None when it was empty. (LPOP/RPOP: one look at the room in front.)
    #[inline]
    pub fn pop_edge<R>(&mut self, first: bool, f: impl FnOnce(Entry<'_>) -> R) -> Option<(R, bool)> {
        let head = self.head();
        let buf = &self.raw[head..];
        if first {
            if buf[HEADER_BYTES] == EOF {
                return None;
            }
            let (e, size) = short_str_at(buf, HEADER_BYTES)
                .unwrap_or_else(|| (decode(buf, HEADER_BYTES).expect("listpack entry"), entry_size(buf, HEADER_BYTES).expect("listpack entry")));
            let out = f(e);
            let new_head = head + size;
            if new_head < HEAD_MARK_BYTES {
                // Too few bytes to mark as room (a 2- or 3-byte integer
                // entry of a listpack without room): the general delete.
                let head = self.delete_in(head, HEADER_BYTES, 1);
                return Some((out, self.raw[head + HEADER_BYTES] == EOF));
            }
            // The first entry: the header moves forward over it in one
            // 6-byte store with its new total and count, the entry's bytes
            // join the room in front (`delete_in`'s way from the first
            // entry, without its walk: 99 instructions an LPOP of `xxx`).
            let mut header: [u8; HEADER_BYTES] = self.raw[head..head + HEADER_BYTES].try_into().expect("listpack header");
            let total = u32::try_from(self.raw.len() - new_head).expect("listpack over 4 GiB");
            let count = u16::from_le_bytes([header[4], header[5]]);
            header[..4].copy_from_slice(&total.to_le_bytes());
            if count != COUNT_UNKNOWN {
                header[4..].copy_from_slice(&(count - 1).to_le_bytes());
            }
            self.raw[new_head..new_head + HEADER_BYTES].copy_from_slice(&header);
            self.raw[..4].copy_from_slice(&(new_head as u32).to_le_bytes());
            return Some((out, self.raw[new_head + HEADER_BYTES] == EOF));
        }
        let end = buf.len() - 1;
        if end <= HEADER_BYTES {
            return None;
        }
        // A one-byte back-length of a 6-bit string (redis-benchmark's
        // elements) read here; anything else through the general decoders.
        let last = buf[end - 1];
        let short = if last < 128 { end.checked_sub(1 + last as usize).and_then(|off| short_str_at(buf, off).map(|(e, _)| (e, off))) } else { None };
        let (e, off) = short.unwrap_or_else(|| {
            let len = decode_backlen(buf, end).expect("listpack back-length");
            let off = end - (len as usize + backlen_size(len));
            (decode(buf, off).expect("listpack entry"), off)
        });
        let out = f(e);
        // The last entry: the terminator moves back over it (what
        // `delete_in` would do after walking the entry's size, and what
        // `lpDelete` leaves), no walk and no `drain`.
        let at = head + off;
        self.raw[at] = EOF;
        self.raw.truncate(at + 1);
        self.set_total_bytes(head);
        let n = u16::from_le_bytes([self.raw[head + 4], self.raw[head + 5]]);
        if n != COUNT_UNKNOWN {
            self.set_header_count(head, n - 1);
        }
        Some((out, off == HEADER_BYTES))
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf()[HEADER_BYTES] == EOF
    }

    /// Whether `add` more bytes keep it under Redis's 1 GiB limit
    /// (`lpSafeToAdd`).
    pub fn safe_to_add(&self, add: usize) -> bool {
        self.total_bytes().saturating_add(add) <= SAFETY_BYTES_MAX
    }

    /// Offset of the first entry, None when empty (`lpFirst`).
    #[inline]
    pub fn first(&self) -> Option<usize> {
        (!self.is_empty()).then_some(HEADER_BYTES)
    }

    /// Offset of the last entry, None when empty (`lpLast`).
    #[inline]
    pub fn last(&self) -> Option<usize> {
        self.prev(self.total_bytes() - 1)
    }

    /// Offset of the entry after `off`, None at the end (`lpNext`).
    #[inline]
    pub fn next(&self, off: usize) -> Option<usize> {
        let buf = self.buf();
        let n = off + entry_size(buf, off).expect("listpack entry");
        (buf[n] != EOF).then_some(n)
    }

    /// Offset of the entry before `off` (`off` may be the terminator's),
    /// None at the first (`lpPrev`).
    #[inline]
    pub fn prev(&self, off: usize) -> Option<usize> {
        if off <= HEADER_BYTES {
            return None;
        }
        let len = decode_backlen(self.buf(), off).expect("listpack back-length");
        Some(off - (len as usize + backlen_size(len)))
    }

    /// The entry at `off`.
    #[inline]
    pub fn get(&self, off: usize) -> Entry<'_> {
        decode(self.buf(), off).expect("listpack entry")
    }

    /// Offset of the entry at `index`, negative from the tail (`lpSeek`):
    /// walks from the nearer end when the count is known.
    pub fn seek(&self, index: i64) -> Option<usize> {
        let header = self.header_count();
        let mut index = index;
        let mut forward = true;
        if header != COUNT_UNKNOWN {
            let n = i64::from(header);
            if index < 0 {
                index += n;
            }
            if index < 0 || index >= n {
                return None;
            }
            if index > n / 2 {
                forward = false;
                index -= n;
            }
        } else if index < 0 {
            forward = false;
        }
        if forward {
            let mut p = self.first();
            while index > 0 {
                p = self.next(p?);
                index -= 1;
            }
            p
        } else {
            let mut p = self.last();
            while index < -1 {
                p = self.prev(p?);
                index += 1;
            }
            p
        }
    }

    /// Forward iteration; `.rev()` walks from the tail.
    #[inline]
    pub fn iter(&self) -> Iter<'_> {
        let buf = self.buf();
        Iter { buf, front: HEADER_BYTES, back: buf.len() - 1 }
    }

    /// Entries two by two, as hashes (field, value) and sorted sets
    /// (member, score) store them. A trailing odd entry is not yielded.
    pub fn pairs(&self) -> Pairs<'_> {
        Pairs { it: self.iter() }
    }

    /// Writes entry `e` over the `replaced` bytes at `off`, moving the
    /// rest once. Returns the room in front after it.
    fn write_entry(&mut self, head: usize, off: usize, replaced: usize, e: Entry<'_>) -> usize {
        let mut int = [0u8; 9];
        // (header bytes, header length, string data)
        let (hdr_len, data): (usize, &[u8]) = match e {
            Entry::Int(v) => (encode_int(v, &mut int), &[]),
            Entry::Str(s) => match string_to_int(s) {
                Some(v) => (encode_int(v, &mut int), &[]),
                None => {
                    let l = s.len();
                    if l < 64 {
                        int[0] = 0x80 | l as u8;
                        (1, s)
                    } else if l < 4096 {
                        int[0] = 0xE0 | (l >> 8) as u8;
                        int[1] = l as u8;
                        (2, s)
                    } else {
                        let l = u32::try_from(l).expect("listpack string over 4 GiB");
                        int[0] = 0xF0;
                        int[1..5].copy_from_slice(&l.to_le_bytes());
                        (5, s)
                    }
                }
            },
        };
        let encoded = hdr_len + data.len();
        let mut back = [0u8; 5];
        let back_len = encode_backlen(encoded as u64, &mut back);
        let n = encoded + back_len;
        let mut head = head;
        let mut old = self.raw.len();
        if n > replaced && off == HEADER_BYTES && self.raw[head + off] != EOF {
            head = self.grow_at_head(head, n - replaced);
        } else if n > replaced {
            if head != 0 && old + n - replaced > self.raw.capacity() {
                // Full: the room in front goes before the buffer grows, so
                // that it grows to the class of the listpack's own size.
                self.raw.drain(..head);
                head = 0;
                old = self.raw.len();
            }
            // Grown to the allocator's size class, the memory Redis's exact
            // realloc occupies too: a doubling `Vec` kept up to 2x the bytes
            // (lists, whose nodes no command shrinks afterwards, paid it in
            // full), an exact one would realloc on every insert.
            super::reserve_blob(&mut self.raw, n - replaced);
            self.raw.resize(old + n - replaced, 0);
            if head + off + replaced == old - 1 {
                // An append: only the terminator follows (no memmove call).
                self.raw[old + n - replaced - 1] = EOF;
            } else {
                self.raw.copy_within(head + off + replaced..old, head + off + n);
            }
        } else if n < replaced {
            self.raw.copy_within(head + off + replaced..old, head + off + n);
            self.raw.truncate(old - (replaced - n));
        }
        let at = head + off;
        self.raw[at..at + hdr_len].copy_from_slice(&int[..hdr_len]);
        self.raw[at + hdr_len..at + encoded].copy_from_slice(data);
        self.raw[at + encoded..at + n].copy_from_slice(&back[..back_len]);
        self.set_total_bytes(head);
        head
    }

    /// Makes `grow` bytes of room between the header and the first entry
    /// and returns the new room in front. Taken from the room in front when
    /// it has them: only the header moves. Otherwise the listpack goes to
    /// the end of a buffer of its new size's allocator class (the memory an
    /// append takes, and Redis's realloc), the class's spare bytes in front
    /// for the next pushes at the head; when the class has fewer spare
    /// bytes than the room's mark, as an append grows it.
    fn grow_at_head(&mut self, head: usize, grow: usize) -> usize {
        let old = self.raw.len();
        if head == grow || head >= grow + HEAD_MARK_BYTES {
            let new_head = head - grow;
            self.raw.copy_within(head..head + HEADER_BYTES, new_head);
            self.set_head(new_head);
            return new_head;
        }
        let need = old - head + grow;
        let class = super::alloc_class(need);
        if class - need < HEAD_MARK_BYTES {
            super::reserve_blob(&mut self.raw, grow);
            self.raw.resize(old + grow, 0);
            self.raw.copy_within(head + HEADER_BYTES..old, head + HEADER_BYTES + grow);
            return head;
        }
        let new_head = class - need;
        let mut raw = Vec::with_capacity(class);
        raw.resize(new_head, 0);
        raw.extend_from_slice(&self.raw[head..head + HEADER_BYTES]);
        raw.resize(new_head + HEADER_BYTES + grow, 0);
        raw.extend_from_slice(&self.raw[head + HEADER_BYTES..]);
        self.raw = raw;
        self.set_head(new_head);
        new_head
    }

    #[inline]
    fn count_add(&mut self, head: usize, added: bool) {
        let n = u16::from_le_bytes([self.raw[head + 4], self.raw[head + 5]]);
        // An unknown count stays unknown; a known one may become 65535,
        // i.e. unknown, exactly as in Redis.
        if n != COUNT_UNKNOWN {
            self.set_header_count(head, if added { n + 1 } else { n - 1 });
        }
    }

    /// Inserts `e` before or after the entry at `off` (or before the
    /// terminator when `off` is its offset), `lpInsert`. A string that is
    /// a canonical integer is stored as the integer. Returns the new
    /// entry's offset.
    #[inline]
    pub fn insert(&mut self, off: usize, at: Where, e: Entry<'_>) -> usize {
        let head = self.head();
        let off = match at {
            Where::Before => off,
            Where::After => {
                let buf = &self.raw[head..];
                // Redis asserts this too: nothing goes after the terminator.
                assert!(buf[off] != EOF, "listpack insert after the terminator");
                off + entry_size(buf, off).expect("listpack entry")
            }
        };
        self.insert_at(head, off, e)
    }

    /// `insert` before the entry at `off`, the room in front known.
    #[inline]
    fn insert_at(&mut self, head: usize, off: usize, e: Entry<'_>) -> usize {
        let head = self.write_entry(head, off, 0, e);
        self.count_add(head, true);
        off
    }

    /// `lpAppend` / `lpAppendInteger`.
    #[inline]
    pub fn append(&mut self, e: Entry<'_>) -> usize {
        let head = self.head();
        self.insert_at(head, self.raw.len() - head - 1, e)
    }

    /// `lpPrepend` / `lpPrependInteger`.
    #[inline]
    pub fn prepend(&mut self, e: Entry<'_>) -> usize {
        let head = self.head();
        self.insert_at(head, HEADER_BYTES, e)
    }

    /// Replaces the entry at `off` with `e` in place (`lpReplace`); the
    /// offset stays the entry's.
    #[inline]
    pub fn replace(&mut self, off: usize, e: Entry<'_>) {
        let head = self.head();
        let old = entry_size(&self.raw[head..], off).expect("listpack entry");
        self.write_entry(head, off, old, e);
    }

    /// Deletes the entry at `off` (`lpDelete`); returns the offset of the
    /// entry that took its place, None if it was the last.
    #[inline]
    pub fn delete(&mut self, off: usize) -> Option<usize> {
        self.delete_at(off, 1)
    }

    /// Deletes up to `num` entries from `off` (`lpDeleteRangeWithEntry`);
    /// returns the offset of the entry that follows, if any. From the
    /// first entry, the header moves forward over them instead of the rest
    /// back (their bytes join the room in front).
    pub fn delete_at(&mut self, off: usize, num: usize) -> Option<usize> {
        let head = self.delete_in(self.head(), off, num);
        (self.raw[head + off] != EOF).then_some(off)
    }

    /// `delete_at` with the room in front known; returns the room after.
    #[inline]
    fn delete_in(&mut self, head: usize, off: usize, num: usize) -> usize {
        let mut head = head;
        let buf = &self.raw[head..];
        let mut tail = off;
        let mut deleted: usize = 0;
        while deleted != num && buf[tail] != EOF {
            tail += entry_size(buf, tail).expect("listpack entry");
            deleted += 1;
        }
        if off == HEADER_BYTES && head + tail - off >= HEAD_MARK_BYTES {
            let new_head = head + tail - off;
            self.raw.copy_within(head..head + HEADER_BYTES, new_head);
            self.set_head(new_head);
            head = new_head;
        } else {
            self.raw.drain(head + off..head + tail);
        }
        self.set_total_bytes(head);
        let n = u16::from_le_bytes([self.raw[head + 4], self.raw[head + 5]]);
        if n != COUNT_UNKNOWN {
            // A known count is at most 65534, so `deleted` fits.
            self.set_header_count(head, n - deleted as u16);
        }
        head
    }

    /// Deletes `num` entries from `index`, negative from the tail
    /// (`lpDeleteRange`). An out-of-range index deletes nothing.
    pub fn delete_range(&mut self, index: i64, num: usize) {
        if num == 0 {
            return;
        }
        let Some(off) = self.seek(index) else { return };
        let n = self.header_count();
        if n != COUNT_UNKNOWN {
            let index = if index < 0 { index + i64::from(n) } else { index };
            if (i64::from(n) - index) as u64 <= num as u64 {
                // Everything from here to the end goes.
                let head = self.head();
                self.raw.truncate(head + off);
                self.raw.push(EOF);
                self.set_total_bytes(head);
                self.set_header_count(head, index as u16);
                return;
            }
        }
        self.delete_at(off, num);
    }

    /// `lpFind`: from the entry at `off`, the first entry equal to `s`
    /// (as `Entry::eq_bytes`), looking at one entry then skipping `skip`
    /// (1 for the fields of a hash: field, value, field, ...).
    pub fn find(&self, off: usize, s: &[u8], skip: usize) -> Option<usize> {
        let buf = self.buf();
        // Parse `s` once, as Redis does; over 31 bytes it is never tried.
        let as_int = if s.len() < 32 { string_to_int(s) } else { None };
        let mut p = off;
        loop {
            let first = buf[p];
            let hit = if first & 0xC0 == 0x80 {
                // A 6-bit string (every string under 64 bytes written
                // here or by Redis), read in place: its length, its last
                // byte (keys sharing a prefix and a length, as
                // redis-benchmark's `element:<n>`, differ there), then all
                // of it. No decode, and memcmp only for a likely match.
                let len = usize::from(first & 0x3F);
                len == s.len() && (len == 0 || buf[p + len] == s[len - 1]) && buf[p + 1..p + 1 + len] == *s
            } else {
                match decode(buf, p).expect("listpack entry") {
                    Entry::Str(v) => v == s,
                    Entry::Int(v) => as_int == Some(v),
                }
            };
            if hit {
                return Some(p);
            }
            for _ in 0..=skip {
                let first = buf[p];
                p += match first {
                    // A 7-bit integer or a 6-bit string: encoded in at most
                    // 64 bytes, so a one-byte back-length.
                    0x00..=0x7F => 2,
                    0x80..=0xBF => 2 + usize::from(first & 0x3F),
                    _ => entry_size(buf, p).expect("listpack entry"),
                };
                if buf[p] == EOF {
                    return None;
                }
            }
        }
    }

    /// Gives back spare capacity. Redis reallocs a listpack to its exact
    /// size on every change; a `Vec` grows by doubling, which left 100k
    /// ten-member sorted sets built by ZADD at 2.7x Redis's memory.
    /// Down to the allocator's size class of the length (`alloc_class`),
    /// which is what an exact realloc would occupy; the room in front goes
    /// too.
    pub fn shrink_to_fit(&mut self) {
        self.drop_head();
        super::shrink_blob(&mut self.raw);
    }

    /// Offsets of the field `field` and of its value in a listpack of
    /// pairs (hashes, sorted sets by member).
    pub fn find_field(&self, field: &[u8]) -> Option<(usize, usize)> {
        let f = self.find(self.first()?, field, 1)?;
        Some((f, self.next(f)?))
    }
}

/// Forward and backward iteration over a listpack's entries.
pub struct Iter<'a> {
    /// The listpack's bytes.
    buf: &'a [u8],
    /// Offset of the next entry from the front.
    front: usize,
    /// Offset just past the next entry from the back.
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.front >= self.back {
            return None;
        }
        let e = decode(self.buf, self.front).expect("listpack entry");
        self.front += entry_size(self.buf, self.front).expect("listpack entry");
        Some(e)
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<Entry<'a>> {
        if self.front >= self.back {
            return None;
        }
        let len = decode_backlen(self.buf, self.back).expect("listpack back-length");
        self.back -= len as usize + backlen_size(len);
        Some(decode(self.buf, self.back).expect("listpack entry"))
    }
}

/// Entries two by two.
pub struct Pairs<'a> {
    it: Iter<'a>,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Entry<'a>, Entry<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        Some((self.it.next()?, self.it.next()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn built(items: &[&[u8]]) -> Listpack {
        let mut lp = Listpack::new();
        for i in items {
            lp.append(Entry::Str(i));
        }
        lp
    }

    /// The encoded bytes of one entry (encoding, data, back-length).
    fn entry_bytes(e: Entry<'_>) -> Vec<u8> {
        let mut lp = Listpack::new();
        lp.append(e);
        let b = lp.into_bytes();
        b[HEADER_BYTES..b.len() - 1].to_vec()
    }

    #[test]
    fn forward_iteration_reads_every_encoding_and_size() {
        // One entry of each encoding (7-bit, 13-bit, 16/24/32/64-bit ints,
        // 6-bit, 12-bit and 32-bit strings, back-lengths of 1..3 bytes):
        // iteration both ways agrees with get + next (LRANGE, the pops).
        let long12 = vec![b'm'; 200];
        let long32 = vec![b'l'; 5000];
        let items: Vec<&[u8]> = vec![b"5", b"-100", b"30000", b"-8000000", b"2000000000", b"-9000000000000000000", b"abc", &long12, &long32, b""];
        let lp = built(&items);
        let mut via_offsets = Vec::new();
        let mut at = lp.first();
        while let Some(off) = at {
            via_offsets.push(lp.get(off));
            at = lp.next(off);
        }
        assert_eq!(lp.iter().collect::<Vec<_>>(), via_offsets);
        assert_eq!(lp.iter().map(|e| e.to_vec()).collect::<Vec<_>>(), items.iter().map(|i| i.to_vec()).collect::<Vec<_>>());
        assert_eq!(lp.iter().rev().collect::<Vec<_>>(), via_offsets.into_iter().rev().collect::<Vec<_>>());
    }

    #[test]
    fn empty_is_seven_bytes() {
        let lp = Listpack::new();
        assert_eq!(lp.as_bytes(), &[7, 0, 0, 0, 0, 0, 0xFF]);
        assert_eq!(lp.len(), 0);
        assert!(lp.first().is_none() && lp.last().is_none() && lp.seek(0).is_none() && lp.seek(-1).is_none());
        validate(lp.as_bytes(), true).unwrap();
    }

    #[test]
    fn integer_encoding_edges() {
        // (value, first byte, entry size without back-length)
        let cases: &[(i64, u8, usize)] = &[
            (0, 0x00, 1),
            (127, 0x7F, 1),
            (128, 0xC0, 2),
            (-1, 0xDF, 2),
            (4095, 0xCF, 2),
            (-4096, 0xD0, 2),
            (4096, 0xF1, 3),
            (-4097, 0xF1, 3),
            (32767, 0xF1, 3),
            (-32768, 0xF1, 3),
            (32768, 0xF2, 4),
            (-32769, 0xF2, 4),
            (8_388_607, 0xF2, 4),
            (-8_388_608, 0xF2, 4),
            (8_388_608, 0xF3, 5),
            (-8_388_609, 0xF3, 5),
            (i64::from(i32::MAX), 0xF3, 5),
            (i64::from(i32::MIN), 0xF3, 5),
            (i64::from(i32::MAX) + 1, 0xF4, 9),
            (i64::from(i32::MIN) - 1, 0xF4, 9),
            (i64::MAX, 0xF4, 9),
            (i64::MIN, 0xF4, 9),
        ];
        for &(v, first, size) in cases {
            let e = entry_bytes(Entry::Int(v));
            assert_eq!((e[0], e.len()), (first, size + 1), "{}", v);
            assert_eq!(e[size] as usize, size, "back-length of {}", v);
            // The same bytes from its decimal text, and back.
            assert_eq!(entry_bytes(Entry::Str(v.to_string().as_bytes())), e, "{}", v);
            let lp = built(&[v.to_string().as_bytes()]);
            assert_eq!(lp.iter().collect::<Vec<_>>(), vec![Entry::Int(v)]);
            assert_eq!(lp.iter().rev().collect::<Vec<_>>(), vec![Entry::Int(v)]);
        }
        // -1 in 13 bits is 0x1FFF; -4096 is 0x1000.
        assert_eq!(entry_bytes(Entry::Int(-1)), [0xDF, 0xFF, 2]);
        assert_eq!(entry_bytes(Entry::Int(-4096)), [0xD0, 0x00, 2]);
        assert_eq!(entry_bytes(Entry::Int(-32768)), [0xF1, 0x00, 0x80, 3]);
    }

    #[test]
    fn strings_that_are_not_canonical_integers_stay_strings() {
        for s in
            [&b""[..], b"-", b"-0", b"00", b"01", b"+1", b" 1", b"1 ", b"1a", b"9223372036854775808", b"-9223372036854775809", b"99999999999999999999", b"1.5"]
        {
            assert_eq!(string_to_int(s), None, "{:?}", s);
            let lp = built(&[s]);
            assert_eq!(lp.iter().collect::<Vec<_>>(), vec![Entry::Str(s)]);
        }
        assert_eq!(string_to_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string_to_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(string_to_int(b"0"), Some(0));
        assert_eq!(string_to_int(b"-1"), Some(-1));
    }

    #[test]
    fn string_length_edges() {
        // (length, header bytes, back-length bytes)
        for (len, hdr, back) in [
            (0usize, 1usize, 1usize),
            (1, 1, 1),
            (63, 1, 1),
            (64, 2, 1),
            (125, 2, 1),
            (126, 2, 2), // 128 bytes of encoding + data: the 2-byte back-length starts
            (4095, 2, 2),
            (4096, 5, 2),
            (16377, 5, 2),
            (16378, 5, 3), // 16383: Redis's `< 16383` edge
            (2_097_145, 5, 3),
            (2_097_146, 5, 4), // 2097151
        ] {
            let s = vec![b'x'; len];
            let e = entry_bytes(Entry::Str(&s));
            assert_eq!(e.len(), hdr + len + back, "length {}", len);
            let lp = built(&[&s, b"a", &s]);
            validate(lp.as_bytes(), true).unwrap();
            let want = vec![Entry::Str(&s[..]), Entry::Str(b"a"), Entry::Str(&s[..])];
            assert_eq!(lp.iter().collect::<Vec<_>>(), want);
            assert_eq!(lp.iter().rev().collect::<Vec<_>>(), want.into_iter().rev().collect::<Vec<_>>());
        }
        assert_eq!(entry_bytes(Entry::Str(b"")), [0x80, 1]);
        let s63 = entry_bytes(Entry::Str(&[b'a'; 63]));
        assert_eq!((s63[0], s63[64]), (0xBF, 64));
        let s64 = entry_bytes(Entry::Str(&[b'a'; 64]));
        assert_eq!((s64[0], s64[1], s64[66]), (0xE0, 64, 66));
        let s4095 = entry_bytes(Entry::Str(&[b'a'; 4095]));
        assert_eq!(&s4095[..2], &[0xEF, 0xFF]);
        // 4097 = 0x1001 in 7-bit groups, most significant first: 0x20, 0x01|0x80.
        assert_eq!(&s4095[4097..], &[0x20, 0x81]);
        let s4096 = entry_bytes(Entry::Str(&[b'a'; 4096]));
        assert_eq!(&s4096[..5], &[0xF0, 0x00, 0x10, 0x00, 0x00]);
    }

    #[test]
    fn backlen_round_trips_at_its_edges() {
        for len in [0u64, 127, 128, 16382, 16383, 2_097_150, 2_097_151, 268_435_454, 268_435_455, u64::from(u32::MAX)] {
            let mut b = [0u8; 5];
            let n = encode_backlen(len, &mut b);
            assert_eq!(n, backlen_size(len));
            assert_eq!(decode_backlen(&b[..n], n), Some(len), "{}", len);
        }
        assert_eq!(backlen_size(16382), 2);
        assert_eq!(backlen_size(16383), 3);
    }

    #[test]
    fn seek_insert_replace_delete() {
        let mut lp = built(&[b"hello", b"foo", b"quux", b"1024"]);
        assert_eq!(lp.get(lp.seek(0).unwrap()), Entry::Str(b"hello"));
        assert_eq!(lp.get(lp.seek(3).unwrap()), Entry::Int(1024));
        assert_eq!(lp.get(lp.seek(-1).unwrap()), Entry::Int(1024));
        assert_eq!(lp.get(lp.seek(-4).unwrap()), Entry::Str(b"hello"));
        assert!(lp.seek(4).is_none() && lp.seek(-5).is_none());
        let p = lp.seek(1).unwrap();
        lp.insert(p, Where::After, Entry::Int(-5));
        lp.insert(p, Where::Before, Entry::Str(b"x"));
        let q = lp.seek(-1).unwrap();
        lp.replace(q, Entry::Str(&[b'y'; 200]));
        assert_eq!(
            lp.iter().map(|e| e.to_vec()).collect::<Vec<_>>(),
            vec![b"hello".to_vec(), b"x".to_vec(), b"foo".to_vec(), b"-5".to_vec(), b"quux".to_vec(), vec![b'y'; 200]]
        );
        assert_eq!(lp.len(), 6);
        lp.delete_range(1, 2);
        lp.delete_range(-1, 10);
        assert_eq!(lp.iter().map(|e| e.to_vec()).collect::<Vec<_>>(), vec![b"hello".to_vec(), b"-5".to_vec(), b"quux".to_vec()]);
        let p = lp.first().unwrap();
        assert_eq!(lp.delete(p), Some(p));
        lp.delete_range(0, usize::MAX);
        assert_eq!(lp, Listpack::new());
    }

    #[test]
    fn pushes_and_pops_at_the_head_move_only_the_header() {
        // LPUSH's and LPOP's shape: once a push at the head has put the
        // listpack at the end of its buffer, the next pushes write into the
        // room in front and the entries already there stay where they lie
        // (no move of the listpack), until the room runs out.
        let mut lp = Listpack::new();
        for _ in 0..205 {
            lp.append(Entry::Str(b"xxx"));
        }
        lp.prepend(Entry::Str(b"xxx"));
        let last = |lp: &Listpack| lp.as_bytes().as_ptr() as usize + lp.last().unwrap();
        let fixed = last(&lp);
        let mut moved_at = None;
        for i in 0..400 {
            lp.prepend(Entry::Str(b"xxx"));
            if last(&lp) != fixed {
                moved_at = Some(i);
                break;
            }
        }
        // 1037 bytes sit in the 1280-byte class: 243 bytes of room, 5 a
        // push, and the room keeps at least its 4-byte mark.
        assert_eq!(moved_at, Some(47));
        // Pops at the head move the header only, too.
        let fixed = last(&lp);
        for _ in 0..100 {
            lp.delete(lp.first().unwrap());
            assert_eq!(last(&lp), fixed);
        }
        let items = vec![b"xxx".as_slice(); lp.len()];
        assert_eq!(lp.as_bytes(), built(&items).as_bytes());
        validate(lp.as_bytes(), true).unwrap();
        // A small entry popped from a listpack without room leaves too few
        // bytes to say the room's size: the rest moves back, as before.
        let mut lp = built(&[b"1", b"abc"]);
        lp.delete(lp.first().unwrap());
        assert_eq!(lp.as_bytes(), built(&[b"abc"]).as_bytes());
        assert_eq!(lp.into_bytes(), built(&[b"abc"]).into_bytes());
    }

    #[test]
    fn prepend_if_takes_the_room_in_front_as_prepend_does() {
        // LPUSH's path (`prepend_if`'s short-string write) uses the room
        // exactly as `prepend` does: the same 47 pushes before the
        // listpack moves, and the bytes appends of the same elements build.
        let mut lp = Listpack::new();
        for _ in 0..205 {
            lp.append(Entry::Str(b"xxx"));
        }
        assert!(lp.prepend_if(Entry::Str(b"xxx"), |_, _| true));
        let last = |lp: &Listpack| lp.as_bytes().as_ptr() as usize + lp.last().unwrap();
        let fixed = last(&lp);
        let mut moved_at = None;
        for i in 0..400 {
            assert!(lp.prepend_if(Entry::Str(b"xxx"), |_, _| true));
            validate(lp.as_bytes(), true).unwrap();
            if moved_at.is_none() && last(&lp) != fixed {
                moved_at = Some(i);
            }
        }
        assert_eq!(moved_at, Some(47));
        assert_eq!(lp.len(), 606);
        let items = vec![b"xxx".as_slice(); lp.len()];
        assert_eq!(lp.as_bytes(), built(&items).as_bytes());
        // Integers and long strings take the general path: same bytes.
        for e in [b"12".as_slice(), b"-7", &[b'v'; 64], &[b'w'; 63], b""] {
            assert!(lp.prepend_if(Entry::Str(e), |_, _| true));
        }
        let mut items: Vec<&[u8]> = vec![b"", &[b'w'; 63], &[b'v'; 64], b"-7", b"12"];
        items.extend(vec![b"xxx".as_slice(); 606]);
        assert_eq!(lp.as_bytes(), built(&items).as_bytes());
    }

    #[test]
    fn with_room_fills_its_buffer_in_place() {
        // A quicklist's new edge node (`Quicklist::edge_node`): the bytes
        // of an append to an empty listpack, and pushes at its end (room
        // in front for the head, behind for the tail) up to about the
        // size asked for write into the buffer without moving it.
        for front in [true, false] {
            for first in [b"xxx".as_slice(), b"12", &[b'v'; 70]] {
                let lp = Listpack::with_room(8192, front, Entry::Str(first));
                assert_eq!(lp.as_bytes(), built(&[first]).as_bytes());
                assert_eq!(lp.raw.capacity(), 8192);
                // Nearly empty, it holds more than its class: a split or
                // merge that touches it shrinks it (`Quicklist::compact`).
                assert!(lp.has_spare_class());
            }
            let mut lp = Listpack::with_room(8192, front, Entry::Str(b"xxx"));
            let start = lp.raw.as_ptr();
            let mut pushed = 1;
            while lp.total_bytes() + 5 + 8 <= 8192 {
                if front {
                    assert!(lp.prepend_if(Entry::Str(b"xxx"), |_, _| true));
                } else {
                    assert!(lp.append_if(Entry::Str(b"xxx"), |_, _| true));
                }
                pushed += 1;
            }
            validate(lp.as_bytes(), true).unwrap();
            assert_eq!(lp.raw.as_ptr(), start, "front {front}: the buffer moved");
            assert_eq!(lp.raw.capacity(), 8192);
            assert_eq!(lp.as_bytes(), built(&vec![b"xxx".as_slice(); pushed]).as_bytes());
            // Full, the buffer is its class: nothing to give back.
            assert!(!lp.has_spare_class());
        }
        // A class with less spare than the room's mark keeps no room: 14
        // bytes in a 16-byte buffer.
        let lp = Listpack::with_room(0, true, Entry::Str(b"xxxxx"));
        assert_eq!(lp.as_bytes(), built(&[b"xxxxx"]).as_bytes());
        assert_eq!((lp.head(), lp.raw.capacity()), (0, 16));
    }

    #[test]
    fn find_with_skip() {
        let lp = built(&[b"a", b"1", b"12", b"b", b"b", b"12"]);
        assert_eq!(lp.find_field(b"12").map(|(f, v)| (lp.get(f), lp.get(v))), Some((Entry::Int(12), Entry::Str(b"b"))));
        assert_eq!(lp.find_field(b"b").map(|(_, v)| lp.get(v)), Some(Entry::Int(12)));
        // "1" is a value, not a field.
        assert_eq!(lp.find_field(b"1"), None);
        assert!(lp.find(lp.first().unwrap(), b"1", 0).is_some());
        assert_eq!(lp.find(lp.first().unwrap(), b"01", 0), None);
        let pairs: Vec<_> = lp.pairs().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(pairs.len(), 3);
    }

    /// `find`'s in-place reading of short strings and small integers
    /// against a plain scan of decoded entries, over every encoding
    /// (6-, 12- and 32-bit strings, 7- and 13-bit and wider integers),
    /// every start and both skips.
    fn scan(lp: &Listpack, off: usize, s: &[u8], skip: usize) -> Option<usize> {
        let as_int = if s.len() < 32 { string_to_int(s) } else { None };
        let mut p = off;
        loop {
            if match lp.get(p) {
                Entry::Str(v) => v == s,
                Entry::Int(v) => as_int == Some(v),
            } {
                return Some(p);
            }
            for _ in 0..=skip {
                p = lp.next(p)?;
            }
        }
    }

    fn item() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0i64..200).prop_map(|n| n.to_string().into_bytes()),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'0')], 0..4),
            (0usize..3, 60usize..70).prop_map(|(c, n)| vec![b'x' + c as u8; n]),
            (0usize..2).prop_map(|c| vec![b'y' + c as u8; 5000]),
        ]
    }

    proptest! {
        #[test]
        fn find_matches_a_decoding_scan(items in proptest::collection::vec(item(), 1..40), probes in proptest::collection::vec(item(), 1..6)) {
            let lp = built(&items.iter().map(|v| v.as_slice()).collect::<Vec<_>>());
            let mut starts = vec![];
            let mut p = lp.first();
            while let Some(o) = p {
                starts.push(o);
                p = lp.next(o);
            }
            for s in probes.iter().chain(&items) {
                for &off in &starts {
                    for skip in [0, 1] {
                        prop_assert_eq!(lp.find(off, s, skip), scan(&lp, off, s, skip));
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_count_is_walked() {
        let mut lp = built(&[b"a", b"b", b"c"]);
        lp.set_header_count(lp.head(), COUNT_UNKNOWN);
        let bytes = lp.as_bytes().to_vec();
        validate(&bytes, true).unwrap();
        let lp = Listpack::from_bytes(bytes).unwrap();
        assert_eq!(lp.len(), 3);
        assert_eq!(lp.get(lp.seek(-1).unwrap()), Entry::Str(b"c"));
        assert_eq!(lp.get(lp.seek(1).unwrap()), Entry::Str(b"b"));
        assert!(lp.seek(3).is_none());
        let mut lp2 = lp.clone();
        lp2.append(Entry::Int(1));
        assert_eq!(lp2.header_count(), COUNT_UNKNOWN);
        // A known count that reaches 65535 becomes "unknown", as in Redis.
        let mut big = Listpack::new();
        for _ in 0..65535 {
            big.append(Entry::Int(1));
        }
        assert_eq!(big.header_count(), COUNT_UNKNOWN);
        assert_eq!(big.len(), 65535);
        validate(big.as_bytes(), true).unwrap();
    }

    #[test]
    fn corrupt_blobs_are_refused() {
        let good = built(&[b"abc", b"123456", &[b'z'; 70]]).into_bytes();
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            assert!(validate(&b, true).is_err(), "{:?}", b);
            assert!(Listpack::from_bytes(b).is_err());
        };
        bad(&|b| b.truncate(6));
        bad(&|b| b[0] += 1);
        bad(&|b| *b.last_mut().unwrap() = 0);
        bad(&|b| b[4] = 2); // count
        bad(&|b| b[6] = 0xF5); // no such encoding
        bad(&|b| b[6] = 0x84); // string length 4 instead of 3: back-length mismatch
        bad(&|b| b[10] = 5); // back-length of the first entry
        bad(&|b| {
            b.insert(6, 0xFF); // a terminator before the end
            let n = b.len() as u32;
            b[..4].copy_from_slice(&n.to_le_bytes());
        });
        assert!(validate(&good, false).is_ok());
        // Shallow validation checks the frame only, as Redis's.
        let mut b = good.clone();
        b[6] = 0xF5;
        assert!(validate(&b, false).is_ok());
    }

    #[test]
    fn validate_unique_pairs() {
        validate_unique(built(&[b"f", b"1", b"g", b"1"]).as_bytes(), true, true).unwrap();
        assert!(validate_unique(built(&[b"f", b"1", b"g"]).as_bytes(), true, true).is_err());
        assert!(validate_unique(built(&[b"1", b"x", b"1", b"y"]).as_bytes(), true, true).is_err());
        validate_unique(built(&[b"1", b"x", b"1", b"y"]).as_bytes(), false, true).unwrap();
        assert!(validate_unique(built(&[b"a", b"a"]).as_bytes(), true, false).is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<u8>),
        Prepend(Vec<u8>),
        AppendInt(i64),
        Insert(usize, bool, Vec<u8>),
        Replace(usize, Vec<u8>),
        Delete(usize),
        DeleteRange(i64, usize),
        PopFirst,
        Shrink,
        /// RPUSH's append (`append_if`, its short-string path included).
        AppendIf(Vec<u8>),
        /// LPOP's / RPOP's `pop_edge` (true: the first entry).
        PopEdge(bool),
        /// LPUSH's prepend (`prepend_if`, its short-string path included),
        /// several back to back so that the room in front is used.
        PrependIf(Vec<Vec<u8>>),
    }

    fn element() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-5000i64..5000).prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..80),
            (0usize..5000).prop_map(|n| vec![b'v'; n]),
            Just(b"-0".to_vec()),
            Just(b"007".to_vec()),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            element().prop_map(Op::Append),
            element().prop_map(Op::Prepend),
            any::<i64>().prop_map(Op::AppendInt),
            (any::<usize>(), any::<bool>(), element()).prop_map(|(i, a, e)| Op::Insert(i, a, e)),
            (any::<usize>(), element()).prop_map(|(i, e)| Op::Replace(i, e)),
            any::<usize>().prop_map(Op::Delete),
            (-20i64..20, 0usize..6).prop_map(|(i, n)| Op::DeleteRange(i, n)),
            // The head's room: pushes and pops at the head, back to back.
            proptest::collection::vec(element(), 1..12).prop_map(|v| Op::Prepend(v.concat())),
            Just(Op::PopFirst),
            Just(Op::Shrink),
            element().prop_map(Op::AppendIf),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Op::AppendIf),
            any::<bool>().prop_map(Op::PopEdge),
            proptest::collection::vec(element(), 1..12).prop_map(Op::PrependIf),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..40).prop_map(Op::PrependIf),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn behaves_like_a_vec(ops in proptest::collection::vec(op(), 0..40)) {
            let mut lp = Listpack::new();
            let mut model: Vec<Vec<u8>> = vec![];
            for op in ops {
                match op {
                    Op::Append(e) => { lp.append(Entry::Str(&e)); model.push(e); }
                    Op::Prepend(e) => { lp.prepend(Entry::Str(&e)); model.insert(0, e); }
                    Op::AppendInt(v) => { lp.append(Entry::Int(v)); model.push(v.to_string().into_bytes()); }
                    Op::Insert(i, after, e) => {
                        if model.is_empty() { continue; }
                        let i = i % model.len();
                        let p = lp.seek(i as i64).unwrap();
                        let at = if after { Where::After } else { Where::Before };
                        let q = lp.insert(p, at, Entry::Str(&e));
                        prop_assert!(lp.get(q).eq_bytes(&e));
                        model.insert(i + after as usize, e);
                    }
                    Op::Replace(i, e) => {
                        if model.is_empty() { continue; }
                        let i = i % model.len();
                        let p = lp.seek(-(i as i64) - 1).unwrap();
                        lp.replace(p, Entry::Str(&e));
                        let n = model.len();
                        model[n - 1 - i] = e;
                    }
                    Op::Delete(i) => {
                        if model.is_empty() { continue; }
                        let i = i % model.len();
                        lp.delete(lp.seek(i as i64).unwrap());
                        model.remove(i);
                    }
                    Op::DeleteRange(i, n) => {
                        lp.delete_range(i, n);
                        let len = model.len() as i64;
                        let start = if i < 0 { i + len } else { i };
                        if n > 0 && start >= 0 && start < len {
                            let end = (start as usize + n).min(model.len());
                            model.drain(start as usize..end);
                        }
                    }
                    Op::PopFirst => {
                        if let Some(p) = lp.first() {
                            lp.delete(p);
                            model.remove(0);
                        }
                    }
                    Op::Shrink => lp.shrink_to_fit(),
                    Op::AppendIf(e) => {
                        let (bytes, len) = (lp.total_bytes(), lp.len());
                        prop_assert!(lp.append_if(Entry::Str(&e), |b, n| b == bytes && n == len));
                        prop_assert!(!lp.append_if(Entry::Str(&e), |_, _| false));
                        model.push(e);
                    }
                    Op::PrependIf(es) => {
                        for e in es {
                            let (bytes, len) = (lp.total_bytes(), lp.len());
                            prop_assert!(!lp.prepend_if(Entry::Str(&e), |_, _| false));
                            prop_assert!(lp.prepend_if(Entry::Str(&e), |b, n| b == bytes && n == len));
                            validate(lp.as_bytes(), true).map_err(TestCaseError::fail)?;
                            model.insert(0, e);
                        }
                    }
                    Op::PopEdge(first) => {
                        let popped = lp.pop_edge(first, |e| e.to_vec());
                        let expect = if first { (!model.is_empty()).then(|| model.remove(0)) } else { model.pop() };
                        prop_assert_eq!(popped, expect.map(|v| (v, model.is_empty())));
                    }
                }
                validate(lp.as_bytes(), true).map_err(TestCaseError::fail)?;
                prop_assert_eq!(lp.total_bytes(), lp.as_bytes().len());
            }
            prop_assert_eq!(lp.len(), model.len());
            let fwd: Vec<Vec<u8>> = lp.iter().map(|e| e.to_vec()).collect();
            prop_assert_eq!(&fwd, &model);
            let mut back: Vec<Vec<u8>> = lp.iter().rev().map(|e| e.to_vec()).collect();
            back.reverse();
            prop_assert_eq!(&back, &model);
            for (i, m) in model.iter().enumerate() {
                prop_assert!(lp.get(lp.seek(i as i64).unwrap()).eq_bytes(m));
                prop_assert!(lp.get(lp.seek(i as i64 - model.len() as i64).unwrap()).eq_bytes(m));
            }
            // Built from its own bytes, the same listpack; and the bytes
            // appends of the same elements build (Redis's), whatever room
            // lies in front.
            prop_assert_eq!(Listpack::from_bytes(lp.as_bytes().to_vec()).unwrap(), lp.clone());
            let items: Vec<&[u8]> = model.iter().map(|m| m.as_slice()).collect();
            let appended = built(&items);
            prop_assert_eq!(appended.as_bytes(), lp.as_bytes());
            prop_assert_eq!(lp.clone().into_bytes(), lp.as_bytes().to_vec());
        }

        #[test]
        fn corruption_never_panics(
            items in proptest::collection::vec(element(), 0..12),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in proptest::option::of(any::<usize>()),
        ) {
            let mut b = Listpack::new();
            for i in &items { b.append(Entry::Str(i)); }
            let mut bytes = b.into_bytes();
            for (at, v) in flips {
                let at = at % bytes.len();
                bytes[at] = v;
            }
            if let Some(c) = cut { bytes.truncate(c % (bytes.len() + 1)); }
            // Fix the total sometimes so that the deep checks are reached.
            if bytes.len() >= 4 && items.len() % 2 == 0 {
                let n = bytes.len() as u32;
                bytes[..4].copy_from_slice(&n.to_le_bytes());
            }
            let _ = validate_unique(&bytes, true, true);
            if let Ok(lp) = Listpack::from_bytes(bytes.clone()) {
                // Whatever passed decodes, both ways, to a bounded count.
                let n = lp.iter().count();
                prop_assert!(n <= bytes.len());
                prop_assert_eq!(lp.iter().rev().count(), n);
                prop_assert_eq!(lp.len(), n);
                for e in lp.iter() {
                    if let Entry::Str(s) = e { prop_assert!(s.len() < bytes.len()); }
                }
            }
        }
    }
}
