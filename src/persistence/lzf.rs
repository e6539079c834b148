//! LZF, the compression RDB uses for strings (liblzf's format).
//!
//! The compressor keeps its hash table between calls and does not clear it:
//! positions are stored relative to a base that grows with every call, so an
//! entry left by an earlier value is recognised as stale by one comparison
//! that is predictably false (no zeroing of the table per value, the cost
//! that makes `lzf-rust`'s compressor slow on small values, and no
//! mispredicted branch per byte on stale candidates).
//!
//! Two departures from liblzf's search, both producing a valid LZF stream
//! that liblzf (and so Redis) decompresses: literals are copied out in runs
//! when a match ends them rather than byte by byte, and after a stretch of
//! positions without a match the search steps over more and more of them
//! (as LZ4 does), so incompressible values cost a fraction of a full scan.

const HASH_LOG: u32 = 14;
const HASH_SIZE: usize = 1 << HASH_LOG;
/// Longest back-reference distance and match length of the format.
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);
const MAX_LIT: usize = 1 << 5;
/// Where `compress` checks whether the input compresses enough to go on.
const EARLY_CHECK_BYTES: usize = 256;
/// After `1 << SKIP_SHIFT` positions without a match the search advances
/// two bytes at a time, after twice that three, and so on; a match resets it.
const SKIP_SHIFT: u32 = 5;

pub struct Compressor {
    /// Positions as `base + offset in the input` of the call that stored them.
    table: Box<[u32; HASH_SIZE]>,
    /// Where this call's positions start: every earlier call's entries are
    /// below it, so they read as out of range without a byte compared.
    base: u32,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor { table: Box::new([0u32; HASH_SIZE]), base: 1 }
    }
}

/// Reserves the positions of an `n`-byte input in a table kept between
/// calls: returns this call's base (entries below it are stale) and moves
/// `base` past it; when positions would wrap (every ~4 GiB of input) the
/// table starts over. None for an input too long to index.
fn reserve_positions(table: &mut [u32], base: &mut u32, n: usize) -> Option<u32> {
    if n >= (u32::MAX - *base) as usize {
        table.fill(0);
        *base = 1;
        if n >= u32::MAX as usize - 1 {
            return None;
        }
    }
    let this = *base;
    *base += n as u32 + 1;
    Some(this)
}

/// The three bytes at `input[i..i + 3]` as one number (the caller
/// guarantees they exist).
#[inline(always)]
fn seq3(input: &[u8], i: usize) -> u32 {
    let p = &input[i..i + 3];
    (p[0] as u32) << 16 | (p[1] as u32) << 8 | p[2] as u32
}

#[inline(always)]
fn hash(v: u32) -> usize {
    (v.wrapping_mul(2654435761) >> (32 - HASH_LOG)) as usize
}

impl Compressor {
    /// Compresses `input` into `out`; returns the compressed length, or 0
    /// when the result would not fit in `out.len()` bytes (as liblzf).
    pub fn compress(&mut self, input: &[u8], out: &mut [u8]) -> usize {
        let n = input.len();
        if n == 0 || out.len() < 2 {
            return 0;
        }
        let Some(base) = reserve_positions(&mut self.table[..], &mut self.base, n) else { return 0 };
        let table = &mut *self.table;
        let mut ip = 0usize;
        let mut op = 0usize;
        // Start of the literals not yet copied out.
        let mut anchor = 0usize;
        let mut misses = 0usize;
        let mut check_at = EARLY_CHECK_BYTES;
        while ip + 2 < n {
            if ip >= check_at {
                // Incompressible or barely compressible data (random bytes,
                // hex digits, already-compressed payloads) would be walked to
                // the end for a saving of a few bytes at best: if the first
                // bytes saved less than 1/32, give up and let the caller
                // store the value raw (what a failed compression does too).
                let pending = ip - anchor;
                let projected = op + pending + pending.div_ceil(MAX_LIT);
                if projected * 32 >= ip * 31 {
                    return 0;
                }
                check_at = usize::MAX;
            }
            let v = seq3(input, ip);
            let h = hash(v);
            // An earlier call's entry wraps to a huge offset: not `< ip`.
            let r = table[h].wrapping_sub(base) as usize;
            table[h] = base + ip as u32;
            if r < ip && ip - r <= MAX_OFF && seq3(input, r) == v {
                let maxlen = (n - ip).min(MAX_REF);
                let mut len = 3;
                while len < maxlen && input[r + len] == input[ip + len] {
                    len += 1;
                }
                if !emit_literals(out, &mut op, &input[anchor..ip]) || op + 3 > out.len() {
                    return 0;
                }
                let off = ip - r - 1;
                let l = len - 2;
                if l < 7 {
                    out[op] = ((off >> 8) as u8) | ((l as u8) << 5);
                    op += 1;
                } else {
                    out[op] = ((off >> 8) as u8) | (7 << 5);
                    out[op + 1] = (l - 7) as u8;
                    op += 2;
                }
                out[op] = off as u8;
                op += 1;
                ip += len;
                anchor = ip;
                misses = 0;
                // Index the last position of the match, as liblzf does.
                if ip + 2 < n {
                    table[hash(seq3(input, ip - 1))] = base + (ip - 1) as u32;
                }
                continue;
            }
            ip += 1 + (misses >> SKIP_SHIFT);
            misses += 1;
        }
        if !emit_literals(out, &mut op, &input[anchor..]) {
            return 0;
        }
        op
    }
}

