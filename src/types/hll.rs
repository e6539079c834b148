//! HyperLogLog in Redis's exact string format (Redis's hyperloglog.c), so
//! that GET, DUMP, RDB and DEBUG DIGEST of an HLL are byte-identical to
//! redis-server's for the same PFADDs and either server reads the other's.
//!
//! Layout: a 16-byte header `"HYLL" | encoding | 3 unused | cached
//! cardinality (u64 little endian, its top bit set = stale)`, then
//! 16384 registers of 6 bits, either
//! - dense: 12288 bytes, register `i` at bit `6 * i`, low bits first;
//! - sparse: run-length opcodes, `00xxxxxx` ZERO (1..64 zero registers),
//!   `01xxxxxx yyyyyyyy` XZERO (1..16384 zero registers), `1vvvvvxx` VAL
//!   (1..4 registers of value 1..32).
//!
//! The value comes from clients (SET, RESTORE, replication), so every read
//! of it is bounds-checked: a corrupt HLL is `Corrupt`, never a panic or a
//! read past the end. Where Redis's C reads the byte after the string (its
//! NUL terminator), this reads 0.

pub const HEADER_BYTES: usize = 16;
pub const REGISTERS: usize = 1 << P;
pub const DENSE_BYTES: usize = HEADER_BYTES + (REGISTERS * BITS).div_ceil(8);
const P: usize = 14;
/// Hash bits left after the register index: the longest run counted is Q + 1.
const Q: usize = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
pub const DENSE: u8 = 0;
pub const SPARSE: u8 = 1;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
/// Redis's seed for MurmurHash64A.
const HASH_SEED: u64 = 0xadc8_3b19;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The HLL is not a valid encoding (Redis's `-INVALIDOBJ`).
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt;

pub const CORRUPT_ERROR: &str = "INVALIDOBJ Corrupted HLL object detected";

/// MurmurHash2, 64-bit version, as Redis has it (endian-neutral: words are
/// read little endian).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register `element` hashes to and the length of its `000..1` pattern
/// (1..=Q+1), Redis's `hllPatLen`.
pub fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, HASH_SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// An empty HLL as PFADD creates it: sparse, one XZERO of all registers.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_BYTES + 2);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(SPARSE_XZERO_MAX_LEN);
        push_xzero(&mut v, run);
        left -= run;
    }
    v
}

/// Whether `bytes` has an HLL header Redis accepts (`isHLLObjectOrReply`):
/// the magic, a known encoding, and the exact length when dense.
pub fn valid_header(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_BYTES && &bytes[..4] == b"HYLL" && bytes[4] <= SPARSE && (bytes[4] == SPARSE || bytes.len() == DENSE_BYTES)
}

/// The cached cardinality, when still valid.
pub fn cached_count(hll: &[u8]) -> Option<u64> {
    let card = u64::from_le_bytes(hll[8..16].try_into().expect("header checked"));
    (card >> 63 == 0).then_some(card)
}

pub fn set_cached_count(hll: &mut [u8], card: u64) {
    hll[8..16].copy_from_slice(&card.to_le_bytes());
}

pub fn invalidate_cache(hll: &mut [u8]) {
    hll[15] |= 0x80;
}

// ---- dense ----

/// Register `i` of dense `registers` (the bytes after the header).
#[inline]
pub fn dense_get(registers: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let shift = (i * BITS) & 7;
    let b0 = registers[byte] as u16;
    let b1 = registers.get(byte + 1).copied().unwrap_or(0) as u16;
    (((b0 >> shift) | (b1 << (8 - shift))) as u8) & REGISTER_MAX
}

#[inline]
fn dense_put(registers: &mut [u8], i: usize, value: u8) {
    let byte = i * BITS / 8;
    let shift = (i * BITS) & 7;
    let v = value as u16;
    registers[byte] = (registers[byte] & !((REGISTER_MAX as u16) << shift) as u8) | (v << shift) as u8;
    if let Some(next) = registers.get_mut(byte + 1) {
        *next = (*next & !((REGISTER_MAX as u16) >> (8 - shift)) as u8) | (v >> (8 - shift)) as u8;
    }
}

