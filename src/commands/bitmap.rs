//! Bitmap commands on strings (Redis's bitops.c): SETBIT GETBIT BITCOUNT
//! BITPOS BITOP BITFIELD BITFIELD_RO.
//!
//! Bits are numbered from the most significant bit of the first byte, as
//! Redis numbers them. Every handler keeps Redis 7.0.15's order of checks
//! (which argument is parsed before the key is looked up decides which error
//! or reply a client sees when several things are wrong at once): BITCOUNT
//! and BITPOS look the key up before they parse their range, so a missing
//! key answers 0 / -1 whatever the range says.
//!
//! Writes are made known (`ctx.modified`, hence propagated as sent) only
//! when a bit changed or the string grew, as Redis counts them dirty.

use super::lookup::{StringKind, WrongType};
use super::string::{cstr, make_raw, string_bytes};
use super::{err, flags::*, CommandSpec, Ctx};
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::Value;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    let s = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1).group("bitmap");
    vec![
        s("setbit", 4, WRITE | DENYOOM, setbit)
            .acl(&["write", "bitmap", "slow"])
            .doc("2.2.0", "Sets or clears the bit at offset in the string value stored at key"),
        s("getbit", 3, READONLY | FAST, getbit)
            .acl(&["read", "bitmap", "fast"])
            .doc("2.2.0", "Returns the bit value at offset in the string value stored at key"),
        s("bitcount", -2, READONLY, bitcount).acl(&["read", "bitmap", "slow"]).doc("2.6.0", "Count set bits in a string"),
        s("bitpos", -3, READONLY, bitpos).acl(&["read", "bitmap", "slow"]).doc("2.8.7", "Find first bit set or clear in a string"),
        s("bitop", -4, WRITE | DENYOOM, bitop).keys(2, -1, 1).acl(&["write", "bitmap", "slow"]).doc("2.6.0", "Perform bitwise operations between strings"),
        s("bitfield", -2, WRITE | DENYOOM, bitfield).acl(&["write", "bitmap", "slow"]).doc("3.2.0", "Perform arbitrary bitfield integer operations on strings"),
        s("bitfield_ro", -2, READONLY | FAST, bitfield_ro)
            .acl(&["read", "bitmap", "fast"])
            .doc("6.0.0", "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD"),
    ]
}

const BIT_OFFSET_ERROR: &str = "ERR bit offset is not an integer or out of range";
const BITFIELD_TYPE_ERROR: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// Redis's `getBitOffsetFromArgument`: a bit offset whose byte lies below
/// `proto-max-bulk-len`. With `bits` (BITFIELD) a `#n` offset means `n * bits`.
fn parse_bit_offset(arg: &[u8], bits: Option<u32>, max_bulk_len: i64) -> Result<u64, &'static str> {
    let hash = bits.is_some() && arg.first() == Some(&b'#');
    let n = super::parse_i64(&arg[hash as usize..]).ok_or(BIT_OFFSET_ERROR)?;
    // Redis multiplies in C, where an overflow wraps on every target it runs on.
    let n = if hash { n.wrapping_mul(bits.unwrap_or(1) as i64) } else { n };
    if n < 0 || (n >> 3) >= max_bulk_len {
        return Err(BIT_OFFSET_ERROR);
    }
    Ok(n as u64)
}

/// Bit `offset` of `bytes` (0 past the end).
#[inline]
fn bit_at(bytes: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    byte < bytes.len() && bytes[byte] & (0x80 >> (offset & 7)) != 0
}

/// The string at `key` made writable and at least `max_bit / 8 + 1` bytes
/// long (Redis's `lookupStringForBitCommand`), created when missing.
/// Returns the bytes and whether the string was created or grew.
fn string_for_bit_write<'c>(ctx: &'c mut Ctx, key: &[u8], max_bit: u64) -> Result<(&'c mut Vec<u8>, bool), WrongType> {
    let len = (max_bit >> 3) as usize + 1;
    let now = ctx.now_ms;
    let exists = ctx.lookup_write::<StringKind>(key)?.is_some();
    if !exists {
        ctx.db(key).set(key, Value::Str { bytes: vec![0; len], raw: true }, now, false);
        ctx.notify_new(key);
    }
    let bytes = make_raw(&mut ctx.db(key).lookup(key, now, false).expect("looked up or just set").value);
    let grew = !exists || bytes.len() < len;
    if bytes.len() < len {
        bytes.resize(len, 0);
    }
    Ok((bytes, grew))
}

