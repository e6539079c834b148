//! The RDB format, version 10 (what Redis 7.0 writes): encoding of lengths,
//! strings (integer and LZF forms as Redis chooses them), the opcodes, and a
//! loader for versions 1 to 12 of the types ringkv has.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::lzf;
use super::rdb_load;
use crate::config::EncodingLimits;
use crate::shard::keyspace::canonical_int;
use crate::shard::{Entry, Value};
use crate::types::{Hash, Set, ZSet};

pub const RDB_VERSION: u32 = 10;
pub const RDB_VERSION_MAX_LOADABLE: u32 = 12;

/// Redis 7.4 (RDB 12): a cluster slot's key counts, a hint only.
pub const OPCODE_SLOT_INFO: u8 = 0xF4;
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
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE_PRE_GA: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
/// Redis 7.2 (RDB 11) and 7.4 (RDB 12) types.
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub const TYPE_SET_LISTPACK: u8 = 20;
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;
pub const TYPE_HASH_METADATA_PRE_GA: u8 = 22;
pub const TYPE_HASH_LISTPACK_EX_PRE_GA: u8 = 23;
pub const TYPE_HASH_METADATA: u8 = 24;
pub const TYPE_HASH_LISTPACK_EX: u8 = 25;

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
    /// `save_pair_with`: past this buffer length the sink takes the buffer's
    /// whole blocks, between two elements of a big collection too
    /// (usize::MAX: never, as for DUMP).
    pub flush_at: usize,
    /// Compress with liblzf's exact algorithm (`lzf::Liblzf`), every string
    /// over 20 bytes tried, as Redis does: DUMP sets it so its payloads are
    /// redis-server's bytes; snapshots keep the faster `lzf::Compressor`.
    pub exact_lzf: bool,
}

thread_local! {
    /// DUMP's liblzf compressor (a 256 KiB table), one per thread that dumps.
    static LIBLZF: std::cell::RefCell<lzf::Liblzf> = std::cell::RefCell::new(lzf::Liblzf::default());
}