/// Raises register `i` to `count`; whether it changed.
fn dense_set(registers: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(registers, i) {
        dense_put(registers, i, count);
        true
    } else {
        false
    }
}

// ---- sparse ----

/// One decoded sparse opcode: how many registers it covers, their value,
/// and its length in bytes.
#[derive(Clone, Copy)]
struct Op {
    run: usize,
    value: u8,
    bytes: usize,
}

/// The opcode at `at` (`at < ops.len()`), reading 0 past the end as Redis
/// reads its NUL terminator.
#[inline]
fn op_at(ops: &[u8], at: usize) -> Op {
    let b = ops[at];
    if b & 0xc0 == 0 {
        Op { run: (b & 0x3f) as usize + 1, value: 0, bytes: 1 }
    } else if b & 0x80 == 0 {
        let low = ops.get(at + 1).copied().unwrap_or(0) as usize;
        Op { run: (((b & 0x3f) as usize) << 8 | low) + 1, value: 0, bytes: 2 }
    } else {
        Op { run: (b & 0x3) as usize + 1, value: ((b >> 2) & 0x1f) + 1, bytes: 1 }
    }
}

fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}

fn val_byte(value: u8, run: usize) -> u8 {
    0x80 | (value - 1) << 2 | (run - 1) as u8
}

fn push_xzero(v: &mut Vec<u8>, run: usize) {
    let l = run - 1;
    v.push((l >> 8) as u8 | 0x40);
    v.push((l & 0xff) as u8);
}

fn push_zeros(v: &mut Vec<u8>, run: usize) {
    if run > SPARSE_ZERO_MAX_LEN {
        push_xzero(v, run);
    } else {
        v.push((run - 1) as u8);
    }
}

/// Visits the non-zero runs of a sparse HLL as `(first register, run,
/// value)` and returns the number of registers it covers; a VAL run that
/// would pass the last register stops the walk (Redis's overflow check).
fn sparse_runs(ops: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), Corrupt> {
    let (mut at, mut index) = (0, 0usize);
    while at < ops.len() {
        let op = op_at(ops, at);
        if op.value > 0 {
            if index + op.run > REGISTERS {
                return Err(Corrupt);
            }
            f(index, op.run, op.value);
        }
        index += op.run;
        at += op.bytes;
    }
    if index == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// Converts a sparse HLL to dense in place (a dense one is left as is).
/// The header, cached cardinality included, is kept.
pub fn to_dense(hll: &mut Vec<u8>) -> Result<(), Corrupt> {
    if hll[4] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_BYTES];
    dense[..HEADER_BYTES].copy_from_slice(&hll[..HEADER_BYTES]);
    dense[4] = DENSE;
    let registers = &mut dense[HEADER_BYTES..];
    sparse_runs(&hll[HEADER_BYTES..], |first, run, value| {
        for i in first..first + run {
            dense_put(registers, i, value);
        }
    })?;
    *hll = dense;
    Ok(())
}

