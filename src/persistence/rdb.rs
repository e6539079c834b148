//! The RDB format, version 10 (what Redis 7.0 writes): encoding of lengths,
//! strings (integer and LZF forms as Redis chooses them), the opcodes, and a
//! loader for versions 1 to 12 of the types ringkv has.

use super::lzf;
use crate::shard::keyspace::canonical_int;
use crate::shard::{Entry, Value};

pub const RDB_VERSION: u32 = 10;
pub const RDB_VERSION_MAX_LOADABLE: u32 = 12;

pub const OPCODE_FUNCTION2: u8 = 0xF5;
pub const OPCODE_FUNCTION_PRE_GA: u8 = 0xF6;
pub const OPCODE_MODULE_AUX: u8 = 0xF7;
pub const OPCODE_IDLE: u8 = 0xF8;
pub const OPCODE_FREQ: u8 = 0xF9;
pub const OPCODE_AUX: u8 = 0xFA;
pub const OPCODE_RESIZEDB: u8 = 0xFB;
pub const OPCODE_EXPIRETIME_MS: u8 = 0xFC;
pub const OPCODE_EXPIRETIME: u8 = 0xFD;
pub const OPCODE_SELECTDB: u8 = 0xFE;
pub const OPCODE_EOF: u8 = 0xFF;

pub const TYPE_STRING: u8 = 0;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Incompressible-data detection (see `Encoder::should_try_lzf`): after this
/// many strings in a row that LZF could not shrink ...
const LZF_FAILURES_BEFORE_SAMPLING: u32 = 64;
/// ... only one in this many strings is tried ...
const LZF_SAMPLE_ONE_IN: u32 = 16;
/// ... among those up to this size; longer strings are always tried.
const LZF_SAMPLED_MAX_BYTES: usize = 4096;

/// Serialises keys and values into a byte buffer (one per worker).
pub struct Encoder {
    pub buf: Vec<u8>,
    pub compress: bool,
    lzf: lzf::Compressor,
    lzf_out: Vec<u8>,
    itoa: itoa::Buffer,
    /// Strings in a row LZF could not shrink, and strings not tried since.
    lzf_failures_in_row: u32,
    lzf_skipped: u32,
}

impl Encoder {
    pub fn new(compress: bool, capacity: usize) -> Encoder {
        Encoder {
            buf: Vec::with_capacity(capacity),
            compress,
            lzf: lzf::Compressor::default(),
            lzf_out: Vec::new(),
            itoa: itoa::Buffer::new(),
            lzf_failures_in_row: 0,
            lzf_skipped: 0,
        }
    }

    /// Whether to try LZF on a string of `len` bytes. Redis tries every
    /// string over 20 bytes; on data LZF cannot shrink (random tokens, hex
    /// digests, already-compressed payloads) that is most of the snapshot's
    /// CPU (1 KiB hex values: 170 of 300 ms in the child, for no byte saved).
    /// So after `LZF_FAILURES_BEFORE_SAMPLING` failures in a row, strings up
    /// to `LZF_SAMPLED_MAX_BYTES` are tried one in `LZF_SAMPLE_ONE_IN` until
    /// one compresses, which restores trying every string. On compressible
    /// data nothing changes; on mixed data some compressible short strings
    /// are stored raw (a bigger file, never a wrong one).
    #[inline]
    fn should_try_lzf(&mut self, len: usize) -> bool {
        if self.lzf_failures_in_row < LZF_FAILURES_BEFORE_SAMPLING || len > LZF_SAMPLED_MAX_BYTES {
            return true;
        }
        self.lzf_skipped += 1;
        self.lzf_skipped.is_multiple_of(LZF_SAMPLE_ONE_IN)
    }

