//! HyperLogLog commands (Redis's hyperloglog.c): PFADD PFCOUNT PFMERGE
//! PFDEBUG PFSELFTEST. The value is a plain string in Redis's HYLL format
//! (`types::hll`); these handlers keep Redis 7.0.15's order of checks and
//! its dirty counting (PFCOUNT of one key that refreshes the cached
//! cardinality is a write and is propagated, as in Redis).
//!
//! PFCOUNT of several keys and PFMERGE may span shards: they are ordinary
//! multi-key commands, run under the hold like SUNIONSTORE, and look each
//! key up on its owning shard through `Ctx`.

use super::lookup::{StringKind, WrongType};
use super::string::make_raw;
use super::{err, flags::*, CommandSpec, Ctx};
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::keyspace::xorshift;
use crate::shard::Value;
use crate::types::hll::{self, Corrupt, CORRUPT_ERROR, REGISTERS};
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    let h = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).group("hyperloglog");
    vec![
        h("pfadd", -2, WRITE | DENYOOM | FAST, pfadd)
            .keys(1, 1, 1)
            .acl(&["@write", "@hyperloglog", "@fast"])
            .doc("2.8.9", "Adds the specified elements to the specified HyperLogLog."),
        h("pfcount", -2, READONLY, pfcount)
            .keys(1, -1, 1)
            .acl(&["@read", "@hyperloglog", "@slow"])
            .doc("2.8.9", "Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s)."),
        h("pfmerge", -2, WRITE | DENYOOM, pfmerge)
            .keys(1, -1, 1)
            .acl(&["@write", "@hyperloglog", "@slow"])
            .doc("2.8.9", "Merge N different HyperLogLogs into a single one."),
        h("pfdebug", 3, WRITE | DENYOOM | ADMIN, pfdebug)
            .keys(2, 2, 1)
            .acl(&["@write", "@hyperloglog", "@admin", "@slow", "@dangerous"])
            .doc("2.8.9", "Internal commands for debugging HyperLogLog values"),
        h("pfselftest", 1, ADMIN, pfselftest)
            .keys(0, 0, 0)
            .acl(&["@hyperloglog", "@admin", "@slow", "@dangerous"])
            .doc("2.8.9", "An internal command for testing HyperLogLog values"),
    ]
}

/// Redis sends it with its own code: a WRONGTYPE error of another text.
const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";

/// Redis's `isHLLObjectOrReply` after the type check: a string that is not
/// an integer and has a valid header.
fn is_hll(v: &Value) -> bool {
    matches!(v, Value::Str { bytes, .. } if hll::valid_header(bytes))
}

fn sparse_max_bytes(ctx: &Ctx) -> usize {
    ctx.config().encodings.hll_sparse_max_bytes
}

/// The HLL at `key`, made a writable raw string (Redis's
/// `dbUnshareStringValue`); the key exists and was checked.
fn hll_bytes<'c>(ctx: &'c mut Ctx, key: &[u8]) -> &'c mut Vec<u8> {
    let now = ctx.now_ms;
    make_raw(&mut ctx.db(key).lookup(key, now, false).expect("looked up before").value)
}

fn pfadd(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let max_bytes = sparse_max_bytes(ctx);
    let mut updated = 0;
    match ctx.lookup_write::<StringKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(Some(e)) if !is_hll(&e.value) => return r.error(NOT_HLL),
        Ok(Some(_)) => {}
        Ok(None) => {
            let now = ctx.now_ms;
            ctx.db(key).set(key, Value::Str { bytes: hll::new_sparse(), raw: true }, now, false);
            ctx.notify_new(key);
            updated += 1;
        }
    }
    let bytes = hll_bytes(ctx, key);
    for element in &args[2..] {
        match hll::add(bytes, element, max_bytes) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(Corrupt) => return r.error(CORRUPT_ERROR),
        }
    }
    if updated > 0 {
        hll::invalidate_cache(bytes);
        ctx.modified(ctx.db, key);
        // Redis counts each changed register (and the creation) as a write.
        ctx.shards.of(key).dirty += updated - 1;
        ctx.notify(notify::STRING, "pfadd", key);
    }
    r.int((updated > 0) as i64);
}