/// Raises register `index` of a sparse HLL to `count` (Redis's
/// `hllSparseSet`), promoting it to dense when the value does not fit a VAL
/// opcode or the string would pass `sparse_max_bytes`. Whether it changed.
fn sparse_set(hll: &mut Vec<u8>, index: usize, count: u8, sparse_max_bytes: usize) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(hll, index, count);
    }
    // Step 1: the opcode covering `index`, and the one before it.
    let end = hll.len();
    let (mut at, mut first, mut prev) = (HEADER_BYTES, 0usize, None);
    let mut op = Op { run: 0, value: 0, bytes: 1 };
    while at < end {
        op = op_at(hll, at);
        if index < first + op.run {
            break;
        }
        prev = Some(at);
        at += op.bytes;
        first += op.run;
    }
    if op.run == 0 || at >= end {
        return Err(Corrupt);
    }
    // Step 2: the trivial cases, changed in place.
    if op.value > 0 {
        if op.value >= count {
            return Ok(false);
        }
        if op.run == 1 {
            hll[at] = val_byte(count, 1);
            merge_adjacent(hll, prev);
            return Ok(true);
        }
    } else if op.bytes == 1 && op.run == 1 {
        hll[at] = val_byte(count, 1);
        merge_adjacent(hll, prev);
        return Ok(true);
    }
    // The general case: the opcode splits into up to three.
    let mut seq = Vec::with_capacity(5);
    let last = first + op.run - 1;
    if op.value == 0 {
        if index != first {
            push_zeros(&mut seq, index - first);
        }
        seq.push(val_byte(count, 1));
        if index != last {
            push_zeros(&mut seq, last - index);
        }
    } else {
        if index != first {
            seq.push(val_byte(op.value, index - first));
        }
        seq.push(val_byte(count, 1));
        if index != last {
            seq.push(val_byte(op.value, last - index));
        }
    }
    // Step 3: the new sequence replaces the opcode.
    let grows_by = seq.len() as isize - op.bytes as isize;
    if grows_by > 0 && hll.len() + grows_by as usize > sparse_max_bytes {
        return promote(hll, index, count);
    }
    // A truncated trailing XZERO has one byte; Redis's length arithmetic
    // counts two, so the string ends that much earlier.
    let old_end = (at + op.bytes).min(end);
    let new_len = (end as isize + grows_by) as usize;
    hll.splice(at..old_end, seq);
    hll.truncate(new_len);
    merge_adjacent(hll, prev);
    Ok(true)
}

/// Step 4 of `hllSparseSet`: merges adjacent VAL opcodes of equal value,
/// scanning up to five opcodes from the one before the change.
fn merge_adjacent(hll: &mut Vec<u8>, prev: Option<usize>) {
    let mut p = prev.unwrap_or(HEADER_BYTES);
    let mut scans = 5;
    while p < hll.len() && scans > 0 {
        scans -= 1;
        let b = hll[p];
        if !is_val(b) {
            p += if b & 0x40 != 0 { 2 } else { 1 };
            continue;
        }
        if p + 1 < hll.len() && is_val(hll[p + 1]) {
            let (a, c) = (op_at(hll, p), op_at(hll, p + 1));
            if a.value == c.value && a.run + c.run <= SPARSE_VAL_MAX_LEN {
                hll[p + 1] = val_byte(a.value, a.run + c.run);
                hll.remove(p);
                continue;
            }
        }
        p += 1;
    }
    invalidate_cache(hll);
}

fn promote(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(hll)?;
    Ok(dense_set(&mut hll[HEADER_BYTES..], index, count))
}

/// Raises register `index` to `count` whatever the encoding.
pub fn set_register(hll: &mut Vec<u8>, index: usize, count: u8, sparse_max_bytes: usize) -> Result<bool, Corrupt> {
    match hll[4] {
        DENSE => Ok(dense_set(&mut hll[HEADER_BYTES..], index, count)),
        SPARSE => sparse_set(hll, index, count, sparse_max_bytes),
        _ => Err(Corrupt),
    }
}

/// Adds `element` (Redis's `hllAdd`): whether a register changed.
pub fn add(hll: &mut Vec<u8>, element: &[u8], sparse_max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(element);
    set_register(hll, index, count, sparse_max_bytes)
}

/// Raises `max` to the registers of `hll` (Redis's `hllMerge`).
pub fn merge_into(max: &mut [u8; REGISTERS], hll: &[u8]) -> Result<(), Corrupt> {
    if hll[4] == DENSE {
        let registers = &hll[HEADER_BYTES..];
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(registers, i));
        }
        Ok(())
    } else {
        sparse_runs(&hll[HEADER_BYTES..], |first, run, value| {
            for m in &mut max[first..first + run] {
                *m = (*m).max(value);
            }
        })
    }
}

/// The estimated cardinality of `hll` (Redis's `hllCount`).
pub fn count(hll: &[u8]) -> Result<u64, Corrupt> {
    let mut histogram = [0u64; 64];
    let registers = &hll[HEADER_BYTES..];
    if hll[4] == DENSE {
        for i in 0..REGISTERS {
            histogram[dense_get(registers, i) as usize] += 1;
        }
    } else {
        // Unlike the merge, the histogram does not stop at an overflowing
        // run: only the total decides validity.
        let (mut at, mut index) = (0, 0usize);
        while at < registers.len() {
            let op = op_at(registers, at);
            histogram[op.value as usize] += op.run as u64;
            index += op.run;
            at += op.bytes;
        }
        if index != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&histogram))
}