    pub fn save_len(&mut self, n: u64) {
        if n < 1 << 6 {
            self.buf.push(n as u8);
        } else if n < 1 << 14 {
            self.buf.push(0x40 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else if n <= u32::MAX as u64 {
            self.buf.push(0x80);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(0x81);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// An integer in Redis's string-as-integer forms, when it fits in 32 bits.
    fn save_int_encoded(&mut self, v: i64) -> bool {
        if v >= i8::MIN as i64 && v <= i8::MAX as i64 {
            self.buf.push(0xC0 | ENC_INT8);
            self.buf.push(v as i8 as u8);
        } else if v >= i16::MIN as i64 && v <= i16::MAX as i64 {
            self.buf.push(0xC0 | ENC_INT16);
            self.buf.extend_from_slice(&(v as i16).to_le_bytes());
        } else if v >= i32::MIN as i64 && v <= i32::MAX as i64 {
            self.buf.push(0xC0 | ENC_INT32);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            return false;
        }
        true
    }

    /// Redis's rdbSaveRawString: integer form for short canonical integers,
    /// LZF when longer than 20 bytes and it saves at least 4, else raw.
    pub fn save_string(&mut self, s: &[u8]) {
        if s.len() <= 11 {
            if let Some(v) = canonical_int(s) {
                if self.save_int_encoded(v) {
                    return;
                }
            }
        }
        if self.compress && s.len() > 20 && self.should_try_lzf(s.len()) {
            let room = s.len() - 4;
            if self.lzf_out.len() < room {
                self.lzf_out.resize(room, 0);
            }
            let n = self.lzf.compress(s, &mut self.lzf_out[..room]);
            if n == 0 {
                self.lzf_failures_in_row = self.lzf_failures_in_row.saturating_add(1);
            } else {
                self.lzf_failures_in_row = 0;
            }
            if n > 0 {
                self.buf.push(0xC0 | ENC_LZF);
                self.save_len(n as u64);
                self.save_len(s.len() as u64);
                self.buf.extend_from_slice(&self.lzf_out[..n]);
                return;
            }
        }
        self.save_len(s.len() as u64);
        self.buf.extend_from_slice(s);
    }

    pub fn save_value(&mut self, v: &Value) {
        match v {
            Value::Int(n) => {
                if !self.save_int_encoded(*n) {
                    let s = self.itoa.format(*n).as_bytes().to_vec();
                    self.save_len(s.len() as u64);
                    self.buf.extend_from_slice(&s);
                }
            }
            Value::Str { bytes, .. } => self.save_string(bytes),
        }
    }

    pub fn save_aux(&mut self, key: &str, value: &[u8]) {
        self.buf.push(OPCODE_AUX);
        self.save_string(key.as_bytes());
        self.save_string(value);
    }

    /// Pads the buffer to a multiple of `align` bytes from `from` with
    /// an AUX field named `ringkv-pad` whose value is zeros: loaders skip the
    /// AUX fields they do not know (the format's contract; Redis and
    /// redis-check-rdb accept them anywhere), and the bytes that follow start
    /// at an aligned file offset, where the writer can send them to the disk
    /// from where they lie. `align` is at most 16 KiB.
    pub fn save_pad(&mut self, align: usize, from: usize) {
        const KEY: &[u8] = b"ringkv-pad";
        let fixed = 1 + 1 + KEY.len();
        let mut need = (align - (self.buf.len() - from) % align) % align;
        if need == 0 {
            return;
        }
        while need < fixed + 1 {
            need += align;
        }
        self.buf.push(OPCODE_AUX);
        self.buf.push(KEY.len() as u8);
        self.buf.extend_from_slice(KEY);
        let value_len = if need - fixed - 1 < 1 << 6 {
            let n = need - fixed - 1;
            self.buf.push(n as u8);
            n
        } else {
            // The two-byte length form, whatever the length (Redis reads it so).
            let n = need - fixed - 2;
            self.buf.push(0x40 | (n >> 8) as u8);
            self.buf.push(n as u8);
            n
        };
        self.buf.resize(self.buf.len() + value_len, 0);
    }

    pub fn save_header(&mut self) {
        self.buf.extend_from_slice(format!("REDIS{:04}", RDB_VERSION).as_bytes());
    }

    pub fn save_select_db(&mut self, db: usize, size: usize, expires: usize) {
        self.buf.push(OPCODE_SELECTDB);
        self.save_len(db as u64);
        self.buf.push(OPCODE_RESIZEDB);
        self.save_len(size as u64);
        self.save_len(expires as u64);
    }

    pub fn save_pair(&mut self, key: &[u8], e: &Entry) {
        if e.expire_at_ms >= 0 {
            self.buf.push(OPCODE_EXPIRETIME_MS);
            self.buf.extend_from_slice(&(e.expire_at_ms as u64).to_le_bytes());
        }
        self.buf.push(TYPE_STRING);
        self.save_string(key);
        self.save_value(&e.value);
    }
}

/// Where a load failed, for the refusal message.
#[derive(Debug, PartialEq)]
pub struct LoadError {
    pub offset: usize,
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bad RDB file at offset {}: {}", self.offset, self.reason)
    }
}

/// What a load found, key by key, through a callback.
#[derive(Default, Debug)]
pub struct LoadStats {
    pub keys_loaded: u64,
    pub keys_expired: u64,
    pub version: u32,
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, reason: impl Into<String>) -> Result<T, LoadError> {
        Err(LoadError { offset: self.pos, reason: reason.into() })
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        if self.pos + n > self.data.len() {
            return self.err(format!("unexpected end of file (wanted {} more bytes, {} left)", n, self.data.len() - self.pos));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.bytes(1)?[0])
    }
    /// (length, is_encoded)
    fn len(&mut self) -> Result<(u64, bool), LoadError> {
        let b = self.u8()?;
        match b >> 6 {
            0 => Ok(((b & 0x3f) as u64, false)),
            1 => Ok(((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false)),
            2 => match b {
                0x80 => Ok((u32::from_be_bytes(self.bytes(4)?.try_into().unwrap()) as u64, false)),
                0x81 => Ok((u64::from_be_bytes(self.bytes(8)?.try_into().unwrap()), false)),
                _ => self.err(format!("unknown length encoding 0x{:02x}", b)),
            },
            _ => Ok(((b & 0x3f) as u64, true)),
        }
    }
    fn plain_len(&mut self) -> Result<u64, LoadError> {
        let (n, enc) = self.len()?;
        if enc {
            return self.err("encoded value where a length was expected");
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<Vec<u8>, LoadError> {
        let (n, enc) = self.len()?;
        if !enc {
            return Ok(self.bytes(n as usize)?.to_vec());
        }
        match n as u8 {
            ENC_INT8 => Ok((self.u8()? as i8).to_string().into_bytes()),
            ENC_INT16 => Ok(i16::from_le_bytes(self.bytes(2)?.try_into().unwrap()).to_string().into_bytes()),
            ENC_INT32 => Ok(i32::from_le_bytes(self.bytes(4)?.try_into().unwrap()).to_string().into_bytes()),
            ENC_LZF => {
                let clen = self.plain_len()? as usize;
                let len = self.plain_len()? as usize;
                let start = self.pos;
                let c = self.bytes(clen)?;
                lzf::decompress(c, len).map_err(|e| LoadError { offset: start, reason: format!("invalid LZF compressed string: {}", e) })
            }
            other => self.err(format!("unknown string encoding {}", other)),
        }
    }
}

/// Parses a whole RDB image, calling `on_key(db, key, entry)` for every live
/// key. Expired keys (at `now_ms`) are counted and skipped. Verifies the
/// CRC-64 when the file carries one.
pub fn load(data: &[u8], now_ms: i64, mut on_key: impl FnMut(usize, Vec<u8>, Entry)) -> Result<LoadStats, LoadError> {
    let mut r = Reader { data, pos: 0 };
    let magic = r.bytes(9).map_err(|_| LoadError { offset: 0, reason: "file too short for the RDB header".into() })?;
    if &magic[..5] != b"REDIS" {
        return Err(LoadError { offset: 0, reason: "wrong signature (not an RDB file)".into() });
    }
    let version: u32 =
        std::str::from_utf8(&magic[5..9]).ok().and_then(|s| s.parse().ok()).ok_or(LoadError { offset: 5, reason: "bad RDB version field".into() })?;
    if !(1..=RDB_VERSION_MAX_LOADABLE).contains(&version) {
        return Err(LoadError { offset: 5, reason: format!("can't handle RDB format version {}", version) });
    }
    let mut stats = LoadStats { version, ..Default::default() };
    let mut db = 0usize;
    let mut expire_ms: i64 = -1;
    loop {
        let op_pos = r.pos;
        let op = r.u8()?;
        match op {
            OPCODE_EXPIRETIME => {
                expire_ms = i32::from_le_bytes(r.bytes(4)?.try_into().unwrap()) as i64 * 1000;
            }
            OPCODE_EXPIRETIME_MS => {
                expire_ms = i64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
            }
            OPCODE_FREQ => {
                r.u8()?;
            }
            OPCODE_IDLE => {
                r.plain_len()?;
            }
            OPCODE_SELECTDB => {
                db = r.plain_len()? as usize;
            }
            OPCODE_RESIZEDB => {
                r.plain_len()?;
                r.plain_len()?;
            }
            OPCODE_AUX => {
                let k = r.string()?;
                let v = r.string()?;
                stats.aux.push((k, v));
            }
            OPCODE_MODULE_AUX => return Err(LoadError { offset: op_pos, reason: "module auxiliary data is not supported".into() }),
            OPCODE_FUNCTION2 | OPCODE_FUNCTION_PRE_GA => return Err(LoadError { offset: op_pos, reason: "function libraries are not supported".into() }),
            OPCODE_EOF => {
                if version >= 5 {
                    let crc_pos = r.pos;
                    let stored = u64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
                    if stored != 0 {
                        let computed = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, &data[..crc_pos]);
                        if computed != stored {
                            return Err(LoadError { offset: crc_pos, reason: format!("wrong RDB checksum expected: ({:x}) got: ({:x})", stored, computed) });
                        }
                    }
                }
                if r.pos != data.len() {
                    return Err(LoadError { offset: r.pos, reason: format!("{} unexpected bytes after the end of the RDB", data.len() - r.pos) });
                }
                return Ok(stats);
            }
            TYPE_STRING => {
                let key = r.string()?;
                let value = r.string()?;
                let exp = expire_ms;
                expire_ms = -1;
                if exp >= 0 && exp <= now_ms {
                    stats.keys_expired += 1;
                    continue;
                }
                stats.keys_loaded += 1;
                on_key(db, key, Entry { value: Value::from_vec(value), expire_at_ms: exp, access_ms: now_ms });
            }
            other => {
                let name = match other {
                    1 | 10 | 14 | 18 => "list",
                    2 | 11 | 20 => "set",
                    3 | 5 | 12 | 17 => "zset",
                    4 | 9 | 13 | 16 => "hash",
                    15 | 19 | 21 => "stream",
                    6 | 7 => "module",
                    _ => "unknown",
                };
                return Err(LoadError { offset: op_pos, reason: format!("value type {} ({}) is not supported by ringkv yet", other, name) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `s` went out LZF-encoded (Redis's 0xC3 string prefix).
    fn saved_with_lzf(e: &mut Encoder, s: &[u8]) -> bool {
        let at = e.buf.len();
        e.save_string(s);
        e.buf[at] == 0xC0 | ENC_LZF
    }

    #[test]
    fn lzf_is_sampled_after_a_run_of_incompressible_strings() {
        let mut e = Encoder::new(true, 1 << 20);
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut random = |n: usize| -> Vec<u8> { (0..n).map(|_| crate::shard::keyspace::xorshift(&mut seed) as u8).collect() };
        for _ in 0..LZF_FAILURES_BEFORE_SAMPLING {
            assert!(!saved_with_lzf(&mut e, &random(100)));
        }
        // Sampling now: a long compressible string is still always tried...
        let long = b"abcdefgh".repeat(LZF_SAMPLED_MAX_BYTES / 8 + 1);
        assert!(saved_with_lzf(&mut e, &long));
        for _ in 0..LZF_FAILURES_BEFORE_SAMPLING {
            assert!(!saved_with_lzf(&mut e, &random(100)));
        }
        // ... a short one only when sampled; the first success ends sampling.
        let short = b"abcdefgh".repeat(12);
        let stored_raw = (0..LZF_SAMPLE_ONE_IN).take_while(|_| !saved_with_lzf(&mut e, &short)).count();
        assert!(stored_raw < LZF_SAMPLE_ONE_IN as usize, "no sampled attempt in {} strings", LZF_SAMPLE_ONE_IN);
        for _ in 0..100 {
            assert!(saved_with_lzf(&mut e, &short), "every string is tried again after a success");
        }
    }

    #[test]
    fn lengths_and_strings_round_trip() {
        let mut e = Encoder::new(true, 1024);
        e.save_header();
        e.save_select_db(0, 4, 1);
        let long = vec![b'x'; 1000];
        let entries: Vec<(Vec<u8>, Entry)> = vec![
            (b"a".to_vec(), Entry { value: Value::from_bytes(b"12"), expire_at_ms: -1, access_ms: 0 }),
            (b"b".to_vec(), Entry { value: Value::from_bytes(b"-40000"), expire_at_ms: 9_999_999_999_999, access_ms: 0 }),
            (b"c".to_vec(), Entry { value: Value::from_bytes(&long), expire_at_ms: -1, access_ms: 0 }),
            (b"12345678901".to_vec(), Entry { value: Value::from_bytes(b"9223372036854775807"), expire_at_ms: -1, access_ms: 0 }),
            (vec![0, 1, 2], Entry { value: Value::from_bytes(b""), expire_at_ms: -1, access_ms: 0 }),
        ];
        for (k, v) in &entries {
            e.save_pair(k, v);
        }
        e.buf.push(OPCODE_EOF);
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, &e.buf);
        e.buf.extend_from_slice(&crc.to_le_bytes());
        let mut got = vec![];
        let stats = load(&e.buf, 0, |db, k, v| got.push((db, k, v))).unwrap();
        assert_eq!(stats.keys_loaded, 5);
        for ((k, v), (db, gk, gv)) in entries.iter().zip(got) {
            assert_eq!(db, 0);
            assert_eq!(&gk, k);
            assert_eq!(gv.value, v.value);
            assert_eq!(gv.expire_at_ms, v.expire_at_ms);
        }
        // The long string went through LZF.
        assert!(e.buf.len() < 300);
        // Corruption is caught by the checksum with its offset.
        let mut bad = e.buf.clone();
        bad[20] ^= 0x55;
        assert!(load(&bad, 0, |_, _, _| {}).is_err());
        let truncated = &e.buf[..e.buf.len() - 12];
        let err = load(truncated, 0, |_, _, _| {}).unwrap_err();
        assert!(err.reason.contains("unexpected end"), "{}", err.reason);
    }

    #[test]
    fn crc64_is_jones() {
        assert_eq!(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, b"123456789"), 0xe9c6d914c4b8d9ca);
    }
}