/// Where `save_pair_with` spills a buffer grown past `Encoder::flush_at`:
/// takes what it wants of the buffer, returns the next `flush_at`.
pub type Sink<'a> = dyn FnMut(&mut Vec<u8>) -> usize + 'a;

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
            flush_at: usize::MAX,
            exact_lzf: false,
        }
    }

    /// Hands the buffer to `sink` once it has grown past `flush_at`.
    #[inline]
    pub(crate) fn spill(&mut self, sink: &mut Sink<'_>) {
        if self.buf.len() >= self.flush_at {
            self.flush_at = sink(&mut self.buf);
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
        if self.compress && s.len() > 20 && (self.exact_lzf || self.should_try_lzf(s.len())) {
            let room = s.len() - 4;
            if self.lzf_out.len() <= room {
                self.lzf_out.resize(room + 1, 0);
            }
            let n = if self.exact_lzf {
                LIBLZF.with(|c| c.borrow_mut().compress(s, &mut self.lzf_out, room))
            } else {
                self.lzf.compress(s, &mut self.lzf_out[..room])
            };
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

    /// The RDB type byte of a value in its encoding (Redis's `rdbSaveObjectType`).
    pub fn value_type(v: &Value) -> u8 {
        match v {
            Value::Int(_) | Value::Str { .. } => TYPE_STRING,
            Value::List(_) => TYPE_LIST_QUICKLIST_2,
            Value::Set(s) => match *s {
                Set::Intset(_) => TYPE_SET_INTSET,
                Set::Table(_) => TYPE_SET,
            },
            Value::ZSet(z) => match *z {
                ZSet::Listpack(_) => TYPE_ZSET_LISTPACK,
                ZSet::Tree(_) => TYPE_ZSET_2,
            },
            Value::Hash(h) => match *h {
                Hash::Listpack(_) => TYPE_HASH_LISTPACK,
                Hash::Table(_) => TYPE_HASH,
            },
            Value::Stream(_) => TYPE_STREAM_LISTPACKS_2,
        }
    }

    /// The value's object, after its type byte (Redis's `rdbSaveObject`):
    /// compact encodings go out as the blobs they are in memory.
    pub fn save_value(&mut self, v: &Value) {
        self.save_value_with(v, &mut |_| usize::MAX)
    }

    /// `save_value`, spilling the buffer into `sink` between the elements of
    /// a big collection (a BGSAVE child otherwise held a 500k-element
    /// collection's whole serialisation, 11-16 MiB, in one buffer).
    fn save_value_with(&mut self, v: &Value, sink: &mut Sink<'_>) {
        match v {
            Value::Int(n) => self.save_int_string(*n),
            Value::Str { bytes, .. } => self.save_string(bytes),
            Value::List(l) => {
                self.save_len(l.nodes().len() as u64);
                for node in l.nodes() {
                    self.save_len(node.container() as u64);
                    self.save_string(node.as_bytes());
                    self.spill(sink);
                }
            }
            Value::Set(s) => match s {
                Set::Intset(i) => self.save_string(i.as_bytes()),
                Set::Table(t) => {
                    self.save_len(t.len() as u64);
                    for m in t {
                        self.save_string(m);
                        self.spill(sink);
                    }
                }
            },
            Value::ZSet(z) => match z {
                ZSet::Listpack(lp) => self.save_string(lp.as_bytes()),
                ZSet::Tree(t) => {
                    // Highest score first, as Redis walks its skiplist from
                    // the tail, so that a loader inserting at the head of
                    // its skiplist does no search.
                    self.save_len(t.len() as u64);
                    for (m, score) in t.iter().rev() {
                        self.save_string(m);
                        self.buf.extend_from_slice(&score.to_le_bytes());
                        self.spill(sink);
                    }
                }
            },
            Value::Hash(h) => match h {
                Hash::Listpack(lp) => self.save_string(lp.as_bytes()),
                Hash::Table(t) => {
                    self.save_len(t.len() as u64);
                    for (f, v) in t.iter() {
                        self.save_string(f);
                        self.save_string(v);
                        self.spill(sink);
                    }
                }
            },
            Value::Stream(st) => self.save_stream(st, sink),
        }
    }

    /// An integer as an RDB string: int-encoded when it fits 32 bits.
    fn save_int_string(&mut self, n: i64) {
        if !self.save_int_encoded(n) {
            let s = self.itoa.format(n).as_bytes().to_vec();
            self.save_len(s.len() as u64);
            self.buf.extend_from_slice(&s);
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

    /// The function libraries (Redis's rdbSaveFunctions): each library's
    /// code as an `RDB_OPCODE_FUNCTION2` record.
    pub fn save_functions(&mut self, codes: &[Vec<u8>]) {
        for code in codes {
            self.buf.push(OPCODE_FUNCTION2);
            self.save_string(code);
        }
    }

    pub fn save_select_db(&mut self, db: usize, size: usize, expires: usize) {
        self.buf.push(OPCODE_SELECTDB);
        self.save_len(db as u64);
        self.buf.push(OPCODE_RESIZEDB);
        self.save_len(size as u64);
        self.save_len(expires as u64);
    }

    pub fn save_pair(&mut self, key: &[u8], e: &Entry) {
        self.save_pair_with(key, e, &mut |_| usize::MAX)
    }

    /// `save_pair`, spilling into `sink` past `flush_at` (see `save_value_with`).
    pub fn save_pair_with(&mut self, key: &[u8], e: &Entry, sink: &mut Sink<'_>) {
        if e.expire_at_ms >= 0 {
            self.buf.push(OPCODE_EXPIRETIME_MS);
            self.buf.extend_from_slice(&(e.expire_at_ms as u64).to_le_bytes());
        }
        match crate::shard::lfu::saved(e.access_ms, crate::util::unix_ms()) {
            crate::shard::lfu::Saved::Nothing => {}
            crate::shard::lfu::Saved::Idle(secs) => {
                self.buf.push(OPCODE_IDLE);
                self.save_len(secs);
            }
            crate::shard::lfu::Saved::Freq(f) => {
                self.buf.extend_from_slice(&[OPCODE_FREQ, f]);
            }
        }
        self.buf.push(Encoder::value_type(&e.value));
        self.save_string(key);
        self.save_value_with(&e.value, sink);
    }
}

/// Where a load failed, for the refusal message.
#[derive(Debug, PartialEq)]
pub struct LoadError {
    pub offset: usize,
    pub reason: String,
    pub class: LoadErrorClass,
}

/// How Redis 7.0 reports the same failure: its log lines differ by class.
#[derive(Debug, PartialEq, Clone, Copy)]
pub enum LoadErrorClass {
    /// The file ends early (rdbLoad's eoferr, rdb.c:3249 in 7.0.15).
    Eof,
    /// rdbReportCorruptRDB at this line of Redis 7.0.15's rdb.c, with the
    /// same reason text; 0 where ringkv knows no matching call site.
    Corrupt(u32),
    /// The CRC-64 differs: computed (Redis's "expected") and stored ("got").
    Checksum { expected: u64, got: u64 },
    /// Not an RDB file ringkv can read at all: Redis logs the reason, then
    /// "Fatal error loading the DB: Invalid argument. Exiting."
    Invalid,
    /// A valid file with something ringkv cannot load yet.
    Unsupported,
}

/// Redis advances `loading_loaded_bytes` (the offset of its "Internal
/// error" line) once per `loading-process-events-interval-bytes` (2 MiB).
const LOADING_INTERVAL_BYTES: usize = 2 * 1024 * 1024;

impl LoadError {
    /// The lines Redis 7.0 logs when it refuses this file at start-up, in
    /// order (ringkv's precise offset and reason follow where Redis has none).
    pub fn redis_log_lines(&self) -> Vec<String> {
        let loaded = self.offset / LOADING_INTERVAL_BYTES * LOADING_INTERVAL_BYTES;
        let internal = |line: u32, reason: &str| format!("Internal error in RDB reading offset {}, function at rdb.c:{} -> {}", loaded, line, reason);
        match self.class {
            LoadErrorClass::Eof => vec![
                "Short read or OOM loading DB. Unrecoverable error, aborting now.".into(),
                internal(3249, "Unexpected EOF reading RDB file"),
                format!("ringkv: {}", self),
            ],
            LoadErrorClass::Checksum { expected, got } => {
                vec![format!("Wrong RDB checksum expected: ({:x}) but got ({:x}). Aborting now.", expected, got), internal(3225, "RDB CRC error")]
            }
            // After these Redis runs its redis-check-rdb pass, which exits
            // by itself on an unknown type (2681) but returns on a bad string
            // (413, 529): then Redis ends with a last line (seen with 7.0.15).
            LoadErrorClass::Corrupt(line) if line > 0 => {
                let mut lines = vec![internal(line, &self.reason), format!("ringkv: {}", self)];
                if line != 2681 {
                    lines.push("Terminating server after rdb file reading failure.".into());
                }
                lines
            }
            LoadErrorClass::Corrupt(_) => vec![format!("Internal error in RDB reading offset {} -> {}", self.offset, self.reason)],
            LoadErrorClass::Invalid => vec![self.reason.clone(), "Fatal error loading the DB: Invalid argument. Exiting.".into()],
            LoadErrorClass::Unsupported => vec![format!("{}. Refusing to start with a partial dataset.", self)],
        }
    }
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
    /// Empty collections skipped (Redis's "empty keys skipped"), and the
    /// first `EMPTY_KEYS_LOGGED` of their names for the log.
    pub empty_keys_skipped: u64,
    pub empty_keys_logged: Vec<Vec<u8>>,
    /// The code of every function library (`RDB_OPCODE_FUNCTION2`), in
    /// the file's order: the caller loads them (`scripting`).
    pub functions: Vec<Vec<u8>>,
}

/// Redis logs the names of the first 10 empty keys it skips.
pub const EMPTY_KEYS_LOGGED: usize = 10;

/// A cursor over an RDB image or a DUMP payload; every read is bounded by
/// what is left, so a lying length is an error, never an overflow.
pub(crate) struct Reader<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }
    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub(crate) fn err<T>(&self, class: LoadErrorClass, reason: impl Into<String>) -> Result<T, LoadError> {
        Err(LoadError { offset: self.pos, reason: reason.into(), class })
    }
    /// The next `n` bytes. `n` comes from the file: compared with what is
    /// left, never added to `pos`, so a lying length cannot overflow.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        if n > self.data.len() - self.pos {
            return self.err(LoadErrorClass::Eof, format!("unexpected end of file (wanted {} more bytes, {} left)", n, self.data.len() - self.pos));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.bytes(1)?[0])
    }
    /// (length, is_encoded)
    pub(crate) fn len(&mut self) -> Result<(u64, bool), LoadError> {
        let b = self.u8()?;
        match b >> 6 {
            0 => Ok(((b & 0x3f) as u64, false)),
            1 => Ok(((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false)),
            2 => match b {
                0x80 => Ok((u32::from_be_bytes(self.bytes(4)?.try_into().unwrap()) as u64, false)),
                0x81 => Ok((u64::from_be_bytes(self.bytes(8)?.try_into().unwrap()), false)),
                _ => self.err(LoadErrorClass::Corrupt(0), format!("Unknown length encoding {} in rdbLoadLen()", b)),
            },
            _ => Ok(((b & 0x3f) as u64, true)),
        }
    }
    /// A length where the format has one: as Redis's rdbLoadLen(rdb, NULL),
    /// an "encoded" marker is not an error there, only its 6 bits count.
    pub(crate) fn plain_len(&mut self) -> Result<u64, LoadError> {
        Ok(self.len()?.0)
    }
    pub(crate) fn string(&mut self) -> Result<Vec<u8>, LoadError> {
        let (n, enc) = self.len()?;
        if !enc {
            // Bounded by the file before anything is allocated.
            return Ok(self.bytes(usize::try_from(n).unwrap_or(usize::MAX))?.to_vec());
        }
        match n as u8 {
            ENC_INT8 => Ok((self.u8()? as i8).to_string().into_bytes()),
            ENC_INT16 => Ok(i16::from_le_bytes(self.bytes(2)?.try_into().unwrap()).to_string().into_bytes()),
            ENC_INT32 => Ok(i32::from_le_bytes(self.bytes(4)?.try_into().unwrap()).to_string().into_bytes()),
            ENC_LZF => {
                let clen = usize::try_from(self.plain_len()?).unwrap_or(usize::MAX);
                let len = usize::try_from(self.plain_len()?).unwrap_or(usize::MAX);
                let start = self.pos;
                let c = self.bytes(clen)?;
                if len == 0 {
                    // liblzf into a 0-byte buffer stops at once and returns
                    // 0: Redis's "== len" check passes, whatever the bytes.
                    return Ok(Vec::new());
                }
                // `decompress` refuses a length beyond what `clen` bytes can
                // expand to before it reserves anything.
                lzf::decompress(c, len).map_err(|_| LoadError {
                    offset: start,
                    reason: "Invalid LZF compressed string".into(),
                    class: LoadErrorClass::Corrupt(413),
                })
            }
            other => self.err(LoadErrorClass::Corrupt(529), format!("Unknown RDB string encoding type {}", other)),
        }
    }
}

/// How far the start-up load has come, for INFO's `loading_*` fields while
/// it runs (written by the one loading thread, read by INFO).
pub struct LoadProgress {
    /// Bytes of the image parsed, advanced as Redis advances
    /// `loading_loaded_bytes`: in steps of `loading-process-events-interval-bytes`.
    pub loaded_bytes: AtomicU64,
    /// The image's `used-mem` aux field (`loading_rdb_used_mem`).
    pub rdb_used_mem: AtomicU64,
    /// `loading-process-events-interval-bytes`.
    pub interval: AtomicU64,
    /// Where the file being read starts in the whole load (AOF loading reads
    /// a base and incr files one after another, with one total).
    pub file_offset: AtomicU64,
    /// Whether a start-up load admits clients (they get `-LOADING`,
    /// `EventLoop::admit_clients`): set when what it loads is at least one
    /// progress step long (`admit_if_long`), or once it has run one step
    /// (an interval of an RDB image, 1024 commands of an AOF file).
    pub admitting: AtomicBool,
}

impl LoadProgress {
    #[inline]
    fn note(&self, pos: usize) {
        let step = self.interval.load(Ordering::Relaxed).max(1);
        let stepped = pos as u64 / step * step;
        self.loaded_bytes.store(self.file_offset.load(Ordering::Relaxed) + stepped, Ordering::Relaxed);
        if stepped > 0 {
            self.admitting.store(true, Ordering::Release);
        }
    }

    /// A load of `total` bytes is about to start: one of at least a
    /// progress step admits clients from its start.
    pub fn admit_if_long(&self, total: u64) {
        if total >= self.interval.load(Ordering::Relaxed).max(1) {
            self.admitting.store(true, Ordering::Release);
        }
    }

    /// AOF commands: Redis's `loadSingleAppendOnlyFile` advances the
    /// progress every 1024 commands to the file position, not in steps;
    /// `loops` is the number of commands read from this file so far.
    pub fn note_aof(&self, pos: usize, loops: u64) {
        self.loaded_bytes.store(self.file_offset.load(Ordering::Relaxed) + pos as u64, Ordering::Relaxed);
        if loops > 0 {
            self.admitting.store(true, Ordering::Release);
        }
    }
}

pub static LOAD_PROGRESS: LoadProgress = LoadProgress {
    loaded_bytes: AtomicU64::new(0),
    rdb_used_mem: AtomicU64::new(0),
    interval: AtomicU64::new(LOADING_INTERVAL_BYTES as u64),
    file_offset: AtomicU64::new(0),
    admitting: AtomicBool::new(false),
};

/// Parses a whole RDB image, calling `on_key(db, key, entry)` for every live
/// key. Expired keys (at `now_ms`) are counted and skipped. Verifies the
/// CRC-64 when the file carries one. Collections take Redis 7.0's default
/// encodings (see `load_with`).
pub fn load(data: &[u8], now_ms: i64, on_key: impl FnMut(usize, Vec<u8>, Entry)) -> Result<LoadStats, LoadError> {
    load_with(data, now_ms, &EncodingLimits::default(), on_key)
}

/// `load`, with the encodings chosen by `limits` (the server's
/// `*-max-listpack-*` and `set-max-intset-entries`), as Redis's loader does.
pub fn load_with(data: &[u8], now_ms: i64, limits: &EncodingLimits, on_key: impl FnMut(usize, Vec<u8>, Entry)) -> Result<LoadStats, LoadError> {
    load_image(data, now_ms, false, limits, on_key).map(|(stats, _)| stats)
}

/// Parses the RDB at the start of an AOF file (its preamble, or an RDB base
/// file) and returns where it ends: the AOF's commands follow there. As
/// Redis's RDBFLAGS_AOF_PREAMBLE load, keys already expired are loaded all
/// the same (the commands after them may still touch them; expiry removes
/// them later), and bytes after the RDB's end are not an error.
pub fn load_aof_preamble(
    data: &[u8],
    now_ms: i64,
    limits: &EncodingLimits,
    on_key: impl FnMut(usize, Vec<u8>, Entry),
) -> Result<(LoadStats, usize), LoadError> {
    load_image(data, now_ms, true, limits, on_key)
}

fn load_image(
    data: &[u8],
    now_ms: i64,
    preamble: bool,
    limits: &EncodingLimits,
    mut on_key: impl FnMut(usize, Vec<u8>, Entry),
) -> Result<(LoadStats, usize), LoadError> {
    let mut r = Reader { data, pos: 0 };
    let invalid = |offset: usize, reason: String| LoadError { offset, reason, class: LoadErrorClass::Invalid };
    let magic = r.bytes(9)?;
    if &magic[..5] != b"REDIS" {
        return Err(invalid(0, "Wrong signature trying to load DB from file".into()));
    }
    // Redis reads the version with atoi: digits up to the first other byte.
    let digits = magic[5..9].iter().take_while(|b| b.is_ascii_digit()).fold(0u32, |v, &b| v * 10 + (b - b'0') as u32);
    if !(1..=RDB_VERSION_MAX_LOADABLE).contains(&digits) {
        return Err(invalid(5, format!("Can't handle RDB format version {}", digits)));
    }
    let version = digits;
    let mut stats = LoadStats { version, ..Default::default() };
    let mut db = 0usize;
    let mut expire_ms: i64 = -1;
    // The next key's FREQ / IDLE (Redis's lfu_freq / lru_idle), -1: none.
    let (mut freq, mut idle): (i64, i64) = (-1, -1);
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
                freq = r.u8()? as i64;
            }
            OPCODE_IDLE => {
                idle = r.plain_len()?.min(i64::MAX as u64 / 1000) as i64;
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
                if k == b"used-mem" {
                    let mem = std::str::from_utf8(&v).ok().and_then(|t| t.parse().ok()).unwrap_or(0);
                    LOAD_PROGRESS.rdb_used_mem.store(mem, Ordering::Relaxed);
                }
                stats.aux.push((k, v));
            }
            OPCODE_MODULE_AUX => {
                return Err(LoadError { offset: op_pos, reason: "module auxiliary data is not supported".into(), class: LoadErrorClass::Unsupported })
            }
            OPCODE_FUNCTION2 => {
                stats.functions.push(r.string()?);
            }
            OPCODE_FUNCTION_PRE_GA => {
                return Err(LoadError { offset: op_pos, reason: "Pre-GA function format not supported".into(), class: LoadErrorClass::Unsupported })
            }
            OPCODE_EOF => {
                if version >= 5 {
                    let crc_pos = r.pos;
                    let stored = u64::from_le_bytes(r.bytes(8)?.try_into().unwrap());
                    let skip = super::payload::SKIP_CHECKSUM_VALIDATION.load(std::sync::atomic::Ordering::Relaxed);
                    if stored != 0 && !skip {
                        let computed = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, &data[..crc_pos]);
                        if computed != stored {
                            // Redis's order: "expected" is what the bytes hash
                            // to, "got" what the file says.
                            return Err(LoadError {
                                offset: crc_pos,
                                reason: format!("Wrong RDB checksum expected: ({:x}) but got ({:x})", computed, stored),
                                class: LoadErrorClass::Checksum { expected: computed, got: stored },
                            });
                        }
                    }
                }
                if !preamble && r.pos != data.len() {
                    return Err(LoadError {
                        offset: r.pos,
                        reason: format!("{} unexpected bytes after the end of the RDB", data.len() - r.pos),
                        class: LoadErrorClass::Corrupt(0),
                    });
                }
                return Ok((stats, r.pos));
            }
            OPCODE_SLOT_INFO => {
                // Slot id, its keys, its keys with a TTL: sizing hints.
                for _ in 0..3 {
                    r.plain_len()?;
                }
            }
            rdb_type => {
                if rdb_load::type_name(rdb_type).is_none() {
                    return Err(LoadError { offset: op_pos, reason: format!("Unknown RDB encoding type {}", rdb_type), class: LoadErrorClass::Corrupt(2681) });
                }
                let key = r.string()?;
                if !rdb_load::is_loadable(rdb_type) {
                    return Err(unsupported_type(op_pos, &key, rdb_type));
                }
                let exp = expire_ms;
                expire_ms = -1;
                // Redis's objectSetLRUOrLFU at load.
                let access_ms = match (crate::shard::lfu::on(), freq, idle) {
                    (true, 0.., _) => crate::shard::lfu::stamp(now_ms, freq as u8),
                    (false, _, 0..) => now_ms - idle * 1000,
                    _ => crate::shard::lfu::fresh(now_ms),
                };
                (freq, idle) = (-1, -1);
                let Some(value) = rdb_load::load_object(&mut r, rdb_type, limits)? else {
                    // An empty collection: Redis skips it (and logs the first few).
                    stats.empty_keys_skipped += 1;
                    if stats.empty_keys_logged.len() < EMPTY_KEYS_LOGGED {
                        stats.empty_keys_logged.push(key);
                    }
                    continue;
                };
                if !preamble && exp >= 0 && exp <= now_ms {
                    stats.keys_expired += 1;
                    continue;
                }
                stats.keys_loaded += 1;
                LOAD_PROGRESS.note(r.pos);
                on_key(db, key, Entry { value, expire_at_ms: exp, access_ms });
            }
        }
    }
}

