//! LZF, the compression RDB uses for strings (liblzf's format).
//!
//! The compressor keeps its hash table between calls and never clears it:
//! a stale entry can only propose a match, which is verified byte for byte,
//! so reusing the table is safe and saves zeroing 256 KiB per value (the
//! cost that makes `lzf-rust`'s compressor slow on small values).

const HASH_LOG: u32 = 14;
const HASH_SIZE: usize = 1 << HASH_LOG;
/// Longest back-reference distance and match length of the format.
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);
const MAX_LIT: usize = 1 << 5;
/// Where `compress` checks whether the input compresses at all.
const EARLY_CHECK_BYTES: usize = 256;

pub struct Compressor {
    table: Box<[u32; HASH_SIZE]>,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor { table: Box::new([0u32; HASH_SIZE]) }
    }
}

#[inline]
fn hash3(p: &[u8]) -> usize {
    let v = (p[0] as u32) << 16 | (p[1] as u32) << 8 | p[2] as u32;
    (v.wrapping_mul(2654435761) >> (32 - HASH_LOG)) as usize
}

impl Compressor {
    /// Compresses `input` into `out`; returns the compressed length, or 0
    /// when the result would not fit in `out.len()` bytes (as liblzf).
    pub fn compress(&mut self, input: &[u8], out: &mut [u8]) -> usize {
        let n = input.len();
        let cap = out.len();
        if n == 0 || cap < 2 {
            return 0;
        }
        let mut ip = 0usize;
        let mut op = 1usize; // out[0] is the first literal-run header
        let mut lit = 0usize;
        while ip + 2 < n {
            let h = hash3(&input[ip..]);
            let r = self.table[h] as usize;
            self.table[h] = ip as u32;
            if r < ip && ip - r - 1 < MAX_OFF && input[r] == input[ip] && input[r + 1] == input[ip + 1] && input[r + 2] == input[ip + 2] {
                let maxlen = (n - ip).min(MAX_REF);
                let mut len = 3;
                while len < maxlen && input[r + len] == input[ip + len] {
                    len += 1;
                }
                // Close the literal run (or drop its unused header).
                if lit > 0 {
                    out[op - lit - 1] = (lit - 1) as u8;
                } else {
                    op -= 1;
                }
                if op + 3 + 1 > cap {
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
                out[op] = 0;
                op += 1;
                lit = 0;
                // Index the last positions of the match, as liblzf does.
                let end = ip + len;
                if end + 2 < n {
                    self.table[hash3(&input[end - 1..])] = (end - 1) as u32;
                }
                ip = end;
                continue;
            }
            if !push_literal(out, &mut op, &mut lit, input[ip]) {
                return 0;
            }
            ip += 1;
            // Incompressible data (random bytes, already-compressed payloads)
            // would be walked to the end only to fail: if the first bytes
            // gave no saving at all, give up early and let the caller store
            // the value raw (what a failed compression leads to anyway).
            if ip == EARLY_CHECK_BYTES && op >= ip {
                return 0;
            }
        }
        while ip < n {
            if !push_literal(out, &mut op, &mut lit, input[ip]) {
                return 0;
            }
            ip += 1;
        }
        if lit > 0 {
            out[op - lit - 1] = (lit - 1) as u8;
        } else {
            op -= 1;
        }
        op
    }
}

/// Appends one literal byte to the open literal run, closing the run (and
/// opening the next) at 32 bytes. False when `out` is full.
#[inline]
fn push_literal(out: &mut [u8], op: &mut usize, lit: &mut usize, byte: u8) -> bool {
    if *op + 1 >= out.len() {
        return false;
    }
    out[*op] = byte;
    *op += 1;
    *lit += 1;
    if *lit == MAX_LIT {
        out[*op - *lit - 1] = (MAX_LIT - 1) as u8;
        if *op >= out.len() {
            return false;
        }
        out[*op] = 0;
        *op += 1;
        *lit = 0;
    }
    true
}

/// Decompresses an LZF stream whose decompressed size is `out_len`.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, &'static str> {
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
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
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
    #[test]
    fn gives_up_early_on_incompressible_input() {
        let mut c = Compressor::default();
        let mut seed = 99u64;
        let random: Vec<u8> = (0..4096).map(|_| crate::shard::keyspace::xorshift(&mut seed) as u8).collect();
        let mut out = vec![0u8; 8192];
        assert_eq!(c.compress(&random, &mut out), 0);
        // Compressible after a random prefix shorter than the check still compresses.
        let mut mixed = random[..100].to_vec();
        mixed.extend(std::iter::repeat_n(b'z', 4000));
        let n = c.compress(&mixed, &mut out);
        assert!(n > 0 && n < 300, "{n}");
        assert_eq!(decompress(&out[..n], mixed.len()).unwrap(), mixed);
    }

    #[test]
    fn refuses_when_output_too_small() {
        let mut c = Compressor::default();
        let input: Vec<u8> = (0..100u8).collect();
        let mut out = vec![0u8; 96];
        assert_eq!(c.compress(&input, &mut out), 0);
    }
}