/// The cardinality of raw registers (one byte each), for PFCOUNT of several keys.
pub fn count_registers(registers: &[u8; REGISTERS]) -> u64 {
    let mut histogram = [0u64; 64];
    for &r in registers.iter() {
        histogram[r as usize & 63] += 1;
    }
    estimate(&histogram)
}

/// Ertl's estimator from the register histogram ("New cardinality
/// estimation algorithms for HyperLogLog sketches", arXiv:1702.01284), in
/// Redis's order of floating-point operations so the result is the same.
fn estimate(histogram: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histogram[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histogram[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histogram[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// PFDEBUG DECODE's text of a sparse HLL: `z:N`, `Z:N`, `v:VALUE,N`.
pub fn decode(hll: &[u8]) -> String {
    let ops = &hll[HEADER_BYTES..];
    let mut out = String::new();
    let mut at = 0;
    while at < ops.len() {
        let op = op_at(ops, at);
        if !out.is_empty() {
            out.push(' ');
        }
        match (op.value, op.bytes) {
            (0, 1) => out.push_str(&format!("z:{}", op.run)),
            (0, _) => out.push_str(&format!("Z:{}", op.run)),
            (v, _) => out.push_str(&format!("v:{},{}", v, op.run)),
        }
        at += op.bytes;
    }
    out
}

/// The registers of a dense HLL, one byte each.
pub fn dense_registers(hll: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let registers = &hll[HEADER_BYTES..];
    (0..REGISTERS).map(move |i| dense_get(registers, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_matches_redis_for_known_inputs() {
        // Patterns from redis-server 7.0.15: PFADD of "a" into an empty
        // HLL sets one register, and the sparse bytes after it are stable.
        assert_eq!(murmur64a(b"", 0), 0);
        let (i, c) = pattern(b"a");
        assert!(i < REGISTERS && (1..=51).contains(&c));
    }

    #[test]
    fn dense_registers_round_trip_without_touching_neighbours() {
        let mut regs = vec![0u8; DENSE_BYTES - HEADER_BYTES];
        let mut seed = 7u64;
        let mut expect = vec![0u8; REGISTERS];
        for (i, e) in expect.iter_mut().enumerate() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *e = (seed >> 58) as u8;
            dense_put(&mut regs, i, *e);
        }
        for (i, e) in expect.iter().enumerate() {
            assert_eq!(dense_get(&regs, i), *e, "register {i}");
        }
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = new_sparse();
        let mut dense = new_sparse();
        to_dense(&mut dense).unwrap();
        for j in 0u64..2000 {
            let e = j.to_le_bytes();
            add(&mut sparse, &e, 3000).unwrap();
            add(&mut dense, &e, 3000).unwrap();
            assert_eq!(count(&sparse).unwrap(), count(&dense).unwrap(), "after {j}");
        }
        let mut converted = sparse.clone();
        to_dense(&mut converted).unwrap();
        assert_eq!(converted[HEADER_BYTES..], dense[HEADER_BYTES..]);
    }

    #[test]
    fn corrupt_sparse_is_an_error_not_a_panic() {
        let mut h = new_sparse();
        h.truncate(HEADER_BYTES + 1);
        assert_eq!(count(&h), Err(Corrupt));
        assert!(to_dense(&mut h.clone()).is_err());
        let _ = add(&mut h, b"x", 3000);
        let mut v = new_sparse();
        v.extend_from_slice(&[0xff; 10]);
        assert_eq!(count(&v), Err(Corrupt));
        let mut max = [0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &v), Err(Corrupt));
        let mut empty = new_sparse();
        empty.truncate(HEADER_BYTES);
        assert_eq!(add(&mut empty, b"x", 3000), Err(Corrupt));
    }

    #[test]
    fn estimate_of_empty_is_zero() {
        assert_eq!(count(&new_sparse()).unwrap(), 0);
    }
}