/// The refusal of a value ringkv has no type for (a stream, a module's
/// value, a hash with field expiry), naming the key.
fn unsupported_type(offset: usize, key: &[u8], rdb_type: u8) -> LoadError {
    LoadError {
        offset,
        reason: format!(
            "key '{}' holds a {} (RDB object type {}), which ringkv does not support",
            String::from_utf8_lossy(key),
            rdb_load::type_name(rdb_type).unwrap_or("value"),
            rdb_type
        ),
        class: LoadErrorClass::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A big collection spilled into a sink between its elements gives the
    /// same bytes as encoded whole, and the buffer never holds much more
    /// than `flush_at` plus one element.
    #[test]
    fn save_pair_with_spills_between_elements() {
        let mut t = crate::types::hash::Table::default();
        for i in 0..5000 {
            t.insert(format!("field:{}", i).as_bytes(), format!("value:{}", i).as_bytes());
        }
        let mut s = crate::types::set::Table::default();
        for i in 0..5000 {
            s.insert(crate::shard::key::Key::new(format!("member:{}", i).as_bytes()));
        }
        let mut z = crate::types::zset_tree::SortedSet::new();
        let mut q = crate::types::Quicklist::new(4);
        for i in 0..5000 {
            z.insert(format!("m:{}", i).as_bytes(), i as f64 * 0.5);
            q.push_tail(format!("element:{}", i).as_bytes());
        }
        for value in [Value::Hash(Hash::Table(t)), Value::Set(Set::Table(s)), Value::ZSet(ZSet::Tree(z)), Value::List(Box::new(q))] {
            let e = Entry { value, expire_at_ms: 7, access_ms: 0 };
            let mut whole = Encoder::new(false, 0);
            whole.save_pair(b"key", &e);
            let mut enc = Encoder::new(false, 0);
            enc.flush_at = 1000;
            let mut out = Vec::new();
            let mut largest = 0;
            let mut sink = |buf: &mut Vec<u8>| {
                largest = largest.max(buf.len());
                out.append(buf);
                1000
            };
            enc.save_pair_with(b"key", &e, &mut sink);
            out.extend_from_slice(&enc.buf);
            assert_eq!(out, whole.buf, "{}", e.value.type_name());
            assert!(largest < 1100, "the buffer reached {} bytes", largest);
        }
    }

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

    /// A lying length (a string, an LZF output) is refused as Redis refuses
    /// the file, before anything is reserved or `pos + n` can overflow.
    #[test]
    fn lying_lengths_are_bounded_by_the_file() {
        let head = |body: &[u8]| {
            let mut f = b"REDIS0011".to_vec();
            f.push(TYPE_STRING);
            f.extend_from_slice(body);
            f
        };
        // Key length u64::MAX (0x81 + 8 bytes): an EOF, no overflow.
        let e = load(&head(&[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, |_, _, _| {}).unwrap_err();
        assert_eq!(e.class, LoadErrorClass::Eof);
        // LZF: 2 compressed bytes said to give u32::MAX bytes.
        let e = load(&head(&[0x01, b'k', 0xc3, 0x02, 0x80, 0xff, 0xff, 0xff, 0xff, 0x00, b'x']), 0, |_, _, _| {}).unwrap_err();
        assert_eq!((e.class, e.reason.as_str()), (LoadErrorClass::Corrupt(413), "Invalid LZF compressed string"));
        // LZF: compressed length u64::MAX.
        let e = load(&head(&[0x01, b'k', 0xc3, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x05]), 0, |_, _, _| {}).unwrap_err();
        assert_eq!(e.class, LoadErrorClass::Eof);
    }

    #[test]
    fn corrupt_files_are_reported_in_redis_words() {
        let mut e = Encoder::new(false, 0);
        e.save_header();
        e.save_select_db(0, 1, 0);
        e.save_pair(b"k", &Entry { value: Value::from_vec(b"v".to_vec()), expire_at_ms: -1, access_ms: 0 });
        e.buf.push(OPCODE_EOF);
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, &e.buf);
        let mut good = e.buf.clone();
        good.extend_from_slice(&(crc ^ 1).to_le_bytes());
        let err = load(&good, 0, |_, _, _| {}).unwrap_err();
        assert_eq!(err.class, LoadErrorClass::Checksum { expected: crc, got: crc ^ 1 });
        assert_eq!(
            err.redis_log_lines(),
            vec![
                format!("Wrong RDB checksum expected: ({:x}) but got ({:x}). Aborting now.", crc, crc ^ 1),
                "Internal error in RDB reading offset 0, function at rdb.c:3225 -> RDB CRC error".to_string()
            ]
        );
        let err = load(&good[..good.len() - 3], 0, |_, _, _| {}).unwrap_err();
        assert_eq!(
            err.redis_log_lines()[..2],
            [
                "Short read or OOM loading DB. Unrecoverable error, aborting now.",
                "Internal error in RDB reading offset 0, function at rdb.c:3249 -> Unexpected EOF reading RDB file"
            ]
        );
        let mut bad_sig = good.clone();
        bad_sig[0] = b'X';
        assert_eq!(
            load(&bad_sig, 0, |_, _, _| {}).unwrap_err().redis_log_lines(),
            ["Wrong signature trying to load DB from file", "Fatal error loading the DB: Invalid argument. Exiting."]
        );
    }

    #[test]
    fn crc64_is_jones() {
        assert_eq!(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, b"123456789"), 0xe9c6d914c4b8d9ca);
    }
}
