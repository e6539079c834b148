//! Hash commands (Redis's t_hash.c).
//!
//! Every handler keeps Redis 7.0's order of checks (arguments, then the
//! key, then the values stored), because the order decides which error a
//! client sees when several things are wrong at once. A hash emptied by a
//! command (HDEL) deletes its key, as Redis does; the command then
//! propagates as sent, and a replay deletes it too.

use super::keys::{parse_cursor, parse_scan_options};
use super::lookup::{HashKind, WrongType};
use super::string::cstr;
use super::string::float80::F80;
use super::{err, flags::*, CommandSpec, Ctx};
use crate::config::glob_match;
use crate::messaging::notify;
use crate::protocol::Reply;
use crate::shard::keyspace::{canonical_int, xorshift};
use crate::shard::{Entry, Value};
use crate::types::hash::Limits;
use crate::types::listpack::Entry as Item;
use crate::types::Hash;
use crate::util::eq_ic;

pub fn commands() -> Vec<CommandSpec> {
    const READ_FAST: &[&str] = &["@read", "@hash", "@fast"];
    const READ_SLOW: &[&str] = &["@read", "@hash", "@slow"];
    const WRITE_FAST: &[&str] = &["@write", "@hash", "@fast"];
    let h = |name: &'static str, arity: i32, flags: u32, handler: super::Handler| CommandSpec::new(name, arity, flags, handler).keys(1, 1, 1).group("hash");
    vec![
        h("hdel", -3, WRITE | FAST, hdel).acl(WRITE_FAST).doc("2.0.0", "Delete one or more hash fields"),
        h("hexists", 3, READONLY | FAST, hexists).acl(READ_FAST).doc("2.0.0", "Determine if a hash field exists"),
        h("hget", 3, READONLY | FAST, hget).acl(READ_FAST).doc("2.0.0", "Get the value of a hash field"),
        h("hgetall", 2, READONLY, hgetall).acl(READ_SLOW).doc("2.0.0", "Get all the fields and values in a hash"),
        h("hincrby", 4, WRITE | DENYOOM | FAST, hincrby).acl(WRITE_FAST).doc("2.0.0", "Increment the integer value of a hash field by the given number"),
        h("hincrbyfloat", 4, WRITE | DENYOOM | FAST, hincrbyfloat)
            .acl(WRITE_FAST)
            .doc("2.6.0", "Increment the float value of a hash field by the given amount"),
        h("hkeys", 2, READONLY, hkeys).acl(READ_SLOW).doc("2.0.0", "Get all the fields in a hash"),
        h("hlen", 2, READONLY | FAST, hlen).acl(READ_FAST).doc("2.0.0", "Get the number of fields in a hash"),
        h("hmget", -3, READONLY | FAST, hmget).acl(READ_FAST).doc("2.0.0", "Get the values of all the given hash fields"),
        h("hmset", -4, WRITE | DENYOOM | FAST, hmset).acl(WRITE_FAST).doc("2.0.0", "Set multiple hash fields to multiple values"),
        h("hrandfield", -2, READONLY, hrandfield).acl(READ_SLOW).doc("6.2.0", "Get one or multiple random fields from a hash"),
        h("hscan", -3, READONLY, hscan).acl(READ_SLOW).doc("2.8.0", "Incrementally iterate hash fields and associated values"),
        h("hset", -4, WRITE | DENYOOM | FAST, hset).acl(WRITE_FAST).doc("2.0.0", "Set the string value of a hash field"),
        h("hsetnx", 4, WRITE | DENYOOM | FAST, hsetnx).acl(WRITE_FAST).doc("2.0.0", "Set the value of a hash field, only if the field does not exist"),
        h("hstrlen", 3, READONLY | FAST, hstrlen).acl(READ_FAST).doc("3.2.0", "Get the length of the value of a hash field"),
        h("hvals", 2, READONLY, hvals).acl(READ_SLOW).doc("2.0.0", "Get all the values in a hash"),
    ]
}