/// The registers of the HLLs at `keys` merged into `max` (a missing key is
/// an empty HLL); whether one of them is dense. Err is the error reply.
fn merge_sources(ctx: &mut Ctx, keys: &[&[u8]], max: &mut [u8; REGISTERS]) -> Result<bool, &'static str> {
    let mut any_dense = false;
    for &key in keys {
        match ctx.lookup_read::<StringKind>(key) {
            Err(WrongType) => return Err(err::WRONGTYPE),
            Ok(None) => {}
            Ok(Some(e)) => match &e.value {
                Value::Str { bytes, .. } if hll::valid_header(bytes) => {
                    any_dense |= bytes[4] == hll::DENSE;
                    hll::merge_into(max, bytes).map_err(|Corrupt| CORRUPT_ERROR)?;
                }
                _ => return Err(NOT_HLL),
            },
        }
    }
    Ok(any_dense)
}

fn pfcount(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    if args.len() > 2 {
        let mut max = Box::new([0u8; REGISTERS]);
        return match merge_sources(ctx, &args[1..], &mut max) {
            Ok(_) => r.int(hll::count_registers(&max) as i64),
            Err(e) => r.error(e),
        };
    }
    let key = args[1];
    match ctx.lookup_read::<StringKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.int(0),
        Ok(Some(e)) if !is_hll(&e.value) => return r.error(NOT_HLL),
        Ok(Some(_)) => {}
    }
    let bytes = hll_bytes(ctx, key);
    let card = match hll::cached_count(bytes) {
        Some(card) => card,
        None => {
            let Ok(card) = hll::count(bytes) else { return r.error(CORRUPT_ERROR) };
            hll::set_cached_count(bytes, card);
            // The refreshed cache is a change Redis propagates.
            ctx.modified(ctx.db, key);
            card
        }
    };
    r.int(card as i64);
}

fn pfmerge(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut max = Box::new([0u8; REGISTERS]);
    let use_dense = match merge_sources(ctx, &args[1..], &mut max) {
        Ok(dense) => dense,
        Err(e) => return r.error(e),
    };
    let dest = args[1];
    let max_bytes = sparse_max_bytes(ctx);
    if ctx.lookup_write::<StringKind>(dest).ok().flatten().is_none() {
        let now = ctx.now_ms;
        ctx.db(dest).set(dest, Value::Str { bytes: hll::new_sparse(), raw: true }, now, false);
        ctx.notify_new(dest);
    }
    let bytes = hll_bytes(ctx, dest);
    if use_dense && hll::to_dense(bytes).is_err() {
        return r.error(CORRUPT_ERROR);
    }
    for (i, &m) in max.iter().enumerate() {
        if m != 0 && hll::set_register(bytes, i, m, max_bytes).is_err() {
            return r.error(CORRUPT_ERROR);
        }
    }
    hll::invalidate_cache(bytes);
    ctx.modified(ctx.db, dest);
    // Redis 7.0 names this event after PFADD.
    ctx.notify(notify::STRING, "pfadd", dest);
    r.ok();
}

