//! The DUMP payload of Redis 7.0 (cluster.c's `createDumpPayload` /
//! `verifyDumpPayload`): the RDB object type byte, the RDB object, the RDB
//! version as 2 little-endian bytes (10), and the CRC-64 (Jones, Redis's
//! `crc64`) of everything before it, little-endian. The same bytes on
//! ringkv and redis-server, so a payload moves between them both ways.

use std::sync::atomic::{AtomicBool, Ordering};

use super::rdb::{self, Encoder, Reader};
use super::rdb_load;
use crate::config::EncodingLimits;
use crate::shard::Value;

/// Bytes after the object: version (2) and CRC-64 (8).
pub const FOOTER_BYTES: usize = 10;

/// `DEBUG SET-SKIP-CHECKSUM-VALIDATION`: RESTORE (and Redis's RDB load)
/// then ignore the CRC-64. Server-wide, as Redis's flag.
pub static SKIP_CHECKSUM_VALIDATION: AtomicBool = AtomicBool::new(false);

fn crc64(data: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, data)
}

/// DUMP's reply for `value`: strings LZF-compressed as the RDB writer
/// compresses them when `compress` (`rdbcompression`).
pub fn create(value: &Value, compress: bool) -> Vec<u8> {
    let mut enc = Encoder::new(compress, 64);
    enc.exact_lzf = true;
    enc.buf.push(Encoder::value_type(value));
    enc.save_value(value);
    enc.buf.extend_from_slice(&(rdb::RDB_VERSION as u16).to_le_bytes());
    let crc = crc64(&enc.buf);
    enc.buf.extend_from_slice(&crc.to_le_bytes());
    enc.buf
}

/// `verifyDumpPayload`: long enough, an RDB version this server writes or
/// older, and the checksum (unless skipped; a zero CRC is not special here,
/// unlike in RDB files).
pub fn verify(payload: &[u8]) -> bool {
    if payload.len() < FOOTER_BYTES {
        return false;
    }
    let footer = &payload[payload.len() - FOOTER_BYTES..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if u32::from(version) > rdb::RDB_VERSION {
        return false;
    }
    if SKIP_CHECKSUM_VALIDATION.load(Ordering::Relaxed) {
        return true;
    }
    let stored = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    crc64(&payload[..payload.len() - 8]) == stored
}

/// The value of a verified payload, checked deeply (whatever
/// `sanitize-dump-payload` says: see `rdb_load`). None for anything Redis
/// answers "Bad data format" to: an unknown or unsupported type, a corrupt
/// object, an empty collection. As Redis 7.0's `restoreCommand`, the object
/// is read from the whole payload, its footer included, and what follows
/// it is not looked at: an object that ends early (bytes left before the
/// footer) or runs into the footer's bytes loads as Redis loads it.
pub fn load(payload: &[u8], limits: &EncodingLimits) -> Option<Value> {
    let mut r = Reader::new(payload);
    let rdb_type = r.u8().ok()?;
    // Redis 7.0 knows no type past its stream listpacks 2 (19): a set
    // listpack (20) or stream listpacks 3 (21) of a later version, which
    // ringkv loads from RDB files, is "Bad data format" here as there.
    if !rdb_load::is_loadable(rdb_type) || rdb_type > rdb::TYPE_STREAM_LISTPACKS_2 {
        return None;
    }
    match rdb_load::load_object(&mut r, rdb_type, limits) {
        Ok(value) => value,
        Err(e) => {
            // As Redis's rdbReportCorruptRDB in a RESTORE: the reason at
            // the verbose level, and the command fails (the TCL unit
            // integration/corrupt-dump looks for these lines).
            crate::verbose!("Internal error in RDB reading offset {} -> {}", e.offset, e.reason);
            None
        }
    }
}

/// FUNCTION DUMP's reply (functions.c's functionDumpCommand): every
/// library as its RDB record (`Encoder::save_functions`), then the footer.
pub fn functions_dump(codes: &[Vec<u8>], compress: bool) -> Vec<u8> {
    let mut enc = Encoder::new(compress, 64);
    enc.exact_lzf = true;
    enc.save_functions(codes);
    enc.buf.extend_from_slice(&(rdb::RDB_VERSION as u16).to_le_bytes());
    let crc = crc64(&enc.buf);
    enc.buf.extend_from_slice(&crc.to_le_bytes());
    enc.buf
}

/// The library codes of a FUNCTION RESTORE payload, with Redis's errors
/// (functionRestoreCommand): records are read while more than the footer
/// is left.
pub fn functions_parse(payload: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    if !verify(payload) {
        return Err("ERR DUMP payload version or checksum are wrong");
    }
    let mut r = Reader::new(payload);
    let mut codes = Vec::new();
    while r.remaining() > FOOTER_BYTES {
        match r.u8().map_err(|_| "ERR can not read data type")? {
            rdb::OPCODE_FUNCTION_PRE_GA => return Err("ERR Pre-GA function format not supported"),
            rdb::OPCODE_FUNCTION2 => codes.push(r.string().map_err(|_| "ERR Failed loading library payload")?),
            _ => return Err("ERR given type is not a function"),
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `DUMP` of "hello" in redis-server 7.0.15.
    #[test]
    fn payloads_as_redis_writes_them() {
        let hello = b"\x00\x05hello\x0a\x00cr\xdfve4 \x0a";
        assert!(verify(hello));
        assert_eq!(load(hello, &EncodingLimits::default()), Some(Value::from_bytes(b"hello")));
        assert_eq!(create(&Value::from_bytes(b"hello"), true), hello.to_vec());
        let mut bad = hello.to_vec();
        bad[3] ^= 1;
        assert!(!verify(&bad));
        let mut newer = create(&Value::Int(12), true);
        let n = newer.len();
        newer[n - 10] = 11;
        assert!(!verify(&newer));
        assert!(!verify(b"short"));
        assert!(load(b"\x00", &EncodingLimits::default()).is_none());
    }

    #[test]
    fn function_payloads_round_trip_and_refuse_other_records() {
        let codes = vec![b"#!lua name=a\nredis.register_function('f', function() return 1 end)".to_vec(), b"#!lua name=b\nx".to_vec()];
        for compress in [false, true] {
            assert_eq!(functions_parse(&functions_dump(&codes, compress)), Ok(codes.clone()));
        }
        assert_eq!(functions_parse(&functions_dump(&[], true)), Ok(vec![]));
        assert_eq!(functions_parse(b"bad_payload"), Err("ERR DUMP payload version or checksum are wrong"));
        // A key's DUMP is not a library.
        assert_eq!(functions_parse(&create(&Value::from_bytes(b"hello"), true)), Err("ERR given type is not a function"));
    }
}