/// liblzf 3.6's own compressor as Redis 7.0 builds it (`lzf_c.c` with
/// `HLOG` 16, `VERY_FAST`; a match may end 1 byte before the input's end,
/// which later liblzf copies refuse), byte for byte: DUMP's payloads are then the
/// same bytes as redis-server's. Its hash table is kept between calls with
/// the same growing-base trick as `Compressor` (stale entries never match,
/// as a fresh table's would not); Redis's table is uninitialised stack,
/// whose stale pointers fail its range checks in practice.
pub struct Liblzf {
    table: Box<[u32; LIBLZF_HSIZE]>,
    base: u32,
}

const LIBLZF_HSIZE: usize = 1 << 16;

impl Default for Liblzf {
    fn default() -> Self {
        Liblzf { table: vec![0u32; LIBLZF_HSIZE].into_boxed_slice().try_into().expect("HSIZE entries"), base: 1 }
    }
}

/// liblzf's `IDX` for `VERY_FAST` (the three bytes accumulate in `h`, the
/// older ones shifted out at 32 bits).
#[inline(always)]
fn liblzf_idx(h: u32) -> usize {
    ((h >> 8).wrapping_sub(h.wrapping_mul(5)) & (LIBLZF_HSIZE as u32 - 1)) as usize
}