fn pfdebug(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let (sub, key) = (args[1], args[2]);
    match ctx.lookup_write::<StringKind>(key) {
        Err(WrongType) => return r.error(err::WRONGTYPE),
        Ok(None) => return r.error("ERR The specified key does not exist"),
        Ok(Some(e)) if !is_hll(&e.value) => return r.error(NOT_HLL),
        Ok(Some(_)) => {}
    }
    let bytes = hll_bytes(ctx, key);
    let sparse = bytes[4] == hll::SPARSE;
    if eq_ic(sub, "getreg") {
        if sparse {
            if hll::to_dense(bytes).is_err() {
                return r.error(CORRUPT_ERROR);
            }
            // Redis forces propagation of the encoding change.
            ctx.shards.of(key).dirty += 1;
        }
        let bytes = hll_bytes(ctx, key);
        r.array(REGISTERS);
        for v in hll::dense_registers(bytes) {
            r.int(v as i64);
        }
    } else if eq_ic(sub, "decode") {
        if !sparse {
            return r.error("ERR HLL encoding is not sparse");
        }
        r.bulk(hll::decode(bytes).as_bytes());
    } else if eq_ic(sub, "encoding") {
        r.simple(if sparse { "sparse" } else { "dense" });
    } else if eq_ic(sub, "todense") {
        if sparse {
            if hll::to_dense(bytes).is_err() {
                return r.error(CORRUPT_ERROR);
            }
            ctx.shards.of(key).dirty += 1;
        }
        r.int(sparse as i64);
    } else {
        r.error(&format!("ERR Unknown PFDEBUG subcommand '{}'", String::from_utf8_lossy(sub)));
    }
}

/// Redis's PFSELFTEST: the dense register accessors keep random values
/// without disturbing their neighbours, sparse and dense encodings agree,
/// and the estimate stays within 6 standard errors up to 10^7 elements.
fn pfselftest(ctx: &mut Ctx, _args: &[&[u8]], r: &mut Reply) {
    let max_bytes = sparse_max_bytes(ctx);
    let mut rng = ctx.now_ms as u64 ^ 0x9E37_79B9_7F4A_7C15;
    match selftest(&mut rng, max_bytes) {
        Ok(()) => r.ok(),
        Err(e) => r.error(&e),
    }
}

fn selftest(rng: &mut u64, max_bytes: usize) -> Result<(), String> {
    let mut dense = hll::new_sparse();
    hll::to_dense(&mut dense).map_err(|_| "ERR TESTFAILED".to_string())?;
    let mut values = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        let mut fresh = dense.clone();
        fresh[hll::HEADER_BYTES..].fill(0);
        for (i, v) in values.iter_mut().enumerate() {
            *v = (xorshift(rng) & 63) as u8;
            // From zero, raising the register writes exactly `v`.
            hll::set_register(&mut fresh, i, *v, max_bytes).ok();
        }
        for (i, (got, want)) in hll::dense_registers(&fresh).zip(values.iter()).enumerate() {
            if got != *want {
                return Err(format!("ERR TESTFAILED Register {i} should be {want} but is {got}"));
            }
        }
    }
    let mut sparse = hll::new_sparse();
    let relative_error = 1.04 / (REGISTERS as f64).sqrt();
    let seed = xorshift(rng);
    let mut checkpoint: u64 = 1;
    for j in 1..=10_000_000u64 {
        let element = (j ^ seed).to_ne_bytes();
        hll::add(&mut dense, &element, max_bytes).ok();
        hll::add(&mut sparse, &element, max_bytes).map_err(|_| "ERR TESTFAILED sparse corrupted".to_string())?;
        if j != checkpoint {
            continue;
        }
        if j < max_bytes as u64 / 2 && sparse[4] != hll::SPARSE {
            return Err("ERR TESTFAILED sparse encoding not used".into());
        }
        let card = hll::count(&dense).map_err(|_| "ERR TESTFAILED dense corrupted".to_string())?;
        if hll::count(&sparse).ok() != Some(card) {
            return Err("ERR TESTFAILED dense/sparse disagree".into());
        }
        let abs_error = (checkpoint as i64 - card as i64).unsigned_abs();
        let max_error = if j == 10 { 1 } else { (relative_error * 6.0 * checkpoint as f64).ceil() as u64 };
        if abs_error > max_error {
            return Err(format!("ERR TESTFAILED Too big error. card:{checkpoint} abserr:{abs_error}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}