fn setbit(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    const BIT_ERROR: &str = "ERR bit is not an integer or out of range";
    let key = args[1];
    let offset = match parse_bit_offset(args[2], None, ctx.config().proto_max_bulk_len) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    let on = match super::parse_i64(args[3]) {
        Some(v @ (0 | 1)) => v == 1,
        _ => return r.error(BIT_ERROR),
    };
    let (bytes, grew) = match string_for_bit_write(ctx, key, offset) {
        Ok(found) => found,
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let (byte, mask) = ((offset >> 3) as usize, 0x80u8 >> (offset & 7));
    let old = bytes[byte] & mask != 0;
    if grew || old != on {
        if on {
            bytes[byte] |= mask;
        } else {
            bytes[byte] &= !mask;
        }
        ctx.modified(ctx.db, key);
        ctx.notify(notify::STRING, "setbit", key);
    }
    r.int(old as i64);
}

fn getbit(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let offset = match parse_bit_offset(args[2], None, ctx.config().proto_max_bulk_len) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    match ctx.lookup_read::<StringKind>(args[1]) {
        Ok(Some(e)) => r.int(bit_at(string_bytes(&e.value, &mut itoa::Buffer::new()), offset) as i64),
        Ok(None) => r.int(0),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

/// The number of set bits in `bytes`: 8-byte words through `count_ones`,
/// four independent sums so that the additions do not wait on each other
/// (the shape of Redis's `redisPopcount`), the tail byte by byte.
pub fn popcount(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(32);
    let mut sums = [0u64; 4];
    for c in &mut chunks {
        for (i, sum) in sums.iter_mut().enumerate() {
            let word = u64::from_ne_bytes(c[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            *sum += word.count_ones() as u64;
        }
    }
    let tail: u64 = chunks.remainder().iter().map(|b| b.count_ones() as u64).sum();
    sums.iter().sum::<u64>() + tail
}

/// Redis's `redisBitpos`: the position of the first bit equal to `bit` in
/// `bytes`; for a 0 that is never found, the bit just past the end (the
/// string reads as zero padded); for a 1 never found, -1.
pub fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    let skip_word = if bit { 0 } else { u64::MAX };
    let mut words = bytes.chunks_exact(8);
    let mut pos: i64 = 0;
    for w in &mut words {
        let word = u64::from_be_bytes(w.try_into().expect("8 bytes"));
        if word != skip_word {
            let flipped = if bit { word } else { !word };
            return pos + flipped.leading_zeros() as i64;
        }
        pos += 64;
    }
    for &b in words.remainder() {
        let flipped = if bit { b } else { !b };
        if flipped != 0 {
            return pos + flipped.leading_zeros() as i64;
        }
        pos += 8;
    }
    if bit {
        -1
    } else {
        pos
    }
}

/// A range of BITCOUNT / BITPOS in bytes, with the masks of the bits of
/// its first and last bytes that lie outside it (BIT ranges; Redis's
/// `first_byte_neg_mask` / `last_byte_neg_mask`).
#[derive(Clone, Copy)]
struct BitRange {
    start: i64,
    end: i64,
    first_mask: u8,
    last_mask: u8,
}

/// Redis's range arithmetic shared by BITCOUNT and BITPOS, over a string of
/// `len` bytes.
fn bit_range(mut start: i64, mut end: i64, len: i64, is_bit: bool) -> BitRange {
    let total = if is_bit { len << 3 } else { len };
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    let (mut first_mask, mut last_mask) = (0, 0);
    if is_bit && start <= end {
        first_mask = !((1u32 << (8 - (start & 7))) - 1) as u8;
        last_mask = ((1u32 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    BitRange { start, end, first_mask, last_mask }
}

/// BIT / BYTE, as `strcasecmp` reads it.
fn parse_unit(arg: &[u8]) -> Option<bool> {
    let word = cstr(arg);
    if eq_ic(word, "bit") {
        Some(true)
    } else if eq_ic(word, "byte") {
        Some(false)
    } else {
        None
    }
}

fn bitcount(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    // Redis 7.0 looks the key up first: a missing key is 0 whatever follows.
    let e = match ctx.lookup_read::<StringKind>(args[1]) {
        Ok(Some(e)) => e,
        Ok(None) => return r.int(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let mut scratch = itoa::Buffer::new();
    let s = string_bytes(&e.value, &mut scratch);
    let range = match args.len() {
        2 => BitRange { start: 0, end: s.len() as i64 - 1, first_mask: 0, last_mask: 0 },
        4 | 5 => {
            let (Some(start), Some(end)) = (super::parse_i64(args[2]), super::parse_i64(args[3])) else {
                return r.error(err::NOT_INTEGER);
            };
            if start < 0 && end < 0 && start > end {
                return r.int(0);
            }
            let is_bit = match args.get(4) {
                None => false,
                Some(a) => match parse_unit(a) {
                    Some(b) => b,
                    None => return r.error(err::SYNTAX),
                },
            };
            bit_range(start, end, s.len() as i64, is_bit)
        }
        _ => return r.error(err::SYNTAX),
    };
    if range.start > range.end {
        return r.int(0);
    }
    let (start, end) = (range.start as usize, range.end as usize);
    let mut count = popcount(&s[start..=end]);
    // The bits of the edge bytes outside a BIT range were counted: take them off.
    count -= (s[start] & range.first_mask).count_ones() as u64;
    count -= (s[end] & range.last_mask).count_ones() as u64;
    r.int(count as i64);
}

fn bitpos(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let bit = match super::parse_i64(args[2]) {
        Some(b @ (0 | 1)) => b == 1,
        Some(_) => return r.error("ERR The bit argument must be 1 or 0."),
        None => return r.error(err::NOT_INTEGER),
    };
    // A missing key is an infinite run of zeros.
    let e = match ctx.lookup_read::<StringKind>(args[1]) {
        Ok(Some(e)) => e,
        Ok(None) => return r.int(if bit { -1 } else { 0 }),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let mut scratch = itoa::Buffer::new();
    let s = string_bytes(&e.value, &mut scratch);
    let len = s.len() as i64;
    let mut end_given = false;
    let range = match args.len() {
        3 => BitRange { start: 0, end: len - 1, first_mask: 0, last_mask: 0 },
        4..=6 => {
            let Some(start) = super::parse_i64(args[3]) else {
                return r.error(err::NOT_INTEGER);
            };
            let is_bit = match args.get(5) {
                None => false,
                Some(a) => match parse_unit(a) {
                    Some(b) => b,
                    None => return r.error(err::SYNTAX),
                },
            };
            let end = match args.get(4) {
                Some(a) => match super::parse_i64(a) {
                    Some(end) => {
                        end_given = true;
                        end
                    }
                    None => return r.error(err::NOT_INTEGER),
                },
                None if is_bit => (len << 3) + 7,
                None => len - 1,
            };
            bit_range(start, end, len, is_bit)
        }
        _ => return r.error(err::SYNTAX),
    };
    if range.start > range.end {
        return r.int(-1);
    }
    r.int(bitpos_in(s, &range, bit, end_given));
}

/// BITPOS over a non-empty range, Redis's walk: the masked first byte, the
/// whole bytes between, the masked last byte.
fn bitpos_in(s: &[u8], range: &BitRange, bit: bool, end_given: bool) -> i64 {
    let BitRange { mut start, end, first_mask, last_mask } = *range;
    let mut bytes = end - start + 1;
    // Bits outside the range read as the opposite of the one sought.
    let masked = |b: u8, mask: u8| if bit { b & !mask } else { b | mask };
    let pos = 'found: {
        if first_mask != 0 {
            let mut c = masked(s[start as usize], first_mask);
            if last_mask != 0 && bytes == 1 {
                c = masked(c, last_mask);
            }
            let pos = first_bit(&[c], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found pos;
            }
            start += 1;
            bytes -= 1;
        }
        let whole = bytes - (last_mask != 0) as i64;
        if whole > 0 {
            let pos = first_bit(&s[start as usize..(start + whole) as usize], bit);
            if bytes == whole || (pos != -1 && pos != whole << 3) {
                break 'found pos;
            }
            start += whole;
            bytes -= whole;
        }
        first_bit(&[masked(s[end as usize], last_mask)], bit)
    };
    // With an explicit end the string is not zero padded past it.
    if end_given && !bit && pos == bytes << 3 {
        return -1;
    }
    if pos == -1 {
        -1
    } else {
        pos + (start << 3)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// `op` over `sources`, each read as zero padded to the longest.
pub fn bitop_compute(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let max_len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![0u8; max_len];
    let first = sources[0];
    out[..first.len()].copy_from_slice(first);
    if op == BitOp::Not {
        out.iter_mut().for_each(|b| *b = !*b);
        return out;
    }
    for src in &sources[1..] {
        let (head, tail) = out.split_at_mut(src.len());
        match op {
            BitOp::And => {
                head.iter_mut().zip(src.iter()).for_each(|(o, s)| *o &= s);
                // Past a shorter source its bytes are zero.
                tail.fill(0);
            }
            BitOp::Or => head.iter_mut().zip(src.iter()).for_each(|(o, s)| *o |= s),
            BitOp::Xor => head.iter_mut().zip(src.iter()).for_each(|(o, s)| *o ^= s),
            BitOp::Not => unreachable!(),
        }
    }
    out
}

fn bitop(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let name = cstr(args[1]);
    let op = if eq_ic(name, "and") {
        BitOp::And
    } else if eq_ic(name, "or") {
        BitOp::Or
    } else if eq_ic(name, "xor") {
        BitOp::Xor
    } else if eq_ic(name, "not") {
        BitOp::Not
    } else {
        return r.error(err::SYNTAX);
    };
    if op == BitOp::Not && args.len() != 4 {
        return r.error("ERR BITOP NOT must be called with a single source key.");
    }
    let dest = args[2];
    let mut sources: Vec<Vec<u8>> = Vec::with_capacity(args.len() - 3);
    let mut b = itoa::Buffer::new();
    for &key in &args[3..] {
        match ctx.lookup_read::<StringKind>(key) {
            Ok(Some(e)) => sources.push(string_bytes(&e.value, &mut b).to_vec()),
            Ok(None) => sources.push(Vec::new()),
            Err(WrongType) => return r.error(err::WRONGTYPE),
        }
    }
    let refs: Vec<&[u8]> = sources.iter().map(|s| &s[..]).collect();
    let result = bitop_compute(op, &refs);
    let len = result.len();
    let now = ctx.now_ms;
    if len > 0 {
        ctx.expire_if_needed(dest);
        let stored = ctx.db(dest).set(dest, Value::Str { bytes: result, raw: true }, now, false);
        ctx.modified(ctx.db, dest);
        ctx.stored(dest, stored);
        ctx.notify(notify::STRING, "set", dest);
    } else if ctx.db(dest).delete(dest) {
        ctx.modified(ctx.db, dest);
        ctx.notify(notify::GENERIC, "del", dest);
    }
    r.int(len as i64);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

#[derive(Clone, Copy, Debug)]
struct Field {
    op: FieldOp,
    offset: u64,
    bits: u32,
    signed: bool,
    overflow: Overflow,
}

/// Redis's `getBitfieldTypeFromArgument`: `i1`..`i64`, `u1`..`u63`.
fn parse_field_type(arg: &[u8]) -> Option<(bool, u32)> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return None,
    };
    let bits = super::parse_i64(cstr(&arg[1..]))?;
    let max = if signed { 64 } else { 63 };
    (1..=max).contains(&bits).then_some((signed, bits as u32))
}

/// Reads `bits` bits at bit `offset` of `bytes` (zero padded) as an unsigned number.
pub fn get_unsigned(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    (0..bits as u64).fold(0u64, |v, i| (v << 1) | bit_at(bytes, offset + i) as u64)
}

/// Reads a two's complement number of `bits` bits.
pub fn get_signed(bytes: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(bytes, offset, bits);
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    }
}

/// Writes the low `bits` bits of `value` at bit `offset`; `bytes` is long enough.
pub fn set_bits(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let on = value & (1 << (bits as u64 - 1 - i)) != 0;
        let at = offset + i;
        let (byte, mask) = ((at >> 3) as usize, 0x80u8 >> (at & 7));
        if on {
            bytes[byte] |= mask;
        } else {
            bytes[byte] &= !mask;
        }
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: None when `value + incr` fits
/// `bits` unsigned bits, else the value to store under `overflow` (WRAP,
/// SAT; FAIL stores nothing but still reports the overflow).
pub fn unsigned_overflow(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrapped = || {
        let res = value.wrapping_add(incr as u64);
        if bits == 64 {
            res
        } else {
            res & !(u64::MAX << bits)
        }
    };
    if value > max || (incr > 0 && incr > max_incr) {
        Some(match overflow {
            Overflow::Wrap => wrapped(),
            Overflow::Sat => max,
            Overflow::Fail => 0,
        })
    } else if incr < 0 && incr < min_incr {
        Some(match overflow {
            Overflow::Wrap => wrapped(),
            Overflow::Sat => 0,
            Overflow::Fail => 0,
        })
    } else {
        None
    }
}

/// Redis's `checkSignedBitfieldOverflow` (see `unsigned_overflow`).
pub fn signed_overflow(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        Some(match overflow {
            Overflow::Wrap => wrapped(),
            Overflow::Sat => max,
            Overflow::Fail => 0,
        })
    } else if value < min || (bits != 64 && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr) {
        Some(match overflow {
            Overflow::Wrap => wrapped(),
            Overflow::Sat => min,
            Overflow::Fail => 0,
        })
    } else {
        None
    }
}

/// Parses BITFIELD's operations (Redis's order of checks): the error text
/// on failure.
fn parse_fields(args: &[&[u8]], max_bulk_len: i64) -> Result<Vec<Field>, &'static str> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - j - 1;
        let word = cstr(args[j]);
        let is_get = eq_ic(word, "get") && more >= 2;
        let is_set = eq_ic(word, "set") && more >= 3;
        let is_incr = eq_ic(word, "incrby") && more >= 3;
        if !(is_get || is_set || is_incr) {
            if eq_ic(word, "overflow") && more >= 1 {
                let kind = cstr(args[j + 1]);
                overflow = if eq_ic(kind, "wrap") {
                    Overflow::Wrap
                } else if eq_ic(kind, "sat") {
                    Overflow::Sat
                } else if eq_ic(kind, "fail") {
                    Overflow::Fail
                } else {
                    return Err("ERR Invalid OVERFLOW type specified");
                };
                j += 2;
                continue;
            }
            return Err(err::SYNTAX);
        }
        let (signed, bits) = parse_field_type(args[j + 1]).ok_or(BITFIELD_TYPE_ERROR)?;
        let offset = parse_bit_offset(args[j + 2], Some(bits), max_bulk_len)?;
        let op = if is_get {
            FieldOp::Get
        } else {
            let v = super::parse_i64(args[j + 3]).ok_or(err::NOT_INTEGER)?;
            if is_set {
                FieldOp::Set(v)
            } else {
                FieldOp::IncrBy(v)
            }
        };
        fields.push(Field { op, offset, bits, signed, overflow });
        j += if is_get { 3 } else { 4 };
    }
    Ok(fields)
}

/// Runs one SET / INCRBY on `bytes` (long enough): the reply value (None
/// for a FAIL overflow) and whether the stored bits changed.
fn field_write(bytes: &mut [u8], f: &Field) -> (Option<i64>, bool) {
    let (new, reply, old_bits) = if f.signed {
        let old = get_signed(bytes, f.offset, f.bits);
        let (new, over) = match f.op {
            FieldOp::IncrBy(by) => match signed_overflow(old, by, f.bits, f.overflow) {
                Some(v) => (v, true),
                None => (old.wrapping_add(by), false),
            },
            FieldOp::Set(v) => match signed_overflow(v, 0, f.bits, f.overflow) {
                Some(w) => (w, true),
                None => (v, false),
            },
            FieldOp::Get => unreachable!(),
        };
        if over && f.overflow == Overflow::Fail {
            return (None, false);
        }
        let reply = if matches!(f.op, FieldOp::IncrBy(_)) { new } else { old };
        (new as u64, reply, old as u64)
    } else {
        let old = get_unsigned(bytes, f.offset, f.bits);
        let (new, over) = match f.op {
            FieldOp::IncrBy(by) => match unsigned_overflow(old, by, f.bits, f.overflow) {
                Some(v) => (v, true),
                None => (old.wrapping_add(by as u64), false),
            },
            FieldOp::Set(v) => match unsigned_overflow(v as u64, 0, f.bits, f.overflow) {
                Some(w) => (w, true),
                None => (v as u64, false),
            },
            FieldOp::Get => unreachable!(),
        };
        if over && f.overflow == Overflow::Fail {
            return (None, false);
        }
        let reply = if matches!(f.op, FieldOp::IncrBy(_)) { new } else { old };
        (new, reply as i64, old)
    };
    set_bits(bytes, f.offset, f.bits, new);
    (Some(reply), old_bits != new)
}

/// The value of a GET field over `bytes` (zero padded).
fn field_get(bytes: &[u8], f: &Field) -> i64 {
    if f.signed {
        get_signed(bytes, f.offset, f.bits)
    } else {
        get_unsigned(bytes, f.offset, f.bits) as i64
    }
}

fn bitfield_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, read_only: bool) {
    let key = args[1];
    let fields = match parse_fields(args, ctx.config().proto_max_bulk_len) {
        Ok(f) => f,
        Err(e) => return r.error(e),
    };
    let highest_write = fields.iter().filter(|f| f.op != FieldOp::Get).map(|f| f.offset + f.bits as u64 - 1).max();
    let Some(highest_write) = highest_write else {
        // Only GETs: a read, a missing key reads as zeros.
        let e = match ctx.lookup_read::<StringKind>(key) {
            Ok(e) => e,
            Err(WrongType) => return r.error(err::WRONGTYPE),
        };
        let mut scratch = itoa::Buffer::new();
        let bytes = e.map_or(&[][..], |e| string_bytes(&e.value, &mut scratch));
        r.array(fields.len());
        for f in &fields {
            r.int(field_get(bytes, f));
        }
        return;
    };
    if read_only {
        return r.error("ERR BITFIELD_RO only supports the GET subcommand");
    }
    let (bytes, grew) = match string_for_bit_write(ctx, key, highest_write) {
        Ok(found) => found,
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    r.array(fields.len());
    let mut changes = 0u64;
    for f in &fields {
        if f.op == FieldOp::Get {
            r.int(field_get(bytes, f));
            continue;
        }
        match field_write(bytes, f) {
            (Some(v), changed) => {
                r.int(v);
                changes += (grew || changed) as u64;
            }
            (None, _) => r.null(),
        }
    }
    if changes > 0 {
        ctx.modified(ctx.db, key);
        ctx.notify(notify::STRING, "setbit", key);
        // Redis counts one write per changing operation.
        ctx.shards.of(key).dirty += changes - 1;
    }
}

fn bitfield(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bitfield_generic(ctx, args, r, false);
}

fn bitfield_ro(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    bitfield_generic(ctx, args, r, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popcount_matches_naive() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for len in [0, 1, 7, 8, 31, 32, 33, 100, 1000] {
            let naive: u64 = data[..len].iter().map(|b| b.count_ones() as u64).sum();
            assert_eq!(popcount(&data[..len]), naive, "len {len}");
        }
    }

    #[test]
    fn first_bit_as_redis() {
        assert_eq!(first_bit(&[0x00, 0x00], true), -1);
        assert_eq!(first_bit(&[0xff, 0xff], false), 16);
        assert_eq!(first_bit(&[0x00, 0x01], true), 15);
        assert_eq!(first_bit(&[0xff, 0xf0], false), 12);
        let mut long = vec![0u8; 20];
        long[17] = 0x20;
        assert_eq!(first_bit(&long, true), 17 * 8 + 2);
        assert_eq!(first_bit(&[], false), 0);
    }

    #[test]
    fn bitpos_ranges() {
        // "\xff\xf0\x00": BITPOS 0 is 12; with BIT ranges.
        let s = [0xffu8, 0xf0, 0x00];
        let pos = |start, end: Option<i64>, is_bit, bit| {
            let len = s.len() as i64;
            let e = end.unwrap_or(if is_bit { (len << 3) + 7 } else { len - 1 });
            let range = bit_range(start, e, len, is_bit);
            if range.start > range.end {
                return -1;
            }
            bitpos_in(&s, &range, bit, end.is_some())
        };
        assert_eq!(pos(0, None, false, false), 12);
        assert_eq!(pos(0, Some(0), false, false), -1);
        assert_eq!(pos(2, Some(3), true, true), 2);
        assert_eq!(pos(5, Some(11), true, false), -1);
        assert_eq!(pos(5, Some(12), true, false), 12);
        assert_eq!(pos(13, None, true, true), -1);
        assert_eq!(pos(1, None, false, true), 8);
    }

    #[test]
    fn bitfield_get_set() {
        let mut b = vec![0u8; 3];
        set_bits(&mut b, 7, 5, 23);
        assert_eq!(b[..2], [0b0000_0001, 0b0111_0000]);
        assert_eq!(get_unsigned(&b, 7, 5), 23);
        set_bits(&mut b, 0, 8, 0xff);
        assert_eq!(get_signed(&b, 0, 8), -1);
        assert_eq!(get_signed(&b, 0, 64), get_unsigned(&b, 0, 64) as i64);
    }

    #[test]
    fn overflow_rules() {
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Wrap), Some(4));
        assert_eq!(unsigned_overflow(250, 10, 8, Overflow::Sat), Some(255));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Sat), Some(0));
        assert_eq!(unsigned_overflow(5, -10, 8, Overflow::Wrap), Some(251));
        assert_eq!(unsigned_overflow(5, 10, 8, Overflow::Wrap), None);
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Wrap), Some(-126));
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Sat), Some(127));
        assert_eq!(signed_overflow(-120, -10, 8, Overflow::Sat), Some(-128));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Overflow::Wrap), Some(i64::MIN));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Overflow::Sat), Some(i64::MAX));
        assert_eq!(signed_overflow(0, 5, 64, Overflow::Sat), None);
        assert_eq!(signed_overflow(300, 0, 8, Overflow::Wrap), Some(44));
    }

    #[test]
    fn field_types_and_offsets() {
        assert_eq!(parse_field_type(b"i64"), Some((true, 64)));
        assert_eq!(parse_field_type(b"u63"), Some((false, 63)));
        assert_eq!(parse_field_type(b"u64"), None);
        assert_eq!(parse_field_type(b"i0"), None);
        assert_eq!(parse_field_type(b"I8"), None);
        assert_eq!(parse_bit_offset(b"#3", Some(8), 512 << 20), Ok(24));
        assert_eq!(parse_bit_offset(b"#3", None, 512 << 20), Err(BIT_OFFSET_ERROR));
        assert_eq!(parse_bit_offset(b"-1", None, 512 << 20), Err(BIT_OFFSET_ERROR));
        assert_eq!(parse_bit_offset(b"4294967295", None, 512 << 20), Ok(4294967295));
        assert_eq!(parse_bit_offset(b"4294967296", None, 512 << 20), Err(BIT_OFFSET_ERROR));
    }

    #[test]
    fn bitop_pads_with_zeros() {
        assert_eq!(bitop_compute(BitOp::And, &[b"\xff\xff", b"\x0f"]), b"\x0f\x00");
        assert_eq!(bitop_compute(BitOp::Or, &[b"\x01", b"\x10\x02"]), b"\x11\x02");
        assert_eq!(bitop_compute(BitOp::Xor, &[b"\xff", b"\x0f", b""]), b"\xf0");
        assert_eq!(bitop_compute(BitOp::Not, &[b"\x0f"]), b"\xf0");
        assert_eq!(bitop_compute(BitOp::And, &[b"", b""]), b"");
    }
}