/// HRANDFIELD's count limit per listpack sample (`HRANDFIELD_RANDOM_SAMPLE_LIMIT`).
const RANDOM_SAMPLE_LIMIT: usize = 1000;
/// Below `count * 3` elements HRANDFIELD copies the hash and removes
/// random elements rather than picking them (`HRANDFIELD_SUB_STRATEGY_MUL`).
const SUB_STRATEGY_MUL: usize = 3;

/// The hash of an entry a `HashKind` lookup returned.
fn hash_mut(e: &mut Entry) -> &mut Hash {
    match &mut e.value {
        Value::Hash(h) => h,
        other => unreachable!("a HashKind lookup returned a {}", other.type_name()),
    }
}

fn limits(ctx: &Ctx) -> Limits {
    let l = &ctx.config().encodings;
    Limits { entries_max: l.hash_max_listpack_entries, value_bytes_max: l.hash_max_listpack_value }
}

/// Redis's `hashTypeLookupWriteOrCreate`: the hash at `key`, created empty
/// (a listpack) when the key does not exist.
fn write_or_create<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<&'c mut Hash, WrongType> {
    let (e, _) = ctx.lookup_write_or_create::<HashKind>(key, || Value::Hash(Hash::default()))?;
    Ok(hash_mut(e))
}

/// A key written by `writes` field changes: made known once, counted as
/// `writes` for the dirty counter as Redis counts them, and notified as `event`.
fn modified(ctx: &mut Ctx, key: &[u8], writes: usize, event: &str) {
    ctx.wrote_key(key, writes.max(1), notify::HASH, event);
}

#[inline]
fn reply_item(r: &mut Reply, e: Item<'_>) {
    match e {
        Item::Str(s) => r.bulk(s),
        Item::Int(n) => r.bulk_int(n),
    }
}

fn hset_generic(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply, name: &str) {
    if !args.len().is_multiple_of(2) {
        return r.error(&super::arity_error(name));
    }
    let limits = limits(ctx);
    let key = args[1];
    let Ok(h) = write_or_create(ctx, key) else {
        return r.error(err::WRONGTYPE);
    };
    h.convert_for(&args[2..], limits);
    let created = args[2..].chunks(2).filter(|fv| h.set(fv[0], fv[1], limits)).count();
    h.shrink_to_fit();
    if h.take_rehash_start() {
        ctx.db(key).note_rehashing_value(key);
    }
    modified(ctx, key, (args.len() - 2) / 2, "hset");
    if name == "hset" {
        r.int(created as i64)
    } else {
        r.ok()
    }
}

fn hset(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    hset_generic(ctx, args, r, "hset");
}

fn hmset(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    hset_generic(ctx, args, r, "hmset");
}

fn hsetnx(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let limits = limits(ctx);
    let key = args[1];
    let Ok(h) = write_or_create(ctx, key) else {
        return r.error(err::WRONGTYPE);
    };
    if h.contains(args[2]) {
        return r.int(0);
    }
    h.convert_for(&args[2..4], limits);
    h.set(args[2], args[3], limits);
    h.shrink_to_fit();
    modified(ctx, key, 1, "hset");
    r.int(1);
}