impl Liblzf {
    /// `lzf_compress(input, input.len(), out, out_len)`: the compressed
    /// length, or 0 when it would not fit in `out_len` bytes. `out` must
    /// have room for `out_len + 1` bytes (liblzf's bookkeeping writes stay
    /// below `out_len`, the extra byte is a margin).
    pub fn compress(&mut self, input: &[u8], out: &mut [u8], out_len: usize) -> usize {
        let n = input.len();
        if n < 3 || out_len == 0 || out.len() <= out_len {
            // (liblzf also compresses 1-2 byte inputs; callers never ask.)
            return 0;
        }
        let Some(base) = reserve_positions(&mut self.table[..], &mut self.base, n) else { return 0 };
        let table = &mut *self.table;
        let (mut ip, mut op, mut lit) = (0usize, 1usize, 0usize);
        let mut hval: u32 = (input[0] as u32) << 8 | input[1] as u32;
        while ip + 2 < n {
            hval = hval << 8 | input[ip + 2] as u32;
            let slot = liblzf_idx(hval);
            let r = table[slot].wrapping_sub(base) as usize;
            table[slot] = base + ip as u32;
            if r < ip && ip - r - 1 < MAX_OFF && r > 0 && input[r..r + 3] == input[ip..ip + 3] {
                let off = ip - r - 1;
                let maxlen = (n - ip - 2).min(MAX_REF);
                out[op - lit - 1] = (lit as u8).wrapping_sub(1);
                op -= (lit == 0) as usize;
                if op + 3 + 1 >= out_len {
                    return 0;
                }
                let mut len = 2;
                // liblzf's unrolled first 16 steps compare without the maxlen cap.
                let mut done = false;
                if maxlen > 16 {
                    for _ in 0..16 {
                        len += 1;
                        if input[r + len] != input[ip + len] {
                            done = true;
                            break;
                        }
                    }
                }
                if !done {
                    loop {
                        len += 1;
                        if !(len < maxlen && input[r + len] == input[ip + len]) {
                            break;
                        }
                    }
                }
                len -= 2;
                ip += 1;
                if len < 7 {
                    out[op] = ((off >> 8) + (len << 5)) as u8;
                    op += 1;
                } else {
                    out[op] = ((off >> 8) + (7 << 5)) as u8;
                    out[op + 1] = (len - 7) as u8;
                    op += 2;
                }
                out[op] = off as u8;
                op += 2; // the offset byte, then a new literal run's header
                lit = 0;
                ip += len + 1;
                if ip + 2 >= n {
                    break;
                }
                ip -= 2;
                hval = (input[ip] as u32) << 8 | input[ip + 1] as u32;
                hval = hval << 8 | input[ip + 2] as u32;
                table[liblzf_idx(hval)] = base + ip as u32;
                ip += 1;
                hval = hval << 8 | input[ip + 2] as u32;
                table[liblzf_idx(hval)] = base + ip as u32;
                ip += 1;
            } else {
                if op >= out_len {
                    return 0;
                }
                liblzf_literal(out, &mut op, &mut lit, input[ip]);
                ip += 1;
            }
        }
        if op + 3 > out_len {
            return 0;
        }
        for &b in &input[ip..] {
            liblzf_literal(out, &mut op, &mut lit, b);
        }
        out[op - lit - 1] = (lit as u8).wrapping_sub(1);
        op - (lit == 0) as usize
    }
}

/// liblzf's literal step: one byte into the open run, which is closed (its
/// header written) at 32 bytes and a new one opened.
#[inline(always)]
fn liblzf_literal(out: &mut [u8], op: &mut usize, lit: &mut usize, b: u8) {
    *lit += 1;
    out[*op] = b;
    *op += 1;
    if *lit == MAX_LIT {
        out[*op - *lit - 1] = (*lit - 1) as u8;
        *lit = 0;
        *op += 1;
    }
}

/// Copies `lit` out as literal runs of at most 32 bytes, each after its
/// header byte. False when `out` has no room for them.
#[inline]
fn emit_literals(out: &mut [u8], op: &mut usize, lit: &[u8]) -> bool {
    if lit.is_empty() {
        return true;
    }
    let need = lit.len() + lit.len().div_ceil(MAX_LIT);
    if *op + need > out.len() {
        return false;
    }
    let mut o = *op;
    for chunk in lit.chunks(MAX_LIT) {
        out[o] = (chunk.len() - 1) as u8;
        out[o + 1..o + 1 + chunk.len()].copy_from_slice(chunk);
        o += 1 + chunk.len();
    }
    *op = o;
    true
}

/// Decompresses an LZF stream whose decompressed size is `out_len`.
/// The most output one input byte can give: a 3-byte back-reference
/// (control, length, offset) copies at most 7 + 255 + 2 = 264 bytes.
pub const MAX_EXPANSION: usize = 88;

pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, &'static str> {
    // `out_len` comes from the file: reserve only what `input` can expand
    // to, so a lying length is refused instead of allocated.
    if out_len > input.len().saturating_mul(MAX_EXPANSION) {
        return Err("LZF output longer than the input can expand to");
    }
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let len = ctrl + 1;
            if ip + len > input.len() {
                return Err("LZF literal run past the end of the input");
            }
            if out.len() + len > out_len {
                return Err("LZF output longer than declared");
            }
            out.extend_from_slice(&input[ip..ip + len]);
            ip += len;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                if ip >= input.len() {
                    return Err("LZF truncated back-reference");
                }
                len += input[ip] as usize;
                ip += 1;
            }
            if ip >= input.len() {
                return Err("LZF truncated back-reference");
            }
            let back = ((ctrl & 0x1f) << 8) + input[ip] as usize + 1;
            ip += 1;
            len += 2;
            if back > out.len() {
                return Err("LZF back-reference before the start of the output");
            }
            if out.len() + len > out_len {
                return Err("LZF output longer than declared");
            }
            let start = out.len() - back;
            if back >= len {
                out.extend_from_within(start..start + len);
            } else {
                // Overlapping run (e.g. one byte repeated): byte by byte.
                for i in 0..len {
                    let b = out[start + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != out_len {
        return Err("LZF output shorter than declared");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trips() {
        let mut c = Compressor::default();
        let mut seed = 12345u64;
        for size in [0usize, 1, 2, 3, 5, 21, 31, 32, 33, 100, 1000, 70000] {
            for kind in 0..3 {
                let input: Vec<u8> = (0..size)
                    .map(|i| match kind {
                        0 => b'a',
                        1 => (i % 7) as u8 + b'0',
                        _ => crate::shard::keyspace::xorshift(&mut seed) as u8,
                    })
                    .collect();
                let mut out = vec![0u8; size + size / 32 + 64];
                let n = c.compress(&input, &mut out);
                if size == 0 {
                    assert_eq!(n, 0);
                    continue;
                }
                if kind == 2 && size > EARLY_CHECK_BYTES {
                    // Random input: given up on early, stored raw by the caller.
                    assert_eq!(n, 0, "size {size}");
                    continue;
                }
                assert!(n > 0, "size {size} kind {kind}");
                assert_eq!(decompress(&out[..n], size).unwrap(), input, "size {size} kind {kind}");
            }
        }
    }
    /// `Liblzf` gives redis-server 7.0.15's bytes (taken from its DUMP
    /// replies for these strings), and they decompress.
    #[test]
    fn liblzf_matches_redis_server() {
        let inputs: [Vec<u8>; 7] = [
            b"hello world hello world hello world hello world wor!".to_vec(),
            b"w".repeat(66),
            b"abc".repeat(11),
            b"hello world hello world hello world!".to_vec(),
            (0..40u8).chain(0..40u8).collect(),
            b"a".repeat(300),
            [b"0123456789".repeat(30), b"xyz".repeat(20)].concat(),
        ];
        let expected: [&[u8]; 7] = [
            // a 3-byte match ending one byte before the end ("wor", then "!")
            b"\x0c\x68\x65\x6c\x6c\x6f\x20\x77\x6f\x72\x6c\x64\x20\x68\xe0\x1a\x0b\x20\x29\x00\x21",
            b"\x01\x77\x77\xe0\x35\x00\x01\x77\x77",
            b"\x03\x61\x62\x63\x61\xe0\x12\x02\x01\x62\x63",
            b"\x0c\x68\x65\x6c\x6c\x6f\x20\x77\x6f\x72\x6c\x64\x20\x68\xe0\x0c\x0b\x01\x64\x21",
            b"\x1f\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x08\x20\x21\x22\x23\x24\x25\x26\x27\x00\xe0\x1c\x27\x01\x26\x27",
            b"\x01\x61\x61\xe0\xff\x00\xe0\x17\x00\x01\x61\x61",
            b"\x0a\x30\x31\x32\x33\x34\x35\x36\x37\x38\x39\x30\xe0\xff\x09\xe1\x10\x0d\x02\x78\x79\x7a\xe0\x2e\x02\x01\x79\x7a",
        ];
        let mut c = Liblzf::default();
        for (input, want) in inputs.iter().zip(expected) {
            let room = input.len() - 4;
            let mut out = vec![0u8; room + 1];
            let n = c.compress(input, &mut out, room);
            assert_eq!(&out[..n], want, "input of {} bytes", input.len());
            assert_eq!(&decompress(&out[..n], input.len()).unwrap(), input);
        }
        // Random bytes: no room saved, 0 (stored raw by the caller); others round-trip.
        let mut seed = 7u64;
        for size in [21usize, 64, 1000, 70000] {
            let random: Vec<u8> = (0..size).map(|_| crate::shard::keyspace::xorshift(&mut seed) as u8).collect();
            let mut out = vec![0u8; size - 3];
            assert_eq!(c.compress(&random, &mut out, size - 4), 0);
            let text: Vec<u8> = (0..size).map(|i| b"abcdefgh"[(i * 7 + i / 13) % 8]).collect();
            let mut out = vec![0u8; size + 1];
            let n = c.compress(&text, &mut out, size);
            assert!(n > 0);
            assert_eq!(decompress(&out[..n], size).unwrap(), text);
        }
    }

    #[test]
    fn gives_up_early_on_incompressible_input() {
        let mut c = Compressor::default();
        let mut seed = 99u64;
        let random: Vec<u8> = (0..4096).map(|_| crate::shard::keyspace::xorshift(&mut seed) as u8).collect();
        let mut out = vec![0u8; 8192];
        assert_eq!(c.compress(&random, &mut out), 0);
        // Hex digits: LZF would save ~0.3% after a full scan; given up on.
        let hex: Vec<u8> = (0..1024).map(|_| b"0123456789abcdef"[(crate::shard::keyspace::xorshift(&mut seed) % 16) as usize]).collect();
        assert_eq!(c.compress(&hex, &mut out), 0);
        // Text past the check point still compresses.
        let text: Vec<u8> = b"{\"user\":1234,\"name\":\"someone\",\"tags\":[\"a\",\"b\"]} ".iter().cycle().take(1024).copied().collect();
        let n = c.compress(&text, &mut out);
        assert!(n > 0 && n < 200, "{n}");
        assert_eq!(decompress(&out[..n], text.len()).unwrap(), text);
        // Compressible after a random prefix shorter than the check still compresses.
        let mut mixed = random[..100].to_vec();
        mixed.extend(std::iter::repeat_n(b'z', 4000));
        let n = c.compress(&mixed, &mut out);
        assert!(n > 0 && n < 300, "{n}");
        assert_eq!(decompress(&out[..n], mixed.len()).unwrap(), mixed);
    }

    #[test]
    fn round_trips_mixed_inputs() {
        // Text-like runs, random stretches long enough to trigger the
        // skipping search, and matches at the 8 KiB distance limit.
        let mut c = Compressor::default();
        let mut seed = 7u64;
        let words: [&[u8]; 6] = [b"alpha ", b"beta ", b"{\"id\":", b"0000", b"gamma-delta ", b"x"];
        for round in 0..200 {
            let mut input = Vec::new();
            let target = 1 + (crate::shard::keyspace::xorshift(&mut seed) % 20_000) as usize;
            while input.len() < target {
                let r = crate::shard::keyspace::xorshift(&mut seed);
                match r % 4 {
                    0 => input.extend((0..(r >> 8) % 300).map(|_| crate::shard::keyspace::xorshift(&mut seed) as u8)),
                    1 if input.len() > 9000 => {
                        let from = input.len() - 8190;
                        input.extend_from_within(from..from + 40);
                    }
                    _ => input.extend_from_slice(words[(r >> 8) as usize % words.len()]),
                }
            }
            input.truncate(target);
            let mut out = vec![0u8; input.len() + 64];
            let n = c.compress(&input, &mut out);
            if n > 0 {
                assert_eq!(decompress(&out[..n], input.len()).unwrap(), input, "round {round}");
            }
            // Never accepted when it does not fit.
            let mut tight = vec![0u8; n.saturating_sub(1)];
            if n > 1 {
                assert_eq!(c.compress(&input, &mut tight), 0, "round {round}");
            }
        }
    }

    #[test]
    fn survives_the_position_base_wrapping() {
        let mut c = Compressor::default();
        let text: Vec<u8> = b"abcabcabc-wrap-test-".iter().cycle().take(1000).copied().collect();
        let mut out = vec![0u8; 1000];
        for start in [u32::MAX - 5000, u32::MAX - 1001, u32::MAX - 1000, u32::MAX - 2] {
            c.base = start;
            for _ in 0..3 {
                let n = c.compress(&text, &mut out);
                assert!(n > 0 && n < 100, "{n}");
                assert_eq!(decompress(&out[..n], text.len()).unwrap(), text);
            }
        }
    }

    #[test]
    fn refuses_when_output_too_small() {
        let mut c = Compressor::default();
        let input: Vec<u8> = (0..100u8).collect();
        let mut out = vec![0u8; 96];
        assert_eq!(c.compress(&input, &mut out), 0);
    }
}