fn hget(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<HashKind>(args[1]) {
        Ok(Some(e)) => match hash_mut(e).get(args[2]) {
            Some(v) => reply_item(r, v),
            None => r.null(),
        },
        Ok(None) => r.null(),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

fn hmget(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let h = match ctx.lookup_read::<HashKind>(args[1]) {
        Ok(e) => e.map(|e| &*hash_mut(e)),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    r.array(args.len() - 2);
    for field in &args[2..] {
        match h.and_then(|h| h.get(field)) {
            Some(v) => reply_item(r, v),
            None => r.null(),
        }
    }
}

fn hdel(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let key = args[1];
    let h = match ctx.lookup_write::<HashKind>(key) {
        Ok(Some(e)) => hash_mut(e),
        Ok(None) => return r.int(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let mut deleted = 0;
    for field in &args[2..] {
        if h.delete(field) {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    let empty = h.is_empty();
    let rehashing = !empty && h.take_rehash_start();
    if !empty {
        h.shrink_to_fit();
    }
    if rehashing {
        ctx.db(key).note_rehashing_value(key);
    }
    if deleted > 0 {
        modified(ctx, key, deleted, "hdel");
    }
    if empty {
        ctx.db(key).remove(key);
        ctx.notify(notify::GENERIC, "del", key);
    }
    r.int(deleted as i64);
}

fn hlen(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<HashKind>(args[1]) {
        Ok(Some(e)) => r.int(hash_mut(e).len() as i64),
        Ok(None) => r.int(0),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

fn hstrlen(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<HashKind>(args[1]) {
        Ok(Some(e)) => r.int(hash_mut(e).value_len(args[2]) as i64),
        Ok(None) => r.int(0),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

fn hexists(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    match ctx.lookup_read::<HashKind>(args[1]) {
        Ok(Some(e)) => r.int(hash_mut(e).contains(args[2]) as i64),
        Ok(None) => r.int(0),
        Err(WrongType) => r.error(err::WRONGTYPE),
    }
}

fn hincrby(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(by) = super::parse_i64(args[3]) else {
        return r.error(err::NOT_INTEGER);
    };
    let (key, field, limits) = (args[1], args[2], limits(ctx));
    let Ok(h) = write_or_create(ctx, key) else {
        return r.error(err::WRONGTYPE);
    };
    let old = match h.get(field) {
        None => 0,
        Some(Item::Int(n)) => n,
        Some(Item::Str(s)) => match canonical_int(s) {
            Some(n) => n,
            None => return r.error("ERR hash value is not an integer"),
        },
    };
    let Some(new) = old.checked_add(by) else {
        return r.error(err::OVERFLOW);
    };
    h.set(field, itoa::Buffer::new().format(new).as_bytes(), limits);
    h.shrink_to_fit();
    modified(ctx, key, 1, "hincrby");
    r.int(new);
}

fn hincrbyfloat(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(by) = F80::parse(args[3]) else {
        return r.error(err::NOT_FLOAT);
    };
    if !by.is_finite() {
        return r.error("ERR value is NaN or Infinity");
    }
    let (key, field, limits) = (args[1], args[2], limits(ctx));
    let Ok(h) = write_or_create(ctx, key) else {
        return r.error(err::WRONGTYPE);
    };
    let old = match h.get(field) {
        None => F80::from_i64(0),
        Some(Item::Int(n)) => F80::from_i64(n),
        Some(Item::Str(s)) => match F80::parse(s) {
            Some(v) => v,
            None => return r.error("ERR hash value is not a float"),
        },
    };
    let sum = old.add(by);
    if !sum.is_finite() {
        return r.error("ERR increment would produce NaN or Infinity");
    }
    let text = sum.to_human().into_bytes();
    h.set(field, &text, limits);
    h.shrink_to_fit();
    modified(ctx, key, 1, "hincrbyfloat");
    r.bulk(&text);
    // The printed result, not the increment: a replay gives the same
    // string whatever the float arithmetic of the loader (Redis 7.0
    // propagates HSET key field <result>).
    ctx.propagate_as(&[b"HSET", key, field, &text]);
}

/// What HGETALL, HKEYS and HVALS reply for each pair.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Fields,
    Values,
    Both,
}

fn getall_generic(ctx: &mut Ctx, key: &[u8], r: &mut Reply, part: Part) {
    let h = match ctx.lookup_read::<HashKind>(key) {
        Ok(Some(e)) => &*hash_mut(e),
        Ok(None) if part == Part::Both => return r.map(0),
        Ok(None) => return r.array(0),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    if part == Part::Both {
        r.map(h.len());
    } else {
        r.array(h.len());
    }
    for (f, v) in h.iter() {
        if part != Part::Values {
            reply_item(r, f);
        }
        if part != Part::Fields {
            reply_item(r, v);
        }
    }
}

fn hgetall(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    getall_generic(ctx, args[1], r, Part::Both);
}

fn hkeys(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    getall_generic(ctx, args[1], r, Part::Fields);
}

fn hvals(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    getall_generic(ctx, args[1], r, Part::Values);
}

fn hscan(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let Some(cursor) = parse_cursor(args[2]) else {
        return r.error("ERR invalid cursor");
    };
    let h = match ctx.lookup_read::<HashKind>(args[1]) {
        Ok(Some(e)) => &*hash_mut(e),
        Ok(None) => {
            r.array(2);
            r.bulk(b"0");
            return r.array(0);
        }
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    let o = match parse_scan_options(args, 3, false) {
        Ok(o) => o,
        Err(e) => return r.error(e),
    };
    // COUNT is at least 1 (checked by the parser).
    let mut page = h.scan(cursor, o.count as usize);
    if let Some(p) = o.pattern {
        let mut b = itoa::Buffer::new();
        page.pairs.retain(|(f, _)| match f {
            Item::Str(s) => glob_match(p, s, false),
            Item::Int(n) => glob_match(p, b.format(*n).as_bytes(), false),
        });
    }
    r.array(2);
    r.bulk_int(page.cursor as i64);
    r.array(page.pairs.len() * 2);
    for (f, v) in page.pairs {
        reply_item(r, f);
        reply_item(r, v);
    }
}

/// A uniform random index below `n` (n > 0).
#[inline]
fn random_below(rng: &mut u64, n: usize) -> usize {
    (xorshift(rng) % n as u64) as usize
}

fn hrandfield(ctx: &mut Ctx, args: &[&[u8]], r: &mut Reply) {
    let mut count = None;
    if args.len() >= 3 {
        let Some(l) = super::parse_i64(args[2]) else {
            return r.error(err::NOT_INTEGER);
        };
        if l == i64::MIN {
            return r.error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
        }
        if args.len() > 4 || (args.len() == 4 && !eq_ic(cstr(args[3]), "withvalues")) {
            return r.error(err::SYNTAX);
        }
        let with_values = args.len() == 4;
        if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            return r.error("ERR value is out of range");
        }
        count = Some((l, with_values));
    }
    let key = args[1];
    let stop = ctx.reply_bytes_stop();
    let mut rng = ctx.shards.of(key).rng;
    let h = match ctx.lookup_read::<HashKind>(key) {
        Ok(Some(e)) => &*hash_mut(e),
        Ok(None) if count.is_some() => return r.array(0),
        Ok(None) => return r.null(),
        Err(WrongType) => return r.error(err::WRONGTYPE),
    };
    match count {
        None => {
            let (f, _) = h.pair_at(random_below(&mut rng, h.len())).expect("index below len");
            reply_item(r, f);
        }
        Some((l, with_values)) => random_fields(h, l, with_values, &mut rng, r, stop),
    }
    ctx.shards.of(key).rng = rng;
}

/// Redis's `hrandfieldWithCountCommand`: a negative count picks with
/// repetition, in random order; a positive one returns distinct fields, by
/// the strategy Redis picks for the sizes (the whole hash, a copy with
/// random removals, or random picks until enough are distinct), so the
/// distribution is Redis's. Picks with repetition stop once the reply
/// reaches `stop` bytes (`Ctx::reply_bytes_stop`).
fn random_fields(h: &Hash, l: i64, with_values: bool, rng: &mut u64, r: &mut Reply, stop: usize) {
    let size = h.len();
    let (count, unique) = (l.unsigned_abs() as usize, l >= 0);
    if count == 0 {
        return r.array(0);
    }
    let reply_pair = |r: &mut Reply, (f, v): (Item<'_>, Item<'_>)| {
        if with_values {
            r.pair();
        }
        reply_item(r, f);
        if with_values {
            reply_item(r, v);
        }
    };
    let start = |r: &mut Reply, n: usize| {
        if with_values {
            r.pairs(n)
        } else {
            r.array(n)
        }
    };
    // CASE 1: with repetition (or a single field): independent uniform picks.
    if !unique || count == 1 {
        start(r, count);
        match h {
            Hash::Table(_) => {
                for _ in 0..count {
                    if r.buf.len() >= stop {
                        break;
                    }
                    reply_pair(r, h.pair_at(random_below(rng, size)).expect("index below len"));
                }
            }
            Hash::Listpack(lp) => {
                // Walking a listpack per pick is slow: index its pairs once.
                let pairs: Vec<_> = lp.pairs().collect();
                let mut left = count;
                while left > 0 && r.buf.len() < stop {
                    let batch = left.min(RANDOM_SAMPLE_LIMIT);
                    left -= batch;
                    for _ in 0..batch {
                        reply_pair(r, pairs[random_below(rng, size)]);
                    }
                }
            }
        }
        return;
    }
    // CASE 2: the whole hash.
    if count >= size {
        start(r, size);
        for p in h.iter() {
            reply_pair(r, p);
        }
        return;
    }
    start(r, count);
    // CASE 3: close to the size: copy, then remove random elements.
    if count * SUB_STRATEGY_MUL > size {
        let mut pairs: Vec<_> = h.iter().collect();
        while pairs.len() > count {
            let i = random_below(rng, pairs.len());
            pairs.swap_remove(i);
        }
        for p in pairs {
            reply_pair(r, p);
        }
        return;
    }
    // CASE 4: a big hash: pick until enough are distinct.
    match h {
        Hash::Listpack(lp) => {
            // `lpRandomPairsUnique`: selection sampling, in listpack order.
            let mut remaining = count;
            for (index, p) in lp.pairs().enumerate() {
                if remaining == 0 {
                    break;
                }
                let random = (xorshift(rng) >> 11) as f64 / (1u64 << 53) as f64;
                if random <= remaining as f64 / (size - index) as f64 {
                    reply_pair(r, p);
                    remaining -= 1;
                }
            }
        }
        Hash::Table(_) => {
            let mut picked = std::collections::HashSet::with_capacity(count);
            while picked.len() < count {
                let i = random_below(rng, size);
                if picked.insert(i) {
                    reply_pair(r, h.pair_at(i).expect("index below len"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(line: &str) -> Result<(usize, Option<Vec<u8>>), &'static str> {
        let args: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        parse_scan_options(&args, 3, false).map(|o| (o.count as usize, o.pattern.map(|p| p.to_vec())))
    }

    #[test]
    fn hscan_options_as_redis() {
        assert_eq!(options("hscan k 0"), Ok((10, None)));
        assert_eq!(options("hscan k 0 count 5 match f*"), Ok((5, Some(b"f*".to_vec()))));
        assert_eq!(options("hscan k 0 match *"), Ok((10, None)));
        assert_eq!(options("hscan k 0 count 0"), Err(err::SYNTAX));
        assert_eq!(options("hscan k 0 count x"), Err(err::NOT_INTEGER));
        assert_eq!(options("hscan k 0 count"), Err(err::SYNTAX));
        assert_eq!(options("hscan k 0 type hash"), Err(err::SYNTAX));
    }

    fn sample(h: &Hash, l: i64, seed: u64) -> Vec<Vec<u8>> {
        let mut buf = Vec::new();
        let mut r = Reply::new(&mut buf, 2);
        let mut rng = seed;
        random_fields(h, l, false, &mut rng, &mut r, usize::MAX);
        // Bulk strings of the reply, skipping the array header.
        let text = String::from_utf8(buf).unwrap();
        text.split("\r\n").skip(1).filter(|l| !l.starts_with('$') && !l.is_empty()).map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn hrandfield_positive_counts_are_distinct_negative_ones_repeat() {
        for entries_max in [1000, 0] {
            let limits = Limits { entries_max, value_bytes_max: 64 };
            let mut h = Hash::default();
            for i in 0..50 {
                h.set(format!("f{i}").as_bytes(), b"v", limits);
            }
            for (count, expect) in [(5, 5), (20, 20), (49, 49), (50, 50), (80, 50)] {
                let got = sample(&h, count, 0x1234_5678_9abc);
                assert_eq!(got.len(), expect, "{} count {count}", h.encoding());
                let distinct: std::collections::HashSet<_> = got.iter().collect();
                assert_eq!(distinct.len(), expect, "{} count {count}", h.encoding());
            }
            let got = sample(&h, -200, 0x9e37_79b9);
            assert_eq!(got.len(), 200);
            let distinct: std::collections::HashSet<_> = got.iter().collect();
            assert!(distinct.len() > 30 && distinct.len() < 50, "{}", distinct.len());
        }
    }
}
